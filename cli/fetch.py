"""`mimekit fetch` and `mimekit folders`: thin commands over mimekit.fetch.run.

Decisions (also in --help):
- -o: maildir:PATH or mbox:PATH (flags carried into the Maildir info / mbox Status),
  a plain directory (one NAME.eml per message, bytes as received, never overwriting),
  - (exactly one message on stdout, so --limit 1 is required: a pipe into
  `mimekit decode -` takes one message), or mbox:- (any number of messages on stdout
  as one mboxrd stream, written as -o mbox:PATH would append them and flushed message
  by message, for `| mimekit scan mbox:-`). A stdout output keeps no state, so --new
  (which would find every message new) and --delete (a pipe is not durable storage)
  are refused.
- stdout carries data only: the messages with -o - or mbox:-, the report with --json,
  else nothing; a one-line summary goes to stderr unless -q. --json with a stdout
  output is refused (exit 64): the report would be mixed into the messages, and the
  stderr summary already says what was fetched. Errors then go to stderr too.
- --new keeps its state in $XDG_STATE_HOME/mimekit/fetch/ (see mimekit/fetch/state.py).
- --mark-seen, --flag, --unflag and --move-to are IMAP only and act on this run's messages
  once all are saved (mimekit/fetch/run.py); the saved copies carry the flags the server
  will have. They are allowed with a stdout output, as they lose no mail (--delete is not).
- A failure part way exits with its own code (never 0); with --json the document still
  lists what was fetched before it, next to the error.
"""

import signal
import sys
from datetime import date, datetime

import click

from mimekit.accounts import resolve_settings
from mimekit.errors import MimekitError, UnavailableError, UsageError
from mimekit.fetch.run import FetchOptions, FetchReport, check_options, Fetched, SOURCE_SCHEMES, fetch
from mimekit.fetch.watch import DEFAULT_INTERVAL, ExecHook, Stop, watch
from mimekit.fetch.sinks import MboxStreamSink, StdoutSink, open_sink
from mimekit.transport.imap.client import list_folders
from mimekit_cli.common import (Progress, emit_json, exit_code_for, json_text, lazy_password, lazy_token,
                                network_options, print_diagnostic, printable, reporting)


def _parse_date(text: str) -> date:
    for pattern in ("%Y-%m-%d", "%d-%b-%Y"):
        try:
            return datetime.strptime(text, pattern).date()
        except ValueError:
            pass
    raise UsageError(f"--since {text!r}: expected YYYY-MM-DD (or DD-Mon-YYYY)")


@click.command("fetch", epilog="""\b
-o forms: maildir:PATH | mbox:PATH | DIR (one .eml per message) | mbox:- (many
messages on stdout as one mboxrd stream: `| mimekit scan mbox:-`) | - (one message,
needs --limit 1). stdout keeps no state: with mbox:- or -, --new, --delete and --json
are refused (stdout is the data; the summary goes to stderr). --new keeps
per-account, per-folder, per-output state in $XDG_STATE_HOME/mimekit/fetch/. Nothing
changes on the server without --delete, --mark-seen, --flag, --unflag or --move-to,
and those act only once every message of the run is saved (fsync'd) in the output.

Flags travel with the messages: the server's, plus what --flag/--mark-seen add, minus
what --unflag removes, go into a Maildir's info (:2,FRS...) and an mbox's Status and
X-Status (R seen; A answered, F flagged, T draft, D deleted). Keywords ($Junk...) go
into an mbox's X-Keywords (as Dovecot keeps them) and --json; a Maildir keeps none (its
standard info has no keywords; Dovecot's dovecot-keywords file is not written), and a
DIR of .eml files keeps no flags at all.""")
@click.argument("source", metavar="[SOURCE]", required=False)
@click.option("-o", "--output", default="maildir:./mail", show_default=True, metavar="OUTPUT",
              help="maildir:PATH, mbox:PATH, a directory, mbox:- (stdout, many) or - (stdout, one).")
@click.option("--new", is_flag=True, help="Only messages not fetched into this output before.")
@click.option("--since", metavar="DATE", help="IMAP: messages since DATE (YYYY-MM-DD).")
@click.option("--unseen", is_flag=True, help="IMAP: only messages without \\Seen.")
@click.option("--search", metavar="IMAP-SEARCH", help="IMAP: raw SEARCH criteria (ASCII), ANDed with the above.")
@click.option("--headers-only", is_flag=True, help="Fetch the header block only.")
@click.option("--delete", is_flag=True,
              help="Delete from the source what was saved (IMAP: \\Deleted, then UID EXPUNGE of exactly those, "
                   "which needs UIDPLUS; POP3: DELE; a Maildir "
                   "source too; refused for an mbox source and with --headers-only).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N messages (oldest first).")
