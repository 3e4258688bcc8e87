"""The queue on disk: one message file and one state file per entry, locked while in use.

Layout of a queue directory (default $XDG_STATE_HOME/mimekit/queue):

    queue/ID.eml    the message as it will be transmitted (Bcc already removed)
    queue/ID.json   its envelope, where it goes, and each recipient's delivery state
    failed/ID.*     entries every recipient of which was delivered or refused for good,
                    at least one refused: the reasons are in the JSON

Both files are written through mimekit.streams.files.OutputDirectory: under a temporary
name in the same directory (Maildir's tmp/ role), fsync'd, renamed, directory fsync'd. The
message is published first, the state second, and an entry exists once its state does: a
message file without a state file is what a spooler killed in between, or a delivery
killed while removing a finished entry, left behind (removed by `recover`). An entry
moves to failed/ message first, so a state file whose message has moved is finished by
`recover` too.

Locking: fcntl.flock on the message file, held by whoever spools, delivers or changes the
entry, and released by the kernel when that process dies. The spooler takes it on the
temporary file before the name exists, so no runner can see an entry its spooler still
holds. Whoever gets the lock reads the state again: the previous holder may have changed
or finished it.

Everything a later run needs is in the state file except the password, which is looked up
at delivery time from the usual sources.
"""

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass

from mimekit.errors import CantCreateError, DataError, IOFailure, NoInputError, TempFailure
from mimekit.fetch.state import state_directory
from mimekit.streams.files import OutputDirectory, read_chunks
from mimekit.transport.smtp.client import OutgoingMessage
from mimekit.transport.smtp.data import MessageScan
from mimekit.transport.urls import DIRECT, ServerURL, parse_url

ENTRY_SCHEMA = "mimekit.queue-entry/1"
PENDING, DONE, FAILED = "pending", "done", "failed"
MESSAGE_SUFFIX, STATE_SUFFIX = ".eml", ".json"
QUEUE_SCHEMES = {"smtp", "smtps", "smtp+plain", DIRECT}   # a relay, or each recipient domain's exchangers (mx:)


def default_queue_directory(environ=None) -> str:
    """$XDG_STATE_HOME/mimekit/queue (default ~/.local/state/mimekit/queue), beside fetch's state."""
    return os.path.join(os.path.dirname(state_directory(environ)), "queue")


def server_text(url: ServerURL) -> str:
    """The URL an entry keeps: scheme, host and port (mx: with its TLS policy); the user is kept apart."""
    if url.scheme == DIRECT:
        return f"{DIRECT}:{url.tls_policy}"
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{url.port}"


@dataclass
class RecipientState:
    address: str
    state: str = PENDING
    attempts: int = 0
    next_attempt: float = 0.0          # when a pending recipient is due (epoch seconds)
    last_reply: dict | None = None     # {"code", "enhanced", "text"} of the last attempt
    updated: float | None = None
    server_queue_id: str | None = None  # what the server called the message it accepted
    transfer: dict | None = None       # mx: entries: {exchanger, address, policy, result} of the last session

    @property
    def reply_text(self) -> str:
        """The last reply on one line: code, enhanced code, text ("" before the first try)."""
        reply = self.last_reply or {}
        return " ".join(str(part) for part in (reply.get("code"), reply.get("enhanced"), reply.get("text")) if part)


@dataclass
class Entry:
    id: str
    created: float
    server: str
    user: str | None
    sender: str
    source: str
    scan: MessageScan
    recipients: list[RecipientState]
    cafile: str | None = None
    timeout: float = 60.0
    allow_insecure: bool = False
    account: str | None = None         # the config file's account it was queued for
    password_command: str | None = None   # the commands given when it was queued (never their output):
    token_command: str | None = None      # a later run looks the password or token up with them
    held: bool = False
    failed: bool = False               # in failed/

    @property
    def url(self) -> ServerURL:
        return parse_url(self.server, QUEUE_SCHEMES)

    @property
    def pending(self) -> list[RecipientState]:
        return [r for r in self.recipients if r.state == PENDING]

    def due(self, now: float) -> list[RecipientState]:
        return [r for r in self.pending if r.next_attempt <= now]

    @property
    def next_attempt(self) -> float | None:
        return min((r.next_attempt for r in self.pending), default=None)

    def to_json(self) -> dict:
        document = {"schema": ENTRY_SCHEMA, **asdict(self)}
        del document["failed"]   # where the file is says that
        return document

    @classmethod
    def from_json(cls, document: dict, failed: bool = False) -> "Entry":
        if document.get("schema") != ENTRY_SCHEMA:
            raise DataError(f"queue entry {document.get('id')!r}: unknown schema {document.get('schema')!r}")
        fields = {key: value for key, value in document.items() if key != "schema"}
        fields["scan"] = MessageScan(**fields["scan"])
        fields["recipients"] = [RecipientState(**r) for r in fields["recipients"]]
        return cls(**fields, failed=failed)


