#!/usr/bin/env python3
"""Encode a random N MB attachment with mimekit, Python's email and mpack; compare.

    python3 bench/bench_encode.py [--sizes 10,100] [--runs 3]

Each tool runs as its own process (interpreter start included, as a user sees it) and
writes the message to a file in the same temporary directory, through stdout for mimekit
and Python's email and with -o for mpack (none of them fsyncs that way). Wall time is the
median of --runs; peak memory is the largest whole-process maximum RSS of those runs, read
with os.wait4 for that one child. Targets (issue 2): mimekit under 40 MiB and flat from the
smallest to the largest size, at least 8x faster than Python's email, within 2x of mpack.
Not a test: the machine's load moves the figures, so only ratios from one run are compared.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
SENDER, RECIPIENT = "bench@example.org", "someone@example.org"

PYTHON_EMAIL = """\
import sys
from email import policy
from email.message import EmailMessage

message = EmailMessage(policy=policy.SMTP)
message["From"], message["To"], message["Subject"] = sys.argv[2], sys.argv[3], "bench"
message.set_content("see the attachment")
with open(sys.argv[1], "rb") as f:
    message.add_attachment(f.read(), maintype="application", subtype="octet-stream",
                           filename="random.bin")
sys.stdout.buffer.write(message.as_bytes())
"""


def run(command: list[str], stdout_path: str) -> tuple[float, int]:
    """Wall seconds and peak RSS in bytes of one process writing stdout to `stdout_path`."""
    for path in command:   # mpack -o refuses to overwrite its output of the previous run
        if path.endswith(".eml") and os.path.exists(path):
            os.unlink(path)
    with open(stdout_path, "wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"{command[0]} failed ({process.returncode}): {process.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss * 1024   # Linux reports kilobytes


def measure(command: list[str], stdout_path: str, runs: int) -> tuple[float, int]:
    results = [run(command, stdout_path) for _ in range(runs)]
    return statistics.median(t for t, _ in results), max(m for _, m in results)


def tools(attachment: str, workdir: str) -> dict[str, list[str]]:
    commands = {
        "mimekit": [sys.executable, "-m", "mimekit_cli", "encode", "--from", SENDER, "--to", RECIPIENT,
                    "--subject", "bench", "--attach", attachment],
        "python-email": [sys.executable, "-c", PYTHON_EMAIL, attachment, SENDER, RECIPIENT],
    }
    if shutil.which("mpack"):
        commands["mpack"] = ["mpack", "-s", "bench", "-o", os.path.join(workdir, "mpack.eml"), attachment]
    return commands


def write_random_file(path: str, size: int) -> None:
    with open(path, "wb") as f:
        for start in range(0, size, 4 * MIB):
            f.write(os.urandom(min(4 * MIB, size - start)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="attachment sizes in MB (10^6 bytes), comma separated")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and size (median time)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    table: dict[tuple[str, int], tuple[float, int]] = {}
    with tempfile.TemporaryDirectory(prefix="mimekit-bench-") as workdir:
        for size in sizes:
            attachment = os.path.join(workdir, f"random-{size}MB.bin")
            write_random_file(attachment, size * 1_000_000)
            for name, command in tools(attachment, workdir).items():
                table[name, size] = measure(command, os.path.join(workdir, f"{name}.out"), args.runs)
                wall, peak = table[name, size]
                print(f"{size:>5} MB  {name:<13} {wall:7.3f} s  {peak / MIB:7.1f} MiB", flush=True)
            os.unlink(attachment)

    print()
    largest, smallest = max(sizes), min(sizes)
    mimekit_wall, mimekit_peak = table["mimekit", largest]
    python_wall, _ = table["python-email", largest]
    peaks = [table["mimekit", size][1] for size in sizes]
    checks = [
        (f"peak memory at {largest} MB < 40 MiB", mimekit_peak < 40 * MIB, f"{mimekit_peak / MIB:.1f} MiB"),
        (f"memory flat from {smallest} to {largest} MB (within 4 MiB)", max(peaks) - min(peaks) < 4 * MIB,
         f"{min(peaks) / MIB:.1f} -> {max(peaks) / MIB:.1f} MiB"),
        ("at least 8x faster than Python's email", python_wall / mimekit_wall >= 8,
         f"{python_wall / mimekit_wall:.1f}x"),
    ]
    if ("mpack", largest) in table:
        mpack_wall = table["mpack", largest][0]
        checks.append(("within 2x of mpack", mimekit_wall <= 2 * mpack_wall,
                       f"mimekit/mpack = {mimekit_wall / mpack_wall:.2f}"))
    else:
        print("mpack not installed: no comparison with it")
    for label, ok, figure in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {figure}")


if __name__ == "__main__":
    main()
