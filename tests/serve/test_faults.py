"""`mimekit serve` under faults: clients and the server killed mid-message, a full disk,
SIGTERM during a transfer, POP3 sessions cut before or during UPDATE.

What must hold whatever happens (issue 13, "Faults"): nothing under a final name in new/
is partial (every delivered file is a message a client sent, below Return-Path and Received),
every message acknowledged with 250 is on disk, nothing half-delivered is left in tmp/
once the session is over or the server started again. The clients are real (smtplib,
poplib) except where a fault needs the connection cut at a chosen byte: then a raw socket
speaks the few commands itself.
"""

import itertools
import poplib
import random
import re
import smtplib
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import mounted_tmpfs
from served import STOP_DEADLINE, USERS, Served, return_path, start_serve, strip_trace
from servers import HOST

from mimekit.stores.maildir import Maildir

HERE = Path(__file__).resolve().parent
SENDER, RECIPIENT = "sender@example.test", "someone@example.test"
BODY_LINES = (b".", b"..", b".leading dot", b"From the start", b"", b"\t tab and space ",
              b"QUOTED=3D-PRINTABLE=", b"8bit \xc3\xa9t\xc3\xa9")


# -- the server and its Maildir (tests/serve/served.py starts it) --------------------------

def wait_for_session(served: Served, client_port: int, timeout: float = 15) -> str:
    """The log line of the session of the client whose local port was `client_port`: once
    it is there, the session is over and its delivery committed or aborted."""
    deadline = time.monotonic() + timeout
    while True:
        for line in served.stderr().splitlines():
            if f" {HOST}:{client_port}: " in line:
                return line
        assert time.monotonic() < deadline and served.process.poll() is None, \
            f"no log line for the session from port {client_port}:\n{served.stderr()}"
        time.sleep(0.02)


def kill(served: Served) -> None:
    served.process.kill()
    served.process.wait(timeout=STOP_DEADLINE)


def memory_peak(served: Served) -> int:
    """The server's peak resident set so far, in bytes (VmHWM)."""
    status = Path(f"/proc/{served.process.pid}/status").read_text()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024


def files_in(root: Path, sub: str) -> list[Path]:
    directory = root / sub
    return sorted(directory.iterdir()) if directory.is_dir() else []


def stored_message(data: bytes, sender: str = SENDER) -> bytes:
    """A stored file without the trace the server put first: the Return-Path naming the
    envelope sender, then exactly one Received field."""
    trace, message = strip_trace(data)
    assert len(trace) == 2 and trace[0] == return_path(sender) and trace[1].startswith(b"Received: "), data[:300]
    return message


def reply(replies) -> tuple[int, str]:
    """One SMTP reply (all its lines) from a socket's file: its code and text."""
    lines = []
    while True:
        line = replies.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"connection closed in a reply: {b''.join(lines) + line!r}")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), b"".join(lines).decode("utf-8", "replace")


def hang_up(sock: socket.socket) -> None:
    """End the connection now: close() alone waits until every file made from the socket
    (makefile) is gone too."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass                          # the server ended it first
    sock.close()


def smtp_transaction(port: int) -> socket.socket:
    """A raw SMTP session on `port` with its envelope given: ready for DATA or BDAT."""
    sock = socket.create_connection((HOST, port), timeout=30)
    replies = sock.makefile("rb")
    assert reply(replies)[0] == 220
    for command in [b"EHLO client.example.test", b"MAIL FROM:<" + SENDER.encode() + b">",
                    b"RCPT TO:<" + RECIPIENT.encode() + b">"]:
        sock.sendall(command + b"\r\n")
        code, text = reply(replies)
        assert code == 250, (command, text)
    return sock


def fault_message(token: str) -> bytes:
    """The CRLF message named `token` in its Subject: "NAME/SIZE" is about SIZE bytes, a
    bare NAME a size drawn from the name. Its body has lines SMTP must dot-stuff, blank
    lines and 8-bit text; the same token always gives the same bytes."""
    rng = random.Random(token)
    size = token.partition("/")[2]
    size = int(size) if size else rng.randint(200, 1_000_000)
    lines = [b"From: " + SENDER.encode(), b"To: " + RECIPIENT.encode(), b"Subject: " + token.encode(),
             b"Message-ID: <" + token.encode() + b"@example.test>", b""]
    total = sum(map(len, lines))
    while total < size:
        line = rng.choice(BODY_LINES) if rng.random() < 0.3 else rng.randbytes(rng.randint(1, 57)).hex().encode()
        lines.append(line)
        total += len(line) + 2
    return b"\r\n".join(lines) + b"\r\n"


_checked: dict[Path, str] = {}    # stored files already compared with what was sent: they never change


def stored_tokens(root: Path) -> dict[str, Path]:
    """Subject token -> stored file, for every message under a final name in new/ or cur/;
    a file that is no whole sent message fails the test here."""
    found = {}
    for path in files_in(root, "new") + files_in(root, "cur"):
        if path not in _checked:
            message = stored_message(path.read_bytes())
            subject = next(line for line in message.split(b"\n") if line.startswith(b"Subject: "))
            token = subject.removeprefix(b"Subject: ").decode()
            assert message == fault_message(token).replace(b"\r\n", b"\n"), f"{path.name} is not what was sent"
            _checked[path] = token
        assert _checked[path] not in found, f"{_checked[path]} delivered twice"
        found[_checked[path]] = path
    return found


def wait_until(condition, timeout: float = 15, what: str = "condition"):
    """condition()'s first true value, polled; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {timeout} s")
        time.sleep(0.02)
    return result


