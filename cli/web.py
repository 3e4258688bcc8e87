"""`mimekit web SOURCE...`: the web interface and JSON API on mail, read-only, in the foreground.

Thin like `serve`: mimekit.web makes the application and runs uvicorn; this module turns the
options into a WebConfig, refuses what is unsafe unless asked for (an address other machines
reach needs --listen-publicly and logins), prints the ready line and stops on SIGTERM or
SIGINT with exit 0. With --send, composed mail goes through the outgoing queue, delivered
by a queue runner in a thread as `serve --relay` does. docs/web.md is the user's guide.
"""

import asyncio
import hashlib
import logging
import os
import signal
import threading

import click

from mimekit.accounts import refuse_if_shared
from mimekit.errors import ConfigError, MimekitError, NoInputError, UnavailableError, UsageError
from mimekit.queue import Queue, default_queue_directory
from mimekit.queue.store import QUEUE_SCHEMES
from mimekit.serve.server import format_address, server_tls_context
from mimekit.stores.common import expand_store_path
from mimekit.transport.urls import parse_url
from mimekit_cli.common import print_diagnostic, reporting
from mimekit_cli.serve import check_listen_address, check_tls_pair, listen_address, load_users, start_queue_runner

DEFAULT_ADDRESS = "127.0.0.1:8025"
TOKEN_VARIABLE = "MIMEKIT_WEB_TOKEN"
MIN_TOKEN_LENGTH = 16            # a token is the only secret between the network and the mail
MIRROR_INTERVAL = 10.0           # seconds between two looks for new mail on an IMAP source


def load_web_extra() -> None:
    """UnavailableError (69) naming the extra to install when its packages are missing."""
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as missing:
        raise UnavailableError(f"the web interface needs the web extra: pip install 'mimekit[web]' "
                               f"({missing})") from None


def cache_directory(environ=None) -> str:
    """$XDG_CACHE_HOME/mimekit/web (default ~/.cache/mimekit/web): the header indexes, made
    private (0700): they hold the senders and subjects of the mail."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mimekit", "web")


def default_index_path(sources: tuple[str, ...]) -> str:
    """One index per set of sources: the same sources, from any directory, find their index again."""
    directory = cache_directory()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    digest = hashlib.sha256("\0".join(sources).encode("utf-8", "surrogateescape")).hexdigest()
    return os.path.join(directory, f"{digest}.sqlite")


def warn_without_tls(command: str) -> None:
    print_diagnostic(command, "warning: HTTP without TLS beyond loopback: passwords, tokens and mail cross the "
                              "network in the clear (give --tls-cert and --tls-key)")


class _DiagnosticLines(logging.Handler):
    """uvicorn's and the web application's log records as the command's diagnostic lines,
    one line each, never a traceback (the exception's type and text end the line)."""

    def __init__(self, command: str):
        super().__init__(logging.WARNING)
        self.command = command

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().strip()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        print_diagnostic(self.command, text)


def log_to_diagnostics(command: str) -> None:
    for name in ("uvicorn", "mimekit.web"):
        logger = logging.getLogger(name)
        logger.addHandler(_DiagnosticLines(command))
        logger.propagate = False


@click.command("web", epilog="See docs/web.md. Stop with SIGTERM or Ctrl-C: exit 0.")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option("--http", "address", default=DEFAULT_ADDRESS, show_default=True, callback=listen_address,
              metavar="HOST:PORT", help="Where the web page and API listen ([IPv6]:PORT; port 0: any free port).")
@click.option("--index", "index_path", metavar="FILE",
              help="The header index (SQLite; default: one per set of sources under $XDG_CACHE_HOME/mimekit/web).")
@click.option("--listen-publicly", is_flag=True,
              help="Allow an --http address other machines can reach (needs --users or a token).")
@click.option("--users", "users_file", metavar="FILE", help="Log in with HTTP basic auth against this users file "
                                                             "(`mimekit users add`).")
@click.option("--token-file", metavar="FILE",
              help=f"A token (first line; chmod 600) accepted as `Authorization: Bearer` or as the basic-auth "
                   f"password; else ${TOKEN_VARIABLE}. Never on the command line.")
@click.option("--tls-cert", metavar="PEM", help="Serve HTTPS with this certificate chain (with --tls-key).")
@click.option("--tls-key", metavar="PEM", help="Its private key.")
@click.option("--send", "send_url", metavar="URL",
              help="Let the page compose and send, through the outgoing queue to this server (smtp://, smtps://, "
                   "smtp+plain://, mx:), delivered while the command runs.")
@click.option("--queue-dir", metavar="DIR", help="The outgoing queue of --send (default: mimekit's queue).")
@click.option("--password-command", metavar="CMD",
              help="IMAP sources: run CMD for the password (as fetch does; else $MIMEKIT_PASSWORD, ~/.netrc, the "
                   "config file).")
@click.option("--token-command", metavar="CMD", help="IMAP sources: log in with the OAuth2 token CMD prints.")
@click.option("--cafile", metavar="PEM", help="IMAP sources: trust these CA certificates (verification stays on).")
def web_command(sources, address, index_path, listen_publicly, users_file, token_file, tls_cert, tls_key,
                send_url, queue_dir, password_command, token_command, cafile):
    """Show mail in a web page and a JSON API, read-only.

    SOURCE is what `scan` reads (Maildirs with their subfolders, mbox files, directories of
    messages, maildir:PATH, mbox:PATH) or an IMAP account (imap://, imaps://). It listens
    on 127.0.0.1 only unless --listen-publicly is given, and prints
    "mimekit web: listening: http HOST:PORT" once ready.
    """
    with reporting("web"):
        publicly = _check_usage(address, listen_publicly, tls_cert, tls_key, send_url, queue_dir)
        load_web_extra()
        from mimekit.web.app import create_app
        from mimekit.web.config import WebConfig

        token = _read_token(token_file)
        users = load_users("web", users_file)
        if publicly and users is None and token is None:
            raise UsageError(f"--listen-publicly needs --users FILE or a token (--token-file, ${TOKEN_VARIABLE}): "
                             "without logins anyone who reaches the address could read the mail")
        tls = server_tls_context(tls_cert, tls_key) if tls_cert else None
        if publicly and tls is None:
            warn_without_tls("web")
        sender = None
        if send_url:
            from mimekit.web.send import QueueSender
            queue_dir = queue_dir or default_queue_directory()
            Queue(queue_dir).close()    # a queue that cannot be made is an error now, not at the first send
            sender = QueueSender(queue_dir, parse_url(send_url, QUEUE_SCHEMES))
        local_sources, mirror = _local_sources(sources, password_command=password_command,
                                               token_command=token_command, cafile=cafile)
        config = WebConfig(sources=local_sources, index_path=index_path or default_index_path(local_sources),
                           users=users, token=token, require_auth=publicly, sender=sender)
        log_to_diagnostics("web")
        app = create_app(config)
        stopping = threading.Event()
        threads = [start_queue_runner("web", queue_dir, stopping)] if send_url else []
        if mirror is not None:
            threads.append(_start_mirroring(mirror, stopping))
        try:
            asyncio.run(_serve(app, address, tls))
        finally:
            stopping.set()
            for thread in threads:
                thread.join()


def _check_usage(address, listen_publicly, tls_cert, tls_key, send_url, queue_dir) -> bool:
    """Whether the address is one other machines reach (then --listen-publicly was given)."""
    if address is None:
        raise UsageError("--http off: nothing to serve")
    publicly = check_listen_address("--http", address, listen_publicly)
    check_tls_pair(tls_cert, tls_key)
    if queue_dir and not send_url:
        raise UsageError("--queue-dir is the queue of --send: give --send URL too")
    return publicly


def _read_token(token_file: str | None) -> str | None:
    """The token of --token-file (a private file) or of the environment; None without one."""
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as file:
                refuse_if_shared(token_file, os.fstat(file.fileno()).st_mode)
                token = file.readline().strip()
        except OSError as exc:
            raise NoInputError(f"{token_file}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{token_file}: the token is not UTF-8 text") from None
        where = token_file
    else:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
        where = f"${TOKEN_VARIABLE}"
        if not token:
            return None
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{where}: the token is shorter than {MIN_TOKEN_LENGTH} characters "
                          "(make one with: head -c 24 /dev/urandom | base64)")
    return token


