"""TNEF (winmail.dat, application/ms-tnef): the attachments Outlook wraps in one part.

Outlook and Exchange can send a message's attachments inside one application/ms-tnef part
(MS-OXTNEF); clients that read TNEF (Apple Mail, Thunderbird's add-ons, the `tnef` tool)
show them as attachments, so a scanner must see them too. tnef_attachments lists them
without reading their data: each is a name and a byte range of the TNEF stream, read later
with iter_attachment_data. A 100 MB attachment so costs no memory (tnefparse reads the whole
object into memory); only names and small values are held, each at most
limits.max_header_field_size bytes.

The object: a signature, a legacy key, then attributes (level, id, length, data, checksum).
attAttachRendData starts an attachment. Its name is the MAPI long file name in
attAttachment if there is one, else attAttachTitle (the 8.3 name); 8-bit names are read in
the code page attOemCodepage names, and cut at their first NUL as Windows reads them. Its
data is attAttachData or the MAPI PR_ATTACH_DATA_OBJ in attAttachment, the later one of the
two as the `tnef` tool reads them; an embedded object's data is what follows its interface
GUID (an embedded message is a TNEF stream of its own: tnef_attachments reads it given a
stream of that range).

Checksums are checked for the attributes read whole. Attachment data and embedded objects
longer than 512 bytes are seeked over, their checksums not checked (adding up 100 MB is the
read this module exists to avoid); shorter ones are read, as that costs less than a seek. Broken input is
a defect, never an exception: reading stops there and returns the attachments found so far,
the one being read included (data that runs past the end keeps the bytes there are).
Positions (attachment offsets, defect offsets) are positions in the stream given.
"""

import codecs
import io
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from mimekit.defects import Defect, DefectKind, DefectLog
from mimekit.limits import Limits
from mimekit.streams.files import CHUNK_SIZE

TNEF_SIGNATURE = 0x223E9F78
_SIGNATURE_AND_KEY = struct.Struct("<IH")
_ATTRIBUTE_HEADER = struct.Struct("<BII")   # level, id (type in the high word), length
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_CHECKSUM_SIZE = 2
# Bytes skipped by reading them rather than seeking: cheaper, and then they count in a checksum.
_READ_RATHER_THAN_SEEK = 512
_LEVEL_MESSAGE, _LEVEL_ATTACHMENT = 1, 2

ATT_OEM_CODEPAGE = 0x00069007
ATT_ATTACH_REND_DATA = 0x00069002
ATT_ATTACH_TITLE = 0x00018010
ATT_ATTACH_DATA = 0x0006800F
ATT_ATTACHMENT = 0x00069005
_ATTACHMENT_ATTRIBUTES = {ATT_ATTACH_REND_DATA, ATT_ATTACH_TITLE, ATT_ATTACH_DATA, ATT_ATTACHMENT}

PR_ATTACH_DATA_OBJ = 0x3701
PR_ATTACH_LONG_FILENAME = 0x3707
PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT, PT_SVREID = 0x001E, 0x001F, 0x0102, 0x000D, 0x00FB
_MULTI_VALUE = 0x1000
_NAMED = 0x8000        # property ids from here on are followed by their name (GUID, kind, id or string)
_INTERFACE_ID_SIZE = 16  # a PT_OBJECT value starts with the GUID of its interface
# Bytes a value of each fixed-size MAPI type takes in TNEF, padding included (MS-OXTNEF 2.1.3.4).
_FIXED_SIZES = {0x0002: 4, 0x0003: 4, 0x0004: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8, 0x000A: 4, 0x000B: 4,
                0x0014: 8, 0x0040: 8, 0x0048: 16}
# Types whose values are counted, and each value a length, its bytes and padding to 4.
_VARIABLE_TYPES = {PT_STRING8, PT_UNICODE, PT_BINARY, PT_OBJECT, PT_SVREID}


@dataclass(frozen=True)
class TnefAttachment:
    name: str | None   # long name, else 8.3 title; undecodable bytes surrogate-escaped (8-bit) or replaced
    offset: int        # where the attachment's data starts in the stream
    size: int


class _Short(Exception):
    """Fewer bytes remain than the format declares (never leaves this module)."""


