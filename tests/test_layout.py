"""The package's shape (issue 9): what a reader relies on when looking for where a change goes."""

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENGINE = REPO / "mimekit"


def test_every_engine_package_is_installed():
    """A folder missing from pyproject's list works in the editable checkout and breaks `pip install .`."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts) for init in ENGINE.rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml: {sorted(found - listed)}"


def test_the_engine_never_imports_click():
    offenders = [str(path.relative_to(REPO)) for path in ENGINE.rglob("*.py")
                 if re.search(r"^\s*(import click|from click\b)", path.read_text(), re.M)]
    assert offenders == []
