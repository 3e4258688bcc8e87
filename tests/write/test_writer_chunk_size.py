"""The message the writer streams out does not depend on how much it reads at a time
(WRITE_CHUNK_SIZE is tuned for speed, issue 16): any chunk size gives the same bytes, and
a file's base64 body is base64.encodebytes' layout with the message's line ends."""

import base64
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimekit.write import writer
from mimekit.write.composer import CRLF, LF, ComposedMessage, MessageBuilder
from mimekit.write.writer import message_bytes

# Fixed Date and Message-ID; the boundary is fixed once the message is built. The files
# here hold a NUL byte, so they are sent in base64.
IDENTITY = [("Date", "Thu, 03 Dec 2026 15:00:00 +0000"), ("Message-ID", "<chunks@example.org>")]


def build(attachment: bytes, body: bytes | None = None, html: bytes | None = None) -> ComposedMessage:
    builder = MessageBuilder()
    builder.add_header("From", "sender@example.org")
    for name, value in IDENTITY:
        builder.add_header(name, value)
    if body is not None:
        builder.set_body(body)
    if html is not None:
        builder.set_body(html, html=True)
    builder.attach(attachment, filename="data.bin", content_type="application/octet-stream")
    return builder.build()


def written_in_chunks_of(message: ComposedMessage, chunk_size: int, eol: bytes) -> bytes:
    with mock.patch.object(writer, "WRITE_CHUNK_SIZE", chunk_size):
        return message_bytes(message, eol)


@settings(max_examples=150, deadline=None)
@given(attachment=st.binary(max_size=3000).map(lambda data: b"\0" + data), body=st.binary(max_size=1500),
       html=st.none() | st.binary(max_size=500).map(lambda text: b"<p>" + text),
       chunk_size=st.integers(1, 700), eol=st.sampled_from([CRLF, LF]))
def test_any_chunk_size_writes_the_same_message(attachment, body, html, chunk_size, eol):
    message = build(attachment, body, html)
    expected = message_bytes(message, eol)
    assert written_in_chunks_of(message, chunk_size, eol) == expected
    assert base64.encodebytes(attachment).replace(b"\n", eol) in expected


@pytest.mark.parametrize("eol", [CRLF, LF])
@pytest.mark.parametrize("chunk_size", [57, 57 * 1024 - 1, 57 * 1024, 57 * 2048, 57 * 4096 + 5, 1 << 20])
def test_a_large_file_is_laid_out_as_encodebytes_does_at_any_chunk_size(chunk_size, eol):
    attachment = bytes(range(256)) * 1100 + b"tail"   # 281 604 bytes: several chunks of every size here
    message = build(attachment)
    written = written_in_chunks_of(message, chunk_size, eol)
    assert base64.encodebytes(attachment).replace(b"\n", eol) + eol + b"--" in written
    assert written == message_bytes(message, eol)
