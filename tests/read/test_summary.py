"""summarise (what `show --json` prints) and scan_summary (one `scan` line): the
attachment rule case by case, and scan agreeing with summarise on every corpus message."""

import base64
import io

import pytest
from corpus import corpus_files

from mimekit.defects import DefectKind
from mimekit.limits import Limits
from mimekit.read.events import PartKind
from mimekit.read.summary import _LeanPass, _parsed_structure, scan_summary, summarise

LEAN_DEFECTS = {DefectKind.BARE_LINE_ENDING, DefectKind.EIGHT_BIT_HEADER}   # the only ones the lean pass reports

HEAD = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\nMIME-Version: 1.0\r\n"


def multipart(subtype: str, boundary: str, *parts: bytes) -> bytes:
    """A multipart entity (header and body); each part is its own header and body."""
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return (f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n".encode()
            + body + b"--" + boundary.encode() + b"--\r\n")


def leaf(content_type: str, body: bytes = b"x", *headers: str) -> bytes:
    return "".join(f"{h}\r\n" for h in (f"Content-Type: {content_type}", *headers)).encode() + b"\r\n" + body


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
TEXT = leaf("text/plain; charset=utf-8", b"Hello")
HTML = leaf("text/html; charset=utf-8", b"<p>Hello <img src=\"cid:logo@x\"></p>")

# (name, message, {part id: is_attachment} for every part)
CASES = [
    ("disposition attachment",
     HEAD + multipart("mixed", "b1", TEXT, leaf("application/pdf", b"%PDF", "Content-Disposition: attachment")),
     {"": False, "1": False, "2": True}),
    ("text and html alternatives are the body",
     HEAD + multipart("alternative", "b1", TEXT, HTML), {"": False, "1": False, "2": False}),
    ("Content-ID image in multipart/related is shown inline, not attached",
     HEAD + multipart("related", "b1", HTML,
                      leaf("image/png; name=logo.png", PNG, "Content-Transfer-Encoding: base64",
                           "Content-ID: <logo@x>", "Content-Disposition: inline; filename=logo.png")),
     {"": False, "1": False, "2": False}),
    ("an image in multipart/related without Content-ID is attached",
     HEAD + multipart("related", "b1", HTML, leaf("image/png", PNG, "Content-Transfer-Encoding: base64")),
     {"": False, "1": False, "2": True}),
    ("Content-ID with disposition attachment is attached",
     HEAD + multipart("related", "b1", HTML, leaf("image/png", PNG, "Content-ID: <a@x>",
                                                  "Content-Disposition: attachment")),
     {"": False, "1": False, "2": True}),
    ("message/rfc822 attached: one attachment, its parts are its own",
     HEAD + multipart("mixed", "b1", TEXT, b"Content-Type: message/rfc822\r\n\r\n" + HEAD
                      + multipart("mixed", "b2", TEXT, leaf("application/pdf", b"%PDF", "Content-Disposition: attachment"))),
     {"": False, "1": False, "2": True, "2.1": False, "2.1.1": False, "2.1.2": False}),
    ("message/rfc822 sent in base64 is attached too",
     HEAD + multipart("mixed", "b1", TEXT, leaf("message/rfc822", base64.b64encode(HEAD + b"\r\nhi\r\n"),
                                                "Content-Transfer-Encoding: base64")),
     {"": False, "1": False, "2": True}),
    ("a named inline image in multipart/mixed is attached",
     HEAD + multipart("mixed", "b1", TEXT, leaf("image/jpeg", b"x", "Content-Disposition: inline; filename=a.jpg")),
     {"": False, "1": False, "2": True}),
    ("an unnamed non-text part in multipart/mixed is attached",
     HEAD + multipart("mixed", "b1", TEXT, leaf("application/octet-stream")),
     {"": False, "1": False, "2": True}),
    ("a named text part is attached, an unnamed one (a footer) is not",
     HEAD + multipart("mixed", "b1", TEXT, leaf("text/plain", b"notes", "Content-Disposition: inline; filename=n.txt"),
                      leaf("text/plain", b"-- list footer")),
     {"": False, "1": False, "2": True, "3": False}),
    ("a message that is only a PDF is one attachment",
     HEAD + leaf("application/pdf; name=r.pdf", b"%PDF"), {"": True}),
    ("a single text body with a name is still the body",
     HEAD + leaf("text/plain; name=body.txt", b"Hello"), {"": False}),
    ("a named calendar in multipart/alternative is attached, an unnamed non-text rendering is not",
     HEAD + multipart("alternative", "b1", TEXT, leaf("text/calendar; name=invite.ics", b"BEGIN:VCALENDAR"),
                      leaf("application/x-rendering")),
     {"": False, "1": False, "2": True, "3": False}),
    ("Apple Mail: html and a PDF in multipart/mixed inside multipart/alternative",
     HEAD + multipart("alternative", "b1", TEXT, multipart("mixed", "b2", HTML, leaf("application/pdf; name=x.pdf"))),
     {"": False, "1": False, "2": False, "2.1": False, "2.2": True}),
]


