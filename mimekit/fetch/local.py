"""A local Maildir or mbox as a fetch source, with the interface of the IMAP and POP3
sessions, so the whole pipeline (send to a store, fetch from it) runs without a server.
"""

# Annotations stay unevaluated: the list() method would shadow list[...] in them.
from __future__ import annotations

import os
from typing import Iterator

from mimekit.errors import NoInputError
from mimekit.fetch.message import ListedMessage, read_headers
from mimekit.fetch.sinks import imap_flags
from mimekit.streams.files import read_chunks
from mimekit.stores.local import open_store
from mimekit.transport.urls import ServerURL


class LocalSource:
    """maildir:PATH or mbox:PATH as a source: the store's keys are the ids."""

    id_kind = "key"
    stable_ids = True
    validity = None
    lists_everything = True

    def __init__(self, url: ServerURL):
        self.url = url
        self.store = None
        self.account = f"{url.scheme}:{os.path.realpath(url.path)}"

    def open(self, password=None, read_only: bool = True) -> None:
        if not os.path.exists(self.url.path):
            raise NoInputError(f"{self.url.path}: no such {self.url.scheme} store")
        self.store = open_store(self.url, create=False)

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

    @staticmethod
    def public_id(message: ListedMessage) -> str:
        return message.id

    def close(self) -> None:
        pass
