"""Delivering the queue: every entry that is due, grouped by server, one connection per group.

Per recipient: accepted (2xx) → done; 4xx, a timeout, a refused or dropped connection, a
failed login → deferred, next try after BACKOFF_FIRST doubling up to BACKOFF_LONGEST, each
delay jittered by ±JITTER so that entries deferred together do not come back together; 5xx
(or a message refused before the server saw it) → failed for that recipient. Past
`max_age` a pending recipient fails without another try.

Exactly once, as far as SMTP allows: each message's state is recorded (fsync'd) as soon as
its final reply is read, before the next message's content is sent. That is why the
connection keeps to DATA (PIPELINING, one round trip per message) even where the server
offers CHUNKING: BDAT pipelining runs dozens of messages ahead of their replies, and a run
killed there would send each of them again. Here a kill between the server's final 250 and
the recording resends that one message once; nothing is ever lost. A message whose
connection drops after its final dot is deferred and sent again (RFC 1047's duplicate).

Two runs never deliver the same entry: each entry is locked (store.py) from the moment it
is picked until its state is recorded, and an entry locked by another run is left to it.

Direct transfer (`mx:` entries, mimekit.transport.mx): the due recipients are grouped by
domain, one session per domain with the first of its exchangers that gives one under the
entry's TLS policy; what that session was (exchanger, policy, "verified TLS" ...) is
recorded with each recipient it answered for. No exchanger answering is a 4xx (deferred); a
domain DNS says takes no mail (NXDOMAIN, a null MX) fails its recipients at once.
"""

import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

from mimekit.errors import DataError, MimekitError, NoInputError, TempFailure
from mimekit.queue.store import DONE, FAILED, PENDING, QUEUE_SCHEMES, Entry, LockedEntry, Queue, RecipientState
from mimekit.transport.mx import ExchangerClient, MXSettings, UndeliverableDomain, mail_domain
from mimekit.transport.secrets import resolve_password
from mimekit.transport.smtp.client import MessageResult, OutgoingMessage, SMTPClient
from mimekit.transport.urls import DIRECT, parse_url

if TYPE_CHECKING:
    from mimekit.stores import Mailbox

BACKOFF_FIRST = 5 * 60
BACKOFF_LONGEST = 4 * 3600
JITTER = 0.1
DEFAULT_MAX_AGE = 5 * 24 * 3600
WATCH_POLL = 5.0   # seconds between looks for new entries when watching the queue


