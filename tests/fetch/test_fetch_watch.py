"""`mimekit fetch --watch` and `--exec`: IDLE against the real Postfix -> Dovecot, POP3 and
Maildir polling, SIGTERM, reconnection, and the hook's environment and failures.

The reconnection test uses a scripted fake IMAP server (tests/scripted_servers.py): Dovecot
does not drop a session on demand. Everything else runs against the real servers or local
stores.
"""

import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from mimekit.fetch import watch as watch_module
from mimekit.fetch.run import FetchOptions
from mimekit.fetch.sinks import open_sink
from mimekit.fetch.watch import Stop, watch
from mimekit.transport.imap import protocol as imap
from mimekit.transport.imap.client import IMAPClient
from mimekit.transport.urls import parse_url
from scripted_servers import ScriptedIMAPServer

USER = "alice"
WAIT = 30        # seconds a test waits for something that should take well under one


def message(subject: str, body: bytes = b"hello\r\n") -> bytes:
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\n").encode() + body


def files(directory: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") if (directory / sub).is_dir() for p in (directory / sub).iterdir())


def wait_until(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return result


def start(*args, env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mimekit_cli", "fetch", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_line(stream) -> str:
    """The next line of a child's pipe, with a deadline (a hung child fails the test)."""
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(WAIT)
    assert line, "no line from the watch"
    return line[0].decode()


def stop(process: subprocess.Popen) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=WAIT)
    return process.returncode, out.decode(), err.decode()


def maildir(path: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def local_env(tmp_path: Path) -> dict:
    return dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))


@pytest.fixture
def env(servers, tmp_path):
    return dict(local_env(tmp_path), MIMEKIT_PASSWORD=servers.users[USER])


# -- the protocol

def test_idle_and_done_are_sent_as_rfc_2177_spells_them():
    proto = imap.IMAPProtocol()
    proto.receive_data(b"* OK ready\r\n")
    assert isinstance(proto.next_event(), imap.Greeting)
    tag = proto.idle()
    assert bytes(proto.data_to_send()) == f"{tag} IDLE\r\n".encode()
    proto.receive_data(b"+ idling\r\n* 4 EXISTS\r\n")
    assert isinstance(proto.next_event(), imap.Continuation)
    assert proto.next_event() == imap.Exists(4)
    proto.done()
    assert bytes(proto.data_to_send()) == b"DONE\r\n"
    proto.receive_data(f"{tag} OK Idle completed.\r\n".encode())
    completion = proto.next_event()
    assert (completion.tag, completion.command, completion.ok) == (tag, "IDLE", True)


class NewsWithIdleIMAPServer(ScriptedIMAPServer):
    """Sends the news of a delivery in the same write as IDLE's "+", before or after it
    (untagged responses may come at any time, RFC 2177), then waits for DONE."""

    def __init__(self, tmp_path, answer: bytes):
        self.answer = answer
        super().__init__(tmp_path)

    def other(self, tag, command):
        if command.upper() == b"IDLE":
            self.idle_tag = tag
            return [self.answer]
        if tag.upper() == b"DONE":
            return [self.idle_tag + b" OK Idle completed.\r\n"]
        return super().other(tag, command)


@pytest.mark.parametrize("answer", [b"* 2 EXISTS\r\n+ idling\r\n", b"+ idling\r\n* 2 EXISTS\r\n"])
def test_news_that_comes_with_idles_continuation_ends_the_idle(tmp_path, answer):
    server = NewsWithIdleIMAPServer(tmp_path, answer)
    client = IMAPClient(parse_url(f"imaps://{USER}@127.0.0.1:{server.port}/INBOX", {"imaps"}), str(server.ca_file), 30)
    try:
        client.open(lambda: "secret")
        assert client.idle(WAIT, lambda: False) is True   # else it would idle WAIT seconds, then say False
        assert client.exists == 2
    finally:
        client.close()
        server.close()


# -- IMAP IDLE against Postfix -> Dovecot

@pytest.mark.servers
def test_idle_delivers_mail_sent_through_postfix_within_2_seconds(servers, env, tmp_path):
    """The issue's Must show: from Postfix's 250 to the file the --exec hook copied."""
    copies = tmp_path / "copies"
    copies.mkdir()
    watcher = start(f"imap://{USER}@{servers.host}:{servers.imap}/INBOX", "--watch",
                    "-o", f"maildir:{tmp_path / 'out'}",
                    "--cafile", str(servers.ca_file),
                    "--exec", f'test -z "$MIMEKIT_PASSWORD" && cp "$MIMEKIT_MESSAGE" {copies}/', env=env)
    try:
        assert read_line(watcher.stderr).startswith("mimekit fetch: 0 fetched"), "the first pass ended"
        token = uuid.uuid4().hex
        with smtplib.SMTP(servers.host, servers.smtp_plain) as smtp:
            smtp.sendmail("bob@example.test", [servers.address(USER)], message(f"idle {token}"))
            accepted = time.monotonic()     # sendmail returns at the 250 to DATA
        copied = wait_until(lambda: list(copies.iterdir()), "the hook's copy")
        latency = time.monotonic() - accepted
    finally:
        code, _, err = stop(watcher)
    print(f"IDLE latency, Postfix 250 -> hook's copy: {latency * 1000:.0f} ms")
    assert latency < 2.0
    assert token.encode() in copied[0].read_bytes()
    assert code == 0, err
    assert "1 fetched" in err
    assert "--exec" not in err, "the hook ran, and without the password in its environment"


@pytest.mark.servers
def test_idle_is_reissued_and_the_session_still_fetches(servers, tmp_path, monkeypatch):
    """IDLE_REISSUE shortened: several IDLEs end silent (DONE, a pass, a new IDLE) on the
    real Dovecot, and a message delivered after them is still fetched in the same session.
    (Dovecot batches its notifications for ~0.5 s, longer than these IDLEs: the pass after
    one finds the message. The Postfix test above shows IDLE's own notification.)"""
    monkeypatch.setattr(watch_module, "IDLE_REISSUE", 0.2)
    idles: list[bool] = []
    original = IMAPClient.idle

    def counted(self, seconds, stopping):
        idles.append(original(self, seconds, stopping))
        return idles[-1]

    monkeypatch.setattr(IMAPClient, "idle", counted)
    stopper, out = Stop(), tmp_path / "out"
    saved = []
    url = parse_url(f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", {"imaps"})
    worker = threading.Thread(target=watch, args=(url, open_sink(f"maildir:{out}"), FetchOptions(), stopper),
                              kwargs=dict(password=lambda: servers.users[USER], cafile=str(servers.ca_file),
                                          state_directory=str(tmp_path / "state"), on_saved=saved.append))
    worker.start()
    try:
        wait_until(lambda: idles.count(False) >= 3, "three silent IDLEs")
        servers.deliver_directly(USER, message("after re-issues"))
        wait_until(lambda: saved, "the message delivered after the re-issues")
    finally:
        stopper.request()
        worker.join(WAIT)
    assert not worker.is_alive(), "a stop request ends the watch"
    assert [b"after re-issues" in p.read_bytes() for p in files(out)] == [True]


@pytest.mark.servers
def test_without_idle_each_poll_sends_noop_so_dovecot_shows_new_mail(servers, tmp_path, monkeypatch):
    """IMAP polling on one session (IDLE hidden from the client): Dovecot shows a message
    delivered after the first pass to this session's UID SEARCH only once a NOOP has
    reported it (without one, it was seen only seconds later), so every later pass of the
    session starts with a NOOP."""
    monkeypatch.setattr(IMAPClient, "can_idle", property(lambda self: False))
    sent: list[str] = []
    command = imap.IMAPProtocol._command
    monkeypatch.setattr(imap.IMAPProtocol, "_command", lambda self, name, *args: sent.append(name) or
                        command(self, name, *args))
    servers.deliver_directly(USER, message("before the watch"))
    stopper, out, saved, passes = Stop(), tmp_path / "out", [], []
    url = parse_url(f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", {"imaps"})
    worker = threading.Thread(target=watch, args=(url, open_sink(f"maildir:{out}"), FetchOptions(), stopper),
                              kwargs=dict(password=lambda: servers.users[USER], cafile=str(servers.ca_file),
                                          state_directory=str(tmp_path / "state"), interval=0.1,
                                          on_saved=saved.append, on_pass=passes.append))
    worker.start()
    try:
        wait_until(lambda: len(passes) >= 2, "a second pass on the same session")
        servers.deliver_directly(USER, message("while polling"))
        wait_until(lambda: len(saved) == 2, "the message delivered while polling")
    finally:
        stopper.request()
        worker.join(WAIT)
    assert not worker.is_alive(), "a stop request ends the watch"
    assert sorted(b"while polling" in p.read_bytes() for p in files(out)) == [False, True]
    later_passes = [n for n, name in enumerate(sent) if name == "UID SEARCH"][1:]
    assert later_passes and all(sent[n - 1] == "NOOP" for n in later_passes), sent


@pytest.mark.servers
def test_sigterm_finishes_the_message_being_saved_and_exits_0(servers, env, tmp_path):
    body = b"".join(b"line %05d of a body long enough to take a moment to move\r\n" % n for n in range(4000))
    sent = [message(f"term {n}", body) for n in range(30)]
    for data in sent:
        servers.deliver_directly(USER, data)
    out = tmp_path / "out"
    args = [f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", "-o", f"maildir:{out}",
            "--cafile", str(servers.ca_file)]
    watcher = start(*args, "--watch", env=env)
    wait_until(lambda: files(out), "the first message saved")
    code, _, err = stop(watcher)
    assert code == 0, err
    assert "Traceback" not in err
    lf = {data.replace(b"\r\n", b"\n") for data in sent}
    saved_first = [p.read_bytes() for p in files(out)]
    assert set(saved_first) <= lf, "every file saved is a whole message"
    assert len(saved_first) < len(sent), "stopped part way (else the test proved nothing)"
    assert not list((out / "tmp").iterdir()), "nothing left half-written"
    again = subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", *args, "--new", "--json"],
                           env=env, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()
    assert len(json.loads(again.stdout)["fetched"]) == len(sent) - len(saved_first), "all recorded as saved"
    assert sorted(p.read_bytes() for p in files(out)) == sorted(lf), "every message exactly once"


@pytest.mark.servers
def test_sigterm_still_moves_what_the_pass_saved(servers, env, tmp_path):
    """The pass cut short by SIGTERM ends like any run: what it saved is moved (UID MOVE
    after the state is fsync'd); what it did not save stays in INBOX for the next run.
    Folders are read with doveadm, not through mimekit."""
    def subjects(folder: str) -> set[str]:
        listed = subprocess.run(["doveadm", "-c", str(servers.dovecot_conf), "-f", "json", "fetch", "-u", USER,
                                 "hdr.subject", "mailbox", folder, "all"], capture_output=True, text=True)
        assert listed.returncode == 0, listed.stderr
        return {m["hdr.subject"].strip() for m in json.loads(listed.stdout or "[]")}

    archive = f"Archive{uuid.uuid4().hex[:8]}"
    subprocess.run(["doveadm", "-c", str(servers.dovecot_conf), "mailbox", "create", "-u", USER, archive], check=True)
    body = b"".join(b"line %05d of a body long enough to take a moment to move\r\n" % n for n in range(4000))
    for n in range(30):
        servers.deliver_directly(USER, message(f"term {n}", body))
    out = tmp_path / "out"
    watcher = start(f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", "-o", f"maildir:{out}",
                    "--cafile", str(servers.ca_file), "--watch", "--move-to", archive, env=env)
    wait_until(lambda: files(out), "the first message saved")
    code, _, err = stop(watcher)
    assert code == 0, err
    saved = {p.read_bytes().split(b"Subject: ")[1].split(b"\n")[0].decode() for p in files(out)}
    assert 0 < len(saved) < 30, "stopped part way (else the test proved nothing)"
    assert subjects(archive) == saved
    assert subjects("INBOX") == {f"term {n}" for n in range(30)} - saved


# -- reconnection (scripted fake peer: Dovecot will not drop a session on demand)

class DroppingIMAPServer(ScriptedIMAPServer):
    """No IDLE (so the watch polls); the second SEARCH drops the connection, and the next
    session finds a second message. `sessions` counts the logins."""

    def __init__(self, tmp_path):
        self.searches = 0
        super().__init__(tmp_path)

    def search(self, tag):
        self.searches += 1
        if self.searches == 2:
            raise ConnectionResetError("scripted drop")
        return [b"* SEARCH 1" + (b" 2" if self.searches > 2 else b"") + b"\r\n", tag + b" OK done\r\n"]

    def fetch(self, tag):
        replies = []
        for uid in self.commands[-1].split()[3].split(b","):
            data = message(f"uid {uid.decode()}")
            size = len(data)
            replies.append(b"* %s FETCH (UID %s FLAGS () RFC822.SIZE %d BODY[] {%d}\r\n" % (uid, uid, size, size)
                           + data + b")\r\n")
        return replies + [tag + b" OK done\r\n"]


def test_a_dropped_connection_is_retried_with_backoff(tmp_path):
    server = DroppingIMAPServer(tmp_path)
    out = tmp_path / "out"
    watcher = start(f"imaps://{USER}@127.0.0.1:{server.port}/INBOX", "--watch", "--interval", "0.1",
                    "-o", f"maildir:{out}", "--cafile", str(server.ca_file),
                    env=dict(local_env(tmp_path), MIMEKIT_PASSWORD="secret"))
    try:
        wait_until(lambda: len(files(out)) == 2, "the message of the session after the drop")
    finally:
        code, _, err = stop(watcher)
        server.close()
    assert code == 0, err
    assert "connection" in err and "reconnecting in 1s" in err
    assert sorted(p.read_bytes().split(b"Subject: ")[1][:5] for p in files(out)) == [b"uid 1", b"uid 2"]


class MoveRefusingIMAPServer(ScriptedIMAPServer):
    """Offers MOVE but has no folder to move to; the first search finds nothing (so the
    first pass works), the next finds UID 1, whose move the server refuses."""

    capabilities = b"IMAP4rev1 AUTH=PLAIN SASL-IR UIDPLUS MOVE"

    def __init__(self, tmp_path):
        self.searches = 0
        super().__init__(tmp_path)

    def search(self, tag):
        self.searches += 1
        return [b"* SEARCH" + (b" 1" if self.searches > 1 else b"") + b"\r\n", tag + b" OK done\r\n"]

    def other(self, tag, command):
        if command.upper().startswith(b"UID MOVE"):
            return [tag + b" NO [TRYCREATE] Mailbox doesn't exist: Archive\r\n"]
        return super().other(tag, command)


def test_a_server_refusal_after_a_pass_worked_ends_the_watch_with_69(tmp_path):
    """Not retried as an outage would be: a refused command is refused again (the message
    stays saved)."""
    server = MoveRefusingIMAPServer(tmp_path)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", f"imaps://{USER}@127.0.0.1:{server.port}/INBOX",
                             "--watch", "--interval", "0.1", "--move-to", "Archive", "-o", f"maildir:{out}",
                             "--cafile", str(server.ca_file)],
                            env=dict(local_env(tmp_path), MIMEKIT_PASSWORD="secret"), capture_output=True, timeout=WAIT)
    server.close()
    assert result.returncode == 69, result.stderr.decode()
    assert b"reconnecting" not in result.stderr and b"Archive" in result.stderr
    assert len(files(out)) == 1


def test_a_refused_login_ends_the_watch_without_retrying(tmp_path):
    server = DroppingIMAPServer(tmp_path)
    server.authenticate = lambda mechanism, response, challenge: False
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", f"imaps://{USER}@127.0.0.1:{server.port}",
                             "--watch", "-o", f"maildir:{tmp_path / 'out'}", "--cafile", str(server.ca_file)],
                            env=dict(local_env(tmp_path), MIMEKIT_PASSWORD="wrong"), capture_output=True, timeout=WAIT)
    server.close()
    assert result.returncode == 77, result.stderr.decode()
    assert b"reconnecting" not in result.stderr


