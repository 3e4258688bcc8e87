"""Man pages made from the click commands, so they say what --help says: mimekit(1) with
the command list and the exit codes, and one page per command, mimekit-COMMAND(1), a
group's subcommands on its page (as git-remote(1) has `git remote add`).
scripts/build-manpages writes them to docs/man/; pyproject installs them in share/man/man1."""

import inspect
from importlib.metadata import PackageNotFoundError, version

import click

from mimekit_cli.common import EXIT_STATUSES, PARTIAL_FAILURE_RULE
from mimekit_cli.examples import examples_epilog, examples_of


def manual_pages(root: click.Group) -> dict[str, str]:
    """Every page: file name ("mimekit-decode.1") -> its roff text."""
    root_context = click.Context(root, info_name="mimekit", **root.context_settings)   # -h as well as --help
    pages = {"mimekit.1": render_main_page(root_context)}
    for name in root.list_commands(root_context):
        context = click.Context(root.get_command(root_context, name), info_name=name, parent=root_context)
        pages[f"mimekit-{name}.1"] = render_command_page(context)
    return pages


def render_main_page(context: click.Context) -> str:
    """mimekit(1): what the group's help says, its commands, and the one table of exit codes."""
    group = context.command
    lines = _header("mimekit", group)
    lines += [".SH SYNOPSIS", _synopsis(context), ".SH DESCRIPTION"]
    lines += _paragraphs(inspect.cleandoc(group.help))   # its epilog is the exit codes, below
    lines += [".SH OPTIONS", *_options(context), ".SH COMMANDS"]
    for name in group.list_commands(context):
        lines += [".TP", f"\\fBmimekit\\-{_escape(name)}\\fR(1)", _escape(_summary(group.get_command(context, name)))]
    lines += [".SH EXIT STATUS"]
    for code, name, meaning in EXIT_STATUSES:
        lines += [".TP", f"\\fB{code}\\fR {name}", _escape(meaning)]
    lines += [".PP", _escape(PARTIAL_FAILURE_RULE)]
    lines += [".SH SEE ALSO", ", ".join(f"\\fBmimekit\\-{_escape(name)}\\fR(1)" for name in group.list_commands(context))]
    return "\n".join(lines) + "\n"


def render_command_page(context: click.Context) -> str:
    """mimekit-COMMAND(1): synopsis, help text, options (a group: each subcommand's), examples."""
    subcontexts = _subcommand_contexts(context)
    lines = _header(context.command_path.replace(" ", "-"), context.command)
    lines += [".SH SYNOPSIS", *(_synopsis(each) for each in subcontexts or [context])]
    lines += [".SH DESCRIPTION", *_paragraphs(_help_text(context))]
    if subcontexts:
        lines += [".SH COMMANDS"]
        for sub in subcontexts:
            lines += [f".SS {_escape(sub.command_path)}", *_paragraphs(_help_text(sub))]
            lines += [".PP", "Options:", ".RS", *_options(sub), ".RE"]
    elif options := _options(context):
        lines += [".SH OPTIONS", *options]
    examples = examples_of(context.command_path.removeprefix("mimekit "))
    if examples:
        lines += [".SH EXAMPLES"]
        for comment, line in examples:
            lines += [".PP", _escape(comment), ".PP", ".RS 4", ".nf", _escape(line), ".fi", ".RE"]
    lines += [".SH EXIT STATUS", "Those of every mimekit command: see EXIT STATUS in \\fBmimekit\\fR(1).",
              ".SH SEE ALSO", "\\fBmimekit\\fR(1)"]
    return "\n".join(lines) + "\n"


def _subcommand_contexts(context: click.Context) -> list[click.Context]:
    group = context.command
    if not isinstance(group, click.Group):
        return []
    return [click.Context(group.get_command(context, name), info_name=name, parent=context)
            for name in group.list_commands(context)]


def _header(page_name: str, command: click.Command) -> list[str]:
    try:
        source = f"mimekit {version('mimekit')}"
    except PackageNotFoundError:   # run from a checkout that was never installed
        source = "mimekit"
    return [f'.TH "{page_name.upper()}" "1" "" "{source}" "mimekit manual"',
            ".SH NAME", f"{_escape(page_name)} \\- {_escape(_summary(command).removeprefix(page_name + ': '))}"]


def _summary(command: click.Command) -> str:
    """The first sentence of the help, whole (the command list of --help cuts it to fit)."""
    return command.get_short_help_str(limit=1000)


def _synopsis(context: click.Context) -> str:
    pieces = context.command.collect_usage_pieces(context)
    return f".B {_escape(context.command_path)}\n" + _escape(" ".join(pieces)) + "\n.br"


def _help_text(context: click.Context) -> str:
    """The help and the epilog as --help shows them, less the examples (their own section)
    and anything after click's \\f (meant for the code's readers)."""
    command = context.command
    help_text = inspect.cleandoc(command.help or "").partition("\f")[0]
    path = context.command_path.removeprefix("mimekit ")
    epilog = (command.epilog or "").replace(examples_epilog(path), "")
    return f"{help_text}\n\n{inspect.cleandoc(epilog)}".strip()


def _paragraphs(text: str) -> list[str]:
    """click's paragraphs (blank-line separated; "\\b" first: lines kept as written) in roff."""
    lines = []
    for paragraph in text.split("\n\n"):
        if not paragraph.strip():
            continue
        if paragraph.startswith("\b\n"):
            lines += [".PP", ".nf", _escape(paragraph.removeprefix("\b\n")), ".fi"]
        else:
            lines += [".PP", _escape("\n".join(line.strip() for line in paragraph.splitlines()))]
    return lines


def _options(context: click.Context) -> list[str]:
    lines = []
    for param in context.command.get_params(context):
        record = param.get_help_record(context)
        if record is not None:
            flags, help_text = record
            lines += [".TP", f"\\fB{_escape(flags)}\\fR", _escape(help_text)]   # not .B: a quote in it would split
    return lines


def _escape(text: str) -> str:
    """Text as roff prints it: a backslash as \\e, a hyphen as \\- (a minus, so options
    copy and search as typed), and a line starting with . or ' not taken as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))
