"""The one event pump under the SMTP, IMAP and POP3 clients: a sans-IO protocol object
(sansio.py) on a Connection (connection.py).

Each client is this loop plus what its protocol means: write whatever the protocol has
queued, read what the server sent, hand it over, and take the next event. The pump costs
one method call per event, so the FETCH and DATA paths stream at the speed of the parsing.

Security: imap:// and pop3:// require STARTTLS/STLS; a server that does not offer it
gets no credential (AuthError, exit 77), nor does one whose certificate does not verify
(connection.py). SMTP's protocol object applies the same rule itself (smtp/protocol.py).
Only imap+plain:// and pop3+plain:// skip it: an explicit opt-in, loopback only (urls.py).
"""

from mimekit.errors import AuthError, MimekitError, TempFailure
from mimekit.transport.connection import Connection
from mimekit.transport.sansio import NEED_DATA
from mimekit.transport.urls import ServerURL


def login_failure(what: str, completion_text: str, code: str | None) -> MimekitError:
    """A refused IMAP or POP3 login: the "not now" response codes (RFC 5530 for IMAP,
    RFC 3206 for POP3) are worth a retry (75); anything else is a wrong credential (77)."""
    if code in ("UNAVAILABLE", "SYS/TEMP", "IN-USE", "LOGIN-DELAY"):
        return TempFailure(f"{what} refused for now: {completion_text}")
    return AuthError(f"{what} failed: {completion_text}")


class Driver:
    """A protocol object on a connection: flush commands, pump events."""

    starttls_command = "STARTTLS"

    def __init__(self, url: ServerURL, cafile: str | None, timeout: float):
        self.url = url
        self.cafile = cafile
        self.timeout = timeout
        self.conn: Connection | None = None
        self.proto = None

    def _connect(self) -> None:
        self.conn = Connection(self.url, self.cafile, self.timeout)

    def _next(self):
        """The protocol's next event; what it has queued goes out before waiting for more."""
        while True:
            event = self.proto.next_event()
            if event is not NEED_DATA:
                return event
            self._flush()
            self.proto.receive_data(self._receive())

    def _flush(self) -> int:
        """Write what the protocol has queued; replies that arrive meanwhile go to it.
        Returns the number of bytes written."""
        data = self.proto.data_to_send()
        if data:
            self.conn.send(data, self.proto.receive_data)
        return len(data)

    def _receive(self) -> bytes:
        """The server's next bytes (b"" when it closed the connection)."""
        return self.conn.receive()

    @property
    def needs_starttls(self) -> bool:
        """Connected in the clear, and TLS is still owed before any credential."""
        return not self.conn.encrypted and not self.url.plaintext

    def _require_tls(self, offered: bool) -> None:
        if not offered:
            raise AuthError(f"{self.conn.where}: the server does not offer {self.starttls_command}; "
                            f"refusing to send credentials in the clear (use {self.url.protocol}s:// "
                            "for implicit TLS)")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