# -- a client that goes away mid-message ---------------------------------------------------

KILLED_CLIENT = """
import sys, time
sys.path[:0] = [{here!r}, {tests!r}]
from test_faults import start_transfer
sock = start_transfer({port}, {command!r})
print(sock.getsockname()[1], flush=True)
while True:                   # until killed
    sock.sendall(b"x" * 76 + b"\\r\\n")
    time.sleep(0.001)
"""


def start_transfer(port: int, command: str) -> socket.socket:
    """A session whose transfer has begun: DATA acknowledged with 354, or BDAT announced
    for far more than will be sent, and the first 1 MB of the message sent."""
    sock = smtp_transaction(port)
    if command == "DATA":
        sock.sendall(b"DATA\r\n")
        assert reply(sock.makefile("rb"))[0] == 354
    else:
        sock.sendall(b"BDAT 100000000 LAST\r\n")
    sock.sendall(b"Subject: cut short\r\n\r\n" + (b"y" * 1022 + b"\r\n") * 1024)
    return sock


@pytest.mark.parametrize("command", ["DATA", "BDAT"])
@pytest.mark.parametrize("how", ["close", "reset", "sigkill"])
def test_a_client_gone_mid_transfer_delivers_nothing_and_its_tmp_file_goes(serve, command, how):
    server = serve()
    if how == "sigkill":
        client = subprocess.Popen([sys.executable, "-c", KILLED_CLIENT.format(
            here=str(HERE), tests=str(HERE.parent), port=server.smtp, command=command)], stdout=subprocess.PIPE)
        client_port = int(client.stdout.readline())
    else:
        sock = start_transfer(server.smtp, command)
        client_port = sock.getsockname()[1]
    # the transfer is under way once the server has the message's file in tmp/
    wait_until(lambda: files_in(server.root, "tmp"), what="the message's file in tmp/")
    if how == "sigkill":
        client.kill()
        client.wait()
        client.stdout.close()
    else:
        if how == "reset":            # SO_LINGER 0: close sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    wait_for_session(server, client_port)
    assert files_in(server.root, "new") == [] and files_in(server.root, "tmp") == []
    with smtplib.SMTP(HOST, server.smtp, timeout=30) as client:      # and the server goes on receiving
        client.sendmail(SENDER, [RECIPIENT], fault_message("after"))
    assert list(stored_tokens(server.root)) == ["after"]


# -- the server killed while receiving -----------------------------------------------------

def send_until_refused(port: int, name: str, acknowledged: list[str]) -> None:
    """Send messages named NAME-0, NAME-1, ... over one session until the server is gone,
    noting each name once its 250 came back: what the server acknowledged."""
    try:
        with smtplib.SMTP(HOST, port, timeout=30) as client:
            for number in itertools.count():
                token = f"{name}-{number}"
                client.sendmail(SENDER, [RECIPIENT], fault_message(token))
                acknowledged.append(token)
    except (OSError, smtplib.SMTPException):
        pass


