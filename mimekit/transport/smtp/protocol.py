"""The SMTP client as a pure state machine: bytes in, events out; calls in, bytes out.

No sockets here (see ../shared/notes/style.md on h11): `receive_data()` takes whatever
arrived, `next_event()` hands back typed events, and each `send_*()` returns the bytes to
write. The driver (smtp_client.py) owns the socket, TLS and timeouts. Rules that keep
users safe live here, where byte-level tests can reach them: no credentials without TLS
unless explicitly allowed, nothing pipelined unless the server offers PIPELINING, no
message larger than the server's SIZE, no 8-bit data without 8BITMIME, no UTF-8 address
without SMTPUTF8, no CR/LF smuggled into a command, no bytes accepted between a STARTTLS
"220" and the TLS handshake (CVE-2011-0411).

State follows what the client has sent, so commands can be pipelined; a refused MAIL, RCPT
or DATA leaves the transaction open on our side and the driver sends RSET (RFC 5321
§4.1.1.5) before the next MAIL.

Standards: RFC 5321 (SMTP), 1869 (EHLO), 2920 (PIPELINING), 1870 (SIZE), 6152 (8BITMIME),
6531 (SMTPUTF8), 3207 (STARTTLS), 4954 (AUTH) with 4616 (PLAIN) and the LOGIN draft,
2034 and 3463 (enhanced status codes), 3030 (CHUNKING: BDAT).
"""

import base64
import re
from collections import deque
from dataclasses import dataclass, field

from mimekit.errors import AuthError, DataError, ProtocolError, UnavailableError
from mimekit.limits import parse_decimal
from mimekit.transport.sansio import NEED_DATA

MAX_REPLY_LINE = 64 * 1024   # RFC 5321 §4.5.3.1.5 says 512; be lenient, but never buffer without bound
MAX_REPLY_LINES = 1000       # lines of one reply: Postfix's EHLO reply, the longest, has about 15


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


def _parse_reply(raw_lines: list[bytes]) -> Reply:
    lines = [raw.decode("utf-8", "replace") for raw in raw_lines]
    code = int(lines[0][:3])
    if any(int(line[:3]) != code for line in lines):
        raise ProtocolError(f"a multiline reply changed its code: {raw_lines!r}")
    texts = [line[4:] for line in lines]
    enhanced = None
    match = _ENHANCED.match(texts[0])
    if match and match.group(1) == str(code)[0]:
        enhanced = ".".join(match.groups())
        texts = [_ENHANCED.sub("", t, count=1) if _ENHANCED.match(t) else t for t in texts]
    return Reply(code, tuple(texts), enhanced)


_REPLY_LINE = re.compile(rb"[2-5][0-9][0-9](?:[ -]|$)")


class ReplyReader:
    """Splits received bytes into complete replies (RFC 5321 §4.2: "ddd-" continues,
    "ddd " or a bare "ddd" ends). Lines ending in LF alone are accepted too."""

    def __init__(self, max_line: int = MAX_REPLY_LINE, max_lines: int = MAX_REPLY_LINES):
        self.max_line = max_line
        self.max_lines = max_lines
        self._buffer = bytearray()
        self._lines: list[bytes] = []
        self.eof = False

    def feed(self, data: bytes) -> None:
        if not data:
            self.eof = True
        self._buffer += data

    @property
    def has_unread_bytes(self) -> bool:
        return bool(self._buffer or self._lines)

    def next_reply(self) -> Reply | None:
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self.max_line:
                    raise ProtocolError(f"server reply line longer than {self.max_line} bytes")
                return None
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[:end + 1]
            if not _REPLY_LINE.match(line):
                raise ProtocolError(f"not an SMTP reply line: {line[:100]!r}")
            self._lines.append(line)
            if len(self._lines) > self.max_lines:
                raise ProtocolError(f"server reply longer than {self.max_lines} lines")
            if line[3:4] != b"-":
                lines, self._lines = self._lines, []
                return _parse_reply(lines)


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
            return next(group for group in match.groups() if group)
    return None


# --- the state machine ----------------------------------------------------------------------

GREETING = "greeting"         # waiting for the 220 greeting
NEED_EHLO = "need-ehlo"       # greeted (or TLS just started): EHLO comes next
SESSION = "session"           # EHLO done, no transaction open
TRANSACTION = "transaction"   # MAIL sent, RCPT/DATA/RSET may follow
DATA_REQUESTED = "data-requested"   # DATA sent, waiting for 354
DATA = "data"                 # 354 received: message content is being sent
CLOSED = "closed"


@dataclass
class _Expected:
    command: str                  # for messages and ConnectionClosed.pending
    event: type
    address: str = ""             # RCPT only


@dataclass
class _Auth:
    mechanism: str
    answers: deque = field(default_factory=deque)


