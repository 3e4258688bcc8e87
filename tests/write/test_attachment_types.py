"""compose: a media type per attachment or inline file, a message file sniffed as
message/rfc822, and the warnings about cid: references and shared Content-IDs."""

import email
import email.policy

import pytest

from mimekit.write.composer import SCAN_CHUNK_SIZE, compose
from mimekit.write.sniff import sniff_content_type
from mimekit.write.writer import message_bytes

SENDER = "zoe@example.org"
HEADER_ONLY_LIBMAGIC_CALLS_TEXT = b"MIME-Version: 1.0\nMessage-ID: <1@example.org>\nSubject: hi\n\nhello\n"


def parsed(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message_bytes(message), policy=email.policy.default)


def test_each_attachment_has_its_own_type_and_the_default_fills_the_rest(fixtures_dir):
    message = compose(from_=SENDER, attachments=[(fixtures_dir / "tiny.pdf", "application/x-report"),
                                                 fixtures_dir / "tiny.png",
                                                 (fixtures_dir / "body.txt", "text/markdown")],
                      attachment_type="application/x-default")
    assert [part.get_content_type() for part in parsed(message).iter_parts()] == [
        "application/x-report", "application/x-default", "text/markdown"]


def test_without_a_type_attachments_are_sniffed(fixtures_dir):
    message = compose(from_=SENDER, attachments=[(fixtures_dir / "tiny.pdf", None), fixtures_dir / "tiny.png"])
    assert [part.get_content_type() for part in parsed(message).iter_parts()] == ["application/pdf", "image/png"]


def test_an_inline_file_may_have_a_type_and_keeps_its_content_id(fixtures_dir):
    message = compose(from_=SENDER, html=b'<img src="cid:tiny.png@inline">',
                      inline=[(fixtures_dir / "tiny.png", "image/x-icon")])
    image = parsed(message).get_payload()[1]
    assert image.get_content_type() == "image/x-icon" and image["Content-ID"] == "<tiny.png@inline>"
    assert message.warnings == []


@pytest.mark.parametrize("head", [
    HEADER_ONLY_LIBMAGIC_CALLS_TEXT,
    b"Return-Path: <a@example.org>\r\nDelivered-To: b@example.org\r\n\r\nhi\r\n",
    b"Received: from a by b; Thu, 1 Jan 2026 00:00:00 +0000\nFrom: a@example.org\n\nhi\n",
])
@pytest.mark.parametrize("name", ["saved.eml", "saved.txt", "saved"])
def test_a_message_is_message_rfc822_whatever_its_name(head, name):
    assert sniff_content_type(head, name) == "message/rfc822"


@pytest.mark.parametrize("note", [b"Subject: meeting notes\n\nwe agreed\n", b"To: buy milk\n\n- eggs\n"])
def test_one_field_over_a_note_makes_a_message_only_in_an_eml(note):
    """A note that starts "Subject: ..." or a to-do list that starts "To: ..." stays text;
    saved as .eml, the name confirms what one field only suggests."""
    assert sniff_content_type(note, "notes.txt") == "text/plain"
    assert sniff_content_type(note, "notes") == "text/plain"
    assert sniff_content_type(note, "notes.eml") == "message/rfc822"


def test_an_mbox_is_not_one_message():
    assert sniff_content_type(b"From a@example.org Thu Jan  1 00:00:00 2026\nFrom: a@example.org\n\nhi\n",
                              "box") != "message/rfc822"


def test_an_attached_message_travels_as_it_is_in_7bit(tmp_path):
    saved = tmp_path / "saved.txt"
    saved.write_bytes(HEADER_ONLY_LIBMAGIC_CALLS_TEXT.replace(b"\n", b"\r\n"))
    message = parsed(compose(from_=SENDER, attachments=[saved], encoding="base64"))
    attached, = message.iter_parts()
    assert attached.get_content_type() == "message/rfc822" and attached["Content-Transfer-Encoding"] == "7bit"
    assert attached.get_content()["Message-ID"] == "<1@example.org>"


# -- warnings -------------------------------------------------------------------------

def test_two_inline_files_of_one_name_are_renamed_with_a_warning_naming_both(tmp_path, fixtures_dir):
    first, second = tmp_path / "a" / "logo.png", tmp_path / "b" / "logo.png"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes((fixtures_dir / "tiny.png").read_bytes())
    message = compose(from_=SENDER, html=b'<img src="cid:logo.png@inline"><img src="cid:logo.png-2@inline">',
                      inline=[first, second])
    assert message.warnings == [f"inline files {first} and {second} would share Content-ID <logo.png@inline>: "
                                f"{second} gets <logo.png-2@inline>"]
    content_ids = [part["Content-ID"] for part in parsed(message).walk() if part["Content-ID"]]
    assert content_ids == ["<logo.png@inline>", "<logo.png-2@inline>"]


def test_names_that_differ_but_give_one_content_id_are_warned_about_too(tmp_path, fixtures_dir):
    spaced, underscored = tmp_path / "my logo.png", tmp_path / "my_logo.png"
    for path in (spaced, underscored):
        path.write_bytes((fixtures_dir / "tiny.png").read_bytes())
    message = compose(from_=SENDER, body=b"text", inline=[spaced, underscored])
    assert [warning.split(":")[0] for warning in message.warnings] == [
        f"inline files {spaced} and {underscored} would share Content-ID <my_logo.png@inline>"]


def test_a_cid_reference_no_inline_part_has_is_warned_about_once(fixtures_dir):
    html = (b'<img src="cid:tiny.png@inline"><img src=\'cid:chart%40report\'>'
            b'<div style="background: url(cid:chart@report)">')
    message = compose(from_=SENDER, html=html, inline=[fixtures_dir / "tiny.png"])
    assert message.warnings == ["the HTML body references cid:chart@report, which no inline part has"]


def test_a_cid_reference_across_the_scan_chunks_is_read_whole(fixtures_dir):
    """A reference cut by a read boundary must not be taken for the missing "tiny.p"."""
    padding = b"x" * (SCAN_CHUNK_SIZE - len(b'<img src="cid:tiny.p'))
    html = b"<p>" + padding[3:] + b'<img src="cid:tiny.png@inline"><img src="cid:gone@x">'
    message = compose(from_=SENDER, html=html, inline=[fixtures_dir / "tiny.png"])
    assert message.warnings == ["the HTML body references cid:gone@x, which no inline part has"]


def test_cid_in_a_text_body_is_not_a_reference(fixtures_dir):
    message = compose(from_=SENDER, body=b"see cid:nothing@here", inline=[fixtures_dir / "tiny.png"])
    assert message.warnings == []
