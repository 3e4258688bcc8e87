"""uvicorn running the web application, on a socket bound here and stopped by the caller.

Binding the socket ourselves gives the errors serve's listeners give (IOFailure naming the
address) and the real port where 0 was asked, before the ready line. Signals stay the
caller's: `mimekit serve` runs SMTP, POP3 and HTTP in one event loop and one SIGTERM must
stop all three, so uvicorn is kept from installing its own handlers. TLS uses serve's
context (TLS 1.2 at least), not one uvicorn would make from the file names.

On stop the live-update streams are ended first (the app's watcher): uvicorn waits for
open connections before it shuts the application down, and an event stream never ends by
itself. A download still running after STOP_GRACE seconds is cut.
"""

import asyncio
import contextlib
import os
import socket
import ssl
from typing import Callable

import uvicorn

from mimekit.errors import IOFailure
from mimekit.serve.server import Address, format_address

STOP_GRACE = 5      # seconds a response in progress may take to finish once the server stops
LISTEN_BACKLOG = 100
# Connections and requests at once; past it uvicorn answers 503. Bounds what clients that
# hold connections open (slow senders, many event streams: at most 100 of those) can take.
MAX_CONCURRENCY = 200


class _Server(uvicorn.Server):
    """uvicorn's server, without its signal handlers, telling `on_started` once it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]):
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self):
        yield

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_started()


def bind(address: Address) -> socket.socket:
    """A listening TCP socket on `address` (IPv4 or IPv6; port 0: any free port)."""
    host, port = address
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except socket.gaierror as exc:
        raise IOFailure(f"cannot listen on {format_address(address)} (http): {exc.strerror or exc}") from None
    except OSError as exc:
        raise IOFailure(f"cannot listen on {format_address(address)} (http): "
                        f"{os.strerror(exc.errno) if exc.errno else exc}") from None


async def serve_http(app, address: Address, *, tls: ssl.SSLContext | None = None,
                     ready: Callable[[Address], None] | None = None, stop: asyncio.Event) -> None:
    """Serve `app` on `address` until `stop` is set, over TLS with `tls` (a context made by
    serve.server.server_tls_context, which checks the certificate at start). `ready` gets
    the bound (host, port) once the application has started (its index is up to date) and
    connections are accepted. IOFailure when the address cannot be bound."""
    sock = bind(address)
    bound = sock.getsockname()[:2]
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="on",
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=STOP_GRACE,
                            limit_concurrency=MAX_CONCURRENCY)
    config.load()
    config.ssl = tls
    server = _Server(config, lambda: ready(bound) if ready else None)

    async def stop_when_asked() -> None:
        await stop.wait()
        watcher = getattr(app.state, "watcher", None)
        if watcher is not None:
            await watcher.stop()
        server.should_exit = True

    stopper = asyncio.create_task(stop_when_asked())
    try:
        await server.serve(sockets=[sock])
    except SystemExit:   # uvicorn's way of saying the application's startup failed (logged already)
        raise RuntimeError("the web application failed to start") from None
    finally:
        stopper.cancel()
        sock.close()
