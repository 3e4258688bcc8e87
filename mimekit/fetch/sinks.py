"""Where fetched messages go (-o): a Maildir, an mbox, a directory of .eml files, or
standard output (one message, or many as one mbox stream). Each sink has saved a message
durably when `add` returns, or, for a sink with a `sync_batch` (a Maildir), once its
`sync()` has run; that is what lets fetch record it and then delete it on the server (the
contract in fetch.run); `mark` and `orphans` find again the messages a killed run saved
but did not record.
"""

import collections
import functools
import io
import itertools
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import BinaryIO, Iterable, Iterator

from mimekit.errors import CantCreateError, UsageError
from mimekit.fetch.message import HEADER_LIMIT, ListedMessage, field_value, read_headers
from mimekit.streams.files import OutputDirectory
from mimekit.streams.filters import chain
from mimekit.limits import parse_decimal
from mimekit.streams.line_endings import LineEndingNormaliser
from mimekit.read.safe_names import sanitize_filename
from mimekit.stores import Maildir, Mbox, open_mailbox
from mimekit.stores.common import as_stored
from mimekit.stores.maildir import MaildirDelivery
from mimekit.stores.mbox import mbox_entry

# RFC 3501 system flags (and the $Forwarded keyword of RFC 5788's registry, Maildir's
# "passed") -> Maildir info letters (https://cr.yp.to/proto/maildir.html)
MAILDIR_FLAGS = {"\\SEEN": "S", "\\ANSWERED": "R", "\\FLAGGED": "F", "\\DRAFT": "D", "\\DELETED": "T",
                 "$FORWARDED": "P"}
IMAP_FLAGS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "D": "\\Draft", "T": "\\Deleted",
              "P": "$Forwarded"}


@functools.lru_cache(maxsize=256)
def maildir_flags(flags: tuple[str, ...]) -> str:
    return "".join(sorted({MAILDIR_FLAGS[f.upper()] for f in flags if f.upper() in MAILDIR_FLAGS}))


_HEADER_WORD = re.compile(r"[!-~]+")   # printable ASCII, no space: a keyword a header line carries as is


@functools.lru_cache(maxsize=256)
def keywords_of(flags: tuple[str, ...]) -> tuple[str, ...]:
    """The IMAP keywords among `flags` ($Junk, $Forwarded...: every flag but the \\ system
    ones), for the outputs that can keep them (an mbox's X-Keywords)."""
    return tuple(f for f in flags if not f.startswith("\\") and _HEADER_WORD.fullmatch(f))


def imap_flags(letters: str) -> tuple[str, ...]:
    """Maildir info letters as the IMAP flag names a source reports (maildir_flags' inverse)."""
    return tuple(IMAP_FLAGS[letter] for letter in letters if letter in IMAP_FLAGS)


class Sink:
    """Where fetched messages go. `mark()` and `orphans()` let the messages a killed run
    saved but did not record be found again, and `open()` and `as_stored()` let each be
    compared, byte for byte, with the message at the source (see fetch._adopt_orphan)."""

    durable = True
    identity = ""
    # How many messages `add` may leave for one `sync()` to make durable (FetchState.record
    # holds their "seen" lines until then); 0: each `add` makes its message durable.
    sync_batch = 0
    # The paths `add` returned for messages it then failed to save (a Maildir's commit on a
    # thread of its own): a report of what was fetched leaves them out.
    unsaved: frozenset[str] = frozenset()

    def add(self, message: ListedMessage, chunks: Iterable[bytes], flags: str,
            keywords: tuple[str, ...] = ()) -> tuple[str, str]:
        """Save one message with `flags` (Maildir letters) and, where the output has a place
        for them, `keywords` (keywords_of); return (key for the state, path for the report)."""
        raise NotImplementedError

    def sync(self) -> None:
        """Make durable every message `add` saved so far, and any a killed run saved into
        this output before it could do so (sync_batch)."""

    def mark(self) -> dict:
        return {}

    def orphans(self, mark: dict, recorded: set[str]) -> list[str]:
        return []

    def open(self, key: str) -> BinaryIO:
        """The message saved under `key`, as stored (with a sync_batch: once sync() has run)."""
        raise NotImplementedError

    def reference(self, key: str) -> str:
        """The message saved under `key` as the reading commands take it (what `add`
        returned for it): a file's path, or MBOX:OFFSET."""
        raise NotImplementedError

    def as_stored(self, chunks: Iterable[bytes]) -> Iterable[bytes]:
        """`chunks` as `add` would store them (what `open` gives back)."""
        return chunks


