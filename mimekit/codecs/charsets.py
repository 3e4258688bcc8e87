"""Text from its declared charset, read the way mail programs meant it.

Labels are mapped as browsers do (WHATWG Encoding Standard): "iso-8859-1" and "us-ascii"
really mean windows-1252, "gb2312" means GB18030, "ks_c_5601-1987" means cp949,
"shift_jis" means cp932. A missing, unknown or plainly wrong declaration is answered by
detection (`detect_codec`: UTF-8 if the bytes are valid UTF-8, else chardet when it has
enough to go on, else windows-1252) and a defect says so; bytes that still do not decode are
replaced, never dropped silently, and counted in a defect. UTF-16 and UTF-32 without a
byte-order mark are read as RFC 2781 says, big-endian, unless the text's zero bytes show it is
little-endian (`_byte_order`).

A body is read in its declared charset even when a Latin label hides valid UTF-8, as browsers
and Thunderbird read bodies; header text, where mislabelled UTF-8 is common and short, is
checked with `is_mislabelled_utf8` by its decoders.

`TextDecoder` streams: it looks at the first SNIFF_SIZE bytes to choose a codec, then
decodes chunk by chunk. `decode_text` is the whole-bytes convenience over it.
"""

import codecs
import functools
from contextvars import ContextVar

from mimekit.defects import Defect, DefectKind

# How much of a body is examined before choosing a codec for the rest.
SNIFF_SIZE = 64 * 1024

# WHATWG windows-1252: cp1252 with its five undefined bytes read as the C1 controls,
# so that it decodes any byte string (the codec behind "iso-8859-1" and "us-ascii").
WINDOWS_1252 = "windows-1252"
_WINDOWS_1252_TABLE = "".join(
    bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in range(256)
)
_WINDOWS_1252_ENCODING = codecs.charmap_build(_WINDOWS_1252_TABLE)

# chardet tells code pages apart by the 8-bit bytes alone, and a handful of them (Western
# text: a few accented letters among ASCII) is too little: on Latin-1 names and subjects with
# 1-6 such bytes chardet 7 answers MacCyrillic, cp720, cp437, MacTurkish or MacIceland (for
# "Grüße aus Köln") about one time in five, at confidences up to 0.16, as high as its right
# answers there, so confidence alone cannot separate them. Text in another script has an 8-bit
# byte for nearly every letter: two words of Cyrillic, Greek, Hebrew or CJK have five or more.
# Below a confidence of 0.05 chardet is answering text that is nothing it knows (EBCDIC for
# broken UTF-8 in flanker's corpus, cp737 for stalwart's base64 junk). Measured on 204 names,
# subjects and paragraphs in 19 languages: chardet alone misread 16 of 84 windows-1252 ones and
# 16 of 120 others; with these thresholds 1 and 40, and the old header rule (confidence 0.1
# only) 4 and 56. The price is CJK words of one to three characters and short Central
# European phrases, which chardet reads right at confidences of 0.01-0.05 and which are now
# read as windows-1252 when nothing declares their charset.
_DETECTION_MIN_8BIT = 5
_DETECTION_MIN_CONFIDENCE = 0.05

