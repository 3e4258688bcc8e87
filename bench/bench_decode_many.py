#!/usr/bin/env python3
"""`mimekit decode DIR -o OUT` of many messages with attachments, --jobs 1 against --jobs 2, and against shell loops of ripMIME and munpack.

    python3 bench/bench_decode_many.py [--count 2000] [--runs 1] [--quick]

Generates (bench/generate_mailboxes.py, seeded) a directory of --count .eml files, each
with one or two base64 attachments of 5-50 KB beside a text or text + HTML body. Each
job puts every message's parts into a folder of its own:
- `mimekit decode DIR -o OUT` with --jobs 1 and --jobs 2 (a folder per message is what
  decode does with many messages); the same messages as one mbox, read from the file
  and from a pipe (`cat box.mbox | mimekit decode -o OUT mbox:-`), --jobs 2 both;
- `for f in DIR/*.eml; do mkdir OUT/NAME; ripmime -i $f -d OUT/NAME; done`, and the
  same loop of `munpack -q -C OUT/NAME $f`: neither reads more than one message.
Every job runs as its own process, in the same run, on the same files, measured whole
(wall time, peak RSS from GNU time; with --jobs 2 that is the largest single process).
Each output is checked: the count of generated attachments found byte for byte (by
sha256) anywhere under OUT, so a fast incomplete answer shows as such.

Goals (issue 10): the speed-up of --jobs 2 over --jobs 1 shown; the ratios to ripMIME and
munpack reported, and the pipe's to the file. Not a test: other load on the machine moves
the figures; compare the ratios of one run.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_decode import GNU_TIME, measure
from generate_mailboxes import generate_messages, write_mailboxes

MIMEKIT = [sys.executable, "-m", "mimekit_cli"]
# Each message into its own folder, named after the file, as decode names them.
SHELL_LOOP = 'for f in "$1"/*.eml; do d="$2/${f##*/}"; mkdir "$d" && %s || exit 1; done'


def decoders(eml_dir: Path, mbox: Path, out: Path) -> dict[str, list[str]]:
    decode = [*MIMEKIT, "decode", "--quiet", "-o", str(out)]
    tools = {f"mimekit decode --jobs {jobs}": [*decode, "--jobs", str(jobs), str(eml_dir)] for jobs in (1, 2)}
    tools["mimekit, the mbox"] = [*decode, "--jobs", "2", str(mbox)]
    tools["mimekit, mbox piped"] = ["sh", "-c", 'file=$1; shift; cat "$file" | "$@"', "sh", str(mbox), *decode,
                                    "--jobs", "2", "mbox:-"]
    if shutil.which("ripmime"):
        tools["ripmime loop"] = ["sh", "-c", SHELL_LOOP % 'ripmime -i "$f" -d "$d"', "sh", str(eml_dir), str(out)]
    if shutil.which("munpack"):
        tools["munpack loop"] = ["sh", "-c", SHELL_LOOP % 'munpack -q -C "$d" "$f" >/dev/null', "sh", str(eml_dir),
                                 str(out)]
    return tools


def attachments_found(out: Path, expected: set[str]) -> int:
    """How many of the expected attachments (sha256) some file under `out` holds."""
    found = set()
    for folder, _, files in os.walk(out):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                found.add(hashlib.file_digest(f, "sha256").hexdigest())
    return len(expected & found)


def timed_rounds(tools: dict[str, list[str]], runs: int, out: Path, expected: set[str], workdir: Path) -> dict:
    """Median wall, largest peak, fewest attachments found, per tool over `runs` rounds;
    each round starts with a different tool, so load from other processes falls on all
    of them alike. OUT is emptied before every job."""
    walls = {label: [] for label in tools}
    peaks = {label: [] for label in tools}
    found = {label: len(expected) for label in tools}
    turns = list(tools.items())
    for run in range(runs):
        for label, argv in turns[run % len(turns):] + turns[:run % len(turns)]:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            wall, peak, status = measure(argv, workdir)
            walls[label].append(wall)
            peaks[label].append(peak)
            found[label] = min(found[label], attachments_found(out, expected) if status == 0 else -1)
    return {label: (statistics.median(walls[label]), max(peaks[label]), found[label]) for label in tools}


def report(results: dict, count: int, attachments: int) -> None:
    print(f"\n{count} messages, {attachments} attachments, median of the runs:")
    print(f"  {'job':<24}{'wall s':>8}{'msg/s':>8}{'peak MiB':>10}  attachments found")
    for label, (wall, peak, found) in results.items():
        print(f"  {label:<24}{wall:>8.2f}{count / wall:>8.0f}{peak:>10.1f}  "
              + ("job failed" if found < 0 else f"{found}/{attachments}"))
    wall = {label: result[0] for label, result in results.items()}
    one, two = wall["mimekit decode --jobs 1"], wall["mimekit decode --jobs 2"]
    print("\nratios:")
    print(f"  --jobs 2 is {one / two:.2f}x as fast as --jobs 1 ({os.cpu_count()} cores)")
    for tool in ("ripmime loop", "munpack loop"):
        if tool in wall:
            print(f"  {tool} / mimekit --jobs 2 = {wall[tool] / two:.2f}x;  {tool} / mimekit --jobs 1 = {wall[tool] / one:.2f}x")
    print(f"  the mbox from a pipe (mbox:-) takes {wall['mimekit, mbox piped'] / wall['mimekit, the mbox']:.2f}x "
          f"the time from the file (--jobs 2 both)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="--count 300")
    args = parser.parse_args()
    if args.quick:
        args.count = 300
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"{GNU_TIME} (GNU time) is needed to measure peak memory")
    print("load average before the run: %.1f %.1f %.1f (figures are only comparable within one run)" % os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="mimekit-bench-decode-many-") as name:
        workdir = Path(name)
        eml_dir, out = workdir / "messages", workdir / "out"
        expected: set[str] = set()
        start = time.perf_counter()

        def remembered(messages):
            for message in messages:
                expected.update(message.attachments)
                yield message

        write_mailboxes(remembered(generate_messages(args.count, attachment_share=1.0)), eml_dir=eml_dir,
                        mbox=workdir / "box.mbox")
        print(f"generated {args.count} messages with {len(expected)} attachments in {time.perf_counter() - start:.1f} s")
        # One untimed decode writes the bytecode cache an installed package has.
        measure([*MIMEKIT, "decode", str(next(eml_dir.iterdir())), "-o", str(workdir / "warm-up")], workdir)
        results = timed_rounds(decoders(eml_dir, workdir / "box.mbox", out), args.runs, out, expected, workdir)
    report(results, args.count, len(expected))


if __name__ == "__main__":
    main()
