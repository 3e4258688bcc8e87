"""Fetching mail from IMAP, POP3 or a local store into an output, durably.

The protocols live in imap_protocol and pop3_protocol (sans-IO), the socket, TLS and
timeouts in connection.py; this module is the driver, and keeps the one rule that makes
fetching safe.

The durability contract, in order, for every message:
  1. with --new, a "pending" line in the state names the message and marks the output;
  2. the message streams into the output (Maildir tmp -> fsync -> rename; mbox locked
     append + fsync; a directory: temporary file -> fsync -> exclusive link);
  3. with --new, its "seen" line is appended to the state and fsync'd;
  4. only after every message of the run is saved (and recorded) does the server hear
     about deletion: IMAP UID STORE +FLAGS.SILENT (\\Deleted) then UID EXPUNGE (plain
     EXPUNGE without UIDPLUS), POP3 DELE then QUIT (which is when POP3 deletes).
A run killed at any point therefore never deletes a message that is not on disk. A
run killed between steps 2 and 3 leaves an orphan: the next --new run finds the
pending line, finds the orphan in the output by its mark, checks that its header
block is the message's own, and records it instead of saving it twice.

Security: imap:// and pop3:// require STARTTLS/STLS; a server that does not offer it
gets no credential (AuthError, exit 77), nor does one whose certificate does not verify.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from typing import BinaryIO, Callable, Iterable, Iterator

from mimekit import imap_protocol as imap
from mimekit import pop3_protocol as pop3
from mimekit.connection import Connection
from mimekit.errors import (AuthError, CantCreateError, MimekitError, NoInputError, ProtocolError,
                            TempFailure, UnavailableError, UsageError)
from mimekit.fetch_state import FetchState, state_path
from mimekit.files import read_chunks
from mimekit.sansio import NEED_DATA
from mimekit.safe_names import sanitize_filename, split_extension
from mimekit.stores import Maildir, Mbox, open_store
from mimekit.urls import ServerURL, parse_url

DEFAULT_TIMEOUT = 60.0
IMAP_BATCH = 100          # UIDs per UID FETCH of bodies; two batches are kept in flight
IMAP_DESCRIBE_BATCH = 5000
POP3_WINDOW = 32          # RETR/DELE commands in flight when the server offers PIPELINING
HEADER_LIMIT = 256 * 1024

# RFC 3501 system flags -> Maildir info letters (https://cr.yp.to/proto/maildir.html)
MAILDIR_FLAGS = {"\\SEEN": "S", "\\ANSWERED": "R", "\\FLAGGED": "F", "\\DRAFT": "D", "\\DELETED": "T"}
SOURCE_SCHEMES = {"imap", "imaps", "pop3", "pop3s", "maildir", "mbox"}


@dataclass(frozen=True)
class FetchOptions:
    new: bool = False
    since: date | None = None
    unseen: bool = False
    search: str | None = None
    headers_only: bool = False
    delete: bool = False
    limit: int | None = None


@dataclass(frozen=True)
class Message:
    """One message at the source, as listed before transfer."""
    id: str                    # IMAP UID, POP3 UIDL, or the local store's key
    number: int                # IMAP UID, POP3 message number, or position in the store
    size: int | None = None    # as the source reports it (IMAP RFC822.SIZE, POP3 LIST)
    flags: tuple[str, ...] = ()
    header_id: str | None = None   # Message-ID, when asked for (IMAP with --new)


@dataclass(frozen=True)
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
    fetched: list[Fetched] = field(default_factory=list)
    skipped: int = 0           # already in the output (--new state), or matched after a UIDVALIDITY change
    recovered: int = 0         # saved by a killed run and adopted instead of saved again
    vanished: int = 0          # listed, then gone before it could be fetched (another client removed it)
    deleted: int = 0
    uidvalidity_changed: bool = False

    def as_json(self) -> dict:
        return {"fetched": [f.as_json() for f in self.fetched], "skipped": self.skipped,
                "recovered": self.recovered, "vanished": self.vanished, "deleted": self.deleted,
                "uidvalidity_changed": self.uidvalidity_changed}


@functools.lru_cache(maxsize=256)
def maildir_flags(flags: tuple[str, ...]) -> str:
    return "".join(sorted({MAILDIR_FLAGS[f.upper()] for f in flags if f.upper() in MAILDIR_FLAGS}))


# ================================================================== the fetch loop

def fetch(source_url: ServerURL, sink: "Sink", options: FetchOptions, *,
          password: Callable[[], str] | None = None, cafile: str | None = None,
          timeout: float = DEFAULT_TIMEOUT, state_directory: str | None = None,
          on_progress: Callable[[int, int], None] | None = None,
          report: FetchReport | None = None) -> FetchReport:
    """Fetch what `options` select from `source_url` into `sink`; see the module docstring.

    `report` (if given) is filled in as messages are saved, so a caller still knows what
    was fetched when an exception ends the run part way.
    """
    report = FetchReport() if report is None else report
    criteria = imap.search_criteria(options.since, options.unseen, options.search)
    _check_options(source_url, sink, options, criteria)
    source = _open_source(source_url, cafile, timeout)
    try:
        source.open(password, read_only=not options.delete)
        state = None
        if options.new:
            state = FetchState(state_path(source.account, sink.identity, options.headers_only,
                                          state_directory),
                               description=f"{source.account} -> {sink.identity}")
        try:
            _run(source, sink, options, criteria, state, report, on_progress)
        finally:
            if state is not None:
                state.close()
    finally:
        source.close()
    return report


def _check_options(url: ServerURL, sink: "Sink", options: FetchOptions, criteria: str | None) -> None:
    if criteria and url.protocol != "imap":
        raise UsageError("--since, --unseen and --search need an IMAP source (POP3 and local stores cannot search)")
    if options.delete and url.is_local:
        raise UsageError("--delete is not supported for local sources")
    if options.delete and not sink.durable:
        raise UsageError("--delete with -o - is refused: standard output is not durable storage")
    if options.limit is not None and options.limit < 1:
        raise UsageError("--limit must be at least 1")


def _run(source, sink, options, criteria, state, report, on_progress) -> None:
    ids = source.list(criteria)
    if state is not None and not source.stable_ids:
        raise UnavailableError("the POP3 server has no UIDL, so --new cannot tell old messages from new")
    if state is not None:
        if source.validity is not None:
            report.uidvalidity_changed = state.set_validity(source.validity)
        if source.lists_everything:
            state.retain(set(ids))
        if state.pending is not None:
            report.recovered += _adopt_orphan(state, sink, source)
    saved_before = [i for i in ids if state is not None and i in state]
    todo = []
    for message in source.describe([i for i in ids if state is None or i not in state],
                                   with_message_id=state is not None and state.stale_count > 0):
        if state is not None and state.adopt_stale(message.id, message.header_id, message.size):
            saved_before.append(message.id)
        else:
            todo.append(message)
    report.skipped += len(saved_before)
    chosen = todo[:options.limit] if options.limit else todo
    saved = []
    for message, chunks in source.retrieve(chosen, options.headers_only):
        if state is not None:
            state.begin(message.id, sink.mark())
        counter = _Counter(chunks, on_progress, keep_header=state is not None)
        key, path = sink.add(message, counter, maildir_flags(message.flags))
        if state is not None:
            state.record(message.id, key, header_id=message.header_id or message_id_of(counter.header),
                         size=message.size if message.size is not None else counter.bytes)
        saved.append(message.id)
        report.fetched.append(Fetched(source.id_kind, source.public_id(message), counter.bytes,
                                      path, message.flags))
        if on_progress:
            on_progress(0, 1)
    report.vanished = len(chosen) - len(saved)
    if options.delete:
        report.deleted = source.delete(saved_before + saved)
    if (state is not None and not criteria and len(chosen) == len(todo) and not report.vanished):
        state.drop_stale()     # the whole mailbox was looked at: unmatched old records are gone


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


def _adopt_orphan(state: FetchState, sink: "Sink", source) -> int:
    """Record the message a killed run saved but did not record; 1 if one was adopted."""
    pending = state.pending
    candidates = sink.orphans(pending.mark, state.keys())
    if candidates:
        headers = source.headers(pending.id)
        if headers is not None:
            wanted = _header_block(headers)
            for key in candidates:
                if _header_block(sink.header_block(key)) == wanted:
                    state.record(pending.id, key)
                    return 1
    state.abandon_pending()
    return 0


_MBOX_STATUS = re.compile(rb"^(?:X-)?Status:[^\n]*\n", re.I | re.M)


def _header_block(data: bytes) -> bytes:
    """A message's header block, LF line endings, without the Status lines mbox adds."""
    data = data.replace(b"\r\n", b"\n")
    end = data.find(b"\n\n")
    block = data[:end + 1] if end >= 0 else data
    return _MBOX_STATUS.sub(b"", block)


