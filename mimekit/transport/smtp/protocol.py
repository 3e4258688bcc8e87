"""The SMTP client as a pure state machine: bytes in, events out; calls in, bytes out.

No sockets here (h11's shape, on the base the IMAP and POP3 protocols share: sansio.py):
`receive_data()` takes whatever arrived, `next_event()` hands back typed events, each
`send_*()` queues a command and `data_to_send()` hands over what to write. The driver
(smtp/client.py) owns the socket, TLS and timeouts. Rules that keep users safe live here,
where byte-level tests can reach them: no credentials without TLS unless explicitly
allowed, nothing pipelined unless the server offers PIPELINING, no message larger than the
server's SIZE, no 8-bit data without 8BITMIME, no UTF-8 address without SMTPUTF8, no CR/LF
smuggled into a command, no bytes accepted between a STARTTLS "220" and the TLS handshake
(CVE-2011-0411).

The session is one `State`, moved only through the `TRANSITIONS` table by the commands the
client sends and the few replies that decide what comes next (a 354, a 220 to STARTTLS).
State follows what the client has sent, so commands can be pipelined; a refused MAIL, RCPT
or DATA leaves the transaction open and the driver sends RSET (RFC 5321 §4.1.1.5) before
the next MAIL.

Standards: RFC 5321 (SMTP), 1869 (EHLO), 2920 (PIPELINING), 1870 (SIZE), 6152 (8BITMIME),
6531 (SMTPUTF8), 3207 (STARTTLS), 4954 (AUTH) with 4616 (PLAIN), the LOGIN draft and the
OAuth2 mechanisms of transport/sasl.py,
2034 and 3463 (enhanced status codes), 3030 (CHUNKING: BDAT).
"""

import base64
import re
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

from mimekit.errors import AuthError, DataError, ProtocolError, UnavailableError
from mimekit.limits import parse_decimal
from mimekit.transport.sansio import BufferedProtocol

MAX_REPLY_LINE = 64 * 1024   # RFC 5321 §4.5.3.1.5 says 512; be lenient, but never buffer without bound
MAX_REPLY_LINES = 1000       # lines of one reply: Postfix's EHLO reply, the longest, has about 15
MAX_CACHED_REPLY = 512     # longer one-line replies are parsed, not cached: the cache stays small
MAX_COMMAND_LINE = 512       # octets of a command line, CRLF included (RFC 5321 §4.5.3.1.4)


class SMTPStateError(RuntimeError):
    """The driver called the state machine out of order: a bug in mimekit, not the server."""


# --- replies -------------------------------------------------------------------------------

_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?: |$)")


@dataclass(frozen=True)
class Reply:
    code: int
    lines: tuple[str, ...]          # the text of each line, enhanced status code removed
    enhanced: str | None = None     # "2.1.5" when the server sends RFC 3463 codes

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def positive(self) -> bool:
        return self.code < 400

    @property
    def transient(self) -> bool:
        return 400 <= self.code < 500

    def __str__(self) -> str:
        return f"{self.code}{' ' + self.enhanced if self.enhanced else ''} {' '.join(self.lines)}".strip()

    def to_bytes(self) -> bytes:
        """The reply as a server sends it (the server role, smtp/server.py): "ddd-" on every
        line but the last, the enhanced code on each (RFC 2034 §3); ReplyReader reads it back."""
        prefix = f"{self.enhanced} " if self.enhanced else ""
        last = len(self.lines) - 1
        return b"".join(f"{self.code}{' ' if index == last else '-'}{prefix}{line}\r\n".encode("utf-8")
                        for index, line in enumerate(self.lines))


def _parse_reply(raw_lines: list[bytes]) -> Reply:
    """The lines of one reply (each matched _REPLY_LINE: three digits, then " ", "-" or
    nothing) as a Reply. The first four bytes are ASCII, so the text is cut before it is
    decoded; a one-line reply, nearly every reply in a session, skips the code check."""
    code = int(raw_lines[0][:3])
    if len(raw_lines) > 1 and any(int(raw[:3]) != code for raw in raw_lines):
        raise ProtocolError(f"a multiline reply changed its code: {raw_lines!r}")
    texts = [raw[4:].decode("utf-8", "replace") for raw in raw_lines]
    enhanced = None
    match = _ENHANCED.match(texts[0])
    if match and match.group(1) == str(code)[0]:
        enhanced = ".".join(match.groups())
        texts[0] = texts[0][match.end():]   # the first line's match, not a second one
        if len(texts) > 1:
            texts[1:] = [text[found.end():] if (found := _ENHANCED.match(text)) else text for text in texts[1:]]
    return Reply(code, tuple(texts), enhanced)


