"""prepare_message marks a kept message whose line endings are all CRLF (OutgoingMessage.crlf),
and BDAT then sends its bytes without converting them (issue 16): the mark must never be
set on bytes that the conversion would change."""

import io

from hypothesis import given
from hypothesis import strategies as st

from mimekit.streams.filters import chain
from mimekit.streams.line_endings import CRLFNormaliser
from mimekit.transport.smtp import envelope
from mimekit.transport.smtp.envelope import _KeptBytes, prepare_message

PIECES = [b"From: a@example.test", b"To: b@example.test", b"Bcc: c@example.test", b"Subject: s",
          b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\n\n", b"body", b" ", b"\xe9", b"."]


@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_crlf_is_set_exactly_when_the_conversion_changes_nothing(pieces):
    message = prepare_message("-", to=["b@example.test"], stream=io.BytesIO(b"".join(pieces)))
    assert isinstance(message.chunks, _KeptBytes)
    kept = b"".join(message.chunks())
    assert message.crlf == (b"".join(chain(message.chunks(), CRLFNormaliser())) == kept)


def test_a_message_streamed_from_its_file_is_converted_when_sent(tmp_path, monkeypatch):
    monkeypatch.setattr(envelope, "KEEP_MESSAGE_BYTES", 0)   # too large to keep
    path = tmp_path / "m.eml"
    path.write_bytes(b"From: a@example.test\r\n\r\nbody\r\n")
    message = prepare_message(str(path), to=["b@example.test"])
    assert not isinstance(message.chunks, _KeptBytes) and not message.crlf