_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*((?:[^\r\n]|\r?\n[ \t])*)", re.I | re.M)


def message_id_of(headers: bytes) -> str | None:
    match = _MESSAGE_ID.search(headers)
    if not match:
        return None
    value = b" ".join(match.group(1).split()).decode("utf-8", "replace")
    return value or None


# ======================================================================= outputs

class Sink:
    """Where fetched messages go. `mark()` and `orphans()` let a killed run's last
    message be found again (see _adopt_orphan)."""

    durable = True
    identity = ""

    def add(self, message: Message, chunks: Iterable[bytes], flags: str) -> tuple[str, str]:
        """Save one message; return (key for the state, path for the report)."""
        raise NotImplementedError

    def mark(self) -> dict:
        return {}

    def orphans(self, mark: dict, recorded: set[str]) -> list[str]:
        return []

    def header_block(self, key: str) -> bytes:
        raise NotImplementedError


def open_sink(spec: str, stdout: BinaryIO | None = None) -> Sink:
    """-o: "maildir:PATH", "mbox:PATH", "-" (stdout, one message) or a directory of .eml files."""
    if spec == "-":
        return StdoutSink(stdout or sys.stdout.buffer)
    if spec.split(":", 1)[0].lower() in ("maildir", "mbox"):
        store = open_store(parse_url(spec, {"maildir", "mbox"}))
        return MaildirSink(store) if isinstance(store, Maildir) else MboxSink(store)
    return DirectorySink(spec)


