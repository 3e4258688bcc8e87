"""Where a password comes from, in the order CONVENTIONS.md fixes:
--password-command (first line of its stdout, exit status checked), the environment
variable MIMEKIT_PASSWORD, ~/.netrc, then the config file. Never argv, never printed.
"""

import configparser
import netrc
import os
import subprocess

from mimekit.errors import ConfigError

ENV_VARIABLE = "MIMEKIT_PASSWORD"
COMMAND_TIMEOUT = 60


def config_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "mimekit", "config.ini")


def resolve_password(user: str, host: str, password_command: str | None = None,
                     environ: dict | None = None) -> str:
    """Return the password for `user` at `host`, or raise ConfigError saying where we looked."""
    environ = os.environ if environ is None else environ
    if password_command:
        return _run_password_command(password_command)
    if environ.get(ENV_VARIABLE):
        return environ[ENV_VARIABLE]
    found = _from_netrc(user, host) or _from_config(user, host)
    if found:
        return found
    raise ConfigError(f"no password for {user}@{host}: give --password-command, "
                      f"set {ENV_VARIABLE}, or add it to ~/.netrc")


def _run_password_command(command: str) -> str:
    try:
        result = subprocess.run(command, shell=True, capture_output=True, timeout=COMMAND_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"password command timed out after {COMMAND_TIMEOUT}s") from exc
    if result.returncode != 0:
        raise ConfigError(f"password command failed with exit status {result.returncode}")
    lines = result.stdout.decode("utf-8", "replace").splitlines()
    if not lines or not lines[0]:
        raise ConfigError("password command printed no password")
    return lines[0]


def _from_netrc(user: str, host: str) -> str | None:
    try:
        entry = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return None
    if entry and (not entry[0] or entry[0] == user):
        return entry[2]
    return None


def _from_config(user: str, host: str) -> str | None:
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(config_path(), encoding="utf-8"):
        return None
    for section in (f"{user}@{host}", host):
        if parser.has_option(section, "password"):
            return parser.get(section, "password")
    return None