class _Reader:
    """Reads a stream between two positions, seeking over what is skipped, and adds up
    what it reads so that an attribute's checksum can be checked. Readers of one stream
    each keep their own position: the stream is put there before each read that needs it."""

    def __init__(self, stream: BinaryIO, position: int, end: int) -> None:
        self.stream, self.position, self.end = stream, position, end
        self.checksum = 0
        self.read_all = True   # False once anything was skipped: the checksum is then unknown
        self._moved = True     # the stream may not be at `position`

    @property
    def remaining(self) -> int:
        return self.end - self.position

    def read(self, size: int) -> bytes:
        if size > self.remaining:
            raise _Short
        if self._moved:
            self.stream.seek(self.position)
            self._moved = False
        data = self.stream.read(size)
        if len(data) < size:   # the stream ends before the end it reported
            self.end = self.position + len(data)
            raise _Short
        self.position += size
        self.checksum += sum(data)
        return data

    def u32(self) -> int:
        return _U32.unpack(self.read(4))[0]

    def skip(self, size: int) -> None:
        if size <= _READ_RATHER_THAN_SEEK:
            self.read(size)
            return
        if size > self.remaining:
            raise _Short
        self.position += size
        self.read_all = False
        self._moved = True

    def take(self, size: int) -> "_Reader":
        """A reader of the next `size` bytes, which this reader goes past."""
        if size > self.remaining:
            raise _Short
        part = _Reader(self.stream, self.position, self.position + size)
        self.position += size
        self._moved = True
        return part


class _Attachment:
    def __init__(self, offset: int) -> None:
        self.long_name: str | None = None
        self.title: str | None = None
        self.offset, self.size = offset, 0

    def finished(self) -> TnefAttachment:
        return TnefAttachment(self.long_name or self.title or None, self.offset, self.size)


