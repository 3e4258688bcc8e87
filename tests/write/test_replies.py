"""mimekit.write.replies: what a reply or forward takes from its original, function by
function, on messages parsed by mimekit (the CLI's round trips are tests/cli/test_encode_reply.py)."""

import io

import pytest

from mimekit.errors import DataError
from mimekit.read.tree import parse_message
from mimekit.write import replies

ORIGINAL = (b"From: =?utf-8?q?M=C3=BCller=2C_J=C3=BCrgen?= <juergen@example.test>\r\n"
            b"To: Bob <BOB@example.test>, carol@example.test\r\n"
            b"Cc: Dave <dave@example.test>, juergen@example.test, Carol <Carol@Example.test>\r\n"
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
            b"Date: Mon, 1 Jul 2024 10:00:00 +0000\r\n"
            b"Message-ID: <m2@example.test>\r\n"
            b"References: <m0@example.test>\r\n <m1@example.test>\r\n"
            b"In-Reply-To: <m1@example.test>\r\n"
            b"\r\n"
            b"first line\r\n> what you said\r\n\r\nlast line\r\n")


def parsed(data: bytes):
    return parse_message(io.BytesIO(data))


def specs(addresses) -> list[str]:
    return [address.addr_spec for address in addresses]


@pytest.mark.parametrize("subject, expected", [
    ("Status", "Re: Status"), ("Re: Status", "Re: Status"), ("RE: Re: re:  Status", "Re: Status"),
    ("Aw: Status", "Re: Status"), ("SV: AW: Status", "Re: Status"), ("Re[2]: Status", "Re: Status"),
    ("Fwd: news", "Re: Fwd: news"), ("Regarding", "Re: Regarding"), ("", "Re: "), (None, "Re: "),
    ("a\r\n b", "Re: a  b")])
def test_reply_subjects_carry_one_re(subject, expected):
    assert replies.reply_subject(subject) == expected


@pytest.mark.parametrize("subject, expected", [
    ("hello", "Fwd: hello"), ("Fwd: hello", "Fwd: hello"), ("FW: fwd:hello", "Fwd: hello"),
    ("Fw: hello", "Fwd: hello"), ("Re: hello", "Fwd: Re: hello"), (None, "Fwd: ")])
def test_forward_subjects_carry_one_fwd(subject, expected):
    assert replies.forward_subject(subject) == expected


def test_a_reply_goes_to_the_author_and_threads_under_the_original():
    with parsed(ORIGINAL) as original:
        reply = replies.reply(original)
    assert replies.typed(reply.to) == '"Müller, Jürgen" <juergen@example.test>'
    assert (reply.cc, reply.subject, reply.in_reply_to) == ([], "Re: Grüße", "<m2@example.test>")
    assert reply.references == ["<m0@example.test>", "<m1@example.test>", "<m2@example.test>"]
    assert reply.quote == ("On Mon, 1 Jul 2024 10:00:00 +0000, Müller, Jürgen wrote:\n"
                           "> first line\n>> what you said\n>\n> last line\n")


def test_reply_all_copies_the_others_once_and_never_the_user():
    with parsed(ORIGINAL) as original:
        reply = replies.reply(original, reply_all=True, own=["bob@example.test"])
    # Bob is the user (any case); Jürgen is already in To; Carol is listed twice, in two cases.
    assert specs(reply.cc) == ["carol@example.test", "dave@example.test"]


@pytest.mark.parametrize("reply_all, to, cc", [
    (False, ["carol@example.test", "dave@example.test"], []),
    (True, ["carol@example.test", "dave@example.test"], ["erin@example.test"]),
])
def test_a_reply_to_the_users_own_message_goes_to_its_recipients_not_back_to_the_user(reply_all, to, cc):
    """As mutt does: the user answering what they sent continues with its To (but
    themselves, and once each); a Reply-To they set does not send it back to them."""
    with parsed(b"From: Bob <BOB@example.test>\r\nReply-To: bob@example.test\r\n"
                b"To: carol@example.test, Bob <bob@example.test>, Dave <dave@example.test>, Carol@Example.test\r\n"
                b"Cc: erin@example.test, bob@example.test\r\nSubject: plans\r\n\r\nhi\r\n") as original:
        reply = replies.reply(original, reply_all=reply_all, own=["bob@example.test"])
    assert (specs(reply.to), specs(reply.cc)) == (to, cc)


def test_a_note_to_self_is_answered_to_self():
    with parsed(b"From: bob@example.test\r\nTo: bob@example.test\r\nSubject: note\r\n\r\nhi\r\n") as original:
        reply = replies.reply(original, reply_all=True, own=["bob@example.test"])
    assert (specs(reply.to), reply.cc) == (["bob@example.test"], [])


