#!/usr/bin/env python3
"""Benchmark: `mimekit serve` under load, against aiosmtpd receiving the same load into a Maildir.

    python3 bench/bench_serve.py [--messages 10000] [--clients 100] [--per-session 10]
                                 [--workers 2] [--peer-store fsync|mailbox] [--lockstep]
    python3 bench/bench_serve.py --big 1G

Load (issue 13): --clients concurrent SMTP connections over loopback send --messages small
messages (about 2 KB, each carrying a unique token) in all, --per-session messages per
connection, to each server in turn, in the same run:
  - `mimekit serve maildir:DIR --smtp 127.0.0.1:0 --max-connections 200` (catch-all);
  - aiosmtpd (the pip package, as an oracle, not a dependency) in a process of its own whose
    handler stores each message in a Maildir: by default as mimekit does, durably (tmp/,
    fsync, rename into new/, fsync of new/, in a worker thread), or with --peer-store mailbox
    as Python's mailbox.Maildir.add does (no fsync, on the event loop);
  - a null sink (answers every command, discards the messages): the client's own ceiling,
    to show the client is not what limits the servers.
The client is asyncio speaking raw SMTP in --workers processes, pipelining MAIL/RCPT/DATA
when the server offers PIPELINING (aiosmtpd does not, so it is driven one command at a
time; --lockstep drives every server that way). Checked after each run: every token is in
the Maildir exactly once and byte for byte (less the Return-Path and Received mimekit adds), and the
client had 250 for each. Memory: the server's peak RSS (VmHWM of /proc/PID/status) after a
tenth of the messages and after all of them. Goals: peak < 100 MiB and the final figure
within 1.5x of the first (memory flat). Speed has no goal: the ratio mimekit/aiosmtpd is
printed.

--big SIZE: one message of SIZE bytes (K, M, G: powers of 1024) streamed by one client to
`mimekit serve`; its peak RSS (goal < 100 MiB) and the stored message's sha256 are checked.

Figures are printed one per line, "name: mimekit X, peer Y, ratio Z". Exit 1 when a message
is lost, duplicated or altered, or a memory goal is missed. Not a test: the machine's load
moves the rates, so only ratios from one run count.
"""

import argparse
import asyncio
import hashlib
import itertools
import mailbox
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from mimekit.streams.dot_stuffing import DotStuffer  # noqa: E402

HOST = "127.0.0.1"
SENDER, RECIPIENT = "load@client.test", "inbox@server.test"
TOKEN_FIELD = b"X-Bench-Token: "
MEMORY_GOAL_MIB = 100
FLATNESS_GOAL = 1.5
START_TIMEOUT = 30.0       # seconds for a server to print its listening line
SESSION_TIMEOUT = 600.0    # seconds one client connection may take, whatever happens
LISTENING = re.compile(rb"listening: smtp [^\s,]+:(\d+)")


# -- the messages ----------------------------------------------------------------------------

def token(n: int) -> bytes:
    return b"load-%06d" % n


def small_message(n: int) -> bytes:
    """About 2 KB of CRLF text; the token is the first field (what a server prepends stays
    before it) and is in the body too."""
    head = (TOKEN_FIELD + token(n) + b"\r\n"
            + f"From: Load <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: load message {n}\r\n"
              f"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\nMessage-ID: <{token(n).decode()}@client.test>\r\n"
              "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n".encode())
    body = b"token " + token(n) + b"\r\n" + b"A line of an ordinary short message, like most mail is.\r\n" * 32
    return head + body


def stored_form(message: bytes) -> bytes:
    """What a Maildir should hold: LF line endings (docs/conventions.md)."""
    return message.replace(b"\r\n", b"\n")


def from_token_field(stored: bytes) -> bytes:
    """The stored message from our first field on: a server's trace fields are left out."""
    if stored.startswith(TOKEN_FIELD):
        return stored
    return stored[stored.find(b"\n" + TOKEN_FIELD) + 1:]   # not there: all of it, which then fails to match


def stuffed(message: bytes) -> bytes:
    stuffer = DotStuffer()
    return stuffer.feed(message) + stuffer.flush()


