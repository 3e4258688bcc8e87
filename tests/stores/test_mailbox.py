"""One Mailbox interface for both stores (issue 9): open_mailbox, and remove() that keeps
the stores' durability (mbox: one rewrite under both locks, renamed into place)."""

import fcntl
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mimekit.errors import NoInputError, UsageError
from mimekit.stores import Mailbox, Maildir, Mbox, open_mailbox

REPO = Path(__file__).resolve().parents[2]
BODIES = [f"Subject: {n}\n\nFrom the body of {n}\n>From quoted {n}\n".encode() for n in range(5)]


def filled(kind: str, path: Path) -> Mailbox:
    box = open_mailbox(f"{kind}:{path}")
    for body in BODIES:
        box.add([body])
    return box


def contents(box: Mailbox) -> list[bytes]:
    return [box.open(key).read() for key in box.keys()]


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_both_stores_are_mailboxes(tmp_path, kind):
    box = filled(kind, tmp_path / "box")
    assert isinstance(box, Mailbox)
    assert [ref.key for ref in box] == box.keys() and contents(box) == BODIES
    assert [ref.open().read() for ref in box] == [box.open(key).read() for key in box.keys()]


def test_open_mailbox_takes_an_existing_plain_path_and_refuses_a_missing_one(tmp_path):
    filled("maildir", tmp_path / "md")
    filled("mbox", tmp_path / "mb")
    assert isinstance(open_mailbox(str(tmp_path / "md")), Maildir)
    assert isinstance(open_mailbox(str(tmp_path / "mb")), Mbox)
    with pytest.raises(UsageError):
        open_mailbox(str(tmp_path / "missing"))
    with pytest.raises(NoInputError):
        open_mailbox(f"mbox:{tmp_path / 'missing'}", create=False)


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
@pytest.mark.parametrize("removed", [[0], [2], [4], [1, 3], [0, 1, 2, 3, 4]])
def test_remove_takes_out_exactly_those_messages(tmp_path, kind, removed):
    box = filled(kind, tmp_path / "box")
    keys = box.keys()
    box.remove(*[keys[n] for n in removed])
    assert contents(box) == [body for n, body in enumerate(BODIES) if n not in removed]
    reopened = open_mailbox(f"{kind}:{tmp_path / 'box'}", create=False)
    assert contents(reopened) == contents(box)


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_remove_of_a_key_that_names_no_message_removes_nothing(tmp_path, kind):
    box = filled(kind, tmp_path / "box")
    first = box.keys()[0]
    for bad in ["999999", "1", "x"]:
        with pytest.raises(NoInputError):
            box.remove(first, bad)
    assert contents(box) == BODIES


def test_mbox_remove_keeps_the_bytes_quoting_and_mode_and_changes_validity(tmp_path):
    path = tmp_path / "box"
    box = filled("mbox", path)
    os.chmod(path, 0o640)
    keys = [int(key) for key in box.keys()]
    raw, validity = path.read_bytes(), box.validity
    box.remove()
    assert box.validity == validity, "removing nothing rewrites nothing"
    box.remove(str(keys[1]))
    assert path.read_bytes() == raw[:keys[1]] + raw[keys[2]:]
    assert b"\n>From the body of 0\n>>From quoted 0\n" in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert box.validity != validity
    assert sorted(os.listdir(tmp_path)) == ["box"], "no temporary file or dotlock is left"


WAITING_APPENDER = """
import sys
from mimekit.stores import Mbox
Mbox(sys.argv[1]).add([b"Subject: late\\n\\nwaited for the lock\\n"])
"""


def wait_until_it_opens(pid: int, path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if any(os.readlink(link) == str(path) for link in Path(f"/proc/{pid}/fd").iterdir()):
                return
        except OSError:
            pass                               # a descriptor closed while we looked
        time.sleep(0.01)
    pytest.fail("the appender never opened the mbox")


def test_a_writer_waiting_on_the_old_file_appends_to_the_rewritten_one(tmp_path):
    """The rename leaves waiting writers holding the old file: they must notice and reopen."""
    path = tmp_path / "box"
    box = filled("mbox", path)
    held = os.open(path, os.O_RDWR)
    fcntl.lockf(held, fcntl.LOCK_EX)          # the appender below waits on this file's lock
    try:
        appender = subprocess.Popen([sys.executable, "-c", WAITING_APPENDER, str(path)],
                                    env={**os.environ, "PYTHONPATH": str(REPO)})
        wait_until_it_opens(appender.pid, path)
        box.remove(box.keys()[0])              # same process: our lock does not stop us
    finally:
        os.close(held)                         # releases this process's locks on the old file
    assert appender.wait(timeout=60) == 0
    assert contents(box) == BODIES[1:] + [b"Subject: late\n\nwaited for the lock\n"]


def test_maildir_remove_follows_a_message_a_reader_renamed(tmp_path):
    box = filled("maildir", tmp_path / "box")
    key = box.keys()[0]
    path = box.add([b"Subject: x\n\ny\n"])
    os.rename(path, str(tmp_path / "box" / "cur" / (os.path.basename(path) + ":2,S")))
    box.remove(key, box.keys()[-1])
    assert contents(box) == BODIES[1:]
