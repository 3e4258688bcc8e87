"""Maildir (https://cr.yp.to/proto/maildir.html): atomic, durable delivery, one file a message.

A message is written into tmp/, fsync'd, renamed into new/ (or cur/ with an info suffix
":2,FLAGS"), and the directory fsync'd. Readers never see a partial message; a writer
killed mid-delivery leaves a file in tmp/ that the next writer removes once its process is
gone. Messages are kept with LF line endings, as Postfix and Dovecot keep them.
"""

import itertools
import os
import re
import time
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator

from mimekit.errors import CantCreateError, IOFailure, NoInputError
from mimekit.limits import parse_decimal
from mimekit.stores.common import MAILDIR_FLAGS, as_stored, host_name, normalised_flags
from mimekit.streams.files import process_is_gone

if TYPE_CHECKING:
    from mimekit.stores.sources import MessageRef   # sources builds on this module


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



# Our unique names: "<seconds>.M<microseconds>P<pid>Q<counter>R<random>.<host>".
_OUR_UNIQUE_NAME = re.compile(r"[0-9]+\.M[0-9]+P([0-9]{1,10})Q[0-9]+R[0-9a-f]+\.(.+)")
TMP_ABANDONED_AFTER = 36 * 3600   # the Maildir spec's age after which anyone may clean tmp/


class Maildir:
    """A Maildir; keys are the unique base names (without the ":2,FLAGS" info)."""

    _counter = itertools.count()
    validity = None               # unique names are never reused

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
        elif not all(os.path.isdir(sub) for sub in subdirs[1:]):   # tmp/ is for writers; archives drop it
            raise NoInputError(f"{path}: not a Maildir (needs new/ and cur/)")
        self._index: dict[str, str] = {}

    def _remove_abandoned_tmp(self) -> None:
        """Remove from tmp/ what a killed writer left: our own files whose process is gone
        from this host, and anything older than the spec's 36 hours. A live writer's file
        is never touched, and tmp/ is never read as mail, so this only frees space."""
        host, now = host_name(), time.time()
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
                f"Q{next(self._counter)}R{os.urandom(4).hex()}.{host_name()}")

    def add(self, chunks: Iterable[bytes], flags: str = "") -> str:
        """Deliver a message atomically and durably; return its final path.

        A failure while writing (including one raised by `chunks`) removes the tmp file,
        so nothing appears under new/ or cur/.
        """
        flags = normalised_flags(flags)
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

    def listing(self) -> list[tuple[str, str, str]]:
        """(key, file path, flag letters) of the messages in new/ and cur/, in delivery
        order (the time in the unique name)."""
        found = sorted(self._scan())
        self._index = {key: path for _, key, path in found}
        return [(key, path, _flags_of(path)) for _, key, path in found]

    def keys(self) -> list[str]:
        """Messages in new/ and cur/ in delivery order (the time in the unique name)."""
        return [key for key, _, _ in self.listing()]

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
        return _flags_of(self._path(key))

    def __iter__(self) -> Iterator["MessageRef"]:
        """The messages as references, in delivery order (see stores.sources)."""
        from mimekit.stores.sources import messages_of   # sources builds on this module
        return messages_of(f"maildir:{self.path}")

    def remove(self, *keys: str) -> None:
        """Unlink the messages' files, then fsync new/ and cur/ so they stay gone. Every key
        is looked up first: one that names no message removes nothing (NoInputError). A file
        another reader removes meanwhile is gone, as wanted."""
        paths = [self._path(key) for key in keys]
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise IOFailure(f"{path}: cannot remove: {exc.strerror or exc}") from exc
            self._index.pop(os.path.basename(path).split(":", 1)[0], None)
        for sub in {os.path.basename(os.path.dirname(path)) for path in paths}:
            _fsync_directory(os.path.join(self.path, sub))


def _flags_of(path: str) -> str:
    """The known flag letters of a message file's info (":2,FLAGS"), sorted."""
    info = os.path.basename(path).partition(":2,")[2]
    return "".join(sorted(set(info) & MAILDIR_FLAGS))
