"""The test servers themselves, checked with Python's own clients and verification on.

If these pass, a failing transport test is about mimekit, not about the harness. They also
pin down what the servers advertise, which the send and fetch tests rely on.
"""

import email
import imaplib
import poplib
import smtplib
import socket
import ssl
import subprocess
import uuid
from email import policy
from email.message import EmailMessage
from email.utils import formatdate

import pytest

from servers import ServerInstance, session_processes

pytestmark = pytest.mark.servers
TIMEOUT = 10


@pytest.fixture
def tls(mail_servers) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(mail_servers.ca_file))


def make_message(servers, to: str) -> tuple[EmailMessage, str]:
    marker = uuid.uuid4().hex
    msg = EmailMessage()
    msg["From"] = servers.address("bob")
    msg["To"] = servers.address(to)
    msg["Subject"] = f"harness check {marker}"
    msg["Message-ID"] = f"<{marker}@example.test>"
    msg["Date"] = formatdate()
    msg.set_content(f"body {marker}\n")
    return msg, marker


def delivered(servers, user: str, marker: str) -> bytes:
    """The one message in the user's mailbox, checked to be the one we sent."""
    [path] = servers.wait_for_messages(user, 1)
    data = path.read_bytes()
    assert marker.encode() in data
    return data


def test_submission_starttls_auth_plain_delivers_to_maildir(mail_servers, tls):
    s = mail_servers
    s.clear_mailbox("alice")
    msg, _ = make_message(s, "alice")
    with smtplib.SMTP(s.host, s.submission, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth"), "AUTH must not be offered before TLS"
        code, _ = smtp.mail(s.address("bob"))
        assert code == 530, "mail before STARTTLS must be refused on submission"
        smtp.starttls(context=tls)
        smtp.ehlo()
        assert "PLAIN" in smtp.esmtp_features["auth"].split()
        smtp.user, smtp.password = "bob", s.users["bob"]
        code, _ = smtp.auth("PLAIN", smtp.auth_plain)
        assert code == 235
        assert smtp.send_message(msg) == {}
    [path] = s.wait_for_messages("alice", 1)
    assert s.as_sent(path) == msg.as_bytes(policy=policy.SMTP)


def test_submission_requires_authentication(mail_servers, tls):
    s = mail_servers
    with smtplib.SMTP(s.host, s.submission, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls)
        smtp.mail(s.address("bob"))
        code, reply = smtp.rcpt(s.address("alice"))
    assert code == 554 and b"5.7.1" in reply


def test_postfix_advertises_the_extensions_we_build_on(mail_servers, tls):
    """Postfix 3.x defaults: PIPELINING, SIZE (no number when unlimited), 8BITMIME,
    SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING, DSN, plus STARTTLS/AUTH where configured."""
    s = mail_servers
    with smtplib.SMTP(s.host, s.submission, timeout=TIMEOUT) as smtp:
        smtp.starttls(context=tls)
        smtp.ehlo()
        features = smtp.esmtp_features
    for keyword in ("pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes",
                    "chunking", "dsn", "auth"):
        assert keyword in features, keyword
    assert features["size"] == ""  # message_size_limit = 0: no limit announced
    assert "starttls" not in features  # already in TLS


def test_implicit_tls_submission(mail_servers, tls):
    s = mail_servers
    s.clear_mailbox("bob")
    msg, marker = make_message(s, "bob")
    with smtplib.SMTP_SSL(s.host, s.smtps, context=tls, timeout=TIMEOUT) as smtp:
        smtp.login("alice", s.users["alice"])
        assert smtp.send_message(msg) == {}
    delivered(s, "bob", marker)


def test_plain_port_accepts_local_mail_without_auth(mail_servers):
    s = mail_servers
    s.clear_mailbox("carol")
    msg, marker = make_message(s, "carol")
    with smtplib.SMTP(s.host, s.smtp_plain, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        assert smtp.send_message(msg) == {}
    delivered(s, "carol", marker)


def test_per_recipient_refusals(mail_servers):
    """Unknown user 550, outside domain 554 (nothing ever leaves), busy user 450."""
    s = mail_servers
    msg, _ = make_message(s, "carol")
    with smtplib.SMTP(s.host, s.smtp_plain, timeout=TIMEOUT) as smtp:
        refused = smtp.send_message(msg, to_addrs=[
            s.address("carol"), s.address("nosuchuser"), "someone@elsewhere.invalid",
            s.tempfail_recipient])
    assert refused[s.address("nosuchuser")][0] == 550
    assert b"5.1.1" in refused[s.address("nosuchuser")][1]
    assert refused["someone@elsewhere.invalid"][0] == 554
    assert refused[s.tempfail_recipient][0] == 450
    assert s.address("carol") not in refused


def test_no_tls_port_offers_auth_but_not_starttls(mail_servers):
    s = mail_servers
    with smtplib.SMTP(s.host, s.smtp_no_tls, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.has_extn("auth")


def test_small_port_announces_and_enforces_size(mail_servers):
    s = mail_servers
    msg, _ = make_message(s, "carol")
    msg.set_content("x" * 150_000)
    with smtplib.SMTP(s.host, s.smtp_small, timeout=TIMEOUT) as smtp:
        smtp.ehlo()
        assert smtp.esmtp_features["size"] == "100000"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send_message(msg)  # smtplib sends MAIL FROM:<...> SIZE=n
    assert refused.value.smtp_code == 552


def test_imap_starttls_sees_message_delivered_by_postfix(mail_servers, tls):
    s = mail_servers
    s.clear_mailbox("alice")
    msg, marker = make_message(s, "alice")
    with smtplib.SMTP(s.host, s.smtp_plain, timeout=TIMEOUT) as smtp:
        smtp.send_message(msg)
    on_disk = delivered(s, "alice", marker)
    with imaplib.IMAP4(s.host, s.imap, timeout=TIMEOUT) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(ssl_context=tls)
        imap.login("alice", s.users["alice"])
        status, [count] = imap.select("INBOX", readonly=True)
        assert (status, count) == ("OK", b"1")
        status, data = imap.fetch("1", "(BODY.PEEK[])")
        assert data[0][1] == on_disk.replace(b"\n", b"\r\n")


def test_imaps_serves_directly_delivered_message(mail_servers, tls):
    s = mail_servers
    s.clear_mailbox("bob")
    msg, marker = make_message(s, "bob")
    s.deliver_directly("bob", msg.as_bytes())
    with imaplib.IMAP4_SSL(s.host, s.imaps, ssl_context=tls, timeout=TIMEOUT) as imap:
        imap.login("bob", s.users["bob"])
        assert imap.select("INBOX", readonly=True) == ("OK", [b"1"])
        _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert marker.encode() in data[0][1]


def test_pop3_stls_retrieves_message(mail_servers, tls):
    s = mail_servers
    s.clear_mailbox("alice")
    msg, marker = make_message(s, "alice")
    s.deliver_directly("alice", msg.as_bytes())
    pop = poplib.POP3(s.host, s.pop3, timeout=TIMEOUT)
    try:
        assert "STLS" in pop.capa()
        pop.stls(context=tls)
        pop.user("alice")
        pop.pass_(s.users["alice"])
        assert pop.stat()[0] == 1
        _, lines, _ = pop.retr(1)
        fetched = email.message_from_bytes(b"\r\n".join(lines))
        assert fetched["Message-ID"] == f"<{marker}@example.test>"
    finally:
        pop.quit()


def test_pop3s_login(mail_servers, tls):
    s = mail_servers
    pop = poplib.POP3_SSL(s.host, s.pop3s, context=tls, timeout=TIMEOUT)
    try:
        pop.user("bob")
        assert pop.pass_(s.users["bob"]).startswith(b"+OK")
    finally:
        pop.quit()


def test_no_tls_dovecot_offers_no_starttls_and_serves_the_same_mailbox(mail_servers):
    """The ports on which a client must refuse to send a password: the server would take it."""
    s = mail_servers
    s.clear_mailbox("bob")
    msg, marker = make_message(s, "bob")
    s.deliver_directly("bob", msg.as_bytes())
    with imaplib.IMAP4(s.host, s.imap_no_tls, timeout=TIMEOUT) as imap:
        assert "STARTTLS" not in imap.capabilities
        imap.login("bob", s.users["bob"])
        assert imap.select("INBOX", readonly=True) == ("OK", [b"1"])
    pop = poplib.POP3(s.host, s.pop3_no_tls, timeout=TIMEOUT)
    try:
        assert "STLS" not in pop.capa()
        pop.user("bob")
        pop.pass_(s.users["bob"])
        assert pop.stat()[0] == 1
    finally:
        pop.quit()


def test_wrong_password_is_refused_everywhere(mail_servers, tls):
    s = mail_servers
    with smtplib.SMTP_SSL(s.host, s.smtps, context=tls, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as smtp_error:
            smtp.login("alice", "wrong")
    assert smtp_error.value.smtp_code == 535
    with imaplib.IMAP4_SSL(s.host, s.imaps, ssl_context=tls, timeout=TIMEOUT) as imap:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            imap.login("alice", "wrong")
    pop = poplib.POP3_SSL(s.host, s.pop3s, context=tls, timeout=TIMEOUT)
    try:
        pop.user("alice")
        with pytest.raises(poplib.error_proto, match="AUTH"):
            pop.pass_("wrong")
    finally:
        pop.close()


@pytest.mark.parametrize("port", ["smtps", "imaps", "pop3s"])
def test_system_cas_do_not_trust_the_test_ca(mail_servers, port):
    """Verification is real: without ca_file the handshake fails."""
    with socket.create_connection((mail_servers.host, getattr(mail_servers, port)),
                                  timeout=TIMEOUT) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname=mail_servers.host)


def test_starttls_with_system_cas_fails(mail_servers):
    with smtplib.SMTP(mail_servers.host, mail_servers.submission, timeout=TIMEOUT) as smtp:
        with pytest.raises(ssl.SSLCertVerificationError):
            smtp.starttls(context=ssl.create_default_context())


def test_certificate_names_are_checked(mail_servers, tls):
    """The leaf is for localhost and 127.0.0.1 only; another name fails verification."""
    s = mail_servers
    for name in ("localhost", "127.0.0.1"):
        with socket.create_connection((s.host, s.imaps), timeout=TIMEOUT) as raw:
            tls.wrap_socket(raw, server_hostname=name).close()
    with socket.create_connection((s.host, s.imaps), timeout=TIMEOUT) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
            tls.wrap_socket(raw, server_hostname="mail.example.org")


def test_dead_session_is_reaped_and_stop_leaves_nothing(mail_servers):
    """A session that died without teardown (its slot lock released, its servers still up)
    is cleaned up by the next one; a normal stop leaves no process and no directory."""
    dead = ServerInstance.start()
    dead_sessions = dead.sessions()
    dead.lock_file.close()  # what the kernel does when a pytest process is killed
    dead_marker = dead.root / "left-behind"
    dead_marker.touch()

    fresh = ServerInstance.start()
    try:
        assert not dead_marker.exists()
        assert all(session_processes(sid) == [] for sid in dead_sessions)
        with smtplib.SMTP(fresh.servers.host, fresh.servers.smtp_plain, timeout=TIMEOUT) as smtp:
            assert smtp.noop()[0] == 250
        assert str(fresh.postfix_dir) in subprocess.run(
            ["postconf", "-h", "alternate_config_directories"],
            capture_output=True, text=True, check=True).stdout
    finally:
        fresh_sessions = fresh.sessions()
        fresh.stop()
    assert len(fresh_sessions) == 4  # 2 dovecots, postfix-script, postfix master
    assert all(session_processes(sid) == [] for sid in fresh_sessions)
    assert list(fresh.root.iterdir()) == []
    with smtplib.SMTP(mail_servers.host, mail_servers.smtp_plain, timeout=TIMEOUT) as smtp:
        assert smtp.noop()[0] == 250, "the reaper must leave live sessions alone"