class MaildirSink(Sink):
    def __init__(self, store: Maildir):
        self.store = store
        self.identity = "maildir:" + os.path.realpath(store.path)

    def add(self, message, chunks, flags):
        path = self.store.add(chunks, flags)
        return os.path.basename(path).split(":", 1)[0], path

    def mark(self):
        # Maildir unique names start "<seconds>." and carry "P<pid>Q" (stores.Maildir).
        return {"pid": os.getpid(), "time": int(time.time())}

    def orphans(self, mark, recorded):
        tag = f"P{mark.get('pid')}Q"
        found = []
        for key in self.store.keys():
            seconds = key.split(".", 1)[0]
            if key not in recorded and tag in key and seconds.isdigit() and int(seconds) >= mark.get("time", 0):
                found.append(key)
        return found

    def header_block(self, key):
        with self.store.open(key) as stream:
            return _read_headers(stream)


class MboxSink(Sink):
    def __init__(self, store: Mbox):
        self.store = store
        self.identity = "mbox:" + os.path.realpath(store.path)

    def add(self, message, chunks, flags):
        key = self.store.add(chunks, flags=flags)
        return key, f"{self.store.path}:{key}"

    def mark(self):
        return {"size": os.path.getsize(self.store.path)}

    def orphans(self, mark, recorded):
        return [k for k in self.store.keys() if int(k) >= mark.get("size", 0) and k not in recorded]

    def header_block(self, key):
        with self.store.open(key) as stream:
            return _read_headers(stream)


class DirectorySink(Sink):
    """One .eml file per message, bytes as received; created under a temporary name,
    fsync'd, then linked to a name that was free (never overwriting: "5 (1).eml")."""

    def __init__(self, path: str):
        self.path = path
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise CantCreateError(f"{path}: {exc.strerror or exc}") from exc
        if not os.path.isdir(path):
            raise CantCreateError(f"{path}: not a directory")
        self.identity = "dir:" + os.path.realpath(path)

    @staticmethod
    def _name(message: Message) -> str:
        name, _ = sanitize_filename(f"{message.id}.eml")
        return name

    def add(self, message, chunks, flags):
        fd, tmp = tempfile.mkstemp(prefix=".mimekit-", suffix=".tmp", dir=self.path)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            stem, extension = split_extension(self._name(message))
            candidate, attempt = stem + extension, 0
            while True:
                try:
                    os.link(tmp, os.path.join(self.path, candidate))
                    break
                except FileExistsError:
                    attempt += 1
                    candidate = f"{stem} ({attempt}){extension}"
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        directory = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return candidate, os.path.join(self.path, candidate)

    def mark(self):
        return {"time": time.time()}

    def orphans(self, mark, recorded):
        found = []
        for entry in os.scandir(self.path):
            if (entry.name.endswith(".eml") and entry.name not in recorded
                    and entry.stat(follow_symlinks=False).st_ctime >= mark.get("time", 0) - 1):
                found.append(entry.name)
        return found

    def header_block(self, key):
        with open(os.path.join(self.path, key), "rb") as stream:
            return _read_headers(stream)


