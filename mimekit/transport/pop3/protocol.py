"""Sans-IO POP3 client protocol (RFC 1939; CAPA and response codes RFC 2449; STLS
RFC 2595; AUTH RFC 5034), in the manner of h11 and of imap/protocol.py.

`POP3Protocol` never touches a socket: feed it bytes with `receive_data()`
(b"" at end of stream), take events from `next_event()` until mimekit.transport.sansio.NEED_DATA, and write
`data_to_send()`. Commands queue their bytes at once, so a driver may pipeline them
when the server offers PIPELINING; replies are matched to commands in order.

A multi-line reply's body goes through `DotUnstuffer` (streams/dot_stuffing.py, the
inverse of the SMTP/POP3 dot-stuffing in RFC 1939 §3): RETR and TOP data come out
as MessageChunk events while they arrive, never as one buffer. Listings (CAPA,
UIDL, LIST) are small and are parsed whole, bounded by `max_listing`.
"""

import base64
import re
from collections import deque
from dataclasses import dataclass

from mimekit.errors import ProtocolError, TempFailure, UsageError
from mimekit.limits import parse_decimal
from mimekit.streams.dot_stuffing import DotUnstuffer
from mimekit.transport.sansio import BufferedProtocol

__all__ = ["POP3Protocol"]

MAX_LINE = 64 * 1024              # RFC 1939 §3 allows 512 octets a reply line; be lenient, not unbounded
# UIDL of a mailbox with about a million messages (RFC 1939 §7: a unique-id is up to 70
# characters); CAPA (RFC 2449 §5) is a few hundred bytes and shares the bound.
MAX_LISTING = 64 * 1024 * 1024


# --------------------------------------------------------------------------- events

@dataclass(frozen=True, slots=True)
class Greeting:
    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    """The single-line reply to a command (or the -ERR to a multi-line one)."""
    command: str
    ok: bool
    code: str | None               # RFC 2449 response code: "AUTH", "IN-USE", "SYS/TEMP", ...
    text: str


@dataclass(frozen=True, slots=True)
class Challenge:
    """A "+" in an AUTH exchange after our response: the server's challenge (base64 text),
    answered with auth_continue() (RFC 5034 §4)."""
    text: str


@dataclass(frozen=True, slots=True)
class Capabilities:
    capabilities: dict             # upper-cased name -> tuple of arguments


@dataclass(frozen=True, slots=True)
class Stat:
    count: int
    size: int


@dataclass(frozen=True, slots=True)
class UniqueIds:
    ids: dict                      # message number -> unique-id (UIDL)


@dataclass(frozen=True, slots=True)
class Sizes:
    sizes: dict                    # message number -> size in octets (LIST)


@dataclass(frozen=True, slots=True)
class MessageStart:
    command: str                   # "RETR" or "TOP"
    number: int


@dataclass(frozen=True, slots=True)
class MessageChunk:
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageEnd:
    number: int


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    pass


# ------------------------------------------------------------------ the protocol

_MULTILINE = {"CAPA", "UIDL", "LIST", "RETR", "TOP"}
_CODE = re.compile(r"\[([^\]]*)\] ?")


@dataclass(slots=True)
class _Command:
    name: str
    number: int = 0


