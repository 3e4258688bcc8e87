"""Maildir (https://cr.yp.to/proto/maildir.html): atomic, durable delivery, one file a message.

A message is written into tmp/, fsync'd, renamed into new/ (or cur/ with an info suffix
":2,FLAGS"), and the directory fsync'd. Readers never see a partial message; a writer
killed mid-delivery leaves a file in tmp/ that the next writer removes once its process is
gone. Messages are kept with LF line endings, as Postfix and Dovecot keep them.
`Maildir.begin` is that path taken piece by piece (a server writes as the data arrives);
`add` is built on it, so there is one way a message gets into a Maildir. A caller that
adds many messages in a row (fetch) may leave the directory fsync to one
`sync_directories()` for a batch: each message's bytes are still fsync'd before its name
exists, and only its name waits (`add(..., sync_directory=False)`).
"""

import errno
import itertools
import os
import re
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator

from mimekit.errors import CantCreateError, IOFailure, NoInputError
from mimekit.limits import parse_decimal
from mimekit.stores.common import MAILDIR_FLAGS, host_name, normalised_flags
from mimekit.streams.files import CHUNK_SIZE, process_is_gone, read_chunks
from mimekit.streams.line_endings import LFNormaliser

if TYPE_CHECKING:
    from mimekit.stores.sources import MessageRef   # sources builds on this module


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_directories(*paths: str) -> None:
    """Create what is missing of each path (mode 0700), then fsync the parent of every
    directory created, once each: mail committed under a directory made now must not
    vanish with it in a crash. OSError when a path cannot be a directory."""
    parents: dict[str, None] = {}
    for path in paths:
        missing, existing = [], os.path.abspath(path)
        while not os.path.isdir(existing):
            missing.append(existing)
            existing = os.path.dirname(existing)
        os.makedirs(path, mode=0o700, exist_ok=True)
        parents.update((os.path.dirname(directory), None) for directory in reversed(missing))
    for parent in parents:
        _fsync_directory(parent)


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
                make_directories(*subdirs)
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

    def new_name(self) -> str:
        """A unique name for a message to come (begin and add take one given in advance)."""
        now = time.time()
        return (f"{int(now)}.M{int(now % 1 * 1e6):06d}P{os.getpid()}"
                f"Q{next(self._counter)}R{os.urandom(4).hex()}.{host_name()}")

    def final_path(self, name: str, flags: str = "") -> str:
        """Where the message named `name` with `flags` is once committed: new/NAME, or with
        flags cur/NAME:2,FLAGS."""
        flags = normalised_flags(flags)
        return os.path.join(self.path, "cur", f"{name}:2,{flags}") if flags else os.path.join(self.path, "new", name)

    def begin(self, flags: str = "", normalise: bool = True, name: str | None = None) -> "MaildirDelivery":
        """Start delivering a message whose bytes come piece by piece (an SMTP server's DATA):
        write() them, then commit() or abort(). Nothing is visible before the commit.
        `normalise=False` stores the bytes as given: they are a stored message already
        (normalising twice would turn CR CR LF into LF). `name`: one from new_name()."""
        return MaildirDelivery(self, normalised_flags(flags), normalise, name=name)

    def add(self, chunks: Iterable[bytes], flags: str = "", *, sync_directory: bool = True,
            name: str | None = None) -> str:
        """Deliver a message atomically and durably; return its final path.

        A failure while writing (including one raised by `chunks`) removes the tmp file,
        so nothing appears under new/ or cur/. With `sync_directory=False` the bytes are
        durable but the name is not until `sync_directories()` (one directory fsync for a
        batch of messages instead of one each: see the module docstring).
        """
        delivery = self.begin(flags, name=name)
        try:
            for data in chunks:
                delivery.write(data)
            return delivery.commit(sync_directory=sync_directory)
        finally:
            delivery.abort()

    def sync_directories(self, subdirectories: Iterable[str] = ("new", "cur")) -> None:
        """fsync new/ and cur/ (or those of them named): every name committed there so far,
        by this process or by one killed before its own directory fsync, survives a crash.
        IOFailure if not."""
        for sub in subdirectories:
            directory = os.path.join(self.path, sub)
            try:
                _fsync_directory(directory)
            except OSError as exc:
                raise IOFailure(f"{directory}: {exc.strerror or exc}") from exc

    def _scan(self) -> list[tuple[tuple, str, str]]:
        found = []
        for sub in ("new", "cur"):
            directory = os.path.join(self.path, sub)
            for entry in os.scandir(directory):
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                key = message_key(entry.name)
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
        return [(key, path, flags_of(path)) for _, key, path in found]

    def keys(self) -> list[str]:
        """Messages in new/ and cur/ in delivery order (the time in the unique name)."""
        return [key for key, _, _ in self.listing()]

    def message_path(self, key: str) -> str:
        """The file that holds message `key` now (its name changes with its flags)."""
        path = self._index.get(key)
        if path is None or not os.path.exists(path):  # flags may have renamed it meanwhile
            self.keys()
            path = self._index.get(key)
        if path is None:
            raise NoInputError(f"{self.path}: no message {key!r}")
        return path

    def open(self, key: str) -> BinaryIO:
        return open(self.message_path(key), "rb")

    def flags(self, key: str) -> str:
        """The message's flag letters (the info ":2,FLAGS" of its name), known ones only."""
        return flags_of(self.message_path(key))

    def set_flags(self, key: str, flags: str) -> str:
        """Give the message these flag letters in place of its known ones (letters another
        program keeps there, such as Dovecot's keywords a-z, stay) by renaming it into cur/
        as KEY:2,FLAGS, as a mail reader does (Maildir spec: a message read is no longer
        new). The rename is fsync'd; returns the new path."""
        flags = normalised_flags(flags)
        path = self.message_path(key)
        kept = set(os.path.basename(path).partition(":2,")[2]) - MAILDIR_FLAGS
        target = os.path.join(self.path, "cur", f"{key}:2,{''.join(sorted(set(flags) | kept))}")
        if path != target:
            try:
                os.rename(path, target)
            except OSError as exc:
                raise IOFailure(f"{path}: cannot set flags: {exc.strerror or exc}") from exc
            for sub in {"cur", os.path.basename(os.path.dirname(path))}:
                _fsync_directory(os.path.join(self.path, sub))
        self._index[key] = target
        return target

    def __iter__(self) -> Iterator["MessageRef"]:
        """The messages as references, in delivery order (see stores.sources)."""
        from mimekit.stores.sources import maildir_messages   # sources builds on this module
        return maildir_messages(self.path)

    def remove(self, *keys: str) -> None:
        """Unlink the messages' files, then fsync new/ and cur/ so they stay gone. Every key
        is looked up first: one that names no message removes nothing (NoInputError). A file
        another reader removes meanwhile is gone, as wanted; one another reader renames
        meanwhile (a flag change) is removed under its new name."""
        paths = [self.message_path(key) for key in keys]
        removed = [self._unlink(key, path) for key, path in zip(keys, paths)]
        for sub in {os.path.basename(os.path.dirname(path)) for path in paths + removed}:
            _fsync_directory(os.path.join(self.path, sub))

    def _unlink(self, key: str, path: str) -> str:
        """Unlink the message's file, found again by its key if it was renamed since `path`
        was looked up; the path removed (or last tried)."""
        for attempt in range(2):
            try:
                os.unlink(path)
                break
            except FileNotFoundError:
                if attempt:
                    break
                self.keys()                        # list again: renamed, or gone for good
                path = self._index.get(key, path)
            except OSError as exc:
                raise IOFailure(f"{path}: cannot remove: {exc.strerror or exc}") from exc
        self._index.pop(key, None)
        return path


