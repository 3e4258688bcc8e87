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


# MIME messages for the parser's chunking and fuzz tests.
BOUNDARY_CHARS = "abcXYZ019'()+_,-./:=?"


@st.composite
def mime_messages(draw, max_depth: int = 3) -> bytes:
    """Messages with nested multiparts and encapsulated messages, any line endings,
    bodies that contain boundary look-alikes, missing close delimiters, padding and junk
    after boundaries: the framing cases, mixed at random."""
    eol = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    lines: list[bytes] = []

    def line(text: bytes) -> None:
        lines.append(text + (draw(st.sampled_from([eol, eol, eol, b"\r\n", b"\n"]))))

    def body(boundaries: list[bytes]) -> None:
        candidates = [st.binary(max_size=30), st.sampled_from([b"", b"--", b" --x", b"hello"])]
        if boundaries:
            candidates.append(st.sampled_from(boundaries).map(lambda b: b"--" + b[:len(b) // 2]))
            candidates.append(st.sampled_from(boundaries).map(lambda b: b"--" + b + b"x"))
            candidates.append(st.sampled_from(boundaries).map(lambda b: b"--" + b))  # ends a part early
        for text in draw(st.lists(st.one_of(*candidates), max_size=4)):
            line(text)

    def entity(depth: int, boundaries: list[bytes]) -> None:
        for name in draw(st.lists(st.sampled_from([b"Subject", b"X-A", b"From"]), max_size=2)):
            line(name + b": " + draw(st.sampled_from([b"v", b"w\xc3\xa9", b"x"])))
            if draw(st.booleans()):
                line(b"\tfolded")
        kind = draw(st.sampled_from(["leaf", "multipart", "message"])) if depth < max_depth else "leaf"
        if kind == "multipart":
            boundary = draw(st.text(BOUNDARY_CHARS, min_size=1, max_size=12)).encode()
            line(b"Content-Type: multipart/" + draw(st.sampled_from([b"mixed", b"digest"])) +
                 b"; boundary=\"" + boundary + b"\"")
            line(b"")
            body(boundaries + [boundary])
            for _ in range(draw(st.integers(0, 3))):
                line(b"--" + boundary + draw(st.sampled_from([b"", b"", b" ", b" \t junk"])))
                entity(depth + 1, boundaries + [boundary])
            if draw(st.booleans()):
                line(b"--" + boundary + b"--")
                body(boundaries)
        elif kind == "message":
            line(b"Content-Type: message/rfc822")
            line(b"")
            entity(depth + 1, boundaries)
        else:
            if draw(st.booleans()):
                line(b"")
            body(boundaries)

    entity(0, [])
    data = b"".join(lines)
    return data[:draw(st.integers(0, len(data)))] if draw(st.integers(0, 9)) == 0 else data