class Queue:
    """A queue directory, created if needed. Use as a context manager, or close()."""

    def __init__(self, path: str):
        self.path = path
        self.active_path = os.path.join(path, "queue")
        self.failed_path = os.path.join(path, "failed")
        try:
            for directory in (self.active_path, self.failed_path):
                os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise CantCreateError(f"{path}: cannot create the queue: {exc.strerror or exc}") from exc
        self._active = OutputDirectory(self.active_path)
        self._failed = OutputDirectory(self.failed_path)

    def close(self) -> None:
        self._active.close()
        self._failed.close()

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # reading -------------------------------------------------------------------------------

    def ids(self, failed: bool = False) -> list[str]:
        """Entries (their state files), oldest first: ids begin with their creation time."""
        directory = self.failed_path if failed else self.active_path
        return sorted(name[:-len(STATE_SUFFIX)] for name in os.listdir(directory)
                      if name.endswith(STATE_SUFFIX) and not name.startswith("."))

    def read(self, entry_id: str, failed: bool = False) -> Entry:
        """An entry's state as it is now (unlocked: for listing and planning)."""
        path = self._file(entry_id, STATE_SUFFIX, failed)
        try:
            with open(path, "rb") as stream:
                return Entry.from_json(json.load(stream), failed=failed)
        except FileNotFoundError:
            raise NoInputError(f"{self.path}: no queue entry {entry_id!r}") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise DataError(f"{path}: not a queue entry: {exc}") from exc

    def find(self, entry_id: str) -> Entry:
        """The entry `entry_id`, queued or failed."""
        try:
            return self.read(entry_id)
        except NoInputError:
            return self.read(entry_id, failed=True)

    def message_size(self, entry: Entry) -> int:
        return os.stat(self._file(entry.id, MESSAGE_SUFFIX, entry.failed)).st_size

    def _file(self, entry_id: str, suffix: str, failed: bool = False) -> str:
        if not entry_id or "/" in entry_id or entry_id.startswith("."):
            raise NoInputError(f"{entry_id!r}: not a queue entry id")
        return os.path.join(self.failed_path if failed else self.active_path, entry_id + suffix)

    # writing -------------------------------------------------------------------------------

    def spool(self, message: OutgoingMessage, server: ServerURL, *, user: str | None = None,
              cafile: str | None = None, timeout: float = 60.0, allow_insecure: bool = False,
              account: str | None = None, password_command: str | None = None, token_command: str | None = None,
              now: float | None = None) -> Entry:
        """Write `message` durably into the queue and return its entry. Once this returns,
        the message is safe. `account` names the config file's account whose password
        look-up later runs use; `password_command` or `token_command`, the commands the sender
        gave (a later run, maybe from cron, runs them; they are no secret, what they print is)."""
        if server.scheme not in QUEUE_SCHEMES:
            raise DataError(f"{server.scheme}: a queue delivers to smtp://, smtps://, smtp+plain:// or mx: only")
        if message.refused:
            raise message.refused
        if not message.recipients:
            raise DataError(f"{message.source}: no recipient")
        now = time.time() if now is None else now
        login = None if server.scheme == DIRECT else user or server.user   # exchangers take no login
        entry = Entry(id=_new_id(now), created=now, server=server_text(server), user=login,
                      sender=message.sender, source=message.source, scan=message.scan,
                      recipients=[RecipientState(address, next_attempt=now) for address in message.recipients],
                      cafile=cafile, timeout=timeout, allow_insecure=allow_insecure, account=account,
                      password_command=password_command, token_command=token_command)
        name = entry.id + MESSAGE_SUFFIX
        lock_fd = -1
        try:
            with self._active.new_file(name) as output:
                lock_fd = os.dup(output.stream.fileno())   # the lock outlives the writer's descriptor
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                for chunk in message.chunks():
                    output.stream.write(chunk)
            if output.written_name != name:
                raise CantCreateError(f"{self.active_path}: {name} was taken")
            with LockedEntry(self, entry, lock_fd) as locked:
                locked.save()
            return entry
        except OSError as exc:
            if lock_fd >= 0:
                os.close(lock_fd)
            raise IOFailure(f"{self.active_path}: cannot queue {message.source}: {exc.strerror or exc}") from exc
        except BaseException:
            if lock_fd >= 0:
                os.close(lock_fd)
            raise

    def lock(self, entry_id: str, failed: bool = False) -> "LockedEntry | None":
        """The entry, locked and read afresh; None when another process holds it or it
        is gone (finished meanwhile)."""
        fd = self._lock_message(entry_id, failed)
        if fd is None:
            return None
        try:
            entry = self.read(entry_id, failed)
        except NoInputError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return LockedEntry(self, entry, fd)

    def _lock_message(self, entry_id: str, failed: bool = False) -> int | None:
        """A descriptor holding the lock of the entry's message file; None when another
        process holds it, or the file is gone."""
        path = self._file(entry_id, MESSAGE_SUFFIX, failed)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except (BlockingIOError, FileNotFoundError):
            pass   # held elsewhere, or finished and gone since it was opened
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return None

    def lock_or_fail(self, entry_id: str) -> "LockedEntry":
        """The entry `entry_id`, queued or failed, locked; TempFailure when it is in use."""
        failed = entry_id not in self.ids() and entry_id in self.ids(failed=True)
        locked = self.lock(entry_id, failed)
        if locked is None:
            self.find(entry_id)   # NoInputError when there is no such entry
            raise TempFailure(f"queue entry {entry_id} is being delivered or changed; try again")
        return locked

    def recover(self) -> None:
        """Finish what killed processes left: a message without state (a spool or a removal
        cut short) is removed once nobody holds it; a state whose message already moved to
        failed/ follows it; a state left in failed/ by a requeue cut short is removed."""
        self._recover_requeues()
        names = set(os.listdir(self.active_path))
        for name in names:
            entry_id, suffix = os.path.splitext(name)
            if name.startswith(".") or entry_id + STATE_SUFFIX in names and entry_id + MESSAGE_SUFFIX in names:
                continue
            moved = suffix == STATE_SUFFIX
            if suffix not in (MESSAGE_SUFFIX, STATE_SUFFIX) or moved and not os.path.exists(
                    self._file(entry_id, MESSAGE_SUFFIX, failed=True)):
                continue
            fd = self._lock_message(entry_id, failed=moved)
            if fd is None:
                continue
            with LockedEntry(self, _placeholder(entry_id), fd) as locked:
                if not moved and not os.path.exists(self._file(entry_id, STATE_SUFFIX)):
                    locked.remove()   # nobody holds it, so its spooler is gone
                elif moved and os.path.exists(self._file(entry_id, STATE_SUFFIX)):
                    locked.entry = self.read(entry_id)
                    locked.entry.failed = True
                    locked._move_state_to_failed()


    def _recover_requeues(self) -> None:
        """failed/ID.json whose message is back in queue/ with its state: what `requeue`
        leaves when killed after moving the message (nothing else puts a state in failed/
        without its message there first)."""
        for entry_id in self.ids(failed=True):
            if os.path.exists(self._file(entry_id, MESSAGE_SUFFIX, failed=True)) or \
                    not os.path.exists(self._file(entry_id, STATE_SUFFIX)):
                continue
            fd = self._lock_message(entry_id)
            if fd is not None:
                with LockedEntry(self, _placeholder(entry_id), fd):   # looked again: the requeue may have ended
                    if os.path.exists(self._file(entry_id, STATE_SUFFIX)) and \
                            os.path.exists(self._file(entry_id, STATE_SUFFIX, failed=True)):
                        os.unlink(self._file(entry_id, STATE_SUFFIX, failed=True))
                        self._failed.sync()


