"""`mimekit decode FILE|-`: bodies and attachments into a directory, the text, or one part."""

import sys
from contextlib import ExitStack

import click

from mimekit.errors import UsageError
from mimekit.read.extract import ManifestEntry, best_text_part, extract_all, iter_part_bytes, iter_text
from mimekit.limits import Limits
from mimekit.read.tree import Message, parse_message
from mimekit_cli.common import (Progress, emit_json, exit_if_strict, json_option, limits_option, open_input_or_stdin,
                                quiet_option, report_defects, reporting, strict_option, text_table)


@click.command("decode")
@click.argument("source", metavar="FILE|-")
@click.option("-o", "--output", "directory", metavar="DIR",
              help="Write every body and attachment into DIR (created if missing); print the manifest.")
@click.option("--text", "text_only", is_flag=True,
              help="Print the text body (text/plain, else text from the HTML) as UTF-8.")
@click.option("--part", "part_id", metavar="ID", help="Print one part's decoded bytes (ids as `mimekit show` lists them).")
@strict_option
@limits_option
@json_option
@quiet_option
def decode(source, directory, text_only, part_id, strict, limits, as_json, quiet):
    """Decode a message, however broken: extract its parts, or print its text or one part.

    \b
    With -o DIR, every body (parts of attached messages and uuencoded files in text
    bodies included) is written into DIR, which stays flat: names are
    sanitised, nothing is overwritten (a clash gets " (1)"), no part is dropped,
    and the manifest (id, original and written name, type, size, sha256, why a name
    changed) goes to stdout. Defects go to stderr, or into the --json document.
    """
    with reporting("decode", as_json):
        if (directory is not None) + text_only + (part_id is not None) != 1:
            raise UsageError("give exactly one of -o DIR, --text or --part ID")
        if as_json and directory is None:
            raise UsageError("--json goes with -o DIR: --text and --part print the data itself")
        with open_input_or_stdin(source) as stream, parse_message(stream, limits) as message, ExitStack() as opened:
            if directory is not None:
                defects = _extract(message, directory, limits, as_json, quiet)
            elif text_only:
                defects = _print_text(message, limits, opened)
            else:
                _print_part(message, part_id, limits)
                defects = message.defects
        if not as_json:
            report_defects("decode", defects)
        exit_if_strict("decode", strict, defects, as_json)


def _extract(message: Message, directory: str, limits: Limits, as_json: bool, quiet: bool) -> list:
    progress = Progress("decode", quiet=quiet)
    extraction = extract_all(message, directory, on_progress=progress.update, limits=limits)
    progress.close()
    if as_json:
        emit_json("decode", {"directory": directory,
                             "parts": [entry.as_dict() for entry in extraction.entries],
                             "defects": [defect.as_dict() for defect in extraction.defects]})
    else:
        click.echo(_manifest_table(extraction.entries))
    return extraction.defects


def _print_text(message: Message, limits: Limits, opened: ExitStack) -> list:
    part = best_text_part(message, opened, limits)
    text_defects = []
    out = sys.stdout.buffer
    for text in iter_text(part, text_defects):
        out.write(text.encode("utf-8", "replace"))
    out.flush()
    return message.defects + text_defects


def _print_part(message: Message, part_id: str, limits: Limits) -> None:
    out = sys.stdout.buffer
    for chunk in iter_part_bytes(message, part_id, limits=limits):
        out.write(chunk)
    out.flush()


def _manifest_table(entries: list[ManifestEntry]) -> str:
    """One line per file: id, size, type, written name, and where the name came from."""
    rows = [("PART", "SIZE", "TYPE", "FILE", "NOTE")]
    for entry in entries:
        rows.append((entry.id or "(message)", str(entry.size), entry.content_type, entry.written_name,
                     _name_note(entry)))
    return "\n".join(text_table(rows, right_aligned={1}))


def _name_note(entry: ManifestEntry) -> str:
    reasons = ", ".join(reason.value for reason in entry.reasons)
    if entry.original_name is None or entry.original_name == entry.written_name:
        return reasons
    return f'sent as "{entry.original_name}": {reasons}'


COMMANDS = [decode]
