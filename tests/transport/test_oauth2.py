"""OAuth2 logins (XOAUTH2, OAUTHBEARER RFC 7628) for SMTP, IMAP and POP3 (mimekit.transport.sasl).

The SASL exchanges run against SCRIPTED FAKE servers (tests/scripted_servers.py): the real
Postfix and Dovecot of tests/servers.py do not do OAuth2 without an identity provider to check
the tokens, so a few lines of Python stand in for the server's check (`IdentityProvider`):
they accept the tokens a test names and answer any other with the RFC 7628 §3.2.2 error
challenge, as Gmail and Microsoft 365 do. The fakes speak implicit TLS with a throw-away CA,
so the clients run exactly as against a real server.

Against the REAL Postfix and Dovecot (which offer PLAIN and LOGIN only): the clear one-line
error from the CLI, exit 77, and no token command run at all.
"""

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scripted_servers import (MESSAGE, IdentityProvider, ScriptedIMAPServer, ScriptedPOP3Server, ScriptedSMTPServer,
                              Tokens, scripted)

from mimekit.errors import AuthError, ConfigError
from mimekit.fetch.run import FetchOptions, fetch
from mimekit.fetch.sinks import open_sink
from mimekit.send import send
from mimekit.transport.imap.client import IMAPClient, list_folders
from mimekit.transport.pop3.client import POP3Client
from mimekit.transport.sasl import ServerError, choose_mechanism, initial_response
from mimekit.transport.smtp.client import SMTPClient
from mimekit.transport.urls import parse_url

REPO = Path(__file__).resolve().parents[2]
USER = "alice@example.test"
LONG_TOKEN = "ya29." + "A" * 1800   # Microsoft's tokens run to ~2 KB: too long for an AUTH line
def smtp_fake(tmp_path, provider, mechanisms="OAUTHBEARER XOAUTH2 PLAIN"):
    return scripted(ScriptedSMTPServer, tmp_path, extensions=ScriptedSMTPServer.extensions + (f"AUTH {mechanisms}",),
                    authenticate=provider.authenticate)


def imap_fake(tmp_path, provider, capabilities=b"IMAP4rev1 AUTH=PLAIN AUTH=OAUTHBEARER AUTH=XOAUTH2 SASL-IR"):
    return scripted(ScriptedIMAPServer, tmp_path, capabilities=capabilities, authenticate=provider.authenticate)


def pop3_fake(tmp_path, provider, mechanisms="PLAIN XOAUTH2"):
    return scripted(ScriptedPOP3Server, tmp_path, sasl=mechanisms, authenticate=provider.authenticate)


def smtp_login(server, tokens, user=USER):
    with SMTPClient(parse_url(server.url, {"smtps"}), cafile=str(server.ca_file), timeout=10) as client:
        client.login_oauth2(user, tokens)


def imap_login(server, tokens):
    client = IMAPClient(parse_url(f"imaps://{USER}@127.0.0.1:{server.port}", {"imaps"}), str(server.ca_file), 10)
    try:
        client.login(None, tokens)
    finally:
        client.close()


def pop3_login(server, tokens):
    client = POP3Client(parse_url(f"pop3s://{USER}@127.0.0.1:{server.port}", {"pop3s"}), str(server.ca_file), 10)
    try:
        client.open(None, token=tokens)
    finally:
        client.close()


# -- the mechanisms, byte for byte ------------------------------------------------------------

