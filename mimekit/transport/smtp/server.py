"""The SMTP server as a pure state machine: bytes in, events out; decisions in, replies out.

The server role of the SMTP core (protocol.py is the client role; both stand on
transport/sansio.py and share Reply, its wire format and the state-error class). No
sockets here: serve/smtp_session.py feeds what the client sent to `receive_data()`, takes
events from `next_event()`, and writes `data_to_send()`.

The protocol answers by itself everything that needs no knowledge of mailboxes or users:
syntax errors (501), commands out of sequence (503), unknown commands (500), parameters it
does not support (555), EHLO, NOOP, HELP, VRFY (252), RSET, QUIT, SIZE (552), the
recipient cap (452 4.5.3), the STARTTLS and AUTH rules. Events that need a decision
(`Decision`: a recipient, the go-ahead for DATA, the end of a message or chunk,
credentials) hold the protocol until the session calls `accept()` or `refuse()`, so
pipelined commands are answered in order (RFC 2920).

Memory is bounded whatever the client sends: a command line is at most MAX_COMMAND_LINE
bytes, and the rest of a longer one is dropped as it arrives, never gathered; past
MAX_QUEUED_REPLIES of queued replies, next_event() returns NEED_DATA with bytes to send,
and the driver writes them before asking again (and before reading more); message
content (DATA through streams/dot_stuffing.py's DotUnstuffer, or BDAT chunks) leaves as
Content events carrying what arrived, never as a whole message.

Standards: RFC 5321, 1869 (EHLO), 2920 (PIPELINING), 1870 (SIZE), 6152 (8BITMIME),
6531 (SMTPUTF8), 3207 (STARTTLS; CVE-2011-0411: nothing pipelined after it is read),
4954 (AUTH) with 4616 (PLAIN) and the LOGIN draft, 2034 and 3463 (enhanced status codes),
3030 (CHUNKING).
"""

import base64
import binascii
import re
from dataclasses import dataclass, field
from enum import Enum

from mimekit.errors import DataError
from mimekit.headers.addresses import smtp_mailbox_problem
from mimekit.limits import parse_decimal
from mimekit.streams.dot_stuffing import DotUnstuffer
from mimekit.transport.sansio import BufferedProtocol
from mimekit.transport.sasl import OtherUserRequested, parse_plain_response
from mimekit.transport.smtp.protocol import Reply, SMTPStateError, check_argument

MAX_COMMAND_LINE = 4096   # octets, LF included: RFC 5321's 512 plus room for AUTH responses and extensions
MAX_ERRORS = 10           # client errors before the server gives up on the session (421)
MAX_QUEUED_REPLIES = 64 * 1024   # octets of replies queued before parsing waits for the driver to write them
AUTH_MECHANISMS = ("PLAIN", "LOGIN")


# --- events --------------------------------------------------------------------------------

class Decision:
    """An event the session must answer with accept() or refuse() before the next one."""


@dataclass(frozen=True)
class Ehlo:
    """EHLO (extended) or HELO, already answered; any transaction was dropped."""
    name: str
    extended: bool


@dataclass(frozen=True)
class Mail:
    """MAIL FROM, already accepted: a transaction begins. `sender` is "" for the null path;
    `params` maps upper-cased ESMTP keywords to their values (None for a bare keyword)."""
    sender: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rcpt(Decision):
    """RCPT TO: accept() takes the recipient, refuse() gives the session's reason."""
    address: str


@dataclass(frozen=True)
class DataStart(Decision):
    """DATA: accept() sends 354 and the content follows."""


@dataclass(frozen=True)
class Bdat:
    """BDAT: `size` bytes of content follow at once (RFC 3030), then a ContentEnd."""
    size: int
    last: bool


@dataclass(frozen=True)
class Content:
    """Message bytes as they arrived (unstuffed after DATA), CRLF line endings."""
    data: bytes


@dataclass(frozen=True)
class ContentTooLarge:
    """The message passed `limit` bytes: the rest is read and dropped, and the protocol
    answers 552 5.3.4 itself at the end (no ContentEnd follows)."""
    limit: int


@dataclass(frozen=True)
class ContentEnd(Decision):
    """The end of the message (`last`: after DATA or BDAT LAST) or of one BDAT chunk.
    For the last, accept(text) gives the 250 reply its text ("Ok: queued as ID")."""
    last: bool
    size: int     # the message's bytes so far


