"""mbox and Maildir outputs under SIGKILL and a full disk (issue 8, items 1-3, 19).

What must hold: an append cut short (kill, ENOSPC) is cut back off the mbox before
anything else reads or writes it; a dotlock left by a dead process of this host is broken
at once, not after five minutes; a fetch never takes a cut message for the message and
never deletes upstream what is not complete on disk. The full-disk cases use a real tmpfs
(root only; elsewhere they skip), so ENOSPC comes from the kernel, not from a mock.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from helpers import mounted_tmpfs

from mimekit.errors import IOFailure
from mimekit.stores import Maildir, Mbox
from mimekit.stores.common import host_name

USER = "alice"


def big_messages(count: int, lines: int = 3000) -> list[bytes]:
    """Messages of about 150 KB, so that a kill often lands inside an append."""
    return [(f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: durable {n}\r\n"
             f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\n").encode()
            + b"".join(b"From the body, line %05d of message %d, must survive quoting\r\n" % (i, n)
                       for i in range(lines))
            for n in range(count)]


def as_stored(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def mbox_messages(path: Path) -> Counter:
    if not path.exists():
        return Counter()
    box = Mbox(str(path), create=False)
    return Counter(box.open(key).read() for key in box.keys())


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: a real full disk."""
    with mounted_tmpfs(tmp_path / "small-disk", "2m") as mount_point:
        yield mount_point


def fill(directory: Path, leave: int) -> None:
    """Fill the file system of `directory` until about `leave` bytes are free."""
    stat = os.statvfs(directory)
    free = stat.f_bavail * stat.f_frsize
    with open(directory / "ballast", "wb") as ballast:
        ballast.write(b"\0" * max(free - leave, 0))


# ---- the store itself -------------------------------------------------------------------

DIE_MID_APPEND = """
import os, sys
from mimekit.stores import Mbox
def chunks():
    yield b"Subject: cut\\n\\n" + b"x" * 100000
    os._exit(137)            # as SIGKILL would: no cleanup, no unlock
Mbox(sys.argv[1]).add(chunks())
"""


def test_append_cut_by_a_kill_is_cut_back_and_the_dead_lock_broken_at_once(tmp_path, monkeypatch):
    path = tmp_path / "box.mbox"
    first = b"Subject: first\n\nbody\n"
    Mbox(str(path)).add([first])
    size_before = path.stat().st_size
    result = subprocess.run([sys.executable, "-c", DIE_MID_APPEND, str(path)], capture_output=True, timeout=60)
    assert result.returncode == 137
    assert path.stat().st_size > size_before and Path(str(path) + ".lock").exists(), "the kill left a cut append"

    monkeypatch.setattr(Mbox, "DOTLOCK_TIMEOUT", 0.5)   # waiting for the lock to age would fail
    Mbox(str(path)).add([b"Subject: second\n\nbody\n"])
    assert mbox_messages(path) == Counter([first, b"Subject: second\n\nbody\n"])
    assert not Path(str(path) + ".lock").exists()


def test_recover_alone_cuts_back_before_anything_reads(tmp_path):
    path = tmp_path / "box.mbox"
    Mbox(str(path)).add([b"Subject: kept\n\nbody\n"])
    size_before = path.stat().st_size
    subprocess.run([sys.executable, "-c", DIE_MID_APPEND, str(path)], capture_output=True, timeout=60)
    Mbox(str(path)).recover()
    assert path.stat().st_size == size_before


def test_a_live_processes_dotlock_is_respected(tmp_path, monkeypatch):
    """Only a lock whose process is gone is broken early: ours, held by a live pid, is not."""
    path = tmp_path / "box.mbox"
    Mbox(str(path))
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        hostname = host_name()
        Path(str(path) + ".lock").write_text(f"{sleeper.pid}\n{hostname}\n0\n")
        monkeypatch.setattr(Mbox, "DOTLOCK_TIMEOUT", 0.3)
        with pytest.raises(Exception, match="locked by another program"):
            Mbox(str(path)).add([b"Subject: x\n\ny\n"])
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_naming_an_impossible_pid_is_abandoned_not_a_crash(tmp_path):
    path = tmp_path / "box.mbox"
    Mbox(str(path))
    hostname = __import__("mimekit.stores.common", fromlist=["host_name"]).host_name()
    Path(str(path) + ".lock").write_text(f"9999999999\n{hostname}\n0\n")
    Mbox(str(path)).add([b"Subject: x\n\ny\n"])
    assert len(mbox_messages(path)) == 1


