"""`mimekit queue list|run|retry|hold|release|drop`, and what `send --queue` does.

Thin by design: mimekit.queue keeps the entries and delivers them; this module parses
options, prints one line per fact on stderr (or one JSON document on stdout) and picks
the exit code. docs/queue.md describes the queue and every JSON field.
"""

import datetime
import functools
import signal
import sys
import threading
import time

import click

from mimekit.errors import NoInputError, UsageError
from mimekit.queue import (DONE, FAILED, PENDING, Entry, Queue, RunReport, default_queue_directory, deliver_queue,
                           next_due, watch_queue)
from mimekit.queue.store import QUEUE_SCHEMES
from mimekit_cli.common import (EXIT_PRECEDENCE, emit_json, exit_code_for, human_size, json_option,
                                print_diagnostic, reporting, stdin_if_dash, text_table)

EXIT_TEMPFAIL, EXIT_UNAVAILABLE, EXIT_DATAERR = 75, 69, 65
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

QUEUE_DIR_HELP = "The queue directory (default: $XDG_STATE_HOME/mimekit/queue)."


def _duration(ctx, param, value: str) -> float:
    unit = value[-1:].lower()
    number = value[:-1] if unit in DURATION_UNITS else value
    if not number.isdigit() or not int(number):
        raise click.BadParameter(f"{value!r}: expected a positive number with s, m, h, d or w (5d)", ctx, param)
    return int(number) * DURATION_UNITS.get(unit, 1)


def _stamp(epoch: float | None) -> str | None:
    """ISO 8601 in UTC, to the second."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _recipient_json(recipient, attempted: bool | None = None) -> dict:
    document = {"address": recipient.address, "state": recipient.state, "attempts": recipient.attempts,
                "next_attempt": _stamp(recipient.next_attempt) if recipient.state == PENDING else None,
                "last_reply": recipient.last_reply, "server_queue_id": recipient.server_queue_id,
                "transfer": recipient.transfer}
    if attempted is not None:
        document["attempted"] = attempted
    return document


def _entry_json(queue: Queue, entry: Entry, now: float) -> dict:
    return {"id": entry.id, "status": "failed" if entry.failed else "held" if entry.held else "queued",
            "created": _stamp(entry.created), "age_seconds": int(now - entry.created),
            "size": queue.message_size(entry), "server": entry.server, "user": entry.user,
            "sender": entry.sender, "source": entry.source,
            "next_attempt": None if entry.failed or entry.held else _stamp(entry.next_attempt),
            "recipients": [_recipient_json(r) for r in entry.recipients]}


def _transfer_text(transfer: dict | None) -> str:
    """How an mx: recipient's last session went: "verified TLS (verify) mx.example.org"."""
    return f"{transfer['result']} ({transfer['policy']}) {transfer['exchanger']}" if transfer else "-"


def _open_queue(directory: str | None) -> Queue:
    return Queue(directory or default_queue_directory())


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


# -- the group -----------------------------------------------------------------------------

@click.group("queue")
def queue_command():
    """The outgoing queue: mail spooled by `send --queue`, delivered by `queue run`.

    Each entry keeps the message and, per recipient, its state: pending (to be tried,
    again after 5 min, 10, 20 ... up to 4 h, jittered), done, or failed (a 5xx reply, or
    pending past --max-age). An entry leaves the queue once every recipient is done or
    failed; one with failures is kept under DIR/failed/ with the reasons. See docs/queue.md.
    """


LIST_JSON_HELP = """List the queue's entries: queued, held, and failed ones (DIR/failed/).

\b
With --json, one document (schema "mimekit.queue-list/1"):
  queue             the queue directory
  entries[]         oldest first:
    id              the entry's id (for retry, hold, release, drop)
    status          "queued", "held" or "failed"
    created         when it was queued (ISO 8601, UTC); age_seconds: since then
    size            bytes of the message as it will be sent
    server, user    where it goes (smtp://, smtps:// or smtp+plain://HOST:PORT, or
                    mx:POLICY: each recipient domain's exchangers) and the login
    sender, source  the envelope sender; the file it was queued from
    next_attempt    when the next try is due (null: held or failed)
    recipients[]    address, state ("pending", "done", "failed"), attempts,
                    next_attempt (pending ones), last_reply {code, enhanced, text}
                    of the last try (null before the first), server_queue_id
                    (what the server called it, once accepted), transfer (mx:
                    entries: {exchanger, address, policy, result} of the session
                    that last answered for it, result "verified TLS", "unverified
                    TLS" or "plaintext"; null otherwise)
"""


