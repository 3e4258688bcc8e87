"""Driving `mimekit serve` from tests: start it as its users do (a subprocess on 127.0.0.1, ports
picked by the kernel: port 0, read back from its "listening:" line), stop it with SIGTERM,
which must end it with exit 0, and look at what it delivered."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from servers import HOST

from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import Mailboxes
from mimekit.stores.maildir import Maildir

# Login users of the users file the `users_file` fixture (conftest.py) makes.
USERS = {"alice": "alice-Serve-Secret-1", "bob": "bob-Serve-Secret-2"}
# Start-up is well under a second; this only bounds a server that hangs with both cores busy.
STARTUP_DEADLINE = 30.0
STOP_DEADLINE = 30.0
LISTENING = re.compile(rb"^mimekit serve: listening: smtp 127\.0\.0\.1:(\d+), pop3 127\.0\.0\.1:(\d+)"
                       rb"(?:, http 127\.0\.0\.1:(\d+))?$", re.M)


def mimekit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mimekit_cli", *args]


def run_mimekit(*args: str, env: dict, input: bytes | None = None, expect: int = 0,
                timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a mimekit command; fail with its stderr unless it exits `expect`."""
    result = subprocess.run(mimekit_command(*args), input=input, env=env, capture_output=True, timeout=timeout)
    assert result.returncode == expect, (
        f"mimekit {' '.join(args)} exited {result.returncode}, not {expect}:\n{result.stderr.decode(errors='replace')}")
    return result


@dataclass
class Served:
    """One running `mimekit serve`: its ports, its Maildir root and what it logged."""

    process: subprocess.Popen
    root: Path
    log: Path            # its stderr
    smtp: int
    pop3: int
    http: int | None = None   # with --http: the web interface's port
    host: str = HOST

    def maildir(self, user: str | None = None) -> Path:
        """Where mail for `user` lands: the root in catch-all mode, else root/<user>."""
        return self.root if user is None else self.root / user

    def messages(self, user: str | None = None) -> list[Path]:
        """Delivered messages (new/ and cur/), oldest first by name."""
        box = self.maildir(user)
        return sorted((p for sub in ("new", "cur") if (box / sub).is_dir() for p in (box / sub).iterdir()),
                      key=lambda p: p.name)

    def wait_for(self, token: str, user: str | None = None, timeout: float = 30,
                 while_waiting=None) -> Path:
        """Poll until the message carrying `token` is delivered (`while_waiting()` runs every
        second, e.g. to flush another server's queue) and return it; fail with the server's
        log if it does not come."""
        deadline = time.monotonic() + timeout
        next_nudge = 0.0
        while True:
            found = [p for p in self.messages(user) if token.encode() in p.read_bytes()]
            if found:
                [path] = found
                return path
            if time.monotonic() > deadline:
                raise AssertionError(f"no message carrying {token} after {timeout} s\n{self.stderr()}")
            if while_waiting and time.monotonic() > next_nudge:
                while_waiting()
                next_nudge = time.monotonic() + 1
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> str:
        """SIGTERM, then its log; a server that does not exit 0 fails the test."""
        return stop_process(self.process, "mimekit serve", self.log)


def stop_process(process: subprocess.Popen, name: str, log: Path) -> str:
    """SIGTERM to a server started by a test, then its log (its stderr); one that does not
    exit 0 within STOP_DEADLINE fails the test (killed, so that it does not outlive it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"{name} still running {STOP_DEADLINE} s after SIGTERM\n{log.read_text(errors='replace')}")
    assert status == 0, f"{name} exited {status} after SIGTERM\n{log.read_text(errors='replace')}"
    return log.read_text(errors="replace")


def place_message(maildir: Path, data: bytes) -> str:
    """Put a message straight into a Maildir's new/ (tmp, then rename), as another delivery
    agent would; returns its unique name, which POP3 UIDL must give back."""
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    name = f"{int(time.time())}.M{uuid.uuid4().hex}.mimekit-test"
    with open(maildir / "tmp" / name, "xb") as f:
        f.write(data)
    os.rename(maildir / "tmp" / name, maildir / "new" / name)
    return name


def strip_trace(stored: bytes) -> tuple[list[bytes], bytes]:
    """The trace fields at the top of a stored message (Received, Return-Path, each with its
    folded lines) and the rest: the message as the first client sent it, in LF form."""
    lines = stored.split(b"\n")
    trace = []
    while lines[0].lower().startswith((b"received:", b"return-path:")):
        field = lines.pop(0)
        while lines[0][:1] in (b" ", b"\t"):
            field += b"\n" + lines.pop(0)
        trace.append(field)
    return trace, b"\n".join(lines)


def sample_message(to: str, token: str) -> bytes:
    """A message as a client sends it (CRLF): 8-bit UTF-8 text, and the lines a dot-stuffing or
    line-ending bug would change (leading dots, a line of one dot, trailing spaces, an empty line)."""
    return (f"From: Bob <bob@example.test>\r\nTo: <{to}>\r\nSubject: interop {token}\r\n"
            f"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\nMessage-ID: <{token}@example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Grüße aus Köln — 日本語\r\n.a line starting with a dot\r\n.\r\n..\r\n"
            "trailing spaces   \r\n\r\nlast line\r\n").encode()


def return_path(sender: str) -> bytes:
    """The Return-Path field serve's final delivery puts first (RFC 5321 §4.4); `<>` for the null sender."""
    return f"Return-Path: <{sender}>".encode()