def test_initial_responses_are_the_documented_bytes():
    assert initial_response("XOAUTH2", "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", "imap.gmail.com", 993) \
        == b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    # RFC 7628 §4.1, and the authzid's "," and "=" escaped as RFC 5801 saslname
    assert initial_response("OAUTHBEARER", "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
                            "server.example.com", 143) \
        == (b"n,a=user@example.com,\x01host=server.example.com\x01port=143\x01"
            b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01")
    assert initial_response("OAUTHBEARER", "a=b,c", "t", "h", 1).startswith(b"n,a=a=3Db=2Cc,\x01")


def test_a_token_that_could_smuggle_fields_is_refused_without_being_shown():
    for bad in ("Sekr1t\x01auth=x", "Sekr1t en", "Sekr1t\r\n", ""):
        with pytest.raises(ConfigError) as caught:
            initial_response("XOAUTH2", USER, bad, "h", 1)
        assert "Sekr1t" not in str(caught.value)


def test_oauthbearer_is_preferred_and_a_server_offering_neither_is_named():
    assert choose_mechanism(["XOAUTH2", "OAUTHBEARER", "PLAIN"], "h:1") == "OAUTHBEARER"
    assert choose_mechanism(["xoauth2"], "h:1") == "XOAUTH2"
    with pytest.raises(AuthError, match=r"^h:1: the server offers neither OAUTHBEARER nor XOAUTH2.*"
                                        r"\(it offers: LOGIN PLAIN\)$"):
        choose_mechanism(["PLAIN", "LOGIN"], "h:1")


def test_error_challenges_are_read_leniently_and_shown_safely():
    encoded = base64.b64encode(b'{"status":"invalid_token","scope":"x"}').decode()
    assert ServerError.from_challenge(encoded).token_rejected
    assert ServerError.from_challenge(base64.b64encode(b'{"status":401}').decode()).token_rejected
    assert not ServerError.from_challenge(base64.b64encode(b'{"status":"400"}').decode()).token_rejected
    assert ServerError.from_challenge("not base64!").status is None
    assert ServerError.from_challenge(base64.b64encode(b"[1]").decode()).status is None
    assert str(ServerError.from_challenge(base64.b64encode(b'{"status":"\\u001b[31mred"}').decode())) \
        == "status unreadable"


# -- SMTP (RFC 4954) -----------------------------------------------------------------------------

def test_smtp_prefers_oauthbearer_with_the_response_in_the_auth_line(tmp_path):
    provider = IdentityProvider(valid={"good"})
    server = smtp_fake(tmp_path, provider)
    smtp_login(server, Tokens("good"))
    assert [m for m, _ in provider.logins] == ["OAUTHBEARER"]
    assert provider.logins[0][1] == f"n,a={USER},\x01host=127.0.0.1\x01port={server.port}\x01auth=Bearer good\x01\x01".encode()
    auth = [c for c in server.commands if c.startswith("AUTH")]
    assert auth == ["AUTH OAUTHBEARER " + base64.b64encode(provider.logins[0][1]).decode()]


def test_smtp_sends_a_long_token_after_the_334_as_the_line_limit_requires(tmp_path):
    provider = IdentityProvider(valid={LONG_TOKEN})
    server = smtp_fake(tmp_path, provider, mechanisms="XOAUTH2")
    smtp_login(server, Tokens(LONG_TOKEN))
    assert [c for c in server.commands if c.startswith("AUTH")] == ["AUTH XOAUTH2"]
    assert provider.logins == [("XOAUTH2", f"user={USER}\x01auth=Bearer {LONG_TOKEN}\x01\x01".encode())]


@pytest.mark.parametrize("mechanisms, answer", [("OAUTHBEARER", b"\x01"), ("XOAUTH2", b"")])
def test_smtp_expired_token_error_continuation_then_one_retry_with_a_fresh_token(tmp_path, mechanisms, answer):
    """The 334 error challenge is answered (OAUTHBEARER: %x01, RFC 7628 §3.2.3; XOAUTH2: an
    empty line), the 535 read, a fresh token asked for, and the login tried once more."""
    provider = IdentityProvider(valid={"fresh"})
    server = smtp_fake(tmp_path, provider, mechanisms=mechanisms)
    tokens = Tokens("expired", "fresh")
    smtp_login(server, tokens)
    assert tokens.calls == 2 and provider.tokens == ["expired", "fresh"]
    assert provider.error_answers == [answer]


def test_smtp_token_refused_twice_is_an_auth_error_that_never_shows_it(tmp_path):
    provider = IdentityProvider(valid=set())
    server = smtp_fake(tmp_path, provider)
    tokens = Tokens("secret-one", "secret-two")
    with pytest.raises(AuthError) as caught:
        smtp_login(server, tokens)
    assert tokens.calls == 2 and len(provider.logins) == 2
    message = str(caught.value)
    assert "secret" not in message and "535" in message and "status 401" in message
    assert "a fresh token" in message and caught.value.reply_code == 535


def test_smtp_other_oauth_errors_are_not_retried(tmp_path):
    provider = IdentityProvider(valid=set(), status="400")
    server = smtp_fake(tmp_path, provider)
    tokens = Tokens("bad-request", "unused")
    with pytest.raises(AuthError, match=r"535.*\(status 400\)"):
        smtp_login(server, tokens)
    assert tokens.calls == 1


def test_smtp_server_without_oauth_is_refused_before_the_token_is_asked_for(tmp_path):
    server = smtp_fake(tmp_path, IdentityProvider(), mechanisms="PLAIN LOGIN")
    tokens = Tokens()
    with pytest.raises(AuthError, match=r"offers neither OAUTHBEARER nor XOAUTH2.*\(it offers: LOGIN PLAIN\)"):
        smtp_login(server, tokens)
    assert tokens.calls == 0


# -- IMAP (RFC 3501 AUTHENTICATE, RFC 4959 SASL-IR) ------------------------------------------------

def test_imap_uses_sasl_ir_when_offered(tmp_path):
    provider = IdentityProvider(valid={"good"})
    server = imap_fake(tmp_path, provider)
    imap_login(server, Tokens("good"))
    response = base64.b64encode(provider.logins[0][1])
    assert [c.split(b" ", 1)[1] for c in server.commands if b"AUTHENTICATE" in c] == \
        [b"AUTHENTICATE OAUTHBEARER " + response + b"\r\n"]


def test_imap_without_sasl_ir_sends_the_response_after_the_continuation(tmp_path):
    provider = IdentityProvider(valid={"good"})
    server = imap_fake(tmp_path, provider, capabilities=b"IMAP4rev1 AUTH=XOAUTH2")
    imap_login(server, Tokens("good"))
    assert [c.split(b" ", 1)[1] for c in server.commands if b"AUTHENTICATE" in c] == [b"AUTHENTICATE XOAUTH2\r\n"]
    assert provider.logins == [("XOAUTH2", f"user={USER}\x01auth=Bearer good\x01\x01".encode())]


@pytest.mark.parametrize("capabilities, answer", [
    (b"IMAP4rev1 AUTH=OAUTHBEARER SASL-IR", b"\x01"),
    (b"IMAP4rev1 AUTH=OAUTHBEARER", b"\x01"),
    (b"IMAP4rev1 AUTH=XOAUTH2 SASL-IR", b"")])
def test_imap_error_continuation_then_one_retry(tmp_path, capabilities, answer):
    provider = IdentityProvider(valid={"fresh"})
    server = imap_fake(tmp_path, provider, capabilities=capabilities)
    tokens = Tokens("expired", "fresh")
    imap_login(server, tokens)
    assert tokens.calls == 2 and provider.tokens == ["expired", "fresh"] and provider.error_answers == [answer]


def test_imap_token_refused_twice_is_an_auth_error(tmp_path):
    server = imap_fake(tmp_path, IdentityProvider())
    with pytest.raises(AuthError, match=r"AUTHENTICATE OAUTHBEARER as .*Authentication failed.*status 401.*fresh token"):
        imap_login(server, Tokens("old-secret", "new-secret"))


def test_imap_server_without_oauth_names_its_mechanisms(tmp_path):
    server = imap_fake(tmp_path, IdentityProvider(), capabilities=b"IMAP4rev1 AUTH=PLAIN SASL-IR")
    with pytest.raises(AuthError, match=r"neither OAUTHBEARER nor XOAUTH2.*\(it offers: PLAIN\)"):
        imap_login(server, Tokens())


# -- POP3 (RFC 5034 AUTH) ---------------------------------------------------------------------------

def test_pop3_sends_the_response_after_the_continuation(tmp_path):
    provider = IdentityProvider(valid={LONG_TOKEN})
    server = pop3_fake(tmp_path, provider)
    pop3_login(server, Tokens(LONG_TOKEN))
    assert provider.logins == [("XOAUTH2", f"user={USER}\x01auth=Bearer {LONG_TOKEN}\x01\x01".encode())]


@pytest.mark.parametrize("mechanisms, answer", [("XOAUTH2 OAUTHBEARER", b"\x01"), ("XOAUTH2", b"")])
def test_pop3_error_continuation_then_one_retry(tmp_path, mechanisms, answer):
    provider = IdentityProvider(valid={"fresh"})
    server = pop3_fake(tmp_path, provider, mechanisms=mechanisms)
    tokens = Tokens("expired", "fresh")
    pop3_login(server, tokens)
    assert tokens.calls == 2 and provider.error_answers == [answer]
    assert [m for m, _ in provider.logins] == ["OAUTHBEARER" if "OAUTHBEARER" in mechanisms else "XOAUTH2"] * 2


def test_pop3_token_refused_twice_and_no_oauth_are_auth_errors(tmp_path):
    with pytest.raises(AuthError, match=r"POP3 AUTH XOAUTH2 as .*status 401.*fresh token"):
        pop3_login(pop3_fake(tmp_path, IdentityProvider()), Tokens("a", "b"))
    with pytest.raises(AuthError, match=r"\(it offers: no SASL mechanism\)"):
        pop3_login(pop3_fake(tmp_path, IdentityProvider(), mechanisms=""), Tokens())


# -- the library's entry points -------------------------------------------------------------------

def test_send_fetch_and_folders_take_a_token_beside_the_password(tmp_path):
    provider = IdentityProvider(valid={"good"})
    smtp = smtp_fake(tmp_path, provider)
    results = list(send(smtp.url, [message_file(tmp_path)], to=["bob@example.test"], user=USER,
                        token=Tokens("good"), cafile=str(smtp.ca_file), timeout=10))
    assert results[0].recipients[0].accepted and smtp.messages
    imap = imap_fake(tmp_path, provider)
    url = parse_url(f"imaps://{USER}@127.0.0.1:{imap.port}/INBOX", {"imaps"})
    report = fetch(url, open_sink(str(tmp_path / "out")), FetchOptions(), token=Tokens("good"),
                   cafile=str(imap.ca_file), timeout=10, state_directory=str(tmp_path / "state"))
    assert len(report.fetched) == 1
    assert [e.name for e in list_folders(url, None, str(imap.ca_file), 10, token=Tokens("good"))] == ["INBOX"]
    assert [m for m, _ in provider.logins] == ["OAUTHBEARER"] * 3


def message_file(tmp_path) -> str:
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE)
    return str(path)


