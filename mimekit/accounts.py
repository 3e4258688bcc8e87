"""Named accounts: the one config file send, fetch, folders, queue and sendmail share.

`$XDG_CONFIG_HOME/mimekit/config.toml` (default `~/.config/mimekit/config.toml`):

    default = "work"                 # optional when there is only one account

    [accounts.work]
    smtp = "smtps://mail.example.org"
    imap = "imaps://mail.example.org/INBOX"      # or pop3 = "pop3s://..."
    user = "alice"
    from = "Alice <alice@example.org>"
    cafile = "~/certs/private-ca.pem"
    password_command = "pass show mail/work"
    token_command = "oauth2-token work"           # OAuth2 (XOAUTH2, OAUTHBEARER)
    timeout = 30
    queue_dir = "~/.local/state/mimekit/queue-work"

Values given to a command override the account's (server_settings). A `password` key is
allowed, as config.ini allowed it, but then the file must be private: a file that group
or others may open is refused whole, as ssh refuses a shared key. Unknown keys are
errors naming the key and the file: a misspelt `pasword_command` silently ignored would
end in a login failure with no hint why.
"""

import dataclasses
import os
import re
import shlex
import stat
import tomllib
from dataclasses import dataclass, field
from typing import Callable

from mimekit.errors import ConfigError, MimekitError, UsageError
from mimekit.transport.connection import DEFAULT_TIMEOUT
from mimekit.transport.urls import ServerURL, parse_url

# The keys naming a server, in the order an account's servers are tried and listed, and the
# URL schemes each takes.
SERVER_KEYS = {"smtp": {"smtp", "smtps", "smtp+plain"}, "imap": {"imap", "imaps", "imap+plain"},
               "pop3": {"pop3", "pop3s", "pop3+plain"}}
TEXT_KEYS = ("user", "from", "cafile", "password_command", "token_command", "queue_dir", "password")
ACCOUNT_KEYS = (*SERVER_KEYS, *TEXT_KEYS, "timeout")
TOP_LEVEL_KEYS = ("default", "accounts")
PATH_KEYS = ("cafile", "queue_dir")   # "~" expanded, as a shell would


def config_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mimekit", "config.toml")


@dataclass(frozen=True)
class Account:
    """One [accounts.NAME] table, checked: URLs parsed, paths expanded."""

    name: str
    path: str                                   # the config file it came from
    servers: dict[str, ServerURL] = field(default_factory=dict)   # "smtp"/"imap"/"pop3" -> URL
    user: str | None = None
    from_address: str | None = None
    cafile: str | None = None
    password_command: str | None = None
    token_command: str | None = None
    timeout: float | None = None
    queue_dir: str | None = None
    password: str | None = field(default=None, repr=False)   # never shown, never listed

    @property
    def login_user(self) -> str | None:
        """`user`, else the user of its first server URL that names one."""
        return self.user or next((url.user for url in self.servers.values() if url.user), None)

    @property
    def password_source(self) -> str | None:
        """Where this account's password comes from, as far as the file says (never the password)."""
        if self.password_command:
            return "password_command"
        return "config" if self.password is not None else None


@dataclass(frozen=True)
class Config:
    path: str
    accounts: dict[str, Account]
    default: str | None

    @property
    def default_account(self) -> Account | None:
        """The `default` account, else the only one, else None."""
        if self.default is not None:
            return self.accounts[self.default]
        return next(iter(self.accounts.values())) if len(self.accounts) == 1 else None


