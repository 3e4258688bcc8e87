"""Content-Transfer-Encodings (RFC 2045 §6): incremental base64 and quoted-printable.

Every codec is a filter (mimekit.streams.filters): feed() takes bytes in any chunking
and returns what can be written so far; flush() returns the rest. The concatenated
output is identical to a single feed() of the whole input followed by flush(), and
between calls a codec keeps only a few bytes (the input short of one base64 line, an
unfinished 4-letter group, a trailing space whose encoding depends on the next byte;
at most, a QP decoder holds a run of trailing spaces no longer than a legal line).
That is what lets a 100 MB attachment stream through in constant memory.

Speed comes from letting C do the per-byte work on whole blocks (pybase64's SIMD
codec for base64, binascii for quoted-printable) and keeping Python to one step per
block or per line (anchors.md: the line layout, not the codec, is where naive Python
loses). Decoders are lenient: they never raise on bad input;
they repair what they can, pass through what they cannot, and record a Defect with
the offset into their own encoded input, in a DefectLog: past the first few of a kind
they only count, in bulk at C speed, so 50 MB of junk costs neither memory nor time.
"""

import binascii
import re
import struct

import pybase64

from mimekit.defects import MAX_DEFECTS_PER_KIND, Defect, DefectKind, DefectLog
from mimekit.errors import UsageError
from mimekit.streams.filters import Chain, Filter
from mimekit.streams.line_endings import LineEndingNormaliser

MAX_LINE_LENGTH = 76  # RFC 2045 §6.7 (5) and §6.8: encoded lines are at most 76 characters

# Lines per pybase64 call: enough to make the Python overhead vanish, few enough that a
# block and its encoding stay in the CPU cache (measured on 64 KiB and 1 MiB feeds: 2048
# lines, 117 kB, is on the plateau; 256 lines is 1.2x slower, 16384 up to 2x).
_BASE64_BLOCK_LINES = 2048

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_BASE64_ALPHABET = bytes(sorted(set(range(256)) - set(_BASE64_ALPHABET)))
_BASE64_JUNK_RUN = re.compile(rb"[^A-Za-z0-9+/= \t\r\n]+")
_BASE64_LETTER = re.compile(rb"[A-Za-z0-9+/]")
# Junk bytes as "!", every other byte as "a": runs of junk are counted as "a!" in C.
_BASE64_NOT_JUNK = _BASE64_ALPHABET + b"= \t\r\n"
_BASE64_JUNK_MARKS = bytes(b"a"[0] if byte in _BASE64_NOT_JUNK else b"!"[0] for byte in range(256))


def _check_line_length(line_length: int, multiple_of: int) -> None:
    if line_length % multiple_of or not 4 <= line_length <= MAX_LINE_LENGTH:
        raise ValueError(f"line length must be a multiple of {multiple_of} from 4 to "
                         f"{MAX_LINE_LENGTH}, not {line_length}")


class Base64Encoder:
    """Base64 (RFC 2045 §6.8) in lines of `line_length` characters, each ending in `eol`.

    The layout is that of `base64.encodebytes` (76 columns), with `eol` for line ends.
    State between calls: the input bytes short of one whole line (at most 56).
    """

    def __init__(self, line_length: int = MAX_LINE_LENGTH, eol: bytes = b"\r\n"):
        _check_line_length(line_length, 4)  # a line holds whole 4-letter groups
        self._line_length = line_length
        self._line_bytes = line_length // 4 * 3
        self._eol = eol
        self._rest = b""  # input that does not fill a whole line yet

    def feed(self, data: bytes) -> bytes:
        if self._rest:
            data = self._rest + data
        whole = len(data) - len(data) % self._line_bytes
        self._rest = data[whole:]
        view = memoryview(data)
        block = self._line_bytes * _BASE64_BLOCK_LINES
        return b"".join([self._encode_lines(view[start:min(start + block, whole)])
                         for start in range(0, whole, block)])

    def flush(self) -> bytes:
        """The last, shorter line with its padding and `eol`; nothing if there was no input."""
        rest, self._rest = self._rest, b""
        return pybase64.b64encode(rest) + self._eol if rest else b""

    def _encode_lines(self, lines: memoryview) -> bytes:
        encoded = pybase64.b64encode(lines)
        count = len(encoded) // self._line_length
        # struct cuts the text into lines in C and one join lays them out: per 100 MB here,
        # 0.12 s against 0.02 s for the encoding itself, yet the fastest measured (a Python
        # loop over slices is 5x slower; pybase64's wrapcol, LF only, 2x). The empty "0s"
        # field at the end makes the join finish with an eol too.
        return self._eol.join(struct.unpack(f"{self._line_length}s" * count + "0s", encoded))


