"""Text from its declared charset, read the way mail programs meant it.

Labels are mapped as browsers do (WHATWG Encoding Standard): "iso-8859-1" and "us-ascii"
really mean windows-1252, "gb2312" means GB18030, "ks_c_5601-1987" means cp949,
"shift_jis" means cp932. A missing, unknown or plainly wrong declaration is answered by
detection (`detect_codec`: UTF-8 if the bytes are valid UTF-8, else chardet when it has
enough to go on, else windows-1252) and a defect says so; bytes that still do not decode are
replaced, never dropped silently, and counted in a defect. UTF-16 and UTF-32 without a
byte-order mark are read as RFC 2781 says, big-endian, unless the text's zero bytes show it is
little-endian (`_byte_order`).

Three declarations are not taken at their word in a body (TextDecoder); the header decoders
(mimekit.headers.encoded_words) apply the first two as well:
- A single-byte label (iso-8859-*, windows-125x, koi8-r, us-ascii ...) on text that is valid
  multi-byte UTF-8 is read as UTF-8 (`is_mislabelled_utf8`), with a CHARSET_FALLBACK defect
  (a declaration was there and is overruled, as when it fails to decode; CHARSET_DETECTED
  is for text that declares nothing). Browsers keep the label, and print "РџСЂРёРІРµС‚"
  for a windows-1251 label on UTF-8 Russian; but genuine single-byte text is valid UTF-8
  only by a freak: of 8,757 runs of one word to a whole text of the sentences in
  tests/codecs/test_multilingual.py (as written and upper-cased) in 21 single-byte code
  pages, none was.
- 7-bit text with ISO-2022 escape sequences (ESC $ B ...) under no label or an
  ASCII-compatible one (mail programs label ISO-2022-JP us-ascii, its bytes being ASCII) is
  read as ISO-2022 (`iso_2022_variant`, CHARSET_DETECTED).
- Text without a usable label is first tried in the charsets the same message declares
  elsewhere (`hints`, see detect_codec), before chardet.

`TextDecoder` streams: it looks at the first SNIFF_SIZE bytes to choose a codec, then
decodes chunk by chunk. `decode_text` is the whole-bytes convenience over it.
"""

import codecs
import functools
import re
import unicodedata
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

# Multi-byte UTF-8 characters it takes to doubt a single-byte declaration other than the
# windows-1252 family (see is_mislabelled_utf8): one can be a Latin-2 or Cyrillic capital
# followed by a letter from 0xA0-0xBF ("Ăś" is UTF-8 "ö"), two in a row hardly ever are.
_MISLABELLED_UTF8_MIN_SEQUENCES = 2

# 7-bit ISO-2022 text (RFC 1468 Japanese, RFC 1557 Korean, RFC 1922 Chinese, and RFC 1554's
# ISO-2022-JP-2 mix), read by one decoder (_Iso2022Decoder): the escape sequences in the text
# say which character set each stretch is in, so one reader serves every variant.
ISO_2022 = "iso-2022"

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
    "iso-2022-cn": ISO_2022, "iso-2022-cn-ext": ISO_2022, "csiso2022cn": ISO_2022,
    "cp50220": ISO_2022, "cp50221": ISO_2022, "cp50222": ISO_2022,
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
    "big5": "big5hkscs", "iso2022_jp": ISO_2022, "iso2022_jp_1": ISO_2022, "iso2022_jp_2": ISO_2022,
    "iso2022_jp_ext": ISO_2022, "iso2022_kr": ISO_2022,
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


