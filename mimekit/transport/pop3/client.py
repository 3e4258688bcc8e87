"""POP3 as a fetch source (RFC 1939, RFC 2449): log in over TLS, list by UIDL, retrieve
with RETR (TOP for --headers-only), pipelined when the server offers PIPELINING, and
delete with DELE then QUIT. The protocol itself is pop3/protocol.py's (sans-IO), the
event pump driver.py's.
"""

# Annotations stay unevaluated: the list() method would shadow list[...] in them.
from __future__ import annotations

from functools import partial
from typing import Callable, Iterator

from mimekit.transport.pop3 import protocol as pop3
from mimekit.errors import AuthError, MimekitError, ProtocolError, TempFailure, UnavailableError, UsageError
from mimekit.transport.connection import Unreachable
from mimekit.fetch.message import ListedMessage
from mimekit.transport.driver import Driver, login_failure
from mimekit.transport.sasl import (ServerError, choose_mechanism, error_answer, initial_response,
                                    log_in_with_token, oauth2_failure)

POP3_WINDOW = 32          # RETR/DELE commands in flight when the server offers PIPELINING


class POP3Client(Driver):
    starttls_command = "STLS"
    id_kind = "uidl"
    stable_ids = True          # until the server turns out to have no UIDL
    lists_everything = True
    validity = None

    def __init__(self, url, cafile, timeout):
        super().__init__(url, cafile, timeout)
        self._number_by_id: dict[str, int] = {}
        self._sizes: dict[int, int] = {}
        self._quit = False

    @property
    def account(self) -> str:
        return f"pop3://{self.url.user}@{self.url.host}"

    def open(self, password: Callable[[], str] | None, read_only: bool = True,
             token: Callable[[], str] | None = None) -> None:
        """Connect, secure and log in with `password()`, or with OAuth2 (sasl.py) when
        `token` is given: each asked for only once the connection is encrypted."""
        self._connect()
        self.proto = pop3.POP3Protocol()
        greeting = self._next()
        if not isinstance(greeting, pop3.Greeting) or not greeting.ok:
            raise Unreachable(f"{self.conn.where}: POP3 server refused the connection: "
                                   f"{getattr(greeting, 'text', greeting)}")
        capabilities = self._capa()
        if self.needs_starttls:
            self._require_tls("STLS" in capabilities)
            self.proto.stls()
            self._reply("STLS", AuthError)
            self.conn.start_tls()
            capabilities = self._capa()
        user = self.url.user
        if not user:
            raise UsageError("no user name: give USER@HOST in the URL or a user")
        if token is not None:
            mechanism = choose_mechanism(capabilities.get("SASL", ()), self.conn.where)
            log_in_with_token(partial(self._auth_oauth2, mechanism, user), token)
            return
        secret = password() if password else ""
        if "PLAIN" in (arg.upper() for arg in capabilities.get("SASL", ())):
            self.proto.auth_plain(user, secret)
        else:
            self.proto.user(user)
            self._flush()
            reply = self._next()
            if not isinstance(reply, pop3.Reply) or not reply.ok:
                raise login_failure(f"POP3 USER {user}", getattr(reply, "text", ""), getattr(reply, "code", None))
            self.proto.password(secret)
        self._flush()
        reply = self._next()
        if not isinstance(reply, pop3.Reply) or not reply.ok:
            raise login_failure(f"POP3 login as {user}", getattr(reply, "text", ""), getattr(reply, "code", None))

    def _auth_oauth2(self, mechanism: str, user: str, token: str) -> None:
        """One AUTH exchange; a "+" after our response is the server's error (RFC 7628
        §3.2.3), answered so that the -ERR follows."""
        self.proto.auth(mechanism, initial_response(mechanism, user, token, self.url.host, self.url.port))
        error = None
        while isinstance(event := self._next(), pop3.Challenge):
            error = ServerError.from_challenge(event.text)
            self.proto.auth_continue(error_answer(mechanism))
        if not isinstance(event, pop3.Reply) or not event.ok:
            raise oauth2_failure(error, login_failure(f"POP3 AUTH {mechanism} as {user}", getattr(event, "text", ""),
                                                      getattr(event, "code", None)))

    def _capa(self) -> dict:
        self.proto.capa()
        self._flush()
        event = self._next()
        return event.capabilities if isinstance(event, pop3.Capabilities) else {}

    def _reply(self, what: str, failure=ProtocolError) -> "pop3.Reply":
        self._flush()
        event = self._next()
        if isinstance(event, pop3.ConnectionClosed):
            raise TempFailure(f"{self.conn.where}: POP3 server closed the connection")
        if not isinstance(event, pop3.Reply) or not event.ok:
            text = getattr(event, "text", repr(event))
            if getattr(event, "code", None) in ("IN-USE", "SYS/TEMP", "LOGIN-DELAY"):
                raise TempFailure(f"{self.conn.where}: {what} refused for now: {text}")
            raise failure(f"{self.conn.where}: {what} failed: {text}")
        return event

    def list(self, criteria: str | None) -> list[str]:
        self.proto.uidl()
        self._flush()
        uidl = self._next()
        self.proto.list()
        self._flush()
        listing = self._next()
        if not isinstance(listing, pop3.Sizes):
            raise ProtocolError(f"{self.conn.where}: LIST failed: {getattr(listing, 'text', listing)}")
        self._sizes = listing.sizes
        self.stable_ids = isinstance(uidl, pop3.UniqueIds)
        if self.stable_ids:
            self._number_by_id = {uid: number for number, uid in uidl.ids.items()}
        else:
            self.id_kind = "number"     # no UIDL: ids are message numbers, good for this session only
            self._number_by_id = {str(number): number for number in listing.sizes}
        return sorted(self._number_by_id, key=self._number_by_id.get)

    def describe(self, ids: list[str], with_message_id: bool) -> list[ListedMessage]:
        """The messages of `ids` that the server still has: a killed run's pending ids
        (fetch's orphan adoption) may name messages deleted since."""
        return [ListedMessage(i, number, self._sizes.get(number)) for i in ids
                if (number := self._number_by_id.get(i)) is not None]

    def retrieve(self, messages: list[ListedMessage], headers_only: bool) -> Iterator[tuple[ListedMessage, Iterator[bytes]]]:
        if headers_only and self.proto.capabilities and "TOP" not in self.proto.capabilities:
            raise UnavailableError(f"{self.conn.where}: the server does not offer TOP, so headers_only cannot work")
        window = POP3_WINDOW if "PIPELINING" in self.proto.capabilities else 1
        queue = list(messages)
        sent = []
        while queue or sent:
            while queue and len(sent) < window:
                message = queue.pop(0)
                self.proto.top(message.number, 0) if headers_only else self.proto.retr(message.number)
                sent.append(message)
            self._flush()
            message = sent.pop(0)
            event = self._next()
            if isinstance(event, pop3.MessageStart):
                body = self._body()
                yield message, body
                for _ in body:
                    pass
            elif isinstance(event, pop3.Reply) and not event.ok:
                # The maildrop is locked for this session (RFC 1939 §4): a listed message
                # cannot have gone, so this is the server failing, not a vanished message.
                raise TempFailure(f"{self.conn.where}: {'TOP' if headers_only else 'RETR'} "
                                  f"{message.number} failed: {event.text}")
            else:
                raise ProtocolError(f"{self.conn.where}: unexpected reply to RETR: {event!r}")

    def _body(self) -> Iterator[bytes]:
        while True:
            event = self._next()
            if isinstance(event, pop3.MessageChunk):
                yield event.data
            elif isinstance(event, pop3.MessageEnd):
                return
            elif isinstance(event, pop3.ConnectionClosed):
                raise TempFailure(f"{self.conn.where}: POP3 server closed the connection mid-message")

    def delete(self, ids: list[str]) -> int:
        """DELE each, then QUIT: POP3 removes messages only when QUIT succeeds (RFC 1939 §6)."""
        numbers = [self._number_by_id[i] for i in ids if i in self._number_by_id]
        marked = 0
        for start in range(0, len(numbers), POP3_WINDOW):
            batch = numbers[start:start + POP3_WINDOW]
            for number in batch:
                self.proto.dele(number)
            self._flush()
            for number in batch:
                event = self._next()
                if not isinstance(event, pop3.Reply) or not event.ok:
                    raise TempFailure(f"{self.conn.where}: DELE {number} failed: {getattr(event, 'text', event)}")
                marked += 1
        self._quit = True
        self.proto.quit()
        self._reply("QUIT (which commits the deletions)", TempFailure)
        return marked

    @staticmethod
    def public_id(message: ListedMessage) -> str:
        return message.id

    def close(self) -> None:
        if self.conn is not None and self.proto is not None and not self._quit:
            try:
                self.proto.quit()
                self._flush()
                self._next()
            except MimekitError:
                pass
        super().close()
