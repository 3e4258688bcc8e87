#!/usr/bin/env python3
"""What each reader recovers of files hidden behind MIME tricks, and what `decode --all-readings` costs.

    python3 bench/bench_readings.py [--size-mb 100] [--count 2000] [--runs 3] [--quick]
                                    [--skip-recovery] [--skip-cost]

Recovery: fixtures/evasion.py builds messages that each hide one zip behind one trick.
Every reader extracts every message into a folder of its own; a payload counts as
recovered when some file written under that folder (or, for Python's email, some decoded
part) has its sha256. Readers: mimekit `decode -o` (default reading), mimekit
`decode --all-readings -o`, ripMIME (`ripmime -i MSG -d DIR`), munpack (`munpack -q -C DIR
MSG`), Python's email (message_from_bytes with policy.default, and with compat32: walk(),
get_payload(decode=True); either counts), and the peers together (any of the last three).
A peer that is not installed is left out. Printed per trick class, in total, and per label.

Cost: `decode -o` of one message with a --size-mb random base64 attachment, default against
--all-readings (median of --runs, wall time of the whole process, peak RSS from GNU time);
then `decode -o --jobs 1` of a Maildir of --count generated messages
(bench/generate_mailboxes.py), the same two ways.

Goals (issue 11): --all-readings recovers more than 90% of the payloads, more than every
peer and more than the peers together; it costs at most 1.3x the default on the large
attachment and at most 2x on the small messages. Exits 1 when a goal is missed. Ratios are
measured in one run, on the same files; other load on the machine moves the absolute figures.
"""

import argparse
import email
import email.policy
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from bench_decode import GNU_TIME, installed_python_env, measure, write_message
from generate_mailboxes import generate_messages, write_mailboxes

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "fixtures"))

from evasion import TRICK_CLASSES, EvasionMessage, evasion_messages  # noqa: E402

MIMEKIT = [sys.executable, "-m", "mimekit_cli"]
ALL_READINGS = "--all-readings"
RECOVERY_GOAL = 0.90
LARGE_RATIO_GOAL = 1.3
SMALL_RATIO_GOAL = 2.0
PEERS = ("ripMIME", "munpack", "Python email")
TOGETHER = "peers together"


def digests_under(folder: Path) -> set[str]:
    """sha256 of every file under `folder`, however deep."""
    found = set()
    for directory, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(directory, name), "rb") as f:
                found.add(hashlib.file_digest(f, "sha256").hexdigest())
    return found


def mimekit_digests(message_dir: Path, out: Path, options: list[str], workdir: Path) -> dict[str, set[str]] | None:
    """One `mimekit decode` of the whole directory (a folder per message): digests by file
    name, or None when the run failed as a whole (an unknown option)."""
    process = subprocess.run([*MIMEKIT, "decode", *options, "--json", "--jobs", "1", "-q", str(message_dir),
                              "-o", str(out)], capture_output=True, env=installed_python_env(workdir))
    records = [record for line in process.stdout.splitlines() if line.strip()
               and "source" in (record := json.loads(line))]
    if not records:
        print(f"  mimekit decode {' '.join(options)} failed: {process.stderr.decode(errors='replace').strip()[:300]}")
        return None
    if errors := [record["error"]["message"] for record in records if "error" in record]:
        print(f"  mimekit decode {' '.join(options)}: {len(errors)} messages failed, the first: {errors[0][:300]}")
    return {Path(record["source"]).name: digests_under(Path(record["directory"])) if "directory" in record else set()
            for record in records}


