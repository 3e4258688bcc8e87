from hypothesis import given, strategies as st

from mimekit.streams.line_endings import LineEndingNormaliser
from strategies import chunkings

line_soup = st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"xyz"]), max_size=40).map(b"".join)


def convert(pieces, eol, lone_cr_is_break):
    normaliser = LineEndingNormaliser(eol, lone_cr_is_break)
    return b"".join(normaliser.feed(piece) for piece in pieces) + normaliser.flush()


@given(st.data(), line_soup)
def test_any_chunking_gives_the_one_shot_result(data, text):
    pieces = data.draw(chunkings(text))
    for eol in (b"\r\n", b"\n"):
        for lone_cr_is_break in (True, False):
            assert convert(pieces, eol, lone_cr_is_break) == convert([text], eol, lone_cr_is_break)


def test_smtp_and_store_conventions():
    assert convert([b"a\rb\nc\r\nd\r"], b"\r\n", True) == b"a\r\nb\r\nc\r\nd\r\n"
    assert convert([b"a\rb\nc\r\nd\r"], b"\n", False) == b"a\rb\nc\nd\r"
    assert convert([b"a\r", b"\nb"], b"\n", False) == b"a\nb"