@queue_command.command("list", help=LIST_JSON_HELP)
@json_option
@click.argument("directory", required=False, metavar="[DIR]")
def list_command(as_json, directory):
    with reporting("queue-list", as_json), _open_queue(directory) as queue:
        now = time.time()
        listed = sorted(_listed_entries(queue, now), key=lambda pair: pair[0].created)
        if as_json:
            emit_json("queue-list", {"queue": queue.path, "entries": [document for _, document in listed]})
            return
        rows = [("ID", "AGE", "SIZE", "STATUS", "NEXT ATTEMPT", "RECIPIENT", "STATE", "TLS", "LAST REPLY")]
        for entry, document in listed:
            for index, recipient in enumerate(entry.recipients):
                head = ((entry.id, _age(now - entry.created), human_size(document["size"], short=True),
                         document["status"], document["next_attempt"] or "-") if index == 0 else ("",) * 5)
                rows.append(head + (recipient.address, f"{recipient.state}/{recipient.attempts}",
                                    _transfer_text(recipient.transfer),
                                    recipient.reply_text[:100]))
        if len(rows) > 1:
            click.echo("\n".join(text_table(rows)))


def _listed_entries(queue: Queue, now: float) -> list[tuple[Entry, dict]]:
    """Each entry, queued then failed, with its JSON document. One that a run finishes or
    moves to failed/ while it is listed is left out (moved, it is met again in failed/)."""
    listed = []
    for failed in (False, True):
        for entry_id in queue.ids(failed):
            try:
                entry = queue.read(entry_id, failed)
                listed.append((entry, _entry_json(queue, entry, now)))
            except (NoInputError, FileNotFoundError):
                continue
    return listed


RUN_JSON_HELP = """Deliver every entry that is due; meant for cron or a systemd timer.

Entries to the same server and login go over one connection. Each message's state is
recorded (fsync'd) as soon as the server's final reply is read: a run killed between
that reply and the recording sends that one message again next time (never more than
one per kill), and nothing is ever lost. Two runs at once never send the same entry.

Exit 0 when the queue holds nothing more to deliver, 75 when deferred entries remain
(try again later), 69 when a recipient failed in this run (see DIR/failed/).

\b
With --json, one document (schema "mimekit.queue-run/1"):
  queue           the queue directory
  entries[]       each entry this run looked at:
    id, server
    status        now: "done" (left the queue), "queued" (deferred),
                  "failed" (moved to DIR/failed/), "busy" (another run has it)
    recipients[]  as in queue list, with attempted (tried in this run)
  unreadable[]    {id, message} of state files that could not be read
  bounces[]       {id, path}: the failure reports written (--bounce)
  bounce_errors[] {id, message}: reports that could not be written (the
                  entry stays in the queue until one can)
  delivered, deferred, failed   recipients tried in this run, by outcome
  remaining       entries still waiting (held ones, and those another run is delivering, aside);
                  held: held entries
"""


@queue_command.command("run", help=RUN_JSON_HELP)
@click.option("--max-age", default="5d", show_default=True, callback=_duration, metavar="AGE",
              help="Give up on recipients still pending after this long (s, m, h, d, w).")
@click.option("--password-command", metavar="CMD",
              help="Command whose first output line is the password for entries with a user "
                   "(else the command given to send --queue, the account's, MIMEKIT_PASSWORD, ~/.netrc, "
                   "the config file).")
@click.option("--token-command", metavar="CMD",
              help="Command whose first output line is the OAuth2 access token for entries with a user "
                   "(default: the command given to send --queue, else the token_command of the account an "
                   "entry was queued for, unless --password-command is given).")
@click.option("--bounce", metavar="MAILDIR",
              help="Write a delivery status report (RFC 3464) into this Maildir (created if missing; "
                   "or maildir:PATH, mbox:PATH) for each entry that leaves the queue with failed recipients.")
@click.option("--watch", is_flag=True,
              help="Stay up: deliver entries as they arrive and as retries fall due, until SIGTERM or "
                   "SIGINT (the message in flight is finished and recorded first).")
@json_option
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the summary on stderr.")
@click.argument("directory", required=False, metavar="[DIR]")
def run_command(max_age, password_command, token_command, bounce, watch, as_json, quiet, directory):
    with reporting("queue-run", as_json), _open_queue(directory) as queue:
        if watch and as_json:
            raise UsageError("--watch runs until stopped; it prints no JSON document")
        password, mailbox = _password(password_command), _bounce_mailbox(bounce) if bounce else None
        token = _token(password_command, token_command)

        def deliver(stop=lambda: False) -> RunReport:
            return deliver_queue(queue, max_age=max_age, password=password, stop=stop,
                                 on_unencrypted=_warn_unencrypted, bounce=mailbox, token=token)

        if watch:
            sys.exit(_watch(queue, deliver, quiet))
        report = deliver()
        _report_run("queue-run", queue, report, as_json, quiet)
        sys.exit(_run_exit_code(report))