def _local_sources(sources: tuple[str, ...], **login):
    """The sources as local paths (absolute, so that the default index is found from any
    directory), IMAP accounts mirrored into the cache (the password found as `fetch` finds
    it); and the Mirror that syncs them (None without IMAP)."""
    from mimekit.web.mirror import IMAP_SCHEMES, mirror_sources

    local = tuple(source if source.partition(":")[0].lower() in IMAP_SCHEMES else _absolute(source)
                  for source in sources)
    return mirror_sources(local, os.path.join(cache_directory(), "mirror"), **login)


def _start_mirroring(mirror, stopping: threading.Event) -> threading.Thread:
    """Mirror.sync() every MIRROR_INTERVAL seconds in a thread until the command stops; a
    failure is one line (once, until the next different one), and the page shows what was
    mirrored before."""
    def run() -> None:
        said = None
        while not stopping.wait(MIRROR_INTERVAL):
            try:
                mirror.sync()
                said = None
            except Exception as exc:    # the page goes on with what was mirrored before
                why = str(exc) if isinstance(exc, MimekitError) else f"{type(exc).__name__}: {exc}"
                text = f"IMAP mirror: {why}"
                if text != said:
                    print_diagnostic("web", text)
                    said = text
    thread = threading.Thread(target=run, name="mimekit-web-mirror")
    thread.start()
    return thread


def _absolute(source: str) -> str:
    scheme, colon, rest = source.partition(":")
    prefixed = colon and scheme.lower() in ("maildir", "mbox")
    path = expand_store_path(source, rest) if prefixed else source
    if path == "-":
        raise UsageError(f"{source}: standard input cannot be served: give a Maildir, an mbox or a directory")
    return f"{scheme.lower()}:{os.path.abspath(path)}" if prefixed else os.path.abspath(path)


async def _serve(app, address, tls) -> None:
    from mimekit.web.server import serve_http

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve_http(app, address, tls=tls, stop=stop,
                     ready=lambda bound: print_diagnostic("web", f"listening: http {format_address(bound)}"))


COMMANDS = [web_command]
