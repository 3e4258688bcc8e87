"""The accounts file (mimekit.accounts): parsing, checking, resolving, and values given by a
caller overriding the account's. No network here: tests/cli/test_accounts_cli.py logs in to
the real Postfix and Dovecot."""

import pytest

from mimekit.accounts import load_config, resolve_account, resolve_settings, server_settings
from mimekit.errors import ConfigError, UsageError
from mimekit.transport.connection import DEFAULT_TIMEOUT
from mimekit.transport.secrets import resolve_password

WORK = """\
default = "work"

[accounts.work]
smtp = "smtps://mail.example.test"
imap = "imaps://mail.example.test/Archive"
user = "alice"
from = "Alice <alice@example.test>"
cafile = "~/ca.pem"
password_command = "pass show work"
token_command = "oauth2 work"
timeout = 30
queue_dir = "~/queue"

[accounts.home]
pop3 = "pop3s://bob@pop.example.test:1995"
"""


@pytest.fixture
def home(monkeypatch, tmp_path):
    """HOME and XDG_CONFIG_HOME in tmp_path; returns the config file's path (not yet written)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = tmp_path / "config" / "mimekit" / "config.toml"
    path.parent.mkdir(parents=True)
    return path


def write(path, text, mode=0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def test_accounts_are_parsed_checked_and_expanded(home, tmp_path):
    write(home, WORK, 0o644)   # no password in it: others may read it
    config = load_config()
    assert config.path == str(home) and list(config.accounts) == ["work", "home"]
    work = config.accounts["work"]
    assert (work.servers["smtp"].scheme, work.servers["smtp"].port) == ("smtps", 465)
    assert (work.servers["imap"].host, work.servers["imap"].path) == ("mail.example.test", "Archive")
    assert work.cafile == str(tmp_path / "ca.pem") and work.queue_dir == str(tmp_path / "queue")
    assert (work.user, work.from_address, work.timeout) == ("alice", "Alice <alice@example.test>", 30.0)
    assert (work.password_command, work.token_command, work.password) == ("pass show work", "oauth2 work", None)
    assert config.accounts["home"].login_user == "bob"   # from the URL, as on the command line


def test_resolve_by_name_default_and_only_account(home):
    assert resolve_account(None) is None, "no file: no account, and no error"
    write(home, WORK)
    assert resolve_account(None).name == "work"
    assert resolve_account("home").name == "home"
    with pytest.raises(ConfigError, match="no account 'nope'.*'work', 'home'"):
        resolve_account("nope")
    write(home, WORK.replace('default = "work"\n', ""))
    assert resolve_account(None) is None, "two accounts and no default: none is guessed"
    write(home, '[accounts.solo]\nsmtp = "smtp://relay.example.test"\n')
    assert resolve_account(None).name == "solo"


def test_a_name_without_a_file_is_an_error(home):
    with pytest.raises(ConfigError, match=f"no account 'work': {home} does not exist"):
        resolve_account("work")


@pytest.mark.parametrize("text, message", [
    ('defualt = "work"\n', "unknown key 'defualt' at the top level"),
    ('[accounts.work]\npasword_command = "x"\n', r"unknown key 'pasword_command' in \[accounts.work\]"),
    ('[accounts.work]\nsmtp = "imap://x"\n', r"\[accounts.work\] smtp: 'imap://x': expected one of"),
    ('[accounts.work]\nsmtp = "smtp://bob:hunter2@x"\n', "passwords are never taken"),
    ('[accounts.work]\ntimeout = 0\n', "timeout must be a number of seconds above 0"),
    ('[accounts.work]\ntimeout = true\n', "timeout must be a number"),
    ('[accounts.work]\nuser = 3\n', "user must be a string"),
    ('accounts = 3\n', "'accounts' must be a table"),
    ('default = "x"\n[accounts.work]\n', "default = 'x' names no account"),
    ('[accounts.work\nsmtp = "x"\n', r"not valid TOML \(at line 1, column"),
])
def test_mistakes_name_the_file_and_the_key(home, text, message):
    write(home, text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_config()
    assert str(raised.value).startswith(f"{home}: ")
    assert "hunter2" not in str(raised.value)


def test_a_file_holding_a_password_must_be_private(home):
    write(home, '[accounts.work]\nsmtp = "smtps://mail.example.test"\nuser = "alice"\npassword = "s3cret"\n', 0o640)
    with pytest.raises(ConfigError, match=f"mode 0640.*chmod 600 {home}") as raised:
        resolve_account("work")
    assert "s3cret" not in str(raised.value)
    with pytest.raises(ConfigError, match="chmod 600"):   # the password look-up refuses it too
        resolve_password("alice", "mail.example.test", environ={})
    home.chmod(0o600)
    assert resolve_account("work").password == "s3cret"
    assert "s3cret" not in repr(resolve_account("work"))


def test_the_account_password_is_tied_to_its_user_and_hosts(home):
    write(home, '[accounts.work]\nsmtp = "smtps://mail.example.test"\nimap = "imaps://imap.example.test"\n'
                'user = "alice"\npassword = "s3cret"\n')
    assert resolve_password("alice", "mail.example.test", environ={}) == "s3cret"
    assert resolve_password("alice", "imap.example.test", environ={}) == "s3cret"
    for user, host in (("alice", "elsewhere.test"), ("bob", "mail.example.test")):
        with pytest.raises(ConfigError, match=f"no password for {user}@{host}"):
            resolve_password(user, host, environ={})


def test_config_toml_wins_over_the_older_config_ini(home):
    ini = home.with_name("config.ini")
    write(ini, "[alice@mail.example.test]\npassword = from-ini\n[bob@mail.example.test]\npassword = bob-ini\n")
    write(home, '[accounts.work]\nsmtp = "smtps://mail.example.test"\nuser = "alice"\npassword = "from-toml"\n')
    assert resolve_password("alice", "mail.example.test", environ={}) == "from-toml"
    assert resolve_password("bob", "mail.example.test", environ={}) == "bob-ini", "config.ini is still read"


def test_given_values_override_the_account(home):
    write(home, WORK)
    work = resolve_account("work")
    settings = server_settings(work, None, {"smtp", "smtps"})
    assert (settings.url.host, settings.url.user, settings.cafile, settings.timeout) == (
        "mail.example.test", "alice", work.cafile, 30.0)
    assert (settings.password_command, settings.token_command, settings.from_address) == (
        "pass show work", "oauth2 work", "Alice <alice@example.test>")
    given = server_settings(work, "smtp://relay.example.test:2525", {"smtp", "smtps"}, user="carol",
                            password_command="pw-cmd", cafile="/ca.pem", timeout=5)
    assert (given.url.host, given.url.port, given.url.user) == ("relay.example.test", 2525, "carol")
    assert (given.password_command, given.cafile, given.timeout) == ("pw-cmd", "/ca.pem", 5)
    assert server_settings(work, "smtp://dave@relay.example.test", {"smtp"}).url.user == "dave", \
        "a user in a given URL beats the account's"
    assert server_settings(work, "smtp://relay.example.test", {"smtp"}).url.user == "alice"
    assert server_settings(work, None, {"imap", "imaps", "pop3", "pop3s"}).url.scheme == "imaps"
    assert server_settings(None, "imaps://x.test", {"imaps"}).timeout == DEFAULT_TIMEOUT


def test_which_account_a_command_uses(home):
    write(home, WORK)
    assert resolve_settings(None, None, {"smtps"}).account.name == "work", "the default, when no server is given"
    assert resolve_settings(None, "smtps://other.test", {"smtps"}).account is None, \
        "a server given without an account name takes nothing from the file"
    assert resolve_settings("work", "smtps://other.test", {"smtps"}).url.user == "alice"
    with pytest.raises(UsageError, match="account 'home' .* has no smtp URL"):
        resolve_settings("home", None, {"smtp", "smtps"})
    write(home, WORK.replace('default = "work"\n', ""))
    with pytest.raises(UsageError, match="no server given, and no default account"):
        resolve_settings(None, None, {"smtps"})
