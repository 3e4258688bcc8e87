"""`mimekit completion SHELL`: print click's completion script for bash, zsh or fish, so a
user installs it with one line instead of knowing click's _MIMEKIT_COMPLETE protocol."""

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "zsh", "fish")


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
    complete_var = f"_{root.info_name}_COMPLETE".replace("-", "_").upper()   # as click's main() names it
    script = get_completion_class(shell)(root.command, {}, root.info_name, complete_var).source()
    click.echo(script)


COMMANDS = [completion_command]
