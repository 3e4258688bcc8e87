"""Typed defects: what a lenient decoder repaired or tolerated, and where.

Decoders never raise on bad input; they repair and record a Defect. `offset` is a
byte offset into the message as read (codecs record offsets into their own encoded
input; the parser adds the part's body offset). Modules add kinds here as they find
new problems, so that one list documents everything mimekit can report.
"""

from dataclasses import dataclass
from enum import Enum


class DefectKind(str, Enum):
    # message framing (parser)
    GARBAGE_BEFORE_HEADERS = "garbage-before-headers"
    MISSING_HEADER_BODY_SEPARATOR = "missing-header-body-separator"
    MALFORMED_HEADER = "malformed-header"
    EIGHT_BIT_HEADER = "8bit-header"
    BARE_LINE_ENDING = "bare-line-ending"
    MIXED_LINE_ENDINGS = "mixed-line-endings"
    MISSING_BOUNDARY_PARAMETER = "missing-boundary-parameter"
    MISSING_FINAL_BOUNDARY = "missing-final-boundary"
    BOUNDARY_TRAILING_WHITESPACE = "boundary-trailing-whitespace"
    BOUNDARY_TRAILING_GARBAGE = "boundary-trailing-garbage"
    TRUNCATED_PART = "truncated-part"
    NO_PARTS = "multipart-without-parts"
    # limits (each one stops work on that part, never the whole message)
    LIMIT_DEPTH = "limit-depth"
    LIMIT_PARTS = "limit-parts"
    LIMIT_HEADER_COUNT = "limit-header-count"
    LIMIT_HEADER_SIZE = "limit-header-size"
    LIMIT_LINE_LENGTH = "limit-line-length"
    # transfer encodings
    UNKNOWN_TRANSFER_ENCODING = "unknown-transfer-encoding"
    BASE64_JUNK = "base64-junk"
    BASE64_PADDING_MIDSTREAM = "base64-padding-midstream"
    BASE64_TRUNCATED = "base64-truncated"
    QP_INVALID_ESCAPE = "qp-invalid-escape"
    UUENCODE_MISSING_END = "uuencode-missing-end"
    # header values and charsets
    ENCODED_WORD_MALFORMED = "encoded-word-malformed"
    UNKNOWN_CHARSET = "unknown-charset"
    CHARSET_FALLBACK = "charset-fallback"
    CHARSET_DETECTED = "charset-detected"
    PARAMETER_MALFORMED = "parameter-malformed"
    ADDRESS_MALFORMED = "address-malformed"
    DATE_MALFORMED = "date-malformed"


@dataclass(frozen=True)
class Defect:
    kind: DefectKind
    offset: int
    detail: str = ""
    part: str = ""   # part id ("" = the message itself)

    def as_dict(self) -> dict:
        return {"kind": self.kind.value, "offset": self.offset, "detail": self.detail, "part": self.part}

    def __str__(self) -> str:
        where = f"part {self.part}, " if self.part else ""
        return f"{self.kind.value} at {where}byte {self.offset}" + (f": {self.detail}" if self.detail else "")
