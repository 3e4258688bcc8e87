"""Making an 8-bit message 7-bit clean for a server without 8BITMIME or SMTPUTF8.

RFC 6152 §3 leaves a client with 8-bit content for a server without 8BITMIME two choices:
convert it to 7 bits, or refuse it. This module converts, changing no more than it must,
so that what the recipient reads is what the sender wrote:

- header fields with 8-bit bytes are decoded and written again with the composer's
  encoders: RFC 2047 encoded-words for unstructured text (Subject) and display names,
  RFC 2231 for Content-Type and Content-Disposition parameters (a raw UTF-8 file name);
  every 7-bit field stays byte for byte;
- a leaf whose body is not 7-bit safe (8-bit bytes, a NUL, a line over 998 bytes, whatever
  its Content-Transfer-Encoding says) is decoded and encoded again with the transfer
  encoding the composer would choose for that content: quoted-printable for text (base64
  when most of it would be escaped, or it has a NUL), base64 for everything else. Its
  Content-Transfer-Encoding field is replaced (or added), and a MIME-Version is added to
  the enclosing message header if it has none, since only a MIME reader decodes it;
- message/rfc822 may not be base64 (RFC 2046 §5.2.1), so an encapsulated message is
  converted from the inside: its header and its own parts are treated like the outer
  ones. A multipart or message part that said 8bit or binary now says 7bit;
- everything else (boundaries and delimiter lines, preambles, epilogues, bodies that were
  already 7-bit) is copied as it is.

What cannot be made 7-bit is refused with DataError (65), never sent half converted: an
address that is not ASCII (only SMTPUTF8 can carry it), 8-bit bytes in a field whose syntax
has no encoding (Message-ID, Date, Received...), in a preamble or an epilogue, in a body
with an unknown transfer encoding, or in a message/* body the parser kept whole, and a
message beyond the parser's limits (its structure is not known well enough to edit).

Two passes over a message that can be read twice (the SMTP client has it on disk). The
encoding of a leaf must be in its header, which is written before its body, and it depends
on the whole body: reading ahead would mean holding the body. So the first pass runs the
streaming parser and measures each leaf (mimekit.write.composer.ContentScan, on the raw body to
know if it must change and on the decoded content to choose its encoding), and turns what
it finds into a plan: a sorted list of edits, each a byte range of the input and what
replaces it (new header bytes, or "this body, decoded and encoded again"). The second pass
reads the input again through a filter (mimekit.streams.filters) that applies the plan:
bytes outside every edit are copied, bodies go through a decoder and an encoder chunk by
chunk. (The first pass is no filter: it outputs nothing but the plan.) Memory is bounded by
the parser's buffer, the codecs' few bytes and the plan (one entry per changed field or part).
Working on byte ranges rather than re-serialising events is also what keeps every
untouched byte exactly as it was.
"""

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from mimekit.headers.addresses import format_address_header
from mimekit.write.composer import ADDRESS_FIELDS, CRLF, ContentScan, Leaf, Role
from mimekit.defects import DefectKind
from mimekit.headers.encoded_words import decode_header_value, encode_unstructured, header_text
from mimekit.errors import DataError, IOFailure
from mimekit.read.events import BodyChunk, DefectFound, HeaderField, HeadersEnd, PartEnd, PartKind, PartStart
from mimekit.headers.folding import fold_header, unfold
from mimekit.limits import Limits
from mimekit.headers.params import format_params_header, parse_params_header
from mimekit.read.parser import MessageParser, transfer_encoding_of
from mimekit.codecs.transfer import IdentityCodec, make_decoder, make_encoder
from mimekit.streams.filters import Chain, chain

_ADDRESS_FIELDS = ADDRESS_FIELDS | {"resent-" + name for name in ADDRESS_FIELDS}
_PARAMETER_FIELDS = frozenset({"content-type", "content-disposition"})
# Structured fields whose syntax has no place for an encoded-word (RFC 2047 §5).
_UNENCODABLE_FIELDS = frozenset({"message-id", "in-reply-to", "references", "date", "resent-date",
                                 "resent-message-id", "received", "return-path", "mime-version",
                                 "content-transfer-encoding", "content-id", "dkim-signature"})
# Encapsulated messages whose body may be base64 (RFC 6532 §3.5, RFC 6533 §6); every other
# message/* is composite and allows only 7bit, 8bit and binary (RFC 2045 §6.4).
_ENCODABLE_MESSAGES = ("message/global",)
_LIMITS_HIT = frozenset(kind for kind in DefectKind if kind.value.startswith("limit-"))
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


