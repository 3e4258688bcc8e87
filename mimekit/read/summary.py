"""What `show --json` and `scan` print about a message, as plain picklable dicts.

summarise(stream) reads the whole message (every body is decoded to count its size);
scan_summary(stream) is the hot path of `scan`: it reads header blocks and, for a
multipart, the boundary lines between parts, never decoding a body.

Which parts are attachments (is_attachment) is decided once, here, for both, so that
`scan`'s count and `show --json`'s flags always agree; see is_attachment for the rule.
"""

import functools
import os
import re
import stat
from itertools import chain
from typing import BinaryIO, Iterable, Iterator

from mimekit.defects import Defect, DefectKind, beyond_store_conventions, capped
from mimekit.errors import DataError, UsageError
from mimekit.headers.encoded_words import decode_header_value
from mimekit.headers.params import parse_params_header
from mimekit.limits import Limits
from mimekit.read.events import HeaderField, HeadersEnd, PartKind
from mimekit.read.extract import inside_attached_message, best_text_part
from mimekit.read.parser import (KNOWN_ENCODINGS, MEDIA_TYPE, MessageParser, child_id, placed_defect,
                                 transfer_encoding_of)
from mimekit.read.tree import Message, Part, TreeBuilder, parse_message
from mimekit.stores.sources import MessageRef, opened
from mimekit.stores.sources import lf_is_normal as reads_lf_as_normal
from mimekit.codecs.transfer import IDENTITY_ENCODINGS
from mimekit.streams.files import CHUNK_SIZE, read_chunks

SCAN_FIELDS = ("source", "flags", "date", "from", "size", "attachments", "subject", "defect")
# A multipart message up to this size is read whole and its structure found by the lean
# pass (_LeanPass); a larger one streams through the parser, in bounded memory.
LEAN_MESSAGE_SIZE = 1024 * 1024

_ENCAPSULATING_TYPES = ("message/rfc822", "message/global")
_BODY_TYPES = ("text/plain", "text/html")


def summarise(message: "MessageRef | BinaryIO", limits: Limits = Limits.DEFAULT, lf_is_normal: bool = False,
              all_readings: bool = False) -> dict:
    """A message reference (opened and closed here, so it runs in any worker process) or
    an open stream (left open): {"headers": every field decoded, in order,
    "parts": one dict per part in document order, "defects": every defect as a dict}.

    A part's dict: id, depth, content_type, charset, transfer_encoding, size (decoded bytes
    of a leaf, None for a container), filename (the decoded RFC 2231/2047 name, None when
    none; "name" holds the same, as `show --json` always had it), disposition ("inline",
    "attachment", None), content_id (without <>), is_attachment (see is_attachment).

    lf_is_normal: the message comes from a store (Maildir, mbox), where LF line endings are
    how mail is kept: bare LF line endings (defects.is_unix_line_ending) are left out, as they
    are for every MessageRef of a store.

    all_readings: the parts other readings find (mimekit.read.readings) follow, each with a
    "reading" and a "sha256", unless their bytes are those of a part listed before.
    """
    with opened(message) as stream, parse_message(stream, limits) as parsed:
        return summarise_parsed(parsed, limits, lf_is_normal or reads_lf_as_normal(message), all_readings)


def summarise_parsed(parsed: Message, limits: Limits = Limits.DEFAULT, lf_is_normal: bool = False,
                     all_readings: bool = False) -> dict:
    """summarise of a message its caller has parsed (and closes), for one that reads more
    of it than the summary: the same dict, the same arguments."""
    body = body_part(parsed)
    digests: set[str] | None = set() if all_readings else None
    parts = [_describe(part, body, digests) for part in parsed.walk()]
    if all_readings:
        parts += _alternatives(parsed, limits, digests)
    headers, header_defects = decoded_headers(parsed.root)
    defects = parsed.defects + header_defects
    if lf_is_normal:
        defects = beyond_store_conventions(defects)
    defects = sorted(capped(defects), key=lambda defect: defect.offset)
    return {"headers": headers, "parts": parts, "defects": [defect.as_dict() for defect in defects]}