class Base64Decoder:
    """Lenient base64: skips whitespace and junk, and goes on after padding mid-stream.

    Padding ends a 4-letter group, not the data. "Chunked" base64 (pieces encoded
    separately and glued together: "QQ==QQ==") decodes to every piece, as GMime and
    MimeKit do, because stopping at the first "=" (as binascii does) would lose data
    and hide it from scanners. Recorded, with offsets into the encoded input:
    BASE64_JUNK for each run of bytes outside the alphabet (whitespace is not junk),
    BASE64_PADDING_MIDSTREAM where letters resume after padding, BASE64_TRUNCATED where
    a group is cut short (a lone letter before "=", or the input ending mid-group; what
    the group holds is still decoded).
    """

    def __init__(self, defects_per_kind: int = MAX_DEFECTS_PER_KIND) -> None:
        self._log = DefectLog(defects_per_kind)
        self._group = b""           # letters of an unfinished 4-letter group (0-3)
        self._offset = 0            # encoded bytes consumed by earlier calls
        self._after_padding = False
        self._junk_open = False     # the input fed so far ends inside a junk run
        self._junk_pending: int | None = None  # start of that run, if not recorded yet (its length is unknown)

    @property
    def defects(self) -> list[Defect]:
        return self._log.defects

    def feed(self, data: bytes) -> bytes:
        if data and self._junk_open and _BASE64_JUNK_MARKS[data[0]] != b"!"[0]:
            self._end_junk_run()
        out: list[bytes] = []
        start = 0
        while True:
            pad = data.find(b"=", start)
            end = len(data) if pad < 0 else pad
            if end > start:
                out.append(self._decode_letters(data[start:end], self._offset + start, at_end=pad < 0))
            if pad < 0:
                break
            out.append(self._close_group(self._offset + pad, padded=True))
            self._after_padding = True
            start = pad + 1
        self._offset += len(data)
        return b"".join(out)

    def flush(self) -> bytes:
        if self._junk_open:
            self._end_junk_run()
        return self._close_group(self._offset, padded=False)

    def _decode_letters(self, segment: bytes, offset: int, at_end: bool) -> bytes:
        """Decode a stretch of input without "=" whose first byte is at `offset` (and
        whose last byte ends the input fed so far if `at_end`)."""
        found: list[Defect] = []
        decoded = self._decode_groups(segment)
        if decoded is None:  # spaces, tabs or junk: keep the letters alone
            if segment.translate(None, _BASE64_NOT_JUNK):
                found += self._junk_runs(segment, offset, at_end)
            decoded = self._decode_groups(segment.translate(None, _NOT_BASE64_ALPHABET))
        if self._after_padding and (first_letter := _BASE64_LETTER.search(segment)):
            self._after_padding = False
            found.append(Defect(DefectKind.BASE64_PADDING_MIDSTREAM, offset + first_letter.start(),
                                "letters after padding; decoding went on"))
        self._log.extend(sorted(found, key=lambda defect: defect.offset))
        return decoded

    def _decode_groups(self, text: bytes) -> bytes | None:
        """The whole groups of the unfinished group followed by `text`, carrying the letters
        past them; None, carrying nothing, if `text` holds more than letters and line breaks.

        One pybase64 call checks and decodes (0.09 s per 100 MB of 76-column lines here,
        against 0.21 s for stripping the line breaks first and 0.65 s for binascii). With
        padded=False it also decodes the group the text ends inside, whose letters are
        carried instead; it refuses a lone letter there, which the second call leaves out.
        """
        if self._group:
            text = self._group + text
        end = len(text)  # of the text decoded
        try:
            decoded = pybase64.b64decode(text, validate=True, ignorechars=b"\r\n", padded=False)
        except binascii.Error:
            while end and text[end - 1] in b"\r\n":
                end -= 1
            if not end or text[end - 1] not in _BASE64_ALPHABET:
                return None
            end -= 1
            try:
                decoded = pybase64.b64decode(memoryview(text)[:end], validate=True, ignorechars=b"\r\n",
                                             padded=False)
            except binascii.Error:
                return None
        cut = end
        for _ in range((0, 2, 3)[len(decoded) % 3]):  # step back over the letters of that group
            cut -= 1
            while text[cut] in b"\r\n":
                cut -= 1
        self._group = text[cut:].translate(None, b"\r\n")
        return decoded[:len(decoded) - len(decoded) % 3]

    def _junk_runs(self, segment: bytes, offset: int, at_end: bool) -> list[Defect]:
        """One defect per run of junk; a run cut in two by a chunk boundary stays one:
        a run that reaches the end of the input fed is recorded once it is known to end
        (feed() checks the next byte). Once no more are listed, runs are only counted."""
        continues, self._junk_open = self._junk_open, False  # if still open, the segment starts with its next byte
        if self._log.is_full(DefectKind.BASE64_JUNK):
            self._count_junk_runs(segment, offset, at_end, continues)
            return []
        found = []
        for match in _BASE64_JUNK_RUN.finditer(segment):
            start, end = offset + match.start(), offset + match.end()
            if continues and match.start() == 0:
                start = self._junk_pending
            if at_end and match.end() == len(segment):
                self._junk_open, self._junk_pending = True, start
            else:
                found.append(self._junk_defect(start, end))
        return found

    def _count_junk_runs(self, segment: bytes, offset: int, at_end: bool, continues: bool) -> None:
        """Count the junk runs of `segment` (none listed now) without a Python step per run."""
        if continues and self._junk_pending is not None:  # an open run, not recorded yet: it is now
            self._log.add(self._junk_defect(self._junk_pending, offset))
        self._junk_pending = None
        marks = segment.translate(_BASE64_JUNK_MARKS)
        starts_new_run = marks.startswith(b"!") and not continues
        runs = marks.count(b"a!") + starts_new_run
        if runs:
            first = 0 if starts_new_run else marks.index(b"a!") + 1
            self._log.add_unlisted(Defect(DefectKind.BASE64_JUNK, offset + first), runs)
        self._junk_open = at_end and marks.endswith(b"!")

    def _end_junk_run(self) -> None:
        """The junk run that ended the input fed so far ends there."""
        if self._junk_pending is not None:
            self._log.add(self._junk_defect(self._junk_pending, self._offset))
        self._junk_open, self._junk_pending = False, None

    @staticmethod
    def _junk_defect(start: int, end: int) -> Defect:
        return Defect(DefectKind.BASE64_JUNK, start, f"{end - start} byte(s) outside the base64 alphabet skipped")

    def _close_group(self, offset: int, padded: bool) -> bytes:
        """Decode the unfinished group at padding (or at the end of the input)."""
        group, self._group = self._group, b""
        if len(group) == 1 or (group and not padded):
            self._log.add(Defect(DefectKind.BASE64_TRUNCATED, offset, f"group cut short after {len(group)} letter(s)"))
        return binascii.a2b_base64(group + b"==") if len(group) >= 2 else b""


