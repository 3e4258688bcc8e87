"""`mimekit encode --edit`: the user's editor on the text body, only when asked and only
with a terminal on stdin (a pty here), never on the output's way. The editor is a small
script that records what it was given and rewrites the draft, as a person would."""

import email
import email.policy
import json
import os
import stat
import subprocess
import sys

import pytest

from helpers import assert_clean_message

SENDER = "zoe@example.org"
EDITED = "Edited in the editor\n"

EDITOR_SCRIPT = f"""#!{sys.executable}
import json, os, stat, sys
draft = sys.argv[-1]
with open(os.environ["EDITOR_LOG"], "w") as log:
    json.dump({{"argv": sys.argv[1:], "draft": open(draft).read(), "mode": stat.S_IMODE(os.stat(draft).st_mode),
               "stdin_is_a_terminal": os.isatty(0)}}, log)
print("screen drawing")   # what a full-screen editor sends to its terminal
with open(draft, "w") as file:
    file.write({EDITED!r})
sys.exit(int(os.environ.get("EDITOR_EXIT", "0")))
"""


@pytest.fixture
def editor(tmp_path):
    """The editor script's path; what it saw is in `editor.log` once it ran."""
    script = tmp_path / "editor"
    script.write_text(EDITOR_SCRIPT)
    script.chmod(0o755)
    return script


