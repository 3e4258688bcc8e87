"""Compose, reply and forward from the web form (mimekit.web.send), and the two senders:
SMTP into a real `mimekit serve`, and the outgoing queue. Messages are read back with
Python's email package, a reader that is not mimekit's, and with mimekit.parse_message."""

import email
import email.policy
import gc
import hashlib
import io
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from starlette.datastructures import Headers, UploadFile

import web_messages as messages
from mimekit.errors import AuthError, DataError, MimekitError, NoInputError, UnavailableError, UsageError
from mimekit.queue import Queue
from mimekit.read.extract import best_text
from mimekit.read.tree import parse_message
from mimekit.transport.urls import parse_url
from mimekit.web import send
from mimekit.web.send import (QueueSender, SMTPSender, compose_from_form, forward_draft, outgoing_message,
                              reply_draft)
from mimekit.write.writer import message_bytes

UPLOAD_SPOOL = 1024 * 1024   # Starlette's: an upload past this many bytes is on disk


class StoredMail:
    """WebMail's open(id, user) over message files: all send.py asks of the mail."""

    def __init__(self, directory: Path):
        self.directory = directory

    def add(self, data: bytes) -> str:
        email_id = hashlib.sha256(data).hexdigest()[:24]
        (self.directory / email_id).write_bytes(data)
        return email_id

    def open(self, email_id: str, user: str | None = None):
        path = self.directory / email_id
        if not re.fullmatch(r"[0-9a-f]{24}", email_id) or not path.exists():
            raise NoInputError(f"no message {email_id!r}")
        return open(path, "rb")


@pytest.fixture
def mail(tmp_path):
    directory = tmp_path / "stored"
    directory.mkdir()
    return StoredMail(directory)


@pytest.fixture
def upload():
    """Makes uploads as Starlette hands them over (a SpooledTemporaryFile, at its end) and
    closes them after the test, as the web's form does once the request is answered."""
    made: list[UploadFile] = []

    def make(data: bytes, filename: str, content_type: str | None = None) -> UploadFile:
        spool = tempfile.SpooledTemporaryFile(max_size=UPLOAD_SPOOL)
        spool.write(data)
        headers = Headers({"content-type": content_type} if content_type else {})
        made.append(UploadFile(spool, size=len(data), filename=filename, headers=headers))
        return made[-1]

    yield make
    for one in made:
        one.file.close()


def parsed(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message_bytes(message), policy=email.policy.default)


def attachments(message: email.message.EmailMessage) -> dict[str, tuple[str, bytes]]:
    return {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
            for part in message.iter_attachments()}


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


# -- compose ----------------------------------------------------------------------------------

def test_non_ascii_fields_are_encoded_and_read_back(mail):
    fields = {"from": "Jürgen Müller <juergen@example.test>",
              "to": '"Müller, Anna" <anna@example.test>, bob@example.test',
              "cc": "Zoë <zoe@example.test>", "subject": "Grüße aus Köln — 東京",
              "body": "Schöne Grüße,\r\nZoë — naïve café.\r\n", "csrf": "ignored"}
    data = message_bytes(compose_from_form(fields, [], mail, None))
    assert header_block(data).isascii()                     # RFC 2047 encoded words, no raw UTF-8
    read = email.message_from_bytes(data, policy=email.policy.default)
    assert read["subject"] == "Grüße aus Köln — 東京"
    assert [(a.display_name, a.addr_spec) for a in read["to"].addresses] == [
        ("Müller, Anna", "anna@example.test"), ("", "bob@example.test")]
    assert read["cc"].addresses[0].display_name == "Zoë"
    assert read["from"].addresses[0].display_name == "Jürgen Müller"
    assert read.get_content().replace("\r\n", "\n") == "Schöne Grüße,\nZoë — naïve café.\n"
    with parse_message(io.BytesIO(data)) as message:
        assert best_text(message) == "Schöne Grüße,\nZoë — naïve café.\n"


def test_attachments_arrive_byte_for_byte(mail, upload):
    big = os.urandom(3 * UPLOAD_SPOOL)            # past the spool size: on disk, read twice from there
    small = b"line one\r\nline two\nno end"
    files = [upload(big, "data.bin", "application/octet-stream"), upload(small, "notes.txt", "text/plain"),
             upload(messages.INLINE_IMAGE, "C:\\Users\\me\\chart.png")]   # old browsers send the path
    data = message_bytes(compose_from_form({"from": "a@example.test", "to": "b@example.test", "subject": "files",
                                            "body": "see attached"}, files, mail, None))
    found = attachments(email.message_from_bytes(data, policy=email.policy.default))
    assert found == {"data.bin": ("application/octet-stream", big), "notes.txt": ("text/plain", small),
                     "chart.png": ("image/png", messages.INLINE_IMAGE)}


