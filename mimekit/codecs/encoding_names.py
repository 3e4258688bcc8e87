"""Which decoders a body may be read with, and why: the transfer-encoding side of alternative readings.

The parser reads a body with the decoder its first Content-Transfer-Encoding field names
exactly (mimekit.codecs.transfer.make_decoder); anything else is kept as it is. Mail
clients are more inventive: some take the last field, some look for "base64" anywhere in
the value, some strip comments, some forgive a misspelling, some know x-uuencode, yEnc or
BinHex, and some decode a uuencoded or yEnc file wherever it appears in a body. Each
EncodingReading here is one such decoder with the trick that leads to it (`reading`, a
label of docs/conventions.md's list); mimekit.read.readings decodes the body with each.

- encoding_readings: the decoders the CTE fields' values may name, most plausible first;
- sniff_body_encodings: framings (uuencode, yEnc, BinHex, begin-base64) in a raw body;
- BODY_VARIANTS: other readings of a base64 or quoted-printable body that needed repair;
- make_reading_decoder: a fresh decoder for any of these names.

Fuzzy matching is kept to what a typo makes of the two names worth misspelling: base64
within one edit (insertion, deletion, substitution, transposition), quoted-printable
within two or cut short after at least 10 letters. Separators ("-", "_", ".", blanks)
are ignored when names are compared, so `quoted_printable` and `base-64` are misspellings.
"""

import re
from dataclasses import dataclass

from mimekit.codecs.body_variants import (Base64LinePrefixDecoder, Base64PerLineDecoder,
                                          Base64StopAtPaddingDecoder)
from mimekit.codecs.legacy_encodings import (BINHEX_MARKER, YENC_BEGIN, BeginBase64Decoder,
                                             BinHexDecoder, Gzip64Decoder, UudecodeDecoder, YencDecoder)
from mimekit.codecs.transfer import (Base64Decoder, IdentityCodec, QuotedPrintableDecoder,
                                     make_decoder)
from mimekit.errors import UsageError
from mimekit.headers.encoded_words import decode_header_value
from mimekit.headers.folding import read_comment
from mimekit.streams.filters import Filter


@dataclass(frozen=True)
class EncodingReading:
    encoding: str   # a decoder name accepted by make_reading_decoder
    reading: str    # the label of the trick that leads to it


_DECODERS = {
    "identity": IdentityCodec,
    "base64": Base64Decoder,
    "quoted-printable": QuotedPrintableDecoder,
    "uuencode": UudecodeDecoder,
    "x-gzip64": Gzip64Decoder,
    "yenc": YencDecoder,
    "binhex": BinHexDecoder,
    "begin-base64": BeginBase64Decoder,
    "base64-per-line": Base64PerLineDecoder,
    "base64-stop-at-padding": Base64StopAtPaddingDecoder,
    "base64-line-prefix": Base64LinePrefixDecoder,
    "qp-invalid-dropped": lambda: QuotedPrintableDecoder(keep_invalid_escapes=False),
    "qp-invalid-kept": lambda: QuotedPrintableDecoder(upper_case_hex_only=True),
}
DECODER_NAMES = frozenset(_DECODERS)

MAX_ENCODING_READINGS = 8
MAX_VALUE_BYTES = 1000    # of each field's value: names are short, a longer value is junk
MAX_FIELDS_READ = 8       # the first ones and the last; more fields add no other name

# Names as a field value spells them exactly (lower case): the default decoder's reading.
_STANDARD = {"7bit": "identity", "8bit": "identity", "binary": "identity",
             "base64": "base64", "quoted-printable": "quoted-printable"}
# Other encodings' names (separators removed) and the reading each gets.
_LEGACY = {
    **dict.fromkeys(("uuencode", "xuuencode", "xuue", "uue", "xuu"), EncodingReading("uuencode", "cte-uuencode")),
    **dict.fromkeys(("xgzip64", "gzip64"), EncodingReading("x-gzip64", "cte-gzip64")),
    **dict.fromkeys(("xyenc", "yenc"), EncodingReading("yenc", "cte-yenc")),
    **dict.fromkeys(("xbinhex", "binhex", "binhex40", "macbinhex40", "xmacbinhex40"),
                    EncodingReading("binhex", "cte-binhex")),
}
# Short forms, as whole tokens: "qp,64".
_ABBREVIATIONS = {"qp": "quoted-printable", "64": "base64", "b64": "base64"}
# Names found inside a longer token ("x-base64", "base64encoded"), separators removed.
_STEMS = re.compile(r"base64|quotedprintable|uuencode|gzip64|yenc|binhex|7bit|8bit|binary")
_STEM_READINGS = {"base64": EncodingReading("base64", "cte-substring"),
                  "quotedprintable": EncodingReading("quoted-printable", "cte-substring"),
                  "uuencode": _LEGACY["uuencode"], "gzip64": _LEGACY["gzip64"], "yenc": _LEGACY["yenc"],
                  "binhex": _LEGACY["binhex"], "7bit": EncodingReading("identity", "cte-substring"),
                  "8bit": EncodingReading("identity", "cte-substring"),
                  "binary": EncodingReading("identity", "cte-substring")}