def backoff(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try after `attempts` failed ones: 5 min, 10, 20 ... 4 h, ±10%."""
    delay = min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_LONGEST)
    return delay * (1 - JITTER + 2 * JITTER * rng())


@dataclass
class EntryOutcome:
    """What one run did to one entry: its status now ("done", "queued", "failed", or
    "busy" when another run holds it) and its recipients as recorded."""

    id: str
    server: str
    status: str
    recipients: list[RecipientState] = field(default_factory=list)
    attempted: tuple[str, ...] = ()


@dataclass
class RunReport:
    outcomes: list[EntryOutcome] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)   # (id, why)
    remaining: int = 0      # entries still queued with recipients to deliver (held ones, and those
                            # another run holds locked at the end, aside: that run reports them)
    held: int = 0
    bounces: list[tuple[str, str]] = field(default_factory=list)              # (id, report's path)
    bounce_errors: list[tuple[str, MimekitError]] = field(default_factory=list)   # (id, why not written)

    def add(self, outcome: EntryOutcome) -> None:
        """Record what happened to an entry; an entry met again (an mx: entry's next
        domain) keeps one outcome: its state now, every recipient attempted."""
        earlier = next((o for o in self.outcomes if o.id == outcome.id), None)
        if earlier is None:
            self.outcomes.append(outcome)
        elif outcome.status != "busy":
            earlier.status, earlier.recipients = outcome.status, outcome.recipients
            earlier.attempted += tuple(a for a in outcome.attempted if a not in earlier.attempted)

    def recipients(self, state: str) -> int:
        """Recipients attempted in this run that are now in `state`."""
        return sum(1 for outcome in self.outcomes for r in outcome.recipients
                   if r.address in outcome.attempted and r.state == state)


GroupKey = tuple   # (server, user, cafile, timeout, allow_insecure, account, password_command, token_command,
# domain): what one connection
# serves; domain: the recipients' domain for mx: entries, None for a relay


def _usual_password(user: str, host: str, account: str | None, command: str | None) -> str:
    return resolve_password(user, host, command)


def deliver_queue(queue: Queue, *, now: Callable[[], float] = time.time, max_age: float = DEFAULT_MAX_AGE,
                  password: Callable[[str, str, str | None, str | None], str] | None = None,
                  only: list[str] | None = None,
                  ignore_backoff: bool = False, rng: Callable[[], float] = random.random,
                  on_unencrypted: Callable[[str], None] | None = None, bounce: "Mailbox | None" = None,
                  stop: Callable[[], bool] = lambda: False, mx: MXSettings | None = None,
                  token: Callable[[str, str, str | None, str | None], Callable[[], str] | None] | None = None
                  ) -> RunReport:
    """Deliver every queued entry that is due (`only`: just these ids; `ignore_backoff`:
    due or not). `password(user, host, account, command)` gives the password for an entry's
    login (account: the one it was queued for, or None; command: the password command given
    when it was queued, or None), asked once TLS is up (default: resolve_password's usual
    sources). `on_unencrypted(server)` is called when an entry queued with
    allow_insecure goes out without TLS, so that the caller can say so. `bounce`: a mailbox
    that gets a delivery status notification (bounce.py) for each entry leaving the queue
    with failed recipients. Once `stop()` says so, no further message is started (what is
    in flight is finished and recorded). `mx`: the DNS server and port for mx: entries (default:
    MXSettings.from_environment()). `token(user, host, account, command)`: the OAuth2 token
    look-up for an entry's login (mimekit.transport.sasl; command: the token command given
    when it was queued), or None where the login takes a password.
    `now` and `rng` are the clock and the jitter, for tests."""
    queue.recover()
    clock = now()
    report = RunReport()
    groups: dict[GroupKey, list[str]] = defaultdict(list)
    for entry_id in (queue.ids() if only is None else only):
        try:
            entry = queue.read(entry_id)
        except NoInputError:
            continue   # finished by another run meanwhile
        except DataError as exc:
            report.unreadable.append((entry_id, str(exc)))
            continue
        if not entry.pending:
            _finish(queue, entry_id, bounce, report)
        elif entry.held:
            continue
        elif clock - entry.created > max_age:
            _expire(queue, entry_id, clock, max_age, bounce, report)
        elif ignore_backoff or entry.due(clock):
            due = entry.pending if ignore_backoff else entry.due(clock)
            domains = {mail_domain(r.address) for r in due} if entry.url.scheme == DIRECT else {None}
            for domain in sorted(domains, key=str):
                groups[(entry.server, entry.user, entry.cafile, entry.timeout, entry.allow_insecure,
                        entry.account, entry.password_command, entry.token_command, domain)].append(entry_id)
    for key, entry_ids in groups.items():
        if stop():
            break
        _deliver_group(queue, key, entry_ids, clock, password or _usual_password, ignore_backoff, rng, report,
                       on_unencrypted, bounce, stop, mx, token)
    for entry_id in queue.ids():
        try:
            entry = queue.read(entry_id)
        except (NoInputError, DataError):
            continue
        report.held += entry.held
        report.remaining += bool(entry.pending) and not entry.held and not _in_another_run(queue, entry_id)
    return report


def watch_queue(queue: Queue, deliver: Callable[[Callable[[], bool]], RunReport], stopping: threading.Event,
                on_report: Callable[[RunReport], None], poll: float = WATCH_POLL) -> None:
    """Deliver entries as they arrive and as retries fall due until `stopping` is set (by a
    signal handler, or a server shutting down). `deliver(stop)` is one pass: deliver_queue
    with the caller's settings; a pass stops between messages once `stopping` is set, so the
    message in flight is finished and recorded. `on_report` gets each pass that did anything."""
    while not stopping.is_set():
        report = deliver(stopping.is_set)
        if report.outcomes or report.unreadable or report.bounce_errors:
            on_report(report)
        due = next_due(queue)
        until_due = due - time.time() if due else poll
        # still due after a pass: another process holds it (or it fell due during the pass)
        stopping.wait(min(poll, until_due) if until_due > 0 else poll)


def _in_another_run(queue: Queue, entry_id: str) -> bool:
    """Another runner holds the entry's lock: it is delivering it and reports how it ends
    (two concurrent runs each said 75 for the other's entries in flight)."""
    try:
        locked = queue.lock(entry_id)
    except DataError:
        return False
    if locked is None:
        return True
    locked.unlock()
    return False


def next_due(queue: Queue) -> float | None:
    """When the earliest pending recipient of an entry not held is due (None: nothing queued)."""
    times = []
    for entry_id in queue.ids():
        try:
            entry = queue.read(entry_id)
        except (NoInputError, DataError):
            continue
        if not entry.held and entry.next_attempt is not None:
            times.append(entry.next_attempt)
    return min(times, default=None)


def _settle(locked: LockedEntry, bounce: "Mailbox | None", report: RunReport) -> str:
    """locked.settle(), with the failure report written first when the entry is failing:
    its state is recorded before the report and it moves to failed/ after, so a run killed
    in between leaves it finished in queue/, and the next run writes the report (again, at
    most once per kill) and moves it. A report that cannot be written keeps it there too."""
    entry = locked.entry
    if bounce is not None and not entry.pending and any(r.state == FAILED for r in entry.recipients):
        from mimekit.queue.bounce import write_bounce   # the composer is loaded only for a report
        locked.save()
        try:
            report.bounces.append((entry.id, write_bounce(bounce, locked)))
        except MimekitError as exc:
            report.bounce_errors.append((entry.id, exc))
            return "failed"
    return locked.settle()


def _finish(queue: Queue, entry_id: str, bounce: "Mailbox | None", report: RunReport) -> None:
    """An entry with no recipient pending that is still in queue/: a settle cut short."""
    locked = queue.lock(entry_id)
    if locked is None:
        return
    with locked:
        if not locked.entry.pending:
            report.add(EntryOutcome(entry_id, locked.entry.server, _settle(locked, bounce, report),
                                    locked.entry.recipients))


def _expire(queue: Queue, entry_id: str, clock: float, max_age: float, bounce: "Mailbox | None",
            report: RunReport) -> None:
    locked = queue.lock(entry_id)
    if locked is None:
        return
    with locked:
        entry = locked.entry
        attempted = tuple(r.address for r in entry.pending)
        for recipient in entry.pending:
            last = (recipient.last_reply or {}).get("text") or "never tried"
            recipient.state, recipient.updated = FAILED, clock
            recipient.last_reply = {**(recipient.last_reply or {"code": None, "enhanced": None}),
                                    "text": f"given up after {_days(max_age)} in the queue; last: {last}"}
        report.add(EntryOutcome(entry.id, entry.server, _settle(locked, bounce, report),
                                entry.recipients, attempted))


def _days(seconds: float) -> str:
    return f"{seconds / 86400:g} days" if seconds >= 86400 else f"{seconds:g} s"


def _deliver_group(queue: Queue, key: GroupKey, entry_ids: list[str], clock: float, password, ignore_backoff: bool,
                   rng, report: RunReport, on_unencrypted, bounce: "Mailbox | None", stop: Callable[[], bool],
                   mx: MXSettings | None, token=None) -> None:
    """One connection for the group's entries (for mx: entries, their recipients in the
    group's domain); what a failure of the session leaves unsettled (the message in flight,
    the entries not yet sent) is deferred, or failed when DNS says the domain takes no mail."""
    server, user, cafile, timeout, allow_insecure, account, password_command, token_command, domain = key
    in_flight: deque[tuple[LockedEntry, tuple[str, ...]]] = deque()

    def picked() -> Iterator[OutgoingMessage]:
        for entry_id in entry_ids:
            if stop():
                return
            try:
                locked = queue.lock(entry_id)
            except DataError as exc:
                report.unreadable.append((entry_id, str(exc)))
                continue
            if locked is None:
                report.add(EntryOutcome(entry_id, server, "busy"))
                continue
            due = locked.entry.pending if ignore_backoff else locked.entry.due(clock)
            if locked.entry.held or not due:
                locked.unlock()
                continue
            addresses = tuple(r.address for r in due if domain is None or mail_domain(r.address) == domain)
            if not addresses:   # delivered meanwhile by another run
                locked.unlock()
                continue
            in_flight.append((locked, addresses))
            yield locked.outgoing(list(addresses))

    messages = picked()
    try:
        url = parse_url(server, QUEUE_SCHEMES)
        if domain is None:
            client = SMTPClient(url, cafile=cafile, timeout=timeout, allow_insecure=allow_insecure, chunking=False)
        else:
            client = ExchangerClient(domain, policy=url.tls_policy, settings=mx or MXSettings.from_environment(),
                                     cafile=cafile, timeout=timeout, chunking=False)
        with client:
            if not client.encrypted and on_unencrypted and domain is None and not url.plaintext:
                on_unencrypted(server)
            if user and domain is None:
                oauth2_token = token(user, url.host, account, token_command) if token else None
                if oauth2_token:
                    client.login_oauth2(user, oauth2_token)
                else:
                    client.login(user, password(user, url.host, account, password_command))
            transfer = client.transfer.to_json() if domain is not None else None
            for result in client.send_messages(messages):
                locked, addresses = in_flight.popleft()
                _record(locked, addresses, result, clock, rng, bounce, report, transfer)
    except MimekitError as exc:
        # the rest too gets the reason it was not sent, each locked only while it is recorded:
        # a thousand entries locked at once ran out of file descriptors
        while in_flight or next(messages, None) is not None:
            locked, addresses = in_flight.popleft()
            _record_session_failure(locked, addresses, exc, clock, rng, bounce, report)


def _record(locked: LockedEntry, addresses: tuple[str, ...], result: MessageResult, clock: float, rng,
            bounce: "Mailbox | None", report: RunReport, transfer: dict | None) -> None:
    """The server's replies for one message, recorded at once (fsync'd), then unlocked;
    `transfer`: the mx: session they came from."""
    replies = {r.address: r for r in result.recipients}
    with locked:
        for state in _states(locked.entry, addresses):
            reply = replies.get(state.address)
            state.attempts += 1
            state.updated = clock
            state.transfer = transfer or state.transfer
            if reply is None:   # cannot happen: send_messages answers for every recipient
                _defer(state, {"code": None, "enhanced": None, "text": "no reply"}, clock, rng)
                continue
            last = {"code": reply.code, "enhanced": reply.enhanced, "text": reply.text}
            if reply.accepted:
                state.state, state.last_reply, state.server_queue_id = DONE, last, result.queue_id
            elif reply.code is None:   # refused before the server saw it
                if isinstance(result.error, TempFailure):
                    _defer(state, last, clock, rng)
                else:
                    state.state, state.last_reply = FAILED, last
            elif 400 <= reply.code < 500:
                _defer(state, last, clock, rng)
            else:
                state.state, state.last_reply = FAILED, last
        report.add(EntryOutcome(locked.entry.id, locked.entry.server, _settle(locked, bounce, report),
                                locked.entry.recipients, addresses))


def _record_session_failure(locked: LockedEntry, addresses: tuple[str, ...], error: MimekitError, clock: float,
                            rng, bounce: "Mailbox | None", report: RunReport) -> None:
    """The session failed before this message was settled: try again later, whatever the
    failure (an unreachable server, a refused login and a bad certificate are fixed outside
    mimekit, and the queue's maximum age bounds the wait), unless DNS said the recipients'
    domain takes no mail."""
    with locked:
        for state in _states(locked.entry, addresses):
            state.attempts += 1
            state.updated = clock
            if isinstance(error, UndeliverableDomain):
                state.state = FAILED
                state.last_reply = {"code": None, "enhanced": error.enhanced, "text": str(error)}
            else:
                _defer(state, {"code": error.reply_code, "enhanced": None, "text": str(error)}, clock, rng)
        report.add(EntryOutcome(locked.entry.id, locked.entry.server, _settle(locked, bounce, report),
                                locked.entry.recipients, addresses))


def _states(entry: Entry, addresses: tuple[str, ...]) -> list[RecipientState]:
    return [r for r in entry.recipients if r.address in addresses and r.state == PENDING]


def _defer(state: RecipientState, last: dict, clock: float, rng) -> None:
    state.last_reply = last
    state.next_attempt = clock + backoff(state.attempts, rng)
