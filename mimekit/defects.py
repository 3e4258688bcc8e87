"""Typed defects: what a lenient decoder repaired or tolerated, and where.

Decoders never raise on bad input; they repair and record a Defect. `offset` is a
byte offset into the message as read (codecs record offsets into their own encoded
input; the parser adds the part's body offset). Modules add kinds here as they find
new problems, so that one list documents everything mimekit can report.

Hostile input can repeat one defect every two bytes (base64 "A!", QP "=Z"): 50 MB of
it once made 25 million Defect objects (8 GB) and gigabytes of stderr. So every
producer records defects through a DefectCounter (or a DefectLog, which also keeps
them): the first MAX_DEFECTS_PER_KIND of each kind are listed with their offsets, the
rest are only counted and stand in the list as one summary Defect per kind, whose
`more` says how many it stands for. A summary handed to another counter adds its
count there, so the true number survives every merge.

A library caller chooses what a defect does (as `email.policy.handle_defect` lets it):
on_defect="record" (the default) keeps it in the list and reading carries on;
on_defect="raise" ends the read at the first one with a DefectError.
"""

from dataclasses import dataclass, replace
from enum import Enum
from typing import Iterable, Literal

from mimekit.errors import DataError, UsageError


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
    LIMIT_HEADER_TOTAL = "limit-header-total"
    LIMIT_LINE_LENGTH = "limit-line-length"
    LIMIT_DECODED_SIZE = "limit-decoded-size"     # a decompressed body cut at its cap (a gzip bomb)
    # transfer encodings
    UNKNOWN_TRANSFER_ENCODING = "unknown-transfer-encoding"
    BASE64_JUNK = "base64-junk"
    BASE64_PADDING_MIDSTREAM = "base64-padding-midstream"
    BASE64_TRUNCATED = "base64-truncated"
    QP_INVALID_ESCAPE = "qp-invalid-escape"
    UUENCODE_MISSING_END = "uuencode-missing-end"
    ENCODING_MALFORMED = "encoding-malformed"      # uuencode, yEnc, BinHex or gzip data that cannot be read
    CHECKSUM_MISMATCH = "checksum-mismatch"        # a yEnc or BinHex file whose size or CRC is not the one it declares
    # header values and charsets
    ENCODED_WORD_MALFORMED = "encoded-word-malformed"
    UNKNOWN_CHARSET = "unknown-charset"
    CHARSET_FALLBACK = "charset-fallback"
    CHARSET_DETECTED = "charset-detected"
    PARAMETER_MALFORMED = "parameter-malformed"
    ADDRESS_MALFORMED = "address-malformed"
    DATE_MALFORMED = "date-malformed"
    # containers
    TNEF_MALFORMED = "tnef-malformed"


# The first defects of a kind say where the trouble starts and what it is; a hundred
# more of the same add nothing a reader (or stderr) can use, only a count.
MAX_DEFECTS_PER_KIND = 100


@dataclass(frozen=True)
class Defect:
    kind: DefectKind
    offset: int
    detail: str = ""
    part: str = ""   # part id ("" = the message itself)
    more: int = 0    # > 0: a summary standing for this many defects of `kind` not listed,
                     # the first of them at `offset` in `part`

    def as_dict(self) -> dict:
        fields = {"kind": self.kind.value, "offset": self.offset, "detail": self.detail, "part": self.part}
        return {**fields, "more": self.more} if self.more else fields

    @classmethod
    def from_dict(cls, fields: dict) -> "Defect":
        """The Defect `fields` was made from by as_dict (one a worker process sent back, to report it)."""
        return cls(DefectKind(fields["kind"]), fields["offset"], fields["detail"], fields["part"],
                   fields.get("more", 0))

    def __str__(self) -> str:
        where = f"part {self.part}, " if self.part else ""
        if self.more:
            return f"... and {self.more} more {self.kind.value} defects (the first at {where}byte {self.offset})"
        return f"{self.kind.value} at {where}byte {self.offset}" + (f": {self.detail}" if self.detail else "")


