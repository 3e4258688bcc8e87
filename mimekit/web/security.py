"""Who may use the web interface, and the headers that keep a browser safe with it.

SecurityMiddleware is plain ASGI (not Starlette's BaseHTTPMiddleware), so a streamed body,
a 1 GB attachment or the live-update stream, passes through without being buffered: it
only looks at the request's headers and adds headers to the response's start message.
For every HTTP request, in order:

1. The Host header, on a loopback listener: only this machine's names for it
   (127.0.0.1:PORT, localhost:PORT, [::1]:PORT). A web page on evil.test whose name the
   attacker re-points at 127.0.0.1 (DNS rebinding) then reads nothing: its requests say
   `Host: evil.test`, and get 421. A server other machines reach (require_auth) takes any
   name: there every request must log in, and a browser keeps a login per site.
2. Authentication, when the configuration has users, a token, or requires it (beyond
   loopback): HTTP basic against the users file (scrypt, in a thread; a success is
   remembered in memory so that each request does not cost 32 MiB and tens of
   milliseconds), or the token, as `Authorization: Bearer TOKEN` or as the basic-auth
   password of any user name. A refused login waits FAILED_LOGIN_DELAY first, as serve's
   SMTP and POP3 logins do. `request.state.user` is the user name, None without
   authentication or for the token (which sees every folder).
3. The security headers of every response: no MIME sniffing, no Referer, no framing by
   another site, no cache keeping mail (everything but /static/), and the default
   Content-Security-Policy when the route set none (the routes serving message bytes set
   their own, stricter one).

csrf_token() and check_csrf() are the token the pages' forms and the API's mutating
requests carry: an HMAC of the user under a secret made at start, so it needs no storage
and a page from another site cannot know it. A request authenticated with a bearer
token carries no cookie a browser would add by itself, so it needs no CSRF token.
"""

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import secrets

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request

from mimekit.serve.config import DEFAULT_MAX_SIZE
from mimekit.serve.session import FAILED_LOGIN_DELAY, verify_login
from mimekit.transport.urls import is_loopback
from mimekit.web.config import WebConfig

REALM_CHALLENGE = 'Basic realm="mimekit", charset="UTF-8"'   # RFC 7617 §2.1: the password is UTF-8
DEFAULT_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),         # a link in a message must not tell its site our URLs
    ("x-frame-options", "SAMEORIGIN"),
)
STATIC_PREFIX = "/static/"                    # the one place with no mail in it: cacheable
NOT_STORED = ("cache-control", "no-store")   # pages, API and downloads hold mail
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_FORM_BYTES = DEFAULT_MAX_SIZE      # a compose form: no bigger than a message serve's SMTP takes
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

_CSRF_SECRET = secrets.token_bytes(32)   # per process: a restart makes open pages' tokens stale, no more


class CSRFError(HTTPException):
    """A mutating request without the right CSRF token: 403."""

    def __init__(self):
        super().__init__(403, "missing or wrong CSRF token")


def auth_required(config: WebConfig) -> bool:
    return config.require_auth or config.users is not None or bool(config.token)


