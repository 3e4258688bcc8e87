"""smtp+plain://, imap+plain:// and pop3+plain://: the explicit opt-in to no TLS for a server on
this machine (issue 13: an application sending to a catch-all `mimekit serve` without a
certificate). Accepted only for a loopback host, judged on the URL's text (no DNS); never a
silent downgrade: smtp://, imap:// and pop3:// still refuse a server without STARTTLS.

The servers are real: the Postfix and Dovecot ports of tests/servers.py that offer no TLS
(smtp_no_tls, imap_no_tls, pop3_no_tls), and Postfix's smtp_plain port, which offers
STARTTLS that smtp+plain:// must not take.
"""

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mimekit.errors import AuthError, UsageError
from mimekit.transport import connection
from mimekit.transport.urls import parse_url

REPO = Path(__file__).resolve().parents[2]
ALL_SCHEMES = {"smtp+plain", "imap+plain", "pop3+plain"}


def mimekit(*args, env=None, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True,
                          timeout=120, cwd=REPO, env={**os.environ, **(env or {})})


def message(token: str) -> bytes:
    return (f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: {token}\r\n"
            f"Message-ID: <{token}@example.test>\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\n\r\n"
            f"Hello {token}.\r\n").encode()


# --- the URL ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, host, port, protocol", [
    ("smtp+plain://127.0.0.1:2525", "127.0.0.1", 2525, "smtp"),
    ("SMTP+PLAIN://localhost", "localhost", 587, "smtp"),
    ("pop3+plain://bob@127.8.9.10", "127.8.9.10", 110, "pop3"),
    ("imap+plain://bob@[::1]:1143/Sent", "::1", 1143, "imap"),
])
def test_a_loopback_host_is_accepted(text, host, port, protocol):
    url = parse_url(text, ALL_SCHEMES)
    assert (url.host, url.port, url.protocol, url.plaintext, url.implicit_tls) == (host, port, protocol, True, False)
    assert not parse_url("smtp://127.0.0.1", {"smtp"}).plaintext


@pytest.mark.parametrize("host", ["mail.example.test", "localhost.example.test", "10.0.0.1", "0.0.0.0",
                                  "[::ffff:127.0.0.1]", "[::]", "127.1"])
def test_any_other_host_is_refused(host):
    with pytest.raises(UsageError, match="is for a server on this machine only"):
        parse_url(f"smtp+plain://{host}:25", ALL_SCHEMES)


@pytest.mark.parametrize("command", [
    ["send", "--server", "smtp+plain://mail.example.test:2525", "--to", "bob@example.test"],
    ["send", "--queue=QUEUE", "--server", "smtp+plain://192.0.2.1", "--to", "bob@example.test"],
    ["fetch", "pop3+plain://bob@mail.example.test", "-o", "maildir:OUT"],
    ["folders", "imap+plain://bob@192.0.2.1"],
])
def test_the_commands_refuse_a_remote_host_with_64_before_connecting(tmp_path, command):
    command = [arg.replace("QUEUE", str(tmp_path / "q")).replace("OUT", str(tmp_path / "o")) for arg in command]
    result = mimekit(*command, env={"MIMEKIT_PASSWORD": "pw"}, input=message("refused"))
    assert result.returncode == 64, result.stderr
    assert b"is for a server on this machine only" in result.stderr and result.stdout == b""
    assert not (tmp_path / "q").exists() or not list((tmp_path / "q").rglob("*.eml"))


