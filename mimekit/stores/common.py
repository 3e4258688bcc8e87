"""What both stores share: how a message is kept on disk (LF line endings), the flag
letters they understand (Maildir's, which an mbox keeps as Status lines), and the host
name that Maildir unique names and mbox dotlocks carry."""

from typing import Iterable, Iterator

from mimekit.errors import UsageError
from mimekit.streams.filters import chain
from mimekit.streams.line_endings import LFNormaliser

MAILDIR_FLAGS = set("DFPRST")  # draft, flagged, passed, replied, seen, trashed


def as_stored(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A message's bytes as both stores keep them (and give them back from `open`): LF
    line endings. What a caller compares a stored message with."""
    return chain(chunks, LFNormaliser())


def host_name() -> str:
    """This host's name as Maildir unique names and our dotlocks carry it."""
    import socket   # here, not at the top: reading a store never needs it, and it is slow to import
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def normalised_flags(flags: str) -> str:
    """`flags` sorted and deduplicated; UsageError for a letter neither store knows."""
    unknown = set(flags) - MAILDIR_FLAGS
    if unknown:
        raise UsageError(f"unknown message flags {''.join(sorted(unknown))!r}; "
                         f"known: {''.join(sorted(MAILDIR_FLAGS))}")
    return "".join(sorted(set(flags)))
