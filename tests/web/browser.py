"""What tests/web/test_browser.py drives: the system Chromium under selenium, `mimekit serve
--http` as its users start it, a Maildir seeded at known times, and a "remote host" on
127.0.0.1 that logs every request, where hostile mail points.

The browser can reach nothing but this machine: its host resolver maps every name to
"not found" except 127.0.0.1, so even a resource that slipped through would fail rather
than leave the machine; the request log is how the tests see that nothing tried."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import web_messages
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serve"))
from served import HOST, Served, start_serve  # noqa: E402  (tests/serve/served.py: serve as a subprocess)

CHROMIUM = "/usr/bin/chromium"            # Debian's chromium and chromium-driver (scripts/test installs them)
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_ARGUMENTS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900",
                     # nothing resolves but loopback: no request leaves the machine, whatever leaks
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
WAIT = 10.0                               # seconds for a page or an element; pages load in milliseconds
LIVE_UPDATE_WAIT = 5.0                    # new mail shows in the list within this (serve polls every second)
SEEDED_AT = 1_700_000_000                 # the seeded messages' delivery time, 2023-11-14, each 100 s apart


def require_browser() -> None:
    """Skip without Chromium and its driver, except in CI, where scripts/test installs them:
    there a missing browser is a failure, not a silently skipped proof."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        reason = f"{' and '.join(missing)} not installed (Debian packages chromium and chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def start_browser(download_dir: Path):
    """Headless Chromium driven through the system chromedriver. Selenium Manager is told to
    stay offline: the driver is given, never downloaded."""
    require_browser()
    os.environ["SE_OFFLINE"] = "true"

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in BROWSER_ARGUMENTS:
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})   # the console: CSP violations
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    # headless Chromium ignores the download preference without this
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_page_load_timeout(WAIT)    # a page that stalls fails its test rather than slowing it
    return driver


class RequestLog:
    """A "remote host" on 127.0.0.1:0 that answers every GET with a small PNG and records
    its path: what a hostile message managed to fetch."""

    def __init__(self):
        self.paths: list[str] = []
        log = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                log.paths.append(self.path)
                body = web_messages.png()
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Seeded:
    subject: str
    message: bytes
    seen: bool


# The INBOX the tests start from, oldest first (.Archive holds "Old news" besides).
SEEDED = (
    Seeded("Plain hello", web_messages.plain(subject="Plain hello"), seen=False),
    Seeded("Grüße aus Köln", web_messages.non_ascii(), seen=True),
    Seeded("Delete me", web_messages.plain(subject="Delete me", body="This one goes.\n"), seen=False),
    Seeded("Flag me", web_messages.plain(subject="Flag me", body="Read, unread, read.\n"), seen=True),
    Seeded("Quarterly report with picture", web_messages.html_with_image_and_attachment(), seen=False),
)


def deliver_at(root: Path, message: bytes, when: float, seen: bool = False) -> Path:
    """Store `message` in the Maildir as delivered at `when`: the time in its unique name and
    its file's mtime (whichever the index reads), in cur/ with :2,S when seen, else in new/."""
    name = f"{int(when)}.M{time.monotonic_ns()}P{os.getpid()}.mimekit-test"
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    path = root / "cur" / f"{name}:2,S" if seen else root / "new" / name
    path.write_bytes(message)
    os.utime(path, (when, when))
    return path


def seed(root: Path) -> None:
    for number, seeded in enumerate(SEEDED):
        deliver_at(root, seeded.message, SEEDED_AT + 100 * number, seen=seeded.seen)
    deliver_at(root / ".Archive", web_messages.plain(subject="Old news"), SEEDED_AT - 100)


@dataclass
class Site:
    """The running `mimekit serve --http` over the seeded Maildir."""

    served: Served
    url: str                              # http://127.0.0.1:PORT

    @property
    def root(self) -> Path:
        return self.served.root