def _without_soft_breaks(escaped: bytes) -> bytes:
    """b2a_qp output without its soft breaks (CRLF ones if its input had CRLF first)."""
    return escaped.replace(b"=\r\n", b"").replace(b"=\n", b"")


class QuotedPrintableEncoder:
    """Quoted-printable (RFC 2045 §6.7), 7-bit output in lines of at most `line_length`.

    "=" and every byte outside printable ASCII are escaped; a space or tab is escaped
    where it would end a line; lines longer than `line_length` get soft breaks ("=" eol)
    that never split an escape. Text mode: each input line break (CRLF or a bare LF)
    becomes `eol`, and a bare CR is escaped. Binary mode: CR and LF are escaped like any
    byte, so only soft breaks appear and the decoded bytes are exactly the input.
    A line that would start with "." or "From " starts "=2E" or "=46rom " instead, so
    neither SMTP dot-stuffing nor mbox "From " quoting can change it. The output ends
    where the input ends: a final line break appears only if the input ended with one.
    """

    def __init__(self, binary: bool = False, eol: bytes = b"\r\n", line_length: int = MAX_LINE_LENGTH):
        _check_line_length(line_length, 1)
        self._binary = binary
        self._eol = eol
        self._soft_break = b"=" + eol
        self._max_text = line_length - 1  # a soft break's "=" takes the last column
        # a line that needs more than copying: too long, or starting with "." or "F"
        self._line_needing_layout = re.compile(rb"\n(?:[.F]|[^\n]{%d})" % line_length)
        self._held = b""        # a trailing space/tab (and, text mode, CR): next byte decides
        self._column = 0        # characters on the current output line
        self._line_start = b""  # start of an output line that may still become "From "

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        decided = len(data)
        if not self._binary and data.endswith(b"\r"):
            decided -= 1  # CRLF is a line break, a bare CR is data: wait for the next byte
        if decided and data[decided - 1] in b" \t":
            decided -= 1  # escaped only if a line break or the end of input follows
        self._held = data[decided:]
        return self._layout(self._escape(data[:decided], final=False))

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        out = self._layout(self._escape(held, final=True)) + self._line_start
        self._line_start, self._column = b"", 0
        return out

    def _escape(self, data: bytes, final: bool) -> bytes:
        """Escaped text, hard line breaks as b"\\n" (text mode), no soft breaks yet.

        binascii.b2a_qp does the per-byte escaping. It treats the end of its input as
        the end of a line, so before the final call a "!" follows the data to keep it
        from escaping a space that more input will follow. Its soft breaks are taken out
        (they assume every call starts a line) and its "=2E" (which depends on where it
        thinks a line starts) is undone, because _layout places both itself.
        """
        sentinel = b"" if final else b"!"
        if self._binary:
            escaped = _without_soft_breaks(binascii.b2a_qp(data + sentinel, istext=False))
        else:
            lines = data.replace(b"\r\n", b"\n")
            if b"\r" not in lines:
                # b2a_qp's text mode keeps LF as the line break and escapes a space before it
                escaped = binascii.b2a_qp(lines + sentinel, istext=True).replace(b"=\n", b"")
            else:  # text mode would let a bare CR through: escape everything, then mark breaks
                escaped = (_without_soft_breaks(binascii.b2a_qp(lines + sentinel, istext=False))
                           .replace(b"=0A", b"\n").replace(b" \n", b"=20\n").replace(b"\t\n", b"=09\n"))
        escaped = escaped.replace(b"=2E", b".")
        return escaped if final else escaped[:-1]

    def _layout(self, escaped: bytes) -> bytes:
        out: list[bytes] = []
        first_break = -1 if self._binary else escaped.find(b"\n")
        if first_break < 0:
            self._place(escaped, out)
            return b"".join(out)
        self._place(escaped[:first_break], out)
        self._end_line(out)
        # Whole lines in between start at column 0: most go out as they are, in bulk,
        # and only those that need soft breaks or protection go through _place.
        last_break = escaped.rfind(b"\n")
        plain_from = first_break + 1
        for match in self._line_needing_layout.finditer(escaped, first_break, last_break):
            line_start = match.start() + 1
            if line_start > plain_from:
                out.append(escaped[plain_from:line_start].replace(b"\n", self._eol))
            plain_from = escaped.index(b"\n", line_start) + 1
            self._place(escaped[line_start:plain_from - 1], out)
            self._end_line(out)
        out.append(escaped[plain_from:last_break + 1].replace(b"\n", self._eol))
        self._place(escaped[last_break + 1:], out)
        return b"".join(out)

    def _end_line(self, out: list[bytes]) -> None:
        out += (self._line_start, self._eol)
        self._line_start, self._column = b"", 0

    def _place(self, text: bytes, out: list[bytes]) -> None:
        """Append escaped text to the current line, adding soft breaks and line-start protection."""
        if self._line_start:
            text, self._line_start = self._line_start + text, b""
        column, size, pos = self._column, len(text), 0
        while pos < size:
            if column == 0 and text[pos] in b".F":
                if text[pos] == ord(".") or text.startswith(b"From ", pos):
                    out.append(b"=%02X" % text[pos])
                    column, pos = 3, pos + 1
                    continue
                if size - pos < 5 and b"From ".startswith(text[pos:]):
                    self._line_start = text[pos:]  # too short to tell yet
                    break
            room = self._max_text - column
            if size - pos <= room:
                out.append(text[pos:])
                column += size - pos
                break
            end = pos + room
            escape = text.rfind(b"=", max(pos, end - 2), end)  # an escape that would straddle the break
            if escape >= 0:
                end = escape
            out += (text[pos:end], self._soft_break)
            column, pos = 0, end
        self._column = column


