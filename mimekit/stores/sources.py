"""Where reading commands take messages from: files, directories of files, Maildirs and
mbox files, many at once, each message named by a stable reference.

A source is `maildir:PATH`, `mbox:PATH`, or a bare path that is sniffed: a directory with
cur/ and new/ is a Maildir, another directory holds message files (its subdirectories too
when `recursive`), a file whose first bytes are "From " is an mbox, any other file one
message. A reference that an earlier run printed (`MBOX:OFFSET`, `MAILDIR:KEY`) is a
source too: that one message. A `StreamSource` (the CLI's "-" and "mbox:-") is read once,
in order, and never held whole.

Listing is cheap and streaming: a Maildir is listed with one scandir per folder, an mbox
is split line by line (`mbox_split`), and references are yielded as they are found, so a
consumer sees the first one at once whatever the size of the source.

The Maildir and mbox code is imported when a source needs it: `mimekit show FILE` does
without (6M of its 383M instructions, ~3 ms here).
"""

import io
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Iterator

from mimekit.errors import NoInputError, UsageError
from mimekit.limits import parse_decimal
from mimekit.stores.common import expand_store_path
from mimekit.streams.files import CHUNK_SIZE, widen_pipe

if TYPE_CHECKING:
    from mimekit.stores.mbox_split import MboxSpan

STREAM_SPOOL_IN_MEMORY = 8 * 1024 * 1024   # a stream's message beyond this goes to a temporary file


@dataclass(frozen=True)
class MessageRef:
    """One message of a source: small and picklable, so a worker process (or a Dask
    worker that sees the same files) can open the message itself.

    `kind` is "file", "maildir", "mbox", "stream", or "unreadable" (a directory met in a
    recursive listing that could not be listed: `key` says why, and opening it fails);
    `path` is the file to open (the message file, or the mbox); `mailbox` the Maildir or
    mbox it belongs to; `key` its key there (a Maildir unique name, an mbox "From " line
    offset); `start`/`end` its byte range in an mbox; `flags` its Maildir flag letters
    (from the Maildir info or the mbox Status lines).
    """

    kind: str
    path: str
    mailbox: str = ""
    key: str = ""
    start: int = 0
    end: int = 0
    flags: str = ""
    stream: BinaryIO | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        """The stable reference every output names the message by."""
        if self.kind in ("maildir", "mbox") or (self.kind == "stream" and self.key):
            return f"{self.mailbox}:{self.key}"
        return self.path

    def __reduce__(self):
        if self.stream is not None:
            raise TypeError(f"{self}: a message read from a stream can only be read where the stream is")
        return (MessageRef, (self.kind, self.path, self.mailbox, self.key, self.start, self.end, self.flags))

    @property
    def reopenable(self) -> bool:
        """Whether another process can open the message (a stream is read only once)."""
        return self.stream is None

    @property
    def stored(self) -> bool:
        """Whether it comes from a Maildir or an mbox, where LF line endings are the rule."""
        return self.kind in ("maildir", "mbox") or (self.kind == "stream" and bool(self.key))

    @property
    def size(self) -> int | None:
        """The stored size (mboxrd quoting included) when the listing knows it: an mbox
        message's, read from a file or a stream; else None."""
        return self.end - self.start if self.kind == "mbox" or (self.kind == "stream" and self.key) else None

    def open(self) -> BinaryIO:
        """The message's bytes as stored; NoInputError when it is gone."""
        if self.stream is not None:
            return _Unclosed(self.stream)
        if self.kind == "unreadable":
            raise NoInputError(self.key)
        try:
            if self.kind == "mbox":
                from mimekit.stores.mbox_split import unquoted_range
                return unquoted_range(self.path, self.start, self.end)
            try:
                return open(self.path, "rb")
            except FileNotFoundError:
                if self.kind != "maildir":
                    raise
                from mimekit.stores.maildir import Maildir
                return Maildir(self.mailbox, create=False).open(self.key)   # renamed by a flag change
        except OSError as exc:
            raise NoInputError(f"{self}: {exc.strerror or exc}") from exc


