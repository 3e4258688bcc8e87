"""RFC 2047 encoded-words, both directions, and the charset rules header text needs.

Encoding writes UTF-8 encoded-words of at most 75 characters (RFC 2047 §2), B or Q per word
whichever carries more text, never splitting a character (nor, where it can be avoided, a
combining sequence) across words. Whitespace between two adjacent encoded-words is ignored
by decoders (§6.2), so spaces of the text that fall between encoded-words are encoded inside
them, and the words are separated by one folding space.

Decoding is tolerant, as mail in the wild needs: adjacent words are joined, a run of words in
one charset is decoded as one byte string (so a character split across two words survives),
unknown charsets are decoded as well as can be, UTF-8 labelled as Latin-1 or US-ASCII is read
as UTF-8, malformed words stay as they are, raw UTF-8 (RFC 6532) is accepted and other raw
8-bit text is read as chardet's guess or windows-1252 (mimekit.codecs.charsets.detect_codec); raw
8-bit bytes inside an encoded-word are decoded in the word's charset, like its escapes.
Every repair is reported as a Defect whose offset is relative to the start of the value.

Scanning is linear: the encoded-word pattern has no nested quantifiers and every character
class in it stops at the next '?', so no match attempt runs past the next candidate.
"""

import base64
import binascii
import re
import unicodedata
from dataclasses import replace

from mimekit.codecs.charsets import (WINDOWS_1252, decodes_cleanly, detect_codec, encode_text, is_mislabelled_utf8,
                                     iso_2022_decoder, iso_2022_variant, resolve_charset)
from mimekit.codecs.charsets import decode_text as decode_charset
from mimekit.defects import Defect, DefectKind
from mimekit.headers.folding import quote_string

MAX_WORD = 75                                   # RFC 2047 §2: an encoded-word's length limit
_OVERHEAD = len("=?utf-8?q?") + len("?=")       # characters of an encoded-word that carry no text
_MIN_ROOM = _OVERHEAD + 8                       # room for the widest character in either encoding

# charset = RFC 2045 token (no tspecials, no '*' which starts an RFC 2231 language suffix).
_CHARSET = r"[^\x00-\x20\x7f?*()<>@,;:\"/\[\]=\\]+"
ENCODED_WORD = re.compile(
    rf"=\?(?P<charset>{_CHARSET})(?:\*(?P<lang>[^?\s]*))?\?(?P<encoding>[BbQq])\?(?P<text>[^?]*)\?=")
# A word that starts like an encoded-word but does not complete is malformed; only its "=?"
# is consumed, so a real encoded-word starting inside it is still found.
_SCAN = re.compile(rf"{ENCODED_WORD.pattern}|(?P<broken>=\?)(?={_CHARSET}\?)")
_PLAIN_SEGMENT = re.compile(r"[ \t\r\n]+|[^ \t\r\n]+")
# What most values are: encoded-words that need no repair (base64 of whole quanta, Q with only
# =XX escapes) and printable ASCII words without "=?", blanks between them (and at the end:
# the last token is a run of blanks alone). decode_words reads these without _SCAN and
# _payload's checks, with what they would give; anything else takes the full reading.
_CLEAN_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]*)(?:(?P<word>=\?(?P<charset>[A-Za-z0-9._-]+)\?"
    r"(?:[Bb]\?(?P<base64>(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)"
    r"|[Qq]\?(?P<q>(?:[!-<>@-~]|=[0-9A-Fa-f]{2})*))\?=)|(?P<plain>(?:[!-<>-~]|=(?!\?))+)|\Z)")
_FOLD_IN_WORD = re.compile(r"\r?\n[ \t]*|\r")
_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]*=*")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_Q_BAD_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2})")
_WORDS = re.compile(r"[ \t]+|[^ \t]+")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_PRINTABLE_WORD = re.compile(r"[\x21-\x7e]+")
_PRINTABLE_PHRASE = re.compile(r"[\x20-\x7e]*")
_SPACE_RUN = re.compile(r"( {2,})")


