"""Fixtures shared by the command-line tests."""

import os

import pytest


@pytest.fixture
def env(tmp_path):
    """HOME and the XDG dirs in tmp_path: only the config file a test writes is read."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MIMEKIT_", "XDG_"))}
    environment.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"),
                       XDG_CONFIG_HOME=str(tmp_path / "config"))
    (tmp_path / "home").mkdir()
    (tmp_path / "config" / "mimekit").mkdir(parents=True)
    return environment
