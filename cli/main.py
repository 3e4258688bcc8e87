"""The `mimekit` command group. Each command lives in its own module beside this one."""

import gc
import importlib
import os
import sys

import click

from mimekit_cli.common import EXIT_CODE_TABLE, EXIT_USAGE, StdoutError, guard_stdout, printable, stdout_failed
from mimekit_cli.examples import examples_epilog


# Command name -> (the module under mimekit_cli that defines it, the first sentence of its
# help). Modules are imported only when their command runs, so `mimekit encode` does not pay
# for the SMTP/IMAP code; `mimekit --help` lists the commands from the sentences here, as
# click would from their whole help (tests/cli/test_command_listing.py), instead of importing
# every command module (6-7x the rest of `mimekit --help`: +1146 ms against +168 ms over
# `python -c pass` in one loaded run here).
COMMAND_MODULES = {
    "encode": ("encode", "Compose a MIME message from a body and files."),
    "check": ("check", "Check that messages are 7-bit clean and well formed."),
    "decode": ("decode", "Decode messages, however broken: extract their parts, or print one's text or one part."),
    "show": ("show", "Show messages: decoded headers, the tree of parts, and defects."),
    "scan": ("scan", "List messages, one line each: reference, flags, date, sender, size, attachments, subject "
                     "and first defect."),
    "send": ("send", "Send messages (files, or stdin) over one SMTP connection, or deliver them locally."),
    "fetch": ("fetch", "Fetch mail from SOURCE: imap://USER@HOST[:PORT]/FOLDER, imaps://..., pop3://USER@HOST[:PORT], "
                       "pop3s://..., maildir:PATH or mbox:PATH (default: the account's imap, else pop3, URL)."),
    "folders": ("fetch", "List the folders of an IMAP account, one per line (names decoded to UTF-8); without a URL, "
                         "of the account's imap server."),
    "accounts": ("accounts", "List the accounts of the config file, or check that one logs in."),
    "queue": ("queue", "The outgoing queue: mail spooled by `send --queue`, delivered by `queue run`."),
    "sendmail": ("sendmail", "Be /usr/sbin/sendmail: queue the message on stdin, then try once."),
    "users": ("users", "Manage the users file of `mimekit serve --users FILE`: password hashes, never passwords."),
    "serve": ("serve", "Run a mail server on a Maildir: SMTP in, POP3 out, in the foreground."),
    "web": ("web", "Show mail in a web page and a JSON API, read-only."),
    "completion": ("completion", "Print the shell completion script for SHELL (bash, zsh or fish)."),
}

# The variable through which a shell's completion script asks for candidates (cli/completion.py).
COMPLETE_VAR = "_MIMEKIT_COMPLETE"


class MimekitGroup(click.Group):
    """A group that loads each command on first use (with its examples, cli/examples.py),
    lists them in its help without loading any, and whose usage errors exit 64 (sysexits USAGE)
    instead of click's 2."""

    def list_commands(self, ctx):
        return list(COMMAND_MODULES)

    def get_command(self, ctx, name):
        if name not in COMMAND_MODULES:
            return None
        module = importlib.import_module(f"mimekit_cli.{COMMAND_MODULES[name][0]}")
        _start_collecting()
        command = next((command for command in module.COMMANDS if command.name == name), None)
        if command is not None:
            _add_examples(command, name)
        return command

    def format_commands(self, ctx, formatter):
        """The Commands section of `mimekit --help`, as click lays it out."""
        limit = formatter.width - 6 - max(map(len, COMMAND_MODULES))
        with formatter.section("Commands"):
            formatter.write_dl([(name, _listed(name).get_short_help_str(limit)) for name in COMMAND_MODULES])

    def resolve_command(self, ctx, args):
        """An unknown command names the nearest one: click suggests only among the commands
        it has loaded, and this group loads none before it needs them."""
        name = args[0]
        if name in COMMAND_MODULES or name.startswith("-") or ctx.resilient_parsing:
            return super().resolve_command(ctx, args)
        import difflib   # only for a mistyped command
        nearest = difflib.get_close_matches(name, COMMAND_MODULES, n=1)
        raise click.UsageError(f"No such command {name!r}." + (f" Did you mean {nearest[0]!r}?" if nearest else ""),
                               ctx)

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        if COMPLETE_VAR in os.environ:
            importlib.import_module("mimekit_cli.completion")   # its fish script, not click 8.4.0's broken one
        guard_stdout()
        try:
            try:
                result = super().main(args, prog_name or "mimekit", complete_var=COMPLETE_VAR, standalone_mode=False,
                                     **extra)
            finally:
                sys.stdout.flush()   # a write error surfaces here, not at interpreter exit
        except StdoutError as exc:   # one a command's own `reporting` did not see (e.g. --help)
            stdout_failed(None, exc)
        except click.UsageError as exc:
            _show_printable(exc)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            _show_printable(exc)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("mimekit: aborted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


def _listed(name: str) -> click.Command:
    """A stand-in for the command `name` that has only its summary (COMMAND_MODULES): click
    makes the same short help from it, at any width, as from the whole help."""
    return click.Command(name, help=COMMAND_MODULES[name][1])


def _add_examples(command: click.Command, path: str) -> None:
    """Append the examples of `path` ("queue", "queue run") to the help epilog of `command`
    and of its subcommands, once: the command objects live as long as their module."""
    examples = examples_epilog(path)
    if examples and examples not in (command.epilog or ""):
        command.epilog = f"{command.epilog}\n\n{examples}" if command.epilog else examples
    for name, subcommand in getattr(command, "commands", {}).items():
        _add_examples(subcommand, f"{path} {name}")


def _show_printable(exc: click.ClickException) -> None:
    """click's own error, with the argument it quotes (which may come from outside, as
    `mimekit show "$file"` does) made printable."""
    exc.message = printable(exc.message)
    exc.show()


@click.group(cls=MimekitGroup, epilog=EXIT_CODE_TABLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors (secrets are never printed).")
@click.version_option(package_name="mimekit")
@click.pass_context
def main(ctx, debug):
    """mimekit: turn files into sendable e-mail, read any message, send and fetch mail.

    Data goes to stdout, diagnostics to stderr; every command takes a path or - for stdin.

    Examples: mimekit COMMAND --help. Manual: man mimekit-COMMAND.
    """
    ctx.obj = {"debug": debug}


# True from `run` until the command's module is imported: the cyclic garbage collector is off.
_program_starting = False


def run() -> None:
    """The `mimekit` program (its console script and `python -m mimekit_cli`).

    Importing a command makes tens of thousands of objects (classes, functions, compiled
    patterns) that live until exit: the collector walks them during the imports and again
    at interpreter shutdown, for nothing. So it is off while the command loads, and what
    was made then is frozen out of its reach (gc.freeze) before it is on again for the
    command itself, which may run for days (serve, fetch --watch). Measured on `show` of a
    small message: 373M instructions (callgrind) without, 342M with. In-process callers of
    `main` (tests, click's CliRunner) keep the collector as it was.
    """
    global _program_starting
    gc.disable()
    _program_starting = True
    try:
        main()
    finally:
        _start_collecting()


def _start_collecting() -> None:
    """Freeze what the start-up made and turn the collector on (once)."""
    global _program_starting
    if _program_starting:
        _program_starting = False
        gc.freeze()
        gc.enable()
