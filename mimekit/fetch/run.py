"""Fetching mail from IMAP, POP3 or a local store into an output, durably.

This module is the fetch loop and its public API, and keeps the one rule that makes
fetching safe. A source (mimekit.fetch.sources.Source: the IMAP and POP3 clients, or a
local store) lists message ids, describes them (mimekit.fetch.message.ListedMessage),
streams them and deletes them; an output (mimekit.fetch.sinks) saves them durably;
mimekit.fetch.state remembers for --new what was saved.

Every run into a durable output keeps the state of fetch_state (what was saved where),
so that a later --new run skips what any earlier run saved there; --new only decides
whether saved messages are skipped. The durability contract, in order, for every message:
  1. a "pending" line in the state names the message and marks the output;
  2. the message streams into the output (Maildir tmp -> fsync -> rename, on the sink's
     committer threads while the next message is fetched; mbox locked append + fsync; a
     directory: temporary file -> fsync -> exclusive link);
  3. its "seen" line is appended to the state; a Maildir makes its names durable with one
     directory fsync per batch of Sink.sync_batch messages (and at the end of each pass),
     so its "seen" lines wait for that fsync and a batch is pending at a time. With
     `on_saved` (fetch --exec) the output is synced, on_saved runs, and only then is the
     line written: a run killed before on_saved returned leaves the message pending;
  4. only after every message of the run is saved and the state fsync'd does the server
     hear of it, in this order: flags (IMAP UID STORE +FLAGS.SILENT / -FLAGS.SILENT), a
     move (UID MOVE, else UID COPY, \\Deleted and UID EXPUNGE), deletion: IMAP UID STORE
     +FLAGS.SILENT (\\Deleted) then UID EXPUNGE, POP3 DELE then QUIT (which is when POP3
     deletes); a local store unlinks the files (Maildir) or rewrites itself without them
     (mbox). IMAP never expunges with a plain EXPUNGE, which would remove every message
     marked \\Deleted: without UIDPLUS, deleting (and moving without MOVE) is refused
     before the server is changed. Flags and moves apply to this run's messages only;
     the saved copies already carry the flags the server will have.
A run killed at any point therefore never deletes a message that is not on disk. A
run killed between steps 2 and 3 leaves orphans: the next run finds the pending lines,
finds the orphans in the output by their mark, fetches those messages from the source again
and records an orphan only if it holds exactly the bytes of one (as the output stores them),
calling on_saved for it first; anything else, such as a message cut short, is never taken
for the message.
"""

import hashlib
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Callable, Iterable, Iterator

from mimekit.transport.imap import protocol as imap
from mimekit.transport.connection import DEFAULT_TIMEOUT
from mimekit.errors import UnavailableError, UsageError
from mimekit.fetch.message import HEADER_LIMIT, message_id_of
from mimekit.fetch.sinks import MBOX_FLAG_FIELD, Sink, keywords_of, maildir_flags
from mimekit.fetch.state import Cursor, FetchState, state_path
from mimekit.streams.files import read_chunks
from mimekit.fetch.sources import LocalSource, Source
from mimekit.transport.imap.client import IMAPClient
from mimekit.transport.pop3.client import POP3Client
from mimekit.transport.urls import ServerURL

SOURCE_SCHEMES = {"imap", "imaps", "imap+plain", "pop3", "pop3s", "pop3+plain", "maildir", "mbox"}


@dataclass(frozen=True)
class FetchOptions:
    new: bool = False
    since: date | None = None
    unseen: bool = False
    search: str | None = None
    headers_only: bool = False
    delete: bool = False
    limit: int | None = None
    # IMAP actions on the messages saved in this run, after every one is saved: flags as
    # a user names them (seen, flagged... or a keyword: see imap_flag), stored as IMAP's.
    flag: tuple[str, ...] = ()
    unflag: tuple[str, ...] = ()
    move_to: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "flag", tuple(imap_flag(name) for name in self.flag))
        object.__setattr__(self, "unflag", tuple(imap_flag(name) for name in self.unflag))
        removed = {f.upper() for f in self.unflag}
        both = [f for f in self.flag if f.upper() in removed]
        if both:
            raise UsageError(f"flag and unflag both name {', '.join(both)}")

    @property
    def acts_on_server(self) -> bool:
        """Whether the run changes the source (so it must SELECT, not EXAMINE)."""
        return bool(self.delete or self.flag or self.unflag or self.move_to)


