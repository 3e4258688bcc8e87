"""`mimekit decode SOURCE... -o DIR`: bodies and attachments into a directory; `--text` or
`--part ID` print one message's text or one part."""

import functools
import sys
from contextlib import ExitStack

import click

from mimekit.defects import beyond_store_conventions
from mimekit.errors import UsageError
from mimekit.limits import Limits
from mimekit.read.extract import (EXTRACT_CHUNK_SIZE, Extraction, ManifestEntry, best_text_part, extract,
                                  extract_all, iter_part_bytes, iter_text)
from mimekit.read.tree import Message, parse_message
from mimekit.stores.sources import lf_is_normal
from mimekit.streams.files import CHUNK_SIZE
from mimekit_cli.common import (Progress, emit_json, exit_if_strict, json_option, limits_option, print_diagnostic,
                                printable,                                quiet_option, report_defects, reporting, strict_option, text_table)
from mimekit_cli.reading import (ReadingRun, absolute_paths_only, as_sources, dask_option, jobs_option, json_line,
                                 recursive_option, sources_argument)


@click.command("decode")
@sources_argument
@click.option("-o", "--output", "directory", metavar="DIR",
              help="Write every body and attachment into DIR (created if missing); print the manifest.")
@click.option("--text", "text_only", is_flag=True,
              help="Print the text body (text/plain, else text from the HTML) as UTF-8.")
@click.option("--part", "part_id", metavar="ID", help="Print one part's decoded bytes (ids as `mimekit show` lists them).")
@click.option("--all-readings", is_flag=True,
              help="With -o: also write what other readings of broken MIME find (what any mail client could "
                   "see), each labelled with the reading that found it; nothing extra for a clean message.")
@recursive_option
@jobs_option
@dask_option
@strict_option
@limits_option
@json_option
@quiet_option
def decode(sources, directory, text_only, part_id, all_readings, recursive, jobs, dask_scheduler, strict, limits, as_json,
           quiet):
    """Decode messages, however broken: extract their parts, or print one's text or one part.

    \b
    With -o DIR, every body (parts of attached messages and uuencoded files in text
    bodies included) is written into DIR: names are sanitised, nothing is overwritten
    (a clash gets " (1)"), no part is dropped, and the manifest (id, original and
    written name, type, size, sha256, why a name changed) goes to stdout. One message
    is written straight into DIR; with several (a mailbox, a directory, more than one
    SOURCE), each gets its own folder named after its reference (box.mbox:1234 ->
    DIR/box.mbox@1234, dump/a.eml -> DIR/dump%2Fa.eml), and --json prints one manifest
    line per message (JSON Lines).
    Defects go to stderr, or into the --json output. --text and --part read one message.

    \b
    --all-readings is for scanners: attachments hidden behind MIME that one reader parses
    one way and another reader another way (a boundary that never matches, two transfer
    encodings, a header hidden in a continuation line, uuencode, yEnc, BinHex, TNEF...)
    are written too, as extra parts with ids like 2~1 and a "reading" naming the trick;
    a part whose bytes are already written is not written twice.
    """
    with reporting("decode", as_json):
        if (directory is not None) + text_only + (part_id is not None) != 1:
            raise UsageError("give exactly one of -o DIR, --text or --part ID")
        if all_readings and directory is None:
            raise UsageError("--all-readings goes with -o DIR (--part takes the ids of other readings as it is)")
        if as_json and directory is None:
            raise UsageError("--json goes with -o DIR: --text and --part print the data itself")
        run = ReadingRun("decode", as_sources(sources), recursive, as_json, quiet)
        if run.single is None:
            if directory is None:
                raise UsageError("--text and --part read one message: name one message file or -")
            if dask_scheduler is not None:
                absolute_paths_only([directory], "a Dask cluster")
            sys.exit(_extract_many(run, directory, jobs, dask_scheduler, limits, strict, as_json, quiet, all_readings))
        chunk_size = EXTRACT_CHUNK_SIZE if directory is not None else CHUNK_SIZE
        with run.single.open() as stream, parse_message(stream, limits, chunk_size) as message, ExitStack() as opened:
            if directory is not None:
                defects = _extract(str(run.single), message, directory, limits, as_json, quiet, all_readings)
            elif text_only:
                defects = _print_text(message, limits, opened)
            else:
                _print_part(message, part_id, limits)
                defects = message.defects
        if lf_is_normal(run.single):
            defects = beyond_store_conventions(defects)
        if not as_json and not quiet:
            report_defects("decode", defects)
        elif not as_json and defects:
            print_diagnostic("decode", f"{len(defects)} defect(s) not shown (-q)")
        exit_if_strict("decode", strict, defects, as_json)


def _extract(reference: str, message: Message, directory: str, limits: Limits, as_json: bool, quiet: bool,
             all_readings: bool) -> list:
    progress = Progress("decode", quiet=quiet)
    extraction = extract_all(message, directory, on_progress=progress.update, limits=limits, all_readings=all_readings)
    progress.close()
    if as_json:
        emit_json("decode", _manifest_record(reference, directory, extraction))
    else:
        click.echo(_manifest_table(extraction.entries))
    return extraction.defects


def _extract_many(run: ReadingRun, directory: str, jobs: int | None, dask_scheduler: str | None,
                  limits: Limits, strict: bool, as_json: bool, quiet: bool, all_readings: bool) -> int:
    """Each message into its own folder of `directory`; one manifest line (or table) each."""
    progress = Progress("decode", quiet=quiet)
    defective = 0
    function = functools.partial(extract, directory=directory, limits=limits, own_folder=True,
                                 all_readings=all_readings)
    for ref, extraction in run.results(function, jobs, dask_scheduler):
        progress.update(sum(entry.size for entry in extraction.entries), items=1)
        defective += bool(extraction.defects)
        if as_json:
            json_line("decode", _manifest_record(str(ref), extraction.directory, extraction))
        else:
            click.echo(f"{printable(str(ref))} -> {printable(extraction.directory)}")
            click.echo(_manifest_table(extraction.entries))
            run.report_defects(ref, extraction.defects)
    progress.close()
    return run.exit_code() or (65 if strict and defective else 0)


def _manifest_record(reference: str, directory: str, extraction: Extraction) -> dict:
    """What --json prints of one message written into `directory`: one document, or one line."""
    return {"source": reference, "directory": directory,
            "parts": [entry.as_dict() for entry in extraction.entries],
            "defects": [defect.as_dict() for defect in extraction.defects]}


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
    if entry.original_name is not None and entry.original_name != entry.written_name:
        reasons = f'sent as "{entry.original_name}": {reasons}'
    return reasons if entry.reading is None else f"reading {entry.reading}" + (f"; {reasons}" if reasons else "")


COMMANDS = [decode]