def test_an_account_with_a_remote_plaintext_url_is_a_config_error(tmp_path):
    config = tmp_path / "config" / "mimekit" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[accounts.work]\nsmtp = "smtp+plain://mail.example.test"\n')
    result = mimekit("accounts", "list", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert result.returncode == 78 and b"is for a server on this machine only" in result.stderr


def test_a_localhost_that_connects_elsewhere_is_refused_before_a_byte_is_sent(monkeypatch):
    """"localhost" is accepted by its name, so the connection checks where it went. A name that
    resolves off this machine is not something to produce here (no traffic beyond 127.0.0.1):
    the listener is a bare loopback socket, and the check is told that its address is not
    loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        url = parse_url(f"smtp+plain://localhost:{listener.getsockname()[1]}", ALL_SCHEMES)
        monkeypatch.setattr(connection, "is_loopback", lambda host: False)
        with pytest.raises(AuthError, match="not a loopback address; nothing was sent without TLS"):
            connection.Connection(url, cafile=None, timeout=5)
        peer, _ = listener.accept()
        with peer:
            assert peer.recv(100) == b""   # closed, nothing sent


# --- against real servers -------------------------------------------------------------------------

@pytest.mark.servers
def test_send_logs_in_and_sends_in_the_clear_to_a_loopback_server(mail_servers):
    token = uuid.uuid4().hex
    server = f"smtp+plain://alice@127.0.0.1:{mail_servers.smtp_no_tls}"
    sent = mimekit("send", "--server", server, "--to", "bob@example.test", "-",
                   env={"MIMEKIT_PASSWORD": mail_servers.users["alice"]}, input=message(token))
    assert sent.returncode == 0, sent.stderr
    assert b"WITHOUT encryption" not in sent.stderr   # asked for by the scheme: nothing to warn about
    [delivered] = mail_servers.wait_for_token("bob", token)
    assert b"with ESMTPA" in delivered   # Postfix's Received: authenticated, no TLS (else ESMTPSA)


@pytest.mark.servers
def test_smtp_plain_does_not_take_the_starttls_a_server_offers(mail_servers):
    token = uuid.uuid4().hex
    sent = mimekit("send", "--server", f"smtp+plain://127.0.0.1:{mail_servers.smtp_plain}", "--to",
                   "bob@example.test", "-", input=message(token))
    assert sent.returncode == 0, sent.stderr
    [delivered] = mail_servers.wait_for_token("bob", token)
    assert b"with ESMTP id" in delivered and b"(using TLS" not in delivered


@pytest.mark.servers
def test_smtp_without_plain_still_refuses_the_same_server(mail_servers):
    """No silent downgrade: the opt-in is the scheme, nothing else turns TLS off."""
    refused = mimekit("send", "--server", f"smtp://alice@127.0.0.1:{mail_servers.smtp_no_tls}", "--to",
                      "bob@example.test", "-", env={"MIMEKIT_PASSWORD": "pw"}, input=message("downgrade"))
    assert refused.returncode == 77 and b"STARTTLS" in refused.stderr


@pytest.mark.servers
def test_send_queue_delivers_over_smtp_plain(mail_servers, tmp_path):
    token = uuid.uuid4().hex
    queued = mimekit("send", f"--queue={tmp_path / 'queue'}", "--server",
                     f"smtp+plain://127.0.0.1:{mail_servers.smtp_plain}", "--to", "bob@example.test", "-",
                     input=message(token))
    assert queued.returncode == 0, queued.stderr
    assert b"WITHOUT encryption" not in queued.stderr
    assert len(mail_servers.wait_for_token("bob", token)) == 1


@pytest.mark.servers
@pytest.mark.parametrize("scheme, port", [("pop3+plain", "pop3_no_tls"), ("imap+plain", "imap_no_tls")])
def test_fetch_logs_in_and_fetches_in_the_clear(mail_servers, tmp_path, scheme, port):
    mail_servers.clear_mailbox("alice")
    token = uuid.uuid4().hex
    mail_servers.deliver_directly("alice", message(token))
    source = f"{scheme}://alice@127.0.0.1:{getattr(mail_servers, port)}"
    fetched = mimekit("fetch", source, "--json", "-o", f"maildir:{tmp_path / 'out'}",
                      env={"MIMEKIT_PASSWORD": mail_servers.users["alice"], "XDG_STATE_HOME": str(tmp_path)})
    assert fetched.returncode == 0, fetched.stderr
    [record] = json.loads(fetched.stdout)["fetched"]
    assert Path(record["path"]).read_bytes() == message(token).replace(b"\r\n", b"\n")


@pytest.mark.servers
def test_folders_and_accounts_check_take_the_plaintext_schemes(mail_servers, tmp_path):
    password = mail_servers.users["alice"]
    folders = mimekit("folders", f"imap+plain://alice@127.0.0.1:{mail_servers.imap_no_tls}",
                      env={"MIMEKIT_PASSWORD": password})
    assert folders.returncode == 0 and b"INBOX" in folders.stdout, folders.stderr
    config = tmp_path / "config" / "mimekit" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[accounts.local]\nuser = "alice"\npassword_command = "echo {password}"\n'
                      f'smtp = "smtp+plain://127.0.0.1:{mail_servers.smtp_no_tls}"\n'
                      f'pop3 = "pop3+plain://127.0.0.1:{mail_servers.pop3_no_tls}"\n')
    checked = mimekit("accounts", "check", "--json", env={"XDG_CONFIG_HOME": str(tmp_path / "config")})
    assert checked.returncode == 0, checked.stdout + checked.stderr
