"""The JSON API, endpoint by endpoint, through Starlette's TestClient on the conftest Maildir
(INBOX: a plain, a non-ASCII (read) and an HTML message with an inline image and an
attachment; .Archive: one). Bad input is a 4xx with a JSON {"error", "status"}, never a 500;
changes reach the Maildir itself; the responses match the OpenAPI document's schemas."""

import glob
import hashlib
import io
import json
import os
import pathlib
import re

import pytest
from starlette.testclient import TestClient

from conftest import web_config
from mimekit.queue.store import QUEUE_SCHEMES, Queue
from mimekit.transport.urls import parse_url
from mimekit.web import api, forms, security
from mimekit.web.app import create_app
from mimekit.write.composer import MessageBuilder
from mimekit.write.writer import write_message
import web_messages as messages

import jsonschema
import openapi_spec_validator

OPENAPI = json.loads(pathlib.Path(api.OPENAPI).read_text(encoding="utf-8"))


# --- helpers ---------------------------------------------------------------------------------

def conforms(document, schema_name: str) -> None:
    """Assert `document` is valid against the OpenAPI document's schema of that name."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": OPENAPI["components"]}
    jsonschema.Draft202012Validator(schema).validate(document)


def is_error(response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == status and body["error"]
    conforms(body, "Error")


def mailboxes(client) -> dict[str, dict]:
    return {mailbox["name"]: mailbox for mailbox in client.get("/api/mailboxes").json()["mailboxes"]}


def listed(client, **params) -> dict:
    response = client.get("/api/messages", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def email_id(client, subject: str, mailbox: str | None = None) -> str:
    params = {"mailbox": mailboxes(client)[mailbox]["id"]} if mailbox else {}
    [found] = [email for email in listed(client, **params)["emails"] if email["subject"] == subject]
    return found["id"]


def csrf(client) -> dict[str, str]:
    return {"X-CSRF-Token": client.get("/api/session").json()["csrfToken"]}


def stored_file(maildir, subject: str) -> str:
    """The path of the Maildir file holding the message with this subject."""
    stored = [path for sub in ("new", "cur") for path in glob.glob(os.path.join(str(maildir), sub, "*"))]
    [path] = [path for path in stored if f"Subject: {subject}".encode() in pathlib.Path(path).read_bytes()]
    return path


def flags_of(path: str) -> str:
    return os.path.basename(path).partition(":2,")[2]


HTML_SUBJECT = "Quarterly report with picture"
PLAIN_SUBJECT = "Plain hello"
SENDER = "Bob <bob@example.test>"


@pytest.fixture
def read_only_client(tmp_path, maildir):
    """`mimekit web` on the same Maildir: nothing may change."""
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"]))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def queue_dir(tmp_path):
    return str(tmp_path / "queue")


@pytest.fixture
def sending_client(tmp_path, maildir, queue_dir):
    """A writable application whose sends are spooled into an outgoing queue."""
    from mimekit.web.send import QueueSender
    sender = QueueSender(queue_dir, parse_url("smtp+plain://127.0.0.1:2525", QUEUE_SCHEMES))
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"], writable=True, sender=sender))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


# --- session, OpenAPI, mailboxes ---------------------------------------------------------------

def test_session_says_what_this_server_allows(client, read_only_client, sending_client):
    session = client.get("/api/session").json()
    conforms(session, "Session")
    assert session["csrfToken"] and session["user"] is None
    assert (session["readOnly"], session["canSend"]) == (False, False)
    assert read_only_client.get("/api/session").json()["readOnly"] is True
    assert sending_client.get("/api/session").json()["canSend"] is True


def api_routes(app) -> set[tuple[str, str]]:
    """(path as OpenAPI writes it, method) of every route of the app under /api/."""
    found = set()
    for route in app.routes:
        path = getattr(route, "path", "")
        if path.startswith("/api/"):
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", path)       # {cid:path} -> {cid}
            found |= {(path, method.lower()) for method in route.methods if method != "HEAD"}
    return found


def test_openapi_documents_every_route_and_only_those(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document == OPENAPI and document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item if method in ("get", "put", "post", "patch", "delete")}
    assert api_routes(client.app) == documented
    assert ("/api/events", "get") in documented


def test_openapi_references_resolve():
    text = json.dumps(OPENAPI)
    for name in set(re.findall(r'"#/components/schemas/(\w+)"', text)):
        assert name in OPENAPI["components"]["schemas"], name


def test_openapi_is_a_valid_document():
    openapi_spec_validator.validate(OPENAPI)


def test_mailboxes_count_messages_and_unread(client):
    boxes = mailboxes(client)
    assert set(boxes) == {"INBOX", "Archive"}
    assert (boxes["INBOX"]["totalEmails"], boxes["INBOX"]["unreadEmails"]) == (3, 2)
    assert (boxes["Archive"]["totalEmails"], boxes["Archive"]["unreadEmails"]) == (1, 1)
    assert boxes["INBOX"]["role"] == "inbox"
    for mailbox in boxes.values():
        conforms(mailbox, "Mailbox")


# --- listing and searching -------------------------------------------------------------------

def test_list_defaults_to_the_first_folder_newest_first(client):
    page = listed(client)
    conforms(page, "EmailPage")
    assert page["mailboxId"] == mailboxes(client)["INBOX"]["id"]
    assert (page["total"], page["position"], page["limit"]) == (3, 0, 50)
    received = [email["receivedAt"] for email in page["emails"]]
    assert received == sorted(received, reverse=True)
    by_subject = {email["subject"]: email for email in page["emails"]}
    assert by_subject[HTML_SUBJECT]["hasAttachment"] is True
    assert by_subject[HTML_SUBJECT]["from"] == [{"name": "Carol", "email": "carol@example.test"}]
    assert by_subject["Grüße aus Köln — 東京"]["keywords"] == {"$seen": True}
    assert by_subject[PLAIN_SUBJECT]["keywords"] == {}


def test_limit_one_walks_every_message_once(client):
    everything = [email["id"] for email in listed(client)["emails"]]
    walked = []
    for position in range(len(everything)):
        page = listed(client, position=position, limit=1)
        assert (page["total"], page["position"], page["limit"]) == (3, position, 1)
        walked += [email["id"] for email in page["emails"]]
    assert walked == everything


@pytest.mark.parametrize("position", [3, 1000, 2**63 - 1])
def test_position_past_the_end_is_an_empty_page_with_the_total(client, position):
    page = listed(client, position=position)
    assert page["emails"] == [] and page["total"] == 3


def test_a_delivery_is_listed_at_once(client, maildir):
    messages.deliver(str(maildir), messages.plain(subject="Just arrived"))
    assert listed(client)["emails"][0]["subject"] == "Just arrived"


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "501"}, {"limit": "abc"}, {"limit": "-1"},
                                    {"limit": ""}, {"limit": "1.5"}, {"limit": "٣"}, {"limit": "9" * 30},
                                    {"position": "-1"}, {"position": "x"}, {"position": str(2**63)},
                                    {"q": "after:2024-13-45"},
                                    {"q": "is:maybe"}])
def test_bad_list_parameters_are_400(client, params):
    is_error(client.get("/api/messages", params=params), 400)


def test_the_limit_follows_the_configured_maximum(tmp_path, maildir):
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"], page_size=2, max_page_size=2))
    with TestClient(app, base_url="http://127.0.0.1") as small:
        page = listed(small)
        assert (len(page["emails"]), page["limit"], page["total"]) == (2, 2, 3)
        is_error(small.get("/api/messages", params={"limit": 3}), 400)


@pytest.mark.parametrize("mailbox", ["0" * 12, "..", "x" * 5000, "ü", "\x00"])
def test_an_unknown_mailbox_is_404(client, mailbox):
    is_error(client.get("/api/messages", params={"mailbox": mailbox}), 404)


@pytest.mark.parametrize("q, subjects", [
    ("from:carol", {HTML_SUBJECT}),
    ("to:bob@example.test", {PLAIN_SUBJECT, HTML_SUBJECT, "Grüße aus Köln — 東京"}),
    ('subject:"report with"', {HTML_SUBJECT}),
    ("has:attachment", {HTML_SUBJECT}),
    ("has:noattachment", {PLAIN_SUBJECT, "Grüße aus Köln — 東京"}),
    ("is:unread", {PLAIN_SUBJECT, HTML_SUBJECT}),
    ("is:read", {"Grüße aus Köln — 東京"}),
    ("report", {PLAIN_SUBJECT, HTML_SUBJECT}),             # subject of one, text body of the other
    ("naïve café", {"Grüße aus Köln — 東京"}),               # words of a UTF-8 text body
    ("after:2000-01-01 from:alice", {PLAIN_SUBJECT}),
    ("before:2000-01-01", set()),
    ("Old news", set()),                                    # in the Archive folder, not this one
])
def test_search_operators(client, q, subjects):
    page = listed(client, q=q)
    assert {email["subject"] for email in page["emails"]} == subjects
    assert page["total"] == len(subjects)


def test_search_in_a_subfolder(client):
    page = listed(client, mailbox=mailboxes(client)["Archive"]["id"], q="subject:old")
    assert [email["subject"] for email in page["emails"]] == ["Old news"]


# --- one message -----------------------------------------------------------------------------

def test_message_details(client):
    details = client.get(f"/api/messages/{email_id(client, HTML_SUBJECT)}").json()
    conforms(details, "EmailFull")
    assert details["subject"] == HTML_SUBJECT
    assert {"name": "Subject", "value": HTML_SUBJECT} in details["headers"]
    [attachment] = details["attachments"]
    assert attachment["name"] == "report data.bin"
    [text] = details["textBody"]
    assert "the data is attached" in details["bodyValues"][text["partId"]]["value"]
    assert details["bodyStructure"]["type"] == "multipart/mixed"


def parts_of(structure: dict):
    yield structure
    for sub in structure.get("subParts") or ():
        yield from parts_of(sub)


def test_attachment_download_is_the_attached_bytes(client):
    message = email_id(client, HTML_SUBJECT)
    [attachment] = client.get(f"/api/messages/{message}").json()["attachments"]
    response = client.get(f"/api/messages/{message}/parts/{attachment['partId']}")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == hashlib.sha256(messages.ATTACHMENT).hexdigest()
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert "report" in response.headers["content-disposition"]
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_cid_image_is_served_inline(client):
    message = email_id(client, HTML_SUBJECT)
    structure = client.get(f"/api/messages/{message}").json()["bodyStructure"]
    [image] = [part for part in parts_of(structure) if part.get("cid")]
    response = client.get(f"/api/messages/{message}/cid/{image['cid']}")
    assert response.status_code == 200 and response.content == messages.INLINE_IMAGE
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == "inline"
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    by_part = client.get(f"/api/messages/{message}/parts/{image['partId']}")
    assert by_part.content == messages.INLINE_IMAGE and by_part.headers["content-type"] == "image/png"
    assert by_part.headers["content-disposition"].startswith("attachment;")


def test_a_cid_that_is_not_an_image_is_a_download(tmp_path):
    builder = MessageBuilder()
    builder.add_addresses("From", ["eve@example.test"])
    builder.add_header("Subject", "cid html")
    cid = builder.add_inline(b"<script>alert(1)</script>", filename="x.html", content_type="text/html")
    builder.set_body(f'<img src="cid:{cid}">'.encode(), html=True)
    composed = io.BytesIO()
    write_message(builder.build(), composed)
    root = tmp_path / "Mail"
    messages.deliver(str(root), composed.getvalue())
    with TestClient(create_app(web_config(tmp_path, [f"maildir:{root}"])), base_url="http://127.0.0.1") as client:
        message = email_id(client, "cid html")
        response = client.get(f"/api/messages/{message}/cid/{cid}")
        assert response.status_code == 200 and response.content == b"<script>alert(1)</script>"
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["content-disposition"].startswith("attachment;")


def test_raw_is_the_stored_file(client, maildir):
    message = email_id(client, PLAIN_SUBJECT)
    response = client.get(f"/api/messages/{message}/raw")
    assert response.status_code == 200
    assert response.content == pathlib.Path(stored_file(maildir, PLAIN_SUBJECT)).read_bytes()
    assert response.headers["content-type"] == "message/rfc822"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert f"{message}.eml" in response.headers["content-disposition"]
    assert response.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_raw_streams_a_large_message_whole(tmp_path):
    root = tmp_path / "Mail"
    big = messages.plain(subject="Big", body="x" * 100 + "\n") + b"y" * (3 * api.CHUNK + 17)
    path = messages.deliver(str(root), big)
    with TestClient(create_app(web_config(tmp_path, [f"maildir:{root}"])), base_url="http://127.0.0.1") as client:
        with client.stream("GET", f"/api/messages/{email_id(client, 'Big')}/raw") as response:
            chunks = list(response.iter_raw())
        assert b"".join(chunks) == pathlib.Path(path).read_bytes()


@pytest.mark.parametrize("subject", [PLAIN_SUBJECT, HTML_SUBJECT, "Grüße aus Köln — 東京"])
def test_every_part_downloads_with_a_true_length(client, subject):
    """A Content-Length, when given, is the length of the decoded bytes sent (a wrong one
    breaks the download in a browser); text parts decode to their text."""
    message = email_id(client, subject)
    details = client.get(f"/api/messages/{message}").json()
    for part in parts_of(details["bodyStructure"]):
        if part["type"].startswith("multipart/"):
            continue
        response = client.get(f"/api/messages/{message}/parts/{part['partId']}")
        assert response.status_code == 200
        if "content-length" in response.headers:
            assert int(response.headers["content-length"]) == len(response.content)
        if part["partId"] in details["bodyValues"]:
            text = response.content.decode(part["charset"] or "us-ascii").replace("\r\n", "\n")
            assert text == details["bodyValues"][part["partId"]]["value"]


def test_check_gives_the_verdict(client):
    response = client.get(f"/api/messages/{email_id(client, PLAIN_SUBJECT)}/check")
    assert response.status_code == 200
    conforms(response.json(), "CheckReport")


def test_unknown_part_or_cid_is_404(client):
    message = email_id(client, HTML_SUBJECT)
    for path in ("parts/99", "parts/1.9.9", "parts/%2E%2E", "parts/0.1", "parts/%00",
                 "cid/nobody@example.test", "cid/a/b", "cid/%00"):
        is_error(client.get(f"/api/messages/{message}/{path}"), 404)


BAD_IDS = {"random": "0123456789abcdef01234567", "dots": "%2E%2E", "long": "x" * 5000, "non-ascii": "%C3%BC",
           "nul": "%00", "slash": "a%2Fb", "space": "%20", "query": "%3F"}


@pytest.mark.parametrize("bad_id", BAD_IDS.values(), ids=BAD_IDS.keys())
def test_bad_ids_are_404_everywhere(client, bad_id):
    """Every route taking an id: 404 with a JSON error, never a 500."""
    headers = csrf(client)
    for suffix in ("", "/raw", "/check", "/parts/1", "/cid/x@y"):
        is_error(client.get(f"/api/messages/{bad_id}{suffix}"), 404)
    is_error(client.patch(f"/api/messages/{bad_id}", json={"keywords": {"$seen": True}}, headers=headers), 404)
    is_error(client.delete(f"/api/messages/{bad_id}", headers=headers), 404)


# --- changes ---------------------------------------------------------------------------------

def test_patch_keeps_a_flag_another_reader_set_since_indexing(client, maildir):
    """Only the keywords asked for change: a flag set on the file by another program after
    the index read it (here F, flagged) stays."""
    message, headers = email_id(client, PLAIN_SUBJECT), csrf(client)
    path = stored_file(maildir, PLAIN_SUBJECT)
    os.rename(path, os.path.join(maildir, "cur", os.path.basename(path).split(":")[0] + ":2,F"))
    response = client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": True}}, headers=headers)
    assert response.status_code == 200
    assert flags_of(stored_file(maildir, PLAIN_SUBJECT)) == "FS"
    assert response.json()["keywords"] == {"$seen": True, "$flagged": True}


def test_patch_seen_renames_the_maildir_file(client, maildir):
    message, headers = email_id(client, PLAIN_SUBJECT), csrf(client)
    response = client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": True, "$flagged": True}},
                            headers=headers)
    assert response.status_code == 200
    conforms(response.json(), "Email")
    assert response.json()["keywords"] == {"$seen": True, "$flagged": True}
    path = stored_file(maildir, PLAIN_SUBJECT)
    assert os.path.basename(os.path.dirname(path)) == "cur" and flags_of(path) == "FS"
    assert mailboxes(client)["INBOX"]["unreadEmails"] == 1

    response = client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": False}}, headers=headers)
    assert response.json()["keywords"] == {"$flagged": True}
    assert flags_of(stored_file(maildir, PLAIN_SUBJECT)) == "F"
    assert client.get(f"/api/messages/{message}/raw").status_code == 200      # found after the renames


@pytest.fixture
def racing_rename(monkeypatch):
    """Makes the Maildir's next flag rename find its file already `moved` by another reader:
    moved(path) removes it or renames it, just before the rename."""
    from mimekit.stores import maildir as maildir_module
    real_rename = os.rename

    def arrange(moved):
        def rename(source, target):
            monkeypatch.setattr(maildir_module.os, "rename", real_rename)     # once
            moved(source)
            real_rename(source, target)
        monkeypatch.setattr(maildir_module.os, "rename", rename)
    return arrange


def test_a_patch_racing_a_delete_is_404_naming_the_message(client, maildir, racing_rename):
    message = email_id(client, PLAIN_SUBJECT)
    racing_rename(os.unlink)
    response = client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": True}}, headers=csrf(client))
    is_error(response, 404)
    assert message in response.json()["error"] and str(maildir) not in response.text


def test_a_patch_racing_another_flag_change_still_sets_the_flags(client, maildir, racing_rename):
    message = email_id(client, PLAIN_SUBJECT)
    racing_rename(lambda path: os.rename(path, os.path.join(str(maildir), "cur", os.path.basename(path) + ":2,F")))
    response = client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": True}}, headers=csrf(client))
    assert response.status_code == 200, response.text
    assert "S" in flags_of(stored_file(maildir, PLAIN_SUBJECT))


BAD_PATCHES = {"not-json": b"not json", "a-list": b"[1]", "unknown-keyword": b'{"keywords": {"$junk": true}}',
               "not-a-bool": b'{"keywords": {"$seen": "yes"}}', "keyword-list": b'{"keywords": ["$seen"]}',
               "other-property": b'{"subject": "new"}', "not-utf8": b"\xff\xfe",
               "too-big": b'{"keywords": {"$seen": true}' + b" " * api.MAX_JSON_BODY + b"}"}


@pytest.mark.parametrize("body", BAD_PATCHES.values(), ids=BAD_PATCHES.keys())
def test_bad_patch_is_400_and_changes_nothing(client, maildir, body):
    before = stored_file(maildir, PLAIN_SUBJECT)
    response = client.patch(f"/api/messages/{email_id(client, PLAIN_SUBJECT)}", content=body,
                            headers={**csrf(client), "Content-Type": "application/json"})
    is_error(response, 400)
    assert stored_file(maildir, PLAIN_SUBJECT) == before


def test_delete_removes_the_file(client, maildir):
    message, path = email_id(client, PLAIN_SUBJECT), stored_file(maildir, PLAIN_SUBJECT)
    response = client.delete(f"/api/messages/{message}", headers=csrf(client))
    assert response.status_code == 204 and response.content == b""
    assert not os.path.exists(path)
    is_error(client.get(f"/api/messages/{message}"), 404)
    assert listed(client)["total"] == 2
    is_error(client.delete(f"/api/messages/{message}", headers=csrf(client)), 404)


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_changes_without_the_csrf_token_are_403_and_change_nothing(client, maildir, token):
    message, path = email_id(client, PLAIN_SUBJECT), stored_file(maildir, PLAIN_SUBJECT)
    headers = {} if token is None else {"X-CSRF-Token": token}
    is_error(client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": True}}, headers=headers), 403)
    is_error(client.delete(f"/api/messages/{message}", headers=headers), 403)
    assert stored_file(maildir, PLAIN_SUBJECT) == path and flags_of(path) == ""


def test_read_only_refuses_changes(read_only_client, maildir):
    client = read_only_client
    message, path, headers = email_id(client, PLAIN_SUBJECT), stored_file(maildir, PLAIN_SUBJECT), csrf(client)
    is_error(client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": True}}, headers=headers), 403)
    is_error(client.delete(f"/api/messages/{message}", headers=headers), 403)
    assert os.path.exists(path) and flags_of(path) == ""
    assert all(not mailbox["myRights"]["mayRemoveItems"] for mailbox in mailboxes(client).values())


# --- sending ---------------------------------------------------------------------------------

def nothing_queued(queue_dir: str) -> bool:
    spool = os.path.join(queue_dir, "queue")
    return not os.path.isdir(spool) or not os.listdir(spool)


def queued(queue_dir: str, entry_id: str) -> bytes:
    with Queue(queue_dir) as queue:
        assert entry_id in queue.ids()
    return pathlib.Path(queue_dir, "queue", entry_id + ".eml").read_bytes()


@pytest.mark.parametrize("token", [None, "forged"])
def test_send_without_the_csrf_token_is_403_and_sends_nothing(sending_client, queue_dir, token):
    headers = {} if token is None else {"X-CSRF-Token": token}
    body = {"from": SENDER, "to": ["x@example.test"], "textBody": "b"}
    is_error(sending_client.post("/api/send", json=body, headers=headers), 403)
    is_error(sending_client.post("/api/send", data={**body, "csrf": token or ""}, files=[("attachment", ("a", b"a"))]),
             403)
    assert nothing_queued(queue_dir)


def test_send_without_a_sender_is_403(client):
    response = client.post("/api/send", json={"from": SENDER, "to": ["x@example.test"], "textBody": "b"},
                           headers=csrf(client))
    is_error(response, 403)
    assert "no way to send" in response.json()["error"]


def test_send_json_spools_into_the_queue(sending_client, queue_dir):
    response = sending_client.post("/api/send", headers=csrf(sending_client), json={
        "from": SENDER, "to": ["dave@example.test", "Erin <erin@example.test>"], "cc": ["frank@example.test"],
        "subject": "Sent by the API", "textBody": "Hello from JSON.\n"})
    assert response.status_code == 202, response.text
    message = queued(queue_dir, response.json()["id"])
    assert b"Subject: Sent by the API" in message and b"Hello from JSON." in message
    assert b"erin@example.test" in message and b"frank@example.test" in message


def test_send_form_with_attachments(sending_client, queue_dir):
    token = csrf(sending_client)["X-CSRF-Token"]
    response = sending_client.post(
        "/api/send", data={"from": SENDER, "to": "dave@example.test", "subject": "Form send", "body": "See attached.\n",
                           "csrf": token},
        files=[("attachment", ("data.bin", messages.ATTACHMENT, "application/octet-stream")),
               ("attachment", ("note.txt", b"a note\n", "text/plain"))])
    assert response.status_code == 202, response.text
    message = queued(queue_dir, response.json()["id"])
    assert b"Subject: Form send" in message and b"data.bin" in message and b"note.txt" in message


def test_send_a_reply_and_a_forward(sending_client, queue_dir):
    [original] = [email for email in listed(sending_client)["emails"] if email["subject"] == PLAIN_SUBJECT]
    [message_id] = original["messageId"]
    response = sending_client.post("/api/send", headers=csrf(sending_client), json={
        "from": SENDER, "to": ["alice@example.test"], "subject": "Re: Plain hello", "textBody": "Thanks.\n",
        "inReplyTo": [f"<{message_id}>"], "references": [f"<{message_id}>"], "forward": original["id"]})
    assert response.status_code == 202, response.text
    message = queued(queue_dir, response.json()["id"])
    assert f"In-Reply-To: <{message_id}>".encode() in message
    assert b"message/rfc822" in message and b"Hello Bob," in message


@pytest.mark.parametrize("body", [{"to": 5}, {"to": ["x@example.test"], "priority": "high"},
                                  {"to": [["nested"]]}, {"from": SENDER}, {"from": SENDER, "to": ["x@example.test"],
                                                                          "inReplyTo": "not-a-msg-id"}])
def test_bad_json_send_is_400(sending_client, queue_dir, body):
    is_error(sending_client.post("/api/send", json=body, headers=csrf(sending_client)), 400)
    assert nothing_queued(queue_dir)


def test_too_many_attachments_is_400(sending_client):
    token = csrf(sending_client)["X-CSRF-Token"]
    files = [("attachment", (f"f{n}.txt", b"x", "text/plain")) for n in range(forms.SEND.max_files + 1)]
    response = sending_client.post("/api/send", data={"to": "dave@example.test", "csrf": token}, files=files)
    is_error(response, 400)


def test_a_send_form_holds_a_few_fields_of_at_most_a_body_each(sending_client, queue_dir):
    """The form is read before its CSRF token is checked: its text fields are few and each
    at most a message body long (a longer text goes as an attachment), so that one request
    holds a few MiB in memory at most, not Starlette's 1000 fields of 1 MiB."""
    token = csrf(sending_client)["X-CSRF-Token"]
    form = {"from": SENDER, "to": "dave@example.test", "subject": "Bounds", "csrf": token}
    files = [("attachment", ("a.txt", b"a", "text/plain"))]
    body = ("x" * 75 + "\n") * (forms.SEND.max_field_size // 76) + "\n" * (forms.SEND.max_field_size % 76)
    accepted = sending_client.post("/api/send", data={**form, "body": body}, files=files)
    assert accepted.status_code == 202, accepted.text
    is_error(sending_client.post("/api/send", data={**form, "body": body + "x"}, files=files), 400)
    extras = {f"x{number}": "y" for number in range(forms.SEND.max_fields - len(form) - 1)}
    assert sending_client.post("/api/send", data={**form, **extras}, files=files).status_code == 202
    is_error(sending_client.post("/api/send", data={**form, **extras, "one-more": "y", "body": "hi"}, files=files), 400)
    with Queue(queue_dir) as queue:
        assert len(queue.ids()) == 2


def test_a_form_bigger_than_a_message_can_be_is_413_before_it_is_read(sending_client, queue_dir, monkeypatch):
    """Any site can make a browser POST a form here; its size is refused from the
    Content-Length, before a byte of it is spooled to disk and before the CSRF check."""
    monkeypatch.setattr(security, "MAX_FORM_BYTES", 10_000)
    response = sending_client.post("/api/send", data={"to": "dave@example.test", "csrf": "forged"},
                                   files=[("attachment", ("big.bin", b"x" * 20_000, "application/octet-stream"))])
    is_error(response, 413)
    assert nothing_queued(queue_dir)


def test_a_bearer_token_needs_no_csrf_token(tmp_path, maildir):
    """A script with the token carries no cookie a browser adds by itself: no CSRF token needed."""
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"], writable=True, token="s3cret-token"))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        is_error(client.get("/api/messages"), 401)
        client.headers["Authorization"] = "Bearer s3cret-token"
        message = email_id(client, PLAIN_SUBJECT)
        response = client.patch(f"/api/messages/{message}", json={"keywords": {"$seen": True}})
        assert response.status_code == 200 and response.json()["keywords"] == {"$seen": True}
        assert flags_of(stored_file(maildir, PLAIN_SUBJECT)) == "S"


def test_unknown_api_urls_and_methods_answer_json(client):
    is_error(client.get("/api/nothing-here"), 404)
    is_error(client.put("/api/messages/abc", json={}), 405)
    is_error(client.post("/api/messages", json={}), 405)


@pytest.mark.parametrize("q", ["a\x00b", "\x00", "from:\x00x", "subject:\"a\x1fb\"", "x" * 1001])
def test_control_characters_and_overlong_searches_are_never_a_500(client, q):
    response = client.get("/api/messages", params={"q": q})
    assert response.status_code in (200, 400), response.text
    if len(q) > 1000:
        is_error(response, 400)


def test_json_nested_past_the_parser_depth_is_a_400(client):
    message, headers = email_id(client, PLAIN_SUBJECT), csrf(client)
    response = client.patch(f"/api/messages/{message}", content=b"[" * 100_000,
                            headers={**headers, "Content-Type": "application/json"})
    is_error(response, 400)
