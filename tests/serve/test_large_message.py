"""Size: a 1 GB message is received in bounded memory and stored byte for byte (aiosmtpd
keeps DATA in memory; mimekit serve must not, issue 13), and a message past --max-size
is refused with 552 whether or not its size was declared, leaving nothing behind.

The test never holds the message either: it is made block by block as the socket takes
it, and what the stored file must be is known only by its sha256.
"""

import hashlib
import socket
import time

import pytest
from servers import HOST
from test_faults import (RECIPIENT, SENDER, files_in, hang_up, memory_peak, reply, smtp_transaction,
                         stored_message, wait_for_session)

GIGABYTE = 2**30
MEMORY_PEAK = 100 * 2**20


class StreamedMessage:
    """A message of about `size` bytes made as it is sent: its lines of base64-looking
    text, lines starting with a dot (stuffed on the wire) and a numbered line in each
    block, so that no two blocks are the same. `wire_blocks()` gives the DATA bytes (CRLF,
    dot-stuffed, without the final dot); `stored_sha256` is then what the server must store
    after its Return-Path and Received fields (LF line endings, unstuffed)."""

    BLOCK_LINES = [b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0",
                   b".a line that starts with a dot", b".", b"", b"\tfolded-looking line"] * 2500

    def __init__(self, size: int):
        self.size = size
        self.head = b"From: " + SENDER.encode() + b"\r\nTo: " + RECIPIENT.encode() + b"\r\nSubject: large\r\n\r\n"
        self.wire_block = b"".join(b"." + line + b"\r\n" if line.startswith(b".") else line + b"\r\n"
                                   for line in self.BLOCK_LINES)
        self.stored_block = b"".join(line + b"\n" for line in self.BLOCK_LINES)
        self.blocks = size // len(self.wire_block) + 1
        self._sha256 = hashlib.sha256()
        self.wire_size = self.stored_size = 0

    def wire_blocks(self):
        yield self._sent(self.head, self.head.replace(b"\r\n", b"\n"))
        for number in range(self.blocks):
            counter = b"block %010d" % number
            yield self._sent(counter + b"\r\n", counter + b"\n")
            yield self._sent(self.wire_block, self.stored_block)

    def _sent(self, wire: bytes, stored: bytes) -> bytes:
        """`wire` is sent; `stored` is what the server must keep of it."""
        self._sha256.update(stored)
        self.stored_size += len(stored)
        self.wire_size += len(wire)
        return wire

    @property
    def stored_sha256(self) -> str:
        return self._sha256.hexdigest()


def file_sha256_after_trace(path) -> str:
    """The sha256 of a stored file past its trace fields, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        head = f.read(2**20)
        digest.update(stored_message(head))
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def test_a_1_gb_message_is_stored_whole_in_bounded_memory(serve):
    server = serve("--max-size", "2G")
    message = StreamedMessage(GIGABYTE)
    sock = socket.create_connection((HOST, server.smtp), timeout=300)
    replies = sock.makefile("rb")
    assert reply(replies)[0] == 220
    sock.sendall(b"EHLO client.example.test\r\n")
    assert "SIZE " in reply(replies)[1]
    sock.sendall(b"MAIL FROM:<%s> SIZE=%d\r\nRCPT TO:<%s>\r\nDATA\r\n"
                 % (SENDER.encode(), message.size + 2**20, RECIPIENT.encode()))
    assert [reply(replies)[0] for _ in range(3)] == [250, 250, 354]
    started = time.monotonic()
    for block in message.wire_blocks():
        sock.sendall(block)
    sock.sendall(b".\r\n")
    code, text = reply(replies)
    assert code == 250, text
    seconds = time.monotonic() - started
    sock.sendall(b"QUIT\r\n")
    assert reply(replies)[0] == 221
    sock.close()
    assert message.wire_size > GIGABYTE
    [stored] = files_in(server.root, "new")
    assert file_sha256_after_trace(stored) == message.stored_sha256
    assert message.stored_size < stored.stat().st_size < message.stored_size + 1000    # and the trace fields
    peak = memory_peak(server)
    assert peak < MEMORY_PEAK, f"peak RSS {peak / 2**20:.0f} MiB receiving 1 GiB in {seconds:.1f} s"


@pytest.fixture
def small_server(serve):
    return serve("--max-size", "1M")


def test_a_declared_size_past_the_limit_is_refused_at_mail(small_server):
    sock = socket.create_connection((HOST, small_server.smtp), timeout=30)
    replies = sock.makefile("rb")
    assert reply(replies)[0] == 220
    sock.sendall(b"EHLO client.example.test\r\n")
    assert "SIZE " in reply(replies)[1]
    sock.sendall(b"MAIL FROM:<%s> SIZE=2000000\r\n" % SENDER.encode())
    code, text = reply(replies)
    assert (code, text[4:10]) == (552, "5.3.4 "), text
    sock.sendall(b"MAIL FROM:<%s> SIZE=900000\r\n" % SENDER.encode())
    assert reply(replies)[0] == 250
    sock.close()


def test_data_past_the_limit_is_read_to_its_end_refused_with_552_and_leaves_nothing(small_server):
    sock = smtp_transaction(small_server.smtp)
    replies = sock.makefile("rb")
    sock.sendall(b"DATA\r\n")
    assert reply(replies)[0] == 354
    block = b"x" * 1022 + b"\r\n"
    sock.sendall(b"Subject: too large\r\n\r\n")
    for _ in range(256 * 1024):       # 256 MiB past a 1 MiB limit: read and thrown away as it comes
        sock.sendall(block)
    sock.sendall(b".\r\n")
    code, text = reply(replies)
    assert (code, text[4:10]) == (552, "5.3.4 "), text
    assert files_in(small_server.root, "new") == [] and files_in(small_server.root, "tmp") == []
    assert memory_peak(small_server) < MEMORY_PEAK
    # the session goes on: the next message fits
    sock.sendall(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (SENDER.encode(), RECIPIENT.encode()))
    assert [reply(replies)[0] for _ in range(3)] == [250, 250, 354]
    sock.sendall(b"Subject: fits\r\n\r\n" + block * 900 + b".\r\n")
    assert reply(replies)[0] == 250
    port = sock.getsockname()[1]
    hang_up(sock)
    wait_for_session(small_server, port)
    [stored] = files_in(small_server.root, "new")
    assert stored_message(stored.read_bytes()) == b"Subject: fits\n\n" + (b"x" * 1022 + b"\n") * 900


def test_bdat_past_the_limit_is_refused_with_552_and_leaves_nothing(small_server):
    sock = smtp_transaction(small_server.smtp)
    replies = sock.makefile("rb")
    chunk = b"y" * 65534 + b"\r\n"
    for number in range(64):          # 4 MiB in 64 KiB chunks, each waiting for its reply
        sock.sendall(b"BDAT %d\r\n" % len(chunk) + chunk)
        code, text = reply(replies)
        if code != 250:
            break
    assert (code, text[4:10]) == (552, "5.3.4 "), text
    assert number * len(chunk) >= 900_000    # what fits in 1M was taken
    sock.sendall(b"RSET\r\n")
    assert reply(replies)[0] == 250
    sock.close()
    assert files_in(small_server.root, "new") == [] and files_in(small_server.root, "tmp") == []