# -- the servers, each a process of its own ----------------------------------------------------

class ServerProcess:
    """A server started as a subprocess; its stderr goes to a file (a pipe nobody reads
    would fill with session log lines and stall it) where the listening line is looked for."""

    def __init__(self, name: str, command: list[str], log: Path):
        self.name, self.log = name, log
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(command, cwd=REPO, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=stderr)
        self.pid = self.process.pid
        self.port = self._wait_for_port()

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log.read_bytes())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.process.kill()
        self.process.wait()
        raise SystemExit(f"{self.name} did not start listening:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return b"\n".join(self.log.read_bytes().splitlines()[-lines:]).decode(errors="replace")

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory the process has had so far."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) / 1024

    def cpu_seconds(self) -> float:
        """User and system time the process (all its threads) has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        """SIGTERM, then its exit code (SIGKILL after a minute)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_mimekit(maildir: Path, log: Path, *options: str) -> ServerProcess:
    command = [sys.executable, "-m", "mimekit_cli", "serve", f"maildir:{maildir}", "--smtp", f"{HOST}:0",
               "--pop3", f"{HOST}:0", "--max-connections", "200", *options]
    return ServerProcess("mimekit serve", command, log)


def start_peer(kind: str, log: Path, maildir: Path | None = None, store: str = "fsync") -> ServerProcess:
    """aiosmtpd ("aiosmtpd", storing into `maildir`) or the null sink ("sink"), run by this
    file in a child interpreter so it has a core, an address space and a VmHWM of its own."""
    command = [sys.executable, __file__, "--run-peer", kind, "--peer-store", store]
    if maildir is not None:
        command += ["--peer-maildir", str(maildir)]
    return ServerProcess(kind, command, log)


def serve_aiosmtpd(directory: str, store: str) -> None:
    """aiosmtpd with a handler that delivers each message into the Maildir `directory`."""
    from aiosmtpd.smtp import SMTP

    class MaildirHandler:
        def __init__(self):
            self.maildir = mailbox.Maildir(directory, create=True)
            self.names = itertools.count()

        def deliver_durably(self, content: bytes) -> None:
            """As mimekit delivers: tmp/, fsync, rename into new/, fsync new/."""
            name = f"{time.time():.6f}.P{os.getpid()}Q{next(self.names)}.aiosmtpd"
            temporary = os.path.join(directory, "tmp", name)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with open(fd, "wb", closefd=False) as out:
                    out.write(content.replace(b"\r\n", b"\n"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, os.path.join(directory, "new", name))
            new = os.open(os.path.join(directory, "new"), os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(new)
            finally:
                os.close(new)

        async def handle_DATA(self, server, session, envelope) -> str:
            if store == "fsync":
                await asyncio.to_thread(self.deliver_durably, envelope.content)
            else:
                self.maildir.add(envelope.content.replace(b"\r\n", b"\n"))
            return "250 2.0.0 Ok: delivered"

    handler = MaildirHandler()
    asyncio.run(_serve_until_terminated(
        lambda: SMTP(handler, hostname="localhost", data_size_limit=None), "aiosmtpd"))


class NullSink(asyncio.Protocol):
    """Answers every command at once (EHLO offers PIPELINING), reads DATA to CRLF.CRLF and
    discards it. Our own client is its only peer, so it parses no more than that client sends."""

    def connection_made(self, transport):
        self.transport, self.buffer, self.in_data = transport, bytearray(), False
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = bytearray()
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    del self.buffer[:-4]
                    break
                del self.buffer[:end + 5]
                self.in_data = False
                replies += b"250 2.0.0 discarded\r\n"
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[:end + 2]
            if verb == b"EHLO":
                replies += b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
            elif verb == b"DATA":
                replies += b"354 go ahead\r\n"
                self.in_data = True
            elif verb == b"QUIT":
                self.transport.write(replies + b"221 2.0.0 bye\r\n")
                self.transport.close()
                return
            else:
                replies += b"250 2.0.0 ok\r\n"
        self.transport.write(replies)


async def _serve_until_terminated(protocol_factory, name: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(protocol_factory, HOST, 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"{name}: listening: smtp {HOST}:{port}", file=sys.stderr, flush=True)
    terminated = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, terminated.set)
    await terminated.wait()
    server.close()


# -- the load client -------------------------------------------------------------------------

class ClientError(Exception):
    pass


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One reply, its lines joined; (code, text)."""
    lines = []
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise ClientError(f"connection closed (after {b' '.join(lines)!r})")
        lines.append(line.rstrip(b"\r\n"))
        if line[3:4] != b"-":
            return int(line[:3]), b"\n".join(lines)


async def expect(reader: asyncio.StreamReader, code: int, step: str) -> bytes:
    got, text = await read_reply(reader)
    if got != code:
        raise ClientError(f"{step}: {text.decode(errors='replace')[:200]}")
    return text


async def send_session(port: int, numbers: list[int], lockstep: bool, acked: list[int],
                       progress, slot: int) -> None:
    """One connection sending the messages `numbers`; each one acknowledged with 250 is
    appended to `acked` and counted in progress[slot]."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        await expect(reader, 220, "greeting")
        writer.write(b"EHLO load.client.test\r\n")
        ehlo = await expect(reader, 250, "EHLO")
        pipelining = not lockstep and re.search(rb"^250[ -]PIPELINING\b", ehlo, re.M | re.I) is not None
        envelope = [b"MAIL FROM:<%s>\r\n" % SENDER.encode(), b"RCPT TO:<%s>\r\n" % RECIPIENT.encode(), b"DATA\r\n"]
        for n in numbers:
            if pipelining:
                writer.write(b"".join(envelope))
                for code, step in ((250, "MAIL"), (250, "RCPT"), (354, "DATA")):
                    await expect(reader, code, step)
            else:
                for command, code, step in zip(envelope, (250, 250, 354), ("MAIL", "RCPT", "DATA")):
                    writer.write(command)
                    await expect(reader, code, step)
            writer.write(stuffed(small_message(n)))
            await expect(reader, 250, f"end of data of message {n}")
            acked.append(n)
            progress[slot] += 1
        writer.write(b"QUIT\r\n")
        await expect(reader, 221, "QUIT")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


async def run_clients(port: int, clients: dict[int, list[int]], per_session: int, lockstep: bool,
                      progress, slot: int) -> tuple[list[int], list[str]]:
    """Each client sends its messages, `per_session` per connection, one connection after
    the other; the clients run concurrently. (acknowledged numbers, errors)."""
    acked: list[int] = []
    errors: list[str] = []

    async def client(numbers: list[int]) -> None:
        for start in range(0, len(numbers), per_session):
            try:
                async with asyncio.timeout(SESSION_TIMEOUT):
                    await send_session(port, numbers[start:start + per_session], lockstep, acked, progress, slot)
            except (ClientError, OSError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(client(numbers) for numbers in clients.values()))
    return acked, errors


def client_worker(port, clients, per_session, lockstep, progress, slot, barrier, results) -> None:
    barrier.wait()
    cpu = time.process_time()
    acked, errors = asyncio.run(run_clients(port, clients, per_session, lockstep, progress, slot))
    results.put((slot, acked, errors, time.monotonic(), time.process_time() - cpu))


@dataclass
class LoadResult:
    seconds: float
    client_cpu: float
    acked: list[int]
    errors: list[str]
    rss_mib: dict[int, float] = field(default_factory=dict)   # messages acknowledged -> VmHWM

    def rate(self) -> float:
        return len(self.acked) / self.seconds


def run_load(port: int, messages: int, clients: int, per_session: int, workers: int, lockstep: bool = False,
             peak_rss=None, checkpoints: tuple[int, ...] = ()) -> LoadResult:
    """The whole load against the server on `port`: client i sends messages i, i + clients,
    ...; the clients are shared among `workers` processes. `peak_rss()` (the server's, when
    given) is read as the count of messages acknowledged passes each checkpoint, and at the end."""
    context = multiprocessing.get_context("fork")
    progress = context.Array("q", workers, lock=False)   # each worker counts in its own slot
    barrier = context.Barrier(workers + 1)
    results = context.Queue()
    shares = [{c: list(range(c, messages, clients)) for c in range(w, clients, workers)} for w in range(workers)]
    processes = [context.Process(target=client_worker, daemon=True,
                                 args=(port, share, per_session, lockstep, progress, w, barrier, results))
                 for w, share in enumerate(shares)]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.monotonic()
    rss: dict[int, float] = {}
    pending = sorted(checkpoints)
    outcomes = []
    while len(outcomes) < workers:
        while peak_rss and pending and sum(progress) >= pending[0]:
            rss[pending.pop(0)] = peak_rss()
        while not results.empty():
            outcomes.append(results.get())
        if any(p.exitcode not in (None, 0) for p in processes):
            raise SystemExit("a client process died")
        time.sleep(0.005)
    for process in processes:
        process.join()
    acked = [n for outcome in outcomes for n in outcome[1]]
    if peak_rss:
        rss[len(acked)] = peak_rss()
    return LoadResult(seconds=max(o[3] for o in outcomes) - started, client_cpu=sum(o[4] for o in outcomes),
                      acked=acked, errors=[e for o in outcomes for e in o[2]], rss_mib=rss)


# -- what landed -----------------------------------------------------------------------------

def delivery_problems(maildir: Path, messages: int, acked: list[int]) -> list[str]:
    """Every message 0..messages-1 acknowledged once and stored once, byte for byte (LF
    line endings, whatever precedes our first field left out); otherwise what is wrong."""
    stored = Counter()
    altered = []
    for sub in ("new", "cur"):
        for entry in os.scandir(maildir / sub):
            content = from_token_field(Path(entry.path).read_bytes())
            found = re.match(rb"X-Bench-Token: load-(\d+)\n", content)
            if not found:
                altered.append(entry.name)
                continue
            n = int(found.group(1))
            stored[n] += 1
            if content != stored_form(small_message(n)):
                altered.append(entry.name)
    expected = set(range(messages))
    acknowledged = Counter(acked)
    problems = []
    for what, numbers in (("lost (acknowledged, not stored)", [n for n in acknowledged if not stored[n]]),
                          ("never acknowledged", sorted(expected - set(acknowledged))),
                          ("stored more than once", [n for n, c in stored.items() if c > 1]),
                          ("acknowledged more than once", [n for n, c in acknowledged.items() if c > 1]),
                          ("not sent by us", sorted(set(stored) - expected)),
                          ("altered (files)", altered)):
        if numbers:
            problems.append(f"{len(numbers)} {what}: {sorted(numbers)[:5]}")
    return problems


def count_line(name: str, mimekit, peer, ratio: float | None, peer_name: str = "aiosmtpd") -> str:
    shown = "n/a" if ratio is None else f"{ratio:.2f}"
    return f"{name}: mimekit {mimekit}, {peer_name} {peer}, ratio {shown}"


# -- the load benchmark ------------------------------------------------------------------------

def load_benchmark(args, workdir: Path) -> bool:
    """Runs the three servers in turn and prints the figures; True when every check and goal holds."""
    checkpoints = (max(1, args.messages // 10),)
    first, last = checkpoints[0], args.messages
    runs: dict[str, LoadResult] = {}
    ok = True
    size = len(small_message(0))
    print(f"load: {args.clients} concurrent clients, {args.messages} messages of {size} bytes, "
          f"{args.per_session} per connection, client in {args.workers} processes, "
          f"{'lock-step' if args.lockstep else 'pipelining where offered'}; aiosmtpd "
          f"{aiosmtpd_version()} storing "
          + ("durably (tmp/, fsync, rename, fsync new/, in a thread)" if args.peer_store == "fsync"
             else "with mailbox.Maildir.add (no fsync, on the event loop)"))
    for name in ("sink", "mimekit", "aiosmtpd"):
        maildir = workdir / name
        log = workdir / f"{name}.log"
        if name == "mimekit":
            server = start_mimekit(maildir, log)
        else:
            server = start_peer(name, log, maildir if name == "aiosmtpd" else None, args.peer_store)
        try:
            result = run_load(server.port, args.messages, args.clients, args.per_session, args.workers,
                              args.lockstep, server.peak_rss_mib, checkpoints)
            server_cpu = server.cpu_seconds()
        finally:
            code = server.stop()
        runs[name] = result
        print(f"  {name}: {result.rate():.0f} msg/s, {result.seconds:.2f} s, CPU: server {server_cpu:.2f} s, "
              f"client {result.client_cpu:.2f} s; server exit {code}", flush=True)
        for error in result.errors[:5]:
            print(f"  {name}: client error: {error}")
        if name == "mimekit" and code != 0:
            print(f"  mimekit serve exited {code} on SIGTERM:\n{server.log_tail()}")
            ok = False
        if name != "sink":
            problems = delivery_problems(maildir, args.messages, result.acked)
            for problem in problems:
                print(f"  {name}: {problem}")
            print(f"  {name}: {'every message delivered exactly once' if not problems else 'DELIVERY FAILED'}")
            ok = ok and not problems
        elif len(result.acked) != args.messages:
            print(f"  sink: only {len(result.acked)} of {args.messages} messages acknowledged")
            ok = False
    mimekit, peer, sink = runs["mimekit"], runs["aiosmtpd"], runs["sink"]
    print(count_line("messages/s", f"{mimekit.rate():.0f}", f"{peer.rate():.0f}", mimekit.rate() / peer.rate()))
    print(f"messages/s of the null sink (the client's ceiling): {sink.rate():.0f}, "
          f"x{sink.rate() / max(mimekit.rate(), peer.rate()):.1f} the faster server")
    for at in (first, last):
        print(count_line(f"peak RSS MiB at {at} messages", f"{mimekit.rss_mib.get(at, float('nan')):.1f}",
                         f"{peer.rss_mib.get(at, float('nan')):.1f}",
                         mimekit.rss_mib.get(at, float("nan")) / peer.rss_mib.get(at, float("nan"))))
    early, final = mimekit.rss_mib.get(first), mimekit.rss_mib.get(last)
    if early is None or final is None:
        print("memory goal: not measured (messages were not all acknowledged)")
        return False
    peak_met, flat_met = final < MEMORY_GOAL_MIB, final <= FLATNESS_GOAL * early
    print(f"memory goal (peak < {MEMORY_GOAL_MIB} MiB): {'MET' if peak_met else 'MISSED'} ({final:.1f} MiB)")
    print(f"memory goal (peak at {last} within {FLATNESS_GOAL}x of at {first}): "
          f"{'MET' if flat_met else 'MISSED'} (x{final / early:.2f})")
    return ok and peak_met and flat_met


def aiosmtpd_version() -> str:
    try:
        from aiosmtpd import __version__
    except ImportError:
        raise SystemExit("aiosmtpd is not installed: pip install aiosmtpd (the test extra lists it)") from None
    return __version__


# -- one big message ---------------------------------------------------------------------------

BIG_LINES = b"".join(b"%s line %05d of a block of the big message, with some text to fill it.\r\n"
                     % (b"." if n % 97 == 0 else b"x", n) for n in range(13000))   # about 1 MB, dot lines too


def big_message(size: int):
    """About `size` bytes of CRLF text in blocks of about 1 MB, each naming its number so a
    block out of place shows; lines starting with "." make dot-stuffing matter."""
    yield TOKEN_FIELD + b"big\r\nFrom: <%s>\r\nTo: <%s>\r\nSubject: big\r\n\r\n" % (SENDER.encode(), RECIPIENT.encode())
    for block in range(-(-size // len(BIG_LINES))):
        yield b"block %08d\r\n" % block + BIG_LINES


def send_big(port: int, size: int) -> tuple[str, int]:
    """Stream the big message over one connection; (the sha256 of its stored (LF) form, its size)."""
    digest = hashlib.sha256()
    sent = 0
    stuffer = DotStuffer()
    with socket.create_connection((HOST, port)) as connection, connection.makefile("rb") as replies:
        connection.settimeout(SESSION_TIMEOUT)

        def command(line: bytes, code: int) -> None:
            if line:
                connection.sendall(line + b"\r\n")
            reply = replies.readline()
            while reply[3:4] == b"-":
                reply = replies.readline()
            if not reply.startswith(b"%d" % code):
                raise SystemExit(f"{line.decode() or 'greeting'}: {reply.decode(errors='replace').strip()}")

        command(b"", 220)
        command(b"EHLO load.client.test", 250)
        command(b"MAIL FROM:<%s> SIZE=%d" % (SENDER.encode(), size + 2 * len(BIG_LINES)), 250)
        command(b"RCPT TO:<%s>" % RECIPIENT.encode(), 250)
        command(b"DATA", 354)
        for chunk in big_message(size):
            digest.update(stored_form(chunk))
            sent += len(chunk)
            connection.sendall(stuffer.feed(chunk))
        connection.sendall(stuffer.flush())
        command(b"", 250)
        command(b"QUIT", 221)
    return digest.hexdigest(), sent


def stored_sha256(path: Path) -> str:
    """sha256 of a stored message from our first field on (the trace fields left out)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stored:
        head = stored.read(1 << 20)
        start = len(head) - len(from_token_field(head))
        digest.update(head[start:])
        while chunk := stored.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def big_benchmark(size: int, workdir: Path) -> bool:
    maildir = workdir / "big"
    server = start_mimekit(maildir, workdir / "big.log", "--max-size", str(size + 4 * len(BIG_LINES)))
    try:
        idle = server.peak_rss_mib()
        started = time.monotonic()
        sent, sent_size = send_big(server.port, size)
        seconds = time.monotonic() - started
        peak = server.peak_rss_mib()
    finally:
        code = server.stop()
    files = list((maildir / "new").iterdir())
    stored = stored_sha256(files[0]) if len(files) == 1 else f"{len(files)} files in new/"
    print(f"big message: {sent_size} bytes in {seconds:.1f} s ({sent_size / 2**20 / seconds:.0f} MiB/s), "
          f"mimekit serve exit {code}")
    print(f"peak RSS MiB of mimekit serve: before {idle:.1f}, after the big message {peak:.1f}")
    print(f"sha256 sent (LF form) {sent}, stored {stored}: {'SAME' if stored == sent else 'DIFFERENT'}")
    met = peak < MEMORY_GOAL_MIB
    print(f"memory goal (peak < {MEMORY_GOAL_MIB} MiB): {'MET' if met else 'MISSED'} ({peak:.1f} MiB)")
    return met and stored == sent and code == 0


def byte_size(text: str) -> int:
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
    found = re.fullmatch(r"(\d+)([KMG]?)B?", text.strip().upper())
    if not found:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 500M, 1G)")
    return int(found.group(1)) * units[found.group(2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10000, help="messages in all (default 10000)")
    parser.add_argument("--clients", type=int, default=100, help="concurrent connections (default 100)")
    parser.add_argument("--per-session", type=int, default=10, help="messages per connection (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="client processes (default 2)")
    parser.add_argument("--lockstep", action="store_true", help="never pipeline, whatever the server offers")
    parser.add_argument("--peer-store", choices=("fsync", "mailbox"), default="fsync",
                        help="how aiosmtpd's handler stores (default fsync: as durably as mimekit)")
    parser.add_argument("--big", type=byte_size, help="instead: one message of this size (e.g. 1G)")
    parser.add_argument("--run-peer", choices=("aiosmtpd", "sink"), help=argparse.SUPPRESS)
    parser.add_argument("--peer-maildir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_peer == "aiosmtpd":
        return serve_aiosmtpd(args.peer_maildir, args.peer_store)
    if args.run_peer == "sink":
        return asyncio.run(_serve_until_terminated(NullSink, "sink"))
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as workdir:
        ok = big_benchmark(args.big, Path(workdir)) if args.big else load_benchmark(args, Path(workdir))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