@dataclass(frozen=True)
class StartTLS:
    """220 has been queued: flush it, do the TLS handshake, then call tls_started()."""


@dataclass(frozen=True)
class Credentials(Decision):
    """AUTH PLAIN or LOGIN decoded: accept() logs `user` in (235), refuse() does not."""
    mechanism: str
    user: str
    password: str


@dataclass(frozen=True)
class Reset:
    """A transaction was dropped without a message (RSET or EHLO in the middle of it)."""


@dataclass(frozen=True)
class Quit:
    """QUIT, answered with 221: flush and close."""


@dataclass(frozen=True)
class ServiceClosing:
    """The protocol gave up (421 queued): flush and close. `reason` is for the log."""
    reason: str


@dataclass(frozen=True)
class ConnectionClosed:
    """The client closed the connection; `mid_message` when it did so inside a message."""
    mid_message: bool


# --- the state machine ----------------------------------------------------------------------

class State(Enum):
    NEED_HELO = "before HELO/EHLO"
    SESSION = "outside a transaction"
    TRANSACTION = "in a transaction"
    CHUNKING = "between BDAT chunks"
    DATA = "in DATA content"
    BDAT = "in a BDAT chunk"
    AUTH = "in an AUTH exchange"
    CLOSED = "after the session ended"


_SEQUENCE_ERROR = {
    State.NEED_HELO: "Send HELO/EHLO first",
    State.SESSION: "Send MAIL first",
    State.TRANSACTION: "Transaction in progress (RSET first)",
    State.CHUNKING: "BDAT in progress (RSET first)",
}
_PATH = re.compile(r"(?P<keyword>FROM|TO):[ ]*<(?P<path>[^<>]*)>(?:[ ]+(?P<params>.*))?", re.IGNORECASE)
_PARAM = re.compile(r"(?P<key>[A-Za-z0-9][A-Za-z0-9-]*)(?:=(?P<value>[^= \x00-\x1f\x7f]+))?")
_BDAT = re.compile(r"(?P<size>[0-9]{1,20})(?:[ ]+(?P<last>LAST))?", re.IGNORECASE)
_UNIMPLEMENTED = frozenset({"EXPN", "TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML"})
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")
_LOGIN_PROMPTS = ("VXNlcm5hbWU6", "UGFzc3dvcmQ6")   # "Username:", "Password:" (the LOGIN draft)


