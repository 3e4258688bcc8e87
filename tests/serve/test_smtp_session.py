"""The SMTP session (serve/smtp_session.py) over a real loopback socket: handle_smtp runs
under asyncio.start_server in a thread, as the server runs it, and Python's smtplib (or a
raw socket, for what smtplib will not send: BDAT, pipelining, a client vanishing mid-DATA)
talks to it. What lands in the Maildir is checked byte for byte."""

import smtplib
import socket
import threading
import time
from collections import Counter
from functools import partial

import pytest
from served import assert_delivered_as_sent, received_with, sample_message, serving_with

from helpers import mounted_tmpfs
from mimekit.serve.mailboxes import Mailboxes
from mimekit.serve.smtp_session import handle_smtp
from mimekit.serve.users import PasswordHash, Users

HOST = "127.0.0.1"
PASSWORD = "alice-Session-Secret"
USERS = Users({"alice": PasswordHash.make(PASSWORD, log2_n=10)})


serving = partial(serving_with, handle_smtp)


class RawClient:
    """A socket speaking SMTP by hand, for what smtplib will not do."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.reply().startswith(b"220 ")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> bytes:
        """One whole reply, its lines joined."""
        lines = []
        while True:
            line = self.file.readline()
            assert line, f"connection closed after {lines}"
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    def replies(self, count: int) -> list[bytes]:
        return [self.reply()[:9] for _ in range(count)]

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_smtplib_sends_in_plain_text(tmp_path):
    message = sample_message("b@serve.test", "plain-1")
    with serving(tmp_path / "mail") as running, smtplib.SMTP(HOST, running.port) as client:
        client.ehlo("client.test")
        assert client.has_extn("pipelining") and client.has_extn("chunking") and client.has_extn("smtputf8")
        assert not client.has_extn("starttls") and not client.has_extn("auth")
        assert client.mail("a@client.test", ["BODY=8BITMIME", f"SIZE={len(message)}"])[0] == 250
        assert client.rcpt("b@serve.test")[0] == 250
        assert client.rcpt("c@serve.test")[0] == 250
        code, text = client.data(message)
        client.quit()
        log = running.log_after(1)
    assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
    [path] = running.delivered()
    assert text.split()[-1].decode() in path.name
    [received] = assert_delivered_as_sent(path, message, "a@client.test")
    assert received_with(received) == b"ESMTP" and b"from client.test ([127.0.0.1])" in received
    assert log.startswith("ehlo=client.test tls=no; 1 message accepted, 0 refused, 2 recipients, ")
    assert log.endswith("; quit")


def test_starttls_and_auth_plain_then_login(tmp_path, tls_context, client_context):
    with serving(tmp_path / "mail", tls=tls_context, users=USERS) as running:
        with smtplib.SMTP(HOST, running.port) as client:
            client.ehlo("client.test")
            assert client.has_extn("starttls") and not client.has_extn("auth")
            with pytest.raises(smtplib.SMTPNotSupportedError):
                client.login("alice", PASSWORD)
            client.starttls(context=client_context)
            client.ehlo("client.test")
            assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
            assert "starttls" not in client.esmtp_features
            client.login("alice", PASSWORD)      # smtplib picks PLAIN
            client.sendmail("alice@client.test", ["b@serve.test"], sample_message("b@serve.test", "tls-1"))
        with smtplib.SMTP(HOST, running.port) as client:
            client.starttls(context=client_context)
            client.ehlo("client.test")
            client.user, client.password = "alice", PASSWORD
            assert client.auth("LOGIN", client.auth_login, initial_response_ok=False)[0] == 235
        first, second = running.log_after(1), running.log_after(2)
    [path] = running.delivered()
    [received] = assert_delivered_as_sent(path, sample_message("b@serve.test", "tls-1"), "alice@client.test")
    assert received_with(received) == b"ESMTPSA" and b"TLSv1.3" in received
    assert first.startswith("ehlo=client.test tls=yes user=alice; 1 message accepted, 0 refused, 1 recipient, ")
    assert "user=alice" in second


def test_a_wrong_password_is_refused_after_a_delay(tmp_path, tls_context, client_context):
    with serving(tmp_path / "mail", tls=tls_context, users=USERS) as running, \
            smtplib.SMTP(HOST, running.port) as client:
        client.starttls(context=client_context)
        client.ehlo()
        started = time.monotonic()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("alice", "wrong")
        assert time.monotonic() - started >= 0.9
        assert refused.value.smtp_code == 535
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("mallory", PASSWORD)


def test_bdat_chunks_over_a_raw_socket(tmp_path):
    message = sample_message("b@serve.test", "bdat-1")
    first, rest = message[:100], message[100:]
    with serving(tmp_path / "mail") as running:
        raw = RawClient(running.port)
        raw.send(b"EHLO raw.test\r\n")
        assert b"CHUNKING" in raw.reply()
        raw.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<b@serve.test>\r\n"
                 + b"BDAT %d\r\n" % len(first) + first + b"BDAT %d LAST\r\n" % len(rest) + rest + b"QUIT\r\n")
        replies = [raw.reply() for _ in range(5)]
        raw.close()
    assert [r[:9] for r in replies] == [b"250 2.1.0", b"250 2.1.5", b"250 2.0.0", b"250 2.0.0", b"221 2.0.0"]
    assert b"queued as" in replies[3]
    [path] = running.delivered()
    assert_delivered_as_sent(path, message, "a@client.test")


def test_pipelined_commands_are_answered_in_order(tmp_path):
    message = sample_message("b@serve.test", "pipe-1")
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    with serving(tmp_path / "mail") as running:
        raw = RawClient(running.port)
        raw.send(b"EHLO raw.test\r\n")
        raw.reply()
        raw.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<nobody@serve.test>\r\nRCPT TO:<b@serve.test>\r\n"
                 b"RCPT TO:<bad address>\r\nDATA\r\n")
        assert raw.replies(5) == [b"250 2.1.0", b"250 2.1.5", b"250 2.1.5", b"553 5.1.3", b"354 End d"]
        raw.send(stuffed + b".\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<c@serve.test>\r\nDATA\r\n")
        assert raw.replies(4) == [b"250 2.0.0", b"250 2.1.0", b"250 2.1.5", b"354 End d"]
        raw.send(stuffed + b".\r\nQUIT\r\n")
        assert raw.replies(2) == [b"250 2.0.0", b"221 2.0.0"]
        raw.close()
        log = running.log_after(1)
    assert len(running.delivered()) == 2
    for path in running.delivered():
        assert_delivered_as_sent(path, message, "a@client.test")
    assert "2 messages accepted, 0 refused, 3 recipients" in log


def test_a_client_gone_mid_data_delivers_nothing(tmp_path):
    with serving(tmp_path / "mail") as running:
        raw = RawClient(running.port)
        raw.send(b"EHLO raw.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@serve.test>\r\nDATA\r\n")
        assert raw.replies(4)[-1] == b"354 End d"
        raw.send(b"Subject: cut short\r\n\r\n" + b"x" * 300_000 + b"\r\n")
        raw.close()
        log = running.log_after(1)
    assert running.delivered() == [] and list((running.root / "tmp").iterdir()) == []
    assert "0 messages accepted, 0 refused, 0 recipients, 0 bytes" in log
    assert log.endswith("; client went away in the middle of a message")


def test_a_message_past_the_size_limit_is_refused_and_the_session_goes_on(tmp_path):
    with serving(tmp_path / "mail", max_size=1000) as running, smtplib.SMTP(HOST, running.port) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "1000"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@client.test", ["b@serve.test"], b"x" * 2000)   # SIZE=2002 in MAIL FROM
        assert refused.value.smtp_code == 552
        client.rset()
        client.mail("a@client.test")      # no SIZE: found out while streaming
        client.rcpt("b@serve.test")
        assert client.data(b"Subject: big\r\n\r\n" + b"y" * 5000)[0] == 552
        client.sendmail("a@client.test", ["b@serve.test"], b"Subject: small\r\n\r\nok\r\n")
    [path] = running.delivered()
    assert path.read_bytes().endswith(b"Subject: small\n\nok\n")
    assert list((running.root / "tmp").iterdir()) == []


def test_unknown_users_and_relaying_are_refused(tmp_path):
    with serving(tmp_path / "mail", domains=("serve.test",), users=USERS) as running, \
            smtplib.SMTP(HOST, running.port) as client:
        client.ehlo()
        client.mail("a@client.test")
        assert client.rcpt("alice@serve.test")[0] == 250
        assert client.rcpt("bob@serve.test")[:1] == (550,)
        assert client.rcpt("x@elsewhere.test")[0] == 550
        assert client.data(b"Subject: routed\r\n\r\nhi\r\n")[0] == 250
    assert len(list((running.root / "alice" / "new").iterdir())) == 1


def test_a_full_disk_refuses_with_452_and_the_next_message_fits(tmp_path):
    with mounted_tmpfs(tmp_path / "disk", "1m") as disk, serving(disk / "mail", max_size=10_000_000) as running, \
            smtplib.SMTP(HOST, running.port) as client:
        client.ehlo()
        client.mail("a@client.test")
        client.rcpt("b@serve.test")
        code, text = client.data(b"Subject: huge\r\n\r\n" + (b"z" * 998 + b"\r\n") * 3000)
        assert (code, text[:5]) == (452, b"4.3.1")
        client.sendmail("a@client.test", ["b@serve.test"], b"Subject: small\r\n\r\nok\r\n")
        [delivered] = running.delivered()
        assert delivered.read_bytes().endswith(b"ok\n")
        assert list((running.root / "tmp").iterdir()) == []


INJECTION = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<b@serve.test>\r\n"


def test_commands_sent_with_starttls_end_the_session(tmp_path, tls_context):
    """CVE-2011-0411: what a man in the middle appends to STARTTLS is never read."""
    with serving(tmp_path / "mail", tls=tls_context) as running:
        raw = RawClient(running.port)
        raw.send(b"EHLO raw.test\r\n")
        raw.reply()
        raw.send(b"STARTTLS\r\n" + INJECTION)
        rest = raw.rest()
        raw.close()
        log = running.log_after(1)
    assert rest.startswith(b"421 4.7.0") and b"250 2.1.0" not in rest
    assert log.endswith("; commands pipelined after STARTTLS")


def test_commands_that_reach_the_stream_reader_behind_starttls_end_the_session(tmp_path, tls_context):
    """The same when the appended commands are not yet in the protocol's buffer but in the
    stream reader's (they came in the next TCP segment): a scripted fault, the reader
    given them right after the read that ends with STARTTLS, as a network may on any run."""
    def inject_after_starttls(reader):
        read = reader.read

        async def read_then_inject(size):
            data = await read(size)
            if data.endswith(b"STARTTLS\r\n"):
                reader.feed_data(INJECTION)
            return data
        reader.read = read_then_inject

    with serving(tmp_path / "mail", prepare_reader=inject_after_starttls, tls=tls_context) as running:
        raw = RawClient(running.port)
        raw.send(b"EHLO raw.test\r\n")
        raw.reply()
        raw.send(b"STARTTLS\r\n")
        rest = raw.rest()
        raw.close()
        log = running.log_after(1)
    assert rest.startswith(b"220 2.0.0") and rest.splitlines()[-1].startswith(b"421 4.3.2")
    assert b"250 2.1.0" not in rest
    assert log.endswith("; client sent data between the TLS command and the handshake")


def test_a_flood_of_pipelined_commands_is_answered_as_the_client_reads(tmp_path):
    """1 MiB of pipelined HELP/NOOP (about 10 MB of replies): the protocol stops parsing
    while replies wait to be written, and the session then writes them and parses on
    without reading first, so the commands already read are answered even when the client
    sends nothing more and waits for them."""
    commands = b"HELP\r\nNOOP\r\n" * (1024 * 1024 // 12)
    with serving(tmp_path / "mail") as running:
        raw = RawClient(running.port)
        sender = threading.Thread(target=raw.send, args=(b"EHLO raw.test\r\n" + commands + b"QUIT\r\n",))
        sender.start()
        codes = Counter(raw.reply()[:3] for _ in range(1 + commands.count(b"\n") + 1))
        sender.join()
        raw.close()
        log = running.log_after(1)
    assert codes == {b"250": 1 + commands.count(b"NOOP"), b"214": commands.count(b"HELP"), b"221": 1}
    assert log.endswith("; quit")


def test_a_delivery_is_opened_off_the_event_loop(tmp_path, monkeypatch):
    """Mailboxes.begin creates the file and new Maildirs, with fsyncs: on the event loop it
    would stall every other session."""
    threads = []
    begin = Mailboxes.begin

    def recording_begin(self, *args):
        threads.append(threading.current_thread())
        return begin(self, *args)

    monkeypatch.setattr(Mailboxes, "begin", recording_begin)
    with serving(tmp_path / "mail") as running, smtplib.SMTP(HOST, running.port) as client:
        client.sendmail("a@client.test", ["b@serve.test"], sample_message("b@serve.test", "thread-1"))
    assert [thread.name.startswith("asyncio_") for thread in threads] == [True]   # the default executor's


class SlowUsers(Users):
    """Users whose check takes a while and counts how many run at once."""

    def __init__(self):
        super().__init__({"alice": PasswordHash.make(PASSWORD, log2_n=10)})
        self.lock, self.running, self.most = threading.Lock(), 0, 0

    def verify(self, name: str, password: str) -> bool:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.2)
        with self.lock:
            self.running -= 1
        return super().verify(name, password)


def test_concurrent_logins_are_checked_two_at_a_time(tmp_path):
    """Each check is an scrypt (32 MiB, a thread of the default pool that delivery commits
    need too): a flood of AUTH waits for its turn instead."""
    users = SlowUsers()
    with serving(tmp_path / "mail", users=users, insecure_plaintext_auth=True) as running:
        clients = [smtplib.SMTP(HOST, running.port) for _ in range(6)]
        for client in clients:
            client.ehlo("client.test")
        answers = []
        logins = [threading.Thread(target=lambda c=client: answers.append(c.login("alice", PASSWORD)[0]))
                  for client in clients]
        for thread in logins:
            thread.start()
        for thread in logins:
            thread.join(30)
        for client in clients:
            client.quit()
    assert answers == [235] * 6 and users.most == 2


def test_a_client_that_times_out_hears_421_4_4_2(tmp_path):
    """RFC 3463: 4.4.2 is a bad connection, which a timeout is (4.3.2, the system not
    accepting messages, is for a server shutting down)."""
    with serving(tmp_path / "mail", smtp_idle_timeout=0.3) as running:
        raw = RawClient(running.port)
        raw.send(b"EHLO raw.test\r\n")
        raw.reply()
        rest = raw.rest()
        raw.close()
        log = running.log_after(1)
    assert rest == b"421 4.4.2 mx.serve.test timed out waiting for the client; closing connection\r\n"
    assert log.endswith("; timed out waiting for the client")
