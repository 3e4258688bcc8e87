"""What `fetch --new` remembers: which messages of one source were saved to one output.

Where: $XDG_STATE_HOME/mimekit/fetch/ (default ~/.local/state/mimekit/fetch/), one
state per (source account and folder, output, whole messages or headers only). The
output is part of the key because "new" means "not yet in this output": fetching a
folder into two stores fills both. The account is protocol://user@host/folder without
port or TLS flavour, so switching imap:// to imaps:// keeps the state. It is not kept
inside the output store, so that no mail reader ever sees our files.

How it is saved. A snapshot (JSON, written to a temporary name, fsync'd, renamed) plus
an append-only journal of one JSON line per event. The journal is fsync'd (`sync`)
before any message may be deleted on the server, once per run rather than once per
message: a "seen" line lost to a power loss costs a duplicate later, never a message. Rewriting a whole snapshot after every
message would write O(n^2) bytes on a first fetch of a large mailbox (and fsync each
time); one appended line is O(1). A line torn by a crash does not end in a newline or
does not parse, and only the last line can be torn: it is ignored, which forgets a
message that was saved (a duplicate later at worst), never one that was not.
Compaction folds the journal into a new snapshot that names a fresh journal
(generation numbers), so a crash at any point during it replays each line exactly once.

Before a message is written, a "pending" line names it together with a mark of the
output (fetch.py's sinks make it): if the run is killed after the message reached the
store but before its "seen" line, the next run finds the pending line and adopts the
orphan instead of saving the message twice. That line is written but not fsync'd: a
killed process loses nothing the kernel holds, and after a power loss the worst case
is again a duplicate. A message stays pending until its "seen" line, so several can be:
an output whose `add` leaves the end of a batch's saving to one `sync()` (a Maildir: its
commits, on threads, and one directory fsync per batch instead of one per message) has
its "seen" lines written only after that sync, a batch at a time, and a killed run
leaves that batch pending.

UIDVALIDITY (RFC 3501 §2.3.1.1): when it changes, every UID we knew is void. The old
records are kept as "stale" (Message-ID, size) pairs, counted as a multiset, and each
message of the new mailbox that matches one consumes it instead of being fetched again.
A message without a Message-ID cannot be matched and is fetched again: a possible
duplicate, never a loss. Stale pairs are dropped once a run has looked at the whole
mailbox.

The IMAP cursor (RFC 3501 UIDNEXT, RFC 7162 HIGHESTMODSEQ) lets `--new` skip listing a
whole folder: every message of the folder whose UID is below `uidnext` (under that
UIDVALIDITY) was handled by an earlier run, so a later run need only look from there on,
and not at all when the folder's UIDNEXT and HIGHESTMODSEQ are still those remembered.
It is one more snapshot key and journal line, which code that predates it ignores (and
drops, which costs only one full listing); a state without it is listed in full.
"""

import fcntl
import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Protocol

from mimekit.errors import CantCreateError, TempFailure
from mimekit.streams.files import OutputDirectory

VERSION = 1


@dataclass(frozen=True)
class Record:
    key: str | None            # where the output put the message
    message_id: str | None
    size: int | None


@dataclass(frozen=True)
class Cursor:
    """Where an IMAP folder's unhandled messages start (see the module docstring)."""
    validity: int
    uidnext: int
    modseq: int | None        # HIGHESTMODSEQ when it was taken; None without CONDSTORE


@dataclass(frozen=True)
class Pending:
    id: str
    mark: dict                 # what the output looked like just before the write


class BatchedOutput(Protocol):
    """An output whose saved messages are durable only once `sync()` has run, for which
    `record` may hold up to `sync_batch` "seen" lines (fetch.sinks.Sink)."""

    sync_batch: int

    def sync(self) -> None: ...


def _cursor(saved: dict | None) -> Cursor | None:
    """A saved cursor; keys a later version may add are ignored."""
    return Cursor(saved["validity"], saved["uidnext"], saved.get("modseq")) if saved else None


def state_directory(environ=None) -> str:
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "mimekit", "fetch")


def state_path(account: str, output: str, headers_only: bool, directory: str | None = None) -> str:
    """The snapshot path for one (account+folder, output, mode); readable name plus a hash."""
    identity = "\0".join([account, output, "headers" if headers_only else "messages"])
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9@._-]+", "_", account)[:80].strip("_")
    return os.path.join(directory or state_directory(), f"{slug}-{digest}.json")


