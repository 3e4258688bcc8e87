"""The shortcuts that keep SMTP's per-message cost low (issue 16) give exactly what the
general code gives: the Bcc filter's pass-through of a header with nothing to remove, the
one-regex command argument check."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import DataError
from mimekit.transport.smtp.envelope import ENVELOPE_FIELDS, BccRemover
from mimekit.transport.smtp.protocol import check_argument
from strategies import chunkings

_names = st.sampled_from(["From", "To", "Cc", "Bcc", "bcc ", "BCC", "Resent-Bcc", "X-Bcc-Note", "Subject",
                          "Sender", "Resent-To", "Received", "a line with no colon"])
_endings = st.sampled_from([b"\r\n", b"\n", b"\r"])


@st.composite
def messages(draw) -> bytes:
    """A header of random fields (continuation lines, any line ending, lines that are no
    field) and a body that may look like Bcc too."""
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(_names)
        separator = b"" if "no colon" in name else b":"
        lines.append(name.encode() + separator + b" v@example.test" + draw(_endings))
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from([b" ", b"\t"])) + b"w@example.test" + draw(_endings))
    body = draw(st.sampled_from([b"", b"Bcc: body text\r\n", b"text\n"]))
    return b"".join(lines) + draw(_endings) + body


def _filtered(pieces: list[bytes], capture: frozenset[str]) -> tuple[list[bytes], list]:
    remover = BccRemover(capture=capture)
    return [remover.feed(piece) for piece in pieces] + [remover.flush()], remover.fields


@pytest.mark.parametrize("capture", [frozenset(), ENVELOPE_FIELDS], ids=["transmit", "prepare"])
@given(data=st.data(), message=messages())
def test_bcc_removal_of_whole_chunks_equals_the_line_by_line_path(capture, data, message):
    """A byte at a time never holds a whole header, so it always takes the line-by-line
    path; any other chunking, the whole message included, must give the same bytes and fields."""
    by_byte, fields = _filtered([message[i:i + 1] for i in range(len(message))], capture)
    for pieces in ([message], data.draw(chunkings(message))):
        output, chunk_fields = _filtered(pieces, capture)
        assert b"".join(output) == b"".join(by_byte)
        assert chunk_fields == fields


def test_a_header_without_bcc_passes_as_one_chunk():
    message = b"From: a@example.test\r\nTo: b@example.test\r\n\r\nBcc: body\r\n"
    remover = BccRemover()
    assert remover.feed(message) == message and remover.feed(b"Bcc: x\r\n") == b"Bcc: x\r\n"


_REFUSED_CHARACTERS = {" ", "<", ">", "\x7f", "\u2028", "\u2029"} | {chr(c) for c in range(32)} | {
    chr(c) for c in range(0x80, 0xa0)}


def test_check_argument_refuses_exactly_the_characters_it_names():
    for code in [*range(0x3000), 0xfeff, 0x10ffff]:
        char = chr(code)
        if char in _REFUSED_CHARACTERS:
            with pytest.raises(DataError):
                check_argument(f"a{char}b@example.test", "address")
        else:
            check_argument(f"a{char}b@example.test", "address")
