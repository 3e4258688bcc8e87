"""SMTP dot-stuffing (RFC 5321 §4.5.2), streaming: a line starting with "." gets one more
".", which the server strips, so that no line of the message reads as the end of data
(§4.1.1.4: CRLF "." CRLF, which flush() writes).

The work is one bytes.replace per chunk; the state is where the last chunk ended (at a
line start, or on the CR of a CRLF the next chunk completes).
"""


class DotStuffer:
    """Dot-stuffing of CRLF text, and the terminator."""

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
