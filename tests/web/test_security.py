"""SecurityMiddleware, csrf_token and check_csrf: the Host check, logins, security headers and
the CSRF rules, on a small application of test routes (what a route does is the routes'
tests' business) and on the real application for its pages, API and static files."""

import asyncio
import base64
import time

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from mimekit.serve.session import FAILED_LOGIN_DELAY
from mimekit.serve.users import Users, add_user
from mimekit.web import security
from mimekit.web.config import WebConfig
from conftest import web_config

TOKEN = "a-token-of-more-than-sixteen-characters"
PASSWORD = "alice-Web-Secret-1"
OWN_CSP = "sandbox; default-src 'none'"
LOOPBACK = "http://127.0.0.1"


async def whoami(request: Request) -> Response:
    return JSONResponse({"user": request.state.user, "csrf": security.csrf_token(request)})


async def own_csp(request: Request) -> Response:
    return PlainTextResponse("raw", headers={"Content-Security-Policy": OWN_CSP})


async def stream(request: Request) -> Response:
    async def chunks():
        for number in range(3):
            yield f"chunk {number}\n".encode()
    return StreamingResponse(chunks(), media_type="text/plain")


async def change(request: Request) -> Response:
    form = await request.form()
    security.check_csrf(request, form.get(security.CSRF_FIELD))
    return JSONResponse({"changed": True})


def test_app(config: WebConfig) -> Starlette:
    routes = [Route("/api/whoami", whoami), Route("/page", own_csp), Route("/stream", stream),
              Route("/api/change", change, methods=["POST"]), Route("/change", change, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(security.SecurityMiddleware, config=config)])


test_app.__test__ = False    # a factory, not a test


def client_for(tmp_path, base_url: str = LOOPBACK, **options) -> TestClient:
    return TestClient(test_app(web_config(tmp_path, [], **options)), base_url=base_url)


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> Users:
    path = tmp_path_factory.mktemp("users") / "users"
    add_user(str(path), "alice", PASSWORD)
    return Users.load(str(path))


# -- security headers --------------------------------------------------------------------

def assert_security_headers(response, csp: str = security.DEFAULT_CSP) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers.get_list("content-security-policy") == [csp]


def test_every_response_of_the_application_carries_the_security_headers(client, maildir):
    """Pages, the API, static files and Starlette's own 404 alike."""
    for path in ("/api/mailboxes", "/api/session", "/static/style.css", "/no/such/page", "/api/no-such-route"):
        assert_security_headers(client.get(path, follow_redirects=False))
    first_page = client.get("/", follow_redirects=False)
    assert first_page.status_code == 303
    assert_security_headers(first_page)
    assert_security_headers(client.get(first_page.headers["location"]))


def test_mail_is_never_kept_in_a_cache_static_files_may_be(client, maildir):
    """A page, the API and a message's bytes hold mail: no browser or proxy cache may keep
    them (a shared machine, the back button after logging out); the style sheet may be."""
    inbox = client.get("/api/messages").json()["emails"]
    paths = ["/", "/api/mailboxes", "/api/messages", f"/api/messages/{inbox[0]['id']}",
             f"/api/messages/{inbox[0]['id']}/raw", f"/messages/{inbox[0]['id']}", "/no/such/page"]
    for path in paths:
        assert client.get(path, follow_redirects=False).headers.get("cache-control") == "no-store", path
    assert "no-store" not in client.get("/static/style.css").headers.get("cache-control", "")


def test_a_route_with_its_own_csp_keeps_it_alone(tmp_path):
    with client_for(tmp_path) as client:
        response = client.get("/page")
    assert_security_headers(response, csp=OWN_CSP)


def test_a_streamed_body_passes_whole_with_the_headers(tmp_path):
    with client_for(tmp_path) as client:
        response = client.get("/stream")
    assert response.text == "chunk 0\nchunk 1\nchunk 2\n"
    assert_security_headers(response)


