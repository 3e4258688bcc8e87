"""`mimekit send` against the real Postfix of tests/servers.py, and into local stores.

What arrives in the Maildir Postfix delivers to is compared with what was sent: equal
apart from the trace headers Postfix adds on top, Bcc in no copy. Refusals are checked
where Postfix really produces them (no STARTTLS, untrusted certificate, wrong password,
SIZE, a 4xx recipient, an unknown one); faults Postfix will not produce on demand are in
test_send_faults.py.
"""

import email
import email.policy
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.smtp.client import SMTPClient
from mimekit.stores import Maildir, Mbox
from mimekit.transport.urls import parse_url

REPO = Path(__file__).resolve().parents[2]
# What Postfix virtual(8) puts above the message it received.
ADDED_BY_POSTFIX = re.compile(rb"(?:(?:Return-Path|X-Original-To|Delivered-To|Received):.*\n(?:[ \t].*\n)*)*")


def mimekit(*args, input=None, env=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True,
                          timeout=120, cwd=REPO, env={**os.environ, **(env or {})})


def send(servers, port: int, *args, scheme="smtp", user=None, input=None, cafile=True):
    """mimekit send --json to a Postfix port; returns (exit code, JSON report, stderr)."""
    options = ["send", "--server", f"{scheme}://127.0.0.1:{port}", "--json", "--timeout", "30"]
    if cafile:
        options += ["--cafile", str(servers.ca_file)]
    env = {}
    if user:
        options += ["--user", user]
        env["MIMEKIT_PASSWORD"] = servers.users.get(user, "not-the-password")
    result = mimekit(*options, *args, input=input, env=env)
    return result.returncode, json.loads(result.stdout), result.stderr.decode()


def message_with(token: str, body: bytes = b"Hello.\r\n", extra: bytes = b"") -> bytes:
    """A complete message (Date and Message-ID given, so Postfix adds none) marked by `token`."""
    return (b"From: Alice <alice@example.test>\r\n"
            b"To: Bob <bob@example.test>\r\n"
            + extra +
            b"Subject: " + token.encode() + b"\r\n"
            b"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n"
            b"Message-ID: <" + token.encode() + b"@example.test>\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n" + body)


def delivered(servers, user: str, token: str, count: int = 1, timeout: float = 30) -> list[bytes]:
    """The messages carrying `token` in `user`'s Maildir, once `count` of them are there."""
    deadline = time.monotonic() + timeout
    while True:
        found = [p.read_bytes() for p in servers.messages(user)]
        found = [m for m in found if token.encode() in m]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def without_postfix_headers(delivered_message: bytes) -> bytes:
    return delivered_message[ADDED_BY_POSTFIX.match(delivered_message).end():]


def token() -> str:
    return f"mimekit-send-{uuid.uuid4().hex[:12]}"


def log_lines_about(servers, text: str) -> list[str]:
    return [line for line in servers.postfix_log.read_text(errors="replace").splitlines() if text in line]


# --- delivery -------------------------------------------------------------------------------

@pytest.mark.servers
def test_delivered_copies_equal_what_was_sent_and_none_has_bcc(mail_servers):
    mark = token()
    body = b"First line.\r\n.\r\n..\r\n...\r\n.leading dot\r\nLast line.\r\n"
    message = message_with(mark, body, extra=b"Cc: carol@example.test\r\nBcc: Alice <alice@example.test>\r\n")
    code, report, _ = send(mail_servers, mail_servers.submission, "-t", user="alice", input=message)
    assert code == 0, report
    [result] = report["messages"]
    assert [(r["address"], r["accepted"], r["code"], r["enhanced"]) for r in result["recipients"]] == [
        ("bob@example.test", True, 250, "2.1.5"), ("carol@example.test", True, 250, "2.1.5"),
        ("alice@example.test", True, 250, "2.1.5")]
    assert result["queue_id"] and result["converted_to_7bit"] is False
    expected = re.sub(rb"Bcc: .*\r\n", b"", message).replace(b"\r\n", b"\n")
    for user in ("bob", "carol", "alice"):
        [copy] = delivered(mail_servers, user, mark)
        assert without_postfix_headers(copy) == expected
        assert b"Bcc" not in copy and f"id {result['queue_id']}".encode() in copy


