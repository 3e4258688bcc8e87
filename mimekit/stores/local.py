"""Local message stores: Maildir (atomic delivery) and mboxrd (locked append).

These are the embedded default that lets send and fetch run on a machine with no
server. Both store messages with LF line endings, converting CRLF while streaming, as
Postfix and Dovecot do; `open()` returns a message as stored.

Maildir follows https://cr.yp.to/proto/maildir.html: write into tmp/, fsync, rename into
new/ (or cur/ with an info suffix ":2,FLAGS"), fsync the directory. Readers never see a
partial message; a writer killed mid-delivery leaves a file in tmp/ that the next writer
removes once its process is gone. mbox is the mboxrd variant (any number of ">" before
"From " gets one more ">", so quoting is reversible) appended under both lock kinds in use
on Unix: an fcntl lock on the file and a dotlock file beside it. The dotlock says who holds
it and how long the mbox was before the append, so that an append cut short by a kill or a
power loss is cut back off the file before anything else reads or writes it.
"""

import fcntl
import io
import itertools
import os
import re
import secrets
import socket
import time
from contextlib import contextmanager
from typing import BinaryIO, Iterable, Iterator

from mimekit.errors import CantCreateError, IOFailure, NoInputError, TempFailure, UsageError
from mimekit.streams.files import CHUNK_SIZE, process_is_gone
from mimekit.streams.filters import chain
from mimekit.streams.from_quoting import FromQuoter
from mimekit.limits import parse_decimal
from mimekit.streams.line_endings import LineEndingNormaliser
from mimekit.transport.urls import ServerURL

MAILDIR_FLAGS = set("DFPRST")  # draft, flagged, passed, replied, seen, trashed
_X_STATUS = (("R", "A"), ("F", "F"), ("T", "D"))   # Maildir flag -> mbox X-Status letter
HEADER_LINE_LIMIT = 64 * 1024


class LFNormaliser(LineEndingNormaliser):
    """How mail is stored on disk: CRLF becomes LF; a lone CR is data and kept."""

    def __init__(self):
        super().__init__(b"\n", lone_cr_is_break=False)


def as_stored(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A message's bytes as both stores keep them (and give them back from `open`): LF
    line endings. What a caller compares a stored message with."""
    return chain(chunks, LFNormaliser())


def _host_name() -> str:
    """This host's name as Maildir unique names and our dotlocks carry it."""
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a regular file may take fewer); an error such
    as ENOSPC raises at once, with no user-space buffer left to flush later."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _normalised_flags(flags: str) -> str:
    unknown = set(flags) - MAILDIR_FLAGS
    if unknown:
        raise UsageError(f"unknown message flags {''.join(sorted(unknown))!r}; "
                         f"known: {''.join(sorted(MAILDIR_FLAGS))}")
    return "".join(sorted(set(flags)))


# Our unique names: "<seconds>.M<microseconds>P<pid>Q<counter>R<random>.<host>".
_OUR_UNIQUE_NAME = re.compile(r"[0-9]+\.M[0-9]+P([0-9]{1,10})Q[0-9]+R[0-9a-f]+\.(.+)")
TMP_ABANDONED_AFTER = 36 * 3600   # the Maildir spec's age after which anyone may clean tmp/