def test_the_middleware_does_not_buffer_a_stream(tmp_path):
    """The response's start goes out before the body's last chunk is made."""
    sent = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        assert [message["type"] for message in sent] == ["http.response.start"]
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        assert len(sent) == 2
        await send({"type": "http.response.body", "body": b"b"})

    async def send(message):
        sent.append(message)

    middleware = security.SecurityMiddleware(app, web_config(tmp_path, []))
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [(b"host", b"127.0.0.1:80")],
             "server": ("127.0.0.1", 80), "scheme": "http"}
    asyncio.run(middleware(scope, None, send))
    assert [message.get("body") for message in sent] == [None, b"a", b"b"]


# -- the Host header (DNS rebinding) ------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1:8025", "localhost:8025", "[::1]:8025", "LOCALHOST:8025"])
def test_this_machines_names_for_a_loopback_listener_are_served(tmp_path, host):
    with client_for(tmp_path, "http://127.0.0.1:8025") as client:
        assert client.get("/api/whoami", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.test:8025", "evil.test", "127.0.0.1:8026", "localhost", "127.0.0.1.evil.test:8025",
                                  ""])
def test_another_host_name_on_a_loopback_listener_is_refused(tmp_path, host):
    """A page on evil.test whose name resolves to 127.0.0.1 must not read the API."""
    with client_for(tmp_path, "http://127.0.0.1:8025") as client:
        response = client.get("/api/whoami", headers={"Host": host})
    assert response.status_code == 421
    assert response.json() == {"error": "this server does not answer to that Host name", "status": 421}
    assert_security_headers(response)


def test_a_browser_leaves_the_default_port_out(tmp_path):
    with client_for(tmp_path, "http://127.0.0.1") as client:
        assert client.get("/api/whoami", headers={"Host": "localhost"}).status_code == 200


def test_a_public_listener_takes_any_host_name_but_requires_a_login(tmp_path):
    with client_for(tmp_path, "http://192.0.2.10:8025", token=TOKEN, require_auth=True) as client:
        headers = {"Host": "mail.example.test:8025", "Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/whoami", headers=headers).status_code == 200
        assert client.get("/api/whoami", headers={"Host": "mail.example.test:8025"}).status_code == 401


# -- logins --------------------------------------------------------------------------------

def test_without_users_or_token_no_login_is_asked(tmp_path):
    with client_for(tmp_path) as client:
        response = client.get("/api/whoami")
    assert response.status_code == 200
    assert response.json()["user"] is None


def test_with_users_every_request_logs_in(tmp_path, users):
    with client_for(tmp_path, users=users) as client:
        refused = client.get("/api/whoami")
        page = client.get("/stream")
        good = client.get("/api/whoami", headers=basic("alice", PASSWORD))
        upper = client.get("/api/whoami", headers=basic("ALICE", PASSWORD))
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Basic realm="mimekit", charset="UTF-8"'
    assert refused.json() == {"error": "authentication required", "status": 401}
    assert_security_headers(refused)
    assert page.status_code == 401 and page.text == "401 authentication required\n"
    assert good.status_code == 200 and good.json()["user"] == "alice"
    assert upper.json()["user"] == "alice", "the users file's names are lower case"


@pytest.mark.parametrize("authorization", [
    basic("alice", "wrong password")["Authorization"], basic("mallory", PASSWORD)["Authorization"],
    "Basic not-base64!", "Basic " + base64.b64encode(b"no colon").decode(),
    "Basic " + base64.b64encode(b"alice:\xff").decode(), f"Bearer {TOKEN}", "Digest whatever"])