@pytest.mark.servers
def test_a_resent_message_goes_to_resent_to_and_resent_bcc_and_none_has_resent_bcc(mail_servers):
    """RFC 5322 §3.6.6: with -t a resent message goes to its Resent- recipients (as Postfix's
    own sendmail -t does), from Resent-From; Resent-Bcc, like Bcc, is never transmitted."""
    mark = token()
    resent = (b"Resent-From: Alice <alice@example.test>\r\n"
              b"Resent-Date: Fri, 02 Jan 2026 10:00:00 +0000\r\n"
              b"Resent-Message-ID: <resent-" + mark.encode() + b"@example.test>\r\n"
              b"Resent-To: carol@example.test\r\n"
              b"Resent-Bcc: Alice <alice@example.test>\r\n")
    message = resent + message_with(mark)
    code, report, _ = send(mail_servers, mail_servers.submission, "-t", user="alice", input=message)
    assert code == 0, report
    [result] = report["messages"]
    assert [(r["address"], r["accepted"]) for r in result["recipients"]] == [
        ("carol@example.test", True), ("alice@example.test", True)]   # not bob: the original To had it
    assert "from=<alice@example.test>" in "".join(log_lines_about(mail_servers, result["queue_id"]))
    expected = message.replace(b"Resent-Bcc: Alice <alice@example.test>\r\n", b"").replace(b"\r\n", b"\n")
    for user in ("carol", "alice"):
        [copy] = delivered(mail_servers, user, mark)
        assert without_postfix_headers(copy) == expected
        assert b"Resent-Bcc" not in copy


@pytest.mark.servers
def test_a_one_megabyte_binary_attachment_arrives_byte_exact(mail_servers, tmp_path):
    attachment = tmp_path / "random.bin"
    attachment.write_bytes(os.urandom(1024 * 1024))
    mark = token()
    composed = mimekit("encode", "--from", "alice@example.test", "--to", "bob@example.test",
                       "--subject", mark, "--attach", str(attachment), "--body", "-", input=b"See attached.\n")
    assert composed.returncode == 0, composed.stderr
    code, report, _ = send(mail_servers, mail_servers.smtps, "-t", scheme="smtps", user="alice",
                           input=composed.stdout)
    assert code == 0, report
    [copy] = delivered(mail_servers, "bob", mark)
    assert without_postfix_headers(copy) == composed.stdout.replace(b"\r\n", b"\n")
    parsed = email.message_from_bytes(copy, policy=email.policy.default)
    [part] = list(parsed.iter_attachments())
    assert part.get_content() == attachment.read_bytes()


@pytest.mark.servers
def test_several_messages_go_over_one_connection(mail_servers, tmp_path):
    marks = [token() for _ in range(3)]
    paths = []
    for mark in marks:
        paths.append(tmp_path / f"{mark}.eml")
        paths[-1].write_bytes(message_with(mark))
    code, report, _ = send(mail_servers, mail_servers.smtp_plain, "--to", "carol@example.test",
                           *map(str, paths))
    assert code == 0, report
    queue_ids = [m["queue_id"] for m in report["messages"]]
    assert len(set(queue_ids)) == 3 and [m["source"] for m in report["messages"]] == list(map(str, paths))
    copies = [delivered(mail_servers, "carol", mark)[0] for mark in marks]
    protocols = {re.search(rb"\(Postfix\) with (\S+) id", copy).group(1) for copy in copies}
    assert protocols == {b"ESMTPS"}   # all over STARTTLS
    summaries = {session_summary(mail_servers, queue_id) for queue_id in queue_ids}
    assert len(summaries) == 1 and " mail=3 " in summaries.pop()   # one connection, three messages


