"""Opening inputs and outputs the way every command must (docs/conventions.md, Input and output; Safety).

Inputs: a path; a missing or unreadable file is NoInputError. "-" is a file of that name
here: stdin and stdout are the command line's meaning of "-" (mimekit_cli.common).

Outputs: every file mimekit writes is written under a temporary name in its directory
(".mimekit-HOST-PID-RANDOM.tmp", created exclusively, never through a symlink, with the
mode the umask gives), fsync'd, and only then renamed to its final name, so an interrupted
run (Ctrl-C, kill -9, a full disk) never leaves half a file under a final name.
OutputDirectory is that one mechanism: extraction publishes without ever replacing (a
taken name gets a suffix), atomic_output (`-o PATH`) replaces a regular file like the
shell's `>` would, and writes into a device, FIFO or socket directly.

Scratch copies (stdin read twice, a decoded message, a 7-bit conversion) are the other
kind of temporary file: anonymous, from temporary_file, so nothing can be left of them.

What a killed run leaves are temporary files only. The next run that writes into the
same directory removes them, and only those its name proves are orphans: our pattern,
this host, a process that no longer exists, last written before the directory was opened.
"""

import errno
import fcntl
import functools
import os
import re
import stat
import tempfile
import time
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

from mimekit.errors import CantCreateError, NoInputError

CHUNK_SIZE = 64 * 1024
# A longer tail after the last dot is not an extension worth keeping when cutting or suffixing.
MAX_EXTENSION_BYTES = 16

TEMP_PREFIX, TEMP_SUFFIX = ".mimekit-", ".tmp"
# A temporary name of ours: .mimekit-HOST-PID-RANDOM.tmp (see _host_tag); pid_max is at most 2**22 (7 digits).
_TEMP_NAME = re.compile(r"\.mimekit-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,7})-[0-9a-f]{12}\.tmp")
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1   # linux/fs.h


def open_input(path: str, buffered: bool = True) -> BinaryIO:
    """Open `path` for reading bytes, or raise NoInputError naming it. `buffered=False`
    suits a caller that only takes large chunks (read_chunks): the open then costs no
    isatty and no lseek, which counts when thousands of small messages are sent (an open
    and read of a small file: 9 us against 12 here)."""
    try:
        return open(path, "rb", buffering=-1 if buffered else 0)
    except IsADirectoryError as exc:   # open() checks, so no stat of our own (5 us a file here)
        raise NoInputError(f"{path}: is a directory") from exc
    except OSError as exc:
        raise NoInputError(f"{path}: {exc.strerror or exc}") from exc
    except ValueError as exc:          # a NUL in the path: no file can have that name
        raise NoInputError(f"{path!r}: not a usable file name") from exc


def read_chunks(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield a stream's bytes in chunks of at most `chunk_size`."""
    while chunk := stream.read(chunk_size):
        yield chunk


# What widen_pipe asks for: the most an unprivileged process may (fs/pipe-max-size's default).
PIPE_BUFFER_SIZE = 1024 * 1024


def widen_pipe(stream: BinaryIO) -> None:
    """Give the pipe `stream` reads from a buffer of PIPE_BUFFER_SIZE when it has less
    (Linux's default is 64 KiB) and the system allows it; else leave it be. With 64 KiB,
    writer and reader take turns every 64 KiB: `cat` of a 137 MB message into a reader of
    256 KiB chunks took 0.17-0.25 s here, and 0.05 s with 1 MiB."""
    try:
        fd = stream.fileno()
        if (stat.S_ISFIFO(os.fstat(fd).st_mode) and hasattr(fcntl, "F_SETPIPE_SZ")
                and fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < PIPE_BUFFER_SIZE):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BUFFER_SIZE)
    except (OSError, ValueError, AttributeError):
        pass   # not a file descriptor, or over the user's limit: the pipe reads as it is


def temporary_file(memory_limit: int = 0, prefix: str = "mimekit-") -> BinaryIO:
    """An anonymous scratch file for bytes that must be read again: stdin, a pipe, a
    decoded or converted copy. It is unlinked as it is created (nothing is left behind by
    a crash or kill -9, unlike a named temporary file, which needs OutputDirectory's
    orphan cleanup) and lives in $TMPDIR; `prefix` is the name it has for that instant
    where the system cannot create a file without one (no O_TMPFILE).

    memory_limit: 0 gives a real file at once (a caller that needs its descriptor, or
    hands it to a reader that maps it); N keeps up to N bytes in memory and moves to
    disk beyond (SpooledTemporaryFile), for copies that are usually small.
    """
    if memory_limit:
        return tempfile.SpooledTemporaryFile(max_size=memory_limit, prefix=prefix)
    return tempfile.TemporaryFile(prefix=prefix)


