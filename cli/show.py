"""`mimekit show SOURCE...`: messages' decoded headers, their trees of parts, and their defects."""

import functools
import sys

import click

from mimekit.defects import Defect
from mimekit.read.summary import summarise
from mimekit_cli.common import (emit_json, exit_if_strict, json_option, limits_option, print_diagnostic, printable,
                                quiet_option, report_defects, reporting, strict_option, text_table)
from mimekit_cli.reading import ReadingRun, as_sources, jobs_option, json_line, recursive_option, sources_argument


@click.command("show")
@sources_argument
@click.option("--all-readings", is_flag=True,
              help="Also list what other readings of broken MIME find (what any mail client could see), each "
                   "with the reading that found it; nothing extra for a clean message.")
@recursive_option
@jobs_option
@strict_option
@limits_option
@json_option
@quiet_option
def show(sources, all_readings, recursive, jobs, strict, limits, as_json, quiet):
    """Show messages: decoded headers, the tree of parts, and defects.

    Each part is listed with its id (as `decode --part` takes it), content type,
    charset, transfer encoding, decoded size and the file name its sender gave; --json
    adds its disposition, Content-ID and whether it is an attachment. Every body is
    decoded to count its size, so decoding defects are listed too. SOURCE is a message,
    a directory, a Maildir or an mbox (see `mimekit scan --help`); with several
    messages, each starts with a "==> REFERENCE <==" line, --json prints one line per
    message (JSON Lines), and -q counts defects instead of listing them.

    \b
    --all-readings lists, after the tree, the parts that other readings of broken MIME
    find (ids like 2~1; see `mimekit decode --help`), each with its "reading" and sha256,
    unless the same bytes are already listed.
    """
    with reporting("show", as_json):
        run = ReadingRun("show", as_sources(sources), recursive, as_json, quiet)
        function = functools.partial(summarise, limits=limits, all_readings=all_readings)
        if run.single is not None:
            _, summary = next(run.results(function, 1), (None, None))
            if summary is None:
                sys.exit(run.exit_code())
            _show_one(str(run.single), summary, strict, as_json, quiet)
            return
        defective = 0
        for ref, summary in run.results(function, jobs):
            defects = [Defect.from_dict(defect) for defect in summary["defects"]]
            defective += bool(defects)
            if as_json:
                json_line("show", {"source": str(ref), **summary})
            else:
                click.echo(f"==> {printable(str(ref))} <==")
                _print_headers(summary["headers"])
                _print_parts(summary["parts"])
                click.echo()
                run.report_defects(ref, defects)
        sys.exit(run.exit_code() or (65 if strict and defective else 0))


def _show_one(reference: str, summary: dict, strict: bool, as_json: bool, quiet: bool) -> None:
    """One message, as show has always printed it: one JSON document (with its `source`, as
    each JSON Lines record has), or the text."""
    defects = [Defect.from_dict(defect) for defect in summary["defects"]]
    if as_json:
        emit_json("show", {"source": reference, **summary})
    else:
        _print_headers(summary["headers"])
        _print_parts(summary["parts"])
        if not quiet:
            report_defects("show", defects)
        elif defects:
            print_diagnostic("show", f"{len(defects)} defect(s) not shown (-q)")
    exit_if_strict("show", strict, defects, as_json)


def _print_headers(headers: list[dict]) -> None:
    for header in headers:
        click.echo(f"{printable(header['name'])}: {printable(header['value'])}")
    click.echo()


def _print_parts(parts: list[dict]) -> None:
    """The tree; a READING column only when other readings found parts."""
    readings = any("reading" in part for part in parts)
    rows = [("PART", "TYPE", "CHARSET", "ENCODING", "SIZE", "NAME") + (("READING",) if readings else ())]
    for part in parts:
        rows.append(("  " * part["depth"] + (part["id"] or "(message)"), part["content_type"],
                     part["charset"] or "", part["transfer_encoding"] or "",
                     "" if part["size"] is None else str(part["size"]), part["name"] or "")
                    + ((part.get("reading", ""),) if readings else ()))
    for line in text_table(rows, right_aligned={4}):
        click.echo(line)


COMMANDS = [show]