class StdoutSink(Sink):
    """One message to standard output, as received (CRLF), for `| mimekit decode -`."""

    durable = False
    identity = "stdout"

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.count = 0

    def add(self, message, chunks, flags):
        if self.count:
            raise UsageError("-o - takes one message; use --limit 1, or -o mbox:PATH for many")
        self.count += 1
        for chunk in chunks:
            self.stream.write(chunk)
        self.stream.flush()
        return "-", "-"


def _read_headers(stream: BinaryIO) -> bytes:
    data = bytearray()
    while len(data) < HEADER_LIMIT:
        line = stream.readline(HEADER_LIMIT)
        if not line:
            break
        data += line
        if line in (b"\n", b"\r\n"):
            break
    return bytes(data)


# ===================================================================== the wire

class _Session:
    """A protocol object on a connection: pump events, flush commands."""

    name = ""

    def __init__(self, url: ServerURL, cafile: str | None, timeout: float):
        self.url = url
        self.cafile = cafile
        self.timeout = timeout
        self.conn: Connection | None = None
        self.proto = None

    def _next(self):
        while True:
            event = self.proto.next_event()
            if event is not NEED_DATA:
                return event
            self._flush()
            self.proto.receive_data(self.conn.receive())

    def _flush(self) -> None:
        data = self.proto.data_to_send()
        if data:
            self.conn.send(data, self.proto.receive_data)

    def _connect(self) -> None:
        self.conn = Connection(self.url, self.cafile, self.timeout)

    def _require_tls(self, offered: bool) -> None:
        if not offered:
            raise AuthError(f"{self.conn.where}: the server does not offer "
                            f"{'STARTTLS' if self.name == 'IMAP' else 'STLS'}; refusing to send "
                            f"credentials in the clear (use {self.url.protocol}s:// for implicit TLS)")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ========================================================================== IMAP

def _login_failure(what: str, completion_text: str, code: str | None) -> MimekitError:
    if code in ("UNAVAILABLE", "SYS/TEMP", "IN-USE", "LOGIN-DELAY"):
        return TempFailure(f"{what} refused for now: {completion_text}")
    return AuthError(f"{what} failed: {completion_text}")


