"""Resource limits for parsing untrusted messages (docs/conventions.md: Safety).

Every limit bounds memory or work per message; hitting one is reported as a
Defect (LIMIT_*) and parsing carries on in a degraded but linear way, never as an
exception, a hang or a recursion error. The defaults are far above what real mail
needs and far below what hurts: mime4j's strict defaults (1000-byte lines, 10000-byte
headers) reject real mail, so these are sized to accept everything seen in the wild.
"""

import re
from dataclasses import dataclass
from typing import ClassVar

# Decimal numbers from outside (RFC 2231 section indexes, IMAP literal sizes and UIDs,
# POP3 sizes, SMTP SIZE) are ASCII digits only: str.isdigit() also accepts "²" and "١",
# and int() refuses more than 4300 digits (CPython's int_max_str_digits) with ValueError.
MAX_DECIMAL_DIGITS = 20   # 2**64 has 20 digits: every count a protocol or format needs
_DECIMAL = re.compile(r"[0-9]{1,%d}" % MAX_DECIMAL_DIGITS)


def parse_decimal(text: str | bytes) -> int | None:
    """`text` as a non-negative integer when it is 1 to 20 ASCII digits, else None.

    Callers turn None into their own defect or protocol error; nothing here raises.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    return int(text) if _DECIMAL.fullmatch(text) else None


@dataclass(frozen=True)
class Limits:
    """How much of a message the parser is willing to structure.

    max_depth: deepest nesting level parsed (the message is depth 0, its parts 1,
        ...). A multipart or message/rfc822 part at this depth is kept as one
        opaque leaf body (LIMIT_DEPTH): its content is still readable, only not split.
    max_parts: parts in the whole tree, the message included. Once reached, the
        rest of the multipart being read becomes its epilogue and an encapsulated
        message stays an opaque leaf (LIMIT_PARTS).
    max_header_count: fields in one header block; the line that would be one too
        many starts the body (LIMIT_HEADER_COUNT).
    max_header_field_size: bytes kept of one field's value, folding included; the
        rest of that field is dropped (LIMIT_HEADER_SIZE).
    max_header_block_size: bytes of one header block; the line that crosses it
        starts the body (LIMIT_HEADER_SIZE).
    max_header_total_count, max_header_total_size: header fields, and their bytes,
        emitted for the whole message. Per-block limits alone let 10,000 parts of 1,000
        empty fields make 10 million field objects (1.4 GB in the tree). Past either,
        fields are still read (Content-Type and Content-Transfer-Encoding still act, so
        every part is found and decoded) but not emitted (LIMIT_HEADER_TOTAL, once).
    max_line_length: longest line the parser holds whole while looking for its
        end (header lines, boundary lines, lines before the first header). Longer
        lines are cut there and the rest skipped (LIMIT_LINE_LENGTH). Body lines
        are never held whole, so body line length costs nothing.

    Presets, as mime4j's MimeConfig has them (any other is Limits(**changes) away):
    Limits.DEFAULT: the defaults above, for mail from anywhere: accepts everything seen in
        the wild and bounds what hurts.
    Limits.STRICT: for a gateway that may refuse odd mail: RFC 5322's 998-byte lines
        (1000 with CRLF), mime4j's 10,000-byte header field, 20 levels and 1000 parts.
    Limits.PERMISSIVE: for mail already trusted (an archive, a forensic copy) that must be
        structured whole: ten times the defaults; memory stays bounded, only higher.
    """

    DEFAULT: ClassVar["Limits"]
    STRICT: ClassVar["Limits"]
    PERMISSIVE: ClassVar["Limits"]

    max_depth: int = 50
    max_parts: int = 10_000
    max_header_count: int = 1000
    max_header_field_size: int = 64 * 1024
    max_header_block_size: int = 1024 * 1024
    max_header_total_count: int = 100_000
    max_header_total_size: int = 10 * 1024 * 1024
    max_line_length: int = 64 * 1024

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 1:
                raise ValueError(f"Limits.{name} must be at least 1, not {value}")


Limits.DEFAULT = Limits()
Limits.STRICT = Limits(max_depth=20, max_parts=1000, max_header_count=500, max_header_field_size=10_000,
                       max_header_block_size=64 * 1024, max_header_total_count=10_000,
                       max_header_total_size=1024 * 1024, max_line_length=1000)
Limits.PERMISSIVE = Limits(**{name: 10 * value for name, value in vars(Limits.DEFAULT).items()})
