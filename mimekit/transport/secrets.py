"""Where a password comes from, in the order docs/conventions.md (Network) fixes:
--password-command (first line of its stdout, exit status checked), the environment
variable MIMEKIT_PASSWORD, ~/.netrc, then the config file (config.toml, mimekit.accounts: the
`password` of the account with this user at this host), then the older config.ini, still read
when present (config.toml wins when both have a password). Never argv, never printed.
An OAuth2 access token comes from its token command alone (resolve_token), run by the same
runner.

A file holding passwords that group or others may open is refused, not skipped: ssh and
fetchmail do the same, and skipping it silently would only end in "no password" with
no hint why.
"""

import configparser
import netrc
import os
import subprocess

from mimekit.accounts import config_path, password_for, refuse_if_shared
from mimekit.errors import ConfigError

ENV_VARIABLE = "MIMEKIT_PASSWORD"
COMMAND_TIMEOUT = 60
COMMAND_STDERR_SHOWN = 300   # characters of a failed password command's stderr in the error


def legacy_config_path() -> str:
    """config.ini, which held passwords before config.toml held accounts (read when present)."""
    return os.path.join(os.path.dirname(config_path()), "config.ini")


def netrc_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".netrc")


def resolve_password(user: str, host: str, password_command: str | None = None,
                     environ: dict | None = None) -> str:
    """Return the password for `user` at `host`, or raise ConfigError saying where we looked."""
    environ = os.environ if environ is None else environ
    if password_command:
        return run_secret_command(password_command)
    if environ.get(ENV_VARIABLE):
        return environ[ENV_VARIABLE]
    found = _from_netrc(user, host) or password_for(user, host) or _from_legacy_config(user, host)
    if found:
        return found
    raise ConfigError(f"no password for {user}@{host}: give a password_command, set {ENV_VARIABLE}, "
                      f"or add it to {netrc_path()} or {config_path()} (chmod 600)")


def resolve_token(token_command: str) -> str:
    """An OAuth2 access token: the first line of `token_command`'s stdout. Run anew at each
    call, so that a token the server found expired is replaced by a fresh one."""
    return run_secret_command(token_command, "token")


def run_secret_command(command: str, secret: str = "password") -> str:
    """The first line of `command`'s stdout, its exit status checked; `secret` names what it
    prints in the errors (which never show its stdout)."""
    try:
        result = subprocess.run(command, shell=True, capture_output=True, timeout=COMMAND_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"{secret} command timed out after {COMMAND_TIMEOUT}s"
                          + _said_on_stderr(exc.stderr)) from exc
    if result.returncode != 0:
        ended = (f"was killed by signal {-result.returncode}" if result.returncode < 0
                 else f"failed with exit status {result.returncode}")
        raise ConfigError(f"{secret} command {ended}" + _said_on_stderr(result.stderr))
    lines = result.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"{secret} command printed no {secret}" + _said_on_stderr(result.stderr))
    return lines[0]


def _said_on_stderr(stderr: bytes | None) -> str:
    """A failed command's stderr as one bounded line for the error message (its stdout, which
    may hold the password, is never shown). The CLI makes it printable, as all outside text."""
    text = " ".join((stderr or b"").decode("utf-8", "replace").split())
    if len(text) > COMMAND_STDERR_SHOWN:
        text = text[:COMMAND_STDERR_SHOWN] + "…"
    return f": {text}" if text else ""


def _from_netrc(user: str, host: str) -> str | None:
    path = netrc_path()
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {_reason(exc)}") from None
    refuse_if_shared(path, mode)
    try:
        entry = netrc.netrc(path).authenticators(host)
    except netrc.NetrcParseError as exc:
        # its message quotes the offending token, which may be a password
        raise ConfigError(f"{path}: line {exc.lineno}: not valid netrc syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {_reason(exc)}") from None
    if entry and (not entry[0] or entry[0] == user):
        return entry[2]
    return None


def _from_legacy_config(user: str, host: str) -> str | None:
    path = legacy_config_path()
    try:
        with open(path, encoding="utf-8") as file:
            mode = os.fstat(file.fileno()).st_mode
            text = file.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {_reason(exc)}") from None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        # its message quotes the offending line, which may hold a password
        raise ConfigError(f"{path}: line {_error_line(exc)}: not valid INI syntax") from None
    if any("password" in parser[section] for section in parser):
        refuse_if_shared(path, mode)
    for section in (f"{user}@{host}", host):
        if parser.has_option(section, "password"):
            return parser.get(section, "password")
    return None


def _error_line(exc: configparser.Error) -> int | str:
    if getattr(exc, "lineno", None):
        return exc.lineno
    errors = getattr(exc, "errors", None)   # ParsingError: [(line number, line), ...]
    return errors[0][0] if errors else "?"


def _reason(exc: OSError | UnicodeDecodeError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    return exc.strerror or str(exc)