# ---------------------------------------------------------------------------------------
# charsets (labels, detection and decoding are mimekit.codecs.charsets'; only the header rules are here)


class DetectionBudget:
    """How many more times one header value may fall back to charset detection.

    chardet costs about a millisecond a call whatever the input's size, so a hostile value
    of thousands of undecodable encoded-words would cost seconds; once the budget is spent,
    bytes that do not decode as declared are read as windows-1252 (which reads anything).
    """

    def __init__(self, detections: int = 4):
        self.detections = detections


def decode_declared(data: bytes, charset: str | None, defects: list[Defect], offset: int,
                    budget: DetectionBudget) -> str:
    """Decode bytes declared as `charset` the way mimekit.codecs.charsets reads any text, except
    that UTF-8 under a Latin label is read as UTF-8 (header text is where mail programs
    mislabel it); defects are reported at `offset`, where the declaration is."""
    codec = resolve_charset(charset)
    if is_mislabelled_utf8(data, codec):
        defects.append(Defect(DefectKind.CHARSET_FALLBACK, offset, f"{charset!r} text is UTF-8; read as utf-8"))
        return data.decode("utf-8")
    if not data.isascii() and not decodes_cleanly(data, codec):
        if budget.detections <= 0:
            kind = DefectKind.UNKNOWN_CHARSET if codec is None and charset else DefectKind.CHARSET_FALLBACK
            defects.append(Defect(kind, offset, f"{charset!r} not decodable; read as {WINDOWS_1252}"))
            return decode_charset(data, WINDOWS_1252)[0]
        budget.detections -= 1
    text, found = decode_charset(data, charset)
    defects.extend(replace(defect, offset=offset) for defect in found)
    return text


def header_text(raw: bytes | str, defects: list[Defect]) -> tuple[str, str | None]:
    """A raw header value as text: ASCII, UTF-8 (RFC 6532), or else a lenient reading.

    Returns the text and the codec it was read with, which maps its characters back to the
    raw bytes (None when they are the same, or when the input was already text).
    """
    if isinstance(raw, str):
        return raw, None
    if raw.isascii():
        return raw.decode("ascii"), None
    codec = detect_codec(raw)
    text, _ = decode_charset(raw, codec)
    if codec != "utf-8":
        first_8bit = next(i for i, byte in enumerate(raw) if byte >= 0x80)
        defects.append(Defect(DefectKind.CHARSET_FALLBACK, first_8bit, f"header is not UTF-8; read as {codec}"))
    return text, codec


def byte_offsets(defects: list[Defect], text: str, codec: str | None) -> list[Defect]:
    """Turn defect offsets counted in characters of `text` into byte offsets of the raw value."""
    if codec is None:
        return defects
    by_offset = sorted(range(len(defects)), key=lambda i: defects[i].offset)
    result = list(defects)
    done_chars = done_bytes = 0
    for i in by_offset:
        offset = defects[i].offset
        done_bytes += len(text[done_chars:offset].encode(codec, errors="replace"))
        done_chars = offset
        result[i] = replace(defects[i], offset=done_bytes)
    return result


# ---------------------------------------------------------------------------------------
# decoding

def _payload(match: re.Match, offset: int, defects: list[Defect], raw_codec: str | None) -> bytes | None:
    """The bytes an encoded-word carries, or None when it is too broken to decode.

    Raw 8-bit characters in a Q word (which RFC 2047 forbids, and old mailers write) become the
    bytes the raw header had, `raw_codec` being the codec it was read with (None: UTF-8), so
    that they are decoded in the word's charset like the word's =XX escapes.
    """
    text = match["text"]
    unfolded = _FOLD_IN_WORD.sub("", text)
    if unfolded != text or " " in unfolded or "\t" in unfolded:
        defects.append(Defect(DefectKind.ENCODED_WORD_MALFORMED, offset, "whitespace inside encoded-word"))
    if match["encoding"] in "Bb":
        compact = "".join(unfolded.split())
        data = compact.rstrip("=")
        if not _BASE64_TEXT.fullmatch(compact) or len(data) % 4 == 1:
            defects.append(Defect(DefectKind.ENCODED_WORD_MALFORMED, offset, "invalid base64 in encoded-word"))
            return None
        if len(compact) % 4:
            defects.append(Defect(DefectKind.ENCODED_WORD_MALFORMED, offset, "base64 padding in encoded-word"))
        return binascii.a2b_base64(data + "=" * (-len(data) % 4))
    data = encode_text(unfolded, raw_codec or "utf-8")
    if _Q_BAD_ESCAPE.search(data):
        defects.append(Defect(DefectKind.ENCODED_WORD_MALFORMED, offset, "invalid =XX escape kept as is"))
    return _q_bytes(data)


