"""IMAP as a fetch source (RFC 3501), and `mimekit folders`: log in over TLS, select the
folder, then list, describe, retrieve and delete by UID. The protocol itself is
imap/protocol.py's (sans-IO), the event pump driver.py's.
"""

# Annotations stay unevaluated: the list() method would shadow list[...] in them.
from __future__ import annotations

import time
from functools import partial
from typing import Callable, Iterator

from mimekit.transport.imap import protocol as imap
from mimekit.transport.connection import DEFAULT_TIMEOUT, Unreachable
from mimekit.errors import AuthError, MimekitError, ProtocolError, TempFailure, UnavailableError, UsageError
from mimekit.fetch.message import HEADER_LIMIT, ListedMessage, message_id_of
from mimekit.transport.driver import Driver, login_failure
from mimekit.transport.sansio import NEED_DATA
from mimekit.transport.sasl import (ServerError, choose_mechanism, error_answer, initial_response,
                                    log_in_with_token, oauth2_failure)
from mimekit.transport.urls import ServerURL

IMAP_BATCH = 100          # UIDs per UID FETCH of bodies
IMAP_IN_FLIGHT_BYTES = 8 * 1024 * 1024   # bodies asked for and not yet read, about (_in_flight)
IMAP_MAX_IN_FLIGHT = 10   # UID FETCH commands of bodies asked for and not completed, at most
IMAP_DESCRIBE_BATCH = 5000
IMAP_STORE_BATCH = 1000   # UIDs per UID STORE, MOVE, COPY or EXPUNGE
IDLE_WAKE = 0.25          # seconds between looks at `stopping` while in IDLE


