"""The README says what is true: its library section runs as written, importing only from
`mimekit`, and its exit code table is the CLI's (mimekit_cli.common.EXIT_STATUSES)."""

import re
import shutil
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
