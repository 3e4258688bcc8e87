"""Fixtures of the `mimekit serve` tests: the server factory (served.py does the work), a
throw-away CA and server certificate, and a users file made with `mimekit users add`.
Commands run in the `env` fixture of tests/conftest.py (HOME and XDG dirs in tmp_path)."""

import ssl
from pathlib import Path

import pytest
from served import USERS, Served, run_mimekit, start_serve
from servers import Certificates, make_certificates


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> Certificates:
    """A private CA and a certificate for localhost and 127.0.0.1, shared by the session."""
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def tls_context(certificates) -> ssl.SSLContext:
    """A server context with that certificate, for a session under test."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.cert, certificates.key)
    return context


@pytest.fixture
def client_context(certificates) -> ssl.SSLContext:
    """A client context trusting that CA only: TLS verified, as a real client would."""
    return ssl.create_default_context(cafile=str(certificates.ca))


@pytest.fixture
def users_file(tmp_path, env) -> Path:
    """A users file holding USERS, made as an administrator would: `mimekit users add`."""
    path = tmp_path / "users"
    for name, password in USERS.items():
        run_mimekit("users", "add", str(path), name, env=env, input=f"{password}\n".encode())
    return path


@pytest.fixture
def serve(tmp_path, env):
    """Factory: serve(*options, root=None) starts `mimekit serve maildir:ROOT --smtp
    127.0.0.1:0 --pop3 127.0.0.1:0 OPTIONS...` and returns a Served once it is listening.
    Every server still running at the end is stopped; one that does not exit 0 on SIGTERM
    fails the test."""
    started: list[Served] = []

    def start(*options: str, root: Path | None = None) -> Served:
        number = len(started)
        started.append(start_serve(root or tmp_path / f"served-{number}", tmp_path / f"serve-{number}.log",
                                   options, env))
        return started[-1]

    yield start
    failures = []
    for served in started:   # every one, even after one failed to stop
        try:
            served.stop()
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)