def detect_codec(sample: bytes, final: bool = True, hints: tuple[str, ...] = ()) -> str:
    """The codec for 8-bit text without a usable declaration: UTF-8 if the sample is valid
    UTF-8 (it rarely is by accident), else the first of `hints` (labels of charsets declared
    elsewhere in the same message) that reads the sample cleanly and plausibly, else chardet's
    guess when it has enough to go on and the guess decodes the sample, else windows-1252,
    which decodes anything.

    A hint goes first because a message is nearly always written in one charset by one
    program: a Turkish body without a label, in a message whose Subject says iso-8859-9,
    is iso-8859-9 (chardet reads it as windows-1252, whose bytes decode it as well).

    `final` is False when more text follows the sample (a character may be cut at its end).
    """
    if not _invalid_sequences(sample, "utf-8", final):
        return "utf-8"
    for hint in hints:
        codec = resolve_charset(hint)
        if codec and codec not in _WIDE_CODECS and codec != ISO_2022:
            text, invalid = _trial_decode(sample, codec, final)
            if not invalid and _plausible(text):
                return codec
    head = sample[:SNIFF_SIZE]
    if sum(byte >= 0x80 for byte in head) >= _DETECTION_MIN_8BIT:
        import chardet  # on first need: importing it costs every command 25 ms of start-up
        guess = chardet.detect(head)
        codec = resolve_charset(guess["encoding"])
        if (codec and guess["confidence"] >= _DETECTION_MIN_CONFIDENCE
                and not _invalid_sequences(sample, codec, final)):
            return codec
    return WINDOWS_1252


# Letters of one word; the first word of a letter's Unicode name is its script, near enough.
_WORD = re.compile(r"[^\W\d_]+")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def _plausible(text: str) -> bool:
    """Whether `text` reads as written language rather than bytes read in the wrong charset.

    Single-byte charsets decode nearly anything, so decoding cleanly proves little; what
    gives a wrong one away is control characters, and words that mix scripts ("GrЭЪe":
    Latin-1 read as koi8-r) or are made of accented letters only ("Ïðèâåò": windows-1251
    read as windows-1252). One such word in ten is allowed, for names and quotations.
    """
    if _CONTROLS.search(text):
        return False
    foreign = [word for word in _WORD.findall(text) if not word.isascii()]
    odd = sum(1 for word in foreign if _looks_misread(word))
    return odd * 10 <= len(foreign)


def _looks_misread(word: str) -> bool:
    scripts = {_script(char) for char in word}
    if len(scripts) > 1:
        return True
    return scripts == {"LATIN"} and len(word) >= 3 and not any(char.isascii() for char in word)


@functools.lru_cache(maxsize=4096)
def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    return "LATIN" if char.isascii() else name.split(" ", 1)[0] if name else "?"


def is_mislabelled_utf8(data: bytes, codec: str | None, final: bool = True) -> bool:
    """Whether text declared in a single-byte charset (the Latin family, koi8-r, windows-1251,
    iso-8859-7 ...) is really UTF-8.

    Mail programs that write UTF-8 but label it "iso-8859-1", "us-ascii" or their local code
    page are common (=?iso-8859-1?Q?Fr=C3=B6sche?=, a windows-1251 body in UTF-8). The check
    needs a multi-byte sequence: genuine single-byte text is valid UTF-8 only if every 8-bit
    character in it is one of the 30-odd that lead a sequence, each directly followed by one
    to three of the 64 that continue one; that is what UTF-8 read as a single-byte charset
    looks like ("FrÃ¶sche"), not what people write (see the module's docstring for the
    measurement). Two 8-bit letters side by side do form one UTF-8 character 1% (koi8-r) to
    16% (windows-874) of the time, so outside the windows-1252 family, whose lead bytes are
    accented capitals and whose continuation bytes are mostly symbols, one such character
    alone ("Ăś" in Latin-2) is left as declared: it takes _MISLABELLED_UTF8_MIN_SEQUENCES.
    `final` is False when more text follows `data`.
    """
    if codec is None or data.isascii() or not _is_single_byte(codec):
        return False
    sequences = sum(byte >= 0xC0 for byte in data)   # lead bytes: one per multi-byte character
    if sequences < (1 if codec == WINDOWS_1252 else _MISLABELLED_UTF8_MIN_SEQUENCES):
        return False
    return not _invalid_sequences(data, "utf-8", final)


