"""The socket under every protocol, against scripted peers: what each failure means, and
the idle limit (a silent peer and a dripping one both end after about `timeout`, a steady
transfer never does)."""

import socket
import threading
import time

import pytest
from scripted_servers import ScriptedServer, scripted

from mimekit.errors import AuthError, TempFailure, UnavailableError
from mimekit.transport.connection import Connection, ConnectionLost
from mimekit.transport.urls import parse_url


def peer(tmp_path, script) -> ScriptedServer:
    """A TLS peer on 127.0.0.1 that runs `script(conn)` for each connection."""
    return scripted(ScriptedServer, tmp_path, scheme="smtps", session=lambda self, conn: script(conn))


def connect(server: ScriptedServer, timeout: float = 5, cafile: str | None = "") -> Connection:
    return Connection(parse_url(server.url, {"smtps"}), str(server.ca_file) if cafile == "" else cafile, timeout)


def receive_all(conn: Connection) -> bytes:
    received = bytearray()
    while data := conn.receive():
        received += data
    return bytes(received)


def test_a_closed_port_is_unavailable():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(UnavailableError, match="cannot connect"):
        Connection(parse_url(f"smtp://127.0.0.1:{port}", {"smtp"}), None, 5)


def test_an_untrusted_certificate_is_refused_before_anything_is_sent(tmp_path):
    heard = []
    server = peer(tmp_path, lambda conn: heard.append(conn.recv(100)))
    with pytest.raises(AuthError, match="not trusted"):
        connect(server, cafile=None)
    assert heard == []


def test_a_clean_close_is_an_empty_read(tmp_path):
    server = peer(tmp_path, lambda conn: conn.sendall(b"220 hello\r\n"))
    conn = connect(server)
    assert conn.encrypted and receive_all(conn) == b"220 hello\r\n"


def test_what_the_peer_says_while_we_send_is_handed_over(tmp_path):
    """A peer that answers while it reads must not block a large write (pipelining)."""
    payload = b"x" * (2 * 1024 * 1024)

    def echo_lengths(conn):
        conn.sendall(b"ready\r\n")
        got = 0
        while got < len(payload):
            got += len(conn.recv(65536))
            conn.sendall(b"+")   # a reply per read: it must be drained while we write
        conn.sendall(b"done\r\n")

    server = peer(tmp_path, echo_lengths)
    conn = connect(server)
    time.sleep(0.1)
    meanwhile = bytearray()
    conn.send(payload, meanwhile.extend)
    meanwhile += receive_all(conn)
    assert meanwhile.startswith(b"ready\r\n+") and meanwhile.endswith(b"+done\r\n")


def test_a_silent_peer_ends_after_one_timeout_and_the_connection_is_given_up(tmp_path):
    quiet = threading.Event()
    server = peer(tmp_path, lambda conn: quiet.wait(10))
    conn = connect(server, timeout=1)
    started = time.monotonic()
    with pytest.raises(TempFailure, match="no reply within 1s"):
        conn.receive()
    assert 0.9 < time.monotonic() - started < 2
    started = time.monotonic()
    with pytest.raises(ConnectionLost, match="given up"):
        conn.send(b"QUIT\r\n", lambda data: None)   # a polite goodbye does not wait again
    assert time.monotonic() - started < 0.5
    quiet.set()


def test_a_dripping_peer_cannot_extend_the_limit(tmp_path):
    """A byte every 0.1 s is never silent for a whole timeout, yet buys back only what it
    delivers at MIN_DATA_RATE: the session still ends after about `timeout`."""
    stop = threading.Event()

    def drip(conn):
        while not stop.wait(0.1):
            conn.sendall(b".")

    server = peer(tmp_path, drip)
    conn = connect(server, timeout=1)
    started = time.monotonic()
    with pytest.raises(TempFailure, match="too slow"):
        while True:
            conn.receive()
    assert time.monotonic() - started < 2.5
    stop.set()


def test_a_steady_transfer_outlasts_the_timeout(tmp_path):
    """Only waiting counts, and bytes at a useful rate buy it back: 64 KiB every 0.3 s for
    1.5 s is fine under a 0.5 s limit."""
    def steady(conn):
        for _ in range(5):
            time.sleep(0.3)
            conn.sendall(b"y" * 65536)

    server = peer(tmp_path, steady)
    conn = connect(server, timeout=0.5)
    started = time.monotonic()
    assert len(receive_all(conn)) == 5 * 65536
    assert time.monotonic() - started > 1.4
