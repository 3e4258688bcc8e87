#!/usr/bin/env python3
"""`mimekit scan` of a whole Maildir and mbox, against mblaze (mlist | mscan) and Python's mailbox + email.

    python3 bench/bench_scan.py [--count 10000] [--small 2000] [--runs 1] [--quick]

Generates (bench/generate_mailboxes.py, seeded) a Maildir and an mbox of the same
--count messages, and both again with the first --small of them. Every tool runs as its
own process, in the same run, on the same files (warm in the page cache), its stdout
going to a file (not a terminal) whose lines are counted: a tool that does not print one
line per message is marked NO. Measured whole-process with GNU time (wall, peak RSS):
- `mimekit scan DIR` with --jobs 1 and --jobs 2 (and the default when the machine does
  not have 2 cores), and with --fields cut to mscan's columns (no attachment count, so
  header blocks only); `mimekit scan MBOX`;
- `mlist DIR | mscan` (mblaze): mscan reads Maildirs and message files, not mbox files,
  so the mbox has no mblaze figure;
- Python: mailbox.Maildir / mailbox.mbox, BytesHeaderParser(policy=default), printing
  Date, From and Subject per message.
Then mimekit's peak memory at --small and --count messages (flat is the goal; with
--jobs 2 GNU time reports the largest single process, not the sum), and start-up: the
wall time of `mimekit scan ONE.eml` over 20 runs beside `python -c pass`.

Goals (issue 10): within 3x of mscan's time; >= 5x Python's messages/s; peak memory flat
in the number of messages; start-up < 80 ms. Not a test: other load on the machine moves
the figures; compare the ratios of one run.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_decode import GNU_TIME, installed_python_env
from generate_mailboxes import generate_messages, write_mailboxes

MIMEKIT = [sys.executable, "-m", "mimekit_cli"]
MSCAN_FIELDS = "source,flags,date,from,subject"
STARTUP_RUNS = 20
MEMORY_LABELS = ("maildir mimekit --jobs 1", "maildir mimekit --jobs 2", "mbox mimekit (default jobs)")

PYTHON_SCAN = """
import mailbox, sys
from email import policy
from email.parser import BytesHeaderParser
kind, path = sys.argv[1:]
box = (mailbox.Maildir if kind == "maildir" else mailbox.mbox)(path, factory=None, create=False)
parser = BytesHeaderParser(policy=policy.default)
write = sys.stdout.write
for key in box.iterkeys():
    with box.get_file(key) as f:
        headers = parser.parse(f)
    write(f"{key}\\t{headers['Date']}\\t{headers['From']}\\t{headers['Subject']}\\n")
"""


def measure(argv: list[str], workdir: Path) -> tuple[float, float, int]:
    """Run `argv` once, stdout into a file: (wall seconds, peak RSS in MiB, lines printed,
    or -1 when the tool failed). GNU time forks the tool, so the peak is the tool's own
    (a child forked from this Python would count this process's memory)."""
    report, output = workdir / "time.out", workdir / "stdout.txt"
    with open(output, "wb") as out:
        start = time.perf_counter()
        process = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(report), *argv], env=installed_python_env(workdir),
                                 stdout=out, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
    with open(output, "rb") as f:
        lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    peak_mib = int(report.read_text().split()[-1]) / 1024
    return wall, peak_mib, lines if process.returncode == 0 else -1


def scan_tools(maildir: Path, mbox: Path) -> dict[str, list[str]]:
    """Every command timed, by label; the label's first word is the layout it reads."""
    jobs = ["--jobs 1", "--jobs 2"] + ([] if os.cpu_count() == 2 else [""])
    tools = {f"maildir mimekit {j or '(default jobs)'}": [*MIMEKIT, "scan", *j.split(), str(maildir)] for j in jobs}
    tools["maildir mimekit --jobs 2 --fields F"] = [*MIMEKIT, "scan", "--jobs", "2", "--fields",
                                                                  MSCAN_FIELDS, str(maildir)]
    tools["maildir mlist | mscan"] = ["sh", "-c", 'mlist "$1" | mscan', "sh", str(maildir)]
    tools["maildir python mailbox+email"] = [sys.executable, "-c", PYTHON_SCAN, "maildir", str(maildir)]
    tools["mbox mimekit (default jobs)"] = [*MIMEKIT, "scan", str(mbox)]
    tools["mbox python mailbox+email"] = [sys.executable, "-c", PYTHON_SCAN, "mbox", str(mbox)]
    return tools


def timed_rounds(tools: dict[str, list[str]], runs: int, expected_lines: int, workdir: Path) -> dict:
    """Median wall and largest peak per tool over `runs` rounds; each round starts with a
    different tool, so load from other processes falls on all of them alike."""
    walls = {label: [] for label in tools}
    peaks = {label: [] for label in tools}
    ok = dict.fromkeys(tools, True)
    turns = list(tools.items())
    for run in range(runs):
        for label, argv in turns[run % len(turns):] + turns[:run % len(turns)]:
            wall, peak, lines = measure(argv, workdir)
            walls[label].append(wall)
            peaks[label].append(peak)
            ok[label] = ok[label] and lines == expected_lines
    return {label: (statistics.median(walls[label]), max(peaks[label]), ok[label]) for label in tools}


