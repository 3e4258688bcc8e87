"""`mimekit encode`: files in, one 7-bit-clean MIME message out (stdout, or -o atomically)."""

import os
import sys

import click

from mimekit.write.composer import CRLF, ENCODINGS, LF, Content, compose
from mimekit.errors import UsageError
from mimekit.write.writer import write_message
from mimekit_cli.common import STDIO, Progress, output_or_stdout, quiet_option, reporting


@click.command("encode")
@click.option("--from", "from_", metavar="ADDR", help="Sender (default: $EMAIL).")
@click.option("--to", multiple=True, metavar="ADDR", help="Recipient; repeat for more.")
@click.option("--cc", multiple=True, metavar="ADDR", help="Copy recipient; repeat for more.")
@click.option("--bcc", multiple=True, metavar="ADDR",
              help="Blind copy recipient. Written into the message so that `mimekit send -t` "
                   "finds it; send removes the Bcc field before transmission.")
@click.option("--subject", metavar="TEXT")
@click.option("--header", "headers", multiple=True, metavar="'Name: value'",
              help="Any other header field. Date and Message-ID given here replace the generated ones.")
@click.option("--body", metavar="FILE|-", help="Text body (- reads stdin). Its charset is detected.")
@click.option("--html", metavar="FILE", help="HTML body; with --body the two are alternatives.")
@click.option("--attach", multiple=True, metavar="FILE", help="Attach a file, byte for byte; repeat for more.")
@click.option("--inline", multiple=True, metavar="FILE",
              help="A file shown in place (e.g. an image); HTML references it as cid:NAME@inline, "
                   "NAME being its file name with characters other than A-Z a-z 0-9 . _ + - as _.")
@click.option("--type", "attachment_type", metavar="MIME/TYPE",
              help="Content type for every --attach file instead of the sniffed one.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="auto", show_default=True,
              help="Force a transfer encoding for every part (message/* parts stay 7bit).")
@click.option("--lf", is_flag=True, help="LF line ends instead of CRLF (a local file for Unix tools).")
@click.option("-o", "--output", default="-", metavar="OUT",
              help="Write here instead of stdout, as the shell's > would, but a file is replaced only "
                   "once the new one is complete; a device or FIFO is written into.")
@quiet_option
def encode(from_, to, cc, bcc, subject, headers, body, html, attach, inline, attachment_type, encoding,
           lf, output, quiet):
    """Compose a MIME message from a body and files.

    Every part gets the transfer encoding its whole content calls for (7bit,
    quoted-printable or base64), so the message is 7-bit clean; files come back
    byte for byte. Nothing is written if any input is missing or a header is bad.
    """
    with reporting("encode"):
        for option, paths in (("--html", [html]), ("--attach", attach), ("--inline", inline)):
            if "-" in paths:
                raise UsageError(f"{option} needs a file: only --body reads stdin")
        sender = from_ or os.environ.get("EMAIL")
        if not sender:
            raise UsageError("no sender: give --from ADDR or set EMAIL")
        message = compose(from_=sender, to=to, cc=cc, bcc=bcc, subject=subject,
                          headers=[_split_header(field) for field in headers], body=Content.from_stream(sys.stdin.buffer) if body == STDIO else body, html=html,
                          attachments=attach, inline=inline, attachment_type=attachment_type,
                          encoding=encoding)
        progress = Progress("encode", total=message.content_size(), quiet=quiet)
        with output_or_stdout(output) as sink:
            write_message(message, sink, LF if lf else CRLF, on_progress=progress.update)
        progress.close()


def _split_header(field: str) -> tuple[str, str]:
    name, colon, value = field.partition(":")
    if not colon or not name.strip():
        raise UsageError(f"--header needs 'Name: value', not {field!r}")
    return name.strip(), value.strip(" \t")


COMMANDS = [encode]
