"""The DATA filter and the pre-scan give the same answer however the message is chunked."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.transport.smtp.data import MAX_LINE_LENGTH, data_stream, scan_message, unstuff
from strategies import chunkings

# Messages made of the pieces that matter at chunk boundaries: every line ending, dots.
message_bytes = st.lists(st.sampled_from([b".", b"..", b"\r", b"\n", b"\r\n", b"x", b"From ", b"\xc3\xa9",
                                          b"\x00", b"Subject: a"]), max_size=40).map(b"".join)


def reference_data(message: bytes) -> bytes:
    """Whole-message regexes, the way smtplib.sendmail prepares DATA."""
    text = re.sub(rb"\r\n|\n|\r", b"\r\n", message)
    text = re.sub(rb"(?m)^\.", b"..", text)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text + b".\r\n"


def normalised(message: bytes) -> bytes:
    return re.sub(rb"\r\n|\n|\r", b"\r\n", message)


@given(st.data(), message_bytes)
def test_any_chunking_gives_the_reference_output(data, message):
    pieces = data.draw(chunkings(message))
    assert b"".join(data_stream(pieces)) == reference_data(message)


@given(message_bytes)
def test_unstuffing_gives_the_original_with_crlf_line_endings(message):
    sent = unstuff(b"".join(data_stream([message])))
    expected = normalised(message)
    assert sent == (expected if not expected or expected.endswith(b"\r\n") else expected + b"\r\n")


def test_lines_made_of_dots_survive():
    message = b"Subject: dots\n\n.\n..\n...\n.x\nend\n"
    sent = b"".join(data_stream([message[:17], message[17:19], message[19:]]))
    assert b"\r\n..\r\n...\r\n....\r\n..x\r\n" in sent
    assert unstuff(sent) == normalised(message)


def test_terminator_needs_no_extra_blank_line():
    assert b"".join(data_stream([b"a\r\n"])) == b"a\r\n.\r\n"
    assert b"".join(data_stream([b"a"])) == b"a\r\n.\r\n"
    assert b"".join(data_stream([])) == b".\r\n"


def test_a_message_starting_with_a_dot_is_stuffed():
    assert b"".join(data_stream([b".", b"hidden\n"])) == b"..hidden\r\n.\r\n"


@given(st.data(), message_bytes)
def test_scan_is_chunking_independent_and_measures_the_crlf_size(data, message):
    whole = scan_message([message])
    assert scan_message(data.draw(chunkings(message))) == whole
    assert whole.size == len(normalised(message))
    assert whole.nul == (b"\x00" in message)


def test_scan_tells_8bit_headers_from_8bit_body():
    headers = scan_message([b"Subject: caf\xc3\xa9\r\n", b"\r\nplain body\r\n"])
    assert headers.eight_bit_headers and not headers.eight_bit_body
    body = scan_message([b"Subject: cafe\n", b"\n", b"caf\xc3\xa9\n"])
    assert body.eight_bit_body and not body.eight_bit_headers and body.needs_8bitmime
    ascii_only = scan_message([b"Subject: x\n\nbody\n"])
    assert not ascii_only.needs_8bitmime and not ascii_only.binary


def test_scan_of_a_message_without_headers_counts_everything_as_body():
    scan = scan_message([b"\n\xff\n"])
    assert scan.eight_bit_body and not scan.eight_bit_headers


@pytest.mark.parametrize("length, too_long", [(MAX_LINE_LENGTH, False), (MAX_LINE_LENGTH + 1, True)])
@pytest.mark.parametrize("chunk_size", [1, 7, 1000, 100000])
def test_scan_finds_lines_over_998_bytes_across_chunks(length, too_long, chunk_size):
    message = b"Subject: x\r\n\r\nshort\r\n" + b"y" * length + b"\r\nshort\r\n"
    pieces = [message[i:i + chunk_size] for i in range(0, len(message), chunk_size)]
    assert scan_message(pieces).long_lines is too_long
    assert scan_message(pieces).binary is too_long
