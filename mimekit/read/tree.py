"""The message as a tree of parts, built from parser events; bodies stay on disk.

    with open("mail.eml", "rb") as stream, parse_message(stream) as message:
        for part in message.walk():
            print(part.id or "(message)", part.content_type, part.filename, part.size)
        attachment = message.part("2")
        for chunk in attachment.iter_decoded():   # transfer decoding, streamed
            ...
        message.defects                           # everything repaired or tolerated

parse_message(stream, on_defect="raise") instead ends the read at the first defect
(while parsing, or while a body is decoded) with a DefectError.

Part ids are IMAP-like section numbers (RFC 3501 6.4.5):
- the message itself is "" (Defect.part uses "" for it too);
- the n-th part of a multipart P is P.n ("1", "2" at the top, "2.1", "2.3.1" deeper);
- the message encapsulated by a message/rfc822 (or message/global) part P is P.1;
  its own parts continue from there (P.1.1, P.1.2 if it is multipart).
So the parts of a multipart message have their IMAP numbers, and so do single-part
encapsulated messages (P.1 in both). Two deliberate differences: a single-part
message's body is "" (IMAP says "1"), and the parts of a multipart encapsulated in
part P are P.1.n (IMAP says P.n), because here the encapsulated message is a part of
its own, with its own header. This is mime4j's numbering without its leading "1."
(mime4j's X_decoded_1_2_1.txt is part "2.1" here).

Bodies are not copied into the tree. A regular file handed to parse_message is read
again where needed (through a duplicate of its descriptor, so the caller may close
it); any other stream (a pipe, stdin, BytesIO) is copied once into a
SpooledTemporaryFile that stays in memory up to 1 MiB and moves to disk beyond. Every
Part then knows where its header and body are, and open_raw() / iter_decoded()
read from there: a 100 MB attachment costs no memory (and, from a pipe, 100 MB of
temporary disk). Close the Message (or use it as a context manager) to release the
file. Reads seek the shared spool, so use one Message from one thread at a time.
"""

import io
import os
import stat
from typing import BinaryIO, Iterator, Protocol

from mimekit.defects import Defect, DefectError, DefectLog, OnDefect, check_defect_policy
from mimekit.headers.encoded_words import decode_header_value
from mimekit.read.events import (DefectFound, Epilogue, Event, HeaderField, HeadersEnd, PartEnd, PartKind,
                            PartStart, Preamble)
from mimekit.streams.files import CHUNK_SIZE, read_chunks, temporary_file
from mimekit.limits import Limits
from mimekit.headers.params import HeaderParams, parse_params_header, preferred_filename
from mimekit.read.parser import MessageParser, placed_defect
from mimekit.codecs.transfer import make_decoder

SPOOL_MEMORY = 1024 * 1024  # bytes of a non-file input kept in memory before it moves to disk


class _Source(Protocol):
    """Where the message's bytes can be read again, by offset into the message."""

    def read_at(self, offset: int, size: int) -> bytes: ...

    def close(self) -> None: ...


class _FileSource:
    """A regular file, read in place with pread (no copy, no shared file position)."""

    def __init__(self, fd: int, start: int) -> None:
        self._fd = os.dup(fd)
        self._start = start

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self._fd, size, self._start + offset)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _SpoolSource:
    """A copy of a stream that cannot be read again (pipe, socket, in-memory)."""

    def __init__(self) -> None:
        self._spool = temporary_file(memory_limit=SPOOL_MEMORY)

    def append(self, data: bytes) -> None:
        self._spool.write(data)

    def read_at(self, offset: int, size: int) -> bytes:
        self._spool.seek(offset)
        return self._spool.read(size)

    def close(self) -> None:
        self._spool.close()


class _WindowSource:
    """Bytes [start, end) of another message's source, as a source of its own (a re-read of
    part of a message: mimekit.read.readings). It owns nothing, so closing it is a no-op."""

    def __init__(self, source: _Source, start: int, end: int) -> None:
        self._source, self._start, self._end = source, start, end

    def read_at(self, offset: int, size: int) -> bytes:
        start = self._start + offset
        return self._source.read_at(start, max(0, min(size, self._end - start)))

    def close(self) -> None:
        pass


def _file_source(stream: BinaryIO) -> _FileSource | None:
    """A _FileSource for `stream` if it is a regular file at a known position."""
    try:
        fd = stream.fileno()
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not stream.seekable():
            return None
        return _FileSource(fd, stream.tell())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None


