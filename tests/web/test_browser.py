"""The web interface in a real browser: headless Chromium, driven by selenium, on `mimekit
serve --http` over a Maildir, as a user would use it: the list, search, a message with an
inline image and an attachment, downloads, compose and send through serve's own SMTP,
delete, read/unread. Then hostile mail: the proof, through the browser itself, that no
script ran (window.__pwned, in the page and in the message's iframe) and that nothing was
fetched from a "remote" host (its request log) until the user asked for remote images.

One serve and one browser for the module (browser.py); each test uses its own messages, so
that the order they run in does not matter."""

import os
import time
from pathlib import Path

import pytest
import web_messages
from browser import (FRAME_SANDBOX_ALLOWS, SEEDED, RequestLog, Site, console_messages, deliver_at,
                     maildir_files, maildir_flags, message_rows, open_inbox, open_message, pwned, row_with,
                     sandbox_allows, seed, serve_with_http, sha256, start_browser, submit_form,
                     visit, wait_for_download, wait_until)
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By


@pytest.fixture(scope="session")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def driver(downloads):
    browser = start_browser(downloads)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """Where screenshots go: $MIMEKIT_ARTIFACTS (CI keeps it), else a temporary directory."""
    path = Path(os.environ["MIMEKIT_ARTIFACTS"]) if os.environ.get("MIMEKIT_ARTIFACTS") \
        else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def request_log():
    log = RequestLog()
    try:
        yield log
    finally:
        log.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    """One `mimekit serve --http` over the seeded Maildir for the module; it must stop with exit 0."""
    base = tmp_path_factory.mktemp("site")
    seed(base / "Mail")
    (base / "home").mkdir()
    site = serve_with_http(base / "Mail", base / "serve.log", base / "home")
    try:
        yield site
    finally:
        site.served.stop()


def subjects_in_list(driver) -> list[str]:
    return [row.text for row in message_rows(driver)]


def position_of(rows: list[str], subject: str) -> int:
    [position] = [number for number, text in enumerate(rows) if subject in text]
    return position


def look_of(driver, row) -> list[str]:
    """The computed style of a row and everything in it: what tells unread from read."""
    return driver.execute_script(
        "return [arguments[0], ...arguments[0].querySelectorAll('*')].map(e => {"
        " const s = getComputedStyle(e), b = getComputedStyle(e, '::before');"
        " return [s.fontWeight, s.color, s.backgroundColor, b.content].join(' '); })", row)


def is_unread(row) -> bool:
    return "unread" in (row.get_attribute("class") or "").split() or bool(row.find_elements(By.CSS_SELECTOR, ".unread"))


def test_the_list_shows_newest_first_and_unread_ones_stand_out(driver, site, artifacts):
    open_inbox(driver, site)
    rows = subjects_in_list(driver)
    positions = [position_of(rows, seeded.subject) for seeded in SEEDED]
    assert positions == sorted(positions, reverse=True), rows       # seeded oldest first: shown newest first
    by_subject = {seeded.subject: row for seeded in SEEDED for row in message_rows(driver) if seeded.subject in row.text}
    for seeded in SEEDED:
        assert is_unread(by_subject[seeded.subject]) == (not seeded.seen), seeded.subject
    assert look_of(driver, by_subject["Plain hello"]) != look_of(driver, by_subject["Grüße aus Köln"])
    driver.save_screenshot(str(artifacts / "web-list.png"))
    print(f"list screenshot: {artifacts / 'web-list.png'}")
    assert (artifacts / "web-list.png").stat().st_size > 0

    [archive] = [link for link in driver.find_elements(By.CSS_SELECTOR, "#folders a") if "Archive" in link.text]
    folder_url = archive.get_attribute("href")
    archive.click()
    wait_until(lambda: driver.current_url == folder_url, "the Archive folder")
    [old_news] = subjects_in_list(driver)
    assert "Old news" in old_news


def search_for(driver, words: str) -> list[str]:
    box = driver.find_element(By.CSS_SELECTOR, "input#search, #search input[name=q]")
    box.clear()
    box.send_keys(words)
    box.submit()
    wait_until(lambda: "q=" in driver.current_url, f"the results of {words!r}")
    return subjects_in_list(driver)


