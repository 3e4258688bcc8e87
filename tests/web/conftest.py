"""Fixtures of the web tests: a Maildir with a Maildir++ subfolder and the messages of
tests/web/messages.py, the application over it driven by Starlette's TestClient, and
`mimekit web` itself as a subprocess (the `web` fixture)."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mimekit.web.app import create_app
from mimekit.web.config import WebConfig
import web_messages as messages

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "serve"))
from served import STARTUP_DEADLINE, mimekit_command, stop_process  # noqa: E402  (tests/serve/served.py)

WEB_LISTENING = re.compile(r"^mimekit web: listening: http ([0-9.]+):(\d+)$", re.M)


@pytest.fixture
def maildir(tmp_path):
    """A Maildir: INBOX with a plain, a non-ASCII (read) and an HTML message; .Archive with one."""
    root = tmp_path / "Mail"
    messages.deliver(str(root), messages.plain())
    messages.deliver(str(root), messages.non_ascii(), flags="S")
    messages.deliver(str(root), messages.html_with_image_and_attachment())
    messages.deliver(str(root / ".Archive"), messages.plain(subject="Old news"))
    return root


def web_config(tmp_path, sources, **options) -> WebConfig:
    return WebConfig(sources=tuple(str(source) for source in sources),
                     index_path=str(tmp_path / "index.sqlite"), **options)


@pytest.fixture
def client(tmp_path, maildir):
    """A writable application over `maildir` (as serve --http runs it), without a sender."""
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"], writable=True))
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


class Web:
    """One running `mimekit web`: its port and its stderr."""

    def __init__(self, process: subprocess.Popen, log: Path, port: int):
        self.process, self.log, self.port = process, log, port

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        """SIGTERM, then its log; one that does not exit 0 fails the test."""
        return stop_process(self.process, "mimekit web", self.log)


@pytest.fixture
def web(tmp_path, env):
    """Factory: web(*arguments, environment=None, cwd=None) starts `mimekit web ARGUMENTS...`
    and returns it once it is listening; each is stopped at the end and must exit 0."""
    started: list[Web] = []

    def start(*arguments: str, environment: dict | None = None, cwd: Path | None = None) -> Web:
        log = tmp_path / f"web-{len(started)}.log"
        with open(log, "wb") as stderr:
            process = subprocess.Popen(mimekit_command("web", *arguments), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=stderr, env=environment or env, cwd=cwd)
        deadline = time.monotonic() + STARTUP_DEADLINE
        while not (listening := WEB_LISTENING.search(log.read_text(errors="replace"))):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                pytest.fail(f"mimekit web: no 'listening:' line (exit {process.returncode}):\n{log.read_text()}")
            time.sleep(0.02)
        started.append(Web(process, log, int(listening.group(2))))
        return started[-1]

    yield start
    for running in started:
        if running.process.poll() is None:
            running.stop()