class SMTPConnection:
    """One SMTP client session. `tls` is True when the connection is already encrypted
    (implicit TLS); `allow_insecure_auth` permits AUTH without TLS (an explicit user flag).
    A reply is bounded by `max_reply_line` bytes a line and `max_reply_lines` lines."""

    def __init__(self, tls: bool = False, allow_insecure_auth: bool = False,
                 max_reply_line: int = MAX_REPLY_LINE, max_reply_lines: int = MAX_REPLY_LINES):
        self.state = GREETING
        self.tls = tls
        self.allow_insecure_auth = allow_insecure_auth
        self.capabilities = Capabilities()
        self.authenticated = False
        self._reader = ReplyReader(max_reply_line, max_reply_lines)
        self._expected: deque[_Expected] = deque([_Expected("greeting", Greeting)])
        self._auth: _Auth | None = None
        self._transaction_utf8 = False
        self._bdat_started = False
        self._starttls_pending = False

    # receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the server; b"" means it closed the connection."""
        self._reader.feed(data)

    def next_event(self):
        reply = self._reader.next_reply()
        if reply is None:
            if self._reader.eof:
                pending = tuple(e.command for e in self._expected)
                self._expected.clear()
                self.state = CLOSED
                return ConnectionClosed(pending)
            return NEED_DATA
        if reply.code == 421:
            self._expected.clear()
            self.state = CLOSED
            return ServiceClosing(reply)
        if not self._expected:
            raise ProtocolError(f"unsolicited server reply: {reply}")
        expected = self._expected.popleft()
        return getattr(self, f"_on_{expected.event.__name__}")(reply, expected)

    @property
    def pending(self) -> int:
        """How many replies are still owed to us."""
        return len(self._expected)

    def _on_Greeting(self, reply, expected):
        if reply.code == 220:
            self.state = NEED_EHLO
        return Greeting(reply)

    def _on_EhloReply(self, reply, expected):
        if reply.code != 250:
            self.state = NEED_EHLO
            return EhloReply(reply)
        self.capabilities = Capabilities.from_ehlo(reply)
        return EhloReply(reply, self.capabilities)

    def _on_StartTLSReply(self, reply, expected):
        self._starttls_pending = False
        if reply.code == 220:
            if self._reader.has_unread_bytes:
                raise ProtocolError("the server sent data after its STARTTLS reply, before "
                                    "the TLS handshake (a command injection attempt?)")
            self.state = NEED_EHLO
            self.capabilities = Capabilities()   # RFC 3207 §4.2: forget what plain text said
        return StartTLSReply(reply)

    def _on_AuthReply(self, reply, expected):
        if reply.code == 334:
            self._expected.appendleft(expected)   # the exchange goes on
            return AuthChallenge(reply)
        self._auth = None
        self.authenticated = reply.code == 235
        return AuthReply(reply)

    def _on_MailReply(self, reply, expected):
        return MailReply(reply)

    def _on_RcptReply(self, reply, expected):
        return RcptReply(reply, expected.address)

    def _on_DataReply(self, reply, expected):
        self.state = DATA if reply.code == 354 else TRANSACTION   # refused: RSET comes next
        return DataReply(reply)

    def _on_BdatReply(self, reply, expected):
        return BdatReply(reply)

    def _on_MessageReply(self, reply, expected):
        return MessageReply(reply, queue_id_from(reply) if reply.positive else None)

    def _on_RsetReply(self, reply, expected):
        return RsetReply(reply)

    def _on_QuitReply(self, reply, expected):
        self.state = CLOSED
        return QuitReply(reply)

    # sending ---------------------------------------------------------------------------

    def _command(self, line: str, expected: _Expected) -> bytes:
        self._check_can_send(expected.command)
        self._expected.append(expected)
        return line.encode("utf-8") + b"\r\n"

    def _check_can_send(self, command: str) -> None:
        if self.state == CLOSED:
            raise SMTPStateError(f"{command} on a closed connection")
        if self._expected and "PIPELINING" not in self.capabilities:
            raise SMTPStateError(f"{command} before the previous reply, and the server "
                                 f"does not offer PIPELINING")
        if self._starttls_pending or self._auth is not None:
            raise SMTPStateError(f"{command} while STARTTLS or AUTH is in progress")

    def _require(self, *states: str, command: str) -> None:
        if self.state not in states:
            raise SMTPStateError(f"{command} in state {self.state!r}")

    def send_ehlo(self, name: str) -> bytes:
        self._require(NEED_EHLO, command="EHLO")
        check_argument(name, "EHLO name")
        out = self._command(f"EHLO {name}", _Expected("EHLO", EhloReply))
        self.state = SESSION
        return out

    def send_starttls(self) -> bytes:
        self._require(SESSION, command="STARTTLS")
        if self.tls:
            raise SMTPStateError("STARTTLS on a connection that is already encrypted")
        if "STARTTLS" not in self.capabilities:
            raise AuthError("the server does not offer STARTTLS; refusing to continue "
                            "without TLS (use smtps:// if it speaks implicit TLS)")
        out = self._command("STARTTLS", _Expected("STARTTLS", StartTLSReply))
        self._starttls_pending = True
        return out

    def tls_started(self) -> None:
        """The driver finished the TLS handshake after a 220 to STARTTLS."""
        self._require(NEED_EHLO, command="tls_started")
        self.tls = True

    def start_auth(self, user: str, password: str, mechanism: str | None = None) -> bytes:
        """Begin AUTH with PLAIN (one round trip) or else LOGIN; never without TLS unless
        the user allowed it explicitly."""
        self._require(SESSION, command="AUTH")
        if not self.tls and not self.allow_insecure_auth:
            raise AuthError("refused to send credentials over an unencrypted connection "
                            "(--insecure-plaintext-auth allows it)")
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
        out = self._command(line, _Expected("AUTH", AuthReply))
        self._auth = _Auth(mechanism, answers)
        return out

    def answer_challenge(self) -> bytes:
        """The next answer in the exchange; "*" (cancel, RFC 4954 §4) when we have none."""
        if self._auth is None:
            raise SMTPStateError("answer_challenge outside an AUTH exchange")
        return (self._auth.answers.popleft() if self._auth.answers else "*").encode("ascii") + b"\r\n"

    def send_mail(self, sender: str, size: int | None = None, eight_bit: bool = False,
                  smtputf8: bool = False) -> bytes:
        """MAIL FROM with SIZE, BODY=8BITMIME and SMTPUTF8 as the message needs and the
        server allows; refuses (before anything is sent) what the server cannot take."""
        self._require(SESSION, command="MAIL")
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
        out = self._command(line, _Expected("MAIL", MailReply))
        self.state = TRANSACTION
        self._transaction_utf8 = smtputf8
        self._bdat_started = False
        return out

    def send_rcpt(self, address: str) -> bytes:
        self._require(TRANSACTION, command="RCPT")
        self._refuse_after_bdat("RCPT")
        check_argument(address, "recipient address")
        if not address.isascii() and not self._transaction_utf8:
            raise DataError(f"recipient {address!r} needs SMTPUTF8, which MAIL FROM did not ask for")
        return self._command(f"RCPT TO:<{address}>", _Expected("RCPT", RcptReply, address))

    def send_data(self) -> bytes:
        self._require(TRANSACTION, command="DATA")
        self._refuse_after_bdat("DATA")
        out = self._command("DATA", _Expected("DATA", DataReply))
        self.state = DATA_REQUESTED
        return out

    def send_bdat(self, data: bytes, last: bool = False) -> bytes:
        """One BDAT chunk (RFC 3030 §2): its exact size, then its bytes as they are (CRLF
        line endings, no dot-stuffing). The reply to the LAST chunk is the message's final
        reply. After a refused chunk the server's state is undefined (§4.2): the driver
        sends RSET before the next transaction."""
        self._require(TRANSACTION, command="BDAT")
        if "CHUNKING" not in self.capabilities:
            raise SMTPStateError("BDAT, and the server does not offer CHUNKING")
        line = f"BDAT {len(data)}{' LAST' if last else ''}"
        out = self._command(line, _Expected("BDAT", MessageReply if last else BdatReply)) + data
        self._bdat_started = True
        if last:
            self.state = SESSION
        return out

    def _refuse_after_bdat(self, command: str) -> None:
        if self._bdat_started:
            raise SMTPStateError(f"{command} after BDAT in the same transaction (RFC 3030 §2)")

    def end_data(self) -> None:
        """The driver has written the whole data stream, terminator included."""
        self._require(DATA, command="end of data")
        self._expected.append(_Expected("end of data", MessageReply))
        self.state = SESSION

    def send_rset(self) -> bytes:
        self._require(SESSION, TRANSACTION, command="RSET")
        out = self._command("RSET", _Expected("RSET", RsetReply))
        self.state = SESSION
        return out

    def send_quit(self) -> bytes:
        if self.state in (GREETING, DATA):
            raise SMTPStateError(f"QUIT in state {self.state!r}")
        return self._command("QUIT", _Expected("QUIT", QuitReply))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_argument(value: str, what: str) -> None:
    """Refuse anything that could end or smuggle a command line, or add a parameter to it
    (DataError): the backstop for library callers that build an envelope themselves.
    A space would let `a@b SIZE=1` pass as MAIL FROM's parameters; controls, DEL and
    the Unicode line separators are never part of an address."""
    if any(ch in value for ch in " <>\x7f\u2028\u2029") or any(ord(ch) < 32 or 0x80 <= ord(ch) < 0xa0 for ch in value):
        raise DataError(f"{what} {value!r} contains characters not allowed in an SMTP command")