CONCURRENT_SENDERS = 4
SERVER_KILLS = 20


def test_the_server_killed_at_random_points_keeps_every_acknowledged_message_and_no_partial_one(tmp_path, env):
    rng = random.Random(13)
    root = tmp_path / "mail"
    acknowledged: set[str] = set()
    killed: list[str] = []                    # "P<pid>Q": in the unique names of a killed server's files
    kills_mid_message = 0
    for trial in range(SERVER_KILLS):
        server = start_serve(root, tmp_path / f"serve-{trial}.log", (), env)
        before = len(files_in(root, "new"))
        replied: list[str] = []
        senders = [threading.Thread(target=send_until_refused, args=(server.smtp, f"t{trial}c{number}", replied))
                   for number in range(CONCURRENT_SENDERS)]
        for sender in senders:
            sender.start()
        try:
            wait_until(lambda: len(files_in(root, "new")) > before, timeout=60, what="a first delivery")
            # the Maildir opened for that delivery removed what the killed servers left in tmp/
            assert not [path.name for path in files_in(root, "tmp") if any(mark in path.name for mark in killed)]
            time.sleep(rng.uniform(0, 0.6))
        finally:
            kill(server)
        killed.append(f"P{server.process.pid}Q")
        kills_mid_message += bool(files_in(root, "tmp"))
        for sender in senders:
            sender.join(timeout=60)
        acknowledged.update(replied)
        delivered = stored_tokens(root)       # every file under a final name is a whole sent message
        missing = acknowledged - set(delivered)
        assert not missing, f"trial {trial}: acknowledged with 250 but not on disk: {sorted(missing)}"
    assert len(acknowledged) >= SERVER_KILLS
    assert kills_mid_message, "no kill landed mid-message: the starts had nothing to clean"
    server = start_serve(root, tmp_path / "serve-last.log", (), env)
    with smtplib.SMTP(HOST, server.smtp, timeout=30) as client:
        client.sendmail(SENDER, [RECIPIENT], fault_message("last"))
    server.stop()
    assert files_in(root, "tmp") == []
    assert "last" in stored_tokens(root)


# -- a full disk ---------------------------------------------------------------------------