def test_the_users_address_is_the_default_sender(mail):
    read = parsed(compose_from_form({"to": "b@example.test"}, [], mail, "alice@example.test"))
    assert read["from"].addresses[0].addr_spec == "alice@example.test"


@pytest.mark.parametrize("fields, user, error", [
    ({"from": "a@example.test", "subject": "nobody"}, None, "no recipient"),
    ({"from": "a@example.test", "to": " ", "cc": ""}, None, "no recipient"),
    ({"to": "b@example.test"}, None, "From"),
    ({"to": "b@example.test"}, "alice", "From"),               # a login name is not an address
    ({"from": "a@example.test", "to": "b@example.test", "in_reply_to": "not-an-id"}, None, "in_reply_to"),
    ({"from": "a@example.test", "to": "b@example.test", "references": "<a@b> c@d"}, None, "references"),
])
def test_incomplete_forms_are_usage_errors(mail, fields, user, error):
    with pytest.raises(UsageError, match=error):
        compose_from_form(fields, [], mail, user)


@pytest.mark.parametrize("name, value", [
    ("subject", "hello\r\nBcc: victim@example.test"),
    ("subject", "hello\nX-Injected: 1"),
    ("to", "b@example.test\r\nBcc: victim@example.test"),
    ("cc", "c@example.test\rBcc: victim@example.test"),
    ("from", "a@example.test\nBcc: victim@example.test"),
    ("in_reply_to", "<a@b>\r\nBcc: victim@example.test"),
])
def test_header_injection_is_refused(mail, name, value):
    """The composer refuses CR and LF in any header value (docs/conventions.md, Safety);
    white space around a whole field is trimmed, so the break must be inside."""
    fields = {"from": "a@example.test", "to": "b@example.test", name: value}
    with pytest.raises((DataError, UsageError)):
        compose_from_form(fields, [], mail, None)


def test_an_attachment_name_with_a_line_break_is_refused(mail, upload):
    with pytest.raises(DataError, match="CR or LF"):
        compose_from_form({"from": "a@example.test", "to": "b@example.test"},
                          [upload(b"x", "a.txt\r\nBcc: victim@example.test")], mail, None)


# -- reply and forward ------------------------------------------------------------------------

ORIGINAL = (b"From: =?utf-8?q?M=C3=BCller=2C_J=C3=BCrgen?= <juergen@example.test>\r\n"
            b"To: Bob <bob@example.test>, carol@example.test\r\n"
            b"Cc: Dave <dave@example.test>, Bob <BOB@example.test>\r\n"
            b"Subject: RE: Re: re:  Status\r\n"
            b"Date: Mon, 1 Jul 2024 10:00:00 +0000\r\n"
            b"Message-ID: <m2@example.test>\r\n"
            b"References: <m0@example.test>\r\n <m1@example.test>\r\n"
            b"In-Reply-To: <m1@example.test>\r\n"
            b"\r\n"
            b"first line\r\n> what you said\r\n\r\nlast line\r\n")


def test_reply_quotes_the_text_and_chains_the_references(mail):
    draft = reply_draft(mail, mail.add(ORIGINAL), "bob@example.test")
    assert draft["to"] == '"Müller, Jürgen" <juergen@example.test>'
    assert draft["cc"] == ""
    assert draft["subject"] == "Re: Status"
    assert draft["body"] == ("\n\nOn Mon, 1 Jul 2024 10:00:00 +0000, Müller, Jürgen wrote:\n"
                             "> first line\n>> what you said\n>\n> last line\n")
    assert draft["in_reply_to"] == "<m2@example.test>"
    assert draft["references"] == "<m0@example.test> <m1@example.test> <m2@example.test>"
    assert draft["forward"] == ""


def test_reply_all_copies_everyone_but_the_user_and_the_author(mail):
    draft = reply_draft(mail, mail.add(ORIGINAL), "bob@example.test", all=True)
    assert draft["cc"] == "carol@example.test, Dave <dave@example.test>"


def test_reply_goes_to_reply_to_and_references_fall_back_on_in_reply_to(mail):
    original = (b"From: alice@example.test\r\nReply-To: List <list@example.test>\r\nTo: bob@example.test\r\n"
                b"Subject: Fwd: news\r\nMessage-ID: <m5@example.test>\r\nIn-Reply-To: <m4@example.test>\r\n\r\n"
                b"body\r\n")
    draft = reply_draft(mail, mail.add(original), None)
    assert draft["to"] == "List <list@example.test>"
    assert draft["subject"] == "Re: Fwd: news"
    assert draft["body"] == "\n\nalice@example.test wrote:\n> body\n"
    assert draft["references"] == "<m4@example.test> <m5@example.test>"


