"""Envelope from the message and the Bcc filter: Bcc recipients get mail, nobody sees Bcc."""

import io

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mimekit.transport.smtp.envelope import ENVELOPE_FIELDS, BccRemover, Envelope, envelope_for, prepare_message, remove_bcc
from mimekit.errors import DataError
from mimekit.transport.smtp.data import scan_message
from strategies import chunkings

MESSAGE = (b"From: Alice <alice@example.test>\r\n"
           b"To: Bob <bob@example.test>, \"Doe, Carol\" <carol@example.test>\r\n"
           b"Bcc: secret@example.test,\r\n"
           b"\thidden@example.test\r\n"
           b"Subject: Bcc: is only a word here\r\n"
           b"bcc : shouty@example.test\r\n"
           b"Cc: team: dave@example.test, erin@example.test;\r\n"
           b"\r\n"
           b"Bcc: this line is body text and stays\r\n")
WITHOUT_BCC = (b"From: Alice <alice@example.test>\r\n"
               b"To: Bob <bob@example.test>, \"Doe, Carol\" <carol@example.test>\r\n"
               b"Subject: Bcc: is only a word here\r\n"
               b"Cc: team: dave@example.test, erin@example.test;\r\n"
               b"\r\n"
               b"Bcc: this line is body text and stays\r\n")


def test_bcc_fields_and_their_continuations_are_removed_from_the_header_only():
    assert b"".join(remove_bcc([MESSAGE])) == WITHOUT_BCC


@given(st.data(), st.sampled_from([MESSAGE, MESSAGE.replace(b"\r\n", b"\n"), MESSAGE.replace(b"\r\n", b"\r")]))
def test_bcc_removal_is_the_same_for_any_chunking_and_line_ending(data, message):
    whole = b"".join(remove_bcc([message]))
    assert b"".join(remove_bcc(data.draw(chunkings(message)))) == whole
    assert b"secret@" not in whole.split(b"this line")[0] and b"shouty@" not in whole


@given(st.data())
def test_the_envelope_fields_are_captured_in_the_same_pass_whatever_the_chunking(data):
    remover = BccRemover(capture=ENVELOPE_FIELDS)
    out = b"".join(remover.feed(piece) for piece in data.draw(chunkings(MESSAGE))) + remover.flush()
    assert out == WITHOUT_BCC
    assert remover.fields == [
        ("From", b" Alice <alice@example.test>"),
        ("To", b" Bob <bob@example.test>, \"Doe, Carol\" <carol@example.test>"),
        ("Bcc", b" secret@example.test,\r\n\thidden@example.test"),
        ("bcc", b" shouty@example.test"),
        ("Cc", b" team: dave@example.test, erin@example.test;")]


def test_an_endless_address_field_is_refused_not_buffered():
    remover = BccRemover(capture=ENVELOPE_FIELDS)
    remover.feed(b"To: a@example.test,\r\n")
    with pytest.raises(DataError, match="over"):
        for _ in range(5000):
            remover.feed(b" b@example.test,\r\n")


header_lines = st.lists(st.tuples(st.sampled_from([b"Bcc: x@a", b"bcc : y@a", b" folded", b"\tfolded", b"To: z@a",
                                                   b"Subject: Bcc: w", b"X-Bcc: q@a"]),
                                  st.sampled_from([b"\r\n", b"\n", b"\r"])), max_size=12)


