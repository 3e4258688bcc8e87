"""The SMTP driver: sessions, pipelining and results; the protocol is smtp/protocol.py's, the
event pump driver.py's, the socket, TLS and timeouts connection.py's.

Secure by default (docs/conventions.md, Network): smtp:// always upgrades with STARTTLS and
stops before any credential or message when the server does not offer it (unless the
user passed the explicit insecure flag, which the caller must announce); smtps:// is
TLS from the first byte; smtp+plain:// (a loopback server only, urls.py) never asks for
TLS; certificates and host names are always verified.
Every socket operation has a timeout. Several messages go over one connection. With
PIPELINING and CHUNKING (RFC 3030) they stream back to back as BDAT chunks, replies read
behind them; with PIPELINING alone MAIL, RCPT and DATA go out in one write and the next
message's commands follow the previous final dot (smtp/data.py's data_stream does the
dot-stuffing); without PIPELINING each command waits for its reply.

A message the server cannot take as it is (8-bit data without 8BITMIME, 8-bit headers
without SMTPUTF8, NUL bytes or lines over 998 bytes for any server) is converted to 7 bits
first (mimekit.write.downgrade, RFC 6152 §3), into a temporary file: the conversion reads the
message twice and may find, late, that a part cannot be converted, and SIZE must announce
the converted size before the first byte goes out.

Failures that concern one message (a refused sender, recipient or DATA, a message too
large for SIZE, a message that cannot be made 7-bit for a 7-bit server) are results; the
next message is still sent, after RSET. Failures of the connection (421, a drop, a
timeout) raise TempFailure: the message in flight is then never reported as sent.
"""

from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO, Callable, Iterable, Iterator

from mimekit.errors import (AuthError, DataError, IOFailure, MimekitError, ProtocolError, TempFailure,
                            UnavailableError)
from mimekit.streams.files import read_chunks, temporary_file
from mimekit.streams.line_endings import CRLFNormaliser
from mimekit.transport.connection import DEFAULT_TIMEOUT, ConnectionLost
from mimekit.transport.driver import Driver
from mimekit.transport.sasl import (ServerError, choose_mechanism, error_answer, initial_response,
                                    log_in_with_token, oauth2_failure)
from mimekit.transport.smtp.data import MessageScan, MessageScanner, data_stream
from mimekit.transport.smtp.protocol import (AuthChallenge, BdatReply, ConnectionClosed, DataReply, EhloReply,
                                             Greeting, MailReply, MessageReply, RcptReply, Reply, RsetReply,
                                             ServiceClosing, SMTPProtocol, StartTLSReply, check_argument)
from mimekit.transport.urls import ServerURL

WRITE_BATCH = 256 * 1024   # message bytes gathered before one write
BDAT_SIZE = 1024 * 1024    # message bytes per BDAT chunk
IN_FLIGHT = 32             # chunked messages sent ahead of the oldest unread reply


@dataclass(frozen=True)
class RecipientResult:
    address: str
    accepted: bool
    code: int | None = None          # None when refused before asking the server
    enhanced: str | None = None
    text: str = ""

    @classmethod
    def from_reply(cls, address: str, reply: Reply, accepted: bool | None = None) -> "RecipientResult":
        return cls(address, reply.positive if accepted is None else accepted,
                   reply.code, reply.enhanced, reply.text)

    @property
    def error(self) -> MimekitError | None:
        """What the server's refusal means to the caller (`refusal`), carrying its reply
        code; None when accepted, or refused before the server was asked (the message's
        `error` says why)."""
        if self.accepted or self.code is None:
            return None
        return refusal(self.code, f"{self.address} refused: {self.code} {self.text}")


@dataclass
class MessageResult:
    source: str
    recipients: list[RecipientResult] = field(default_factory=list)
    queue_id: str | None = None
    error: MimekitError | None = None   # refused locally, before the server saw the message
    converted_to_7bit: bool = False     # sent as mimekit.write.downgrade rewrote it, not as given


@dataclass
class OutgoingMessage:
    """A message ready to go: its envelope, its pre-scan, and its bytes as transmitted
    (Bcc removed). `chunks` may be called more than once. `refused` says why a message
    found unusable when it was prepared (a header with no readable envelope) is not sent:
    it is reported as refused, like a message refused here, and the next one still goes.
    `crlf` says that `chunks` holds CRLF line endings only, so BDAT sends them as they are."""

    source: str
    sender: str
    recipients: tuple[str, ...]
    scan: MessageScan
    chunks: Callable[[], Iterable[bytes]]
    refused: DataError | None = None
    crlf: bool = False