def downgrade_to_7bit(read: Callable[[], Iterable[bytes]], eol: bytes = CRLF,
                      limits: Limits = Limits()) -> Iterator[bytes]:
    """The message `read()` yields (in any chunking), converted to 7 bits.

    `read` is called twice, once per pass, and must give the same bytes both times (a
    file read again); IOFailure if their length changed. New header fields and re-encoded bodies
    end their lines with `eol`; copied bytes keep theirs. DataError when a part of the
    message cannot be made 7-bit (see the module docstring); it may be raised after some
    output has been yielded, so write the output somewhere disposable (a temporary file)
    before sending any of it.
    """
    plan = _Planner(eol, limits)
    for chunk in read():
        plan.feed(chunk)
    edits, size = plan.close()
    yield from chain(read(), _Splicer(edits, eol, size))


@dataclass
class _Recode:
    """A leaf body to decode from `old` and encode as the composer's `leaf` says (`new`)."""

    old: str
    new: str
    leaf: Leaf
    separator: bool   # its header had no blank line: one goes before the encoded body


@dataclass
class _Edit:
    """Bytes [start, end) of the input are replaced by `text`, or recoded (`recode`)."""

    start: int
    end: int
    text: bytes = b""
    recode: _Recode | None = None


@dataclass
class _Part:
    """What the first pass knows about an open part."""

    part_id: str
    start: int
    is_message: bool                      # a message header (the top one, or encapsulated)
    fields_end: int | None = None         # where the last field's line break starts
    transfer_encoding: tuple[str, int, int] | None = None   # (name, field start, field end)
    mime_version: bool = False
    needs_mime_version: bool = False      # a body below it is being re-encoded
    missing_separator: bool = False
    unknown_encoding: bool = False
    kind: PartKind | None = None
    content_type: str = ""
    charset: str | None = None
    body_start: int = 0
    delimiter: bytes | None = None        # b"--" + boundary, for a multipart
    raw: ContentScan | None = None        # the body as it is: must it change?
    content: ContentScan | None = None    # the decoded body: what encoding it gets
    decoder: object = None
    watch: "_DelimiterWatch | None" = None


class _DelimiterWatch:
    """Whether decoded content contains an enclosing multipart's delimiter ("--boundary").

    Content that was hidden by its old encoding is exposed by a new one (7bit, or
    quoted-printable, which keeps "-" and letters); base64 never has a "-". State: the
    last bytes, for a delimiter split between chunks.
    """

    def __init__(self, delimiters: list[bytes]):
        self._delimiters = delimiters
        self._keep = max(map(len, delimiters), default=1) - 1
        self._tail = b""
        self.found = False

    def feed(self, data: bytes) -> None:
        if self.found or not data or not self._delimiters:
            return
        window = self._tail + data
        self.found = any(delimiter in window for delimiter in self._delimiters)
        self._tail = window[-self._keep:]


