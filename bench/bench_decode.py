"""Benchmark: extracting a large base64 attachment, and parsing the whole corpus.

Standalone: `python bench/bench_decode.py [--sizes 10,100,1000] [--runs 3] [--corpus DIR]`.
Every tool runs in the same invocation on the same files, as a separate process, and is
measured whole-process (wall time, peak RSS from wait4), as the figures of the tools we compete with were measured:
`mimekit decode FILE -o DIR`, the same reading the message from a pipe (`cat FILE | mimekit
decode -o DIR`: copied to a scratch file as it is parsed), Python's `email` (BytesParser + get_content; up to 100 MB,
as it holds the message several times over), ripMIME (`ripmime -i msg -d dir`), munpack
(`munpack -C dir msg`) when installed, and coreutils' `base64 -d` of the attachment's base64
alone (LF line ends: GNU base64 rejects CR) into a file, the limit for decoding in one
process. Each tool's output is checked against the original attachment, so a fast wrong
answer does not count. Then messages per second over every corpus message, mimekit against
Python's `email`, each in one process parsing and decoding every leaf part.

Goals (issue 16, printed as GOAL lines through bench/goals.py, exit status 1 if one is
missed): at 100 MB (else the largest size) mimekit at most 0.8x ripMIME's time and 1.8x
`base64 -d`'s; peak under 40 MiB at every size and flat (largest size's peak at most 1.25x
the smallest's); from a pipe at most 1.25x the time from the file (ours: a pipe is read as
fast as a file when its buffer is widened, mimekit.streams.files.widen_pipe).
"""

import argparse
import binascii
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from goals import goal, limit, verdict  # noqa: E402
DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"
ATTACHMENT_NAME = "payload.bin"
GNU_TIME = "/usr/bin/time"
PYTHON_EMAIL_MAX_MB = 100   # beyond, Python's email needs gigabytes (734 MiB at 100 MB)
GOAL_SIZE_MB = 100          # the message; the largest size when it is not measured

PYTHON_EMAIL_EXTRACT = """
import sys
from email import policy
from email.parser import BytesParser
with open(sys.argv[1], "rb") as f:
    message = BytesParser(policy=policy.default).parse(f)
for part in message.iter_attachments():
    with open(sys.argv[2] + "/" + part.get_filename(), "wb") as out:
        out.write(part.get_content())
"""

PYTHON_EMAIL_CORPUS = """
import sys, time
from email import policy
from email.parser import BytesParser
paths = sys.argv[1:]
start = time.perf_counter()
for path in paths:
    with open(path, "rb") as f:
        message = BytesParser(policy=policy.default).parse(f)
    for part in message.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)
print(time.perf_counter() - start)
"""

MIMEKIT_CORPUS = """
import sys, time
from mimekit.read.tree import parse_message
paths = sys.argv[1:]
start = time.perf_counter()
for path in paths:
    with open(path, "rb") as f, parse_message(f) as message:
        for part in message.leaves():
            for _ in part.iter_decoded():
                pass
print(time.perf_counter() - start)
"""


def write_message(path: Path, size: int, lf_body: Path | None = None) -> str:
    """A message with one random attachment of `size` bytes, base64 in 76 columns, CRLF;
    with `lf_body`, the same base64 lines with LF ends into that file too (`base64 -d`'s input).

    Returns the attachment's sha256. Written in blocks, so making it is cheap too.
    """
    digest = hashlib.sha256()
    with open(path, "wb") as out, open(lf_body or os.devnull, "wb") as lf_out:
        out.write(b"From: bench@example.com\r\nTo: you@example.com\r\nSubject: bench\r\n"
                  b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
                  b"--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nThe attachment.\r\n"
                  b"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
                  b"Content-Disposition: attachment; filename=\"" + ATTACHMENT_NAME.encode() + b"\"\r\n\r\n")
        remaining = size
        block = 57 * 20000   # whole 76-column lines per block
        while remaining:
            data = os.urandom(min(block, remaining))
            remaining -= len(data)
            digest.update(data)
            encoded = binascii.b2a_base64(data, newline=False)
            lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
            out.write(b"\r\n".join(lines) + b"\r\n")
            if lf_body:
                lf_out.write(b"\n".join(lines) + b"\n")
        out.write(b"--b--\r\n")
    return digest.hexdigest()


