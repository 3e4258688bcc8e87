"""The parser's delimiter search (mimekit.read.parser._DelimiterFinder) against the regex
it replaced (issue 16): the same delimiter lines, found in the same order."""

import re

from hypothesis import given, settings, strategies as st

from mimekit.read.parser import _DelimiterFinder

DELIMITERS = [b"--b", b"--b-1", b"--=_x y", b"--b--"]


def reference(buf: bytes, delimiters: list[bytes], start: int) -> int | None:
    """The first delimiter line after a line break at or after `start`, as the regex found it."""
    boundaries = b"|".join(sorted({re.escape(delimiter[2:]) for delimiter in delimiters}))
    pattern = re.compile(b"--(?:" + boundaries + b")(?:--)?(?=[ \t\r\n]|\\Z)")
    at = start + 1
    while (match := pattern.search(buf, at)) is not None:
        if buf[match.start() - 1] in b"\r\n":
            return match.start()
        at = match.start() + 1
    return None


@settings(max_examples=500)
@given(pieces=st.lists(st.sampled_from([b"-", b"--", b"b", b"-1", b"=_x y", b"\r", b"\n", b"\r\n", b" ", b"\t",
                                        b"x", b"QUJD"]), max_size=60),
       delimiters=st.lists(st.sampled_from(DELIMITERS), min_size=1, max_size=3),
       base=st.integers(0, 1000))
def test_finds_what_the_regex_found(pieces, delimiters, base):
    buf = bytearray(b"".join(pieces))
    finder = _DelimiterFinder(delimiters)
    start = 0
    while start < len(buf):   # as the parser asks: again after each line it found
        expected = reference(bytes(buf), delimiters, start)
        assert finder.next_delimiter(buf, base, start) == expected
        if expected is None:
            break
        start = expected + 1


def test_an_absent_delimiter_is_not_searched_for_again_at_each_part():
    """The search for an outer delimiter that never occurs ends once at the buffer's end
    and is remembered, so 2,000 inner parts do not scan the buffer 2,000 times."""
    inner = b"\r\n--inner\r\n" + b"x" * 50
    buf = bytearray(inner * 2000)
    finder = _DelimiterFinder([b"--inner", b"--outer"])
    found, start = [], 0
    while (at := finder.next_delimiter(buf, 0, start)) is not None:
        found.append(at)
        start = at + 1
    assert len(found) == 2000
    assert finder._found[b"--outer"] == (-1, len(buf) - finder.hold + 1)