# -- the CLI: --token-command, against the fakes and the real servers ----------------------------------

def mimekit(*args, env=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, timeout=120,
                          cwd=REPO, input=MESSAGE, env=env)


def token_command(tmp_path, *tokens) -> tuple[str, Path]:
    """A command printing the next of `tokens` at each run (as a refreshing token helper does),
    and the file counting its runs."""
    count = tmp_path / "token-runs"
    script = tmp_path / "token.sh"
    script.write_text(f'n=$(( $(cat "{count}" 2>/dev/null || echo 0) + 1 )); echo "$n" > "{count}"\n'
                      f'set -- {" ".join(tokens)}\nshift $(( n - 1 )); echo "$1"\n')
    return f"sh {script}", count


def runs(count: Path) -> int:
    return int(count.read_text()) if count.exists() else 0


def test_cli_send_retries_an_expired_token_and_never_shows_one(tmp_path):
    provider = IdentityProvider(valid={"fresh-Token-2"})
    server = smtp_fake(tmp_path, provider)
    command, count = token_command(tmp_path, "stale-Token-1", "fresh-Token-2")
    result = mimekit("send", "--server", server.url, "--cafile", str(server.ca_file), "--user", USER,
                     "--token-command", command, "--to", "bob@example.test", "--json")
    assert result.returncode == 0, result.stderr
    assert runs(count) == 2 and len(server.messages) == 1
    assert b"Token" not in result.stdout + result.stderr


