"""Line endings, streaming: converting them (SMTP DATA wants CRLF, the local stores LF,
as Postfix and Dovecot store mail) and watching them (the parser reports a bare CR or
LF, the checker refuses one).

The only state is a CR at the end of a chunk, held back until the next chunk tells
whether it starts a CRLF; the work itself is bytes.replace / count over whole chunks.
"""

import re

from mimekit.defects import Defect, DefectKind

_EOL = re.compile(rb"[\r\n]")
_BARE_AFTER_CRLF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_CR = 13


class LineEndingNormaliser:
    """Convert CRLF and LF line breaks in a byte stream to `eol`.

    lone_cr_is_break: whether a CR not followed by LF is a line break too (SMTP, where a
    bare CR must not be sent: RFC 5321 2.3.8) or data kept as it is (mail on disk).
    """

    def __init__(self, eol: bytes, lone_cr_is_break: bool) -> None:
        self.eol = eol
        self.lone_cr_is_break = lone_cr_is_break
        self._held_cr = False

    def feed(self, data: bytes) -> bytes:
        if self._held_cr:
            data = b"\r" + data
        self._held_cr = data.endswith(b"\r")
        if self._held_cr:
            data = data[:-1]
        data = data.replace(b"\r\n", b"\n")
        if self.lone_cr_is_break:
            data = data.replace(b"\r", b"\n")
        return data.replace(b"\n", self.eol) if self.eol != b"\n" else data

    def flush(self) -> bytes:
        held, self._held_cr = self._held_cr, False
        if not held:
            return b""
        return self.eol if self.lone_cr_is_break else b"\r"


class LFNormaliser(LineEndingNormaliser):
    """How mail is stored on disk (Maildir, mbox): CRLF becomes LF; a lone CR is data and kept."""

    def __init__(self) -> None:
        super().__init__(b"\n", lone_cr_is_break=False)


class CRLFNormaliser(LineEndingNormaliser):
    """SMTP's normalisation: every line break, a lone CR too, becomes CRLF."""

    def __init__(self) -> None:
        super().__init__(b"\r\n", lone_cr_is_break=True)


class LineEndingWatch:
    """Finds the first bare CR or LF and the first change of line-ending style in the
    bytes it is fed, at C speed: counts decide whether a chunk holds anything to
    report, and a regex locates it only then (once per message)."""

    def __init__(self) -> None:
        self._style: bytes | None = None      # the message's first line ending
        self._done = False
        self._held_cr_at: int | None = None   # a CR ended the last bytes fed: what it is depends on the next byte

    def feed(self, data: bytes, offset: int, final: bool = False) -> list[Defect]:
        """Look at `data`, found at `offset`; it directly follows the bytes fed before
        unless close() was called in between."""
        if self._done:
            return []
        if self._held_cr_at is not None:
            data, offset, self._held_cr_at = b"\r" + data, self._held_cr_at, None
        if not final and data.endswith(b"\r"):
            self._held_cr_at = offset + len(data) - 1
            data = data[:-1]
        defects: list[Defect] = []
        start = 0
        if self._style is None:
            first = _EOL.search(data)
            if first is None:
                return []
            at = first.start()
            self._style = b"\r\n" if data.startswith(b"\r\n", at) else data[at:at + 1]
            if self._style != b"\r\n":
                defects.append(Defect(DefectKind.BARE_LINE_ENDING, offset + at, _ENDING_NAMES[self._style]))
            start = at + len(self._style)
        mismatch = self._first_other_ending(data, start)
        if mismatch is not None:
            if self._style == b"\r\n":
                defects.append(Defect(DefectKind.BARE_LINE_ENDING, offset + mismatch,
                                      _ENDING_NAMES[data[mismatch:mismatch + 1]]))
            defects.append(Defect(DefectKind.MIXED_LINE_ENDINGS, offset + mismatch,
                                  f"{_ENDING_NAMES[self._style]} and other line endings"))
            self._done = True
        return defects

    def close(self) -> list[Defect]:
        """Nothing that follows will be fed (a gap, or the end): a held CR is bare."""
        return self.feed(b"", 0, final=True) if self._held_cr_at is not None else []

    def _first_other_ending(self, data: bytes, start: int) -> int | None:
        if self._style == b"\r\n":
            view = data[start:] if start else data
            crlf = view.count(b"\r\n")
            if crlf == view.count(b"\n") == view.count(b"\r"):
                return None
            return _BARE_AFTER_CRLF.search(data, start).start()
        if self._style == b"\n":
            at = data.find(b"\r", start)
            return None if at < 0 else at
        at = data.find(b"\n", start)
        if at < 0:
            return None
        return at - 1 if at > start and data[at - 1] == _CR else at


_ENDING_NAMES = {b"\r\n": "CRLF", b"\n": "bare LF", b"\r": "bare CR"}
