"""Real mail tools read what mimekit writes: munpack (mpack) and mblaze's mshow extract the
same attachment bytes. Each test skips when its tool is not installed."""

import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.peers

NON_ASCII_NAME = "Résumé – 履歴書.bin"


def needs(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


@pytest.fixture
def attachments(fixtures_dir, tmp_path):
    """PNG, PDF, random binary, and a binary file with a non-ASCII name."""
    originals = tmp_path / "originals"
    originals.mkdir()
    for name in ("tiny.png", "tiny.pdf"):
        shutil.copy(fixtures_dir / name, originals / name)
    (originals / "random.bin").write_bytes(os.urandom(300_000))
    (originals / NON_ASCII_NAME).write_bytes(b"\x00\xff binary \r\n" + os.urandom(5000))
    return sorted(originals.iterdir())


def encoded_message(tmp_path, files, *options) -> str:
    path = tmp_path / "message.eml"
    subprocess.run([sys.executable, "-m", "mimekit_cli", "encode", "--from", "zoe@example.org",
                    "--to", "someone@example.org", "--subject", "peers", *options,
                    *[arg for f in files for arg in ("--attach", str(f))], "-o", str(path)], check=True)
    return str(path)


def extracted(directory) -> dict[bytes, str]:
    """Extracted files by content (a tool may rename a file; the bytes must be the same)."""
    return {path.read_bytes(): path.name for path in directory.iterdir()}


# Not with --encoding quoted-printable: munpack's QP decoder turns a decoded CR LF into LF
# and reads "=" CR LF as an escape, so no QP file survives it. Files are base64 by default.
@pytest.mark.parametrize("options", [[], ["--lf"]])
def test_munpack_extracts_the_same_bytes(tmp_path, attachments, options):
    munpack = needs("munpack")
    message = encoded_message(tmp_path, attachments, *options)
    out = tmp_path / "munpack"
    out.mkdir()
    subprocess.run([munpack, "-q", "-C", str(out), message], check=True, capture_output=True)
    found = extracted(out)
    for original in attachments:
        assert original.read_bytes() in found, f"munpack lost or changed {original.name}"
        if original.name.isascii():
            assert found[original.read_bytes()] == original.name


@pytest.mark.parametrize("options", [[], ["--lf"], ["--encoding", "quoted-printable"]])
def test_mshow_extracts_the_same_bytes_under_the_same_names(tmp_path, attachments, options):
    mshow = needs("mshow")
    message = encoded_message(tmp_path, attachments, *options)
    out = tmp_path / "mshow"
    out.mkdir()
    subprocess.run([mshow, "-x", message], cwd=out, check=True, capture_output=True)
    for original in attachments:
        assert (out / original.name).read_bytes() == original.read_bytes(), original.name


def test_mshow_reads_text_fixtures_and_their_names(tmp_path, fixtures_dir):
    mshow = needs("mshow")
    files = [fixtures_dir / "Résumé – 履歴書.txt", fixtures_dir / "shift_jis.txt", fixtures_dir / "latin1.txt"]
    message = encoded_message(tmp_path, files)
    out = tmp_path / "mshow"
    out.mkdir()
    subprocess.run([mshow, "-x", message], cwd=out, check=True, capture_output=True)
    for original in files:
        assert (out / original.name).read_bytes() == original.read_bytes(), original.name
