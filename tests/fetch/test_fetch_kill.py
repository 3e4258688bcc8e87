"""Kill-and-resume: `fetch --new --delete` killed with SIGKILL mid-run, then run again.

What must hold (issue 5): after the kill, every message is on the server or on disk
(nothing deleted that was not saved); after the second run, every message is on disk
exactly once and none is left on the server. The kill lands right after a message
appears in the Maildir, which is the moment between "saved" and "recorded" that the
pending/orphan logic of fetch_state exists for.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from mimekit.stores import Maildir, open_mailbox
from mimekit.transport.urls import parse_url

USER = "alice"
COUNT = 50


def messages() -> list[bytes]:
    filler = b"".join(b"line %05d of a body long enough to take a moment to move\r\n" % n for n in range(400))
    return [(f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: kill test {n}\r\n"
             f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\n").encode() + filler for n in range(COUNT)]


def on_disk(out: Path) -> Counter:
    return Counter(p.read_bytes() for sub in ("new", "cur") if (out / sub).is_dir() for p in (out / sub).iterdir())


def on_server(servers) -> Counter:
    return Counter(p.read_bytes().replace(b"\r\n", b"\n") for p in servers.messages(USER))


@pytest.mark.servers
@pytest.mark.parametrize("scheme, kill_after", [("pop3s", 1), ("pop3s", 13), ("pop3s", 37), ("pop3s", COUNT),
                                                ("imaps", 21)])
def test_killed_fetch_resumes_with_every_message_once(mail_servers, tmp_path, scheme, kill_after):
    servers = mail_servers
    servers.clear_mailbox(USER)
    sent = messages()
    for data in sent:
        servers.deliver_directly(USER, data)
    expected = Counter(data.replace(b"\r\n", b"\n") for data in sent)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mimekit_cli", "fetch",
               f"{scheme}://{USER}@{servers.host}:{getattr(servers, scheme)}",
               "--cafile", str(servers.ca_file), "--new", "--delete", "-o", f"maildir:{out}", "--json"]
    env = dict(os.environ, MIMEKIT_PASSWORD=servers.users[USER], XDG_STATE_HOME=str(tmp_path / "state"))

    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while sum(on_disk(out).values()) < kill_after and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert set(on_disk(out)) <= set(expected), "no half message under a final name"
    assert max(on_disk(out).values(), default=1) == 1
    assert set(on_server(servers)) | set(on_disk(out)) == set(expected), "the kill lost nothing"
    left = sum(on_server(servers).values())

    second = subprocess.run(command, env=env, capture_output=True, timeout=120)
    assert second.returncode == 0, second.stderr.decode()
    report = json.loads(second.stdout)
    assert on_disk(out) == expected, "every message on disk exactly once"
    assert on_server(servers) == Counter(), "everything saved was deleted"
    assert report["deleted"] == left
    assert len(report["fetched"]) + report["skipped"] == left


# A process that dies exactly between "saved" and "recorded", not by luck of timing: the
# Nth FetchState.record call ends the process as SIGKILL would (no cleanup, no flush),
# once the output has finished saving (a Maildir commits its messages on threads of its
# own, so `add` may return before the message has its name: MaildirSink).
DIE_BEFORE_RECORD = """
import os, sys
from mimekit.fetch.state import FetchState
from mimekit_cli.main import main
calls, original = 0, FetchState.record
def record(self, *args, **kwargs):
    global calls
    calls += 1
    if calls == int(os.environ["DIE_AT_RECORD"]):
        if kwargs.get("output") is not None and not os.environ.get("DIE_MID_COMMIT"):
            kwargs["output"].sync()
        os._exit(137)
    return original(self, *args, **kwargs)