@functools.lru_cache(maxsize=64)
def _is_single_byte(codec: str) -> bool:
    """Whether `codec` reads every byte as one character on its own (koi8-r, iso-8859-*, cp125x)."""
    if codec == "utf-8":
        return False
    decoder = _incremental_decoder(codec)
    for byte in range(256):
        decoder.reset()
        if len(decoder.decode(bytes([byte]), False)) != 1:
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
    if (codec is not None and not _declaration_overruled(data, codec, final=True)
            and (text := _clean_text(data, codec)) is not None):
        return text, []   # what TextDecoder gives when the declaration holds for every byte
    decoder = TextDecoder(charset, sniff_size=len(data) + 1)
    text = decoder.decode(data) + decoder.finish()
    return text, decoder.defects


class TextDecoder:
    """Incremental decoding of a text body declared as `charset` (None = not declared).

    `hints` are the labels of charsets the same message declares elsewhere (its encoded-words,
    its other parts: mimekit.read.charset_hints), the first guess for text that does not say.

    Defect offsets are byte offsets into the bytes fed (the transfer-decoded body).
    """

    def __init__(self, charset: str | None, sniff_size: int = SNIFF_SIZE, hints: tuple[str, ...] = ()):
        self.declared = charset
        self.hints = hints   # charsets declared elsewhere in the message, tried before chardet
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
        if variant := _undeclared_iso_2022(sample, codec):
            # The escapes are ASCII, so mail programs label such text us-ascii or nothing.
            self.codec = ISO_2022
            context = f" in text declared {self.declared!r}" if codec else ""
            self.defects.append(Defect(DefectKind.CHARSET_DETECTED, 0,
                                       f"ISO-2022 escape sequences{context}; read as {variant}"))
        elif is_mislabelled_utf8(sample, codec, final):
            self.codec = "utf-8"
            self.defects.append(Defect(DefectKind.CHARSET_FALLBACK, 0,
                                       f"{self.declared!r} text is UTF-8; read as utf-8"))
        elif codec and _declaration_holds(sample, codec, final):
            self.codec = codec
        elif codec:
            self.codec = detect_codec(sample, final, self.hints)
            self.defects.append(Defect(DefectKind.CHARSET_FALLBACK, 0,
                                       f"text does not decode as declared {self.declared!r}; "
                                       f"read as {self._detected()}"))
        else:
            if declared not in _UNDECLARED:
                self.defects.append(Defect(DefectKind.UNKNOWN_CHARSET, 0, repr(self.declared)))
            if sample.isascii():
                self.codec = "utf-8"   # nothing to detect; UTF-8 is the likeliest for what follows
            else:
                self.codec = detect_codec(sample, final, self.hints)
                self.defects.append(Defect(DefectKind.CHARSET_DETECTED, 0, f"read as {self._detected()}"))
        self._decoder = _incremental_decoder(self.codec)

    def _detected(self) -> str:
        """The codec detection chose, and whether the message declared it elsewhere."""
        hinted = self.codec != "utf-8" and any(resolve_charset(hint) == self.codec for hint in self.hints)
        return f"{self.codec} (declared elsewhere in the message)" if hinted else self.codec


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


# ---------------------------------------------------------------------------------------
# ISO-2022

# The escape sequences mail uses: designations of a character set to G0-G3 (ESC $ B: JIS X 0208
# to G0, ESC $ ) C: KS X 1001 to G1, ESC $ * H: CNS 11643 plane 2 to G2, ESC ( I: JIS X 0201
# katakana to G0, ESC . A: Latin-1 to G2 ...), the single shifts ESC N and ESC O, and
# ESC & @, which announces JIS X 0208-1990 and changes nothing.
_ISO_2022_ESCAPE = re.compile(
    rb"\x1b(?:\$(?P<short>[@AB])|\$(?P<multi_g>[()*+])(?P<multi>[@-O])|(?P<single_g>[()*+])(?P<single>[@-Z])"
    rb"|(?P<wide_g>[-./])(?P<wide>[@-Z])|(?P<shift>[NO])|(?P<announcer>&@))")