FAIL_TO_CUT_BACK = """
import os, sys
from mimekit.stores.mbox import Mbox
from mimekit.errors import IOFailure
def chunks():
    yield b"Subject: cut\\n\\n" + b"x" * 100000
    raise RuntimeError("the source broke")
def no_truncate(fd, length):
    raise OSError(5, "Input/output error")
os.ftruncate = no_truncate
try:
    Mbox(sys.argv[1]).add(chunks())
except IOFailure as exc:
    print(exc)
    sys.exit(74)
"""


def test_an_append_that_cannot_be_cut_back_keeps_its_dotlock_for_the_next_writer(tmp_path):
    path = tmp_path / "box.mbox"
    first = b"Subject: first\n\nbody\n"
    Mbox(str(path)).add([first])
    result = subprocess.run([sys.executable, "-c", FAIL_TO_CUT_BACK, str(path)], capture_output=True, timeout=60)
    assert result.returncode == 74 and b"cannot cut back" in result.stdout
    assert Path(str(path) + ".lock").exists(), "the lock says where to cut"
    Mbox(str(path)).add([b"Subject: second\n\nbody\n"])     # its owner is gone: cut back, then append
    assert mbox_messages(path) == Counter([first, b"Subject: second\n\nbody\n"])


def test_fetching_from_an_mbox_a_killed_writer_left_skips_the_cut_message(tmp_path):
    path = tmp_path / "source.mbox"
    Mbox(str(path)).add([b"Subject: whole\n\nbody\n"])
    subprocess.run([sys.executable, "-c", DIE_MID_APPEND, str(path)], capture_output=True, timeout=60)
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    result = run_fetch(f"mbox:{path}", "-o", f"maildir:{tmp_path / 'out'}", env=env)
    assert result.returncode == 0, result.stderr.decode()
    out = Maildir(str(tmp_path / "out"), create=False)
    assert [out.open(key).read() for key in out.keys()] == [b"Subject: whole\n\nbody\n"]


def test_full_disk_append_is_cut_back_and_the_next_one_fits(small_disk):
    path = small_disk / "box.mbox"
    first = b"Subject: first\n\n" + b"a" * 1000 + b"\n"
    box = Mbox(str(path))
    box.add([first])
    size_before = path.stat().st_size
    fill(small_disk, leave=64 * 1024)
    with pytest.raises(IOFailure):
        box.add([b"Subject: too big\n\n", b"b" * 200_000 + b"\n"])
    assert path.stat().st_size == size_before, "the failed append was cut back"
    assert not Path(str(path) + ".lock").exists()
    box.add([b"Subject: small\n\nfits\n"])
    assert mbox_messages(path) == Counter([first, b"Subject: small\n\nfits\n"])


def test_full_disk_maildir_delivery_leaves_nothing(small_disk):
    box = Maildir(str(small_disk / "md"))
    fill(small_disk, leave=64 * 1024)
    with pytest.raises(IOFailure):
        box.add([b"Subject: too big\n\n", b"b" * 200_000 + b"\n"])
    assert [list((small_disk / "md" / sub).iterdir()) for sub in ("tmp", "new", "cur")] == [[], [], []]


