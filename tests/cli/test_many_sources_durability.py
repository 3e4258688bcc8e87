"""decode over a mailbox, killed or out of space: whatever is under a final name in -o DIR
is whole (the bytes a complete run writes), and a run again finishes and leaves no
temporary files. Each message's files go through the one temporary-then-rename path
(streams.files.OutputDirectory); these tests prove it holds with many messages and two
worker processes writing at once."""

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import mounted_tmpfs

CLI = [sys.executable, "-m", "mimekit_cli"]
MESSAGES = 40


def message(number: int) -> bytes:
    attachment = random.Random(number).randbytes(150_000 + 1000 * number)
    return (b"From: a@example.test\r\nSubject: %d\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\ntext %d\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"f%d.bin\"\r\n\r\n" % (number, number, number)
            + base64.encodebytes(attachment).replace(b"\n", b"\r\n") + b"--b--\r\n")


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> Path:
    """A directory of messages and the files a complete decode of it writes."""
    root = tmp_path_factory.mktemp("dump")
    (root / "in").mkdir()
    for number in range(MESSAGES):
        (root / "in" / f"{number:03d}.eml").write_bytes(message(number))
    result = subprocess.run([*CLI, "decode", "in", "-o", "complete", "-j", "2", "-q"], cwd=root, capture_output=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return root


def written(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file()}


def temporary(name: str) -> bool:
    return os.path.basename(name).startswith(".mimekit-") and name.endswith(".tmp")


def test_a_decode_killed_at_random_points_leaves_only_whole_files_under_final_names(dump):
    complete = written(dump / "complete")
    rng = random.Random(7)
    for trial in range(10):
        out = dump / f"killed-{trial}"
        process = subprocess.Popen([*CLI, "decode", "in", "-o", out.name, "-j", "2", "-q"], cwd=dump,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.3, 2.0))
        os.killpg(process.pid, signal.SIGKILL)       # the parent and its workers, mid-write
        process.wait(timeout=60)
        found = written(out) if out.exists() else {}
        for name, data in found.items():
            assert temporary(name) or complete.get(name) == data, (trial, name)
        again = subprocess.run([*CLI, "decode", "in", "-o", out.name, "-j", "2", "-q", "--json"], cwd=dump,
                               capture_output=True, timeout=300)
        assert again.returncode == 0, again.stderr
        after = written(out)
        assert not [name for name in after if temporary(name)], trial   # the run again cleared the orphans
        assert {name: data for name, data in after.items() if name in complete} == \
            {name: data for name, data in complete.items() if name in after}
        records = [json.loads(line) for line in again.stdout.splitlines()]
        assert len(records) == MESSAGES and all(os.path.isdir(dump / r["directory"]) for r in records)


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: a real full disk."""
    with mounted_tmpfs(tmp_path / "small-disk", "3m") as mount_point:
        yield mount_point


def test_a_decode_onto_a_full_disk_reports_each_message_it_could_not_write(dump, small_disk):
    """About a third of the messages fit: those are whole, each of the others is an error
    record (74) in its place, and no partial file is left under a final name."""
    complete = written(dump / "complete")
    result = subprocess.run([*CLI, "decode", "in", "-o", str(small_disk / "out"), "-j", "2", "--json"], cwd=dump,
                            capture_output=True, timeout=300)
    assert result.returncode == 74, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    failed = [r for r in records if "error" in r]
    assert len(records) == MESSAGES and failed and len(failed) < MESSAGES
    assert all(r["error"]["code"] == 74 for r in failed)
    found = written(small_disk / "out")
    assert not [name for name in found if temporary(name)]
    assert all(complete.get(name) == data for name, data in found.items())