class MaildirDelivery:
    """One message on its way into a Maildir: written into tmp/ with LF line endings as its
    bytes arrive, then committed (fsync, rename into new/ or cur/, fsync of that directory)
    or aborted (the tmp file removed). The only path by which mimekit writes a Maildir
    message. A failed write or commit removes the tmp file itself; abort() is then a no-op,
    and so is an abort() after a commit. With `link_to` (commit_with_copies), the tmp file
    is a second name of another delivery's fsync'd tmp file, and nothing is written."""

    def __init__(self, maildir: Maildir, flags: str, normalise: bool = True, link_to: str | None = None,
                 name: str | None = None):
        self.maildir = maildir
        self.name = name or maildir.new_name()
        self.tmp_path = os.path.join(maildir.path, "tmp", self.name)
        self.path = maildir.final_path(self.name, flags)   # where commit() puts it
        self.committed = False
        self._normaliser = LFNormaliser() if normalise else None
        self._file: BinaryIO | None = None
        try:
            if link_to is not None:        # another Maildir's delivery, written and fsync'd
                os.link(link_to, self.tmp_path)
                return
            fd = os.open(self.tmp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CantCreateError(f"{self.tmp_path}: {exc.strerror or exc}") from exc
        self._file = open(fd, "w+b", buffering=CHUNK_SIZE)

    @property
    def file(self) -> BinaryIO:
        """The open message file (readable too: a committed message stays readable through it
        even after a reader renamed or removed its name)."""
        if self._file is None:
            raise IOFailure(f"{self.tmp_path}: the delivery was aborted")
        return self._file

    def write(self, data: bytes) -> None:
        """Append `data` (any line endings; stored with LF). IOFailure removes the tmp file."""
        with self._failing_aborts():
            self.file.write(self._normaliser.feed(data) if self._normaliser else data)

    def finish(self) -> None:
        """No more data: write out what line-ending normalisation held back, so that reads
        through `file` see the whole message (commit() does this itself)."""
        with self._failing_aborts():
            if self._normaliser:
                self.file.write(self._normaliser.flush())
            self.file.flush()

    def _sync(self) -> None:
        self.finish()
        with self._failing_aborts():
            os.fsync(self.file.fileno())

    def commit(self, sync_directory: bool = True) -> str:
        """Make the message durable and visible; return its path. The file stays open (see
        `file`) until close() or abort(). With `sync_directory=False` its name is made
        durable by a later Maildir.sync_directories() instead (a batch's one fsync)."""
        return self.commit_with_copies([], sync_directory=sync_directory)[0]

    def commit_with_copies(self, maildirs: list[Maildir], sync_directory: bool = True) -> list[str]:
        """commit(), and the same message into the new/ of each of `maildirs` under a unique
        name of its own (other recipients: each may remove or flag its copy alone); return
        the paths, this one first. Every copy is made in its Maildir's tmp/ from this tmp
        file, which no reader can move or remove, before any is renamed into place: a
        failure leaves no copy visible (a crash between the renames may leave some). A copy
        is a hard link, one file on disk for all; on another file system, a copy of the
        stored bytes."""
        self._sync()
        copies: list[MaildirDelivery] = []
        try:
            copies += [self._copy_into(maildir) for maildir in maildirs]
        except BaseException:
            for copy in [*copies, self]:
                copy.abort()
            raise
        deliveries = [self, *copies]
        renamed: list[MaildirDelivery] = []
        try:
            for delivery in deliveries:
                os.rename(delivery.tmp_path, delivery.path)
                renamed.append(delivery)
        except OSError as exc:
            for delivery in renamed:       # taken back: the sender is told to try again
                _remove_quietly(delivery.path)
            for delivery in deliveries:
                delivery.abort()
            raise IOFailure(f"{exc.filename}: {exc.strerror or exc}") from exc
        for delivery in deliveries:
            delivery.committed = True
            delivery.maildir._index[delivery.name] = delivery.path
        for copy in copies:
            copy.close()
        if sync_directory:
            try:
                for directory in dict.fromkeys(os.path.dirname(delivery.path) for delivery in deliveries):
                    _fsync_directory(directory)
            except OSError as exc:
                raise IOFailure(f"{self.path}: {exc.strerror or exc}") from exc
        return [delivery.path for delivery in deliveries]

    def _copy_into(self, maildir: Maildir) -> "MaildirDelivery":
        """This fsync'd message, uncommitted, in `maildir`'s tmp/ (see commit_with_copies)."""
        try:
            return MaildirDelivery(maildir, "", link_to=self.tmp_path)
        except CantCreateError as exc:
            if getattr(exc.__cause__, "errno", None) != errno.EXDEV:
                raise
        copy = maildir.begin(normalise=False)
        with copy._failing_aborts():
            self.file.seek(0)
            for data in read_chunks(self.file):
                copy.write(data)
        copy._sync()
        return copy

    def abort(self) -> None:
        """Remove the tmp file (not a committed message), and close the file."""
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError:
                pass   # the buffered rest could not be written (a full disk): it is discarded anyway
        if not self.committed:
            _remove_quietly(self.tmp_path)   # already removed, or tmp/ is gone: nothing of it is visible anyway

    close = abort

    @contextmanager
    def _failing_aborts(self):
        try:
            yield
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise IOFailure(f"{self.tmp_path}: {exc.strerror or exc}") from exc
            raise


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def message_key(name: str) -> str:
    """The key of a message file in new/ or cur/: its unique name, without the info ":2,FLAGS"."""
    return name.split(":", 1)[0]


def flags_of(path: str) -> str:
    """The known flag letters of a message file's info (":2,FLAGS"), sorted."""
    info = os.path.basename(path).partition(":2,")[2]
    return "".join(sorted(set(info) & MAILDIR_FLAGS))