def is_attachment(part: Part, body: Part | None) -> bool:
    """Whether a mail client would list `part` as an attachment of the message.

    `body` is the message's text (body_part). In this order:
    1. Not an attachment: a multipart (a container), a part inside an attached message
       (the attached message is the attachment, not its parts), the body itself.
    2. An attachment: Content-Disposition: attachment; an attached message
       (message/rfc822 or message/global, parsed or transfer-encoded).
    3. Not an attachment: an image (or any part) of a multipart/related with a Content-ID,
       which the HTML body shows inline (cid: URL); a text/plain or text/html part of a
       multipart/alternative (another rendering of the body).
    4. An attachment: a part with a file name; a part that is not text/* outside
       multipart/alternative (a bare image or PDF in multipart/mixed, a message that is
       only a PDF).
    Everything else (text parts without a name: bodies, footers) is not an attachment.
    """
    if part.kind is PartKind.MULTIPART or part is body or inside_attached_message(part):
        return False
    if part.disposition == "attachment" or part.content_type in _ENCAPSULATING_TYPES:
        return True
    parent_type = part.parent.content_type if part.parent is not None else None
    if parent_type == "multipart/related" and part.raw_header("content-id") is not None:
        return False
    in_alternative = _inside_alternative(part)
    if in_alternative and part.content_type in _BODY_TYPES:
        return False
    if part.filename is not None:
        return True
    return not part.content_type.startswith("text/") and not in_alternative


def body_part(message: Message) -> Part | None:
    """The part a reader means by the message's text (extract.best_text_part), or None."""
    try:
        return best_text_part(message)
    except DataError:
        return None


def decoded_headers(part: Part) -> tuple[list[dict], list[Defect]]:
    """Every header field of `part` in order, decoded (RFC 2047, raw UTF-8), with what
    decoding found."""
    headers, defects = [], []
    for field in part.headers:
        value, found = decoded_field(field, part.id)
        headers.append({"name": field.name, "value": value})
        defects.extend(found)
    return headers, defects


def decoded_field(field: HeaderField, part_id: str) -> tuple[str, list[Defect]]:
    """An unstructured field's value decoded and trimmed, with its defects placed in the message."""
    value, found = decode_header_value(field.raw_value)
    return value.strip(), [placed_defect(defect, field.value_offset, part_id) for defect in found]


def content_id(part: Part) -> str | None:
    """The Content-ID without its angle brackets (as a cid: URL names it)."""
    value = part.header("content-id")
    return value.strip().removeprefix("<").removesuffix(">").strip() if value else None


def _describe(part: Part, body: Part | None, digests: set[str] | None = None) -> dict:
    """One row of the tree; a leaf's size is its decoded size (the body is read to count it,
    and hashed into `digests` if given)."""
    leaf = part.kind is PartKind.LEAF
    filename = part.filename
    size = None
    if leaf or (digests is not None and part.kind is PartKind.MULTIPART and not part.children):
        size, digest = _size_and_digest(part.iter_decoded(), digests is not None)
        if digests is not None:
            digests.add(digest)
    return {
        "id": part.id,
        "depth": part.depth,
        "content_type": part.content_type,
        "charset": part.charset,
        "transfer_encoding": part.transfer_encoding,
        "size": size if leaf else None,
        "name": filename,
        "filename": filename,
        "disposition": part.disposition,
        "content_id": content_id(part),
        "is_attachment": is_attachment(part, body),
    }


def _size_and_digest(chunks: Iterator[bytes], hashed: bool) -> tuple[int, str | None]:
    digest = None
    if hashed:
        import hashlib   # only for --all-readings: loading OpenSSL's libcrypto took 4-8 ms of show's start-up
        digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if digest is not None:
            digest.update(chunk)
    return size, digest.hexdigest() if digest is not None else None


def _alternatives(message: Message, limits: Limits, digests: set[str]) -> list[dict]:
    """Rows for the parts other readings find whose bytes no row before holds (not empty)."""
    from mimekit.read.readings import alternative_readings
    rows = []
    for alternative in alternative_readings(message, limits):
        size, digest = _size_and_digest(alternative.iter_decoded(), True)
        if size == 0 or digest in digests:
            continue
        digests.add(digest)
        rows.append({"id": alternative.id, "depth": _alternative_depth(alternative.id),
                     "content_type": alternative.content_type, "charset": None, "transfer_encoding": None,
                     "size": size, "name": alternative.filename, "filename": alternative.filename,
                     "disposition": None, "content_id": None, "is_attachment": True,
                     "reading": alternative.reading, "sha256": digest})
    return rows


