#!/usr/bin/env python3
"""Fetch rate against imaplib and poplib, and the memory a 100 MB message costs.

    python3 bench/bench_fetch.py [--messages 1000] [--runs 3] [--big-mb 100] [--rtt-ms 20]

Starts the test Postfix/Dovecot of tests/servers.py (needs root, like the tests), puts
--messages small messages into alice's INBOX, then in the same run, over implicit TLS
(imaps/pops) against the same mailbox:
  imaplib   UID SEARCH ALL, then UID FETCH (BODY.PEEK[]) in batches of 100 (anchors.md)
  poplib    RETR one by one
  mimekit   the fetch driver, twice: into a sink that only counts bytes (the same work
            as imaplib/poplib, which keep messages in memory), and into a Maildir on
            disk (the real thing: tmp, fsync, rename, on MaildirSink's committer threads;
            new/ and cur/ fsync'd once per 64 messages); and into a Maildir once more with
            one commit at a time, each waited for before the next message is taken (as
            fetch did before the committer threads, though the commit still runs on a
            thread while the client reads on), the baseline of the Maildir row's ratio.
  bare      the ceiling of any client: the same TLS session with every command written
            at once and the reply thrown away unparsed (with_bare_socket), in one session
            and split over two; its ratio to imaplib is the most a one-connection client
            could show here, as the server's own work bounds the rest.
Then imaplib and mimekit (counting) again through DelayLink, a relay that delays every
byte by half of --rtt-ms each way: the round trips a real, distant server costs.
Then one message of --big-mb MB is fetched by `mimekit fetch` in a child process over
IMAP and over POP3 into a Maildir; its peak RSS must stay under 40 MiB.
Figures are the median of --runs rounds in which all jobs take turns (the jobs other
than into a Maildir five times a round); only the ratios from one run mean anything.
The counting-sink jobs also run first on an empty mailbox: that session (TLS context
with the system CAs, handshake, login, SELECT or STAT) is about a quarter of an imaplib
run of 1,000 small messages and costs every client the same, so a per-message rate with
it subtracted is reported beside the whole-run rate.
GOAL lines (bench/goals.py): IMAP into a counting sink at least 1.3x imaplib's message
rate (issue 16); the other rates (the ceiling and the distant server's too) reported with
their peer; peak RSS at most 40 MiB.
Exit status 1 when a goal is missed.
"""

import argparse
import base64
import imaplib
import os
import poplib
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).parent))

from mimekit.fetch.run import FetchOptions, fetch  # noqa: E402
from mimekit.fetch.sinks import Sink, open_sink  # noqa: E402
from mimekit.transport.tls import client_context  # noqa: E402
from mimekit.transport.urls import parse_url  # noqa: E402
from servers import ServerInstance, servers_available  # noqa: E402
from goals import goal, limit, verdict  # noqa: E402

USER = "alice"
MiB = 1024 * 1024
QUICK_REPEATS = 5   # times a round for the jobs that take under 0.1 s, whose noise is large


class CountingSink(Sink):
    """Receives every byte and keeps none: the driver's cost without the disk's (and, being
    no storage, without the fetch state a durable output keeps)."""

    durable = False
    identity = "bench:counting"

    def __init__(self):
        self.bytes = 0

    def add(self, message, chunks, flags, keywords=()):
        for chunk in chunks:
            self.bytes += len(chunk)
        return "-", "-"


def small_message(n: int) -> bytes:
    body = b"".join(b"Line %d of message %d, a typical short text body line.\r\n" % (i, n) for i in range(30))
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: bench {n}\r\n"
            f"Message-ID: <bench-{n}@example.test>\r\nDate: Mon, 1 Jul 2024 10:00:00 +0000\r\n\r\n").encode() + body


def with_imaplib(servers, port: int | None = None) -> int:
    context = client_context(str(servers.ca_file))      # the same trust set-up as mimekit's
    client = imaplib.IMAP4_SSL(servers.host, port or servers.imaps, ssl_context=context)
    client.login(USER, servers.users[USER])
    client.select("INBOX", readonly=True)
    uids = client.uid("SEARCH", "ALL")[1][0].split()
    total = 0
    for start in range(0, len(uids), 100):
        batch = b",".join(uids[start:start + 100]).decode()
        for item in client.uid("FETCH", batch, "(BODY.PEEK[])")[1]:
            if isinstance(item, tuple):
                total += len(item[1])
    client.logout()
    return total