def open_sink(spec: str) -> Sink:
    """An output: "maildir:PATH", "mbox:PATH" or a directory of .eml files (a stream is
    StdoutSink, which the caller makes)."""
    if spec.split(":", 1)[0].lower() in ("maildir", "mbox"):
        store = open_mailbox(spec)
        return MaildirSink(store) if isinstance(store, Maildir) else MboxSink(store)
    return DirectorySink(spec)


class MaildirSink(Sink):
    """Each message's bytes are fsync'd before it gets its name in new/ or cur/, but the
    names are made durable by one fsync of those two directories per batch (`sync`), not
    one per message: 1.04 fsyncs a message instead of 2.00 (1,000 messages, the state's
    journal included).

    Writing a message takes the journal's time as well as the disk's: creating its file in
    tmp/ waits while the file system commits another's fsync. So a message of at most
    HELD_MESSAGE bytes is held in memory and written, fsync'd and renamed on one of
    COMMITTERS threads while the next is fetched, at most MAX_COMMITTING at a time; the
    file system then commits several fsyncs in one journal write. A larger message is
    written here, and only its fsync and rename go to a thread. Each message still shows
    in new/ as soon as its own fsync is done; `sync` waits for every commit. A failed one
    is raised by the next `add` or `sync`, and by every one after: the messages of that
    batch are then left pending, for the next run to adopt. bench/bench_fetch.py, 1,000
    messages: 1.21-1.23x the rate of one commit at a time, 1.38-1.52x the rate before
    (file created and fsync'd here) when the disk was slower."""

    sync_batch = 64
    COMMITTERS = 8
    MAX_COMMITTING = 16
    HELD_MESSAGE = 256 * 1024     # so at most 4 MiB held

    def __init__(self, store: Maildir):
        self.store = store
        self.identity = "maildir:" + os.path.realpath(store.path)
        self._unsynced = {"new", "cur"}     # a killed run may have left names in either
        self._committing: collections.deque[tuple[str, Future]] = collections.deque()   # (path, commit)
        self._committers: ThreadPoolExecutor | None = None   # started by the first add
        self._failure: BaseException | None = None

    def add(self, message, chunks, flags, keywords=()):
        self._wait_for_commits(leaving=self.MAX_COMMITTING - 1)
        name = self.store.new_name()
        path = self.store.final_path(name, flags)
        held: list[bytes] = []
        size, delivery = 0, None
        chunks = iter(chunks)
        for data in chunks:
            held.append(data)
            size += len(data)
            if size > self.HELD_MESSAGE:
                delivery = self.store.begin(flags, name=name)
                break
        if delivery is None:
            job = functools.partial(self.store.add, held, flags, sync_directory=False, name=name)
        else:
            try:
                for data in itertools.chain(held, chunks):
                    delivery.write(data)
                delivery.finish()
            except BaseException:
                delivery.abort()
                raise
            job = functools.partial(_commit_and_close, delivery)
        if self._committers is None:
            self._committers = ThreadPoolExecutor(self.COMMITTERS, thread_name_prefix="maildir-commit")
        # Once handed over, the delivery is the committer's: an interrupt inside submit()
        # may come after it was queued. Left unsubmitted, its tmp file goes when the next
        # writer opens this Maildir after the process is gone.
        self._committing.append((path, self._committers.submit(job)))
        self._unsynced.add(os.path.basename(os.path.dirname(path)))
        return name, path

    def _wait_for_commits(self, leaving: int = 0) -> None:
        """Wait until at most `leaving` commits are queued. A commit that failed is raised
        once every other one begun has ended (none is still renaming while the error is
        told), and stays: every later add and sync raises it again, since `add` has
        returned for the failed message and the fetch state holds its record until a sync
        that must not then succeed (FetchState.write_waiting_records keeps none of them).
        A commit leaves the queue only once it has succeeded, so an interrupt (Ctrl-C)
        while waiting loses none: the next sync waits for it again."""
        if self._failure is not None:
            wait([commit for _, commit in self._committing])   # those an interrupt left running
            raise self._failure
        while len(self._committing) > leaving:
            _, commit = self._committing[0]
            try:
                commit.result()
            except BaseException:
                if not commit.done() or commit.exception() is None:
                    raise                     # interrupted while waiting: not the commit's failure
                self._failure = commit.exception()   # its own error: what result() raised may be
                                                     # an interrupt that landed as it failed
                wait([later for _, later in self._committing])
                raise self._failure from None
            self._committing.popleft()

    @property
    def unsaved(self) -> frozenset[str]:
        """The paths `add` returned for messages whose commit then failed, once every
        commit queued has ended (a commit still running may yet fail)."""
        wait([commit for _, commit in self._committing])
        return frozenset(path for path, commit in self._committing if commit.done() and commit.exception() is not None)

    def reference(self, key):
        return self.store.message_path(key)

    def sync(self):
        """Wait for every message's commit, then fsync the directories named into since the
        last sync: one, not both, a message under fetch --exec, which syncs each message."""
        self._wait_for_commits()
        self.store.sync_directories(sorted(self._unsynced))
        self._unsynced = set()

    def mark(self):
        # Maildir unique names start "<seconds>." and carry "P<pid>Q" (stores.Maildir).
        return {"pid": os.getpid(), "time": int(time.time())}

    def orphans(self, mark, recorded):
        tag = f"P{mark.get('pid')}Q"
        found = []
        for key in self.store.keys():
            seconds = parse_decimal(key.split(".", 1)[0])
            if key not in recorded and tag in key and seconds is not None and seconds >= mark.get("time", 0):
                found.append(key)
        return found

    def open(self, key):
        return self.store.open(key)

    def as_stored(self, chunks):
        return as_stored(chunks)


