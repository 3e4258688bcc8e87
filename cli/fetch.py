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
- A failure part way exits with its own code (never 0); with --json the document still
  lists what was fetched before it, next to the error.
"""

import sys
from datetime import date, datetime

import click

from mimekit.accounts import resolve_settings
from mimekit.errors import MimekitError, UsageError
from mimekit.fetch.run import FetchOptions, FetchReport, SOURCE_SCHEMES, fetch
from mimekit.fetch.sinks import MboxStreamSink, StdoutSink, open_sink
from mimekit.transport.imap.client import list_folders
from mimekit_cli.common import (Progress, emit_json, exit_code_for, lazy_password, lazy_token, network_options,
                                printable, reporting)


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
changes on the server without --delete, and --delete removes only messages already
saved (fsync'd) in the output.""")
@click.argument("source", metavar="[SOURCE]", required=False)
@click.option("-o", "--output", default="maildir:./mail", show_default=True, metavar="OUTPUT",
              help="maildir:PATH, mbox:PATH, a directory, mbox:- (stdout, many) or - (stdout, one).")
@click.option("--new", is_flag=True, help="Only messages not fetched into this output before.")
@click.option("--since", metavar="DATE", help="IMAP: messages since DATE (YYYY-MM-DD).")
@click.option("--unseen", is_flag=True, help="IMAP: only messages without \\Seen.")
@click.option("--search", metavar="IMAP-SEARCH", help="IMAP: raw SEARCH criteria (ASCII), ANDed with the above.")
@click.option("--headers-only", is_flag=True, help="Fetch the header block only.")
@click.option("--delete", is_flag=True,
              help="Delete from the source what was saved (IMAP: \\Deleted, expunge; POP3: DELE; a Maildir "
                   "source too; refused for an mbox source and with --headers-only).")
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N messages (oldest first).")
@network_options
def fetch_command(source, output, new, since, unseen, search, headers_only, delete, limit, account_name, user,
                  password_command, token_command, cafile, timeout, as_json, quiet):
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
                               search=search, headers_only=headers_only, delete=delete, limit=limit)
        if to_stdout:
            sink = StdoutSink(sys.stdout.buffer) if output == "-" else MboxStreamSink(sys.stdout.buffer)
        else:
            sink = open_sink(output)
        progress = Progress("fetch", quiet=quiet)
        try:
            password = None if url.is_local else lazy_password(url.user, url.host, settings.password_command)
            fetch(url, sink, options, password=password, token=token, cafile=settings.cafile, timeout=settings.timeout,
                  on_progress=progress.update, report=report)
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
            click.echo(f"mimekit fetch: {len(report.fetched)} fetched, {report.skipped} skipped, "
                       f"{report.deleted} deleted" + (f", {report.vanished} vanished" if report.vanished else ""),
                       err=True)


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