class _RangeReader(io.RawIOBase):
    """A read-only, seekable file over bytes [start, end) of a source."""

    def __init__(self, source: _Source, start: int, end: int) -> None:
        super().__init__()
        self._source, self._start, self._end = source, start, end
        self._pos = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read_at(self._pos, min(len(buffer), self._end - self._pos))
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: self._start, io.SEEK_CUR: self._pos, io.SEEK_END: self._end}[whence]
        self._pos = min(max(base + offset, self._start), self._end)
        return self._pos - self._start

    def tell(self) -> int:
        return self._pos - self._start


class Part:
    """One entity: the message itself, a part of a multipart, or an encapsulated message.

    Structure: id, depth, parent, children, kind (PartKind: LEAF, MULTIPART or MESSAGE).
    Header: headers (every HeaderField, raw, in order; none past the message's
    Limits.max_header_total_*), header(), header_all(), raw_header(); content_type,
    params, charset, transfer_encoding (from the parser, so known past those limits
    too), disposition, filename. Body: size, open_raw(), iter_decoded(),
    read_decoded(); for a multipart also open_preamble() and open_epilogue(). Offsets
    (absolute, into the message): header_offset, body_offset, end_offset. defects: what
    was found in this part and listed (Message.defects also counts, per kind, those
    beyond MAX_DEFECTS_PER_KIND).
    """

    def __init__(self, message: "Message", part_id: str, depth: int, header_offset: int,
                 parent: "Part | None") -> None:
        self.message = message
        self.id = part_id
        self.depth = depth
        self.parent = parent
        self.children: list[Part] = []
        self.headers: list[HeaderField] = []
        self.kind = PartKind.LEAF
        self.content_type = "text/plain"
        self.params: dict[str, str] = {}
        self.transfer_encoding = "7bit"   # Content-Transfer-Encoding, lowercase; "7bit" when absent (RFC 2045 6.1)
        self.header_offset = header_offset
        self.body_offset = header_offset
        self.end_offset = header_offset
        self.preamble_range: tuple[int, int] | None = None
        self.epilogue_range: tuple[int, int] | None = None
        self.defects: list[Defect] = []
        self._disposition: HeaderParams | None = None
        self._disposition_parsed = False
        self._decoder_defects_recorded = False
        self._header_index: tuple[int, dict[str, list[HeaderField]]] | None = None

    def __repr__(self) -> str:
        return f"<Part {self.id or '(message)'} {self.content_type} {self.kind.value} {self.size} bytes>"

    # -- structure ----------------------------------------------------------------------

    @property
    def is_multipart(self) -> bool:
        return self.kind is PartKind.MULTIPART

    @property
    def is_message(self) -> bool:
        """An encapsulating part (message/rfc822, message/global): children[0] is the message."""
        return self.kind is PartKind.MESSAGE

    def walk(self) -> Iterator["Part"]:
        """This part and every part inside it, in document order (no recursion)."""
        stack = [self]
        while stack:
            part = stack.pop()
            yield part
            stack.extend(reversed(part.children))

    # -- header -------------------------------------------------------------------------

    def header_fields(self, name: str) -> list[HeaderField]:
        """Every field called `name` (any case), raw, in order. The fields are indexed by
        lowercase name once (again if fields were added since): scan and show ask for a
        dozen names per part."""
        if self._header_index is None or self._header_index[0] != len(self.headers):
            by_name: dict[str, list[HeaderField]] = {}
            for field in self.headers:
                by_name.setdefault(field.name.lower(), []).append(field)
            self._header_index = (len(self.headers), by_name)
        return list(self._header_index[1].get(name.lower(), ()))

    def raw_header(self, name: str) -> bytes | None:
        """The raw value (after the colon, folding kept) of the first `name` field."""
        fields = self.header_fields(name)
        return fields[0].raw_value if fields else None

    def header(self, name: str) -> str | None:
        """The first `name` field, unfolded and decoded (RFC 2047, raw UTF-8), trimmed."""
        raw = self.raw_header(name)
        return None if raw is None else _decoded(raw)

    def header_all(self, name: str) -> list[str]:
        return [_decoded(field.raw_value) for field in self.header_fields(name)]

    @property
    def charset(self) -> str | None:
        """The declared charset, lowercase; "us-ascii" for text/* without one (RFC 2046 4.1.2)."""
        declared = self.params.get("charset", "").strip().lower()
        if declared:
            return declared
        return "us-ascii" if self.content_type.startswith("text/") else None

    @property
    def disposition(self) -> str | None:
        """Content-Disposition type, lowercase ("inline", "attachment"), or None."""
        parsed = self._parsed_disposition()
        return parsed.value.strip().lower() if parsed else None

    @property
    def disposition_params(self) -> dict[str, str]:
        parsed = self._parsed_disposition()
        return parsed.params if parsed else {}

    @property
    def filename(self) -> str | None:
        """The name the sender gave the part (filename preferred over name), as sent:
        sanitise it before using it as a path."""
        return preferred_filename(HeaderParams(self.content_type, self.params), self._parsed_disposition())

    def _parsed_disposition(self) -> HeaderParams | None:
        if not self._disposition_parsed:
            self._disposition_parsed = True
            fields = self.header_fields("content-disposition")
            if fields:
                self._disposition, defects = parse_params_header(fields[0].raw_value)
                self._record([placed_defect(defect, fields[0].value_offset, self.id) for defect in defects])
        return self._disposition

    # -- body ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes of the raw body (still transfer-encoded; for a multipart, everything
        from preamble to epilogue)."""
        return self.end_offset - self.body_offset

    def open_raw(self) -> BinaryIO:
        """The raw body as a read-only binary file (transfer encoding not undone)."""
        return io.BufferedReader(_RangeReader(self.message._source, self.body_offset, self.end_offset))

    def open_entity(self) -> BinaryIO:
        """The whole part, header and body, exactly as in the input (e.g. to save an
        encapsulated message as .eml)."""
        return io.BufferedReader(_RangeReader(self.message._source, self.header_offset, self.end_offset))

    def open_preamble(self) -> BinaryIO:
        start, end = self.preamble_range or (self.body_offset, self.body_offset)
        return io.BufferedReader(_RangeReader(self.message._source, start, end))

    def open_epilogue(self) -> BinaryIO:
        start, end = self.epilogue_range or (self.end_offset, self.end_offset)
        return io.BufferedReader(_RangeReader(self.message._source, start, end))

    def iter_decoded(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """The body with its transfer encoding undone, in chunks of about `chunk_size`.

        Decoding never fails: what the decoder repaired is added to this part's (and
        the message's) defects, with offsets into the message, once the body has been
        read to its end.
        """
        decoder = make_decoder(self.transfer_encoding)
        source, position = self.message._source, self.body_offset
        while position < self.end_offset:
            raw = source.read_at(position, min(chunk_size, self.end_offset - position))
            if not raw:
                break
            position += len(raw)
            if decoded := decoder.feed(raw):
                yield decoded
        if tail := decoder.flush():
            yield tail
        if not self._decoder_defects_recorded:
            self._decoder_defects_recorded = True
            self._record([placed_defect(defect, self.body_offset, self.id) for defect in decoder.defects])

    def decoding_defects(self) -> list[Defect]:
        """What decoding the body found, decoding it now if it has not been read yet."""
        if not self._decoder_defects_recorded:
            for _ in self.iter_decoded():
                pass
        return [defect for defect in self.defects if defect.offset >= self.body_offset]

    def read_decoded(self) -> bytes:
        """The whole decoded body in memory: a convenience over iter_decoded()."""
        return b"".join(self.iter_decoded())

    def _record(self, defects: list[Defect]) -> None:
        """Count `defects` in the message's log; those it lists are this part's too."""
        log = self.message._defects
        self.defects += [defect for defect in defects if log.add(defect)]
        if defects and self.message.on_defect == "raise":
            raise DefectError(defects)


class Message:
    """A parsed message: the root Part, an index of parts by id, every defect.

    Holds the file its bodies are read from: close() it, or use `with`. `on_defect` is the
    caller's policy: "record" defects, or "raise" a DefectError at the first.
    """

    def __init__(self, source: _Source, on_defect: OnDefect = "record") -> None:
        self._source = source
        self.on_defect = on_defect
        self._defects = DefectLog()
        self._parts: dict[str, Part] = {}
        self.root: Part | None = None
        self.size = 0

    def __enter__(self) -> "Message":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._source.close()

    @property
    def defects(self) -> list[Defect]:
        """Every defect found so far (parsing, and decoding of bodies read), by offset:
        the first MAX_DEFECTS_PER_KIND of each kind, then one summary per kind for the
        rest (Defect.more says how many)."""
        return sorted(self._defects.defects,
                      key=lambda defect: (defect.offset, defect.kind.value, defect.part, defect.detail))

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to `size` raw bytes of the message from `offset` (fewer at its end)."""
        return self._source.read_at(offset, size)

    def part(self, part_id: str) -> Part:
        """The part with this id; KeyError if there is none."""
        return self._parts[part_id]

    def walk(self) -> Iterator[Part]:
        return self.root.walk()

    def leaves(self) -> Iterator[Part]:
        """The parts that hold a body of their own (no multipart, no encapsulating part)."""
        return (part for part in self.walk() if part.kind is PartKind.LEAF)