def _commit_and_close(delivery: MaildirDelivery) -> None:
    """A MaildirSink committer's job: fsync, rename, close (the file of a failed commit is
    already removed)."""
    try:
        delivery.commit(sync_directory=False)
    finally:
        delivery.close()


_HEADER_END = re.compile(rb"(?:\A|\n)\r?\n")
_BLANK_LINE = re.compile(rb"\n\r?\n")
# The fields in which an mbox keeps a message's flags (mutt, UW-IMAP, Dovecot), with
# their continuation lines; group 1 is there for X-Keywords, group 2 is the value
MBOX_FLAG_FIELD = re.compile(rb"^(?:(?:X-)?Status|(X-Keywords)):([^\n]*\n(?:[ \t][^\n]*\n)*)", re.I | re.M)


def _for_mbox(chunks: Iterable[bytes], keywords: tuple[str, ...]) -> tuple[str, Iterator[bytes]]:
    """The sender of a message's mbox "From " line, and the message as an mbox output keeps
    it. The sender is the address of its Return-Path (the envelope sender a delivery agent
    writes there), or "" (MAILER-DAEMON) when it has none, a null one, or one that is not a
    single printable word. The message loses the Status and X-Status fields it carried,
    since the output writes them from the flags (two of each would leave readers to pick
    one), and carries one X-Keywords field first, as Dovecot's mbox keeps keywords (and
    NeoMutt reads them as tags): `keywords`, after those of any X-Keywords field it had
    (kept: a local mbox source's keywords are in no flag). Only the header block is held
    (at most HEADER_LIMIT bytes), since all of this is in it."""
    chunks = iter(chunks)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= HEADER_LIMIT or _HEADER_END.search(head, max(len(head) - len(chunk) - 2, 0)):
            break
    end = _BLANK_LINE.search(b"\n" + head)      # the "\n" finds a header block that is empty
    header, rest = (head[:end.start()], head[end.start():]) if end else (head, b"")
    value = field_value(read_headers(io.BytesIO(head)), "Return-Path") or ""
    address = value[1:-1] if value.startswith("<") and value.endswith(">") else value
    if not address.isprintable() or len(address.split()) != 1 or "\ufffd" in address:
        address = ""
    carried: list[bytes] = []

    def drop(field: re.Match) -> bytes:
        if field[1]:                      # X-Keywords
            carried.extend(field[2].split())
        return b""

    header = MBOX_FLAG_FIELD.sub(drop, header)
    words = list(dict.fromkeys(carried + [k.encode("ascii") for k in keywords]))
    keywords_field = [b"X-Keywords: " + b" ".join(words) + b"\n"] if words else []
    return address, itertools.chain(keywords_field, [header, rest], chunks)