def test_a_message_from_someone_else_is_answered_to_them_whoever_it_went_to():
    with parsed(ORIGINAL) as original:
        reply = replies.reply(original, own=["carol@example.test"])
    assert specs(reply.to) == ["juergen@example.test"]


def test_reply_to_is_honoured_and_references_fall_back_on_a_single_in_reply_to():
    with parsed(b"From: alice@example.test\r\nReply-To: List <list@example.test>, owner@example.test\r\n"
                b"To: bob@example.test\r\nSubject: news\r\nMessage-ID: <m5@example.test>\r\n"
                b"In-Reply-To: <m4@example.test>\r\n\r\nbody\r\n") as original:
        reply = replies.reply(original, reply_all=True)
    assert specs(reply.to) == ["list@example.test", "owner@example.test"]
    assert specs(reply.cc) == ["bob@example.test"]                      # From is not copied: Reply-To chose
    assert reply.references == ["<m4@example.test>", "<m5@example.test>"]
    assert reply.quote == "alice@example.test wrote:\n> body\n"          # no Date: no "On ..."


def test_ids_with_8bit_bytes_are_left_out_of_references():
    """An id that is not ASCII cannot be written in References but as an encoded word,
    which no threading reader would match: it is dropped, the rest of the chain kept."""
    with parsed("From: a@example.test\r\nMessage-ID: <m3@example.test>\r\n"
                "References: <é@example.test> <m1@example.test>\r\n\r\nhi\r\n".encode()) as original:
        reply = replies.reply(original)
    assert reply.references == ["<m1@example.test>", "<m3@example.test>"]


def test_a_message_without_message_id_gets_a_reply_that_threads_as_far_as_it_can():
    with parsed(b"From: a@example.test\r\nSubject: x\r\nIn-Reply-To: <p1@x> <p2@x>\r\n\r\nhi\r\n") as original:
        reply = replies.reply(original, quote=False)
    # Two ids in In-Reply-To say nothing of the order: no References from them either.
    assert (reply.in_reply_to, reply.references, reply.quote) == (None, [], "")


def test_the_quote_is_the_best_text_of_an_html_only_message_and_is_cut_at_the_limit(monkeypatch):
    html = b"<p>Hello <b>there</b></p><p>" + b"x" * 200 + b"</p>"
    with parsed(b"From: a@example.test\r\nContent-Type: text/html\r\n\r\n" + html) as original:
        assert replies.original_text(original).startswith("Hello there")
        monkeypatch.setattr(replies, "QUOTED_TEXT_LIMIT", 50)
        assert len(replies.original_text(original)) == 50


def test_a_message_without_text_quotes_nothing():
    with parsed(b"From: a@example.test\r\nContent-Type: image/png\r\n\r\n\x89PNG") as original:
        assert replies.original_text(original) == ""
        assert replies.reply(original).quote == "a@example.test wrote:\n"   # no lone ">" line


def test_quoting_stacks_quote_marks_without_spaces():
    assert replies.quoted("a\n> b\n\n>> c") == "> a\n>> b\n>\n>>> c\n"


def test_an_inline_forward_shows_the_original_fields_and_text():
    with parsed(ORIGINAL) as original:
        block = replies.forwarded_inline(original)
    assert block == ("---------- Forwarded message ----------\n"
                     "From: Müller, Jürgen <juergen@example.test>\n"
                     "Date: Mon, 1 Jul 2024 10:00:00 +0000\n"
                     "Subject: Grüße\n"
                     "To: Bob <BOB@example.test>, carol@example.test\n"
                     "Cc: Dave <dave@example.test>, juergen@example.test, Carol <Carol@Example.test>\n"
                     "\n"
                     "first line\n> what you said\n\nlast line\n")


def test_line_breaks_hidden_in_encoded_words_do_not_reach_new_fields():
    with parsed(b"From: =?utf-8?q?Eve=0D=0ABcc=3A_x?= <eve@example.test>\r\n"
                b"Subject: =?utf-8?q?a=0D=0AX-Injected=3A_1?=\r\n\r\nhi\r\n") as original:
        reply = replies.reply(original)
    assert "\n" not in replies.typed(reply.to) + reply.subject + reply.quote.splitlines()[0]


def test_the_attachment_name_is_the_subject_made_safe():
    assert replies.forward_attachment_name("Q3: report/final") == "Q3: report_final.eml"   # no path separator
    assert replies.forward_attachment_name(None) == "message.eml"


@pytest.mark.parametrize("data", [b"", b"just some text\n", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"])
def test_what_is_not_a_message_is_refused(data):
    with parsed(data) as original, pytest.raises(DataError, match="^picture.png: not a message"):
        replies.check_message(original, "picture.png")