def test_a_reply_draft_sends_as_a_reply(mail):
    draft = reply_draft(mail, mail.add(ORIGINAL), "bob@example.test")
    read = parsed(compose_from_form({**draft, "body": "Thanks!\n" + draft["body"]}, [], mail, "bob@example.test"))
    assert read["in-reply-to"] == "<m2@example.test>"
    assert read["references"].split() == ["<m0@example.test>", "<m1@example.test>", "<m2@example.test>"]
    assert read["to"].addresses[0].display_name == "Müller, Jürgen"
    assert read["to"].addresses[0].addr_spec == "juergen@example.test"
    assert read["subject"] == "Re: Status"


@pytest.mark.parametrize("subject, expected", [
    ("hello", "Fwd: hello"), ("Fwd: hello", "Fwd: hello"), ("FW: fwd:hello", "Fwd: hello"),
    ("Re: hello", "Fwd: Re: hello"), ("", "Fwd: ")])
def test_forward_subjects_do_not_stack(mail, subject, expected):
    email_id = mail.add(f"From: a@example.test\r\nSubject: {subject}\r\n\r\nx\r\n".encode())
    draft = forward_draft(mail, email_id, None)
    assert draft["subject"] == expected
    assert (draft["forward"], draft["to"], draft["in_reply_to"]) == (email_id, "", "")