def session_summary(servers, queue_id: str, timeout: float = 10) -> str:
    """Postfix's "disconnect ... mail=N rcpt=N bdat=N" line for the connection that
    queued `queue_id` (smtpd processes are reused, so the pid alone is not enough)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = servers.postfix_log.read_text(errors="replace").splitlines()
        start = next((n for n, line in enumerate(lines) if f"{queue_id}: client=" in line), None)
        if start is not None:
            pid = re.search(r"smtpd\[(\d+)\]", lines[start]).group(1)
            summary = next((line for line in lines[start:] if f"smtpd[{pid}]: disconnect" in line), None)
            if summary:
                return summary
        if time.monotonic() > deadline:
            raise AssertionError(f"no session summary for {queue_id} in {servers.postfix_log}")
        time.sleep(0.05)


@pytest.mark.servers
def test_the_data_path_with_dot_stuffing_delivers_the_same_bytes(mail_servers, tmp_path):
    """Postfix offers CHUNKING, so the CLI sends with BDAT; the DATA path is checked here."""
    mark = token()
    path = tmp_path / "dots.eml"
    path.write_bytes(message_with(mark, b".\r\n..\r\n.x\r\n" + b"filler line\r\n" * 20000 + b".\r\n"))
    url = parse_url(f"smtp://127.0.0.1:{mail_servers.smtp_plain}", {"smtp"})
    with SMTPClient(url, cafile=str(mail_servers.ca_file), chunking=False) as client:
        [result] = client.send_messages([prepare_message(str(path), to=["bob@example.test"])])
    assert result.recipients[0].accepted and result.queue_id
    [copy] = delivered(mail_servers, "bob", mark)
    assert without_postfix_headers(copy) == path.read_bytes().replace(b"\r\n", b"\n")
    summary = session_summary(mail_servers, result.queue_id)
    assert " data=1 " in summary and "bdat" not in summary


@pytest.mark.servers
def test_a_message_with_nul_bytes_and_long_lines_is_converted_and_arrives_intact(mail_servers):
    """Postfix offers 8BITMIME, but no server takes NUL bytes or 998+ byte lines as text:
    the parts that have them are re-encoded (mimekit.write.downgrade) and read back the same."""
    mark = token()
    long_text = "Grüße " + "word " * 400 + "end\r\n"
    data = bytes(range(256)) + b"\x00\r\n" * 10
    body = (b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + long_text.encode() + b"\r\n--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: binary\r\n\r\n" + data + b"\r\n--b--\r\n")
    message = message_with(mark, body).replace(b"text/plain; charset=us-ascii", b"multipart/mixed; boundary=b")
    code, report, _ = send(mail_servers, mail_servers.smtp_plain, "--to", "bob@example.test", input=message)
    assert code == 0, report
    assert report["messages"][0]["converted_to_7bit"] is True
    [copy] = delivered(mail_servers, "bob", mark)
    assert copy.isascii() and max(map(len, copy.split(b"\n"))) <= 998
    parsed = email.message_from_bytes(copy, policy=email.policy.default)
    text, attachment = parsed.iter_parts()
    assert text.get_content() == long_text.replace("\r\n", "\n")   # Maildir stores LF line ends
    assert attachment.get_content() == data


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.servers
def test_no_starttls_offered_stops_before_any_credential(mail_servers):
    mark = token()
    sasl_lines_before = len(log_lines_about(mail_servers, "sasl"))
    code, report, _ = send(mail_servers, mail_servers.smtp_no_tls, "--to", "bob@example.test", user="alice",
                           input=message_with(mark))
    assert code == 77
    assert "STARTTLS" in report["error"]["message"]
    assert report["messages"][0]["recipients"][0]["accepted"] is False
    assert len(log_lines_about(mail_servers, "sasl")) == sasl_lines_before   # no AUTH was tried
    assert delivered(mail_servers, "bob", mark, timeout=1) == []


@pytest.mark.servers
def test_insecure_flag_allows_plain_text_but_says_so(mail_servers):
    mark = token()
    code, report, stderr = send(mail_servers, mail_servers.smtp_no_tls, "--to", "bob@example.test",
                                "--insecure-plaintext-auth", user="alice", input=message_with(mark))
    assert code == 0, report
    assert "WITHOUT encryption" in stderr
    assert len(delivered(mail_servers, "bob", mark)) == 1


@pytest.mark.servers
def test_untrusted_certificate_is_refused_and_nothing_is_sent(mail_servers):
    mark = token()
    for scheme, port in (("smtp", mail_servers.smtp_plain), ("smtps", mail_servers.smtps)):
        code, report, _ = send(mail_servers, port, "--to", "bob@example.test", scheme=scheme, cafile=False,
                               input=message_with(mark))
        assert code == 77
        assert "certificate" in report["error"]["message"]
    assert delivered(mail_servers, "bob", mark, timeout=1) == []


@pytest.mark.servers
def test_wrong_password_is_77(mail_servers):
    code, report, _ = send(mail_servers, mail_servers.submission, "--to", "bob@example.test", user="mallory",
                           input=message_with(token()))
    assert code == 77 and "535" in report["error"]["message"]


@pytest.mark.servers
def test_size_limit_refuses_before_data_and_the_next_message_still_goes(mail_servers, tmp_path):
    big, small = tmp_path / "big.eml", tmp_path / "small.eml"
    big_mark, small_mark = token(), token()
    big.write_bytes(message_with(big_mark, (b"y" * 76 + b"\r\n") * 2000))
    small.write_bytes(message_with(small_mark))
    assert big.stat().st_size > mail_servers.small_size_limit
    code, report, _ = send(mail_servers, mail_servers.smtp_small, "--to", "bob@example.test", str(big), str(small))
    assert code == 69
    refused, accepted = report["messages"]
    assert "SIZE" in refused["error"]["message"] and refused["queue_id"] is None
    assert accepted["recipients"][0]["accepted"] is True
    assert len(delivered(mail_servers, "bob", small_mark)) == 1
    assert delivered(mail_servers, "bob", big_mark, timeout=1) == []


@pytest.mark.servers
def test_temporary_refusal_of_one_recipient_is_75_and_the_others_get_it(mail_servers):
    mark = token()
    code, report, _ = send(mail_servers, mail_servers.smtp_plain, "--to", mail_servers.tempfail_recipient,
                           "--to", "bob@example.test", input=message_with(mark))
    assert code == 75
    busy, bob = report["messages"][0]["recipients"]
    assert (busy["accepted"], busy["code"], busy["enhanced"]) == (False, 450, "4.2.1")
    assert bob["accepted"] is True
    assert len(delivered(mail_servers, "bob", mark)) == 1


@pytest.mark.servers
def test_unknown_recipient_is_69(mail_servers):
    code, report, _ = send(mail_servers, mail_servers.smtp_plain, "--to", "nobody@example.test",
                           input=message_with(token()))
    assert code == 69
    assert report["messages"][0]["recipients"][0]["code"] == 550


def test_no_recipient_is_a_usage_error():
    result = mimekit("send", "--server", "smtp://127.0.0.1:9", input=message_with(token()))
    assert result.returncode == 64 and b"no recipient" in result.stderr


# --- local stores (no server) -----------------------------------------------------------------

def test_maildir_delivery_without_bcc(tmp_path):
    message = message_with("local", extra=b"Bcc: hidden@example.test\r\n")
    result = mimekit("send", "--server", f"maildir:{tmp_path}/box", "-t", "--json", input=message)
    assert result.returncode == 0, result.stderr
    [key] = Maildir(str(tmp_path / "box"), create=False).keys()
    stored = Maildir(str(tmp_path / "box")).open(key).read()
    assert stored == re.sub(rb"Bcc: .*\r\n", b"", message).replace(b"\r\n", b"\n")


def test_mbox_delivery_appends_with_the_envelope_sender(tmp_path):
    first = message_with("one", body=b"From the start\r\n")
    second = message_with("two")
    for message in (first, second):
        result = mimekit("send", "--server", f"mbox:{tmp_path}/mbox", "--from", "bounce@example.test",
                         "--to", "x@example.test", input=message)
        assert result.returncode == 0, result.stderr
    box = Mbox(str(tmp_path / "mbox"), create=False)
    assert [box.open(key).read() for key in box.keys()] == [m.replace(b"\r\n", b"\n") for m in (first, second)]
    assert (tmp_path / "mbox").read_bytes().startswith(b"From bounce@example.test ")