_SYSTEM_FLAGS = {name.lower(): "\\" + name for name in ("Seen", "Answered", "Flagged", "Draft", "Deleted")}
_KEYWORD = re.compile(r"[A-Za-z0-9$_.-]+")   # a safe subset of RFC 3501's flag-keyword (an atom)


def imap_flag(name: str) -> str:
    """A flag as a user names it (seen, SEEN or \\Seen; a keyword such as $Junk) as IMAP
    spells it; UsageError for anything else."""
    system = _SYSTEM_FLAGS.get(name.lower().removeprefix("\\"))
    if system:
        return system
    if _KEYWORD.fullmatch(name):
        return name
    raise UsageError(f"flag {name!r}: not one of seen, answered, flagged, draft, deleted, nor an IMAP keyword "
                     "(letters, digits and $ _ - .)")


@dataclass(slots=True)
class Fetched:
    id_kind: str               # "uid", "uidl" or "key"
    id: str | int
    size: int                  # bytes received
    path: str
    flags: tuple[str, ...]

    def as_json(self) -> dict:
        return {self.id_kind: self.id, "size": self.size, "path": self.path, "flags": list(self.flags)}


@dataclass
class FetchReport:
    source: str = ""           # source_name(): where the messages came from, no secret in it
    fetched: list[Fetched] = field(default_factory=list)
    skipped: int = 0           # already in the output (--new state), or matched after a UIDVALIDITY change
    recovered: int = 0         # saved by a killed run and adopted instead of saved again
    vanished: int = 0          # listed, then gone before it could be fetched (another client removed it)
    deleted: int = 0
    uidvalidity_changed: bool = False
    flags_stored: int = 0      # messages whose flags were changed on the server (flag, unflag)
    moved: int = 0
    move_target: str | None = None

    def as_json(self) -> dict:
        return {"source": self.source, "fetched": [f.as_json() for f in self.fetched], "skipped": self.skipped,
                "recovered": self.recovered, "vanished": self.vanished, "deleted": self.deleted,
                "uidvalidity_changed": self.uidvalidity_changed, "flags_stored": self.flags_stored,
                "moved": self.moved, "move_target": self.move_target}


def source_name(url: ServerURL) -> str:
    """The source as a URL a user would write, with no secret: SCHEME://USER@HOST:PORT/FOLDER,
    or maildir:PATH / mbox:PATH."""
    if url.is_local:
        return f"{url.scheme}:{url.path}"
    user = f"{url.user}@" if url.user else ""
    folder = f"/{url.path or 'INBOX'}" if url.protocol == "imap" else ""   # IMAPClient's default folder
    return f"{url.scheme}://{user}{url.host}:{url.port}{folder}"


def fetch(source_url: ServerURL, sink: Sink, options: FetchOptions, *,
          password: Callable[[], str] | None = None, token: Callable[[], str] | None = None,
          cafile: str | None = None,
          timeout: float = DEFAULT_TIMEOUT, state_directory: str | None = None,
          on_progress: Callable[[int, int], None] | None = None,
          report: FetchReport | None = None,
          on_saved: Callable[[Fetched], None] | None = None) -> FetchReport:
    """Fetch what `options` select from `source_url` into `sink`; see the module docstring.

    `password()` is asked for once the connection is encrypted; with `token` given the
    login is OAuth2 instead (mimekit.transport.sasl), `token()` asked for then.
    `report` (if given) is filled in as messages are saved, so a caller still knows what
    was fetched when an exception ends the run part way. `on_saved` is called with each
    message once it is durable in the output, before it is recorded (fetch --exec: at
    least once, see the module docstring).
    """
    report = FetchReport() if report is None else report
    report.source = source_name(source_url)
    criteria = check_options(source_url, options, sink.durable)
    with open_session(source_url, sink, options, password=password, token=token, cafile=cafile,
                      timeout=timeout, state_directory=state_directory) as (source, state):
        fetch_pass(source, sink, options, criteria, state, report, on_progress, on_saved)
    return report


@contextmanager
def open_session(source_url: ServerURL, sink: Sink, options: FetchOptions, *,
                 password: Callable[[], str] | None, token: Callable[[], str] | None, cafile: str | None,
                 timeout: float, state_directory: str | None) -> Iterator[tuple[Source, FetchState | None]]:
    """The source, logged in, and the output's state (None for a stdout output), both
    closed on leaving: one session, for one fetch or (mimekit.fetch.watch) many passes."""
    source = _open_source(source_url, cafile, timeout)
    try:
        source.open(password, read_only=not options.acts_on_server, token=token)
        if isinstance(source, IMAPClient):
            source.check_removals(options.delete, options.move_to is not None)   # before anything changes
        state = None
        if sink.durable:
            state = FetchState(state_path(source.account, sink.identity, options.headers_only,
                                          state_directory),
                               description=f"{source.account} -> {sink.identity}")
        try:
            yield source, state
        finally:
            if state is not None:
                state.close()
    finally:
        source.close()