@contextmanager
def opened(message: "MessageRef | BinaryIO") -> Iterator[BinaryIO]:
    """What the per-message functions (scan, summarise, check, extract) read: a MessageRef
    opened and closed after, or a stream as it is, left open for its owner."""
    if not isinstance(message, MessageRef):
        yield message
        return
    with message.open() as stream:
        yield stream


def from_store(message: "MessageRef | BinaryIO") -> bool:
    """Whether `message` is kept by a store (Maildir, mbox), which keeps LF line endings:
    `check` accepts them there as it does with --lf."""
    return isinstance(message, MessageRef) and message.stored


def lf_is_normal(message: "MessageRef | BinaryIO") -> bool:
    """Whether LF line endings are how `message` is kept, not a defect to report: for
    every message read as a file, from a directory, a store or stdin (Unix keeps files with
    LF; every Maildir and mbox does). Only `check`, which judges the wire format, and a
    caller's own stream keep reporting them."""
    return isinstance(message, MessageRef)


@dataclass
class StreamSource:
    """An already open stream (standard input): one message, or an mbox when `mbox`.
    `name` is what references show for it ("-")."""

    stream: BinaryIO
    name: str
    mbox: bool = False


Source = str | StreamSource


def messages(sources: Iterable[Source], recursive: bool = False) -> Iterator[MessageRef]:
    """Every message of every source, in order; see the module docstring for what a
    source may be. A source that cannot be read raises when the iteration reaches it
    (`messages_of` reads one source, for callers that go on after an error)."""
    for source in sources:
        yield from messages_of(source, recursive)


def messages_of(source: Source, recursive: bool = False,
                list_mbox: Callable[[str], Iterable] | None = None) -> Iterator[MessageRef]:
    """The messages of one source. `list_mbox(path)` stands in for the listing of each mbox
    file met (mimekit.dask yields the file's byte ranges there, for workers to list)."""
    list_mbox = list_mbox or mbox_messages
    if isinstance(source, StreamSource):
        if source.mbox:
            yield from _stream_mbox(source)
        else:
            yield MessageRef("stream", source.name, stream=source.stream)
        return
    scheme, colon, rest = source.partition(":")
    if colon and scheme.lower() in ("maildir", "mbox") and not rest:
        raise UsageError(f"{scheme}: names no {scheme}: give {scheme}:PATH")
    if colon and scheme.lower() == "maildir":
        yield from maildir_messages(expand_store_path(source, rest), recursive)
    elif colon and scheme.lower() == "mbox":
        yield from list_mbox(expand_store_path(source, rest))
    elif os.path.isdir(source):
        yield from (maildir_messages(source, recursive) if is_maildir(source)
                    else _directory(source, recursive, list_mbox))
    elif os.path.exists(source) and not os.path.isfile(source):    # a pipe or a device: <(...), /dev/stdin
        yield from _pipe(source)
    elif os.path.exists(source):
        yield from list_mbox(source) if is_mbox(source) else [MessageRef("file", source)]
    else:
        yield _referenced(source)


def is_maildir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "cur")) and os.path.isdir(os.path.join(path, "new"))


def is_mbox(path: str) -> bool:
    """A regular file whose first line is a "From " line (a message starts with a header field).
    A file that cannot be read is no mbox: opened as a message, it fails in its place, and
    the rest of its directory is still listed."""
    try:
        with open(path, "rb") as file:
            return file.read(5) == b"From "
    except OSError:
        return False


