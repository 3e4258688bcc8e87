"""The POP3 session (serve/pop3_session.py) over a real loopback socket: handle_pop3 runs
under asyncio.start_server in a thread, as the server runs it, and Python's poplib (or a
raw socket, to see the bytes on the wire and to drop a connection) and mimekit's own
`fetch pop3://` talk to it. What is retrieved is compared byte for byte with the Maildir."""

import asyncio
import os
import poplib
import socket
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from served import place_message, run_mimekit, serving_with

from mimekit.serve import pop3_session
from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import Mailboxes
from mimekit.serve.pop3_session import handle_pop3, remove_messages, wire_size
from mimekit.serve.session import CONCURRENT_LOGIN_CHECKS
from mimekit.serve.users import PasswordHash, Users

HOST = "127.0.0.1"
PASSWORD = "alice-Pop3-Secret"
USERS = Users({"alice": PasswordHash.make(PASSWORD, log2_n=10), "bob": PasswordHash.make(PASSWORD, log2_n=10)})
# Lines starting with a dot (stuffed on the wire), a lone dot, a trailing dot, an empty body line.
DOTTY = b"Subject: dots\nFrom: a@serve.test\n\n.leading\n.\n..two\nend.\n\nlast\n"
PLAIN = b"Subject: plain\n\nline 1\nline 2\nline 3\n"

serving = partial(serving_with, handle_pop3)


@pytest.fixture
def root(tmp_path) -> Path:
    """A catch-all root (every user's maildrop) holding DOTTY then PLAIN."""
    root = tmp_path / "root"
    place_message(root, DOTTY)
    time.sleep(1.01)          # the key's seconds order the maildrop
    place_message(root, PLAIN)
    return root


def keys(root: Path) -> list[str]:
    return sorted(name.split(":")[0] for sub in ("new", "cur") for name in os.listdir(root / sub))


def login(port: int, user: str = "alice") -> poplib.POP3:
    client = poplib.POP3(HOST, port, timeout=10)
    client.user(user)
    client.pass_(PASSWORD)
    return client


class Raw:
    """A socket speaking POP3 by hand: the exact bytes, and a connection dropped at will."""

    def __init__(self, port: int):
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"+OK")

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.file.readline()

    def close(self) -> None:
        self.file.close()      # the socket stays open while its file does
        self.sock.close()

    def multiline(self) -> bytes:
        data = b""
        while (line := self.file.readline()) != b".\r\n":
            assert line, f"connection closed after {data!r}"
            data += line
        return data


# --------------------------------------------------------------------- logins

def test_login_in_the_clear_is_refused_without_the_opt_in(root):
    with serving(root, users=USERS) as running:
        client = poplib.POP3(HOST, running.port, timeout=10)
        assert "USER" not in client.capa()
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] plaintext authentication is disallowed"):
            client.user("alice")
        client.quit()


def test_stls_then_login(root, tls_context, client_context):
    with serving(root, users=USERS, tls=tls_context) as running:
        client = poplib.POP3(HOST, running.port, timeout=10)
        assert "STLS" in client.capa() and "USER" not in client.capa()
        client.stls(client_context)
        assert client.capa()["SASL"] == ["PLAIN"]
        client.user("alice")
        assert client.pass_(PASSWORD).startswith(b"+OK maildrop has 2 messages")
        client.quit()
        assert running.log_after(1).startswith("user=alice tls=yes; 0 retrieved, 0 deleted, 0 bytes")


def test_failed_logins_are_slow_and_the_third_ends_the_session(root):
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = poplib.POP3(HOST, running.port, timeout=10)
        for _ in range(3):
            started = time.monotonic()
            client.user("alice")
            with pytest.raises(poplib.error_proto, match=r"\[AUTH\] authentication failed"):
                client.pass_("wrong")
            assert time.monotonic() - started >= 0.9
        assert client.file.readline() == b""     # closed
        assert running.log_after(1).endswith("3 failed logins; too many failed logins")


def test_unknown_users_fail_like_wrong_passwords(root):
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = poplib.POP3(HOST, running.port, timeout=10)
        client.user("nobody")
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\] authentication failed"):
            client.pass_(PASSWORD)