def installed_python_env(workdir: Path) -> dict[str, str]:
    """The environment of an installed Python: bytecode cached (here under `workdir`, not in
    the source tree), as pip leaves it. With PYTHONDONTWRITEBYTECODE set, every run would
    compile each module from source again (~0.2 s), which no installed tool pays."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(workdir / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(argv: list[str], workdir: Path, stdout: Path | None = None) -> tuple[float, float, int]:
    """Run `argv` once, its standard output into `stdout` (else nowhere): (wall seconds,
    peak RSS in MiB, exit status).

    Peak RSS comes from GNU time, which forks the tool from its own small process: a
    child forked from this Python would count this process's memory as its own.
    """
    report = workdir / "time.out"
    start = time.perf_counter()
    with open(stdout or os.devnull, "wb") as output:
        process = subprocess.run([GNU_TIME, "-f", "%M", "-o", str(report), *argv],
                                 env=installed_python_env(workdir), stdout=output, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_kib = int(report.read_text().split()[-1])
    return wall, peak_kib / 1024, process.returncode


def extractors(message: Path, lf_body: Path, out: Path, size_mb: int) -> dict[str, tuple[list[str], Path | None]]:
    """Each tool's command line, and the file its standard output goes to (None: nowhere)."""
    mimekit = [sys.executable, "-m", "mimekit_cli", "decode"]
    tools = {"mimekit": ([*mimekit, str(message), "-o", str(out)], None),
             "mimekit, piped": (["sh", "-c", 'file=$1; shift; cat "$file" | "$@"', "sh", str(message), *mimekit,
                                "-o", str(out)], None)}
    if size_mb <= PYTHON_EMAIL_MAX_MB:
        tools["python email"] = ([sys.executable, "-c", PYTHON_EMAIL_EXTRACT, str(message), str(out)], None)
    if shutil.which("ripmime"):
        tools["ripMIME"] = (["ripmime", "-i", str(message), "-d", str(out)], None)
    if shutil.which("munpack"):
        tools["munpack"] = (["munpack", "-q", "-C", str(out), str(message)], None)
    if shutil.which("base64"):
        tools["base64 -d"] = (["base64", "-d", str(lf_body)], out / ATTACHMENT_NAME)
    return tools


def extracted_correctly(out: Path, expected_sha256: str) -> bool:
    for path in out.iterdir():
        with open(path, "rb") as f:
            if hashlib.file_digest(f, "sha256").hexdigest() == expected_sha256:
                return True
    return False


def bench_extraction(sizes_mb: list[int], runs: int, workdir: Path) -> dict:
    """Every tool takes its turn in every round, starting with a different one each time,
    so load from other processes (and the cache left by the tool before) falls on all of
    them alike; the first round warms caches (files, bytecode) and is not counted."""
    results = {}
    out = workdir / "out"
    for size_mb in sizes_mb:
        message = workdir / f"attachment-{size_mb}MB.eml"
        lf_body = workdir / f"attachment-{size_mb}MB.b64"
        sha = write_message(message, size_mb * 1_000_000, lf_body)
        tools = extractors(message, lf_body, out, size_mb)
        walls = {tool: [] for tool in tools}
        peaks = {tool: [] for tool in tools}
        ok = dict.fromkeys(tools, True)
        turns = list(tools.items())
        for run in range(runs + 1):
            for tool, (argv, stdout) in turns[run % len(turns):] + turns[:run % len(turns)]:
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                wall, peak, status = measure(argv, workdir, stdout)
                ok[tool] = ok[tool] and status == 0 and extracted_correctly(out, sha)
                if run:
                    walls[tool].append(wall)
                    peaks[tool].append(peak)
        print(f"\n{size_mb} MB attachment ({message.stat().st_size / 1e6:.0f} MB message), median of {runs}:")
        print(f"  {'tool':<16}{'wall s':>8}{'peak MiB':>10}  ok")
        for tool in tools:
            results[(size_mb, tool)] = (statistics.median(walls[tool]), max(peaks[tool]), ok[tool])
            print(f"  {tool:<16}{statistics.median(walls[tool]):>8.2f}{max(peaks[tool]):>10.1f}  {'yes' if ok[tool] else 'NO'}")
        message.unlink()
        lf_body.unlink()
    return results


