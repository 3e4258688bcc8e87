"""The SMTP envelope of a message, and the Bcc filter that runs before transmission.

The envelope is what the server delivers by (RFC 5321 §2.3.1); the header is what the
recipients read. The sender comes from --from or else the From header (Sender when From
names several mailboxes, RFC 5322 §3.6.2); recipients come from --to and, with -t, from
To, Cc and Bcc as sendmail -t does (header recipients are added to the command line's).
Bcc recipients get the message, but the Bcc field itself is never transmitted (RFC 5322
§3.6.3, first method).

One streaming pass (`BccRemover`) both drops the Bcc fields and captures the fields the
envelope is read from, so the Bcc that is removed is exactly the Bcc whose addresses are
used: a second reader with its own idea of where the header ends could disagree, and a
Bcc read but not removed would be a leak.
"""

import re
import tempfile
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO, Iterable, Iterator

from mimekit.addresses import addr_specs, parse_address_list
from mimekit.errors import DataError, UsageError
from mimekit.files import open_input, read_chunks
from mimekit.limits import Limits
from mimekit.smtp_client import OutgoingMessage
from mimekit.smtp_data import CRLFNormaliser, MessageScanner

RECIPIENT_FIELDS = frozenset({"to", "cc", "bcc"})
ENVELOPE_FIELDS = RECIPIENT_FIELDS | {"from", "sender"}
MAX_FIELD_NAME = 1000   # a "name" longer than a line cannot be a field name
MAX_CAPTURED_FIELD = Limits().max_header_field_size
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: tuple[str, ...]


class BccRemover:
    """Streaming filter: the message minus every Bcc field (with its continuation lines)
    in the top-level header block; everything after the header block passes untouched.
    Line endings are CRLF, LF or a lone CR, as the parser reads them. Fields named in
    `capture` are collected in `fields` as (name, raw value) on the way.

    State: whether we are still in the header block, whether the current field is being
    dropped or captured, the start of a line until its field name is known (at most ~1000
    bytes), and whether a chunk ended on a CR that a LF may complete.
    """

    def __init__(self, capture: frozenset[str] = frozenset()):
        self.fields: list[tuple[str, bytes]] = []
        self._capture = capture
        self._captured: bytearray | None = None   # the raw field being captured
        self._in_headers = True
        self._pending = b""           # the start of a line whose kind is not known yet
        self._in_line = False         # inside a line whose kind is known
        self._dropping = False        # the current field is Bcc
        self._lf_may_follow = False   # the last line ended with a CR at the end of a chunk

    def feed(self, data: bytes) -> bytes:
        if not self._in_headers or not data:
            return data
        out = []
        if self._lf_may_follow and data.startswith(b"\n"):   # the rest of a CRLF
            self._take(b"\n", out)
            data = data[1:]
        self._lf_may_follow = False
        while data and self._in_headers:
            if not self._in_line:
                data = self._start_line(data)
                continue
            end = _LINE_END.search(data)
            if end is None:
                piece, data = data, b""
            else:
                piece, data = data[:end.end()], data[end.end():]
                self._in_line = False
                self._lf_may_follow = end.group() == b"\r" and not data
            self._take(piece, out)
        out.append(data)   # what follows the header block
        return b"".join(out)

    def _take(self, piece: bytes, out: list) -> None:
        """A piece of the current field's line: kept or dropped, and captured if wanted."""
        if not self._dropping:
            out.append(piece)
        if self._captured is not None:
            self._captured += piece
            if len(self._captured) > MAX_CAPTURED_FIELD:
                raise DataError(f"a header field read for the envelope is over {MAX_CAPTURED_FIELD} bytes")

    def _start_line(self, data: bytes) -> bytes:
        """Classify the line starting in `_pending + data`; return what is left to process."""
        start, self._pending = self._pending + data, b""
        if start.startswith((b"\r", b"\n")):   # the blank line ends the header block
            self._end_field()
            self._in_headers = False
            return start
        if not start.startswith((b" ", b"\t")):  # a new field; continuations keep the decision
            colon, end = start.find(b":"), _LINE_END.search(start)
            if colon < 0 and end is None and len(start) < MAX_FIELD_NAME:
                self._pending = start             # the field name is not complete yet
                return b""
            self._end_field()
            is_field = 0 <= colon and (end is None or colon < end.start())
            name = start[:colon].rstrip(b" \t").lower().decode("latin-1") if is_field else ""
            self._dropping = name == "bcc"
            if name in self._capture:
                self._captured = bytearray()
        self._in_line = True
        return start

    def _end_field(self) -> None:
        if self._captured is not None:
            name, _, value = bytes(self._captured).partition(b":")
            self.fields.append((name.strip().decode("latin-1"), value.rstrip(b"\r\n")))
            self._captured = None

    def flush(self) -> bytes:
        """The end of the message; a line cut short before its colon is not a Bcc field."""
        if self._in_headers:
            self._end_field()
        held, self._pending = self._pending, b""
        return held