# What may still become one of them when more bytes come.
_ISO_2022_ESCAPE_PREFIX = re.compile(rb"\x1b(?:\$[()*+]?|[()*+\-./&])?")
_GRAPHIC_SETS = {ord("("): 0, ord(")"): 1, ord("*"): 2, ord("+"): 3, ord("-"): 1, ord("."): 2, ord("/"): 3}
# Designations that name the variant of ISO-2022 a text is in (what detection reports).
_ISO_2022_VARIANTS = re.compile(rb"\x1b(?:\$(?P<jp>[@B]|\(D)|\((?P<kana>[IJ])|\$\)?(?P<kr>\(C|C)|\$(?P<cn>[)*+]?[AEGH]))")
_DOUBLE_BYTE_SETS = {"@": "jis0208", "B": "jis0208", "D": "jis0212", "A": "gb2312", "E": "gb2312",
                     "C": "ksc5601", "G": "cns11643", "H": "cns11643"}
_SINGLE_BYTE_SETS = {"B": "ascii", "J": "jis-roman", "I": "jis-katakana"}
_SIXTY_SIX_SETS = {"A": "latin-1", "F": "greek"}
_SINGLE_BYTE_TABLES = {
    # JIS X 0201 Roman is ASCII with a yen sign and an overline (as WHATWG and Python read it).
    "jis-roman": {0x5C: "\u00a5", 0x7E: "\u203e"},
    "jis-katakana": {byte: chr(0xFF61 + byte - 0x21) for byte in range(0x21, 0x60)},
    "latin-1": {byte: chr(byte | 0x80) for byte in range(0x20, 0x80)},
    "greek": {byte: bytes([byte | 0x80]).decode("iso8859_7") for byte in range(0x20, 0x80)
              if bytes([byte | 0x80]) not in (b"\xae", b"\xd2", b"\xff")},
}
_DOUBLE_BYTE_CHARSETS = frozenset(_DOUBLE_BYTE_SETS.values()) | {"unknown-double"}
_RUN_END = re.compile(rb"[\x1b\x0e\x0f\r\n]")   # what ends a run of characters in one set
_GRAPHIC_RUN = re.compile(rb"[\x21-\x7e]*")
_PAIR_OR_BYTE = re.compile(rb"[\x21-\x7e]{2}|[\s\S]")


def _jis_x_0208_as_cp932(lead: int, trail: int) -> bytes:
    """The Shift_JIS bytes of a JIS X 0208 row and cell (each 0x21-0x7E), where cp932 reads
    rows 13 (NEC: ①, ㈱, ㍻) and 89-92 (NEC's selection of IBM kanji) as CP50220 does."""
    first = ((lead + 1) >> 1) + 0x70
    first += 0x40 if first > 0x9F else 0
    second = trail + 0x7E if lead % 2 == 0 else trail + 0x1F + (trail >= 0x60)
    return bytes((first, second))


_PAIR_READERS = {
    "jis0208": lambda lead, trail: _jis_x_0208_as_cp932(lead, trail).decode("cp932"),
    "jis0212": lambda lead, trail: bytes((0x8F, lead | 0x80, trail | 0x80)).decode("euc_jp"),
    "gb2312": lambda lead, trail: bytes((lead | 0x80, trail | 0x80)).decode("gb18030"),
    "ksc5601": lambda lead, trail: bytes((lead | 0x80, trail | 0x80)).decode("cp949"),
}


@functools.cache
def _pair_table(charset: str) -> dict[bytes, str]:
    """Each two-byte code of a 94x94 set and its character (CNS 11643, which Python has no
    codec for, has none: its characters are replaced and counted)."""
    reader = _PAIR_READERS.get(charset)
    table = {}
    for lead in range(0x21, 0x7F) if reader else ():
        for trail in range(0x21, 0x7F):
            try:
                table[bytes((lead, trail))] = reader(lead, trail)
            except UnicodeDecodeError:
                pass
    return table


def iso_2022_variant(sample: bytes) -> str | None:
    """"iso-2022-jp", "-kr" or "-cn" when 7-bit `sample` designates a set of that variant."""
    match = _ISO_2022_VARIANTS.search(sample) if sample.isascii() else None
    if match is None:
        return None
    return "iso-2022-" + ("jp" if match["jp"] or match["kana"] else "kr" if match["kr"] else "cn")


