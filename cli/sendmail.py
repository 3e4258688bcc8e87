"""`mimekit sendmail` and the `mimekit-sendmail` program: mimekit as the system's
/usr/sbin/sendmail, for mutt, git send-email, cron and PHP's mail().

Those programs speak sendmail's options, which are getopt's, not click's: one letter with
its value attached or next (`-fADDR`, `-f ADDR`, `-oi`, `-FCronDaemon`), flags grouped
(`-ti`), recipients after the options and after `--`. This module parses them, then hands
the message on stdin to `send --queue` (or to `send` with --no-queue) with the account's
settings: spooled durably, tried once, retried by `mimekit queue run`. docs/sendmail.md.
"""

import io
import os
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import click

from mimekit.errors import ConfigError, UsageError
from mimekit.streams.files import CHUNK_SIZE
from mimekit_cli.common import reporting

ACCOUNT_VARIABLE = "MIMEKIT_ACCOUNT"
# The option letters of sendmail 8 and Postfix's sendmail(1). Those taking a value take it
# attached (-oi) or as the next argument (-f ADDR). Those not used here change nothing a
# relay client can honour (body type, DSN requests, hop count, syslog tag, error mode,
# delivery mode, sendmail.cf options such as -oem -odb -oQDIR), so they are accepted and
# ignored, as msmtp and Postfix ignore them.
VALUED_OPTIONS = frozenset("ABCFLNORVXbefhopr")
FLAG_OPTIONS = frozenset("GIUimntv")
NOT_A_QUEUE_RUNNER = "mimekit sendmail only takes a message on stdin"


@dataclass
class SendmailRequest:
    """What sendmail's arguments ask for."""

    recipients: list[str] = field(default_factory=list)
    sender: str | None = None        # -f/-r: the envelope sender ("" or "<>": the null sender)
    extract: bool = False            # -t: also the recipients of To, Cc and Bcc
    dot_ends_input: bool = True      # a line holding only "." ends the message, unless -i/-oi
    verbose: bool = False            # -v
    queue: bool = True               # --no-queue: send now, or fail
    account: str | None = None      # --account NAME
    help: bool = False


def parse_arguments(arguments: list[str] | tuple[str, ...]) -> SendmailRequest:
    """sendmail's command line: options (anywhere before `--`, as GNU getopt permutes
    them), then recipients. UsageError for an unknown option and for the modes that are not
    "deliver the message on stdin" (-bs, -bd, -bp, -q, -I)."""
    request = SendmailRequest()
    arguments = list(arguments)
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        index += 1
        if argument == "--":
            request.recipients += arguments[index:]
            break
        if argument.startswith("--"):
            index = _long_option(request, argument, arguments, index)
        elif argument.startswith("-") and argument != "-":
            index = _short_options(request, argument, arguments, index)
        else:
            request.recipients.append(argument)
    return request


def _short_options(request: SendmailRequest, argument: str, arguments: list[str], index: int) -> int:
    """One argument of grouped letters (-ti, -fADDR, -oem); returns the index of the next."""
    for position in range(1, len(argument)):
        letter = argument[position]
        if letter in VALUED_OPTIONS:
            value = argument[position + 1:]
            if not value:
                if index == len(arguments):
                    raise UsageError(f"option -{letter} needs a value")
                value, index = arguments[index], index + 1
            _valued_option(request, letter, value)
            return index
        if letter == "q":
            raise UsageError(f"{argument}: {NOT_A_QUEUE_RUNNER}; `mimekit queue run` delivers the queue")
        if letter == "I":
            raise UsageError(f"{argument}: mimekit has no aliases database")
        if letter not in FLAG_OPTIONS:
            raise UsageError(f"unknown option -{letter}" + (f" in {argument}" if len(argument) > 2 else ""))
        if letter == "t":
            request.extract = True
        elif letter == "i":
            request.dot_ends_input = False
        elif letter == "v":
            request.verbose = True
    return index


def _valued_option(request: SendmailRequest, letter: str, value: str) -> None:
    if letter in "fr":
        request.sender = value
    elif letter == "o" and value == "i":
        request.dot_ends_input = False
    elif letter == "b" and value != "m":
        where = ("`mimekit queue list` shows the queue" if value == "p"
                 else "-bm (a message on stdin, the default) is the only mode")
        raise UsageError(f"-b{value}: {NOT_A_QUEUE_RUNNER}; {where}")
    elif letter == "C":
        raise UsageError(f"-C {value}: the account comes from the mimekit config file; "
                         f"choose one with --account NAME or {ACCOUNT_VARIABLE}")


def _long_option(request: SendmailRequest, argument: str, arguments: list[str], index: int) -> int:
    """mimekit's own options, which sendmail's single letters cannot clash with."""
    name, has_value, value = argument.partition("=")
    if name == "--account":
        if not has_value:
            if index == len(arguments):
                raise UsageError("option --account needs a value")
            value, index = arguments[index], index + 1
        request.account = value
    elif argument == "--no-queue":
        request.queue = False
    elif argument == "--help":
        request.help = True
    else:
        raise UsageError(f"unknown option {name}")
    return index


