"""Hostile clients against a running `mimekit serve`: garbage, NUL bytes, commands cut
short, a 10 MB line, 1000 pipelined recipients, commands out of order, BDAT sizes that
lie, plaintext injected after STARTTLS, logins before TLS, clients that go silent, and
random command sequences (hypothesis).

Whatever a client sends, the server answers in well-formed replies, never crashes (a fresh
client is still served afterwards) and stays within a memory limit: the server under test
runs with its address space capped (RLIMIT_AS), so unbounded buffering ends it instead of
passing. A raw socket plays the client: no real client sends these on purpose.
"""

import asyncio
import base64
import contextlib
import poplib
import queue
import random
import re
import resource
import smtplib
import socket
import ssl
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from served import USERS, Served, tls_options
from servers import HOST
from test_faults import (RECIPIENT, SENDER, files_in, hang_up, memory_peak, reply, smtp_transaction, stored_message,
                         wait_for_session)

MEMORY_LIMIT = 512 * 2**20     # the server's address space: far above its need, far below a 10 MB line kept 50 times
MEMORY_PEAK = 100 * 2**20      # its resident peak (VmHWM) after each test
REPLY_LINE = re.compile(rb"[2-5][0-9][0-9][ -][^\r\n]*\r\n")


def capped(served: Served) -> Served:
    """The server with its address space capped at MEMORY_LIMIT: unbounded buffering ends it."""
    resource.prlimit(served.process.pid, resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    return served


@pytest.fixture
def server(serve) -> Served:
    """A catch-all server, capped."""
    return capped(serve())


@pytest.fixture
def tls_server(serve, certificates, users_file) -> Served:
    """A server with a certificate and the users file: STARTTLS, and logins only after it."""
    return capped(serve(*tls_options(certificates), "--users", str(users_file)))


def connect(port: int) -> tuple[socket.socket, object]:
    """A connection and the file its replies are read from."""
    sock = socket.create_connection((HOST, port), timeout=30)
    return sock, sock.makefile("rb")


def session_replies(port: int, data: bytes, timeout: float = 30) -> bytes:
    """Send `data` at once, close our side, and read everything until the server closes
    (reading all along: a server that stops reading and closes must not lose us its
    last replies). A server that keeps the connection once the client has gone fails."""
    sock = socket.create_connection((HOST, port), timeout=30)
    received = []

    def read():
        try:
            while chunk := sock.recv(65536):
                received.append(chunk)
        except ConnectionResetError:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass                          # it closed first: what it said is still read
    reader.join(timeout)
    assert not reader.is_alive(), f"the server kept the connection {timeout} s after the client closed it"
    sock.close()
    return b"".join(received)


def assert_well_formed(replies: bytes) -> list[int]:
    """Every byte the server sent is a reply line ("250-..." or "250 ...", CRLF); their codes."""
    position, codes = 0, []
    while position < len(replies):
        line = REPLY_LINE.match(replies, position)
        assert line, f"not a reply line at {position}: {replies[position:position + 200]!r}"
        codes.append(int(line.group()[:3]))
        position = line.end()
    return codes


def assert_still_serving(server: Served) -> None:
    """The server is up, in bounded memory: a fresh client gets a message through, another
    the POP3 greeting."""
    assert server.process.poll() is None, server.stderr()
    with smtplib.SMTP(HOST, server.smtp, timeout=30) as client:
        client.sendmail(SENDER, [RECIPIENT], b"Subject: still serving\r\n\r\nbody\r\n")
    with contextlib.closing(poplib.POP3(HOST, server.pop3, timeout=30)) as client:
        assert client.getwelcome().startswith(b"+OK")
    assert memory_peak(server) < MEMORY_PEAK


def command_replies(port: int, commands: list[bytes]) -> list[tuple[int, str]]:
    """Each command in its own round trip, after EHLO: the reply to each."""
    sock, replies = connect(port)
    assert reply(replies)[0] == 220
    answers = []
    for command in [b"EHLO client.example.test", *commands]:
        sock.sendall(command + b"\r\n")
        answers.append(reply(replies))
    sock.close()
    return answers[1:]


# -- garbage -------------------------------------------------------------------------------

def test_random_garbage_gets_error_replies_and_the_server_goes_on(server):
    garbage = random.Random(1).randbytes(1_000_000)
    replies = session_replies(server.smtp, garbage)
    codes = assert_well_formed(replies)
    assert codes[0] == 220 and all(code >= 500 for code in codes[1:-1]), codes
    assert replies.splitlines()[-1].startswith(b"421 4.")     # too many errors: the session ends
    pop3 = session_replies(server.pop3, garbage)
    assert pop3.startswith(b"+OK") and b"-ERR" in pop3
    assert_still_serving(server)


def test_nul_bytes_in_commands_are_refused_as_syntax_errors(server):
    answers = command_replies(server.smtp, [b"NO\0OP", b"MAIL FROM:<a\0b@example.test>", b"\0\0\0",
                                                 b"MAIL FROM:<" + SENDER.encode() + b">",
                                                 b"RCPT TO:<c\0d@example.test>"])
    assert [code // 100 for code, _ in answers] == [5, 5, 5, 2, 5], answers
    assert all(re.match(r"5\.5\.\d |5\.1\.\d ", text[4:]) for code, text in answers if code >= 500), answers
    pop3 = session_replies(server.pop3, b"US\0ER alice\r\nUSER al\0ice\r\n\0\r\nQUIT\r\n")
    assert [line[:3] for line in pop3.split(b"\r\n")] == [b"+OK", b"-ER", b"-ER", b"-ER", b"+OK", b""], pop3
    assert_still_serving(server)


@pytest.mark.parametrize("cut", [b"MAIL FRO", b"EHLO x\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@",
                                 b"EHLO x\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
                                 b"Subject: half\r\n\r\nhalf a body\r\n.",
                                 b"EHLO x\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
                                 b"BDAT 100 LAST\r\nSubject: half"])
def test_half_a_command_or_message_then_gone_delivers_nothing(server, cut):
    delivered = files_in(server.root, "new")
    sock, _ = connect(server.smtp)
    sock.sendall(cut)
    port = sock.getsockname()[1]
    time.sleep(0.1)
    hang_up(sock)
    wait_for_session(server, port)
    assert files_in(server.root, "new") == delivered and files_in(server.root, "tmp") == []
    assert_still_serving(server)


# -- a line without end --------------------------------------------------------------------

TEN_MB = 10 * 2**20


def test_a_10_mb_command_line_is_refused_without_being_kept(server):
    sock, replies = connect(server.smtp)
    assert reply(replies)[0] == 220
    sock.sendall(b"NOOP " + b"A" * TEN_MB + b"\r\nNOOP\r\n")
    code, text = reply(replies)
    assert (code, text[4:10]) == (500, "5.5.2 "), text
    assert reply(replies)[0] == 250       # the rest of the long line was skipped, the next one is read
    sock.close()
    for port in (server.smtp, server.pop3):    # and the same line with no end at all
        session_replies(port, b"X" * TEN_MB)
    pop3 = session_replies(server.pop3, b"NOOP " + b"A" * TEN_MB + b"\r\nQUIT\r\n")
    assert pop3.startswith(b"+OK") and pop3.count(b"-ERR") == 1 and pop3.endswith(b"\r\n")
    assert_still_serving(server)


def test_a_10_mb_line_in_a_message_is_stored_or_refused_in_bounded_memory(server):
    delivered = set(files_in(server.root, "new"))
    sock = smtp_transaction(server.smtp)
    replies = sock.makefile("rb")
    sock.sendall(b"DATA\r\n")
    assert reply(replies)[0] == 354
    sock.sendall(b"Subject: long line\r\n\r\n" + b"B" * TEN_MB + b"\r\n.\r\n")
    code, text = reply(replies)
    sock.close()
    new = set(files_in(server.root, "new")) - delivered
    if code == 250:
        assert [stored_message(path.read_bytes()) for path in new] == [b"Subject: long line\n\n" + b"B" * TEN_MB + b"\n"]
    else:
        assert code >= 500 and not new, text
    assert_still_serving(server)


# -- too many, out of order, lying ---------------------------------------------------------

def test_1000_pipelined_recipients_get_452_past_the_cap_and_the_message_is_still_taken(server):
    sock, replies = connect(server.smtp)
    assert reply(replies)[0] == 220
    sock.sendall(b"EHLO client.example.test\r\n")
    code, capabilities = reply(replies)
    assert "PIPELINING" in capabilities
    sock.sendall(b"MAIL FROM:<" + SENDER.encode() + b">\r\n"
                 + b"".join(b"RCPT TO:<user%d@example.test>\r\n" % n for n in range(1000)) + b"DATA\r\n")
    assert reply(replies)[0] == 250
    answers = [reply(replies) for _ in range(1000)]
    assert [code for code, _ in answers[:100]] == [250] * 100
    assert all(code == 452 and text[4:10] == "4.5.3 " for code, text in answers[100:]), answers[100]
    assert reply(replies)[0] == 354
    sock.sendall(b"Subject: many\r\n\r\nto many\r\n.\r\nQUIT\r\n")
    assert reply(replies)[0] == 250
    assert reply(replies)[0] == 221
    sock.close()
    assert_still_serving(server)


def test_commands_out_of_order_are_refused_with_503_and_the_session_goes_on(server):
    answers = command_replies(server.smtp, [
        b"RCPT TO:<" + RECIPIENT.encode() + b">", b"DATA", b"BDAT 4 LAST\r\nab", b"MAIL FROM:<" + SENDER.encode() + b">",
        b"MAIL FROM:<" + SENDER.encode() + b">", b"DATA", b"RSET", b"RCPT TO:<" + RECIPIENT.encode() + b">"])
    # DATA with no recipient: 503 or 554 "no valid recipients" (RFC 5321 §3.3)
    assert [code for code, _ in answers] in ([503, 503, 503, 250, 503, 503, 250, 503],
                                             [503, 503, 503, 250, 503, 554, 250, 503]), answers
    assert all(text[4:10] == "5.5.1 " for code, text in answers if code != 250), answers
    # BDAT and DATA in one transaction
    sock = smtp_transaction(server.smtp)
    replies = sock.makefile("rb")
    sock.sendall(b"BDAT 5\r\nhello")
    assert reply(replies)[0] == 250
    sock.sendall(b"DATA\r\n")
    assert reply(replies)[0] == 503
    sock.close()
    assert_still_serving(server)


def test_bdat_sizes_that_lie(server):
    delivered = set(files_in(server.root, "new"))
    # announced shorter than what follows: the rest is read as commands
    sock = smtp_transaction(server.smtp)
    replies = sock.makefile("rb")
    sock.sendall(b"BDAT 6 LAST\r\nSubject: lie\r\n\r\nbody\r\nNOOP\r\n")
    answers = [reply(replies) for _ in range(5)]
    assert [code for code, _ in answers] == [250, 500, 500, 500, 250], answers
    new = set(files_in(server.root, "new")) - delivered
    assert [stored_message(path.read_bytes()) for path in new] == [b"Subjec"]
    # announced longer than what follows, and gone: nothing
    sock.sendall(b"MAIL FROM:<" + SENDER.encode() + b">\r\nRCPT TO:<" + RECIPIENT.encode() + b">\r\n")
    assert [reply(replies)[0] for _ in range(2)] == [250, 250]
    sock.sendall(b"BDAT 1000 LAST\r\nSubject: short\r\n\r\nQUIT\r\n")
    port = sock.getsockname()[1]
    hang_up(sock)
    wait_for_session(server, port)
    assert set(files_in(server.root, "new")) - delivered == new and files_in(server.root, "tmp") == []
    # sizes that are no sizes
    answers = command_replies(server.smtp, [b"MAIL FROM:<" + SENDER.encode() + b">",
                                                 b"RCPT TO:<" + RECIPIENT.encode() + b">",
                                                 b"BDAT", b"BDAT abc", b"BDAT -1", b"BDAT 1 FIRST", b"BDAT 0x10"])
    assert [code for code, _ in answers] == [250, 250, 501, 501, 501, 501, 501], answers
    # a size far past the limit is refused, not allocated
    sock = smtp_transaction(server.smtp)
    sock.sendall(b"BDAT 99999999999999999999999999 LAST\r\n")
    code, text = reply(sock.makefile("rb"))
    assert code in (501, 552), text
    sock.close()
    assert set(files_in(server.root, "new")) - delivered == new
    assert_still_serving(server)


# -- TLS -----------------------------------------------------------------------------------

def test_plaintext_pipelined_after_starttls_is_never_executed(tls_server, client_context):
    """CVE-2011-0411: a MITM appends a command to STARTTLS in the clear; it must not be
    run as if it had come inside TLS."""
    sock, replies = connect(tls_server.smtp)
    assert reply(replies)[0] == 220
    sock.sendall(b"EHLO client.example.test\r\n")
    assert "STARTTLS" in reply(replies)[1]
    sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@example.test>\r\n")
    code, text = reply(replies)
    if code == 421:                   # refused outright, and the session closed
        assert text[4:8] == "4.7." and replies.read() == b"", text
        return
    assert code == 220, text
    try:
        tls = client_context.wrap_socket(sock, server_hostname="localhost")
    except (ssl.SSLError, OSError):
        return                        # the server dropped the session with the injected bytes: safe
    with tls:
        tls_replies = tls.makefile("rb")
        try:
            tls.sendall(b"EHLO client.example.test\r\nRCPT TO:<" + RECIPIENT.encode() + b">\r\n")
            assert reply(tls_replies)[0] == 250
            code, text = reply(tls_replies)
        except (ssl.SSLError, ConnectionError):
            return
    assert code == 503, f"the injected MAIL was executed inside TLS: RCPT got {text}"


def test_auth_before_tls_is_refused_and_after_it_works(tls_server, client_context):
    password = USERS["alice"]
    answers = command_replies(tls_server.smtp, [
        b"AUTH PLAIN " + base64.b64encode(b"\0alice\0" + password.encode()), b"AUTH LOGIN"])
    assert all(code in (502, 503, 530, 538) and text[4:8] in ("5.7.", "5.5.") for code, text in answers), answers
    with smtplib.SMTP(HOST, tls_server.smtp, timeout=30) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.starttls(context=client_context)
        client.ehlo()
        assert set(client.esmtp_features["auth"].upper().split()) >= {"PLAIN", "LOGIN"}
        assert client.login("alice", password)[0] == 235
    pop3 = session_replies(tls_server.pop3, b"USER alice\r\nPASS " + password.encode() + b"\r\n"
                           b"AUTH PLAIN " + base64.b64encode(b"\0alice\0" + password.encode()) + b"\r\nQUIT\r\n")
    lines = pop3.split(b"\r\n")
    assert lines[0].startswith(b"+OK") and all(line.startswith(b"-ERR") for line in lines[1:4]), lines
    client = poplib.POP3(HOST, tls_server.pop3, timeout=30)
    client.stls(client_context)
    client.user("alice")
    assert client.pass_(password).startswith(b"+OK")
    client.quit()
    assert_still_serving(tls_server)


# -- silent clients ------------------------------------------------------------------------

@contextlib.contextmanager
def serving_in_process(config):
    """mimekit.serve.server.serve in a thread of this process, for settings the command line
    does not take: {protocol: port}, and the session log lines as they come."""
    from mimekit.serve.server import serve
    bound, lines, control = queue.Queue(), [], {}

    async def main():
        control["loop"], control["stop"] = asyncio.get_running_loop(), asyncio.Event()
        try:
            await serve(config, (HOST, 0), (HOST, 0), ready=bound.put, log=lines.append,
                        stop=control["stop"])
        except BaseException as exc:
            bound.put(exc)
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    addresses = bound.get(timeout=30)
    if isinstance(addresses, BaseException):
        raise addresses
    try:
        yield {protocol: address[1] for protocol, address in addresses}, lines
    finally:
        control["loop"].call_soon_threadsafe(control["stop"].set)
        thread.join(timeout=30)


def seconds_until_closed(sock: socket.socket, send_every: float | None = None) -> float:
    """How long the server keeps the connection (reading whatever it says), optionally with
    a NOOP every `send_every` seconds."""
    started = time.monotonic()
    sock.settimeout(send_every or 30)
    while True:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            sock.sendall(b"NOOP\r\n")
        except ConnectionResetError:
            return time.monotonic() - started
        assert time.monotonic() - started < 30, "the server never dropped the client"


@pytest.mark.parametrize("protocol", ["smtp", "pop3"])
def test_a_silent_client_is_dropped_after_the_idle_timeout(tmp_path, protocol):
    from mimekit.serve.config import ServeConfig
    with serving_in_process(ServeConfig(str(tmp_path / "mail"), smtp_idle_timeout=1.0,
                                        pop3_idle_timeout=1.0)) as (ports, lines):
        sock, _ = connect(ports[protocol])
        assert 0.9 < seconds_until_closed(sock) < 5
        sock.close()


@pytest.mark.parametrize("protocol", ["smtp", "pop3"])
def test_a_client_that_keeps_talking_is_dropped_at_the_session_timeout(tmp_path, protocol):
    from mimekit.serve.config import ServeConfig
    with serving_in_process(ServeConfig(str(tmp_path / "mail"), smtp_idle_timeout=1.0, pop3_idle_timeout=1.0,
                                        session_timeout=2.5)) \
            as (ports, lines):
        sock, _ = connect(ports[protocol])
        assert 2.4 < seconds_until_closed(sock, send_every=0.3) < 6
        sock.close()


# -- random command sequences --------------------------------------------------------------

SMTP_WORDS = [b"EHLO client.example.test", b"HELO client", b"EHLO", b"MAIL FROM:<a@example.test>", b"MAIL FROM:<>",
              b"MAIL FROM:<a@example.test> SIZE=100 BODY=8BITMIME SMTPUTF8", b"MAIL FROM:<a@example.test> SIZE=-1",
              b"MAIL FROM:<a@example.test> SIZE=99999999999999999999", b"MAIL FROM:<a@example.test> BODY=7BIT X=Y",
              b"MAIL FROM:", b"RCPT TO:<b@example.test>", b"RCPT TO:<>", b"RCPT TO:<postmaster>",
              b"RCPT TO:<\xc3\xa9@example.test>", b"DATA", b".", b"..", b"RSET", b"NOOP", b"NOOP x", b"QUIT",
              b"VRFY b", b"EXPN list", b"HELP", b"STARTTLS", b"AUTH PLAIN", b"AUTH PLAIN AGEAYg==", b"AUTH LOGIN",
              b"*", b"AUTH CRAM-MD5", b"BDAT 0 LAST", b"BDAT 5", b"BDAT 20 LAST", b"BDAT 99999999999", b"TURN",
              b"Subject: x", b""]
POP3_WORDS = [b"CAPA", b"USER alice", b"PASS x", b"AUTH PLAIN", b"AUTH PLAIN AGEAYg==", b"*", b"STAT", b"LIST",
              b"LIST 1", b"LIST 99999999999999999999", b"UIDL", b"UIDL -1", b"RETR 1", b"TOP 1 0", b"TOP 1 -5",
              b"DELE 1", b"RSET", b"NOOP", b"STLS", b"APOP alice 0123456789abcdef0123456789abcdef", b"QUIT", b""]


def sequences(words: list[bytes]):
    line = st.one_of(st.sampled_from(words), st.binary(max_size=100),
                     st.builds(lambda size: b"L" * size, st.integers(4000, 70000)))
    separator = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\0"])
    return st.lists(st.tuples(line, separator), max_size=30).map(lambda pairs: b"".join(a + b for a, b in pairs))


def test_random_smtp_command_sequences_never_bring_the_server_down(server):
    @settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
    @given(data=sequences(SMTP_WORDS))
    def session(data):
        codes = assert_well_formed(session_replies(server.smtp, data))
        assert codes[:1] == [220]
        assert server.process.poll() is None, server.stderr()
    session()
    assert_still_serving(server)


def test_random_pop3_command_sequences_never_bring_the_server_down(server):
    @settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
    @given(data=sequences(POP3_WORDS))
    def session(data):
        replies = session_replies(server.pop3, data)
        assert replies.startswith(b"+OK") and replies.endswith(b"\r\n"), replies[-200:]
        assert server.process.poll() is None, server.stderr()
    session()
    assert_still_serving(server)
