"""The HTML pages through Starlette's TestClient: the folder list, search and paging, a message
with its sandboxed HTML body, the check view, the forms behind the CSRF token, compose, and
errors as pages. What the browser does with them is tests/web/test_browser.py's."""

import io
import os
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from mimekit.web import forms, html_body, security
from mimekit.web.app import create_app
from mimekit.write.composer import MessageBuilder
from mimekit.write.writer import write_message
from conftest import web_config
import web_messages as messages

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')
ROW = re.compile(r'<tr class="message( unread)?" data-id="([0-9a-f]+)">')


def rows(page: str) -> list[str]:
    """The ids of the list's rows, in order."""
    return [match.group(2) for match in ROW.finditer(page)]


def row_of(client: TestClient, folder_url: str, subject: str) -> str:
    """The id of the message listed with `subject` (searched by it)."""
    page = client.get(folder_url, params={"q": f'subject:"{subject}"'}).text
    found = rows(page)
    assert len(found) == 1, page
    return found[0]


def inbox_url(client: TestClient) -> str:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    return response.headers["location"]


def store(maildir, message: bytes, when: int, flags: str = "") -> None:
    """A message delivered at `when` (the time a Maildir unique name records)."""
    for sub in ("new", "cur", "tmp"):
        os.makedirs(maildir / sub, exist_ok=True)
    name = f"{when}.M0P{when % 100000}.test" + (f":2,{flags}" if flags else "")
    (maildir / ("cur" if flags else "new") / name).write_bytes(message)


# -- the folder list ------------------------------------------------------------------------

