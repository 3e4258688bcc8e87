"""Faults Postfix will not produce on demand, from a SCRIPTED FAKE SMTP server.

The fake (tests/scripted_servers.ScriptedSMTPServer) is not a mail server: it is a few
lines of Python on 127.0.0.1 that answers from a script so a test can make it say 421 in
mid-session, drop the connection during DATA, go silent, or refuse the message after the
final dot. It speaks implicit TLS with a throw-away CA, so the client under test runs
exactly as it does against a real server (no insecure flags). Everything Postfix can do
itself is tested against Postfix in test_send_postfix.py.
"""

import email
import email.policy
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted_servers import MESSAGE, ScriptedSMTPServer, scripted

REPO = Path(__file__).resolve().parents[2]


def fake(tmp_path, **overrides) -> ScriptedSMTPServer:
    """A scripted fake server whose named script methods are replaced by `overrides`."""
    return scripted(ScriptedSMTPServer, tmp_path, **overrides)


@pytest.fixture(params=["DATA", "BDAT"])
def transfer(request):
    """Each fault once with DATA and once with CHUNKING, where messages go out back to back."""
    return {"extensions": ScriptedSMTPServer.extensions + (("CHUNKING",) if request.param == "BDAT" else ())}


def run_send(server: ScriptedSMTPServer, *args, input=MESSAGE, timeout="10"):
    result = subprocess.run(
        [sys.executable, "-m", "mimekit_cli", "send", "--server", server.url, "--cafile", str(server.ca_file),
         "--timeout", timeout, "--json", *args],
        input=input, capture_output=True, timeout=60, cwd=REPO)
    return result.returncode, json.loads(result.stdout), result.stderr.decode()


@pytest.fixture
def two_messages(tmp_path):
    paths = []
    for n in (1, 2):
        path = tmp_path / f"m{n}.eml"
        path.write_bytes(MESSAGE.replace(b"fault test", f"message {n}".encode()))
        paths.append(str(path))
    return paths


def test_421_in_mid_session_is_tempfail_and_later_messages_are_not_sent(transfer, tmp_path, two_messages):
    server = fake(tmp_path, mail=lambda self, sender, count: "250 2.1.0 Ok" if count == 1
                  else "421 4.3.2 Service shutting down", **transfer)
    code, report, stderr = run_send(server, "--to", "bob@example.test", *two_messages)
    assert code == 75
    first, second = report["messages"]
    assert first["queue_id"] == "FAKE1" and first["recipients"][0]["accepted"] is True
    assert second["queue_id"] is None and second["recipients"][0]["accepted"] is False
    assert report["error"]["code"] == 75 and "421" in report["error"]["message"]
    assert len(server.messages) == 1


def test_connection_dropped_during_data_reports_nothing_as_sent(transfer, tmp_path):
    server = fake(tmp_path, drop_during_data=lambda self, count: True, **transfer)
    code, report, _ = run_send(server, "--to", "bob@example.test", "--to", "carol@example.test")
    assert code == 75
    [message] = report["messages"]
    assert message["queue_id"] is None
    assert [r["accepted"] for r in message["recipients"]] == [False, False]
    assert server.messages == []


def test_a_server_that_goes_silent_times_out_as_tempfail(transfer, tmp_path):
    def silent_after_data(self, message, count):
        time.sleep(5)
        return "250 2.0.0 too late"

    server = fake(tmp_path, data_received=silent_after_data, **transfer)
    started = time.monotonic()
    code, report, _ = run_send(server, "--to", "bob@example.test", timeout="1")
    assert code == 75 and "within 1s" in report["error"]["message"]
    assert time.monotonic() - started < 4.5
    assert report["messages"][0]["recipients"][0]["accepted"] is False


def test_message_refused_after_the_final_dot_is_unavailable(transfer, tmp_path):
    server = fake(tmp_path, data_received=lambda self, message, count: "554 5.7.1 Message content rejected",
                  **transfer)
    code, report, _ = run_send(server, "--to", "bob@example.test", "--to", "carol@example.test")
    assert code == 69
    assert [(r["accepted"], r["code"], r["enhanced"]) for r in report["messages"][0]["recipients"]] == \
        [(False, 554, "5.7.1"), (False, 554, "5.7.1")]


def test_greeting_refusal_is_unavailable(tmp_path):
    server = fake(tmp_path, greeting=lambda self: "554 5.3.2 not accepting mail")
    code, report, _ = run_send(server, "--to", "bob@example.test")
    assert code == 69 and "554" in report["error"]["message"]


def test_refused_sender_then_rset_and_the_next_message_goes_through(transfer, tmp_path, two_messages):
    server = fake(tmp_path, mail=lambda self, sender, count: "553 5.7.1 sender rejected" if count == 1
                  else "250 2.1.0 Ok", **transfer)
    code, report, _ = run_send(server, "--to", "bob@example.test", *two_messages)
    assert code == 69
    first, second = report["messages"]
    assert first["recipients"][0] == {"address": "bob@example.test", "accepted": False, "code": 553,
                                      "enhanced": "5.7.1", "text": "sender rejected"}
    assert second["recipients"][0]["accepted"] is True and second["queue_id"] == "FAKE1"
    verbs = [c.split()[0] for c in server.commands]
    second_mail = [n for n, verb in enumerate(verbs) if verb == "MAIL"][1]
    assert verbs[second_mail - 1] == "RSET"   # a reset before the second MAIL
    assert len(server.messages) == 1


