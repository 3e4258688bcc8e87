"""`mimekit show FILE|-`: a message's decoded headers, its tree of parts, and its defects."""

import click

from mimekit.defects import Defect, capped
from mimekit.headers.encoded_words import decode_header_value
from mimekit.read.events import PartKind
from mimekit.read.parser import placed_defect
from mimekit.read.tree import Part, parse_message
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
    charset, transfer encoding, decoded size and the file name its sender gave. Every
    body is decoded to count its size, so decoding defects are listed too.
    """
    with reporting("show", as_json):
        with open_input_or_stdin(source) as stream, parse_message(stream, limits) as message:
            parts = [_describe(part) for part in message.walk()]
            headers, header_defects = _decoded_headers(message.root)
            defects = sorted(capped(message.defects + header_defects), key=lambda defect: defect.offset)
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
                     "" if part["size"] is None else str(part["size"]), part["name"] or ""))
    for line in text_table(rows, right_aligned={4}):
        click.echo(line)


COMMANDS = [show]