class DefectCounter:
    """Decides which defects are listed: the first `per_kind` of each kind. The rest are
    counted, per kind, with the first of them, and come back as summaries()."""

    def __init__(self, per_kind: int = MAX_DEFECTS_PER_KIND) -> None:
        self._per_kind = per_kind
        self._listed: dict[DefectKind, int] = {}
        self._unlisted: dict[DefectKind, tuple[Defect, int]] = {}  # kind -> (first unlisted, count)

    def add(self, defect: Defect) -> bool:
        """Count `defect`; True if it is to be listed. A summary only adds its count."""
        if defect.more:
            self.add_unlisted(defect, defect.more)
            return False
        listed = self._listed.get(defect.kind, 0)
        if listed < self._per_kind:
            self._listed[defect.kind] = listed + 1
            return True
        self.add_unlisted(defect, 1)
        return False

    def is_full(self, kind: DefectKind) -> bool:
        """No more defects of `kind` will be listed: a producer may count them in bulk."""
        return self._listed.get(kind, 0) >= self._per_kind

    def add_unlisted(self, first: Defect, count: int) -> None:
        """`count` defects of first.kind, the first of them `first`, are not listed."""
        earlier, total = self._unlisted.get(first.kind, (first, 0))
        self._unlisted[first.kind] = (earlier, total + count)

    def summaries(self) -> list[Defect]:
        """One Defect per kind with unlisted ones: "... and N more" (Defect.more = N), by the
        offset of the first unlisted one, so that their order does not depend on the order
        a decoder happened to count them in (in bulk per chunk, then one by one)."""
        return sorted((replace(first, detail=f"{count} more not listed", more=count)
                       for first, count in self._unlisted.values()),
                      key=lambda summary: (summary.offset, summary.kind.value))


class DefectLog(DefectCounter):
    """A DefectCounter that keeps the defects it lists: memory per kind stays bounded."""

    def __init__(self, per_kind: int = MAX_DEFECTS_PER_KIND) -> None:
        super().__init__(per_kind)
        self._kept: list[Defect] = []

    def add(self, defect: Defect) -> bool:
        listed = super().add(defect)
        if listed:
            self._kept.append(defect)
        return listed

    def extend(self, defects: Iterable[Defect]) -> None:
        for defect in defects:
            self.add(defect)

    @property
    def defects(self) -> list[Defect]:
        """The listed defects in the order found, then one summary per kind with more."""
        return self._kept + self.summaries()


def capped(defects: Iterable[Defect]) -> list[Defect]:
    """Defects from several sources (summaries included) joined as one DefectLog lists them."""
    log = DefectLog()
    log.extend(defects)
    return log.defects


OnDefect = Literal["record", "raise"]
DEFECT_POLICIES: tuple[OnDefect, ...] = ("record", "raise")


class DefectError(DataError):
    """Defects found where the caller asked for them to be raised (on_defect="raise"):
    `defects` holds them, the first one first."""

    def __init__(self, defects: list[Defect]) -> None:
        self.defects = defects
        super().__init__(str(defects[0]) if len(defects) == 1 else f"{len(defects)} defects, the first: {defects[0]}")


def check_defect_policy(on_defect: str) -> None:
    """UsageError unless `on_defect` is one of DEFECT_POLICIES."""
    if on_defect not in DEFECT_POLICIES:
        raise UsageError(f"on_defect must be one of {', '.join(DEFECT_POLICIES)}, not {on_defect!r}")


def apply_defect_policy(defects: list[Defect], on_defect: OnDefect) -> None:
    """Raise DefectError for `defects` under on_defect="raise"; under "record" they stay listed."""
    check_defect_policy(on_defect)
    if defects and on_defect == "raise":
        raise DefectError(defects)


def is_unix_line_ending(defect: Defect) -> bool:
    """A message that uses LF line endings throughout: how Unix files and every Maildir
    and mbox keep mail (a bare CR, or mixed endings, are still defects)."""
    return defect.kind is DefectKind.BARE_LINE_ENDING and defect.detail == "bare LF"


def beyond_store_conventions(defects: Iterable[Defect]) -> list[Defect]:
    """`defects` without what every message kept by a store has (is_unix_line_ending)."""
    return [defect for defect in defects if not is_unix_line_ending(defect)]
