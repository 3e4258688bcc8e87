"""The Starlette application: the routes of api, pages and events, the security middleware,
and one mapping from mimekit's errors to HTTP statuses, so that a bad id is a 404 and a bad
parameter a 400 everywhere, never a 500.

`create_app(config)` is all a caller needs: uvicorn serves it (web.server), tests drive it
with Starlette's TestClient. The WebMail, the config, the templates and the live-update
watcher are on `app.state`."""

import contextlib
import logging
import os

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from mimekit.errors import AuthError, DataError, MimekitError, NoInputError, UsageError
from mimekit.web.config import WebConfig
from mimekit.web.mail import ReadOnlyError, WebMail

HERE = os.path.dirname(__file__)
TEMPLATES = os.path.join(HERE, "templates")
STATIC = os.path.join(HERE, "static")

log = logging.getLogger("mimekit.web")

# The status of each error; the first class an error is an instance of wins.
STATUS_OF_ERROR = ((ReadOnlyError, 403), (NoInputError, 404), (UsageError, 400), (DataError, 422),
                   (AuthError, 401), (MimekitError, 503))


def templates() -> Environment:
    """Jinja2 with autoescaping on for every template: nothing from a message is markup."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                       trim_blocks=True, lstrip_blocks=True)


def create_app(config: WebConfig, owners: dict[str, str] | None = None) -> Starlette:
    """The application over `config.sources`; `owners` maps a Maildir path to its user
    (serve --domain). The index is brought up to date before the first request."""
    from mimekit.web import api, events, pages, security

    mail = WebMail(config, owners)
    watcher = events.Watcher(mail, config.poll_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await watcher.start()
        try:
            yield
        finally:
            await watcher.stop()
            mail.close()

    app = Starlette(
        routes=[*api.routes, *events.routes, *pages.routes, Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(security.SecurityMiddleware, config=config)],
        exception_handlers={HTTPException: _http_error, MimekitError: _error_response, Exception: _unexpected_error},
        lifespan=lifespan)
    app.state.config = config
    app.state.mail = mail
    app.state.templates = templates()
    app.state.watcher = watcher
    return app


def status_of(exc: Exception) -> int:
    return next((status for kind, status in STATUS_OF_ERROR if isinstance(exc, kind)), 500)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def _error_response(request: Request, exc: MimekitError) -> Response:
    """One line of why, as JSON under /api/ ({"error": ..., "status": ...}), else as a page."""
    status = status_of(exc)
    if wants_json(request):
        return JSONResponse({"error": str(exc), "status": status}, status_code=status)
    from mimekit.web.pages import error_page
    return error_page(request, status, str(exc))


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own refusals (no route: 404, a wrong method: 405, security's CSRF check:
    403) as JSON under /api/ like every other API error; as Starlette answers them elsewhere."""
    if wants_json(request):
        return JSONResponse({"error": exc.detail, "status": exc.status_code}, status_code=exc.status_code,
                            headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    if wants_json(request):
        return JSONResponse({"error": "internal error", "status": 500}, status_code=500)
    from mimekit.web.pages import error_page
    return error_page(request, 500, "internal error")
