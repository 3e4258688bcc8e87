"""The SMTP envelope of a message, and the Bcc filter that runs before transmission.

The envelope is what the server delivers by (RFC 5321 §2.3.1); the header is what the
recipients read. The sender comes from --from or else the From header (Sender when From
names several mailboxes, RFC 5322 §3.6.2); recipients come from --to and, with -t, from
To, Cc and Bcc as sendmail -t does (header recipients are added to the command line's).
A message with Resent- fields is being resent (RFC 5322 §3.6.6): its envelope is the
resending's, Resent-From (Resent-Sender) and Resent-To, Resent-Cc and Resent-Bcc, as
sendmail and Postfix read it; the original To and Cc already got the message.
Bcc and Resent-Bcc recipients get the message, but those fields are never transmitted
(RFC 5322 §3.6.3, first method).

Every envelope address is read without guessing: a --to or --from value is exactly one
mailbox (`addr` or `Name <addr>`), and any defect, or an addr-spec that SMTP cannot carry
as it is (addresses.envelope_entries), refuses it (DataError, exit 65). A lenient reading
would turn `--to 'bob@x.test <evil@y.test>'` into a message for evil@y.test. A header
field read for the envelope is held to the same rule; then only its message is refused.

One streaming pass (`BccRemover`) both drops the Bcc fields and captures the fields the
envelope is read from, so the Bcc that is removed is exactly the Bcc whose addresses are
used: a second reader with its own idea of where the header ends could disagree, and a
Bcc read but not removed would be a leak.
"""

import re
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import BinaryIO, Iterable, Iterator

from mimekit.headers.addresses import Group, addr_specs, envelope_entries, shown_value
from mimekit.errors import DataError
from mimekit.streams.files import open_input, read_chunks, temporary_file
from mimekit.streams.filters import chain
from mimekit.streams.line_endings import CRLFNormaliser
from mimekit.limits import Limits
from mimekit.transport.smtp.client import OutgoingMessage
from mimekit.transport.smtp.data import MessageScanner

RECIPIENT_FIELDS = ("to", "cc", "bcc")
RESENT_PREFIX = "resent-"
# RFC 5322 §3.6.6: a resent block has Resent-Date and Resent-From, and may have the others.
RESENT_FIELDS = frozenset(RESENT_PREFIX + name for name in ("date", "from", "sender", "to", "cc", "bcc", "message-id"))
HIDDEN_FIELDS = frozenset({"bcc", "resent-bcc"})   # read for the envelope, never transmitted
ENVELOPE_FIELDS = frozenset({*RECIPIENT_FIELDS, "from", "sender"}) | RESENT_FIELDS
NULL_SENDER = ("", "<>")   # --from values for MAIL FROM:<>, as bounces are sent (RFC 5321 §4.5.5)
MAX_FIELD_NAME = 1000   # a "name" longer than a line cannot be a field name
MAX_CAPTURED_FIELD = Limits().max_header_field_size
KEEP_MESSAGE_BYTES = 64 * 1024          # a message this small is kept in memory from prepare to send
KEEP_TOTAL_BYTES = 16 * 1024 * 1024     # ... within this much for all the messages prepared at once
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BLANK_LINE_AFTER = re.compile(rb"\r\n[\r\n]|\r\r|\n[\r\n]")   # a line end, then the line that ends the header
_HIDDEN_NAME = re.compile(rb"bcc", re.IGNORECASE)   # in the name of every field in HIDDEN_FIELDS
# One field with its continuation lines, CRLF or LF line ends (a lone CR takes the line path):
# group 1 is the name, everything before the first line's colon.
_FIELD = re.compile(rb"(?![ \t])([^\r\n:]*):[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*")


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: tuple[str, ...]


