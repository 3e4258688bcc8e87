"""mboxrd From-quoting, streaming: the one reversible way of storing a line that starts
with "From " in an mbox, whose messages are separated by such lines.

The mboxrd variant (https://www.loc.gov/preservation/digital/formats/fdd/fdd000385.shtml)
gives any number of ">" before "From " one more ">", so un-quoting restores the message
exactly, unlike mboxo, which quotes only a bare "From ".
"""

import re

# A line tail that may still turn into ">*From ": only ">" and a prefix of "From".
_UNDECIDED_TAIL = re.compile(rb">*(?:F(?:r(?:o(?:m)?)?)?)?")
_HELD_PART = re.compile(rb">?(?:F(?:r(?:o(?:m)?)?)?)?\Z")


class FromQuoter:
    """Streaming mboxrd quoting (or, with unquote=True, un-quoting) of LF text.

    Adding or removing one ">" anywhere in a run of ">" before "From " gives the same
    line, so the filter edits the ">" next to "From " and only ever holds back that one
    ">" plus a partial "From" (at most 5 bytes) across chunk boundaries.
    """

    _QUOTE = (re.compile(rb"\n(>*From )"), rb"\n>\1")
    _UNQUOTE = (re.compile(rb"\n>(>*From )"), rb"\n\1")

    def __init__(self, unquote: bool = False):
        self._pattern, self._replacement = self._UNQUOTE if unquote else self._QUOTE
        self._at_line_start = True   # at a line start, or after only ">" on this line
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        work = (b"\n" + self._held + data) if self._at_line_start else data
        self._held = b""
        out = self._pattern.sub(self._replacement, work)
        if self._at_line_start:
            out = out[1:]
        last_newline = work.rfind(b"\n")
        tail = work[last_newline + 1:] if last_newline >= 0 else None
        self._at_line_start = tail is not None and _UNDECIDED_TAIL.fullmatch(tail) is not None
        if self._at_line_start:
            self._held = _HELD_PART.search(tail).group()
            if self._held:
                out = out[:-len(self._held)]
        return out

    def flush(self) -> bytes:
        held, self._held, self._at_line_start = self._held, b"", True
        return held
