"""`mimekit sendmail` and the `mimekit-sendmail` program (issue 12, "sendmail drop-in").

sendmail's option syntax in every form mutt, git send-email, cron and PHP use, the modes
that are refused, and the configuration errors; then the real clients (git send-email,
mutt in batch mode, a cron-style `-t -i`) handing mail to the installed mimekit-sendmail,
which queues it with the account of a config.toml and delivers it to the real Postfix of
tests/servers.py, where the Maildirs are read back.
"""

import io
import json
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import pytest

from mimekit.errors import UsageError
from mimekit_cli.sendmail import SendmailRequest, _UntilDotLine, parse_arguments
from helpers import write_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def program() -> Path:
    """The installed console script (pyproject.toml [project.scripts]; scripts/test installs it)."""
    path = Path(sysconfig.get_path("scripts")) / "mimekit-sendmail"
    if not path.exists():
        pytest.fail(f"{path} is not installed: run `pip install -e .` (scripts/test does)")
    return path


def account(servers, name: str = "work", queue_dir: Path | None = None, **overrides) -> str:
    """alice on the submission port (STARTTLS, then AUTH), her password in the private file."""
    values = {"smtp": f"smtp://{servers.host}:{servers.submission}", "user": "alice",
              "from": "Alice <alice@example.test>", "cafile": str(servers.ca_file), "timeout": 30,
              "password": servers.users["alice"], **overrides}
    if queue_dir:
        values["queue_dir"] = str(queue_dir)
    return "\n".join([f"[accounts.{name}]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]) + "\n"


def sendmail(*args, env, input=b""):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", "sendmail", *args], input=input,
                          capture_output=True, timeout=120, cwd=REPO, env=env)


def delivered_to(servers, user: str, token: str, timeout: float = 30) -> bytes:
    """The one message carrying `token` in `user`'s Maildir, once Postfix has delivered it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [path.read_bytes() for path in servers.messages(user)]
        found = [copy for copy in found if token.encode() in copy]
        if found:
            assert len(found) == 1, f"{len(found)} copies of {token} for {user}"
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"{token} never reached {user}")


def queue_entries(queue_dir: Path) -> list[str]:
    return sorted(path.name for path in (queue_dir / "queue").iterdir()) if (queue_dir / "queue").exists() else []


# -- option parsing --------------------------------------------------------------------------

@pytest.mark.parametrize("arguments, expected", [
    # mutt: sendmail="... -oem -oi", then -B8BITMIME, -f with use_envelope_from, DSN, "--"
    (["-oem", "-oi", "-B8BITMIME", "-f", "alice@x.test", "-N", "failure,delay", "-R", "hdrs", "--",
      "carol@x.test", "bob@x.test"],
     SendmailRequest(["carol@x.test", "bob@x.test"], sender="alice@x.test", dot_ends_input=False)),
    # git send-email: -i, then -f ENVELOPE when set, then the recipients
    (["-i", "-f", "alice@x.test", "carol@x.test"],
     SendmailRequest(["carol@x.test"], sender="alice@x.test", dot_ends_input=False)),
    # Debian's cron
    (["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-oi", "-t"], SendmailRequest(extract=True, dot_ends_input=False)),
    # PHP: sendmail_path = "sendmail -t -i", mail()'s additional parameters "-fADDR"
    (["-t", "-i", "-falice@x.test"], SendmailRequest(sender="alice@x.test", extract=True, dot_ends_input=False)),
    (["-ti"], SendmailRequest(extract=True, dot_ends_input=False)),
    (["-it", "-r", "a@x.test"], SendmailRequest(sender="a@x.test", extract=True, dot_ends_input=False)),
    (["-F", "Alice Example", "carol@x.test"], SendmailRequest(["carol@x.test"])),
    (["-f", "", "carol@x.test"], SendmailRequest(["carol@x.test"], sender="")),
    (["-f<>", "carol@x.test"], SendmailRequest(["carol@x.test"], sender="<>")),
    (["-odb", "-odi", "-oQ/var/spool/mqueue", "-om", "-bm", "-v", "-h", "5", "-L", "tag", "-G", "-U", "-n",
      "carol@x.test"], SendmailRequest(["carol@x.test"], verbose=True)),
    (["-o", "i", "carol@x.test"], SendmailRequest(["carol@x.test"], dot_ends_input=False)),
    (["carol@x.test", "-oi", "bob@x.test"], SendmailRequest(["carol@x.test", "bob@x.test"], dot_ends_input=False)),
    (["--", "-oi", "--no-queue"], SendmailRequest(["-oi", "--no-queue"])),
    (["--account", "home", "--no-queue", "c@x.test"], SendmailRequest(["c@x.test"], queue=False, account="home")),
    (["--account=home", "c@x.test"], SendmailRequest(["c@x.test"], account="home")),
    (["--help"], SendmailRequest(help=True)),
])
def test_options_in_every_form_the_clients_pass(arguments, expected):
    assert parse_arguments(arguments) == expected


@pytest.mark.parametrize("arguments, says", [
    (["-bs"], "-bs: mimekit sendmail only takes a message on stdin"),
    (["-bd"], "-bd: mimekit sendmail only takes a message on stdin"),
    (["-bp"], "`mimekit queue list` shows the queue"),
    (["-q"], "`mimekit queue run` delivers the queue"),
    (["-q30m"], "`mimekit queue run` delivers the queue"),
    (["-I"], "no aliases database"),
    (["-C", "/etc/mail/sendmail.cf", "c@x.test"], "choose one with --account NAME or MIMEKIT_ACCOUNT"),
    (["-Z", "c@x.test"], "unknown option -Z"),
    (["-tZ"], "unknown option -Z in -tZ"),
    (["c@x.test", "-f"], "option -f needs a value"),
    (["--account"], "option --account needs a value"),
    (["--queue", "c@x.test"], "unknown option --queue"),
    (["--no-queue=yes"], "unknown option --no-queue"),
])
def test_modes_and_options_that_are_refused(arguments, says):
    with pytest.raises(UsageError) as raised:
        parse_arguments(arguments)
    assert says in str(raised.value)


@pytest.mark.parametrize("arguments", [["-bs"], ["-q"], ["-X"], ["--bogus"], ["carol@example.test", "-f"]])
def test_refusals_exit_64_with_one_line(env, arguments):
    result = sendmail(*arguments, env=env)
    assert result.returncode == 64, result.stderr
    assert result.stderr.count(b"\n") == 1 and result.stderr.startswith(b"mimekit sendmail: ")


def test_a_line_holding_only_a_dot_ends_the_message_unless_i():
    source = b"Subject: x\r\n\r\n..not the end\r\n.x\r\n.\r\nafter the end\r\n"
    assert io.BufferedReader(_UntilDotLine(io.BytesIO(source))).read() == b"Subject: x\r\n\r\n..not the end\r\n.x\r\n"
    assert io.BufferedReader(_UntilDotLine(io.BytesIO(b"a\n.\nb\n"))).read() == b"a\n"
    assert io.BufferedReader(_UntilDotLine(io.BytesIO(b"a\n."))).read() == b"a\n"
    long_line = b"x" * 200_000 + b".\n.\n"   # a "." inside a long line read in pieces is not a line
    assert io.BufferedReader(_UntilDotLine(io.BytesIO(long_line))).read() == b"x" * 200_000 + b".\n"


# -- configuration errors ------------------------------------------------------------------------

def test_without_an_account_exit_78_names_the_file_and_the_key(env, tmp_path):
    path = Path(env["XDG_CONFIG_HOME"]) / "mimekit" / "config.toml"
    cases = [
        (None, f"{path} does not exist; create it with an [accounts.NAME] table with smtp = "),
        ("", f"{path} has none; add an [accounts.NAME] table with smtp = "),
        ('[accounts.a]\nsmtp = "smtps://a.test"\n[accounts.b]\nsmtp = "smtps://b.test"\n',
         f'{path} has several and no default; set default = "NAME" at its top, or MIMEKIT_ACCOUNT=NAME'),
        ('[accounts.a]\nimap = "imaps://a.test"\n', 'account \'a\' has no server to send to; set smtp = '
                                                    '"smtps://HOST" in [accounts.a]'),
    ]
    for text, says in cases:
        if text is not None:
            write_config(env, text)
        result = sendmail("-oi", "carol@example.test", env=env, input=b"Subject: x\r\n\r\nx\r\n")
        assert result.returncode == 78, (text, result.stderr)
        assert says in result.stderr.decode(), result.stderr
        assert result.stderr.count(b"\n") == 1
    result = sendmail("--account", "c", "carol@example.test", env=env)
    assert result.returncode == 78 and b"no account 'c'" in result.stderr
    result = sendmail("carol@example.test", env={**env, "MIMEKIT_ACCOUNT": "c"})
    assert result.returncode == 78 and b"no account 'c'" in result.stderr


def test_no_recipient_without_t_is_64_before_stdin_is_read(env):
    write_config(env, '[accounts.a]\nsmtp = "smtps://a.test"\n')
    result = sendmail("-oi", env=env)
    assert result.returncode == 64
    assert b"no recipient: give addresses after the options, or -t" in result.stderr


def test_an_unreadable_recipient_is_65(env):
    write_config(env, '[accounts.a]\nsmtp = "smtps://a.test"\n')
    result = sendmail("-oi", "bob@x.test <evil@y.test>", env=env)
    assert result.returncode == 65 and b"recipient" in result.stderr


def test_an_unreachable_server_still_exits_0_once_queued(env, tmp_path):
    with socket.socket() as sock:   # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    write_config(env, f'[accounts.a]\nsmtp = "smtp://127.0.0.1:{port}"\nqueue_dir = "{tmp_path / "q"}"\n')
    result = sendmail("-oi", "carol@example.test", env=env, input=b"From: a@x.test\r\nSubject: x\r\n\r\nx\r\n")
    assert result.returncode == 0, result.stderr
    assert b"deferred mail stays queued" in result.stderr
    assert len(queue_entries(tmp_path / "q")) == 2   # ID.eml and ID.json


# -- real clients against the real Postfix ---------------------------------------------------------

@pytest.mark.servers
def test_git_send_email_delivers_a_patch_through_mimekit_sendmail(mail_servers, env, tmp_path, program):
    token = f"patch-{uuid.uuid4().hex[:12]}"
    write_config(env, account(mail_servers, queue_dir=tmp_path / "queue"))
    repo = tmp_path / "repo"
    git_env = {**env, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.test",
               "GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": "alice@example.test"}

    def git(*args):
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=120, env=git_env)
        assert result.returncode == 0, result.stderr.decode()
        return result

    repo.mkdir()
    git("init", "-q")
    (repo / "README").write_text("hello\n")
    git("add", "README")
    git("commit", "-q", "-m", f"Add a README {token}")
    sent = git("-c", f"sendemail.sendmailcmd={program}", "send-email", "--to=carol@example.test",
               "--cc=bob@example.test", "--from=Alice <alice@example.test>", "--envelope-sender=alice@example.test",
               "--confirm=never", "--suppress-cc=all", "--no-validate", "-1")
    assert b"Result: OK" in sent.stdout, sent.stdout
    for user in ("carol", "bob"):
        copy = delivered_to(mail_servers, user, token)
        assert f"Subject: [PATCH] Add a README {token}".encode() in copy
        assert b"Return-Path: <alice@example.test>" in copy
        assert b"+hello" in copy   # the diff itself
    assert queue_entries(tmp_path / "queue") == []   # delivered at once, nothing left queued


@pytest.mark.servers
def test_mutt_in_batch_mode_delivers_through_mimekit_sendmail(mail_servers, env, tmp_path, program):
    token = f"mutt-{uuid.uuid4().hex[:12]}"
    write_config(env, account(mail_servers, queue_dir=tmp_path / "queue"))
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(f'set sendmail="{program} -oem -oi"\nset use_envelope_from=yes\n'
                      'set from="alice@example.test"\nset realname="Alice"\nset record=""\nset copy=no\n'
                      f'set folder="{tmp_path}"\nset spoolfile="{tmp_path}/inbox"\n')
    result = subprocess.run(["mutt", "-n", "-F", str(muttrc), "-s", f"Hello {token}", "--", "carol@example.test"],
                            input=b"Sent by mutt.\n", capture_output=True, timeout=120, env={**env, "TERM": "dumb"})
    assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()
    copy = delivered_to(mail_servers, "carol", token)
    assert f"Subject: Hello {token}".encode() in copy and b"Sent by mutt." in copy
    assert b"Return-Path: <alice@example.test>" in copy and b"From: Alice <alice@example.test>" in copy


@pytest.mark.servers
def test_cron_style_t_i_reads_recipients_from_the_header_and_never_transmits_bcc(mail_servers, env, tmp_path,
                                                                                   program):
    token = f"cron-{uuid.uuid4().hex[:12]}"
    write_config(env, account(mail_servers, queue_dir=tmp_path / "queue"))
    message = (f"From: root (Cron Daemon)\nTo: carol@example.test\nBcc: bob@example.test\nSubject: {token}\n\n"
               "Output of the job.\n.\nThe line above is a lone dot, kept with -i.\n").encode()
    result = subprocess.run([str(program), "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "-oi", "-t"], input=message,
                            capture_output=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    for user in ("carol", "bob"):
        copy = delivered_to(mail_servers, user, token)
        assert b"\nBcc:" not in copy and b"bob@example.test" not in copy.split(b"\nReceived:", 1)[1]
        assert b"\n.\nThe line above is a lone dot, kept with -i." in copy
        assert b"Return-Path: <alice@example.test>" in copy   # the account's from: the envelope sender


@pytest.mark.servers
def test_without_i_a_dot_line_ends_the_message(mail_servers, env, tmp_path):
    token = f"dot-{uuid.uuid4().hex[:12]}"
    write_config(env, account(mail_servers, queue_dir=tmp_path / "queue"))
    message = f"Subject: {token}\n\nFirst line.\n.\nNever sent.\n".encode()
    result = sendmail("carol@example.test", env=env, input=message)
    assert result.returncode == 0, result.stderr
    copy = delivered_to(mail_servers, "carol", token)
    assert b"First line." in copy and b"Never sent." not in copy


@pytest.mark.servers
def test_null_sender_no_queue_and_an_account_chosen_by_the_environment(mail_servers, env, tmp_path):
    token = f"direct-{uuid.uuid4().hex[:12]}"
    write_config(env, account(mail_servers, name="home", queue_dir=tmp_path / "home-queue")
                 + account(mail_servers, name="work", queue_dir=tmp_path / "work-queue", smtp="smtps://192.0.2.1"))
    message = f"From: Alice <alice@example.test>\nSubject: {token}\n\nBounce-like.\n".encode()
    result = sendmail("--no-queue", "-v", "-oi", "-f", "", "carol@example.test", env={**env, "MIMEKIT_ACCOUNT": "home"},
                      input=message)
    assert result.returncode == 0, result.stderr
    assert b"1 of 1 recipient(s) accepted" in result.stderr   # -v: said what happened
    assert b"Return-Path: <>" in delivered_to(mail_servers, "carol", token)
    assert not (tmp_path / "home-queue").exists() and not (tmp_path / "work-queue").exists()

    token = f"queued-{uuid.uuid4().hex[:12]}"
    queued = sendmail("-oi", "-f<>", "--account", "home", "carol@example.test", env=env,
                      input=f"Subject: {token}\n\nx\n".encode())
    assert queued.returncode == 0, queued.stderr
    assert queued.stderr.decode().splitlines() == ["mimekit send: 1 delivered, 0 deferred, 0 failed; 0 entries waiting"]
    assert b"Return-Path: <>" in delivered_to(mail_servers, "carol", token)


@pytest.mark.servers
def test_a_recipient_refused_for_good_is_69(mail_servers, env, tmp_path):
    write_config(env, account(mail_servers, queue_dir=tmp_path / "queue"))
    result = sendmail("-oi", "nobody@example.test", env=env, input=b"Subject: x\n\nx\n")
    assert result.returncode == 69, result.stderr
    assert b"nobody@example.test failed: 550" in result.stderr
