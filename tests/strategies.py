"""Hypothesis strategies shared by the round-trip, chunking and fuzz tests."""

from hypothesis import strategies as st

# Printable text from any script; no control characters, no surrogates, no line/paragraph
# separators (these cannot survive a header round trip in any engine).
_header_chars = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"))

header_text = st.text(_header_chars, min_size=1, max_size=120).filter(lambda s: s.strip() == s and s)

# Display names and file names are header text too; file names also exclude path separators.
display_names = header_text
file_names = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn"),
                                   blacklist_characters="/\\"),
                     min_size=1, max_size=150).filter(lambda s: s.strip() == s and s)

payloads = st.binary(max_size=4096)


@st.composite
def chunkings(draw, data: bytes):
    """Split `data` at arbitrary points: a codec must give the same result for any split."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    pieces, start = [], 0
    for cut in cuts + [len(data)]:
        pieces.append(data[start:cut])
        start = cut
    return pieces


# Hostile header values: the characters header syntax gives meaning to and fragments of
# encoded-words and RFC 2231 parameters, in any order; as text and as raw bytes.
_header_syntax = st.sampled_from(list('=?"()<>@,;:.[]\\ \t\r\n*\'%_abQBq8-/é\x80')
                                 + ["=?utf-8?q?", "=?x?b?", "?=", "name*0*=", "filename*=", "utf-8''"])
header_junk = st.one_of(st.lists(_header_syntax, max_size=60).map("".join),
                        st.text(max_size=200), st.binary(max_size=200))
