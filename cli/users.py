"""`mimekit users add|remove|list FILE`: the users file of `mimekit serve` (mimekit.serve.users).

A password never comes from argv and is never prompted for: --password-command (run as
send's is: its first output line, its exit status checked), else one line on stdin.
"""

import sys

import click

from mimekit.errors import UsageError
from mimekit.serve.users import Users, add_user, check_name, remove_user
from mimekit_cli.common import emit_json, json_option, print_diagnostic, reporting

FILE_FORMAT = """\b
The file: one user a line, NAME:$scrypt$ln=15,r=8,p=1$SALT$HASH (hashlib.scrypt, N = 2**ln,
a 16-byte random salt; base64 without padding). NAME is a local part or an address,
printable ASCII without ':', '/' or white space, not starting with '.' (it names the
mailbox directory), kept in lower case. Lines starting with # are
comments. The file is rewritten atomically with mode 0600; one that group or others can
read still works (it holds hashes only), with a warning."""


@click.group("users", epilog=FILE_FORMAT)
def users_command():
    """Manage the users file of `mimekit serve --users FILE`: password hashes, never passwords."""


@users_command.command("add", epilog="Exit 64 for a bad name or an empty password, 78 for a damaged file or a "
                                     "failed password command.")
@click.argument("file", metavar="FILE")
@click.argument("name", metavar="NAME")
@click.option("--password-command", metavar="CMD",
              help="Command whose first output line is the password (default: one line read from stdin).")
def add_command(file, name, password_command):
    """Add user NAME to FILE (created if missing), or give an existing user a new password."""
    with reporting("users"):
        check_name(name)   # before a password is asked for
        password = _password(password_command)
        if add_user(file, name, password):
            print_diagnostic("users", f"{file}: replaced the password of {name.lower()}")
        else:
            print_diagnostic("users", f"{file}: added {name.lower()}")


@users_command.command("remove", epilog="Exit 67 (NOUSER) when FILE has no user NAME, 66 when FILE cannot be "
                                        "read.")
@click.argument("file", metavar="FILE")
@click.argument("name", metavar="NAME")
def remove_command(file, name):
    """Remove user NAME from FILE."""
    with reporting("users"):
        remove_user(file, name)
        print_diagnostic("users", f"{file}: removed {name.lower()}")


@users_command.command("list", epilog="Exit 66 when FILE cannot be read, 78 when a line is damaged.")
@click.argument("file", metavar="FILE")
@json_option
def list_command(file, as_json):
    """The user names of FILE, one a line (never a hash)."""
    with reporting("users", as_json):
        users = Users.load(file)
        if users.readable_by_others:
            print_diagnostic("users", f"warning: {file} is readable by group or others "
                                      f"(it holds password hashes: chmod 600 {file})")
        if as_json:
            emit_json("users", {"path": file, "users": users.names()})
            return
        for name in users.names():
            click.echo(name)


def _password(password_command: str | None) -> str:
    """The password from the command, else the first line of stdin (a terminal is refused:
    no prompt ever)."""
    if password_command:
        from mimekit.transport.secrets import run_secret_command
        return run_secret_command(password_command)
    if sys.stdin.isatty():
        raise UsageError("give the password on stdin (one line) or with --password-command; "
                         "stdin is a terminal and mimekit never prompts")
    line = sys.stdin.buffer.readline()
    try:
        return line.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the password on stdin is not UTF-8") from None


COMMANDS = [users_command]