class BccRemover:
    """Streaming filter: the message minus every Bcc and Resent-Bcc field (with its
    continuation lines) in the top-level header block; everything after the header block passes untouched.
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
        self._dropping = False        # the current field is Bcc or Resent-Bcc
        self._lf_may_follow = False   # the last line ended with a CR at the end of a chunk

    def feed(self, data: bytes) -> bytes:
        if not self._in_headers or not data:
            return data
        if self._rest_of_header_is_kept(data):
            self._in_headers = False
            return data
        whole_header = self._whole_header(data)
        if whole_header is not None:
            return whole_header
        out = []
        if self._lf_may_follow and data.startswith(b"\n"):   # the rest of a CRLF
            self._take(b"\n", out)
            data = data[1:]
        self._lf_may_follow = False
        if self._pending:
            data, self._pending = self._pending + data, b""
        pos, size = 0, len(data)   # positions, not slices: a slice of the rest per line was a copy
        while pos < size and self._in_headers:
            if not self._in_line:
                pos = self._start_line(data, pos)
                continue
            end = _LINE_END.search(data, pos)
            stop = size if end is None else end.end()
            self._take(data[pos:stop], out)
            if end is not None:
                self._in_line = False
                self._lf_may_follow = stop == size and end.group() == b"\r"
            pos = stop
        out.append(data[pos:])   # what follows the header block
        return b"".join(out)

    def _rest_of_header_is_kept(self, data: bytes) -> bool:
        """Does `data` hold the rest of the header block, starting on a new field, with no
        field to capture and none named Bcc? Then every line is kept and `data` passes as
        it is: two searches at C speed, where the line-by-line path cost 25 us for the
        header of a small message (the transmit pass of nearly every message)."""
        if self._capture or self._in_line or self._pending or self._dropping or self._lf_may_follow:
            return False
        if data.startswith((b"\r", b"\n")):
            return True
        blank_line = _BLANK_LINE_AFTER.search(data)
        return blank_line is not None and not _HIDDEN_NAME.search(data, 0, blank_line.end())

    def _whole_header(self, data: bytes) -> bytes | None:
        """`data` minus its Bcc fields, their fields captured, when it holds the rest of the
        header block starting on a new field; None (nothing done) for anything else, which
        the line-by-line path reads. One regex match per field: the envelope pass over
        bench_send's small message (7 fields) took 34 us line by line, 13 us so."""
        if self._in_line or self._pending or self._dropping or self._lf_may_follow or self._captured is not None:
            return None
        blank_line = _BLANK_LINE_AFTER.search(data)
        if blank_line is None:
            return None
        header_end = blank_line.end() - 1
        kept, kept_from, captured, pos = [], 0, [], 0
        while pos < header_end:
            field = _FIELD.match(data, pos, header_end)
            if field is None:   # a lone CR, a line without colon, a continuation first
                return None
            name = field[1].rstrip(b" \t").lower().decode("latin-1")
            if name in self._capture:
                captured.append(field[0])
            if name in HIDDEN_FIELDS:
                kept.append(data[kept_from:pos])
                kept_from = field.end()
            pos = field.end()
        for raw in captured:   # once the fields are known to be all there: never read twice
            _check_captured_size(len(raw))
            self._record(raw)
        self._in_headers = False
        if not kept:
            return data
        kept.append(data[kept_from:])
        return b"".join(kept)

    def _take(self, piece: bytes, out: list) -> None:
        """A piece of the current field's line: kept or dropped, and captured if wanted."""
        if not self._dropping:
            out.append(piece)
        if self._captured is not None:
            self._captured += piece
            _check_captured_size(len(self._captured))

    def _start_line(self, data: bytes, pos: int) -> int:
        """Classify the line starting at `pos`; return where to go on (the end of `data`
        when the start of the line is held back in `_pending`)."""
        first = data[pos:pos + 1]
        if first in (b"\r", b"\n"):   # the blank line ends the header block
            self._end_field()
            self._in_headers = False
            return pos
        if first not in (b" ", b"\t"):  # a new field; continuations keep the decision
            end = _LINE_END.search(data, pos)
            colon = data.find(b":", pos, len(data) if end is None else end.start())
            if colon < 0 and end is None and len(data) - pos < MAX_FIELD_NAME:
                self._pending = data[pos:]             # the field name is not complete yet
                return len(data)
            self._end_field()
            name = data[pos:colon].rstrip(b" \t").lower().decode("latin-1") if colon >= 0 else ""
            self._dropping = name in HIDDEN_FIELDS
            if name in self._capture:
                self._captured = bytearray()
        self._in_line = True
        return pos

    def _end_field(self) -> None:
        if self._captured is not None:
            self._record(bytes(self._captured))
            self._captured = None

    def _record(self, raw: bytes) -> None:
        """A captured field, its raw bytes up to the next field, as (name, raw value)."""
        name, _, value = raw.partition(b":")
        self.fields.append((name.strip().decode("latin-1"), value.rstrip(b"\r\n")))

    def flush(self) -> bytes:
        """The end of the message; a line cut short before its colon is not a Bcc field."""
        if self._in_headers:
            self._end_field()
        held, self._pending = self._pending, b""
        return held


