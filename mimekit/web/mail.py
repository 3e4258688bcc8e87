"""WebMail: everything the page and the API do to mail, without HTTP.

The folders come from the sources once, at start (folders.discover_folders); the header
index (index.HeaderIndex) answers lists and searches; a message is opened from its store
by the reference the index keeps. Changes (flags, delete) go to the store first, then to
the index, so that the store stays the truth whatever happens between the two.

Every method is blocking (disk, SQLite): the HTTP layer calls them in a thread.
"""

import threading
from contextlib import contextmanager
from dataclasses import replace
from typing import BinaryIO, Iterator

from mimekit.errors import IOFailure, NoInputError, UsageError
from mimekit.stores.maildir import Maildir
from mimekit.web.config import WebConfig
from mimekit.web.folders import discover_folders
from mimekit.web.index import HeaderIndex
from mimekit.web.model import Folder, IndexedEmail, Page, Query


class ReadOnlyError(UsageError):
    """A change asked of a folder that cannot take it (an mbox, `mimekit web`): 403."""


class WebMail:
    def __init__(self, config: WebConfig, owners: dict[str, str] | None = None):
        self.config = config
        self.folders = discover_folders(config.sources, config.writable, owners)
        self._by_id = {folder.id: folder for folder in self.folders}
        self.index = HeaderIndex(config.index_path)
        self._refreshing = threading.Lock()

    def close(self) -> None:
        self.index.close()

    def visible_folders(self, user: str | None) -> list[Folder]:
        """The folders `user` may read: all of them, unless each user has their own (serve
        --domain with logins), where a user sees their own only."""
        if not self.config.per_user_folders or user is None:
            return list(self.folders)
        return [folder for folder in self.folders if folder.owner == user]

    def folder(self, folder_id: str, user: str | None = None) -> Folder:
        """NoInputError (404) for an unknown id or one this user may not read."""
        folder = self._by_id.get(folder_id)
        if folder is None or folder not in self.visible_folders(user):
            raise NoInputError(f"no folder {folder_id!r}")
        return folder

    def refresh(self) -> list[str]:
        """Bring the index up to date with every folder; the ids of the folders that changed.
        Cheap when nothing changed (the index looks at directory times first)."""
        with self._refreshing:
            return [folder.id for folder in self.folders if self.index.refresh(folder)]

    def search(self, folder_id: str, query: Query, position: int = 0, limit: int | None = None,
               user: str | None = None) -> Page:
        folder = self.folder(folder_id, user)
        limit = self.config.page_size if limit is None else limit
        if not 1 <= limit <= self.config.max_page_size:
            raise UsageError(f"limit: from 1 to {self.config.max_page_size}")
        if position < 0:
            raise UsageError("position: 0 or more")
        return self.index.search(folder.id, query, position, limit)

    def counts(self, folder_id: str) -> tuple[int, int]:
        """(messages, unread) of a folder."""
        return self.index.counts(folder_id)

    def email(self, email_id: str, user: str | None = None) -> IndexedEmail:
        """The indexed message; NoInputError (404) for an unknown id, one whose folder this
        user may not read, or one gone from its store since it was indexed."""
        email = self.index.get(email_id)
        if email is None:
            raise NoInputError(f"no message {email_id!r}")
        self.folder(email.folder_id, user)
        return email

    def open(self, email_id: str, user: str | None = None) -> BinaryIO:
        """The message as stored, open for reading (the caller closes it)."""
        email = self.email(email_id, user)
        with _gone_from_store(email_id):
            return email.ref.open()     # a Maildir message renamed by a flag change is found by its key

    def _maildir_of(self, email: IndexedEmail) -> Maildir:
        folder = self._by_id[email.folder_id]
        if not folder.writable or folder.kind != "maildir":
            raise ReadOnlyError(f"folder {folder.name!r} is read-only")
        return Maildir(email.ref.mailbox, create=False)

    def set_flags(self, email_id: str, add: str = "", remove: str = "", user: str | None = None) -> IndexedEmail:
        """Add and remove Maildir flag letters ("S" for read); the message as now indexed."""
        email = self.email(email_id, user)
        maildir = self._maildir_of(email)

        def change() -> str:
            """From the flags the file has now (another reader may have changed them since
            they were indexed), so that only `add` and `remove` change."""
            flags = "".join(sorted((set(maildir.flags(email.ref.key)) | set(add)) - set(remove)))
            maildir.set_flags(email.ref.key, flags)
            return flags

        with _gone_from_store(email_id):
            try:
                flags = change()
            except IOFailure as exc:
                if not _file_vanished(exc):
                    raise
                # Another reader renamed (its own flag change) or removed the file between the
                # look-up and the rename: look it up again; gone, it is a NoInputError.
                flags = change()
        self.index.update_flags(email_id, flags)
        return replace(email, flags=flags)      # not read back: a delete meanwhile would make it None

    def delete(self, email_id: str, user: str | None = None) -> None:
        email = self.email(email_id, user)
        maildir = self._maildir_of(email)
        with _gone_from_store(email_id):
            maildir.remove(email.ref.key)
        self.index.forget(email_id)


@contextmanager
def _gone_from_store(email_id: str) -> Iterator[None]:
    """A message another reader removed since it was indexed (POP3, a mail program) is a
    NoInputError naming its id, not the store's path. The index is left as it is: the next
    refresh (the watcher's) finds the removal and tells the open pages of it."""
    try:
        yield
    except NoInputError:
        raise NoInputError(f"message {email_id!r} is gone from its folder") from None
    except IOFailure as exc:
        if not _file_vanished(exc):
            raise
        raise NoInputError(f"message {email_id!r} is gone from its folder") from None


def _file_vanished(exc: IOFailure) -> bool:
    """The store's failure was its file going away under it (another reader's rename or removal)."""
    return isinstance(exc.__cause__, FileNotFoundError)