class FetchState:
    """One state, locked for the life of the object (a second fetch on it is TempFailure)."""

    def __init__(self, path: str, description: str = ""):
        self.path = path
        self.description = description
        self.validity: int | None = None
        self._pending: dict[str, Pending] = {}     # by message id, in the order they were begun
        self._awaiting_output: list[dict] = []      # "seen" lines held until the output syncs
        self._output: BatchedOutput | None = None
        self._output_failed = False                 # its sync failed: its records must not be kept
        self.cursor: Cursor | None = None
        self._seen: dict[str, Record] = {}
        self._stale: Counter = Counter()
        self._generation = 0
        self._journal = None
        self._changed = False          # lines appended since the last snapshot was written
        directory = os.path.dirname(path) or "."
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self._lock = open(path + ".lock", "a")
        except OSError as exc:
            raise CantCreateError(f"{directory}: cannot keep fetch state: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise TempFailure(f"another mimekit fetch is using the same state ({path})") from None
        try:
            if self._load():
                self._journal = open(self._journal_path(self._generation), "ab")
            else:
                self._compact()
        except BaseException:
            self._lock.close()
            raise

    # ------------------------------------------------------------------ queries

    def __contains__(self, message_id: str) -> bool:
        return message_id in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def get(self, message_id: str) -> Record | None:
        return self._seen.get(message_id)

    def ids(self) -> set[str]:
        return set(self._seen)

    def keys(self) -> set[str]:
        """Output keys of every recorded message."""
        return {record.key for record in self._seen.values() if record.key}

    @property
    def pending(self) -> Pending | None:
        """The first message begun and not recorded, if any (all of them: `all_pending`)."""
        return next(iter(self._pending.values()), None)

    def all_pending(self) -> list[Pending]:
        """The messages begun and not recorded, in the order they were begun."""
        return list(self._pending.values())

    @property
    def stale_count(self) -> int:
        return sum(self._stale.values())

    # ------------------------------------------------------------------ changes

    def set_validity(self, validity: int) -> bool:
        """Record the mailbox's UIDVALIDITY; True when it changed and old UIDs became stale."""
        if validity == self.validity:
            return False
        changed = self.validity is not None
        self._append({"validity": validity}, sync=True)
        return changed

    def set_cursor(self, cursor: Cursor) -> None:
        """Remember where unhandled messages start; not fsync'd: if lost, the one before
        is used, which lists more, never less. Written after the records it sums up (those
        waiting for the output too): a cursor must never outlive them in a crash."""
        if cursor != self.cursor:
            self.write_waiting_records()
            self._append({"cursor": asdict(cursor)}, sync=False)

    def adopt_stale(self, message_id: str, header_id: str | None, size: int | None) -> bool:
        """If this message was saved under an old UIDVALIDITY, record it as seen (using up
        one stale pair) and return True; the caller then skips it."""
        if not header_id or self._stale.get((header_id, size), 0) <= 0:
            return False
        self.record(message_id, None, header_id=header_id, size=size, from_stale=True)
        return True

    def begin(self, message_id: str, mark: dict) -> None:
        """Say which message is about to be written, and how the output looked before."""
        self._append({"pending": message_id, "mark": mark}, sync=False)

    def record(self, message_id: str, key: str | None, *, header_id: str | None = None,
               size: int | None = None, from_stale: bool = False, output: BatchedOutput | None = None) -> None:
        """The message is in the output: remember it (made durable by `sync`). Given an
        `output` with a sync_batch, the message is durable there only once output.sync()
        has run, so its "seen" line waits for that (it stays pending on disk meanwhile,
        known as saved to this object at once): the output is synced and the waiting
        lines written when sync_batch of them wait, and before any `sync`, compaction or
        close."""
        entry = {"seen": message_id, "key": key, "message_id": header_id, "size": size, "stale": from_stale}
        if output is None or not output.sync_batch:
            self._append(entry, sync=False)
            return
        self._output = output
        self._awaiting_output.append(entry)   # first: an interrupt before _apply leaves it waiting, not
        self._apply(entry)                    # known as saved with nothing left to sync (close compacts)
        if len(self._awaiting_output) >= output.sync_batch:
            self.write_waiting_records()

    def sync(self) -> None:
        """Make every recorded message's output, then its line, durable: called before
        anything is deleted upstream."""
        self.write_waiting_records()
        os.fsync(self._journal.fileno())

    def abandon_pending(self) -> None:
        """Forget every pending message (those adopted are recorded first, and those
        waiting for the output are written, so that none is forgotten unrecorded)."""
        self.write_waiting_records()
        self._append({"pending": None}, sync=True)

    def retain(self, present: set[str]) -> None:
        """Forget messages no longer at the source (POP3: UIDLs are never reused)."""
        gone = set(self._seen) - present
        if gone:
            for message_id in gone:
                del self._seen[message_id]
            self._compact()

    def drop_stale(self) -> None:
        if self._stale:
            self._stale.clear()
            self._compact()

    def close(self) -> None:
        """Fold the journal into the snapshot, unless the output failed to sync: its
        messages are then left pending in the journal, for the next run to adopt."""
        if self._journal is None:
            return
        try:
            if (self._changed or self._awaiting_output) and not self._output_failed:
                self._compact()
        finally:
            self._journal.close()
            self._journal = None
            self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ----------------------------------------------------------------- storage

    def _journal_path(self, generation: int) -> str:
        return f"{self.path[:-len('.json')] if self.path.endswith('.json') else self.path}.{generation}.journal"

    def _apply(self, entry: dict) -> None:
        if "validity" in entry:
            if self.validity is not None and entry["validity"] != self.validity:
                for record in self._seen.values():
                    self._stale[(record.message_id, record.size)] += 1
                self._seen.clear()
            self.validity = entry["validity"]
        elif "cursor" in entry:
            self.cursor = _cursor(entry["cursor"])
        elif "pending" in entry:
            if entry["pending"]:
                self._pending[entry["pending"]] = Pending(entry["pending"], entry.get("mark") or {})
            else:
                self._pending.clear()
        elif "seen" in entry:
            record = Record(entry.get("key"), entry.get("message_id"), entry.get("size"))
            self._seen[entry["seen"]] = record
            if entry.get("stale"):
                pair = (record.message_id, record.size)
                self._stale[pair] -= 1
                if self._stale[pair] <= 0:
                    del self._stale[pair]
            self._pending.pop(entry["seen"], None)

    def _append(self, entry: dict, sync: bool) -> None:
        self._apply(entry)
        self._write(entry, sync)

    def _write(self, entry: dict, sync: bool = False) -> None:
        self._changed = True
        self._journal.write(json.dumps(entry, ensure_ascii=False).encode("utf-8") + b"\n")
        self._journal.flush()
        if sync:
            os.fsync(self._journal.fileno())

    def write_waiting_records(self) -> None:
        """Sync the output, then write the "seen" lines that waited for it (record): at the
        end of a fetch pass, and whenever sync_batch of them wait."""
        if not self._awaiting_output:
            return
        try:
            self._output.sync()
        except BaseException:
            self._output_failed = True
            raise
        entries, self._awaiting_output = self._awaiting_output, []
        for entry in entries:
            self._write(entry)

    def _load(self) -> bool:
        """Read the snapshot and replay its journal. True when that journal is empty: the
        snapshot says everything, so the journal is appended to as it is, and a run that
        changes nothing writes nothing (for --new on a large folder with no new mail, two
        rewrites of the snapshot were most of the run's time)."""
        try:
            with open(self.path, "rb") as snapshot:
                data = json.load(snapshot)
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            raise CantCreateError(f"{self.path}: unreadable fetch state ({exc}); "
                                  "move it away to start afresh") from exc
        if data.get("version") != VERSION:
            raise CantCreateError(f"{self.path}: fetch state version {data.get('version')!r} is not {VERSION}")
        self.validity = data.get("validity")
        self._seen = {k: Record(*v) for k, v in data.get("seen", {}).items()}
        self._stale = Counter({(mid, size): count for mid, size, count in data.get("stale", [])})
        pending = data.get("pending") or []
        for item in [pending] if isinstance(pending, dict) else pending:   # one, as earlier versions kept it
            self._pending[item["id"]] = Pending(item["id"], item["mark"])
        self._generation = data.get("generation", 0)
        self.cursor = _cursor(data.get("cursor"))
        try:
            with open(self._journal_path(self._generation), "rb") as journal:
                lines = journal.read().split(b"\n")
        except FileNotFoundError:
            return False
        for line in lines[:-1]:          # the part after the last newline is torn or empty
            try:
                entry = json.loads(line)
            except ValueError:
                break                     # torn: nothing after it was ever acknowledged
            self._apply(entry)
        return lines == [b""]

    def _compact(self) -> None:
        """Write a snapshot naming a fresh journal, then drop the old journal."""
        self.write_waiting_records()       # the snapshot keeps only what is durable in the output
        old_generation = self._generation
        self._generation += 1
        snapshot = {
            "version": VERSION,
            "description": self.description,
            "generation": self._generation,
            "validity": self.validity,
            "seen": {k: [r.key, r.message_id, r.size] for k, r in self._seen.items()},
            "stale": [[mid, size, count] for (mid, size), count in self._stale.items() if count > 0],
            "pending": [{"id": p.id, "mark": p.mark} for p in self._pending.values()] or None,
            "cursor": asdict(self.cursor) if self.cursor else None,
        }
        new_journal = open(self._journal_path(self._generation), "wb")
        try:
            with OutputDirectory(os.path.dirname(self.path) or ".") as directory, \
                    directory.new_file(os.path.basename(self.path), replace=True) as output:
                output.stream.write(json.dumps(snapshot, ensure_ascii=False).encode("utf-8"))
        except BaseException:
            new_journal.close()
            raise
        if self._journal is not None:
            self._journal.close()
        self._journal = new_journal
        self._changed = False
        try:
            os.unlink(self._journal_path(old_generation))
        except FileNotFoundError:
            pass
