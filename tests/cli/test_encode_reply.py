"""`mimekit encode --reply/--forward/--forward-inline` as a user runs them: the output read
back with Python's email package, and by mblaze (mthread threads by References and
In-Reply-To, mshow shows the quote and lists a forwarded message/rfc822 part)."""

import email
import email.policy
import io
import os
import shutil
import subprocess
import sys

import pytest

from helpers import assert_clean_message
from mimekit.read.check import check_message

ME = "Bob <BOB@example.test>"
ORIGINAL = (b"From: =?utf-8?q?M=C3=BCller=2C_J=C3=BCrgen?= <juergen@example.test>\r\n"
            b"To: Bob <bob@example.test>, carol@example.test\r\n"
            b"Cc: Dave <dave@example.test>, juergen@example.test, Carol <Carol@Example.test>\r\n"
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
            b"Date: Mon, 1 Jul 2024 10:00:00 +0000\r\n"
            b"Message-ID: <m2@example.test>\r\n"
            b"References: <m0@example.test> <m1@example.test>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n"
            b"first line\r\n> what you said\r\n\r\nlast line\r\n")


def encode(*args, input=None):
    """Run `mimekit encode` with no $EMAIL: each test names its sender."""
    inherited = {name: value for name, value in os.environ.items() if name != "EMAIL"}
    return subprocess.run([sys.executable, "-m", "mimekit_cli", "encode", *map(str, args)], input=input,
                          capture_output=True, env=inherited)


def encoded(*args, input=None) -> bytes:
    result = encode(*args, input=input)
    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    return result.stdout


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def addresses(message, name: str) -> list[tuple[str, str]]:
    field = message[name]
    return [(address.display_name, address.addr_spec) for address in field.addresses] if field else []


def assert_fails(result, code: int, *mentions: str) -> None:
    """Exit `code`, nothing on stdout, one line on stderr naming `mentions`, no traceback."""
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert result.stdout == b"" and len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
    for mention in mentions:
        assert mention in stderr, stderr


