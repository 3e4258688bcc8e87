"""`mimekit queue` and `send --queue` as a script sees them: exit codes, stderr lines, JSON
documents, and the entry commands (retry, hold, release, drop). A closed loopback port is
the server that is away; deliveries to the real Postfix are in tests/queue/."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MESSAGE = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: q\r\n\r\nHello.\r\n"


def mimekit(*args, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True,
                          timeout=120, cwd=REPO)


def closed_server() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"smtp://127.0.0.1:{s.getsockname()[1]}"


def queued(tmp_path) -> dict:
    sent = mimekit("send", f"--queue={tmp_path}", "--server", closed_server(), "-t", "-", input=MESSAGE)
    assert sent.returncode == 0, sent.stderr
    listing = json.loads(mimekit("queue", "list", "--json", str(tmp_path)).stdout)
    return listing["entries"][0]


def test_send_queue_exits_0_when_queued_and_says_the_try_was_deferred(tmp_path):
    sent = mimekit("send", f"--queue={tmp_path}", "--server", closed_server(), "-t", "-", input=MESSAGE)
    assert sent.returncode == 0 and sent.stdout == b""
    lines = sent.stderr.decode().splitlines()
    assert lines[0].startswith("mimekit send: -: queued as ")
    assert any("bob@example.test deferred until" in line and "cannot connect" in line for line in lines)
    assert lines[-1] == "mimekit send: deferred mail stays queued: `mimekit queue run` delivers it later"


def test_queue_list_json_documents_every_field(tmp_path):
    entry = queued(tmp_path)
    assert set(entry) == {"id", "status", "created", "age_seconds", "size", "server", "user", "sender", "source",
                          "next_attempt", "recipients"}
    assert (entry["status"], entry["size"], entry["sender"]) == ("queued", len(MESSAGE), "alice@example.test")
    [recipient] = entry["recipients"]
    assert set(recipient) == {"address", "state", "attempts", "next_attempt", "last_reply", "server_queue_id",
                              "transfer"}
    help_text = mimekit("queue", "list", "--help").stdout.decode()
    assert "mimekit.queue-list/1" in help_text
    for name in list(entry) + list(recipient):
        assert name.split("_")[0] in help_text


def test_queue_run_exits_75_while_entries_wait(tmp_path):
    queued(tmp_path)
    run = mimekit("queue", "run", "--json", str(tmp_path))
    assert run.returncode == 75
    report = json.loads(run.stdout)
    assert (report["schema"], report["remaining"], report["entries"]) == ("mimekit.queue-run/1", 1, [])


def test_hold_release_retry_drop(tmp_path):
    entry_id = queued(tmp_path)["id"]
    assert mimekit("queue", "hold", "-d", str(tmp_path), entry_id).returncode == 0
    assert json.loads(mimekit("queue", "list", "--json", str(tmp_path)).stdout)["entries"][0]["status"] == "held"
    assert mimekit("queue", "run", str(tmp_path)).returncode == 0   # nothing to deliver but a held entry
    assert mimekit("queue", "release", "-d", str(tmp_path), entry_id).returncode == 0
    assert mimekit("queue", "retry", "-d", str(tmp_path), entry_id).returncode == 0
    run = json.loads(mimekit("queue", "run", "--json", str(tmp_path)).stdout)
    assert run["entries"][0]["recipients"][0]["attempts"] == 2   # retried at once
    dropped = mimekit("queue", "drop", "-d", str(tmp_path), entry_id)
    assert (dropped.returncode, dropped.stderr) == (0, f"mimekit queue-drop: {entry_id}: dropped\n".encode())
    assert os.listdir(tmp_path / "queue") == []


def test_unknown_ids_and_bad_arguments_are_one_line_and_the_right_code(tmp_path):
    missing = mimekit("queue", "drop", "-d", str(tmp_path), "20260101T000000-0000000000")
    assert missing.returncode == 66 and missing.stderr.count(b"\n") == 1
    local = mimekit("send", f"--queue={tmp_path}", "--server", f"maildir:{tmp_path}/box", "-t", "-", input=MESSAGE)
    assert local.returncode == 64 and b"smtp" in local.stderr
    age = mimekit("queue", "run", "--max-age", "soon", str(tmp_path))
    assert age.returncode == 64
    nobody = mimekit("send", f"--queue={tmp_path}", "--server", closed_server(), "-", input=MESSAGE)
    assert nobody.returncode == 64 and os.listdir(tmp_path / "queue") == []


def test_watch_waits_rather_than_spins_on_a_due_entry_another_process_holds(tmp_path):
    """An entry still due after a pass is one another process holds (send --queue trying it,
    a cron run): the watcher waits its poll interval before looking again. It asked again at
    once, burning a core and printing "being delivered by another run" thousands of times."""
    import signal
    import time
    from mimekit.queue import Queue
    entry = queued(tmp_path)
    retried = mimekit("queue", "retry", "-d", str(tmp_path), entry["id"])   # due now
    assert retried.returncode == 0, retried.stderr
    with Queue(str(tmp_path)) as queue:
        holder = queue.lock(entry["id"])
        watcher = subprocess.Popen([sys.executable, "-m", "mimekit_cli", "queue", "run", "--watch", str(tmp_path)],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(3)
        watcher.send_signal(signal.SIGTERM)
        _, err = watcher.communicate(timeout=30)
        holder.unlock()
    assert err.count(b"being delivered by another run") == 1, err[-300:]


def test_list_leaves_out_entries_a_run_finishes_while_it_lists(tmp_path, monkeypatch):
    """A run removes a delivered entry's state first, then message; a failing one moves to
    failed/. `queue list` meeting either half-way failed whole (66, or 74 for the message it
    could not stat) where it should list what is there."""
    from click.testing import CliRunner
    from mimekit.queue import Queue
    from mimekit_cli.main import main
    for _ in range(3):
        queued(tmp_path)
    kept, finished, vanished = (entry["id"] for entry in
                                json.loads(mimekit("queue", "list", "--json", str(tmp_path)).stdout)["entries"])
    real_read, real_ids = Queue.read, Queue.ids

    def ids(queue, failed=False):   # `vanished` was listed, then removed before its state is read
        return real_ids(queue, failed) + ([vanished] if not failed else [])

    def read(queue, entry_id, failed=False):   # `finished` is removed right after its state is read
        entry = real_read(queue, entry_id, failed)
        if entry_id in (finished, vanished) and not failed:
            for suffix in (".json", ".eml"):
                (tmp_path / "queue" / f"{entry_id}{suffix}").unlink(missing_ok=True)
        return entry

    monkeypatch.setattr(Queue, "ids", ids)
    monkeypatch.setattr(Queue, "read", read)
    (tmp_path / "queue" / f"{vanished}.json").unlink()
    listed = CliRunner().invoke(main, ["queue", "list", "--json", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert [entry["id"] for entry in json.loads(listed.stdout)["entries"]] == [kept]