@click.option("--mark-seen", is_flag=True, help="IMAP: set \\Seen on the messages saved (same as --flag seen).")
@click.option("--flag", "flag_names", multiple=True, metavar="FLAG",
              help="IMAP: add FLAG on the server to the messages this run saved (not those --new skips), once "
                   "all are saved: seen, answered, flagged, draft, deleted, or a keyword such as $Junk "
                   "(letters, digits, $ _ - .). Repeatable.")
@click.option("--unflag", "unflag_names", multiple=True, metavar="FLAG",
              help="IMAP: remove FLAG from them, as --flag adds it. Repeatable.")
@click.option("--move-to", metavar="FOLDER",
              help="IMAP: move the messages this run saved to FOLDER, after the flags (UID MOVE, else COPY and "
                   "an expunge of exactly those, which needs UIDPLUS). A FOLDER the server refuses (it does "
                   "not exist: create it first) is exit 69, and nothing is moved. Not with --delete.")
@click.option("--watch", is_flag=True,
              help="After fetching, stay and fetch new mail as it arrives (IMAP IDLE, else polling), until "
                   "SIGTERM or Ctrl-C (exit 0); later passes fetch only what is new. Needs a durable -o. With "
                   "--json, JSON Lines: one report per line, for the first pass and each that fetched "
                   "anything. See docs/watch.md.")
@click.option("--interval", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help=f"With --watch: seconds between polls of POP3, local stores and IMAP without IDLE "
                   f"(default {DEFAULT_INTERVAL:g}).")
@click.option("--exec", "exec_command", metavar="CMD",
              help="Run `/bin/sh -c CMD` for each message saved, its path (MBOX:OFFSET in an mbox) in "
                   "$MIMEKIT_MESSAGE and the source in $MIMEKIT_SOURCE, once the message is saved and "
                   "before it is recorded (at least once: a run killed before CMD returned runs it again "
                   "next time); CMD's output is fetch's. CMD runs one at a time with no time limit: fetching "
                   "waits for it (use `timeout 60 ...` in CMD to bound it). A CMD that fails is a warning, "
                   "and the run then exits 69 (a watch goes on). Refused with --json and -o -/mbox:-.")
@network_options
def fetch_command(source, output, new, since, unseen, search, headers_only, delete, limit, mark_seen, flag_names,
                  unflag_names, move_to, watch, interval,
                  exec_command, account_name, user, password_command, token_command, cafile, timeout, as_json,
                  quiet):
    """Fetch mail from SOURCE: imap://USER@HOST[:PORT]/FOLDER, imaps://..., pop3://USER@HOST[:PORT],
    pop3s://..., maildir:PATH or mbox:PATH (default: the account's imap, else pop3, URL).

    imap:// and pop3:// require STARTTLS; certificates are always verified. imap+plain:// and
    pop3+plain:// use no TLS at all, for a server on this machine only (127.0.0.0/8, ::1,
    localhost: e.g. `mimekit serve` without a certificate).
    """
    report = FetchReport()
    to_stdout = output == "-" or output.lower() == "mbox:-"
    with reporting("fetch", as_json and not to_stdout):
        if to_stdout and as_json:
            raise UsageError(f"--json is refused with -o {output}: standard output carries the messages "
                             "(the summary goes to stderr)")
        settings = resolve_settings(account_name, source, SOURCE_SCHEMES, user=user,
                                    password_command=password_command, token_command=token_command,
                                    cafile=cafile, timeout=timeout)
        url = settings.url
        token = lazy_token(settings, password_command, token_command)
        if output == "-" and limit != 1:
            raise UsageError("-o - writes one message: add --limit 1 (or use -o mbox:- for many)")
        options = FetchOptions(new=new, since=_parse_date(since) if since else None, unseen=unseen,
                               search=search, headers_only=headers_only, delete=delete, limit=limit,
                               flag=("seen",) * mark_seen + flag_names, unflag=unflag_names, move_to=move_to)
        check_options(url, options, durable=not to_stdout)   # before -o creates anything
        hook = _exec_hook(exec_command, url, to_stdout, as_json)
        if interval is not None and not watch:
            raise UsageError("--interval is for --watch")
        if to_stdout:
            sink = StdoutSink(sys.stdout.buffer) if output == "-" else MboxStreamSink(sys.stdout.buffer)
        else:
            sink = open_sink(output)
        password = None if url.is_local else lazy_password(url.user, url.host, settings.password_command)
        if watch:
            _watch(url, sink, options, interval, hook, as_json, quiet, password=password, token=token,
                   cafile=settings.cafile, timeout=settings.timeout)
            return
        progress = Progress("fetch", quiet=quiet)
        try:
            fetch(url, sink, options, password=password, token=token, cafile=settings.cafile, timeout=settings.timeout,
                  on_progress=progress.update, report=report, on_saved=hook)
        except MimekitError as exc:
            progress.close()
            if report.fetched and not quiet:
                click.echo(f"mimekit fetch: {len(report.fetched)} message(s) were saved before the error",
                           err=True)
            if not as_json:
                raise
            emit_json("fetch", {**report.as_json(), "error": {"code": exit_code_for(exc), "kind": exc.kind,
                                                               "message": str(exc)}})
            sys.exit(exit_code_for(exc))
        progress.close()
        if as_json:
            emit_json("fetch", report.as_json())
        elif not quiet:
            click.echo(_summary(report), err=True)
        if hook is not None and hook.failures:
            raise UnavailableError(f"--exec: {hook.failures} of {hook.runs} run(s) of the command failed "
                                   "(the messages are saved)")