def encode(tmp_path, *args, terminal=True, **env):
    """Run `mimekit encode` with a pty as stdin (or /dev/null), TMPDIR inside tmp_path and
    only the editor variables given in `env`."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    inherited = {name: value for name, value in os.environ.items() if name not in ("VISUAL", "EDITOR", "EMAIL")}
    environment = {**inherited, "TMPDIR": str(tmp_path / "tmp"), "EDITOR_LOG": str(tmp_path / "log"), **env}
    command = [sys.executable, "-m", "mimekit_cli", "encode", "--from", SENDER, *map(str, args)]
    if not terminal:
        return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, env=environment)
    controller, terminal_end = os.openpty()
    try:
        result = subprocess.run(command, stdin=terminal_end, capture_output=True, env=environment)
        result.terminal = on_the_screen(controller)
        return result
    finally:
        os.close(terminal_end)
        os.close(controller)


def on_the_screen(controller: int) -> bytes:
    """What was written to the terminal (the pty holds it until read)."""
    os.set_blocking(controller, False)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except (BlockingIOError, OSError):
            return shown
        if not chunk:
            return shown
        shown += chunk


def editor_log(tmp_path) -> dict | None:
    log = tmp_path / "log"
    return json.loads(log.read_text()) if log.exists() else None


def body_of(raw: bytes) -> str:
    return email.message_from_bytes(raw, policy=email.policy.default).get_content()


def test_the_body_file_is_the_draft_and_what_is_saved_is_sent(tmp_path, editor):
    body = tmp_path / "body.txt"
    body.write_text("Dear Ann,\n")
    result = encode(tmp_path, "--edit", "--body", body, EDITOR=f"{editor} --wait 'two words'")
    assert result.returncode == 0, result.stderr
    assert assert_clean_message(result.stdout).get_content() == EDITED.replace("\n", "\r\n")
    seen = editor_log(tmp_path)
    assert seen["argv"][:2] == ["--wait", "two words"]   # $EDITOR split as a shell would
    assert seen["draft"] == "Dear Ann,\n" and seen["mode"] == 0o600 and seen["stdin_is_a_terminal"]
    assert os.path.dirname(seen["argv"][-1]) == str(tmp_path / "tmp")
    assert list((tmp_path / "tmp").iterdir()) == []        # the draft is removed
    assert body.read_text() == "Dear Ann,\n"                # the --body file is left as it was


def test_the_editor_draws_on_the_terminal_never_into_the_message_or_its_log(tmp_path, editor):
    """stdout is the message and stderr may be redirected (2>log): the editor gets the
    terminal the user types on."""
    result = encode(tmp_path, "--edit", EDITOR=str(editor))
    assert b"screen drawing" in result.terminal
    assert b"screen drawing" not in result.stdout + result.stderr
    assert body_of(result.stdout) == EDITED.replace("\n", "\r\n")


def test_without_a_body_the_draft_is_empty_and_visual_comes_first(tmp_path, editor):
    result = encode(tmp_path, "--edit", VISUAL=str(editor), EDITOR="false")
    assert result.returncode == 0, result.stderr
    assert editor_log(tmp_path)["draft"] == ""


def test_no_editor_without_edit_even_at_a_terminal(tmp_path, editor):
    result = encode(tmp_path, "--body", os.devnull, EDITOR=str(editor))
    assert result.returncode == 0 and editor_log(tmp_path) is None


def test_edit_without_a_terminal_is_64_and_runs_no_editor(tmp_path, editor):
    result = encode(tmp_path, "--edit", terminal=False, EDITOR=str(editor))
    assert result.returncode == 64 and result.stdout == b""
    assert result.stderr.decode() == "mimekit encode: --edit needs a terminal on stdin\n"
    assert editor_log(tmp_path) is None


def test_edit_with_the_body_from_stdin_is_64(tmp_path, editor):
    result = encode(tmp_path, "--edit", "--body", "-", EDITOR=str(editor))
    assert result.returncode == 64 and b"--body FILE" in result.stderr
    assert editor_log(tmp_path) is None


def test_a_failing_editor_means_nothing_is_written(tmp_path, editor):
    out = tmp_path / "out.eml"
    result = encode(tmp_path, "--edit", "-o", out, EDITOR=str(editor), EDITOR_EXIT="3")
    assert result.returncode == 64 and result.stdout == b""
    assert result.stderr.decode().splitlines()[-1] == (
        f"mimekit encode: the editor {editor} failed (exit 3): nothing written")
    assert not out.exists() and list((tmp_path / "tmp").iterdir()) == []


def test_an_editor_killed_by_a_signal_says_so(tmp_path):
    result = encode(tmp_path, "--edit", EDITOR="sh -c 'kill -TERM $$'")
    assert result.returncode == 64 and result.stdout == b""
    assert result.stderr.decode() == "mimekit encode: the editor sh failed (killed by signal 15): nothing written\n"


@pytest.mark.parametrize("command, mention", [
    ("/no/such/editor", "cannot run the editor /no/such/editor"),
    ("vi 'unclosed", "cannot read the editor command"),
])
def test_an_editor_that_cannot_run_is_a_configuration_error(tmp_path, command, mention):
    result = encode(tmp_path, "--edit", EDITOR=command)
    assert result.returncode == 78 and result.stdout == b""
    assert len(result.stderr.splitlines()) == 1 and mention in result.stderr.decode()


def test_the_edited_text_is_kept_when_the_message_cannot_be_made(tmp_path, editor):
    result = encode(tmp_path, "--edit", "--attach", tmp_path / "missing.pdf", EDITOR=str(editor))
    assert result.returncode == 66
    kept, = (tmp_path / "tmp").iterdir()
    assert result.stderr.decode().splitlines()[-1].endswith(f"(the edited text is kept in {kept})")
    assert kept.read_text() == EDITED and stat.S_IMODE(kept.stat().st_mode) == 0o600


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_the_edited_text_is_kept_when_the_output_cannot_be_written(tmp_path, editor):
    result = encode(tmp_path, "--edit", "-o", "/dev/full", EDITOR=str(editor))
    assert result.returncode == 74
    kept, = (tmp_path / "tmp").iterdir()
    assert result.stderr.decode().splitlines()[-1].endswith(f"(the edited text is kept in {kept})")
    assert kept.read_text() == EDITED


def test_a_reply_is_edited_with_its_quote_in_the_draft(tmp_path, editor):
    original = tmp_path / "original.eml"
    original.write_bytes(b"From: ann@example.org\nSubject: lunch\nMessage-ID: <1@example.org>\n\nNoon?\n")
    result = encode(tmp_path, "--edit", "--reply", original, EDITOR=str(editor))
    assert result.returncode == 0, result.stderr
    assert "> Noon?" in editor_log(tmp_path)["draft"]
    assert assert_clean_message(result.stdout)["In-Reply-To"] == "<1@example.org>"