# -- polling: POP3 and local stores

@pytest.mark.servers
def test_pop3_is_polled_at_the_interval_in_new_sessions(servers, env, tmp_path):
    servers.deliver_directly(USER, message("pop first"))
    out = tmp_path / "out"
    watcher = start(f"pop3s://{USER}@{servers.host}:{servers.pop3s}", "--watch", "--interval", "1",
                    "-o", f"maildir:{out}", "--cafile", str(servers.ca_file), env=env)
    try:
        wait_until(lambda: len(files(out)) == 1, "the first pass")
        servers.deliver_directly(USER, message("pop second"))
        wait_until(lambda: len(files(out)) == 2, "the message delivered during the watch")
    finally:
        code, _, err = stop(watcher)
    assert code == 0, err
    assert sorted(b"pop second" in p.read_bytes() for p in files(out)) == [False, True]


def test_a_maildir_source_is_polled_and_a_failing_hook_does_not_stop_the_watch(tmp_path):
    source, out, copies = maildir(tmp_path / "src"), tmp_path / "out", tmp_path / "copies"
    copies.mkdir()
    (source / "new" / "1.test").write_bytes(message("first").replace(b"\r\n", b"\n"))
    watcher = start(f"maildir:{source}", "--watch", "--interval", "0.2", "-o", f"maildir:{out}",
                    "--exec", f'cp "$MIMEKIT_MESSAGE" {copies}/ && echo "$MIMEKIT_SOURCE" && exit 3',
                    env=local_env(tmp_path))
    try:
        wait_until(lambda: len(list(copies.iterdir())) == 1, "the hook for the first message")
        (source / "new" / "2.test").write_bytes(message("second").replace(b"\r\n", b"\n"))
        wait_until(lambda: len(list(copies.iterdir())) == 2, "the hook for the message added during the watch")
    finally:
        code, stdout, err = stop(watcher)
    assert code == 0, err
    assert stdout == f"maildir:{source}\n" * 2, "the hook's stdout is fetch's"
    assert err.count("--exec: the command exited 3 for ") == 2