def split_extension(name: str) -> tuple[str, str]:
    """("report", ".pdf") for "report.pdf"; a leading dot or an overlong tail is no extension."""
    dot = name.rfind(".")
    if dot <= 0 or len(name[dot:].encode("utf-8")) > MAX_EXTENSION_BYTES:
        return name, ""
    return name[:dot], name[dot:]


def suffixed_name(name: str, attempt: int) -> str:
    """The `attempt`-th name tried for `name` when it is taken: "a.pdf", "a-1.pdf", "a-2.pdf" ...
    (no space or parenthesis a shell would need quoted: the name the sender chose keeps its own)."""
    if not attempt:
        return name
    stem, extension = split_extension(name)
    return f"{stem}-{attempt}{extension}"


class OutputDirectory:
    """A directory that files are written into only through temporary files.

    The directory is opened once and every name is resolved against that descriptor, so
    swapping the directory for a symlink meanwhile changes nothing. Opening it removes
    the orphans of killed runs. Closing it discards the files nobody committed (their
    writer failed) and, after success, makes the new names durable. It remembers the
    suffixes it handed out, so a thousand parts called "image.png" cost a thousand
    attempts in all, not half a million.
    """

    def __init__(self, path: str, wanted: str | None = None):
        """`wanted`: the file the caller means to write, named in the error if the
        directory cannot be opened (default: the directory)."""
        self.path = path
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise CantCreateError(f"{wanted or path}: {exc.strerror or exc}") from exc
        self._next_suffix: dict[str, int] = {}
        self._uncommitted: set[OutputFile] = set()
        self._remove_orphans(opened_at=time.time())

    def new_file(self, name: str, replace: bool = False) -> "OutputFile":
        """A file to be published as `name` once committed: replacing a file of that name
        if `replace`, else under the first free name of "name", "name-1" ... (see
        suffixed_name), so the same message extracted into an empty directory always gives
        the same names. `name` must be a plain name (mimekit.read.safe_names makes one)."""
        return OutputFile(self, name, replace)

    def sync(self) -> None:
        """Make the names committed so far durable (fsync of the directory)."""
        os.fsync(self._fd)

    def close(self, durable: bool = True) -> None:
        if self._fd < 0:
            return
        try:
            for pending in list(self._uncommitted):
                pending.discard()
            if durable:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "OutputDirectory":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(durable=exc_type is None)

    def _create_temporary(self, wanted: str) -> tuple[str, int]:
        """A new temporary file for `wanted`: its name and a descriptor open for writing.
        Mode 0666 less the umask (the kernel applies it), as for any file the shell creates."""
        while True:
            name = f"{TEMP_PREFIX}{_host_tag()}-{os.getpid()}-{os.urandom(6).hex()}{TEMP_SUFFIX}"
            try:
                return name, os.open(name, _CREATE_NEW, 0o666, dir_fd=self._fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise CantCreateError(f"{os.path.join(self.path, wanted)}: {exc.strerror or exc}") from exc

    def _publish(self, temporary: str, name: str, replace: bool) -> str:
        """Rename `temporary` to `name` (replace) or to the first free suffixed name; return it."""
        if replace:
            self._rename(temporary, name, os.rename)
            return name
        attempt = self._next_suffix.get(name, 0)
        while True:
            candidate = suffixed_name(name, attempt)
            try:
                self._rename(temporary, candidate, _rename_no_replace)
                break
            except FileExistsError:
                attempt += 1
        self._next_suffix[name] = attempt + 1
        return candidate

    def _rename(self, temporary: str, name: str, rename) -> None:
        try:
            rename(temporary, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except FileExistsError:
            raise   # the name is taken: _publish tries the next one
        except OSError as exc:
            raise CantCreateError(f"{os.path.join(self.path, name)}: {exc.strerror or exc}") from exc

    def _remove_orphans(self, opened_at: float) -> None:
        try:
            with os.scandir(self._fd) as entries:
                orphans = [entry.name for entry in entries if _is_orphan(entry, opened_at)]
        except OSError:
            return   # cleaning up is a courtesy: a directory we cannot list is still written into
        for name in orphans:
            try:
                os.unlink(name, dir_fd=self._fd)
            except OSError:
                pass


class OutputFile:
    """One file being written: a temporary file until commit() gives it its name.

    Write to `stream`. As a context manager it commits when the block succeeds and
    discards the data when it fails; `written_name` is the name it got.
    """

    def __init__(self, directory: OutputDirectory, name: str, replace: bool):
        self._directory, self._name, self._replace = directory, name, replace
        self._temporary, fd = directory._create_temporary(name)
        self.stream: BinaryIO = os.fdopen(fd, "wb")
        self.written_name: str | None = None
        directory._uncommitted.add(self)

    def commit(self) -> str:
        """Put the data on disk, then give the file its name (returned). On failure
        nothing is left, not even the temporary file."""
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            self.written_name = self._directory._publish(self._temporary, self._name, self._replace)
        except BaseException:
            self.discard()
            raise
        self._directory._uncommitted.discard(self)
        return self.written_name

    def discard(self) -> None:
        """Close and remove the temporary file; quietly, as this runs after an error
        (a full disk makes closing fail too)."""
        self._directory._uncommitted.discard(self)
        try:
            self.stream.close()
        except OSError:
            pass
        try:
            os.unlink(self._temporary, dir_fd=self._directory._fd)
        except OSError:
            pass

    def __enter__(self) -> "OutputFile":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


@contextmanager
def atomic_output(path: str) -> Iterator[BinaryIO]:
    """Yield a writable binary stream for the file `path`, written as the shell's `>`
    would, but never leaving half a file:

    - nothing there, or a regular file: written under a temporary name beside it and
      renamed to PATH only when the block succeeds;
    - a symlink is followed: the file it points to is replaced (or created), the link stays;
    - a device, FIFO or socket is written into directly: it is not a file to replace.
    """
    existing = _stat(path)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise CantCreateError(f"{path}: is a directory")
    target = os.path.realpath(path)
    # A regular file reached through a /proc magic link (/dev/stdout to a deleted file)
    # has no real path to rename onto: written into, like any file the shell opens.
    if existing is None or (stat.S_ISREG(existing.st_mode) and os.path.samestat(existing, _stat(target))):
        with OutputDirectory(os.path.dirname(target), wanted=path) as directory:
            with directory.new_file(os.path.basename(target), replace=True) as output:
                yield output.stream
        return
    try:
        stream = open(path, "wb")
    except OSError as exc:
        raise CantCreateError(f"{path}: {exc.strerror or exc}") from exc
    with stream:
        yield stream


def _stat(path: str) -> os.stat_result | None:
    """os.stat(path) following symlinks; None if nothing is there (or a dangling link)."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CantCreateError(f"{path}: {exc.strerror or exc}") from exc


@functools.cache
def _host_tag() -> str:
    """The host in our temporary names, so that a directory shared over the network is only
    cleaned of orphans whose process can be looked up here. Made on first use: hashlib loads
    OpenSSL, and reading mail (`scan`) writes no file."""
    import hashlib
    return hashlib.sha256(os.uname().nodename.encode()).hexdigest()[:8]


def _is_orphan(entry: os.DirEntry, opened_at: float) -> bool:
    """A temporary file of ours that a killed run left: see the module docstring."""
    match = _TEMP_NAME.fullmatch(entry.name)
    if not match or match["host"] != _host_tag() or not process_is_gone(int(match["pid"])):
        return False
    try:
        return entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < opened_at
    except OSError:
        return False


def process_is_gone(pid: int) -> bool:
    """No process `pid` on this host (one we may not signal still exists): what a temporary
    file or a lock it left needs before anyone else may remove or break it."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):   # OverflowError: no pid is that large
        return True
    except OSError:
        return False
    return False


def _rename_no_replace(source: str, target: str, *, src_dir_fd: int, dst_dir_fd: int) -> None:
    """rename(2) that fails with FileExistsError instead of replacing `target` (also a
    symlink or a directory): renameat2(RENAME_NOREPLACE) where the kernel and the file
    system have it (vfat has no hard links but has this), else link(2) then unlink(2)."""
    renameat2 = _renameat2()
    if renameat2 is not None:
        try:
            return renameat2(src_dir_fd, source, dst_dir_fd, target)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
    os.link(source, target, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
    os.unlink(source, dir_fd=src_dir_fd)


@functools.cache
def _renameat2() -> Callable[[int, str, int, str], None] | None:
    """renameat2(2) with RENAME_NOREPLACE, raising OSError (FileExistsError for EEXIST), or
    None where the C library has none. Loaded on first use: ctypes costs start-up time
    that commands writing no file should not pay."""
    try:
        import ctypes
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (ImportError, OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]

    def rename_no_replace(src_dir_fd: int, source: str, dst_dir_fd: int, target: str) -> None:
        if function(src_dir_fd, os.fsencode(source), dst_dir_fd, os.fsencode(target), _RENAME_NOREPLACE):
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error), target)   # EEXIST makes a FileExistsError
    return rename_no_replace