def _alternative_depth(alternative_id: str) -> int:
    """One level under the part read again ("2~1": 2, as part 2 is 1; "~1": 1), and one more
    per step into a multipart that reading found ("~1.2": 2)."""
    return alternative_id.count(".") + alternative_id.count("~") + (not alternative_id.startswith("~"))


def _inside_alternative(part: Part) -> bool:
    ancestor = part.parent
    while ancestor is not None:
        if ancestor.content_type == "multipart/alternative":
            return True
        ancestor = ancestor.parent
    return False


def scan_message(message: "MessageRef | BinaryIO", fields: Iterable[str] = SCAN_FIELDS,
                 limits: Limits = Limits.DEFAULT) -> dict:
    """One `scan` record of a message reference (opened and closed here, so it runs in any
    worker process) or of an open stream (left open): scan_summary's fields, plus "source"
    (the reference) and "flags" (Maildir flags, "" when unknown). Only `fields` are
    computed where that saves work: without "attachments" and "defect", only the header
    block is read."""
    fields = tuple(fields)
    is_ref = isinstance(message, MessageRef)
    with opened(message) as stream:
        record = scan_summary(stream, message.size if is_ref else None, limits, lf_is_normal=reads_lf_as_normal(message),
                              structure="attachments" in fields or "defect" in fields)
    return {"source": str(message) if is_ref else "-", "flags": message.flags if is_ref else "", **record}


def scan_summary(stream: BinaryIO, size: int | None = None, limits: Limits = Limits.DEFAULT,
                 lf_is_normal: bool = False, structure: bool = True) -> dict:
    """One `scan` line of the message read from `stream` (left open): {"date": ISO 8601 or
    None, "from": the first sender's decoded display name (else address), "subject":
    decoded, "size": bytes of the message (`size` when the caller knows it), "attachments":
    how many parts is_attachment counts, "defect": the kind of the first defect found, or None}.

    Bodies are never decoded. A message that is a single part is read up to the end of its
    header block; a multipart one up to LEAN_MESSAGE_SIZE is read whole and its structure
    found by a lean pass over header blocks and boundary lines, which hands over to the
    parser (streaming, bounded memory) for anything it does not fully understand: larger
    messages, and every defect of framing. So "defect" is the first found in what is read:
    header blocks, boundary lines, preambles, epilogues and the text bodies of a multipart,
    and the From, Subject and Date values (`check` reads the bodies too). lf_is_normal as
    for summarise. With structure=False only the root header block is read and
    "attachments" and "defect" are None.
    """
    held: list[bytes] = []
    eof = _read_into(stream, held, CHUNK_SIZE)
    lean = _LeanPass(b"".join(held), eof, limits, structure).run()
    if lean is _NEED_MORE:
        eof = _read_into(stream, held, LEAN_MESSAGE_SIZE)
        lean = _LeanPass(b"".join(held), eof, limits, structure).run()
    read = sum(len(chunk) for chunk in held)
    if isinstance(lean, _LeanPass):
        message, defects = lean.message, lean.defects
    else:
        counted = _Counted(chain(held, read_chunks(stream)))
        message, defects = _parsed_structure(counted, limits, structure), []
        eof, read = counted.exhausted, counted.size
    if size is None:
        size = read + (0 if eof else _rest_size(stream))
    return _scan_record(message, defects, size, lf_is_normal, structure)


_NEED_MORE = object()   # the lean pass needs more of the message than it was given


