"""The network under the SMTP, IMAP and POP3 drivers: one TCP connection, TLS when asked.

The protocols are sans-IO (sansio.py); this class is the part that touches a socket,
so that connecting, the TLS upgrade, timeouts, and what each failure means to the user
(errors.py: what the caller can do about it) are decided once for every protocol:

  no connection within the timeout           TempFailure       (75)
  connection refused, host unreachable       UnavailableError  (69)
  certificate or host name does not verify   AuthError         (77), before any byte of
                                                               the user's is sent
  TLS handshake fails                        ProtocolError     (76)
  timeout, reset or TLS error in session     TempFailure       (75)

Certificates and host names are always verified (tls.py). TCP_NODELAY is set because
every protocol here pipelines: the drivers gather a batch of commands and write it at
once, so Nagle's algorithm could only hold back the end of a batch until the server's
delayed ACK.
"""

import select
import socket
import ssl
from typing import Callable

from mimekit.errors import AuthError, ProtocolError, TempFailure, UnavailableError
from mimekit.tls import client_context
from mimekit.urls import ServerURL

DEFAULT_TIMEOUT = 60.0      # seconds any one wait may take, unless the caller says otherwise
RECEIVE_SIZE = 256 * 1024
SEND_SLICE = 16 * 1024     # bytes per send(), so replies are read in between

_NOT_YET = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)


class ConnectionLost(TempFailure):
    """The connection broke while waiting for the server. A driver whose protocol can say
    better what was left unanswered (SMTP) catches it and reports an end of stream."""


class Connection:
    """A TCP connection to `url`'s host and port, TLS from the first byte for the implicit
    TLS schemes (smtps, imaps, pop3s); `start_tls()` upgrades the others after STARTTLS."""

    def __init__(self, url: ServerURL, cafile: str | None, timeout: float):
        self._context = client_context(cafile)   # a bad --cafile is reported before connecting
        self.host = url.host
        self.where = f"{url.host}:{url.port}"
        self.timeout = timeout
        self.encrypted = False
        try:
            self._sock = socket.create_connection((url.host, url.port), timeout=timeout)
        except TimeoutError as exc:
            raise TempFailure(f"{self.where}: no connection within {timeout:g}s") from exc
        except OSError as exc:
            raise UnavailableError(f"{self.where}: cannot connect: {exc.strerror or exc}") from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if url.implicit_tls:
            try:
                self.start_tls()
            except BaseException:
                self.close()
                raise

    @property
    def local_address(self) -> str:
        return self._sock.getsockname()[0]

    def start_tls(self) -> None:
        """Wrap the socket in TLS, verifying the certificate and the host name."""
        try:
            self._sock = self._context.wrap_socket(self._sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            raise AuthError(f"{self.where}: TLS certificate not trusted ({exc.verify_message}); "
                            "nothing was sent (use --cafile for a private CA)") from exc
        except TimeoutError as exc:
            raise TempFailure(f"{self.where}: TLS handshake timed out after {self.timeout:g}s") from exc
        except ssl.SSLError as exc:
            raise ProtocolError(f"{self.where}: TLS handshake failed: {exc}") from exc
        except OSError as exc:
            raise TempFailure(f"{self.where}: connection lost during the TLS handshake: "
                              f"{exc.strerror or exc}") from exc
        self.encrypted = True

    def send(self, data: bytes | bytearray, on_data: Callable[[bytes], None]) -> None:
        """Write all of `data`, handing `on_data` whatever the server sends meanwhile (b""
        when it closed). With many commands pipelined, a server blocked on writing its
        replies to us would stop reading, and a plain sendall would then wait for it
        forever (until the timeout). The socket is non-blocking inside: TLS can make it
        readable with no reply to read (a session ticket), and a blocking recv would then
        wait for a reply that is not coming."""
        if self._sock.fileno() < 0:
            # A failed TLS handshake took the socket with it; a driver's polite goodbye
            # (LOGOUT, QUIT) must fail like any lost connection, not on select().
            raise ConnectionLost(f"{self.where}: connection lost: the TLS handshake failed")
        view, sent = memoryview(data), 0
        self._sock.settimeout(0)
        try:
            while sent < len(view):
                readable, writable, _ = select.select([self._sock], [self._sock], [], self.timeout)
                if not readable and not writable:
                    raise TempFailure(f"{self.where}: sending stalled for {self.timeout:g}s")
                if readable:
                    try:
                        on_data(self._sock.recv(RECEIVE_SIZE))
                    except _NOT_YET:
                        pass
                if writable:
                    try:
                        sent += self._sock.send(view[sent:sent + SEND_SLICE])
                    except _NOT_YET:
                        pass
        except OSError as exc:
            raise TempFailure(f"{self.where}: connection lost while sending: {exc.strerror or exc}") from exc
        finally:
            view.release()
            self._sock.settimeout(self.timeout)

    def receive(self) -> bytes:
        """Wait for the server's next bytes; b"" when it closed the connection cleanly."""
        try:
            return self._sock.recv(RECEIVE_SIZE)
        except TimeoutError as exc:
            raise TempFailure(f"{self.where}: no reply within {self.timeout:g}s") from exc
        except OSError as exc:
            raise ConnectionLost(f"{self.where}: connection lost: {exc.strerror or exc}") from exc

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