class SecurityMiddleware:
    """The Host check, authentication and security headers of every HTTP request (see the
    module's docstring); other scopes (lifespan) pass through untouched."""

    def __init__(self, app, config: WebConfig):
        self.app = app
        self.config = config
        self._logins: dict[tuple[str, bytes], str] = {}   # (name, sha256(password)) -> user name, successes only

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_security_headers(send, cacheable=scope["path"].startswith(STATIC_PREFIX))
        if not self.config.require_auth and not _host_allowed(scope):
            await _respond(scope, send, 421, "this server does not answer to that Host name")
            return
        state = scope.setdefault("state", {})
        state["user"], state["bearer"] = None, False
        if auth_required(self.config):
            authorization = Headers(scope=scope).get("authorization")
            login = await self._authenticate(authorization) if authorization else None
            if login is None:
                if authorization:
                    await asyncio.sleep(FAILED_LOGIN_DELAY)    # password guessing gets slow
                await _respond(scope, send, 401, "authentication required",
                               [(b"www-authenticate", REALM_CHALLENGE.encode())])
                return
            state["user"], state["bearer"] = login
        await self.app(scope, receive, send)

    async def _authenticate(self, authorization: str) -> tuple[str | None, bool] | None:
        """(user, by bearer token) for good credentials, else None."""
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        if scheme == "bearer":
            return (None, True) if self._is_token(credentials) else None
        if scheme != "basic":
            return None
        try:
            name, colon, password = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not colon:
            return None
        if self._is_token(password):
            return None, False     # the token as a browser sends it: the basic-auth password
        users = self.config.users
        if users is None or not name:
            return None
        remembered = (name.lower(), hashlib.sha256(password.encode("utf-8")).digest())
        if remembered not in self._logins:
            if not await verify_login(users, name, password):
                return None
            self._logins[remembered] = name.lower()    # the users file keeps names in lower case
        return self._logins[remembered], False

    def _is_token(self, text: str) -> bool:
        token = self.config.token
        return bool(token) and hmac.compare_digest(text.encode("utf-8"), token.encode("utf-8"))


def _host_allowed(scope) -> bool:
    """Whether the Host header is one of this machine's names for the loopback address the
    request came to (any name on another address)."""
    server = scope.get("server")
    if not server or not is_loopback(server[0]):
        return True
    port = server[1]
    host = Headers(scope=scope).get("host", "").lower()
    allowed = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == DEFAULT_PORTS.get(scope.get("scheme", "http")):
        allowed.update(LOOPBACK_NAMES)    # a browser leaves the scheme's own port out
    return host in allowed


def _with_security_headers(send, cacheable: bool):
    async def sending(message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS if cacheable else (*SECURITY_HEADERS, NOT_STORED):
                headers.setdefault(name, value)
            headers.setdefault("content-security-policy", DEFAULT_CSP)
        await send(message)
    return sending


async def _respond(scope, send, status: int, text: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """A refusal made here, before any route: JSON under /api/ as app.py's errors are, else one line of text."""
    if scope["path"].startswith("/api/"):
        body, content_type = json.dumps({"error": text, "status": status}).encode(), b"application/json"
    else:
        body, content_type = f"{status} {text}\n".encode(), b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def csrf_token(request: Request) -> str:
    """The token the forms and the API's mutating requests of this user carry."""
    user = getattr(request.state, "user", None) or ""
    return hmac.new(_CSRF_SECRET, user.encode("utf-8"), hashlib.sha256).hexdigest()


def user_of(request: Request) -> str | None:
    """Who is logged in (set by SecurityMiddleware); None when no login is asked for."""
    return getattr(request.state, "user", None)


def check_csrf(request: Request, token: str | None) -> None:
    """CSRFError (403) unless `token` is this user's; a bearer-token request needs none."""
    if getattr(request.state, "bearer", False):
        return
    if token is None:
        token = request.headers.get(CSRF_HEADER)
    if not token or not hmac.compare_digest(token.encode("utf-8", "replace"), csrf_token(request).encode()):
        raise CSRFError()


def check_form_size(request: Request) -> None:
    """HTTPException 413 for a form bigger than MAX_FORM_BYTES, 411 for one that does not
    say its size (a browser's always does), from its Content-Length, before a byte is read:
    any site can make a browser POST a form here, and its uploads would be spooled to disk
    before the CSRF check refuses them. The server reads no more than Content-Length."""
    declared = request.headers.get("content-length", "")
    if not (declared.isascii() and declared.isdigit()):
        raise HTTPException(411, "a form must say its size (Content-Length)")
    if int(declared) > MAX_FORM_BYTES:
        raise HTTPException(413, f"form: more than {MAX_FORM_BYTES} bytes, the largest message this server sends")
