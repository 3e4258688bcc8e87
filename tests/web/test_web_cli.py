"""`mimekit web` and `mimekit serve --http` as their users run them: a subprocess on
127.0.0.1 (port 0, read back from the ready line), requests with urllib, SIGTERM -> exit 0;
and the refusals that keep the mail from the network: one line, the right exit code."""

import base64
import json
import os
import re
import smtplib
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import web_messages

import mimekit_cli.web as cli_web
from mimekit.errors import NoInputError, UnavailableError
from mimekit.web import folders

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serve"))
from served import HOST, STARTUP_DEADLINE, mimekit_command, run_mimekit, start_serve, stop_process  # noqa: E402

TOKEN = "web-cli-token-0123456789abcdef"
PASSWORD = "alice-Web-Secret-1"


@pytest.fixture
def mail(tmp_path) -> Path:
    root = tmp_path / "Mail"
    web_messages.deliver(str(root), web_messages.plain(subject="Hello web"))
    web_messages.deliver(str(root / ".Archive"), web_messages.plain(subject="Old news"))
    return root


def get(port: int, path: str, headers: dict | None = None, method: str = "GET"):
    """(status, JSON body or text) of a request to 127.0.0.1:port."""
    request = urllib.request.Request(f"http://{HOST}:{port}{path}", headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers.get_content_type()
    return status, json.loads(body) if kind == "application/json" else body.decode()


def mailboxes(port: int, headers: dict | None = None) -> dict[str, dict]:
    status, body = get(port, "/api/mailboxes", headers)
    assert status == 200, body
    return {mailbox["name"]: mailbox for mailbox in body["mailboxes"]}


# -- mimekit web ------------------------------------------------------------------------------

def test_web_serves_a_maildir_read_only_and_stops_on_sigterm(tmp_path, web, mail):
    running = web(f"maildir:{mail}", "--http", f"{HOST}:0", "--index", str(tmp_path / "index.sqlite"))
    boxes = mailboxes(running.port)
    assert boxes["INBOX"]["totalEmails"] == 1 and boxes["Archive"]["totalEmails"] == 1
    status, page = get(running.port, f"/api/messages?mailbox={boxes['INBOX']['id']}")
    assert status == 200 and [email["subject"] for email in page["emails"]] == ["Hello web"]
    status, session = get(running.port, "/api/session")
    assert session["readOnly"] is True and session["canSend"] is False
    assert (tmp_path / "index.sqlite").is_file()
    assert running.stop().splitlines() == [f"mimekit web: listening: http {HOST}:{running.port}"]


def test_the_default_index_is_private_in_the_cache_and_found_again(web, mail, env):
    """Same sources, another working directory: the same index file."""
    first = web(str(mail), "--http", f"{HOST}:0")
    first.stop()
    cache = Path(env["HOME"]) / ".cache" / "mimekit" / "web"
    [index] = cache.glob("*.sqlite")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    second = web(mail.name, "--http", f"{HOST}:0", cwd=mail.parent)
    second.stop()
    assert list(cache.glob("*.sqlite")) == [index]


def test_web_beyond_loopback_asks_for_the_token(tmp_path, web, mail, env):
    running = web(str(mail), "--http", "0.0.0.0:0", "--listen-publicly", "--index", str(tmp_path / "index"),
                  environment=dict(env, MIMEKIT_WEB_TOKEN=TOKEN))
    assert get(running.port, "/api/mailboxes")[0] == 401
    assert mailboxes(running.port, {"Authorization": f"Bearer {TOKEN}"})["INBOX"]["totalEmails"] == 1
    lines = running.stop().splitlines()
    assert lines[0].startswith("mimekit web: warning: HTTP without TLS beyond loopback")
    assert lines[1] == f"mimekit web: listening: http 0.0.0.0:{running.port}"


def test_web_with_a_token_file(tmp_path, web, mail):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    running = web(str(mail), "--http", f"{HOST}:0", "--token-file", str(token_file), "--index", str(tmp_path / "i"))
    assert get(running.port, "/api/mailboxes", {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
    assert mailboxes(running.port, {"Authorization": f"Bearer {TOKEN}"})


@pytest.mark.parametrize("arguments, expected", [
    (("--http", "0.0.0.0:0"), "mimekit web: --http 0.0.0.0:0: not a loopback address; add --listen-publicly "
                              "to accept connections from other machines"),
    (("--http", "192.0.2.1:8025", "--listen-publicly"),
     "mimekit web: --listen-publicly needs --users FILE or a token (--token-file, $MIMEKIT_WEB_TOKEN): without "
     "logins anyone who reaches the address could read the mail"),
    (("--tls-cert", "cert.pem"), "mimekit web: --tls-cert and --tls-key go together: give both or neither"),
    (("--queue-dir", "queue"), "mimekit web: --queue-dir is the queue of --send: give --send URL too"),
    (("--http", "off"), "mimekit web: --http off: nothing to serve"),
])
def test_web_usage_errors_are_one_line_and_exit_64(mail, env, arguments, expected):
    result = run_mimekit("web", str(mail), *arguments, env=env, expect=64)
    assert result.stderr.decode().splitlines() == [expected]


def test_a_token_cannot_be_given_on_the_command_line(mail, env):
    result = run_mimekit("web", str(mail), "--token", TOKEN, env=env, expect=64)
    assert "No such option '--token'" in result.stderr.decode()


def test_standard_input_is_not_a_source(env):
    result = run_mimekit("web", "-", env=env, expect=64)
    assert result.stderr.decode().splitlines() == [
        "mimekit web: -: standard input cannot be served: give a Maildir, an mbox or a directory"]


@pytest.mark.parametrize("mode, content, expected", [
    (0o644, TOKEN, "holds passwords but group or others may open it"),
    (0o600, "short", "the token is shorter than 16 characters"),
])
def test_a_token_file_shared_or_too_short_is_a_config_error(tmp_path, mail, env, mode, content, expected):
    token_file = tmp_path / "token"
    token_file.write_text(content + "\n")
    token_file.chmod(mode)
    result = run_mimekit("web", str(mail), "--token-file", str(token_file), env=env, expect=78)
    [line] = result.stderr.decode().splitlines()
    assert expected in line and TOKEN not in line


def test_a_port_in_use_is_exit_74_naming_the_address(tmp_path, mail, env):
    with socket.create_server((HOST, 0)) as taken:
        port = taken.getsockname()[1]
        result = run_mimekit("web", str(mail), "--http", f"{HOST}:{port}", "--index", str(tmp_path / "i"),
                             env=env, expect=74)
    [line] = result.stderr.decode().splitlines()
    assert line.startswith(f"mimekit web: cannot listen on {HOST}:{port} (http): ")


def test_a_missing_source_is_exit_66(tmp_path, env):
    result = run_mimekit("web", str(tmp_path / "nowhere"), "--index", str(tmp_path / "i"), env=env, expect=66)
    assert result.stderr.decode().splitlines() == [f"mimekit web: {tmp_path / 'nowhere'}: no such file or directory"]


def test_a_source_that_is_a_symlink_loop_says_so_and_exits_66(tmp_path, env):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = run_mimekit("web", str(loop), "--index", str(tmp_path / "i"), env=env, expect=66)
    assert result.stderr.decode().splitlines() == [f"mimekit web: {loop}: too many levels of symbolic links"]


def test_a_maildir_whose_folders_cannot_be_listed_is_exit_66_naming_it(tmp_path, mail, monkeypatch):
    """An unreadable Maildir (chmod 300; the tests run as root, who reads it anyway) is one
    line naming it, not the system's error without the source."""
    def refused(path):
        raise PermissionError(13, "Permission denied", path)
    monkeypatch.setattr(folders.os, "scandir", refused)
    with pytest.raises(NoInputError, match=f"^maildir:{mail}: cannot list its folders: permission denied$"):
        folders.discover_folders((f"maildir:{mail}",))


def test_an_imap_server_that_is_not_there_at_start_is_one_line_and_exit_69(tmp_path, env):
    with socket.create_server((HOST, 0)) as closed:
        port = closed.getsockname()[1]
    result = run_mimekit("web", f"imap+plain://alice@{HOST}:{port}", "--http", f"{HOST}:0", env=env, expect=69)
    assert result.stderr.decode().splitlines() == [f"mimekit web: {HOST}:{port}: cannot connect: Connection refused"]


class FailingMirror:
    def __init__(self, errors: list[Exception]):
        self.errors = errors

    def sync(self) -> int:
        raise self.errors.pop(0) if self.errors else UnavailableError("still down")


def test_a_mirror_failing_while_running_says_so_once_and_goes_on(monkeypatch, capsys):
    """The mirror's thread: each new failure is one line (an unexpected one named by its
    type), the same one again is not repeated, and the thread keeps trying until stopped."""
    monkeypatch.setattr(cli_web, "MIRROR_INTERVAL", 0.01)
    mirror = FailingMirror([UnavailableError("imap.example.test:993: cannot connect"),
                            UnavailableError("imap.example.test:993: cannot connect"), KeyError("flags")])
    stopping = threading.Event()
    thread = cli_web._start_mirroring(mirror, stopping)
    said, deadline = "", time.monotonic() + 10
    while "still down" not in said and time.monotonic() < deadline:
        time.sleep(0.05)
        said += capsys.readouterr().err
    time.sleep(0.05)                                         # more failed syncs, all "still down"
    stopping.set()
    thread.join()
    assert (said + capsys.readouterr().err).splitlines() == [
        "mimekit web: IMAP mirror: imap.example.test:993: cannot connect",
        "mimekit web: IMAP mirror: KeyError: 'flags'",
        "mimekit web: IMAP mirror: still down"]


@pytest.fixture
def without_the_web_extra(tmp_path, env) -> dict:
    """An environment where `import starlette` fails, as without `pip install 'mimekit[web]'`."""
    blocked = tmp_path / "blocked" / "starlette"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError(\"No module named 'starlette'\")\n")
    return dict(env, PYTHONPATH=os.pathsep.join([str(blocked.parent), env.get("PYTHONPATH", "")]))


def test_without_the_web_extra_web_and_serve_http_say_what_to_install(tmp_path, mail, without_the_web_extra):
    for arguments in (("web", str(mail)),
                      ("serve", f"maildir:{tmp_path / 'served'}", "--smtp", f"{HOST}:0", "--pop3", "off",
                       "--http", f"{HOST}:0")):
        result = run_mimekit(*arguments, env=without_the_web_extra, expect=69)
        [line] = result.stderr.decode().splitlines()
        assert line.startswith(f"mimekit {arguments[0]}: the web interface needs the web extra: "
                               "pip install 'mimekit[web]'")


# -- mimekit serve --http -----------------------------------------------------------------------

def wait_for_total(port: int, name: str, total: int, headers: dict | None = None) -> dict:
    """The mailbox once it counts `total` messages (serve's watcher looks every second)."""
    deadline = time.monotonic() + 15
    while (mailbox := mailboxes(port, headers)[name])["totalEmails"] != total:
        assert time.monotonic() < deadline, mailbox
        time.sleep(0.1)
    return mailbox


def test_serve_http_shows_mail_received_by_its_smtp(tmp_path, env):
    served = start_serve(tmp_path / "served", tmp_path / "serve.log", ("--http", f"{HOST}:0"), env)
    try:
        assert served.http
        assert mailboxes(served.http)["INBOX"]["totalEmails"] == 0
        status, session = get(served.http, "/api/session")
        assert session == {**session, "readOnly": False, "canSend": True}
        with smtplib.SMTP(HOST, served.smtp) as client:
            client.sendmail("alice@example.test", ["bob@example.test"], web_messages.plain(subject="Via SMTP"))
        inbox = wait_for_total(served.http, "INBOX", 1)
        status, page = get(served.http, f"/api/messages?mailbox={inbox['id']}")
        assert [email["subject"] for email in page["emails"]] == ["Via SMTP"]
    finally:
        log = served.stop()
    assert log.splitlines()[0] == (f"mimekit serve: listening: smtp {HOST}:{served.smtp}, pop3 {HOST}:{served.pop3}, "
                                   f"http {HOST}:{served.http}")


def test_serve_http_with_domain_and_users_shows_each_user_their_own_mail(tmp_path, env):
    users = tmp_path / "users"
    for name in ("alice", "bob"):
        run_mimekit("users", "add", str(users), name, env=env, input=f"{name}-Web-Secret-1\n".encode())
    served = start_serve(tmp_path / "served", tmp_path / "serve.log",
                         ("--http", f"{HOST}:0", "--domain", "example.test", "--users", str(users)), env)
    try:
        assert get(served.http, "/api/mailboxes")[0] == 401
        alice = {"Authorization": "Basic " + base64.b64encode(b"alice:alice-Web-Secret-1").decode()}
        with smtplib.SMTP(HOST, served.smtp) as client:
            client.sendmail("carol@example.test", ["alice@example.test"], web_messages.plain(subject="For Alice"))
            client.sendmail("carol@example.test", ["bob@example.test"], web_messages.plain(subject="For Bob"))
        assert list(mailboxes(served.http, alice)) == ["alice"]
        wait_for_total(served.http, "alice", 1, alice)
    finally:
        served.stop()


def test_serve_http_without_smtp_cannot_send(tmp_path, env):
    log = tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(mimekit_command("serve", f"maildir:{tmp_path / 'served'}", "--smtp", "off",
                                                   "--pop3", "off", "--http", f"{HOST}:0"),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while not (listening := re.search(r"^mimekit serve: listening: http 127\.0\.0\.1:(\d+)$", log.read_text(),
                                          re.M)):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        status, session = get(int(listening.group(1)), "/api/session")
        assert status == 200 and session["canSend"] is False
    finally:
        stop_process(process, "mimekit serve", log)


@pytest.mark.servers
def test_web_reads_an_imap_account_through_its_mirror(tmp_path, web, env, mail_servers):
    """An imaps:// source against the real Dovecot: its mail is listed, the password comes from
    --password-command (never argv), the certificate is checked against --cafile."""
    mail_servers.clear_mailbox("alice")
    mail_servers.deliver_directly("alice", web_messages.plain(subject="Over IMAP"))
    running = web(f"imaps://alice@{mail_servers.host}:{mail_servers.imaps}", "--http", f"{HOST}:0",
                  "--index", str(tmp_path / "index"), "--cafile", str(mail_servers.ca_file),
                  "--password-command", f"echo {mail_servers.users['alice']}",
                  environment=dict(env, XDG_CACHE_HOME=str(tmp_path / "cache")))
    inbox = mailboxes(running.port)["INBOX"]
    status, listed = get(running.port, f"/api/messages?mailbox={inbox['id']}")
    assert status == 200 and [email["subject"] for email in listed["emails"]] == ["Over IMAP"]
