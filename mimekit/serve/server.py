"""The listeners of `mimekit serve`: one asyncio server per protocol, one task per connection.

What is here and nowhere else: the connection limit over all listeners (a client past it
hears the protocol's busy reply and is closed, rather than waiting in a backlog), one log
line per session whatever the session did (a handler that fails unexpectedly is one line
naming the exception, and the server goes on), the TLS context made from a certificate and
its key, and the stop: on SIGTERM or SIGINT the listeners close, the sessions are cancelled
and awaited (a session whose delivery commit has started finishes it first: the commit is
shielded in the session), and serve() returns. The web interface (`http`) is the optional
extra's uvicorn server (mimekit.web.server) in the same event loop, stopped by the same event.

Addresses are the caller's: the command line binds to loopback only unless told otherwise
(mimekit.transport.urls.is_loopback; docs/conventions.md, Servers).
"""

import asyncio
import functools
import os
import signal
import ssl
from typing import Callable

from mimekit.errors import CantCreateError, ConfigError, IOFailure, UsageError
from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import Mailboxes
from mimekit.serve.pop3_session import handle_pop3
from mimekit.serve.smtp_session import handle_smtp
from mimekit.stores.maildir import Maildir, make_directories

Address = tuple[str, int]
BUSY_WRITE_TIMEOUT = 5.0   # a refused client that does not read its busy reply is not waited for


def busy_reply(protocol: str, hostname: str) -> bytes:
    """What a client past the connection limit hears before the connection closes: a
    temporary failure, so that it tries again later (RFC 5321 §3.8, RFC 2449 §8.1.2)."""
    if protocol == "smtp":
        return f"421 4.7.0 {hostname} too many connections, try again later\r\n".encode()
    return b"-ERR [SYS/TEMP] too many connections, try again later\r\n"


HANDLERS = {"smtp": handle_smtp, "pop3": handle_pop3}


def parse_listen_address(text: str) -> Address:
    """"HOST:PORT" or "[IPv6]:PORT" as (host, port); port 0 asks the system for a free one."""
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"{text!r}: an IPv6 address is written in brackets: [::1]:PORT")
    if not colon or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{text!r}: expected HOST:PORT or [IPv6]:PORT, PORT from 0 to 65535")
    return host, int(port)