def maildir_messages(path: str, recursive: bool = False) -> Iterator[MessageRef]:
    """A Maildir's messages; with `recursive`, then those of its Maildir++ folders
    (.Sent, .Archive.2024: the folders Dovecot and Courier keep inside it), in name order."""
    if not is_maildir(path):
        raise NoInputError(f"{path}: not a Maildir (needs cur/ and new/)")
    from mimekit.stores.maildir import Maildir
    for key, file_path, flags in Maildir(path, create=False).listing():
        yield MessageRef("maildir", file_path, path, key, flags=flags)
    if recursive:
        for entry in sorted(os.scandir(path), key=lambda entry: entry.name):
            if entry.name.startswith(".") and entry.is_dir(follow_symlinks=False) and is_maildir(entry.path):
                yield from maildir_messages(entry.path)


def mbox_messages(path: str, offset: int = 0, stop: int | None = None) -> Iterator[MessageRef]:
    """The messages of the mbox file at `path` (those whose "From " line is in bytes
    [offset, stop) when given: see split_mbox)."""
    from mimekit.stores.mbox_split import split_mbox
    try:
        mbox = open(path, "rb", buffering=CHUNK_SIZE)
    except OSError as exc:
        raise NoInputError(f"{path}: {exc.strerror or exc}") from exc
    with mbox:
        if not os.path.isfile(path):
            raise NoInputError(f"{path}: not an mbox file")
        for span in split_mbox(mbox, offset, stop):
            yield _mbox_ref(path, span)


def _mbox_ref(path: str, span: "MboxSpan") -> MessageRef:
    return MessageRef("mbox", path, path, str(span.offset), span.start, span.end, span.flags)


def _directory(path: str, recursive: bool, list_mbox: Callable[[str], Iterable]) -> Iterator[MessageRef]:
    """The files of a directory in name order (hidden ones skipped), each sniffed; with
    `recursive`, its subdirectories too, a Maildir among them read as a Maildir. Links to
    directories are not followed (as grep -r): a link loop would list its messages again
    and again."""
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except OSError as exc:
        raise NoInputError(f"{path}: {exc.strerror or exc}") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _subdirectory(entry.path, list_mbox)
        elif entry.is_file():
            yield from list_mbox(entry.path) if is_mbox(entry.path) else [MessageRef("file", entry.path)]


def _subdirectory(path: str, list_mbox: Callable[[str], Iterable]) -> Iterator[MessageRef]:
    """A directory met in a recursive listing. One that cannot be listed is an entry that
    fails in its place (NoInputError when opened), and the listing goes on."""
    try:
        yield from maildir_messages(path, True) if is_maildir(path) else _directory(path, True, list_mbox)
    except NoInputError as exc:
        yield MessageRef("unreadable", path, key=str(exc))


def _pipe(path: str) -> Iterator[MessageRef]:
    """A path that can be read only once (a named pipe, the shell's <(...)): opened once,
    sniffed with the bytes sniffed given back, and read as a stream."""
    try:
        pipe = open(path, "rb", buffering=0)
    except OSError as exc:
        raise NoInputError(f"{path}: {exc.strerror or exc}") from exc
    with pipe:
        widen_pipe(pipe)
        head = b""
        while len(head) < 5 and (piece := pipe.read(5 - len(head))):
            head += piece
        stream = io.BufferedReader(_Sniffed(head, pipe), CHUNK_SIZE)
        yield from messages_of(StreamSource(stream, path, mbox=head == b"From "))


def _referenced(source: str) -> MessageRef:
    """A reference an earlier run printed: MBOX:OFFSET or MAILDIR:KEY."""
    from mimekit.stores.maildir import Maildir
    from mimekit.stores.mbox_split import split_mbox
    container, colon, key = source.rpartition(":")
    if colon and os.path.isdir(container) and is_maildir(container):
        maildir = Maildir(container, create=False)
        for listed_key, file_path, flags in maildir.listing():
            if listed_key == key:
                return MessageRef("maildir", file_path, container, key, flags=flags)
        raise NoInputError(f"{container}: no message {key!r}")
    offset = parse_decimal(key) if colon else None
    if offset is not None and os.path.isfile(container):
        with open(container, "rb") as mbox:
            span = next(split_mbox(mbox, offset), None)
        if span is None or span.offset != offset:
            raise NoInputError(f"{container}: no message at offset {offset}")
        return _mbox_ref(container, span)
    if colon and not os.path.exists(container) and container.lower() in ("maildir", "mbox", "imap", "pop3"):
        raise UsageError(f"{source}: expected {container}:PATH")
    raise NoInputError(f"{source}: no such file, directory or mailbox")


