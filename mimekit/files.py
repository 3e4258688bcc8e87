"""Opening inputs and outputs the way every command must (CONVENTIONS.md).

Inputs: a path or "-" for stdin; a missing or unreadable file is NoInputError.
Outputs: a path or "-" for stdout; a file is written under a temporary name in the
same directory and renamed into place, so an interrupted run never leaves half a
file under the final name.
"""

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Iterator

from mimekit.errors import CantCreateError, NoInputError

CHUNK_SIZE = 64 * 1024


def open_input(path: str) -> BinaryIO:
    """Open `path` for reading bytes ("-" is stdin), or raise NoInputError naming it."""
    if path == "-":
        return sys.stdin.buffer
    try:
        if os.path.isdir(path):
            raise NoInputError(f"{path}: is a directory")
        return open(path, "rb")
    except OSError as exc:
        raise NoInputError(f"{path}: {exc.strerror or exc}") from exc


def read_chunks(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield a stream's bytes in chunks of at most `chunk_size`."""
    while chunk := stream.read(chunk_size):
        yield chunk


@contextmanager
def atomic_output(path: str, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Yield a writable binary stream that becomes `path` only if the block succeeds.

    With overwrite=False an existing `path` is CantCreateError (exit 73).
    """
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CantCreateError(f"{path}: is a directory")
    if not overwrite and os.path.lexists(path):
        raise CantCreateError(f"{path}: already exists")
    try:
        fd, tmp_path = tempfile.mkstemp(prefix=".mimekit-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise CantCreateError(f"{path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(tmp_path, path)
        else:
            os.link(tmp_path, path)  # fails instead of replacing a file that appeared meanwhile
            os.unlink(tmp_path)
    except FileExistsError as exc:
        _remove_quietly(tmp_path)
        raise CantCreateError(f"{path}: already exists") from exc
    except BaseException:
        _remove_quietly(tmp_path)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
