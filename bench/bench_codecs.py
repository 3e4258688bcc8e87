#!/usr/bin/env python3
"""Throughput of mimekit's transfer codecs against the standard library, in one process.

    python3 bench/bench_codecs.py [--base64-mb 100] [--qp-mb 20] [--runs 3]

mimekit's codecs are fed 64 KiB chunks, as the writer and the parser stream them; the
standard library gets the whole input in one call (it cannot stream). binascii alone,
without line layout or leniency, is the floor. Figures are MB/s of the unencoded data,
for encoders and decoders alike, median of --runs. Base64 runs on random bytes; QP on
email-like text wrapped before 72 columns (mostly ASCII, the usual case for QP; and
accented, where most lines need soft breaks) and on random bytes (binary mode).
The target (issue 2, anchors.md): base64-encoding 100 MB in at most 0.35 s.
Not a test: the machine's load moves the figures, so only ratios from one run count.
"""

import argparse
import base64
import binascii
import os
import quopri
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mimekit.streams.files import CHUNK_SIZE  # noqa: E402
from mimekit.codecs.transfer import (Base64Decoder, Base64Encoder, QuotedPrintableDecoder,  # noqa: E402
                              QuotedPrintableEncoder)

MB = 1_000_000
ASCII_WORDS = ("the of and to a in is that for it with as was on be at by this had not are but "
               "from or have an they which one you were her all she there would their we him "
               "been has when who will more no if out so said what up its about into than them "
               "message mail attachment encoding line From Fred. a=b").split()
ACCENTED_WORDS = "caf\u00e9 na\u00efve \u00fcber gr\u00fc\u00dfe r\u00e9sum\u00e9 \u20ac10 d\u00e9j\u00e0".split()


def email_text(size: int, accented_share: float) -> bytes:
    """Lines of words wrapped before 72 columns, some blank: a text body."""
    rng = random.Random(1)
    lines, total = [], 0

    def word() -> str:
        return rng.choice(ACCENTED_WORDS if rng.random() < accented_share else ASCII_WORDS)

    while total < size:
        words = [word()]
        while len(" ".join(words)) < 64:
            words.append(word())
        lines.append(" ".join(words))
        total += len(lines[-1]) + 1
        if rng.random() < 0.1:
            lines.append("")
            total += 1
    return ("\n".join(lines) + "\n").encode()[:size]


def streamed(make_codec):
    """Feed a fresh codec CHUNK_SIZE pieces, as mimekit's streaming callers do."""
    def run(data: bytes) -> int:
        codec, view, written = make_codec(), memoryview(data), 0
        for start in range(0, len(data), CHUNK_SIZE):
            written += len(codec.feed(bytes(view[start:start + CHUNK_SIZE])))
        return written + len(codec.flush())
    return run


def seconds(function, data: bytes, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(title: str, raw_size: int, data: bytes, contenders: dict, runs: int) -> dict[str, float]:
    print(f"\n{title}")
    results = {}
    for name, function in contenders.items():
        results[name] = seconds(function, data, runs)
        print(f"  {name:44s} {results[name]:7.3f} s  {raw_size / MB / results[name]:8.1f} MB/s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base64-mb", type=int, default=100)
    parser.add_argument("--qp-mb", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, chunk {CHUNK_SIZE} bytes, "
          f"median of {args.runs}")

    payload = os.urandom(args.base64_mb * MB)
    encoding = compare(f"base64 encode, {args.base64_mb} MB random", len(payload), payload, {
        "mimekit Base64Encoder (CRLF, 76 columns)": streamed(Base64Encoder),
        "base64.encodebytes (LF, 76 columns)": base64.encodebytes,
        "binascii.b2a_base64 (one line: no layout)": binascii.b2a_base64,
    }, args.runs)
    encoder = Base64Encoder()
    encoded = encoder.feed(payload) + encoder.flush()
    compare(f"base64 decode, {len(encoded) / MB:.0f} MB of CRLF text", len(payload), encoded, {
        "mimekit Base64Decoder": streamed(Base64Decoder),
        "base64.decodebytes": base64.decodebytes,
        "binascii.a2b_base64 (stops at padding)": binascii.a2b_base64,
    }, args.runs)
    del payload, encoded

    for kind, data, binary in (("mostly-ASCII text", email_text(args.qp_mb * MB, 0.03), False),
                               ("accented text", email_text(args.qp_mb * MB, 0.25), False),
                               ("random bytes", os.urandom(args.qp_mb * MB), True)):
        mode = "binary" if binary else "text"
        compare(f"quoted-printable encode, {args.qp_mb} MB {kind}", len(data), data, {
            f"mimekit QuotedPrintableEncoder ({mode} mode)": streamed(
                lambda: QuotedPrintableEncoder(binary=binary)),
            "quopri.encodestring": quopri.encodestring,
            "binascii.b2a_qp (no line-start protection)": lambda d: binascii.b2a_qp(d, istext=not binary),
        }, args.runs)
        encoder = QuotedPrintableEncoder(binary=binary)
        qp = encoder.feed(data) + encoder.flush()
        compare(f"quoted-printable decode, {len(qp) / MB:.0f} MB ({kind})", len(data), qp, {
            "mimekit QuotedPrintableDecoder": streamed(QuotedPrintableDecoder),
            "quopri.decodestring": quopri.decodestring,
            "binascii.a2b_qp (drops bad escapes)": binascii.a2b_qp,
        }, args.runs)

    mimekit = encoding["mimekit Base64Encoder (CRLF, 76 columns)"]
    print(f"\nbase64 encode of {args.base64_mb} MB: {mimekit:.3f} s "
          f"({'meets' if mimekit * 100 / args.base64_mb <= 0.35 else 'misses'} the 0.35 s per 100 MB target), "
          f"{encoding['base64.encodebytes (LF, 76 columns)'] / mimekit:.1f}x base64.encodebytes")


if __name__ == "__main__":
    main()
