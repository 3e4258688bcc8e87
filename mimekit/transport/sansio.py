"""What the sans-IO protocols share, in h11's shape: both roles, the clients (SMTP, IMAP,
POP3) and the servers (SMTP, POP3).

A driver (a client's driver.py, a server's serve/session.py) hands whatever arrived to
`receive_data()` (b"" at end of stream), takes typed events from `next_event()` until it
returns NEED_DATA, and writes whatever `data_to_send()` returns. Protocol classes supply
the parsing in `_step()` and what an end of stream means in `_end_of_stream()`.

Once the peer has broken the protocol beyond recovery, the stream cannot be read in step
again: every later `next_event()` raises the same ProtocolError at once (h11's ERROR
state), so a client's polite goodbye (LOGOUT, QUIT) cannot wait for a reply it would not
recognise. A server answers most bad input with an error reply instead, and raises only
where it cannot.
"""

from collections import deque

from mimekit.errors import ProtocolError


class NeedData:
    """next_event() cannot go on without more bytes."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


class BufferedProtocol:
    """The receive buffer, the event queue and the outbox of a line-based protocol, either role."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False
        self._events: deque = deque()
        self._outbox = bytearray()
        self._broken: ProtocolError | None = None

    def receive_data(self, data: bytes) -> None:
        """Hand over bytes from the peer; b"" means the peer closed the connection."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def data_to_send(self) -> bytearray:
        """Everything queued to write, handed over rather than copied: a message's content
        passes through here on its way to the socket."""
        out, self._outbox = self._outbox, bytearray()
        return out

    @property
    def bytes_to_send(self) -> int:
        """How much is queued, so a driver can gather a batch before writing."""
        return len(self._outbox)

    def _unstuff_buffered(self, unstuffer) -> bytes:
        """Pass what is buffered through `unstuffer` (a DotUnstuffer, on a multi-line body):
        the data it gives back; what follows the terminating line stays buffered, being the
        peer's next lines."""
        data = bytes(self._buffer)
        self._buffer.clear()
        body, rest = unstuffer.feed(data)
        self._buffer += rest
        return body

    def next_event(self):
        if self._broken is not None:
            raise ProtocolError(str(self._broken))
        try:
            while not self._events:
                if not self._step():
                    if self._eof:
                        return self._end_of_stream()
                    return NEED_DATA
        except ProtocolError as exc:
            self._broken = exc
            raise
        return self._events.popleft()

    def _step(self) -> bool:
        """Parse what the buffer holds into events; False when it needs more bytes."""
        raise NotImplementedError

    def _end_of_stream(self):
        """The event (or exception) for a peer that closed the connection."""
        raise NotImplementedError