def refusal(code: int, message: str) -> MimekitError:
    """The one place a refusing reply code becomes an error: 4xx may be retried
    (TempFailure), 5xx will not work (UnavailableError). The error carries the code."""
    error = (TempFailure if 400 <= code < 500 else UnavailableError)(message)
    error.reply_code = code
    return error


def refusing(reply: Reply, what: str) -> MimekitError:
    """`refusal` of a reply to `what`, the reply quoted."""
    return refusal(reply.code, f"{what}: {reply}")


class SMTPClient(Driver):
    """One connection to a submission server. Use as a context manager:

        with SMTPClient(url, cafile=...) as client:
            client.login(user, password)            # optional
            for result in client.send_messages(messages): ...
    """

    def __init__(self, url: ServerURL, cafile: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 allow_insecure: bool = False, chunking: bool = True):
        """`chunking=False` keeps to DATA even when the server offers CHUNKING (for a
        server whose BDAT is broken)."""
        super().__init__(url, cafile, timeout)
        self.allow_insecure = allow_insecure
        self.chunking = chunking
        self.proto = SMTPProtocol(tls=url.implicit_tls, allow_insecure_auth=allow_insecure or url.plaintext)

    # connection ---------------------------------------------------------------------------

    def __enter__(self) -> "SMTPClient":
        try:
            self.connect()
        except BaseException:
            self.close(polite=False)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(polite=exc_type is None)

    @property
    def encrypted(self) -> bool:
        return self.conn is not None and self.conn.encrypted

    def connect(self) -> None:
        """Connect, read the greeting, EHLO, and (smtp://) upgrade with STARTTLS; smtp+plain://
        (loopback only, urls.py) stays in the clear, as asked."""
        self._connect()   # smtps: TLS already
        greeting = self._expect(Greeting)
        if greeting.reply.code != 220:
            raise refusing(greeting.reply, f"{self.conn.where} refused the session")
        self._ehlo()
        if self.url.implicit_tls or self.url.plaintext:
            return
        if "STARTTLS" not in self.proto.capabilities and self.allow_insecure:
            return   # the caller warns: the user asked for this with the insecure flag
        self.proto.send_starttls()   # AuthError when STARTTLS is not offered
        reply = self._expect(StartTLSReply).reply
        if reply.code != 220:
            raise refusing(reply, "STARTTLS refused")
        self.conn.start_tls()
        self.proto.tls_started()
        self._ehlo()

    def _ehlo(self) -> None:
        address = self.conn.local_address
        name = f"[IPv6:{address}]" if ":" in address else f"[{address}]"   # no DNS lookup
        self.proto.send_ehlo(name)
        reply = self._expect(EhloReply).reply
        if reply.code != 250:
            raise refusing(reply, "EHLO refused")

    def login(self, user: str, password: str) -> None:
        """AUTH PLAIN or LOGIN; AuthError (77) when the server says no, TempFailure (75)
        when it says not now. Either carries the reply code."""
        self.proto.start_auth(user, password)
        while True:
            event = self._next_event()
            if isinstance(event, AuthChallenge):
                self.proto.answer_challenge()
                continue
            if event.reply.code == 235:
                return
            raise _auth_failure(event.reply, user)

    def login_oauth2(self, user: str, token: Callable[[], str]) -> None:
        """AUTH OAUTHBEARER or XOAUTH2 (sasl.py) with the access token `token()` returns,
        asked for only once the server is known to offer one; a token the server says
        expired or is invalid is asked for and tried once more. Errors as login's."""
        mechanism = choose_mechanism(self.proto.capabilities.auth, self.conn.where)
        log_in_with_token(partial(self._oauth2_exchange, mechanism, user), token)

    def _oauth2_exchange(self, mechanism: str, user: str, token: str) -> None:
        """One AUTH exchange; a 334 that is not the go-ahead for our response is the
        server's error (RFC 7628 §3.2.2), answered so that the final failure follows."""
        self.proto.start_sasl(mechanism, initial_response(mechanism, user, token, self.url.host, self.url.port))
        error = None
        while isinstance(event := self._next_event(), AuthChallenge):
            if self.proto.has_prepared_answer:
                self.proto.answer_challenge()
            else:
                error = ServerError.from_challenge(event.reply.text)
                self.proto.answer_challenge(error_answer(mechanism))
        if event.reply.code != 235:
            raise oauth2_failure(error, _auth_failure(event.reply, user))

    def close(self, polite: bool = True) -> None:
        """QUIT when the session is healthy, then close the connection."""
        if self.conn is None:
            return
        try:
            if polite and self.proto.can_quit:
                self.proto.send_quit()
                while self.proto.pending:
                    self._next_event()
        except MimekitError:
            pass   # the messages are settled; a server slow to say goodbye changes nothing
        finally:
            super().close()

    # messages -------------------------------------------------------------------------------

    def send_messages(self, messages: Iterable[OutgoingMessage],
                      progress: Callable[[int], None] | None = None) -> Iterator[MessageResult]:
        """Send each message; yield its result (in order) once the server has answered.

        With PIPELINING and CHUNKING (RFC 3030), messages stream back to back without
        waiting for any reply (`_send_chunked`); with PIPELINING alone each message costs
        one round trip (`_send_with_data`); without it, one per command.
        """
        caps = self.proto.capabilities
        if self.chunking and "CHUNKING" in caps and "PIPELINING" in caps:
            return self._send_chunked(messages, progress)
        return self._send_with_data(messages, progress, pipelining="PIPELINING" in caps)

    def _send_chunked(self, messages, progress) -> Iterator[MessageResult]:
        """MAIL, RCPT..., BDAT... LAST, RSET per message, all pipelined; replies are read
        once IN_FLIGHT messages are ahead of them. The RSET after each message is what
        RFC 3030 §4.2 asks for after a refused BDAT; sending it always keeps the next
        transaction clean without waiting to learn whether the last one failed.
        A message of more than one chunk first waits for its MAIL and RCPT replies, so a
        refused envelope never costs the upload of a large message."""
        in_flight: deque[_Transaction] = deque()
        for message in messages:
            txn = _Transaction(message)
            try:
                self._queue_mail(txn, pipelining=True)
            except (DataError, UnavailableError) as exc:   # refused locally, nothing sent
                while in_flight:
                    yield self._collect(in_flight.popleft())
                yield txn.refused_locally(exc)
                continue
            if txn.message.scan.size > BDAT_SIZE:   # the converted size, if it was converted
                while in_flight:
                    yield self._collect(in_flight.popleft())
                self._read_envelope_replies(txn)
                if not txn.accepted:
                    self._reset()
                    yield txn.result
                    continue
            self._queue_chunks(txn, progress)
            self.proto.send_rset()
            in_flight.append(txn)
            if len(in_flight) > IN_FLIGHT:
                yield self._collect(in_flight.popleft())
        while in_flight:
            yield self._collect(in_flight.popleft())

    def _queue_chunks(self, txn: "_Transaction", progress) -> None:
        """The message as BDAT chunks of about BDAT_SIZE, CRLF line endings, no stuffing.
        A message known to have CRLF line endings already skips their conversion: 3 us of
        bench_send's small message, whose prepare_message converted them for its scan."""
        normaliser = None if txn.message.crlf else CRLFNormaliser()
        pending = bytearray()
        for chunk in txn.message.chunks():
            pending += normaliser.feed(chunk) if normaliser else chunk
            if len(pending) >= BDAT_SIZE:
                self.proto.send_bdat(pending)
                txn.chunks += 1
                pending.clear()
                self._write(progress)
        if normaliser:
            pending += normaliser.flush()
        self.proto.send_bdat(pending, last=True)
        if self.proto.bytes_to_send >= WRITE_BATCH:
            self._write(progress)

    def _read_envelope_replies(self, txn: "_Transaction") -> None:
        txn.mail = self._expect(MailReply).reply
        for address in txn.message.recipients:
            txn.rcpt(address, self._expect(RcptReply).reply)
        if not txn.mail.positive:
            txn.refuse_all(txn.mail, everyone=True)

    def _collect(self, txn: "_Transaction") -> MessageResult:
        """Read one chunked transaction's replies, in the order its commands went out."""
        if txn.mail is None:
            self._read_envelope_replies(txn)
        refused_chunk = None
        for _ in range(txn.chunks):
            reply = self._expect(BdatReply).reply
            refused_chunk = refused_chunk or (reply if not reply.positive else None)
        final = self._expect(MessageReply)
        reset = self._expect(RsetReply).reply
        if txn.mail.positive:   # else every recipient already carries MAIL's refusal
            if refused_chunk or not final.reply.positive:
                txn.refuse_all(refused_chunk or final.reply)
            else:
                txn.result.queue_id = final.queue_id
        if not reset.positive:
            raise refusing(reset, "RSET refused")
        return txn.result

    def _send_with_data(self, messages, progress, pipelining: bool) -> Iterator[MessageResult]:
        """DATA per message; with PIPELINING the final reply of one message is read after
        the next message's commands are written, so each message costs one round trip."""
        awaiting_final: _Transaction | None = None
        for message in messages:
            txn = _Transaction(message)
            try:
                self._queue_mail(txn, pipelining)
                if pipelining:
                    self.proto.send_data()
            except (DataError, UnavailableError) as exc:   # refused locally, nothing sent
                if awaiting_final:
                    yield self._finish(awaiting_final)
                    awaiting_final = None
                yield txn.refused_locally(exc)
                continue
            if awaiting_final:
                yield self._finish(awaiting_final)
                awaiting_final = None
            if not self._negotiate(txn, pipelining):
                yield txn.result
                continue
            self._send_content(txn, progress)
            if pipelining:
                awaiting_final = txn
            else:
                yield self._finish(txn)
        if awaiting_final:
            yield self._finish(awaiting_final)

    def _queue_mail(self, txn: "_Transaction", pipelining: bool) -> None:
        """Queue MAIL (and with PIPELINING also every RCPT); the DATA path adds DATA.
        Everything that can refuse the message locally happens before anything is queued,
        the conversion to 7 bits included (the transaction then carries the converted copy)."""
        if txn.message.refused:
            raise txn.message.refused
        if self._needs_7bit(txn.message.scan):
            txn.message = seven_bit_copy(txn.message)
            txn.result.converted_to_7bit = True
        message, scan = txn.message, txn.message.scan
        smtputf8 = scan.eight_bit_headers or not "".join(message.recipients).isascii()
        if scan.binary:
            raise DataError("the message has NUL bytes or lines over 998 bytes outside any body "
                            "(in its header, a preamble or an epilogue), which no transfer encoding "
                            "can fix; it cannot be sent as text")
        for address in message.recipients:   # before MAIL is queued, so a refusal leaves no trace
            check_argument(address, "recipient address")
        self.proto.send_mail(message.sender, size=scan.size, eight_bit=scan.needs_8bitmime, smtputf8=smtputf8)
        if pipelining:
            for address in message.recipients:
                self.proto.send_rcpt(address)

    def _needs_7bit(self, scan: MessageScan) -> bool:
        """Can the server not take the message as it is? 8-bit headers need SMTPUTF8, which
        implies 8BITMIME (RFC 6531 §3.1); text with NUL bytes or long lines goes to nobody."""
        caps = self.proto.capabilities.keywords
        eight_bit = "8BITMIME" in caps
        return (scan.binary or (scan.eight_bit_body and not eight_bit)
                or (scan.eight_bit_headers and not (eight_bit and "SMTPUTF8" in caps)))

    def _negotiate(self, txn: "_Transaction", pipelining: bool) -> bool:
        """Read the replies to MAIL, RCPT and DATA; True when the content should follow."""
        mail = self._expect(MailReply).reply
        if not pipelining and not mail.positive:
            txn.refuse_all(mail, everyone=True)
            self._reset()
            return False
        for address in txn.message.recipients:
            if not pipelining:
                self.proto.send_rcpt(address)
            txn.rcpt(address, self._expect(RcptReply).reply)
        if not pipelining and not txn.accepted:   # each recipient has its own refusal
            self._reset()
            return False
        if not pipelining:
            self.proto.send_data()
        data = self._expect(DataReply).reply
        if not mail.positive:
            txn.refuse_all(mail, everyone=True)   # the real reason, not RCPT's "need MAIL"
        elif data.code != 354:
            txn.refuse_all(data)
        if data.code != 354:
            self._reset()
            return False
        if not txn.accepted:
            # RFC 2920 §3.1: the server took DATA though no recipient was accepted; an
            # empty message ends the transaction, and the server refuses it.
            self.proto.send_content(b"".join(data_stream([])))
            self.proto.end_data()
            self._expect(MessageReply)
            return False
        return True

    def _send_content(self, txn: "_Transaction", progress) -> None:
        for chunk in data_stream(txn.message.chunks()):
            self.proto.send_content(chunk)
            if self.proto.bytes_to_send >= WRITE_BATCH:
                self._write(progress)
        self.proto.end_data()

    def _finish(self, txn: "_Transaction") -> MessageResult:
        final = self._expect(MessageReply)
        if final.reply.positive:
            txn.result.queue_id = final.queue_id
        else:
            txn.refuse_all(final.reply)
        return txn.result

    def _reset(self) -> None:
        """RSET after a refused transaction (RFC 5321 §4.1.1.5), so the next MAIL starts clean."""
        self.proto.send_rset()
        reply = self._next_event().reply
        if not reply.positive:
            raise refusing(reply, "RSET refused")

    # bytes ------------------------------------------------------------------------------

    def _write(self, progress: Callable[[int], None] | None) -> None:
        """Write what is queued now (a batch of the message) and count it as progress."""
        written = self._flush()
        if progress and written:
            progress(written)

    def _receive(self) -> bytes:
        """A dropped connection is an end of stream here: the protocol then names the
        commands left unanswered, and a 421 sent just before a reset still counts."""
        try:
            return self.conn.receive()
        except ConnectionLost:
            return b""

    def _next_event(self):
        """The next event; connection failures (421, a drop) raise TempFailure."""
        event = self._next()
        self._check_open(event)
        return event

    def _expect(self, event_type: type):
        event = self._next()
        if isinstance(event, event_type):   # never a ServiceClosing or ConnectionClosed
            return event
        self._check_open(event)
        raise ProtocolError(f"expected {event_type.__name__}, got {event!r}")

    def _check_open(self, event) -> None:
        if isinstance(event, ServiceClosing):
            raise TempFailure(f"the server is closing the connection: {event.reply}")
        if isinstance(event, ConnectionClosed):
            waiting = f" (no reply to {', '.join(event.pending)})" if event.pending else ""
            raise TempFailure(f"{self.url.host}: the server closed the connection{waiting}")