def fill(directory: Path) -> Path:
    """A file taking every free byte of the file system of `directory`."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for block in (65536, 512):
            try:
                while True:
                    f.write(b"\0" * block)
            except OSError:
                pass
    return filler


def assert_refused_for_space(refused) -> None:
    assert refused.value.smtp_code == 452 and refused.value.smtp_error.startswith(b"4.3.1 "), refused.value


def test_a_full_disk_gives_452_leaves_nothing_half_delivered_and_the_server_goes_on(serve, tmp_path):
    with mounted_tmpfs(tmp_path / "small-disk", "2m") as mount_point:
        server = serve(root=mount_point)
        with smtplib.SMTP(HOST, server.smtp, timeout=30) as client:
            with pytest.raises(smtplib.SMTPDataError) as refused:       # a message larger than the disk
                client.sendmail(SENDER, [RECIPIENT], fault_message("too-big/3000000"))
            assert_refused_for_space(refused)
            assert files_in(mount_point, "new") == [] and files_in(mount_point, "tmp") == []
            client.sendmail(SENDER, [RECIPIENT], fault_message("fits/10000"))    # the space came back
            filler = fill(mount_point)
            with pytest.raises(smtplib.SMTPDataError) as refused:       # a small one on a full disk
                client.sendmail(SENDER, [RECIPIENT], fault_message("no-room/10000"))
            assert_refused_for_space(refused)
            assert files_in(mount_point, "tmp") == [] and list(stored_tokens(mount_point)) == ["fits/10000"]
            filler.unlink()
            client.sendmail(SENDER, [RECIPIENT], fault_message("after-freeing/10000"))
        assert sorted(stored_tokens(mount_point)) == ["after-freeing/10000", "fits/10000"]
        server.stop()                 # before the tmpfs goes


# -- SIGTERM during a transfer -------------------------------------------------------------

def test_sigterm_mid_data_exits_0_and_delivers_nothing_of_the_unfinished_message(serve):
    server = serve()
    sock = start_transfer(server.smtp, "DATA")
    wait_until(lambda: files_in(server.root, "tmp"), what="the message's file in tmp/")
    server.stop()                     # SIGTERM with the client still connected: exits 0
    sock.close()
    assert files_in(server.root, "new") == [] and files_in(server.root, "tmp") == []


class StreamingClient(threading.Thread):
    """Sends one message with DATA as fast as the socket takes it and keeps the reply."""

    def __init__(self, port: int, message: bytes):
        super().__init__(daemon=True)
        self.sock = smtp_transaction(port)
        self.message = message
        self.reply: tuple[int, str] | None = None

    def run(self):
        try:
            self.sock.sendall(b"DATA\r\n")
            replies = self.sock.makefile("rb")
            if reply(replies)[0] == 354:
                self.sock.sendall(self.message.replace(b"\r\n.", b"\r\n..") + b".\r\n")
                self.reply = reply(replies)
        except OSError:
            pass
        finally:
            self.sock.close()


def test_sigterm_at_random_points_of_a_transfer_leaves_the_message_whole_and_acknowledged_or_absent(serve, tmp_path):
    rng = random.Random(2)
    outcomes = set()
    for trial in range(8):
        server = serve(root=tmp_path / f"mail-{trial}")
        client = StreamingClient(server.smtp, fault_message(f"sigterm-{trial}/8000000"))
        client.start()
        time.sleep(rng.uniform(0, 0.3))
        server.stop()
        client.join(timeout=30)
        delivered = stored_tokens(server.root)
        if client.reply and client.reply[0] == 250:
            assert list(delivered) == [f"sigterm-{trial}/8000000"]
        else:
            assert delivered == {}, f"trial {trial}: delivered without a 250 reply ({client.reply})"
        assert files_in(server.root, "tmp") == []
        outcomes.add(bool(delivered))
    assert False in outcomes      # at least one SIGTERM did land mid-transfer


# -- POP3 sessions cut short ---------------------------------------------------------------

@pytest.fixture
def maildrop(tmp_path):
    """A Maildir holding 300 messages: {unique name: stored bytes}."""
    root = tmp_path / "mail"
    box = Maildir(str(root))
    originals = {}
    for number in range(300):
        path = Path(box.add([fault_message(f"pop-{number}/2000").replace(b"\r\n", b"\n")]))
        originals[path.name] = path.read_bytes()
    return root, originals


def pop3_login(port: int) -> poplib.POP3:
    """A POP3 session as alice, in the clear: these tests are about how sessions end."""
    client = poplib.POP3(HOST, port, timeout=30)
    client.user("alice")
    client.pass_(USERS["alice"])
    return client


def on_disk(root: Path) -> dict[str, bytes]:
    return {path.name.partition(":")[0]: path.read_bytes() for path in files_in(root, "new") + files_in(root, "cur")}


def test_a_pop3_client_gone_before_quit_deletes_nothing(serve, maildrop, users_file):
    root, originals = maildrop
    server = serve("--users", str(users_file), "--insecure-plaintext-auth", root=root)
    client = pop3_login(server.pop3)
    for number in range(1, 11):
        client.dele(number)
    port = client.sock.getsockname()[1]
    hang_up(client.sock)              # no QUIT: the session never reaches UPDATE
    wait_for_session(server, port)
    assert on_disk(root) == originals
    client = pop3_login(server.pop3)  # and the maildrop's lock went with the session
    assert client.stat()[0] == len(originals)
    client.quit()


def test_the_server_killed_during_update_leaves_each_message_whole_or_removed(maildrop, users_file, tmp_path, env):
    root, originals = maildrop
    rng = random.Random(5)
    left = dict(originals)
    for trial in range(5):
        server = start_serve(root, tmp_path / f"serve-{trial}.log",
                             ("--users", str(users_file), "--insecure-plaintext-auth"), env)
        client = pop3_login(server.pop3)
        count = client.stat()[0]
        assert count == len(left), f"trial {trial}: the server lists {count} messages, {len(left)} are on disk"
        for number in range(1, count + 1):
            client.dele(number)
        client.sock.sendall(b"QUIT\r\n")
        time.sleep(rng.uniform(0, 0.01))
        kill(server)
        hang_up(client.sock)
        now = on_disk(root)
        assert all(originals[key] == data for key, data in now.items()), f"trial {trial}: a changed message"
        assert set(now) <= set(left)
        left = now
    assert len(left) < len(originals)