def check_options(url: ServerURL, options: FetchOptions, durable: bool) -> str | None:
    """Refuse what `options` cannot do with this source and an output that is `durable`
    (a store, not standard output), before anything is opened or created; the IMAP SEARCH
    criteria they ask for (None: every message)."""
    criteria = imap.search_criteria(options.since, options.unseen, options.search)
    if criteria and url.protocol != "imap":
        raise UsageError("since, unseen and search need an IMAP source (POP3 and local stores cannot search)")
    if options.delete and options.headers_only:
        raise UsageError("delete with headers_only would delete whole messages of which only the header "
                         "was saved")
    if options.delete and url.scheme == "mbox":
        raise UsageError("delete from an mbox source is refused: its keys are byte offsets, which another "
                         "program's rewrite of the file silently gives to other messages")
    if options.delete and not durable:
        raise UsageError("delete is refused when the output is standard output: it is not durable storage")
    if options.new and not durable:
        raise UsageError("new is refused when the output is standard output: no state is kept of what it "
                         "was given, so every message would be new")
    if options.limit is not None and options.limit < 1:
        raise UsageError("limit must be at least 1")
    if (options.flag or options.unflag or options.move_to is not None) and url.protocol != "imap":
        raise UsageError("flag, unflag and move_to need an IMAP source (POP3 and local stores have no such "
                         "actions; a local store's flags are its own)")
    if options.move_to is not None:
        if options.delete:
            raise UsageError("move_to and delete contradict each other: a message is either moved or deleted")
        if not options.move_to or _same_folder(options.move_to, url.path or "INBOX"):
            raise UsageError(f"move_to {options.move_to!r}: name another folder than the one fetched from")
    return criteria


def _same_folder(one: str, other: str) -> bool:
    """Folder names compare exactly, INBOX aside, which is INBOX in any case (RFC 3501 §5.1)."""
    return one == other or one.upper() == other.upper() == "INBOX"


def fetch_pass(source: Source, sink: Sink, options: FetchOptions, criteria: str | None, state: FetchState | None,
               report: FetchReport, on_progress: Callable[[int, int], None] | None,
               on_saved: Callable[[Fetched], None] | None = None, stopping: Callable[[], bool] | None = None) -> None:
    """One fetch on an open session (see the module docstring). `stopping()`, asked after
    each message saved, ends the run early (fetch --watch's SIGTERM): the server actions
    then still apply to what was saved, except on POP3, where the session is mid-RETR and
    a later --new run deletes it."""
    ids, saved_earlier = _list(source, options, criteria, state)
    if state is not None and not source.stable_ids:
        if options.new:
            raise UnavailableError("the POP3 server has no UIDL, so new=True cannot tell old messages from new")
        state = None              # message numbers name nothing beyond this session
    if state is not None:
        if source.validity is not None:
            report.uidvalidity_changed = state.set_validity(source.validity)
        if source.lists_everything:
            state.retain(set(ids))
        if state.pending is not None:
            report.recovered += _adopt_orphan(state, sink, source, options.headers_only, on_saved)
    skip_saved = state if options.new else None
    if skip_saved is None:
        saved_before, todo = [], source.describe(ids, with_message_id=False)
    else:
        saved_before, todo = [i for i in ids if i in skip_saved], []
        for message in source.describe([i for i in ids if i not in skip_saved],
                                       with_message_id=skip_saved.stale_count > 0):
            if skip_saved.adopt_stale(message.id, message.header_id, message.size):
                saved_before.append(message.id)
            else:
                todo.append(message)
    report.skipped += len(saved_before) + saved_earlier
    chosen = todo[:options.limit] if options.limit else todo
    saved, stopped = [], False
    with _only_saved_reported(report, sink):
        for message, chunks in source.retrieve(chosen, options.headers_only):
            if state is not None:
                state.begin(message.id, sink.mark())
            counter = _Counter(chunks, on_progress, keep_header=state is not None)
            flags = _flags_after(message.flags, options)
            key, path = sink.add(message, counter, maildir_flags(flags), keywords_of(flags))
            saved.append(message.id)
            report.fetched.append(Fetched(source.id_kind, source.public_id(message), counter.bytes, path, flags))
            if on_progress:
                on_progress(0, 1)
            if on_saved:
                # --exec acts on a message durable under its name, and it is recorded only
                # once CMD has run: a run killed in between leaves it pending, and the next
                # adopts it and runs CMD for it (at least once).
                sink.sync()
                on_saved(report.fetched[-1])
            if state is not None:
                state.record(message.id, key, header_id=message.header_id or message_id_of(counter.header),
                             size=message.size if message.size is not None else counter.bytes,
                             output=None if on_saved else sink)
            if stopping is not None and stopping():
                stopped = True
                chosen = chosen[:[m.id for m in chosen].index(message.id) + 1]   # the rest waits for a later run
                break
        report.vanished = len(chosen) - len(saved)
        _make_durable(sink, state)
    if stopped and isinstance(source, POP3Client):
        return
    if options.acts_on_server and state is not None:
        state.sync()              # what was saved is recorded durably before the server hears of it
    if options.flag or options.unflag:
        source.store_flags(saved, options.flag, options.unflag)
        report.flags_stored += len(saved)
    if options.move_to is not None:
        report.move_target = options.move_to
        report.moved += source.move(saved, options.move_to)
    if options.delete:
        report.deleted = source.delete(saved_before + saved)
    if (skip_saved is not None and not criteria and len(chosen) == len(todo) and not report.vanished):
        skip_saved.drop_stale()   # the whole mailbox was looked at: unmatched old records are gone
    if state is not None and not criteria and isinstance(source, IMAPClient):
        saved_ids = set(saved)
        _advance_cursor(state, source, ids, [m.number for m in todo if m.id not in saved_ids])


