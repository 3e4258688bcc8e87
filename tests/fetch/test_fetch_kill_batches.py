"""`fetch --new --delete` into a Maildir, which fsyncs its directories once per batch, killed
with SIGKILL at random points, many times, then run again.

The process logs every fsync, rename and unlink, every line of the fetch state and every
delete at the source (in that order, unbuffered), and SIGKILLs itself just before the Nth
of these, N chosen at random. What must hold, for every trial:
  - after the kill, every message is in the Maildir at most once, whole, or still at the
    source (nothing lost, no half message), and every message the state records is in
    the Maildir;
  - in every run, a "seen" line is written only after the directory of its message was
    fsync'd since the message was renamed into it (never recorded before it is durable),
    and a message is deleted at the source only once its "seen" line was written and the
    state fsync'd since;
  - the next run leaves every message in the Maildir exactly once and none at the source.
A small batch (SYNC_BATCH) makes the kills land before, between and after batch syncs.
"""

import glob
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mimekit.fetch.state import FetchState
from mimekit.stores import Maildir

SYNC_BATCH = 7
TRIALS = 30

LOGGED_AND_KILLED = """
import json, os, signal, sys
from mimekit.fetch import sinks, sources, state
from mimekit.transport.imap.client import IMAPClient
from mimekit.transport.pop3.client import POP3Client
from mimekit_cli.main import main

sinks.MaildirSink.sync_batch = int(os.environ["SYNC_BATCH"])
KILL_AT = int(os.environ["KILL_AT"])          # 0: never
LOG = os.open(os.environ["EVENT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
count = 0

def event(*fields):
    global count
    count += 1
    if count == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    os.write(LOG, json.dumps(fields).encode() + b"\\n")

def logged(owner, name, describe):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        event(name, *describe(*args))
        return original(*args, **kwargs)
    setattr(owner, name, wrapper)

logged(os, "fsync", lambda fd: [os.readlink(f"/proc/self/fd/{fd}")])
logged(os, "rename", lambda source, target, *_: [os.fspath(target)])
logged(os, "unlink", lambda path, *_: [os.fspath(path)])
logged(state.FetchState, "_write", lambda self, entry, *_: [entry.get("seen"), entry.get("key")])
for source in (sources.LocalSource, IMAPClient, POP3Client):
    logged(source, "delete", lambda self, ids: [list(ids)])
main(sys.argv[1:])
"""


def run_logged(args: list[str], env: dict, log: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOGGED_AND_KILLED, *args], capture_output=True, timeout=120,
                          env={**env, "SYNC_BATCH": str(SYNC_BATCH), "KILL_AT": str(kill_at),
                               "EVENT_LOG": str(log)})


def events(log: Path) -> list[list]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def check_order(log: list[list], out: Path) -> None:
    """The two orders of the module docstring, in one process's log."""
    directories = {str(out / "new"), str(out / "cur")}
    renamed_at: dict[str, int] = {}             # output key -> index of its rename into new/ or cur/
    synced_at: dict[str, list[int]] = {d: [] for d in directories}
    state_synced_at: list[int] = []
    seen_at: dict[str, int] = {}
    for index, (name, *fields) in enumerate(log):
        if name == "rename" and os.path.dirname(fields[0]) in directories:
            renamed_at[os.path.basename(fields[0]).split(":")[0]] = index
        elif name == "fsync" and fields[0] in synced_at:
            synced_at[fields[0]].append(index)
        elif name == "fsync" and "/state/" in fields[0]:
            state_synced_at.append(index)
        elif name == "_write" and fields[0] is not None:
            message_id, key = fields
            seen_at[message_id] = index
            renamed = renamed_at.get(key, -1)   # -1: renamed by a killed run, adopted by this one
            needed = [d for d in directories if renamed < 0 or log[renamed][1].startswith(d + "/")]
            for directory in needed:
                assert any(renamed < i < index for i in synced_at[directory]), \
                    f"{message_id} recorded before {directory} was fsync'd since its rename"
        elif name == "delete":
            for message_id in fields[0]:
                since = seen_at.get(message_id, -1)   # -1: recorded by an earlier run
                assert any(since < i < index for i in state_synced_at), \
                    f"{message_id} deleted before its record was fsync'd"


def on_disk(out: Path) -> Counter:
    return Counter(p.read_bytes() for sub in ("new", "cur") if (out / sub).is_dir() for p in (out / sub).iterdir())


