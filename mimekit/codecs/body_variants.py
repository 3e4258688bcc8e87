"""Other readings of a base64 or quoted-printable body that needed repair.

mimekit's decoders (mimekit.codecs.transfer) repair a damaged body one way, the way most
mail clients agree on. Others read it differently, and an attacker can hide content
that only those see: a base64 body whose lines are cut mid-group reads as garbage when
the lines are joined, but as the file when each line is decoded alone. These decoders
are those other readings (selected by mimekit.codecs.encoding_names.BODY_VARIANTS):

- Base64PerLineDecoder: each line decoded alone, the letters past its last whole group dropped;
- Base64StopAtPaddingDecoder: decoding stops at the first group padding completes
  (binascii.a2b_base64 and Python's email package);
- Base64LinePrefixDecoder: each line's data ends at its first character outside the
  alphabet, and the rest of the line is dropped;
- quoted-printable with invalid escapes dropped is QuotedPrintableDecoder(keep_invalid_escapes=False).

Each is a Filter holding at most a line between feeds, never raising, with `.defects`
(offsets into its own input).
"""

import binascii
import itertools
import re

from mimekit.codecs.legacy_encodings import LineBlockDecoder, first_line_start, line_end
from mimekit.codecs.transfer import Base64Decoder
from mimekit.defects import Defect, DefectKind, DefectLog

_LETTER = rb"[A-Za-z0-9+/]"
_NOT_LETTER_OR_PAD = bytes(sorted(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                                         b"0123456789+/=")))
# binascii.a2b_base64 (non-strict) skips bytes outside the alphabet and ignores an "=" that
# completes no group; padding that completes one (after 2 letters "==", after 3 "=") ends
# the data. Whole groups that padding does not end, as binascii reads them:
_GROUPS_READ_ON = re.compile(rb"=*(?:L=*L(?:=(?=L))?LL=*)*".replace(b"L", _LETTER))
_LETTER_FOUND = re.compile(_LETTER)
_PAD_RUN = re.compile(rb"={3,}")   # as good as "==" for where padding ends the data
# Lines of whole groups without padding, what most base64 is: each line alone decodes as all do.
_WHOLE_GROUP_LINES = re.compile(rb"(?:(?:L{4})*\r?\n)*".replace(b"L", _LETTER))


class _PaddingStop:
    """binascii.a2b_base64's reading of a stream of base64, fed in pieces; `end()` closes
    what is fed so far as one input (a line, or the whole body)."""

    def __init__(self) -> None:
        self._rest = b""      # letters and "=" of the group still open (a few bytes)
        self._fed = 0         # bytes of this input fed so far
        self.stopped = False  # padding ended the data: the rest of this input is ignored
        self.ignored_at: int | None = None  # offset in this input of the first letter after that padding

    def feed(self, data: bytes) -> bytes:
        out = self._read(data)
        self._fed += len(data)
        return out

    def _read(self, data: bytes) -> bytes:
        if self.stopped:
            if self.ignored_at is None and (letter := _LETTER_FOUND.search(data)):
                self.ignored_at = self._fed + letter.start()
            return b""
        rest = self._rest
        text = _PAD_RUN.sub(b"==", rest + data.translate(None, _NOT_LETTER_OR_PAD))
        whole = _GROUPS_READ_ON.match(text).end()
        out = binascii.a2b_base64(text[:whole])
        letters, pads = b"", 0
        for pos in range(whole, len(text)):   # a group short of 4 letters, or ended by padding
            if text[pos] != ord("="):
                letters, pads = letters + text[pos:pos + 1], 0
            elif len(letters) >= 2:
                pads += 1
                if len(letters) + pads >= 4:
                    self.stopped, self._rest = True, b""
                    if text[pos + 1:].strip(b"="):   # letters follow: where the first is in `data`
                        read = pos + 1 - text.count(b"=", 0, pos + 1) - (len(rest) - rest.count(b"="))
                        first_ignored = next(itertools.islice(_LETTER_FOUND.finditer(data), read, None))
                        self.ignored_at = self._fed + first_ignored.start()
                    return out + binascii.a2b_base64(letters + b"=" * pads)
        self._rest = text[whole:]
        return out

    def end(self, drop_short_group: bool) -> tuple[bytes, int]:
        """(the last group decoded as padding would complete it, or nothing if it is
        dropped; how many letters it had), and a fresh start."""
        letters = self._rest.replace(b"=", b"")
        self._rest, self._fed, self.stopped, self.ignored_at = b"", 0, False, None
        if drop_short_group or len(letters) < 2:
            return b"", len(letters)
        return binascii.a2b_base64(letters + b"=" * (-len(letters) % 4)), len(letters)


