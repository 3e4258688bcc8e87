"""`mimekit accounts list|check` and `--account` on send, fetch and folders, against the real
Postfix and Dovecot of tests/servers.py (logins, delivery, fetching are all real)."""

import json
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import write_config

REPO = Path(__file__).resolve().parents[2]


def mimekit(*args, env, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True,
                          timeout=120, cwd=REPO, env=env)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_account(servers, name="work", password="password = \"alice-Secret-1\"", **overrides) -> str:
    """An [accounts.NAME] table for alice on the test servers, STARTTLS everywhere."""
    values = {"smtp": f"smtp://{servers.host}:{servers.submission}", "imap": f"imap://{servers.host}:{servers.imap}",
              "pop3": f"pop3://{servers.host}:{servers.pop3}", "user": "alice", "from": "alice@example.test",
              "cafile": str(servers.ca_file), "timeout": 30, **overrides}
    lines = [f"[accounts.{name}]"] + [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join(lines + [password, ""])


def message(token: str) -> bytes:
    return (f"From: Postmaster <postmaster@example.test>\r\nTo: bob@example.test\r\nSubject: {token}\r\n"
            f"Message-ID: <{token}@example.test>\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\n\r\nHello.\r\n").encode()


def delivered_to(servers, user: str, token: str, timeout: float = 30) -> bytes:
    """The message carrying `token` in `user`'s Maildir, once Postfix has delivered it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [path.read_bytes() for path in servers.messages(user)]
        found = [copy for copy in found if token.encode() in copy]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"{token} never reached {user}")


# -- accounts list ----------------------------------------------------------------------------

def test_list_shows_names_users_servers_and_never_a_password(env):
    write_config(env, 'default = "work"\n'
                      '[accounts.work]\nsmtp = "smtps://mail.example.test"\nimap = "imaps://mail.example.test/INBOX"\n'
                      'user = "alice"\npassword = "s3cret-pw"\n'
                      '[accounts.home]\npop3 = "pop3s://bob@pop.example.test"\npassword_command = "pass home"\n')
    result = mimekit("accounts", "list", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "* work  alice  smtps://mail.example.test:465 imaps://mail.example.test:993/INBOX",
        "  home  bob    pop3s://pop.example.test:995"]
    result = mimekit("accounts", "list", "--json", env=env)
    document = json.loads(result.stdout)
    assert document["schema"] == "mimekit.accounts/1" and document["default"] == "work"
    assert [(a["name"], a["user"], a["smtp"], a["pop3"], a["password"]) for a in document["accounts"]] == [
        ("work", "alice", "smtps://mail.example.test:465", None, "config"),
        ("home", "bob", None, "pop3s://pop.example.test:995", "password_command")]
    assert b"s3cret-pw" not in result.stdout + result.stderr


def test_list_without_a_config_file_says_where_it_looked(env):
    result = mimekit("accounts", "list", env=env)
    assert result.returncode == 0 and result.stdout == b""
    assert b"mimekit accounts: no accounts: " in result.stderr and b"config.toml does not exist" in result.stderr
    assert json.loads(mimekit("accounts", "list", "--json", env=env).stdout)["accounts"] == []


def test_a_shared_file_holding_a_password_is_refused_by_every_command(env):
    path = write_config(env, '[accounts.work]\nsmtp = "smtps://127.0.0.1"\nuser = "a"\npassword = "s3cret-pw"\n',
                        mode=0o644)
    for args in (["accounts", "list"], ["accounts", "check", "work"], ["send", "--account", "work", "--to", "b@x"]):
        result = mimekit(*args, env=env, input=b"From: a@x\r\n\r\nx\r\n")
        assert result.returncode == 78, (args, result.stderr)
        assert f"(mode 0644); refusing to use it: chmod 600 {path}".encode() in result.stderr
        assert b"s3cret-pw" not in result.stderr and b"Traceback" not in result.stderr
    path.chmod(0o600)
    assert mimekit("accounts", "list", env=env).returncode == 0


def test_an_unknown_key_is_a_config_error_naming_key_and_file(env):
    path = write_config(env, '[accounts.work]\nsmtp = "smtps://127.0.0.1"\npasword_command = "x"\n')
    result = mimekit("send", "--account", "work", "--to", "b@example.test", env=env, input=b"From: a@x\r\n\r\nx\r\n")
    assert result.returncode == 78
    assert result.stderr.decode().startswith(f"mimekit send: {path}: unknown key 'pasword_command' in [accounts.work]")
    result = mimekit("accounts", "list", "--json", env=env)
    assert json.loads(result.stdout)["error"]["code"] == 78


def test_an_unknown_account_and_no_server_are_clear_errors(env):
    write_config(env, '[accounts.a]\nimap = "imaps://x.test"\n[accounts.b]\nimap = "imaps://y.test"\n')
    result = mimekit("send", "--account", "c", "--to", "b@example.test", env=env, input=b"From: a@x\r\n\r\nx\r\n")
    assert result.returncode == 78 and b"no account 'c' (accounts: 'a', 'b')" in result.stderr
    result = mimekit("send", "--account", "a", "--to", "b@example.test", env=env, input=b"From: a@x\r\n\r\nx\r\n")
    assert result.returncode == 64 and b"account 'a'" in result.stderr and b"has no smtp URL" in result.stderr
    result = mimekit("folders", env=env)
    assert result.returncode == 64 and b"no server given, and no default account in" in result.stderr


# -- accounts check, against Postfix and Dovecot ------------------------------------------------

@pytest.mark.servers
def test_check_logs_in_to_every_server_of_the_account(mail_servers, env):
    write_config(env, server_account(mail_servers))   # the password in the (private) file
    result = mimekit("accounts", "check", "work", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == ["smtp", "imap", "pop3"]
    assert all(line.split()[2:] == ["alice", "ok"] for line in lines), lines
    document = json.loads(mimekit("accounts", "check", "--json", env=env).stdout)   # the only account: the default
    assert document["account"] == "work"
    assert [(s["role"], s["ok"], s["logged_in"]) for s in document["servers"]] == [
        ("smtp", True, True), ("imap", True, True), ("pop3", True, True)]


@pytest.mark.servers
def test_check_reports_each_server_s_own_error(mail_servers, env):
    """A wrong password (77) from IMAP and POP3, a closed port (69) for SMTP: every server is
    tried, each reports its own error, and the exit code is the worst (69 before 77)."""
    write_config(env, server_account(mail_servers, smtp=f"smtp://127.0.0.1:{closed_port()}",
                                     password='password_command = "echo wrong-password"'))
    result = mimekit("accounts", "check", "work", "--json", env=env)
    assert result.returncode == 69, result.stderr
    servers = {s["role"]: s for s in json.loads(result.stdout)["servers"]}
    assert servers["smtp"]["error"]["code"] == 69 and "refused" in servers["smtp"]["error"]["message"]
    assert servers["imap"]["error"]["code"] == 77 and servers["pop3"]["error"]["code"] == 77
    assert b"wrong-password" not in result.stdout
    write_config(env, server_account(mail_servers, smtp=f"smtp://{mail_servers.host}:{mail_servers.submission}",
                                     password='password_command = "echo wrong-password"'))
    result = mimekit("accounts", "check", "work", env=env)
    assert result.returncode == 77
    assert [line.split()[:4] for line in result.stdout.decode().splitlines()] == [
        ["smtp", f"smtp://127.0.0.1:{mail_servers.submission}", "alice", "error"],
        ["imap", f"imap://127.0.0.1:{mail_servers.imap}", "alice", "error"],
        ["pop3", f"pop3://127.0.0.1:{mail_servers.pop3}", "alice", "error"]]



@pytest.mark.servers
def test_check_logs_in_with_the_account_s_token_command(mail_servers, env):
    """An OAuth2 account is checked with its token, as send and fetch log in: our Postfix and
    Dovecot offer no OAuth2 mechanism, so each server says so (77). check asked for a
    password instead, and reported "no password" (78) for every OAuth2 account."""
    write_config(env, server_account(mail_servers, password='token_command = "echo tok3n"'))
    result = mimekit("accounts", "check", "work", "--json", env=env)
    assert result.returncode == 77, result.stderr
    for server in json.loads(result.stdout)["servers"]:
        assert server["error"]["code"] == 77 and "neither OAUTHBEARER nor XOAUTH2" in server["error"]["message"]

# -- --account on send, fetch, folders ---------------------------------------------------------

@pytest.mark.servers
def test_send_with_the_account_delivers_from_its_address(mail_servers, env):
    write_config(env, 'default = "work"\n' + server_account(mail_servers)
                 + server_account(mail_servers, name="other", smtp="smtp://127.0.0.1:1"))
    token = f"account-{uuid.uuid4().hex[:12]}"
    result = mimekit("send", "--to", "bob@example.test", "--json", env=env, input=message(token))   # the default
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["messages"][0]["recipients"][0]["accepted"]
    copy = delivered_to(mail_servers, "bob", token)
    assert copy.startswith(b"Return-Path: <alice@example.test>"), "the account's from is the envelope sender"


@pytest.mark.servers
def test_flags_override_the_account(mail_servers, env):
    """The account's server is a closed port, its user alice with a wrong password and a
    1-second timeout: --server, --user, --password-command and --from given on the command
    line win, and the message is delivered as bob."""
    write_config(env, server_account(mail_servers, smtp=f"smtp://127.0.0.1:{closed_port()}", timeout=1,
                                     password='password_command = "echo wrong-password"'))
    token = f"override-{uuid.uuid4().hex[:12]}"
    result = mimekit("send", "--account", "work", "--server", f"smtp://{mail_servers.host}:{mail_servers.submission}",
                     "--user", "bob", "--password-command", "echo bob-Secret-2", "--from", "bob@example.test",
                     "--timeout", "30", "--to", "carol@example.test", "--json", env=env, input=message(token))
    assert result.returncode == 0, result.stderr
    copy = delivered_to(mail_servers, "carol", token)
    assert copy.startswith(b"Return-Path: <bob@example.test>")
    queue_id = json.loads(result.stdout)["messages"][0]["queue_id"]
    assert f"{queue_id}: client=".encode() in mail_servers.postfix_log.read_bytes()
    assert any(b"sasl_username=bob" in line for line in mail_servers.postfix_log.read_bytes().splitlines()
               if f"{queue_id}: client=".encode() in line)
    without_flags = mimekit("send", "--account", "work", "--to", "carol@example.test", env=env, input=message(token))
    assert without_flags.returncode == 69 and b"refused" in without_flags.stderr


@pytest.mark.servers
def test_fetch_and_folders_take_the_server_from_the_account(mail_servers, env, tmp_path):
    write_config(env, server_account(mail_servers))
    token = f"fetch-{uuid.uuid4().hex[:12]}"
    mail_servers.deliver_directly("alice", message(token).replace(b"\r\n", b"\n"))
    result = mimekit("folders", "--account", "work", env=env)
    assert result.returncode == 0, result.stderr
    assert "INBOX" in result.stdout.decode().splitlines()
    output = tmp_path / "out"
    result = mimekit("fetch", "-o", f"maildir:{output}", "-q", env=env)   # the only account, its imap URL
    assert result.returncode == 0, result.stderr
    assert any(token.encode() in path.read_bytes() for path in (output / "new").iterdir())
