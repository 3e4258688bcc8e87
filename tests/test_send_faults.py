"""Faults Postfix will not produce on demand, from a SCRIPTED FAKE SMTP server.

The fake (ScriptedSMTPServer below) is not a mail server: it is a few lines of Python on
127.0.0.1 that answers from a script so a test can make it say 421 in mid-session, drop
the connection during DATA, go silent, or refuse the message after the final dot. It
speaks implicit TLS with a throw-away CA, so the client under test runs exactly as it
does against a real server (no insecure flags). Everything Postfix can do itself is
tested against Postfix in test_send_postfix.py.
"""

import email
import email.policy
import json
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import trustme

from mimekit.smtp_data import unstuff

REPO = Path(__file__).resolve().parent.parent
MESSAGE = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: fault test\r\n\r\nbody\r\n"


class ScriptedSMTPServer:
    """A scripted fake SMTP server, one session at a time; override a method to script a fault.

    Records the commands it saw (`commands`) and the messages it accepted (`messages`).
    """

    extensions = ("PIPELINING", "8BITMIME", "SIZE 0", "ENHANCEDSTATUSCODES")   # + CHUNKING: see `transfer`

    def __init__(self, tmp_path: Path):
        ca = trustme.CA()
        self.ca_file = tmp_path / "fake-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        self.pipelined_without_offer = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"smtps://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()

    # the script: each returns the reply line(s), or None to drop the connection ------------

    def greeting(self) -> str | None:
        return "220 fake.example.test ESMTP scripted fake"

    def mail(self, sender: str, count: int) -> str | None:
        return "250 2.1.0 Ok"

    def rcpt(self, address: str, count: int) -> str | None:
        return "250 2.1.5 Ok"

    def data_received(self, message: bytes, count: int) -> str | None:
        return f"250 2.0.0 Ok: queued as FAKE{count}"

    def drop_during_data(self, count: int) -> bool:
        return False

    # the machinery ------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    self._session(conn)
            except (OSError, ssl.SSLError):
                pass

    def _session(self, conn: ssl.SSLSocket) -> None:
        reader = _LineReader(conn)

        def say(reply: str | None) -> bool:
            if reply is None:
                return False
            conn.sendall(reply.encode() + b"\r\n")
            return not reply.startswith("421")

        if not say(self.greeting()):
            return
        mails = rcpts = datas = 0
        mail_ok, rcpt_ok, bdat = False, 0, bytearray()   # the transaction, as a real server keeps it
        while line := reader.readline():
            command = line.decode().rstrip("\r\n")
            self.commands.append(command)
            if "PIPELINING" not in self.extensions and reader.more_waiting():
                self.pipelined_without_offer = True
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                lines = ["fake.example.test", *self.extensions]
                reply = "\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{text}" for i, text in enumerate(lines))
            elif verb == "MAIL":
                mails += 1
                reply = self.mail(command[10:].split(">")[0].lstrip("<"), mails)
                mail_ok = bool(reply) and reply.startswith("250")
            elif verb == "RCPT":
                rcpts += 1
                reply = self.rcpt(command[8:].split(">")[0].lstrip("<"), rcpts) if mail_ok \
                    else "503 5.5.1 Error: need MAIL command"
                rcpt_ok += bool(reply) and reply.startswith("250")
            elif verb == "DATA" and not rcpt_ok:
                reply = "554 5.5.1 Error: no valid recipients"
            elif verb == "DATA":
                datas += 1
                mail_ok, rcpt_ok = False, 0
                if not say("354 End data with <CR><LF>.<CR><LF>"):
                    return
                if self.drop_during_data(datas):
                    reader.readline()   # some of the message has arrived: now vanish
                    return
                data = b""
                while not (data == b".\r\n" or data.endswith(b"\r\n.\r\n")):
                    chunk = reader.readline()
                    if not chunk:
                        return
                    data += chunk
                reply = self.data_received(unstuff(data), datas)
                if reply and reply.startswith("250"):
                    self.messages.append(unstuff(data))
            elif verb == "BDAT":
                size, last = int(command.split()[1]), command.upper().endswith(" LAST")
                if self.drop_during_data(datas + 1):
                    reader.read(min(size, 10))   # some of the message has arrived: now vanish
                    return
                chunk = reader.read(size)
                if not rcpt_ok:
                    reply = "554 5.5.1 Error: no valid recipients"
                else:
                    bdat += chunk
                    reply = f"250 2.0.0 Ok: {size} bytes"
                if last and rcpt_ok:
                    datas += 1
                    reply = self.data_received(bytes(bdat), datas)
                    if reply and reply.startswith("250"):
                        self.messages.append(bytes(bdat))
                if last:
                    mail_ok, rcpt_ok, bdat = False, 0, bytearray()
            elif verb == "RSET":
                mail_ok, rcpt_ok, bdat = False, 0, bytearray()
                reply = "250 2.0.0 Ok"
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                reply = "502 5.5.2 Error: command not recognized"
            if not say(reply):
                return


class _LineReader:
    """Lines from a socket, keeping what arrived beyond them (to notice pipelining)."""

    def __init__(self, conn: ssl.SSLSocket):
        self.conn = conn
        self.buffer = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buffer and self._more():
            pass
        line, newline, self.buffer = self.buffer.partition(b"\n")
        return line + newline

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size and self._more():
            pass
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _more(self) -> bool:
        data = self.conn.recv(65536)
        self.buffer += data
        return bool(data)

    def more_waiting(self) -> bool:
        """Did the client send more before our reply? Waits a moment to let it arrive."""
        time.sleep(0.02)
        return bool(self.buffer) or self.conn.pending() > 0 or bool(select.select([self.conn], [], [], 0)[0])


def fake(tmp_path, **overrides) -> ScriptedSMTPServer:
    """A scripted fake server whose named script methods are replaced by `overrides`."""
    server_class = type("Scripted", (ScriptedSMTPServer,), overrides)
    return server_class(tmp_path)


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
