"""`mimekit check FILE|-`: exit 0 when the message is 7-bit clean and well formed, else 65
with one line per problem on stdout (the findings are this command's data)."""

import click

from mimekit.read.check import check_message
from mimekit_cli.common import (EXIT_DATAERR, emit_json, json_option, limits_option, open_input_or_stdin,
                                print_diagnostic, printable, reporting)


@click.command()
@click.argument("source", default="-", metavar="FILE|-")
@click.option("--lf", "allow_lf", is_flag=True, help="Accept LF line endings used consistently (as `encode --lf` writes).")
@limits_option
@json_option
@click.pass_context
def check(ctx, source, allow_lf, limits, as_json):
    """Check that a message is 7-bit clean and well formed.

    Reports 8-bit bytes, long lines (over 998; base64/QP over 76), bare CR/LF,
    missing, repeated or embedded boundaries, text parts without charset, malformed
    headers and encoded-words, and a missing Date, From or Message-ID.
    """
    with reporting("check", as_json):
        with open_input_or_stdin(source) as stream:
            report = check_message(stream, allow_lf=allow_lf, limits=limits)
        if as_json:
            emit_json("check", {"source": source, "ok": report.ok,
                                "violations": [violation.as_dict() for violation in report.violations],
                                "suppressed": report.suppressed})
        else:
            for violation in report.violations:
                click.echo(printable(str(violation)))
            for rule, count in report.suppressed.items():
                click.echo(f"{rule}: {count} more not listed")
            if not report.ok:
                print_diagnostic("check", f"{source}: {len(report.violations) + sum(report.suppressed.values())} "
                                          "problem(s)")
    ctx.exit(EXIT_DATAERR if not report.ok else 0)


COMMANDS = [check]