_REPLY_LINE = re.compile(rb"[2-5][0-9][0-9](?:[ -]|$)")


@lru_cache(maxsize=64)
def _one_line_reply(raw: bytes) -> Reply:
    """The reply of one line `raw` (its CR still on), read as next_reply reads it. Cached
    (a Reply is immutable): a session's replies to MAIL, RCPT and RSET are the same few
    lines, and the parse cost about 5 us of a reply's 10; a refusal is never cached."""
    line = raw.rstrip(b"\r")
    if not _REPLY_LINE.match(line):
        raise ProtocolError(f"not an SMTP reply line: {line[:100]!r}")
    return _parse_reply([line])


class ReplyReader:
    """Splits received bytes into complete replies (RFC 5321 §4.2: "ddd-" continues,
    "ddd " or a bare "ddd" ends). Lines ending in LF alone are accepted too."""

    def __init__(self, max_line: int = MAX_REPLY_LINE, max_lines: int = MAX_REPLY_LINES,
                 buffer: bytearray | None = None):
        """`buffer` is where received bytes are gathered: SMTPProtocol's receive buffer."""
        self.max_line = max_line
        self.max_lines = max_lines
        self._buffer = bytearray() if buffer is None else buffer
        self._received_lines: deque[bytes] = deque()   # complete lines not read yet, LF removed
        self._lines: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._buffer += data

    @property
    def has_unread_bytes(self) -> bool:
        return bool(self._buffer or self._received_lines or self._lines)

    def next_reply(self) -> Reply | None:
        while True:
            if not self._received_lines and not self._split_complete_lines():
                return None
            raw = self._received_lines.popleft()
            if not self._lines and raw[3:4] != b"-" and len(raw) <= MAX_CACHED_REPLY:
                return _one_line_reply(raw)
            line = raw.rstrip(b"\r")
            if not _REPLY_LINE.match(line):
                raise ProtocolError(f"not an SMTP reply line: {line[:100]!r}")
            self._lines.append(line)
            if len(self._lines) > self.max_lines:
                raise ProtocolError(f"server reply longer than {self.max_lines} lines")
            if line[3:4] != b"-":
                lines, self._lines = self._lines, []
                return _parse_reply(lines)

    def _split_complete_lines(self) -> bool:
        """Move every complete line out of the buffer with one split, the incomplete rest
        staying: with pipelining a read brings the replies of many commands, and a find
        and a delete per line cost more than the split. False when no line is complete."""
        end = self._buffer.rfind(b"\n")
        if end < 0:
            if len(self._buffer) > self.max_line:
                raise ProtocolError(f"server reply line longer than {self.max_line} bytes")
            return False
        self._received_lines.extend(bytes(self._buffer[:end]).split(b"\n"))
        del self._buffer[:end + 1]
        return True


# --- capabilities --------------------------------------------------------------------------

@dataclass(frozen=True)
class Capabilities:
    """What an EHLO reply offers (RFC 1869 §4.3: keyword, then parameters)."""

    keywords: frozenset[str] = frozenset()
    size_limit: int | None = None   # None: no SIZE keyword; 0: SIZE with no fixed limit
    auth: frozenset[str] = frozenset()

    @classmethod
    def from_ehlo(cls, reply: Reply) -> "Capabilities":
        keywords, size_limit, auth = set(), None, set()
        for line in reply.lines[1:]:
            words = line.split()
            if not words:
                continue
            keyword = words[0].upper()
            if keyword.startswith("AUTH="):   # the pre-standard form some servers still send
                keyword, words = "AUTH", ["AUTH", keyword[5:], *words[1:]]
            keywords.add(keyword)
            if keyword == "SIZE":
                # SIZE's parameter is 1*20DIGIT (RFC 1870 §4); anything else announces no limit
                size_limit = (parse_decimal(words[1]) if len(words) > 1 else None) or 0
            elif keyword == "AUTH":
                auth.update(w.upper() for w in words[1:])
        return cls(frozenset(keywords), size_limit, frozenset(auth))

    def __contains__(self, keyword: str) -> bool:
        return keyword in self.keywords