def test_search_narrows_the_list(driver, site):
    open_inbox(driver, site)
    assert len(subjects_in_list(driver)) >= len(SEEDED)
    [found] = search_for(driver, "Quarterly")
    assert "Quarterly report with picture" in found
    [found] = search_for(driver, "from:juergen")
    assert "Grüße aus Köln" in found
    assert search_for(driver, "no-such-word-anywhere") == []


def test_an_html_message_shows_its_inline_image_in_a_sandboxed_frame(driver, site, artifacts):
    email_id = open_message(driver, site, "Quarterly report with picture")
    assert "The chart is inline" in driver.find_element(By.ID, "text-body").text
    frame = driver.find_element(By.CSS_SELECTOR, "iframe#html-body")
    assert sandbox_allows(frame) <= FRAME_SANDBOX_ALLOWS            # no scripts, no same origin
    assert frame.get_attribute("src") == f"{site.url}/messages/{email_id}/body.html"
    parts = driver.find_element(By.ID, "parts").get_attribute("textContent")   # folded away in <details>
    assert "image/png" in parts and "application/octet-stream" in parts

    driver.switch_to.frame(frame)
    try:
        images = wait_until(lambda: driver.execute_script(
            "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
            ".map(i => [i.getAttribute('src'), i.naturalWidth])"), "the inline image loaded in the frame")
        assert "The data is attached." in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.switch_to.default_content()
    [(source, width)] = images
    assert width == 16 and not source.startswith("cid:"), images  # the 16x16 PNG, served from the message
    driver.save_screenshot(str(artifacts / "web-message.png"))
    print(f"message screenshot: {artifacts / 'web-message.png'}")


def test_the_attachment_downloads_byte_for_byte(driver, site, downloads):
    open_message(driver, site, "Quarterly report with picture")
    [link] = [link for link in driver.find_elements(By.CSS_SELECTOR, "#attachments a") if "report" in link.text]
    page = driver.current_url
    known = {path.name for path in downloads.iterdir()}
    link.click()
    downloaded = wait_for_download(downloads, known)
    assert sha256(downloaded.read_bytes()) == sha256(web_messages.ATTACHMENT)
    assert downloaded.name.endswith(".bin") and "/" not in downloaded.name
    assert driver.current_url == page                           # a download, not a navigation


def test_a_message_composed_in_the_page_is_sent_through_serves_smtp_and_listed(driver, site, tmp_path):
    token = f"composed-{time.monotonic_ns()}"
    attachment = tmp_path / "notes.txt"
    attachment.write_bytes(b"notes from the browser\n")
    visit(driver, site.url + "/compose")
    form = driver.find_element(By.XPATH, "//form[.//input[@name='subject']]")
    for name, value in (("from", "Tester <tester@example.test>"), ("to", "bob@example.test"),
                        ("cc", "carol@example.test"), ("subject", f"Sent from the page {token}")):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)
    form.find_element(By.NAME, "body").send_keys("Written in Chromium.\n")
    form.find_element(By.NAME, "attachment").send_keys(str(attachment))
    form.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
    wait_until(lambda: "/compose" not in driver.current_url, "the page after sending (303)")

    stored = site.served.wait_for(token).read_bytes()              # delivered by serve's SMTP listener
    assert b"Written in Chromium." in stored and b"notes.txt" in stored
    assert b"bob@example.test" in stored and b"carol@example.test" in stored
    row_with(driver, site, f"Sent from the page {token}")


def test_new_mail_appears_in_the_open_list_without_a_reload(driver, site):
    """Live updates: the page is loaded once; a message delivered afterwards shows up in it
    (the server-sent event makes app.js redraw the list) and the INBOX count follows."""
    open_inbox(driver, site)
    marker = driver.execute_script("window.__loadedOnce = true; return window.__loadedOnce;")
    before = driver.find_element(By.CSS_SELECTOR, "#folders li.current .total-count").text
    subject = f"Live {time.monotonic_ns()}"
    deliver_at(site.root, web_messages.plain(subject=subject), time.time())
    wait_until(lambda: any(subject in text for text in _row_texts_now(driver)), "the new row, without a reload")
    assert marker and driver.execute_script("return window.__loadedOnce === true;")   # the same page
    assert int(driver.find_element(By.CSS_SELECTOR, "#folders li.current .total-count").text) == int(before) + 1


def _row_texts_now(driver) -> list[str]:
    """The rows' texts; none while app.js is replacing the list (its old rows are stale)."""
    try:
        return [row.text for row in message_rows(driver)]
    except StaleElementReferenceException:
        return []