def _summary(report: FetchReport) -> str:
    return (f"mimekit fetch: {len(report.fetched)} fetched, {report.skipped} skipped, {report.deleted} deleted"
            + (f", {report.vanished} vanished" if report.vanished else "")
            + (f", flags changed on {report.flags_stored}" if report.flags_stored else "")
            + (f", {report.moved} moved to {printable(report.move_target)}" if report.move_target else ""))


# -- --watch, --interval, --exec (mimekit.fetch.watch; decisions in docs/watch.md) -------------------------

def _exec_hook(command: str | None, url, to_stdout: bool, as_json: bool) -> ExecHook | None:
    """The --exec hook, its failures reported on stderr as they happen (a watch goes on)."""
    if command is None:
        return None
    if to_stdout:
        raise UsageError("--exec needs messages saved in files: -o - and mbox:- write to standard output")
    if as_json:
        raise UsageError("--exec is refused with --json: the command's output and the JSON would share "
                         "standard output")

    def warn(fetched: Fetched, status: int) -> None:
        ended = f"was killed by signal {-status}" if status < 0 else f"exited {status}"
        print_diagnostic("fetch", f"--exec: the command {ended} for {fetched.path}")

    return ExecHook(command, url, on_failure=warn)


def _watch(url, sink, options: FetchOptions, interval: float | None, hook: ExecHook | None, as_json: bool,
           quiet: bool, **connection) -> None:
    """fetch --watch until SIGTERM or SIGINT (then exit 0). The first pass and every later
    one that fetched anything are reported as they end: a summary on stderr, or with --json
    one JSON line on stdout (an error that ends the watch is one more, from reporting()).
    Each reconnection is announced on stderr unless -q."""
    stop = Stop()
    signal.signal(signal.SIGTERM, stop.request)
    signal.signal(signal.SIGINT, stop.request)
    progress = Progress("fetch", quiet=quiet)
    first = True

    def report_pass(report: FetchReport) -> None:
        nonlocal first
        if first or report.fetched:
            progress.close()
            if as_json:
                sys.stdout.write(json_text({"schema": "mimekit.fetch/1", **report.as_json()}) + "\n")
                sys.stdout.flush()
            elif not quiet:
                click.echo(_summary(report), err=True)
        first = False

    def announce_retry(exc: MimekitError, delay: float) -> None:
        if not quiet:
            print_diagnostic("fetch", f"{exc}; reconnecting in {delay:g}s")

    watch(url, sink, options, stop, interval=interval or DEFAULT_INTERVAL, on_progress=progress.update,
          on_saved=hook, on_pass=report_pass, on_retry=announce_retry, **connection)
    progress.close()


@click.command("folders")
@click.argument("source", metavar="[imap[s|+plain]://USER@HOST[:PORT]]", required=False)
@network_options
def folders_command(source, account_name, user, password_command, token_command, cafile, timeout, as_json, quiet):
    """List the folders of an IMAP account, one per line (names decoded to UTF-8); without a
    URL, of the account's imap server."""
    with reporting("folders", as_json):
        settings = resolve_settings(account_name, source, {"imap", "imaps", "imap+plain"}, user=user,
                                    password_command=password_command, token_command=token_command,
                                    cafile=cafile, timeout=timeout)
        url = settings.url
        entries = list_folders(url, lazy_password(url.user, url.host, settings.password_command),
                               cafile=settings.cafile, timeout=settings.timeout,
                               token=lazy_token(settings, password_command, token_command))
        if as_json:
            emit_json("folders", {"folders": [{"name": e.name, "delimiter": e.delimiter, "flags": list(e.flags)}
                                              for e in entries]})
        else:
            for entry in entries:
                click.echo(printable(entry.name))


COMMANDS = [fetch_command, folders_command]
