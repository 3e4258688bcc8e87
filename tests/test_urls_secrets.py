import pytest

from mimekit.errors import ConfigError, UsageError
from mimekit.secrets import resolve_password
from mimekit.urls import parse_url


def test_server_url_defaults_and_user():
    url = parse_url("imaps://alice@mail.example.test/INBOX/Sub", {"imap", "imaps"})
    assert (url.scheme, url.host, url.port, url.user, url.path) == (
        "imaps", "mail.example.test", 993, "alice", "INBOX/Sub")
    assert url.implicit_tls and url.protocol == "imap"
    assert parse_url("smtp://127.0.0.1", {"smtp"}).port == 587


def test_local_store_url():
    url = parse_url("maildir:./mail", {"maildir", "mbox", "smtp"})
    assert url.is_local and url.path == "./mail"


@pytest.mark.parametrize("text", ["ftp://x", "smtp://", "smtp://u:secret@host", "maildir:"])
def test_bad_urls_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_url(text, {"smtp", "maildir"})


def test_password_command_first_line_and_status(tmp_path):
    assert resolve_password("u", "h", "printf 's3cret\\nignored'", environ={}) == "s3cret"
    with pytest.raises(ConfigError):
        resolve_password("u", "h", "exit 3", environ={})


def test_password_from_environment_then_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert resolve_password("u", "h", environ={"MIMEKIT_PASSWORD": "pw"}) == "pw"
    with pytest.raises(ConfigError):
        resolve_password("u", "h", environ={})


def test_password_from_netrc(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    netrc_file = tmp_path / ".netrc"
    netrc_file.write_text("machine mail.test login alice password fromnetrc\n")
    netrc_file.chmod(0o600)
    assert resolve_password("alice", "mail.test", environ={}) == "fromnetrc"
