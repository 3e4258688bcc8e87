"""Benchmark: `mimekit check` of a message with a large base64 attachment, against
`mimekit decode -o` of the same message.

Standalone: `python bench/bench_check.py [--size 200] [--runs 3]`.
Both commands run in the same invocation on the same file, each as a separate process
with its bytecode cached, measured whole-process (wall time, peak RSS) by bench_decode's
`measure`. A fast wrong answer does not count: decode must extract the attachment
intact, and check must find exactly what the bench message lacks (its Date and
Message-ID headers: missing-header twice) and nothing else.

Goal (issue 16): check at most 2x the time of decode -o, peak memory under 40 MiB.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_decode import GNU_TIME, extracted_correctly, installed_python_env, measure, write_message  # noqa: E402
from goals import goal, limit, verdict  # noqa: E402

# What check reports of write_message's message: the two headers RFC 5322 requires that it lacks.
EXPECTED_FINDINGS = [("missing-header", "Date"), ("missing-header", "Message-Id")]
EXIT_DATAERR = 65


def commands(message: Path, out: Path) -> dict[str, list[str]]:
    mimekit = [sys.executable, "-m", "mimekit_cli"]
    return {"check": [*mimekit, "check", "-q", str(message)],
            "decode -o": [*mimekit, "decode", str(message), "-o", str(out)]}


def check_finds_what_is_missing(message: Path, workdir: Path) -> bool:
    """One untimed `check --json` run: exit 65 with exactly EXPECTED_FINDINGS."""
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "check", "--json", str(message)],
                            capture_output=True, text=True, env=installed_python_env(workdir))
    violations = json.loads(result.stdout)["violations"] if result.stdout else []
    findings = [(violation["rule"], violation["detail"].split()[0]) for violation in violations]
    return result.returncode == EXIT_DATAERR and findings == EXPECTED_FINDINGS


def bench(size_mb: int, runs: int, workdir: Path) -> dict[str, tuple[float, float]]:
    """Median wall time and highest peak of each command. The two take turns, starting
    with a different one each round, and the first round (warming caches) is not counted."""
    message, out = workdir / f"attachment-{size_mb}MB.eml", workdir / "out"
    sha256 = write_message(message, size_mb * 1_000_000)
    tools = commands(message, out)
    walls: dict[str, list[float]] = {tool: [] for tool in tools}
    peaks: dict[str, list[float]] = {tool: [] for tool in tools}
    correct = {"check": check_finds_what_is_missing(message, workdir), "decode -o": True}
    expected_status = {"check": EXIT_DATAERR, "decode -o": 0}
    turns = list(tools.items())
    for run in range(runs + 1):
        for tool, argv in turns[run % len(turns):] + turns[:run % len(turns)]:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            wall, peak, status = measure(argv, workdir)
            correct[tool] = correct[tool] and status == expected_status[tool]
            if tool == "decode -o":
                correct[tool] = correct[tool] and extracted_correctly(out, sha256)
            if run:
                walls[tool].append(wall)
                peaks[tool].append(peak)
    print(f"\n{size_mb} MB attachment ({message.stat().st_size / 1e6:.0f} MB message), median of {runs}:")
    print(f"  {'command':<12}{'wall s':>8}{'peak MiB':>10}  correct")
    results = {}
    for tool in tools:
        results[tool] = (statistics.median(walls[tool]), max(peaks[tool]))
        print(f"  {tool:<12}{results[tool][0]:>8.2f}{results[tool][1]:>10.1f}  {'yes' if correct[tool] else 'NO'}")
    if not all(correct.values()):
        sys.exit("a command gave a wrong answer: its figures mean nothing")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=200, help="attachment size in MB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"{GNU_TIME} (GNU time) is needed to measure peak memory")
    print("load average before the run: %.1f %.1f %.1f (figures are only comparable within one run)"
          % os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="mimekit-bench-") as workdir:
        results = bench(args.size, args.runs, Path(workdir))
    (check_wall, check_peak), (decode_wall, _) = results["check"], results["decode -o"]
    goal(f"check {args.size} MB attachment", check_wall, "decode -o", decode_wall, "s", at_most=2)
    limit(f"check {args.size} MB attachment peak", check_peak, "MiB", at_most=40)
    sys.exit(verdict())


if __name__ == "__main__":
    main()
