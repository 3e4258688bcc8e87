"""Help (issue 15): every command's --help ends with examples that use options the command
has, and an unknown command names the nearest one."""

import shlex
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from mimekit_cli.examples import EXAMPLES
from mimekit_cli.main import COMMAND_MODULES, main
from mimekit_cli.sendmail import parse_arguments as parse_sendmail_arguments


def root_context() -> click.Context:
    """A context as `mimekit` makes it (-h as well as --help): click keeps the help option a
    command is first asked for, so a bare context here would leave every later --help
    listing, man pages included, without -h."""
    return click.Context(main, info_name="mimekit", **main.context_settings)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, text=True)


def command_paths(group: click.Group = main, prefix: str = "") -> list[str]:
    """Every command a user can run: "decode", "queue run" (and the group "queue" itself)."""
    context = click.Context(group, info_name=prefix.strip() or "mimekit", parent=root_context())
    paths = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        paths.append(prefix + name)
        if isinstance(command, click.Group):
            paths += command_paths(command, f"{prefix}{name} ")
    return paths


def leaf_paths() -> list[str]:
    return [path for path in command_paths() if not any(other.startswith(path + " ") for other in command_paths())]


def mimekit_invocations(line: str) -> list[list[str]]:
    """The arguments of each `mimekit ...` in a shell line (pipes, redirections, <(...))."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    invocations, current = [], []
    for token in [*lexer, ";"]:
        if set(token) <= set("();<>|&"):
            if current[:1] == ["mimekit"]:
                invocations.append(current[1:])
            current = []
        else:
            current.append(token)
    return invocations


def parse_as_mimekit_would(args: list[str]) -> str:
    """Parse ARGS down to the command they run, as click's parser would (unknown option,
    option without its value, extra argument: UsageError), without converting values: the
    files an example names do not exist here. Returns the command's path."""
    command, path, context = main, [], root_context()
    while isinstance(command, click.Group):
        path.append(args[0])
        command = command.get_command(context, args.pop(0))
        assert command is not None, f"no command {' '.join(path)}"
        context = click.Context(command, info_name=path[-1], parent=context)
    if path == ["sendmail"]:   # sendmail's syntax is not click's (cli/sendmail.py)
        parse_sendmail_arguments(args)
    else:
        _, extra, _ = command.make_parser(context).parse_args(list(args))
        assert not extra, f"extra arguments {extra}"
    return " ".join(path)


def test_every_command_has_examples_and_every_example_is_of_a_command():
    assert set(EXAMPLES) <= set(command_paths())
    assert [path for path in leaf_paths() if path not in EXAMPLES] == []


@pytest.mark.parametrize("path", sorted(EXAMPLES))
def test_examples_use_options_their_command_has(path):
    for comment, line in EXAMPLES[path]:
        invocations = mimekit_invocations(line)
        assert invocations, line
        assert parse_as_mimekit_would(invocations[0]) == path, line   # the first is the command's own
        for args in invocations[1:]:
            parse_as_mimekit_would(args)


def test_the_check_catches_an_option_that_does_not_exist():
    with pytest.raises(click.NoSuchOption):
        parse_as_mimekit_would(["decode", "--all-reading", "message.eml"])
    with pytest.raises(click.BadOptionUsage):
        parse_as_mimekit_would(["decode", "message.eml", "--part"])


@pytest.mark.parametrize("path", ["decode", "queue", "queue run", "sendmail", "completion"])
def test_help_ends_with_the_examples(path):
    result = run_cli(*path.split(), "--help")
    assert result.returncode == 0, result.stderr
    examples = result.stdout.split("Examples:", 1)[1]
    for comment, line in EXAMPLES.get(path) or EXAMPLES[f"{path} run"]:
        assert f"# {comment}\n    {line}\n" in examples


def test_every_help_has_an_examples_section():
    """In one process, as the group loads each command (and its subcommands) once."""
    runner = CliRunner()
    for path in command_paths():
        result = runner.invoke(main, [*path.split(), "--help"], prog_name="mimekit")
        assert result.exit_code == 0, (path, result.output)
        assert result.output.count("\n  Examples:\n") == 1, path


def test_an_unknown_command_names_the_nearest():
    result = run_cli("decod", "message.eml")
    assert result.returncode == 64 and result.stdout == ""
    assert "Error: No such command 'decod'. Did you mean 'decode'?" in result.stderr
    nested = run_cli("queue", "rnu")
    assert nested.returncode == 64 and "No such command 'rnu'. Did you mean 'run'?" in nested.stderr
    nothing_near = run_cli("xyzzy")
    assert nothing_near.returncode == 64 and nothing_near.stderr.rstrip().endswith("No such command 'xyzzy'.")


def test_an_unknown_command_is_printed_printable():
    """The name comes from argv: an escape sequence in it reaches the terminal escaped."""
    result = run_cli("dec\x1b[2Jode\u202e")
    assert result.returncode == 64
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
    assert "dec\\x1b[2Jode" in result.stderr and "Traceback" not in result.stderr


def test_every_listed_command_loads():
    context = root_context()
    assert all(main.get_command(context, name) is not None for name in COMMAND_MODULES)
