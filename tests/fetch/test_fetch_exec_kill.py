"""`fetch --exec CMD` runs CMD at least once for every message saved (docs/watch.md), also
when the run is killed: before CMD starts, while it runs, or right after it returned.

CMD itself kills the fetch (SIGKILL to its parent, the fetch process) at its Nth run, so
each trial dies at an exact point rather than by luck of timing; then a second run, not
killed, must leave every message in the output exactly once and CMD's log naming every
one of them. A local Maildir is the source: what is checked is fetch's order of saving,
running CMD and recording, the same for every source.
"""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mimekit.stores import Maildir, open_mailbox
from mimekit.transport.urls import parse_url

COUNT = 5

# Counts its runs in $RUNS; at run $KILL_AT it SIGKILLs fetch before logging the message
# ($WHEN=before) or after ($WHEN=after). The log holds one reference per line.
HOOK = """
n=$(($(cat "$RUNS" 2>/dev/null || echo 0) + 1)); echo "$n" > "$RUNS"
if [ "$n" = "$KILL_AT" ] && [ "$WHEN" = before ]; then kill -9 "$PPID"; exit 0; fi
printf '%s\\n' "$MIMEKIT_MESSAGE" >> "$LOG"
if [ "$n" = "$KILL_AT" ] && [ "$WHEN" = after ]; then kill -9 "$PPID"; fi
"""


def messages() -> list[bytes]:
    return [b"From: a@example.test\nSubject: hook %d\nMessage-ID: <%d@hook.test>\n\nbody %d\n" % (n, n, n)
            for n in range(COUNT)]


def saved(target: str) -> list[tuple[bytes, str]]:
    """Each message of the output, with the reference CMD is given for it."""
    if target.startswith(("maildir:", "mbox:")):
        store = open_mailbox(parse_url(target, {"maildir", "mbox"}), create=False)
        where = store.message_path if isinstance(store, Maildir) else lambda key: f"{store.path}:{key}"
        return [(store.open(key).read(), where(key)) for key in store.keys()]
    return [(path.read_bytes(), str(path)) for path in Path(target).iterdir()]


def fetch_with_hook(tmp_path: Path, target: str, kill_at: int, when: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), RUNS=str(tmp_path / "runs"),
               LOG=str(tmp_path / "log"), KILL_AT=str(kill_at), WHEN=when)
    return subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", f"maildir:{tmp_path / 'source'}", "--new",
                           "-o", target, "-q", "--exec", HOOK], capture_output=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


def run_trial(tmp_path: Path, output: str, kill_at: int, when: str) -> None:
    source = Maildir(str(tmp_path / "source"))
    for data in messages():
        source.add([data])
    target = output.format(dir=tmp_path)
    killed = fetch_with_hook(tmp_path, target, kill_at, when)
    assert killed.returncode == -9, killed.stderr.decode()
    finished = fetch_with_hook(tmp_path, target, 0, when)
    assert finished.returncode == 0, finished.stderr.decode()
    output_now = saved(target)
    assert Counter(data for data, _ in output_now) == Counter(messages()), "every message in the output exactly once"
    logged = set((tmp_path / "log").read_text().splitlines())
    missed = {reference for _, reference in output_now} - logged
    assert not missed, f"CMD never ran for {sorted(missed)}"


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("kill_at", range(1, COUNT + 1))
def test_a_run_killed_around_cmd_runs_it_for_every_message_next_time(tmp_path, kill_at, when):
    run_trial(tmp_path, "maildir:{dir}/out", kill_at, when)


@pytest.mark.parametrize("output", ["mbox:{dir}/out.mbox", "{dir}/eml"])
def test_every_output_kind_runs_cmd_for_the_message_it_adopts(tmp_path, output):
    run_trial(tmp_path, output, 3, "before")


def test_cmd_is_run_once_a_message_when_nothing_is_killed(tmp_path):
    source = Maildir(str(tmp_path / "source"))
    for data in messages():
        source.add([data])
    finished = fetch_with_hook(tmp_path, f"maildir:{tmp_path}/out", 0, "before")
    assert finished.returncode == 0, finished.stderr.decode()
    logged = (tmp_path / "log").read_text().splitlines()
    assert sorted(logged) == sorted(reference for _, reference in saved(f"maildir:{tmp_path}/out"))