# ---------------------------------------------------------------- listings

def test_stat_list_uidl_are_the_maildir_and_stable_across_sessions(root):
    sizes = [len(DOTTY.replace(b"\n", b"\r\n")), len(PLAIN.replace(b"\n", b"\r\n"))]
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        listings = []
        for _ in range(2):
            client = login(running.port)
            assert client.stat() == (2, sum(sizes))
            listings.append((client.list()[1], client.uidl()[1]))
            client.quit()
    assert listings[0] == listings[1]
    assert listings[0][0] == [f"{n} {size}".encode() for n, size in enumerate(sizes, 1)]
    assert listings[0][1] == [f"{n} {key}".encode() for n, key in enumerate(keys(root), 1)]


def test_sizes_count_crlf_files_and_bare_crs_as_sent(tmp_path):
    path = tmp_path / "m"
    path.write_bytes(b"a\r\nb\nc\rd")
    assert wire_size(str(path)) == len(b"a\r\nb\r\nc\r\nd")


# ---------------------------------------------------------------- RETR, TOP

def test_retr_is_crlf_and_dot_stuffed_on_the_wire(root):
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        raw = Raw(running.port)
        raw.command(b"USER alice")
        assert raw.command(b"PASS " + PASSWORD.encode()).startswith(b"+OK")
        assert raw.command(b"RETR 1") == b"+OK %d octets\r\n" % (len(DOTTY) + DOTTY.count(b"\n"))
        assert raw.multiline() == (b"Subject: dots\r\nFrom: a@serve.test\r\n\r\n..leading\r\n..\r\n...two\r\n"
                                   b"end.\r\n\r\nlast\r\n")


def test_poplib_retrieves_byte_exact(root):
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = login(running.port)
        for number, stored in ((1, DOTTY), (2, PLAIN)):
            _, lines, octets = client.retr(number)
            assert b"\r\n".join(lines) + b"\r\n" == stored.replace(b"\n", b"\r\n")
        client.quit()
        assert running.log_after(1).startswith("user=alice tls=no; 2 retrieved, 0 deleted, ")


def test_top_sends_the_header_and_n_lines(root):
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = login(running.port)
        assert client.top(2, 2)[1] == [b"Subject: plain", b"", b"line 1", b"line 2"]
        assert client.top(2, 0)[1] == [b"Subject: plain", b""]
        assert client.top(1, 1)[1] == [b"Subject: dots", b"From: a@serve.test", b"", b".leading"]
        client.quit()


def test_a_large_message_streams_byte_exact(tmp_path):
    root = tmp_path / "root"
    stored = b"Subject: big\n\n" + b"".join(b".%07d line of a big message\n" % n for n in range(300_000))
    place_message(root, stored)
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = login(running.port)
        assert client.stat()[1] == len(stored) + stored.count(b"\n")
        assert b"\r\n".join(client.retr(1)[1]) + b"\r\n" == stored.replace(b"\n", b"\r\n")
        client.quit()


# ----------------------------------------------------------------- deletion

def test_dele_is_applied_at_quit(root):
    first, second = keys(root)
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = login(running.port)
        client.dele(1)
        with pytest.raises(poplib.error_proto, match="message 1 is deleted"):
            client.retr(1)
        assert keys(root) == [first, second]
        assert client.quit() == b"+OK mx.serve.test POP3 server signing off (1 messages deleted)"
        assert keys(root) == [second]
        assert running.log_after(1).startswith("user=alice tls=no; 0 retrieved, 1 deleted, ")
        client = login(running.port)
        assert client.uidl()[1] == [f"1 {second}".encode()]
        client.quit()


def test_a_dropped_connection_deletes_nothing(root):
    before = keys(root)
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        raw = Raw(running.port)
        raw.command(b"USER alice")
        raw.command(b"PASS " + PASSWORD.encode())
        assert raw.command(b"DELE 1") == b"+OK message 1 deleted\r\n"
        assert raw.command(b"DELE 2") == b"+OK message 2 deleted\r\n"
        raw.close()
        assert running.log_after(1).endswith("client went away without QUIT")
        assert keys(root) == before
        client = login(running.port)      # and the maildrop lock went with the connection
        assert client.stat()[0] == 2
        client.quit()


