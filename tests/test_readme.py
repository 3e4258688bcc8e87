"""The README says what is true: its quick start runs as written and cleans up after itself,
its library section runs as written, importing only from `mimekit`, its exit code table is
the CLI's (mimekit_cli.common.EXIT_STATUSES), and it lists every package scripts/test
installs and every corpus folder the tests read."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mimekit_cli.common import EXIT_STATUSES, PARTIAL_FAILURE_RULE

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

MAIL = (b"From: Zoe <zoe@example.test>\r\nTo: bob@example.test\r\nSubject: hello\r\n"
        b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n"
        b"--b\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAEC\r\n--b--\r\n")


def section(title: str) -> str:
    """The README's text from the heading `title` to the next heading of the same level."""
    level = re.match(r"#+", title)[0]
    start = README.index(title + "\n")
    end = README.find(f"\n{level} ", start + len(title))
    return README[start:end if end != -1 else None]


def library_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", section("## Library usage"), re.S)


def test_the_library_section_has_examples_that_import_only_from_mimekit():
    examples = library_examples()
    assert len(examples) >= 3
    imports = [line for example in examples for line in example.splitlines()
               if re.match(r"\s*(from|import) ", line)]
    assert imports and all(re.match(r"from mimekit import ", line) for line in imports), imports


@pytest.mark.parametrize("number", range(3))
def test_the_library_examples_run_as_written(number, tmp_path, monkeypatch, capsys):
    (tmp_path / "mail.eml").write_bytes(MAIL)
    shutil.copy(ROOT / "fixtures" / "tiny.pdf", tmp_path / "report.pdf")
    monkeypatch.chdir(tmp_path)
    exec(compile(library_examples()[number], f"README.md python block {number + 1}", "exec"), {})
    printed = capsys.readouterr().out
    assert printed
    if number == 1:
        assert printed.splitlines()[-1] == "1 message(s) in ./outbox"
    if number == 2:
        assert printed.startswith("['multipart/mixed'")
        (tmp_path / "mail.eml").write_bytes(MAIL[:-12])   # the final boundary cut off
        exec(compile(library_examples()[number], "README.md python block 3", "exec"), {})
        assert capsys.readouterr().out.startswith("refused: missing-final-boundary")


def test_the_exit_code_table_is_the_clis():
    rows = re.findall(r"^\| (\d+) \| (\w+) \| (.*) \|$", section("### Exit codes"), re.M)
    assert [(int(code), name, meaning) for code, name, meaning in rows] == list(EXIT_STATUSES)
    assert PARTIAL_FAILURE_RULE in " ".join(section("### Exit codes").split())


def quick_start_steps() -> dict[int, str]:
    """The quick start's shell block, by the number of its "# N. ..." comments."""
    [block] = re.findall(r"```sh\n(.*?)```", section("## Quick start"), re.S)
    return {int(number): text for number, text in re.findall(r"^# (\d+)\. .*\n((?:(?!# \d+\. ).*\n)*)", block, re.M)}


def test_the_quick_start_installs_into_a_virtual_environment_for_the_python_pyproject_requires():
    """Debian's pip refuses `pip install .` outside a virtual environment (PEP 668)."""
    install = quick_start_steps()[1]
    venv = re.search(r"python3 -m venv (\S+)", install)
    assert venv and f". {venv[1]}/bin/activate" in install
    assert install.index("activate") < install.index("pip install .")
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11" and "Python 3.11 or later" in section("## Quick start")


def test_the_quick_start_example_runs_as_written_and_leaves_nothing_behind(tmp_path):
    """Step 2, in bash from the clone as the reader runs it (mimekit on PATH): its message
    goes to a temporary directory, which it removes."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", quick_start_steps()[2]], cwd=ROOT, env=env,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    assert "mimekit check: ok\n" in result.stderr.decode()
    assert "Grüße, 履歴書" in result.stdout.decode() and "tiny.png" in result.stdout.decode()
    assert list(tmp_path.iterdir()) == [] and not (ROOT / "demo.eml").exists()


def debian_packages(script: str) -> set[str]:
    """The words of scripts/test's DEBIAN_PACKAGES=(...) array, comments left out."""
    names = set()
    for line in script.split("DEBIAN_PACKAGES=(", 1)[1].splitlines():
        code = line.split("#", 1)[0]
        names.update(code.replace(")", " ").split())
        if ")" in code:
            return names
    raise AssertionError("DEBIAN_PACKAGES=( ... ) not closed")


def test_the_tests_section_lists_every_package_scripts_test_installs():
    script = (ROOT / "scripts" / "test").read_text()
    prose = re.sub(r"```.*?```", "", section("## Tests"), flags=re.S)
    listed = set(re.findall(r"`([^`]+)`", prose))
    words = {word for text in listed for word in text.split()}
    assert debian_packages(script) <= words, debian_packages(script) - words
    extras = re.search(r"^PIP_EXTRAS=(\S+)", script, re.M)[1]
    assert f"pip install -e '.[{extras}]'" in listed
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in extras.split(",")
                                              for r in project["optional-dependencies"][extra]]
    assert {re.match(r"[\w.-]+", requirement)[0] for requirement in requirements} <= words


def test_the_corpus_section_names_every_folder_the_tests_read():
    read = {folder for path in (ROOT / "tests").rglob("*.py")
            for folder in re.findall(r'CORPUS / "([\w.-]+)"', path.read_text(encoding="utf-8"))}
    corpus = section("### The public test corpus")
    assert read and all(f"get {folder} " in corpus for folder in read), read