@pytest.mark.parametrize("message, expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_is_attachment(message, expected):
    parts = summarise(io.BytesIO(message))["parts"]
    assert {part["id"]: part["is_attachment"] for part in parts} == expected
    assert scan_summary(io.BytesIO(message))["attachments"] == sum(expected.values())


def test_parts_carry_disposition_content_id_filename_and_charset():
    message = HEAD + multipart(
        "related", "b1", HTML,
        leaf("image/png", PNG, "Content-Transfer-Encoding: base64", "Content-ID: < logo@x >",
             "Content-Disposition: inline; filename*=utf-8''R%C3%A9sum%C3%A9.png"))
    parts = summarise(io.BytesIO(message))["parts"]
    html, image = parts[1], parts[2]
    assert (html["charset"], html["disposition"], html["content_id"], html["filename"]) == ("utf-8", None, None, None)
    assert image["disposition"] == "inline" and image["content_id"] == "logo@x"
    assert image["filename"] == image["name"] == "Résumé.png"
    assert image["size"] == len(base64.b64decode(PNG)) and image["charset"] is None


def test_lf_is_normal_leaves_out_bare_lf_only():
    message = (HEAD + b"Content-Type: text/plain\r\n\r\nbody\r\n").replace(b"\r\n", b"\n") + b"=?utf-8?q?broken\n"
    kinds = lambda summary: [defect["kind"] for defect in summary["defects"]]   # noqa: E731
    assert kinds(summarise(io.BytesIO(message))) == ["bare-line-ending"]
    assert kinds(summarise(io.BytesIO(message), lf_is_normal=True)) == []
    subject = message.replace(b"Subject: test", b"Subject: =?utf-8?q?broken")
    assert kinds(summarise(io.BytesIO(subject), lf_is_normal=True)) == ["encoded-word-malformed"]


def test_the_stream_is_left_open():
    stream = io.BytesIO(HEAD + TEXT)
    summarise(stream)
    stream.seek(0)
    scan_summary(stream)
    assert not stream.closed


def corpus_messages() -> list[str]:
    return [name for name in corpus_files() if name.endswith((".eml", ".msg", ".txt", ".mbox")) or "." not in name]


@pytest.mark.corpus
@pytest.mark.parametrize("name", corpus_messages())
def test_scan_counts_the_attachments_summarise_flags(corpus_dir, name):
    data = (corpus_dir / name).read_bytes()
    flagged = sum(part["is_attachment"] for part in summarise(io.BytesIO(data))["parts"])
    scanned = scan_summary(io.BytesIO(data))
    assert scanned["attachments"] == flagged
    assert scanned["size"] == len(data)
    with open(corpus_dir / name, "rb") as stream:   # a file: read in place, the size from the file
        assert scan_summary(stream) == scanned


@pytest.mark.corpus
@pytest.mark.parametrize("name", corpus_messages())
def test_the_lean_pass_builds_the_parsers_tree_or_hands_over(corpus_dir, name):
    data = (corpus_dir / name).read_bytes()
    lean = _LeanPass(data, True, Limits.DEFAULT, True).run()
    if not isinstance(lean, _LeanPass):
        return
    parsed = _parsed_structure([data], Limits.DEFAULT, True)
    shape = lambda message: [(p.id, p.content_type, p.kind, p.transfer_encoding, p.body_offset, p.end_offset,   # noqa: E731
                              p.disposition, p.filename, p.raw_header("content-id")) for p in message.walk()]
    assert shape(lean.message) == shape(parsed)
    unread = parsed.root.body_offset if parsed.root.kind is PartKind.LEAF else len(data)   # a single part's body
    assert [d for d in parsed.defects if d.kind not in LEAN_DEFECTS and d.offset < unread] == lean.message.defects


def test_well_formed_messages_take_the_lean_pass():
    for _, message, _ in CASES:
        for eol in (b"\r\n", b"\n"):
            assert isinstance(_LeanPass(message.replace(b"\r\n", eol), True, Limits.DEFAULT, True).run(), _LeanPass)
