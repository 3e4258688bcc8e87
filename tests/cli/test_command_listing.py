"""`mimekit --help` lists the commands from cli/main.py's summaries without importing a
command module (issue 16, start-up): the listing must stay what click makes from the
commands themselves."""

import subprocess
import sys

import click
import pytest

from mimekit_cli.main import COMMAND_MODULES, main

WIDTHS = range(30, 201, 7)


def root_context() -> click.Context:
    return click.Context(main, info_name="mimekit", **main.context_settings)


@pytest.mark.parametrize("width", WIDTHS)
def test_help_lists_what_the_commands_themselves_would(width):
    listed, loaded = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    main.format_commands(root_context(), listed)
    click.Group.format_commands(main, root_context(), loaded)   # click's own: loads every command
    assert listed.getvalue() == loaded.getvalue()


def test_each_summary_is_its_commands_own_first_sentence():
    context = root_context()
    for name, (_, summary) in COMMAND_MODULES.items():
        assert main.get_command(context, name).get_short_help_str(limit=1000) == summary, name


def test_help_imports_no_command_module():
    code = ("import sys\nfrom mimekit_cli.main import COMMAND_MODULES, main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted({module for module, _ in COMMAND_MODULES.values()} & "
            "{name.removeprefix('mimekit_cli.') for name in sys.modules}), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "Commands:" in result.stdout and result.stderr.strip() == "[]"