def assert_delivered_as_sent(path: Path, sent: bytes, sender: str) -> list[bytes]:
    """The stored message is the sent one byte for byte, stored with LF line ends, below the
    trace fields the servers prepended, the first of them serve's Return-Path naming the
    envelope `sender`; returns the fields below that Return-Path (the Received fields), topmost first."""
    stored = path.read_bytes()
    assert b"\r" not in stored, f"{path} is not stored with LF line ends"
    trace, rest = strip_trace(stored)
    assert rest.replace(b"\n", b"\r\n") == sent
    assert trace[:1] == [return_path(sender)], trace
    assert all(field.startswith(b"Received: ") for field in trace[1:]), trace
    return trace[1:]


def received_with(field: bytes) -> bytes:
    """The protocol of a Received field (RFC 3848: ESMTP, ESMTPS, ESMTPSA...)."""
    match = re.search(rb"\bwith (\S+)", field)
    assert match, field
    return match.group(1)


def tls_options(certificates) -> tuple[str, ...]:
    return ("--tls-cert", str(certificates.cert), "--tls-key", str(certificates.key))


def require_tool(name: str) -> str:
    """The tool's path; the test is skipped without it (scripts/test installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/test installs it from Debian)")
    return path


def start_serve(root: Path, log: Path, options: tuple[str, ...], env: dict) -> Served:
    """`mimekit serve maildir:ROOT --smtp 127.0.0.1:0 --pop3 127.0.0.1:0 OPTIONS...`, its stderr
    into `log`, returned once it says it is listening (the test fails if it never does)."""
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            mimekit_command("serve", f"maildir:{root}", "--smtp", f"{HOST}:0", "--pop3", f"{HOST}:0", *options),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    deadline = time.monotonic() + STARTUP_DEADLINE
    while not (listening := LISTENING.search(log.read_bytes())):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            pytest.fail(f"mimekit serve {' '.join(options)}: no 'listening:' line "
                        f"(exit status {process.returncode}):\n{log.read_text(errors='replace')}")
        time.sleep(0.02)
    http = listening.group(3)
    return Served(process=process, root=root, log=log, smtp=int(listening.group(1)), pop3=int(listening.group(2)),
                  http=int(http) if http else None)


@dataclass
class Running:
    port: int
    root: Path
    logs: list[str] = field(default_factory=list)

    def delivered(self) -> list[Path]:
        return sorted((self.root / "new").iterdir())

    def log_after(self, count: int, timeout: float = 10) -> str:
        """The count-th session log line, once that session has ended."""
        deadline = time.monotonic() + timeout
        while len(self.logs) < count:
            assert time.monotonic() < deadline, f"no log line {count}: {self.logs}"
            time.sleep(0.01)
        return self.logs[count - 1]


@contextmanager
def serving_with(handler, root: Path, prepare_reader=None, **settings):
    """A session handler (handle_smtp, handle_pop3) behind a listener on 127.0.0.1:0 in its own event loop thread;
    `prepare_reader(reader)` may script a fault into the connection's StreamReader."""
    config = ServeConfig(root=str(root), hostname="mx.serve.test", **settings)
    Maildir(str(root))
    mailboxes = Mailboxes(config)
    loop = asyncio.new_event_loop()
    running = Running(0, root)
    sessions: set[asyncio.Task] = set()

    async def connected(reader, writer):
        sessions.add(asyncio.current_task())
        if prepare_reader:
            prepare_reader(reader)
        try:
            running.logs.append(await handler(config, mailboxes, reader, writer))
        except asyncio.CancelledError:      # stopped at the end of the test, as the server stops
            running.logs.append("cancelled")

    server = loop.run_until_complete(asyncio.start_server(connected, HOST, 0))
    running.port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    async def stop():
        """As the server stops: the sessions are cancelled, not the threads' work they wait for."""
        server.close()
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)
        loop.stop()

    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop)
        thread.join(10)
        loop.close()
