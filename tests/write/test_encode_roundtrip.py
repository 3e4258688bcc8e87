"""Round trip: whatever goes in comes back out of Python's `email` (the oracle) with zero
defects, and out of mimekit's own decoders for any chunking of the encoded body."""

import email.header
import email.parser
import email.policy
import re
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from mimekit.write.composer import CRLF, LF, MessageBuilder
from mimekit.codecs.transfer import make_decoder
from mimekit.write.writer import message_bytes

from helpers import assert_clean_message
from strategies import chunkings, display_names, file_names, header_text, payloads

ADDRESS = "someone@example.org"


def quoted_mailbox(display_name: str, address: str) -> str:
    """A mailbox whose display name is an RFC 5322 quoted-string, so any text is allowed."""
    escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}" <{address}>'


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)


# Header fields whose values must parse without a defect. Content-Type is left out on
# purpose: its name= parameter carries RFC 2047 words inside a quoted string for Outlook
# (anchors.md), which Python reads correctly but flags; get_filename() uses filename*=.
_CHECKED_FIELDS = ("From", "To", "Subject", "Date", "Message-ID", "Content-Disposition",
                   "Content-Transfer-Encoding", "MIME-Version")


def assert_no_defects(message: email.message.EmailMessage) -> None:
    for part in message.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
        for name in _CHECKED_FIELDS:
            value = part[name]
            assert value is None or not value.defects, (name, value, value.defects)


def assert_display_name(message: email.message.EmailMessage, expected: str) -> None:
    """A plain name comes back exactly. An encoded name decodes exactly by email.header,
    which follows RFC 2047 §6.2; Python's `display_name` then differs only in spaces: it
    collapses a run of spaces inside an encoded-word and keeps the space between adjacent
    encoded-words (CPython gh-128110)."""
    parsed = message["From"].addresses[0].display_name
    raw = dict(message.raw_items())["From"]
    if "=?" not in raw:
        assert parsed == expected
        return
    raw_name = re.sub(r"\r?\n(?=[ \t])", "", raw).rpartition("<")[0].strip()
    assert str(email.header.make_header(email.header.decode_header(raw_name))) == expected
    assert parsed.replace(" ", "") == expected.replace(" ", "")


@settings(max_examples=100)
@given(payload=payloads, filename=file_names, subject=header_text, display_name=display_names,
       eol=st.sampled_from([CRLF, LF]))
def test_anything_comes_back_from_python_email(payload, filename, subject, display_name, eol):
    builder = MessageBuilder()
    builder.add_header("From", quoted_mailbox(display_name, ADDRESS))
    builder.add_header("Subject", subject)
    builder.attach(payload, filename=filename)
    raw = message_bytes(builder.build(), eol)
    assert_clean_message(raw, eol)
    message = parse(raw)
    assert_no_defects(message)
    assert message["Subject"] == subject
    sender, = message["From"].addresses
    assert sender.addr_spec == ADDRESS
    assert_display_name(message, display_name)
    attachment, = message.iter_parts()
    assert attachment.get_filename() == filename
    assert attachment.get_payload(decode=True) == payload


@settings(max_examples=100)
@given(st.data())
def test_mimekit_decoders_give_the_bytes_back_for_any_chunking(data):
    payload = data.draw(payloads)
    builder = MessageBuilder(data.draw(st.sampled_from(["auto", "base64", "quoted-printable"])))
    builder.add_header("From", ADDRESS)
    builder.attach(payload, filename="payload.bin")
    attachment, = parse(message_bytes(builder.build())).iter_parts()
    encoded = attachment.get_payload().encode("ascii")
    decoder = make_decoder(attachment["Content-Transfer-Encoding"])
    decoded = b"".join(decoder.feed(piece) for piece in data.draw(chunkings(encoded))) + decoder.flush()
    # the line break before the boundary belongs to the boundary, not to a 7bit body
    assert decoded == payload
    assert not decoder.defects


@settings(max_examples=50)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_body_text_comes_back_with_crlf_line_breaks_in_any_encoding(text):
    builder = MessageBuilder()
    builder.add_header("From", ADDRESS)
    builder.set_body(text.encode("utf-8"))
    message = parse(message_bytes(builder.build()))
    assert_no_defects(message)
    assert message.get_content() == re.sub(r"\r?\n", "\r\n", text)   # a bare CR is data


def test_fixtures_round_trip_through_the_cli(fixtures_dir, tmp_path):
    files = sorted(p for p in fixtures_dir.iterdir() if p.suffix != ".py")
    out = tmp_path / "all.eml"
    args = [arg for path in files for arg in ("--attach", str(path))]
    subprocess.run([sys.executable, "-m", "mimekit_cli", "encode", "--from", ADDRESS, "-o", str(out),
                    "--body", str(fixtures_dir / "latin1.txt"), *args], check=True)
    message = parse(out.read_bytes())
    assert_no_defects(message)
    body, *attachments = message.iter_parts()
    assert body.get_content() == (fixtures_dir / "latin1.txt").read_bytes().decode("latin-1").replace("\n", "\r\n")
    assert [part.get_filename() for part in attachments] == [path.name for path in files]
    for path, part in zip(files, attachments):
        assert part.get_payload(decode=True) == path.read_bytes(), path.name