class MboxSink(Sink):
    def __init__(self, store: Mbox):
        self.store = store
        self.identity = "mbox:" + os.path.realpath(store.path)
        store.recover()       # a killed run's unfinished append is cut off before anything looks

    def add(self, message, chunks, flags, keywords=()):
        sender, chunks = _for_mbox(chunks, keywords)
        key = self.store.add(chunks, sender=sender, flags=flags)
        return key, self.reference(key)

    def reference(self, key):
        return f"{self.store.path}:{key}"

    def mark(self):
        return {"size": os.path.getsize(self.store.path)}

    def orphans(self, mark, recorded):
        return [k for k in self.store.keys() if int(k) >= mark.get("size", 0) and k not in recorded]

    def open(self, key):
        return self.store.open(key)

    def as_stored(self, chunks):
        return as_stored(chunks)


class DirectorySink(Sink):
    """One .eml file per message, bytes as received, written through the one temporary
    file path of mimekit.streams.files: fsync'd, then given a name that was free ("5-1.eml")."""

    def __init__(self, path: str):
        self.path = path
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise CantCreateError(f"{path}: {exc.strerror or exc}") from exc
        if not os.path.isdir(path):
            raise CantCreateError(f"{path}: not a directory")
        self.identity = "dir:" + os.path.realpath(path)
        self._directory = OutputDirectory(path)   # held for the run: opened (and cleaned) once

    @staticmethod
    def _name(message: ListedMessage) -> str:
        name, _ = sanitize_filename(f"{message.id}.eml")
        return name

    def add(self, message, chunks, flags, keywords=()):
        with self._directory.new_file(self._name(message)) as output:
            for chunk in chunks:
                output.stream.write(chunk)
        self._directory.sync()         # durable under its name before fetch records it
        return output.written_name, self.reference(output.written_name)

    def reference(self, key):
        return os.path.join(self.path, key)

    def mark(self):
        return {"time": time.time()}

    def orphans(self, mark, recorded):
        found = []
        for entry in os.scandir(self.path):
            if (entry.name.endswith(".eml") and entry.name not in recorded
                    and entry.stat(follow_symlinks=False).st_ctime >= mark.get("time", 0) - 1):
                found.append(entry.name)
        return found

    def open(self, key):
        return open(self.reference(key), "rb")


class StdoutSink(Sink):
    """One message to standard output, for `| mimekit decode -`, in its network form: CRLF
    line endings, as IMAP and POP3 deliver it; a message from a local store (kept with LF,
    as Postfix and Dovecot store mail) is converted, so every reader sees RFC 5322 lines."""

    durable = False
    identity = "stdout"

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.count = 0

    def add(self, message, chunks, flags, keywords=()):
        if self.count:
            raise UsageError("standard output takes one message: set limit=1, or write many into mbox:PATH")
        self.count += 1
        for data in chain(chunks, LineEndingNormaliser(b"\r\n", lone_cr_is_break=False)):
            self.stream.write(data)
        self.stream.flush()
        return "-", "-"


class MboxStreamSink(Sink):
    """Many messages to one stream as mboxrd, for `| mimekit scan mbox:-`: each exactly as
    Mbox.add appends it (mbox_entry), passed on chunk by chunk and flushed once whole, so a
    reader sees every message as soon as it is fetched. Keys are byte offsets of the "From "
    lines in the stream, as an mbox file's are."""

    durable = False
    identity = "mbox:-"

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.position = 0

    def add(self, message, chunks, flags, keywords=()):
        start = self.position
        sender, chunks = _for_mbox(chunks, keywords)
        for data in mbox_entry(chunks, sender, flags):
            self.stream.write(data)
            self.position += len(data)
        self.stream.flush()
        return str(start), f"-:{start}"