def test_without_pipelining_every_command_waits_for_its_reply(tmp_path, two_messages):
    server = fake(tmp_path, extensions=("8BITMIME", "ENHANCEDSTATUSCODES"))
    code, report, _ = run_send(server, "--to", "bob@example.test", "--to", "carol@example.test", *two_messages)
    assert code == 0
    assert not server.pipelined_without_offer
    assert len(server.messages) == 2


SEVEN_BIT_EXTENSIONS = ("PIPELINING", "SIZE 0", "ENHANCEDSTATUSCODES")   # no 8BITMIME, no SMTPUTF8
EIGHT_BIT_MESSAGE = (MESSAGE.replace(b"fault test", "Grüße, 履歴書".encode())
                     .replace(b"body\r\n", "A café for two, and a naïve résumé.\r\n".encode()))


@pytest.fixture(params=["DATA", "BDAT"])
def seven_bit_server(request, tmp_path):
    """A server without 8BITMIME or SMTPUTF8, once with DATA and once with CHUNKING."""
    extensions = SEVEN_BIT_EXTENSIONS + (("CHUNKING",) if request.param == "BDAT" else ())
    return fake(tmp_path, extensions=extensions)


def test_8bit_message_for_a_7bit_server_is_converted_never_sent_broken(seven_bit_server):
    code, report, _ = run_send(seven_bit_server, "--to", "bob@example.test", input=EIGHT_BIT_MESSAGE)
    assert code == 0, report
    assert report["messages"][0]["queue_id"] == "FAKE1"
    assert report["messages"][0]["converted_to_7bit"] is True
    [received] = seven_bit_server.messages
    assert received.isascii()
    [mail] = [c for c in seven_bit_server.commands if c.startswith("MAIL")]
    assert mail == f"MAIL FROM:<alice@example.test> SIZE={len(received)}"   # the converted size, no BODY=8BITMIME
    parsed = email.message_from_bytes(received, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße, 履歴書"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_payload(decode=True) == "A café for two, and a naïve résumé.\r\n".encode()
    assert not parsed.defects


def test_an_address_that_needs_smtputf8_is_refused_by_a_server_without_it(seven_bit_server):
    code, report, _ = run_send(seven_bit_server, "--to", "jörg@example.test", input=EIGHT_BIT_MESSAGE)
    assert code == 65
    assert "SMTPUTF8" in report["messages"][0]["error"]["message"]
    assert not any(c.startswith("MAIL") for c in seven_bit_server.commands)


def test_a_message_that_cannot_be_made_7bit_is_refused_and_the_next_one_still_goes(seven_bit_server, tmp_path):
    unconvertible, fine = tmp_path / "unconvertible.eml", tmp_path / "fine.eml"
    unconvertible.write_bytes(EIGHT_BIT_MESSAGE.replace(b"\r\n\r\n", "\r\nMessage-ID: <café@x>\r\n\r\n".encode()))
    fine.write_bytes(EIGHT_BIT_MESSAGE)
    code, report, _ = run_send(seven_bit_server, "--to", "bob@example.test", str(unconvertible), str(fine))
    assert code == 65
    refused, sent = report["messages"]
    assert "Message-ID has 8-bit bytes" in refused["error"]["message"]
    assert sent["queue_id"] == "FAKE1"
    [received] = seven_bit_server.messages
    assert received.isascii() and b"Subject: =?utf-8?" in received
    assert [c.split()[0] for c in seven_bit_server.commands].count("MAIL") == 1


def test_an_address_that_would_break_the_command_line_refuses_only_its_message(transfer, tmp_path):
    server = fake(tmp_path, **transfer)
    odd, fine = tmp_path / "odd.eml", tmp_path / "fine.eml"
    odd.write_bytes(MESSAGE.replace(b"To: bob@example.test", b'To: "a>b"@example.test'))
    fine.write_bytes(MESSAGE)
    code, report, _ = run_send(server, "-t", str(odd), str(fine))
    assert code == 65
    refused, sent = report["messages"]
    assert "not allowed in an SMTP command" in refused["error"]["message"]
    assert sent["queue_id"] == "FAKE1"
    assert [c.split()[0] for c in server.commands].count("MAIL") == 1


def test_a_large_message_to_refused_recipients_is_never_uploaded(tmp_path):
    server = fake(tmp_path, rcpt=lambda self, address, count: "550 5.1.1 no such user",
                  extensions=ScriptedSMTPServer.extensions + ("CHUNKING",))
    large = MESSAGE + (b"x" * 76 + b"\r\n") * 20000   # several BDAT chunks
    code, report, _ = run_send(server, "--to", "nobody@example.test", input=large)
    assert code == 69
    assert report["messages"][0]["recipients"][0]["code"] == 550
    assert not any(c.startswith("BDAT") for c in server.commands)
    assert server.commands[-2:] == ["RSET", "QUIT"]