def _scan_record(message: Message, defects: list[Defect], size: int, lf_is_normal: bool, structure: bool) -> dict:
    from mimekit.headers.dates import parse_date   # scan's alone: show's start-up does without
    root = message.root
    date_field, from_field, subject_field = (_first_field(root, name) for name in ("date", "from", "subject"))
    when, from_text, subject = None, None, None
    if date_field is not None:
        parsed, found = parse_date(date_field.raw_value.decode("utf-8", "replace"))
        when = parsed.isoformat() if parsed else None
        defects += [placed_defect(defect, date_field.value_offset, "") for defect in found]
    if from_field is not None:
        from_text, found = _sender(from_field)
        defects += found
    if subject_field is not None:
        subject, found = decoded_field(subject_field, "")
        defects += found
    attachments = first_defect = None
    if structure:
        body = body_part(message)
        attachments = sum(1 for part in message.walk() if is_attachment(part, body))
        defects += message.defects   # after is_attachment: what reading Content-Disposition found
        if lf_is_normal:
            defects = beyond_store_conventions(defects)
        first_defect = min(defects, key=lambda defect: defect.offset).kind.value if defects else None
    return {"date": when, "from": from_text, "subject": subject, "size": size, "attachments": attachments,
            "defect": first_defect}


def _first_field(part: Part, name: str) -> HeaderField | None:
    fields = part.header_fields(name)
    return fields[0] if fields else None


def _sender(field: HeaderField) -> tuple[str, list[Defect]]:
    """The first address of a From field: its display name, else its address; the field
    decoded as text when it holds no address."""
    from mimekit.headers.addresses import Address, parse_address_list   # scan's alone, as parse_date
    entries, found = parse_address_list(field.raw_value)
    defects = [placed_defect(defect, field.value_offset, "") for defect in found]
    for entry in entries:
        address = entry if isinstance(entry, Address) else next(iter(entry.members), None)
        if address is not None:
            return address.display_name or address.addr_spec, defects
    text, found = decoded_field(field, "")
    return text, defects + found


class _NoBodies:
    """The source of a tree read for its structure only: no body was kept."""

    def read_at(self, offset: int, size: int) -> bytes:
        raise UsageError("this message was read for its structure only: its bodies were not kept")

    def close(self) -> None:
        pass


def _parsed_structure(chunks: Iterable[bytes], limits: Limits, structure: bool) -> Message:
    """The tree of parts from the parser, bodies not kept; reading stops at the end of the
    message's header block when it is a single part (or the structure is not wanted)."""
    message = Message(_NoBodies())
    builder, parser = TreeBuilder(message), MessageParser(limits)
    root_known = False
    for chunk in chunks:
        events = parser.feed(chunk)
        builder.handle(events)
        root_known = root_known or any(isinstance(event, HeadersEnd) for event in events)
        if root_known and (not structure or message.root.kind is PartKind.LEAF):
            break
    builder.handle(parser.close())
    return message


class _Counted:
    """Chunks passed through, counted; `exhausted` once the last one has been taken."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self.size, self.exhausted = chunks, 0, False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            yield chunk
        self.exhausted = True


def _read_into(stream: BinaryIO, held: list[bytes], total: int) -> bool:
    """Read until `held` holds more than `total` bytes; True at the end of the stream."""
    have = sum(len(chunk) for chunk in held)
    while have <= total:
        chunk = stream.read(max(total + 1 - have, CHUNK_SIZE))
        if not chunk:
            return True
        held.append(chunk)
        have += len(chunk)
    return False


def _rest_size(stream: BinaryIO) -> int:
    """Bytes left in `stream`: from the file's size when it is a regular file, else counted."""
    try:
        if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return os.fstat(stream.fileno()).st_size - stream.tell()
    except (OSError, ValueError, AttributeError):
        pass
    return sum(len(chunk) for chunk in read_chunks(stream))


class _NotLean(Exception):
    """The lead pass meets something only the parser reads exactly: hand over."""


