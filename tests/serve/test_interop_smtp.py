"""SMTP clients nobody here wrote, sending to `mimekit serve`: Postfix relaying to it, Python's
smtplib, swaks and msmtp (plain, and STARTTLS + AUTH against a users file), and mimekit's own
send. Each message must land byte for byte as sent, below the trace fields."""

import base64
import re
import smtplib
import ssl
import subprocess
import uuid

import pytest
from served import (USERS, assert_delivered_as_sent, received_with, require_tool, run_mimekit, sample_message,
                    tls_options)
from servers import HOST, SERVE_DOMAIN


def secure_serve(serve, certificates, users_file):
    """The personal-server set-up: one domain, logins from the users file, a certificate."""
    return serve("--domain", SERVE_DOMAIN, "--users", str(users_file), *tls_options(certificates))


@pytest.mark.servers
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "starttls"])
def test_postfix_relays_to_serve(mail_servers, serve, certificates, tls):
    """A message submitted to the real Postfix for someone@serve.test goes through Postfix's
    queue and its smtp client (opportunistic STARTTLS) into serve's Maildir, unchanged below
    Postfix's Received field and serve's."""
    served = serve("--hostname", "mx.serve.test", *(tls_options(certificates) if tls else ()))
    mail_servers.relay_serve_domain(served.smtp)
    token = uuid.uuid4().hex
    recipient = f"someone@{SERVE_DOMAIN}"
    sent = sample_message(recipient, token)
    with smtplib.SMTP(HOST, mail_servers.smtp_plain, timeout=30) as smtp:
        smtp.sendmail("bob@example.test", [recipient], sent)
    path = served.wait_for(token, while_waiting=mail_servers.flush_queue)
    ours, postfix = assert_delivered_as_sent(path, sent, "bob@example.test")
    assert ours.startswith(b"Received: from mx.example.test"), ours
    assert b"by mx.serve.test" in ours and recipient.encode() in ours
    assert received_with(ours) == (b"ESMTPS" if tls else b"ESMTP")
    assert b"by mx.example.test (Postfix)" in postfix
    # after the stop, which logs every session: Postfix may still hold its connection open in its cache
    assert re.search(rb"^mimekit serve: smtp 127\.0\.0\.1:\d+: ", served.stop().encode(), re.M), \
        "one log line per session"


def test_smtplib_to_a_catch_all_without_a_certificate(serve):
    """The testing use: an application on this machine sends in the clear to a catch-all
    serve; everything offered is the extensions, none of STARTTLS or AUTH, and 250 means
    the message is already in new/."""
    served = serve()
    token = uuid.uuid4().hex
    sent = sample_message("anyone@anywhere.test", token)
    with smtplib.SMTP(HOST, served.smtp, timeout=30) as smtp:
        code, _ = smtp.ehlo("app.test")
        assert code == 250
        for keyword in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking"):
            assert smtp.has_extn(keyword), keyword
        assert not smtp.has_extn("starttls") and not smtp.has_extn("auth")
        assert smtp.verify("anyone@anywhere.test")[0] == 252
        assert smtp.sendmail("app@app.test", ["anyone@anywhere.test"], sent, mail_options=["BODY=8BITMIME"]) == {}
        [path] = served.messages()   # before QUIT: delivered when 250 came
    [trace] = assert_delivered_as_sent(path, sent, "app@app.test")
    assert trace.startswith(b"Received: from app.test") and received_with(trace) == b"ESMTP"


