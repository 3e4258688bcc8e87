"""The network under the SMTP, IMAP and POP3 drivers: one TCP connection, TLS when asked.

The protocols are sans-IO (sansio.py); this class is the part that touches a socket,
so that connecting, the TLS upgrade, timeouts, and what each failure means to the user
(errors.py: what the caller can do about it) are decided once for every protocol:

  no connection within the timeout           TempFailure       (75)
  connection refused, host unreachable       Unreachable, an UnavailableError (69)
  certificate or host name does not verify   AuthError         (77), before any byte of
                                                               the user's is sent
  TLS handshake fails                        ProtocolError     (76)
  timeout, reset or TLS error in session     TempFailure       (75)

The timeout is an idle limit that a slow-dripping peer cannot extend forever (Postfix's
smtp_per_record_deadline and smtpd_min_data_rate make the same point). Each operation,
from a command sent to the end of its reply, may spend `timeout` seconds waiting for the
peer; bytes that arrive (or leave) buy waiting time back at `min_rate` bytes a second,
never beyond `timeout`. A server silent for `timeout` seconds, or one dripping a byte a
second, ends the session after about `timeout` seconds; a transfer at any useful speed
never notices, and time spent in our own code is not counted. After a timeout the
connection is given up: a later send or receive (a polite LOGOUT or QUIT) fails at once
instead of waiting again.

Certificates and host names are always verified (tls.py). TCP_NODELAY is set because
every protocol here pipelines: the drivers gather a batch of commands and write it at
once, so Nagle's algorithm could only hold back the end of a batch until the server's
delayed ACK.
"""

import select
import socket
import ssl
import time
from typing import Callable

from mimekit.errors import AuthError, ProtocolError, TempFailure, UnavailableError
from mimekit.transport.tls import client_context
from mimekit.transport.urls import ServerURL, is_loopback

DEFAULT_TIMEOUT = 60.0      # seconds of waiting per operation, unless the caller says otherwise
MIN_DATA_RATE = 500         # bytes/s that keep an operation going: Postfix's smtpd_min_data_rate
RECEIVE_SIZE = 256 * 1024
SEND_SLICE = 16 * 1024     # bytes per send(), so replies are read in between

_NOT_YET = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError)


class ConnectionLost(TempFailure):
    """The connection broke while waiting for the server. A driver whose protocol can say
    better what was left unanswered (SMTP) catches it and reports an end of stream."""


class Unreachable(UnavailableError):
    """No connection to the server could be made (refused, no route, no such host), or it
    turned the session away at once: unlike a server's refusal of a command, this may pass,
    so a caller that keeps trying (fetch --watch) tries again."""