def reference_without_bcc(lines: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """Whole-message reference: drop Bcc fields and the continuation lines that follow them."""
    kept, dropping = [], False
    for text, ending in lines:
        if not text.startswith((b" ", b"\t")):
            dropping = text.split(b":")[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(text + ending)
    return b"".join(kept) + body


@given(st.data(), header_lines, st.sampled_from([b"\r\n", b"\n", b"\r"]))
def test_generated_headers_with_mixed_line_endings(data, lines, blank):
    assume(not (lines and lines[-1][1] == b"\r" and blank.startswith(b"\n")))   # that would be one CRLF
    body = blank + b"Bcc: body text\r\n"
    message = b"".join(text + ending for text, ending in lines) + body
    assert b"".join(remove_bcc(data.draw(chunkings(message)))) == reference_without_bcc(lines, body)


def test_a_message_without_header_or_ending_mid_header_passes_untouched():
    assert b"".join(remove_bcc([b"\r\nBcc: body\r\n"])) == b"\r\nBcc: body\r\n"
    assert b"".join(remove_bcc([b"Subject: x\r\nBc"])) == b"Subject: x\r\nBc"
    assert b"".join(remove_bcc([b"Subject: x\r\nBcc: y"])) == b"Subject: x\r\n"


FIELDS = [("From", b"Alice <alice@example.test>"),
          ("To", b"Bob <bob@example.test>, \"Doe, Carol\" <carol@example.test>"),
          ("Cc", b"team: dave@example.test,\r\n erin@example.test;"),
          ("Bcc", b"secret@example.test, bob@example.test")]


def test_sender_from_the_from_header_recipients_only_when_asked():
    assert envelope_for(FIELDS, to=["zed@example.test"]).recipients == ("zed@example.test",)
    envelope = envelope_for(FIELDS, extract=True)
    assert envelope.sender == "alice@example.test"
    assert envelope.recipients == ("bob@example.test", "carol@example.test", "dave@example.test",
                                   "erin@example.test", "secret@example.test")


def test_command_line_recipients_come_first_and_header_ones_are_added():
    envelope = envelope_for(FIELDS, to=["Zed <zed@example.test>", "bob@example.test"], extract=True)
    assert envelope.recipients[:2] == ("zed@example.test", "bob@example.test")
    assert len(envelope.recipients) == 6


def test_from_option_overrides_and_may_be_the_null_sender():
    assert envelope_for(FIELDS, sender="bounce@example.test").sender == "bounce@example.test"
    assert envelope_for(FIELDS, sender="").sender == ""
    assert envelope_for(FIELDS, sender="<>").sender == ""
    assert envelope_for(FIELDS, sender="Bounces <bounce@example.test>").sender == "bounce@example.test"
    with pytest.raises(DataError, match="exactly one address"):
        envelope_for(FIELDS, sender="a@example.test, b@example.test")


@pytest.mark.parametrize("option, value", [
    ("to", "bob@example.test <x@y.test>"), ("to", "a@b>\r\nRCPT TO:<x@y"), ("sender", "a@b> SIZE=1 AUTH=<evil>"),
    ("to", "a@example.test, b@example.test"), ("to", "Team: a@example.test;"), ("to", ""),
    ("sender", " "), ("to", '"a b"@example.test'), ("sender", "a\x00@example.test"),
])
def test_a_command_line_address_is_exactly_one_mailbox_read_without_guessing(option, value):
    arguments = {"sender": value} if option == "sender" else {"to": [value]}
    with pytest.raises(DataError) as refused:
        envelope_for(FIELDS, **arguments)
    assert str(refused.value).startswith(f"{option} ")
    assert repr(value) in str(refused.value) and str(refused.value).isprintable()


HOSTILE_TO = ("To", b" a@example.test, bob@example.test <x@y.test>")


def test_a_header_read_for_the_envelope_is_held_to_the_same_rule():
    with pytest.raises(DataError, match="header To:"):
        envelope_for([*FIELDS, HOSTILE_TO], extract=True)
    with pytest.raises(DataError, match="header From:"):
        envelope_for([("From", b"a@b> SIZE=1 AUTH=<evil>")])
    assert envelope_for([*FIELDS, HOSTILE_TO]).recipients == ()   # without -t To is not read, not refused
    assert envelope_for([HOSTILE_TO], sender="a@example.test").sender == "a@example.test"


RESENT = [("Resent-From", b"Resender <resender@example.test>"), ("Resent-To", b"new@example.test"),
          ("Resent-Cc", b"copy@example.test"), ("Resent-Bcc", b"hidden@example.test"),
          ("Resent-Date", b"Fri, 02 Jan 2026 10:00:00 +0000")]


def test_a_resent_message_goes_to_the_resent_recipients_from_the_resender():
    envelope = envelope_for(FIELDS + RESENT, extract=True)
    assert envelope == Envelope("resender@example.test", ("new@example.test", "copy@example.test",
                                                          "hidden@example.test"))
    no_resent_recipient = envelope_for(FIELDS + RESENT[-1:], sender="a@example.test", extract=True)
    assert no_resent_recipient.recipients == ()   # the original To, Cc and Bcc already got it
    with pytest.raises(DataError, match="Resent-From"):
        envelope_for(RESENT[1:])


def test_resent_bcc_is_removed_like_bcc():
    message = (b"From: a@example.test\r\nResent-From: r@example.test\r\nResent-Bcc: hidden@example.test,\r\n"
               b" other@example.test\r\nresent-bcc : x@example.test\r\nResent-To: new@example.test\r\n"
               b"\r\nResent-Bcc: body text stays\r\n")
    assert b"".join(remove_bcc([message])) == (b"From: a@example.test\r\nResent-From: r@example.test\r\n"
                                               b"Resent-To: new@example.test\r\n\r\nResent-Bcc: body text stays\r\n")


def test_several_authors_use_the_sender_field():
    fields = [("From", b"a@example.test, b@example.test"), ("Sender", b"sec@example.test")]
    assert envelope_for(fields).sender == "sec@example.test"


def test_no_from_and_no_option_is_an_unusable_message():
    with pytest.raises(DataError, match="give a sender"):
        envelope_for([("To", b"bob@example.test")])


def test_prepare_reads_the_envelope_and_scans_what_will_be_transmitted(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(MESSAGE)
    message = prepare_message(str(path), extract=True)
    assert message.sender == "alice@example.test"
    assert "secret@example.test" in message.recipients and "shouty@example.test" in message.recipients
    assert b"".join(message.chunks()) == WITHOUT_BCC
    assert b"".join(message.chunks()) == WITHOUT_BCC   # can be read again
    assert message.scan == scan_message([WITHOUT_BCC])


def test_stdin_is_spooled_so_it_can_be_read_twice():
    stdin = io.BytesIO(MESSAGE.replace(b"\r\n", b"\n"))
    message = prepare_message("-", to=["x@example.test"], stream=stdin)
    assert message.source == "-" and message.recipients == ("x@example.test",)
    expected = WITHOUT_BCC.replace(b"\r\n", b"\n")
    assert b"".join(message.chunks()) == expected
    assert b"".join(message.chunks()) == expected
    assert message.scan.size == len(WITHOUT_BCC)   # SIZE counts CRLF line endings


def test_a_bad_command_line_address_is_refused_before_anything_is_read(tmp_path):
    with pytest.raises(DataError, match="^to "):
        prepare_message(str(tmp_path / "does-not-exist"), to=["bob@example.test <x@y.test>"])


def test_a_header_with_no_usable_envelope_refuses_only_its_message(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(MESSAGE.replace(b"To: Bob <bob@example.test>", b"To: a@b>\r\n RCPT TO:<x@y>"))
    message = prepare_message(str(path), to=["zed@example.test"], extract=True)
    assert isinstance(message.refused, DataError) and "header To:" in str(message.refused)
    assert (message.sender, message.recipients) == ("", ("zed@example.test",))   # no address from the bad header
    assert prepare_message(str(path), to=["zed@example.test"]).refused is None   # without -t To is not read