# --- events --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    reply: Reply


class Greeting(Event):
    pass


@dataclass(frozen=True)
class EhloReply(Event):
    capabilities: Capabilities | None = None   # set when the reply is positive


class StartTLSReply(Event):
    """On 220 the driver does the TLS handshake, then must send EHLO again."""


class AuthChallenge(Event):
    """A 334: answer with `answer_challenge()`."""


class AuthReply(Event):
    """The end of an AUTH exchange: 235, or a refusal."""


class MailReply(Event):
    pass


@dataclass(frozen=True)
class RcptReply(Event):
    address: str = ""


class BdatReply(Event):
    """The reply to a BDAT chunk that is not the last one."""


class DataReply(Event):
    """354: send the message with smtp_data.data_stream(), then call `end_data()`."""


@dataclass(frozen=True)
class MessageReply(Event):
    """The reply after the final "." ; the server's queue id when it names one."""

    queue_id: str | None = None


class RsetReply(Event):
    pass


class QuitReply(Event):
    pass


class ServiceClosing(Event):
    """421 in reply to anything, or unsolicited: the server is closing the connection."""


@dataclass(frozen=True)
class ConnectionClosed:
    """The server closed the connection; `pending` commands never got their reply."""

    pending: tuple[str, ...] = ()



# Queue ids as Postfix ("queued as 4Xyz"), Exim ("id=1abc-2def-3g"), Sendmail and others
# ("250 2.0.0 x1ABCd123 Message accepted") report them.
_QUEUE_ID = re.compile(r"queued as ([\w.@-]+)|\bid=([\w.@-]+)|^([\w.-]{6,}) (?:Message accepted|accepted)",
                       re.IGNORECASE)


def queue_id_from(reply: Reply) -> str | None:
    for line in reply.lines:
        match = _QUEUE_ID.search(line)
        if match:
            return match[match.lastindex]   # the one alternative that matched
    return None


# --- the state machine ----------------------------------------------------------------------

class State(Enum):
    """Where the session is, following what the client has sent (commands may be pipelined
    ahead of their replies). Each value finishes the sentence "COMMAND is not allowed ..."."""

    GREETING = "before the server's greeting"
    NEED_EHLO = "before EHLO (after the greeting, or after the TLS handshake)"
    SESSION = "outside a transaction"
    STARTTLS = "while STARTTLS waits for its reply"
    AUTH = "during an AUTH exchange"
    TRANSACTION = "in a transaction (RSET first)"
    CHUNKING = "after BDAT in the same transaction (RFC 3030 §2)"
    DATA_REQUESTED = "while DATA waits for its reply"
    DATA = "while the message content is being sent"
    QUIT = "after QUIT"
    CLOSED = "on a closed connection"

    # Members are singletons compared by identity: the identity hash is right, and runs in
    # C where Enum's own __hash__ is a Python call, paid twice a TRANSITIONS look-up.
    __hash__ = object.__hash__


class Step(Enum):
    """What moves the session: a command sent, or a reply that decides what comes next."""

    EHLO = "EHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    BDAT = "BDAT"
    BDAT_LAST = "BDAT LAST"
    END_OF_DATA = "the end of data"
    RSET = "RSET"
    QUIT = "QUIT"
    GREETED = "a 220 greeting"
    EHLO_REFUSED = "a refused EHLO"
    TLS_READY = "a 220 to STARTTLS"
    STARTTLS_REFUSED = "a refused STARTTLS"
    AUTH_DONE = "the end of AUTH"
    GO_AHEAD = "a 354 to DATA"
    DATA_REFUSED = "a refused DATA"
    CLOSED = "the end of the session"

    __hash__ = object.__hash__   # as State's