def load_config(path: str | None = None) -> Config | None:
    """The config file at `path` (default: config_path()), checked; None when it does not exist."""
    path = path or config_path()
    try:
        with open(path, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            data = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 at byte {exc.start}") from None
    except tomllib.TOMLDecodeError as exc:
        # only the position: the message may come to quote a piece of a password line
        position = re.search(r"line \d+, column \d+", str(exc))
        raise ConfigError(f"{path}: not valid TOML" + (f" (at {position[0]})" if position else "")) from None
    _refuse_unknown(path, document, TOP_LEVEL_KEYS, "at the top level")
    tables = document.get("accounts", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: 'accounts' must be a table ([accounts.NAME])")
    accounts = {name: _account(path, name, table) for name, table in tables.items()}
    if any(account.password is not None for account in accounts.values()):
        refuse_if_shared(path, mode)
    default = document.get("default")
    if default is not None and default not in accounts:
        known = ", ".join(map(repr, accounts)) or "none"
        raise ConfigError(f"{path}: default = {default!r} names no account (accounts: {known})")
    return Config(path, accounts, default)


def resolve_account(name: str | None, path: str | None = None) -> Account | None:
    """The account called `name`, or with no name the default one (the `default` key, or
    the only account); None when no name is given and there is no such account or no file.
    A name that the file does not define is a ConfigError."""
    config = load_config(path)
    if name is None:
        return config.default_account if config else None
    if config is None:
        raise ConfigError(f"no account {name!r}: {path or config_path()} does not exist")
    if name not in config.accounts:
        known = ", ".join(map(repr, config.accounts)) or "none"
        raise ConfigError(f"{config.path}: no account {name!r} (accounts: {known})")
    return config.accounts[name]


@dataclass(frozen=True)
class ServerSettings:
    """How to reach one server: the caller's values where given, else the account's."""

    url: ServerURL                  # its user is the login user
    account: Account | None = None
    password_command: str | None = None
    token_command: str | None = None
    cafile: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    from_address: str | None = None


def server_settings(account: Account | None, server: str | None, allowed: set[str], *, user: str | None = None,
                    password_command: str | None = None, token_command: str | None = None,
                    cafile: str | None = None, timeout: float | None = None) -> ServerSettings:
    """Settings for a server whose URL scheme is one of `allowed`: `server` when given, else the
    account's first server with such a scheme. Every value given here overrides the account's;
    the user comes from `user`, then a given `server`'s USER@, then the account."""
    account_user = account.login_user if account else None
    if server is not None:
        url = parse_url(server, allowed)
        login = user or url.user or (None if url.is_local else account_user)
    else:
        url = _account_server(account, allowed)
        login = user or account.user or url.user
    if login and not url.is_local:
        url = dataclasses.replace(url, user=login)
    return ServerSettings(
        url=url, account=account,
        password_command=password_command or (account.password_command if account else None),
        token_command=token_command or (account.token_command if account else None),
        cafile=cafile or (account.cafile if account else None),
        timeout=timeout or (account.timeout if account and account.timeout else DEFAULT_TIMEOUT),
        from_address=account.from_address if account else None)


def resolve_settings(account_name: str | None, server: str | None, allowed: set[str], path: str | None = None,
                     **values) -> ServerSettings:
    """server_settings for a command: the account named, else the config file's default one
    when no `server` is given (a server given without an account name is used as given, with
    nothing from the file); `values` (user, password_command, ...) override the account's."""
    account = resolve_account(account_name, path) if account_name or server is None else None
    if account is None and server is None:
        raise UsageError(f"no server given, and no default account in {path or config_path()}")
    return server_settings(account, server, allowed, **values)


def password_for(user: str, host: str, path: str | None = None) -> str | None:
    """The `password` of an account whose user is `user` and one of whose servers is at `host`,
    for the password look-up (mimekit.transport.secrets): the password is tied to that pair,
    so a server given on the command line never receives another host's password."""
    config = load_config(path)
    for account in config.accounts.values() if config else ():
        if account.password is not None and account.login_user == user \
                and any(url.host == host for url in account.servers.values()):
            return account.password
    return None


@dataclass(frozen=True)
class LoginCheck:
    """One server of an account, logged in to (or not)."""

    role: str                   # "smtp", "imap" or "pop3"
    url: ServerURL
    error: MimekitError | None = None
    logged_in: bool = False     # False without an error: the server was reached, no user to log in as


def check_logins(account: Account, password: Callable[[ServerSettings], Callable[[], str]],
                 token: Callable[[ServerSettings], Callable[[], str] | None]) -> list[LoginCheck]:
    """Connect to each server of `account`, secure the connection, log in and log out; one
    LoginCheck per server, its error kept (the others are still tried). `password(settings)`
    and `token(settings)` give the look-ups to call once TLS is up, as the commands log in
    (`token` gives None where the login takes a password)."""
    checks = []
    for role, allowed in SERVER_KEYS.items():
        if role not in account.servers:
            continue
        settings = server_settings(account, None, allowed)
        try:
            _log_in_and_out(role, settings, password(settings), token(settings))
        except MimekitError as exc:
            checks.append(LoginCheck(role, settings.url, exc))
        else:
            checks.append(LoginCheck(role, settings.url, logged_in=bool(settings.url.user)))
    return checks


def _log_in_and_out(role: str, settings: ServerSettings, password: Callable[[], str],
                    token: Callable[[], str] | None) -> None:
    """What each client does first in a session, and nothing more (a POP3 QUIT without DELE
    changes nothing on the server). SMTP without a user only connects: a relay may need no login."""
    from mimekit.transport.imap.client import IMAPClient   # here: the config file needs no protocol code
    from mimekit.transport.pop3.client import POP3Client
    from mimekit.transport.smtp.client import SMTPClient

    url = settings.url
    if role == "smtp":
        with SMTPClient(url, cafile=settings.cafile, timeout=settings.timeout) as client:
            if url.user and token:
                client.login_oauth2(url.user, token)
            elif url.user:
                client.login(url.user, password())
        return
    client = (IMAPClient if role == "imap" else POP3Client)(url, settings.cafile, settings.timeout)
    try:
        if role == "imap":
            client.login(password, token)
        else:
            client.open(password, token=token)
    finally:
        client.close()


def refuse_if_shared(path: str, mode: int) -> None:
    """ConfigError when group or others have any access to the secret file at `path` (a netrc,
    a config file holding a password), with the chmod that fixes it."""
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds passwords but group or others may open it "
                          f"(mode {stat.S_IMODE(mode):04o}); refusing to use it: chmod 600 {shlex.quote(path)}")


def _account_server(account: Account | None, allowed: set[str]) -> ServerURL:
    if account is None:
        raise UsageError("no server given, and no account to take one from")
    for url in account.servers.values():
        if url.scheme in allowed:
            return url
    wanted = " or ".join(key for key, schemes in SERVER_KEYS.items() if schemes & allowed)
    raise UsageError(f"no server given, and account {account.name!r} ({account.path}) has no {wanted} URL")


def _account(path: str, name: str, table) -> Account:
    where = f"[accounts.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: accounts.{name} must be a table ({where})")
    _refuse_unknown(path, table, ACCOUNT_KEYS, f"in {where}")
    for key in TEXT_KEYS + tuple(SERVER_KEYS):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{path}: {where} {key} must be a string")
    timeout = table.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"{path}: {where} timeout must be a number of seconds above 0")
    servers = {}
    for key, schemes in SERVER_KEYS.items():
        if key in table:
            try:
                servers[key] = parse_url(table[key], schemes)
            except UsageError as exc:
                raise ConfigError(f"{path}: {where} {key}: {exc}") from None
    paths = {key: os.path.expanduser(table[key]) if key in table else None for key in PATH_KEYS}
    return Account(name=name, path=path, servers=servers, user=table.get("user"), from_address=table.get("from"),
                   password_command=table.get("password_command"), token_command=table.get("token_command"),
                   timeout=float(timeout) if timeout is not None else None, password=table.get("password"),
                   **paths)


def _refuse_unknown(path: str, table: dict, known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(f"{path}: unknown key {key!r} {where} (known: {', '.join(known)})")