class _Unclosed(io.RawIOBase):
    """A stream handed out without giving away the right to close it. Reads go straight
    to the stream (no copy). A file's descriptor and position show through, so a regular
    file on stdin (`< big.eml`) is read in place by the parser, as a path would be, where
    a pipe is copied to a spool (mimekit.read.tree); any other stream's stay hidden, as a
    descriptor need not hold the bytes it gives (gzip.open's is the compressed file's)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._is_file = isinstance(getattr(stream, "raw", stream), io.FileIO)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def readinto(self, buffer) -> int:
        return self._stream.readinto(buffer)

    def _file(self) -> BinaryIO:
        """The stream, when it is a file; else UnsupportedOperation, as for any stream."""
        if not self._is_file:
            raise io.UnsupportedOperation("not a file")
        return self._stream

    def fileno(self) -> int:
        return self._file().fileno()

    def seekable(self) -> bool:
        return self._is_file and self._stream.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file().seek(offset, whence)

    def tell(self) -> int:
        return self._file().tell()


class _Sniffed(io.RawIOBase):
    """A stream whose first bytes (`head`) were read to sniff it: they come first."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._head:
            return self._raw.readinto(buffer)
        n = min(len(buffer), len(self._head))
        buffer[:n] = self._head[:n]
        self._head = self._head[n:]
        return n


class _Recorder(io.RawIOBase):
    """Reads a stream for the splitter while keeping what it read since `restart`, in a
    spool that holds the current message (in memory up to STREAM_SPOOL_IN_MEMORY)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.base = 0
        self.spool = tempfile.SpooledTemporaryFile(STREAM_SPOOL_IN_MEMORY)

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        """What the stream has (at most `size` bytes), without waiting for more."""
        data = self._stream.read1(size)
        self.spool.write(data)
        return data

    def restart(self, offset: int) -> None:
        """Keep only what was read from `offset` on (the next message's "From " line)."""
        self.spool.seek(offset - self.base)
        kept = self.spool.read()
        self.spool.close()
        self.spool = tempfile.SpooledTemporaryFile(STREAM_SPOOL_IN_MEMORY)
        self.spool.write(kept)
        self.base = offset


def _stream_mbox(source: StreamSource) -> Iterator[MessageRef]:
    """An mbox read from a stream once: each message is kept in a spool until the next
    "From " line is read, then handed out. Content-Length cannot be checked on a stream
    and is not used."""
    from mimekit.stores.mbox_split import UnquotedRange, split_mbox

    class SpoolRange(UnquotedRange):
        """A message in the spool: un-quoted, and the spool stays open."""

        def __init__(self, spool: BinaryIO, length: int):
            super().__init__(spool, spool.tell(), spool.tell() + length)

        def close(self) -> None:
            io.RawIOBase.close(self)

    recorder = _Recorder(source.stream)
    try:
        for span in split_mbox(recorder):
            spool = recorder.spool
            spool.seek(span.start - recorder.base)
            message = io.BufferedReader(SpoolRange(spool, span.end - span.start), CHUNK_SIZE)
            yield MessageRef("stream", source.name, source.name, str(span.offset), span.start, span.end,
                             span.flags, stream=message)
            recorder.restart(span.following)
    finally:
        recorder.spool.close()


__all__ = ["MessageRef", "StreamSource", "messages", "messages_of", "mbox_messages", "opened", "from_store", "lf_is_normal",
           "is_maildir", "is_mbox", "maildir_messages"]
