"""The queue's store and run without a server that answers: layout, backoff, max age, locks,
recovery after kills, a full disk. A closed loopback port stands for a server that is away
(connection refused); what a real Postfix answers is in test_queue_postfix.py."""

import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import mounted_tmpfs
from mimekit.errors import MimekitError
from mimekit.queue import FAILED, PENDING, Queue, backoff, default_queue_directory, deliver_queue
from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.urls import parse_url

REPO = Path(__file__).resolve().parents[2]
MESSAGE = (b"From: alice@example.test\r\nTo: bob@example.test\r\nBcc: hidden@example.test\r\n"
           b"Subject: queued\r\n\r\nHello.\r\n")
SPOOL_KILL_TRIALS = 20


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]   # nobody listens once it is closed


@pytest.fixture
def message_file(tmp_path) -> Path:
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE)
    return path


def spool(queue, message_file, port=None, now=None):
    url = parse_url(f"smtp://127.0.0.1:{port or closed_port()}", {"smtp"})
    return queue.spool(prepare_message(str(message_file), extract=True), url, timeout=5, now=now)


def test_default_directory_follows_xdg_state_home():
    assert default_queue_directory({"XDG_STATE_HOME": "/s"}) == "/s/mimekit/queue"
    assert default_queue_directory({}).endswith("/.local/state/mimekit/queue")


def test_backoff_doubles_from_5_minutes_to_4_hours_with_jitter():
    assert [backoff(n, lambda: 0.5) for n in range(1, 9)] == [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]
    assert backoff(1, lambda: 0.0) == pytest.approx(270) and backoff(1, lambda: 1.0) == pytest.approx(330)


def test_an_entry_is_the_message_as_transmitted_and_its_state(tmp_path, message_file):
    with Queue(str(tmp_path / "q")) as queue:
        entry = spool(queue, message_file)
        assert queue.ids() == [entry.id]
    files = sorted(os.listdir(tmp_path / "q" / "queue"))
    assert files == [f"{entry.id}.eml", f"{entry.id}.json"]   # no temporary file left
    assert b"Bcc" not in (tmp_path / "q" / "queue" / files[0]).read_bytes()
    state = json.loads((tmp_path / "q" / "queue" / files[1]).read_text())
    assert state["schema"] == "mimekit.queue-entry/1" and state["sender"] == "alice@example.test"
    assert [r["address"] for r in state["recipients"]] == ["bob@example.test", "hidden@example.test"]
    assert "password" not in state and state["password_command"] is None   # a command may be kept, never a password
    assert os.stat(tmp_path / "q" / "queue").st_mode & 0o777 == 0o700


def test_a_server_away_defers_then_max_age_fails_the_entry_into_failed(tmp_path, message_file):
    t0 = 1_800_000_000.0
    with Queue(str(tmp_path)) as queue:
        entry = spool(queue, message_file, now=t0)
        report = deliver_queue(queue, now=lambda: t0)
        assert report.recipients(PENDING) == 2 and report.remaining == 1
        recipient = queue.read(entry.id).recipients[0]
        assert "cannot connect" in recipient.last_reply["text"] and recipient.attempts == 1
        expired = deliver_queue(queue, now=lambda: t0 + 6 * 86400, max_age=5 * 86400)
        assert expired.recipients(FAILED) == 2 and expired.remaining == 0
        assert queue.ids() == [] and queue.ids(failed=True) == [entry.id]
        failed = queue.read(entry.id, failed=True)
        assert all(r.state == FAILED and "given up after 5 days" in r.last_reply["text"] for r in failed.recipients)


def test_an_entry_locked_elsewhere_is_left_alone(tmp_path, message_file):
    with Queue(str(tmp_path)) as queue:
        entry = spool(queue, message_file)
        holder = queue.lock(entry.id)
        assert holder is not None and queue.lock(entry.id) is None
        report = deliver_queue(queue)
        assert [(o.id, o.status) for o in report.outcomes] == [(entry.id, "busy")]
        assert queue.read(entry.id).recipients[0].attempts == 0
        holder.unlock()


def test_recover_removes_messages_without_state_and_finishes_moves_to_failed(tmp_path, message_file):
    with Queue(str(tmp_path)) as queue:
        orphan = spool(queue, message_file)
        os.unlink(tmp_path / "queue" / f"{orphan.id}.json")     # a removal cut short
        moving = spool(queue, message_file)
        os.rename(tmp_path / "queue" / f"{moving.id}.eml", tmp_path / "failed" / f"{moving.id}.eml")
        held = spool(queue, message_file)
        os.unlink(tmp_path / "queue" / f"{held.id}.json")
        spooler = queue._lock_message(held.id)                  # as a spooler still writing holds it
        queue.recover()
        assert sorted(os.listdir(tmp_path / "queue")) == [f"{held.id}.eml"]
        assert queue.ids(failed=True) == [moving.id]
        os.close(spooler)
        queue.recover()
        assert os.listdir(tmp_path / "queue") == []


def test_send_queue_killed_at_random_points_leaves_whole_entries_or_nothing(tmp_path):
    """A message big enough that the kill lands while it is written, state written, or tried."""
    big = tmp_path / "big.eml"
    big.write_bytes(MESSAGE + b"x" * 76 + b"\r\n" * 1 + (b"y" * 76 + b"\r\n") * 40000)
    directory, rng = tmp_path / "q", random.Random(12)
    for _ in range(SPOOL_KILL_TRIALS):
        sender = subprocess.Popen([sys.executable, "-m", "mimekit_cli", "send", f"--queue={directory}",
                                   "--server", f"smtp://127.0.0.1:{closed_port()}", "-t", str(big)],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        sender.send_signal(signal.SIGKILL)
        sender.wait()
    with Queue(str(directory)) as queue:
        queue.recover()
        names = sorted(os.listdir(directory / "queue"))
        assert names == sorted(f"{i}{suffix}" for i in queue.ids() for suffix in (".eml", ".json"))
        for entry_id in queue.ids():
            assert (directory / "queue" / f"{entry_id}.eml").read_bytes() == big.read_bytes().replace(
                b"Bcc: hidden@example.test\r\n", b"")
            assert len(queue.read(entry_id).recipients) == 2


def test_a_full_disk_refuses_to_queue_and_leaves_nothing(tmp_path):
    big = tmp_path / "big.eml"
    big.write_bytes(MESSAGE + (b"y" * 76 + b"\r\n") * 60000)   # 4.7 MB into 2 MB
    with mounted_tmpfs(tmp_path / "small", "2m") as mount_point:
        with Queue(str(mount_point / "q")) as queue:
            with pytest.raises(MimekitError):
                spool(queue, big)
            assert os.listdir(mount_point / "q" / "queue") == []


def test_a_server_away_defers_more_entries_than_the_process_may_open(tmp_path, message_file):
    """A failed session records its group's entries one at a time: locked all at once first,
    a queue of a thousand entries ran out of descriptors (the usual soft limit is 1024), and
    every run ended in EMFILE having recorded nothing, so no entry ever backed off."""
    entries, limit = 150, 100
    with Queue(str(tmp_path / "q")) as queue:
        port = closed_port()
        for _ in range(entries):
            spool(queue, message_file, port)
    run = subprocess.run([sys.executable, "-m", "mimekit_cli", "queue", "run", "--json", str(tmp_path / "q")],
                         cwd=REPO, capture_output=True,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    assert run.returncode == 75, run.stderr
    assert json.loads(run.stdout)["deferred"] == 2 * entries
