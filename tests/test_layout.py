"""The package's shape (issue 9): what a reader relies on when looking for where a change goes."""

import ast
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


# A command-line flag in a string: "--user", "-o", "-t" (not "--" alone, nor "--boundary"
# built from a variable, nor a word with a hyphen in it).
_FLAG = re.compile(r"(?<![^\s(])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def _string_literals(tree: ast.AST):
    """Every string constant that is not a docstring (docstrings may speak of the CLI)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_engine_messages_name_parameters_never_cli_flags():
    """A library caller has no --user to give: the engine says `user`, the CLI its flags."""
    offenders = [f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
                 for path in sorted(ENGINE.rglob("*.py"))
                 for node in _string_literals(ast.parse(path.read_text()))
                 if _FLAG.search(node.value)]
    assert offenders == []
