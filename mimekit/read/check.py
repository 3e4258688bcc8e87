"""The strict checker behind `mimekit check`: is a message 7-bit clean and well formed?

Decoders are lenient; this is the other side. It reads the message once, streaming,
through the same parser everything else uses (mimekit.read.parser), and reports every
rule broken as a Violation with its byte offset:

- 8bit: any byte over 127, anywhere (RFC 2045 7bit data; what "7-bit clean" means);
- line-too-long: a line over 998 octets (RFC 5322 2.1.1), and encoded-line-too-long:
  a base64 or quoted-printable body line over 76 (RFC 2045 6.7, 6.8);
- bare line endings and mixed endings anywhere, base64 and binary bodies included
  (RFC 5322 says CRLF; `allow_lf` accepts a message that uses LF consistently, as
  `mimekit encode --lf` writes). The parser only watches the lines it reads, so the
  checker watches every byte itself;
- boundaries: missing boundary parameter or close delimiter, a boundary equal to or a
  prefix of an enclosing one (duplicate-boundary), a boundary string occurring inside
  content (RFC 2046 5.1.1: it must not appear in the encapsulated parts);
- text-without-charset: a text part must say its charset;
- header problems: every parser defect in a header, malformed or over-long
  (more than 75 characters, RFC 2047 2) encoded-words, a Date, From or Message-ID
  missing from, or repeated in, the message header (RFC 5322 3.6);
- bodies that do not decode cleanly (junk in base64, invalid QP escapes).

Violations are capped per rule (MAX_PER_RULE) with a count of the rest, so a broken
1 GB file gives a short report, not a flood; the parser's and decoders' summaries of
defects they did not list (Defect.more) add to those counts.
"""

import re
from dataclasses import dataclass
from typing import BinaryIO

from mimekit.defects import Defect, DefectKind, is_unix_line_ending
from mimekit.headers.encoded_words import decode_header_value
from mimekit.read.events import BodyChunk, DefectFound, Epilogue, HeaderField, HeadersEnd, PartEnd, PartKind, PartStart, Preamble
from mimekit.streams.files import read_chunks
from mimekit.stores.sources import MessageRef, from_store, opened
from mimekit.limits import Limits
from mimekit.streams.line_endings import LineEndingWatch
from mimekit.read.parser import MessageParser
from mimekit.codecs.transfer import make_decoder

MAX_LINE = 998
MAX_ENCODED_LINE = 76
MAX_ENCODED_WORD = 75
MAX_PER_RULE = 20
REQUIRED_ONCE = ("date", "from", "message-id")
ENCODED_TRANSFER_ENCODINGS = frozenset({"base64", "quoted-printable"})
# Fields whose values may hold encoded-words (RFC 2047 5): unstructured text and phrases.
_STRUCTURED_WITHOUT_WORDS = frozenset({
    "content-type", "content-transfer-encoding", "content-disposition", "content-id", "mime-version",
    "message-id", "in-reply-to", "references", "date", "received", "return-path", "dkim-signature",
})
_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_HIGH_BYTES = bytes(range(128, 256))
_LINE_SHAPE = bytes(ord("\n") if byte in b"\r\n" else ord("x") for byte in range(256))  # see line_shape
# Parser defects that are not violations (RFC 2046 5.1.1 allows blanks after a delimiter),
# or that the checker finds itself over every byte (line endings, 8-bit bytes).
_NOT_FROM_PARSER = frozenset({DefectKind.BOUNDARY_TRAILING_WHITESPACE, DefectKind.EIGHT_BIT_HEADER,
                              DefectKind.BARE_LINE_ENDING, DefectKind.MIXED_LINE_ENDINGS})


@dataclass(frozen=True)
class Violation:
    rule: str       # a short stable name: "8bit", "line-too-long", or a parser DefectKind value
    offset: int     # byte offset into the message
    detail: str
    part: str = ""  # part id ("" = the message itself), as in mimekit.read.tree

    def as_dict(self) -> dict:
        return {"rule": self.rule, "offset": self.offset, "part": self.part, "detail": self.detail}

    def __str__(self) -> str:
        where = f"part {self.part}, " if self.part else ""
        return f"{self.rule} at {where}byte {self.offset}: {self.detail}"