@contextmanager
def _only_saved_reported(report: FetchReport, sink: Sink) -> Iterator[None]:
    """On an error, take out of the report the messages the output failed to save after
    `add` had returned for them (a Maildir's commits run on threads: Sink.unsaved), so that
    what the report says was saved is on disk."""
    try:
        yield
    except BaseException:
        unsaved = sink.unsaved
        if unsaved:
            report.fetched[:] = [fetched for fetched in report.fetched if fetched.path not in unsaved]
        raise


def _make_durable(sink: Sink, state: FetchState | None) -> None:
    """Make every message saved so far durable in the output (a Maildir's batch of names)
    and write the records that waited for it; with no state (POP3 without UIDL), sync the
    output all the same, as the server may be told to delete next."""
    if state is not None:
        state.write_waiting_records()
    else:
        sink.sync()


def _flags_after(flags: tuple[str, ...], options: FetchOptions) -> tuple[str, ...]:
    """The server's flags with this run's changes made (IMAP flags compare without case):
    what the saved copy carries, since the server will have them once the run is done."""
    if not options.flag and not options.unflag:
        return flags
    removed = {f.upper() for f in options.unflag}
    kept = [f for f in flags if f.upper() not in removed]
    present = {f.upper() for f in kept}
    return tuple(kept + [f for f in options.flag if f.upper() not in present])


def _list(source: Source, options: FetchOptions, criteria: str | None,
          state: FetchState | None) -> tuple[list[str], int]:
    """The ids to consider, and how many messages were left out as saved by earlier runs.

    For --new from an IMAP folder whose state has a cursor of this UIDVALIDITY: no id,
    without a command, when the SELECT's UIDNEXT and HIGHESTMODSEQ are those remembered
    (RFC 3501 §2.3.1.1: UIDNEXT changes whenever a message is added), else the UIDs from
    the cursor on (one UID SEARCH, whatever the folder's size). What lies below the
    cursor was saved; it is counted from the folder's size. Not with --delete, which
    removes every saved message still at the source, those below the cursor too."""
    cursor = state.cursor if state is not None else None
    if not (options.new and not options.delete and not criteria and isinstance(source, IMAPClient)
            and cursor is not None and cursor.validity == source.validity):
        return source.list(criteria), 0
    if source.unchanged_since(cursor.uidnext, cursor.modseq):
        return [], source.exists
    ids = source.list_from(cursor.uidnext)
    return ids, max(source.exists - len(ids), 0)


