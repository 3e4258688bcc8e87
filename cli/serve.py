"""`mimekit serve maildir:PATH`: a small mail server, SMTP in and POP3 out, on one Maildir,
and with --http the web interface on it (mimekit.web; docs/web.md).

Thin by design: mimekit.serve.server runs the listeners and the sessions; this module turns
the options into a ServeConfig, refuses what is unsafe unless asked for (a bind address
other machines can reach), prints the ready line and one line per session on stderr, and
with --relay runs the outgoing queue in a thread so relayed mail leaves. `mimekit web`
shares its listen-address option, users file and queue runner. docs/serve.md is
the user's guide.
"""

import asyncio
import os
import re
import socket
import threading

import click

from mimekit.errors import UsageError
from mimekit.queue import Queue, default_queue_directory, deliver_queue, watch_queue
from mimekit.queue.store import QUEUE_SCHEMES
from mimekit.serve.config import DEFAULT_MAX_CONNECTIONS, ServeConfig
from mimekit.serve.mailboxes import safe_mailbox_name
from mimekit.serve.server import format_address, parse_listen_address, serve, server_tls_context
from mimekit.serve.users import Users
from mimekit.stores.maildir import Maildir
from mimekit.stores.sources import is_maildir
from mimekit.transport.urls import DIRECT, is_loopback, parse_url
from mimekit_cli.common import print_diagnostic, reporting
from mimekit_cli.queue import _report_run

RELAY_SCHEMES = QUEUE_SCHEMES - {DIRECT}
SIZE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
MAX_SIZE_LIMIT = 2**40    # 1 TiB: far past any message a mail server should take whole
OFF = "off"
# A name for the greeting and the Received field: letters, digits, dots and hyphens only,
# so that nothing a resolver returns can put a line break or a space into a reply.
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_DOMAIN = re.compile(r"[^\s@\[\]<>()\\,;:\"\x00-\x1f\x7f]+")


def _size(ctx, param, value: str) -> int:
    match = re.fullmatch(r"([0-9]{1,15})([KMG]?)B?", value.strip().upper())
    if not match or not int(match[1]):
        raise click.BadParameter(f"{value!r}: expected a size such as 50M, 1G, 500K or a number of bytes",
                                 ctx, param)
    size = int(match[1]) * SIZE_UNITS[match[2]]
    if size > MAX_SIZE_LIMIT:
        raise click.BadParameter(f"{value!r}: at most 1024G (1 TiB)", ctx, param)
    return size


