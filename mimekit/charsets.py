"""Text from its declared charset, read the way mail programs meant it.

Labels are mapped as browsers do (WHATWG Encoding Standard): "iso-8859-1" and "us-ascii"
really mean windows-1252, "gb2312" means GB18030, "ks_c_5601-1987" means cp949,
"shift_jis" means cp932. A missing, unknown or plainly wrong declaration is answered by
detection (UTF-8 if the bytes are valid UTF-8, else chardet) and a defect says so; bytes
that still do not decode are replaced, never dropped silently, and counted in a defect.

`TextDecoder` streams: it looks at the first SNIFF_SIZE bytes to choose a codec, then
decodes chunk by chunk. `decode_text` is the whole-bytes convenience over it.
"""

import codecs
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
}
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


def decode_text(data: bytes, charset: str | None) -> tuple[str, list[Defect]]:
    """Decode a whole text body; the codec is chosen from all of `data`, not a prefix."""
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
            self.codec = _detect(sample, final)
            self.defects.append(Defect(DefectKind.CHARSET_FALLBACK, 0,
                                       f"text does not decode as declared {self.declared!r}; read as {self.codec}"))
        else:
            if declared not in _UNDECLARED:
                self.defects.append(Defect(DefectKind.UNKNOWN_CHARSET, 0, repr(self.declared)))
            if sample.isascii():
                self.codec = "utf-8"   # nothing to detect; UTF-8 is the likeliest for what follows
            else:
                self.codec = _detect(sample, final)
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


def _incremental_decoder(codec: str) -> codecs.IncrementalDecoder:
    if codec == WINDOWS_1252:
        return _Windows1252Decoder("mimekit-replace-and-count")
    return codecs.getincrementaldecoder(codec)("mimekit-replace-and-count")


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
    and keeping the declaration keeps the rest of the text right.
    """
    text, invalid = _trial_decode(sample, codec, final)
    if not invalid:
        return True
    decoded_non_ascii = len(text) - len(text.encode("ascii", "ignore")) - invalid
    return invalid <= decoded_non_ascii


def _detect(sample: bytes, final: bool) -> str:
    """UTF-8 if the sample is valid UTF-8 (it rarely is by accident), else chardet's guess,
    else windows-1252, which decodes anything."""
    if not _invalid_sequences(sample, "utf-8", final):
        return "utf-8"
    import chardet  # on first need: importing it costs every command 25 ms of start-up
    guess = resolve_charset(chardet.detect(sample[:SNIFF_SIZE])["encoding"])
    if guess and not _invalid_sequences(sample, guess, final):
        return guess
    return WINDOWS_1252


def _normalize(label: str | None) -> str:
    return (label or "").strip().strip("\"'").strip().lower()