# At its $STOP_AT-th run, CMD does what Ctrl-C at a terminal does: SIGINT to the foreground
# process group, the fetch's (started as a group of its own, so $PPID is its number; dash's
# kill takes no negative number, hence Python's killpg).
INTERRUPTING_HOOK = """
n=$(($(cat "$RUNS" 2>/dev/null || echo 0) + 1)); echo "$n" > "$RUNS"
if [ "$n" = "$STOP_AT" ]; then "$PYTHON" -c 'import os, sys; os.killpg(int(sys.argv[1]), 2)' "$PPID"; sleep 0.2; fi
printf '%s\\n' "$MIMEKIT_MESSAGE" >> "$LOG"
"""


def test_ctrl_c_stops_a_watch_after_the_cmd_it_interrupted(tmp_path):
    """Ctrl-C while CMD runs for the 3rd message: CMD is in a session of its own, so it
    finishes; the watch then stops (exit 0) with that message recorded and deleted at the
    source, and the next run does the other two. CMD runs exactly once per message."""
    source = Maildir(str(tmp_path / "source"))
    for data in messages():
        source.add([data])
    target = f"maildir:{tmp_path}/out"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), RUNS=str(tmp_path / "runs"),
               LOG=str(tmp_path / "log"), STOP_AT="3", PYTHON=sys.executable)
    command = [sys.executable, "-m", "mimekit_cli", "fetch", f"maildir:{tmp_path / 'source'}", "--new", "--delete",
               "-o", target, "-q", "--exec", INTERRUPTING_HOOK]
    watched = subprocess.run(command + ["--watch", "--interval", "0.1"], capture_output=True, timeout=120,
                             env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    assert watched.returncode == 0, watched.stderr.decode()
    assert watched.stderr == b""
    assert len((tmp_path / "log").read_text().splitlines()) == 3
    assert Counter(source.open(key).read() for key in source.keys()) == Counter(messages()[3:])

    finished = subprocess.run(command, capture_output=True, timeout=120, env={**env, "STOP_AT": "0"},
                              stdin=subprocess.DEVNULL)
    assert finished.returncode == 0, finished.stderr.decode()
    output_now = saved(target)
    assert Counter(data for data, _ in output_now) == Counter(messages())
    assert sorted(reference for _, reference in output_now) == sorted((tmp_path / "log").read_text().splitlines())
    assert source.keys() == []


@pytest.mark.servers
def test_a_pending_message_deleted_upstream_does_not_stop_later_pop3_runs(mail_servers, tmp_path):
    """A POP3 run killed before CMD's 2nd run leaves that message pending; another client
    then deletes it from the server. The next runs must not fail on its UIDL, which the
    server no longer lists (they raised KeyError in every run until the state was edited)."""
    servers = mail_servers
    servers.clear_mailbox("alice")
    for data in messages():
        servers.deliver_directly("alice", data)
    target = f"maildir:{tmp_path}/out"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), RUNS=str(tmp_path / "runs"),
               LOG=str(tmp_path / "log"), KILL_AT="2", WHEN="before", MIMEKIT_PASSWORD=servers.users["alice"])
    command = [sys.executable, "-m", "mimekit_cli", "fetch", f"pop3s://alice@{servers.host}:{servers.pop3s}",
               "--cafile", str(servers.ca_file), "--new", "-o", target, "-q", "--exec", HOOK]
    killed = subprocess.run(command, capture_output=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert killed.returncode == -9, killed.stderr.decode()
    for data, _ in saved(target):      # the recorded message and the pending one
        message_id = data.split(b"Message-ID: ", 1)[1].split(b"\n", 1)[0].decode()
        subprocess.run(["doveadm", "-c", str(servers.dovecot_conf), "expunge", "-u", "alice", "mailbox", "INBOX",
                        "header", "Message-ID", message_id], check=True, capture_output=True)
    for _ in range(2):
        again = subprocess.run(command, capture_output=True, timeout=120, env={**env, "KILL_AT": "0"},
                               stdin=subprocess.DEVNULL)
        assert again.returncode == 0, again.stderr.decode()
    assert Counter(data for data, _ in saved(target)) == Counter(messages()), "every message once"
