"""`mimekit accounts list|check`: the accounts of the config file, and whether they log in.

list prints what the file says (never a password: where it comes from at most); check
connects to each server of one account, secures the connection and logs in and out, so a
wrong password, an untrusted certificate or a closed port shows up before mail is due.
Both print data on stdout (a table, or one JSON document "mimekit.accounts/1").
"""

import sys

import click

from mimekit.accounts import SERVER_KEYS, Account, check_logins, config_path, load_config, resolve_account
from mimekit.errors import ConfigError
from mimekit.transport.urls import ServerURL
from mimekit_cli.common import (emit_json, exit_code_for, exit_code_for_errors, json_option, lazy_password,
                                lazy_token, print_diagnostic, reporting, text_table)


@click.group("accounts", epilog="The file: $XDG_CONFIG_HOME/mimekit/config.toml (~/.config/mimekit/config.toml), "
                                "one [accounts.NAME] table per account; see docs/conventions.md, Network.")
def accounts_command():
    """List the accounts of the config file, or check that one logs in."""


@accounts_command.command("list")
@json_option
def list_command(as_json):
    """Each account: name (* for the default), user, servers. Never a password."""
    with reporting("accounts", as_json):
        config = load_config()
        accounts = list(config.accounts.values()) if config else []
        default = config.default_account if config else None
        if as_json:
            emit_json("accounts", {"path": config_path(), "default": default.name if default else None,
                                   "accounts": [_account_json(account) for account in accounts]})
            return
        if config is None:
            print_diagnostic("accounts", f"no accounts: {config_path()} does not exist")
        rows = [(("* " if account is default else "  ") + account.name, account.login_user or "-",
                 " ".join(_shown(url) for url in account.servers.values()) or "-") for account in accounts]
        for line in text_table(rows) if rows else []:
            click.echo(line)


@accounts_command.command("check")
@click.argument("name", required=False)
@json_option
def check_command(name, as_json):
    """Log in to each server of account NAME (default: the default account) and log out;
    one line per server: ok, or the error. Exit 0 when every server let us in, else the code
    of the worst error (e.g. 77: a refused login, 69: unreachable, 75: try again)."""
    with reporting("accounts", as_json):
        account = resolve_account(name)
        if account is None:
            raise ConfigError(f"no account named and no default account in {config_path()}")
        if not account.servers:
            raise ConfigError(f"{account.path}: account {account.name!r} has no smtp, imap or pop3 URL to check")
        checks = check_logins(account, lambda settings: lazy_password(settings.url.user, settings.url.host,
                                                                       settings.password_command),
                              lambda settings: lazy_token(settings, None, None))
        if as_json:
            emit_json("accounts", {"account": account.name, "servers": [
                {"role": check.role, "url": _shown(check.url), "user": check.url.user, "ok": check.error is None,
                 "logged_in": check.logged_in}
                | ({"error": {"code": exit_code_for(check.error), "kind": check.error.kind,
                              "message": str(check.error)}} if check.error else {})
                for check in checks]})
        else:
            for line in text_table([(check.role, _shown(check.url), check.url.user or "-",
                                     _outcome(check.error, check.logged_in)) for check in checks]):
                click.echo(line)
        sys.exit(exit_code_for_errors(check.error for check in checks))


def _outcome(error, logged_in: bool) -> str:
    if error is not None:
        return f"error ({exit_code_for(error)}): {error}"
    return "ok" if logged_in else "ok (connected; no user to log in as)"


def _shown(url: ServerURL) -> str:
    """A server URL without its userinfo (docs/conventions.md, Network), the user being a column of its own."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}:{url.port}" + (f"/{url.path}" if url.path else "")


def _account_json(account: Account) -> dict:
    return {"name": account.name, "user": account.login_user, "from": account.from_address,
            **{role: _shown(account.servers[role]) if role in account.servers else None for role in SERVER_KEYS},
            "cafile": account.cafile, "timeout": account.timeout, "queue_dir": account.queue_dir,
            "password": account.password_source, "oauth2": account.token_command is not None}


COMMANDS = [accounts_command]