class IMAPClient(Driver):
    """Connect, secure, log in, select; then list, describe, retrieve and delete by UID."""

    id_kind = "uid"
    stable_ids = True
    lists_everything = False   # SEARCH results are a selection, not the whole mailbox

    def __init__(self, url, cafile, timeout):
        super().__init__(url, cafile, timeout)
        self.folder = url.path or "INBOX"
        self.validity: int | None = None
        self._status_unused = False    # the SELECT's UIDNEXT not yet compared (unchanged_since)

    @property
    def account(self) -> str:
        return f"imap://{self.url.user}@{self.url.host}/{self.folder}"

    def open(self, password: Callable[[], str] | None, read_only: bool = True,
             token: Callable[[], str] | None = None) -> None:
        self.login(password, token)
        self.select(read_only)

    def login(self, password: Callable[[], str] | None, token: Callable[[], str] | None = None) -> None:
        """Log in with `password()`, or with OAuth2 (sasl.py) when `token` is given: each
        asked for only once the connection is encrypted and the server can take it."""
        self._connect()
        self.proto = imap.IMAPProtocol(whole_fetches=True)
        greeting = self._next()
        if not isinstance(greeting, imap.Greeting):
            raise ProtocolError(f"{self.conn.where}: no IMAP greeting")
        if greeting.status == "BYE":
            raise Unreachable(f"{self.conn.where}: IMAP server refused the connection: {greeting.text}")
        if self.needs_starttls:
            if greeting.status == "PREAUTH":
                raise AuthError(f"{self.conn.where}: PREAUTH on an unencrypted connection is refused "
                                "(STARTTLS is impossible after it)")
            self._require_tls("STARTTLS" in self._capabilities())
            self._expect_ok(self.proto.starttls(), "STARTTLS")
            self.conn.start_tls()
        if greeting.status == "PREAUTH":
            return
        capabilities = self._capabilities()
        user = self.url.user
        if not user:
            raise UsageError("no user name: give USER@HOST in the URL or a user")
        if token is not None:
            mechanism = choose_mechanism((c[5:] for c in capabilities if c.startswith("AUTH=")), self.conn.where)
            completion = log_in_with_token(partial(self._authenticate_oauth2, mechanism, user), token)
        else:
            completion = self._log_in_with_password(user, password, capabilities)
        if not completion.code or completion.code.name != "CAPABILITY":
            self._capabilities(refresh=True)

    def _log_in_with_password(self, user: str, password: Callable[[], str] | None,
                              capabilities: frozenset[str]) -> imap.Completion:
        secret = password() if password else ""
        if "AUTH=PLAIN" in capabilities:
            tag, what = self.proto.authenticate_plain(user, secret), "AUTHENTICATE PLAIN"
        elif "LOGINDISABLED" in capabilities:
            raise AuthError(f"{self.conn.where}: the server offers neither AUTH=PLAIN nor LOGIN")
        else:
            tag, what = self.proto.login(user, secret), "LOGIN"
        completion = self._wait(tag)
        if not completion.ok:
            raise login_failure(f"{what} as {user}", completion.text,
                                completion.code.name if completion.code else None)
        return completion

    def _authenticate_oauth2(self, mechanism: str, user: str, token: str) -> imap.Completion:
        """One AUTHENTICATE exchange; a "+" after our response is the server's error
        (RFC 7628 §3.2.3), answered so that the tagged NO follows."""
        response = initial_response(mechanism, user, token, self.url.host, self.url.port)
        errors: list[ServerError] = []

        def answer_error(event) -> None:
            if isinstance(event, imap.Continuation):
                errors.append(ServerError.from_challenge(event.text))
                self.proto.continue_authentication(error_answer(mechanism))

        completion = self._wait(self.proto.authenticate(mechanism, response), answer_error)
        if not completion.ok:
            code = completion.code.name if completion.code else None
            raise oauth2_failure(errors[-1] if errors else None,
                                 login_failure(f"AUTHENTICATE {mechanism} as {user}", completion.text, code))
        return completion

    def _capabilities(self, refresh: bool = False) -> frozenset[str]:
        if refresh or not self.proto.capabilities:
            self._expect_ok(self.proto.capability(), "CAPABILITY")
        return self.proto.capabilities

    def select(self, read_only: bool) -> None:
        """SELECT (or EXAMINE) with CONDSTORE when offered, so HIGHESTMODSEQ comes with it."""
        condstore = "CONDSTORE" in self.proto.capabilities
        completion = self._wait(self.proto.select(self.folder, read_only, condstore))
        self._status_unused = True
        if not completion.ok:
            raise UnavailableError(f"cannot open folder {self.folder!r}: {completion.text}")
        self.validity = self.proto.mailbox.uidvalidity
        if self.validity is None:
            raise ProtocolError(f"IMAP server gave no UIDVALIDITY for {self.folder!r}")

    def folders(self) -> list[imap.ListEntry]:
        entries: list[imap.ListEntry] = []
        self._expect_ok(self.proto.list("", "*"), "LIST", _collect(imap.ListEntry, entries.append))
        return entries

    @property
    def uidnext(self) -> int | None:
        """The SELECT's UIDNEXT; None once an EXISTS may have made it past (see protocol)."""
        return self.proto.mailbox.uidnext if self.proto.mailbox else None

    @property
    def highestmodseq(self) -> int | None:
        """The SELECT's HIGHESTMODSEQ (RFC 7162); None without CONDSTORE, or when past."""
        return self.proto.mailbox.highestmodseq if self.proto.mailbox else None

    @property
    def exists(self) -> int:
        """How many messages the folder holds, as the server last said (EXISTS, EXPUNGE)."""
        return self.proto.mailbox.exists if self.proto.mailbox else 0

    def unchanged_since(self, uidnext: int, highestmodseq: int | None) -> bool:
        """True when the SELECT said UIDNEXT and HIGHESTMODSEQ are these: no message came
        since they were taken. Answered once per SELECT: news of mail that comes later
        arrives only in answer to a command, so a later look must send one."""
        unchanged = self._status_unused and (self.uidnext, self.highestmodseq) == (uidnext, highestmodseq)
        self._status_unused = False
        return unchanged

    def list(self, criteria: str | None) -> list[str]:
        return [str(uid) for uid in self._search(criteria or "ALL")]

    def list_from(self, first_uid: int) -> list[str]:
        """The UIDs from `first_uid` on: UID SEARCH UID n:*, which also names the highest
        UID when that is below n (RFC 3501 §6.4.4: "*" is the largest UID in use), left out."""
        return [str(uid) for uid in self._search(f"UID {first_uid}:*") if uid >= first_uid]

    def _search(self, criteria: str) -> list[int]:
        uids: set[int] = set()
        self._expect_ok(self.proto.uid_search(criteria), "UID SEARCH",
                        _collect(imap.Search, lambda event: uids.update(event.uids)))
        return sorted(uids)

    def describe(self, ids: list[str], with_message_id: bool) -> list[ListedMessage]:
        """Messages by UID; with_message_id asks the server for Message-ID and size before
        any body moves (needed only to match messages after a UIDVALIDITY change)."""
        uids = [int(i) for i in ids]
        if not with_message_id:
            return [ListedMessage(str(uid), uid) for uid in uids]
        wanted = set(uids)
        items = "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
        found: dict[int, ListedMessage] = {}
        for start in range(0, len(uids), IMAP_DESCRIBE_BATCH):
            tag = self.proto.uid_fetch(imap.uid_set(uids[start:start + IMAP_DESCRIBE_BATCH]), items)
            header = bytearray()
            while True:
                event = self._next()
                if isinstance(event, (imap.FetchBodyChunk, imap.FetchWhole)) and len(header) < HEADER_LIMIT:
                    header += event.data
                if isinstance(event, (imap.Fetch, imap.FetchWhole)):
                    uid = event.items.get("UID")
                    if uid in wanted:             # else an unsolicited FLAGS update, not ours
                        found[uid] = ListedMessage(str(uid), uid, event.items.get("RFC822.SIZE"),
                                             header_id=message_id_of(bytes(header)))
                    header.clear()
                elif self._completed(event, tag, "UID FETCH", tolerate_no=True):
                    break
        return [found[uid] for uid in uids if uid in found]

    def retrieve(self, messages: list[ListedMessage], headers_only: bool) -> Iterator[tuple[ListedMessage, Iterator[bytes]]]:
        """Bodies in batches of IMAP_BATCH UIDs, later batches requested before this one is
        read (_in_flight), so the server never waits for us between batches. FLAGS and
        RFC822.SIZE come in the same response; they are used as sent before the body
        (Dovecot, like most servers, sends items in the order asked), and the UID must
        precede it."""
        by_uid = {m.number: m for m in messages}
        section = "BODY.PEEK[HEADER]" if headers_only else "BODY.PEEK[]"
        items = f"(UID FLAGS RFC822.SIZE {section})"
        batches = [messages[i:i + IMAP_BATCH] for i in range(0, len(messages), IMAP_BATCH)]
        in_flight = []
        largest: int | None = None      # the largest body received so far
        for index in range(len(batches)):
            window = _in_flight(largest)
            while len(in_flight) < window and index + len(in_flight) < len(batches):
                batch = batches[index + len(in_flight)]
                in_flight.append(self.proto.uid_fetch(imap.uid_set(m.number for m in batch), items))
            self._flush()
            tag = in_flight.pop(0)
            while True:
                event = self._next()
                kind = type(event)
                if kind is imap.FetchWhole or kind is imap.FetchBodyStart:
                    uid = event.items.get("UID")
                    if uid is None:
                        raise ProtocolError(f"{self.conn.where}: the server sent a message body before "
                                            "its UID, so it cannot be told which message it is")
                    body = iter((event.data,) if event.data else ()) if kind is imap.FetchWhole else self._body()
                    size = len(event.data) if kind is imap.FetchWhole else event.size
                    largest = size if largest is None else max(largest, size)
                    planned = by_uid.pop(uid, None)
                    if planned is not None:
                        yield ListedMessage(planned.id, uid, event.items.get("RFC822.SIZE", planned.size),
                                      event.items.get("FLAGS", ()), planned.header_id), body
                    for _ in body:        # drain whatever the consumer left (or a body not asked for)
                        pass
                elif kind is not imap.Fetch and self._completed(event, tag, "UID FETCH", tolerate_no=True):
                    break

    def _body(self) -> Iterator[bytes]:
        while True:
            event = self._next()
            if isinstance(event, imap.FetchBodyChunk):
                yield event.data
            elif isinstance(event, imap.FetchBodyEnd):
                return

    def delete(self, ids: list[str]) -> int:
        """Remove these messages for good: \\Deleted, then UID EXPUNGE of exactly them."""
        self.check_removals(deleting=True, moving=False)
        counter = _RemovalCounter()
        for uids in _uid_batches(ids):
            self._expect_ok(self.proto.uid_store(uids, "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE")
            self._expect_ok(self.proto.uid_expunge(uids), "UID EXPUNGE", counter)
        return counter.expunged

    def check_removals(self, deleting: bool, moving: bool) -> None:
        """Refuse, before anything changes, to remove messages without UIDPLUS (RFC 4315):
        a plain EXPUNGE would also remove every other message marked \\Deleted in the
        folder, by the user or another client. One rule for deleting and for moving (which
        needs no expunge when the server offers MOVE)."""
        capabilities = self.proto.capabilities
        if deleting:
            what = "deleting"
        elif moving and "MOVE" not in capabilities:
            what = "moving (without MOVE, RFC 6851)"
        else:
            return
        if "UIDPLUS" not in capabilities:
            raise UnavailableError(f"{self.conn.where}: the server offers no UIDPLUS, so {what} would take a plain "
                                   f"EXPUNGE, which also removes the other messages marked \\Deleted in "
                                   f"{self.folder!r}; nothing was changed on the server")

    def store_flags(self, ids: list[str], add: tuple[str, ...], remove: tuple[str, ...]) -> None:
        """Add and remove flags (IMAP names: \\Seen, keywords) on these messages."""
        for uids in _uid_batches(ids):
            for action, flags in (("+FLAGS.SILENT", add), ("-FLAGS.SILENT", remove)):
                if flags:
                    self._expect_ok(self.proto.uid_store(uids, action, f"({' '.join(flags)})"), "UID STORE")

    def move(self, ids: list[str], folder: str) -> int:
        """Move these messages to `folder`: UID MOVE (RFC 6851) when offered, else UID COPY,
        \\Deleted and UID EXPUNGE of exactly them (see check_removals). A NO (no such
        folder: [TRYCREATE]) is UnavailableError and moves nothing. Returns how many moved."""
        self.check_removals(deleting=False, moving=True)
        moved = 0
        for uids in _uid_batches(ids):
            counter = _RemovalCounter()
            if "MOVE" in self.proto.capabilities:
                self._expect_ok(self.proto.uid_move(uids, folder), f"UID MOVE to {folder!r}", counter)
            else:
                counter(self._expect_ok(self.proto.uid_copy(uids, folder), f"UID COPY to {folder!r}", counter))
                self._expect_ok(self.proto.uid_store(uids, "+FLAGS.SILENT", "(\\Deleted)"), "UID STORE")
                self._expect_ok(self.proto.uid_expunge(uids), "UID EXPUNGE", counter)
            moved += min(counter.moved, imap.uid_set_size(uids))
        return moved

    def noop(self) -> None:
        """NOOP: the server's chance to report what changed in the folder (RFC 3501 §6.1.2).
        Dovecot shows a delivery to an open session's UID SEARCH only after a NOOP or an
        IDLE, so a session that looks again without IDLE sends one first."""
        self._expect_ok(self.proto.noop(), "NOOP")

    @property
    def can_idle(self) -> bool:
        return "IDLE" in self.proto.capabilities

    def idle(self, seconds: float, stopping: Callable[[], bool]) -> bool:
        """Wait in IDLE (RFC 2177) until the server reports anything about the mailbox (new
        mail, an expunge, a flag change), `seconds` pass, or `stopping()` turns true; then
        end it (DONE) and return whether anything was reported. `stopping` is asked at
        least every IDLE_WAKE seconds. The server's keep-alive "* OK" is no change."""
        tag = self.proto.idle()
        self._flush()
        changed = False
        while not isinstance(event := self._next(), imap.Continuation):
            if self._completed(event, tag, "IDLE"):
                return changed    # completed without ever idling
            changed = changed or not isinstance(event, imap.StatusResponse)   # news sent before the "+"
        deadline = time.monotonic() + seconds
        while True:
            # What the protocol holds first: news that came in one read with the "+" is
            # there, not on the socket, which may then stay silent for the whole period.
            while (event := self.proto.next_event()) is not NEED_DATA:
                if self._completed(event, tag, "IDLE"):
                    return True   # the server ended the IDLE itself: look again
                changed = changed or not isinstance(event, imap.StatusResponse)
            if changed or stopping() or (left := deadline - time.monotonic()) <= 0:
                break
            if self.conn.wait(min(left, IDLE_WAKE)):
                self.proto.receive_data(self._receive())
        self.proto.done()
        self._expect_ok(tag, "IDLE")
        return changed

    @staticmethod
    def public_id(message: ListedMessage) -> int:
        return message.number

    def close(self) -> None:
        if self.conn is not None and self.proto is not None:
            try:
                self._wait(self.proto.logout())
            except MimekitError:
                pass              # everything that mattered is done; the server may just hang up
        super().close()

    # -- commands and completions

    def _wait(self, tag: str, collect: Callable[[object], None] | None = None) -> imap.Completion:
        """The completion of `tag`. Untagged responses on the way go to `collect` (the
        protocol has already taken what concerns the mailbox); none is kept here, so what
        a command may draw is bounded by the protocol's limits alone."""
        self._flush()
        while True:
            event = self._next()
            if isinstance(event, imap.Completion) and event.tag == tag:
                return event
            if isinstance(event, imap.ConnectionClosed):
                raise TempFailure(f"{self.conn.where}: IMAP server closed the connection")
            if isinstance(event, imap.StatusResponse) and event.status == "BYE":
                if self.proto.pending_commands() == ["LOGOUT"]:
                    continue
                raise TempFailure(f"{self.conn.where}: IMAP server said BYE: {event.text}")
            if collect is not None:
                collect(event)

    def _expect_ok(self, tag: str, what: str, collect: Callable[[object], None] | None = None) -> imap.Completion:
        completion = self._wait(tag, collect)
        if not completion.ok:
            kind = ProtocolError if completion.status == "BAD" else UnavailableError
            raise kind(f"{self.conn.where}: {what} failed: {completion.status} {completion.text}")
        return completion

    def _completed(self, event, tag: str, what: str, tolerate_no: bool = False) -> bool:
        """True at the completion of `tag`; raise on BYE, a dropped connection, or BAD."""
        if isinstance(event, imap.Completion) and event.tag == tag:
            if event.status == "BAD" or (event.status == "NO" and not tolerate_no):
                raise ProtocolError(f"{self.conn.where}: {what} failed: {event.status} {event.text}")
            return True
        if isinstance(event, imap.ConnectionClosed):
            raise TempFailure(f"{self.conn.where}: IMAP server closed the connection")
        if isinstance(event, imap.StatusResponse) and event.status == "BYE":
            raise TempFailure(f"{self.conn.where}: IMAP server said BYE: {event.text}")
        return False


def _in_flight(largest: int | None) -> int:
    """How many batches of bodies to have asked for and not yet read, the one being read
    included: two until a body has arrived; then as many as make about IMAP_IN_FLIGHT_BYTES
    of bodies as large as the largest so far, from two to IMAP_MAX_IN_FLIGHT. A distant
    server then streams small messages without a round trip per batch (bench_fetch's
    far-server row), while a run stopped early (fetch --watch's SIGTERM), which must still
    read what it asked for before the session can log out, reads about that much, more
    only when the batches already asked for hold larger messages than any read so far."""
    if largest is None:
        return 2
    return max(2, min(IMAP_MAX_IN_FLIGHT, IMAP_IN_FLIGHT_BYTES // (max(largest, 1) * IMAP_BATCH)))


def _uid_batches(ids: list[str]) -> Iterator[str]:
    """UID sets of at most IMAP_STORE_BATCH messages each, so no command line grows past
    what servers take (Dovecot: 64 KiB) however scattered the UIDs."""
    uids = sorted(int(i) for i in ids)
    for start in range(0, len(uids), IMAP_STORE_BATCH):
        yield imap.uid_set(uids[start:start + IMAP_STORE_BATCH])


class _RemovalCounter:
    """A `collect` that counts what a MOVE, COPY or EXPUNGE removed or moved: the source
    set of the server's COPYUID (UIDPLUS, RFC 4315 §3; MOVE sends it untagged, COPY in
    its OK, which is passed in too), else the EXPUNGE responses."""

    def __init__(self):
        self.expunged = 0
        self.copied: int | None = None

    def __call__(self, event) -> None:
        if isinstance(event, imap.Expunge):
            self.expunged += 1
        elif isinstance(event, (imap.StatusResponse, imap.Completion)) and event.code \
                and event.code.name == "COPYUID" and len(event.code.args.split()) == 3:
            self.copied = imap.uid_set_size(event.code.args.split()[1])

    @property
    def moved(self) -> int:
        return self.copied if self.copied is not None else self.expunged


def _collect(event_type: type, take: Callable[[object], None]) -> Callable[[object], None]:
    """A `collect` for _wait that hands `take` the events of one type."""
    def collect(event) -> None:
        if isinstance(event, event_type):
            take(event)
    return collect


def list_folders(url: ServerURL, password: Callable[[], str] | None, cafile: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, token: Callable[[], str] | None = None) -> list[imap.ListEntry]:
    """Every folder of an IMAP account (LIST "" "*"), names decoded from modified UTF-7;
    logged in with `token` (OAuth2) when given, else `password`."""
    client = IMAPClient(url, cafile, timeout)
    try:
        client.login(password, token)
        return client.folders()
    finally:
        client.close()