class POP3Protocol(BufferedProtocol):
    """One POP3 client session. A reply line is bounded by `max_line` bytes, a listing
    (CAPA, UIDL, LIST) by `max_listing` bytes."""

    def __init__(self, max_line: int = MAX_LINE, max_listing: int = MAX_LISTING):
        self.max_line = max_line
        self.max_listing = max_listing
        self.capabilities: dict = {}
        super().__init__()
        self._scan_from = 0
        self._closed_reported = False
        self._greeted = False
        self._pending: deque[_Command] = deque()
        self._held: deque[bytes] = deque()  # the AUTH response, and commands queued behind AUTH
        self._awaiting_continuation = False
        self._unstuffer: DotUnstuffer | None = None
        self._listing: bytearray | None = None

    # ---------------------------------------------------------------- state

    @property
    def outstanding(self) -> int:
        """Commands sent whose reply has not been read completely."""
        return len(self._pending)

    # ------------------------------------------------------------------ commands

    def capa(self) -> None:
        self._command("CAPA")

    def stls(self) -> None:
        self._command("STLS")

    def user(self, name: str) -> None:
        self._command("USER", _argument(name, "user name"))

    def password(self, password: str) -> None:
        self._command("PASS", _argument(password, "password"))

    def auth_plain(self, user: str, password: str) -> None:
        """SASL PLAIN (RFC 4616)."""
        self.auth("PLAIN", b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8"))

    def auth(self, mechanism: str, response: bytes) -> None:
        """AUTH with a mechanism of one client response (PLAIN, the OAuth2 ones of
        transport/sasl.py), sent after the server's "+", which every AUTH server gives:
        an OAuth2 token would not fit in a command's 255 octets (RFC 2449 §4)."""
        self._command("AUTH", mechanism, continued=base64.b64encode(response))

    def auth_continue(self, response: bytes) -> None:
        """Answer the server's Challenge; it goes before any command held behind AUTH."""
        self._outbox += base64.b64encode(response) + b"\r\n"

    def stat(self) -> None:
        self._command("STAT")

    def uidl(self) -> None:
        self._command("UIDL")

    def list(self) -> None:
        self._command("LIST")

    def retr(self, number: int) -> None:
        self._command("RETR", str(number), number=number)

    def top(self, number: int, lines: int = 0) -> None:
        self._command("TOP", f"{number} {lines}", number=number)

    def dele(self, number: int) -> None:
        self._command("DELE", str(number), number=number)

    def quit(self) -> None:
        self._command("QUIT")

    def _command(self, name: str, argument: str = "", number: int = 0, continued: bytes = b"") -> None:
        self._pending.append(_Command(name, number))
        line = (f"{name} {argument}" if argument else name).encode("utf-8") + b"\r\n"
        if self._held:
            self._held.append(line)
        else:
            self._outbox += line
        if continued:
            self._held.append(continued + b"\r\n")
            self._awaiting_continuation = True

    # ------------------------------------------------------------------- parsing

    def _step(self) -> bool:
        if self._unstuffer is not None:
            return self._step_multiline()
        end = self._buffer.find(b"\r\n", self._scan_from)
        if end < 0:
            if len(self._buffer) > self.max_line:
                raise ProtocolError(f"POP3 server sent a line longer than {self.max_line} bytes")
            self._scan_from = max(len(self._buffer) - 1, 0)
            return False
        line = bytes(self._buffer[:end]).decode("utf-8", "replace")
        del self._buffer[:end + 2]
        self._scan_from = 0
        self._line(line)
        return True

    def _line(self, line: str) -> None:
        ok = line.startswith("+OK")
        if not ok and not line.startswith("-ERR"):
            if line.startswith("+") and self._pending and self._pending[0].name == "AUTH":
                if self._awaiting_continuation:
                    self._outbox += self._held.popleft()      # the AUTH continuation
                    self._awaiting_continuation = False
                else:
                    self._events.append(Challenge(line[1:].strip()))
                return
            raise ProtocolError(f"POP3 server sent neither +OK nor -ERR: {line[:200]!r}")
        text = line[3 if ok else 4:].lstrip(" ")
        if not self._greeted:
            self._greeted = True
            self._events.append(Greeting(ok, text))
            return
        if not self._pending:
            raise ProtocolError(f"POP3 server replied to no command: {line[:200]!r}")
        command = self._pending[0]
        code = None
        match = _CODE.match(text)
        if match:
            code, text = match.group(1).upper(), text[match.end():]
        if command.name == "AUTH" and self._awaiting_continuation:
            self._held.popleft()        # refused before the continuation: never send the response
            self._awaiting_continuation = False
        if ok and command.name in _MULTILINE:
            self._unstuffer = DotUnstuffer()
            if command.name in ("RETR", "TOP"):
                self._events.append(MessageStart(command.name, command.number))
            else:
                self._listing = bytearray()
            return
        self._pending.popleft()
        if ok and command.name == "STLS":
            if self._buffer:
                raise ProtocolError("POP3 server sent data after STLS before the TLS handshake")
            self.capabilities = {}
        if ok and command.name == "STAT":
            self._events.append(_stat(text))
            return
        if command.name == "AUTH":
            self._release()
        self._events.append(Reply(command.name, ok, code, text))

    def _release(self) -> None:
        while self._held:
            self._outbox += self._held.popleft()

    def _step_multiline(self) -> bool:
        if not self._buffer:
            return False
        body = self._unstuff_buffered(self._unstuffer)
        command = self._pending[0]
        if self._listing is not None:
            self._listing += body
            if len(self._listing) > self.max_listing:
                raise ProtocolError(f"POP3 {command.name} listing is longer than {self.max_listing} bytes")
        elif body:
            self._events.append(MessageChunk(body))
        if self._unstuffer.done:
            self._unstuffer = None
            self._pending.popleft()
            if self._listing is None:
                self._events.append(MessageEnd(command.number))
            else:
                listing, self._listing = bytes(self._listing), None
                self._events.append(_parse_listing(command.name, listing))
                if command.name == "CAPA":
                    self.capabilities = self._events[-1].capabilities
        return True

    def _end_of_stream(self):
        if self._buffer or self._unstuffer is not None:
            raise TempFailure("POP3 server closed the connection in the middle of a reply")
        if self._closed_reported:
            raise TempFailure("POP3 connection already closed")
        self._closed_reported = True
        return ConnectionClosed()


def _argument(value: str, what: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"{what} must not contain CR, LF or NUL")
    return value


def _stat(text: str) -> Stat:
    parts = text.split()
    numbers = [parse_decimal(part) for part in parts[:2]]
    if len(numbers) < 2 or None in numbers:
        raise ProtocolError(f"POP3 server sent a malformed STAT reply: {text[:200]!r}")
    return Stat(*numbers)


def _parse_listing(command: str, listing: bytes):
    lines = listing.decode("utf-8", "replace").split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    if command == "CAPA":
        capabilities = {}
        for line in lines:
            name, *args = line.split()
            capabilities[name.upper()] = tuple(args)
        return Capabilities(capabilities)
    entries = {}
    for line in lines:
        parts = line.split()
        number = parse_decimal(parts[0]) if parts else None
        value = parts[1] if len(parts) >= 2 else None
        if command == "LIST" and value is not None:
            value = parse_decimal(value)
        if number is None or value is None:
            raise ProtocolError(f"POP3 server sent a malformed {command} line: {line[:200]!r}")
        entries[number] = value
    return Sizes(entries) if command == "LIST" else UniqueIds(entries)