def test_a_forwarded_7bit_message_is_attached_as_it_is(mail, upload):
    original = message_bytes(compose_from_form(
        {"from": "carol@example.test", "to": "bob@example.test", "subject": "Quarterly report with picture",
         "body": "The data is attached.\n"}, [upload(os.urandom(5000), "report.bin")], mail, None))
    email_id = mail.add(original)
    fields = {**forward_draft(mail, email_id, None), "from": "bob@example.test", "to": "dave@example.test"}
    data = message_bytes(compose_from_form(fields, [], mail, None))
    read = email.message_from_bytes(data, policy=email.policy.default)
    [attached] = list(read.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert attached["content-transfer-encoding"] in (None, "7bit")   # never base64 (RFC 2046 §5.2.1)
    assert attached.get_filename() == "Quarterly report with picture.eml"
    assert original in data                                          # the bytes as stored, unchanged


def test_a_forwarded_8bit_message_goes_as_octet_stream_intact(mail):
    """The composer's rule: message/* is 7bit only, so an 8-bit message is attached as
    application/octet-stream, base64, its bytes intact."""
    original = ("From: a@example.test\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße\r\n").encode()
    email_id = mail.add(original)
    fields = {**forward_draft(mail, email_id, None), "from": "bob@example.test", "to": "dave@example.test"}
    found = attachments(parsed(compose_from_form(fields, [], mail, None)))
    assert found == {"Grüße.eml": ("application/octet-stream", original)}


def test_drafts_of_an_unknown_message_are_not_found(mail):
    for make in (lambda: reply_draft(mail, "0" * 24, None), lambda: forward_draft(mail, "nope", None),
                 lambda: compose_from_form({"from": "a@x.test", "to": "b@x.test", "forward": "0" * 24}, [], mail,
                                           None)):
        with pytest.raises(NoInputError):
            make()


# -- the senders ------------------------------------------------------------------------------

LISTENING = re.compile(rb"^mimekit serve: listening: smtp 127\.0\.0\.1:(\d+)", re.M)


@pytest.fixture
def serve(tmp_path):
    """`mimekit serve` (catch-all Maildir, SMTP only) as a subprocess on 127.0.0.1:0."""
    root, log = tmp_path / "served", tmp_path / "serve.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "mimekit_cli", "serve", f"maildir:{root}",
                                    "--smtp", "127.0.0.1:0", "--pop3", "off"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 30
        while not (listening := LISTENING.search(log.read_bytes())):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        yield root, int(listening.group(1))
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log.read_text()


def delivered(root: Path) -> list[bytes]:
    return [path.read_bytes() for sub in ("new", "cur") if (root / sub).is_dir()
            for path in sorted((root / sub).iterdir())]


def test_smtp_sender_delivers_through_serve(mail, serve, upload):
    root, port = serve
    # Seeded: libmagic takes about one random 200 kB in 60 for an executable or audio.
    payload = random.Random(0).randbytes(200_000)
    fields = {"from": "Jürgen <juergen@example.test>", "to": "bob@example.test", "cc": "carol@example.test",
              "bcc": "hidden@example.test", "subject": "über SMTP", "body": "Hallo\n"}
    sender = SMTPSender(parse_url(f"smtp+plain://127.0.0.1:{port}", {"smtp+plain"}))
    queue_id = sender.send(compose_from_form(fields, [upload(payload, "payload.bin")], mail, None))
    [stored] = delivered(root)
    assert f"id {queue_id}".encode() in stored                      # serve's 250 named it
    assert stored.startswith(b"Return-Path: <juergen@example.test>\n")
    read = email.message_from_bytes(stored, policy=email.policy.default)
    assert read["subject"] == "über SMTP"
    assert read["bcc"] is None                                       # never transmitted
    assert attachments(read) == {"payload.bin": ("application/octet-stream", payload)}


def test_a_bcc_recipient_is_in_the_envelope_only(mail, serve):
    root, port = serve
    sender = SMTPSender(parse_url(f"smtp+plain://127.0.0.1:{port}", {"smtp+plain"}))
    sender.send(compose_from_form({"from": "a@example.test", "bcc": "hidden@example.test", "subject": "blind"},
                                  [], mail, None))
    [stored] = delivered(root)
    assert b"for <hidden@example.test>;" in stored                   # serve's Received names the one recipient
    read = email.message_from_bytes(stored, policy=email.policy.default)
    assert [name for name, value in read.items() if "hidden@" in value] == ["Received"]


def test_smtp_sender_reports_a_server_that_is_not_there(mail):
    sender = SMTPSender(parse_url(f"smtp+plain://127.0.0.1:{unused_port()}", {"smtp+plain"}), timeout=5)
    with pytest.raises(MimekitError):
        sender.send(compose_from_form({"from": "a@example.test", "to": "b@example.test"}, [], mail, None))


def test_smtp_sender_reports_a_refused_login_as_the_server_unavailable(mail, monkeypatch):
    """The SMTP server refusing the web server's own login is not the browser's login
    failing: UnavailableError (503), never AuthError (which the API answers 401)."""
    def refused(*args, **kwargs):
        raise AuthError("authentication as web failed: 535 5.7.8 bad credentials")
    monkeypatch.setattr(send, "send_messages", refused)
    sender = SMTPSender(parse_url("smtp+plain://web@127.0.0.1:2525", {"smtp+plain"}), password=lambda: "wrong")
    with pytest.raises(UnavailableError, match="refused this server's login: authentication as web failed: 535"):
        sender.send(compose_from_form({"from": "a@example.test", "to": "b@example.test"}, [], mail, None))


def unused_port() -> int:
    """A port nothing listens on (bound by the kernel, then closed again)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return listener.getsockname()[1]


def test_queue_sender_spools_with_the_envelope_from_the_header(mail, tmp_path):
    url = parse_url("smtp+plain://127.0.0.1:2525", {"smtp+plain"})
    fields = {"from": "a@example.test", "to": "b@example.test", "bcc": "hidden@example.test", "subject": "later"}
    entry_id = QueueSender(str(tmp_path / "queue"), url).send(compose_from_form(fields, [], mail, None))
    with Queue(str(tmp_path / "queue")) as queue:
        assert queue.ids() == [entry_id]
        entry = queue.read(entry_id)
        assert entry.sender == "a@example.test"
        assert [r.address for r in entry.recipients] == ["b@example.test", "hidden@example.test"]
        assert entry.server == "smtp+plain://127.0.0.1:2525"
        with queue.lock(entry_id) as locked:
            queued = b"".join(locked.chunks())
    assert b"Subject: later" in queued and b"hidden" not in queued


def test_a_message_with_an_unusable_from_is_not_sent(mail):
    message = compose_from_form({"from": "Group: ;", "to": "b@example.test"}, [], mail, None)
    with pytest.raises(DataError), outgoing_message(message):
        pass


def test_a_send_leaves_no_file_open(mail, tmp_path, upload):
    """Every scratch file of a send (the written message, the copy it is read back from, the
    uploads' readers) is closed when the send returns, not left to the garbage collector."""
    url = parse_url("smtp+plain://127.0.0.1:2525", {"smtp+plain"})
    fields = {"from": "a@example.test", "to": "b@example.test", "subject": "files"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        big = upload(os.urandom(2 * UPLOAD_SPOOL), "big.bin")       # on disk, as Starlette rolls it over
        QueueSender(str(tmp_path / "queue"), url).send(compose_from_form(fields, [big], mail, None))
        big.file.close()                                             # the web's form does this when answered
        gc.collect()
    assert [str(warning.message) for warning in caught if warning.category is ResourceWarning] == []