def iso_2022_decoder() -> codecs.IncrementalDecoder:
    """A decoder of 7-bit ISO-2022 text in any variant; what it cannot read becomes U+FFFD."""
    return _Iso2022Decoder("replace")


class _Iso2022Decoder(codecs.IncrementalDecoder):
    """7-bit ISO-2022 text of any variant (JP, JP-2, KR, CN), led by its escape sequences.

    JIS X 0208 is read through cp932, so the vendor rows CP50220 writes (NEC row 13, NEC's
    selection of IBM kanji) are characters, not replacements; half-width katakana come in
    with ESC ( I (or ESC ) I and SO). A line end ends a shift out (RFC 1557, RFC 1922) but
    not a designation, so a mailer that designates once and shifts on every line is read.
    SO and SI shift only once G1 holds a set: before that (ISO-2022-JP never designates G1)
    they are the control characters themselves, as Python's ISO-2022-JP codecs write them.
    Between feeds at most an unfinished escape sequence or half a character is held.
    """

    def __init__(self, errors: str = "strict"):
        super().__init__(errors)
        self.reset()

    def reset(self) -> None:
        self._sets: list[str | None] = ["ascii", None, None, None]   # what G0-G3 hold
        self._shifted_out = False    # SO: G1 is in use
        self._single_shift = 0       # 2 or 3: the next character is from G2 or G3
        self._held = b""

    def decode(self, data: bytes, final: bool = False) -> str:
        data, held = self._held + data, len(self._held)
        self._held = b""
        out: list[str] = []
        position = 0
        while position < len(data):
            byte = data[position]
            if byte == 0x1B:
                escape = _ISO_2022_ESCAPE.match(data, position)
                if escape is None:
                    if not final and _ISO_2022_ESCAPE_PREFIX.fullmatch(data, position):
                        self._held = data[position:]
                        break
                    out.append(self._error(data, position, position + 1, held, "unknown escape sequence"))
                    position += 1
                    continue
                self._designate(escape)
                position = escape.end()
            elif byte in (0x0E, 0x0F) and self._sets[1] is not None:
                self._shifted_out = byte == 0x0E
                position += 1
            elif byte in (0x0A, 0x0D):
                self._shifted_out = False
                out.append(chr(byte))
                position += 1
            else:
                run_end = _RUN_END.search(data, position + 1)
                end = run_end.start() if run_end else len(data)
                position = self._decode_run(data, position, end, final, held, out)
                if position < end:   # half a character at the end of what was fed
                    self._held = data[position:]
                    break
        return "".join(out)

    def getstate(self) -> tuple[bytes, int]:
        return self._held, 0

    def _designate(self, escape: re.Match) -> None:
        if escape["short"]:
            self._sets[0] = _DOUBLE_BYTE_SETS.get(escape["short"].decode(), "unknown-double")
        elif escape["multi"]:
            self._sets[_GRAPHIC_SETS[escape["multi_g"][0]]] = _DOUBLE_BYTE_SETS.get(escape["multi"].decode(),
                                                                                 "unknown-double")
        elif escape["single"]:
            self._sets[_GRAPHIC_SETS[escape["single_g"][0]]] = _SINGLE_BYTE_SETS.get(escape["single"].decode(),
                                                                                  "ascii")
        elif escape["wide"]:
            self._sets[_GRAPHIC_SETS[escape["wide_g"][0]]] = _SIXTY_SIX_SETS.get(escape["wide"].decode(),
                                                                              "unknown-single")
        elif escape["shift"]:
            self._single_shift = 2 if escape["shift"] == b"N" else 3

    def _decode_run(self, data: bytes, start: int, end: int, final: bool, held: int, out: list[str]) -> int:
        """Decode data[start:end] (no escape, shift or line end in it) into `out`; returns where
        it stopped: before `end` only for half a character that more data may complete."""
        more_may_come = not final and end == len(data)
        if self._single_shift:
            charset = self._sets[self._single_shift]
            stop = min(start + (2 if charset in _DOUBLE_BYTE_CHARSETS else 1), end)
            text, stop = self._characters(charset, data, start, stop, held, more_may_come and stop == end)
            if stop == start:
                return start
            self._single_shift = 0
            out.append(text)
            start = stop
        text, stop = self._characters(self._sets[1 if self._shifted_out else 0], data, start, end, held,
                                      more_may_come)
        out.append(text)
        return stop

    def _characters(self, charset: str | None, data: bytes, start: int, end: int, held: int,
                    more_may_come: bool) -> tuple[str, int]:
        """The text of data[start:end] in `charset`, and where it ends: before a half character
        at the end when `more_may_come`."""
        if charset == "ascii" and data[start:end].isascii():
            return data[start:end].decode("ascii"), end
        text = []
        if charset in _DOUBLE_BYTE_CHARSETS:
            table = _pair_table(charset)
            if (end - start) % 2 == 0 and _GRAPHIC_RUN.fullmatch(data, start, end):   # the usual run: pairs only
                chars = list(map(table.get, [data[index:index + 2] for index in range(start, end, 2)]))
                if None not in chars:
                    return "".join(chars), end
            for piece in _PAIR_OR_BYTE.finditer(data, start, end):
                code = piece[0]
                if len(code) == 2:
                    char = table.get(code)
                elif 0x21 <= code[0] <= 0x7E:   # half a character
                    if more_may_come and piece.end() == end:
                        return "".join(text), piece.start()
                    char = None
                else:
                    char = chr(code[0]) if code[0] < 0x80 else None   # controls and the space
                text.append(char if char is not None
                            else self._error(data, piece.start(), piece.end(), held, f"not a {charset} character"))
            return "".join(text), end
        table = _SINGLE_BYTE_TABLES.get(charset or "", {})
        ascii_based = charset in ("ascii", "jis-roman")
        for index in range(start, end):
            byte = data[index]
            char = table.get(byte)
            if char is None and (byte < 0x21 or ascii_based and byte < 0x80):
                char = chr(byte)   # controls and the space are themselves in every set
            text.append(char if char is not None
                        else self._error(data, index, index + 1, held, f"not a {charset} character"))
        return "".join(text), end

    def _error(self, data: bytes, start: int, end: int, held: int, reason: str) -> str:
        """What the error handler makes of data[start:end]; offsets count from this feed's bytes."""
        start, end = max(start - held, 0), max(end - held, 0)
        error = UnicodeDecodeError(ISO_2022, data[held:], start, max(end, start + 1), reason)
        return codecs.lookup_error(self.errors)(error)[0]


