"""mboxrd: one file of messages, appended under both lock kinds in use on Unix.

The mboxrd variant quotes any number of ">" before "From " with one more ">", so quoting
is reversible. Appends take an fcntl lock on the file and a dotlock file beside it. The
dotlock says who holds it and how long the mbox was before the append, so that an append
cut short by a kill or a power loss is cut back off the file before anything else reads
or writes it. Messages are kept with LF line endings, as Postfix and Dovecot keep them.
"""

import fcntl
import os
import re
import stat
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator

from mimekit.errors import CantCreateError, IOFailure, NoInputError, TempFailure, UsageError
from mimekit.limits import parse_decimal
from mimekit.stores.common import host_name, normalised_flags
from mimekit.stores.mbox_split import X_STATUS, MboxSpan, split_mbox, unquoted_range
from mimekit.streams.from_quoting import FromQuoter
from mimekit.streams.files import CHUNK_SIZE, OutputDirectory, process_is_gone
from mimekit.streams.filters import chain
from mimekit.streams.line_endings import LFNormaliser

if TYPE_CHECKING:
    from mimekit.stores.sources import MessageRef   # sources builds on this module



def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a regular file may take fewer); an error such
    as ENOSPC raises at once, with no user-space buffer left to flush later."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]



# What our dotlock holds: "<pid>\n<host>\n<mbox length before the append>\n".
_DOTLOCK_OWNER = re.compile(rb"(?P<pid>[0-9]{1,10})\n(?P<host>[^\n]+)\n(?P<length>[0-9]{1,20})?\n?")


class _CutBackFailed(IOFailure):
    """An unfinished append could not be cut back: the dotlock is left in place, since it
    records the length the next writer (or `recover`) cuts the file back to."""


def mbox_entry(chunks: Iterable[bytes], sender: str = "MAILER-DAEMON", flags: str = "") -> Iterator[bytes]:
    """One message as an mbox holds it, in chunks: its "From " line and Status lines, its
    bytes with LF line endings and mboxrd quoting, and the blank line that ends it. What
    `Mbox.add` appends, and what a stream of many messages is made of (fetch to stdout).
    A bad sender or flag raises here, before anything is written."""
    preamble = Mbox._from_line(sender) + Mbox._status_lines(normalised_flags(flags))
    return _entry_chunks(preamble, chunks)