def remove_bcc(chunks: Iterable[bytes]) -> Iterator[bytes]:
    remover = BccRemover()
    for chunk in chunks:
        out = remover.feed(chunk)
        if out:
            yield out
    tail = remover.flush()
    if tail:
        yield tail


def addresses_in(values: Iterable[str | bytes]) -> list[str]:
    """The addr-specs of header values or command-line arguments ("Name <a@b>", groups)."""
    found = []
    for value in values:
        mailboxes, _defects = parse_address_list(value)
        found.extend(addr_specs(mailboxes))
    return found


def envelope_for(fields: list[tuple[str, bytes]], sender: str | None = None, to: Iterable[str] = (),
                 extract: bool = False) -> Envelope:
    """The envelope of a message whose top-level header has `fields` (name, raw value)."""
    def field_addresses(*names: str) -> list[str]:
        return addresses_in(raw for name, raw in fields if name.lower() in names)

    if sender is not None:
        senders = addresses_in([sender]) if sender else [""]   # "" is the null sender <>
        if len(senders) != 1:
            raise UsageError(f"--from {sender!r}: give exactly one address")
        envelope_sender = senders[0]
    else:
        authors = field_addresses("from")
        if len(authors) > 1:
            authors = field_addresses("sender")[:1] or authors[:1]
        if not authors:
            raise DataError("the message has no usable From address; give --from")
        envelope_sender = authors[0]
    recipients = addresses_in(to)
    if extract:
        recipients += field_addresses(*RECIPIENT_FIELDS)
    return Envelope(envelope_sender, tuple(dict.fromkeys(recipients)))


def prepare_message(path: str, sender: str | None = None, to: Iterable[str] = (),
                    extract: bool = False) -> OutgoingMessage:
    """Read a message once (stdin is spooled to an anonymous temporary file): its
    envelope, and the pre-scan of the bytes that will be transmitted."""
    source = open_input(path)
    spool = tempfile.TemporaryFile(prefix="mimekit-send-") if path == "-" else None
    remover = BccRemover(capture=ENVELOPE_FIELDS)
    normaliser, scanner = CRLFNormaliser(), MessageScanner()
    try:
        for chunk in read_chunks(source):
            if spool:
                spool.write(chunk)
            scanner.feed(normaliser.feed(remover.feed(chunk)))
        scanner.feed(normaliser.feed(remover.flush()) + normaliser.flush())
    finally:
        if not spool:
            source.close()
    envelope = envelope_for(remover.fields, sender, to, extract)
    if spool:
        spool.flush()
    return OutgoingMessage(path, envelope.sender, envelope.recipients, scanner.scan,
                           partial(_transmitted_bytes, path, spool))


def _transmitted_bytes(path: str, spool: BinaryIO | None) -> Iterator[bytes]:
    """The message as it goes out: read again (from the spool for stdin), Bcc removed."""
    if spool:
        spool.seek(0)
        yield from remove_bcc(read_chunks(spool))
    else:
        with open_input(path) as stream:
            yield from remove_bcc(read_chunks(stream))

