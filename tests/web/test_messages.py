"""mimekit.web.messages: a stored message as JMAP Email in full, part downloads streamed
from the store (in bounded memory, the file closed after), the HTML body, the checker's
verdict, and Content-Disposition for downloads."""

import base64
import gc
import hashlib
import io
import json
import os
import subprocess
import sys
import tracemalloc
from urllib.parse import quote

import pytest

import web_messages
from mimekit.errors import NoInputError
from mimekit.stores.sources import messages_of
from mimekit.web import messages
from mimekit.web.model import IndexedEmail
from mimekit.write.composer import MessageBuilder
from mimekit.write.writer import write_message


class StoredMail:
    """What messages needs of WebMail (email, open), over the messages of one Maildir: the
    tests here do not depend on the header index."""

    def __init__(self, maildir: str):
        self.emails = {f"m{number}": IndexedEmail(id=f"m{number}", folder_id="inbox", ref=ref, flags=ref.flags,
                                                  received_at=0.0, sent_at=None)
                       for number, ref in enumerate(messages_of(f"maildir:{maildir}"))}
        self.opened = 0     # files open right now

    def email(self, email_id: str, user=None) -> IndexedEmail:
        if email_id not in self.emails:
            raise NoInputError(f"no message {email_id!r}")
        return self.emails[email_id]

    def open(self, email_id: str, user=None):
        stream = self.email(email_id).ref.open()
        self.opened += 1
        close = stream.close

        def counted_close():
            if not stream.closed:
                self.opened -= 1
            close()
        stream.close = counted_close
        return stream


def stored(tmp_path, *contents: bytes) -> tuple[StoredMail, list[str]]:
    """A Maildir holding `contents`; the mail over it and the ids, in the order given."""
    root = tmp_path / "Mail"
    paths = [web_messages.deliver(str(root), content) for content in contents]
    mail = StoredMail(str(root))
    by_path = {email.ref.path: email_id for email_id, email in mail.emails.items()}
    return mail, [by_path[path] for path in paths]


def test_details_of_html_message_with_inline_image_and_attachment(tmp_path):
    mail, [email_id] = stored(tmp_path, web_messages.html_with_image_and_attachment())
    found = messages.details(mail, mail.email(email_id), None)
    json.dumps(found)   # JSON-ready

    structure = found["bodyStructure"]
    assert structure["type"] == "multipart/mixed" and structure["partId"] == "0"
    alternative, attachment = structure["subParts"]
    assert alternative["type"] == "multipart/alternative" and alternative["size"] is None
    text, related = alternative["subParts"]
    html, image = related["subParts"]
    assert (text["partId"], text["type"], related["type"], html["type"]) == ("1.1", "text/plain", "multipart/related",
                                                                           "text/html")
    assert image["type"] == "image/png" and image["cid"] and image["size"] == len(web_messages.INLINE_IMAGE)
    assert attachment["name"] == "report data.bin" and attachment["size"] == len(web_messages.ATTACHMENT)
    assert attachment["disposition"] == "attachment" and attachment["subParts"] is None

    assert [part["type"] for part in found["textBody"]] == ["text/plain"]
    assert [part["type"] for part in found["htmlBody"]] == ["text/html"]
    assert [part["partId"] for part in found["attachments"]] == [attachment["partId"]]   # not the inline image
    assert all("subParts" not in part for part in found["textBody"] + found["attachments"])
    text_id = found["textBody"][0]["partId"]
    assert found["bodyValues"] == {text_id: {"value": "The chart is inline; the data is attached.\n",
                                             "isTruncated": False}}
    assert {"name": "Subject", "value": "Quarterly report with picture"} in found["headers"]
    assert found["id"] == email_id and found["source"] == str(mail.email(email_id).ref)
    assert found["defects"] == [] and found["replyTo"] is None and found["inReplyTo"] is None
    assert mail.opened == 0


