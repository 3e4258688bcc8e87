"""uuencoded files hidden inside text bodies (`begin 644 name` ... `end`).

Older mail programs and gateways still paste uuencoded files into a text/plain body
instead of attaching them; mimekit extracts them as extra attachments. `UuScanner` is
fed the decoded text body chunk by chunk and reports each block as events, so a file
is written as it is found. Reading is lenient, as the files come from everywhere:
short lines (trailing spaces lost in transit) are zero-padded, extra characters after
a line's declared length are ignored, blank lines inside a block are skipped, and a
block without `end` stops at the first line that cannot be uuencode (or at the end of
the body) with a defect. Each file costs its reader a file on disk, so a scanner can be
given a number of files past which it stops looking (LIMIT_PARTS): a million `begin`
lines are then text, not a million files.
"""

import binascii
import re
from dataclasses import dataclass

from mimekit.defects import Defect, DefectKind

# A begin line: mode in octal, then the name (which may contain spaces).
_BEGIN = re.compile(rb"begin[ \t]+[0-7]{3,4}[ \t]+(\S(?:[^\r\n]*\S)?)[ \t]*\r?")
# Every character of a uuencoded line lies in " " .. "`".
_UU_ALPHABET = bytes(range(0x20, 0x61))
# A longer line is neither a begin line nor uuencode; buffering stops there.
MAX_LINE = 4096


@dataclass(frozen=True)
class UuBegin:
    """A block starts; `name` is as written (undecodable bytes surrogate-escaped)."""

    name: str
    offset: int   # of the begin line, in the bytes fed


@dataclass(frozen=True)
class UuData:
    data: bytes


@dataclass(frozen=True)
class UuEnd:
    complete: bool   # False: the block stopped without its `end` line (see the defect)


UuEvent = UuBegin | UuData | UuEnd


class UuScanner:
    """Finds and decodes uuencoded blocks in a text body fed in chunks: at most
    `max_files` of them (None: no limit)."""

    def __init__(self, max_files: int | None = None):
        self.defects: list[Defect] = []
        self._files_left = max_files
        self._stopped = False    # a begin line past max_files was seen: the rest is text
        self._pending = b""      # an incomplete line, always starting at a line start
        self._offset = 0         # offset of _pending's first byte in the bytes fed
        self._in_block = False
        self._skipping = False   # inside an overlong line: ignore it up to its newline

    def feed(self, chunk: bytes) -> list[UuEvent]:
        if self._stopped:
            return []
        data = self._pending + chunk
        events: list[UuEvent] = []
        decoded: list[bytes] = []
        pos = 0
        if self._skipping:
            pos = data.find(b"\n") + 1
            if not pos:
                self._offset += len(data)
                self._pending = b""
                return events
            self._skipping = False
        while True:
            if not self._in_block:
                pos = _next_begin_line(data, pos)
                if pos < 0:   # keep only the last, incomplete line: it may be a begin line
                    pos = data.rfind(b"\n") + 1
                    break
            newline = data.find(b"\n", pos)
            if newline < 0:
                break
            line = data[pos:newline].rstrip(b"\r")
            if self._in_block:
                if not self._block_line(line, self._offset + pos, decoded, events):
                    continue   # the block ended at this line; look at it again as text
            else:
                begin = len(line) <= MAX_LINE and _BEGIN.fullmatch(line)
                if begin and self._files_left == 0:
                    self._stop_looking(self._offset + pos)
                    return events
                if begin:
                    events.append(UuBegin(begin[1].decode("utf-8", "surrogateescape"), self._offset + pos))
                    self._in_block = True
                    if self._files_left is not None:
                        self._files_left -= 1
            pos = newline + 1
        if decoded:
            events.append(UuData(b"".join(decoded)))
        self._keep(data, pos, events)
        return events

    def close(self) -> list[UuEvent]:
        """Finish the body: a last line without a newline, and a block never ended."""
        events = self.feed(b"\n") if self._pending else []
        if self._in_block:
            self._stop_incomplete(self._offset, events)
        return events

    def _block_line(self, line: bytes, offset: int, decoded: list[bytes], events: list[UuEvent]) -> bool:
        """Decode one line of an open block; False when the line is not part of the block."""
        if line.rstrip() == b"end":
            self._flush(decoded, events)
            events.append(UuEnd(complete=True))
            self._in_block = False
        elif (data := decode_line(line)) is not None:
            decoded.append(data)
        elif line.strip():
            self._flush(decoded, events)
            self._stop_incomplete(offset, events)
            return False
        return True

    def _keep(self, data: bytes, pos: int, events: list[UuEvent]) -> None:
        """Hold the incomplete last line for the next chunk, unless it is too long to matter."""
        rest = data[pos:]
        if len(rest) > MAX_LINE:
            if self._in_block:
                self._stop_incomplete(self._offset + pos, events)
            self._skipping = True
            pos, rest = len(data), b""
        self._offset += pos
        self._pending = rest

    def _stop_looking(self, offset: int) -> None:
        """A begin line one file past max_files: no more blocks in this body."""
        self._stopped, self._pending = True, b""
        self.defects.append(Defect(DefectKind.LIMIT_PARTS, offset,
                                   "uuencoded file past the parts limit: the rest of the body is text"))

    def _stop_incomplete(self, offset: int, events: list[UuEvent]) -> None:
        self._in_block = False
        events.append(UuEnd(complete=False))
        self.defects.append(Defect(DefectKind.UUENCODE_MISSING_END, offset,
                                   "uuencoded block stopped without its 'end' line"))

    @staticmethod
    def _flush(decoded: list[bytes], events: list[UuEvent]) -> None:
        if decoded:
            events.append(UuData(b"".join(decoded)))
            decoded.clear()


def decode_line(line: bytes) -> bytes | None:
    """One uuencoded line (without its line break), read leniently: a short line is
    zero-padded, characters past its declared length are ignored. None for a blank line
    or one that cannot be uuencode (a character outside " " .. "`", or too long)."""
    if not line.strip() or len(line) > MAX_LINE or line.translate(None, _UU_ALPHABET):
        return None
    length = (line[0] - 0x20) & 0x3F
    return binascii.a2b_uu(line[:1 + (length * 4 + 2) // 3])


def _next_begin_line(data: bytes, pos: int) -> int:
    """The offset of the next line at or after `pos` that starts with "begin", or -1."""
    while (found := data.find(b"begin", pos)) >= 0:
        if found == 0 or data[found - 1] == 0x0A:
            return found
        pos = found + 5
    return -1
