"""BccRemover's whole-header path (one regex match per field, issue 16) gives exactly what
the line-by-line path gives: the bytes sent, the captured (name, raw value) fields, and the
refusal of a captured field over MAX_CAPTURED_FIELD."""

from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import DataError
from mimekit.transport.smtp import envelope
from mimekit.transport.smtp.envelope import ENVELOPE_FIELDS, BccRemover
from strategies import chunkings

_names = st.sampled_from([b"From", b"to", b"To ", b"Cc\t", b"bcc", b"BCC \t", b"Resent-Bcc", b"resent-to",
                          b"Sender", b"X-Bcc", b"Subject", b"Fr\xe9m", b""])
# The line ends of one message: mostly ones the whole-header path reads, a lone CR at times.
_endings = st.sampled_from([[b"\r\n"], [b"\n"], [b"\r\n", b"\n"], [b"\r\n", b"\n", b"\r"]]).map(st.sampled_from)
_values = st.sampled_from([b"", b" ", b"v@example.test", b"  v@example.test \t", b"x: y", b"\xe9\x00z",
                           b"a" * 30])


@st.composite
def messages(draw) -> bytes:
    """A header of random fields: odd spacing, continuation lines (a first line too), any
    line ending, lines that are no field; a body that looks like a header."""
    endings, lines = draw(_endings), []
    for _ in range(draw(st.integers(0, 8))):
        # now and then a continuation line where a field is expected, or a line without colon
        start, colon = draw(st.sampled_from([(b"", b":")] * 8 + [(b" ", b":"), (b"", b"")]))
        lines.append(start + draw(_names) + colon + draw(_values) + draw(endings))
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(st.sampled_from([b" ", b"\t"])) + draw(_values) + draw(endings))
    body = draw(st.sampled_from([b"", b"Bcc: body\r\n", b"To: b\n\nc"]))
    return b"".join(lines) + draw(endings) + body


class _Spy(BccRemover):
    """A BccRemover that counts the chunks its whole-header path took."""

    def __init__(self, capture):
        super().__init__(capture)
        self.whole_headers = 0

    def _whole_header(self, data):
        result = super()._whole_header(data)
        self.whole_headers += result is not None
        return result


def _filtered(pieces: list[bytes], capture: frozenset[str]):
    """(the output bytes, the captured fields, the whole-header count), or DataError's message."""
    remover = _Spy(capture)
    try:
        output = b"".join([remover.feed(piece) for piece in pieces] + [remover.flush()])
    except DataError as exc:
        return str(exc), remover.whole_headers
    return (output, remover.fields), remover.whole_headers


@given(data=st.data(), message=messages(), capture=st.sampled_from([ENVELOPE_FIELDS, frozenset()]),
       limit=st.sampled_from([20, 40, 64 * 1024]))
def test_whole_header_path_equals_the_line_path(data, message, capture, limit):
    with mock.patch.object(envelope, "MAX_CAPTURED_FIELD", limit):
        by_byte, whole_headers = _filtered([message[i:i + 1] for i in range(len(message))], capture)
        assert whole_headers == 0   # a byte never holds a line end and the line after it
        for pieces in ([message], data.draw(chunkings(message))):
            assert _filtered(pieces, capture)[0] == by_byte


def test_a_whole_header_takes_one_pass_and_drops_bcc():
    message = (b"From: a@example.test\r\nBcc: c@example.test,\r\n d@example.test\r\nTo : b@example.test\r\n"
               b"Subject: s\r\n\r\nBcc: body\r\n")
    result, whole_headers = _filtered([message], ENVELOPE_FIELDS)
    assert whole_headers == 1
    assert result == (b"From: a@example.test\r\nTo : b@example.test\r\nSubject: s\r\n\r\nBcc: body\r\n",
                      [("From", b" a@example.test"), ("Bcc", b" c@example.test,\r\n d@example.test"),
                       ("To", b" b@example.test")])


def test_a_captured_field_over_the_limit_is_refused_on_the_whole_header_path():
    message = b"To: " + b"x" * envelope.MAX_CAPTURED_FIELD + b"\r\n\r\n"
    with pytest.raises(DataError, match=f"over {envelope.MAX_CAPTURED_FIELD} bytes"):
        BccRemover(ENVELOPE_FIELDS)._whole_header(message)
