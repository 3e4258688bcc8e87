#!/usr/bin/env python3
"""Start-up of `mimekit show` of a small message, against an empty Python and `import click`.

    python3 bench/bench_startup.py [--runs 30]

Every command is a whole process of this interpreter (sys.executable, not a pyenv shim),
with bytecode cached as an installed package has it (bench_decode.installed_python_env),
run --runs times in turn after one untimed run of each; medians of wall time:
- `python -c pass`: the interpreter (here with whatever site-packages' .pth files import);
- `python -c "import click"`: the interpreter and click, the one dependency every command needs;
- `python -m mimekit_cli show SMALL.eml`: a two-part message of 1 KB, printed to /dev/null;
- `python -m mimekit_cli --help`: every command listed (reported only).

Goal (issue 16): `mimekit show` of a small message under 60 ms, "today 61 ms, of which
click 20 ms", on a machine 2-3x faster than the 2-core sandboxes these run in, so the
milliseconds do not carry over; the issue's own yardstick does: click. Read as the
start-up mimekit adds over the interpreter (issue 10's closing note measured it so, +66 ms
over `python -c pass`), 60 ms is 3.0 times click's 20 ms: the goal is
(show - bare) / (click - bare) <= 3.0. show / bare is reported beside it: the interpreter
here imports certifi from a sandbox .pth (pathlib, tempfile, zipfile...), which makes the
denominator larger and mimekit's own imports smaller than on a plain install.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_decode import installed_python_env  # noqa: E402
from goals import goal, verdict  # noqa: E402

# The figures: show's start-up budget over the interpreter, and click's share today.
BUDGET_MS, CLICK_MS = 60, 20

SMALL_MESSAGE = (
    b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Date: Thu, 03 Dec 2026 14:49:04 +0000\r\n"
    b"Message-ID: <startup.bench@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n"
    b"\r\n"
    b"--=_b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe, a small body.\r\n"
    b"--=_b\r\n"
    b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4\r\n" * 8
    + b"--=_b--\r\n"
)


def commands(message: Path) -> dict[str, list[str]]:
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "mimekit show SMALL.eml": [sys.executable, "-m", "mimekit_cli", "show", str(message)],
        "mimekit --help": [sys.executable, "-m", "mimekit_cli", "--help"],
    }


def medians(argvs: dict[str, list[str]], runs: int, workdir: Path) -> dict[str, float]:
    """Median wall seconds of each command, run in turn (so load moves them all alike),
    after one untimed run of each that writes the bytecode cache."""
    env = installed_python_env(workdir)
    times: dict[str, list[float]] = {label: [] for label in argvs}
    for run in range(runs + 1):
        for label, argv in argvs.items():
            start = time.perf_counter()
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            if run:
                times[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    print("load average before the run: %.1f %.1f %.1f (figures are only comparable within one run)" % os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="mimekit-bench-startup-") as name:
        workdir = Path(name)
        message = workdir / "small.eml"
        message.write_bytes(SMALL_MESSAGE)
        median = medians(commands(message), args.runs, workdir)
    print(f"\nmedian wall time of {args.runs} runs:")
    for label, seconds in median.items():
        print(f"  {label:<28}{seconds * 1000:>8.1f} ms")
    bare, click, show = (median[label] * 1000 for label in
                         ("python -c pass", "python -c 'import click'", "mimekit show SMALL.eml"))
    print(f"  start-up over the interpreter: show +{show - bare:.1f} ms, import click +{click - bare:.1f} ms "
          f"(issue 16: show +{BUDGET_MS} ms at most, click +{CLICK_MS} ms)\n")
    goal("show start-up over the interpreter, in imports of click", show - bare, "import click", click - bare, "ms",
         at_most=BUDGET_MS / CLICK_MS)
    goal("show against the bare interpreter", show, "python -c pass", bare, "ms")
    sys.exit(verdict())


if __name__ == "__main__":
    main()