def ripmime_digests(message: Path, out: Path) -> set[str]:
    subprocess.run(["ripmime", "-i", str(message), "-d", str(out)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return digests_under(out)


def munpack_digests(message: Path, out: Path) -> set[str]:
    subprocess.run(["munpack", "-q", "-C", str(out), str(message.resolve())], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return digests_under(out)


def python_email_digests(message: Path) -> set[str]:
    """Every decoded leaf, as policy.default and as compat32 read the message."""
    found = set()
    data = message.read_bytes()
    for policy in (email.policy.default, email.policy.compat32):
        try:
            for part in email.message_from_bytes(data, policy=policy).walk():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    found.add(hashlib.sha256(payload).hexdigest())
        except Exception:   # a peer's crash on a hostile message is a miss, not the end of the benchmark
            continue
    return found


def recovery(cases: list[EvasionMessage], workdir: Path) -> dict[str, list[bool] | None]:
    """Per reader, per message (in `cases` order): was the payload recovered? None: the reader is missing."""
    message_dir = workdir / "messages"
    message_dir.mkdir()
    paths = []
    for number, case in enumerate(cases):
        paths.append(message_dir / f"{number:04d}.eml")
        paths[-1].write_bytes(case.message)
    wanted = [hashlib.sha256(case.payload).hexdigest() for case in cases]
    results: dict[str, list[bool] | None] = {}
    for label, options in (("mimekit default", []), ("mimekit --all-readings", [ALL_READINGS])):
        digests = mimekit_digests(message_dir, workdir / label.replace(" ", "_"), options, workdir)
        results[label] = None if digests is None else [sha in digests.get(path.name, set())
                                                        for path, sha in zip(paths, wanted)]
    peers = {"ripMIME": ("ripmime", ripmime_digests), "munpack": ("munpack", munpack_digests)}
    for label, (tool, digests_of) in peers.items():
        if shutil.which(tool) is None:
            print(f"  {tool} is not installed: left out")
            results[label] = None
            continue
        found = []
        for path, sha in zip(paths, wanted):
            out = workdir / tool / path.stem
            out.mkdir(parents=True)
            found.append(sha in digests_of(path, out))
        results[label] = found
    results["Python email"] = [sha in python_email_digests(path) for path, sha in zip(paths, wanted)]
    present = [results[peer] for peer in PEERS if results[peer] is not None]
    results[TOGETHER] = [any(column) for column in zip(*present)]
    return results


def _count(found: list[bool] | None, indices: list[int]) -> str:
    return "n/a" if found is None else f"{sum(found[i] for i in indices)}/{len(indices)}"


def print_table(title: str, groups: dict[str, list[int]], results: dict[str, list[bool] | None]) -> None:
    readers = list(results)
    width = max(len(group) for group in groups) + 2
    print(f"\n{title}")
    print(" " * width + "".join(f"{reader:>24}" for reader in readers))
    for group, indices in groups.items():
        print(f"{group:<{width}}" + "".join(f"{_count(results[reader], indices):>24}" for reader in readers))


def report_recovery(cases: list[EvasionMessage], results: dict[str, list[bool] | None]) -> list[str]:
    """Print the tables; return the goals missed."""
    by_class: dict[str, list[int]] = {trick_class: [] for trick_class in TRICK_CLASSES}
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, case in enumerate(cases):
        by_class[case.trick_class].append(index)
        by_label[case.reading or "(default reading)"].append(index)
    everything = list(range(len(cases)))
    print_table(f"{len(cases)} messages, payloads recovered per trick class:", {**by_class, "total": everything},
                results)
    print_table("per reading label:", dict(sorted(by_label.items())), results)
    total = {reader: None if found is None else sum(found) / len(found) for reader, found in results.items()}
    print("\nrecovery rates: " + ", ".join(f"{reader} {'n/a' if rate is None else f'{rate:.0%}'}"
                                            for reader, rate in total.items()))
    ours = total["mimekit --all-readings"]
    if ours is None:
        return ["mimekit --all-readings did not run"]
    missed = []
    if ours <= RECOVERY_GOAL:
        missed.append(f"--all-readings recovers {ours:.0%}, goal > {RECOVERY_GOAL:.0%}")
    for reader in (*PEERS, TOGETHER):
        if total[reader] is not None and ours <= total[reader]:
            missed.append(f"--all-readings ({ours:.0%}) is not above {reader} ({total[reader]:.0%})")
    return missed


def median_walls(argvs: dict[str, list[str]], runs: int, out: Path, workdir: Path) -> dict[str, tuple[float, float]]:
    """Median wall and largest peak RSS per job over `runs` rounds, the jobs taking turns
    (so load from other processes falls on both alike); OUT emptied before every job."""
    walls: dict[str, list[float]] = {label: [] for label in argvs}
    peaks: dict[str, list[float]] = {label: [] for label in argvs}
    turns = list(argvs.items())
    for run in range(runs):
        for label, argv in turns[run % len(turns):] + turns[:run % len(turns)]:
            shutil.rmtree(out, ignore_errors=True)
            wall, peak, status = measure(argv, workdir)
            if status != 0:
                raise RuntimeError(f"{label} exited {status}: {' '.join(argv)}")
            walls[label].append(wall)
            peaks[label].append(peak)
    return {label: (statistics.median(walls[label]), max(peaks[label])) for label in argvs}


def cost(title: str, decode_args: list[str], goal: float, runs: int, workdir: Path) -> list[str]:
    out = workdir / "out"
    jobs = {"default": [*MIMEKIT, "decode", *decode_args, "-o", str(out)],
            ALL_READINGS: [*MIMEKIT, "decode", ALL_READINGS, *decode_args, "-o", str(out)]}
    results = median_walls(jobs, runs, out, workdir)
    print(f"\n{title}, median of {runs}:")
    for label, (wall, peak) in results.items():
        print(f"  decode {label:<16}{wall:>8.2f} s{peak:>9.1f} MiB")
    ratio = results[ALL_READINGS][0] / results["default"][0]
    print(f"  --all-readings / default = {ratio:.2f}x (goal <= {goal}x)")
    return [] if ratio <= goal else [f"{title}: --all-readings costs {ratio:.2f}x the default, goal <= {goal}x"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="the large attachment, in MB")
    parser.add_argument("--count", type=int, default=2_000, help="small messages in the Maildir")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="--size-mb 10 --count 300 --runs 1")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.size_mb, args.count, args.runs = 10, 300, 1
    if not args.skip_cost and not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"{GNU_TIME} (GNU time) is needed to measure peak memory")
    print("load average before the run: %.1f %.1f %.1f (figures are only comparable within one run)" % os.getloadavg())
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mimekit-bench-readings-") as name:
        workdir = Path(name)
        if not args.skip_recovery:
            cases = evasion_messages()
            (workdir / "recovery").mkdir()
            missed += report_recovery(cases, recovery(cases, workdir / "recovery"))
        if not args.skip_cost:
            large = workdir / "large.eml"
            write_message(large, args.size_mb * 1_000_000)
            # One untimed decode writes the bytecode cache an installed package has.
            measure([*MIMEKIT, "decode", str(large), "-o", str(workdir / "warm-up")], workdir)
            shutil.rmtree(workdir / "warm-up")
            missed += cost(f"one message, {args.size_mb} MB base64 attachment", [str(large)], LARGE_RATIO_GOAL,
                           args.runs, workdir)
            large.unlink()
            maildir = workdir / "maildir"
            write_mailboxes(generate_messages(args.count), maildir=maildir)
            missed += cost(f"Maildir of {args.count} generated messages", ["--jobs", "1", "-q", str(maildir)],
                           SMALL_RATIO_GOAL, args.runs, workdir)
    if missed:
        print("\ngoals missed:\n  " + "\n  ".join(missed))
        sys.exit(1)
    print("\nevery goal met")


if __name__ == "__main__":
    main()