# Misspellable names (separators removed): the edits allowed, the shortest truncation accepted.
_FUZZY = {"base64": ("base64", 1, None), "quotedprintable": ("quoted-printable", 2, 10)}
_MIN_FUZZY_LENGTH = 4

_SEPARATORS = re.compile(r"[-_.\s]+")
_TOKEN = re.compile(r"[a-z0-9_.+-]+")
_SYNTAX = re.compile(r'\(|"|\\(.?)', re.S)

# How plausible each trick is: a lower rank is tried first.
_EXACT, _CLEANED, _TOKEN_NAME, _SUBSTRING, _MISSPELT = range(5)


def default_decoder_name(first_value: bytes | None) -> str:
    """What the default reading decodes with: make_decoder's choice for the first CTE
    field ("identity" when absent or unknown)."""
    if first_value is None:
        return "identity"
    decoder = make_decoder(first_value.decode("ascii", "replace"))
    return {Base64Decoder: "base64", QuotedPrintableDecoder: "quoted-printable"}.get(type(decoder), "identity")


def encoding_readings(values: list[bytes]) -> list[EncodingReading]:
    """Every plausible decoder for a part whose Content-Transfer-Encoding fields have these
    raw values (bytes after the colon, folding kept), in header order: distinct decoder
    names, most plausible first, each labelled with the trick that yields it. May include
    the default one (the caller drops the one equal to default_decoder_name)."""
    if not values:
        return []
    fields = list(range(min(len(values), MAX_FIELDS_READ - 1)))
    fields = [0, len(values) - 1] + [index for index in fields if index not in (0, len(values) - 1)]
    found: list[tuple[int, int, int, EncodingReading]] = []
    for order, index in enumerate(dict.fromkeys(fields)):
        position = "cte-first-header" if index == 0 else "cte-last-header"
        found += [(rank, order, place, reading)
                  for place, (rank, reading) in enumerate(_value_readings(values[index], position))]
    chosen: dict[str, EncodingReading] = {}
    for *_, reading in sorted(found, key=lambda candidate: candidate[:3]):
        chosen.setdefault(reading.encoding, reading)
    return list(chosen.values())[:MAX_ENCODING_READINGS]


def _value_readings(raw: bytes, position: str) -> list[tuple[int, EncodingReading]]:
    """(rank, reading) for each name one field's value may be read as, in the value's order."""
    text = raw[:MAX_VALUE_BYTES].decode("latin-1").replace("\r", "").replace("\n", "").strip().lower()
    cleaned = _without_syntax(decode_header_value(raw[:MAX_VALUE_BYTES])[0]).strip().lower()
    found = []
    if whole := _whole_value(text, position):
        found.append((_EXACT, whole))
    if cleaned != text and (whole := _whole_value(cleaned, "cte-cleaned")):
        found.append((_CLEANED, whole))
    for version in dict.fromkeys((cleaned, text)):
        for token in _TOKEN.findall(version):
            found += _token_readings(token)
        if misspelt := _misspelt(_SEPARATORS.sub("", version)):   # "quoted printable"
            found.append((_MISSPELT, misspelt))
    return found


def _whole_value(value: str, label: str) -> EncodingReading | None:
    """The reading of a value that is exactly a name."""
    if value in _STANDARD:
        return EncodingReading(_STANDARD[value], label)
    return _LEGACY.get(_SEPARATORS.sub("", value)) if _TOKEN.fullmatch(value) else None