def _q_bytes(text: bytes) -> bytes:
    """The bytes a Q word's text stands for: '_' is a space, =XX a byte (a bad escape stays)."""
    return _Q_ESCAPE.sub(lambda m: bytes.fromhex(m[1].decode()), text.replace(b"_", b" "))


class HeaderTextBuilder:
    """Assembles decoded header text from plain text, whitespace and encoded-words.

    Whitespace between two adjacent encoded-words is dropped (RFC 2047 §6.2), and adjacent
    words in the same charset are decoded together as one byte string. `raw_codec` is the
    codec header_text read the raw value with (see _payload). Raw 7-bit ISO-2022 text (what
    Japanese mailers wrote before RFC 2047: ESC $ B ... ESC ( B) is decoded from its first
    escape sequence on, the escapes' state running through the plain text of the value.
    """

    def __init__(self, defects: list[Defect], budget: DetectionBudget | None = None,
                 raw_codec: str | None = None):
        self._defects = defects
        self._budget = budget or DetectionBudget()
        self._raw_codec = raw_codec
        self._out: list[str] = []
        self._space: list[str] = []
        self._after_word = False
        self._charset: str | None = None
        self._bytes = bytearray()
        self._run_offset = 0
        self._iso_2022 = None   # the decoder of raw ISO-2022 text, once an escape is seen

    def add_space(self, whitespace: str) -> None:
        self._space.append(whitespace)

    def add_text(self, text: str) -> None:
        if self._iso_2022 is None and "\x1b" in text and iso_2022_variant(text.encode("latin-1", "replace")):
            self._iso_2022 = iso_2022_decoder()
        if self._iso_2022 is not None and text.isascii():
            text = self._iso_2022.decode(text.encode("ascii"))
        self._flush_run()
        self._out.extend(self._space)
        self._space.clear()
        self._out.append(text)
        self._after_word = False

    def add_encoded_word(self, match: re.Match, offset: int) -> None:
        data = _payload(match, offset, self._defects, self._raw_codec)
        if data is None:
            self.add_text(match.group())
            return
        self.add_payload(match["charset"], data, offset)

    def add_payload(self, charset: str, data: bytes, offset: int) -> None:
        """The bytes an encoded-word at `offset` carries, in the charset it declares."""
        charset = charset.lower()
        if self._after_word:
            self._space.clear()
        if not (self._after_word and charset == self._charset):
            self._flush_run()
            self._out.extend(self._space)
            self._space.clear()
            self._charset, self._run_offset = charset, offset
        self._bytes += data
        self._after_word = True

    def text(self) -> str:
        if self._iso_2022 is not None:
            self._out.append(self._iso_2022.decode(b"", final=True))
        self._flush_run()
        self._out.extend(self._space)
        self._space.clear()
        return "".join(self._out)

    def _flush_run(self) -> None:
        if self._charset is not None:
            self._out.append(decode_declared(bytes(self._bytes), self._charset, self._defects,
                                             self._run_offset, self._budget))
            self._charset, self._bytes = None, bytearray()