def test_root_leads_to_the_inbox_which_lists_its_folders_and_messages(client):
    url = inbox_url(client)
    page = client.get(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    folders = re.findall(r'<a href="(/folders/[0-9a-f]+)">([^<]+)</a>', page.text.split('id="folders"')[1])
    assert [name for _, name in folders] == ["INBOX", "Archive"]
    assert folders[0][0] == url
    assert 'id="message-list"' in page.text
    assert len(rows(page.text)) == 3
    assert "Plain hello" in page.text and "Quarterly report with picture" in page.text
    assert "Grüße aus Köln — 東京" in page.text          # RFC 2047 decoded
    assert 'id="search"' in page.text and 'name="q"' in page.text
    assert "compose-link" not in page.text              # no sender: no compose
    assert 'id="pager"' in page.text and "page 1 of 1" in page.text


def test_unread_rows_are_marked_and_attachments_have_a_paperclip(client):
    page = client.get(inbox_url(client)).text
    unread = {match.group(2) for match in ROW.finditer(page) if match.group(1)}
    assert len(unread) == 2                              # the non-ASCII message was delivered read
    read_id = next(email_id for email_id in rows(page) if email_id not in unread)
    assert "Grüße" in re.search(f'data-id="{read_id}">(.*?)</tr>', page, re.S).group(1)
    with_attachment = page.split("Quarterly report")[0].rsplit("<tr", 1)[1]
    assert 'class="paperclip"' in with_attachment
    assert page.count('class="paperclip"') == 1
    counts = page.split('id="folders"')[1].split("</li>")[0]
    assert '<span class="unread-count has-unread">2</span>/<span class="total-count">3</span>' in counts


def test_the_list_is_newest_first(tmp_path):
    box = tmp_path / "Box"
    for when, subject in ((1_700_000_300, "third"), (1_700_000_100, "first"), (1_700_000_200, "second")):
        store(box, messages.plain(subject=subject), when)
    with TestClient(create_app(web_config(tmp_path, [f"maildir:{box}"]))) as client:
        page = client.get(inbox_url(client)).text
    subjects = re.findall(r'<td class="subject"><a href="[^"]+">([^<]+)</a>', page)
    assert subjects == ["third", "second", "first"]
    assert "2023-11-14 22:18" in page                    # 1_700_000_300 in UTC


def test_a_subject_that_is_markup_shows_as_text(client, maildir):
    messages.deliver(str(maildir), messages.plain(subject='<script>window.__pwned=1</script> & <b>bold</b>',
                                                  sender='"<img src=x onerror=alert(1)>" <evil@example.test>'))
    page = client.get(inbox_url(client)).text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script>window" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/app.js" defer>']


def test_the_message_page_escapes_headers_too(client, maildir):
    messages.deliver(str(maildir), messages.plain(subject="<img src=x onerror=alert(1)> hi",
                                                  sender='"<b>Eve</b>" <eve@example.test>',
                                                  body="<script>alert(2)</script>\n"))
    url = inbox_url(client)
    email_id = row_of(client, url, "hi")
    page = client.get(f"/messages/{email_id}").text
    assert "&lt;img src=x onerror=alert(1)&gt; hi" in page
    assert '<td class="from">&lt;b&gt;Eve&lt;/b&gt; &lt;eve@example.test&gt;</td>' in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "<script>alert" not in page


def test_a_folder_with_no_messages_says_so(tmp_path):
    box = tmp_path / "Empty"
    for sub in ("new", "cur", "tmp"):
        os.makedirs(box / sub)
    with TestClient(create_app(web_config(tmp_path, [f"maildir:{box}"]))) as client:
        page = client.get(inbox_url(client)).text
    assert 'id="empty"' in page and "No messages" in page
    assert "page 1 of 1" in page and rows(page) == []


def test_new_mail_is_listed_at_the_next_look(client, maildir):
    url = inbox_url(client)
    assert len(rows(client.get(url).text)) == 3
    messages.deliver(str(maildir), messages.plain(subject="Just arrived"))
    page = client.get(url).text
    assert len(rows(page)) == 4 and "Just arrived" in page


# -- search and paging ----------------------------------------------------------------------

def test_search_narrows_the_list_and_keeps_the_query_in_the_box(client):
    url = inbox_url(client)
    page = client.get(url, params={"q": "subject:quarterly"}).text
    assert len(rows(page)) == 1 and "Quarterly report with picture" in page
    assert 'value="subject:quarterly"' in page
    assert len(rows(client.get(url, params={"q": "from:juergen"}).text)) == 1
    assert len(rows(client.get(url, params={"q": "has:attachment"}).text)) == 1
    assert len(rows(client.get(url, params={"q": "is:unread"}).text)) == 2
    nothing = client.get(url, params={"q": "nosuchwordanywhere"}).text
    assert rows(nothing) == [] and "No message matches" in nothing


def test_a_bad_search_is_a_400_page_saying_why(client):
    response = client.get(inbox_url(client), params={"q": "after:2024-13-45"})
    assert response.status_code == 400
    assert 'id="error"' in response.text and "no such date" in response.text
    assert 'value="after:2024-13-45"' in response.text   # the box keeps what was typed


def test_pages_of_the_list(tmp_path):
    box = tmp_path / "Box"
    for n in range(5):
        store(box, messages.plain(subject=f"message {n}"), 1_700_000_000 + n)
    with TestClient(create_app(web_config(tmp_path, [f"maildir:{box}"], page_size=2))) as client:
        url = inbox_url(client)
        first = client.get(url).text
        assert "page 1 of 3" in first and "5 messages" in first
        assert re.findall(r">(message \d)<", first) == ["message 4", "message 3"]
        assert 'id="prev-page"' not in first
        next_url = re.search(r'id="next-page" href="([^"]+)"', first).group(1).replace("&amp;", "&")
        second = client.get(next_url).text
        assert "page 2 of 3" in second and re.findall(r">(message \d)<", second) == ["message 2", "message 1"]
        last = client.get(url, params={"page": 3}).text
        assert re.findall(r">(message \d)<", last) == ["message 0"]
        assert 'id="next-page"' not in last and 'id="prev-page"' in last
        searched = client.get(url, params={"q": "message", "page": 2}).text
        link = re.search(r'id="prev-page" href="([^"]+)"', searched).group(1).replace("&amp;", "&")
        assert parse_qs(urlsplit(link).query) == {"q": ["message"], "page": ["1"]}
        for bad in ("0", "-1", "abc", "1e3", "99999999999"):
            response = client.get(url, params={"page": bad})
            assert response.status_code == 400, bad
            assert "page:" in response.text


# -- a message ------------------------------------------------------------------------------

def test_the_message_page_shows_headers_text_html_frame_and_attachments(client):
    url = inbox_url(client)
    email_id = row_of(client, url, "Quarterly report with picture")
    response = client.get(f"/messages/{email_id}")
    assert response.status_code == 200
    page = response.text
    assert "Carol &lt;carol@example.test&gt;" in page and "bob@example.test" in page
    assert re.search(r'<pre id="text-body">The chart is inline; the data is attached.\n</pre>', page)
    frame = re.search(r"<iframe [^>]*>", page).group(0)
    # Sandboxed: no scripts, no same origin; only a link the user clicks opens, in a new tab.
    assert frame == (f'<iframe id="html-body" sandbox="allow-popups allow-popups-to-escape-sandbox" '
                     f'src="/messages/{email_id}/body.html" referrerpolicy="no-referrer" title="HTML body">')
    attachments = page.split('id="attachments"')[1].split("</section>")[0]
    link = re.search(r'<a href="(/api/messages/[^"]+)">report data.bin</a>', attachments).group(1)
    assert link.startswith(f"/api/messages/{email_id}/parts/")
    assert client.get(link).content == messages.ATTACHMENT
    assert "chart.png" not in attachments                  # inline image: shown in the body, not listed
    parts = page.split('id="parts"')[1].split("</section>")[0]
    for part_type in ("multipart/mixed", "multipart/related", "multipart/alternative", "text/plain", "text/html",
                      "image/png", "application/octet-stream"):
        assert part_type in parts
    assert 'id="defects"' in page
    assert f'href="/api/messages/{email_id}/raw"' in page and f'href="/messages/{email_id}/check"' in page


def test_the_message_page_has_forms_for_flags_and_delete_but_not_compose_without_sender(client):
    email_id = row_of(client, inbox_url(client), "Plain hello")
    page = client.get(f"/messages/{email_id}").text
    assert f'action="/messages/{email_id}/flags"' in page and "Mark read" in page
    assert f'action="/messages/{email_id}/delete"' in page
    assert len(CSRF_FIELD.findall(page)) == 2
    assert "/compose?reply=" not in page and "compose-link" not in page
    assert 'id="html-body"' not in page                     # a plain message has no HTML frame


def test_opening_a_message_does_not_mark_it_read(client):
    url = inbox_url(client)
    email_id = row_of(client, url, "Plain hello")
    client.get(f"/messages/{email_id}")
    assert f'<tr class="message unread" data-id="{email_id}">' in client.get(url).text


def test_the_html_body_document_is_sanitised_and_under_its_own_csp(client):
    email_id = row_of(client, inbox_url(client), "Quarterly report with picture")
    response = client.get(f"/messages/{email_id}/body.html")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == html_body.body_csp(False)
    assert response.headers["x-content-type-options"] == "nosniff"
    image = re.search(r'<img [^>]*src="([^"]+)"', response.text).group(1)
    assert image.startswith(f"/api/messages/{email_id}/cid/")
    assert client.get(image).content == messages.INLINE_IMAGE
    remote = client.get(f"/messages/{email_id}/body.html", params={"remote": "1"})
    assert remote.headers["content-security-policy"] == html_body.body_csp(True)


def test_remote_images_are_blocked_until_asked_for(client, maildir):
    messages.deliver(str(maildir), messages.hostile(remote_port=9))
    email_id = row_of(client, inbox_url(client), "hostile")
    page = client.get(f"/messages/{email_id}").text
    show = re.search(r'<a id="show-remote"[^>]*href="([^"]+)"[^>]*>Show remote images \((\d+)\)</a>', page)
    assert show.group(1) == f"/messages/{email_id}?remote=1" and int(show.group(2)) >= 1
    body = client.get(f"/messages/{email_id}/body.html").text
    assert "127.0.0.1:9" not in body and "<script" not in body.lower() and "onerror" not in body.lower()
    allowed = client.get(show.group(1)).text
    assert f'src="/messages/{email_id}/body.html?remote=1"' in allowed and 'id="block-remote"' in allowed
    assert "127.0.0.1:9/remote-image.png" in client.get(f"/messages/{email_id}/body.html?remote=1").text
    assert "&lt;img src=x onerror=" in page                  # the hostile file name, as text
    assert "<img src=x" not in page


def test_a_message_without_html_has_no_body_document(client):
    email_id = row_of(client, inbox_url(client), "Plain hello")
    response = client.get(f"/messages/{email_id}/body.html")
    assert response.status_code == 404 and "no HTML body" in response.text


def test_the_check_page_gives_the_checkers_verdict(client, maildir):
    messages.deliver(str(maildir), b"From: a@example.test\nSubject: no date nor id\n\nbody\n")
    email_id = row_of(client, inbox_url(client), "no date nor id")
    page = client.get(f"/messages/{email_id}/check")
    assert page.status_code == 200
    assert 'id="verdict" class="problems"' in page.text
    assert "Date header missing" in page.text and "Message-Id header missing" in page.text
    good_id = row_of(client, inbox_url(client), "Plain hello")
    good = client.get(f"/messages/{good_id}/check").text
    assert 'id="verdict" class="ok"' in good


# -- changes behind the CSRF token ----------------------------------------------------------

def csrf_of(client: TestClient, email_id: str) -> str:
    return CSRF_FIELD.search(client.get(f"/messages/{email_id}").text).group(1)


def test_delete_needs_the_csrf_token(client, maildir):
    url = inbox_url(client)
    email_id = row_of(client, url, "Plain hello")
    for form in ({}, {"csrf": "forged"}):
        refused = client.post(f"/messages/{email_id}/delete", data=form, follow_redirects=False)
        assert refused.status_code == 403
        assert client.get(f"/messages/{email_id}").status_code == 200
    token = csrf_of(client, email_id)
    done = client.post(f"/messages/{email_id}/delete", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"{url}?deleted=1"
    assert client.get(f"/messages/{email_id}").status_code == 404
    after = client.get(done.headers["location"]).text
    assert email_id not in rows(after) and "Message deleted." in after
    assert len(os.listdir(maildir / "new")) + len(os.listdir(maildir / "cur")) == 2


def test_flags_need_the_csrf_token_and_change_read_state(client, maildir):
    url = inbox_url(client)
    email_id = row_of(client, url, "Plain hello")
    assert client.post(f"/messages/{email_id}/flags", data={"seen": "1"}).status_code == 403
    assert f'class="message unread" data-id="{email_id}"' in client.get(url).text
    token = csrf_of(client, email_id)
    done = client.post(f"/messages/{email_id}/flags", data={"csrf": token, "seen": "1"}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/messages/{email_id}"
    assert f'class="message" data-id="{email_id}"' in client.get(url).text
    assert any(name.endswith(":2,S") for name in os.listdir(maildir / "cur"))
    assert "Mark unread" in client.get(f"/messages/{email_id}").text
    client.post(f"/messages/{email_id}/flags", data={"csrf": token, "seen": "0"})
    assert f'class="message unread" data-id="{email_id}"' in client.get(url).text
    bad = client.post(f"/messages/{email_id}/flags", data={"csrf": token, "seen": "yes"})
    assert bad.status_code == 400


@pytest.mark.parametrize("action", ["delete", "flags"])
def test_a_change_form_is_refused_unread_past_its_few_small_fields(client, action):
    """Any web page can make the browser POST here (the CSRF check comes after the form is
    read): a form of many fields or a long one is refused before it fills the memory."""
    email_id = row_of(client, inbox_url(client), "Plain hello")
    token = csrf_of(client, email_id)
    for form in ({"csrf": token, "seen": "1", **{f"x{number}": "y" for number in range(200)}},
                 {"csrf": token, "seen": "1", "x": "y" * 100_000}):
        refused = client.post(f"/messages/{email_id}/{action}", data=form, follow_redirects=False)
        assert refused.status_code == 400 and refused.headers["content-type"].startswith("text/html")
    assert client.get(f"/messages/{email_id}").status_code == 200


@pytest.mark.parametrize("extra", [{f"x{number}": "y" for number in range(200)}, {"subject": "y" * (forms.SEND.max_field_size + 1)}],
                         ids=["too-many-fields", "a-field-too-long"])
def test_a_compose_form_past_its_bounds_is_a_400_page_saying_why(sending, extra):
    client, sender = sending
    token = CSRF_FIELD.search(client.get("/compose").text).group(1)
    form = {"csrf": token, "from": "me@example.test", "to": "carol@example.test", "body": "hi", **extra}
    refused = client.post("/compose", data=form, files=[("attachment", ("a.txt", b"a", "text/plain"))])
    assert refused.status_code == 400 and sender.sent == []
    assert refused.headers["content-type"].startswith("text/html") and "form: " in refused.text


def test_a_malformed_compose_form_is_a_400_page(sending):
    client, sender = sending
    refused = client.post("/compose", content=b"--b\r\nno end of headers",
                          headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert refused.status_code == 400 and sender.sent == []
    assert refused.headers["content-type"].startswith("text/html") and "form: " in refused.text


def test_a_compose_form_bigger_than_a_message_can_be_is_413(sending, monkeypatch):
    client, sender = sending
    monkeypatch.setattr(security, "MAX_FORM_BYTES", 10_000)
    token = CSRF_FIELD.search(client.get("/compose").text).group(1)
    response = client.post("/compose", data={"csrf": token, "from": "me@example.test", "to": "carol@example.test"},
                           files=[("attachment", ("big.bin", b"x" * 20_000, "application/octet-stream"))])
    assert response.status_code == 413 and sender.sent == []


def test_a_read_only_folder_has_no_forms_and_refuses_changes(tmp_path, maildir):
    with TestClient(create_app(web_config(tmp_path, [f"maildir:{maildir}"]))) as client:
        email_id = row_of(client, inbox_url(client), "Plain hello")
        page = client.get(f"/messages/{email_id}").text
        assert "/delete" not in page and "/flags" not in page
        token = security_token(client)
        refused = client.post(f"/messages/{email_id}/delete", data={"csrf": token})
        assert refused.status_code == 403 and "read-only" in refused.text
        assert client.get(f"/messages/{email_id}").status_code == 200


def security_token(client: TestClient) -> str:
    return client.get("/api/session").json()["csrfToken"]


# -- compose --------------------------------------------------------------------------------

class RecordingSender:
    """A Sender that keeps what it is given."""

    def __init__(self):
        self.sent = []

    def send(self, message) -> str:
        self.sent.append(message)
        return f"queued as Q{len(self.sent)}"


@pytest.fixture
def sending(tmp_path, maildir):
    sender = RecordingSender()
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"], writable=True, sender=sender))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client, sender


def test_compose_is_403_without_a_sender(client):
    response = client.get("/compose")
    assert response.status_code == 403 and "does not send mail" in response.text
    token = security_token(client)
    refused = client.post("/compose", data={"csrf": token, "to": "x@example.test", "body": "hi"})
    assert refused.status_code == 403


def test_compose_sends_and_says_so(sending):
    client, sender = sending
    url = inbox_url(client)
    assert 'id="compose-link"' in client.get(url).text
    form = client.get("/compose").text
    token = CSRF_FIELD.search(form).group(1)
    assert 'enctype="multipart/form-data"' in form and 'name="attachment" type="file" multiple' in form
    assert client.post("/compose", data={"to": "x@example.test"}).status_code == 403
    done = client.post("/compose", data={"csrf": token, "from": "me@example.test", "to": "carol@example.test",
                                         "subject": "Numbers", "body": "See attached.\n"},
                       files=[("attachment", ("data.csv", b"a,b\n1,2\n", "text/csv"))], follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"{url}?sent=queued+as+Q1"
    assert len(sender.sent) == 1
    assert "Message sent: queued as Q1" in client.get(done.headers["location"]).text


def test_compose_shows_the_form_again_with_why(sending):
    client, sender = sending
    token = CSRF_FIELD.search(client.get("/compose").text).group(1)
    response = client.post("/compose", data={"csrf": token, "from": "me@example.test", "to": "not an address <",
                                             "subject": "Kept <b>", "body": "kept body"})
    assert response.status_code == 400
    assert 'id="error"' in response.text and sender.sent == []
    assert 'value="Kept &lt;b&gt;"' in response.text and ">kept body</textarea>" in response.text


def test_reply_and_forward_fill_the_form(sending):
    client, _ = sending
    email_id = row_of(client, inbox_url(client), "Plain hello")
    page = client.get(f"/messages/{email_id}").text
    assert f'href="/compose?reply={email_id}"' in page and f'href="/compose?forward={email_id}"' in page
    reply = client.get(f"/compose?reply={email_id}").text
    assert 'value="Re: Plain hello"' in reply and "alice@example.test" in reply
    assert "&gt; Hello Bob," in reply and 'name="in_reply_to"' in reply
    forward = client.get(f"/compose?forward={email_id}").text
    assert 'value="Fwd: Plain hello"' in forward and f'name="forward" value="{email_id}"' in forward
    assert client.get("/compose?reply=0123456789abcdef01234567").status_code == 404


# -- errors and headers ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/folders/nosuchfolder", "/messages/0123456789abcdef01234567",
                                  "/messages/nosuch/check", "/messages/nosuch/body.html",
                                  "/messages/%3Cscript%3E"])
def test_unknown_ids_are_a_404_page(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="error-status">404<' in response.text
    assert "<script>" not in response.text


def test_unknown_ids_in_forms_are_404(client):
    token = security_token(client)
    assert client.post("/messages/nosuch/delete", data={"csrf": token}).status_code == 404
    assert client.post("/messages/nosuch/flags", data={"csrf": token, "seen": "1"}).status_code == 404


def test_pages_carry_the_content_security_policy(client):
    url = inbox_url(client)
    email_id = row_of(client, url, "Plain hello")
    for path in (url, f"/messages/{email_id}", f"/messages/{email_id}/check", "/folders/nosuch"):
        policy = client.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, path
        assert "unsafe-inline" not in policy


def test_static_files_are_served(client):
    assert "EventSource" in client.get("/static/app.js").text
    assert "#message-list" in client.get("/static/style.css").text


def test_an_html_body_past_the_cap_is_cut_and_the_page_says_so(client, maildir):
    builder = MessageBuilder()
    builder.add_addresses("From", ["big@example.test"])
    builder.add_header("Subject", "Long newsletter")
    builder.set_body(b"text\n")
    builder.set_body(b"<p>" + b"word " * (html_body.MAX_HTML_CHARACTERS // 4) + b"</p>", html=True)
    sink = io.BytesIO()
    write_message(builder.build(), sink)
    messages.deliver(str(maildir), sink.getvalue())
    email_id = row_of(client, inbox_url(client), "Long newsletter")
    assert 'id="html-truncated"' in client.get(f"/messages/{email_id}").text
    short = row_of(client, inbox_url(client), "Quarterly report with picture")
    assert 'id="html-truncated"' not in client.get(f"/messages/{short}").text
