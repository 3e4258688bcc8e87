"""`mimekit show FILE|-`: a message's decoded headers, its tree of parts, and its defects.

Also home of what decode shares with show: printing defects, --strict, and making text
from a hostile message safe to print on a terminal.
"""

import re
import sys

import click

from mimekit.defects import Defect
from mimekit.encoded_words import decode_header_value
from mimekit.events import PartKind
from mimekit.files import open_input
from mimekit.parser import placed_defect
from mimekit.tree import Part, parse_message
from mimekit_cli.common import EXIT_DATAERR, emit_json, json_option, reporting

# Characters a sender could use to rewrite the reader's terminal or hide text: C0 and C1
# controls (ESC starts escape sequences), bidi overrides, line separators, lone surrogates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                          "\u2028\u2029\ud800-\udfff]")


def printable(text: str) -> str:
    """`text` with every unprintable character shown as a Python escape ("\\x1b")."""
    return _UNPRINTABLE.sub(lambda match: ascii(match[0])[1:-1], text)


def report_defects(command: str, defects: list[Defect]) -> None:
    """One line per defect on stderr."""
    for defect in defects:
        click.echo(f"mimekit {command}: defect: {printable(str(defect))}", err=True)


def exit_if_strict(command: str, strict: bool, defects: list[Defect], as_json: bool) -> None:
    """Under --strict, defects make the exit status 65 once the work is done."""
    if strict and defects:
        if not as_json:
            click.echo(f"mimekit {command}: {len(defects)} defect(s) found (--strict)", err=True)
        sys.exit(EXIT_DATAERR)


def strict_option(func):
    return click.option("--strict", is_flag=True,
                        help="Exit 65 when the message has defects (after doing the work).")(func)


@click.command("show")
@click.argument("source", metavar="FILE|-")
@strict_option
@json_option
def show(source, strict, as_json):
    """Show a message: decoded headers, the tree of parts, and its defects.

    Each part is listed with its id (as `decode --part` takes it), content type,
    charset, transfer encoding, decoded size and the file name its sender gave. Every
    body is decoded to count its size, so decoding defects are listed too.
    """
    with reporting("show", as_json):
        with open_input(source) as stream, parse_message(stream) as message:
            parts = [_describe(part) for part in message.walk()]
            headers, header_defects = _decoded_headers(message.root)
            defects = sorted(message.defects + header_defects, key=lambda defect: defect.offset)
        if as_json:
            emit_json("show", {"headers": headers, "parts": parts,
                               "defects": [defect.as_dict() for defect in defects]})
        else:
            _print_headers(headers)
            _print_parts(parts)
            report_defects("show", defects)
        exit_if_strict("show", strict, defects, as_json)


def _decoded_headers(part: Part) -> tuple[list[dict], list[Defect]]:
    """Every header field in order, decoded (RFC 2047, raw UTF-8), with what decoding found."""
    headers, defects = [], []
    for field in part.headers:
        value, found = decode_header_value(field.raw_value)
        headers.append({"name": field.name, "value": value.strip()})
        defects.extend(placed_defect(defect, field.value_offset, part.id) for defect in found)
    return headers, defects


def _describe(part: Part) -> dict:
    """One row of the tree; a leaf's size is its decoded size (the body is read to count it)."""
    leaf = part.kind is PartKind.LEAF
    return {
        "id": part.id,
        "depth": part.depth,
        "content_type": part.content_type,
        "charset": part.charset,
        "transfer_encoding": part.transfer_encoding,
        "size": sum(len(chunk) for chunk in part.iter_decoded()) if leaf else None,
        "name": part.filename,
    }


def _print_headers(headers: list[dict]) -> None:
    for header in headers:
        click.echo(f"{printable(header['name'])}: {printable(header['value'])}")
    click.echo()


def _print_parts(parts: list[dict]) -> None:
    rows = [("PART", "TYPE", "CHARSET", "ENCODING", "SIZE", "NAME")]
    for part in parts:
        rows.append(("  " * part["depth"] + (part["id"] or "(message)"), part["content_type"],
                     part["charset"] or "", part["transfer_encoding"],
                     "" if part["size"] is None else str(part["size"]),
                     printable(part["name"]) if part["name"] is not None else ""))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.rjust(width) if column == 4 else cell.ljust(width)
                 for column, (cell, width) in enumerate(zip(row, widths))]
        click.echo("  ".join(cells).rstrip())


COMMANDS = [show]