def decode_words(text: str, defects: list[Defect], offset: int = 0,
                 budget: DetectionBudget | None = None, raw_codec: str | None = None) -> str:
    """Decode the encoded-words in unstructured text; line breaks of folding are removed.

    `offset` is where `text` starts in the value, for the defects' offsets; `budget` is
    shared by all the pieces of one header value; `raw_codec` is what header_text returned.
    """
    builder = HeaderTextBuilder(defects, budget, raw_codec)
    clean = _clean_tokens(text) if raw_codec is None else None
    if clean is not None:
        for token in clean:
            if token["space"]:
                builder.add_space(token["space"].replace("\r", "").replace("\n", ""))
            if token["plain"] is not None:
                builder.add_text(token["plain"])
            elif token["word"] is not None:
                data = (binascii.a2b_base64(token["base64"]) if token["base64"] is not None
                        else binascii.a2b_qp(token["q"], header=True))   # no bad escape, no blank: as _q_bytes
                builder.add_payload(token["charset"], data, offset + token.start("word"))
        return builder.text()

    def add_plain(start: int, end: int) -> None:
        for segment in _PLAIN_SEGMENT.finditer(text, start, end):
            piece = segment.group()
            if piece[0] in " \t\r\n":
                builder.add_space(piece.replace("\r", "").replace("\n", ""))
            else:
                builder.add_text(piece)

    done = 0
    for match in _SCAN.finditer(text):
        start, end = match.span()
        add_plain(done, start)
        done = end
        if match["broken"]:
            defects.append(Defect(DefectKind.ENCODED_WORD_MALFORMED, offset + start, "incomplete encoded-word"))
            builder.add_text(match.group())
            continue
        if (start and not text[start - 1].isspace()) or (end < len(text) and not text[end].isspace()):
            defects.append(Defect(DefectKind.ENCODED_WORD_MALFORMED, offset + start,
                                  "encoded-word not separated by whitespace"))
        builder.add_encoded_word(match, offset + start)
    add_plain(done, len(text))
    if "\x1b" in text and (variant := iso_2022_variant(text.encode("latin-1", "replace"))):
        defects.append(Defect(DefectKind.CHARSET_DETECTED, offset + text.index("\x1b"),
                              f"raw ISO-2022 text; read as {variant}"))
    return builder.text()


def _clean_tokens(text: str) -> list[re.Match] | None:
    """The tokens of `text` when it is all _CLEAN_TOKEN with blanks between encoded-words and
    words (else the full reading would report them), or None."""
    tokens, done = [], 0
    for token in _CLEAN_TOKEN.finditer(text):
        if token.start() != done or (done and not token["space"] and token.end() > done):
            return None
        tokens.append(token)
        done = token.end()
        if done == len(text):
            return tokens
    return None


def decode_header_value(raw: bytes | str) -> tuple[str, list[Defect]]:
    """Decode an unstructured header value (Subject, Comments, ...) to text."""
    if isinstance(raw, bytes) and raw.isascii() and b"=?" not in raw and b"\x1b" not in raw:   # most values
        return raw.decode("ascii").strip(" \t\r\n").replace("\r", "").replace("\n", ""), []
    defects: list[Defect] = []
    text, codec = header_text(raw, defects)
    stripped = text.lstrip(" \t\r\n")
    start = len(text) - len(stripped)
    decoded = decode_words(stripped.rstrip(" \t\r\n"), defects, start, raw_codec=codec)
    return decoded, byte_offsets(defects, text, codec)


# ---------------------------------------------------------------------------------------
# encoding

def _q_table(safe: str) -> list[str]:
    table = [f"={byte:02X}" for byte in range(256)]
    for char in safe:
        table[ord(char)] = char
    table[0x20] = "_"
    return table


