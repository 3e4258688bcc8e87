"""The queue against the real Postfix of tests/servers.py (issue 12, "Must show").

A server that is down (the smtp_switchable listener closed), a recipient greylisted with a
450 from check_recipient_access and later let through, a 550 recipient beside accepted
ones, kill -9 at random points of `queue run`, and two runs at once. What arrives is
counted in the Maildir Postfix delivers to, by a token per message.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from mimekit.queue import DONE, FAILED, PENDING, Queue, deliver_queue
from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.urls import parse_url

REPO = Path(__file__).resolve().parents[2]
KILL_TRIALS = 12


def mimekit(*args, input=None, env=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True,
                          timeout=300, cwd=REPO, env={**os.environ, **(env or {})})


def message(token: str, to: str = "carol@example.test") -> bytes:
    return (f"From: alice@example.test\r\nTo: {to}\r\nSubject: {token}\r\n"
            f"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\nMessage-ID: <{token}@example.test>\r\n\r\n"
            f"Hello {token}.\r\n").encode()


def delivered(servers, user: str, prefix: str) -> Counter:
    """How many copies of each message whose Subject starts with `prefix` are in the mailbox."""
    pattern = re.compile(rb"^Subject: (" + re.escape(prefix.encode()) + rb"\S*)", re.M)
    found = Counter()
    for path in servers.messages(user):
        try:
            match = pattern.search(path.read_bytes())
        except FileNotFoundError:   # Dovecot moved it from new/ to cur/ meanwhile
            continue
        if match:
            found[match[1].decode()] += 1
    return found


def wait_for(servers, user: str, prefix: str, count: int, settle: float = 1.0) -> Counter:
    """Poll until `count` distinct messages arrived, then a little longer for late duplicates."""
    deadline = time.monotonic() + 60
    while len(delivered(servers, user, prefix)) < count:
        assert time.monotonic() < deadline, f"{len(delivered(servers, user, prefix))} of {count} arrived"
        time.sleep(0.1)
    time.sleep(settle)
    return delivered(servers, user, prefix)


def spool(queue: Queue, servers, port: int, token: str, to=("carol@example.test",), now=None):
    path = Path(queue.path) / f"{token}.eml"
    path.write_bytes(message(token, to[0]))
    entry = queue.spool(prepare_message(str(path), to=to), parse_url(f"smtp://127.0.0.1:{port}", {"smtp"}),
                        cafile=str(servers.ca_file), timeout=30, now=now)
    path.unlink()
    return entry


def queue_json(directory) -> dict:
    result = mimekit("queue", "list", "--json", str(directory))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.servers
def test_server_down_send_queue_exits_0_and_a_later_run_delivers(mail_servers, tmp_path):
    s, token = mail_servers, f"down-{uuid.uuid4().hex}"
    server = f"smtp://127.0.0.1:{s.smtp_switchable}"
    s.stop_switchable_listener()
    try:
        sent = mimekit("send", f"--queue={tmp_path}", "--server", server, "--cafile", str(s.ca_file),
                       "--to", "carol@example.test", "-", input=message(token))
        assert sent.returncode == 0, sent.stderr
        assert b"deferred" in sent.stderr and b"queue run" in sent.stderr
        [entry] = queue_json(tmp_path)["entries"]
        [recipient] = entry["recipients"]
        assert (entry["status"], recipient["state"], recipient["attempts"]) == ("queued", "pending", 1)
        assert "cannot connect" in recipient["last_reply"]["text"]
        assert mimekit("queue", "run", str(tmp_path)).returncode == 75   # not due yet, still waiting
    finally:
        s.start_switchable_listener()
    assert mimekit("queue", "retry", "-d", str(tmp_path), entry["id"]).returncode == 0
    run = mimekit("queue", "run", "--json", str(tmp_path))
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["schema"], report["delivered"], report["remaining"]) == ("mimekit.queue-run/1", 1, 0)
    assert wait_for(s, "carol", token, 1) == {token: 1}
    assert queue_json(tmp_path)["entries"] == []


@pytest.mark.servers
def test_greylisted_recipient_is_retried_with_backoff_and_delivered_once_let_through(mail_servers, tmp_path):
    s, token = mail_servers, f"grey-{uuid.uuid4().hex}"
    t0 = 1_800_000_000.0
    s.set_switchable_access({"carol@example.test": "450 4.2.0 greylisted, try later"})
    try:
        with Queue(str(tmp_path)) as queue:
            entry = spool(queue, s, s.smtp_switchable, token, to=("carol@example.test", "bob@example.test"), now=t0)
            first = deliver_queue(queue, now=lambda: t0, rng=lambda: 0.5)
            assert first.recipients(DONE) == 1 and first.recipients(PENDING) == 1
            carol = queue.read(entry.id).recipients[0]
            assert (carol.state, carol.attempts, carol.last_reply["code"]) == (PENDING, 1, 450)
            assert carol.next_attempt == t0 + 300   # 5 minutes, no jitter at rng 0.5
            assert deliver_queue(queue, now=lambda: t0 + 299).outcomes == []   # not due: nothing tried
            second = deliver_queue(queue, now=lambda: t0 + 300, rng=lambda: 0.5)
            assert second.recipients(PENDING) == 1 and second.remaining == 1
            assert queue.read(entry.id).recipients[0].next_attempt == t0 + 300 + 600   # doubled
            s.set_switchable_access({})
            third = deliver_queue(queue, now=lambda: t0 + 900)
            assert third.recipients(DONE) == 1 and third.remaining == 0
            assert queue.ids() == [] and queue.ids(failed=True) == []
    finally:
        s.set_switchable_access({})
    assert wait_for(s, "carol", token, 1) == {token: 1}
    assert wait_for(s, "bob", token, 1) == {token: 1}


@pytest.mark.servers
def test_a_refused_recipient_fails_alone_and_the_others_are_delivered(mail_servers, tmp_path):
    s, token = mail_servers, f"refused-{uuid.uuid4().hex}"
    sent = mimekit("send", f"--queue={tmp_path}", "--server", f"smtp://127.0.0.1:{s.smtp_plain}",
                   "--cafile", str(s.ca_file), "--to", "carol@example.test", "--to", "nobody@example.test",
                   "--to", "bob@example.test", "-", input=message(token))
    assert sent.returncode == 69, sent.stderr
    assert b"nobody@example.test failed: 550" in sent.stderr
    [entry] = queue_json(tmp_path)["entries"]
    states = {r["address"]: (r["state"], r["last_reply"]["code"]) for r in entry["recipients"]}
    assert entry["status"] == "failed"
    assert states == {"carol@example.test": ("done", 250), "bob@example.test": ("done", 250),
                      "nobody@example.test": ("failed", 550)}
    assert sorted(os.listdir(tmp_path / "failed")) == [f"{entry['id']}.eml", f"{entry['id']}.json"]
    assert wait_for(s, "carol", token, 1) == {token: 1} and wait_for(s, "bob", token, 1) == {token: 1}


@pytest.mark.servers
def test_kill_9_at_random_points_of_queue_run_loses_nothing_and_duplicates_at_most_one_per_kill(
        mail_servers, tmp_path):
    s, prefix = mail_servers, f"kill-{uuid.uuid4().hex[:12]}-"
    rng = random.Random(os.environ.get("MIMEKIT_TEST_SEED", "queue-kill"))
    spooled, kills, batch = 0, 0, 0
    with Queue(str(tmp_path)) as queue:
        while kills < KILL_TRIALS:
            if not queue.ids():
                for _ in range(40):
                    spool(queue, s, s.smtp_plain, f"{prefix}{spooled}")
                    spooled += 1
                batch += 1
            run = subprocess.Popen([sys.executable, "-m", "mimekit_cli", "queue", "run", "-q", str(tmp_path)],
                                   cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.1, 1.2))
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                kills += 1
            run.wait()
    final = mimekit("queue", "run", str(tmp_path))
    assert final.returncode == 0, final.stderr
    counts = wait_for(s, "carol", prefix, spooled, settle=2.0)
    duplicates = sum(count - 1 for count in counts.values())
    print(f"{spooled} messages, {kills} kills, {duplicates} duplicate(s)")
    assert set(counts) == {f"{prefix}{i}" for i in range(spooled)}   # nothing lost
    assert duplicates <= kills
    assert os.listdir(tmp_path / "queue") == [] and os.listdir(tmp_path / "failed") == []


@pytest.mark.servers
def test_two_concurrent_runs_never_send_an_entry_twice(mail_servers, tmp_path):
    s, prefix = mail_servers, f"twice-{uuid.uuid4().hex[:12]}-"
    count = 60
    with Queue(str(tmp_path)) as queue:
        for i in range(count):
            spool(queue, s, s.smtp_plain, f"{prefix}{i}")
    runs = [subprocess.Popen([sys.executable, "-m", "mimekit_cli", "queue", "run", "--json", str(tmp_path)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    delivered_by = [json.loads(out)["delivered"] for out, _ in outputs]
    assert sum(delivered_by) == count
    counts = wait_for(s, "carol", prefix, count, settle=2.0)
    assert counts == {f"{prefix}{i}": 1 for i in range(count)}
