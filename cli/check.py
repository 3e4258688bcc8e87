"""`mimekit check SOURCE...`: exit 0 when every message is 7-bit clean and well formed, else
65 with one line per problem on stdout (the findings are this command's data)."""

import functools
import sys

import click

from mimekit.read.check import CheckReport, check_message
from mimekit_cli.common import (EXIT_DATAERR, json_option, limits_option, print_diagnostic, printable, quiet_option,
                                reporting)
from mimekit_cli.reading import ReadingRun, as_sources, jobs_option, json_line, recursive_option, sources_argument


@click.command()
@sources_argument
@recursive_option
@click.option("--lf", "allow_lf", is_flag=True, help="Accept LF line endings used consistently (as `encode --lf` writes).")
@jobs_option
@limits_option
@json_option
@quiet_option(help="No `ok` line on stderr when every message passes.")
def check(sources, recursive, allow_lf, jobs, limits, as_json, quiet):
    """Check that messages are 7-bit clean and well formed.

    Reports 8-bit bytes, long lines (over 998; base64/QP over 76), bare CR/LF,
    missing, repeated or embedded boundaries, text parts without charset, malformed
    headers and encoded-words, and a missing Date, From or Message-ID. SOURCE is a
    message, a directory, a Maildir or an mbox (see `mimekit scan --help`); messages of a
    Maildir or an mbox may have LF line endings, as stores keep them. With several
    messages, each problem line starts with the message's reference.

    The problems are the data, on stdout. The verdict is a note on stderr, as other
    commands' summaries are: `mimekit check: ok` (`ok: N messages` for a mailbox or several
    sources) when every message passes, unless -q; the count of messages with problems
    otherwise. --json adds nothing: each record's "ok" says it.
    """
    with reporting("check", as_json):
        run = ReadingRun("check", as_sources(sources), recursive, as_json)
        named = run.single is None
        with_problems = 0
        function = functools.partial(check_message, allow_lf=allow_lf, limits=limits)
        for ref, report in run.results(function, jobs):
            with_problems += not report.ok
            if as_json:
                json_line("check", {"source": str(ref), **report.as_dict()})
            else:
                _print_report(str(ref), report, named)
        exit_code = run.exit_code() or (EXIT_DATAERR if with_problems else 0)
        if with_problems and not as_json:
            print_diagnostic("check", f"{with_problems} of {run.messages} message(s) have problems" if named
                             else f"{ref}: {_problems(report)} problem(s)")
        elif exit_code == 0 and not (as_json or quiet):
            print_diagnostic("check", f"ok: {_messages(run.messages)}" if named else "ok")
        sys.exit(exit_code)


def _print_report(reference: str, report: CheckReport, named: bool) -> None:
    prefix = f"{printable(reference)}: " if named else ""
    for violation in report.violations:
        click.echo(prefix + printable(str(violation)))
    for rule, count in report.suppressed.items():
        click.echo(f"{prefix}{rule}: {count} more not listed")


def _messages(count: int) -> str:
    return f"{count} message" + ("" if count == 1 else "s")


def _problems(report: CheckReport) -> int:
    return len(report.violations) + sum(report.suppressed.values())


COMMANDS = [check]