def _auth_failure(reply: Reply, user: str) -> MimekitError:
    """A refused AUTH: TempFailure (75) when the server says not now, else AuthError (77);
    either carries the reply code."""
    if reply.transient:
        error = TempFailure(f"authentication failed for now: {reply}")
    else:
        error = AuthError(f"authentication as {user} failed: {reply}")
    error.reply_code = reply.code
    return error


def seven_bit_copy(message: OutgoingMessage) -> OutgoingMessage:
    """`message` converted to 7 bits (mimekit.write.downgrade) in an anonymous temporary file,
    with the scan of the converted bytes: their size is the one SIZE must announce."""
    # Imported on first need: the parser and composer it brings cost every send ~30 ms of
    # start-up, and most servers take 8-bit mail as it is.
    from mimekit.write.downgrade import downgrade_to_7bit

    normaliser, scanner = CRLFNormaliser(), MessageScanner()
    try:
        spool = temporary_file(prefix="mimekit-7bit-")   # anonymous: gone when closed
        for chunk in downgrade_to_7bit(message.chunks):
            spool.write(chunk)
            scanner.feed(normaliser.feed(chunk))
        spool.flush()
    except OSError as exc:
        raise IOFailure(f"{message.source}: cannot make the 7-bit copy: {exc.strerror or exc}") from exc
    scanner.feed(normaliser.flush())
    return OutgoingMessage(message.source, message.sender, message.recipients, scanner.scan,
                           partial(_spooled_chunks, spool))


def _spooled_chunks(spool: BinaryIO) -> Iterator[bytes]:
    spool.seek(0)
    yield from read_chunks(spool)


class _Transaction:
    """One message's progress through MAIL, RCPT, DATA or BDAT, and the final reply."""

    def __init__(self, message: OutgoingMessage):
        self.message = message
        self.result = MessageResult(message.source)
        self.chunks = 0   # BDAT chunks before the LAST one
        self.mail: Reply | None = None   # the reply to MAIL, once read
        self._by_address: dict[str, RecipientResult] = {}

    def refused_locally(self, error: MimekitError) -> MessageResult:
        """The result of a message refused before anything of it was sent."""
        self.result.error = error
        self.result.recipients = [RecipientResult(r, False, text=str(error)) for r in self.message.recipients]
        return self.result

    def rcpt(self, address: str, reply: Reply) -> None:
        self._by_address[address] = RecipientResult.from_reply(address, reply)
        self.result.recipients = list(self._by_address.values())

    @property
    def accepted(self) -> bool:
        return any(r.accepted for r in self._by_address.values())

    def refuse_all(self, reply: Reply, everyone: bool = False) -> None:
        """Recipients accepted so far (with `everyone`, all of them) are refused by `reply`."""
        for address in self.message.recipients:
            current = self._by_address.get(address)
            if everyone or current is None or current.accepted:
                self._by_address[address] = RecipientResult.from_reply(address, reply, accepted=False)
        self.result.recipients = list(self._by_address.values())
