"""Streaming line-ending conversion, shared by SMTP DATA (everything to CRLF) and the
local stores (CRLF to LF, as Postfix and Dovecot store mail).

The only state is a CR at the end of a chunk, held back until the next chunk tells
whether it starts a CRLF; the conversion itself is bytes.replace over whole chunks.
"""


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