def _placeholder(entry_id: str) -> Entry:
    """An entry known by its id only: what recover needs to remove or move its files."""
    return Entry(entry_id, 0, "", None, "", "", MessageScan(), [])


def _new_id(now: float) -> str:
    """Sortable by creation time, unique without coordination."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"-{os.urandom(5).hex()}"


class LockedEntry:
    """An entry whose lock this process holds: read its message, record its state."""

    def __init__(self, queue: Queue, entry: Entry, lock_fd: int):
        self.queue, self.entry, self._lock_fd = queue, entry, lock_fd

    def chunks(self):
        """The message's bytes (for OutgoingMessage.chunks: may be called more than once)."""
        with open(self.queue._file(self.entry.id, MESSAGE_SUFFIX, self.entry.failed), "rb") as stream:
            yield from read_chunks(stream)

    def outgoing(self, recipients: list[str]) -> OutgoingMessage:
        return OutgoingMessage(self.entry.id, self.entry.sender, tuple(recipients), self.entry.scan, self.chunks)

    def save(self) -> None:
        """Record the state durably: written, fsync'd, renamed, directory fsync'd."""
        directory = self.queue._failed if self.entry.failed else self.queue._active
        with directory.new_file(self.entry.id + STATE_SUFFIX, replace=True) as output:
            output.stream.write(json.dumps(self.entry.to_json(), ensure_ascii=False, indent=1).encode())
        directory.sync()

    def settle(self) -> str:
        """Record the state where it now belongs, and say which: "done" (every recipient
        delivered: the entry is removed), "failed" (moved to failed/), "queued"."""
        if self.entry.pending:
            self.save()
            return "queued"
        if all(r.state == DONE for r in self.entry.recipients):
            self.remove()
            return "done"
        self.move_to_failed()
        return "failed"

    def remove(self) -> None:
        """State first: an entry without state is no entry, and `recover` removes its message."""
        failed = self.entry.failed
        for suffix in (STATE_SUFFIX, MESSAGE_SUFFIX):
            try:
                os.unlink(self.queue._file(self.entry.id, suffix, failed))
            except FileNotFoundError:
                pass
        (self.queue._failed if failed else self.queue._active).sync()

    def move_to_failed(self) -> None:
        """Message first, then the state (see `Queue.recover` for a move cut short)."""
        self.save()   # what a recovering run moves if this one is cut short
        os.rename(self.queue._file(self.entry.id, MESSAGE_SUFFIX),
                  self.queue._file(self.entry.id, MESSAGE_SUFFIX, failed=True))
        self.entry.failed = True
        self._move_state_to_failed()

    def requeue(self, now: float) -> None:
        """Put a failed entry back in the queue, its failed recipients pending and due now,
        its age starting over (else the maximum age would fail it again at once). The new
        state goes first (killed here, `recover` takes it for a move to failed/ cut short and
        moves it back: the entry stays failed, to be retried again), then the message, then
        the old state is removed (killed before, `recover` removes it)."""
        for recipient in self.entry.recipients:
            if recipient.state == FAILED:
                recipient.state, recipient.attempts, recipient.next_attempt = PENDING, 0, now
        self.entry.created, self.entry.failed = now, False
        self.save()
        os.rename(self.queue._file(self.entry.id, MESSAGE_SUFFIX, failed=True),
                  self.queue._file(self.entry.id, MESSAGE_SUFFIX))
        self.queue._active.sync()
        os.unlink(self.queue._file(self.entry.id, STATE_SUFFIX, failed=True))
        self.queue._failed.sync()

    def _move_state_to_failed(self) -> None:
        self.save()
        os.unlink(self.queue._file(self.entry.id, STATE_SUFFIX))
        self.queue._active.sync()

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "LockedEntry":
        return self

    def __exit__(self, *exc_info) -> None:
        self.unlock()