def _check_captured_size(size: int) -> None:
    if size > MAX_CAPTURED_FIELD:
        raise DataError(f"a header field read for the envelope is over {MAX_CAPTURED_FIELD} bytes")


def remove_bcc(chunks: Iterable[bytes]) -> Iterator[bytes]:
    return chain(chunks, BccRemover())


@lru_cache(maxsize=1024)
def command_line_address(option: str, value: str) -> str:
    """The addr-spec of one --to/--from value: one mailbox, `addr` or `Name <addr>`.
    Cached: every message of a run reads the same values (50 us a parse), and a refusal,
    an exception, is never cached."""
    entries = envelope_entries(value, option)
    if len(entries) != 1 or isinstance(entries[0], Group):
        raise DataError(f"{option} {shown_value(value)}: give exactly one address, not a list or a group")
    return entries[0].addr_spec


def command_line_sender(value: str) -> str:
    """The addr-spec of --from; "" for the null sender."""
    return "" if value in NULL_SENDER else command_line_address("sender", value)


def envelope_for(fields: list[tuple[str, bytes]], sender: str | None = None, to: Iterable[str] = (),
                 extract: bool = False) -> Envelope:
    """The envelope of a message whose top-level header has `fields` (name, raw value).

    DataError names the --to/--from value, or the header field, that cannot be read without
    guessing."""
    prefix = RESENT_PREFIX if any(name.lower() in RESENT_FIELDS for name, _ in fields) else ""

    def field_addresses(*names: str) -> list[str]:
        wanted = {prefix + name for name in names}
        return [spec for name, raw in fields if name.lower() in wanted for spec in _field_addr_specs(name, raw)]

    if sender is not None:
        envelope_sender = command_line_sender(sender)
    else:
        authors = field_addresses("from")
        if len(authors) > 1:
            authors = field_addresses("sender")[:1] or authors[:1]
        if not authors:
            raise DataError(f"the message has no usable {prefix.title()}From address; give a sender")
        envelope_sender = authors[0]
    recipients = [command_line_address("to", value) for value in to]
    if extract:
        recipients += field_addresses(*RECIPIENT_FIELDS)
    return Envelope(envelope_sender, tuple(dict.fromkeys(recipients)))


@lru_cache(maxsize=64)   # at most 64 fields of 64 KiB (Limits.max_header_field_size)
def _field_addr_specs(name: str, raw: bytes) -> tuple[str, ...]:
    """The envelope addresses of one header field, read as envelope_entries reads them.
    Cached: the messages of a run mostly share their From (a parse is 20 us, 85k
    instructions), and a refusal, an exception, is never cached."""
    return tuple(addr_specs(envelope_entries(raw.strip(), f"header {name}:")))