# Labels Python does not know, or knows as something else than mail programs mean.
_LABELS = {
    "x-sjis": "cp932", "windows-31j": "cp932", "csshiftjis": "cp932", "x-euc-jp": "euc_jp",
    "x-gbk": "gb18030", "x-euc-cn": "gb18030", "cn-big5": "big5hkscs", "x-x-big5": "big5hkscs",
    "x-mac-roman": "mac_roman", "x-mac-cyrillic": "mac_cyrillic", "x-mac-ukrainian": "mac_cyrillic",
    "iso-8859-8-i": "iso8859_8", "csiso88598i": "iso8859_8", "logical": "iso8859_8",
    "windows-874": "cp874", "dos-874": "cp874", "x-cp1250": "cp1250", "x-cp1251": "cp1251",
    "x-cp1252": WINDOWS_1252, "x-cp1253": "cp1253", "x-cp1254": "cp1254", "x-cp1255": "cp1255",
    "x-cp1256": "cp1256", "x-cp1257": "cp1257", "x-cp1258": "cp1258",
    "unicode-1-1-utf-8": "utf-8", "unicode11utf8": "utf-8", "unicode20utf8": "utf-8",
    "x-unicode20utf8": "utf-8",
    # UCS-2 and UCS-4 are UTF-16 and UTF-32 without the characters beyond U+FFFF / U+10FFFF.
    "ucs-2": "utf-16", "ucs2": "utf-16", "iso-10646-ucs-2": "utf-16", "csunicode": "utf-16",
    "unicode": "utf-16", "unicode-1-1": "utf-16", "ucs-2be": "utf-16-be", "unicodefffe": "utf-16-be",
    "ucs-2le": "utf-16-le", "unicodefeff": "utf-16-le", "x-utf-16be": "utf-16-be", "x-utf-16le": "utf-16-le",
    "ucs-4": "utf-32", "ucs4": "utf-32", "iso-10646-ucs-4": "utf-32", "csucs4": "utf-32",
    "ucs-4be": "utf-32-be", "ucs-4le": "utf-32-le",
}
# UTF-16 and UTF-32 under a label that names no byte order, read as RFC 2781 §4.3 says: a
# byte-order mark gives the order (and is no text); without one the text is big-endian, unless
# its zero bytes say otherwise (see _byte_order). Python's own "utf-16" and "utf-32" decoders
# raise UnicodeError on a stream without a mark. Values: the size of a code unit.
_UNMARKED_ORDER_UNITS = {"utf-16": 2, "utf-32": 4}
# Codecs whose code units are wider than a byte: ASCII text in them is not ASCII bytes.
_WIDE_CODECS = frozenset({"utf-16", "utf-16-be", "utf-16-le", "utf-32", "utf-32-be", "utf-32-le"})
# Python codecs (by canonical name) replaced by the superset mail programs actually write.
_SUPERSETS = {
    "ascii": WINDOWS_1252, "iso8859-1": WINDOWS_1252, "cp1252": WINDOWS_1252,
    "iso8859-9": "cp1254", "tis-620": "cp874", "iso8859-11": "cp874",
    "gb2312": "gb18030", "gbk": "gb18030", "euc_kr": "cp949", "shift_jis": "cp932",
    "big5": "big5hkscs", "iso2022_jp": "iso2022_jp_ext",
}
# Python text codecs that are not character sets: a "charset" naming one is unknown.
_NOT_CHARSETS = frozenset({"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode"})
# Labels that say "no idea": treated as no declaration at all, not as an unknown charset.
_UNDECLARED = frozenset({"", "unknown", "unknown-8bit", "x-unknown", "x-user-defined", "8bit", "default"})


@functools.lru_cache(maxsize=256)   # a header decoder asks for the same few labels over and over
def resolve_charset(label: str | None) -> str | None:
    """The Python codec that reads text declared as `label`, or None if it names no charset."""
    key = _normalize(label)
    if key in _LABELS:
        return _LABELS[key]
    try:
        info = codecs.lookup(key)
    except (LookupError, ValueError):   # ValueError: NUL or a lone surrogate in the label
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return _SUPERSETS.get(info.name, info.name)


def detect_codec(sample: bytes, final: bool = True) -> str:
    """The codec for 8-bit text without a usable declaration: UTF-8 if the sample is valid
    UTF-8 (it rarely is by accident), else chardet's guess when it has enough to go on and
    the guess decodes the sample, else windows-1252, which decodes anything.

    `final` is False when more text follows the sample (a character may be cut at its end).
    """
    if not _invalid_sequences(sample, "utf-8", final):
        return "utf-8"
    head = sample[:SNIFF_SIZE]
    if sum(byte >= 0x80 for byte in head) >= _DETECTION_MIN_8BIT:
        import chardet  # on first need: importing it costs every command 25 ms of start-up
        guess = chardet.detect(head)
        codec = resolve_charset(guess["encoding"])
        if (codec and guess["confidence"] >= _DETECTION_MIN_CONFIDENCE
                and not _invalid_sequences(sample, codec, final)):
            return codec
    return WINDOWS_1252


def is_mislabelled_utf8(data: bytes, codec: str | None) -> bool:
    """Whether header bytes declared in the Latin single-byte family are really UTF-8.

    Mail programs that write UTF-8 but label it "iso-8859-1" or "us-ascii" are common
    (=?iso-8859-1?Q?Fr=C3=B6sche?=). The check needs a multi-byte sequence, and genuine
    Latin-1 text is valid multi-byte UTF-8 only by a tiny chance: every 8-bit character in it
    would have to be an accented capital, "ß" or one of "à".."ô", each directly followed by
    one to three characters of 0x80-0xBF (the no-break space, symbols such as "©", "°" and
    "»", windows-1252's curly quotes), which is what UTF-8 looks like read as Latin-1
    ("FrÃ¶sche"), not what people write. Every label this module reads as windows-1252
    (us-ascii, iso-8859-1, latin1, windows-1252 and their aliases) is in the family; other
    charsets are left as declared.
    """
    if codec != WINDOWS_1252 or data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decodes_cleanly(data: bytes, codec: str | None) -> bool:
    """Whether all of `data` is text in `codec` (None, no codec: False)."""
    return codec is not None and _clean_text(data, codec) is not None


