"""`~` and `$NAME` in maildir:PATH and mbox:PATH (issue 15): expanded by every parser of
these specs (no shell does after the prefix: the README's `-o maildir:~/Mail/inbox` made
a folder named "~"); an unset variable is a usage error naming it."""

import os
import subprocess
import sys
from pathlib import Path

from mimekit.stores import Maildir, Mbox, open_mailbox
from mimekit.stores.sources import messages_of
from mimekit.transport.urls import parse_url

MESSAGE = b"From: a@example.test\nTo: b@example.test\nSubject: hi\n\nbody\n"


def mimekit(*args, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_STATE_HOME", None)      # fetch keeps its state under the home given here
    env.pop("NO_SUCH_VARIABLE", None)
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], cwd=cwd, env=env, capture_output=True)


def directories(tmp_path: Path) -> tuple[Path, Path, str]:
    """An empty working directory, a home, and a Maildir source holding one message."""
    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    Maildir(str(tmp_path / "source")).add([MESSAGE])
    return tmp_path / "work", tmp_path / "home", f"maildir:{tmp_path / 'source'}"


def test_the_readmes_fetch_into_maildir_tilde_goes_home_not_into_a_folder_named_tilde(tmp_path):
    work, home, source = directories(tmp_path)
    result = mimekit("fetch", source, "-o", "maildir:~/Mail/inbox", cwd=work, home=home)
    assert result.returncode == 0, result.stderr
    assert list(work.iterdir()) == []
    assert len(Maildir(str(home / "Mail" / "inbox"), create=False).keys()) == 1


def test_variables_and_tilde_in_the_url_parser_and_the_source_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILROOT", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_url("mbox:$MAILROOT/a.mbox", {"mbox"}).path == f"{tmp_path}/a.mbox"
    assert parse_url("maildir:${MAILROOT}/box", {"maildir"}).path == f"{tmp_path}/box"
    assert parse_url("maildir:~/Mail", {"maildir"}).path == f"{tmp_path}/home/Mail"
    assert parse_url("maildir:/srv/~/a$/$-", {"maildir"}).path == "/srv/~/a$/$-"   # as a shell leaves them
    open_mailbox("maildir:$MAILROOT/box").add([MESSAGE])
    open_mailbox("mbox:${MAILROOT}/a.mbox").add([MESSAGE])
    assert [ref.mailbox for ref in messages_of("maildir:$MAILROOT/box")] == [f"{tmp_path}/box"]
    assert [ref.mailbox for ref in messages_of("mbox:$MAILROOT/a.mbox")] == [f"{tmp_path}/a.mbox"]


def test_a_store_lists_its_own_path_as_given_not_expanded_again(tmp_path, monkeypatch):
    """A store's path was expanded once, when its spec was read; a "$" left in it is a name."""
    monkeypatch.setenv("HOME", "/elsewhere")
    maildir, mbox = Maildir(str(tmp_path / "$HOME")), Mbox(str(tmp_path / "$HOME.mbox"))
    maildir.add([MESSAGE])
    mbox.add([MESSAGE])
    assert [ref.mailbox for ref in maildir] == [maildir.path]
    assert [ref.mailbox for ref in mbox] == [mbox.path]


def test_an_unset_variable_is_a_usage_error_naming_it_and_nothing_is_created(tmp_path):
    work, home, source = directories(tmp_path)
    message = tmp_path / "message.eml"
    message.write_bytes(MESSAGE)
    for args in (["scan", "maildir:$NO_SUCH_VARIABLE/x"],
                 ["send", "--server", "mbox:${NO_SUCH_VARIABLE}.mbox", str(message)],
                 ["fetch", source, "-o", "maildir:$NO_SUCH_VARIABLE/inbox"]):
        result = mimekit(*args, cwd=work, home=home)
        stderr = result.stderr.decode()
        assert result.returncode == 64, (args, stderr)
        assert stderr.count("\n") == 1 and "$NO_SUCH_VARIABLE is not set" in stderr, (args, stderr)
    assert list(work.iterdir()) == []