def test_a_wrong_login_is_refused_after_the_delay(tmp_path, users, authorization):
    """No token configured here: a bearer token is as wrong as a wrong password."""
    with client_for(tmp_path, users=users) as client:
        started = time.monotonic()
        response = client.get("/api/whoami", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "www-authenticate" in response.headers
    assert time.monotonic() - started >= FAILED_LOGIN_DELAY


def test_a_good_login_is_remembered_not_rechecked(tmp_path, users, monkeypatch):
    """scrypt runs once per (user, password), not at every request of the page."""
    checks = []
    verify = users.verify
    monkeypatch.setattr(users, "verify", lambda name, password: checks.append(name) or verify(name, password))
    with client_for(tmp_path, users=users) as client:
        for _ in range(3):
            assert client.get("/api/whoami", headers=basic("alice", PASSWORD)).status_code == 200
        assert client.get("/api/whoami", headers=basic("alice", "wrong")).status_code == 401
    assert checks == ["alice", "alice"]


def test_the_token_as_bearer_or_as_a_basic_password(tmp_path):
    with client_for(tmp_path, token=TOKEN) as client:
        bearer = client.get("/api/whoami", headers={"Authorization": f"Bearer {TOKEN}"})
        browser = client.get("/api/whoami", headers=basic("anyone", TOKEN))
        wrong = client.get("/api/whoami", headers={"Authorization": f"Bearer {TOKEN}x"})
        none = client.get("/api/whoami")
    assert bearer.status_code == 200 and bearer.json()["user"] is None
    assert browser.status_code == 200 and browser.json()["user"] is None
    assert wrong.status_code == 401 and none.status_code == 401


def test_require_auth_alone_refuses_everyone(tmp_path):
    """Beyond loopback without users or a token the CLI refuses to start; the middleware, given
    such a configuration anyway, lets no one in."""
    with client_for(tmp_path, require_auth=True) as client:
        assert client.get("/api/whoami").status_code == 401
        assert client.get("/api/whoami", headers=basic("alice", PASSWORD)).status_code == 401


# -- CSRF ----------------------------------------------------------------------------------

def test_a_change_needs_the_csrf_token_as_field_or_header(tmp_path):
    with client_for(tmp_path) as client:
        token = client.get("/api/whoami").json()["csrf"]
        assert client.post("/api/change", data={"csrf": token}).status_code == 200
        assert client.post("/api/change", headers={"X-CSRF-Token": token}).status_code == 200
        missing = client.post("/api/change")
        wrong = client.post("/api/change", data={"csrf": token[:-1] + "0"}, headers={"X-CSRF-Token": token})
        non_ascii = client.post("/api/change", data={"csrf": "é" * 64})
    for response in (missing, wrong, non_ascii):
        assert response.status_code == 403
    assert missing.text == "missing or wrong CSRF token"


def test_the_csrf_refusal_of_the_real_api_is_json(client, maildir):
    [first] = client.get("/api/messages", params={"mailbox": client.get("/api/mailboxes").json()["mailboxes"][0]["id"],
                                                  "limit": 1}).json()["emails"]
    response = client.delete(f"/api/messages/{first['id']}")
    assert response.status_code == 403
    assert response.json() == {"error": "missing or wrong CSRF token", "status": 403}


def test_each_user_has_their_own_csrf_token(tmp_path):
    path = tmp_path / "users"
    add_user(str(path), "alice", PASSWORD)
    add_user(str(path), "bob", "bob-Web-Secret-2")
    both = Users.load(str(path))
    with client_for(tmp_path, users=both) as client:
        alice = client.get("/api/whoami", headers=basic("alice", PASSWORD)).json()["csrf"]
        bob = client.get("/api/whoami", headers=basic("bob", "bob-Web-Secret-2")).json()["csrf"]
        assert alice != bob
        crossed = client.post("/api/change", data={"csrf": alice}, headers=basic("bob", "bob-Web-Secret-2"))
        own = client.post("/api/change", data={"csrf": bob}, headers=basic("bob", "bob-Web-Secret-2"))
    assert crossed.status_code == 403 and own.status_code == 200


def test_a_bearer_request_needs_no_csrf_token_a_basic_one_does(tmp_path):
    """A browser adds basic credentials by itself, never a bearer token: only the former can be forged."""
    with client_for(tmp_path, token=TOKEN) as client:
        assert client.post("/api/change", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        assert client.post("/api/change", headers=basic("x", TOKEN)).status_code == 403
