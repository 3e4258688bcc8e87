"""The checker's long-line finder against a naive reference: the same line starts, in
the same order, for any data, any limit and any way the stream is cut into chunks; and
the checker's long-line rules, whose finders share one line_shape per chunk, likewise."""

from hypothesis import given, settings, strategies as st

from mimekit.read.check import MAX_ENCODED_LINE, MAX_LINE, MessageChecker, _LongLines, line_shape
from strategies import chunkings


def naive_long_line_starts(data: bytes, limit: int, base: int) -> list[int]:
    """Every line (bytes between CR or LF breaks, the last one unfinished too) longer
    than `limit`, by its start offset, walking the bytes one at a time."""
    starts, start = [], 0
    for at, byte in enumerate(data + b"\n"):
        if byte in b"\r\n":
            if at - start > limit:
                starts.append(base + start)
            start = at + 1
    return starts


def streamed_long_line_starts(pieces: list[bytes], limit: int, base: int) -> list[int]:
    finder, offset, found = _LongLines(limit), base, []
    for piece in pieces:
        found += finder.feed(line_shape(piece), offset)
        offset += len(piece)
    return found


# Lines around the limits the checker uses (and small ones), broken by CR, LF or CRLF,
# with bytes that are neither as filler: lines just under, at and over the limit.
_breaks = st.sampled_from([b"\r\n", b"\n", b"\r", b"\n\r", b"\r\r\n"])


@st.composite
def lines_near(draw, limit: int) -> bytes:
    lengths = st.integers(0, 3) | st.integers(max(0, limit - 2), limit + 3) | st.integers(0, 2 * limit + 5)
    fillers = st.sampled_from([b"x", b"\x00", b"\xff", b" ", b"="])
    parts = draw(st.lists(st.tuples(lengths, fillers, _breaks), max_size=12))
    last = draw(lengths)
    return b"".join(filler * length + brk for length, filler, brk in parts) + b"x" * last


@st.composite
def streams(draw):
    limit = draw(st.sampled_from([0, 1, 2, 5, MAX_ENCODED_LINE, MAX_LINE]))
    data = draw(lines_near(limit) | st.binary(max_size=300)
                | st.lists(st.sampled_from([b"a", b"\r", b"\n", b"aaaaa"]), max_size=200).map(b"".join))
    return limit, data, draw(chunkings(data)), draw(st.integers(0, 10**9))


@settings(max_examples=600, deadline=None)
@given(streams())
def test_long_line_starts_match_a_naive_line_split(stream):
    limit, data, pieces, base = stream
    assert streamed_long_line_starts(pieces, limit, base) == naive_long_line_starts(data, limit, base)


def test_one_long_line_fed_byte_by_byte_is_reported_once_at_its_start():
    data = b"ab\r\n" + b"y" * 80 + b"\r\nz"
    assert streamed_long_line_starts([bytes([byte]) for byte in data], MAX_ENCODED_LINE, 7) == [7 + 4]


_HEAD = (b"From: a@example.com\r\nDate: Thu, 3 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"
         b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n"
         b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")


@st.composite
def messages_with_long_lines(draw):
    """A base64 body of lines around 76 (a few over 998) with any line breaks; the
    body's offset and bytes; and any chunking of the message."""
    lengths = st.integers(70, 80) | st.integers(0, 3) | st.integers(995, 1003)
    parts = draw(st.lists(st.tuples(lengths, _breaks), max_size=12))
    body = b"".join(b"QUJD" * (length // 4) + b"QUJD"[:length % 4] + brk for length, brk in parts)
    message = _HEAD + body + b"\r\n--b--\r\n"
    return message, len(_HEAD), body, draw(chunkings(message))


@settings(max_examples=300, deadline=None)
@given(messages_with_long_lines())
def test_checker_reports_every_long_line_for_any_chunking(case):
    message, body_start, body, pieces = case
    checker = MessageChecker()
    for piece in pieces:
        checker.feed(piece)
    violations = checker.close().violations
    assert [v.offset for v in violations if v.rule == "line-too-long"] == naive_long_line_starts(message, MAX_LINE, 0)
    assert ([v.offset for v in violations if v.rule == "encoded-line-too-long"]
            == naive_long_line_starts(body, MAX_ENCODED_LINE, body_start))