def encode_text(text: str, codec: str) -> bytes:
    """The bytes `text` was decoded from with `codec` here: the inverse of this module's
    decoding, windows-1252's undefined bytes (read as C1 controls) included."""
    if codec == WINDOWS_1252:
        return codecs.charmap_encode(text, "strict", _WINDOWS_1252_ENCODING)[0]
    return text.encode(codec)


def decode_text(data: bytes, charset: str | None) -> tuple[str, list[Defect]]:
    """Decode a whole text body; the codec is chosen from all of `data`, not a prefix."""
    codec = resolve_charset(_normalize(charset))
    if codec is not None and (text := _clean_text(data, codec)) is not None:
        return text, []   # what TextDecoder gives when the declaration holds for every byte
    decoder = TextDecoder(charset, sniff_size=len(data) + 1)
    text = decoder.decode(data) + decoder.finish()
    return text, decoder.defects


class TextDecoder:
    """Incremental decoding of a text body declared as `charset` (None = not declared).

    Defect offsets are byte offsets into the bytes fed (the transfer-decoded body).
    """

    def __init__(self, charset: str | None, sniff_size: int = SNIFF_SIZE):
        self.declared = charset
        self.codec: str | None = None   # chosen after the first sniff_size bytes
        self.defects: list[Defect] = []
        self._sniff_size = sniff_size
        self._sniffed = bytearray()
        self._decoder: codecs.IncrementalDecoder | None = None
        self._replacements = _Replacements()

    def decode(self, data: bytes) -> str:
        if self._decoder is None:
            self._sniffed += data
            if len(self._sniffed) < self._sniff_size:
                return ""
            data = bytes(self._sniffed)
            self._sniffed.clear()
            self._choose(data, final=False)
        return self._replacements.decode(self._decoder, data, final=False)

    def finish(self) -> str:
        """The text still held back (a sniffed prefix, a partial character at the end)."""
        data = b""
        if self._decoder is None:
            data = bytes(self._sniffed)
            self._sniffed.clear()
            self._choose(data, final=True)
        text = self._replacements.decode(self._decoder, data, final=True)
        if self._replacements.count:
            self.defects.append(Defect(
                DefectKind.CHARSET_FALLBACK, self._replacements.first_offset,
                f"{self._replacements.count} undecodable sequence(s) in {self.codec} replaced by U+FFFD"))
        return text

    def _choose(self, sample: bytes, final: bool) -> None:
        declared = _normalize(self.declared)
        codec = resolve_charset(declared)
        if codec and _declaration_holds(sample, codec, final):
            self.codec = codec
        elif codec:
            self.codec = detect_codec(sample, final)
            self.defects.append(Defect(DefectKind.CHARSET_FALLBACK, 0,
                                       f"text does not decode as declared {self.declared!r}; read as {self.codec}"))
        else:
            if declared not in _UNDECLARED:
                self.defects.append(Defect(DefectKind.UNKNOWN_CHARSET, 0, repr(self.declared)))
            if sample.isascii():
                self.codec = "utf-8"   # nothing to detect; UTF-8 is the likeliest for what follows
            else:
                self.codec = detect_codec(sample, final)
                self.defects.append(Defect(DefectKind.CHARSET_DETECTED, 0, f"read as {self.codec}"))
        self._decoder = _incremental_decoder(self.codec)


class _Replacements:
    """Counts the sequences a decoder could not decode; the error handler reports here."""

    def __init__(self):
        self.count = 0
        self.first_offset = 0
        self._position = 0   # bytes fed to decoders through this counter so far

    def decode(self, decoder: codecs.IncrementalDecoder, data: bytes, final: bool) -> str:
        token = _counting.set(self)
        try:
            return decoder.decode(data, final)
        finally:
            _counting.reset(token)
            self._position += len(data)

    def record(self, start: int) -> None:
        if not self.count:
            self.first_offset = self._position + start
        self.count += 1


_counting: ContextVar[_Replacements | None] = ContextVar("mimekit_charset_replacements", default=None)


def _replace_and_count(exc: UnicodeDecodeError) -> tuple[str, int]:
    replacements = _counting.get()
    if replacements is not None:
        replacements.record(exc.start)
    return "\ufffd", exc.end