class SMTPServerProtocol(BufferedProtocol):
    """One SMTP server session. `starttls`: offer STARTTLS (a certificate is configured);
    `auth`: offer AUTH PLAIN/LOGIN (a users file is configured), only over TLS unless
    `allow_insecure_auth`; `tls`: the connection is already encrypted."""

    def __init__(self, hostname: str, max_size: int, max_recipients: int, starttls: bool = False,
                 auth: bool = False, allow_insecure_auth: bool = False, tls: bool = False):
        super().__init__()
        self.hostname = hostname
        self.max_size = max_size
        self.max_recipients = max_recipients
        self.starttls_offered = starttls
        self.auth_offered = auth
        self.allow_insecure_auth = allow_insecure_auth
        self.tls = tls
        self.state = State.NEED_HELO
        self.helo: str | None = None
        self.extended = False
        self.authenticated_user: str | None = None
        self.errors = 0
        self._awaiting: Decision | StartTLS | None = None
        self._recipients = 0
        self._smtputf8 = False
        self._message_size = 0
        self._too_large = False
        self._unstuffer: DotUnstuffer | None = None
        self._chunk_left = 0          # bytes of the BDAT chunk being read
        self._chunk_last = False
        self._discard_left = 0        # bytes of a refused BDAT chunk still to drop
        self._skipping_line = False   # inside a command line over MAX_COMMAND_LINE
        self._sasl: list = []         # AUTH exchange: [mechanism, answers so far]

    # the session's calls --------------------------------------------------------------

    def greet(self) -> None:
        self._reply(220, None, f"{self.hostname} ESMTP mimekit")

    def close_service(self, reason: str, enhanced: str = "4.3.2") -> None:
        """421 (RFC 5321 §3.8): the server is closing the connection. RFC 3463: 4.3.2 (system
        not accepting messages) for a shutdown, 4.4.2 (bad connection) for a timeout."""
        self._reply(421, enhanced, f"{self.hostname} {reason}; closing connection")
        self.state = State.CLOSED

    def tls_started(self) -> None:
        """The TLS handshake after STARTTLS is done: the client starts over with EHLO
        (RFC 3207 §4.2), and nothing it said in plain text counts any more."""
        if not isinstance(self._awaiting, StartTLS):
            raise SMTPStateError("a TLS handshake was not expected")
        self._awaiting = None
        self.tls = True
        self.state = State.NEED_HELO
        self.helo, self.extended, self.authenticated_user = None, False, None

    def accept(self, text: str | None = None) -> None:
        """Say yes to the pending decision; `text` replaces the usual reply text."""
        decision = self._take_decision()
        if isinstance(decision, Rcpt):
            self._recipients += 1
            self._reply(250, "2.1.5", text or "Ok")
        elif isinstance(decision, DataStart):
            self._reply(354, None, text or "End data with <CR><LF>.<CR><LF>")
            self.state = State.DATA
            self._unstuffer = DotUnstuffer()
        elif isinstance(decision, ContentEnd):
            if decision.last:
                self._reply(250, "2.0.0", text or "Ok")
                self._end_transaction()
            else:
                self._reply(250, "2.0.0", text or f"{decision.size} octets received")
                self.state = State.CHUNKING
        elif isinstance(decision, Credentials):
            self.authenticated_user = decision.user
            self._reply(235, "2.7.0", text or "Authentication successful")

    def refuse(self, code: int, enhanced: str, text: str) -> None:
        """Say no to the pending decision with a 4xx or 5xx reply. A refused chunk ends the
        transaction (RFC 3030 §4.2), a refused login counts as a client error."""
        if not (400 <= code < 600 and enhanced[:2] == f"{code // 100}."):
            raise SMTPStateError(f"not a refusal: {code} {enhanced}")
        decision = self._take_decision()
        self._reply(code, enhanced, text)
        if isinstance(decision, ContentEnd):
            self._end_transaction()
        elif isinstance(decision, Credentials):
            self._count_error()

    def _take_decision(self) -> Decision:
        decision = self._awaiting
        if not isinstance(decision, Decision):
            raise SMTPStateError("no decision is pending")
        self._awaiting = None
        return decision

    def _decide(self, event: Decision) -> None:
        self._events.append(event)
        self._awaiting = event

    # replies --------------------------------------------------------------------------

    def _reply(self, code: int, enhanced: str | None, *lines: str) -> None:
        if any(_CONTROLS.search(line) for line in lines):
            raise SMTPStateError(f"a reply line with a control character: {lines!r}")
        self._outbox += Reply(code, lines, enhanced).to_bytes()

    def _error(self, code: int, enhanced: str, text: str) -> None:
        self._reply(code, enhanced, text)
        self._count_error()

    def _count_error(self) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS and self.state is not State.CLOSED:
            self._reply(421, "4.7.0", f"{self.hostname} Too many errors; closing connection")
            self.state = State.CLOSED
            self._events.append(ServiceClosing("too many errors"))

    # reading --------------------------------------------------------------------------

    def _step(self) -> bool:
        if self._awaiting is not None:
            raise SMTPStateError(f"{type(self._awaiting).__name__} must be answered first")
        if self.state is State.CLOSED:
            self._buffer.clear()     # after QUIT or 421 nothing the client sends is read
            return False
        if len(self._outbox) > MAX_QUEUED_REPLIES and not self._eof:
            # a read of pipelined HELPs would otherwise queue twenty times its size in replies:
            # NEED_DATA with replies queued means "write them, then ask again" (at the end of
            # the stream the buffer already holds all the client will send, so go on)
            return False
        if self._discard_left:
            dropped = min(self._discard_left, len(self._buffer))
            del self._buffer[:dropped]
            self._discard_left -= dropped
            return dropped > 0
        if self.state is State.DATA:
            return self._data_step()
        if self.state is State.BDAT:
            return self._chunk_step()
        if self._skipping_line:
            end = self._buffer.find(b"\n")
            if end < 0:
                self._buffer.clear()
                return False
            del self._buffer[:end + 1]
            self._skipping_line = False
        end = self._buffer.find(b"\n", 0, MAX_COMMAND_LINE)
        if end < 0:
            if len(self._buffer) < MAX_COMMAND_LINE:
                return False
            # answered at once; the line is dropped (above) as it comes, never kept
            self._skipping_line = True
            if self.state is State.AUTH:   # the 500 ends the exchange: the client's next line is a command
                self.state = State.SESSION
            self._error(500, "5.5.2", "Line too long")
            return True
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        line = line[:-1] if line.endswith(b"\r") else line
        if self.state is State.AUTH:
            self._sasl_line(line)
        else:
            self._command(line)
        return True

    def _end_of_stream(self):
        return ConnectionClosed(self.state in (State.DATA, State.BDAT, State.CHUNKING))

    # commands -------------------------------------------------------------------------

    def _command(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._error(500, "5.5.2", "Command is not valid UTF-8")
        verb, _, argument = line.partition(" ")
        handler = getattr(self, f"_cmd_{verb.upper()}", None) if verb.isascii() and verb.isalpha() else None
        if handler is None:
            if verb.upper() in _UNIMPLEMENTED:
                return self._error(502, "5.5.1", "Command not implemented")
            return self._error(500, "5.5.2", "Command unrecognized")
        if _CONTROLS.search(argument):
            return self._error(501, "5.5.2", "Control characters in the command")
        handler(argument.strip(" "))

    def _cmd_EHLO(self, argument: str) -> None:
        self._hello(argument, extended=True)

    def _cmd_HELO(self, argument: str) -> None:
        self._hello(argument, extended=False)

    def _hello(self, name: str, extended: bool) -> None:
        try:
            check_argument(name, "EHLO name")
        except DataError:
            name = ""
        if not name:
            return self._error(501, "5.5.4", f"Syntax: {'EHLO' if extended else 'HELO'} hostname")
        self._drop_transaction()
        self.helo, self.extended, self.state = name, extended, State.SESSION
        if extended:
            keywords = ["PIPELINING", f"SIZE {self.max_size}", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                        "CHUNKING"]
            if self.starttls_offered and not self.tls:
                keywords.append("STARTTLS")
            if self._auth_allowed:
                keywords.append("AUTH " + " ".join(AUTH_MECHANISMS))
            self._reply(250, None, f"{self.hostname} Hello {name}", *keywords)
        else:
            self._reply(250, None, f"{self.hostname} Hello {name}")
        self._events.append(Ehlo(name, extended))

    @property
    def _auth_allowed(self) -> bool:
        return self.auth_offered and (self.tls or self.allow_insecure_auth) and self.authenticated_user is None

    def _sequence(self, *allowed: State) -> bool:
        """Is the command allowed now? If not, 503 with the reason (RFC 5321 §4.1.4)."""
        if self.state in allowed:
            return True
        self._error(503, "5.5.1", _SEQUENCE_ERROR[self.state])
        return False

    def _cmd_MAIL(self, argument: str) -> None:
        if not self._sequence(State.SESSION):
            return
        parsed = self._path(argument, "FROM")
        if parsed is None:
            return
        sender, params = parsed
        unknown = sorted(set(params) - {"SIZE", "BODY", "SMTPUTF8", "AUTH"})
        if unknown:
            return self._error(555, "5.5.4", f"Unsupported parameter {unknown[0]}")
        if any((params[key] is None) != (key == "SMTPUTF8") for key in params):
            return self._error(501, "5.5.4", "SMTPUTF8 takes no value; SIZE, BODY and AUTH take one")
        size = parse_decimal(params.get("SIZE", "0"))
        if size is None:
            return self._error(501, "5.5.4", "SIZE takes a number")
        if size > self.max_size:
            return self._reply(552, "5.3.4", f"Message size exceeds fixed maximum of {self.max_size} bytes")
        if params.get("BODY", "7BIT").upper() not in ("7BIT", "8BITMIME"):
            return self._error(555, "5.5.4", "BODY takes 7BIT or 8BITMIME")
        self._smtputf8 = "SMTPUTF8" in params
        if sender and not self._address_ok(sender, "5.1.7", "sender"):
            return
        self.state, self._recipients = State.TRANSACTION, 0
        self._reply(250, "2.1.0", "Ok")
        self._events.append(Mail(sender, params))

    def _cmd_RCPT(self, argument: str) -> None:
        if not self._sequence(State.TRANSACTION):
            return
        parsed = self._path(argument, "TO")
        if parsed is None:
            return
        address, params = parsed
        if params:
            return self._error(555, "5.5.4", f"Unsupported parameter {sorted(params)[0]}")
        if address.lower() != "postmaster":   # the one address without a domain (RFC 5321 §4.1.1.3)
            if not address:
                return self._error(501, "5.1.3", "Bad recipient address syntax")
            if not self._address_ok(address, "5.1.3", "recipient"):
                return
        if self._recipients >= self.max_recipients:
            return self._reply(452, "4.5.3", "Too many recipients")
        self._decide(Rcpt(address))

    def _path(self, argument: str, keyword: str) -> tuple[str, dict] | None:
        """The address and ESMTP parameters of MAIL FROM:<...> or RCPT TO:<...>; None when
        refused (answered here). A source route (<@a,@b:user@c>) is dropped (§4.1.1.3)."""
        match = _PATH.fullmatch(argument)
        if match is None or match["keyword"].upper() != keyword:
            return self._error(501, "5.5.4", f"Syntax: {'MAIL FROM' if keyword == 'FROM' else 'RCPT TO'}:<address>")
        address = match["path"]
        if address.startswith("@"):
            address = address.partition(":")[2]
        params: dict = {}
        for word in (match["params"] or "").split():
            param = _PARAM.fullmatch(word)
            if param is None or param["key"].upper() in params:
                return self._error(501, "5.5.4", "Malformed parameter")
            params[param["key"].upper()] = param["value"]
        if params and not self.extended:
            return self._error(555, "5.5.4", "Parameters need EHLO")
        return address, params

    def _address_ok(self, address: str, enhanced: str, what: str) -> bool:
        if not address.isascii() and not self._smtputf8:
            self._reply(553, "5.6.7", f"Non-ASCII {what} address needs SMTPUTF8")
            return False
        if smtp_mailbox_problem(address):
            self._error(553, enhanced, f"Bad {what} address syntax")
            return False
        return True

    def _cmd_DATA(self, argument: str) -> None:
        if argument:
            return self._error(501, "5.5.4", "Syntax: DATA")
        if not self._sequence(State.TRANSACTION):
            return
        if not self._recipients:
            return self._error(554, "5.5.1", "No valid recipients")
        self._decide(DataStart())

    def _cmd_BDAT(self, argument: str) -> None:
        match = _BDAT.fullmatch(argument)
        if match is None:
            return self._error(501, "5.5.4", "Syntax: BDAT size [LAST]")
        size, last = int(match["size"]), match["last"] is not None
        in_transaction = self.state in (State.TRANSACTION, State.CHUNKING)
        if not (in_transaction and self._recipients):
            self._discard_left = size     # the chunk follows at once whatever the reply (§4.2)
            if in_transaction:
                self._error(554, "5.5.1", "No valid recipients")
            else:
                # not counted as an error: these are mostly the chunks a client pipelined behind
                # one that was refused (which ended the transaction), and a clean 552 must not
                # become a 421 after ten of them
                self._reply(503, "5.5.1", _SEQUENCE_ERROR[self.state])
            return
        self.state, self._chunk_left, self._chunk_last = State.BDAT, size, last
        self._events.append(Bdat(size, last))
        if size == 0:
            self._end_content(last)

    def _cmd_RSET(self, argument: str) -> None:
        if argument:
            return self._error(501, "5.5.4", "Syntax: RSET")
        self._drop_transaction()
        self._reply(250, "2.0.0", "Ok")

    def _cmd_NOOP(self, argument: str) -> None:
        self._reply(250, "2.0.0", "Ok")

    def _cmd_QUIT(self, argument: str) -> None:
        self._reply(221, "2.0.0", f"{self.hostname} Bye")
        self.state = State.CLOSED
        self._events.append(Quit())

    def _cmd_VRFY(self, argument: str) -> None:
        if not argument:
            return self._error(501, "5.5.4", "Syntax: VRFY address")
        self._reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")

    def _cmd_HELP(self, argument: str) -> None:
        self._reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
                    "See RFC 5321")

    def _cmd_STARTTLS(self, argument: str) -> None:
        if argument:
            return self._error(501, "5.5.4", "Syntax: STARTTLS")
        if not self.starttls_offered:
            return self._error(502, "5.5.1", "STARTTLS not available")
        if self.tls:
            return self._error(503, "5.5.1", "TLS already active")
        if not self._sequence(State.SESSION):
            return
        if self._buffer:
            # CVE-2011-0411: what came with STARTTLS would be read as if sent over TLS
            self._buffer.clear()
            self._reply(421, "4.7.0", f"{self.hostname} Commands sent after STARTTLS; closing connection")
            self.state = State.CLOSED
            self._events.append(ServiceClosing("commands pipelined after STARTTLS"))
            return
        self._reply(220, "2.0.0", "Ready to start TLS")
        self._awaiting = StartTLS()
        self._events.append(self._awaiting)

    def _cmd_AUTH(self, argument: str) -> None:
        if not self.auth_offered:
            return self._error(502, "5.5.1", "AUTH not available")
        if self.authenticated_user is not None:
            return self._error(503, "5.5.1", "Already authenticated")
        if not self._sequence(State.SESSION):
            return
        if not (self.tls or self.allow_insecure_auth):
            return self._error(538, "5.7.11", "Encryption required for requested authentication mechanism")
        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if mechanism not in AUTH_MECHANISMS:
            return self._error(504, "5.5.4", f"Unrecognized authentication type; use {' or '.join(AUTH_MECHANISMS)}")
        self.state, self._sasl = State.AUTH, [mechanism]
        if initial:
            self._sasl_line(b"" if initial == "=" else initial.encode("ascii", "replace"))
        else:
            self._reply(334, None, "" if mechanism == "PLAIN" else _LOGIN_PROMPTS[0])

    def _sasl_line(self, line: bytes) -> None:
        """One client response in an AUTH exchange (RFC 4954 §4)."""
        self.state = State.SESSION
        if line == b"*":
            return self._error(501, "5.7.0", "Authentication cancelled")
        try:
            answer = base64.b64decode(line, validate=True)
        except binascii.Error:
            return self._error(501, "5.5.2", "Invalid base64 data")
        mechanism = self._sasl[0]
        self._sasl.append(answer)
        if mechanism == "LOGIN" and len(self._sasl) == 2:
            self.state = State.AUTH
            return self._reply(334, None, _LOGIN_PROMPTS[1])
        try:
            if mechanism == "PLAIN":
                user, password = parse_plain_response(answer)
            else:
                user, password = (part.decode("utf-8") for part in self._sasl[1:])
        except OtherUserRequested:
            return self._error(535, "5.7.8", "Authentication credentials invalid")
        except UnicodeDecodeError:
            return self._error(501, "5.5.2", "Credentials are not valid UTF-8")
        except ValueError:
            return self._error(501, "5.5.2", "Malformed PLAIN response")
        self._decide(Credentials(mechanism, user, password))

    # content --------------------------------------------------------------------------

    def _data_step(self) -> bool:
        if not self._buffer:
            return False
        self._content(self._unstuff_buffered(self._unstuffer))
        if self._unstuffer.done:
            self._unstuffer = None
            self._end_content(last=True)
        return True

    def _chunk_step(self) -> bool:
        if not self._buffer:
            return False
        taken = min(self._chunk_left, len(self._buffer))
        data = bytes(self._buffer[:taken])
        del self._buffer[:taken]
        self._chunk_left -= taken
        self._content(data)
        if not self._chunk_left:
            self._end_content(self._chunk_last)
        return True

    def _content(self, data: bytes) -> None:
        if not data or self._too_large:
            return
        self._message_size += len(data)
        if self._message_size > self.max_size:
            self._too_large = True
            self._events.append(ContentTooLarge(self.max_size))
        else:
            self._events.append(Content(data))

    def _end_content(self, last: bool) -> None:
        if self._too_large:
            self._end_transaction()
            self._reply(552, "5.3.4", f"Message size exceeds fixed maximum of {self.max_size} bytes")
        else:
            self.state = State.CHUNKING    # until the decision says where the session goes
            self._decide(ContentEnd(last, self._message_size))

    def _end_transaction(self) -> None:
        self.state = State.SESSION
        self._recipients, self._smtputf8, self._message_size, self._too_large = 0, False, 0, False

    def _drop_transaction(self) -> None:
        """RSET, EHLO: forget the transaction, if any (RFC 5321 §4.1.1.5)."""
        if self.state in (State.TRANSACTION, State.CHUNKING):
            self._events.append(Reset())
        if self.state is not State.NEED_HELO:
            self._end_transaction()
