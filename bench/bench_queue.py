#!/usr/bin/env python3
"""Benchmark: `mimekit queue run` of queued small messages against `mimekit send` of the same
files, to the test Postfix on 127.0.0.1 (STARTTLS, certificates verified).

    python3 bench/bench_queue.py [--count 1000] [--rounds 3] [--queue-dir DIR]

Starts the Postfix + Dovecot of tests/servers.py (needs root and the Debian packages).
Each round, alternating, with the Postfix queue drained between runs:
  - `mimekit send FILES...`: one process, one connection, BDAT pipelining;
  - `mimekit queue run DIR` over the same messages queued beforehand (not timed): one
    connection, DATA with PIPELINING (one round trip per message, so that a kill resends
    at most one message) and each message's state recorded with an fsync before the next
    one's content goes;
  - `mimekit send --queue=DIR FILES...`: spooling (two fsync'd files a message) and the
    first try, the whole cost of queued sending.
Messages/s are medians; the ratio is to `send`. The queue directory's file system matters
(every message costs fsyncs): by default a fresh directory under $TMPDIR, printed.
Not a test: the machine's load moves the figures, so only ratios from one run count.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from bench_send import MAILBOX, RECIPIENT, small_message  # noqa: E402
from mimekit.queue import Queue  # noqa: E402
from mimekit.transport.smtp.envelope import prepare_message  # noqa: E402
from mimekit.transport.urls import parse_url  # noqa: E402
from servers import ServerInstance, servers_available  # noqa: E402


def mimekit(*args: str) -> float:
    """Seconds one `mimekit` process took; it must succeed."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"mimekit {args[0]} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return seconds


def benchmark(servers, count: int, rounds: int, workdir: Path, queue_root: Path) -> None:
    paths = []
    for n in range(count):
        paths.append(str(workdir / f"m{n:05d}.eml"))
        Path(paths[-1]).write_bytes(small_message(n))
    server = f"smtp://{servers.host}:{servers.smtp_plain}"
    common = ["--cafile", str(servers.ca_file), "--to", RECIPIENT]
    url = parse_url(server, {"smtp"})

    def queue_run() -> float:
        directory = tempfile.mkdtemp(prefix="queue-", dir=queue_root)
        with Queue(directory) as queue:
            for path in paths:
                queue.spool(prepare_message(path, to=[RECIPIENT]), url, cafile=str(servers.ca_file))
        return mimekit("queue", "run", "-q", directory)

    runs = {"mimekit send": lambda: mimekit("send", "-q", "--server", server, *common, *paths),
            "mimekit queue run": queue_run,
            "mimekit send --queue": lambda: mimekit(
                "send", "-q", f"--queue={tempfile.mkdtemp(prefix='queue-', dir=queue_root)}",
                "--server", server, *common, *paths)}
    delivered = len(servers.messages(MAILBOX))
    timings = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            timings[name].append(run())
            delivered += count
            servers.wait_for_messages(MAILBOX, delivered, timeout=600)   # Postfix drained
    filesystem = subprocess.run(["stat", "-f", "-c", "%T", str(queue_root)], capture_output=True,
                                text=True).stdout.strip()
    print(f"\n{count} small messages ({len(small_message(0))} bytes) to the test Postfix over STARTTLS, "
          f"median of {rounds}; queue in {queue_root} ({filesystem})")
    rates = {name: count / statistics.median(seconds) for name, seconds in timings.items()}
    for name, seconds in timings.items():
        each = ", ".join(f"{count / s:.0f}" for s in seconds)
        print(f"  {name:22s} {rates[name]:7.0f} msg/s  [{each}]  x{rates[name] / rates['mimekit send']:.2f} "
              "vs send")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000, help="messages per run (default 1000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queue-dir", type=Path, help="where the queues go (default: a directory under $TMPDIR)")
    args = parser.parse_args()
    reason = servers_available()
    if reason:
        raise SystemExit(f"cannot start the test servers: {reason}")
    instance = ServerInstance.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-queue-") as workdir:
            queue_root = args.queue_dir or Path(workdir) / "queues"
            queue_root.mkdir(parents=True, exist_ok=True)
            benchmark(instance.servers, args.count, args.rounds, Path(workdir), queue_root)
    finally:
        instance.stop()


if __name__ == "__main__":
    main()
