"""Sans-IO POP3 server role (RFC 1939; CAPA and response codes RFC 2449 and RFC 3206;
STLS RFC 2595; AUTH PLAIN RFC 5034 and RFC 4616), the counterpart of protocol.py's client.

`POP3ServerProtocol` never touches a socket: the session hands it what the client sent
with `receive_data()` (b"" at end of stream), takes events from `next_event()` until
NEED_DATA, and writes `data_to_send()`. Everything the maildrop listing answers (CAPA,
STAT, LIST, UIDL, DELE, RSET, NOOP, bad commands, commands in the wrong state) is
answered here; the protocol emits an event only for what needs the outside world: a
login to check (Login), TLS to start (StartTLS), a message to stream (Retrieve), the
deletions to apply (Quit), the end of the session (Closing, ConnectionClosed). Each
event is answered through one of the protocol's methods before the next is asked for,
so pipelined commands are answered in order; past OUTPUT_HIGH_WATER bytes of queued
replies the protocol parses no further (NEED_DATA with bytes to send) until they are
written, so a pipeline of cheap commands cannot pile up replies in memory.

Messages are stored with LF and sent with CRLF: `message_data()` normalises, cuts TOP's
lines and dot-stuffs chunk by chunk, so a message of any size streams in bounded memory.

Refusing a login in the clear (USER, PASS or AUTH before STLS, unless plaintext logins
are allowed) answers `-ERR [AUTH]`, as Dovecot does, so clients already handle it; the
text says TLS is needed. A line over MAX_COMMAND_LINE bytes is refused and the rest of
it discarded as it arrives, never buffered.
"""

import base64
import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum

from mimekit.limits import parse_decimal
from mimekit.streams.dot_stuffing import DotStuffer
from mimekit.streams.line_endings import CRLFNormaliser
from mimekit.transport.sansio import NEED_DATA, BufferedProtocol
from mimekit.transport.sasl import OtherUserRequested, parse_plain_response

__all__ = ["POP3ServerProtocol", "State", "Login", "StartTLS", "Retrieve", "Quit", "Closing",
           "ConnectionClosed", "unique_id"]

# RFC 2449 §4 limits a command to 255 octets; an AUTH response may be longer (RFC 5034 §4).
MAX_COMMAND_LINE = 4096
MAX_ERRORS = 10                  # refused commands before the session is ended
MAX_LOGIN_FAILURES = 3
OUTPUT_HIGH_WATER = 64 * 1024    # replies queued before pipelined commands wait for them to be written