def test_smtplib_smtputf8_addresses(serve):
    """An internationalised envelope (RFC 6531) is accepted and the message lands unchanged."""
    served = serve()
    token = uuid.uuid4().hex
    sent = sample_message("jörg@bücher.test", token)
    with smtplib.SMTP(HOST, served.smtp, timeout=30) as smtp:
        assert smtp.sendmail("zoë@exämple.test", ["jörg@bücher.test"], sent,
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
    [path] = served.messages()
    assert_delivered_as_sent(path, sent, "zoë@exämple.test")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_then_auth(serve, certificates, users_file, mechanism):
    """No login is offered or accepted in the clear; after STARTTLS (verified against the CA)
    AUTH PLAIN and LOGIN are, a wrong password gets 535, the right one 235, and the message
    is delivered to the recipient's own Maildir, traced as ESMTPSA."""
    served = secure_serve(serve, certificates, users_file)
    token = uuid.uuid4().hex
    sent = sample_message(f"bob@{SERVE_DOMAIN}", token)
    with smtplib.SMTP(HOST, served.smtp, timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth"), "no login offered in the clear"
        credentials = base64.b64encode(f"\0alice\0{USERS['alice']}".encode()).decode()
        code, _ = smtp.docmd("AUTH", f"PLAIN {credentials}")
        assert 500 <= code < 600, f"AUTH before STARTTLS answered {code}"
        smtp.starttls(context=ssl.create_default_context(cafile=str(certificates.ca)))
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert {"PLAIN", "LOGIN"} <= set(smtp.esmtp_features["auth"].upper().split())
        smtp.user, smtp.password = "alice", "not-" + USERS["alice"]
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
        assert refused.value.smtp_code == 535
        smtp.user, smtp.password = "alice", USERS["alice"]
        assert smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))[0] == 235
        assert smtp.sendmail(f"alice@{SERVE_DOMAIN}", [f"bob@{SERVE_DOMAIN}"], sent) == {}
    [path] = served.messages("bob")
    [trace] = assert_delivered_as_sent(path, sent, f"alice@{SERVE_DOMAIN}")
    assert received_with(trace) == b"ESMTPSA"
    assert served.messages("alice") == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth(serve, certificates, users_file, mechanism):
    """swaks (Perl, IO::Socket::SSL) with STARTTLS required and verified, then AUTH. With
    --no-data-fixup swaks sends --data as it is, so it gets the DATA wire form: dot-stuffed
    and ended by a line of one dot."""
    swaks = require_tool("swaks")
    served = secure_serve(serve, certificates, users_file)
    token = uuid.uuid4().hex
    sent = sample_message(f"bob@{SERVE_DOMAIN}", token)
    result = subprocess.run(
        [swaks, "--server", f"{HOST}:{served.smtp}", "--tls", "--tls-verify", "--tls-ca-path", str(certificates.ca),
         "--auth", mechanism, "--auth-user", "alice", "--auth-password", USERS["alice"],
         "--from", f"alice@{SERVE_DOMAIN}", "--to", f"bob@{SERVE_DOMAIN}", "--no-data-fixup", "--data", "-"],
        input=re.sub(rb"(?m)^\.", b"..", sent) + b".\r\n", capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode(errors="replace")
    [path] = served.messages("bob")
    [trace] = assert_delivered_as_sent(path, sent, f"alice@{SERVE_DOMAIN}")
    assert received_with(trace) == b"ESMTPSA"


def test_swaks_wrong_password_is_refused(serve, certificates, users_file):
    swaks = require_tool("swaks")
    served = secure_serve(serve, certificates, users_file)
    result = subprocess.run(
        [swaks, "--server", f"{HOST}:{served.smtp}", "--tls", "--tls-verify", "--tls-ca-path", str(certificates.ca),
         "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wrong",
         "--from", f"alice@{SERVE_DOMAIN}", "--to", f"bob@{SERVE_DOMAIN}"],
        capture_output=True, timeout=60)
    assert result.returncode != 0
    assert re.search(rb"^<~\* +535 ", result.stdout, re.M), result.stdout.decode(errors="replace")
    assert served.messages("bob") == []


def write_msmtp_config(path, served, certificates, password_file, mechanism: str) -> None:
    """An msmtp account as its users write one: STARTTLS with the CA, the password from a
    command (passwordeval), never in the file."""
    path.write_text(f"""\
defaults
logfile -

account serve
host {HOST}
port {served.smtp}
from alice@{SERVE_DOMAIN}
tls on
tls_starttls on
tls_trust_file {certificates.ca}
auth {mechanism}
user alice
passwordeval "cat {password_file}"

account default : serve
""")
    path.chmod(0o600)


@pytest.mark.parametrize("mechanism", ["plain", "login"])
def test_msmtp_starttls_auth(serve, certificates, users_file, tmp_path, mechanism):
    """msmtp (GnuTLS) with STARTTLS verified against the CA and a password from passwordeval."""
    msmtp = require_tool("msmtp")
    served = secure_serve(serve, certificates, users_file)
    password_file = tmp_path / "password"
    password_file.write_text(USERS["alice"] + "\n")
    config = tmp_path / "msmtprc"
    write_msmtp_config(config, served, certificates, password_file, mechanism)
    token = uuid.uuid4().hex
    sent = sample_message(f"bob@{SERVE_DOMAIN}", token)
    result = subprocess.run([msmtp, f"--file={config}", f"bob@{SERVE_DOMAIN}"], input=sent,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode(errors="replace")
    [path] = served.messages("bob")
    [trace] = assert_delivered_as_sent(path, sent, f"alice@{SERVE_DOMAIN}")
    assert received_with(trace) == b"ESMTPSA"

    password_file.write_text("wrong\n")
    result = subprocess.run([msmtp, f"--file={config}", f"bob@{SERVE_DOMAIN}"], input=sent,
                            capture_output=True, timeout=60)
    assert result.returncode == 77, (result.stdout + result.stderr).decode(errors="replace")   # EX_NOPERM
    assert b"535" in result.stdout + result.stderr
    assert len(served.messages("bob")) == 1


def test_mimekit_send_starttls_auth(serve, certificates, users_file, tmp_path, env):
    """mimekit's own client: smtp:// means STARTTLS, verified with --cafile, then AUTH."""
    served = secure_serve(serve, certificates, users_file)
    password_file = tmp_path / "password"
    password_file.write_text(USERS["alice"] + "\n")
    token = uuid.uuid4().hex
    sent = sample_message(f"bob@{SERVE_DOMAIN}", token)
    message = tmp_path / "message.eml"
    message.write_bytes(sent)
    run_mimekit("send", "--server", f"smtp://{HOST}:{served.smtp}", "--cafile", str(certificates.ca),
                "--user", "alice", "--password-command", f"cat {password_file}",
                "--from", f"alice@{SERVE_DOMAIN}", "--to", f"bob@{SERVE_DOMAIN}", str(message), env=env)
    [path] = served.messages("bob")
    [trace] = assert_delivered_as_sent(path, sent, f"alice@{SERVE_DOMAIN}")
    assert received_with(trace) == b"ESMTPSA"