class Connection:
    """A TCP connection to `url`'s host and port, TLS from the first byte for the implicit
    TLS schemes (smtps, imaps, pop3s); `start_tls()` upgrades the others after STARTTLS."""

    def __init__(self, url: ServerURL, cafile: str | None, timeout: float, min_rate: float = MIN_DATA_RATE):
        # A bad --cafile is reported before connecting. Without one, the system's CAs are
        # loaded when TLS starts: 60-300 ms here, which a plaintext loopback session never needs.
        self._context = client_context(cafile) if cafile else None
        self.host = url.host
        self.where = f"{url.host}:{url.port}"
        self.timeout = timeout
        self.min_rate = min_rate
        self.encrypted = False
        self._patience = timeout            # seconds of waiting left to the current operation
        self._last_moved = time.monotonic()  # when the last byte came or went
        self._given_up: str | None = None   # why the connection is no longer used, once it is not
        try:
            self._sock = socket.create_connection((url.host, url.port), timeout=timeout)
        except TimeoutError as exc:
            raise TempFailure(f"{self.where}: no connection within {timeout:g}s") from exc
        except OSError as exc:
            raise Unreachable(f"{self.where}: cannot connect: {exc.strerror or exc}") from exc
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if url.plaintext:
            self._check_loopback_peer()
        if url.implicit_tls:
            try:
                self.start_tls()
            except BaseException:
                self.close()
                raise

    def _check_loopback_peer(self) -> None:
        """The plaintext schemes are for this machine only: parse_url judged the host's text,
        and this what "localhost" turned out to be, before a byte goes out in the clear."""
        peer = self._sock.getpeername()[0]
        if not is_loopback(peer):
            self.close()
            raise AuthError(f"{self.where}: connected to {peer}, not a loopback address; "
                            "nothing was sent without TLS")

    @property
    def local_address(self) -> str:
        return self._sock.getsockname()[0]

    def start_tls(self) -> None:
        """Wrap the socket in TLS, verifying the certificate and the host name. The whole
        handshake has `timeout` seconds (CPython gives it one deadline)."""
        self._check_usable()
        self._sock.settimeout(self.timeout)
        try:
            context = self._context or client_context()
            self._sock = context.wrap_socket(self._sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            self._given_up = "the TLS handshake failed"
            raise AuthError(f"{self.where}: TLS certificate not trusted ({exc.verify_message}); "
                            "nothing was sent (give cafile for a private CA)") from exc
        except TimeoutError as exc:
            self._given_up = "the TLS handshake timed out"
            raise TempFailure(f"{self.where}: TLS handshake timed out after {self.timeout:g}s") from exc
        except ssl.SSLError as exc:
            self._given_up = "the TLS handshake failed"
            raise ProtocolError(f"{self.where}: TLS handshake failed: {exc}") from exc
        except OSError as exc:
            self._given_up = "the TLS handshake failed"
            raise TempFailure(f"{self.where}: connection lost during the TLS handshake: "
                              f"{exc.strerror or exc}") from exc
        self.encrypted = True
        self._begin_operation()

    def send(self, data: bytes | bytearray, on_data: Callable[[bytes], None]) -> None:
        """Write all of `data`, handing `on_data` whatever the server sends meanwhile (b""
        when it closed). With many commands pipelined, a server blocked on writing its
        replies to us would stop reading, and a plain sendall would then wait for it
        forever (until the timeout). The socket is non-blocking inside: TLS can make it
        readable with no reply to read (a session ticket), and a blocking recv would then
        wait for a reply that is not coming. Sending starts a new operation."""
        self._check_usable()
        self._begin_operation()
        view, sent = memoryview(data), 0
        self._sock.settimeout(0)
        try:
            while sent < len(view):
                started = time.monotonic()
                readable, writable, _ = select.select([self._sock], [self._sock], [], max(self._patience, 0))
                moved = 0
                if readable:
                    try:
                        received = self._sock.recv(RECEIVE_SIZE)
                        moved += len(received)
                        on_data(received)
                    except _NOT_YET:
                        pass
                if writable:
                    try:
                        count = self._sock.send(view[sent:sent + SEND_SLICE])
                        sent += count
                        moved += count
                    except _NOT_YET:
                        pass
                if not self._waited(time.monotonic() - started, moved):
                    raise self._timed_out(f"sending stalled for {self.timeout:g}s")
        except OSError as exc:
            raise TempFailure(f"{self.where}: connection lost while sending: {exc.strerror or exc}") from exc
        finally:
            view.release()

    def receive(self) -> bytes:
        """Wait for the server's next bytes; b"" when it closed the connection cleanly."""
        self._check_usable()
        if self._patience <= 0:
            raise self._timed_out(f"no reply within {self.timeout:g}s")
        if self._sock.gettimeout() != self._patience:    # each settimeout() is a system call
            self._sock.settimeout(self._patience)
        started = time.monotonic()
        try:
            data = self._sock.recv(RECEIVE_SIZE)
        except TimeoutError as exc:
            raise self._timed_out(f"no reply within {self.timeout:g}s") from exc
        except OSError as exc:
            raise ConnectionLost(f"{self.where}: connection lost: {exc.strerror or exc}") from exc
        self._waited(time.monotonic() - started, len(data))
        return data

    def wait(self, seconds: float) -> bool:
        """True once the server has sent something (or closed the connection), False after
        `seconds` of silence. This wait spends none of the idle limit: it is for a session
        meant to be silent (IMAP IDLE, RFC 2177), where silence is not a stalled peer."""
        self._check_usable()
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        readable, _, _ = select.select([self._sock], [], [], max(seconds, 0))
        return bool(readable)

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass

    # -- the idle limit

    def _begin_operation(self) -> None:
        self._patience, self._last_moved = self.timeout, time.monotonic()

    def _waited(self, seconds: float, moved: int) -> bool:
        """Charge `seconds` of waiting that moved `moved` bytes; False once patience is out."""
        self._patience = min(self.timeout, self._patience - seconds + moved / self.min_rate)
        if moved:
            self._last_moved = time.monotonic()
        return self._patience > 0 or moved > 0

    def _timed_out(self, silent: str) -> TempFailure:
        """The error for an operation out of patience; the connection is given up with it.
        A peer that moved bytes in the last half of the limit was slow rather than silent."""
        if time.monotonic() - self._last_moved < self.timeout / 2:
            self._given_up = f"the server is too slow: under {self.min_rate:g} bytes/s for {self.timeout:g}s"
        else:
            self._given_up = silent
        return TempFailure(f"{self.where}: {self._given_up}")

    def _check_usable(self) -> None:
        """A connection given up (a timeout, a failed TLS handshake) fails at once: a
        driver's polite goodbye must not wait again for a server that already failed it."""
        if self._given_up is not None:
            raise ConnectionLost(f"{self.where}: connection given up: {self._given_up}")