class State(Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"
    CLOSED = "closed"


# -------------------------------------------------------------------------- events

@dataclass(frozen=True, slots=True)
class Login:
    """Check these credentials: answer with open_maildrop(), login_failed() or login_refused()."""
    user: str
    password: str = field(repr=False)
    mechanism: str                   # "USER" (USER/PASS) or "PLAIN" (AUTH PLAIN)


@dataclass(frozen=True, slots=True)
class StartTLS:
    """The go-ahead is queued: flush it, then start TLS before reading anything more."""


@dataclass(frozen=True, slots=True)
class Retrieve:
    """Stream message `number` (its maildrop `key`): message_follows(), message_data()...,
    message_end(); or message_unavailable(). `lines` is TOP's body line count, None for RETR."""
    number: int
    key: str
    lines: int | None


@dataclass(frozen=True, slots=True)
class Quit:
    """QUIT in the TRANSACTION state: remove these keys, then answer with updated()."""
    deleted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Closing:
    """The protocol has said goodbye (QUIT before login, too many errors or failed logins,
    commands pipelined behind STLS): flush and close."""
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The client closed the connection (without QUIT, unless after Closing)."""


# ------------------------------------------------------------------------- helpers

_UNIQUE_ID = re.compile(r"[\x21-\x7e]{1,70}")


def unique_id(key: str) -> str:
    """The UIDL of a Maildir key: the key itself when RFC 1939 §7 allows it (1 to 70
    characters 0x21 to 0x7E), else a digest of it, equally stable across sessions."""
    if _UNIQUE_ID.fullmatch(key):
        return key
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class TopLimiter:
    """TOP's cut of a CRLF stream: the header, the blank line after it, and then `lines`
    body lines (RFC 1939 §7). Counts at C speed (find, count), never a loop per line."""

    def __init__(self, lines: int) -> None:
        self._lines_left = lines
        self._in_header = True
        self._tail = b"\n"          # the data starts at a line start
        self.done = False

    def feed(self, data: bytes) -> bytes:
        if self.done or not data:
            return b""
        body_start = 0
        if self._in_header:
            joined = self._tail + data
            end = joined.find(b"\n\r\n")
            if end < 0:
                self._tail = joined[-2:]
                return data
            self._in_header = False
            body_start = end + 3 - len(self._tail)
        body = data[body_start:]
        if body.count(b"\n") < self._lines_left:
            self._lines_left -= body.count(b"\n")
            return data
        cut = -1
        for _ in range(self._lines_left):
            cut = body.find(b"\n", cut + 1)
        self.done = True
        return data[:body_start + cut + 1]


# ------------------------------------------------------------------------ protocol

_AUTHORIZATION_COMMANDS = {"CAPA", "USER", "PASS", "AUTH", "STLS", "QUIT"}
_TRANSACTION_COMMANDS = {"CAPA", "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "QUIT"}


@dataclass(slots=True)
class _Message:
    key: str
    size: int                       # octets as sent: CRLF line endings, before dot-stuffing
    deleted: bool = False


class POP3ServerProtocol(BufferedProtocol):
    """One POP3 server session, from the greeting to QUIT.

    tls_available: STLS is offered (a certificate was given).
    insecure_plaintext_auth: logins are allowed before TLS.
    """

    def __init__(self, hostname: str = "localhost", tls_available: bool = False,
                 insecure_plaintext_auth: bool = False) -> None:
        super().__init__()
        self.hostname = hostname
        self.tls_available = tls_available
        self.insecure_plaintext_auth = insecure_plaintext_auth
        self.state = State.AUTHORIZATION
        self.secure = False
        self.user: str | None = None       # the logged-in user, once in TRANSACTION
        self.errors = 0
        self.login_failures = 0
        self.octets_sent = 0               # message bytes sent for RETR and TOP, as on the wire
        self._user_given: str | None = None
        self._sasl_pending = False         # the next line is an AUTH PLAIN response
        self._answer_due: str | None = None   # the event awaiting the session's answer
        self._discarding = False           # inside an over-long line
        self._messages: list[_Message] = []
        self._retrieving = 0               # the message number of the Retrieve being answered
        self._normaliser: CRLFNormaliser | None = None
        self._top: TopLimiter | None = None
        self._stuffer: DotStuffer | None = None
        self._handlers = {"CAPA": self._capa, "USER": self._user_command, "PASS": self._pass,
                          "AUTH": self._auth, "STLS": self._stls, "QUIT": self._quit,
                          "STAT": self._stat, "LIST": self._list, "UIDL": self._uidl,
                          "RETR": self._retr, "TOP": self._top_command, "DELE": self._dele,
                          "RSET": self._rset, "NOOP": self._noop}
        self._reply(True, f"{hostname} POP3 server ready")

    # ------------------------------------------------------------------ answers

    def open_maildrop(self, user: str, messages: list[tuple[str, int]]) -> None:
        """Answer Login: accepted, the maildrop locked and listed as (key, octets as sent)."""
        self._answered("Login")
        self.user = user
        self._messages = [_Message(key, size) for key, size in messages]
        self.state = State.TRANSACTION
        self._reply(True, self._summary())

    def login_failed(self) -> None:
        """Answer Login: wrong credentials. The third failure ends the session."""
        self._answered("Login")
        self.login_failures += 1
        self._reply(False, "authentication failed", "AUTH")
        if self.login_failures >= MAX_LOGIN_FAILURES:
            self._close("too many failed logins")

    def login_refused(self, code: str, text: str) -> None:
        """Answer Login: right credentials, but no maildrop now ("IN-USE", "SYS/TEMP")."""
        self._answered("Login")
        self._reply(False, text, code)

    def message_follows(self) -> None:
        self._answered("Retrieve", keep=True)
        number = self._retrieving
        self._reply(True, f"{self._messages[number - 1].size} octets")
        self._normaliser, self._stuffer = CRLFNormaliser(), DotStuffer()

    def message_data(self, data: bytes) -> bool:
        """Queue stored message bytes (any line endings); False once TOP has all it needs,
        so the session can stop reading."""
        data = self._normaliser.feed(data)
        if self._top is not None:
            data = self._top.feed(data)
        self._send_message_bytes(self._stuffer.feed(data))
        return self._top is None or not self._top.done

    def message_end(self) -> None:
        data = self._normaliser.flush()
        if self._top is not None:
            data = self._top.feed(data)
        self._send_message_bytes(self._stuffer.feed(data) + self._stuffer.flush())
        self._normaliser = self._stuffer = self._top = None
        self._answered("Retrieve")

    def message_unavailable(self, text: str) -> None:
        """Answer Retrieve when the file cannot be read (before message_follows)."""
        self._answered("Retrieve")
        self._top = None
        self._reply(False, text, "SYS/TEMP")

    def updated(self, failure: str | None = None) -> None:
        """Answer Quit: the deletions applied, or why some were not (RFC 1939 §6)."""
        self._answered("Quit")
        if failure is None:
            deleted = sum(message.deleted for message in self._messages)
            self._reply(True, f"{self.hostname} POP3 server signing off ({deleted} messages deleted)")
        else:
            self._reply(False, f"some deleted messages not removed: {failure}", "SYS/TEMP")
        self.state = State.CLOSED

    # ------------------------------------------------------------------ parsing

    def _step(self) -> bool:
        if self._answer_due is not None:
            raise RuntimeError(f"POP3 server: answer the {self._answer_due} event before asking for the next")
        if self.state is State.CLOSED:
            self._buffer.clear()
            return False
        end = self._buffer.find(b"\n")
        if end < 0:
            if self._discarding:
                self._buffer.clear()
            elif len(self._buffer) > MAX_COMMAND_LINE:
                self._buffer.clear()
                self._discarding = True
                self._line_too_long()
            return False
        if self._discarding:
            del self._buffer[:end + 1]
            self._discarding = False
            return True
        if self.bytes_to_send >= OUTPUT_HIGH_WATER:
            return False
        line = bytes(self._buffer[:end]).removesuffix(b"\r")
        del self._buffer[:end + 1]
        if len(line) > MAX_COMMAND_LINE:
            self._line_too_long()
        elif self._sasl_pending:
            self._sasl_pending = False
            self._plain_response(line)
        else:
            self._command(line.decode("utf-8", "replace"))
        return True

    def _line_too_long(self) -> None:
        # The -ERR also ends an AUTH exchange: the client's next line is a command again.
        self._sasl_pending = False
        self._error("line too long")

    def _end_of_stream(self):
        if self.bytes_to_send >= OUTPUT_HIGH_WATER and self.state is not State.CLOSED:
            return NEED_DATA       # commands sent before the client closed still wait for their turn
        self.state = State.CLOSED
        return ConnectionClosed()

    def _command(self, line: str) -> None:
        name, _, argument = line.partition(" ")
        name = name.upper()
        allowed = _AUTHORIZATION_COMMANDS if self.state is State.AUTHORIZATION else _TRANSACTION_COMMANDS
        if name not in self._handlers:
            self._error("unknown command")
        elif name not in allowed:
            self._error(f"{name} is not allowed {'before' if self.state is State.AUTHORIZATION else 'after'} login")
        else:
            # A password is the rest of the line, spaces and all (RFC 1939 §7).
            self._handlers[name](argument if name == "PASS" else argument.strip(" "))

    # ----------------------------------------------------- AUTHORIZATION state

    @property
    def login_allowed(self) -> bool:
        return self.secure or self.insecure_plaintext_auth

    def _capa(self, argument: str) -> None:
        capabilities = ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"]
        if self.state is State.AUTHORIZATION:
            if self.tls_available and not self.secure:
                capabilities.append("STLS")
            if self.login_allowed:
                capabilities += ["USER", "SASL PLAIN"]
        capabilities.append("IMPLEMENTATION mimekit")
        self._multiline("capability list follows", capabilities)

    def _user_command(self, argument: str) -> None:
        if not self._plaintext_ok() or not self._has_argument(argument, "USER needs a user name"):
            return
        self._user_given = argument
        self._reply(True, "send the password")

    def _pass(self, argument: str) -> None:
        if not self._plaintext_ok():
            return
        if self._user_given is None:
            self._error("give USER first")
            return
        user, self._user_given = self._user_given, None
        self._emit(Login(user, argument, "USER"))

    def _auth(self, argument: str) -> None:
        if not argument:             # the mechanism list some clients ask for (RFC 1734's form)
            self._multiline("SASL mechanisms follow", ["PLAIN"] if self.login_allowed else [])
            return
        mechanism, _, initial = argument.partition(" ")
        if mechanism.upper() != "PLAIN":
            self._error("unsupported SASL mechanism; PLAIN is offered")
        elif self._plaintext_ok():
            if initial:
                self._plain_response(initial.encode("utf-8", "replace"))
            else:
                self._sasl_pending = True
                self._outbox += b"+ \r\n"

    def _plain_response(self, line: bytes) -> None:
        """The AUTH PLAIN response: base64 of authzid NUL user NUL password (RFC 4616)."""
        if line.strip() == b"*":
            self._error("authentication cancelled", "AUTH")
            return
        try:
            response = b"" if line.strip() == b"=" else base64.b64decode(line, validate=True)
            user, password = parse_plain_response(response)
        except OtherUserRequested:
            self._error("logging in as another user is not supported", "AUTH")
        except ValueError:          # binascii.Error and UnicodeDecodeError are ValueErrors
            self._error("malformed AUTH PLAIN response", "AUTH")
        else:
            self._emit(Login(user, password, "PLAIN"))

    def _plaintext_ok(self) -> bool:
        if not self.login_allowed:
            self._error("plaintext authentication is disallowed without TLS: use STLS first", "AUTH")
        return self.login_allowed

    def _stls(self, argument: str) -> None:
        if self.secure:
            self._error("TLS is already active")
        elif not self.tls_available:
            self._error("STLS is not offered: the server has no certificate")
        elif self._buffer:
            # Bytes sent behind STLS would be read as if they came over TLS (CVE-2011-0411).
            self._reply(False, "commands pipelined after STLS")
            self._close("commands pipelined after STLS")
        else:
            self.secure = True
            self._user_given = None     # RFC 2595 §4: nothing said in the clear carries over
            self._reply(True, "begin TLS negotiation")
            self._events.append(StartTLS())

    def _quit(self, argument: str) -> None:
        if self.state is State.TRANSACTION:
            self.state = State.UPDATE
            self._emit(Quit(tuple(message.key for message in self._messages if message.deleted)))
            return
        self._reply(True, f"{self.hostname} POP3 server signing off")
        self._close("quit")

    # ------------------------------------------------------- TRANSACTION state

    def _stat(self, argument: str) -> None:
        live = self._live()
        self._reply(True, f"{len(live)} {sum(message.size for _, message in live)}")

    def _list(self, argument: str) -> None:
        self._listing(argument, lambda message: str(message.size))

    def _uidl(self, argument: str) -> None:
        self._listing(argument, lambda message: unique_id(message.key))

    def _listing(self, argument: str, value) -> None:
        if argument:
            number = self._message_number(argument)
            if number is not None:
                self._reply(True, f"{number} {value(self._messages[number - 1])}")
            return
        self._multiline(self._summary(), [f"{number} {value(message)}" for number, message in self._live()])

    def _retr(self, argument: str) -> None:
        number = self._message_number(argument)
        if number is not None:
            self._retrieve(number, None)

    def _top_command(self, argument: str) -> None:
        number_text, _, lines_text = argument.partition(" ")
        lines = parse_decimal(lines_text.strip(" "))
        if lines is None:
            self._error("TOP needs a message number and a number of lines")
            return
        number = self._message_number(number_text)
        if number is not None:
            self._retrieve(number, lines)

    def _retrieve(self, number: int, lines: int | None) -> None:
        self._retrieving = number
        self._top = None if lines is None else TopLimiter(lines)
        self._emit(Retrieve(number, self._messages[number - 1].key, lines))

    def _dele(self, argument: str) -> None:
        number = self._message_number(argument)
        if number is not None:
            self._messages[number - 1].deleted = True
            self._reply(True, f"message {number} deleted")

    def _rset(self, argument: str) -> None:
        for message in self._messages:
            message.deleted = False
        self._reply(True, self._summary())

    def _noop(self, argument: str) -> None:
        self._reply(True, "")

    def _message_number(self, argument: str) -> int | None:
        """The number of a message not marked deleted, or None with the -ERR sent."""
        number = parse_decimal(argument)
        if number is None:
            self._error("a message number is needed")
        elif not 1 <= number <= len(self._messages):
            self._error(f"no message {number}")
        elif self._messages[number - 1].deleted:
            self._error(f"message {number} is deleted")
        else:
            return number
        return None

    def _live(self) -> list[tuple[int, _Message]]:
        return [(number, message) for number, message in enumerate(self._messages, 1) if not message.deleted]

    def _summary(self) -> str:
        live = self._live()
        return f"maildrop has {len(live)} messages ({sum(message.size for _, message in live)} octets)"

    # ---------------------------------------------------------------- output

    def _reply(self, ok: bool, text: str, code: str | None = None) -> None:
        status = "+OK" if ok else "-ERR"
        text = f"[{code}] {text}" if code else text
        self._outbox += f"{status} {text}".rstrip(" ").encode("utf-8") + b"\r\n"

    def _multiline(self, text: str, lines: list[str]) -> None:
        """A listing: its lines never start with a dot, so they need no stuffing."""
        self._reply(True, text)
        self._outbox += "".join(f"{line}\r\n" for line in lines).encode("utf-8") + b".\r\n"

    def _error(self, text: str, code: str | None = None) -> None:
        self._reply(False, text, code)
        self.errors += 1
        if self.errors >= MAX_ERRORS and self.state is not State.CLOSED:
            self._reply(False, "too many errors, closing the connection")
            self._close("too many errors")

    def _has_argument(self, argument: str, text: str) -> bool:
        if not argument:
            self._error(text)
        return bool(argument)

    def _send_message_bytes(self, data: bytes) -> None:
        self.octets_sent += len(data)
        self._outbox += data

    def _emit(self, event) -> None:
        self._answer_due = type(event).__name__
        self._events.append(event)

    def _answered(self, event_name: str, keep: bool = False) -> None:
        if self._answer_due != event_name:
            raise RuntimeError(f"POP3 server: no {event_name} event is waiting for an answer")
        if not keep:
            self._answer_due = None

    def _close(self, reason: str) -> None:
        self.state = State.CLOSED
        self._buffer.clear()
        self._events.append(Closing(reason))
