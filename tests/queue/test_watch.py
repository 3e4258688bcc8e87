"""`queue run --watch`: it stays up, delivers entries as they arrive and as retries fall due,
and stops on SIGTERM or SIGINT between messages, never with a message sent but not
recorded. Against the real Postfix of tests/servers.py; a closed loopback port stands for
a server that is away where nothing needs to arrive.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mimekit.queue import Queue
from test_queue_postfix import message, mimekit, queue_json, spool, wait_for

REPO = Path(__file__).resolve().parents[2]
STOP_WITHIN = 30   # seconds a stopped watcher may take: the message in flight, then QUIT


def watcher(directory: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mimekit_cli", "queue", "run", "--watch", *options, str(directory)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop(run: subprocess.Popen, signum=signal.SIGTERM) -> tuple[int, bytes, bytes]:
    run.send_signal(signum)
    out, err = run.communicate(timeout=STOP_WITHIN)
    return run.returncode, out, err


def assert_nothing_locked(directory: Path) -> None:
    with Queue(str(directory)) as queue:
        for failed in (False, True):
            for entry_id in queue.ids(failed):
                locked = queue.lock(entry_id, failed)
                assert locked is not None, f"{entry_id} is still locked"
                locked.unlock()


def until(condition, what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.2)


@pytest.mark.servers
def test_watch_delivers_what_send_queue_spools_and_what_falls_due_then_stops_on_sigterm(mail_servers, tmp_path):
    s, prefix = mail_servers, f"watch-{uuid.uuid4().hex[:12]}-"
    server = f"smtp://127.0.0.1:{s.smtp_switchable}"
    run = watcher(tmp_path)
    try:
        s.stop_switchable_listener()   # send's own try is deferred: the watcher has to deliver
        try:
            for i in range(3):
                sent = mimekit("send", f"--queue={tmp_path}", "--server", server, "--cafile", str(s.ca_file),
                               "--to", "carol@example.test", "-", input=message(f"{prefix}{i}"))
                assert sent.returncode == 0, sent.stderr
        finally:
            s.start_switchable_listener()
        ids = [entry["id"] for entry in queue_json(tmp_path)["entries"]]
        assert len(ids) == 3
        retried = mimekit("queue", "retry", "-d", str(tmp_path), *ids)   # due now, as a retry falls due
        assert retried.returncode == 0, retried.stderr
        with Queue(str(tmp_path)) as queue:   # and one that arrives due, spooled without a try
            spool(queue, s, s.smtp_switchable, f"{prefix}3")
        counts = wait_for(s, "carol", prefix, 4)
        until(lambda: queue_json(tmp_path)["entries"] == [], "the queue emptied")
        assert run.poll() is None   # still up
    finally:
        code, out, err = stop(run)
    assert counts == {f"{prefix}{i}": 1 for i in range(4)}
    assert code == 0, err
    assert out == b""   # stdout is for data; the watcher reports on stderr
    assert err.count(b" delivered: 250") == 4 and err.rstrip().endswith(b"mimekit queue-run: stopped")


def test_sigterm_with_deferred_entries_exits_75_and_leaves_them_queued_and_unlocked(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    sent = mimekit("send", f"--queue={tmp_path}", "--server", f"smtp://127.0.0.1:{port}", "--timeout", "5",
                   "--to", "bob@example.test", "-", input=message("deferred"))
    assert sent.returncode == 0, sent.stderr
    run = watcher(tmp_path, "-q")
    time.sleep(2)   # up and waiting: the entry is not due for 5 minutes
    code, out, err = stop(run, signal.SIGINT)
    assert code == 75, err
    [entry] = queue_json(tmp_path)["entries"]
    assert entry["status"] == "queued" and entry["recipients"][0]["attempts"] == 1
    assert_nothing_locked(tmp_path)
    assert mimekit("queue", "run", "--watch", "--json", str(tmp_path)).returncode == 64


@pytest.mark.servers
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_in_the_middle_of_a_batch_finishes_the_message_in_flight_and_sends_nothing_twice(
        mail_servers, tmp_path, signum):
    s, prefix = mail_servers, f"wstop-{uuid.uuid4().hex[:12]}-"
    count = 150
    with Queue(str(tmp_path)) as queue:
        for i in range(count):
            spool(queue, s, s.smtp_plain, f"{prefix}{i}")
    run = watcher(tmp_path)
    until(lambda: len(os.listdir(tmp_path / "queue")) < 2 * count, "the first delivery", within=30)
    code, _, err = stop(run, signum)
    left = len(queue_json(tmp_path)["entries"])
    assert code == (75 if left else 0), err
    assert_nothing_locked(tmp_path)
    print(f"stopped with {left} of {count} entries left")
    final = mimekit("queue", "run", str(tmp_path))
    assert final.returncode == 0, final.stderr
    assert wait_for(s, "carol", prefix, count, settle=2.0) == {f"{prefix}{i}": 1 for i in range(count)}