def _incremental_decoder(codec: str) -> codecs.IncrementalDecoder:
    if codec == WINDOWS_1252:
        return _Windows1252Decoder("mimekit-replace-and-count")
    if codec in _UNMARKED_ORDER_UNITS:
        return _ByteOrderDecoder(_UNMARKED_ORDER_UNITS[codec], "mimekit-replace-and-count")
    if codec == ISO_2022:
        return _Iso2022Decoder("mimekit-replace-and-count")
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
        if codec == ISO_2022:
            return _Iso2022Decoder().decode(data, final=True)
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
    if codec == ISO_2022 and sample.isascii():
        return True   # no other reading of 7-bit text would do better than its escapes
    text, invalid = _trial_decode(sample, codec, final)
    if not invalid:
        return True
    evidence = len(text) if codec in _WIDE_CODECS else len(text) - len(text.encode("ascii", "ignore"))
    return invalid <= evidence - invalid


def _undeclared_iso_2022(sample: bytes, codec: str | None) -> str | None:
    """The ISO-2022 variant of 7-bit `sample` when its declaration (`codec`) does not say ISO-2022."""
    return None if codec == ISO_2022 or codec in _WIDE_CODECS else iso_2022_variant(sample)


def _declaration_overruled(sample: bytes, codec: str, final: bool) -> bool:
    """Whether text that decodes as declared is still read otherwise (see TextDecoder._choose)."""
    return bool(_undeclared_iso_2022(sample, codec)) or is_mislabelled_utf8(sample, codec, final)


def _normalize(label: str | None) -> str:
    return (label or "").strip().strip("\"'").strip().lower()