class TreeBuilder:
    """Turns the event stream into Parts, with an explicit stack (no recursion)."""

    def __init__(self, message: Message) -> None:
        self._message = message
        self._open: list[Part] = []

    def handle(self, events: list[Event]) -> None:
        message, open_parts = self._message, self._open
        for event in events:
            match event:
                case PartStart(part_id=part_id, offset=offset, depth=depth):
                    parent = open_parts[-1] if open_parts else None
                    part = Part(message, part_id, depth, offset, parent)
                    if parent is None:
                        message.root = part
                    else:
                        parent.children.append(part)
                    message._parts[part_id] = part
                    open_parts.append(part)
                case HeaderField():
                    open_parts[-1].headers.append(event)
                case HeadersEnd(offset=offset, content_type=content_type, params=params, kind=kind):
                    part = open_parts[-1]
                    part.body_offset, part.content_type, part.params, part.kind = offset, content_type, params, kind
                    part.transfer_encoding = event.transfer_encoding
                case Preamble(data=data, offset=offset):
                    part = open_parts[-1]
                    part.preamble_range = (part.preamble_range or (offset,))[0], offset + len(data)
                case Epilogue(data=data, offset=offset):
                    part = open_parts[-1]
                    part.epilogue_range = (part.epilogue_range or (offset,))[0], offset + len(data)
                case PartEnd(offset=offset):
                    open_parts.pop().end_offset = offset
                case DefectFound(defect=defect):
                    message._parts[defect.part]._record([defect])


