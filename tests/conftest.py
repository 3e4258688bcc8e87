"""Shared test set-up: hypothesis profile, the public corpus (tests/corpus.py), real servers (tests/servers.py)."""

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


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """../shared/corpus, read in place (never copied); tests skip cleanly without it."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
