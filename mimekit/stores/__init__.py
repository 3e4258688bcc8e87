"""Local message stores: Maildir and mbox, behind one Mailbox interface.

These are the embedded default that lets send and fetch run on a machine with no server.
Both keep messages with LF line endings, converting CRLF while streaming, as Postfix and
Dovecot do; `open()` returns a message as stored. `open_mailbox` picks the store a
"maildir:PATH" or "mbox:PATH" URL (or an existing directory or file) names; iterating it
yields MessageRefs. `sources.messages` reads any mix of files, directories and stores.
"""

import os
from typing import TYPE_CHECKING, BinaryIO, Iterable, Iterator, Protocol, runtime_checkable

from mimekit.errors import UsageError
from mimekit.stores.sources import MessageRef

if TYPE_CHECKING:
    from mimekit.stores.maildir import Maildir
    from mimekit.stores.mbox import Mbox
    from mimekit.transport.urls import ServerURL


def __getattr__(name: str):
    """Maildir and Mbox are loaded on first use (PEP 562), so reading messages (`show` and
    `scan` import stores.sources, and with it this package) pays for neither them nor the
    URL parser until a source is a Maildir or an mbox."""
    if name == "Maildir":
        from mimekit.stores.maildir import Maildir
        return Maildir
    if name == "Mbox":
        from mimekit.stores.mbox import Mbox
        return Mbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@runtime_checkable
class Mailbox(Protocol):
    """What every store offers. Keys are strings naming one message in one store: a
    Maildir's unique names never change; an mbox's keys are byte offsets, so removing a
    message changes the keys of the messages after it (see `validity`)."""

    path: str

    def keys(self) -> list[str]:
        """Every message's key, in delivery order."""

    def __iter__(self) -> Iterator["MessageRef"]:
        """The messages as MessageRefs (stores.sources), in the order of `keys()`: small,
        picklable references that `mimekit.scan_message`, `summarise` and `extract` take,
        here or in a worker process."""

    def open(self, key: str) -> BinaryIO:
        """The message as stored (LF line endings); NoInputError if `key` names none."""

    def add(self, chunks: Iterable[bytes], flags: str = "") -> str:
        """Store a message atomically and durably, with Maildir flag letters; return
        where it went (a Maildir file's path, an mbox key)."""

    def remove(self, *keys: str) -> None:
        """Remove these messages durably, all or (if one of them is not there: NoInputError)
        none."""

    def flags(self, key: str) -> str:
        """The message's Maildir flag letters, sorted."""

    @property
    def validity(self) -> int | None:
        """Changes whenever keys are renumbered (an mbox rewritten by `remove`), like IMAP's
        UIDVALIDITY; None for a store whose keys are never reused."""


def open_mailbox(url_or_path: "ServerURL | str", create: bool = True) -> Mailbox:
    """The store that a maildir:PATH or mbox:PATH URL names, or a plain path to an existing
    Maildir (a directory) or mbox (a file). `create`: make the store if it is missing (a
    plain path must then say which kind by its scheme)."""
    from mimekit.stores.maildir import Maildir
    from mimekit.stores.mbox import Mbox
    from mimekit.transport.urls import LOCAL_STORES, parse_url
    if isinstance(url_or_path, str):
        scheme = url_or_path.partition(":")[0].lower()
        if scheme in LOCAL_STORES:
            url_or_path = parse_url(url_or_path, LOCAL_STORES)
        elif os.path.isdir(url_or_path):
            return Maildir(url_or_path, create=False)
        elif os.path.isfile(url_or_path):
            return Mbox(url_or_path, create=False)
        else:
            raise UsageError(f"{url_or_path}: no such mailbox; to create one, name its kind: "
                             "maildir:PATH or mbox:PATH")
    if url_or_path.scheme == "maildir":
        return Maildir(url_or_path.path, create)
    if url_or_path.scheme == "mbox":
        return Mbox(url_or_path.path, create)
    raise UsageError(f"{url_or_path.scheme}: is not a local store (expected maildir: or mbox:)")


__all__ = ["Mailbox", "Maildir", "Mbox", "MessageRef", "open_mailbox"]