class IMAPSession(_Session):
    """Connect, secure, log in, select; then list, describe, retrieve and delete by UID."""

    name = "IMAP"
    id_kind = "uid"
    stable_ids = True
    lists_everything = False   # SEARCH results are a selection, not the whole mailbox

    def __init__(self, url, cafile, timeout):
        super().__init__(url, cafile, timeout)
        self.folder = url.path or "INBOX"
        self.validity: int | None = None

    @property
    def account(self) -> str:
        return f"imap://{self.url.user}@{self.url.host}/{self.folder}"

    def open(self, password: Callable[[], str] | None, read_only: bool = True) -> None:
        self.login(password)
        self.select(read_only)

    def login(self, password: Callable[[], str] | None) -> None:
        self._connect()
        self.proto = imap.IMAPClientProtocol()
        greeting = self._next()
        if not isinstance(greeting, imap.Greeting):
            raise ProtocolError(f"{self.conn.where}: no IMAP greeting")
        if greeting.status == "BYE":
            raise UnavailableError(f"{self.conn.where}: IMAP server refused the connection: {greeting.text}")
        if not self.conn.encrypted:
            if greeting.status == "PREAUTH":
                raise AuthError(f"{self.conn.where}: PREAUTH on an unencrypted connection is refused "
                                "(STARTTLS is impossible after it)")
            self._require_tls("STARTTLS" in self._capabilities())
            self._expect_ok(self.proto.starttls(), "STARTTLS")
            self.conn.start_tls()
        if greeting.status == "PREAUTH":
            return
        capabilities = self._capabilities()
        user = self.url.user
        if not user:
            raise UsageError("no user name: give USER@HOST in the URL or --user")
        secret = password() if password else ""
        if "AUTH=PLAIN" in capabilities:
            tag, what = self.proto.authenticate_plain(user, secret), "AUTHENTICATE PLAIN"
        elif "LOGINDISABLED" in capabilities:
            raise AuthError(f"{self.conn.where}: the server offers neither AUTH=PLAIN nor LOGIN")
        else:
            tag, what = self.proto.login(user, secret), "LOGIN"
        completion, _ = self._wait(tag)
        if not completion.ok:
            raise _login_failure(f"{what} as {user}", completion.text,
                                 completion.code.name if completion.code else None)
        if not completion.code or completion.code.name != "CAPABILITY":
            self._capabilities(refresh=True)

    def _capabilities(self, refresh: bool = False) -> frozenset[str]:
        if refresh or not self.proto.capabilities:
            self._expect_ok(self.proto.capability(), "CAPABILITY")
        return self.proto.capabilities

    def select(self, read_only: bool) -> None:
        completion, _ = self._wait(self.proto.select(self.folder, read_only))
        if not completion.ok:
            raise UnavailableError(f"cannot open folder {self.folder!r}: {completion.text}")
        self.validity = self.proto.mailbox.uidvalidity
        if self.validity is None:
            raise ProtocolError(f"IMAP server gave no UIDVALIDITY for {self.folder!r}")

    def folders(self) -> list[imap.ListEntry]:
        _, events = self._expect_ok(self.proto.list("", "*"), "LIST")
        return [e for e in events if isinstance(e, imap.ListEntry)]

    def list(self, criteria: str | None) -> list[str]:
        _, events = self._expect_ok(self.proto.uid_search(criteria or "ALL"), "UID SEARCH")
        uids = sorted({uid for e in events if isinstance(e, imap.Search) for uid in e.uids})
        return [str(uid) for uid in uids]

    def describe(self, ids: list[str], with_message_id: bool) -> list[Message]:
        """Messages by UID; with_message_id asks the server for Message-ID and size before
        any body moves (needed only to match messages after a UIDVALIDITY change)."""
        uids = [int(i) for i in ids]
        if not with_message_id:
            return [Message(str(uid), uid) for uid in uids]
        items = "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        found: dict[int, Message] = {}
        for start in range(0, len(uids), IMAP_DESCRIBE_BATCH):
            tag = self.proto.uid_fetch(imap.uid_set(uids[start:start + IMAP_DESCRIBE_BATCH]), items)
            header = bytearray()
            while True:
                event = self._next()
                if isinstance(event, imap.FetchBodyChunk):
                    if len(header) < HEADER_LIMIT:
                        header += event.data
                elif isinstance(event, imap.Fetch):
                    if "UID" in event.items:      # else an unsolicited FLAGS update, not ours
                        uid = event.items["UID"]
                        found[uid] = Message(str(uid), uid, event.items.get("RFC822.SIZE"),
                                             header_id=message_id_of(bytes(header)))
                    header.clear()
                elif self._completed(event, tag, "UID FETCH", tolerate_no=True):
                    break
        return [found[uid] for uid in uids if uid in found]

    def retrieve(self, messages: list[Message], headers_only: bool) -> Iterator[tuple[Message, Iterator[bytes]]]:
        """Bodies in batches of IMAP_BATCH UIDs, the next batch requested before this one
        is read, so the server never waits for us between batches. FLAGS and RFC822.SIZE
        come in the same response; they are used as sent before the body (Dovecot, like
        most servers, sends items in the order asked), and the UID must precede it."""
        by_uid = {m.number: m for m in messages}
        section = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"
        items = f"(UID FLAGS RFC822.SIZE {section})"
        batches = [messages[i:i + IMAP_BATCH] for i in range(0, len(messages), IMAP_BATCH)]
        in_flight = []
        for index in range(len(batches)):
            while len(in_flight) < 2 and index + len(in_flight) < len(batches):
                batch = batches[index + len(in_flight)]
                in_flight.append(self.proto.uid_fetch(imap.uid_set(m.number for m in batch), items))
            self._flush()
            tag = in_flight.pop(0)
            while True:
                event = self._next()
                if isinstance(event, imap.FetchBodyStart):
                    uid = event.items.get("UID")
                    if uid is None:
                        raise ProtocolError(f"{self.conn.where}: the server sent a message body before "
                                            "its UID, so it cannot be told which message it is")
                    body = self._body()
                    planned = by_uid.pop(uid, None)
                    if planned is not None:
                        yield Message(planned.id, uid, event.items.get("RFC822.SIZE", planned.size),
                                      event.items.get("FLAGS", ()), planned.header_id), body
                    for _ in body:        # drain whatever the consumer left (or a body not asked for)
                        pass
                elif type(event) is not imap.Fetch and self._completed(event, tag, "UID FETCH", tolerate_no=True):
                    break

    def _body(self) -> Iterator[bytes]:
        while True:
            event = self._next()
            if isinstance(event, imap.FetchBodyChunk):
                yield event.data
            elif isinstance(event, imap.FetchBodyEnd):
                return

    def headers(self, message_id: str) -> bytes | None:
        found = None
        for _, chunks in self.retrieve([Message(message_id, int(message_id))], headers_only=True):
            found = b"".join(chunks)
        return found

    def delete(self, ids: list[str]) -> int:
        if not ids:
            return 0
        uids = imap.uid_set(int(i) for i in ids)
        self._expect_ok(self.proto.uid_store(uids, "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE")
        if "UIDPLUS" in self.proto.capabilities:
            _, events = self._expect_ok(self.proto.uid_expunge(uids), "UID EXPUNGE")
        else:
            _, events = self._expect_ok(self.proto.expunge(), "EXPUNGE")
        return sum(isinstance(e, imap.Expunge) for e in events)

    @staticmethod
    def public_id(message: Message) -> int:
        return message.number

    def close(self) -> None:
        if self.conn is not None and self.proto is not None:
            try:
                self._wait(self.proto.logout())
            except MimekitError:
                pass              # everything that mattered is done; the server may just hang up
        super().close()

    # -- commands and completions

    def _wait(self, tag: str) -> tuple[imap.Completion, list]:
        self._flush()
        events = []
        while True:
            event = self._next()
            if isinstance(event, imap.Completion) and event.tag == tag:
                return event, events
            if isinstance(event, imap.ConnectionClosed):
                raise TempFailure(f"{self.conn.where}: IMAP server closed the connection")
            if isinstance(event, imap.StatusResponse) and event.status == "BYE":
                if self.proto.pending_commands() == ["LOGOUT"]:
                    continue
                raise TempFailure(f"{self.conn.where}: IMAP server said BYE: {event.text}")
            events.append(event)

    def _expect_ok(self, tag: str, what: str) -> tuple[imap.Completion, list]:
        completion, events = self._wait(tag)
        if not completion.ok:
            kind = ProtocolError if completion.status == "BAD" else UnavailableError
            raise kind(f"{self.conn.where}: {what} failed: {completion.status} {completion.text}")
        return completion, events

    def _completed(self, event, tag: str, what: str, tolerate_no: bool = False) -> bool:
        """True at the completion of `tag`; raise on BYE, a dropped connection, or BAD."""
        if isinstance(event, imap.Completion) and event.tag == tag:
            if event.status == "BAD" or (event.status == "NO" and not tolerate_no):
                raise ProtocolError(f"{self.conn.where}: {what} failed: {event.status} {event.text}")
            return True
        if isinstance(event, imap.ConnectionClosed):
            raise TempFailure(f"{self.conn.where}: IMAP server closed the connection")
        if isinstance(event, imap.StatusResponse) and event.status == "BYE":
            raise TempFailure(f"{self.conn.where}: IMAP server said BYE: {event.text}")
        return False


# ========================================================================== POP3

class POP3Session(_Session):
    name = "POP3"
    id_kind = "uidl"
    stable_ids = True          # until the server turns out to have no UIDL
    lists_everything = True
    validity = None

    def __init__(self, url, cafile, timeout):
        super().__init__(url, cafile, timeout)
        self._number_by_id: dict[str, int] = {}
        self._sizes: dict[int, int] = {}
        self._quit = False

    @property
    def account(self) -> str:
        return f"pop3://{self.url.user}@{self.url.host}"

    def open(self, password: Callable[[], str] | None, read_only: bool = True) -> None:
        self._connect()
        self.proto = pop3.POP3ClientProtocol()
        greeting = self._next()
        if not isinstance(greeting, pop3.Greeting) or not greeting.ok:
            raise UnavailableError(f"{self.conn.where}: POP3 server refused the connection: "
                                   f"{getattr(greeting, 'text', greeting)}")
        capabilities = self._capa()
        if not self.conn.encrypted:
            self._require_tls("STLS" in capabilities)
            self.proto.stls()
            self._reply("STLS", AuthError)
            self.conn.start_tls()
            capabilities = self._capa()
        user = self.url.user
        if not user:
            raise UsageError("no user name: give USER@HOST in the URL or --user")
        secret = password() if password else ""
        if "PLAIN" in (arg.upper() for arg in capabilities.get("SASL", ())):
            self.proto.auth_plain(user, secret)
        else:
            self.proto.user(user)
            self._flush()
            reply = self._next()
            if not isinstance(reply, pop3.Reply) or not reply.ok:
                raise _login_failure(f"POP3 USER {user}", getattr(reply, "text", ""), getattr(reply, "code", None))
            self.proto.password(secret)
        self._flush()
        reply = self._next()
        if not isinstance(reply, pop3.Reply) or not reply.ok:
            raise _login_failure(f"POP3 login as {user}", getattr(reply, "text", ""), getattr(reply, "code", None))

    def _capa(self) -> dict:
        self.proto.capa()
        self._flush()
        event = self._next()
        return event.capabilities if isinstance(event, pop3.Capabilities) else {}

    def _reply(self, what: str, failure=ProtocolError) -> "pop3.Reply":
        self._flush()
        event = self._next()
        if isinstance(event, pop3.ConnectionClosed):
            raise TempFailure(f"{self.conn.where}: POP3 server closed the connection")
        if not isinstance(event, pop3.Reply) or not event.ok:
            text = getattr(event, "text", repr(event))
            if getattr(event, "code", None) in ("IN-USE", "SYS/TEMP", "LOGIN-DELAY"):
                raise TempFailure(f"{self.conn.where}: {what} refused for now: {text}")
            raise failure(f"{self.conn.where}: {what} failed: {text}")
        return event

    def list(self, criteria: str | None) -> list[str]:
        self.proto.uidl()
        self._flush()
        uidl = self._next()
        self.proto.list()
        self._flush()
        listing = self._next()
        if not isinstance(listing, pop3.Sizes):
            raise ProtocolError(f"{self.conn.where}: LIST failed: {getattr(listing, 'text', listing)}")
        self._sizes = listing.sizes
        self.stable_ids = isinstance(uidl, pop3.UniqueIds)
        if self.stable_ids:
            self._number_by_id = {uid: number for number, uid in uidl.ids.items()}
        else:
            self.id_kind = "number"     # no UIDL: ids are message numbers, good for this session only
            self._number_by_id = {str(number): number for number in listing.sizes}
        return sorted(self._number_by_id, key=self._number_by_id.get)

    def describe(self, ids: list[str], with_message_id: bool) -> list[Message]:
        return [Message(i, self._number_by_id[i], self._sizes.get(self._number_by_id[i])) for i in ids]

    def retrieve(self, messages: list[Message], headers_only: bool) -> Iterator[tuple[Message, Iterator[bytes]]]:
        if headers_only and self.proto.capabilities and "TOP" not in self.proto.capabilities:
            raise UnavailableError(f"{self.conn.where}: the server does not offer TOP, so --headers-only cannot work")
        window = POP3_WINDOW if "PIPELINING" in self.proto.capabilities else 1
        queue = list(messages)
        sent = []
        while queue or sent:
            while queue and len(sent) < window:
                message = queue.pop(0)
                self.proto.top(message.number, 0) if headers_only else self.proto.retr(message.number)
                sent.append(message)
            self._flush()
            message = sent.pop(0)
            event = self._next()
            if isinstance(event, pop3.MessageStart):
                body = self._body()
                yield message, body
                for _ in body:
                    pass
            elif isinstance(event, pop3.Reply) and not event.ok:
                # The maildrop is locked for this session (RFC 1939 §4): a listed message
                # cannot have gone, so this is the server failing, not a vanished message.
                raise TempFailure(f"{self.conn.where}: {'TOP' if headers_only else 'RETR'} "
                                  f"{message.number} failed: {event.text}")
            else:
                raise ProtocolError(f"{self.conn.where}: unexpected reply to RETR: {event!r}")

    def _body(self) -> Iterator[bytes]:
        while True:
            event = self._next()
            if isinstance(event, pop3.MessageChunk):
                yield event.data
            elif isinstance(event, pop3.MessageEnd):
                return
            elif isinstance(event, pop3.ConnectionClosed):
                raise TempFailure(f"{self.conn.where}: POP3 server closed the connection mid-message")

    def headers(self, message_id: str) -> bytes | None:
        number = self._number_by_id.get(message_id)
        if number is None or (self.proto.capabilities and "TOP" not in self.proto.capabilities):
            return None           # gone, or cannot be checked: the caller fetches it again
        found = None
        for _, chunks in self.retrieve([Message(message_id, number)], headers_only=True):
            found = b"".join(chunks)
        return found

    def delete(self, ids: list[str]) -> int:
        """DELE each, then QUIT: POP3 removes messages only when QUIT succeeds (RFC 1939 §6)."""
        numbers = [self._number_by_id[i] for i in ids if i in self._number_by_id]
        marked = 0
        for start in range(0, len(numbers), POP3_WINDOW):
            batch = numbers[start:start + POP3_WINDOW]
            for number in batch:
                self.proto.dele(number)
            self._flush()
            for number in batch:
                event = self._next()
                if not isinstance(event, pop3.Reply) or not event.ok:
                    raise TempFailure(f"{self.conn.where}: DELE {number} failed: {getattr(event, 'text', event)}")
                marked += 1
        self._quit = True
        self.proto.quit()
        self._reply("QUIT (which commits the deletions)", TempFailure)
        return marked

    @staticmethod
    def public_id(message: Message) -> str:
        return message.id

    def close(self) -> None:
        if self.conn is not None and self.proto is not None and not self._quit:
            try:
                self.proto.quit()
                self._flush()
                self._next()
            except MimekitError:
                pass
        super().close()


# ================================================================= local stores

class LocalSource:
    """maildir:PATH or mbox:PATH as a source: the store's keys are the ids."""

    id_kind = "key"
    stable_ids = True
    validity = None
    lists_everything = True

    def __init__(self, url: ServerURL):
        self.url = url
        self.store = None
        self.account = f"{url.scheme}:{os.path.realpath(url.path)}"

    def open(self, password=None, read_only: bool = True) -> None:
        if not os.path.exists(self.url.path):
            raise NoInputError(f"{self.url.path}: no such {self.url.scheme} store")
        self.store = open_store(self.url, create=False)

    def list(self, criteria: str | None) -> list[str]:
        return self.store.keys()

    def describe(self, ids: list[str], with_message_id: bool) -> list[Message]:
        position = {key: n for n, key in enumerate(self.store.keys(), 1)} if ids else {}
        return [Message(key, position.get(key, 0)) for key in ids]

    def retrieve(self, messages: list[Message], headers_only: bool) -> Iterator[tuple[Message, Iterator[bytes]]]:
        for message in messages:
            try:
                stream = self.store.open(message.id)
            except NoInputError:
                continue                  # removed since it was listed
            with stream:
                yield message, (iter([_read_headers(stream)]) if headers_only else read_chunks(stream))

    def headers(self, message_id: str) -> bytes | None:
        try:
            with self.store.open(message_id) as stream:
                return _read_headers(stream)
        except NoInputError:
            return None

    @staticmethod
    def public_id(message: Message) -> str:
        return message.id

    def close(self) -> None:
        pass


def _open_source(url: ServerURL, cafile: str | None, timeout: float):
    if url.is_local:
        return LocalSource(url)
    if url.protocol == "imap":
        return IMAPSession(url, cafile, timeout)
    if url.protocol == "pop3":
        return POP3Session(url, cafile, timeout)
    raise UsageError(f"{url.scheme}: cannot fetch from it")


def list_folders(url: ServerURL, password: Callable[[], str] | None, cafile: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> list[imap.ListEntry]:
    """Every folder of an IMAP account (LIST "" "*"), names decoded from modified UTF-7."""
    session = IMAPSession(url, cafile, timeout)
    try:
        session.login(password)
        return session.folders()
    finally:
        session.close()
