"""Every plausible reading of a message, not only the best one: what ANY mail client could see.

Attackers hide an attachment behind MIME that one reader parses one way and another reader
another way: a boundary that never matches, two Content-Transfer-Encoding fields, a header
field hidden in a continuation line, uuencode as a transfer encoding. The parser
(mimekit.read.parser) gives one best reading, RFC first. This module gives the others,
as extra parts beside those of the best reading:

    with parse_message(stream) as message:
        for alternative in alternative_readings(message):
            alternative.id, alternative.reading, alternative.content_type, alternative.filename
            for chunk in alternative.iter_decoded(): ...

Each alternative says which trick recovered it (`reading`: the labels are those of
docs/conventions.md, e.g. `boundary-inferred`, `cte-last-header`, `base64-per-line`). Its id
is `<part id>~<n>`, the n-th reading of that part (the message's own are `~1`, `~2`); the
parts of a multipart found by a reading are `<part id>~<n>.<k>`, and may have readings of
their own (`2~1.3~1`), one level deep (MAX_READING_DEPTH).

How one part is read again, each a candidate:
- its header tokenised otherwise (mimekit.headers.lenient.header_readings): a new
  Content-Type, transfer encoding or body start;
- its Content-Type fields read otherwise (type_readings): another boundary, kept only if
  its delimiter occurs in the body (one pass: DelimiterScan), or a boundary inferred from
  the body's own `--X` lines when the declared one found nothing;
- the rest of a closed multipart's epilogue, when its boundary goes on occurring there;
- its body decoded otherwise (mimekit.codecs.encoding_names): other Content-Transfer-Encoding
  values, framings found in the body (uuencode, yEnc, BinHex), and variants of base64 and
  quoted-printable when the default decoder had to repair the body;
- a TNEF object (winmail.dat) opened into its attachments.

Nothing here deduplicates: a reading that only repeats what the best reading found is
dropped by the consumer, which hashes what it writes (mimekit.read.extract, summary), so a
well-formed message gets no alternative at all. Work is bounded: at most
MAX_READINGS_PER_PART readings per part, Limits.max_parts alternatives per message, and
each re-read is a parse under the same limits. Candidates are only looked for where the
best reading shows a reason (a defect, an unusual field, a multipart without parts): a
clean 100 MB attachment costs a look at its header, not another pass over its body.
"""

import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from mimekit.codecs.encoding_names import (BODY_VARIANTS, EncodingReading, default_decoder_name,
                                           encoding_readings, make_reading_decoder, sniff_body_encodings)
from mimekit.defects import DefectKind
from mimekit.headers.lenient import DelimiterScan, HeaderReading, header_readings, type_readings
from mimekit.headers.params import HeaderParams, parse_params_header, preferred_filename
from mimekit.limits import Limits
from mimekit.read.events import PartKind
from mimekit.read.tree import Message, Part, parse_range_as_multipart
from mimekit.streams.files import CHUNK_SIZE

MAX_READINGS_PER_PART = 8
MAX_READING_DEPTH = 2       # a part found by a reading may be read again once, no deeper
HEAD_WINDOW = 64 * 1024     # bytes from a part's start that its header may be re-read in
MAX_INFERRED_BOUNDARIES = 2
_SNIFF_OVERLAP = 64         # bytes a framing marker may straddle between two chunks
_REPAIR_DEFECTS = frozenset({DefectKind.BASE64_JUNK, DefectKind.BASE64_PADDING_MIDSTREAM,
                             DefectKind.BASE64_TRUNCATED, DefectKind.QP_INVALID_ESCAPE})
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
# A decoder's output for one feed is held whole, and gunzip inflates up to 1032:1: fed 4 KiB
# at a time, x-gzip64 (a gzip bomb) gives at most about 3 MiB at once, not 50 MiB.
_INFLATING_DECODERS = frozenset({"x-gzip64"})
_INFLATING_FEED = 4096


