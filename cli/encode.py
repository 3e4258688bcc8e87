"""`mimekit encode`: files in, one 7-bit-clean MIME message out (stdout, or -o atomically)."""

import os
import shlex
import subprocess
import sys
import tempfile
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass

import click

from mimekit.codecs.charsets import decode_text
from mimekit.errors import ConfigError, IOFailure, MimekitError, NoInputError, UsageError
from mimekit.headers.addresses import addr_specs, parse_address_list
from mimekit.write.composer import CRLF, ENCODINGS, LF, Content, as_content, compose
from mimekit.write.writer import write_message
from mimekit_cli.common import (STDIO, Progress, StdoutError, output_or_stdout, print_diagnostic, quiet_option,
                                reporting, stdin)


OPTION_ORDER = "mimekit option order"   # ctx.meta key: the parameter name of every option given, in order


class OptionOrderCommand(click.Command):
    """A command that records the order its options were given in (ctx.meta[OPTION_ORDER]):
    click collects each option's values apart, and `--type` belongs to the file given
    right before it."""

    def make_parser(self, ctx: click.Context):
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_recording_order(args):
            opts, rest, order = parse(args=args)   # order: one parameter per occurrence
            ctx.meta[OPTION_ORDER] = [param.name for param in order]
            return opts, rest, order

        parser.parse_args = parse_recording_order
        return parser


@click.command("encode", cls=OptionOrderCommand)
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
@click.option("--attach", multiple=True, metavar="FILE",
              help="Attach a file, byte for byte; repeat for more. Its type is sniffed from its bytes "
                   "unless --type follows it. A saved message, .eml or not, is message/rfc822, sent as it "
                   "is but with the line ends of the message written (CRLF, or LF with --lf).")
@click.option("--inline", multiple=True, metavar="FILE",
              help="A file shown in place (e.g. an image); HTML references it as cid:NAME@inline, "
                   "NAME being its file name with characters other than A-Z a-z 0-9 . _ + - as _.")
@click.option("--type", "types", multiple=True, metavar="MIME/TYPE",
              help="Content type of the --attach or --inline file given right before it, instead of "
                   "the sniffed one: --attach a.log --type text/plain --attach b.bin.")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="auto", show_default=True,
              help="Force a transfer encoding for every part (message/* parts stay 7bit).")
@click.option("--edit", is_flag=True,
              help="Open $VISUAL, else $EDITOR, else vi on the text body (the --body file's text, or empty) "
                   "and send what is saved; the --body file itself is left as it was. Needs a terminal on "
                   "stdin; an editor that fails (exit status not 0) means nothing is written (exit 64).")
@click.option("--lf", is_flag=True, help="LF line ends instead of CRLF (a local file for Unix tools).")
@click.option("-o", "--output", default="-", metavar="OUT",
              help="Write here instead of stdout, as the shell's > would, but a file is replaced only "
                   "once the new one is complete; a device or FIFO is written into.")
@click.option("--reply", metavar="MESSAGE",
              help="Reply to MESSAGE (a file, MBOX:OFFSET, MAILDIR:KEY, or - when --body is not -): To is its "
                   "Reply-To, else its From (its To when its From is you: --from, $EMAIL); Subject is \"Re: \" and its subject (one Re, never stacked); "
                   "In-Reply-To and References thread the reply under it; the body is the --body text, then "
                   "\"On DATE, NAME wrote:\" and its text quoted with \"> \". --to and --subject replace the "
                   "derived To and Subject; --cc adds to the derived Cc.")
@click.option("--all", "reply_all", is_flag=True,
              help="With --reply: copy its To and Cc too, but not your own address (--from, $EMAIL) nor "
                   "anyone twice.")
@click.option("--no-quote", is_flag=True, help="With --reply: leave its text out of the body.")
@click.option("--forward", metavar="MESSAGE",
              help="Forward MESSAGE (as --reply takes it) attached as message/rfc822, never re-encoded (one "
                   "with 8-bit bytes goes as application/octet-stream in base64, its bytes intact: the output is "
                   "7-bit clean and message/* may not be base64); "
                   "Subject \"Fwd: \" and its subject, unless --subject.")
@click.option("--forward-inline", metavar="MESSAGE",
              help="Forward MESSAGE in the body instead: the --body text, a \"Forwarded message\" block of its "
                   "From, Date, Subject, To and Cc, then its text. Its attachments are not carried "
                   "(--forward carries them).")