def test_watch_json_is_one_line_per_pass_that_fetched(tmp_path):
    source, out = maildir(tmp_path / "src"), tmp_path / "out"
    watcher = start(f"maildir:{source}", "--watch", "--interval", "0.2", "-o", f"maildir:{out}", "--json",
                    env=local_env(tmp_path))
    try:
        first = json.loads(read_line(watcher.stdout))
        (source / "new" / "1.test").write_bytes(message("json").replace(b"\r\n", b"\n"))
        second = json.loads(read_line(watcher.stdout))
    finally:
        code, rest, err = stop(watcher)
    assert code == 0, err
    assert (first["schema"], first["fetched"]) == ("mimekit.fetch/1", [])
    assert [f["key"] for f in second["fetched"]] == ["1.test"] and rest == ""
    schemas = Path(__file__).resolve().parents[2] / "docs" / "schemas"
    loaded = [json.loads((schemas / name).read_text()) for name in ("fetch.json", "common.json")]
    validator = Draft202012Validator(loaded[0], registry=Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in loaded))
    for line in (first, second):
        assert not list(validator.iter_errors(line)), "each line is a document docs/schemas/fetch.json describes"


# -- --exec without --watch

def test_exec_failures_are_warned_and_end_the_run_with_69(tmp_path):
    source = maildir(tmp_path / "src")
    for n in range(2):
        (source / "new" / f"{n}.test").write_bytes(message(f"m{n}"))
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", f"maildir:{source}", "-o",
                             f"maildir:{tmp_path / 'out'}", "--exec", "exit 5"],
                            env=local_env(tmp_path), capture_output=True, timeout=WAIT)
    err = result.stderr.decode()
    assert result.returncode == 69, err
    assert err.count("--exec: the command exited 5 for ") == 2
    assert "2 of 2 run(s) of the command failed" in err
    assert len(files(tmp_path / "out")) == 2, "the messages are saved all the same"