codecs.register_error("mimekit-replace-and-count", _replace_and_count)


class _Windows1252Decoder(codecs.IncrementalDecoder):
    """Single-byte and stateless, so each chunk decodes on its own."""

    def decode(self, data: bytes, final: bool = False) -> str:
        return codecs.charmap_decode(data, self.errors, _WINDOWS_1252_TABLE)[0]


class _ByteOrderDecoder(codecs.IncrementalDecoder):
    """UTF-16 or UTF-32 whose byte order is found in the text (see _UNMARKED_ORDER_UNITS).

    The order is chosen from the first chunk, which TextDecoder makes its whole sniffed sample.
    """

    def __init__(self, unit: int, errors: str):
        super().__init__(errors)
        self._unit = unit
        self._head = b""
        self._decoder: codecs.IncrementalDecoder | None = None

    def decode(self, data: bytes, final: bool = False) -> str:
        if self._decoder is None:
            data = self._head + data
            if len(data) < self._unit and not final:   # too short to hold a byte-order mark
                self._head = data
                return ""
            self._head = b""
            order, marked = _byte_order(data, self._unit)
            self._decoder = codecs.getincrementaldecoder(f"utf-{8 * self._unit}-{order}")(self.errors)
            # The mark is decoded (as U+FEFF) and then dropped, so that the offsets of bad
            # sequences stay offsets into the bytes fed.
            text = self._decoder.decode(data, final)
            return text[1:] if marked else text
        return self._decoder.decode(data, final)


def _byte_order(head: bytes, unit: int) -> tuple[str, bool]:
    """("be" or "le", whether `head` starts with a byte-order mark) for UTF-16 (unit 2) or
    UTF-32 (unit 4).

    Without a mark, zero bytes decide: ASCII and Latin letters have a zero as the first byte of
    their code unit in big-endian, as the last in little-endian (and every UTF-32 character has
    one there), while other letters have a zero byte only once in 256. Big-endian, RFC 2781's
    default, wins ties, so text with no zero byte at all is big-endian.
    """
    marks = ((codecs.BOM_UTF32_BE, codecs.BOM_UTF32_LE) if unit == 4
             else (codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE))
    for order, mark in zip(("be", "le"), marks):
        if head.startswith(mark):
            return order, True
    return ("le" if head[unit - 1::unit].count(0) > head[::unit].count(0) else "be"), False


def _incremental_decoder(codec: str) -> codecs.IncrementalDecoder:
    if codec == WINDOWS_1252:
        return _Windows1252Decoder("mimekit-replace-and-count")
    if codec in _UNMARKED_ORDER_UNITS:
        return _ByteOrderDecoder(_UNMARKED_ORDER_UNITS[codec], "mimekit-replace-and-count")
    return codecs.getincrementaldecoder(codec)("mimekit-replace-and-count")


def _clean_text(data: bytes, codec: str) -> str | None:
    """All of `data` as text in `codec`, or None when some sequence does not decode: what
    _trial_decode gives without a replacement, by one C call where the codec allows."""
    if codec == WINDOWS_1252:
        return codecs.charmap_decode(data, "strict", _WINDOWS_1252_TABLE)[0]
    if codec in _UNMARKED_ORDER_UNITS:   # the byte order is read from the text
        text, invalid = _trial_decode(data, codec, final=True)
        return None if invalid else text
    try:
        return data.decode(codec)
    except UnicodeError:
        return None


def _invalid_sequences(sample: bytes, codec: str, final: bool) -> int:
    return _trial_decode(sample, codec, final)[1]


def _trial_decode(sample: bytes, codec: str, final: bool) -> tuple[str, int]:
    """The sample's text in `codec` and how many sequences had to be replaced."""
    counter = _Replacements()
    text = counter.decode(_incremental_decoder(codec), sample, final)
    return text, counter.count


def _declaration_holds(sample: bytes, codec: str, final: bool) -> bool:
    """True unless the declared codec fails on more non-ASCII text than it reads.

    A few bad sequences among many good ones are stray damage (a cut, one foreign byte),
    and keeping the declaration keeps the rest of the text right. ASCII text is evidence for
    a codec only where its characters are not ASCII bytes (UTF-16, UTF-32).
    """
    text, invalid = _trial_decode(sample, codec, final)
    if not invalid:
        return True
    evidence = len(text) if codec in _WIDE_CODECS else len(text) - len(text.encode("ascii", "ignore"))
    return invalid <= evidence - invalid


def _normalize(label: str | None) -> str:
    return (label or "").strip().strip("\"'").strip().lower()
