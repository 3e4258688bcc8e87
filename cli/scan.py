"""`mimekit scan SOURCE...`: one line per message, like mblaze's mscan, for whole mailboxes."""

import functools
import shutil
import sys
from typing import Iterator

import click

from mimekit.errors import UsageError
from mimekit.read.summary import SCAN_FIELDS, scan_message
from mimekit_cli.common import human_size, json_option, limits_option, printable, reporting
from mimekit_cli.reading import (ReadingRun, as_sources, dask_option, jobs_option, json_line, recursive_option,
                                 sources_argument)

# Text columns: (width, right-aligned); None = as wide as the value (the reference) or the
# rest of the line (the subject).
REFERENCE_SLACK = 4
_COLUMNS = {"source": (None, False), "flags": (4, False), "date": (16, False), "from": (20, False),
            "size": (5, True), "attachments": (3, True), "subject": (None, False), "defect": (None, False)}


@click.command("scan")
@sources_argument
@recursive_option
@click.option("--fields", metavar="LIST", default=",".join(SCAN_FIELDS), show_default=True,
              help="Comma-separated fields to print, in order.")
@jobs_option
@dask_option
@click.option("--parquet", "parquet_path", metavar="PATH",
              help="Write the records to PATH as a Parquet file instead of printing them (needs mimekit[dask]).")
@limits_option
@json_option
def scan(sources, recursive, fields, jobs, dask_scheduler, parquet_path, limits, as_json):
    """List messages, one line each: reference, flags, date, sender, size, attachments,
    subject and first defect.

    \b
    SOURCE is a message file, a directory of them (-r: and its subdirectories), a
    Maildir, an mbox file, maildir:PATH, mbox:PATH, - (one message on stdin) or
    mbox:- (an mbox on stdin); several may be given. Only header blocks are read, unless
    a field needs the structure (attachments, defect). With --json, one JSON object per
    message (JSON Lines). On a terminal the text is cut to its width.
    """
    with reporting("scan", as_json):
        chosen = _parse_fields(fields)
        run = ReadingRun("scan", as_sources(sources), recursive, as_json)
        function = functools.partial(scan_message, fields=tuple(chosen), limits=limits)
        records = (record for _, record in run.results(function, jobs, dask_scheduler))
        if parquet_path is not None:
            from mimekit.dask import write_parquet   # the optional extra, loaded only when asked for
            write_parquet(({field: record[field] for field in chosen} for record in records), parquet_path)
        elif as_json:
            for record in records:
                json_line("scan", {field: record[field] for field in chosen})
        else:
            for line in _text_lines(records, chosen):   # not click.echo: a line is all scan prints, and
                sys.stdout.write(line + "\n")           # echo's checks cost as much as the line
                sys.stdout.flush()
        sys.exit(run.exit_code())


def _parse_fields(text: str) -> list[str]:
    chosen = [field.strip() for field in text.split(",") if field.strip()]
    unknown = [field for field in chosen if field not in SCAN_FIELDS]
    if unknown or not chosen:
        raise UsageError(f"unknown field(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(SCAN_FIELDS)}")
    return chosen


def _text_lines(records: Iterator[dict], fields: list[str]) -> Iterator[str]:
    """Records as aligned columns, each line printed as soon as its message is read; on a
    terminal, each line is cut to its width. The reference column starts as wide as the
    first reference and a little more (references of one source differ in their ends) and
    widens when a longer one comes."""
    width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    source_width = 0
    for record in records:
        cells = []
        for field in fields:
            text = printable(_cell(field, record[field]))
            column_width, right = _COLUMNS[field]
            if field == "source":
                source_width = max(source_width, len(text) + (REFERENCE_SLACK if not source_width else 0))
                text = text.ljust(source_width)
            elif column_width is not None:
                text = _fit(text, column_width)
                text = text.rjust(column_width) if right else text.ljust(column_width)
            cells.append(text)
        line = "  ".join(cells).rstrip()
        yield _fit(line, width) if width else line


def _cell(field: str, value) -> str:
    if value is None:
        return ""
    if field == "size":
        return human_size(value, short=True)
    if field == "date":
        return value[:16].replace("T", " ")
    if field == "flags":
        return value or "-"
    if field == "attachments":
        return str(value) if value else ""
    return str(value)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


COMMANDS = [scan]