class Alternative:
    """One part as a reading other than the best one sees it."""

    def __init__(self, alternative_id: str, reading: str, content_type: str, filename: str | None,
                 decoded: Callable[[], Iterator[bytes]]) -> None:
        self.id = alternative_id
        self.reading = reading
        self.content_type = content_type
        self._filename = filename
        self._decoded = decoded
        self.decoder = None   # the last iter_decoded()'s: a framing (uuencode, yEnc, BinHex) names the file

    def __repr__(self) -> str:
        return f"<Alternative {self.id} {self.reading} {self.content_type}>"

    @property
    def filename(self) -> str | None:
        """The name the framing gave (known once decoding has started), else the header's."""
        return getattr(self.decoder, "filename", None) or self._filename

    def iter_decoded(self) -> Iterator[bytes]:
        return self._decoded()


@dataclass(frozen=True)
class _Decode:
    """Bytes [start, end) of the message, decoded with decoder `encoding`."""

    reading: str
    start: int
    end: int
    encoding: str
    content_type: str
    filename: str | None


@dataclass(frozen=True)
class _Reparse:
    """Bytes [start, end) read as the body of a multipart with `boundary`."""

    reading: str
    start: int
    end: int
    boundary: bytes


@dataclass(frozen=True)
class _Tnef:
    reading: str


_Candidate = _Decode | _Reparse | _Tnef


def alternative_readings(message: Message, limits: Limits = Limits.DEFAULT) -> Iterator[Alternative]:
    """The parts of `message` that readings other than the best one find, in document order
    of the parts they come from (see the module docstring). Consume each alternative's
    iter_decoded() before asking for the next: a re-read multipart is released once passed."""
    budget = [limits.max_parts]
    yield from _readings_of(message, "", 0, limits, budget)


def _readings_of(message: Message, prefix: str, depth: int, limits: Limits, budget: list[int]) -> Iterator[Alternative]:
    """The alternatives of every part of `message` (the message read, or a multipart a
    reading found, whose ids start with `prefix`)."""
    for part in list(message.walk()):
        if prefix and not part.id:
            continue   # the re-read multipart itself: it has no header, and its parts are already listed
        origin = f"{prefix}.{part.id}" if prefix and part.id else prefix or part.id
        number = 0
        for candidate in _candidates(message, part):
            if budget[0] <= 0:
                return
            if isinstance(candidate, _Reparse):
                found = _reparsed(message, part, candidate, limits)
                if found is None:
                    continue
                number += 1
                alternative_prefix = f"{origin}~{number}"
                yield from _found_parts(found, alternative_prefix, candidate.reading, budget)
                if depth + 1 < MAX_READING_DEPTH:
                    yield from _readings_of(found, alternative_prefix, depth + 1, limits, budget)
                found.close()
            elif isinstance(candidate, _Tnef):
                for alternative in _tnef_attachments(part, origin, number, limits):
                    if budget[0] <= 0:
                        return
                    number += 1
                    budget[0] -= 1
                    yield alternative
            else:
                number += 1
                budget[0] -= 1
                yield _decoded_range(message, candidate, f"{origin}~{number}")


def _found_parts(found: Message, prefix: str, reading: str, budget: list[int]) -> Iterator[Alternative]:
    """The parts that hold content in a multipart a reading found, decoded as its headers say."""
    for part in found.walk():
        if budget[0] <= 0:
            return
        if part.kind is PartKind.LEAF or (part.kind is PartKind.MULTIPART and part.id and not part.children):
            budget[0] -= 1
            yield Alternative(f"{prefix}.{part.id}", reading, part.content_type, part.filename, part.iter_decoded)


def _reparsed(message: Message, part: Part, candidate: _Reparse, limits: Limits) -> Message | None:
    """The multipart `candidate` reads, if it has parts; None if it has none."""
    room = max(1, limits.max_depth - part.depth - 1)
    found = parse_range_as_multipart(message, candidate.start, candidate.end, candidate.boundary,
                                     replace(limits, max_depth=room))
    if found.root.children:
        return found
    found.close()
    return None