def _decoded(raw_value: bytes) -> str:
    return decode_header_value(raw_value)[0].strip()


def parse_message(stream: BinaryIO, limits: Limits = Limits.DEFAULT, chunk_size: int = CHUNK_SIZE,
                  on_defect: OnDefect = "record") -> Message:
    """Parse a whole message from a binary stream into a Message tree.

    With on_defect="record" never raises on malformed input (see Message.defects); with
    "raise", the first defect is a DefectError. I/O errors propagate.
    Memory: the parser's bounded buffer, every part's header fields (bounded across
    the message by limits.max_header_total_*), and a bounded number of defects.
    """
    check_defect_policy(on_defect)
    file_source = _file_source(stream)
    source = file_source or _SpoolSource()
    message = Message(source, on_defect)
    builder = TreeBuilder(message)
    parser = MessageParser(limits, binary_bodies=False)   # the tree reads bodies from the source
    try:
        for chunk in read_chunks(stream, chunk_size):
            if file_source is None:
                source.append(chunk)
            message.size += len(chunk)
            builder.handle(parser.feed(chunk))
        builder.handle(parser.close())
    except BaseException:
        source.close()
        raise
    return message


def parse_range_as_multipart(message: Message, start: int, end: int, boundary: bytes,
                             limits: Limits = Limits.DEFAULT, chunk_size: int = CHUNK_SIZE) -> Message:
    """Bytes [start, end) of `message` read as the body of a multipart with `boundary`,
    whatever its header says: a Message of its own (root "" is that multipart, offsets
    count from `start`) reading its bodies from `message`'s source, which must stay open
    while it is used. Closing it closes nothing of `message`."""
    source = _WindowSource(message._source, start, end)
    window = Message(source, message.on_defect)
    builder = TreeBuilder(window)
    parser = MessageParser(limits, multipart_boundary=boundary, binary_bodies=False)
    for offset in range(0, end - start, chunk_size):
        chunk = source.read_at(offset, chunk_size)
        window.size += len(chunk)
        builder.handle(parser.feed(chunk))
    builder.handle(parser.close())
    return window
