#!/usr/bin/env python3
"""Benchmark: `mimekit send` against Python's smtplib, to the test Postfix on 127.0.0.1.

    python3 bench/bench_send.py [--messages 1000] [--rounds 3] [--big-mb 100]

Starts the Postfix + Dovecot of tests/servers.py (needs root and the Debian packages).
1. Rate: --messages small messages over one connection (STARTTLS on the plain port,
   certificates verified), `smtplib.sendmail` in a loop vs the `mimekit send` process
   (interpreter start, reading the files and the pre-scan included), alternating, with
   the Postfix queue drained between runs so deliveries of one run do not slow the next.
   The library call (SMTPClient.send_messages) is shown as well, the protocol alone,
   with CHUNKING (BDAT, messages streamed back to back) and with DATA (one round trip
   per message).
   Goal (issue 4): mimekit >= 2x smtplib's rate.
2. Memory: one message of --big-mb MB (a base64 attachment) sent by the `mimekit send`
   process, peak RSS from wait4. Goal: < 40 MiB.
Not a test: the machine's load moves the figures, so only ratios from one run count.
"""

import argparse
import base64
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from mimekit.envelope import prepare_message  # noqa: E402
from mimekit.smtp_client import SMTPClient  # noqa: E402
from mimekit.tls import client_context  # noqa: E402
from mimekit.urls import parse_url  # noqa: E402
from servers import ServerInstance, servers_available  # noqa: E402

SENDER, RECIPIENT, MAILBOX = "alice@example.test", "bob@example.test", "bob"


def small_message(n: int) -> bytes:
    return (f"From: Alice <{SENDER}>\r\nTo: Bob <{RECIPIENT}>\r\nSubject: bench {n}\r\n"
            f"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\nMessage-ID: <bench-{n}@example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            + "A line of an ordinary short message, like most mail is.\r\n" * 12).encode()


def write_big_message(path: Path, megabytes: int) -> None:
    """A text part and a base64 attachment of random bytes, written without holding it."""
    with open(path, "wb") as out:
        out.write(f"From: {SENDER}\r\nTo: {RECIPIENT}\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
                  'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                  "Content-Type: text/plain\r\n\r\nAttached.\r\n--b\r\n"
                  "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n".encode())
        raw_bytes = megabytes * 1_000_000 * 3 // 4   # so the message is about `megabytes` MB
        block = 57 * 16384
        for start in range(0, raw_bytes, block):
            encoded = base64.encodebytes(os.urandom(min(block, raw_bytes - start)))
            out.write(encoded.replace(b"\n", b"\r\n"))
        out.write(b"--b--\r\n")


def run_smtplib(servers, messages: list[bytes]) -> float:
    started = time.perf_counter()
    client = smtplib.SMTP(servers.host, servers.smtp_plain, timeout=60)
    client.starttls(context=client_context(str(servers.ca_file)))
    client.ehlo()
    for message in messages:
        client.sendmail(SENDER, [RECIPIENT], message)
    client.quit()
    return time.perf_counter() - started


# Linux counts a child's pages from before exec() in its peak RSS, so a child forked from
# this (large) process would inherit our size: a small launcher starts the measured process
# and reports that process's own peak.
LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def mimekit_send(servers, port: int, paths: list[str]) -> tuple[float, int, int]:
    """Run the `mimekit send` process; (wall seconds, exit code, peak RSS in KiB)."""
    command = [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "mimekit_cli", "send", "-q",
               "--server", f"smtp://{servers.host}:{port}", "--cafile", str(servers.ca_file),
               "--to", RECIPIENT, *paths]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    return seconds, result.returncode, int(result.stderr.decode().split()[-1])


def run_library(servers, paths: list[str], chunking: bool = True) -> float:
    started = time.perf_counter()
    messages = [prepare_message(path, to=[RECIPIENT]) for path in paths]
    url = parse_url(f"smtp://{servers.host}:{servers.smtp_plain}", {"smtp"})
    with SMTPClient(url, cafile=str(servers.ca_file), chunking=chunking) as client:
        results = list(client.send_messages(messages))
    assert all(r.recipients[0].accepted for r in results)
    return time.perf_counter() - started


def rate_benchmark(servers, count: int, rounds: int, workdir: Path) -> None:
    messages = [small_message(n) for n in range(count)]
    paths = []
    for n, message in enumerate(messages):
        paths.append(str(workdir / f"m{n:05d}.eml"))
        Path(paths[-1]).write_bytes(message)
    delivered = len(servers.messages(MAILBOX))
    runs = {"smtplib.sendmail": lambda: run_smtplib(servers, messages),
            "mimekit send (process)": lambda: _checked(mimekit_send(servers, servers.smtp_plain, paths)),
            "SMTPClient, BDAT": lambda: run_library(servers, paths),
            "SMTPClient, DATA": lambda: run_library(servers, paths, chunking=False)}
    timings = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            timings[name].append(run())
            delivered += count
            servers.wait_for_messages(MAILBOX, delivered, timeout=300)   # queue drained
    baseline = count / statistics.median(timings["smtplib.sendmail"])
    print(f"\n{count} small messages ({len(messages[0])} bytes) over one STARTTLS connection, "
          f"median of {rounds} (each run's rates in brackets)")
    for name, seconds in timings.items():
        rate = count / statistics.median(seconds)
        each = ", ".join(f"{count / s:.0f}" for s in seconds)
        print(f"  {name:24s} {rate:7.0f} msg/s  [{each}]  x{rate / baseline:.2f} vs smtplib")


def _checked(outcome: tuple[float, int, int]) -> float:
    seconds, code, _ = outcome
    if code != 0:
        raise SystemExit(f"mimekit send exited {code}")
    return seconds


def memory_benchmark(servers, megabytes: int, workdir: Path) -> None:
    path = workdir / "big.eml"
    write_big_message(path, megabytes)
    size = path.stat().st_size
    delivered = len(servers.messages(MAILBOX))
    seconds, code, peak_kib = mimekit_send(servers, servers.smtp_plain, [str(path)])
    if code != 0:
        raise SystemExit(f"mimekit send exited {code} for the big message")
    servers.wait_for_messages(MAILBOX, delivered + 1, timeout=600)
    print(f"\none message of {size / 1e6:.0f} MB: mimekit send took {seconds:.2f} s "
          f"({size / 1e6 / seconds:.0f} MB/s), peak RSS {peak_kib / 1024:.1f} MiB (goal < 40 MiB)")
    path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mb", type=int, default=100)
    args = parser.parse_args()
    reason = servers_available()
    if reason:
        raise SystemExit(f"cannot start the test servers: {reason}")
    instance = ServerInstance.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-send-") as workdir:
            rate_benchmark(instance.servers, args.messages, args.rounds, Path(workdir))
            memory_benchmark(instance.servers, args.big_mb, Path(workdir))
    finally:
        instance.stop()


if __name__ == "__main__":
    main()
