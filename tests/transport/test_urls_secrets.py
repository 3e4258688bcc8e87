import pytest

from mimekit.errors import ConfigError, UsageError
from mimekit.transport.secrets import resolve_password
from mimekit.transport.urls import parse_url, without_userinfo


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


# -- issue 8, items 7 and 17: malformed URLs, secret files, the password command --------------

@pytest.mark.parametrize("text", ["smtp://[::1", "imaps://bob:PW@/INBOX", "smtp://host:99999", "smtp://host:abc",
                                  "smtp://host:0", "smtp://bob:PW@host:abc", "smtp://bob:P/W@host",
                                  "smtp://host:" + "9" * 5000, "ftp://bob:PW@host", "smtp:bob:PW@host"])
def test_malformed_urls_are_usage_errors_that_never_echo_the_userinfo(text):
    with pytest.raises(UsageError) as raised:
        parse_url(text, {"smtp", "imaps"})
    assert "PW" not in str(raised.value) and "P/W" not in str(raised.value)


def test_without_userinfo_hides_everything_before_the_last_at():
    assert without_userinfo("imaps://bob:PW@/INBOX") == "imaps://…@/INBOX"
    assert without_userinfo("smtp://a@b:PW@host:25") == "smtp://…@host:25"
    assert without_userinfo("bob:PW@host") == "…@host"
    assert without_userinfo("smtp://host") == "smtp://host"


def home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return tmp_path


def test_netrc_open_to_others_is_refused_with_the_fix(monkeypatch, tmp_path):
    netrc_file = home(monkeypatch, tmp_path) / ".netrc"
    netrc_file.write_text("machine mail.test login alice password fromnetrc\n")
    for mode in (0o644, 0o640, 0o604, 0o620):
        netrc_file.chmod(mode)
        with pytest.raises(ConfigError, match=f"chmod 600 {netrc_file}"):
            resolve_password("alice", "mail.test", environ={})


def test_malformed_netrc_is_a_config_error_that_quotes_no_token(monkeypatch, tmp_path):
    netrc_file = home(monkeypatch, tmp_path) / ".netrc"
    netrc_file.write_text("machine mail.test login alice\nsecrettoken password x\n")
    netrc_file.chmod(0o600)
    with pytest.raises(ConfigError, match="line 2") as raised:
        resolve_password("alice", "mail.test", environ={})
    assert "secrettoken" not in str(raised.value)


def test_config_with_a_password_open_to_others_is_refused(monkeypatch, tmp_path):
    config = home(monkeypatch, tmp_path) / ".config" / "mimekit" / "config.ini"
    config.parent.mkdir(parents=True)
    config.write_text("[alice@mail.test]\npassword = fromconfig\n")
    config.chmod(0o644)
    with pytest.raises(ConfigError, match=f"chmod 600 {config}") as raised:
        resolve_password("alice", "mail.test", environ={})
    assert "fromconfig" not in str(raised.value)
    config.chmod(0o600)
    assert resolve_password("alice", "mail.test", environ={}) == "fromconfig"


def test_config_without_passwords_may_be_readable(monkeypatch, tmp_path):
    config = home(monkeypatch, tmp_path) / ".config" / "mimekit" / "config.ini"
    config.parent.mkdir(parents=True)
    config.write_text("[alice@mail.test]\nuser = alice\n")
    config.chmod(0o644)
    with pytest.raises(ConfigError, match="no password for alice@mail.test"):
        resolve_password("alice", "mail.test", environ={})


def test_malformed_config_names_the_line_not_its_text(monkeypatch, tmp_path):
    config = home(monkeypatch, tmp_path) / ".config" / "mimekit" / "config.ini"
    config.parent.mkdir(parents=True)
    config.write_text("[alice@mail.test]\npassword = fromconfig\nsecret line without equals\n")
    config.chmod(0o600)
    with pytest.raises(ConfigError, match="line 3") as raised:
        resolve_password("alice", "mail.test", environ={})
    assert "secret line" not in str(raised.value)


def test_failed_password_command_shows_its_stderr_bounded_never_its_stdout():
    with pytest.raises(ConfigError) as raised:
        resolve_password("u", "h", "echo pw-on-stdout; echo 'vault locked' >&2; head -c 100000 /dev/zero | "
                                   "tr '\\0' x >&2; exit 3", environ={})
    message = str(raised.value)
    assert "exit status 3" in message and "vault locked" in message and "pw-on-stdout" not in message
    assert len(message) < 400 and "\n" not in message
    with pytest.raises(ConfigError, match="killed by signal 9"):
        resolve_password("u", "h", "kill -9 $$", environ={})
