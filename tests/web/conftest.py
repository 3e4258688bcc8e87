"""Fixtures of the web tests: a Maildir with a Maildir++ subfolder and the messages of
tests/web/messages.py, and the application over it driven by Starlette's TestClient."""

import pytest
from starlette.testclient import TestClient

from mimekit.web.app import create_app
from mimekit.web.config import WebConfig
import web_messages as messages


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
