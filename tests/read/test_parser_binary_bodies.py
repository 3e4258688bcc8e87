"""MessageParser(binary_bodies=False), the tree's parser (issue 16): the same events as
the default parser but the BodyChunks of base64 and binary bodies, whose bytes the tree
reads from the source instead."""

import base64

import pytest

from mimekit.read.events import BodyChunk, HeadersEnd, PartStart
from mimekit.read.parser import MessageParser

ATTACHMENT = base64.encodebytes(bytes(range(256)) * 40).replace(b"\n", b"\r\n")
MESSAGES = [
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\n\r\ntext\n\r\n"
    b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\n" + ATTACHMENT +
    b"--b\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\r\x01\n\x02\r\n"
    b"--b--\r\nepilogue\n",
    b"Content-Transfer-Encoding: base64\r\n\r\n" + ATTACHMENT,
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + ATTACHMENT[:100] + b"\n" + ATTACHMENT[100:] + b"--b\r\n",   # truncated, mixed line ends
]


def events(raw: bytes, chunk_size: int, **options) -> list:
    parser = MessageParser(**options)
    found = []
    for start in range(0, len(raw), chunk_size):
        found += parser.feed(raw[start:start + chunk_size])
    return found + parser.close()


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 100_000])
@pytest.mark.parametrize("raw", MESSAGES)
def test_same_events_but_binary_bodies(raw, chunk_size):
    every = events(raw, chunk_size)
    binary_parts, current, expected = set(), None, []
    for event in every:
        if isinstance(event, PartStart):
            current = event.part_id
        elif isinstance(event, HeadersEnd) and event.transfer_encoding in ("base64", "binary"):
            binary_parts.add(current)
        if not (isinstance(event, BodyChunk) and current in binary_parts):
            expected.append(event)
    assert binary_parts and len(expected) < len(every)
    assert events(raw, chunk_size, binary_bodies=False) == expected
