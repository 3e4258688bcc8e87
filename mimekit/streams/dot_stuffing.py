"""Dot-stuffing (RFC 5321 §4.5.2, RFC 1939 §3), streaming, both ways: a line starting with
"." gets one more ".", which the receiver strips, so that no line of the message reads as
the end of data (CRLF "." CRLF).

`DotStuffer` is the sending side (the SMTP client's DATA, the POP3 server's RETR and TOP);
`DotUnstuffer` the receiving side (the SMTP server's DATA, the POP3 client's RETR and TOP).
Both do a few C-speed scans per chunk, never a Python loop per line, and hold at most a
few bytes between chunks, so a message of any size streams through in bounded memory.
"""


class DotStuffer:
    """Dot-stuffing of CRLF text, and the terminator. The state is where the last chunk
    ended (at a line start, or on the CR of a CRLF the next chunk completes)."""

    def __init__(self) -> None:
        self._tail = b"\r\n"   # the last two bytes fed: data starts as if after a line end

    def feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        before, self._tail = self._tail, data[-2:] if len(data) >= 2 else self._tail[-1:] + data
        out = data.replace(b"\r\n.", b"\r\n..")
        if before.endswith(b"\r\n") and out.startswith(b"."):
            return b"." + out
        if before.endswith(b"\r") and out.startswith(b"\n."):   # a CRLF cut between the chunks
            return b"\n." + out[1:]
        return out

    def flush(self) -> bytes:
        """The end of data: CRLF "." CRLF, with no extra blank line if the text ended one."""
        terminator = b".\r\n" if self._tail.endswith(b"\r\n") else b"\r\n.\r\n"
        self._tail = b"\r\n"
        return terminator


_TERMINATOR = b"\r\n.\r\n"
_HOLD = (b"\r\n.\r", b"\r\n.", b"\r\n", b"\r")   # tails that may begin a terminator or "\r\n.."


class DotUnstuffer:
    """Undo dot-stuffing and find the end of data (CRLF "." CRLF, and nothing else: a bare
    LF "." LF is content, which is what keeps SMTP smuggling out), chunk by chunk.

    The data starts at a line start, which is modelled as a virtual CRLF in front,
    so "a line starting with a dot" is always the byte pattern CRLF "." and the work
    is two scans per chunk (find and replace). A lone dot followed by anything but a
    dot or CRLF is passed through unchanged.
    """

    def __init__(self):
        self._held = b"\r\n"
        self._skip = 2
        self.done = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """Return (unstuffed body bytes, bytes after the terminator)."""
        buffer = self._held + data
        end = buffer.find(_TERMINATOR)
        if end >= 0:
            body, rest = buffer[:end + 2], buffer[end + 5:]
            self._held, self.done = b"", True
        else:
            keep = next((len(tail) for tail in _HOLD if buffer.endswith(tail)), 0)
            body, rest = buffer[:len(buffer) - keep], b""
            self._held = buffer[len(buffer) - keep:]
        if b"\r\n.." in body:
            body = body.replace(b"\r\n..", b"\r\n.")
        if self._skip:
            cut = min(self._skip, len(body))
            body, self._skip = body[cut:], self._skip - cut
        return body, rest