def mblaze(tool: str, *args, cwd) -> str:
    """An mblaze tool's output; its state (sequence, seen marks) kept in `cwd`, never ~/.mblaze."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"mblaze's {tool} is not installed")
    result = subprocess.run([path, *map(str, args)], cwd=cwd, capture_output=True, check=True,
                            env={**os.environ, "MBLAZE": str(cwd)})
    return result.stdout.decode()


@pytest.fixture
def original(tmp_path):
    path = tmp_path / "original.eml"
    path.write_bytes(ORIGINAL)
    return path


# -- reply ------------------------------------------------------------------------------------

def test_a_reply_to_all_reads_back_with_pythons_email(tmp_path, original):
    body = tmp_path / "body.txt"
    body.write_bytes("Grüße, danke".encode("iso-8859-1"))               # Latin-1, no line end
    reply = assert_clean_message(encoded("--from", ME, "--reply", original, "--all", "--body", body))
    assert addresses(reply, "to") == [("Müller, Jürgen", "juergen@example.test")]
    # Bob is the sender (in another case); Jürgen is already in To; Carol comes once.
    assert addresses(reply, "cc") == [("", "carol@example.test"), ("Dave", "dave@example.test")]
    assert reply["subject"] == "Re: Grüße aus Köln"                     # RFC 2047 both ways
    assert "=?utf-8?" in reply.as_string(policy=email.policy.compat32)   # and encoded on the wire
    assert reply["in-reply-to"] == "<m2@example.test>"
    assert reply["references"].split() == ["<m0@example.test>", "<m1@example.test>", "<m2@example.test>"]
    assert reply.get_content() == ("Grüße, danke\r\n\r\n"
                                   "On Mon, 1 Jul 2024 10:00:00 +0000, Müller, Jürgen wrote:\r\n"
                                   "> first line\r\n>> what you said\r\n>\r\n> last line\r\n")


def test_reply_to_is_honoured_and_given_fields_replace_or_add_as_the_help_says(tmp_path):
    original = tmp_path / "list.eml"
    original.write_bytes(b"From: alice@example.test\nReply-To: List <list@example.test>\n"
                         b"To: bob@example.test, carol@example.test\nSubject: RE: Aw: news\n"
                         b"Message-ID: <m5@example.test>\nIn-Reply-To: <m4@example.test>\n\nbody\n")
    derived = parse(encoded("--from", ME, "--reply", original, "--no-quote"))
    assert addresses(derived, "to") == [("List", "list@example.test")]
    assert derived["subject"] == "Re: news"
    assert derived["references"].split() == ["<m4@example.test>", "<m5@example.test>"]
    assert derived.get_content() == ""                                   # --no-quote, no --body
    given = parse(encoded("--from", ME, "--reply", original, "--all", "--to", "alice@example.test",
                          "--cc", "eve@example.test", "--subject", "Our news"))
    assert addresses(given, "to") == [("", "alice@example.test")]        # --to replaces
    assert [spec for _, spec in addresses(given, "cc")] == ["carol@example.test", "eve@example.test"]   # --cc adds
    assert given["subject"] == "Our news"                                # --subject replaces
    assert given.get_content() == "alice@example.test wrote:\r\n> body\r\n"


def test_a_reply_to_your_own_message_goes_to_its_recipients(tmp_path):
    """As in mutt: answering what you sent (its From is --from, or $EMAIL) continues with
    its To, not back to you."""
    sent = tmp_path / "sent.eml"
    sent.write_bytes(encoded("--from", ME, "--to", "carol@example.test", "--cc", "dave@example.test",
                             "--subject", "plans"))
    reply = parse(encoded("--from", "bob@example.test", "--reply", sent, "--all"))
    assert addresses(reply, "to") == [("", "carol@example.test")]
    assert addresses(reply, "cc") == [("", "dave@example.test")]
    by_email = subprocess.run([sys.executable, "-m", "mimekit_cli", "encode", "--reply", sent],
                              capture_output=True, env={**os.environ, "EMAIL": "Bob <bob@example.test>"})
    assert by_email.returncode == 0, by_email.stderr
    assert addresses(parse(by_email.stdout), "to") == [("", "carol@example.test")]


def test_a_reply_to_a_message_without_message_id_has_no_threading_fields(tmp_path):
    original = tmp_path / "bare.eml"
    original.write_bytes(b"From: a@example.test\nSubject: hi\n\nhello\n")
    reply = parse(encoded("--from", ME, "--reply", original))
    assert reply["in-reply-to"] is None and reply["references"] is None
    assert reply["subject"] == "Re: hi" and reply.get_content() == "a@example.test wrote:\r\n> hello\r\n"


def test_mthread_threads_replies_under_the_original_and_mshow_shows_the_quote(tmp_path, original):
    first = tmp_path / "first-reply.eml"
    first.write_bytes(encoded("--from", ME, "--reply", original, "--body", "-", input=b"Got it.\n"))
    second = tmp_path / "second-reply.eml"
    second.write_bytes(encoded("--from", "juergen@example.test", "--reply", first, "--body", "-", input=b"Good.\n"))
    unrelated = tmp_path / "unrelated.eml"
    unrelated.write_bytes(encoded("--from", ME, "--to", "x@example.test", "--subject", "other",
                                  "--header", "Date: Sun, 30 Jun 2024 10:00:00 +0000"))   # first by date
    threads = mblaze("mthread", second, first, unrelated, original, cwd=tmp_path)
    assert threads.splitlines() == [f"{unrelated}", f"{original}", f" {first}", f"  {second}"]
    shown = mblaze("mshow", second, cwd=tmp_path)
    assert "Subject: Re: Grüße aus Köln" in shown                        # one Re after two replies
    assert ("Bob wrote:\n> Got it.\n>\n> On Mon, 1 Jul 2024 10:00:00 +0000, Müller, Jürgen wrote:\n"
            ">> first line\n>>> what you said\n") in shown


def test_messages_are_named_as_the_reading_commands_name_them(tmp_path):
    mbox = tmp_path / "box.mbox"
    second = b"From: two@example.test\nSubject: second\nMessage-ID: <two@x.test>\n\n>From the start\n"
    mbox.write_bytes(b"From a@x Mon Jul  1 10:00:00 2024\nFrom: one@example.test\nSubject: first\n\n1\n\n"
                     b"From b@x Mon Jul  1 10:00:00 2024\n" + second)
    offset = mbox.read_bytes().index(b"From b@x")
    reply = parse(encoded("--from", ME, "--reply", f"{mbox}:{offset}"))
    assert (reply["to"], reply["in-reply-to"]) == ("two@example.test", "<two@x.test>")
    assert reply.get_content().endswith("> From the start\r\n")         # mboxrd quoting undone
    maildir = tmp_path / "Mail"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    (maildir / "cur" / "1700000000.M1P1.host:2,S").write_bytes(ORIGINAL.replace(b"\r\n", b"\n"))
    forward = parse(encoded("--from", ME, "--to", "x@example.test",
                            "--forward-inline", f"{maildir}:1700000000.M1P1.host"))
    assert forward["subject"] == "Fwd: Grüße aus Köln"
    from_stdin = parse(encoded("--from", ME, "--reply", "-", input=ORIGINAL))
    assert from_stdin["in-reply-to"] == "<m2@example.test>"


# -- forward ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line_end", [b"\r\n", b"\n"], ids=["crlf", "lf-as-stores-keep"])
def test_a_forwarded_message_is_attached_as_message_rfc822_byte_for_byte(tmp_path, original, line_end):
    stored = tmp_path / "stored.eml"
    stored.write_bytes(ORIGINAL.replace(b"\r\n", line_end))
    data = encoded("--from", ME, "--to", "dave@example.test", "--forward", stored, "--body", "-", input=b"FYI\n")
    assert check_message(io.BytesIO(data)).ok and data.isascii()
    forward = parse(data)
    assert forward["subject"] == "Fwd: Grüße aus Köln"
    assert forward["in-reply-to"] is None
    text, attached = forward.iter_parts()
    assert text.get_content() == "FYI\r\n"
    assert attached.get_content_type() == "message/rfc822"
    assert attached["content-transfer-encoding"] == "7bit"               # never base64 (RFC 2046 §5.2.1)
    assert attached.get_filename() == "Grüße aus Köln.eml"
    assert ORIGINAL in data                 # its bytes unchanged, line ends made the message's own (CRLF)
    assert attached.get_content()["message-id"] == "<m2@example.test>"
    saved = tmp_path / "forward.eml"
    saved.write_bytes(data)
    listed = mblaze("mshow", "-t", saved, cwd=tmp_path)
    assert 'message/rfc822 size=' in listed and 'name="Grüße aus Köln.eml"' in listed


def test_a_forwarded_8bit_message_keeps_the_composers_rule_and_its_bytes(tmp_path):
    original = tmp_path / "8bit.eml"
    raw = "From: a@x.test\nSubject: Grüße\nContent-Type: text/plain; charset=utf-8\n\nSchöne Grüße\n".encode()
    original.write_bytes(raw)
    forward = assert_clean_message(encoded("--from", ME, "--to", "x@example.test", "--forward", original))
    [attached] = forward.iter_attachments()
    assert attached.get_content_type() == "application/octet-stream"   # 7-bit output; message/* is never base64
    assert attached.get_payload(decode=True) == raw


def test_an_inline_forward_puts_the_original_in_the_body(tmp_path, original):
    forward = assert_clean_message(encoded("--from", ME, "--to", "x@example.test", "--forward-inline", original,
                                           "--body", "-", input=b"See below.\n"))
    assert forward.get_content_type() == "text/plain"                    # no attachment carried
    assert forward.get_content() == ("See below.\r\n\r\n---------- Forwarded message ----------\r\n"
                                     "From: Müller, Jürgen <juergen@example.test>\r\n"
                                     "Date: Mon, 1 Jul 2024 10:00:00 +0000\r\n"
                                     "Subject: Grüße aus Köln\r\n"
                                     "To: Bob <bob@example.test>, carol@example.test\r\n"
                                     "Cc: Dave <dave@example.test>, juergen@example.test, "
                                     "Carol <Carol@Example.test>\r\n"
                                     "\r\nfirst line\r\n> what you said\r\n\r\nlast line\r\n")


def test_a_forward_may_have_an_html_body_too(tmp_path, original):
    page = tmp_path / "page.html"
    page.write_text("<p>FYI</p>")
    forward = parse(encoded("--from", ME, "--to", "x@example.test", "--forward", original, "--html", page))
    assert [part.get_content_type() for part in forward.walk()][:3] == ["multipart/mixed", "text/html",
                                                                        "message/rfc822"]


# -- what is refused ----------------------------------------------------------------------------

def test_options_that_contradict_each_other_are_usage_errors(original):
    assert_fails(encode("--from", ME, "--reply", original, "--forward", original), 64, "--reply and --forward")
    assert_fails(encode("--from", ME, "--forward", original, "--all"), 64, "--all goes with --reply")
    assert_fails(encode("--from", ME, "--no-quote"), 64, "--no-quote goes with --reply")
    assert_fails(encode("--from", ME, "--reply", "-", "--body", "-", input=ORIGINAL), 64, "standard input")
    assert_fails(encode("--from", ME, "--forward-inline", original, "--html", original), 64, "--html")
    assert_fails(encode("--from", ME, "--reply", original, "--html", original), 64, "--reply puts its text")


def test_a_missing_message_is_66_and_what_is_not_a_message_65(tmp_path, fixtures_dir):
    assert_fails(encode("--from", ME, "--reply", tmp_path / "gone.eml"), 66, "gone.eml")
    assert_fails(encode("--from", ME, "--forward", fixtures_dir / "tiny.png"), 65, "tiny.png: not a message")
    mbox = tmp_path / "two.mbox"
    mbox.write_bytes(b"From a@x Mon Jul  1 10:00:00 2024\nFrom: a@x.test\n\n1\n\n"
                     b"From b@x Mon Jul  1 10:00:00 2024\nFrom: b@x.test\n\n2\n")
    assert_fails(encode("--from", ME, "--reply", mbox), 64, "more than one message", "MBOX:OFFSET")