def test_maildir_tmp_left_by_a_dead_writer_is_removed_on_the_next_open(tmp_path):
    box = Maildir(str(tmp_path / "md"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    live_name = box.new_name()                                   # this process: alive
    dead_name = live_name.replace(f"P{os.getpid()}Q", f"P{dead.pid}Q")
    foreign = "1700000000.M1P1Q1.otherhost"                     # not ours, recent: kept
    for name in (live_name, dead_name, foreign):
        (tmp_path / "md" / "tmp" / name).write_bytes(b"partial")
    Maildir(str(tmp_path / "md"))
    assert sorted(p.name for p in (tmp_path / "md" / "tmp").iterdir()) == sorted([live_name, foreign])


# ---- fetch into an mbox: kills at random points, a full disk ----------------------------

def fetch_command(servers, scheme: str, output: str) -> list[str]:
    return [sys.executable, "-m", "mimekit_cli", "fetch", f"{scheme}://{USER}@{servers.host}:{getattr(servers, scheme)}",
            "--cafile", str(servers.ca_file), "--new", "--delete", "-o", output, "--json", "-q"]


def on_server(servers) -> Counter:
    return Counter(as_stored(p.read_bytes()) for p in servers.messages(USER))


@pytest.mark.servers
@pytest.mark.parametrize("scheme", ["pop3s", "imaps"])
def test_fetch_into_mbox_killed_at_random_points_loses_nothing(mail_servers, tmp_path, scheme):
    """SIGKILL when the mbox reaches a random size (so mostly inside an append), then a
    second run. Counted over the trials: lost, duplicated and half-written messages."""
    servers, rng = mail_servers, random.Random(f"mbox-kill-{scheme}")
    lost = duplicated = half_written = cut_by_kill = 0
    trials = 6
    for trial in range(trials):
        servers.clear_mailbox(USER)
        sent = big_messages(8)
        for data in sent:
            servers.deliver_directly(USER, data)
        expected = Counter(as_stored(data) for data in sent)
        mbox = tmp_path / f"trial{trial}.mbox"
        env = dict(os.environ, MIMEKIT_PASSWORD=servers.users[USER], XDG_STATE_HOME=str(tmp_path / f"state{trial}"))
        command = fetch_command(servers, scheme, f"mbox:{mbox}")
        kill_at = rng.randrange(1, sum(len(m) for m in expected.elements()))
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while first.poll() is None and time.monotonic() < deadline:
            if mbox.exists() and mbox.stat().st_size >= kill_at:
                break
        first.send_signal(signal.SIGKILL)
        first.communicate()
        after_kill = mbox_messages(mbox)
        cut_by_kill += sum(n for m, n in after_kill.items() if m not in expected)
        lost += sum((expected - on_server(servers) - after_kill).values())

        second = subprocess.run(command, env=env, capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        final = mbox_messages(mbox)
        half_written += sum(n for m, n in final.items() if m not in expected)
        duplicated += sum(n - 1 for m, n in final.items() if n > 1)
        lost += sum((expected - final).values())
        assert on_server(servers) == Counter(), "everything saved was deleted, and only that"
    print(f"{scheme}: {trials} kills, {cut_by_kill} left a cut append; lost {lost}, "
          f"duplicated {duplicated}, half-written {half_written}")
    assert (lost, duplicated, half_written) == (0, 0, 0)


@pytest.mark.servers
def test_fetch_into_mbox_on_a_full_disk_fails_then_a_retry_loses_nothing(mail_servers, small_disk, tmp_path):
    servers = mail_servers
    servers.clear_mailbox(USER)
    sent = big_messages(8)                      # about 1.5 MB: more than the 700 KB left free
    for data in sent:
        servers.deliver_directly(USER, data)
    mbox = small_disk / "inbox.mbox"
    env = dict(os.environ, MIMEKIT_PASSWORD=servers.users[USER], XDG_STATE_HOME=str(tmp_path / "state"))
    fill(small_disk, leave=700 * 1024)
    command = fetch_command(servers, "pop3s", f"mbox:{mbox}")

    full = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert full.returncode == 74, full.stderr.decode()
    saved = mbox_messages(mbox)
    assert set(saved) <= {as_stored(m) for m in sent}, "no cut message in the mbox"
    assert len(servers.messages(USER)) == len(sent), "nothing deleted after the failure"

    (small_disk / "ballast").unlink()          # space is freed; the retry completes
    retry = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert retry.returncode == 0, retry.stderr.decode()
    assert mbox_messages(mbox) == Counter(as_stored(m) for m in sent)
    assert servers.messages(USER) == []


# ---- fetch state: every run records; flags carried from local stores (items 18, 19) -----

def run_fetch(*args, env):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", *args, "--json", "-q"],
                          capture_output=True, timeout=60, env=env)


def test_new_after_a_plain_fetch_into_the_same_output_fetches_nothing_again(tmp_path):
    source = Maildir(str(tmp_path / "source"))
    for n in range(3):
        source.add([b"Subject: %d\n\nbody\n" % n])
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    out = f"maildir:{tmp_path / 'out'}"
    plain = json.loads(run_fetch(f"maildir:{tmp_path / 'source'}", "-o", out, env=env).stdout)
    assert len(plain["fetched"]) == 3
    source.add([b"Subject: new\n\nbody\n"])
    new = json.loads(run_fetch(f"maildir:{tmp_path / 'source'}", "--new", "-o", out, env=env).stdout)
    assert len(new["fetched"]) == 1 and new["skipped"] == 3


@pytest.mark.parametrize("output", ["maildir", "mbox"])
def test_flags_of_a_local_source_survive_a_fetch(tmp_path, output):
    source = Maildir(str(tmp_path / "source"))
    wanted = {b"Subject: seen\n\n.\n": "S", b"Subject: flagged replied\n\n.\n": "FR",
              b"Subject: none\n\n.\n": "", b"Subject: passed trashed\n\n.\n": "PT"}
    for data, flags in wanted.items():
        source.add([data], flags=flags)
    target = tmp_path / "out"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    first = run_fetch(f"maildir:{tmp_path / 'source'}", "-o", f"{output}:{target}", env=env)
    assert first.returncode == 0, first.stderr.decode()
    store = Maildir(str(target), create=False) if output == "maildir" else Mbox(str(target), create=False)
    if output == "maildir":
        assert {store.open(key).read(): store.flags(key) for key in store.keys()} == wanted
    else:
        # mbox has no "passed"; the Status/X-Status lines carry the rest (mutt's reading)
        assert sorted(store.flags(key) for key in store.keys()) == sorted(f.replace("P", "") for f in wanted.values())
    # and back: an mbox or Maildir source gives its flags to the next output
    again = run_fetch(f"{output}:{target}", "-o", f"maildir:{tmp_path / 'again'}", env=env)
    assert again.returncode == 0, again.stderr.decode()
    copied = Maildir(str(tmp_path / "again"), create=False)
    assert sorted(copied.flags(k) for k in copied.keys()) == sorted(
        flags if output == "maildir" else flags.replace("P", "") for flags in wanted.values())


# ---- Mbox.remove: a rewrite through a temporary file ---------------------------------------

REMOVE_EVERY_OTHER = """
import sys
from mimekit.stores.mbox import Mbox
box = Mbox(sys.argv[1], create=False)
box.remove(*box.keys()[::2])
"""


def test_remove_killed_at_random_points_leaves_the_old_mbox_or_the_new_one(tmp_path):
    rng = random.Random("mbox-remove-kill")
    messages = [b"Subject: %d\n\n" % n + b"From me, line of body text\n" * 2000 for n in range(40)]
    outcomes = Counter()
    for trial in range(15):
        path = tmp_path / f"trial{trial}.mbox"
        box = Mbox(str(path))
        for data in messages:
            box.add([data])
        before, after = Counter(messages), Counter(messages[1::2])
        remover = subprocess.Popen([sys.executable, "-c", REMOVE_EVERY_OTHER, str(path)])
        time.sleep(rng.uniform(0.05, 0.6))
        remover.send_signal(signal.SIGKILL)
        remover.wait()
        found = mbox_messages(path)
        assert found in (before, after), "the old mbox or the new one, never a mixture or a cut file"
        outcomes["old" if found == before else "new"] += 1
        Mbox(str(path)).remove(*Mbox(str(path)).keys()[:1])   # the next rewrite cleans up after the kill
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".mimekit-")], "temporary files removed"
    print(f"remove killed 15 times: {outcomes['old']} left the old mbox, {outcomes['new']} the new one")


def test_remove_on_a_full_disk_keeps_the_mbox_whole(small_disk):
    path = small_disk / "box.mbox"
    box = Mbox(str(path))
    messages = [b"Subject: %d\n\n" % n + b"x" * 100_000 + b"\n" for n in range(8)]
    for data in messages:
        box.add([data])
    fill(small_disk, leave=200 * 1024)
    with pytest.raises(IOFailure):
        box.remove(box.keys()[0])
    assert mbox_messages(path) == Counter(messages)
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast", "box.mbox"], "no temporary file, no lock"