@quiet_option
def encode(from_, to, cc, bcc, subject, headers, body, html, attach, inline, types, encoding,
           edit, lf, output, quiet, **answering):   # answering: --reply, --forward and theirs, read by _answer
    """Compose a MIME message from a body and files.

    Every part gets the transfer encoding its whole content calls for (7bit,
    quoted-printable or base64), so the message is 7-bit clean; files come back
    byte for byte. Nothing is written if any input is missing or a header is bad.
    A warning goes to stderr when the HTML references a cid: no inline file has, or
    when two inline files would share a Content-ID (the second one's is changed).
    """
    with reporting("encode"):
        for option, paths in (("--html", [html]), ("--attach", attach), ("--inline", inline)):
            if "-" in paths:
                raise UsageError(f"{option} needs a file: only --body reads stdin")
        if edit:
            _check_editable(body)
        attachments, inline_files = _typed_files(click.get_current_context())
        sender = from_ or os.environ.get("EMAIL")
        if not sender:
            raise UsageError("no sender: give --from ADDR or set EMAIL")
        text_body = Content.from_stream(stdin()) if body == STDIO else body
        answer = _answer(click.get_current_context().params, sender, text_body)   # --reply, --forward
        text_body = answer.body
        with _edited(text_body) if edit else nullcontext(text_body) as text_body:
            message = compose(from_=sender, to=answer.to, cc=answer.cc, bcc=bcc, subject=answer.subject,
                              headers=answer.headers + [_split_header(field) for field in headers], body=text_body,
                              html=html, attachments=attachments, inline=inline_files, encoding=encoding,
                              forwarded=answer.forwarded)
            for warning in message.warnings:
                print_diagnostic("encode", f"warning: {warning}")
            progress = Progress("encode", total=message.content_size(), quiet=quiet)
            with output_or_stdout(output) as sink:
                write_message(message, sink, LF if lf else CRLF, on_progress=progress.update)
            progress.close()


def _split_header(field: str) -> tuple[str, str]:
    name, colon, value = field.partition(":")
    if not colon or not name.strip():
        raise UsageError(f"--header needs 'Name: value', not {field!r}")
    return name.strip(), value.strip(" \t")


# -- --attach/--inline FILE --type TYPE ---------------------------------------------------

def _typed_files(ctx: click.Context) -> tuple[list, list]:
    """The --attach and --inline files as (path, type or None) pairs, in order, each --type
    going to the file given right before it."""
    values = {name: iter(ctx.params[name]) for name in ("attach", "inline", "types")}
    files = {"attach": [], "inline": []}   # option -> [path, type or None] per file
    option = latest = None                 # the option and entry of the file given last
    for name in ctx.meta[OPTION_ORDER]:
        if name in files:
            option, latest = name, [next(values[name]), None]
            files[name].append(latest)
        elif name == "types":
            media_type = next(values[name])
            if latest is None:
                raise UsageError(f"--type {media_type} comes before any --attach or --inline: "
                                 "it applies to the file given right before it")
            if latest[1] is not None:
                raise UsageError(f"two --type for --{option} {latest[0]}: {latest[1]} and {media_type}")
            latest[1] = media_type
    return [tuple(entry) for entry in files["attach"]], [tuple(entry) for entry in files["inline"]]


# -- --edit -------------------------------------------------------------------------------

def _check_editable(body: str | None) -> None:
    """--edit asks a person, so only when one is at a terminal: a script never waits on an editor."""
    if not sys.stdin.isatty():
        raise UsageError("--edit needs a terminal on stdin")
    if body == STDIO:
        raise UsageError("--edit takes the draft from --body FILE, not from stdin (the terminal)")


@contextmanager
def _edited(draft):
    """The path of the text the user saved from their editor, started on `draft` (a path,
    bytes, Content, or None for an empty draft) in a private temporary file ($TMPDIR, mode 0600).
    The file lives while the message is composed and written, then goes; when that fails
    (a bad input, a full disk), it stays and the error names it, so no typing is lost."""
    descriptor, path = tempfile.mkstemp(prefix="mimekit-draft-", suffix=".txt")
    try:
        with os.fdopen(descriptor, "wb") as file:
            if draft is not None:
                with as_content(draft).open() as text:
                    file.write(text.read())
        _run_editor(path)
    except BaseException:
        os.unlink(path)
        raise
    kept = f"(the edited text is kept in {path})"
    try:
        yield path
    except MimekitError as exc:
        raise type(exc)(f"{exc} {kept}") from exc
    except StdoutError:   # a closed pipe ends the run quietly (docs/conventions.md): nothing to name it in
        os.unlink(path)
        raise
    except OSError as exc:   # -o on a full disk: the typing matters most then
        where = f": {exc.filename}" if exc.filename else ""
        raise IOFailure(f"{exc.strerror or exc}{where} {kept}") from exc
    except BaseException:
        os.unlink(path)
        raise
    os.unlink(path)


def _run_editor(path: str) -> None:
    """$VISUAL, else $EDITOR, else vi, split as a shell would (like git: "code --wait" works),
    on `path`. The editor draws on the terminal stdin is (checked by _check_editable):
    stdout carries the message only, and stderr may be a log file."""
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"cannot read the editor command {command!r}: {exc}") from None
    if not argv:
        raise ConfigError(f"the editor command {command!r} is empty")
    with open(os.ttyname(sys.stdin.fileno()), "wb") as terminal:
        try:
            status = subprocess.run([*argv, path], stdout=terminal).returncode
        except OSError as exc:
            raise ConfigError(f"cannot run the editor {argv[0]}: {exc.strerror or exc}") from None
    if status != 0:
        how = f"killed by signal {-status}" if status < 0 else f"exit {status}"
        raise UsageError(f"the editor {argv[0]} failed ({how}): nothing written")