def _entry_chunks(preamble: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    yield preamble
    last = preamble[-1:]
    for data in chain(chunks, LFNormaliser(), FromQuoter()):
        yield data
        last = data[-1:]
    yield b"\n\n" if last != b"\n" else b"\n"


class Mbox:
    """An mboxrd file; keys are the byte offsets of each message's "From " line."""

    DOTLOCK_TIMEOUT = 30.0
    DOTLOCK_STALE_AFTER = 300.0   # the traditional age after which a dotlock is abandoned

    def __init__(self, path: str, create: bool = True):
        self.path = path
        if create:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            except OSError as exc:
                raise CantCreateError(f"{path}: cannot create mbox: {exc.strerror or exc}") from exc
        elif not os.path.isfile(path):
            raise NoInputError(f"{path}: no such mbox file")

    def add(self, chunks: Iterable[bytes], sender: str = "MAILER-DAEMON", flags: str = "") -> str:
        """Append one message under both locks; on failure the file is cut back as it was.

        Writes are unbuffered (os.write): after ENOSPC no buffered bytes remain to be
        flushed past the cut. A process killed mid-append leaves its dotlock, which records
        the length to cut back to; the next writer (or `recover`) does that first.
        """
        entry = mbox_entry(chunks, sender, flags)
        with self._locked() as (fd, start):
            return self._append(fd, start, entry)

    def recover(self) -> None:
        """Cut back an append that a killed process left unfinished, and break its lock.

        Called by a writer before it looks at the file (fetch's orphan search), so a cut
        message is never mistaken for a saved one."""
        with self._locked():
            pass

    @contextmanager
    def _locked(self) -> Iterator[tuple[int, int]]:
        """Hold the fcntl lock and our dotlock; yield (descriptor, length before the append)."""
        fd = self._open_locked()
        try:
            start = self._acquire_dotlock(fd)
            try:
                yield fd, start
            except _CutBackFailed:
                raise             # the dotlock stays: it says where the next writer must cut
            except BaseException:
                self._release_dotlock()
                raise
            self._release_dotlock()
        finally:
            os.close(fd)          # closing releases the fcntl lock

    def _open_locked(self) -> int:
        """Open the mbox and take its fcntl lock, on the file that is at `path` once the lock
        is held: `remove` renames a new file into place while others wait for the old
        file's lock, and what they append to the old file nobody would ever read."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR)
            except OSError as exc:
                raise CantCreateError(f"{self.path}: {exc.strerror or exc}") from exc
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX)
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    return fd
            except FileNotFoundError as exc:
                os.close(fd)
                raise CantCreateError(f"{self.path}: removed while waiting for its lock") from exc
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)          # replaced meanwhile: lock the file that is there now

    def _append(self, fd: int, start: int, entry: Iterable[bytes]) -> str:
        try:
            separator = self._separator_needed(fd, start)
            os.lseek(fd, start, os.SEEK_SET)
            _write_all(fd, separator)
            for data in entry:
                _write_all(fd, data)
            os.fsync(fd)
        except BaseException as exc:
            self._cut_back(fd, start)
            if isinstance(exc, OSError):
                raise IOFailure(f"{self.path}: {exc.strerror or exc}") from exc
            raise
        return str(start + len(separator))

    def _cut_back(self, fd: int, length: int) -> None:
        """Truncate the mbox to `length` (what it was before an append) and make it stick."""
        try:
            if os.fstat(fd).st_size > length:
                os.ftruncate(fd, length)
                os.fsync(fd)
        except BaseException as exc:   # an I/O error, or a second Ctrl-C in the middle of it
            raise _CutBackFailed(f"{self.path}: cannot cut back an unfinished append to {length} bytes: "
                                 f"{getattr(exc, 'strerror', None) or exc}") from exc

    @staticmethod
    def _separator_needed(fd: int, size: int) -> bytes:
        """What makes the new "From " line follow a blank line, whatever the file ends with."""
        if size == 0:
            return b""
        end = os.pread(fd, 2, max(size - 2, 0))
        if end.endswith(b"\n\n") or end == b"\n":
            return b""
        return b"\n" if end.endswith(b"\n") else b"\n\n"

    @staticmethod
    def _from_line(sender: str) -> bytes:
        sender = sender or "MAILER-DAEMON"
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in sender):
            raise UsageError(f"mbox sender {sender!r} contains white space or control characters")
        return f"From {sender} {time.asctime(time.gmtime())}\n".encode("utf-8")

    @staticmethod
    def _status_lines(flags: str) -> bytes:
        """Maildir flags as the Status/X-Status headers mutt and Python's mailbox read
        (seen -> R, replied -> A, flagged -> F, trashed -> D, draft -> T as UW-IMAP and
        Dovecot write it; passed has no mbox equivalent)."""
        if not flags:
            return b""
        status = ("R" if "S" in flags else "") + "O"
        x_status = "".join(letter for flag, letter in X_STATUS if flag in flags)
        lines = f"Status: {status}\n" + (f"X-Status: {x_status}\n" if x_status else "")
        return lines.encode("ascii")

    @property
    def _dotlock_path(self) -> str:
        return self.path + ".lock"

    def _acquire_dotlock(self, fd: int) -> int:
        """Create the dotlock, naming this process and the mbox length (which it returns).

        A dotlock of ours whose process is gone from this host is broken at once, after
        cutting its unfinished append back off; anyone else's is waited for, and abandoned
        only at the traditional age. Its content is fsync'd so that the length to cut back
        to survives a power loss as well as a kill.
        """
        deadline = time.monotonic() + self.DOTLOCK_TIMEOUT
        start = os.fstat(fd).st_size
        written = self._written_dotlock(start)
        try:
            while True:
                if os.fstat(fd).st_size != start:    # a broken lock's append was cut back
                    os.unlink(written)
                    start = os.fstat(fd).st_size
                    written = self._written_dotlock(start)
                try:
                    os.link(written, self._dotlock_path)   # atomic: the lock never exists without its owner
                    return start
                except FileExistsError:
                    if self._break_abandoned_dotlock(fd):
                        continue
                    if time.monotonic() > deadline:
                        raise TempFailure(f"{self.path}: locked by another program ({self._dotlock_path})") from None
                    time.sleep(0.02)
                except OSError as exc:
                    raise CantCreateError(f"{self._dotlock_path}: cannot create the lock file: "
                                          f"{exc.strerror or exc}") from exc
        finally:
            os.unlink(written)

    def _written_dotlock(self, start: int) -> str:
        """A file beside the mbox holding what our dotlock says, fsync'd, to be linked into
        place: created and written in place, a kill between the two would leave an empty
        dotlock that names no owner, which every writer would wait on for minutes."""
        path = f"{self._dotlock_path}.{os.getpid()}"
        try:
            lock_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise CantCreateError(f"{path}: cannot create the lock file: {exc.strerror or exc}") from exc
        try:
            _write_all(lock_fd, f"{os.getpid()}\n{host_name()}\n{start}\n".encode())
            os.fsync(lock_fd)
        except OSError as exc:
            os.unlink(path)
            raise IOFailure(f"{path}: {exc.strerror or exc}") from exc
        finally:
            os.close(lock_fd)
        return path

    def _release_dotlock(self) -> None:
        """Remove our dotlock, and only ours: had another program broken it as stale and
        taken its own, removing that one would let a third writer in beside it."""
        try:
            with open(self._dotlock_path, "rb") as lock:
                owner = _DOTLOCK_OWNER.fullmatch(lock.read(200))
            if owner is not None and int(owner["pid"]) == os.getpid() and \
                    owner["host"].decode(errors="replace") == host_name():
                os.unlink(self._dotlock_path)
        except FileNotFoundError:
            pass

    def _break_abandoned_dotlock(self, fd: int) -> bool:
        """Remove a dotlock nobody holds any more; True if it is gone (try again)."""
        try:
            with open(self._dotlock_path, "rb") as lock:
                owner = _DOTLOCK_OWNER.fullmatch(lock.read(200))
            age = time.time() - os.stat(self._dotlock_path).st_mtime
        except FileNotFoundError:
            return True
        except OSError:
            return False
        ours_and_dead = owner is not None and owner["host"].decode(errors="replace") == host_name() \
            and process_is_gone(int(owner["pid"]))
        if not ours_and_dead and age <= self.DOTLOCK_STALE_AFTER:
            return False
        if owner is not None and owner["length"]:
            self._cut_back(fd, int(owner["length"]))   # we hold the fcntl lock: nobody appends now
        try:
            os.unlink(self._dotlock_path)
        except FileNotFoundError:
            pass
        return True

    def keys(self) -> list[str]:
        with open(self.path, "rb") as mbox:
            fcntl.lockf(mbox, fcntl.LOCK_SH)
            try:
                return [str(span.offset) for span in split_mbox(mbox)]
            finally:
                fcntl.lockf(mbox, fcntl.LOCK_UN)

    def flags(self, key: str) -> str:
        """Maildir flag letters from the message's Status and X-Status header fields (the
        inverse of _status_lines)."""
        with open(self.path, "rb") as mbox:
            return self._locate(mbox, key).flags

    def open(self, key: str) -> BinaryIO:
        """The message at `key`, un-quoted, without its "From " line and separator."""
        with open(self.path, "rb") as mbox:
            span = self._locate(mbox, key)
        return unquoted_range(self.path, span.start, span.end)

    def _locate(self, mbox: BinaryIO, key: str) -> MboxSpan:
        """The message whose "From " line is at offset `key`."""
        start = parse_decimal(key)
        span = next(split_mbox(mbox, start), None) if start is not None else None
        if span is None or span.offset != start:
            raise NoInputError(f"{self.path}: no message at {key!r}")
        return span

    def remove(self, *keys: str) -> None:
        """Remove these messages, in one rewrite under both locks: the mbox is copied
        without them, bytes as they are (mboxrd quoting kept) and in chunks (memory stays
        bounded), into a temporary file beside it with its mode, which is fsync'd and
        renamed over it. A kill at any point leaves the old file or the new one, and the
        next writer in that directory removes the temporary file (streams.files).

        The keys of the messages after a removed one change, and so does `validity`. A key
        that names no message removes nothing (NoInputError). Our writers waiting for the
        old file's lock see that it was replaced and lock the new one (_open_locked)."""
        if not keys:
            return                # no rewrite: the keys stay valid
        with self._locked() as (fd, size):
            with open(fd, "rb", closefd=False) as mbox:
                removed = sorted({(span.offset, span.following) for span in (self._locate(mbox, key) for key in keys)})
            kept, cursor = [], 0
            for start, end in removed:
                kept.append((cursor, start))
                cursor = end
            kept.append((cursor, size))
            self._rewrite(fd, [(start, end) for start, end in kept if end > start])

    def _rewrite(self, fd: int, ranges: list[tuple[int, int]]) -> None:
        """Replace the mbox by a file holding its byte `ranges`, atomically and durably."""
        target = os.path.realpath(self.path)
        original = os.fstat(fd)
        try:
            with OutputDirectory(os.path.dirname(target), wanted=self.path) as directory, \
                    directory.new_file(os.path.basename(target), replace=True) as output:
                os.fchmod(output.stream.fileno(), stat.S_IMODE(original.st_mode))
                try:
                    os.fchown(output.stream.fileno(), original.st_uid, original.st_gid)
                except PermissionError:
                    pass          # not ours to give away: the file stays the writer's
                for start, end in ranges:
                    while start < end:
                        chunk = os.pread(fd, min(CHUNK_SIZE, end - start), start)
                        if not chunk:
                            raise IOFailure(f"{self.path}: shorter than it was when locked")
                        output.stream.write(chunk)
                        start += len(chunk)
        except OSError as exc:
            raise IOFailure(f"{self.path}: cannot rewrite: {exc.strerror or exc}") from exc

    @property
    def validity(self) -> int:
        """The file's inode number: `remove` renames a new file into place, renumbering keys."""
        try:
            return os.stat(self.path).st_ino
        except OSError as exc:
            raise NoInputError(f"{self.path}: {exc.strerror or exc}") from exc

    def __iter__(self) -> Iterator["MessageRef"]:
        """The messages as references, in file order (see stores.sources)."""
        from mimekit.stores.sources import mbox_messages   # sources builds on this module
        return mbox_messages(self.path)