class _Planner:
    """The first pass: parser events in, the list of edits out."""

    def __init__(self, eol: bytes, limits: Limits):
        self._eol = eol
        self._parser = MessageParser(limits)
        self._open: list[_Part] = []
        self._edits: list[_Edit] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        for event in self._parser.feed(data):
            self._on_event(event)

    def close(self) -> tuple[list[_Edit], int]:
        """The edits in input order, and the size of the input they apply to."""
        for event in self._parser.close():
            self._on_event(event)
        return sorted(self._edits, key=lambda edit: (edit.start, edit.end)), self._size

    def _on_event(self, event) -> None:
        if isinstance(event, PartStart):
            parent = self._open[-1] if self._open else None
            self._open.append(_Part(event.part_id, event.offset,
                                    is_message=parent is None or parent.kind is PartKind.MESSAGE))
        elif isinstance(event, HeaderField):
            self._on_field(self._open[-1], event)
        elif isinstance(event, HeadersEnd):
            self._on_headers_end(self._open[-1], event)
        elif isinstance(event, BodyChunk):
            part = self._open[-1]
            part.raw.feed(event.data)
            self._measure_content(part, part.decoder.feed(event.data))
        elif isinstance(event, PartEnd):
            self._on_part_end(self._open.pop(), event.offset)
        elif isinstance(event, DefectFound):
            self._on_defect(event.defect)

    @staticmethod
    def _measure_content(part: _Part, decoded: bytes) -> None:
        if part.content is not part.raw:   # else the same bytes, already measured
            part.content.feed(decoded)
        part.watch.feed(decoded)

    def _on_defect(self, defect) -> None:
        if defect.kind in _LIMITS_HIT:
            raise DataError(f"cannot convert the message to 7-bit: it is beyond the parser's limits ({defect})")
        if defect.kind is DefectKind.MISSING_HEADER_BODY_SEPARATOR:
            self._open[-1].missing_separator = True
        elif defect.kind is DefectKind.UNKNOWN_TRANSFER_ENCODING:
            self._open[-1].unknown_encoding = True

    def _on_field(self, part: _Part, header: HeaderField) -> None:
        end = header.value_offset + len(header.raw_value)
        part.fields_end = end
        name = header.name.lower()
        if name == "content-transfer-encoding" and part.transfer_encoding is None:
            part.transfer_encoding = (transfer_encoding_of(header.raw_value), header.offset, end)
        elif name == "mime-version":
            part.mime_version = True
        if not header.raw_value.isascii():
            self._edits.append(_Edit(header.offset, end, self._field(header.name, header.raw_value)))

    def _field(self, name: str, raw: bytes) -> bytes:
        """A header field with 8-bit bytes, 7-bit, without its final line break (the
        original one stays)."""
        key = name.lower()
        if key in _ADDRESS_FIELDS:
            text, _ = header_text(unfold(raw).strip(b" \t"), [])
            line = format_address_header(name, [text], self._eol)
            if not line.isascii():
                raise DataError(f"header {name}: an address in {text!r} is not ASCII; "
                                "only a server offering SMTPUTF8 can take it")
        elif key in _PARAMETER_FIELDS:
            parsed, _ = parse_params_header(raw)
            if not parsed.params.get("boundary", "").isascii():
                raise DataError(f"header {name}: the boundary is not ASCII and cannot be encoded")
            line = format_params_header(name, parsed.value, list(parsed.params.items()), self._eol)
        elif key in _UNENCODABLE_FIELDS:
            raise DataError(f"header {name} has 8-bit bytes, and its syntax has no 7-bit encoding "
                            "for them; only a server offering SMTPUTF8 can take it")
        else:
            text, _ = decode_header_value(raw)
            line = fold_header(name, encode_unstructured(text, offset=len(name) + 2), self._eol)
        return line[:-len(self._eol)]

    def _on_headers_end(self, part: _Part, end: HeadersEnd) -> None:
        part.kind, part.content_type, part.body_start = end.kind, end.content_type, end.offset
        part.charset = end.params.get("charset", "").lower() or None
        if end.kind is PartKind.LEAF:
            part.raw = ContentScan()
            part.decoder = make_decoder(part.transfer_encoding[0] if part.transfer_encoding else "7bit")
            part.content = part.raw if isinstance(part.decoder, IdentityCodec) else ContentScan()
            part.watch = _DelimiterWatch([p.delimiter for p in self._open if p.delimiter])
            return
        if end.kind is PartKind.MULTIPART:
            part.delimiter = b"--" + end.params["boundary"].encode("utf-8", "surrogateescape")
        if part.transfer_encoding and part.transfer_encoding[0] in ("8bit", "binary"):
            _, start, field_end = part.transfer_encoding   # its content will be 7-bit now
            self._edits.append(_Edit(start, field_end, self._encoding_field("7bit")))

    def _encoding_field(self, name: str) -> bytes:
        return fold_header("Content-Transfer-Encoding", name, self._eol)[:-len(self._eol)]

    def _on_part_end(self, part: _Part, end: int) -> None:
        if part.kind is PartKind.LEAF:
            self._measure_content(part, part.decoder.flush())
            if part.raw.never_7bit:
                self._recode(part, end)
        if part.needs_mime_version and not part.mime_version:
            self._add_field(part, fold_header("MIME-Version", "1.0", self._eol)[:-len(self._eol)])

    def _recode(self, part: _Part, body_end: int) -> None:
        """Plan a new transfer encoding for a leaf whose body is not 7-bit safe."""
        where = f"part {part.part_id}" if part.part_id else "the message body"
        old = part.transfer_encoding[0] if part.transfer_encoding else "7bit"
        if part.unknown_encoding:
            raise DataError(f"{where} has 8-bit data or long lines in an unknown transfer encoding "
                            f"({old!r}) and cannot be re-encoded")
        if part.content_type.startswith("message/") and not part.content_type.startswith(_ENCODABLE_MESSAGES):
            raise DataError(f"{where} is {part.content_type} with 8-bit data or long lines; it may not be "
                            "base64 or quoted-printable (RFC 2045 §6.4), so it cannot be converted")
        # The composer's own description of a part, so that its rules choose the encoding and
        # the one encoder factory encodes (the content is this body, streamed by the second pass).
        role = Role.TEXT if part.content_type.startswith("text/") else Role.DATA
        leaf = Leaf(None, part.content_type, role, part.content, charset=part.charset,
                    encoding="base64" if part.watch.found else "auto")
        new = leaf.transfer_encoding(self._eol)
        if part.transfer_encoding:
            _, start, end = part.transfer_encoding
            self._edits.append(_Edit(start, end, self._encoding_field(new)))
        else:
            self._add_field(part, self._encoding_field(new))
        self._edits.append(_Edit(part.body_start, body_end,
                                 recode=_Recode(old, new, leaf, separator=part.missing_separator)))
        for enclosing in reversed(self._open + [part]):
            if enclosing.is_message:
                enclosing.needs_mime_version = True
                break

    def _add_field(self, part: _Part, line: bytes) -> None:
        """A new field at the end of `part`'s header (after its last field, or as its first)."""
        if part.fields_end is not None:
            self._edits.append(_Edit(part.fields_end, part.fields_end, self._eol + line))
        else:
            self._edits.append(_Edit(part.start, part.start, line + self._eol))