def test_rset_unmarks(root):
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = login(running.port)
        client.dele(1)
        client.dele(2)
        assert client.stat()[0] == 0
        assert client.rset() == b"+OK maildrop has 2 messages (%d octets)" % sum(len(m) + m.count(b"\n") for m in (DOTTY, PLAIN))
        client.quit()
    assert len(keys(root)) == 2


def test_a_second_session_gets_in_use(root):
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        first = login(running.port)
        second = poplib.POP3(HOST, running.port, timeout=10)
        second.user("alice")
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            second.pass_(PASSWORD)
        first.quit()
        second.user("alice")
        assert second.pass_(PASSWORD).startswith(b"+OK")
        second.quit()


def test_each_user_reads_their_own_maildrop(tmp_path):
    root = tmp_path / "root"
    key = place_message(root / "bob", PLAIN)
    with serving(root, users=USERS, domains=("serve.test",), insecure_plaintext_auth=True) as running:
        alice, bob = login(running.port, "alice"), login(running.port, "bob")   # two maildrops, no IN-USE
        assert alice.stat() == (0, 0)
        assert bob.uidl()[1] == [f"1 {key}".encode()]
        alice.quit()
        bob.quit()


# ---------------------------------------------------- mimekit's own client

def test_mimekit_fetch_over_stls(root, tls_context, certificates, env, tmp_path):
    with serving(root, users=USERS, tls=tls_context) as running:
        out = tmp_path / "fetched"
        run_mimekit("fetch", f"pop3://alice@127.0.0.1:{running.port}", "-o", f"maildir:{out}",
                    "--cafile", str(certificates.ca), "--delete", "-q",
                    env={**env, "MIMEKIT_PASSWORD": PASSWORD})
        fetched = sorted((out / "new").iterdir())
        assert sorted(p.read_bytes() for p in fetched) == sorted([DOTTY, PLAIN])
        assert keys(root) == []
        assert running.log_after(1).startswith("user=alice tls=yes; 2 retrieved, 2 deleted, ")


# ------------------------------------------------------------ server limits

class CountingUsers(Users):
    """USERS whose password checks take a while and count how many run at once."""

    def __init__(self):
        super().__init__(dict(USERS._hashes))
        self.running = self.most = 0
        self.guard = threading.Lock()

    def verify(self, name: str, password: str) -> bool:
        with self.guard:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.3)
        with self.guard:
            self.running -= 1
        return super().verify(name, password)