def prepare_message(path: str, sender: str | None = None, to: Iterable[str] = (),
                    extract: bool = False, stream: BinaryIO | None = None) -> OutgoingMessage:
    """Read a message once: its envelope, and the pre-scan of the bytes that will be
    transmitted. `stream`, when given, holds the bytes instead of the file `path` (which
    then only names it): a stream that can be read only once, such as stdin, is spooled to
    an anonymous temporary file. A small message keeps its transmitted bytes (_KeptBytes)
    instead of being read again to be sent.

    A bad `to` or `sender` raises DataError before anything is read: it concerns every
    message. A header that gives no usable envelope refuses this message only (the
    OutgoingMessage carries the refusal and the command line's part of the envelope).
    """
    given_sender = None if sender is None else command_line_sender(sender)
    given_recipients = [command_line_address("to", value) for value in to]
    source = open_input(path, buffered=False) if stream is None else stream
    spool = None if stream is None else temporary_file(prefix="mimekit-send-")
    remover, normaliser, scanner = BccRemover(capture=ENVELOPE_FIELDS), CRLFNormaliser(), MessageScanner()
    transmitted, size = [], 0   # the remover's output, while it may still be kept
    chunks = read_chunks(source)
    try:
        for data in chain(_copied(chunks, spool) if spool else chunks, remover):
            if transmitted is not None:
                size += len(data)
                if size <= KEEP_MESSAGE_BYTES:
                    transmitted.append(data)
                else:
                    transmitted = None
            scanner.feed(normaliser.feed(data))
        scanner.feed(normaliser.flush())
    finally:
        if not spool:
            source.close()
    refused = None
    try:
        envelope = envelope_for(remover.fields, given_sender, given_recipients, extract)
    except DataError as exc:
        envelope, refused = Envelope(given_sender or "", tuple(dict.fromkeys(given_recipients))), exc
    # Converting line endings to CRLF adds a byte for each bare LF or lone CR and changes
    # nothing else, so kept bytes of the converted size need no conversion when sent.
    crlf = False
    if transmitted is not None and _KeptBytes.reserve(size):
        chunks = _KeptBytes(b"".join(transmitted))
        crlf = scanner.scan.size == size
        if spool:
            spool.close()
    else:
        chunks = partial(_transmitted_bytes, path, spool)
        if spool:
            spool.flush()
    return OutgoingMessage(path, envelope.sender, envelope.recipients, scanner.scan, chunks, refused=refused,
                           crlf=crlf)


class _KeptBytes:
    """The bytes a small message transmits, kept from prepare_message to the send (an
    OutgoingMessage's `chunks`): opening and reading its file a second time, Bcc filter
    included, was about a fifth of the client's work per message against bench_send's sink.
    Bounded twice: a message of at most KEEP_MESSAGE_BYTES, and KEEP_TOTAL_BYTES for every
    message alive at once (a long list of prepared messages streams the rest from their
    files, as every larger one does). The budget is given back when the bytes are dropped."""

    __slots__ = ("data",)
    kept = 0   # bytes held by every instance alive

    @classmethod
    def reserve(cls, size: int) -> bool:
        if cls.kept + size > KEEP_TOTAL_BYTES:
            return False
        cls.kept += size
        return True

    def __init__(self, data: bytes):
        self.data = data   # reserve()d by the caller

    def __call__(self) -> tuple[bytes, ...]:
        return (self.data,) if self.data else ()

    def __del__(self) -> None:
        type(self).kept -= len(self.data)


def _copied(chunks: Iterable[bytes], spool: BinaryIO) -> Iterator[bytes]:
    """`chunks`, each written to `spool` on the way (stdin can be read only once)."""
    for chunk in chunks:
        spool.write(chunk)
        yield chunk


def _transmitted_bytes(path: str, spool: BinaryIO | None) -> Iterator[bytes]:
    """The message as it goes out: read again (from the spool for stdin), Bcc and Resent-Bcc removed."""
    if spool:
        spool.seek(0)
        yield from remove_bcc(read_chunks(spool))
    else:
        with open_input(path, buffered=False) as stream:
            yield from remove_bcc(read_chunks(stream))

