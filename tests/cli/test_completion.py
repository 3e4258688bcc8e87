"""Shell completion (issue 15): `mimekit completion SHELL` prints a script that the real bash,
zsh and fish load and that completes commands and options through the lazy group."""

import os
import shutil
import subprocess
import sys

import pytest


@pytest.fixture
def shell_env(tmp_path):
    """The environment of a shell whose `mimekit` is this checkout (whatever is installed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "mimekit"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mimekit_cli "$@"\n')
    shim.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def run_shell(shell: str, script: str, env: dict) -> list[str]:
    result = subprocess.run([shell, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout.splitlines()


def needs(shell: str):
    return pytest.mark.skipif(shutil.which(shell) is None, reason=f"needs {shell} (scripts/test installs it)")


BASH_COMPLETE = """
source <(mimekit completion bash)
complete -p mimekit >/dev/null        # registered for the command
COMP_WORDS=({words}); COMP_CWORD={index}
_mimekit_completion mimekit
printf '%s\\n' "${{COMPREPLY[@]}}"
"""


@needs("bash")
@pytest.mark.parametrize("words, expected", [
    ("mimekit dec", ["decode"]),
    ("mimekit decode --al", ["--all-readings"]),
    ("mimekit queue r", ["release", "retry", "run"]),
    ("mimekit completion ", ["bash", "zsh", "fish"]),
])
def test_bash_completes_commands_subcommands_options_and_choices(shell_env, words, expected):
    index = len(words.split()) - (0 if words.endswith(" ") else 1)
    assert run_shell("bash", BASH_COMPLETE.format(words=words, index=index), shell_env) == expected


@needs("fish")
def test_fish_completes_with_descriptions(shell_env):
    lines = run_shell("fish", 'source (mimekit completion fish | psub); complete -C "mimekit dec"; '
                              'complete -C "mimekit decode --al"', shell_env)
    assert lines[0].startswith("decode\tDecode messages, however broken")   # the comma kept
    assert lines[1].startswith("--all-readings\tWith -o")


@needs("zsh")
def test_zsh_registers_with_compdef_and_completes(shell_env):
    """zsh's compadd and _describe work only inside the line editor's completion widget, so
    they are replaced by functions that print what they were given; the rest is real zsh."""
    script = """
autoload -U compinit && compinit -u -D
source <(mimekit completion zsh)
print -r -- "registered: $_comps[mimekit]"
compadd() { print -rl -- "${(@P)${@[-1]}}" }
_describe() { print -rl -- "${(@P)3}" }
words=(mimekit dec); CURRENT=2; _mimekit_completion
words=(mimekit decode --al); CURRENT=3; _mimekit_completion
"""
    lines = run_shell("zsh", script, {**shell_env, "ZDOTDIR": "/nonexistent"})
    assert lines[0] == "registered: _mimekit_completion"
    assert lines[1].startswith("decode:Decode messages")
    assert lines[2].startswith("--all-readings:With -o")


def test_click_protocol_serves_the_same_scripts(shell_env):
    """_MIMEKIT_COMPLETE=SHELL_source (click's own way) and `mimekit completion SHELL` agree."""
    for shell in ("bash", "zsh", "fish"):
        ours = subprocess.run(["mimekit", "completion", shell], env=shell_env, capture_output=True, text=True)
        clicks = subprocess.run(["mimekit"], env={**shell_env, "_MIMEKIT_COMPLETE": f"{shell}_source"},
                                capture_output=True, text=True)
        assert ours.returncode == clicks.returncode == 0
        assert ours.stdout.strip() == clicks.stdout.strip() != ""


def test_completing_a_command_loads_only_that_command(shell_env):
    """The lazy group: `mimekit dec<Tab>` imports decode, not the IMAP and SMTP code of fetch and send."""
    probe = ("import sys\nfrom mimekit_cli.main import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(name for name in sys.modules if name.startswith('mimekit_cli.')), file=sys.stderr)")
    env = {**shell_env, "_MIMEKIT_COMPLETE": "bash_complete", "COMP_WORDS": "mimekit dec", "COMP_CWORD": "1"}
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert result.stdout == "plain,decode\n"
    loaded = result.stderr
    assert "mimekit_cli.decode" in loaded and "mimekit_cli.fetch" not in loaded and "mimekit_cli.send" not in loaded


def test_unknown_shell_is_a_usage_error(shell_env):
    result = subprocess.run(["mimekit", "completion", "ksh"], env=shell_env, capture_output=True, text=True)
    assert result.returncode == 64 and "'ksh' is not one of" in result.stderr and result.stdout == ""