def test_details_decode_headers_addresses_and_charsets(tmp_path):
    message = ("From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.test>\n"
               "Reply-To: =?iso-8859-1?q?Zo=EB?= <zoe@example.test>, team@example.test\n"
               "Bcc: Undisclosed: hidden@example.test, other@example.test;\n"
               "Subject: =?utf-8?b?R3LDvMOfZQ==?=\n"
               "In-Reply-To: <first@example.test>\n"
               "References: <zero@example.test>\n <first@example.test>\n"
               "MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n"
               "Content-Transfer-Encoding: 8bit\n\n"
               "Schöne Grüße aus Köln\n").encode("iso-8859-1")
    mail, [email_id] = stored(tmp_path, message)
    found = messages.details(mail, mail.email(email_id), None)
    assert found["replyTo"] == [{"name": "Zoë", "email": "zoe@example.test"}, {"name": None, "email": "team@example.test"}]
    assert found["bcc"] == [{"name": None, "email": "hidden@example.test"}, {"name": None, "email": "other@example.test"}]
    assert found["inReplyTo"] == ["first@example.test"]
    assert found["references"] == ["zero@example.test", "first@example.test"]
    assert {"name": "Subject", "value": "Grüße"} in found["headers"]
    [text] = found["textBody"]
    assert text["partId"] == "0" and text["charset"] == "iso-8859-1"
    assert found["bodyValues"]["0"]["value"] == "Schöne Grüße aus Köln\n"
    assert found["htmlBody"] == [] and found["attachments"] == []


def test_body_value_is_capped_and_says_so(tmp_path):
    mail, [email_id] = stored(tmp_path, web_messages.plain(body="0123456789\n" * 200_000))
    value = messages.details(mail, mail.email(email_id), None)["bodyValues"]["0"]
    assert value["isTruncated"] is True and len(value["value"]) == messages.MAX_BODY_VALUE
    assert value["value"].startswith("0123456789\n0123")


