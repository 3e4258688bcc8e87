"""Man pages (issue 15): made from the click commands, committed in docs/man, installed by
pip where man finds them."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from mimekit_cli.common import EXIT_STATUSES
from mimekit_cli.main import COMMAND_MODULES, main
from mimekit_cli.manpages import _escape, manual_pages

REPO = Path(__file__).resolve().parents[2]
MAN_DIR = REPO / "docs" / "man"

needs_man = pytest.mark.skipif(shutil.which("man") is None, reason="needs man-db (Debian package man-db)")


def man(*args: str, env: dict | None = None) -> str:
    """What `man ARGS` prints, wide enough that no option is hyphenated across lines."""
    result = subprocess.run(["man", "--warnings", "-P", "cat", *args],
                            env={**os.environ, "LC_ALL": "C.UTF-8", "MANWIDTH": "250", **(env or {})},
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr   # groff's warnings: a roff mistake
    return result.stdout


def rendered(page: Path) -> str:
    return man("-l", str(page))


def test_committed_pages_are_a_fresh_render():
    fresh = manual_pages(main)
    committed = {path.name: path.read_text(encoding="utf-8") for path in MAN_DIR.glob("*.1")}
    stale = sorted(name for name in fresh.keys() | committed.keys() if fresh.get(name) != committed.get(name))
    assert not stale, f"docs/man is out of date ({', '.join(stale)}): run scripts/build-manpages"


def test_one_page_per_command_and_one_for_mimekit():
    assert set(manual_pages(main)) == {"mimekit.1"} | {f"mimekit-{name}.1" for name in COMMAND_MODULES}


@needs_man
def test_mimekit_page_has_every_command_and_the_exit_code_table():
    text = rendered(MAN_DIR / "mimekit.1")
    for name in COMMAND_MODULES:
        assert f"mimekit-{name}(1)" in text
    exit_status = text.split("EXIT STATUS", 1)[1]
    for code, name, meaning in EXIT_STATUSES:
        assert f"{code} {name}" in exit_status
    assert "never 0" in exit_status


@needs_man
def test_every_page_is_clean_roff_with_options_and_examples():
    for page in MAN_DIR.glob("mimekit-*.1"):
        text = rendered(page)   # no groff warning
        assert "EXAMPLES" in text and "SEE ALSO" in text, page.name
    decode = rendered(MAN_DIR / "mimekit-decode.1")
    assert "mimekit decode [OPTIONS] SOURCE..." in decode
    assert "--all-readings" in decode and "-o, --output DIR" in decode   # ASCII hyphens: copy and paste work
    assert "mimekit decode -o parts/ message.eml" in decode


@needs_man
def test_a_group_page_lists_its_subcommands_with_their_options():
    text = rendered(MAN_DIR / "mimekit-queue.1")
    for subcommand in ("list", "run", "retry", "hold", "release", "drop"):
        assert f"mimekit queue {subcommand} [OPTIONS]" in text
    assert "--max-age" in text and "mimekit queue run -q" in text


def test_escape_keeps_roff_from_reading_text_as_requests():
    assert _escape("-o") == "\\-o"
    assert _escape(r"C:\new") == r"C:\enew"
    assert _escape(".TH x\n'br\nok") == "\\&.TH x\n\\&'br\nok"


@needs_man
def test_man_finds_the_pages_after_pip_install(tmp_path):
    """The Must show: `man mimekit-decode` works after `pip install .`. The repository's
    files are copied first, so the build leaves no build/ or egg-info in the work tree."""
    copy = tmp_path / "mimekit"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():   # a file deleted but not yet committed is not there to copy
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    venv = tmp_path / "venv"
    # No ensurepip (seconds saved): pip, setuptools and wheel are those of the environment
    # running the tests, through a .pth file. --system-site-packages would give the base
    # python's instead, which on a fresh Debian (scripts/test's own venv) has none of them.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site_packages = subprocess.run([str(venv / "bin" / "python"), "-c",
                                    "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    running = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    Path(site_packages, "tests-running-environment.pth").write_text("\n".join(running) + "\n")
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                                "--no-build-isolation", "--no-index", str(copy)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    path = {"PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"}   # man-db maps <prefix>/bin to <prefix>/share/man
    located = subprocess.run(["man", "-w", "mimekit-decode"], env={**os.environ, **path},
                             capture_output=True, text=True, check=True).stdout.strip()
    assert located == str(venv / "share" / "man" / "man1" / "mimekit-decode.1")
    text = man("mimekit-decode", env=path)
    assert text.startswith("MIMEKIT-DECODE(1)") and "--all-readings" in text
