"""The `mimekit` command group. Each command lives in its own module beside this one."""

import sys

import click

from mimekit_cli.common import EXIT_CODE_TABLE, EXIT_USAGE


class MimekitGroup(click.Group):
    """A group whose usage errors exit 64 (sysexits USAGE) instead of click's 2."""

    def main(self, args=None, prog_name=None, **extra):
        extra.pop("standalone_mode", None)
        try:
            result = super().main(args, prog_name or "mimekit", standalone_mode=False, **extra)
        except click.UsageError as exc:
            exc.show()
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("mimekit: aborted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=MimekitGroup, epilog=EXIT_CODE_TABLE, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for internal errors (secrets are never printed).")
@click.version_option(package_name="mimekit")
@click.pass_context
def main(ctx, debug):
    """mimekit: turn files into sendable e-mail, read any message, send and fetch mail.

    Data goes to stdout, diagnostics to stderr; every command takes a path or - for stdin.
    """
    ctx.obj = {"debug": debug}


def _register_commands() -> None:
    from mimekit_cli import check, decode, encode, fetch, send, show

    for module in (encode, check, decode, show, send, fetch):
        for command in module.COMMANDS:
            main.add_command(command)


_register_commands()