def test_cli_token_refused_twice_exits_77_with_one_line(tmp_path):
    server = smtp_fake(tmp_path, IdentityProvider())
    command, count = token_command(tmp_path, "stale-Token-1", "stale-Token-2")
    result = mimekit("send", "--server", server.url, "--cafile", str(server.ca_file), "--user", USER,
                     "--token-command", command, "--to", "bob@example.test")
    assert result.returncode == 77 and runs(count) == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "status 401" in lines[0] and "fresh token" in lines[0] and "Token" not in lines[0]


def test_cli_fetch_and_folders_with_a_token_command(tmp_path):
    provider = IdentityProvider(valid={"good"})
    (tmp_path / "imap-ca").mkdir(), (tmp_path / "pop3-ca").mkdir()
    imap = imap_fake(tmp_path / "imap-ca", provider)
    pop3 = pop3_fake(tmp_path / "pop3-ca", provider)
    command, count = token_command(tmp_path, "good", "good", "good")
    for source in (f"imaps://{USER}@127.0.0.1:{imap.port}/INBOX", f"pop3s://{USER}@127.0.0.1:{pop3.port}"):
        ca = imap.ca_file if source.startswith("imaps") else pop3.ca_file
        result = mimekit("fetch", source, "-o", f"maildir:{tmp_path / source[:4]}", "--cafile", str(ca),
                         "--token-command", command, "-q")
        assert result.returncode == 0, result.stderr
    folders = mimekit("folders", f"imaps://{USER}@127.0.0.1:{imap.port}", "--cafile", str(imap.ca_file),
                      "--token-command", command)
    assert folders.returncode == 0 and folders.stdout == b"INBOX\n"
    assert runs(count) == 3 and [m for m, _ in provider.logins] == ["OAUTHBEARER", "XOAUTH2", "OAUTHBEARER"]