class Maildir:
    """A Maildir; keys are the unique base names (without the ":2,FLAGS" info)."""

    _counter = itertools.count()

    def __init__(self, path: str, create: bool = True):
        self.path = path
        subdirs = [os.path.join(path, sub) for sub in ("tmp", "new", "cur")]
        if create:
            try:
                for sub in subdirs:
                    os.makedirs(sub, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise CantCreateError(f"{path}: cannot create Maildir: {exc.strerror or exc}") from exc
            self._remove_abandoned_tmp()
        elif not all(os.path.isdir(sub) for sub in subdirs):
            raise NoInputError(f"{path}: not a Maildir (needs tmp/, new/ and cur/)")
        self._index: dict[str, str] = {}

    def _remove_abandoned_tmp(self) -> None:
        """Remove from tmp/ what a killed writer left: our own files whose process is gone
        from this host, and anything older than the spec's 36 hours. A live writer's file
        is never touched, and tmp/ is never read as mail, so this only frees space."""
        host, now = _host_name(), time.time()
        tmp = os.path.join(self.path, "tmp")
        for entry in os.scandir(tmp):
            ours = _OUR_UNIQUE_NAME.fullmatch(entry.name)
            try:
                abandoned = (ours is not None and ours.group(2) == host and process_is_gone(int(ours.group(1)))) \
                    or now - entry.stat(follow_symlinks=False).st_mtime > TMP_ABANDONED_AFTER
                if abandoned and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
            except OSError:
                pass                  # another writer cleaned it first, or it is not ours to remove

    def _unique_name(self) -> str:
        now = time.time()
        return (f"{int(now)}.M{int(now % 1 * 1e6):06d}P{os.getpid()}"
                f"Q{next(self._counter)}R{secrets.token_hex(4)}.{_host_name()}")

    def add(self, chunks: Iterable[bytes], flags: str = "") -> str:
        """Deliver a message atomically and durably; return its final path.

        A failure while writing (including one raised by `chunks`) removes the tmp file,
        so nothing appears under new/ or cur/.
        """
        flags = _normalised_flags(flags)
        name = self._unique_name()
        tmp_path = os.path.join(self.path, "tmp", name)
        if flags:
            final_dir, final_name = "cur", f"{name}:2,{flags}"
        else:
            final_dir, final_name = "new", name
        final_path = os.path.join(self.path, final_dir, final_name)
        try:
            fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise CantCreateError(f"{tmp_path}: {exc.strerror or exc}") from exc
        try:
            with open(fd, "wb") as out:
                for data in as_stored(chunks):
                    out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp_path, final_path)
        except BaseException as exc:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass
            if isinstance(exc, OSError):
                raise IOFailure(f"{tmp_path}: {exc.strerror or exc}") from exc
            raise
        _fsync_directory(os.path.join(self.path, final_dir))
        self._index[name] = final_path
        return final_path

    def _scan(self) -> list[tuple[tuple, str, str]]:
        found = []
        for sub in ("new", "cur"):
            directory = os.path.join(self.path, sub)
            for entry in os.scandir(directory):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                key = entry.name.split(":", 1)[0]
                seconds = key.split(".", 1)[0]
                delivered = parse_decimal(seconds)
                order = (delivered if delivered is not None else int(entry.stat().st_mtime), key)
                found.append((order, key, entry.path))
        return found

    def keys(self) -> list[str]:
        """Messages in new/ and cur/ in delivery order (the time in the unique name)."""
        found = sorted(self._scan())
        self._index = {key: path for _, key, path in found}
        return [key for _, key, _ in found]

    def _path(self, key: str) -> str:
        path = self._index.get(key)
        if path is None or not os.path.exists(path):  # flags may have renamed it meanwhile
            self.keys()
            path = self._index.get(key)
        if path is None:
            raise NoInputError(f"{self.path}: no message {key!r}")
        return path

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def flags(self, key: str) -> str:
        """The message's flag letters (the info ":2,FLAGS" of its name), known ones only."""
        info = os.path.basename(self._path(key)).partition(":2,")[2]
        return "".join(sorted(set(info) & MAILDIR_FLAGS))