FetchState.record = record
main(sys.argv[1:])
"""


def run_dying(args, env, die_at, mid_commit=False):
    """With `mid_commit`, the process dies without waiting for the output: a Maildir's
    commits of the last messages are then still running on its threads."""
    return subprocess.run([sys.executable, "-c", DIE_BEFORE_RECORD, *args], capture_output=True, timeout=120,
                          env={**env, "DIE_AT_RECORD": str(die_at), "DIE_MID_COMMIT": "1" if mid_commit else ""})


@pytest.mark.servers
def test_message_saved_but_not_recorded_is_adopted_then_deleted(mail_servers, tmp_path):
    servers = mail_servers
    servers.clear_mailbox(USER)
    sent = messages()[:8]
    for data in sent:
        servers.deliver_directly(USER, data)
    out = tmp_path / "out"
    args = ["fetch", f"pop3s://{USER}@{servers.host}:{servers.pop3s}", "--cafile", str(servers.ca_file),
            "--new", "--delete", "-o", f"maildir:{out}", "--json"]
    env = dict(os.environ, MIMEKIT_PASSWORD=servers.users[USER], XDG_STATE_HOME=str(tmp_path / "state"))
    assert run_dying(args, env, die_at=5).returncode == 137
    assert sum(on_disk(out).values()) == 5 and len(servers.messages(USER)) == 8
    report = json.loads(run_dying(args, env, die_at=0).stdout)
    # A Maildir records its messages a batch at a time, after one directory fsync
    # (MaildirSink.sync_batch, 64): all 5 saved were still pending, and are adopted.
    assert report["recovered"] == 5 and report["skipped"] == 5 and len(report["fetched"]) == 3
    assert report["deleted"] == 8 and servers.messages(USER) == []
    assert on_disk(out) == Counter(data.replace(b"\r\n", b"\n") for data in sent)


@pytest.mark.parametrize("output", ["maildir:{dir}/out", "mbox:{dir}/out.mbox", "{dir}/eml"])
def test_every_output_kind_adopts_its_orphan(tmp_path, output):
    """Local source, so no server: the orphan logic belongs to each output kind."""
    source = Maildir(str(tmp_path / "source"))
    sent = messages()[:4]
    for data in sent:
        source.add([data])
    target = output.format(dir=tmp_path)
    args = ["fetch", f"maildir:{tmp_path / 'source'}", "--new", "-o", target, "--json"]
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    assert run_dying(args, env, die_at=2).returncode == 137
    report = json.loads(run_dying(args, env, die_at=0).stdout)
    adopted = 2 if output.startswith("maildir:") else 1    # a Maildir's unsynced batch is all pending
    assert report["recovered"] == adopted and report["skipped"] == 2 and len(report["fetched"]) == 2
    assert stored_messages(target) == Counter(data.replace(b"\r\n", b"\n") for data in sent)


@pytest.mark.parametrize("die_at", [1, 9, 17, 30])
def test_a_maildir_run_killed_while_commits_run_loses_nothing_and_saves_each_once(tmp_path, die_at):
    """`--new --delete` from a local Maildir, killed right after the Nth add returned, with
    up to MaildirSink.MAX_COMMITTING commits still running: nothing is deleted at the
    source, nothing half-written shows, and the next run leaves each message in the output
    once (adopting what was committed, fetching again what was not)."""
    source = Maildir(str(tmp_path / "source"))
    sent = messages()[:30]
    for data in sent:
        source.add([data])
    expected = Counter(data.replace(b"\r\n", b"\n") for data in sent)
    target = f"maildir:{tmp_path / 'out'}"
    args = ["fetch", f"maildir:{tmp_path / 'source'}", "--new", "--delete", "-o", target, "--json"]
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    assert run_dying(args, env, die_at=die_at, mid_commit=True).returncode == 137
    assert len(source.keys()) == len(sent), "nothing deleted before the run ended"
    assert set(stored_messages(target)) <= set(expected), "no half message under a final name"
    report = json.loads(run_dying(args, env, die_at=0).stdout)
    assert stored_messages(target) == expected, "each message in the output once"
    assert source.keys() == [] and report["deleted"] == len(sent)


def stored_messages(target: str) -> Counter:
    if target.startswith(("maildir:", "mbox:")):
        store = open_mailbox(parse_url(target, {"maildir", "mbox"}), create=False)
        return Counter(store.open(key).read() for key in store.keys())
    return Counter(p.read_bytes().replace(b"\r\n", b"\n") for p in Path(target).iterdir())


# ---- Scripted fake servers: faults a real server will not produce on demand ----------

class ScriptedPOP3Server:
    """A POP3S server on 127.0.0.1 that serves `messages` and hangs up in the middle of
    RETR `drop_at`. It records every command, to prove what the client did (not) send."""

    def __init__(self, tmp_path, messages, drop_at):
        import threading

        import trustme

        ca = trustme.CA()
        self.ca_file = tmp_path / "fake-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.messages, self.drop_at, self.commands = messages, drop_at, []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        raw, _ = self.listener.accept()
        with self.context.wrap_socket(raw, server_side=True) as conn:
            reader = conn.makefile("rb")
            conn.sendall(b"+OK scripted\r\n")
            for line in reader:
                command = line.strip().decode()
                self.commands.append(command)
                verb, _, argument = command.partition(" ")
                if verb == "CAPA":
                    conn.sendall(b"+OK\r\nUSER\r\nUIDL\r\n.\r\n")
                elif verb in ("USER", "PASS", "DELE", "QUIT"):
                    conn.sendall(b"+OK\r\n")
                    if verb == "QUIT":
                        return
                elif verb in ("UIDL", "LIST"):
                    rows = b"".join(b"%d %s\r\n" % (n, b"uid%d" % n if verb == "UIDL" else b"%d" % len(m))
                                    for n, m in enumerate(self.messages, 1))
                    conn.sendall(b"+OK\r\n" + rows + b".\r\n")
                elif verb == "RETR":
                    data = self.messages[int(argument) - 1]
                    if int(argument) == self.drop_at:
                        conn.sendall(b"+OK\r\n" + data[:len(data) // 2])
                        return
                    conn.sendall(b"+OK\r\n" + data + b".\r\n")


def test_connection_dropped_mid_message_exits_75_and_deletes_nothing(tmp_path):
    sent = [b"Subject: %d\r\nMessage-ID: <%d@x>\r\n\r\nbody %d\r\n" % (n, n, n) for n in range(1, 5)]
    server = ScriptedPOP3Server(tmp_path, sent, drop_at=3)
    result = subprocess.run(
        [sys.executable, "-m", "mimekit_cli", "fetch", f"pop3s://alice@127.0.0.1:{server.port}",
         "--cafile", str(server.ca_file), "--delete", "--new", "-o", f"maildir:{tmp_path / 'out'}", "--json"],
        capture_output=True, timeout=60,
        env=dict(os.environ, MIMEKIT_PASSWORD="pw", XDG_STATE_HOME=str(tmp_path / "state")))
    assert result.returncode == 75, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["error"]["kind"] == "temp-fail"
    assert [f["uidl"] for f in report["fetched"]] == ["uid1", "uid2"], "partial: what was saved is listed"
    assert sum(on_disk(tmp_path / "out").values()) == 2
    assert not any(c.startswith("DELE") for c in server.commands), "nothing deleted after a failure"