def test_exec_gets_an_mbox_reference_that_show_reads_never_interpolated(tmp_path):
    """The reference reaches CMD in the environment only: a path full of shell syntax is
    neither run nor split."""
    source = maildir(tmp_path / "src")
    (source / "new" / "1.test").write_bytes(message("to an mbox"))
    box = tmp_path / "it's a box $(touch pwned)"
    hook = f'printf "%s\\n" "$MIMEKIT_MESSAGE"; "{sys.executable}" -m mimekit_cli show "$MIMEKIT_MESSAGE" --json'
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", f"maildir:{source}", "-o",
                             f"mbox:{box}", "--exec", hook, "-q"],
                            env=local_env(tmp_path), capture_output=True, timeout=WAIT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    reference, shown = result.stdout.decode().split("\n", 1)
    assert reference == f"{box}:0"
    assert "to an mbox" in json.dumps(json.loads(shown))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("args, complaint", [
    (["--watch", "-o", "mbox:-"], "watch is refused when the output is standard output"),
    (["--exec", "true", "-o", "-", "--limit", "1"], "--exec needs messages saved in files"),
    (["--exec", "true", "--json"], "--exec is refused with --json"),
    (["--interval", "5"], "--interval is for --watch"),
])
def test_watch_and_exec_refuse_what_they_cannot_do(tmp_path, args, complaint):
    source = maildir(tmp_path / "src")
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "fetch", f"maildir:{source}", *args],
                            env=local_env(tmp_path), capture_output=True, timeout=WAIT, cwd=tmp_path)
    assert result.returncode == 64, result.stderr.decode()
    assert complaint in result.stderr.decode() + result.stdout.decode()
    assert result.stderr.decode().count("\n") <= 1