# -- --reply, --forward, --forward-inline: the fields mimekit.write.replies derives -------------

@dataclass
class _Answer:
    """encode's arguments once the message answered (if any) is taken into account."""

    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str | None
    headers: list[tuple[str, str]]            # In-Reply-To and References of a reply
    body: object                              # what compose takes as the text body, or None
    forwarded: list[tuple[Content, str]]      # (message, file name) attached as message/rfc822


def _answer(options: dict, sender: str, body_source) -> _Answer:
    """The To, Cc, Subject, threading fields, body and attachment of a reply or forward
    (`options`: encode's parameters; `body_source`: its text body); those given when no
    message is answered."""
    to, cc, subject = options["to"], options["cc"], options["subject"]
    answered = _answered(options)
    if answered is None:
        return _Answer(to, cc, subject, [], body_source, [])
    # Imported here: the parser, the stores and the reply rules are ~30 ms of start-up
    # that a message answering none (most of them, and every 100 MB attachment) never needs.
    from mimekit.read.tree import parse_message
    from mimekit.write import replies

    content = _one_message(answered)
    with content.open() as stream, parse_message(stream) as original:
        replies.check_message(original, answered)
        if options["reply"]:
            derived = replies.reply(original, options["reply_all"], own=addr_specs(parse_address_list(sender)[0]),
                                    quote=not options["no_quote"])
            threading = [("In-Reply-To", derived.in_reply_to), ("References", " ".join(derived.references))]
            return _Answer(to or _as_given(derived.to), _as_given(derived.cc) + cc, subject or derived.subject,
                           [(name, value) for name, value in threading if value],
                           _followed_by(body_source, derived.quote), [])
        original_subject = original.root.header("subject")
        subject = subject or replies.forward_subject(original_subject)
        if options["forward_inline"]:
            return _Answer(to, cc, subject, [], _followed_by(body_source, replies.forwarded_inline(original)), [])
        attached = (content, replies.forward_attachment_name(original_subject))
        return _Answer(to, cc, subject, [], body_source, [attached])


def _answered(options: dict) -> str | None:
    """The message --reply, --forward or --forward-inline names, once the options agree."""
    given = [(option, options[option[2:].replace("-", "_")]) for option in ("--reply", "--forward", "--forward-inline")]
    answered = [(option, reference) for option, reference in given if reference]
    if len(answered) > 1:
        raise UsageError(f"{answered[0][0]} and {answered[1][0]} cannot go together: give one")
    for flag, name in (("--all", "reply_all"), ("--no-quote", "no_quote")):
        if options[name] and not options["reply"]:
            raise UsageError(f"{flag} goes with --reply")
    if not answered:
        return None
    option, reference = answered[0]
    if options["html"] is not None and (options["forward_inline"] or (options["reply"] and not options["no_quote"])):
        raise UsageError(f"{option} puts its text into the text body: --html cannot go with it "
                         "(--reply --no-quote and --forward can)")
    if reference == STDIO and options["body"] == STDIO:
        raise UsageError(f"standard input can be read only once: {option} - and --body - cannot go together")
    return reference


def _one_message(reference: str) -> Content:
    """The one message `reference` names (a message file, MBOX:OFFSET, MAILDIR:KEY, a
    mailbox holding one, "-"), readable twice: to answer it, then to attach it."""
    from mimekit.stores.sources import messages_of   # imported here, as in _answer

    if reference == STDIO:
        return Content.from_stream(stdin())
    with closing(messages_of(reference)) as found:
        first = next(found, None)
        if first is None:
            raise NoInputError(f"{reference}: holds no message")
        content = Content(first.open) if first.reopenable else Content.from_stream(first.open())
        if next(found, None) is not None:
            raise UsageError(f"{reference} holds more than one message: name one as `mimekit scan` lists it "
                             "(MBOX:OFFSET, MAILDIR:KEY)")
    return content


def _as_given(addresses) -> tuple[str, ...]:
    """Derived addresses as the values of --to or --cc would be (none when there are none)."""
    from mimekit.write.replies import typed   # imported here, as in _answer

    return (typed(addresses),) if addresses else ()


def _followed_by(body_source, text: str):
    """The --body text (in its charset, as detected), a blank line, then `text`, as UTF-8;
    the body as given when `text` is empty."""
    if not text:
        return body_source
    if body_source is None:
        return text.encode("utf-8")
    with as_content(body_source).open() as stream:
        own, _ = decode_text(stream.read(), None)
    if own and not own.endswith(("\n", "\r")):
        own += "\n"
    return f"{own}\n{text}".encode("utf-8") if own else text.encode("utf-8")


COMMANDS = [encode]

