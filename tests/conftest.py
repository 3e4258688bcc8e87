"""Shared test set-up: hypothesis profile, the public corpus (tests/corpus.py), real servers (tests/servers.py), and the
environment command-line tests run mimekit in (env)."""

import os
from pathlib import Path

import pytest
from corpus import CORPUS
from hypothesis import HealthCheck, settings
from servers import mail_servers  # noqa: F401  (real Postfix + Dovecot, tests/servers.py)

settings.register_profile("default", max_examples=150, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"

# What a test must never leave in the repository (issue 15): fetch's default output (-o maildir:./mail),
# the README quick start's message, and the folder an unexpanded maildir:~/... made.
LEFT_BEHIND = ("mail", "demo.eml", "~")


@pytest.fixture(scope="session", autouse=True)
def repository_left_clean():
    """An error at the end of the run naming what a test left in the repository: a test that
    ran mimekit there (its cwd) instead of in tmp_path. What was there before the run is not
    counted, so one offender does not fail every later run."""
    before = {name for name in LEFT_BEHIND if os.path.lexists(REPO / name)}
    yield
    left = [name for name in LEFT_BEHIND if os.path.lexists(REPO / name) and name not in before]
    if left:
        pytest.fail(f"the tests left {', '.join(left)} in {REPO}: run mimekit with cwd=tmp_path or an output "
                    "in tmp_path", pytrace=False)


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """../shared/corpus, read in place (never copied); tests skip cleanly without it."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def env(tmp_path):
    """HOME and the XDG dirs in tmp_path: only the config file a test writes is read."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MIMEKIT_", "XDG_"))}
    environment.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"),
                       XDG_CONFIG_HOME=str(tmp_path / "config"))
    (tmp_path / "home").mkdir()
    (tmp_path / "config" / "mimekit").mkdir(parents=True)
    return environment


@pytest.fixture
def servers(mail_servers):
    """The session's Postfix and Dovecot, with alice's INBOX emptied (through Dovecot) for
    this test: the fetch tests log in as alice."""
    mail_servers.clear_mailbox("alice")
    return mail_servers