def recorded_keys(state_home: Path) -> set[str]:
    keys: set[str] = set()
    for path in glob.glob(str(state_home / "mimekit" / "fetch" / "*.json")):   # none before the first snapshot
        with FetchState(path) as state:
            keys |= state.keys()
    return keys


def messages(count: int) -> list[bytes]:
    return [b"From: bob@example.test\nSubject: batch %d\nMessage-ID: <%d.batch@example.test>\n\n" % (n, n)
            + b"body %d\n" % n * 50 for n in range(count)]


def test_killed_at_random_points_loses_nothing_and_never_duplicates(tmp_path):
    sent = messages(30)
    expected = Counter(sent)
    rng = random.Random(16)
    total_events = None
    for trial in range(TRIALS + 1):
        work = tmp_path / str(trial)
        source, out = Maildir(str(work / "source")), work / "out"
        for n, data in enumerate(sent):
            source.add([data], flags="S" if n % 3 == 0 else "")    # some into cur/, the rest into new/
        args = ["fetch", f"maildir:{work / 'source'}", "--new", "--delete", "-o", f"maildir:{out}", "--json"]
        env = dict(os.environ, XDG_STATE_HOME=str(work / "state"))
        kill_at = 0 if total_events is None else rng.randint(1, total_events)
        first = run_logged(args, env, work / "first.log", kill_at)
        if total_events is None:                # trial 0 counts the events of a whole run
            assert first.returncode == 0, first.stderr.decode()
            total_events = len(events(work / "first.log"))
            continue
        assert first.returncode == -9, first.stderr.decode()
        check_order(events(work / "first.log"), out)
        at_source = Counter(source.open(key).read() for key in source.keys())
        assert set(on_disk(out)) <= set(expected) and max(on_disk(out).values(), default=1) == 1
        assert on_disk(out) + at_source >= expected, f"trial {trial}, killed at event {kill_at}: a message lost"
        stored = {path.name.split(":")[0] for sub in ("new", "cur") if (out / sub).is_dir()
                  for path in (out / sub).iterdir()}
        assert recorded_keys(work / "state") <= stored, "recorded but not in the Maildir"

        second = run_logged(args, env, work / "second.log", 0)
        assert second.returncode == 0, second.stderr.decode()
        check_order(events(work / "second.log"), out)
        assert on_disk(out) == expected, f"trial {trial}, killed at event {kill_at}: not every message once"
        assert source.keys() == []


@pytest.mark.servers
@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_killed_at_random_points_against_a_server(mail_servers, tmp_path, scheme):
    """The same with Dovecot as the source: a message deleted on the server is only one
    whose record was fsync'd, and one still there is fetched by the next run."""
    servers, user = mail_servers, "alice"
    sent = messages(20)
    expected = Counter(sent)
    rng = random.Random(scheme)
    total_events = None
    for trial in range(TRIALS // 5 + 1):
        servers.clear_mailbox(user)
        for data in sent:
            servers.deliver_directly(user, data)
        work, out = tmp_path / str(trial), tmp_path / str(trial) / "out"
        work.mkdir()
        args = ["fetch", f"{scheme}://{user}@{servers.host}:{getattr(servers, scheme)}", "--cafile",
                str(servers.ca_file), "--new", "--delete", "-o", f"maildir:{out}", "--json"]
        env = dict(os.environ, MIMEKIT_PASSWORD=servers.users[user], XDG_STATE_HOME=str(work / "state"))
        kill_at = 0 if total_events is None else rng.randint(1, total_events)
        first = run_logged(args, env, work / "first.log", kill_at)
        if total_events is None:
            assert first.returncode == 0, first.stderr.decode()
            total_events = len(events(work / "first.log"))
            continue
        assert first.returncode == -9, first.stderr.decode()
        check_order(events(work / "first.log"), out)
        on_server = Counter(p.read_bytes() for p in servers.messages(user))
        assert max(on_disk(out).values(), default=1) == 1
        assert on_disk(out) + on_server >= expected, f"trial {trial}, killed at event {kill_at}: a message lost"

        second = run_logged(args, env, work / "second.log", 0)
        assert second.returncode == 0, second.stderr.decode()
        check_order(events(work / "second.log"), out)
        assert on_disk(out) == expected, f"trial {trial}, killed at event {kill_at}: not every message once"
        assert servers.messages(user) == []