def test_cli_password_and_token_commands_exclude_each_other(tmp_path):
    result = mimekit("send", "--server", "smtps://127.0.0.1:1", "--user", USER, "--password-command", "echo pw",
                     "--token-command", "echo tok", "--to", "bob@example.test")
    assert result.returncode == 64 and b"exclude each other" in result.stderr


def test_cli_real_postfix_and_dovecot_offer_no_oauth2_a_clear_error(mail_servers, tmp_path):
    """Postfix and Dovecot as configured (PLAIN and LOGIN): send, fetch and folders each say
    what the server offers on one line and exit 77, and the token command never runs."""
    command, count = token_command(tmp_path, "never-Used")
    host, ca = mail_servers.host, str(mail_servers.ca_file)
    runs_ = [
        ("send", "--server", f"smtp://{host}:{mail_servers.submission}", "--user", "alice", "--to", "bob@example.test"),
        ("fetch", f"imap://alice@{host}:{mail_servers.imap}/INBOX", "-o", f"maildir:{tmp_path / 'imap'}"),
        ("fetch", f"pop3s://alice@{host}:{mail_servers.pop3s}", "-o", f"maildir:{tmp_path / 'pop3'}"),
        ("folders", f"imaps://alice@{host}:{mail_servers.imaps}"),
    ]
    for args in runs_:
        result = mimekit(*args, "--cafile", ca, "--token-command", command)
        lines = result.stderr.decode().splitlines()
        assert result.returncode == 77, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"mimekit {args[0]}: "), lines
        assert re.search(r"offers neither OAUTHBEARER nor XOAUTH2.*\(it offers: LOGIN PLAIN\)", lines[0]), lines
    assert runs(count) == 0
    result = mimekit("fetch", f"imap://alice@{host}:{mail_servers.imap}/INBOX", "-o", f"maildir:{tmp_path / 'j'}",
                     "--cafile", ca, "--token-command", command, "--json")
    assert result.returncode == 77 and json.loads(result.stdout)["error"]["kind"] == "auth"