# A decoder keeps a run of trailing spaces until it knows whether a line break follows
# (RFC 2045 §6.7 (3): trailing whitespace is padding and is deleted). A run longer than
# any legal line (RFC 5322: 998) cannot be padding; it is kept as data, which bounds
# what the decoder has to hold.
_QP_MAX_PADDING = 998
_QP_HEX_DIGITS = b"0123456789ABCDEFabcdef"
_QP_WHITESPACE_AND_BREAKS = bytes.maketrans(b"\t\r", b" \n")  # for one search for " \n"


def _qp_decoding_patterns(line_end: bytes, hex_digit: bytes = rb"[0-9A-Fa-f]") -> tuple[re.Pattern, re.Pattern]:
    """An "=" that starts neither an escape nor a soft break; padding before a line end."""
    invalid_escape = re.compile(rb"=(?!%s{2}|[ \t]{0,%d}%s)" % (hex_digit, _QP_MAX_PADDING, line_end))
    padding = re.compile(rb"(?<![ \t])[ \t]{1,%d}(?=%s)" % (_QP_MAX_PADDING, line_end))
    return invalid_escape, padding


# The end of a chunk is not the end of a line; the end of the input is.
_QP_CHUNK_PATTERNS = _qp_decoding_patterns(rb"(?:\r?\n)")
_QP_FINAL_PATTERNS = _qp_decoding_patterns(rb"(?:\r?\n|\Z)")
# RFC 2045 §6.7 writes hex in upper case only; a strict reader keeps "=ab" as text.
_QP_STRICT_CHUNK_PATTERNS = _qp_decoding_patterns(rb"(?:\r?\n)", rb"[0-9A-F]")
_QP_STRICT_FINAL_PATTERNS = _qp_decoding_patterns(rb"(?:\r?\n|\Z)", rb"[0-9A-F]")