class Base64StopAtPaddingDecoder:
    """Base64 read as binascii.a2b_base64 and Python's email package read it: what
    follows the first padded group is ignored (Base64Decoder reads on)."""

    def __init__(self) -> None:
        self._log = DefectLog()
        self._reader = _PaddingStop()
        self._offset = 0

    @property
    def defects(self) -> list[Defect]:
        return self._log.defects

    def feed(self, data: bytes) -> bytes:
        noticed = self._reader.ignored_at is not None
        out = self._reader.feed(data)
        if self._reader.ignored_at is not None and not noticed:
            self._log.add(Defect(DefectKind.BASE64_PADDING_MIDSTREAM, self._reader.ignored_at,
                                 "letters after the padding that ended the data: ignored"))
        self._offset += len(data)
        return out

    def flush(self) -> bytes:
        out, letters = self._reader.end(drop_short_group=False)
        if letters % 4:
            self._log.add(Defect(DefectKind.BASE64_TRUNCATED, self._offset,
                                 f"group cut short after {letters % 4} letter(s)"))
        return out


class Base64PerLineDecoder(LineBlockDecoder):
    """Each line decoded alone (as binascii decodes it), the letters past the line's last
    whole group dropped: how a reader that decodes line by line sees lines whose length
    is no multiple of 4."""

    def __init__(self) -> None:
        super().__init__()
        self._reader = _PaddingStop()
        self._line_offset = 0   # of the line being read

    def _finish(self) -> bytes:
        return self._end_line()

    def _decode(self, block: bytes, offset: int, mid_line: bool) -> bytes:
        if not mid_line and _WHOLE_GROUP_LINES.fullmatch(block):   # read alone or together, the same
            self._line_offset = offset + len(block)
            return binascii.a2b_base64(block)
        out = []
        pos = 0
        while pos < len(block):
            end = line_end(block, pos)
            out.append(self._reader.feed(block[pos:end]))
            if block[end - 1:end] == b"\n":
                out.append(self._end_line())
                self._line_offset = offset + end
            pos = end
        return b"".join(out)

    def _end_line(self) -> bytes:
        out, letters = self._reader.end(drop_short_group=True)
        if letters:
            self._log.add(Defect(DefectKind.BASE64_TRUNCATED, self._line_offset,
                                 f"{letters} letter(s) past the line's last whole group dropped"))
        return out


class Base64LinePrefixDecoder(LineBlockDecoder):
    """Each line's data ends at its first character outside the base64 alphabet ("="
    included; blanks at the start of a line skipped): the rest of the line is dropped,
    and the lines' data is decoded together as Base64Decoder does."""

    _PREFIX = re.compile(rb"^[ \t]*+([A-Za-z0-9+/=]*+)", re.M)
    _DROPPED = re.compile(rb"^[ \t]*+[A-Za-z0-9+/=]*+[ \t\r]*+(?=[^ \t\r\n])", re.M)  # the prefix, when more follows
    _PREFIX_GOES_ON = re.compile(rb"[A-Za-z0-9+/=]*+")

    def __init__(self) -> None:
        super().__init__()
        self._base64 = Base64Decoder()
        self._line_cut = False   # the line being read already lost its rest

    def _finish(self) -> bytes:
        return self._base64.flush()

    def _decode(self, block: bytes, offset: int, mid_line: bool) -> bytes:
        if not block:
            return b""
        prefixes = []
        lines_from = first_line_start(block, mid_line)
        if lines_from:   # the rest of a long line: its data goes on only if nothing cut it
            prefixes.append(self._line_continued(block[:lines_from], offset))
        for dropped in self._DROPPED.finditer(block, lines_from):
            self._log.add(Defect(DefectKind.BASE64_JUNK, offset + dropped.end(),
                                 "rest of the line after a character outside the alphabet dropped"))
        prefixes += self._PREFIX.findall(block, lines_from)
        if not block.endswith(b"\n"):   # a long line handed on in pieces: did its data stop?
            last_line = block.rfind(b"\n") + 1
            if last_line >= lines_from:
                line = block[last_line:]
                self._line_cut = len(self._PREFIX.match(line).group()) < len(line)
        return self._base64.feed(b"".join(prefixes))

    def _line_continued(self, piece: bytes, offset: int) -> bytes:
        if self._line_cut:
            return b""
        data = self._PREFIX_GOES_ON.match(piece).group()
        self._line_cut = len(data) < len(piece)
        if piece[len(data):].strip():
            self._log.add(Defect(DefectKind.BASE64_JUNK, offset + len(data),
                                 "rest of the line after a character outside the alphabet dropped"))
        return data