class _UntilDotLine(io.RawIOBase):
    """stdin as sendmail reads it without -i: a line holding only "." ends the message,
    and what follows it is not read."""

    def __init__(self, source: BinaryIO):
        self._lines = self._message_lines(source)
        self._left = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self._left:
            self._left = next(self._lines, b"")
        count = min(len(buffer), len(self._left))
        buffer[:count] = self._left[:count]
        self._left = self._left[count:]
        return count

    @staticmethod
    def _message_lines(source: BinaryIO) -> Iterator[bytes]:
        at_line_start = True
        while line := source.readline(CHUNK_SIZE):   # a long line comes in pieces
            if at_line_start and line in (b".", b".\n", b".\r\n"):
                return
            at_line_start = line.endswith(b"\n")
            yield line


def _sending_account(name: str | None):
    """The account to send with: `name`, else $MIMEKIT_ACCOUNT, else the default one.
    Without one that has an smtp URL, a ConfigError saying what to write where."""
    from mimekit.accounts import config_path, load_config, resolve_account
    name = name or os.environ.get(ACCOUNT_VARIABLE) or None
    account = resolve_account(name)
    if account is None:
        config, path = load_config(), config_path()
        example = '[accounts.NAME] table with smtp = "smtps://HOST" (and user, from)'
        if config is None:
            raise ConfigError(f"no account to send with: {path} does not exist; create it with an {example}")
        if not config.accounts:
            raise ConfigError(f"no account to send with: {path} has none; add an {example}")
        raise ConfigError(f"no account to send with: {path} has several and no default; set default = \"NAME\" "
                          f"at its top, or {ACCOUNT_VARIABLE}=NAME")
    if "smtp" not in account.servers:
        raise ConfigError(f"{account.path}: account {account.name!r} has no server to send to; set "
                          f'smtp = "smtps://HOST" in [accounts.{account.name}]')
    return account


def _recipient_addresses(values: list[str]) -> list[str]:
    """Each argument is an address list, as sendmail reads it ("a@x.test, Bob <b@y.test>")."""
    from mimekit.headers.addresses import addr_specs, envelope_entries
    return [spec for value in values for spec in addr_specs(envelope_entries(value, "recipient"))]


class SendmailCommand(click.Command):
    """A command whose arguments reach it untouched: sendmail's syntax is not click's
    (`-oem` is -o with "em", `-h 5` is a hop count, `--` must stay)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.params["arguments"] = tuple(args)
        return []


@click.command("sendmail", cls=SendmailCommand, add_help_option=False,   # -h is sendmail's hop count
               options_metavar="[OPTIONS] [--] [RECIPIENT...] < MESSAGE")
@click.pass_context
def sendmail_command(ctx, arguments):
    """Be /usr/sbin/sendmail: queue the message on stdin, then try once.

    The account is --account NAME, else $MIMEKIT_ACCOUNT, else the config file's default.
    `mimekit-sendmail` is the same command as a program: set sendmail="mimekit-sendmail"
    in muttrc, sendemail.sendmailcmd for git send-email, sendmail_path for PHP.

    \b
    sendmail's options, values attached or next:
      -t               also send to the message's To, Cc and Bcc (Bcc is never transmitted)
      -i, -oi          a line holding only "." does not end the message
      -f ADDR, -r ADDR envelope sender ('' or '<>': the null sender); default: the
                       account's from, else the message's From
      -v               say what happened to each recipient
      -F, -B, -N, -R, -V, -L, -O, -X, -e, -h, -p, -o..., -bm, -G, -U, -m, -n: accepted and ignored
    mimekit's own:
      --account NAME   the account to send with
      --no-queue       send directly, as `mimekit send` does (4xx: exit 75, nothing kept)
      --help           this text

    Exit 0 once the message is safely queued (stderr says when delivery was deferred:
    `mimekit queue run` retries), 64 for bad options and for -bs, -bd, -bp, -q, 65 for a
    message with no usable sender or recipient, 69 when a recipient was refused for good,
    78 when no account is configured. See docs/sendmail.md.
    """
    from mimekit_cli.send import send_command
    with reporting("sendmail"):
        request = parse_arguments(arguments)
        if request.help:
            click.echo(ctx.get_help())
            return
        account = _sending_account(request.account)
        recipients = _recipient_addresses(request.recipients)
        if not recipients and not request.extract:
            raise UsageError("no recipient: give addresses after the options, or -t to read To, Cc and Bcc")
        if request.dot_ends_input:
            sys.stdin = io.TextIOWrapper(io.BufferedReader(_UntilDotLine(sys.stdin.buffer)))
        ctx.invoke(send_command, account_name=account.name, sender=request.sender, recipients=tuple(recipients),
                   extract=request.extract, queue_dir="" if request.queue else None, quiet=not request.verbose,
                   files=("-",))


def main() -> None:
    """The `mimekit-sendmail` program: `mimekit sendmail` with this program's arguments."""
    from mimekit_cli.main import main as mimekit
    mimekit(["sendmail", *sys.argv[1:]])


COMMANDS = [sendmail_command]
