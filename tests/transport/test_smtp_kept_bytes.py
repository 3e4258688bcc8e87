"""A small message keeps its transmitted bytes from prepare_message to the send, and a
one-line reply is parsed through a cache (issue 16): both give exactly what the general
code gives, and both stay bounded."""

import gc
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import ProtocolError
from mimekit.transport.smtp import envelope
from mimekit.transport.smtp.envelope import KEEP_MESSAGE_BYTES, _KeptBytes, _transmitted_bytes, prepare_message
from mimekit.transport.smtp.data import scan_message
from mimekit.transport.smtp.protocol import ReplyReader, _parse_reply

MESSAGE = (b"From: a@example.test\r\nTo: b@example.test\r\nBcc: hidden@example.test\r\n"
           b"Subject: kept\r\n\r\nbody\nwith a bare LF\r\n")


def test_a_small_message_is_sent_as_it_was_read(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(MESSAGE)
    message = prepare_message(str(path), extract=True)
    expected = b"".join(_transmitted_bytes(str(path), None))
    path.unlink()   # not read again
    assert b"".join(message.chunks()) == expected == MESSAGE.replace(b"Bcc: hidden@example.test\r\n", b"")
    assert b"".join(message.chunks()) == expected   # may be called more than once
    assert message.recipients == ("b@example.test", "hidden@example.test")


def test_a_small_message_from_a_stream_keeps_no_spool():
    message = prepare_message("-", to=["b@example.test"], stream=io.BytesIO(MESSAGE))
    assert isinstance(message.chunks, _KeptBytes)
    assert b"hidden" not in b"".join(message.chunks())


def test_an_empty_message_keeps_nothing(tmp_path):
    path = tmp_path / "empty.eml"
    path.write_bytes(b"")
    assert list(prepare_message(str(path), to=["b@example.test"]).chunks()) == []


def test_a_larger_message_streams_from_its_file(tmp_path):
    path = tmp_path / "big.eml"
    path.write_bytes(MESSAGE + b"x" * KEEP_MESSAGE_BYTES + b"\r\n")
    message = prepare_message(str(path), extract=True)
    assert not isinstance(message.chunks, _KeptBytes)
    assert b"".join(message.chunks()) == b"".join(_transmitted_bytes(str(path), None))


def test_kept_bytes_stay_within_the_total_and_are_given_back(tmp_path, monkeypatch):
    gc.collect()   # what earlier tests left in reference cycles gives its bytes back now, not below
    monkeypatch.setattr(envelope, "KEEP_TOTAL_BYTES", _KeptBytes.kept + 2 * len(MESSAGE))
    path = tmp_path / "m.eml"
    path.write_bytes(MESSAGE)
    before = _KeptBytes.kept
    messages = [prepare_message(str(path), to=["b@example.test"]) for _ in range(3)]
    assert [isinstance(m.chunks, _KeptBytes) for m in messages] == [True, True, False]
    assert len({b"".join(m.chunks()) for m in messages}) == 1
    del messages
    gc.collect()
    assert _KeptBytes.kept == before


_reply_lines = st.builds(lambda code, sep, text: code + sep + text + b"\r\n",
                         st.sampled_from([b"250", b"221", b"354", b"421", b"451", b"550", b"199", b"25x"]),
                         st.sampled_from([b" ", b"", b"-"]),
                         st.sampled_from([b"", b"2.0.0 Ok", b"2.1.5 Ok: queued as ABC", b"5.1.1 no such user",
                                          b"4.0.0", b"caf\xc3\xa9", b"\xff bad utf-8", b"2.0 short"]))


@given(lines=st.lists(_reply_lines, min_size=1, max_size=6))
def test_cached_one_line_replies_read_as_the_general_path(lines):
    """The replies read through the cache are those _parse_reply makes of the same lines,
    and a line that is no reply line is refused the same way."""
    reader = ReplyReader()
    reader.feed(b"".join(lines))
    expected, group = [], []
    for line in lines:
        group.append(line.rstrip(b"\r\n"))
        if line[3:4] != b"-":
            expected.append(group)
            group = []
    got = []
    for group in expected:
        if any(not line[:3].isdigit() or line[:1] not in b"2345" or line[3:4] not in (b"", b" ", b"-")
               for line in group):
            with pytest.raises(ProtocolError):
                reader.next_reply()
            return
        try:
            wanted = _parse_reply(group)
        except ProtocolError:
            with pytest.raises(ProtocolError):
                reader.next_reply()
            return
        got.append((reader.next_reply(), wanted))
    assert all(reply == wanted for reply, wanted in got)


_scan_lines = st.lists(st.one_of(st.sampled_from([b"", b"Subject: x", b"caf\xc3\xa9", b"\x00", b"a: b"]),
                                 st.integers(990, 1005).map(lambda n: b"x" * n)), max_size=8)


@given(data=st.data(), header=_scan_lines, body=_scan_lines)
def test_the_scan_reads_what_the_whole_message_says(data, header, body):
    """The scan's shortcuts (a chunk all ASCII, a chunk too short to hold a long line)
    give what the lines of the whole message say, however it is cut."""
    message = b"".join(line + b"\r\n" for line in header) + b"\r\n" + b"".join(line + b"\r\n" for line in body)
    end = (b"\r\n" + message).find(b"\r\n\r\n")   # a message may start with its blank line
    head, rest = message[:end + 2], message[end + 2:]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(message)), max_size=4)))
    chunks = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)])]
    scan = scan_message(chunks)
    assert scan.long_lines == any(len(line) > 998 for line in message.split(b"\r\n"))
    assert scan.eight_bit_headers == (not head.isascii())
    assert scan.eight_bit_body == (not rest.isascii())
    assert scan.size == len(message)