def _token_readings(token: str) -> list[tuple[int, EncodingReading]]:
    """(rank, reading) for the names one token of a value holds."""
    if token in _STANDARD:
        return [(_TOKEN_NAME, EncodingReading(_STANDARD[token], "cte-substring"))]
    bare = _SEPARATORS.sub("", token)
    if bare in _LEGACY:
        return [(_TOKEN_NAME, _LEGACY[bare])]
    if bare in _ABBREVIATIONS:
        return [(_SUBSTRING, EncodingReading(_ABBREVIATIONS[bare], "cte-substring"))]
    if bare in _FUZZY:   # a standard name with other separators: "base-64", "quoted_printable"
        return [(_MISSPELT, EncodingReading(_FUZZY[bare][0], "cte-misspelt"))]
    stems = [(_SUBSTRING, _STEM_READINGS[stem]) for stem in _STEMS.findall(bare)]
    if stems:
        return stems
    misspelt = _misspelt(bare)
    return [(_MISSPELT, misspelt)] if misspelt else []


def _misspelt(bare: str) -> EncodingReading | None:
    """The name `bare` (separators removed) is a typo of, if any (see the module's docstring)."""
    if len(bare) < _MIN_FUZZY_LENGTH or len(bare) > 2 * len("quotedprintable"):
        return None
    for name, (encoding, edits, shortest_cut) in _FUZZY.items():
        if _edit_distance(bare, name, edits) <= edits or (
                shortest_cut and len(bare) >= shortest_cut and name.startswith(bare)):
            return EncodingReading(encoding, "cte-misspelt")
    return None


def _edit_distance(one: str, other: str, limit: int) -> int:
    """Optimal string alignment distance (a transposition is one edit), or limit + 1 when
    it is more than `limit`."""
    if abs(len(one) - len(other)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(other) + 1))
    for i, char in enumerate(one, 1):
        current = [i] + [0] * len(other)
        for j, other_char in enumerate(other, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other_char))
            if i > 1 and j > 1 and char == other[j - 2] and one[i - 2] == other_char:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return min(previous[-1], limit + 1)


def _without_syntax(text: str) -> str:
    """`text` without comments (each becomes a blank), quotes, and backslashes (the
    character a backslash escapes is kept)."""
    pieces = []
    pos = 0
    while found := _SYNTAX.search(text, pos):
        pieces.append(text[pos:found.start()])
        if found[0] == "(":
            _, pos, _ = read_comment(text, found.start())
            pieces.append(" ")
        else:
            pieces.append(found[1] or "")
            pos = found.end()
    pieces.append(text[pos:])
    return "".join(pieces)


# Framings that start a line: a uuencode begin line, yEnc's, uuencode -m's. Searched as
# "\n" + the line (a literal prefix the regex engine finds in C) and at the very start.
_LINE_MARKERS = [
    (re.compile(rb"begin[ \t]+[0-7]{3,4}[ \t]+\S"), EncodingReading("uuencode", "uuencode-in-body")),
    (re.compile(re.escape(YENC_BEGIN)), EncodingReading("yenc", "yenc-in-body")),
    (re.compile(rb"begin-base64[ \t]+[0-7]{3,4}[ \t]+\S"), EncodingReading("begin-base64", "begin-base64")),
]
_LINE_MARKERS = [(marker, re.compile(b"\n" + marker.pattern, marker.flags), reading)
                 for marker, reading in _LINE_MARKERS]
_BINHEX_READING = EncodingReading("binhex", "binhex-in-body")


def sniff_body_encodings(data: bytes) -> list[EncodingReading]:
    """Decoders whose framing starts somewhere in `data` (a chunk of a raw body, taken to
    start at a line start): a uuencode begin line (`begin 644 name`), `=ybegin `, the
    BinHex 4.0 line, `begin-base64 644 name`. Each search runs in C (no per-line Python)."""
    found = [reading for at_start, after_newline, reading in _LINE_MARKERS
             if at_start.match(data) or after_newline.search(data)]
    if BINHEX_MARKER in data:
        found.append(_BINHEX_READING)
    return found


BODY_VARIANTS: dict[str, tuple[EncodingReading, ...]] = {
    "base64": (EncodingReading("base64-per-line", "base64-per-line"),
               EncodingReading("base64-stop-at-padding", "base64-stop-at-padding"),
               EncodingReading("base64-line-prefix", "base64-line-prefix")),
    "quoted-printable": (EncodingReading("qp-invalid-dropped", "qp-invalid-dropped"),
                         EncodingReading("qp-invalid-kept", "qp-invalid-kept")),
}


def make_reading_decoder(name: str) -> Filter:
    """A fresh decoder for one of DECODER_NAMES: a Filter with `.defects`; the legacy ones
    also have `.filename` (None until their framing names the file)."""
    if name not in _DECODERS:
        raise UsageError(f"no reading decoder named {name!r}")
    return _DECODERS[name]()
