"""Where fetch takes messages from: the Source protocol that the fetch loop (fetch.run) is
written against, and LocalSource, a Maildir or mbox behind it. The IMAP and POP3 clients
(mimekit.transport.imap.client, mimekit.transport.pop3.client) are the other sources; a
local one lets the whole pipeline (send to a store, fetch from it) run without a server.
"""

# Annotations stay unevaluated: the list() method would shadow list[...] in them.
from __future__ import annotations

import os
from typing import Callable, Iterator, Protocol, runtime_checkable

from mimekit.errors import NoInputError, TempFailure
from mimekit.fetch.message import ListedMessage, read_headers
from mimekit.fetch.sinks import imap_flags
from mimekit.streams.files import read_chunks
from mimekit.stores import open_mailbox
from mimekit.stores.mbox import Mbox
from mimekit.transport.urls import ServerURL


@runtime_checkable
class Source(Protocol):
    """A mailbox that fetch lists, reads and (after everything is saved) deletes from.

    `id_kind` names the ids in the report ("uid", "uidl", "number", "key"); `stable_ids`
    says they name the same message in a later session (POP3 without UIDL: no);
    `lists_everything` says `list` returns the whole mailbox, so the state may forget ids
    it no longer sees; `validity` is IMAP's UIDVALIDITY or its like (None: ids are never
    reused); `account` identifies the mailbox in the state's key. Attributes are valid
    from `open` on (`stable_ids` and `id_kind` from `list` on).
    """

    id_kind: str
    stable_ids: bool
    lists_everything: bool
    validity: int | None
    account: str

    def open(self, password: Callable[[], str] | None, read_only: bool = True,
             token: Callable[[], str] | None = None) -> None:
        """Connect and log in (asking `password`, or with OAuth2 `token`, only when needed),
        and select the mailbox."""

    def list(self, criteria: str | None) -> list[str]:
        """The ids of the messages, or of those an IMAP search `criteria` selects."""

    def describe(self, ids: list[str], with_message_id: bool) -> list[ListedMessage]:
        """What is known before transfer (size, flags; Message-ID if asked); ids removed
        meanwhile are left out."""

    def retrieve(self, messages: list[ListedMessage],
                 headers_only: bool) -> Iterator[tuple[ListedMessage, Iterator[bytes]]]:
        """Each message with its bytes as an iterator, to be consumed before the next."""

    def delete(self, ids: list[str]) -> int:
        """Delete these messages for good; how many were deleted."""

    def public_id(self, message: ListedMessage) -> str | int:
        """The id as the report shows it."""

    def close(self) -> None:
        """Log out and disconnect; never raises for a connection already lost."""


class LocalSource:
    """maildir:PATH or mbox:PATH as a source: the store's keys are the ids."""

    id_kind = "key"
    stable_ids = True
    lists_everything = True

    def __init__(self, url: ServerURL):
        self.url = url
        self.store = None
        self.validity = None
        self.account = f"{url.scheme}:{os.path.realpath(url.path)}"

    def open(self, password=None, read_only: bool = True, token=None) -> None:
        if not os.path.exists(self.url.path):
            raise NoInputError(f"{self.url.path}: no such {self.url.scheme} store")
        self.store = open_mailbox(self.url, create=False)
        if isinstance(self.store, Mbox) and os.path.exists(self.store.path + ".lock"):
            self.store.recover()   # a killed writer's cut append is no message to fetch
        self.validity = self.store.validity    # an mbox's keys are renumbered when it is rewritten

    def list(self, criteria: str | None) -> list[str]:
        return self.store.keys()

    def describe(self, ids: list[str], with_message_id: bool) -> list[ListedMessage]:
        """Each message with its flags (Maildir info, mbox Status), which every output keeps."""
        position = {key: n for n, key in enumerate(self.store.keys(), 1)} if ids else {}
        described = []
        for key in ids:
            try:
                described.append(ListedMessage(key, position.get(key, 0), flags=imap_flags(self.store.flags(key))))
            except NoInputError:
                continue                  # removed since it was listed
        return described

    def retrieve(self, messages: list[ListedMessage], headers_only: bool) -> Iterator[tuple[ListedMessage, Iterator[bytes]]]:
        for message in messages:
            try:
                stream = self.store.open(message.id)
            except NoInputError:
                continue                  # removed since it was listed
            with stream:
                yield message, (iter([read_headers(stream)]) if headers_only else read_chunks(stream))

    def delete(self, ids: list[str]) -> int:
        """Remove the messages from the store (fetch passes only those saved and recorded),
        an mbox in one rewrite. Refused if the store was rewritten since it was listed,
        as the keys may then name other messages."""
        if self.store.validity != self.validity:
            raise TempFailure(f"{self.url.path}: rewritten by another program since it was listed; "
                              "nothing deleted")
        present = set(self.store.keys())
        removed = [key for key in ids if key in present]
        self.store.remove(*removed)
        return len(removed)

    @staticmethod
    def public_id(message: ListedMessage) -> str:
        return message.id

    def close(self) -> None:
        pass