def _bounce_mailbox(location: str):
    """A plain path is a Maildir, made if missing; a store URL names its kind."""
    from mimekit.stores import Maildir, open_mailbox
    from mimekit.transport.urls import LOCAL_STORES
    if location.partition(":")[0].lower() in LOCAL_STORES:
        return open_mailbox(location)
    return Maildir(location)


def _watch(queue: Queue, deliver, quiet: bool) -> int:
    """Deliver until SIGTERM or SIGINT, then return the exit code: 75 while entries wait,
    else 0. A signal stops the run between messages: the one in flight is finished and
    recorded, no further one is started, and the connection is closed properly."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    watch_queue(queue, deliver, stopping, lambda report: _report_run("queue-run", queue, report, False, quiet))
    waiting = next_due(queue) is not None
    if not quiet:
        print_diagnostic("queue-run", "stopped" + ("; entries still wait in the queue" if waiting else ""))
    return EXIT_TEMPFAIL if waiting else 0


def _password(password_command: str | None):
    """The look-up for an entry's login: the command given here, else the one given when the
    entry was queued, else the password command of its account, else the usual sources."""
    from mimekit.accounts import resolve_account
    from mimekit.transport.secrets import resolve_password

    def look_up(user: str, host: str, account: str | None, queued_command: str | None) -> str:
        command = password_command or queued_command or (account and resolve_account(account).password_command)
        return resolve_password(user, host, command or None)
    return look_up


def _token(password_command: str | None, token_command: str | None):
    """The OAuth2 look-up for an entry's login: the command given here, else the one given
    when the entry was queued, else the token command of its account, unless a password
    command was given here (then the login takes a password, as send's does: cli/common.py
    lazy_token)."""
    if password_command and token_command:
        raise UsageError("--password-command and --token-command exclude each other: give one")
    from mimekit.accounts import resolve_account
    from mimekit.transport.secrets import resolve_token

    def look_up(user: str, host: str, account: str | None, queued_command: str | None):
        if password_command:
            return None
        command = token_command or queued_command or (account and resolve_account(account).token_command)
        return functools.partial(resolve_token, command) if command else None
    return look_up


def _warn_unencrypted(server: str) -> None:
    print_diagnostic("queue", f"warning: {server} offers no STARTTLS; sending WITHOUT encryption "
                              "because the entry was queued with --insecure-plaintext-auth")


def _run_exit_code(report: RunReport) -> int:
    """A report that could not be written comes first: the run itself failed to do its job."""
    if report.bounce_errors:
        return exit_code_for(report.bounce_errors[0][1])
    codes = set()
    if report.unreadable:
        codes.add(EXIT_DATAERR)
    if report.recipients(FAILED):
        codes.add(EXIT_UNAVAILABLE)
    if report.remaining:
        codes.add(EXIT_TEMPFAIL)
    return next((code for code in EXIT_PRECEDENCE if code in codes), 0)


def _report_run(command: str, queue: Queue, report: RunReport, as_json: bool, quiet: bool,
                extra: dict | None = None) -> None:
    if as_json:
        emit_json(command, {
            "queue": queue.path, **(extra or {}),
            "entries": [{"id": o.id, "server": o.server, "status": o.status,
                         "recipients": [_recipient_json(r, r.address in o.attempted) for r in o.recipients]}
                        for o in report.outcomes],
            "unreadable": [{"id": entry_id, "message": why} for entry_id, why in report.unreadable],
            "bounces": [{"id": entry_id, "path": path} for entry_id, path in report.bounces],
            "bounce_errors": [{"id": entry_id, "message": str(error)} for entry_id, error in report.bounce_errors],
            "delivered": report.recipients(DONE), "deferred": report.recipients(PENDING),
            "failed": report.recipients(FAILED), "remaining": report.remaining, "held": report.held})
        return
    for entry_id, why in report.unreadable:
        print_diagnostic(command, f"{entry_id}: unreadable: {why}")
    for entry_id, path in report.bounces:
        print_diagnostic(command, f"{entry_id}: failure report written to {path}")
    for entry_id, error in report.bounce_errors:
        print_diagnostic(command, f"{entry_id}: cannot write its failure report ({error}); it stays in the "
                                  "queue until a run can")
    for outcome in report.outcomes:
        if outcome.status == "busy":
            if not quiet:
                print_diagnostic(command, f"{outcome.id}: being delivered by another run")
            continue
        for recipient in outcome.recipients:
            if recipient.address not in outcome.attempted:
                continue
            reply = recipient.reply_text
            if recipient.state == FAILED:
                print_diagnostic(command, f"{outcome.id}: {recipient.address} failed: {reply}")
            elif not quiet and recipient.state == PENDING:
                print_diagnostic(command, f"{outcome.id}: {recipient.address} deferred until "
                                          f"{_stamp(recipient.next_attempt)}: {reply}")
            elif not quiet:
                print_diagnostic(command, f"{outcome.id}: {recipient.address} delivered: {reply}")
    if report.outcomes or not quiet:
        print_diagnostic(command, f"{report.recipients(DONE)} delivered, {report.recipients(PENDING)} deferred, "
                                  f"{report.recipients(FAILED)} failed; {report.remaining} entries waiting"
                                  + (f", {report.held} held" if report.held else ""))


# -- retry, hold, release, drop ----------------------------------------------------------------

def _entry_command(name: str, summary: str):
    """A command that changes the entries named by id, each under its lock."""
    def decorator(change):
        @queue_command.command(name, help=summary)
        @click.option("-d", "--dir", "directory", metavar="DIR", help=QUEUE_DIR_HELP)
        @click.argument("ids", nargs=-1, required=True, metavar="ID...")
        def command(directory, ids):
            with reporting(f"queue-{name}"), _open_queue(directory) as queue:
                for entry_id in ids:
                    with queue.lock_or_fail(entry_id) as locked:
                        print_diagnostic(f"queue-{name}", f"{entry_id}: {change(locked)}")
        return command
    return decorator


@_entry_command("retry", "Make the entries' pending recipients due now (the next `queue run` tries them); "
                         "a failed entry goes back into the queue, its failed recipients pending again "
                         "and its age starting over.")
def _retry(locked) -> str:
    now = time.time()
    if locked.entry.failed:
        addresses = [r.address for r in locked.entry.recipients if r.state == FAILED]
        locked.requeue(now)
        return f"back in the queue, due now for {', '.join(addresses)}"
    for recipient in locked.entry.pending:
        recipient.next_attempt = now
    locked.save()
    return "due now"


@_entry_command("hold", "Keep the entries in the queue without trying them, until `queue release`.")
def _hold(locked) -> str:
    locked.entry.held = True
    locked.save()
    return "held"


@_entry_command("release", "Let held entries be delivered again (at their next attempt).")
def _release(locked) -> str:
    locked.entry.held = False
    locked.save()
    return "released"


@_entry_command("drop", "Remove the entries (queued or failed) and their messages for good.")
def _drop(locked) -> str:
    locked.remove()
    return "dropped"


# -- send --queue ----------------------------------------------------------------------------

def send_queued(queue_dir: str, server: str | None, account_name: str | None, user, password_command, token_command,
                cafile, timeout, as_json, quiet, allow_insecure, sender, recipients, extract, files) -> None:
    """`send --queue`: every message spooled durably first, then one try now. Exit 0 once
    queued, whatever the try gave, unless a recipient was refused for good (69). DIR: the
    one given, else the account's queue_dir, else the default."""
    from mimekit.accounts import resolve_settings
    from mimekit.transport.smtp.envelope import prepare_message
    with reporting("send", as_json):
        if files.count("-") > 1:
            raise UsageError("stdin (-) can be read only once")
        settings = resolve_settings(account_name, server, QUEUE_SCHEMES, user=user, password_command=password_command,
                                    cafile=cafile, timeout=timeout)
        account = settings.account
        url = settings.url
        sender = settings.from_address if sender is None else sender   # "" is the null sender, given
        messages = [prepare_message(path, sender, recipients, extract, stream=stdin_if_dash(path)) for path in files]
        for message in messages:   # every message checked before any is queued, as send does
            if message.refused:
                raise message.refused
            if not message.recipients:
                where = "in its To, Cc and Bcc (or Resent-) fields" if extract else "given"
                raise UsageError(f"{message.source}: no recipient {where}")
        with _open_queue(queue_dir or (account.queue_dir if account else None)) as queue:
            ids = [queue.spool(message, url, cafile=settings.cafile, timeout=settings.timeout,
                               allow_insecure=allow_insecure, account=account.name if account else None,
                               password_command=password_command, token_command=token_command).id
                   for message in messages]
            _try_queued(queue, messages, ids, settings.password_command, _token(password_command, token_command),
                        as_json, quiet)


def _try_queued(queue: Queue, messages, ids: list[str], password_command, token, as_json: bool, quiet: bool) -> None:
    if not quiet and not as_json:
        for message, entry_id in zip(messages, ids):
            print_diagnostic("send", f"{message.source}: queued as {entry_id} in {queue.path}")
    report = deliver_queue(queue, only=ids, ignore_backoff=True, password=_password(password_command), token=token,
                           on_unencrypted=_warn_unencrypted)
    _report_run("send", queue, report, as_json, quiet, extra={"queued": ids})
    if report.recipients(PENDING) and not as_json:
        print_diagnostic("send", "deferred mail stays queued: `mimekit queue run` delivers it later")
    sys.exit(EXIT_UNAVAILABLE if report.recipients(FAILED) else 0)


COMMANDS = [queue_command]