@dataclass
class CheckReport:
    violations: list[Violation]
    suppressed: dict[str, int]  # rule -> violations beyond MAX_PER_RULE, not listed

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict:
        """What `check --json` prints of a message (after its schema and source)."""
        return {"ok": self.ok, "violations": [violation.as_dict() for violation in self.violations],
                "suppressed": self.suppressed}


def line_shape(data: bytes) -> bytes:
    """What _LongLines measures of `data`: every line break (CR, LF) a LF, every other byte an "x"."""
    return data.translate(_LINE_SHAPE)


class _LongLines:
    """Finds lines longer than `limit` in a stream fed in chunks, without holding lines.

    Only the length and start of the current unfinished line are carried between
    chunks. Within a chunk, whose line_shape it is fed, a long line is a run of
    `limit` + 1 x's: found by bytes.find at C speed, so a chunk without one costs the
    shape's translate and a find (about 60 us per 64 KiB here, where a regex tried at
    every line start took 3 ms).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._too_long = b"x" * (limit + 1)
        # What a long line holds, looked for first: bytes.find gives up on 77 x's in 10 us per
        # 64 KiB of base64 in 76 columns here, on 999 in 63 us; the exact search starts at a hit.
        self._hint = self._too_long[:MAX_ENCODED_LINE + 1]
        self._run = 0                 # bytes of the current line seen so far
        self._run_start: int | None = None
        self._reported = False        # the current line was already reported

    def feed(self, shape: bytes, offset: int) -> list[int]:
        """Return the start offsets of lines that cross the limit in the bytes found at
        `offset`, given as their line_shape."""
        found: list[int] = []
        first = shape.find(b"\n")
        if self._run_start is None:
            self._run_start = offset
        if first < 0:
            self._run += len(shape)
            if self._run > self.limit and not self._reported:
                found.append(self._run_start)
                self._reported = True
            return found
        if self._run + first > self.limit and not self._reported:
            found.append(self._run_start)
        last = shape.rfind(b"\n")
        found += self._complete_long_lines(shape, first, last, offset)
        self._run = len(shape) - last - 1
        self._run_start = offset + last + 1
        self._reported = self._run > self.limit
        if self._reported:
            found.append(self._run_start)
        return found

    def _complete_long_lines(self, shape: bytes, first: int, last: int, offset: int) -> list[int]:
        """The starts of the long lines that begin after the break at `first` and end at a
        break by the one at `last`: only a line that long holds `limit` + 1 x's in a row.
        Each search starts at a line break or at a line's start, so what it finds starts a
        line too."""
        starts = []
        at = shape.find(self._hint, first, last)
        while at >= 0:
            at = shape.find(self._too_long, at, last)
            if at < 0:
                break
            starts.append(offset + at)
            at = shape.find(self._hint, shape.find(b"\n", at), last)
        return starts


@dataclass
class _OpenPart:
    """What the checker tracks for each part between its PartStart and PartEnd."""

    part_id: str
    depth: int
    field_counts: dict
    boundary: bytes | None = None         # the delimiter "--boundary" when a multipart
    encoded_lines: _LongLines | None = None
    decoder: object = None
    body_start: int = 0


class MessageChecker:
    """Sans-IO checker: feed() the message's bytes, then close() for the report."""

    def __init__(self, allow_lf: bool = False, limits: Limits = Limits()) -> None:
        self.allow_lf = allow_lf
        self._parser = MessageParser(limits)
        self._offset = 0
        self._shape = b""                 # line_shape of the last chunk fed, for the content taken from it
        self._shape_offset = 0
        self._lines = _LongLines(MAX_LINE)
        self._line_endings = LineEndingWatch()
        self._eight_bit_count = 0
        self._eight_bit_first: int | None = None
        self._open: list[_OpenPart] = []
        self._content_tail = b""          # last bytes of content, to find a boundary split across chunks
        self._violations: list[Violation] = []
        self._counts: dict[str, int] = {}

    def feed(self, data: bytes) -> None:
        self._shape, self._shape_offset = line_shape(data), self._offset
        self._scan_raw(data, self._offset)
        self._offset += len(data)
        for event in self._parser.feed(data):
            self._on_event(event)

    def close(self) -> CheckReport:
        for event in self._parser.close():
            self._on_event(event)
        for defect in self._line_endings.close():
            self._on_line_ending(defect)
        if self._eight_bit_first is not None:
            self._add("8bit", self._eight_bit_first,
                      f"{self._eight_bit_count} byte(s) over 127; the message is not 7-bit clean")
        listed = sorted(self._violations, key=lambda violation: violation.offset)
        suppressed = {rule: count - MAX_PER_RULE for rule, count in self._counts.items() if count > MAX_PER_RULE}
        return CheckReport(listed, suppressed)

    # -- raw bytes ---------------------------------------------------------------
    def _scan_raw(self, data: bytes, offset: int) -> None:
        # isascii answers for the usual clean chunk (4 us per 64 KiB here, the translate 60 us)
        high = 0 if data.isascii() else len(data) - len(data.translate(None, _HIGH_BYTES))
        if high:
            self._eight_bit_count += high
            if self._eight_bit_first is None:
                self._eight_bit_first = offset + re.search(rb"[\x80-\xff]", data).start()
        for start in self._lines.feed(self._shape, offset):
            self._add("line-too-long", start, f"a line longer than {MAX_LINE} octets")
        for defect in self._line_endings.feed(data, offset):
            self._on_line_ending(defect)

    def _on_line_ending(self, defect: Defect) -> None:
        if self.allow_lf and is_unix_line_ending(defect):
            return
        self._add(defect.kind.value, defect.offset, defect.detail)

    # -- parser events -------------------------------------------------------------
    def _on_event(self, event) -> None:
        if isinstance(event, PartStart):
            self._content_tail = b""
            self._open.append(_OpenPart(event.part_id, event.depth, {}))
        elif isinstance(event, HeaderField):
            self._on_field(self._open[-1], event)
        elif isinstance(event, HeadersEnd):
            self._on_headers_end(self._open[-1], event)
        elif isinstance(event, (BodyChunk, Preamble, Epilogue)):
            self._on_content(event.data, event.offset)
        elif isinstance(event, PartEnd):
            self._on_part_end(self._open.pop(), event.offset)
        elif isinstance(event, DefectFound):
            self._on_defect(event.defect)

    def _on_field(self, part: _OpenPart, field: HeaderField) -> None:
        name = field.name.lower()
        part.field_counts[name] = part.field_counts.get(name, 0) + 1
        if name in _STRUCTURED_WITHOUT_WORDS:
            return
        for word in _ENCODED_WORD.finditer(field.raw_value):
            if len(word.group()) > MAX_ENCODED_WORD:
                self._add("malformed-encoded-word", field.value_offset + word.start(),
                          f"{field.name}: an encoded-word of {len(word.group())} characters (at most 75)",
                          part.part_id)
        _, defects = decode_header_value(field.raw_value)
        for defect in defects:
            if defect.kind in (DefectKind.ENCODED_WORD_MALFORMED, DefectKind.UNKNOWN_CHARSET):
                self._add("malformed-encoded-word", field.value_offset + defect.offset,
                          f"{field.name}: {defect.detail or defect.kind.value}", part.part_id)

    def _on_headers_end(self, part: _OpenPart, end: HeadersEnd) -> None:
        if part.depth == 0:
            for name in REQUIRED_ONCE:
                count = part.field_counts.get(name, 0)
                if count != 1:
                    problem = "missing" if count == 0 else f"present {count} times"
                    self._add("missing-header" if count == 0 else "duplicate-header", end.offset,
                              f"{name.title()} header {problem} (RFC 5322 requires exactly one)")
        if end.kind is PartKind.LEAF and end.content_type.startswith("text/") and "charset" not in end.params:
            self._add("text-without-charset", end.offset,
                      f"{end.content_type} part declares no charset", part.part_id)
        if end.kind is PartKind.MULTIPART:
            self._check_nested_boundary(part, end)
        if end.kind is PartKind.LEAF and end.transfer_encoding in ENCODED_TRANSFER_ENCODINGS:
            part.encoded_lines = _LongLines(MAX_ENCODED_LINE)
            part.decoder = make_decoder(end.transfer_encoding)
            part.body_start = end.offset

    def _check_nested_boundary(self, part: _OpenPart, end: HeadersEnd) -> None:
        part.boundary = b"--" + end.params["boundary"].encode("utf-8", "surrogateescape")
        for outer in self._open[:-1]:
            if outer.boundary and (outer.boundary.startswith(part.boundary) or part.boundary.startswith(outer.boundary)):
                self._add("duplicate-boundary", end.offset,
                          f"boundary {part.boundary[2:].decode('utf-8', 'replace')!r} repeats or overlaps "
                          f"the boundary of enclosing part {outer.part_id or '(message)'}", part.part_id)

    def _on_content(self, data: bytes, offset: int) -> None:
        part = self._open[-1]
        if part.encoded_lines is not None:
            for start in part.encoded_lines.feed(self._content_shape(data, offset), offset):
                self._add("encoded-line-too-long", start,
                          f"an encoded line longer than {MAX_ENCODED_LINE} characters", part.part_id)
            part.decoder.feed(data)
        self._find_boundaries_in_content(data, offset, part.part_id)

    def _content_shape(self, data: bytes, offset: int) -> bytes:
        """line_shape(data) of content the parser took from the bytes fed: sliced from the
        last chunk's shape, translating only the bytes held over from earlier chunks (a few
        per chunk in a base64 body), which saves a translate per chunk (30 us per 64 KiB here)."""
        held_over = min(max(self._shape_offset - offset, 0), len(data))
        start = offset + held_over - self._shape_offset
        return line_shape(data[:held_over]) + self._shape[start:start + len(data) - held_over]

    def _find_boundaries_in_content(self, data: bytes, offset: int, part_id: str) -> None:
        delimiters = [open_part.boundary for open_part in self._open if open_part.boundary]
        if not delimiters:
            return
        keep = max(map(len, delimiters)) - 1
        tail = self._content_tail
        # The first occurrence in tail + data, without copying data: one starting in the tail
        # lies in `seam`; a delimiter starts with "--", so data without a "-" (a base64 body)
        # holds none, which memchr tells in 3 us per 64 KiB, where the search takes 60.
        seam = tail + data[:keep]
        may_hold_one = b"-" in data
        for delimiter in delimiters:
            if (at := seam.find(delimiter)) >= 0:
                at += offset - len(tail)
            elif may_hold_one and (at := data.find(delimiter)) >= 0:
                at += offset
            else:
                continue
            self._add("boundary-in-content", at,
                      f"the boundary {delimiter[2:].decode('utf-8', 'replace')!r} occurs inside content", part_id)
        self._content_tail = data[-keep:] if len(data) >= keep else (tail + data)[-keep:]  # keep >= 1: "--"

    def _on_part_end(self, part: _OpenPart, end_offset: int) -> None:
        self._content_tail = b""
        if part.decoder is not None:
            part.decoder.flush()
            for defect in part.decoder.defects:
                self._add(defect.kind.value, part.body_start + defect.offset,
                          defect.detail or "the body does not decode cleanly", part.part_id, defect.more)

    def _on_defect(self, defect: Defect) -> None:
        if defect.kind in _NOT_FROM_PARSER:
            return
        self._add(defect.kind.value, defect.offset, defect.detail or defect.kind.value.replace("-", " "), defect.part,
                  defect.more)

    def _add(self, rule: str, offset: int, detail: str, part: str = "", unlisted: int = 0) -> None:
        """A violation of `rule`, listed if fewer than MAX_PER_RULE are; with `unlisted`, a
        summary of that many defects never listed (Defect.more): only counted."""
        if unlisted:
            self._counts[rule] = self._counts.get(rule, 0) + unlisted
            return
        self._counts[rule] = self._counts.get(rule, 0) + 1
        if self._counts[rule] <= MAX_PER_RULE:
            self._violations.append(Violation(rule, offset, detail, part))


def check_message(message: "MessageRef | BinaryIO", allow_lf: bool = False, limits: Limits = Limits()) -> CheckReport:
    """Check a whole message (a MessageRef, or a binary stream), reading it in chunks. A
    message kept by a store is checked with `allow_lf`: stores keep LF line endings."""
    checker = MessageChecker(allow_lf=allow_lf or from_store(message), limits=limits)
    with opened(message) as stream:
        for chunk in read_chunks(stream):
            checker.feed(chunk)
    return checker.close()