def listen_address(ctx, param, value: str | None):
    """The HOST:PORT of a listening option (`mimekit web --http` too); None for off."""
    if value is None or value.lower() == OFF:
        return None
    try:
        return parse_listen_address(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _domains(ctx, param, values) -> tuple[str, ...]:
    domains = []
    for value in values:
        domain = value.lower().rstrip(".")
        if not _DOMAIN.fullmatch(domain):
            raise click.BadParameter(f"{value!r}: expected a domain name such as example.test", ctx, param)
        domains.append(domain)
    return tuple(dict.fromkeys(domains))


def _hostname(ctx, param, value: str | None) -> str:
    if value is None:
        found = socket.getfqdn()
        return found if _HOST_NAME.fullmatch(found) else "localhost"
    if not _HOST_NAME.fullmatch(value):
        raise click.BadParameter(f"{value!r}: expected a host name (letters, digits, dots and hyphens)",
                                 ctx, param)
    return value


@click.command("serve", epilog="See docs/serve.md. Stop with SIGTERM or Ctrl-C: mail whose delivery started "
                               "is delivered, and exit 0.")
@click.argument("root", metavar="maildir:PATH")
@click.option("--smtp", default="127.0.0.1:2525", show_default=True, callback=listen_address, metavar="HOST:PORT",
              help="Where SMTP listens ([IPv6]:PORT; port 0: any free port; off: no SMTP).")
@click.option("--pop3", default="127.0.0.1:1110", show_default=True, callback=listen_address, metavar="HOST:PORT",
              help="Where POP3 listens (as --smtp).")
@click.option("--http", callback=listen_address, metavar="HOST:PORT",
              help="The web interface and JSON API on the Maildir, sending through this server's SMTP "
                   "(default: none; needs the web extra). See docs/web.md.")
@click.option("--listen-publicly", is_flag=True,
              help="Allow a --smtp, --pop3 or --http address that other machines can reach (default: loopback "
                   "only; a public --http also needs --users).")
@click.option("--domain", "domains", multiple=True, callback=_domains, metavar="DOMAIN",
              help="Accept mail for this domain, each recipient into PATH/LOCALPART/ (with --users: its users "
                   "only); repeatable. Without it every message is accepted into PATH: the catch-all for testing.")
@click.option("--users", "users_file", metavar="FILE",
              help="The users file (`mimekit users add`): POP3 and SMTP logins, and the known mailboxes of --domain.")
@click.option("--tls-cert", metavar="PEM", help="Certificate chain for STARTTLS and STLS, and HTTPS for --http "
                                                "(with --tls-key).")
@click.option("--tls-key", metavar="PEM", help="Its private key.")
@click.option("--max-size", default="50M", show_default=True, callback=_size, metavar="SIZE",
              help="Largest message accepted (50M, 1G, bytes); past it: 552.")
@click.option("--max-connections", default=DEFAULT_MAX_CONNECTIONS, show_default=True,
              type=click.IntRange(min=1), metavar="N",
              help="Sessions at once over SMTP and POP3; past it a client hears 421 / -ERR [SYS/TEMP].")
@click.option("--relay", metavar="URL",
              help="Where logged-in users' mail for other domains goes (smtp://, smtps://), through the "
                   "outgoing queue, which this server delivers while it runs.")
@click.option("--queue-dir", metavar="DIR", help="The outgoing queue of --relay (default: mimekit's queue).")
@click.option("--insecure-plaintext-auth", is_flag=True,
              help="Accept logins without TLS (passwords in the clear: loopback testing only).")
@click.option("--hostname", callback=_hostname, metavar="NAME",
              help="This server's name in greetings and Received fields (default: the machine's name).")
def serve_command(root, smtp, pop3, http, listen_publicly, domains, users_file, tls_cert, tls_key, max_size,
                  max_connections, relay, queue_dir, insecure_plaintext_auth, hostname):
    """Run a mail server on a Maildir: SMTP in, POP3 out, in the foreground.

    It listens on 127.0.0.1 only unless --listen-publicly is given, logs one line per
    session on stderr, and prints "mimekit serve: listening: ..." once ready.
    """
    with reporting("serve"):
        _check_usage(smtp, pop3, http, listen_publicly, users_file, tls_cert, tls_key, relay)
        if http:
            from mimekit_cli.web import load_web_extra, log_to_diagnostics, warn_without_tls  # imports this module
            load_web_extra()
            log_to_diagnostics("serve")
        config = ServeConfig(
            root=parse_url(root, {"maildir"}).path, hostname=hostname, domains=domains,
            users=load_users("serve", users_file),
            tls=server_tls_context(tls_cert, tls_key) if tls_cert else None,
            max_size=max_size, max_connections=max_connections,
            relay=parse_url(relay, RELAY_SCHEMES) if relay else None,
            queue_dir=(queue_dir or default_queue_directory()) if relay else None,
            insecure_plaintext_auth=insecure_plaintext_auth)
        if insecure_plaintext_auth and config.users:
            print_diagnostic("serve", "warning: logins accepted without TLS: passwords cross the network "
                                      "in the clear")
        if relay:    # a queue that cannot be made is an error now, not a 451 for every relayed message
            Queue(config.queue_dir).close()
        if http and not config.tls and not is_loopback(http[0]):
            warn_without_tls("serve")
        stopping = threading.Event()
        relay_thread = start_queue_runner("serve", config.queue_dir, stopping) if relay else None
        try:
            asyncio.run(serve(config, smtp, pop3, http=http, web_app=lambda smtp_bound: _web_app(config, smtp_bound, http),
                              ready=_print_ready, log=lambda line: print_diagnostic("serve", line)))
        finally:
            stopping.set()
            if relay_thread:
                relay_thread.join()


def _check_usage(smtp, pop3, http, listen_publicly, users_file, tls_cert, tls_key, relay) -> None:
    if smtp is None and pop3 is None and http is None:
        raise UsageError("--smtp off and --pop3 off, and no --http: nothing to serve")
    for option, address in (("--smtp", smtp), ("--pop3", pop3), ("--http", http)):
        if address:
            check_listen_address(option, address, listen_publicly)
    check_tls_pair(tls_cert, tls_key)
    if relay and not users_file:
        raise UsageError("--relay needs --users FILE: only a logged-in client may relay (never an open relay)")
    if http and not is_loopback(http[0]) and not users_file:
        raise UsageError(f"--http {format_address(http)} needs --users FILE: without logins anyone who reaches "
                         "it could read the mail")


def check_listen_address(option: str, address, listen_publicly: bool) -> bool:
    """Whether `address` is one other machines reach; UsageError when it is and
    --listen-publicly was not given (serve's and web's rule)."""
    publicly = not is_loopback(address[0])
    if publicly and not listen_publicly:
        raise UsageError(f"{option} {format_address(address)}: not a loopback address; add --listen-publicly "
                         "to accept connections from other machines")
    return publicly


def check_tls_pair(tls_cert: str | None, tls_key: str | None) -> None:
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together: give both or neither")


def _web_app(config: ServeConfig, smtp_bound, http):
    """The web application on the served Maildir(s), writable, sending through our own SMTP
    listener (none without SMTP). With --domain, each user's Maildir is a folder tree of its
    own; with --users too, a user logs in and sees their own only."""
    from mimekit.web.app import create_app
    from mimekit.web.config import WebConfig
    from mimekit_cli.web import default_index_path

    if config.catch_all:
        sources, owners = (f"maildir:{config.root}",), None
    else:
        owners = _user_maildirs(config)
        sources = tuple(f"maildir:{path}" for path in owners)
    web_config = WebConfig(sources=sources, index_path=default_index_path(sources), writable=True,
                           users=config.users, require_auth=not is_loopback(http[0]),
                           sender=_own_smtp(smtp_bound),
                           per_user_folders=config.users is not None and not config.catch_all)
    return create_app(web_config, owners)


def _user_maildirs(config: ServeConfig) -> dict[str, str]:
    """{Maildir path: user} under the root: every user of the users file (their Maildir made
    now if no mail came yet, as POP3 does at login), else the Maildirs mail already made."""
    root = os.path.abspath(config.root)
    if config.users is not None:
        names = [name for name in config.users.names() if safe_mailbox_name(name)]
        for name in names:
            Maildir(os.path.join(root, name))
    else:
        names = sorted(entry.name for entry in os.scandir(root)
                       if safe_mailbox_name(entry.name) and is_maildir(entry.path))
    return {os.path.join(root, name): name for name in names}


def _own_smtp(smtp_bound):
    """The page's sender: our own SMTP listener, in the clear over loopback (smtp+plain://).
    None (no compose) without SMTP, or when it listens on one address that is not loopback."""
    from mimekit.web.send import SMTPSender

    if smtp_bound is None:
        return None
    host, port = smtp_bound
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if not is_loopback(host):
        print_diagnostic("serve", f"warning: SMTP listens on {host} only, not loopback: the web page cannot "
                                  "send (no compose)")
        return None
    return SMTPSender(parse_url(f"smtp+plain://{format_address((host, port))}", {"smtp+plain"}))


def _print_ready(bound) -> None:
    print_diagnostic("serve", "listening: " + ", ".join(f"{protocol} {format_address(address)}"
                                                         for protocol, address in bound))


def start_queue_runner(command: str, queue_dir: str, stopping: threading.Event) -> threading.Thread:
    """The queue runner of `queue run --watch`, in a thread: queued mail (serve's relayed
    mail, web's composed mail) leaves while the server runs, its outcomes on stderr like the
    sessions' lines. Stopped with the server, after the message in flight."""
    def run() -> None:
        try:
            with Queue(queue_dir) as queue:
                watch_queue(queue, lambda stop: deliver_queue(queue, stop=stop), stopping,
                            lambda report: _report_run(command, queue, report, False, False))
        except Exception as exc:   # the server goes on; queued mail waits in the queue
            print_diagnostic(command, f"queue runner: stopped: {type(exc).__name__}: {exc}; queued mail waits in "
                                      f"{queue_dir} for `mimekit queue run`")
    thread = threading.Thread(target=run, name=f"mimekit-{command}-queue")
    thread.start()
    return thread


def load_users(command: str, users_file: str | None) -> Users | None:
    """The users file, with a warning when others may read its password hashes."""
    if not users_file:
        return None
    users = Users.load(users_file)
    if users.readable_by_others:
        print_diagnostic(command, f"warning: {users_file} is readable by group or others "
                                  f"(it holds password hashes: chmod 600 {users_file})")
    return users


COMMANDS = [serve_command]
