"""What the IMAP and POP3 sessions share: driving a sans-IO protocol object over a
Connection, refusing to send credentials without TLS, and what a refused login means.

Security: imap:// and pop3:// require STARTTLS/STLS; a server that does not offer it
gets no credential (AuthError, exit 77), nor does one whose certificate does not verify
(connection.py).
"""

from mimekit.transport.connection import Connection
from mimekit.errors import AuthError, MimekitError, TempFailure
from mimekit.transport.sansio import NEED_DATA
from mimekit.transport.urls import ServerURL


def login_failure(what: str, completion_text: str, code: str | None) -> MimekitError:
    """A refused login: the "not now" response codes (RFC 5530 for IMAP, RFC 3206 for
    POP3) are worth a retry (75); anything else is a wrong credential (77)."""
    if code in ("UNAVAILABLE", "SYS/TEMP", "IN-USE", "LOGIN-DELAY"):
        return TempFailure(f"{what} refused for now: {completion_text}")
    return AuthError(f"{what} failed: {completion_text}")


class FetchSession:
    """A protocol object on a connection: pump events, flush commands."""

    name = ""

    def __init__(self, url: ServerURL, cafile: str | None, timeout: float):
        self.url = url
        self.cafile = cafile
        self.timeout = timeout
        self.conn: Connection | None = None
        self.proto = None

    def _next(self):
        while True:
            event = self.proto.next_event()
            if event is not NEED_DATA:
                return event
            self._flush()
            self.proto.receive_data(self.conn.receive())

    def _flush(self) -> None:
        data = self.proto.data_to_send()
        if data:
            self.conn.send(data, self.proto.receive_data)

    def _connect(self) -> None:
        self.conn = Connection(self.url, self.cafile, self.timeout)

    def _require_tls(self, offered: bool) -> None:
        if not offered:
            raise AuthError(f"{self.conn.where}: the server does not offer "
                            f"{'STARTTLS' if self.name == 'IMAP' else 'STLS'}; refusing to send "
                            f"credentials in the clear (use {self.url.protocol}s:// for implicit TLS)")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
