"""`mimekit show FILE|-`: a message's decoded headers, its tree of parts, and its defects."""

import click

from mimekit.read.summary import defect_from_dict, summarise
from mimekit_cli.common import (emit_json, exit_if_strict, json_option, limits_option, open_input_or_stdin, printable,
                                report_defects, reporting, strict_option, text_table)

@click.command("show")
@click.argument("source", metavar="FILE|-")
@strict_option
@limits_option
@json_option
def show(source, strict, limits, as_json):
    """Show a message: decoded headers, the tree of parts, and its defects.

    Each part is listed with its id (as `decode --part` takes it), content type,
    charset, transfer encoding, decoded size and the file name its sender gave; --json
    adds its disposition, Content-ID and whether it is an attachment. Every body is
    decoded to count its size, so decoding defects are listed too.
    """
    with reporting("show", as_json):
        with open_input_or_stdin(source) as stream:
            summary = summarise(stream, limits)
        defects = [defect_from_dict(defect) for defect in summary["defects"]]
        if as_json:
            emit_json("show", summary)
        else:
            _print_headers(summary["headers"])
            _print_parts(summary["parts"])
            report_defects("show", defects)
        exit_if_strict("show", strict, defects, as_json)


def _print_headers(headers: list[dict]) -> None:
    for header in headers:
        click.echo(f"{printable(header['name'])}: {printable(header['value'])}")
    click.echo()


def _print_parts(parts: list[dict]) -> None:
    rows = [("PART", "TYPE", "CHARSET", "ENCODING", "SIZE", "NAME")]
    for part in parts:
        rows.append(("  " * part["depth"] + (part["id"] or "(message)"), part["content_type"],
                     part["charset"] or "", part["transfer_encoding"],
                     "" if part["size"] is None else str(part["size"]), part["name"] or ""))
    for line in text_table(rows, right_aligned={4}):
        click.echo(line)


COMMANDS = [show]