_S = State
# (state, step) -> next state; anything else is a bug in the caller (SMTPStateError).
# A refused MAIL, RCPT or DATA leaves the transaction open: RSET comes next (RFC 5321 §4.1.1.5).
TRANSITIONS: dict[tuple[State, Step], State] = {
    (_S.GREETING, Step.GREETED): _S.NEED_EHLO,
    (_S.NEED_EHLO, Step.EHLO): _S.SESSION,
    (_S.SESSION, Step.EHLO_REFUSED): _S.NEED_EHLO,
    (_S.SESSION, Step.STARTTLS): _S.STARTTLS,
    (_S.STARTTLS, Step.TLS_READY): _S.NEED_EHLO,         # RFC 3207 §4.2: EHLO again
    (_S.STARTTLS, Step.STARTTLS_REFUSED): _S.SESSION,
    (_S.SESSION, Step.AUTH): _S.AUTH,
    (_S.AUTH, Step.AUTH_DONE): _S.SESSION,
    (_S.SESSION, Step.MAIL): _S.TRANSACTION,
    (_S.SESSION, Step.RSET): _S.SESSION,
    (_S.TRANSACTION, Step.RCPT): _S.TRANSACTION,
    (_S.TRANSACTION, Step.DATA): _S.DATA_REQUESTED,
    (_S.DATA_REQUESTED, Step.GO_AHEAD): _S.DATA,
    (_S.DATA_REQUESTED, Step.DATA_REFUSED): _S.TRANSACTION,
    (_S.DATA, Step.END_OF_DATA): _S.SESSION,
    (_S.TRANSACTION, Step.BDAT): _S.CHUNKING,
    (_S.CHUNKING, Step.BDAT): _S.CHUNKING,
    (_S.TRANSACTION, Step.BDAT_LAST): _S.SESSION,
    (_S.CHUNKING, Step.BDAT_LAST): _S.SESSION,
    (_S.TRANSACTION, Step.RSET): _S.SESSION,
    (_S.CHUNKING, Step.RSET): _S.SESSION,             # RFC 3030 §4.2: after a refused chunk
    **{(state, Step.QUIT): _S.QUIT for state in (_S.NEED_EHLO, _S.SESSION, _S.TRANSACTION, _S.CHUNKING)},
    # 421 (RFC 5321 §3.8), the reply to QUIT, or the end of the stream, in any state
    **{(state, Step.CLOSED): _S.CLOSED for state in State},
}


@dataclass
class _Expected:
    command: str                  # for messages and ConnectionClosed.pending
    event: type
    address: str = ""             # RCPT only


# What each command of a message transaction is owed, made once (never changed): RCPT's
# names its address, so it is made once per address (_rcpt_expected).
_EXPECT_MAIL = _Expected("MAIL", MailReply)
_EXPECT_DATA = _Expected("DATA", DataReply)
_EXPECT_BDAT = _Expected("BDAT", BdatReply)
_EXPECT_BDAT_LAST = _Expected("BDAT", MessageReply)
_EXPECT_RSET = _Expected("RSET", RsetReply)
_PLAIN_EVENTS = frozenset({MailReply, BdatReply, RsetReply})   # events that only carry their reply


@lru_cache(maxsize=256)
def _rcpt_expected(address: str) -> _Expected:
    """What RCPT TO:<address> is owed. Cached: the messages of a run go to the same few
    recipients, and making the record was a fifth of send_rcpt (1.9 -> 1.5 us, timeit)."""
    return _Expected("RCPT", RcptReply, address)


@dataclass
class _Auth:
    mechanism: str
    answers: deque = field(default_factory=deque)