# RFC 2047 §5(1): in unstructured text any printable ASCII except '=', '?' and '_'.
_Q_TEXT = _q_table("".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "=?_"))
# RFC 2047 §5(3): in a phrase only letters, digits and "!*+-/"; also safe inside a quoted string.
_Q_PHRASE = _q_table("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _extends_cluster(char: str, previous: str) -> bool:
    """Whether `char` belongs to the same user-perceived character as the one before it."""
    return (unicodedata.category(char) in ("Mn", "Mc", "Me")
            or char == "\u200d" or previous == "\u200d"                 # zero-width joiner
            or "\ufe00" <= char <= "\ufe0f"                             # variation selectors
            or "\U0001f3fb" <= char <= "\U0001f3ff"                     # skin-tone modifiers
            or "\U000e0020" <= char <= "\U000e007f")                    # emoji tag sequences


def _clusters(text: str) -> list[bytes]:
    """UTF-8 bytes of each approximate grapheme cluster: where words may be split."""
    starts = [i for i, char in enumerate(text) if i == 0 or not _extends_cluster(char, text[i - 1])]
    starts.append(len(text))
    return [text[a:b].encode("utf-8") for a, b in zip(starts, starts[1:])]


def _q_encode(data: bytes, table: list[str]) -> str:
    return "".join([table[byte] for byte in data])


def encode_as_words(text: str, *, phrase: bool = False, first_room: int = MAX_WORD,
                    room: int = MAX_WORD) -> list[str]:
    """Encode all of `text` as UTF-8 encoded-words.

    The first word is at most `first_room` characters, the others at most `room` (never over
    75). Each word is B or Q, whichever carries more of the text. `phrase` restricts Q to the
    characters RFC 2047 §5(3) allows in a display name (also safe inside a quoted string), and
    never puts two spaces in a row into one word: Python's address parser reads a run of
    whitespace inside an encoded-word as one space, while a decoder that joins the words
    (RFC 2047 §6.2) gets the run back whole from spaces at their edges.
    """
    table = _Q_PHRASE if phrase else _Q_TEXT
    units = _clusters(text)
    q_sizes = [sum(len(table[byte]) for byte in unit) for unit in units]
    words: list[str] = []
    room = min(room, MAX_WORD)
    capacity = (first_room if first_room >= _MIN_ROOM else room) - _OVERHEAD

    def may_extend(end: int) -> bool:
        return end < len(units) and not (phrase and end > index and units[end] == units[end - 1] == b" ")

    index = 0
    while index < len(units):
        q_end, q_width = index, 0
        while may_extend(q_end) and q_width + q_sizes[q_end] <= capacity:
            q_width += q_sizes[q_end]
            q_end += 1
        b_end, b_bytes = index, 0
        while may_extend(b_end) and 4 * -(-(b_bytes + len(units[b_end])) // 3) <= capacity:
            b_bytes += len(units[b_end])
            b_end += 1
        if q_end == b_end == index:
            # One cluster too long for any word (a pile of combining marks): split it into
            # code points, which always fit.
            codepoints = [char.encode("utf-8") for char in units[index].decode("utf-8")]
            units[index:index + 1] = codepoints
            q_sizes[index:index + 1] = [sum(len(table[b]) for b in cp) for cp in codepoints]
            continue
        data = b"".join(units[index:max(q_end, b_end)])
        b_width = 4 * -(-len(data) // 3) if b_end >= q_end else None
        if q_end > b_end or (q_end == b_end and q_width <= b_width):
            words.append(f"=?utf-8?q?{_q_encode(data, table)}?=")
            index = q_end
        else:
            words.append(f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?=")
            index = b_end
        capacity = room - _OVERHEAD
    return words


def encode_unstructured(text: str, offset: int = 0, max_len: int = 78) -> str:
    """Make unstructured text (a Subject) 7-bit: ASCII words stay, the rest become encoded-words.

    A plain word is encoded too when it could be mistaken for an encoded-word (contains
    "=?") or is too long for a folded line. Whitespace at either end of the text is kept by
    encoding it, since decoders strip it otherwise. `offset` is the number of columns
    already used on the first line, so the first encoded-word fits there.
    """
    tokens = _WORDS.findall(text)
    if not tokens:
        return text
    encode = [False] * len(tokens)
    for i, token in enumerate(tokens):
        if token[0] not in " \t":
            width = len(token) + (offset if i == 0 else 1)
            encode[i] = not _PRINTABLE_WORD.fullmatch(token) or "=?" in token or width > max_len
    for edge, neighbour in ((0, 1), (len(tokens) - 1, len(tokens) - 2)):
        if tokens[edge][0] in " \t":
            encode[edge] = True
            if 0 <= neighbour < len(tokens):
                encode[neighbour] = True
    marked = [i for i, flag in enumerate(encode) if flag]
    if not marked:
        return text
    # Runs of tokens encoded together: the whitespace between two encoded tokens must be
    # inside the encoding, and a short plain stretch between them costs less encoded than
    # the overhead of starting another encoded-word.
    runs = [[marked[0], marked[0]]]
    for i in marked[1:]:
        gap = sum(len(t) for t in tokens[runs[-1][1] + 1:i])
        if gap < _OVERHEAD or all(t[0] in " \t" for t in tokens[runs[-1][1] + 1:i]):
            runs[-1][1] = i
        else:
            runs.append([i, i])
    out: list[str] = []
    column, done = offset, 0
    for first, last in runs:
        plain = "".join(tokens[done:first])
        # While all that comes before fits on the first line, folding has not broken it, so
        # the next word is sized to fill that line (encode_as_words ignores too small a room).
        room = min(MAX_WORD, max_len - column - len(plain))
        encoded = " ".join(encode_as_words("".join(tokens[first:last + 1]), first_room=room))
        out += [plain, encoded]
        column += len(plain) + len(encoded)
        done = last + 1
    out.append("".join(tokens[done:]))
    return "".join(out)


def encode_phrase(text: str, offset: int = 0, max_len: int = 78) -> str:
    """A display name as a phrase: atoms, else a quoted-string, else encoded-words.

    Non-ASCII names, names containing "=?" and names with a word too long for a folded line
    are encoded, in Q restricted to RFC 2047 §5(3) or B; `offset` is the number of columns
    already used on the line where the phrase starts.

    A run of two or more spaces cannot stay inside one encoded-word (Python's parser reads it
    as one space; see encode_as_words), so such a name is encoded in parts split at its runs
    of spaces. A part that is atoms stays atoms, and the space between it and the encoded-word
    beside it is one of the run's spaces: "0  ¡" is `0 =?utf-8?b?IMKh?=`, one encoded-word
    starting with the run's other space, which every reader (Python's included) reads back
    exactly. (A quoted-string beside an encoded-word would hold any run, but readers that
    decode a phrase's encoded-words before unquoting it, as email.header does, keep the
    quotes.) A run between two encoded parts is split across two words, which RFC 2047
    decoders join exactly; Python before gh-128110 adds a space between the words.
    """
    if _PRINTABLE_PHRASE.fullmatch(text) and "=?" not in text:
        rendered = text if _ATOMS.fullmatch(text) else quote_string(text)
        if _fits(rendered, offset, max_len):
            return rendered
    pieces = _SPACE_RUN.split(text)     # parts, with the runs of spaces between them
    parts: list[list] = []              # [is atoms, text]
    for index in range(0, len(pieces), 2):
        part, run = pieces[index], pieces[index - 1] if index else ""
        atoms = bool(_ATOMS.fullmatch(part)) and "=?" not in part and _fits(part, offset if index == 0 else 1, max_len)
        if not parts:
            parts.append([atoms, part])
        elif parts[-1][0]:
            parts.append([False, run[1:] + part])     # atoms cannot hold spaces: encode the part
        elif atoms:
            parts[-1][1] += run[1:]
            parts.append([True, part])
        else:
            parts[-1][1] += run + part
    out: list[str] = []
    for atoms, part in parts:
        if atoms:
            out.append(part)
        else:
            first_room = min(MAX_WORD, max_len - offset) if not out else MAX_WORD
            out.extend(encode_as_words(part, phrase=True, first_room=first_room))
    return " ".join(out)


def _fits(rendered: str, offset: int, max_len: int) -> bool:
    """Whether a plain phrase folds into lines of `max_len`, the first starting at `offset`."""
    words = rendered.split(" ")
    return offset + len(words[0]) <= max_len and all(len(w) < max_len for w in words[1:])