def _decoded_range(message: Message, candidate: _Decode, alternative_id: str) -> Alternative:
    feed_size = _INFLATING_FEED if candidate.encoding in _INFLATING_DECODERS else CHUNK_SIZE

    def decoded() -> Iterator[bytes]:
        decoder = alternative.decoder = make_reading_decoder(candidate.encoding)   # a fresh one each time
        for raw in _raw_chunks(message, candidate.start, candidate.end, feed_size):
            if data := decoder.feed(raw):
                yield data
        if tail := decoder.flush():
            yield tail

    alternative = Alternative(alternative_id, candidate.reading, candidate.content_type, candidate.filename, decoded)
    return alternative


def _raw_chunks(message: Message, start: int, end: int, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    for offset in range(start, end, size):
        chunk = message.read_at(offset, min(size, end - offset))
        if not chunk:
            return
        yield chunk


# -- candidates -------------------------------------------------------------------------------


def _candidates(message: Message, part: Part) -> list[_Candidate]:
    """Every other reading of `part` worth trying, at most MAX_READINGS_PER_PART."""
    type_values = [field.raw_value for field in part.header_fields("content-type")]
    encoding_values = [field.raw_value for field in part.header_fields("content-transfer-encoding")]
    boundaries: list[_Reparse] = []
    decodes: list[_Candidate] = []
    for reading in _header_readings(message, part):
        _from_header_reading(part, reading, boundaries, decodes)
    boundaries += [_Reparse(reading.reading, part.body_offset, part.end_offset, reading.boundary)
                   for reading in type_readings(type_values)[1:] if reading.boundary]
    current = part.params.get("boundary", "").encode("utf-8", "surrogateescape") \
        if part.kind is PartKind.MULTIPART and part.children else None
    boundaries = [candidate for candidate in boundaries if candidate.boundary != current]
    infer = _boundary_lost(part, type_values)
    if boundaries or infer:
        boundaries = _occurring(message, part, boundaries, infer)
    boundaries += _after_close_delimiter(message, part)
    if _holds_content(part):
        decodes += _encoding_candidates(message, part, encoding_values)
        if part.content_type in _TNEF_TYPES or (part.filename or "").lower() == "winmail.dat":
            decodes.append(_Tnef("tnef"))
    return (boundaries + decodes)[:MAX_READINGS_PER_PART]


def _header_readings(message: Message, part: Part) -> list[HeaderReading]:
    size = min(HEAD_WINDOW, part.end_offset - part.header_offset)
    head = message.read_at(part.header_offset, size)
    return header_readings(head, head_is_whole_part=size == part.end_offset - part.header_offset)


def _from_header_reading(part: Part, reading: HeaderReading, boundaries: list[_Reparse],
                         decodes: list[_Candidate]) -> None:
    """What the part is under another tokenisation of its header: a multipart to re-read,
    or a body to decode."""
    if reading.body_start < 0:
        return
    start = part.header_offset + reading.body_start
    values = {name: [value for field, value in reading.fields if field == name]
              for name in ("content-type", "content-transfer-encoding", "content-disposition")}
    types = type_readings(values["content-type"]) if values["content-type"] else []
    content_type = types[0].content_type if types and types[0].content_type else "text/plain"
    boundary = next((kind.boundary for kind in types if kind.boundary and kind.content_type.startswith("multipart/")),
                    None)
    if boundary:
        boundaries.append(_Reparse(reading.reading, start, part.end_offset, boundary))
        return
    encodings = encoding_readings(values["content-transfer-encoding"])
    encoding = encodings[0].encoding if encodings else "identity"
    decodes.append(_Decode(reading.reading, start, part.end_offset, encoding, content_type,
                           _declared_filename(values["content-type"], values["content-disposition"])))


def _declared_filename(type_values: list[bytes], disposition_values: list[bytes]) -> str | None:
    content_type = parse_params_header(type_values[0])[0] if type_values else None
    disposition = parse_params_header(disposition_values[0])[0] if disposition_values else None
    return preferred_filename(content_type or HeaderParams("", {}), disposition)


def _boundary_lost(part: Part, type_values: list[bytes]) -> bool:
    """Should the body's own `--X` lines be looked for? When the declared boundary found no
    part, or the header says multipart (or boundary) but the best reading made a leaf of it."""
    if part.kind is PartKind.MULTIPART:
        return not part.children
    if part.kind is not PartKind.LEAF or part.transfer_encoding not in ("7bit", "8bit", "binary"):
        return False
    said = b" ".join(type_values).lower()
    return b"multipart" in said or b"boundary" in said


def _occurring(message: Message, part: Part, boundaries: list[_Reparse], infer: bool) -> list[_Reparse]:
    """The candidates whose delimiter occurs in the body, then boundaries inferred from it."""
    start = min([part.body_offset] + [candidate.start for candidate in boundaries])
    scan = DelimiterScan(list(dict.fromkeys(candidate.boundary for candidate in boundaries)), infer=infer)
    for chunk in _raw_chunks(message, start, part.end_offset):
        scan.feed(chunk)
    present, inferred = scan.close()
    kept = [candidate for candidate in boundaries if candidate.boundary in present]
    known = {candidate.boundary for candidate in kept}
    kept += [_Reparse("boundary-inferred", part.body_offset, part.end_offset, boundary)
             for boundary in inferred[:MAX_INFERRED_BOUNDARIES] if boundary not in known]
    return kept


def _after_close_delimiter(message: Message, part: Part) -> list[_Reparse]:
    """A closed multipart whose boundary goes on occurring in its epilogue: parts after the end."""
    if part.kind is not PartKind.MULTIPART or not part.children or part.epilogue_range is None:
        return []
    boundary = part.params.get("boundary", "").encode("utf-8", "surrogateescape")
    start, end = part.epilogue_range
    scan = DelimiterScan([boundary], infer=False)
    for chunk in _raw_chunks(message, start, end):
        scan.feed(chunk)
    present, _ = scan.close()
    return [_Reparse("after-close-delimiter", start, end, boundary)] if present else []


def _holds_content(part: Part) -> bool:
    return part.kind is PartKind.LEAF or (part.kind is PartKind.MULTIPART and not part.children)


def _encoding_candidates(message: Message, part: Part, encoding_values: list[bytes]) -> list[_Decode]:
    """Other decodings of the body: other CTE values, framings found in it, and variants of
    the default decoder when it had to repair the body."""
    default = default_decoder_name(encoding_values[0] if encoding_values else None)
    readings: list[EncodingReading] = list(encoding_readings(encoding_values))
    if default == "identity" or _irregular(message, part, default):
        readings += [reading for reading in _sniffed(message, part) if not _extracted_anyway(part, default, reading)]
        readings += BODY_VARIANTS.get(default, ())
    chosen: dict[str, EncodingReading] = {}
    for reading in readings:
        if reading.encoding != default:
            chosen.setdefault(reading.encoding, reading)
    return [_Decode(reading.reading, part.body_offset, part.end_offset, reading.encoding, part.content_type,
                    part.filename) for reading in chosen.values()]


def _irregular(message: Message, part: Part, default: str) -> bool:
    """Is the body anything but what its encoder would have written? Then it is worth
    reading otherwise (its own framings, the decoder's variants). When the decoder had to
    repair it, and also, without a single repair: base64 whose lines are not all of one
    length (a multiple of 4) but the last (letters that only add up across lines, blanks
    inside lines), quoted-printable with lower-case escapes (which a strict reader keeps)."""
    if default not in BODY_VARIANTS:
        return False
    if any(defect.kind in _REPAIR_DEFECTS for defect in part.decoding_defects()):
        return True
    if default == "base64":
        return not _regular_base64(message, part)
    return any(_LOWER_CASE_ESCAPE.search(chunk) for chunk in _overlapping_chunks(message, part, 2))


_LOWER_CASE_ESCAPE = re.compile(rb"=(?:[a-f][0-9a-f]|[0-9][a-f])")


_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/]*")
_BASE64_LAST_LINE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_LAYOUT_CHUNK = 1024 * 1024