def test_deleting_a_message_removes_it_from_the_list_and_the_maildir(driver, site):
    assert len(maildir_files(site.root, "Subject: Delete me")) == 1
    open_message(driver, site, "Delete me")
    submit_form(driver, "/delete")
    wait_until(lambda: not maildir_files(site.root, "Subject: Delete me"), "the message gone from the Maildir")
    open_inbox(driver, site)
    assert not [text for text in subjects_in_list(driver) if "Delete me" in text]


def test_mark_unread_and_read_toggles_the_maildir_seen_flag(driver, site):
    def stored_flags() -> str:
        [path] = maildir_files(site.root, "Subject: Flag me")
        return maildir_flags(path)

    assert "S" in stored_flags()
    email_id = open_message(driver, site, "Flag me")
    for seen in ("0", "1"):
        visit(driver, f"{site.url}/messages/{email_id}")
        seen_field = driver.find_element(By.CSS_SELECTOR, "form[action$='/flags'] input[name=seen]")
        assert seen_field.get_attribute("value") == seen          # the button offers the other state
        submit_form(driver, "/flags")
        wait_until(lambda: ("S" in stored_flags()) == (seen == "1"), f"the Maildir flags after seen={seen}")
        assert is_unread(row_with(driver, site, "Flag me")) == (seen == "0")


def test_hostile_mail_runs_no_script_and_fetches_nothing_remote_until_asked(driver, site, request_log, downloads):
    """The proof of issue 14: hostile HTML, a hostile subject and a hostile file name, in the
    real browser. window.__pwned is what any of its scripts would set; the request log is
    the "remote host" all its resources point at."""
    deliver_at(site.root, web_messages.hostile(request_log.port), time.time())
    console_messages(driver)                                       # start the console afresh
    email_id = open_message(driver, site, "> hostile")
    time.sleep(2)                                                  # time for anything to run or load

    assert pwned(driver) is None
    page_text = driver.find_element(By.TAG_NAME, "body").text
    assert "<img src=x onerror" in page_text                       # the subject, as text
    assert driver.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    attachments = driver.find_element(By.ID, "attachments")
    assert "onerror" in attachments.text and attachments.find_elements(By.TAG_NAME, "img") == []

    frame = driver.find_element(By.CSS_SELECTOR, "iframe#html-body")
    assert sandbox_allows(frame) <= FRAME_SANDBOX_ALLOWS
    driver.switch_to.frame(frame)
    try:
        assert "Hostile body" in driver.find_element(By.TAG_NAME, "body").text
        assert pwned(driver) is None
        for link in driver.find_elements(By.ID, "jslink"):        # the javascript: link, if it survived at all
            link.click()
            time.sleep(0.5)
        assert pwned(driver) is None
    finally:
        driver.switch_to.default_content()
    assert pwned(driver) is None
    assert request_log.paths == []

    # the body's document opened on its own: its CSP sandboxes it too
    visit(driver, f"{site.url}/messages/{email_id}/body.html")
    time.sleep(1)
    assert pwned(driver) is None and request_log.paths == []

    # the SVG attachment (with a script) is a download, never a document that runs
    visit(driver, f"{site.url}/messages/{email_id}")
    [svg] = [link for link in driver.find_elements(By.CSS_SELECTOR, "#attachments a") if ".svg" in link.text]
    page = driver.current_url
    known = {path.name for path in downloads.iterdir()}
    svg.click()
    downloaded = wait_for_download(downloads, known)
    assert b"window.__pwned='attachment'" in downloaded.read_bytes()
    assert "<" not in downloaded.name and "/" not in downloaded.name
    assert driver.current_url == page and pwned(driver) is None

    # remote images: only when the user asks, and then images only, still no script
    [show] = driver.find_elements(By.XPATH, "//*[self::a or self::button][contains(., 'Show remote images')]")
    show.click()
    wait_until(lambda: "/remote-image.png" in request_log.paths, "the remote image, once asked for")
    time.sleep(1)
    assert set(request_log.paths) <= {"/remote-image.png", "/css-url.png", "/svg-image.png"}, request_log.paths
    assert pwned(driver) is None
    driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "iframe#html-body"))
    try:
        assert pwned(driver) is None
    finally:
        driver.switch_to.default_content()

    violations = [message for message in console_messages(driver) if "Content Security Policy" in message]
    print(f"request log: {request_log.paths}")
    print("CSP violations the browser reported:", *violations, sep="\n  ")
