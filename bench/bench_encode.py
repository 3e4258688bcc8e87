#!/usr/bin/env python3
"""Encode a random N MB attachment with mimekit, coreutils base64, mpack and Python's email; compare.

    python3 bench/bench_encode.py [--sizes 10,100] [--runs 3]

Each tool runs as its own process, as a user runs it (interpreter start included; Python with
its bytecode cached, as an installed one has it), and writes to a file in the same temporary
directory: through stdout for mimekit, `base64 -w76` and Python's email, with -o for mpack
(none of them fsyncs that way). The tools take turns in every round, each round starting with
another one, so load from other processes falls on all of them alike; the first round warms
the caches and is not counted. Wall time is the median of --runs, and so is CPU time (user +
system: what load from other processes moves least, shown beside it); peak memory is the
largest whole-process maximum RSS (GNU time) of those runs. mimekit's attachment must be exactly
base64's output with CRLF line ends, or the benchmark stops: a fast wrong answer does not count.

Goals, at the largest size, printed by goals.py: issue 16, mimekit at most 2x `base64 -w76`
and 0.35x mpack, peak under 40 MiB; issue 2, peak flat from the smallest size to the largest
(a spread of at most 4 MiB) and at least 8x faster than Python's email (a time ratio of at most 0.125).
Not a test: the machine's load moves the figures, so only ratios from one run are compared.
"""

import argparse
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_decode import GNU_TIME, installed_python_env  # noqa: E402
from goals import goal, limit, verdict  # noqa: E402

MIB = 1024 * 1024
SENDER, RECIPIENT = "bench@example.org", "someone@example.org"
PEERS = ("base64", "mpack")   # the C tools the goals compare with: the benchmark needs them

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


def tools(attachment: Path, workdir: Path) -> dict[str, tuple[list[str], Path]]:
    """Each tool's command line and the file its output goes to."""
    return {
        "mimekit": ([sys.executable, "-m", "mimekit_cli", "encode", "--from", SENDER, "--to", RECIPIENT,
                     "--subject", "bench", "--attach", str(attachment)], workdir / "mimekit.eml"),
        "base64": (["base64", "-w76", str(attachment)], workdir / "base64.out"),
        "mpack": (["mpack", "-s", "bench", "-o", str(workdir / "mpack.eml"), str(attachment)], workdir / "mpack.eml"),
        "python-email": ([sys.executable, "-c", PYTHON_EMAIL, str(attachment), SENDER, RECIPIENT],
                         workdir / "python-email.eml"),
    }


def run(argv: list[str], output: Path, workdir: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS in bytes of one process; what it writes to stdout goes to
    `output`, unless it names `output` itself (mpack -o, which refuses to overwrite it)."""
    output.unlink(missing_ok=True)
    report = workdir / "time.out"
    writes_itself = str(output) in argv
    command, env = [GNU_TIME, "-f", "%U %S %M", "-o", str(report), *argv], installed_python_env(workdir)
    with open(os.devnull if writes_itself else output, "wb") as stdout:
        start = time.perf_counter()
        process = subprocess.run(command, env=env, stdout=stdout, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
    if process.returncode:
        raise SystemExit(f"{argv[0]} failed ({process.returncode}): {process.stderr.decode(errors='replace')}")
    user, system, peak_kib = report.read_text().split()[-3:]
    return wall, float(user) + float(system), int(peak_kib) * 1024


def check_attachment(message: Path, base64_output: Path) -> None:
    """Stop unless the message's base64 body is base64 -w76's output with CRLF line ends."""
    with open(message, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as text, \
            open(base64_output, "rb") as expected:
        start = text.find(b"\r\n\r\n", text.find(b"Content-Transfer-Encoding: base64")) + 4
        end = text.find(b"\r\n--=_mimekit_", start)   # the delimiter owns this CRLF
        block = 78 * 100_000   # whole 76-column lines with their CRLF
        for offset in range(start, end, block):
            if text[offset:min(offset + block, end)].replace(b"\r\n", b"\n") != expected.read(77 * 100_000):
                raise SystemExit(f"mimekit's attachment differs from base64 -w76's output near byte {offset}")
        if expected.read(1):
            raise SystemExit("mimekit's attachment is shorter than base64 -w76's output")


def write_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        for start in range(0, size, 4 * MIB):
            f.write(os.urandom(min(4 * MIB, size - start)))


def bench_size(size_mb: int, runs: int, workdir: Path) -> dict[str, tuple[float, float, int]]:
    """Each tool's median wall seconds, median CPU seconds and peak RSS bytes for an attachment
    of `size_mb` MB."""
    attachment = workdir / f"random-{size_mb}MB.bin"
    write_random_file(attachment, size_mb * 1_000_000)
    commands = tools(attachment, workdir)
    turns = list(commands.items())
    figures: dict[str, list[tuple[float, float, int]]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, (argv, output) in turns[round_ % len(turns):] + turns[:round_ % len(turns)]:
            measured = run(argv, output, workdir)
            if round_:
                figures[name].append(measured)
    check_attachment(commands["mimekit"][1], commands["base64"][1])
    attachment.unlink()
    results = {}
    for name, measured in figures.items():
        walls, cpus, peaks = zip(*measured)
        results[name] = wall, cpu, peak = statistics.median(walls), statistics.median(cpus), max(peaks)
        print(f"{size_mb:>5} MB  {name:<13} {wall:7.3f} s  {peak / MIB:7.1f} MiB  (cpu {cpu:.3f} s)", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100", help="attachment sizes in MB (10^6 bytes), comma separated")
    parser.add_argument("--runs", type=int, default=3, help="counted runs per tool and size (median time)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    missing = [tool for tool in PEERS if not shutil.which(tool)] + ([] if os.access(GNU_TIME, os.X_OK) else [GNU_TIME])
    if missing:
        sys.exit(f"needed to compare with: {', '.join(missing)}")

    with tempfile.TemporaryDirectory(prefix="mimekit-bench-") as workdir:
        table = {size: bench_size(size, args.runs, Path(workdir)) for size in sizes}

    print()
    largest = table[max(sizes)]
    mimekit_wall, _, mimekit_peak = largest["mimekit"]
    peaks = [table[size]["mimekit"][2] for size in sizes]
    label = f"encode {max(sizes)} MB"
    goal(f"{label} vs base64 -w76", mimekit_wall, "base64", largest["base64"][0], "s", at_most=2)
    goal(f"{label} vs mpack", mimekit_wall, "mpack", largest["mpack"][0], "s", at_most=0.35)
    goal(f"{label} vs Python's email", mimekit_wall, "python-email", largest["python-email"][0], "s",
         at_most=0.125)
    limit(f"{label} peak memory", mimekit_peak / MIB, "MiB", at_most=40)
    limit(f"encode peak spread {min(sizes)} to {max(sizes)} MB", (max(peaks) - min(peaks)) / MIB, "MiB", at_most=4)
    sys.exit(verdict())


if __name__ == "__main__":
    main()