class _Splicer:
    """The second pass, a filter: the input again, with the planned edits applied as it
    streams by.

    State: the absolute offset reached, the next edit, and the filter (decoder then
    encoder) of the body being recoded (an edit may span any number of chunks).
    """

    def __init__(self, edits: list[_Edit], eol: bytes, size: int):
        self._edits = edits
        self._eol = eol
        self._size = size       # of the input the edits were planned on
        self._next = 0
        self._offset = 0
        self._started = False   # the next edit's replacement is out, its range being consumed
        self._recoder: Chain | None = None

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        base, at, stop = self._offset, self._offset, self._offset + len(data)
        while at < stop:
            edit = self._edits[self._next] if self._next < len(self._edits) else None
            if edit is None or at < edit.start:
                upto = stop if edit is None else min(stop, edit.start)
                out.append(self._copy(data[at - base:upto - base], at))
                at = upto
                continue
            upto = min(stop, edit.end)
            out.append(self._through(edit, data[at - base:upto - base]))
            at = upto
            if at == edit.end:
                out.append(self._finish(edit))
        self._offset = stop
        return b"".join(out)

    def flush(self) -> bytes:
        """The end of the input: the edits left must all end there (insertions at the very
        end, a body that runs to the end)."""
        if self._offset != self._size:
            raise IOFailure(f"the message changed while it was being converted to 7-bit "
                            f"({self._size} bytes, then {self._offset})")
        out = []
        for edit in self._edits[self._next:]:
            out.append(self._through(edit, b""))
            out.append(self._finish(edit))
        return b"".join(out)

    def _copy(self, data: bytes, offset: int) -> bytes:
        """Bytes no edit touches: they must be 7-bit already."""
        if not data.isascii():
            at = offset + _EIGHT_BIT.search(data).start()
            raise DataError(f"8-bit data at byte {at}, outside every header field and body that can be "
                            "re-encoded (a preamble, an epilogue, text beside a boundary or before the "
                            "header); cannot convert the message to 7-bit")
        return data

    def _through(self, edit: _Edit, data: bytes) -> bytes:
        """Input bytes inside `edit`: replaced by its text (written on the first call), or
        recoded."""
        head = b""
        if not self._started:
            self._started = True
            if edit.recode is None:
                return edit.text
            recode = edit.recode
            self._recoder = Chain(make_decoder(recode.old),
                                  make_encoder(recode.new, self._eol, text=recode.leaf.line_breaks_are_text))
            head = self._eol if recode.separator else b""
        if self._recoder is None:
            return b""
        return head + self._recoder.feed(data)

    def _finish(self, edit: _Edit) -> bytes:
        self._next += 1
        self._started = False
        if self._recoder is None:
            return b""
        recoder, self._recoder = self._recoder, None
        return recoder.flush()