def test_password_checks_are_bounded_over_sessions(root):
    """scrypt runs in the shared thread pool: a flood of PASS must queue at the semaphore
    SMTP AUTH uses too, not fill the pool that delivery commits need."""
    users = CountingUsers()
    with serving(root, users=users, insecure_plaintext_auth=True) as running:
        def attempt():
            client = poplib.POP3(HOST, running.port, timeout=20)
            client.user("alice")
            with pytest.raises(poplib.error_proto):
                client.pass_("wrong")
        threads = [threading.Thread(target=attempt) for _ in range(2 * CONCURRENT_LOGIN_CHECKS + 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert users.most == CONCURRENT_LOGIN_CHECKS


def test_the_lock_is_released_when_the_server_stops_during_login(root, monkeypatch):
    """Cancelled (the server stopping) while the maildrop is being listed, the session
    gives the lock back: it is an open file description, which nothing else would close."""
    listing, stopped = threading.Event(), threading.Event()

    def slow_listing(maildrop):
        listing.set()
        stopped.wait(10)
        return []

    monkeypatch.setattr(pop3_session, "maildrop_listing", slow_listing)
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        raw = Raw(running.port)
        raw.command(b"USER alice")
        raw.sock.sendall(b"PASS " + PASSWORD.encode() + b"\r\n")
        assert listing.wait(10)
    stopped.set()
    raw.close()
    lock = Mailboxes(ServeConfig(root=str(root))).lock_maildrop("alice")
    assert lock is not None, "the stopped session still holds the maildrop"
    lock.release()


def test_a_stop_during_update_finishes_the_deletions_answers_then_unlocks(root, monkeypatch):
    """The server stopping while QUIT's deletions run in their thread: they finish, the
    client still gets +OK, and the maildrop stays locked until the last file is unlinked."""
    removing, go_on = threading.Event(), threading.Event()
    locked_when_done = []

    def slow_removal(maildrop, keys):
        removing.set()
        go_on.wait(10)
        remove_messages(maildrop, keys)
        other = Mailboxes(ServeConfig(root=str(root))).lock_maildrop("alice")
        locked_when_done.append(other is None)
        if other is not None:
            other.release()

    monkeypatch.setattr(pop3_session, "remove_messages", slow_removal)
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        raw = Raw(running.port)
        raw.command(b"USER alice")
        assert raw.command(b"PASS " + PASSWORD.encode()).startswith(b"+OK")
        assert raw.command(b"DELE 1").startswith(b"+OK")
        raw.sock.sendall(b"QUIT\r\n")
        assert removing.wait(10)
        threading.Timer(0.3, go_on.set).start()    # once the stop has cancelled the session
    assert raw.file.readline().startswith(b"+OK")
    raw.close()
    assert locked_when_done == [True]
    assert len(keys(root)) == 1


def test_the_maildrop_is_locked_off_the_event_loop(root, monkeypatch):
    """lock_maildrop may make the maildrop's directories, with fsyncs: run on the event loop,
    they would stall every other session."""
    on_the_loop = []
    real_lock = Mailboxes.lock_maildrop

    def recording_lock(self, user):
        try:
            asyncio.get_running_loop()
            on_the_loop.append(True)
        except RuntimeError:
            on_the_loop.append(False)
        return real_lock(self, user)

    monkeypatch.setattr(Mailboxes, "lock_maildrop", recording_lock)
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = login(running.port)
        assert client.stat()[0] == 2
        client.quit()
    assert on_the_loop == [False]


def test_pop3_waits_its_own_idle_timeout_of_at_least_ten_minutes(root):
    """RFC 1939 §3: the autologout timer is at least 10 minutes, twice SMTP's 5 (RFC 5321
    §4.5.3.2.7): a POP3 session outlives the SMTP idle timeout and ends at its own."""
    assert ServeConfig(str(root)).pop3_idle_timeout >= 600
    with serving(root, smtp_idle_timeout=0.2, pop3_idle_timeout=1.0) as running:
        raw = Raw(running.port)
        time.sleep(0.5)
        assert raw.command(b"NOOP").startswith(b"-ERR")    # still answering (NOOP needs a login)
        started = time.monotonic()
        assert raw.file.readline() == b""
        assert 0.9 < time.monotonic() - started < 5
        raw.close()


def test_a_second_login_counts_no_size_again_and_sizes_stay_exact(root, monkeypatch):
    """Sizes with CRLF are counted by reading each file: done once per file, not at every
    login of a large maildrop. A message rewritten meanwhile is counted afresh."""
    counted = []

    def counting_wire_size(path):
        counted.append(path)
        return wire_size(path)

    monkeypatch.setattr(pop3_session, "wire_size", counting_wire_size)
    with serving(root, users=USERS, insecure_plaintext_auth=True) as running:
        client = login(running.port)
        first = client.list()[1]
        client.quit()
        assert len(counted) == 2
        client = login(running.port)
        assert client.list()[1] == first
        client.quit()
        assert len(counted) == 2, "the second login read the messages again"
        changed = counted[0]
        with open(changed, "ab") as file:
            file.write(b"one more line\n")
        client = login(running.port)
        sizes = [int(line.split()[1]) for line in client.list()[1]]
        client.quit()
    assert counted[2:] == [changed]
    assert sizes == [wire_size(path) for path in counted[:2]]
    assert sizes[0] == int(first[0].split()[1]) + len(b"one more line\r\n")