def corpus_messages(corpus: Path) -> list[str]:
    return sorted(str(p) for p in corpus.rglob("*") if p.suffix in (".eml", ".msg") and p.is_file())


def bench_corpus(corpus: Path, runs: int, workdir: Path) -> None:
    paths = corpus_messages(corpus)
    if not paths:
        print(f"\nno corpus at {corpus}: messages/s skipped")
        return
    total = sum(os.path.getsize(p) for p in paths)
    print(f"\ncorpus: {len(paths)} messages, {total / 1e6:.1f} MB, parse + decode every leaf, median of {runs}:")
    for tool, script in (("mimekit", MIMEKIT_CORPUS), ("python email", PYTHON_EMAIL_CORPUS)):
        times = []
        for _ in range(runs):
            result = subprocess.run([sys.executable, "-c", script, *paths], capture_output=True, text=True,
                                    cwd=REPO, env=installed_python_env(workdir))
            if result.returncode:
                print(f"  {tool}: failed: {result.stderr.strip().splitlines()[-1:]}")
                break
            times.append(float(result.stdout))
        else:
            seconds = statistics.median(times)
            print(f"  {tool:<14}{len(paths) / seconds:>10.0f} msg/s  ({seconds:.3f} s)")


def summarise(results: dict, sizes_mb: list[int]) -> None:
    print("\ntargets:")
    largest = max(sizes_mb)
    peaks = [results[(s, "mimekit")][1] for s in sizes_mb]
    print(f"  mimekit peak {' -> '.join(f'{p:.1f}' for p in peaks)} MiB (target < 40, flat)")
    mimekit_wall = results[(largest, "mimekit")][0]
    for tool in ("python email", "ripMIME", "munpack", "base64 -d"):
        if (largest, tool) in results:
            print(f"  {largest} MB: {tool} / mimekit = {results[(largest, tool)][0] / mimekit_wall:.2f}x")


def check_goals(results: dict, sizes_mb: list[int]) -> None:
    """The issue's goals, one GOAL line each (bench/goals.py)."""
    size = GOAL_SIZE_MB if GOAL_SIZE_MB in sizes_mb else max(sizes_mb)

    def wall_of(tool: str) -> float:
        """The tool's time; a wrong output never meets a goal."""
        wall, _, ok = results[(size, tool)]
        return wall if ok else float("inf")

    wall = wall_of("mimekit")
    for tool, at_most in (("ripMIME", 0.8), ("base64 -d", 1.8)):
        if (size, tool) in results:
            goal(f"decode -o {size} MB vs {tool}", wall, tool, results[(size, tool)][0], "s", at_most=at_most)
    goal(f"decode -o {size} MB from a pipe vs from the file", wall_of("mimekit, piped"), "from the file", wall, "s",
         at_most=1.25)
    peaks = {s: results[(s, "mimekit")][1] for s in sizes_mb}
    limit("decode -o peak memory, largest of every size", max(peaks.values()), "MiB", at_most=40)
    smallest, largest = min(sizes_mb), max(sizes_mb)
    if largest != smallest:
        goal(f"decode -o peak memory flat, {largest} MB vs {smallest} MB", peaks[largest], f"{smallest} MB",
             peaks[smallest], "MiB", at_most=1.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100", help="attachment sizes in MB, comma-separated (e.g. 10,100,1000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    if not os.access(GNU_TIME, os.X_OK):
        sys.exit(f"{GNU_TIME} (GNU time) is needed to measure peak memory")
    sizes = [int(s) for s in args.sizes.split(",")]
    print("load average before the run: %.1f %.1f %.1f (figures are only comparable within one run)"
          % os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="mimekit-bench-") as workdir:
        results = bench_extraction(sizes, args.runs, Path(workdir))
        bench_corpus(args.corpus, args.runs, Path(workdir))
    summarise(results, sizes)
    check_goals(results, sizes)
    sys.exit(verdict())


if __name__ == "__main__":
    main()