# What our dotlock holds: "<pid>\n<host>\n<mbox length before the append>\n".
_DOTLOCK_OWNER = re.compile(rb"(?P<pid>[0-9]{1,10})\n(?P<host>[^\n]+)\n(?P<length>[0-9]{1,20})?\n?")


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
        from_line = self._from_line(sender)
        status = self._status_lines(_normalised_flags(flags))
        with self._locked() as (fd, start):
            return self._append(fd, start, from_line + status, chunks)

    def recover(self) -> None:
        """Cut back an append that a killed process left unfinished, and break its lock.

        Called by a writer before it looks at the file (fetch's orphan search), so a cut
        message is never mistaken for a saved one."""
        with self._locked():
            pass

    @contextmanager
    def _locked(self) -> Iterator[tuple[int, int]]:
        """Hold the fcntl lock and our dotlock; yield (descriptor, length before the append)."""
        try:
            fd = os.open(self.path, os.O_RDWR)
        except OSError as exc:
            raise CantCreateError(f"{self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            start = self._acquire_dotlock(fd)
            try:
                yield fd, start
            finally:
                os.unlink(self._dotlock_path)
        finally:
            os.close(fd)          # closing releases the fcntl lock

    def _append(self, fd: int, start: int, preamble: bytes, chunks: Iterable[bytes]) -> str:
        try:
            separator = self._separator_needed(fd, start)
            os.lseek(fd, start, os.SEEK_SET)
            _write_all(fd, separator + preamble)
            last = preamble[-1:]
            for data in chain(chunks, LFNormaliser(), FromQuoter()):
                _write_all(fd, data)
                last = data[-1:]
            _write_all(fd, b"\n\n" if last != b"\n" else b"\n")
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
        except OSError as exc:
            raise IOFailure(f"{self.path}: cannot cut back an unfinished append to {length} bytes: "
                            f"{exc.strerror or exc}") from exc

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
        (seen -> R, replied -> A, flagged -> F, trashed -> D; draft and passed have no
        mbox equivalent)."""
        if not flags:
            return b""
        status = ("R" if "S" in flags else "") + "O"
        x_status = "".join(letter for flag, letter in _X_STATUS if flag in flags)
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
        while True:
            try:
                lock_fd = os.open(self._dotlock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                if self._break_abandoned_dotlock(fd):
                    continue
                if time.monotonic() > deadline:
                    raise TempFailure(f"{self.path}: locked by another program ({self._dotlock_path})") from None
                time.sleep(0.02)
                continue
            except OSError as exc:
                raise CantCreateError(f"{self._dotlock_path}: cannot create the lock file: "
                                      f"{exc.strerror or exc}") from exc
            try:
                start = os.fstat(fd).st_size
                _write_all(lock_fd, f"{os.getpid()}\n{_host_name()}\n{start}\n".encode())
                os.fsync(lock_fd)
            except OSError as exc:
                os.unlink(self._dotlock_path)
                raise IOFailure(f"{self._dotlock_path}: {exc.strerror or exc}") from exc
            finally:
                os.close(lock_fd)
            return start

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
        ours_and_dead = owner is not None and owner["host"].decode(errors="replace") == _host_name() \
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

    def _message_starts(self, mbox: BinaryIO, offset: int = 0) -> Iterator[int]:
        """Offsets of "From " lines at or after `offset` (which must be a line start)."""
        mbox.seek(offset)
        position, previous = offset, b"\n"
        while chunk := mbox.read(CHUNK_SIZE):
            window = previous + chunk
            for match in re.finditer(rb"\nFrom ", window):
                yield position - len(previous) + match.start() + 1
            previous = window[-5:]
            position += len(chunk)

    def keys(self) -> list[str]:
        with open(self.path, "rb") as mbox:
            fcntl.lockf(mbox, fcntl.LOCK_SH)
            try:
                return [str(start) for start in self._message_starts(mbox)]
            finally:
                fcntl.lockf(mbox, fcntl.LOCK_UN)

    def flags(self, key: str) -> str:
        """Maildir flag letters from the message's Status and X-Status header fields (the
        inverse of _status_lines); reads the header block only."""
        letters = set()
        with open(self.path, "rb") as mbox:
            start = parse_decimal(key)
            mbox.seek(start or 0)
            if start is None or not mbox.readline(HEADER_LINE_LIMIT).startswith(b"From "):
                raise NoInputError(f"{self.path}: no message at {key!r}")
            for line in iter(lambda: mbox.readline(HEADER_LINE_LIMIT), b""):
                if not line.strip() or line.startswith(b"From "):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"status" and b"R" in value:
                    letters.add("S")
                elif name.lower() == b"x-status":
                    letters |= {flag for flag, letter in _X_STATUS if letter.encode() in value}
        return "".join(sorted(letters))

    def open(self, key: str) -> BinaryIO:
        """The message at `key`, un-quoted, without its "From " line and separator."""
        mbox = open(self.path, "rb")
        try:
            start = parse_decimal(key)
            start = -1 if start is None else start
            mbox.seek(max(start, 0))
            from_line = mbox.readline()
            if start < 0 or not from_line.startswith(b"From "):
                raise NoInputError(f"{self.path}: no message at {key!r}")
            body_start = mbox.tell()
            following = next(self._message_starts(mbox, body_start), None)
            end = following if following is not None else os.fstat(mbox.fileno()).st_size
            if end > body_start:
                mbox.seek(end - 1)
                if mbox.read(1) == b"\n":
                    end -= 1   # the blank line that separates messages is not the message's
            return io.BufferedReader(_UnquotingReader(mbox, body_start, end))
        except BaseException:
            mbox.close()
            raise


class _UnquotingReader(io.RawIOBase):
    """Reads bytes [start, end) of an mbox through FromQuoter(unquote=True)."""

    def __init__(self, mbox: BinaryIO, start: int, end: int):
        self._mbox = mbox
        self._remaining = end - start
        self._unquoter = FromQuoter(unquote=True)
        self._pending = b""
        mbox.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and self._unquoter is not None:
            raw = self._mbox.read(min(CHUNK_SIZE, self._remaining)) if self._remaining else b""
            self._remaining -= len(raw)
            if raw:
                self._pending = self._unquoter.feed(raw)
            else:
                self._pending, self._unquoter = self._unquoter.flush(), None
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._mbox.close()
        super().close()


def open_store(url: ServerURL, create: bool = True) -> "Maildir | Mbox":
    """The local store a maildir:PATH or mbox:PATH URL names."""
    if url.scheme == "maildir":
        return Maildir(url.path, create)
    if url.scheme == "mbox":
        return Mbox(url.path, create)
    raise UsageError(f"{url.scheme}: is not a local store (expected maildir: or mbox:)")