def serve_with_http(root: Path, log: Path, home: Path) -> Site:
    """`mimekit serve maildir:ROOT --smtp 127.0.0.1:0 --pop3 127.0.0.1:0 --http 127.0.0.1:0`, in
    an environment whose HOME and XDG directories (the web index's cache among them) are in `home`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MIMEKIT_", "XDG_"))}
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"))
    served = start_serve(root, log, ("--http", f"{HOST}:0"), env)
    return Site(served, f"http://{HOST}:{served.http}")


def maildir_files(root: Path, text: str) -> list[Path]:
    """The messages of the Maildir (new/ and cur/) whose bytes contain `text`."""
    return [path for sub in ("new", "cur") for path in (root / sub).iterdir()
            if text.encode() in path.read_bytes()]


def maildir_flags(path: Path) -> str:
    """The flag letters of a Maildir file name (after ":2,")."""
    return path.name.partition(":2,")[2]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_for_download(download_dir: Path, known: set[str], timeout: float = WAIT) -> Path:
    """The file that appeared in `download_dir` beyond `known`, once Chromium finished writing it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [path for path in download_dir.iterdir()
                if path.name not in known and not path.name.endswith((".crdownload", ".tmp"))]
        if done:
            [path] = done
            return path
        time.sleep(0.05)
    raise AssertionError(f"no download in {download_dir} after {timeout} s: {sorted(os.listdir(download_dir))}")


# --- the page, as a user sees it -----------------------------------------------------------

def wait_until(condition, what: str, timeout: float = WAIT):
    """Poll `condition()` until it is truthy and return that value; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(0.05)


def visit(driver, url: str) -> None:
    """Load `url`; a page that does not load within WAIT fails in one line (Chromium holds
    six connections per host: a page whose streams outlive it blocks the next ones)."""
    try:
        driver.get(url)
    except TimeoutException:
        raise AssertionError(f"{url}: not loaded after {WAIT} s") from None


def message_rows(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#message-list tr.message[data-id]")


def open_inbox(driver, site: Site) -> None:
    """/ leads to the first folder, the INBOX."""
    visit(driver, site.url + "/")
    wait_until(lambda: driver.find_elements(By.ID, "message-list"), "the message list")


def row_with(driver, site: Site, text: str, timeout: float = LIVE_UPDATE_WAIT):
    """The INBOX row showing `text`, reloading the list until it does (new mail is indexed
    within a second or two)."""
    def found():
        open_inbox(driver, site)
        try:
            rows = [row for row in message_rows(driver) if text in row.text]
        except StaleElementReferenceException:      # the live update redrew the list meanwhile
            return None
        if not rows:
            time.sleep(0.5)
        return rows
    [row] = wait_until(found, f"a row showing {text!r} in the list", timeout)
    return row


def open_message(driver, site: Site, text: str) -> str:
    """Click the INBOX row showing `text`; the message's id once its view is open."""
    def clicked():
        row = row_with(driver, site, text)
        try:
            email_id = row.get_attribute("data-id")
            row.find_element(By.TAG_NAME, "a").click()
        except StaleElementReferenceException:      # the live update redrew the list meanwhile
            return None
        return email_id
    email_id = wait_until(clicked, f"a click on the row of {text!r}")
    wait_until(lambda: f"/messages/{email_id}" in driver.current_url, f"the view of {text!r}")
    wait_until(lambda: driver.find_elements(By.ID, "parts"), f"the part tree of {text!r}")
    return email_id


def submit_form(driver, action_suffix: str) -> None:
    """Click the submit button of the page's form whose action ends with `action_suffix`."""
    [form] = [form for form in driver.find_elements(By.TAG_NAME, "form")
              if (form.get_attribute("action") or "").endswith(action_suffix)]
    form.find_element(By.CSS_SELECTOR, "button, input[type=submit]").click()


# What the message's iframe may be allowed: links opening in a new tab, nothing else (no
# script, no same origin, no forms, no navigating the page around it).
FRAME_SANDBOX_ALLOWS = {"allow-popups", "allow-popups-to-escape-sandbox"}


def sandbox_allows(frame) -> set[str]:
    """The tokens of an iframe's sandbox attribute (empty: everything forbidden); an
    iframe without the attribute fails, being no sandbox at all."""
    sandbox = frame.get_attribute("sandbox")
    assert sandbox is not None, "the iframe has no sandbox attribute"
    return set(sandbox.split())


def pwned(driver) -> str | None:
    """What hostile script would have set in the current document: window.__pwned."""
    return driver.execute_script("return window.__pwned === undefined ? null : String(window.__pwned)")


def console_messages(driver) -> list[str]:
    """The browser console since the last call (Chromium reports CSP violations there)."""
    try:
        return [entry["message"] for entry in driver.get_log("browser")]
    except Exception:                     # a driver without the log endpoint: nothing to show
        return []

