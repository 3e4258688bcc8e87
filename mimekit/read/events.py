"""Events emitted by the streaming parser (mimekit.read.parser), in input order.

Modelled on mime4j's MimeTokenStream: a flat sequence that tree builders,
extractors and streaming consumers all read. For every part the order is

    PartStart, HeaderField*, HeadersEnd,
      then one of:  BodyChunk*                                  (kind LEAF)
                    Preamble*, <each child part>, Epilogue*     (kind MULTIPART)
                    <the encapsulated message as one part>      (kind MESSAGE)
    PartEnd

with DefectFound anywhere. All offsets are absolute byte offsets into the input.
Bodies are raw (still transfer-encoded) with line endings as in the input; the line
break before a boundary belongs to the boundary (RFC 2046 section 5.1.1), so a body
never ends with the line break that precedes its closing delimiter. A line break
that ended a header block or a delimiter line is not taken twice (a delimiter right
after one ends an empty body there), except the one after a close delimiter: with
an empty epilogue it is the next delimiter's (RFC 2046: close-delimiter [CRLF
epilogue]), so a nested multipart ends right after its "--boundary--". Data events
carry slices of the input: concatenating the data of one part's BodyChunks gives
input[HeadersEnd.offset:PartEnd.offset] exactly.
"""

from dataclasses import dataclass, field
from enum import Enum

from mimekit.defects import Defect


class PartKind(str, Enum):
    """How the parser treated a part's body."""

    LEAF = "leaf"            # a body of bytes
    MULTIPART = "multipart"  # preamble, child parts, epilogue
    MESSAGE = "message"      # one child: the encapsulated message (message/rfc822, message/global)


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part begins at `offset` (its first header byte). See mimekit.read.tree for ids."""

    part_id: str
    offset: int
    depth: int


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field. `name` is as written (case kept, trailing blanks before the
    colon removed); `raw_value` is every byte after the colon, folding line breaks
    kept, without the final line break. `offset` is where the field starts,
    `value_offset` where raw_value starts."""

    name: str
    raw_value: bytes
    offset: int
    value_offset: int


@dataclass(frozen=True, slots=True)
class HeadersEnd:
    """The header block is over; the body starts at `offset`.

    content_type is the type the parser acted on, lowercase "type/subtype", with the
    RFC 2045/2046 defaults applied (text/plain; message/rfc822 inside
    multipart/digest; text/plain for a multipart without boundary). params are the
    Content-Type parameters (names lowercase). kind says how the body is read.
    transfer_encoding is the first Content-Transfer-Encoding, lowercase, "7bit" when
    there is none (RFC 2045 6.1): what decoding the body needs, here even when the
    fields themselves were not emitted (Limits.max_header_total_count).
    """

    offset: int
    content_type: str
    params: dict[str, str] = field(hash=False)
    kind: PartKind
    transfer_encoding: str = "7bit"


@dataclass(frozen=True, slots=True)
class Preamble:
    """Bytes of a multipart before its first boundary."""

    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class BodyChunk:
    """Raw bytes of a leaf body; a body may come in any number of chunks."""

    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class Epilogue:
    """Bytes of a multipart after its close delimiter."""

    data: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The part `part_id` ends; `offset` is one past its last body byte."""

    part_id: str
    offset: int


@dataclass(frozen=True, slots=True)
class DefectFound:
    defect: Defect


Event = PartStart | HeaderField | HeadersEnd | Preamble | BodyChunk | Epilogue | PartEnd | DefectFound