class SMTPProtocol(BufferedProtocol):
    """One SMTP client session. `tls` is True when the connection is already encrypted
    (implicit TLS); `allow_insecure_auth` permits AUTH without TLS (an explicit user choice).
    A reply is bounded by `max_reply_line` bytes a line and `max_reply_lines` lines.

    Each `send_*()` queues its command for `data_to_send()`; `send_content()` queues message
    bytes after a 354."""

    def __init__(self, tls: bool = False, allow_insecure_auth: bool = False,
                 max_reply_line: int = MAX_REPLY_LINE, max_reply_lines: int = MAX_REPLY_LINES):
        super().__init__()
        self.state = State.GREETING
        self.tls = tls
        self.allow_insecure_auth = allow_insecure_auth
        self.capabilities = Capabilities()
        self.authenticated = False
        self._reader = ReplyReader(max_reply_line, max_reply_lines, buffer=self._buffer)
        self._expected: deque[_Expected] = deque([_Expected("greeting", Greeting)])
        self._auth: _Auth | None = None
        self._transaction_utf8 = False

    def _next_state(self, step: Step) -> State:
        try:
            return TRANSITIONS[self.state, step]
        except KeyError:
            raise SMTPStateError(f"{step.value} is not allowed {self.state.value}") from None

    def _move(self, step: Step) -> None:
        self.state = self._next_state(step)

    @property
    def can_quit(self) -> bool:
        """Can QUIT go out now (not before the greeting, inside DATA or an exchange, nor
    ahead of a reply the server does not let us pipeline behind)?"""
        may_pipeline = not self._expected or "PIPELINING" in self.capabilities
        return (self.state, Step.QUIT) in TRANSITIONS and may_pipeline

    @property
    def pending(self) -> int:
        """How many replies are still owed to us."""
        return len(self._expected)

    # receiving -------------------------------------------------------------------------

    def _step(self) -> bool:
        reply = self._reader.next_reply()
        if reply is None:
            return False
        self._events.append(self._event_for(reply))
        return True

    def _end_of_stream(self):
        pending = tuple(e.command for e in self._expected)
        self._expected.clear()
        self._move(Step.CLOSED)
        return ConnectionClosed(pending)

    def _event_for(self, reply: Reply):
        """The event a reply completes, and the step it moves the session by."""
        if reply.code == 421:
            self._expected.clear()
            self._move(Step.CLOSED)
            return ServiceClosing(reply)
        if not self._expected:
            raise ProtocolError(f"unsolicited server reply: {reply}")
        expected = self._expected.popleft()
        kind = expected.event
        if kind in _PLAIN_EVENTS:   # most of a session's replies: no state to move
            return kind(reply)
        if kind is RcptReply:
            return RcptReply(reply, expected.address)
        if kind is MessageReply:
            return MessageReply(reply, queue_id_from(reply) if reply.positive else None)
        if kind is Greeting:
            if reply.code == 220:
                self._move(Step.GREETED)
            return Greeting(reply)
        if kind is EhloReply:
            if reply.code != 250:
                self._move(Step.EHLO_REFUSED)
                return EhloReply(reply)
            self.capabilities = Capabilities.from_ehlo(reply)
            return EhloReply(reply, self.capabilities)
        if kind is StartTLSReply:
            return self._starttls_reply(reply)
        if kind is AuthReply:
            if reply.code == 334:
                self._expected.appendleft(expected)   # the exchange goes on
                return AuthChallenge(reply)
            self._auth = None
            self.authenticated = reply.code == 235
            self._move(Step.AUTH_DONE)
            return AuthReply(reply)
        if kind is DataReply:
            self._move(Step.GO_AHEAD if reply.code == 354 else Step.DATA_REFUSED)
        elif kind is QuitReply:
            self._move(Step.CLOSED)
        return kind(reply)   # DataReply, QuitReply

    def _starttls_reply(self, reply: Reply) -> StartTLSReply:
        if reply.code != 220:
            self._move(Step.STARTTLS_REFUSED)
            return StartTLSReply(reply)
        if self._reader.has_unread_bytes:
            raise ProtocolError("the server sent data after its STARTTLS reply, before "
                                "the TLS handshake (a command injection attempt?)")
        self._move(Step.TLS_READY)
        self.capabilities = Capabilities()   # RFC 3207 §4.2: forget what plain text said
        return StartTLSReply(reply)

    # sending ---------------------------------------------------------------------------

    def _command(self, step: Step, line: str, expected: _Expected) -> None:
        """Queue a command line and the reply it is owed; the session moves on at once."""
        next_state = self._next_state(step)
        if self._expected and "PIPELINING" not in self.capabilities.keywords:
            raise SMTPStateError(f"{step.value} before the previous reply, and the server "
                                 f"does not offer PIPELINING")
        self._expected.append(expected)
        self._outbox += line.encode("utf-8") + b"\r\n"
        self.state = next_state

    def send_ehlo(self, name: str) -> None:
        self._next_state(Step.EHLO)
        check_argument(name, "EHLO name")
        self._command(Step.EHLO, f"EHLO {name}", _Expected("EHLO", EhloReply))

    def send_starttls(self) -> None:
        self._next_state(Step.STARTTLS)
        if self.tls:
            raise SMTPStateError("STARTTLS on a connection that is already encrypted")
        if "STARTTLS" not in self.capabilities:
            raise AuthError("the server does not offer STARTTLS; refusing to continue "
                            "without TLS (use smtps:// if it speaks implicit TLS)")
        self._command(Step.STARTTLS, "STARTTLS", _Expected("STARTTLS", StartTLSReply))

    def tls_started(self) -> None:
        """The driver finished the TLS handshake after a 220 to STARTTLS."""
        if self.state is not State.NEED_EHLO:
            raise SMTPStateError(f"a TLS handshake is not expected {self.state.value}")
        self.tls = True

    def start_auth(self, user: str, password: str, mechanism: str | None = None) -> None:
        """Begin AUTH with PLAIN (one round trip) or else LOGIN; never without TLS unless
        the caller allowed it explicitly (`allow_insecure_auth`)."""
        self._check_auth_allowed()
        offered = self.capabilities.auth
        mechanism = mechanism or next((m for m in ("PLAIN", "LOGIN") if m in offered), None)
        if mechanism is None or mechanism not in offered:
            raise AuthError("the server offers no supported authentication mechanism "
                            f"(offers: {' '.join(sorted(offered)) or 'none'}; mimekit speaks PLAIN, LOGIN)")
        user_bytes, password_bytes = user.encode("utf-8"), password.encode("utf-8")
        if mechanism == "PLAIN":
            line = "AUTH PLAIN " + _b64(b"\0" + user_bytes + b"\0" + password_bytes)
            answers = deque()
        elif mechanism == "LOGIN":
            line = "AUTH LOGIN"
            answers = deque([_b64(user_bytes), _b64(password_bytes)])
        else:
            raise AuthError(f"mimekit does not speak AUTH {mechanism}")
        self._command(Step.AUTH, line, _Expected("AUTH", AuthReply))
        self._auth = _Auth(mechanism, answers)

    def start_sasl(self, mechanism: str, response: bytes) -> None:
        """Begin AUTH with a mechanism of one client response (the OAuth2 ones, sasl.py): in
        the command line when it fits in SMTP's 512 octets (RFC 4954 §4), else after the
        server's first 334. The same TLS rule as start_auth."""
        self._check_auth_allowed()
        if mechanism not in self.capabilities.auth:
            raise SMTPStateError(f"AUTH {mechanism}, and the server does not offer it")
        encoded = _b64(response)
        line = f"AUTH {mechanism} {encoded}"
        if len(line) + 2 <= MAX_COMMAND_LINE:
            answers = deque()
        else:
            line, answers = f"AUTH {mechanism}", deque([encoded])
        self._command(Step.AUTH, line, _Expected("AUTH", AuthReply))
        self._auth = _Auth(mechanism, answers)

    def _check_auth_allowed(self) -> None:
        self._next_state(Step.AUTH)
        if not self.tls and not self.allow_insecure_auth:
            raise AuthError("refused to send credentials over an unencrypted connection "
                            "(allow_insecure_auth permits it)")

    @property
    def has_prepared_answer(self) -> bool:
        """Is a 334 now expected, and its answer ready (LOGIN's steps, a response that did
        not fit in the AUTH line)? Any other 334 is a challenge the caller must answer."""
        return self._auth is not None and bool(self._auth.answers)

    def answer_challenge(self, response: bytes | None = None) -> None:
        """The next prepared answer in the exchange; else `response` (base64-encoded here);
        else "*" (cancel, RFC 4954 §4)."""
        if self._auth is None:
            raise SMTPStateError("answer_challenge outside an AUTH exchange")
        if self._auth.answers:
            answer = self._auth.answers.popleft()
        else:
            answer = "*" if response is None else _b64(response)
        self._outbox += answer.encode("ascii") + b"\r\n"

    def send_mail(self, sender: str, size: int | None = None, eight_bit: bool = False,
                  smtputf8: bool = False) -> None:
        """MAIL FROM with SIZE, BODY=8BITMIME and SMTPUTF8 as the message needs and the
        server allows; refuses (before anything is queued) what the server cannot take."""
        self._next_state(Step.MAIL)
        caps = self.capabilities
        check_argument(sender, "sender address")
        smtputf8 = smtputf8 or not sender.isascii()
        if smtputf8 and "SMTPUTF8" not in caps:
            raise DataError("the message needs SMTPUTF8 (UTF-8 addresses or headers) and the "
                            "server does not offer it")
        if eight_bit and "8BITMIME" not in caps:
            raise DataError("the message has 8-bit content and the server does not offer 8BITMIME")
        if size is not None and caps.size_limit and size > caps.size_limit:
            raise UnavailableError(f"the message is {size} bytes and the server accepts at most "
                                   f"{caps.size_limit} (SIZE); not sent")
        line = f"MAIL FROM:<{sender}>"
        if size is not None and caps.size_limit is not None:
            line += f" SIZE={size}"
        if eight_bit:
            line += " BODY=8BITMIME"
        if smtputf8:
            line += " SMTPUTF8"
        self._command(Step.MAIL, line, _EXPECT_MAIL)
        self._transaction_utf8 = smtputf8

    def send_rcpt(self, address: str) -> None:
        self._next_state(Step.RCPT)
        check_argument(address, "recipient address")
        if not address.isascii() and not self._transaction_utf8:
            raise DataError(f"recipient {address!r} needs SMTPUTF8, which MAIL FROM did not ask for")
        self._command(Step.RCPT, f"RCPT TO:<{address}>", _rcpt_expected(address))

    def send_data(self) -> None:
        self._command(Step.DATA, "DATA", _EXPECT_DATA)

    def send_content(self, data: bytes) -> None:
        """Message bytes after a 354, already dot-stuffed (smtp/data.py's data_stream)."""
        if self.state is not State.DATA:
            raise SMTPStateError(f"message content is not allowed {self.state.value}")
        self._outbox += data

    def end_data(self) -> None:
        """The whole data stream, terminator included, has been queued."""
        self._move(Step.END_OF_DATA)
        self._expected.append(_Expected("end of data", MessageReply))

    def send_bdat(self, data: bytes, last: bool = False) -> None:
        """One BDAT chunk (RFC 3030 §2): its exact size, then its bytes as they are (CRLF
        line endings, no dot-stuffing). The reply to the LAST chunk is the message's final
        reply. After a refused chunk the server's state is undefined (§4.2): the driver
        sends RSET before the next transaction."""
        if "CHUNKING" not in self.capabilities.keywords:
            raise SMTPStateError("BDAT, and the server does not offer CHUNKING")
        step = Step.BDAT_LAST if last else Step.BDAT
        self._command(step, f"BDAT {len(data)}{' LAST' if last else ''}", _EXPECT_BDAT_LAST if last else _EXPECT_BDAT)
        self._outbox += data

    def send_rset(self) -> None:
        self._command(Step.RSET, "RSET", _EXPECT_RSET)

    def send_quit(self) -> None:
        self._command(Step.QUIT, "QUIT", _Expected("QUIT", QuitReply))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# A space, the angle brackets, C0 and C1 controls, DEL and the Unicode line separators.
_NOT_IN_COMMAND = re.compile(r"[ <>\x00-\x1f\x7f-\x9f\u2028\u2029]")


def check_argument(value: str, what: str) -> None:
    """Refuse anything that could end or smuggle a command line, or add a parameter to it
    (DataError): the backstop for library callers that build an envelope themselves.
    A space would let `a@b SIZE=1` pass as MAIL FROM's parameters; controls, DEL and
    the Unicode line separators are never part of an address. One regex search: the
    character-by-character test it replaces cost 5 us an address, three times a message."""
    if _NOT_IN_COMMAND.search(value):
        raise DataError(f"{what} {value!r} contains characters not allowed in an SMTP command")