def with_bare_socket(servers, count: int, connections: int = 1) -> int:
    """The least a client can do for the same messages: imaplib's TLS set-up, then every
    command written at once without waiting for the greeting (LOGIN, EXAMINE, one FETCH of
    the `count` message bodies by number: no SEARCH, no UID, FLAGS or RFC822.SIZE), the
    reply read in 256 KiB reads and thrown away, the only parsing a look for the tagged
    lines; then LOGOUT. Its rate is the ceiling the server leaves one connection. With `connections` > 1
    the messages are split among that many sessions in threads at once. The bytes counted
    are the whole reply, protocol included; a failed FETCH or session is an error."""
    context = client_context(str(servers.ca_file))
    bounds = [(1 + count * i // connections, count * (i + 1) // connections) for i in range(connections)]
    totals = [0] * connections
    failures: list[BaseException] = []

    def session(index: int) -> None:
        first, last = bounds[index]
        fetch = f"c FETCH {first}:{last} (BODY.PEEK[])\r\n" if first <= last else ""
        try:
            with socket.create_connection((servers.host, servers.imaps)) as plain, \
                    context.wrap_socket(plain, server_hostname=servers.host) as tls:
                tls.sendall(f"a LOGIN {USER} {servers.users[USER]}\r\nb EXAMINE INBOX\r\n{fetch}".encode())
                # LOGOUT waits for the FETCH: Dovecot drops what it still had to send when a
                # LOGOUT queued behind it closes the connection (seen here about 1 run in 20).
                for tag in (b"c" if fetch else b"b", b"d"):
                    reply = b""              # the last bytes: tagged lines are short, bodies dropped
                    while not (b"\r\n" + tag + b" " in reply and reply.endswith(b"\r\n")):
                        data = tls.recv(262144)
                        if not data:
                            raise ConnectionError(f"the server closed the connection before {tag.decode()}'s reply")
                        totals[index] += len(data)
                        reply = reply[-4096:] + data
                    if b"\r\n" + tag + b" OK" not in reply:
                        raise ConnectionError(f"command {tag.decode()} failed: {reply[-200:]!r}")
                    if tag != b"d":
                        tls.sendall(b"d LOGOUT\r\n")
        except BaseException as exc:         # handed to the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return sum(totals)


def with_poplib(servers) -> int:
    context = client_context(str(servers.ca_file))
    client = poplib.POP3_SSL(servers.host, servers.pop3s, context=context)
    client.user(USER)
    client.pass_(servers.users[USER])
    count, _ = client.stat()
    total = 0
    for number in range(1, count + 1):
        total += sum(len(line) + 2 for line in client.retr(number)[1])
    client.quit()
    return total


def with_mimekit(servers, scheme: str, sink: Sink, port: int | None = None, state: str | None = None) -> int:
    """The fetch driver into `sink`; a durable sink keeps its fetch state in `state`."""
    url = parse_url(f"{scheme}://{USER}@{servers.host}:{port or getattr(servers, scheme)}", {scheme})
    report = fetch(url, sink, FetchOptions(), password=lambda: servers.users[USER], cafile=str(servers.ca_file),
                   state_directory=state)
    return sum(f.size for f in report.fetched)


class DelayLink:
    """A TCP relay on 127.0.0.1 that delivers every byte `rtt` seconds after the other end
    sent it, in each direction half of it: a server that far away, bandwidth unlimited.
    What a client's round trips cost there, where a real user's server is; the loopback
    rows measure the work on either end, which no round trip shows. Each connection takes
    four threads, which close its two sockets when both directions are done."""

    def __init__(self, port: int, rtt: float):
        self.target, self.delay = port, rtt / 2
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return                       # close() shut the listener down
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()               # the client sees the connection closed
                continue
            ends = (client, server)
            for end in ends:
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            directions_left = [2]
            lock = threading.Lock()

            def done(ends=ends, directions_left=directions_left, lock=lock) -> None:
                with lock:
                    directions_left[0] -= 1
                    if directions_left[0] == 0:
                        for end in ends:
                            end.close()

            for source, sink in ((client, server), (server, client)):
                queued: queue.Queue = queue.Queue()
                threading.Thread(target=self._read, args=(source, queued), daemon=True).start()
                threading.Thread(target=self._write, args=(sink, queued, done), daemon=True).start()

    def _read(self, source, queued) -> None:
        while True:
            try:
                data = source.recv(262144)
            except OSError:
                data = b""
            queued.put((time.monotonic() + self.delay, data))
            if not data:
                return

    @staticmethod
    def _write(sink, queued, done) -> None:
        try:
            while True:
                due, data = queued.get()
                time.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
        except OSError:
            return
        finally:
            done()

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)   # wakes accept(), which close() alone does not
        self.listener.close()


def timed_interleaved(runs: int, jobs: list, repeats: list[int] | None = None) -> list[tuple[float, int]]:
    """Median seconds (and bytes) per job, the jobs taking turns in every round so that a
    burst of load from other processes falls on all of them alike; job i runs repeats[i]
    times a round (default once), so that quick jobs can be timed more often."""
    times: list[list[float]] = [[] for _ in jobs]
    sizes = [0] * len(jobs)
    for _ in range(runs):
        for index, job in enumerate(jobs):
            for _ in range(repeats[index] if repeats else 1):
                start = time.perf_counter()
                sizes[index] = job()
                times[index].append(time.perf_counter() - start)
    return [(statistics.median(t), size) for t, size in zip(times, sizes)]


# Run `mimekit fetch` and report its own peak RSS (VmHWM) at exit. Measured from inside:
# a child's rusage maxrss also counts the parent's memory it was forked from.
MEASURED_FETCH = """
import atexit, sys
from mimekit_cli.main import main
def report():
    status = open("/proc/self/status").read()
    sys.stderr.write([line for line in status.splitlines() if line.startswith("VmHWM")][0] + "\\n")
atexit.register(report)
main(sys.argv[1:])
"""


def peak_rss_of_fetch(servers, scheme: str, out: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of `mimekit fetch` in a child process."""
    env = dict(os.environ, MIMEKIT_PASSWORD=servers.users[USER], XDG_STATE_HOME=out + "-state")
    command = [sys.executable, "-c", MEASURED_FETCH, "fetch", "-q",
               f"{scheme}://{USER}@{servers.host}:{getattr(servers, scheme)}",
               "--cafile", str(servers.ca_file), "-o", f"maildir:{out}"]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"mimekit fetch failed: {result.stderr.decode()}")
    kib = int(result.stderr.decode().split("VmHWM:")[1].split()[0])
    return elapsed, kib / 1024


def deliver_big(servers, size: int) -> None:
    """A base64 message of about `size` bytes, written in pieces (the bench stays small)."""
    box = servers.maildir(USER)
    name = f"{time.time_ns()}.bench-big.mimekit"
    with open(box / "tmp" / name, "wb") as out:
        out.write(b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: big\r\n"
                  b"Message-ID: <big@example.test>\r\nMIME-Version: 1.0\r\n"
                  b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n")
        written = 0
        while written < size:
            piece = base64.encodebytes(os.urandom(57 * 10000)).replace(b"\n", b"\r\n")
            out.write(piece)
            written += len(piece)
    os.chown(box / "tmp" / name, 65534, 65534)
    os.rename(box / "tmp" / name, box / "new" / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--rtt-ms", type=float, default=20, help="round trip of the far-server rows")
    args = parser.parse_args()
    reason = servers_available()
    if reason:
        raise SystemExit(f"cannot start the test servers: {reason}")
    instance = ServerInstance.start()
    work = tempfile.mkdtemp(prefix="bench-fetch-")
    try:
        servers = instance.servers
        servers.clear_mailbox(USER)
        loaded = {"messages": 0}         # what the bare sessions ask for: 0, then --messages
        counting = [("IMAP", "imaplib, UID FETCH x100", lambda: with_imaplib(servers)),
                    ("IMAP", "mimekit, counting sink", lambda: with_mimekit(servers, "imaps", CountingSink())),
                    ("IMAP", "bare socket, 1 session", lambda: with_bare_socket(servers, loaded["messages"])),
                    ("IMAP", "bare socket, 2 sessions", lambda: with_bare_socket(servers, loaded["messages"], 2)),
                    ("POP3", "poplib, RETR one by one", lambda: with_poplib(servers)),
                    ("POP3", "mimekit, counting sink", lambda: with_mimekit(servers, "pop3s", CountingSink()))]
        # The same sessions on an empty mailbox: what a run costs before its first message
        # (TLS context and handshake, login, SELECT/STAT), to tell the per-message loop apart.
        quick_runs = QUICK_REPEATS * args.runs
        session = [seconds for seconds, _ in timed_interleaved(quick_runs, [job for _, _, job in counting])]
        for n in range(args.messages):
            servers.deliver_directly(USER, small_message(n))
        loaded["messages"] = args.messages
        with_imaplib(servers)               # Dovecot builds its index once, outside the timings

        def into_maildir(scheme, one_at_a_time=False):
            def job():                    # each run's Maildir stays until the end: removing
                out = tempfile.mkdtemp(dir=work)    # 1,000 files is no part of fetching them
                sink = open_sink(f"maildir:{out}")
                if one_at_a_time:
                    sink.COMMITTERS = sink.MAX_COMMITTING = 1
                return with_mimekit(servers, scheme, sink, state=f"{work}/state")
            return job

        rows = counting[:4] + [("IMAP", "mimekit, into Maildir", into_maildir("imaps")),
                               ("IMAP", "mimekit, Maildir 1 by 1", into_maildir("imaps", one_at_a_time=True))] + \
            counting[4:] + [("POP3", "mimekit, into Maildir", into_maildir("pop3s")),
                            ("POP3", "mimekit, Maildir 1 by 1", into_maildir("pop3s", one_at_a_time=True))]
        repeats = [QUICK_REPEATS if row in counting else 1 for row in rows]
        print(f"{args.messages} messages of ~{len(small_message(0))} bytes, implicit TLS, "
              f"median of {quick_runs} (into Maildir: {args.runs})")
        rates, loop_rates = {}, {}
        for (protocol, name, _), (seconds, size) in zip(rows, timed_interleaved(args.runs, [r[2] for r in rows],
                                                                                repeats)):
            rate = rates[protocol, name] = args.messages / seconds
            peer = "imaplib, UID FETCH x100" if protocol == "IMAP" else "poplib, RETR one by one"
            empty = [session[i] for i, row in enumerate(counting) if row[:2] == (protocol, name)]
            if empty:
                loop_rates[protocol, name] = args.messages / max(seconds - empty[0], 1e-9)
            print(f"  {protocol}  {name:26s} {seconds:7.3f} s  {rate:8.0f} msg/s  x{rate / rates[protocol, peer]:.2f} vs "
                  f"{peer.split(',')[0]}  ({size / MiB:.1f} MiB)"
                  + (f"  empty mailbox {empty[0]:.3f} s" if empty else ""))
        for protocol, peer, mimekit, bound in (
                ("IMAP", "imaplib, UID FETCH x100", "mimekit, counting sink", 1.3),
                ("IMAP", "imaplib, UID FETCH x100", "mimekit, into Maildir", None),
                ("POP3", "poplib, RETR one by one", "mimekit, counting sink", None),
                ("POP3", "poplib, RETR one by one", "mimekit, into Maildir", None)):
            goal(f"{protocol} fetch of {args.messages} messages, {mimekit.split(', ')[1]}", rates[protocol, mimekit],
                 peer.split(",")[0], rates[protocol, peer], "msg/s", at_least=bound)
            if mimekit.endswith("into Maildir"):
                goal(f"{protocol} fetch of {args.messages} messages into a Maildir, committer threads vs one "
                     "commit at a time", rates[protocol, mimekit], "1 by 1", rates[protocol, "mimekit, Maildir 1 by 1"],
                     "msg/s")
            if (protocol, mimekit) in loop_rates:
                goal(f"{protocol} fetch, {mimekit.split(', ')[1]}, per message (empty-mailbox session subtracted)",
                     loop_rates[protocol, mimekit], peer.split(",")[0], loop_rates[protocol, peer], "msg/s")

        link = DelayLink(servers.imaps, args.rtt_ms / 1000)
        try:
            far = timed_interleaved(quick_runs, [lambda: with_imaplib(servers, link.port),
                                                lambda: with_mimekit(servers, "imaps", CountingSink(), link.port)])
        finally:
            link.close()
        (imaplib_far, _), (mimekit_far, _) = far
        print(f"the same over a link with a round trip of {args.rtt_ms:g} ms (DelayLink):")
        print(f"  IMAP  imaplib, UID FETCH x100      {imaplib_far:7.3f} s\n"
              f"  IMAP  mimekit, counting sink       {mimekit_far:7.3f} s")
        goal(f"IMAP fetch of {args.messages} messages, counting sink, {args.rtt_ms:g} ms round trip",
             args.messages / mimekit_far, "imaplib", args.messages / imaplib_far, "msg/s")

        servers.clear_mailbox(USER)
        deliver_big(servers, args.big_mb * 1_000_000)
        print(f"one {args.big_mb} MB message, `mimekit fetch` into a Maildir, child process peak RSS:")
        for scheme in ("imaps", "pop3s"):
            out = os.path.join(work, f"big-{scheme}")
            seconds, rss = peak_rss_of_fetch(servers, scheme, out)
            print(f"  {scheme:6s} {seconds:6.2f} s  peak RSS {rss:5.1f} MiB")
            limit(f"{scheme} fetch of a {args.big_mb} MB message, peak RSS", rss, "MiB", at_most=40)
        servers.clear_mailbox(USER)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        instance.stop()
    sys.exit(verdict())


if __name__ == "__main__":
    main()