def test_body_values_share_one_budget_over_every_text_part(tmp_path):
    """Hundreds of inline text parts cannot make one view hold hundreds of MiB: the parts'
    values together stay within MAX_BODY_VALUE, and those cut say so."""
    part = "x" * (messages.MAX_BODY_VALUE // 2 + 1000) + "\n"
    message = ("From: a@example.test\nSubject: many texts\nMIME-Version: 1.0\n"
               "Content-Type: multipart/mixed; boundary=b\n\n"
               + "".join(f"--b\nContent-Type: text/plain\n\n{part}" for _ in range(4)) + "--b--\n").encode()
    mail, [email_id] = stored(tmp_path, message)
    values = messages.details(mail, mail.email(email_id), None)["bodyValues"]
    assert len(values) == 4
    assert sum(len(value["value"]) for value in values.values()) == messages.MAX_BODY_VALUE
    assert [value["isTruncated"] for value in values.values()] == [False, True, True, True]


def test_defects_are_those_show_lists(tmp_path):
    broken = (b"From: a@example.test\nSubject: broken\nContent-Type: multipart/mixed; boundary=b\n\n"
              b"--b\nContent-Type: text/plain\n\nunclosed part\n")
    mail, [email_id] = stored(tmp_path, broken)
    found = messages.details(mail, mail.email(email_id), None)
    shown = subprocess.run([sys.executable, "-m", "mimekit_cli", "show", "--json", str(mail.email(email_id).ref)],
                           capture_output=True, check=False)
    assert found["defects"] and found["defects"] == json.loads(shown.stdout)["defects"]


def test_attached_message_parts_are_not_the_body(tmp_path):
    inner = web_messages.plain(subject="Inner", body="inner text\n")
    builder = MessageBuilder()
    builder.add_addresses("From", ["a@example.test"])
    builder.set_body(b"outer text\n")
    builder.attach(inner, filename="inner.eml", content_type="message/rfc822")
    mail, [email_id] = stored(tmp_path, web_messages._bytes(builder))
    found = messages.details(mail, mail.email(email_id), None)
    assert [value["value"] for value in found["bodyValues"].values()] == ["outer text\n"]
    [attached] = found["attachments"]
    assert attached["type"] == "message/rfc822"
    tree_attached = found["bodyStructure"]["subParts"][1]
    assert tree_attached["subParts"][0]["type"] == "text/plain"   # the attached message, as show lists it


def test_open_part_streams_the_decoded_bytes_and_closes_the_file(tmp_path):
    mail, [email_id] = stored(tmp_path, web_messages.html_with_image_and_attachment())
    attachment = messages.details(mail, mail.email(email_id), None)["attachments"][0]
    download, chunks = messages.open_part(mail, email_id, attachment["partId"], None)
    assert download == messages.PartDownload("application/octet-stream", "report data.bin", None)
    assert mail.opened == 1
    assert hashlib.sha256(b"".join(chunks)).digest() == hashlib.sha256(web_messages.ATTACHMENT).digest()
    assert mail.opened == 0


def test_open_part_of_unknown_part_fails_before_any_byte(tmp_path):
    mail, [email_id] = stored(tmp_path, web_messages.plain())
    for part_id in ("1", "7", "0.1", "~1", "uu1", "../1"):
        with pytest.raises(NoInputError):
            messages.open_part(mail, email_id, part_id, None)
    with pytest.raises(NoInputError):
        messages.open_part(mail, "nope", "1", None)
    assert mail.opened == 0


def test_an_abandoned_download_closes_the_file(tmp_path):
    mail, [email_id] = stored(tmp_path, web_messages.html_with_image_and_attachment())
    download, chunks = messages.open_part(mail, email_id, "2", None)
    assert mail.opened == 1
    del chunks
    gc.collect()
    assert mail.opened == 0


def test_single_part_message_body_is_part_0_with_its_size(tmp_path):
    mail, [email_id] = stored(tmp_path, web_messages.plain(body="Hello\n"))
    download, chunks = messages.open_part(mail, email_id, "0", None)
    data = b"".join(chunks)
    assert data.replace(b"\r\n", b"\n") == b"Hello\n"
    assert download.content_type == "text/plain" and download.size == len(data)
    assert download.filename == "part-0.txt"


def test_open_cid_finds_the_inline_image(tmp_path):
    mail, [email_id] = stored(tmp_path, web_messages.html_with_image_and_attachment())
    image = messages.details(mail, mail.email(email_id), None)["bodyStructure"]["subParts"][0]["subParts"][1]["subParts"][1]
    download, chunks = messages.open_cid(mail, email_id, image["cid"], None)
    assert download.content_type == "image/png" and download.filename == "chart.png"
    assert b"".join(chunks) == web_messages.INLINE_IMAGE
    with pytest.raises(NoInputError):
        messages.open_cid(mail, email_id, "not-" + image["cid"], None)
    assert mail.opened == 0


def html_only(html: str) -> bytes:
    builder = MessageBuilder()
    builder.add_addresses("From", ["Dan <dan@example.test>"])
    builder.add_header("Subject", "HTML only")
    builder.set_body(html.encode("utf-8"), html=True)
    written = io.BytesIO()
    write_message(builder.build(), written)
    return written.getvalue()


def test_safe_html_body_is_the_sanitised_document_with_its_cid_urls(tmp_path):
    mail, [with_html, plain] = stored(tmp_path, web_messages.html_with_image_and_attachment(), web_messages.plain())
    body = messages.safe_html_body(mail, with_html, None, allow_remote=False)
    cid = messages.details(mail, mail.email(with_html), None)["bodyStructure"]["subParts"][0]["subParts"][1]["subParts"][1]["cid"]
    assert f'src="/api/messages/{with_html}/cid/{quote(cid, safe="")}"' in body.document
    assert "cid:" not in body.document and body.truncated is False
    assert messages.safe_html_body(mail, plain, None, allow_remote=False) is None
    with pytest.raises(NoInputError):
        messages.safe_html_body(mail, "no-such-id", None, allow_remote=False)
    assert mail.opened == 0


def test_a_message_view_sanitises_its_html_body_once(tmp_path, monkeypatch):
    """The page (its remote-image count) and its iframe (the document) share one pass."""
    mail, [email_id] = stored(tmp_path, html_only('<p>hi <img src="https://evil.test/a.png"></p>'))
    passes = []
    real_sanitise = messages.sanitise
    monkeypatch.setattr(messages, "sanitise", lambda *args: passes.append(args) or real_sanitise(*args))
    for _ in range(2):
        body = messages.safe_html_body(mail, email_id, None, allow_remote=False)
        assert body.remote_blocked == 1 and "evil.test" not in body.document
    assert len(passes) == 1
    allowed = messages.safe_html_body(mail, email_id, None, allow_remote=True)
    assert allowed.remote_blocked == 0 and "https://evil.test/a.png" in allowed.document and len(passes) == 2


def test_an_html_body_past_the_cap_is_cut_and_says_so(tmp_path):
    mail, [email_id] = stored(tmp_path, html_only("<p>" + "x" * (messages.MAX_HTML_CHARACTERS + 10) + "</p>"))
    body = messages.safe_html_body(mail, email_id, None, allow_remote=False)
    assert body.truncated is True and body.document.count("x") == messages.MAX_HTML_CHARACTERS - len("<p>")


def test_check_is_what_check_json_prints(tmp_path):
    mail, [clean, dirty] = stored(tmp_path, web_messages.plain(), b"From: a@example.test\n\n" + b"x" * 1200 + b"\n")
    for email_id in (clean, dirty):
        verdict = messages.check(mail, email_id, None)
        printed = subprocess.run([sys.executable, "-m", "mimekit_cli", "check", "--json",
                                  str(mail.email(email_id).ref)], capture_output=True, check=False)
        assert verdict == json.loads(printed.stdout)
    assert verdict["ok"] is False and "line-too-long" in {violation["rule"] for violation in verdict["violations"]}


@pytest.mark.parametrize("name, ascii_name", [
    ("report data.bin", "report data.bin"),
    ("Grüße.pdf", "Gr__e.pdf"),
    ('a"b\\c%41.txt', "a_b_c_41.txt"),
    ("x\r\nSet-Cookie: y=1.txt", "xSet-Cookie: y=1.txt"),
    ("../../etc/passwd", "etc_passwd"),
    ("", "part-download.bin"),
])
def test_content_disposition_cannot_be_broken_out_of(name, ascii_name):
    header = messages.content_disposition(name)
    assert header.startswith(f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'')
    assert header.isascii() and header.isprintable() and header.count('"') == 2
    encoded = header.split("filename*=UTF-8''", 1)[1]
    assert all(char.isalnum() or char in "%-._~" for char in encoded)


def test_content_disposition_keeps_the_name_in_filename_star():
    from urllib.parse import unquote
    header = messages.content_disposition("Grüße 東京.pdf")
    assert unquote(header.split("filename*=UTF-8''", 1)[1]) == "Grüße 東京.pdf"


def _large_message(path, size: int) -> None:
    """A message with a `size`-byte base64 attachment, written to `path` piece by piece."""
    with open(path, "wb") as out:
        out.write(b"From: a@example.test\nSubject: big\nMIME-Version: 1.0\n"
                  b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbig one\n"
                  b"--b\nContent-Type: application/octet-stream; name=big.bin\n"
                  b"Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=big.bin\n\n")
        block = os.urandom(57 * 1024)
        for _ in range(size // len(block)):
            out.write(base64.encodebytes(block))
        out.write(b"--b--\n")


def test_a_large_attachment_streams_in_bounded_memory(tmp_path):
    root = tmp_path / "Mail"
    os.makedirs(root / "new")
    os.makedirs(root / "cur")
    os.makedirs(root / "tmp")
    _large_message(root / "new" / "1.big", 30 * 1024 * 1024)
    mail = StoredMail(str(root))
    [email_id] = mail.emails
    tracemalloc.start()
    try:
        download, chunks = messages.open_part(mail, email_id, "2", None)
        size = sum(len(chunk) for chunk in chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert download.filename == "big.bin" and size >= 29 * 1024 * 1024
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes while streaming {size}"
    assert mail.opened == 0


# -- a message gone from its store (another reader deleted it) ---------------------------------

def _inbox_emails(client) -> tuple[str, list[dict]]:
    [inbox] = [mailbox for mailbox in client.get("/api/mailboxes").json()["mailboxes"] if mailbox["name"] == "INBOX"]
    return inbox["id"], client.get(f"/api/messages?mailbox={inbox['id']}").json()["emails"]


def _remove_behind_the_index(maildir) -> None:
    """What POP3 or another mail program does between two refreshes of the index."""
    for sub in ("new", "cur"):
        for path in (maildir / sub).iterdir():
            path.unlink()


@pytest.mark.parametrize("request_of", [
    lambda client, gone, csrf: client.get(f"/api/messages/{gone}"),
    lambda client, gone, csrf: client.get(f"/api/messages/{gone}/raw"),
    lambda client, gone, csrf: client.get(f"/api/messages/{gone}/check"),
    lambda client, gone, csrf: client.get(f"/messages/{gone}"),
    lambda client, gone, csrf: client.patch(f"/api/messages/{gone}", json={"keywords": {"$seen": True}},
                                            headers={"X-CSRF-Token": csrf}),
    lambda client, gone, csrf: client.delete(f"/api/messages/{gone}", headers={"X-CSRF-Token": csrf}),
    lambda client, gone, csrf: client.post(f"/messages/{gone}/flags", data={"seen": "1", "csrf": csrf}),
], ids=["details", "raw", "check", "page", "patch", "delete", "page-flags"])
def test_a_message_deleted_behind_the_index_is_404_and_forgotten(client, maildir, request_of):
    """Any view or change of a message another reader removed is a 404 naming it, not the
    server's path to it (never a 500), and the next look at the folder does not list it."""
    csrf = client.get("/api/session").json()["csrfToken"]
    _, emails = _inbox_emails(client)
    _remove_behind_the_index(maildir)
    answer = request_of(client, emails[0]["id"], csrf)
    assert answer.status_code == 404 and emails[0]["id"] in answer.text and str(maildir) not in answer.text
    assert _inbox_emails(client)[1] == []