def startup(message: Path, workdir: Path) -> dict[str, list[float]]:
    """Wall times of a one-message scan and of an empty Python, alternated, after one
    untimed run of each (which writes the bytecode cache an installed package has)."""
    commands = {"mimekit scan ONE.eml": [*MIMEKIT, "scan", str(message)], "python -c pass": [sys.executable, "-c", "pass"]}
    times = {label: [] for label in commands}
    for run in range(STARTUP_RUNS + 1):
        for label, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, env=installed_python_env(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True)
            if run:
                times[label].append(time.perf_counter() - start)
    return times


def report(results: dict, count: int, small_peaks: dict, startup_times: dict) -> None:
    print(f"\n{count} messages, median of the runs:")
    print(f"  {'command':<46}{'wall s':>8}{'msg/s':>9}{'peak MiB':>10}  ok")
    for label, (wall, peak, ok) in results.items():
        print(f"  {label:<46}{wall:>8.2f}{count / wall:>9.0f}{peak:>10.1f}  {'yes' if ok else 'NO'}")
    print(f"  F = {MSCAN_FIELDS}: mscan's columns, no attachment count, so header blocks only")
    print("  mbox mlist | mscan: n/a (mblaze's mscan reads Maildirs and message files, it has no mbox reader)")

    wall = {label: result[0] for label, result in results.items()}
    maildir_mimekit = wall["maildir mimekit --jobs 2"]
    print("\ngoals:")
    print(f"  Maildir: mimekit --jobs 2 takes {maildir_mimekit / wall['maildir mlist | mscan']:.1f}x mscan's time "
          f"(goal <= 3x); with mscan's fields {wall['maildir mimekit --jobs 2 --fields F'] / wall['maildir mlist | mscan']:.1f}x")
    for layout, mimekit_label in (("Maildir", "maildir mimekit --jobs 2"), ("Maildir", "maildir mimekit --jobs 1"),
                                  ("mbox", "mbox mimekit (default jobs)")):
        python = wall[f"{layout.lower()} python mailbox+email"]
        print(f"  {layout}: {mimekit_label.split(' ', 1)[1]} is {python / wall[mimekit_label]:.1f}x as fast as Python's"
              f" mailbox + email (goal >= 5x)")
    print(f"  --jobs 2 against --jobs 1 (Maildir): {wall['maildir mimekit --jobs 1'] / maildir_mimekit:.2f}x")
    for label, small_peak in small_peaks.items():
        print(f"  peak memory, {label}: {small_peak:.1f} MiB -> {results[label][1]:.1f} MiB (goal: flat)")
    mimekit_times, python_times = startup_times["mimekit scan ONE.eml"], startup_times["python -c pass"]
    print(f"  start-up over {STARTUP_RUNS} runs: mimekit scan ONE.eml median {statistics.median(mimekit_times) * 1000:.0f} ms,"
          f" max {max(mimekit_times) * 1000:.0f} ms (goal < 80 ms); python -c pass median"
          f" {statistics.median(python_times) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages in the mailboxes timed")
    parser.add_argument("--small", type=int, default=2_000, help="messages in the mailboxes whose peak memory is compared")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="--count 2000 --small 500")
    args = parser.parse_args()
    if args.quick:
        args.count, args.small = 2_000, 500
    for tool in (GNU_TIME, "mlist", "mscan"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (GNU time for peak memory, mblaze for the baseline)")
    print("load average before the run: %.1f %.1f %.1f (figures are only comparable within one run)" % os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="mimekit-bench-scan-") as name:
        workdir = Path(name)
        os.environ["MBLAZE"] = str(workdir / "mblaze")   # mblaze's profile and sequence, not the user's
        (workdir / "mblaze").mkdir()
        (workdir / "mblaze" / "seq").touch()
        start = time.perf_counter()
        write_mailboxes(generate_messages(args.count), workdir / "maildir", workdir / "box.mbox")
        write_mailboxes(generate_messages(args.small), workdir / "small-maildir", workdir / "small.mbox")
        print(f"generated {args.count} and {args.small} messages as a Maildir and an mbox"
              f" ({(workdir / 'box.mbox').stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s")
        startup_times = startup(next((workdir / "maildir" / "cur").iterdir()), workdir)
        results = timed_rounds(scan_tools(workdir / "maildir", workdir / "box.mbox"), args.runs, args.count, workdir)
        small_tools = scan_tools(workdir / "small-maildir", workdir / "small.mbox")
        small = timed_rounds({label: small_tools[label] for label in MEMORY_LABELS}, 1, args.small, workdir)
    report(results, args.count, {label: small[label][1] for label in MEMORY_LABELS}, startup_times)


if __name__ == "__main__":
    main()