class QuotedPrintableDecoder:
    """Lenient quoted-printable decoding (RFC 2045 §6.7).

    Soft breaks ("=" before a line break, with or without whitespace between) are
    removed; so is an "=" at the very end of the input, the usual way to say "no final
    line break". Trailing spaces and tabs on a line are deleted, as the RFC says.
    Hard line breaks come out as they came in (CRLF stays CRLF, LF stays LF): the
    decoder returns the bytes that were encoded and leaves line-ending policy to its
    caller. Escapes may use lower-case hex. An "=" that starts no valid escape or
    soft break ("=ZZ", "=4" at the end) is passed through unchanged and recorded as
    QP_INVALID_ESCAPE at its offset; with keep_invalid_escapes=False it is dropped
    instead ("==41" is "A", "=0=41" is "0A"), as some mail clients read it. With
    upper_case_hex_only, lower-case escapes ("=ab") are invalid too, as RFC 2045 has them.
    """

    def __init__(self, defects_per_kind: int = MAX_DEFECTS_PER_KIND, keep_invalid_escapes: bool = True,
                 upper_case_hex_only: bool = False) -> None:
        self._log = DefectLog(defects_per_kind)
        self._patterns = ((_QP_STRICT_CHUNK_PATTERNS, _QP_STRICT_FINAL_PATTERNS) if upper_case_hex_only
                          else (_QP_CHUNK_PATTERNS, _QP_FINAL_PATTERNS))
        self._invalid_escape = b"=3D" if keep_invalid_escapes else b""   # what a bad "=" becomes before a2b_qp
        self._invalid_escape_fate = "passed through" if keep_invalid_escapes else "dropped"
        self._held = b""               # end of the input whose meaning depends on what follows
        self._held_offset = 0          # offset of the first held byte in the encoded input
        self._kept_whitespace = False  # output ends in a run too long to be padding

    @property
    def defects(self) -> list[Defect]:
        return self._log.defects

    def feed(self, data: bytes) -> bytes:
        data = self._held + data
        kept = b""
        if self._kept_whitespace:  # the long run goes on: all of it is data
            rest = data.lstrip(b" \t")
            kept, data = data[:len(data) - len(rest)], rest
            self._held_offset += len(kept)
        decided = self._undecided_start(data)
        body, self._held = data[:decided], data[decided:]
        if data:  # the output now ends with body: in a long run only if body ends in one
            self._kept_whitespace = body.endswith((b" ", b"\t"))
        out = kept + self._decode(body, self._held_offset, final=False)
        self._held_offset += len(body)
        return out

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return self._decode(held, self._held_offset, final=True)

    @staticmethod
    def _undecided_start(data: bytes) -> int:
        """Where the tail starts that cannot be decoded before more input (or the end) arrives."""
        end = len(data)
        if data.endswith(b"="):
            return end - 1
        if end >= 2 and data[end - 2] == ord("=") and data[end - 1] in _QP_HEX_DIGITS:
            return end - 2
        if data.endswith(b"\r"):
            end -= 1
        window = data[max(0, end - _QP_MAX_PADDING - 1):end]
        run = len(window) - len(window.rstrip(b" \t"))
        if run > _QP_MAX_PADDING:
            return end
        start = end - run
        if start and data[start - 1] == ord("="):
            start -= 1  # a soft break if a line break follows
        return start

    def _decode(self, data: bytes, offset: int, final: bool) -> bytes:
        """Decode input whose meaning does not depend on what follows; it starts at `offset`."""
        if not data:
            return b""
        invalid_escape, padding = self._patterns[final]

        def pass_through(match: re.Match) -> bytes:
            self._log.add(Defect(DefectKind.QP_INVALID_ESCAPE, offset + match.start(),
                                 f'"=" starts no escape or soft break; {self._invalid_escape_fate}'))
            return self._invalid_escape

        # binascii.a2b_qp is exact for hex escapes, "=" CRLF, "=" LF and a final "=", and
        # wrong for anything else (it drops or merges bad escapes and keeps padding). So
        # invalid "=" become "=3D" first, then padding goes, turning "=  CRLF" into
        # "=CRLF" (spaces before a soft break's "=" are data and stay). Encoders do not
        # write padding, so its regex (slow: it stops at every space) only runs where a
        # space or tab may precede a line break; one translate and one search tell.
        # Once no more invalid escapes are listed, they are replaced and counted in C.
        if not self._log.is_full(DefectKind.QP_INVALID_ESCAPE):
            data = invalid_escape.sub(pass_through, data)
        elif first := invalid_escape.search(data):
            data, count = invalid_escape.subn(self._invalid_escape, data)
            self._log.add_unlisted(Defect(DefectKind.QP_INVALID_ESCAPE, offset + first.start()), count)
        if final or b" \n" in data.translate(_QP_WHITESPACE_AND_BREAKS):
            data = padding.sub(b"", data)
        return binascii.a2b_qp(data)