def format_address(address: Address) -> str:
    """"127.0.0.1:2525", "[::1]:2525": as a log line or the ready line shows an address."""
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server_tls_context(certificate: str, key: str) -> ssl.SSLContext:
    """The server's TLS context: TLS 1.2 at least, the certificate chain and its key checked
    now (unreadable, not PEM, or not a pair: ConfigError) rather than at the first STARTTLS."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate, key)
    except ssl.SSLError as exc:   # OpenSSL's own words ("PEM lib") tell a user nothing
        reason = ("the key does not belong to the certificate" if exc.reason == "KEY_VALUES_MISMATCH"
                  else "not a PEM certificate chain and its private key")
        raise ConfigError(f"cannot use the certificate {certificate!r} with the key {key!r}: {reason}") from None
    except OSError as exc:
        raise ConfigError(f"cannot use the certificate {certificate!r} with the key {key!r}: "
                          f"{exc.strerror or exc}") from None
    return context


class _Listeners:
    """The sessions in progress over every listener, and the limit on how many there are."""

    def __init__(self, config: ServeConfig, mailboxes: Mailboxes, log: Callable[[str], None]):
        self.config = config
        self.mailboxes = mailboxes
        self.log = log
        self.sessions: set[asyncio.Task] = set()

    async def connected(self, protocol: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, from accept to its log line."""
        peer = writer.get_extra_info("peername") or ("unknown", 0)
        where = f"{protocol} {format_address(peer)}"
        if len(self.sessions) >= self.config.max_connections:
            await self._refuse_busy(protocol, writer)
            self.log(f"{where}: refused: {self.config.max_connections} connections already")
            return
        task = asyncio.current_task()
        self.sessions.add(task)
        try:
            text = await HANDLERS[protocol](self.config, self.mailboxes, reader, writer)
        except asyncio.CancelledError:
            text = "ended: the server is stopping"
        except Exception as exc:   # a bug in a handler ends its session only, in one line
            text = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self.sessions.discard(task)
            writer.close()
        self.log(f"{where}: {text}")

    async def _refuse_busy(self, protocol: str, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(busy_reply(protocol, self.config.hostname))
            async with asyncio.timeout(BUSY_WRITE_TIMEOUT):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        writer.transport.abort()

    async def stop(self) -> None:
        """Cancel every session and wait until each has ended (and logged its line)."""
        sessions = list(self.sessions)
        for task in sessions:
            task.cancel()
        if sessions:
            await asyncio.wait(sessions)


def _prepare_root(config: ServeConfig) -> None:
    """Make the store before the first client, so that a root that cannot be one is an error
    at start (CantCreateError), not a 451 for every message. The catch-all Maildir is opened,
    which also clears what a killed server left in tmp/."""
    if config.catch_all:
        Maildir(config.root)
        return
    try:
        make_directories(config.root)    # fsync'd into its parent, as a Maildir made now is
    except OSError as exc:
        raise CantCreateError(f"{config.root}: cannot create the mail directory: {exc.strerror or exc}") from None


async def serve(config: ServeConfig, smtp: Address | None = ("127.0.0.1", 2525),
                pop3: Address | None = ("127.0.0.1", 1110), *,
                http: Address | None = None, web_app: Callable[[Address | None], object] | None = None,
                ready: Callable[[list[tuple[str, Address]]], None] | None = None,
                log: Callable[[str], None] = lambda line: None,
                stop: asyncio.Event | None = None) -> None:
    """Serve SMTP, POP3 and HTTP (an address of None: not that protocol) until `stop` is
    set, by default until SIGTERM or SIGINT. The web application is `web_app(smtp)`, made
    once SMTP is bound (smtp: its real address, for the page to send through; None
    without SMTP). `ready` gets [(protocol, (host, port))] once every listener is bound
    (and the web application started), with the real port where 0 was asked; `log` gets
    one line per session, "smtp 127.0.0.1:41234: TEXT" (TEXT may hold what a client sent:
    the caller makes it printable). Binding fails as IOFailure naming the address."""
    _prepare_root(config)
    mailboxes = Mailboxes(config)
    listeners = _Listeners(config, mailboxes, log)
    loop = asyncio.get_running_loop()
    watched_signals = []
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
            watched_signals.append(signum)
    servers: list[asyncio.Server] = []
    web: asyncio.Task | None = None
    try:
        bound = []
        for protocol, address in (("smtp", smtp), ("pop3", pop3)):
            if address is None:
                continue
            try:
                server = await asyncio.start_server(functools.partial(listeners.connected, protocol), *address)
            except OSError as exc:   # asyncio's text repeats the address: the errno's says why
                raise IOFailure(f"cannot listen on {format_address(address)} ({protocol}): "
                                f"{os.strerror(exc.errno) if exc.errno else exc}") from None
            servers.append(server)
            bound += [(protocol, socket.getsockname()[:2]) for socket in server.sockets]
        if http is not None:
            smtp_bound = next((address for protocol, address in bound if protocol == "smtp"), None)
            web, web_bound = await _start_web(web_app(smtp_bound), http, config, stop)
            if web_bound is None:
                return
            bound.append(("http", web_bound))
        if ready is not None:
            ready(bound)
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        stop.set()           # the web server stops on the same event, also when start-up failed
        if web is not None:
            await web        # ends once `stop` is set, its open responses ended
        await listeners.stop()
        for signum in watched_signals:
            loop.remove_signal_handler(signum)


async def _start_web(app, address: Address, config: ServeConfig,
                     stop: asyncio.Event) -> tuple[asyncio.Task, Address | None]:
    """The web server's task, once it listens and its application has started, and its
    address (None when stopped meanwhile); its start-up error (a port in use) raised here.
    Over TLS when a certificate was given."""
    from mimekit.web.server import serve_http    # the optional web extra, loaded only when asked for

    started: asyncio.Future = asyncio.get_running_loop().create_future()
    web = asyncio.create_task(serve_http(app, address, tls=config.tls, stop=stop,
                                         ready=lambda bound: started.done() or started.set_result(bound)))
    await asyncio.wait({web, started}, return_when=asyncio.FIRST_COMPLETED)
    if not started.done():
        await web            # raises what stopped it before it listened, if not a stop asked for
    return web, started.result() if started.done() else None