def _regular_base64(message: Message, part: Part) -> bool:
    """Lines of one length (the first line's, a multiple of 4), one line ending throughout,
    no blank and no "=" but in the last line: what an encoder writes. Bytes outside the
    alphabet are the decoder's to report (BASE64_JUNK), so only the layout is checked, with
    slices and searches that run in C over a megabyte of lines at a time, each read from
    where the last whole line checked ends (no copy); the last two lines are looked at one
    by one (_last_lines_regular)."""
    position, end = part.body_offset, part.end_offset
    layout = None
    while True:
        data = message.read_at(position, min(_LAYOUT_CHUNK, end - position))
        if layout is None:
            first_end = data.find(b"\n")
            if first_end < 0:
                return position + len(data) == end and _last_lines_regular(data, None)
            eol = b"\r\n" if data[first_end - 1:first_end] == b"\r" else b"\n"
            layout = (first_end + 1 - len(eol), eol)
        width, eol = layout
        line = width + len(eol)
        checked = max(0, len(data) // line - 1) * line
        if position + len(data) == end and len(data) - checked <= 2 * line:
            return _whole_lines_regular(data, checked, width, eol) and _last_lines_regular(data[checked:], layout)
        if not checked or not _whole_lines_regular(data, checked, width, eol):
            return False
        position += checked


def _whole_lines_regular(data: bytes, size: int, width: int, eol: bytes) -> bool:
    """data[:size] is lines of exactly `width` characters, each ending with `eol`, no blank or "=" in them."""
    line, lines = width + len(eol), size // (width + len(eol))
    return (all(data[width + index:size:line] == eol[index:index + 1] * lines for index in range(len(eol)))
            and data.count(b"\n", 0, size) == lines
            and all(data.find(byte, 0, size) < 0 for byte in (b" ", b"\t", b"=")))


def _last_lines_regular(tail: bytes, layout: tuple[int, bytes] | None) -> bool:
    """The end of the body: whole lines, then a last one no longer, padding only there."""
    lines = tail.rstrip(b"\r\n").split(layout[1] if layout else b"\n")
    width = layout[0] if layout else len(lines[-1])
    if width % 4 or len(lines[-1]) > width or not _BASE64_LAST_LINE.fullmatch(lines[-1]):
        return False
    return all(len(text) == width and _BASE64_LINE.fullmatch(text) for text in lines[:-1])


def _extracted_anyway(part: Part, default: str, reading: EncodingReading) -> bool:
    """The best reading itself writes the files uuencoded in a text/plain body it can read
    (mimekit.read.extract), so show must not list them as another reading's."""
    return (reading.reading == "uuencode-in-body" and part.content_type == "text/plain"
            and default in ("identity", "quoted-printable"))


def _sniffed(message: Message, part: Part) -> list[EncodingReading]:
    """Framings (uuencode, yEnc, BinHex, begin-base64) that start somewhere in a raw body."""
    found: dict[str, EncodingReading] = {}
    for chunk in _overlapping_chunks(message, part, _SNIFF_OVERLAP):
        for reading in sniff_body_encodings(chunk):
            found.setdefault(reading.encoding, reading)
    return list(found.values())


def _overlapping_chunks(message: Message, part: Part, overlap: int) -> Iterator[bytes]:
    """The raw body in chunks, each starting with the last `overlap` bytes of the one
    before, so that a pattern up to that long is seen whole in one of them."""
    tail = b""
    for chunk in _raw_chunks(message, part.body_offset, part.end_offset):
        yield tail + chunk
        tail = chunk[-overlap:]


def _tnef_attachments(part: Part, origin: str, number: int, limits: Limits) -> Iterator[Alternative]:
    """The attachments of a TNEF part, decoded into a temporary file to be read by offset."""
    from mimekit.codecs.tnef import iter_attachment_data, tnef_attachments
    from mimekit.streams.files import temporary_file
    with temporary_file() as spool:
        for chunk in part.iter_decoded():
            spool.write(chunk)
        spool.seek(0)
        attachments, _ = tnef_attachments(spool, limits)
        for attachment in attachments:
            number += 1
            yield Alternative(f"{origin}~{number}", "tnef", "application/octet-stream", attachment.name,
                              lambda attachment=attachment: iter_attachment_data(spool, attachment))