class _Listing:
    """One pass over the attributes, collecting attachments and defects."""

    def __init__(self, stream: BinaryIO, limits: Limits) -> None:
        self.stream, self.limits = stream, limits
        self.log = DefectLog()
        self.attachments: list[TnefAttachment] = []
        self.current: _Attachment | None = None
        self.codepage = "utf-8"
        self.fields_left = limits.max_header_total_count   # attributes and MAPI values: TNEF's header fields

    def defect(self, kind: DefectKind, offset: int, detail: str) -> None:
        self.log.add(Defect(kind, offset, detail))

    def run(self) -> tuple[list[TnefAttachment], list[Defect]]:
        start = self.stream.tell()
        reader = _Reader(self.stream, start, self.stream.seek(0, io.SEEK_END))
        self.stream.seek(start)
        try:
            signature, _legacy_key = _SIGNATURE_AND_KEY.unpack(reader.read(_SIGNATURE_AND_KEY.size))
        except _Short:
            signature = None
        if signature != TNEF_SIGNATURE:
            self.defect(DefectKind.TNEF_MALFORMED, start, "no TNEF signature (0x223e9f78): not a TNEF object")
            return [], self.log.defects
        try:
            while reader.remaining and self.attribute(reader):
                pass
        except _Short:   # the stream ended before the end it reported
            self.defect(DefectKind.TRUNCATED_PART, reader.position, "the TNEF object ends inside an attribute")
        self.finish_attachment()
        return self.attachments, self.log.defects

    def attribute(self, reader: _Reader) -> bool:
        """Read the attribute at the reader's position; False: reading stops."""
        offset = reader.position
        if reader.remaining < _ATTRIBUTE_HEADER.size + _CHECKSUM_SIZE:
            if reader.read(reader.remaining).strip(b"\r\n\0"):   # a line end or NULs after the object is common
                self.defect(DefectKind.TNEF_MALFORMED, offset, "bytes after the last attribute, too few for one")
            return False
        if not self.count_field(offset):
            return False
        level, attribute_id, length = _ATTRIBUTE_HEADER.unpack(reader.read(_ATTRIBUTE_HEADER.size))
        if length > reader.remaining - _CHECKSUM_SIZE:
            self.defect(DefectKind.TRUNCATED_PART, offset, f"attribute {attribute_id:#010x} declares {length} bytes, "
                        f"{max(reader.remaining - _CHECKSUM_SIZE, 0)} follow")
            if attribute_id == ATT_ATTACH_DATA and self.attachment(offset):
                self.current.offset, self.current.size = reader.position, min(length, reader.remaining)
            return False
        if level not in (_LEVEL_MESSAGE, _LEVEL_ATTACHMENT):
            self.defect(DefectKind.TNEF_MALFORMED, offset, f"attribute {attribute_id:#010x} has level {level} "
                        "(1 is the message, 2 an attachment): skipped")
            reader.skip(length + _CHECKSUM_SIZE)
            return True
        if attribute_id == ATT_ATTACH_REND_DATA:
            self.finish_attachment()
        if (level == _LEVEL_ATTACHMENT or attribute_id in _ATTACHMENT_ATTRIBUTES) and not self.attachment(offset):
            return False
        if attribute_id == ATT_ATTACH_DATA:
            self.current.offset, self.current.size = reader.position, length
            data = reader.take(length)
            data.skip(length)   # seeked over unless small: the data is read later
            self.check_checksum(reader, attribute_id, data)
        elif attribute_id == ATT_ATTACHMENT:
            properties = reader.take(length)
            self.properties(properties)
            self.check_checksum(reader, attribute_id, properties)
        elif attribute_id == ATT_ATTACH_TITLE or (attribute_id == ATT_OEM_CODEPAGE and level == _LEVEL_MESSAGE):
            value = self.held(reader, attribute_id, length)
            if value is None:
                return True
            if attribute_id == ATT_ATTACH_TITLE:
                self.current.title = self.text8(value)
            elif len(value) >= 4:
                self.codepage = _codec_of_codepage(_U32.unpack_from(value)[0]) or self.codepage
        else:
            reader.skip(length + _CHECKSUM_SIZE)
        return True

    def count_field(self, offset: int) -> bool:
        if self.fields_left:
            self.fields_left -= 1
            return True
        self.defect(DefectKind.LIMIT_HEADER_TOTAL, offset,
                    f"more than {self.limits.max_header_total_count} TNEF attributes and MAPI values: the rest is not read")
        return False

    def attachment(self, offset: int) -> bool:
        """The attachment being read, started at `offset` if none is; False past limits.max_parts."""
        if self.current is not None:
            return True
        if len(self.attachments) >= self.limits.max_parts:
            self.defect(DefectKind.LIMIT_PARTS, offset, f"more than {self.limits.max_parts} TNEF attachments: "
                        "the rest are not read")
            return False
        self.current = _Attachment(offset)
        return True

    def finish_attachment(self) -> None:
        if self.current is not None:
            self.attachments.append(self.current.finished())
            self.current = None

    def held(self, reader: _Reader, attribute_id: int, length: int) -> bytes | None:
        """A small attribute's value, its checksum checked; None (and a defect) when too long to hold."""
        if length > self.limits.max_header_field_size:
            self.defect(DefectKind.LIMIT_HEADER_SIZE, reader.position, f"attribute {attribute_id:#010x} of {length} "
                        f"bytes: longer than {self.limits.max_header_field_size}, skipped")
            reader.skip(length + _CHECKSUM_SIZE)
            return None
        value = reader.take(length)
        data = value.read(length)
        self.check_checksum(reader, attribute_id, value)
        return data

    def check_checksum(self, reader: _Reader, attribute_id: int, value: _Reader) -> None:
        """Read the checksum after an attribute's value and compare it with the value's bytes, if all were read."""
        offset = reader.position
        (checksum,) = _U16.unpack(reader.read(_CHECKSUM_SIZE))
        if value.read_all and value.remaining == 0 and checksum != value.checksum & 0xFFFF:
            self.defect(DefectKind.TNEF_MALFORMED, offset, f"attribute {attribute_id:#010x}: checksum {checksum:#06x}, "
                        f"its bytes add up to {value.checksum & 0xFFFF:#06x}")

    def properties(self, reader: _Reader) -> None:
        """The MAPI properties of attAttachment: the long name and an embedded object's data."""
        start = reader.position
        try:
            count = reader.u32()
            for index in range(count):
                if not reader.remaining:
                    self.defect(DefectKind.TNEF_MALFORMED, reader.position,
                                f"MAPI property list ends after {index} of the {count} properties it declares")
                    return
                if not self.property(reader):
                    return
        except _Short:
            self.defect(DefectKind.TRUNCATED_PART, reader.position,
                        f"MAPI property list at {start} is cut short in a property")
            return
        if reader.remaining:   # no reader looks at them: they may hide something
            self.defect(DefectKind.TNEF_MALFORMED, reader.position,
                        f"{reader.remaining} bytes after the MAPI property list")

    def property(self, reader: _Reader) -> bool:
        """Read one property; False: the rest of the list cannot be read."""
        offset = reader.position
        property_type, property_id = struct.unpack("<HH", reader.read(4))
        named = property_id >= _NAMED
        if named:
            reader.skip(16)   # the property set's GUID
            if reader.u32() == 0:   # named by a number
                reader.skip(4)
            else:                   # named by a UTF-16 string
                reader.skip(_padded(reader.u32()))
        value_type = property_type & ~_MULTI_VALUE
        counted = property_type & _MULTI_VALUE or value_type in _VARIABLE_TYPES
        values = reader.u32() if counted else 1
        if value_type in _FIXED_SIZES:
            reader.skip(values * _FIXED_SIZES[value_type])
            return self.count_field(offset)
        if value_type not in _VARIABLE_TYPES:
            self.defect(DefectKind.TNEF_MALFORMED, offset, f"MAPI property {property_id:#06x} has type "
                        f"{property_type:#06x}, whose size is unknown: the rest of the list is not read")
            return False
        for index in range(values):
            if not self.count_field(offset):
                return False
            size = reader.u32()
            if named or index:
                reader.skip(size)
            elif property_id == PR_ATTACH_LONG_FILENAME and value_type in (PT_STRING8, PT_UNICODE):
                self.long_name(reader, value_type, size)
            elif property_id == PR_ATTACH_DATA_OBJ and value_type in (PT_BINARY, PT_OBJECT):
                self.data_object(reader, value_type, size)
            else:
                reader.skip(size)
            reader.skip(min(_padded(size) - size, reader.remaining))   # the last value's padding is often left out
        return True

    def long_name(self, reader: _Reader, value_type: int, size: int) -> None:
        if size > self.limits.max_header_field_size:
            self.defect(DefectKind.LIMIT_HEADER_SIZE, reader.position, f"long file name of {size} bytes: longer "
                        f"than {self.limits.max_header_field_size}, skipped")
            reader.skip(size)
            return
        raw = reader.read(size)
        text = raw.decode("utf-16-le", "replace") if value_type == PT_UNICODE else self.text8(raw)
        self.current.long_name = text.split("\0", 1)[0]

    def data_object(self, reader: _Reader, value_type: int, size: int) -> None:
        offset = reader.position
        reader.skip(size)
        if value_type == PT_OBJECT:
            if size < _INTERFACE_ID_SIZE:
                self.defect(DefectKind.TNEF_MALFORMED, offset, f"embedded object of {size} bytes, too short "
                            "for its interface GUID: ignored")
                return
            offset, size = offset + _INTERFACE_ID_SIZE, size - _INTERFACE_ID_SIZE
        self.current.offset, self.current.size = offset, size

    def text8(self, raw: bytes) -> str:
        return raw.decode(self.codepage, "surrogateescape").split("\0", 1)[0]


def _padded(size: int) -> int:
    return (size + 3) & ~3


def _codec_of_codepage(codepage: int) -> str | None:
    """Python's codec for a Windows code page number, None if it has none."""
    name = "utf-8" if codepage == 65001 else f"cp{codepage}"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def tnef_attachments(stream: BinaryIO, limits: Limits = Limits()) -> tuple[list[TnefAttachment], list[Defect]]:
    """The attachments of the TNEF object that starts at a seekable stream's position, found
    without reading their data (it is seeked over): at most limits.max_parts of them. Broken
    input (a bad signature or checksum, a length past the end, ...) is a Defect, and the
    attachments found until then; never an exception."""
    return _Listing(stream, limits).run()


def iter_attachment_data(stream: BinaryIO, attachment: TnefAttachment,
                         chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """An attachment's bytes, read from the stream tnef_attachments listed it from, in
    chunks of at most `chunk_size`; fewer if the stream has shrunk since."""
    stream.seek(attachment.offset)
    left = attachment.size
    while left:
        chunk = stream.read(min(chunk_size, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk
