"""One SMTP connection of `mimekit serve`: the decisions the sans-IO server protocol
(transport/smtp/server.py) leaves to its driver, made against the mailboxes and users.

Recipients are routed as they come (Mailboxes.route); the message streams into one
delivery as Content events arrive, never whole in memory; the end of data commits it
(fsync, rename) in a thread and only then replies 250 with its queue id. A commit that has
started finishes even when the server stops meanwhile (docs/conventions.md, Servers); a
message the client did not finish (a disconnect mid-DATA, a timeout, a stop) is aborted
and leaves nothing in new/. A delivery that fails while the content is still coming (a
full disk) reads on to the end of the data and then refuses it (452 4.3.1).
"""

import asyncio
import time

from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import Delivery, DeliveryError, Mailboxes, Refusal, Route, Trace
from mimekit.serve.session import FAILED_LOGIN_DELAY, ServerSession, SessionEnded, finished_in_thread, verify_login
from mimekit.transport.smtp.server import (Bdat, ConnectionClosed, Content, ContentEnd, ContentTooLarge,
                                           Credentials, DataStart, Ehlo, Mail, Quit, Rcpt, Reset, ServiceClosing,
                                           SMTPServerProtocol, StartTLS)

LOGIN_REFUSED = Refusal(535, "5.7.8", "Authentication credentials invalid")


def counted(number: int, noun: str) -> str:
    """The count with its noun, singular for one ("1 message", "2 messages"): people read the log line."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


async def handle_smtp(config: ServeConfig, mailboxes: Mailboxes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> str:
    """Serve one SMTP client until it quits, goes away or runs out of time; the text of its
    log line. Client behaviour never raises; cancellation (the server stopping) does."""
    proto = SMTPServerProtocol(config.hostname, config.max_size, config.max_recipients,
                               starttls=config.tls is not None, auth=config.users is not None,
                               allow_insecure_auth=config.insecure_plaintext_auth)
    return await _SMTPSession(ServerSession(config, reader, writer, proto, config.smtp_idle_timeout), mailboxes).run()


class _SMTPSession:
    def __init__(self, session: ServerSession, mailboxes: Mailboxes):
        self.session = session
        self.proto: SMTPServerProtocol = session.proto
        self.mailboxes = mailboxes
        self.users = session.config.users
        self.sender = ""
        self.smtputf8 = False
        self.routes: list[Route] = []
        self.delivery: Delivery | None = None
        self.refusal: Refusal | None = None   # why the message being received will be refused
        self.accepted = self.refused = self.recipients = self.bytes = 0

    async def run(self) -> str:
        started = time.monotonic()
        ending = "closed"
        self.proto.greet()
        try:
            while True:
                event = await self.session.next_event()
                if isinstance(event, Quit):
                    ending = "quit"
                    break
                if isinstance(event, ServiceClosing):
                    ending = event.reason
                    break
                if isinstance(event, ConnectionClosed):
                    ending = ("client went away in the middle of a message" if event.mid_message
                              else "client went away")
                    break
                await self._handle(event)
        except SessionEnded as exc:
            ending = str(exc)
            self.proto.close_service(ending, "4.4.2" if exc.timed_out else "4.3.2")
        finally:
            self._drop_message()
            await self.session.close()
        return self._log_text(ending, time.monotonic() - started)

    def _log_text(self, ending: str, seconds: float) -> str:
        proto = self.proto
        facts = [f"ehlo={proto.helo or '-'}", f"tls={'yes' if self.session.tls else 'no'}"]
        if proto.authenticated_user is not None:
            facts.append(f"user={proto.authenticated_user}")
        counts = (f"{counted(self.accepted, 'message')} accepted, {self.refused} refused, "
                  f"{counted(self.recipients, 'recipient')}, {self.bytes} bytes, {seconds:.2f} s")
        return "; ".join([" ".join(facts), counts, *self.session.facts, ending])

    async def _handle(self, event) -> None:
        proto = self.proto
        match event:
            case Ehlo() | Reset():
                self._drop_message()
            case Mail(sender=sender, params=params):
                self.sender, self.smtputf8, self.routes = sender, "SMTPUTF8" in params, []
            case Rcpt(address=address):
                route = self.mailboxes.route(address, proto.authenticated_user)
                if isinstance(route, Refusal):
                    proto.refuse(route.code, route.enhanced, route.text)
                else:
                    self.routes.append(route)
                    proto.accept()
            case DataStart():
                await self._begin()
                if self.refusal is None:
                    proto.accept()
                else:
                    self._refuse_message()
            case Bdat() if self.delivery is None and self.refusal is None:
                await self._begin()    # the first chunk of the message
            case Content(data=data) if self.delivery is not None:
                try:
                    self.delivery.write(data)
                except DeliveryError as exc:
                    self._fail(exc)
            case ContentTooLarge():
                self._drop_message()
                self.refused += 1      # the protocol answers 552 at the end of the data
            case ContentEnd(last=last):
                if self.refusal is not None:
                    self._refuse_message()
                elif last:
                    await self._commit(event.size)
                else:
                    proto.accept()
            case StartTLS():
                await self.session.start_tls()
                proto.tls_started()
            case Credentials(user=user, password=password):
                if await verify_login(self.users, user, password):
                    proto.accept()
                else:
                    await asyncio.sleep(FAILED_LOGIN_DELAY)
                    proto.refuse(LOGIN_REFUSED.code, LOGIN_REFUSED.enhanced, LOGIN_REFUSED.text)

    async def _begin(self) -> None:
        """Open the delivery: the Received field is written now, the content as it comes.
        In a thread: it creates the file (and the Maildirs new recipients need), with fsyncs
        that would stall every other session on the event loop."""
        begin, stopping = await finished_in_thread(self.mailboxes.begin, self.sender, self.routes, self._trace())
        error = begin.exception()
        if error is None:
            self.delivery = begin.result()    # aborted by run() when the server is stopping
        elif isinstance(error, DeliveryError):
            self.refusal = error.refusal
        else:
            raise error
        if stopping:
            raise asyncio.CancelledError

    def _trace(self) -> Trace:
        proto, tls = self.proto, self.session.tls
        # RFC 3848 and RFC 6531 §4.3: SMTP, ESMTP or UTF8SMTP, then S for TLS, A for a login
        base = "UTF8SMTP" if self.smtputf8 else "ESMTP" if proto.extended or tls or proto.authenticated_user else "SMTP"
        with_protocol = base + ("S" if tls else "") + ("A" if proto.authenticated_user else "")
        return Trace(proto.helo or "", self.session.peer_ip, with_protocol, self.session.tls_description)

    def _fail(self, error: DeliveryError) -> None:
        """The delivery broke while content is still coming: read on, refuse at the end."""
        self._drop_message()
        self.refusal = error.refusal

    async def _commit(self, size: int) -> None:
        """fsync and rename into new/, in a thread, then 250. A server stopping meanwhile
        waits for the commit (the cancellation is raised once it is done and answered)."""
        delivery, self.delivery = self.delivery, None
        commit, stopping = await finished_in_thread(delivery.commit)
        error = commit.exception()
        if error is None:
            self.accepted += 1
            self.recipients += len(self.routes)
            self.bytes += size
            self.proto.accept(f"Ok: queued as {delivery.id}")
        else:
            delivery.abort()
            if not isinstance(error, DeliveryError):
                raise error
            self.refusal = error.refusal
            self._refuse_message()
        self.routes = []
        if stopping:
            raise asyncio.CancelledError

    def _refuse_message(self) -> None:
        refusal, self.refusal = self.refusal, None
        self.refused += 1
        self.proto.refuse(refusal.code, refusal.enhanced, refusal.text)

    def _drop_message(self) -> None:
        """Abort the message being received, if any: nothing of it reaches new/."""
        if self.delivery is not None:
            self.delivery.abort()
            self.delivery = None
        self.refusal = None