def _advance_cursor(state: FetchState, source: IMAPClient, listed: list[str], unhandled: list[int]) -> None:
    """Move the cursor up to the first listed message left unhandled (cut by --limit, or
    not fetched), else past the SELECT's UIDNEXT and everything listed: every UID below
    is then saved or recorded, as UIDs are given out in ascending order (RFC 3501 §2.3.1.1)."""
    if unhandled:
        uidnext = min(unhandled)
    else:
        uidnext = max([source.uidnext or 0] + [int(uid) + 1 for uid in listed[-1:]])
    if state.cursor is not None and state.cursor.validity == source.validity:
        uidnext = max(uidnext, state.cursor.uidnext)
    if uidnext:
        state.set_cursor(Cursor(source.validity, uidnext, source.highestmodseq))


class _Counter:
    """Pass chunks through, counting bytes (for the report and progress) and, if asked,
    keeping the start of the message up to its header's end (for its Message-ID)."""

    def __init__(self, chunks: Iterable[bytes], on_progress, keep_header: bool = False):
        self._chunks = chunks
        self._on_progress = on_progress
        self._keep_header = keep_header
        self.header = b""
        self.bytes = 0

    def __iter__(self):
        for chunk in self._chunks:
            self.bytes += len(chunk)
            if self._keep_header:
                self.header += chunk[:HEADER_LIMIT - len(self.header)]
                self._keep_header = len(self.header) < HEADER_LIMIT and b"\n\r\n" not in self.header \
                    and b"\n\n" not in self.header
            if self._on_progress:
                self._on_progress(len(chunk), 0)
            yield chunk


def _adopt_orphan(state: FetchState, sink: Sink, source: Source, headers_only: bool,
                  on_saved: Callable[[Fetched], None] | None) -> int:
    """Record the messages a killed run saved but did not record (its pending batch: up to
    a sink's sync_batch); how many were adopted. `on_saved` (fetch --exec) is called for
    each before its record, as for a message saved in this run: the killed run may have
    died before it or while it ran.

    A candidate is adopted only if it holds exactly the bytes the source gives for a pending
    message (size and sha256 of the stored form, Status lines aside): a header block that
    matches is not enough, since a kill mid-write leaves a complete header and a cut body.
    Each candidate is adopted once, and only after `sink.sync()`: the killed run may have
    died before making its names durable.
    """
    pending = state.all_pending()
    recorded = state.keys()
    # The pending messages are one killed run's, in the order begun, and an output's mark only
    # grows: what was saved since the first mark is what was saved since any of them. One
    # listing of the output, not one per pending message (63 of 0.66 s with 50,000 files).
    candidates = sink.orphans(pending[0].mark, recorded)
    described = source.describe([message.id for message in pending], with_message_id=False) if candidates else []
    adopted = 0
    if described:
        stored_digests: dict[tuple[int, str], list[str]] = {}
        for key in candidates:
            with sink.open(key) as stored:
                stored_digests.setdefault(_stored_digest(read_chunks(stored)), []).append(key)
        sink.sync()
        for message, chunks in source.retrieve(described, headers_only):
            size, digest = _stored_digest(sink.as_stored(chunks))
            keys = stored_digests.get((size, digest))
            if keys:
                key = keys.pop(0)
                if on_saved:
                    on_saved(Fetched(source.id_kind, source.public_id(message), size, sink.reference(key),
                                     message.flags))
                state.record(message.id, key)
                adopted += 1
    state.abandon_pending()
    return adopted


_HEADER_END = re.compile(rb"\n\r?\n")


def _stored_digest(chunks: Iterable[bytes]) -> tuple[int, str]:
    """(size, sha256) of a stored message, without the Status and X-Keywords lines an mbox
    output adds to its header block (looked for in the first HEADER_LIMIT bytes only)."""
    digest, size, head = hashlib.sha256(), 0, b""
    for chunk in chunks:
        if head is None:
            digest.update(chunk)
            size += len(chunk)
            continue
        head += chunk
        end = _HEADER_END.search(b"\n" + head)
        if end is None and len(head) < HEADER_LIMIT:
            continue
        cut = end.end() - 1 if end else len(head)
        data = MBOX_FLAG_FIELD.sub(b"", head[:cut]) + head[cut:]
        digest.update(data)
        size += len(data)
        head = None
    if head:
        data = MBOX_FLAG_FIELD.sub(b"", head)
        digest.update(data)
        size += len(data)
    return size, digest.hexdigest()


def _open_source(url: ServerURL, cafile: str | None, timeout: float) -> Source:
    if url.is_local:
        return LocalSource(url)
    if url.protocol == "imap":
        return IMAPClient(url, cafile, timeout)
    if url.protocol == "pop3":
        return POP3Client(url, cafile, timeout)
    raise UsageError(f"{url.scheme}: cannot fetch from it")