class IdentityCodec:
    """7bit, 8bit and binary: the bytes are their own encoding."""

    def __init__(self) -> None:
        self.defects: list[Defect] = []

    def feed(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})


def make_encoder(transfer_encoding: str, eol: bytes = b"\r\n", *, text: bool) -> Filter:
    """The one encoder factory: the filter content goes through for a Content-Transfer-Encoding
    (any case). Text's line breaks (CRLF, or a bare LF) become `eol`, in base64 too, so a
    body reads back the same whatever encoding it got; a bare CR is data, as quoted-printable's
    text mode treats it. Other content (text=False) is encoded byte for byte."""
    name = transfer_encoding.strip().lower()
    if name == "quoted-printable":   # its text mode writes line breaks itself
        return QuotedPrintableEncoder(binary=not text, eol=eol)
    if name == "base64":
        encoder = Base64Encoder(eol=eol)
    elif name in IDENTITY_ENCODINGS:
        encoder = IdentityCodec()
    else:
        raise UsageError(f"cannot encode with Content-Transfer-Encoding {transfer_encoding!r}")
    if not text:
        return encoder
    normaliser = LineEndingNormaliser(eol, lone_cr_is_break=False)
    return normaliser if isinstance(encoder, IdentityCodec) else Chain(normaliser, encoder)


def make_decoder(transfer_encoding: str) -> Base64Decoder | QuotedPrintableDecoder | IdentityCodec:
    """The decoder for a Content-Transfer-Encoding (any case).

    An unknown encoding gets IdentityCodec, so the body is kept as it is; the caller
    records UNKNOWN_TRANSFER_ENCODING.
    """
    name = transfer_encoding.strip().lower()
    if name == "base64":
        return Base64Decoder()
    if name == "quoted-printable":
        return QuotedPrintableDecoder()
    return IdentityCodec()
