"""`mimekit completion SHELL`: print click's completion script for bash, zsh or fish, so a
user installs it with one line instead of knowing click's _MIMEKIT_COMPLETE protocol."""

import click
from click.shell_completion import FishComplete, add_completion_class, get_completion_class

from mimekit_cli.main import COMPLETE_VAR

SHELLS = ("bash", "zsh", "fish")


class FixedFishComplete(FishComplete):
    """click's fish completion as click 8.4.2 repaired it: 8.4.0 and 8.4.1 print a script
    fish cannot parse (a bare \\n in `string split`, pallets/click#3502). Splitting at the
    first comma only keeps a description that has commas whole."""

    source_template = """\
function %(complete_func)s;
    set -l response (env %(complete_var)s=fish_complete COMP_WORDS=(commandline -cp) \
COMP_CWORD=(commandline -t) %(prog_name)s);

    for completion in $response;
        set -l metadata (string split -m 1 "," $completion);

        if test $metadata[1] = "dir";
            __fish_complete_directories $metadata[2];
        else if test $metadata[1] = "file";
            __fish_complete_path $metadata[2];
        else if test $metadata[1] = "plain";
            echo $metadata[2];
        end;
    end;
end;

complete --no-files --command %(prog_name)s --arguments "(%(complete_func)s)";
"""

    def format_completion(self, item) -> str:
        """One line per candidate: TYPE,VALUE, then a tab and the description (fish's format)."""
        if item.help:
            return f"{item.type},{item.value}\t{item.help.replace(chr(10), ' ').replace(chr(9), ' ')}"
        return f"{item.type},{item.value}"


add_completion_class(FixedFishComplete, "fish")   # for _MIMEKIT_COMPLETE=fish_source too (cli/main.py)


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
@click.pass_context
def completion_command(ctx, shell):
    """Print the shell completion script for SHELL (bash, zsh or fish).

    The script completes commands, subcommands, options and their choices; it runs
    mimekit (with _MIMEKIT_COMPLETE set) each time Tab is pressed, so it follows the
    installed version.

    \b
    Install it:
      bash  add to ~/.bashrc:   eval "$(mimekit completion bash)"
            or once, for every new bash (needs the bash-completion package):
            mimekit completion bash > ~/.local/share/bash-completion/completions/mimekit
      zsh   add to ~/.zshrc, after compinit:   eval "$(mimekit completion zsh)"
      fish  once:   mimekit completion fish > ~/.config/fish/completions/mimekit.fish
    """
    root = ctx.find_root()
    script = get_completion_class(shell)(root.command, {}, root.info_name, COMPLETE_VAR).source()
    click.echo(script)


COMMANDS = [completion_command]