_HEADER_LINES = re.compile(rb"(?:[!-9;-~]+[ \t]*:[^\r\n]*\r?\n(?:[ \t][^\r\n]*\r?\n)*)*")
_LINE_BREAK = re.compile(rb"\r?\n")
_WANTED_FIELDS = re.compile(rb"^(content-type|content-transfer-encoding|content-disposition|content-id|from|subject|date)"
                            rb"[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)
_EIGHT_BIT = re.compile(rb"[\x80-\xff]")


class _LeanPass:
    """The tree of a well-formed message from its header blocks and boundary lines, with
    bytes.find and a few regexes, several times faster than the parser, which reads every
    header line in Python. It builds the same Parts the parser would (only the fields
    is_attachment and scan read), and gives up (_NotLean) wherever the parser would report
    a defect other than LF line endings or 8-bit header bytes, or hit a limit: what it
    returns is then exactly what the parser finds. tests/read/test_summary.py checks this
    on every corpus message."""

    def __init__(self, data: bytes, complete: bool, limits: Limits, structure: bool) -> None:
        self.data, self.complete, self.limits, self.structure = data, complete, limits, structure
        self.message = Message(_NoBodies())
        self.defects: list[Defect] = []
        self._parts = self._fields = self._header_bytes = 0
        self._unchecked: list[tuple[int, int]] = []   # binary bodies: line endings mean nothing there
        self._style = b""

    def run(self) -> "_LeanPass | object | None":
        """self when the tree is built, _NEED_MORE, or None to hand over to the parser."""
        data = self.data
        first_break = data.find(b"\n")
        if first_break < 0 or data.find(b"\r", 0, first_break) not in (-1, first_break - 1):
            return _NEED_MORE if not self.complete and first_break < 0 else None
        self._style = b"\r\n" if first_break and data[first_break - 1] == 13 else b"\n"
        try:
            root = self._entity(0, len(data), "", 0, None, "text/plain", [], root=True)
            self._check_line_endings(root)
        except _NeedMore:
            return _NEED_MORE
        except _NotLean:
            return None
        if self._style == b"\n":
            self.defects.append(Defect(DefectKind.BARE_LINE_ENDING, first_break, "bare LF"))
        return self

    def _entity(self, start: int, end: int, part_id: str, depth: int, parent: Part | None, default_type: str,
                boundaries: list[bytes], root: bool = False, before_delimiter: bool = False) -> Part:
        """The part whose header starts at `start` and that ends at `end` (before_delimiter:
        where the next delimiter line starts, whose line break before it is its own)."""
        data, limits = self.data, self.limits
        self._parts += 1
        if self._parts >= limits.max_parts:
            raise _NotLean
        part = Part(self.message, part_id, depth, start, parent)
        if parent is None:
            self.message.root = part
        else:
            parent.children.append(part)
        header_end = _HEADER_LINES.match(data, start, end).end()
        blank = _LINE_BREAK.match(data, header_end, end)
        if blank is not None:
            body_start = blank.end()
        elif header_end == start == end and before_delimiter:
            body_start = start   # an empty part: no header, no body (RFC 2046)
        elif root and not self.complete:
            raise _NeedMore
        else:
            raise _NotLean
        if before_delimiter and end > body_start:
            end = end - 2 if data.startswith(b"\r\n", end - 2) and end - 2 >= body_start else end - 1
        self._read_fields(part, start, header_end)
        content_type, params = default_type, {}
        raw_type = part.raw_header("content-type")
        if raw_type is not None:
            media_type = _media_type(raw_type)
            if media_type is None:
                raise _NotLean
            content_type, params = media_type[0], dict(media_type[1])
        raw_encoding = part.raw_header("content-transfer-encoding")
        encoding = "7bit" if raw_encoding is None else transfer_encoding_of(raw_encoding)
        if encoding not in KNOWN_ENCODINGS:
            raise _NotLean
        part.content_type, part.params, part.transfer_encoding = content_type, params, encoding
        part.body_offset, part.end_offset = body_start, end
        is_multipart = content_type.startswith("multipart/")
        is_message = content_type in _ENCAPSULATING_TYPES and encoding in IDENTITY_ENCODINGS
        if not (is_multipart or is_message) or not self.structure:
            if encoding in ("base64", "binary"):
                self._unchecked.append((body_start, end))
            return part
        if not self.complete:
            raise _NeedMore
        if depth >= limits.max_depth - 1 or body_start == end:
            raise _NotLean
        if is_message:
            part.kind = PartKind.MESSAGE
            self._entity(body_start, end, child_id(part_id, 1), depth + 1, part, "text/plain", boundaries)
            return part
        boundary = params.get("boundary", "").encode("utf-8", "surrogateescape")
        if not boundary or any(b.startswith(boundary) or boundary.startswith(b) for b in boundaries):
            raise _NotLean
        part.kind = PartKind.MULTIPART
        lines = self._delimiter_lines(body_start, end, b"--" + boundary)
        if not lines or lines[0][1] or not lines[-1][1]:
            raise _NotLean   # no part, or no close delimiter: the parser reports it
        child_type = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
        for number, ((_, _, part_start), (next_at, _, _)) in enumerate(zip(lines, lines[1:]), 1):
            self._entity(part_start, next_at, child_id(part_id, number), depth + 1, part, child_type,
                         boundaries + [boundary], before_delimiter=True)
        return part

    def _read_fields(self, part: Part, start: int, header_end: int) -> None:
        """The fields is_attachment and scan read, checked against the parser's limits."""
        data, limits = self.data, self.limits
        size, count = header_end - start, data.count(b"\n", start, header_end)
        self._fields += count
        self._header_bytes += size
        if (size > min(limits.max_line_length, limits.max_header_field_size, limits.max_header_block_size)
                or count > limits.max_header_count or self._fields > limits.max_header_total_count
                or self._header_bytes > limits.max_header_total_size):
            raise _NotLean
        if not data[start:header_end].isascii():
            self.defects.append(Defect(DefectKind.EIGHT_BIT_HEADER, _EIGHT_BIT.search(data, start).start(),
                                       "8-bit bytes in a header (kept raw)", part.id))
        for field in _WANTED_FIELDS.finditer(data, start, header_end):
            raw = field.group(2)
            part.headers.append(HeaderField(field.group(1).decode("ascii"), raw.removesuffix(b"\r"),
                                            field.start(), field.start(2)))

    def _delimiter_lines(self, start: int, end: int, delimiter: bytes) -> list[tuple[int, bool, int]]:
        """(offset, is close delimiter, next line's offset) of the delimiter lines in
        [start, end), up to the close delimiter. A line that starts with the delimiter
        followed by blanks is one with trailing text, which the parser reports."""
        data, found = self.data, []
        at = start if data.startswith(delimiter, start) else _next_line_with(data, delimiter, start, end)
        while at is not None:
            rest = at + len(delimiter)
            is_close = data.startswith(b"--", rest)
            after = rest + 2 if is_close else rest
            line_break = _LINE_BREAK.match(data, after)
            if line_break is not None or after == len(data):
                found.append((at, is_close, line_break.end() if line_break else after))
                if is_close:
                    break
            elif data[after] in b" \t":
                raise _NotLean
            at = _next_line_with(data, delimiter, at + 1, end)
        return found

    def _check_line_endings(self, root: Part) -> None:
        """The line endings the parser looks at (all but those of base64 and binary bodies)
        must all be the message's first one: otherwise the parser reports them."""
        data = self.data
        checked_end = len(data) if root.kind is not PartKind.LEAF else root.body_offset
        position = 0
        for start, end in sorted(self._unchecked) + [(checked_end, checked_end)]:
            if start > position and self._mixed(position, min(start, checked_end)):
                raise _NotLean
            position = max(position, end)

    def _mixed(self, start: int, end: int) -> bool:
        data = self.data
        if self._style == b"\n":
            return data.find(b"\r", start, end) >= 0
        crlf = data.count(b"\r\n", start, end)
        return not crlf == data.count(b"\n", start, end) == data.count(b"\r", start, end)


@functools.lru_cache(maxsize=1024)   # "text/plain; charset=utf-8" and its like come back message after message
def _media_type(raw_type: bytes) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """A Content-Type value's media type and parameters, or None when the parser would report
    something in it."""
    parsed, found = parse_params_header(raw_type)
    content_type = parsed.value.strip().lower()
    if found or not MEDIA_TYPE.fullmatch(content_type):
        return None
    return content_type, tuple(parsed.params.items())


def _next_line_with(data: bytes, start_of_line: bytes, start: int, end: int) -> int | None:
    """Where the next line in data[start:end] that starts with `start_of_line` starts."""
    at = data.find(b"\n" + start_of_line, start, end)
    return None if at < 0 else at + 1


class _NeedMore(Exception):
    """The lean pass needs the rest of the message."""
