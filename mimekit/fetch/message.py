"""A message as fetch handles it: what a source lists about it before the transfer
(ListedMessage), and what is read from its header block (read_headers, message_id_of). The
sources, the outputs and the fetch loop all need these, and none of them owns the others.
"""

import re
from dataclasses import dataclass
from typing import BinaryIO

HEADER_LIMIT = 256 * 1024   # header bytes kept at most, so a message with no blank line costs no more


@dataclass(slots=True)
class ListedMessage:
    """One message at the source, as listed before transfer."""
    id: str                    # IMAP UID, POP3 UIDL, or the local store's key
    number: int                # IMAP UID, POP3 message number, or position in the store
    size: int | None = None    # as the source reports it (IMAP RFC822.SIZE, POP3 LIST)
    flags: tuple[str, ...] = ()
    header_id: str | None = None   # Message-ID, when asked for (IMAP with --new)


def read_headers(stream: BinaryIO) -> bytes:
    """The header block at the start of `stream`, its blank line included."""
    data = bytearray()
    while len(data) < HEADER_LIMIT:
        line = stream.readline(HEADER_LIMIT)
        if not line:
            break
        data += line
        if line in (b"\n", b"\r\n"):
            break
    return bytes(data)


def field_value(headers: bytes, name: str) -> str | None:
    """The first `name` field of a header block, unfolded (None if absent or empty)."""
    match = re.search(rb"^" + re.escape(name.encode("ascii")) + rb":[ \t]*((?:[^\r\n]|\r?\n[ \t])*)",
                      headers, re.I | re.M)
    if not match:
        return None
    value = b" ".join(match.group(1).split()).decode("utf-8", "replace")
    return value or None


def message_id_of(headers: bytes) -> str | None:
    """The Message-ID in a header block: --new records it, so that a message can be
    recognised after a UIDVALIDITY change has renumbered the mailbox."""
    return field_value(headers, "Message-ID")
