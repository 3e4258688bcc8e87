#!/usr/bin/env python3
"""Parser throughput: a 100 MB base64 attachment, and every corpus message, against Python's email.

    python3 bench/bench_parse.py [--mb 100] [--runs 3] [--corpus DIR] [--skip-python-large]

In one process and one run, median of --runs:
1. A generated message (text part + MB megabytes of random bytes in base64, CRLF, 76
   columns) read from a file in 64 KiB chunks: the event parser alone
   (parse_events), the tree (parse_message), the tree plus streaming the decoded
   attachment (iter_decoded), and Python's BytesParser(policy=default) plus
   get_payload(decode=True). MB/s are of the message's size on disk.
2. Every .eml and .msg message in the corpus, parsed from memory: mimekit's tree
   (parse_message, walk) and Python's BytesParser, each alone and with every leaf
   decoded. Figures are messages per second.

Not a test: the machine's load moves the figures; compare ratios from one run.
"""

import argparse
import binascii
import email.parser
import email.policy
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mimekit.read.parser import parse_events  # noqa: E402
from mimekit.read.tree import parse_message  # noqa: E402

MB = 1_000_000
HEADER = (b"From: bench@example.com\r\nTo: you@example.com\r\nSubject: large attachment\r\n"
          b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_bench_boundary\"\r\n\r\n"
          b"--=_bench_boundary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
          b"--=_bench_boundary\r\nContent-Type: application/octet-stream; name=\"payload.bin\"\r\n"
          b"Content-Disposition: attachment; filename=\"payload.bin\"\r\n"
          b"Content-Transfer-Encoding: base64\r\n\r\n")
TRAILER = b"\r\n--=_bench_boundary--\r\n"


def write_large_message(path: Path, size: int) -> None:
    """HEADER + base64 of `size` random bytes in 76-column CRLF lines + TRAILER."""
    line_bytes, lines_per_block = 57, 16384
    with open(path, "wb") as out:
        out.write(HEADER)
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, line_bytes * lines_per_block))
            remaining -= len(block)
            out.write(b"".join(binascii.b2a_base64(block[i:i + line_bytes], newline=False) + b"\r\n"
                               for i in range(0, len(block), line_bytes)).rstrip(b"\r\n"))
            if remaining:
                out.write(b"\r\n")
        out.write(TRAILER)


def median_seconds(run, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def events_only(path: Path) -> None:
    with open(path, "rb") as stream:
        for _ in parse_events(stream):
            pass


def tree_only(path: Path) -> None:
    with open(path, "rb") as stream, parse_message(stream) as message:
        list(message.walk())


def tree_and_decode(path: Path) -> None:
    with open(path, "rb") as stream, parse_message(stream) as message:
        for leaf in message.leaves():
            for _ in leaf.iter_decoded():
                pass


def python_and_decode(path: Path) -> None:
    with open(path, "rb") as stream:
        message = email.parser.BytesParser(policy=email.policy.default).parse(stream)
    for part in message.walk():
        if not part.is_multipart():
            part.get_payload(decode=True)


def corpus_messages(corpus: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file() and p.suffix in {".eml", ".msg"}]


def mimekit_corpus(messages: list[bytes], decode: bool) -> None:
    for data in messages:
        with parse_message(io.BytesIO(data)) as message:
            for part in message.walk():
                if decode and not part.children:
                    part.read_decoded()


def python_corpus(messages: list[bytes], decode: bool) -> None:
    parser = email.parser.BytesParser(policy=email.policy.default)
    for data in messages:
        message = parser.parsebytes(data)
        for part in message.walk():
            if decode and not part.is_multipart():
                part.get_payload(decode=True)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    arguments.add_argument("--mb", type=int, default=100, help="attachment size in MB (default 100)")
    arguments.add_argument("--runs", type=int, default=3)
    arguments.add_argument("--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    arguments.add_argument("--skip-python-large", action="store_true",
                           help="skip Python's email on the large message (it needs several times its size in memory)")
    options = arguments.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "large.eml"
        write_large_message(path, options.mb * MB)
        size = path.stat().st_size
        print(f"large message: {size / MB:.1f} MB ({options.mb} MB attachment in base64), {options.runs} runs")
        jobs = [("mimekit events (parse_events)", events_only), ("mimekit tree (parse_message)", tree_only),
                ("mimekit tree + decode attachment", tree_and_decode)]
        if not options.skip_python_large:
            jobs.append(("python email parse + decode", python_and_decode))
        results = {}
        for name, job in jobs:
            results[name] = median_seconds(lambda: job(path), options.runs)
            print(f"  {name:36} {results[name]:7.3f} s  {size / MB / results[name]:8.1f} MB/s")
        if "python email parse + decode" in results:
            ratio = results["python email parse + decode"] / results["mimekit tree + decode attachment"]
            print(f"  parse + decode: mimekit is {ratio:.1f}x faster than Python's email")

    if not options.corpus.is_dir():
        print(f"corpus {options.corpus} not found: skipped")
        return
    messages = corpus_messages(options.corpus)
    total = sum(len(m) for m in messages) / MB
    print(f"corpus: {len(messages)} messages, {total:.1f} MB")
    for decode in (False, True):
        label = "parse + decode leaves" if decode else "parse"
        ours = median_seconds(lambda: mimekit_corpus(messages, decode), options.runs)
        theirs = median_seconds(lambda: python_corpus(messages, decode), options.runs)
        print(f"  {label:22} mimekit {len(messages) / ours:8.0f} msg/s   python email {len(messages) / theirs:8.0f}"
              f" msg/s   ratio {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
