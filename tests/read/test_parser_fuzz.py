"""Fuzzing the parser: mutated corpus messages and byte soup never raise, always end,
respect the limits, and give the same result however the input is cut."""

import io
import time

from hypothesis import given, strategies as st

from corpus import CORPUS
from helpers import defects, parse, parts, summary
from mimekit.read.events import PartStart
from mimekit.limits import Limits
from mimekit.read.tree import parse_message
from strategies import chunkings, mime_messages

TIGHT = Limits(max_depth=4, max_parts=25, max_header_count=8, max_header_field_size=300,
               max_header_block_size=2000, max_line_length=200)

# Small enough to mutate quickly; large files are covered by test_parser_corpus.
SEEDS = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in {".eml", ".msg", ".out"}
               and p.stat().st_size < 64 * 1024) if CORPUS.is_dir() else []

SPLICES = [b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"--", b"\r\n--", b"Content-Type: multipart/mixed; boundary=x\r\n",
           b"\r\n--x\r\n", b"\r\n--x--\r\n", b"Content-Type: message/rfc822\r\n\r\n", b" ", b"\t", b":", b"\x00",
           b"\xff\xfe", b"=?utf-8?q?x?="]


@st.composite
def mutated(draw, seed: bytes) -> bytes:
    """`seed` with a few random edits: cut, duplicate, overwrite, or splice in framing bytes."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        end = draw(st.integers(at, min(len(data), at + 400)))
        action = draw(st.sampled_from(["cut", "duplicate", "overwrite", "splice", "truncate"]))
        if action == "cut":
            del data[at:end]
        elif action == "duplicate":
            data[at:at] = data[at:end] * draw(st.integers(1, 20))
        elif action == "overwrite":
            data[at:end] = draw(st.binary(min_size=end - at, max_size=end - at))
        elif action == "splice":
            data[at:at] = draw(st.sampled_from(SPLICES))
        else:
            del data[at:]
    return bytes(data)


def check_limits(events: list, limits: Limits) -> None:
    starts = [event for event in events if isinstance(event, PartStart)]
    assert len(starts) <= limits.max_parts
    assert max(start.depth for start in starts) <= limits.max_depth


def check(message: bytes, pieces: list[bytes]) -> None:
    started = time.perf_counter()
    for limits in (Limits(), TIGHT):
        whole = parse(message, limits)
        check_limits(whole, limits)
        parts(whole)  # asserts that every part ends, and only containers have parts
        chunked = parse(message, limits, pieces=pieces)
        assert summary(chunked) == summary(whole) and defects(chunked) == defects(whole)
        with parse_message(io.BytesIO(message), limits=limits) as tree:
            assert sum(1 for _ in tree.walk()) <= limits.max_parts
            for leaf in tree.leaves():
                leaf.read_decoded()
    assert time.perf_counter() - started < 30


@given(st.data())
def test_mutated_corpus_messages(corpus_dir, data):
    seed = data.draw(st.sampled_from(SEEDS)).read_bytes()
    message = data.draw(mutated(seed))
    check(message, data.draw(chunkings(message)))


@given(st.data())
def test_mutated_generated_messages(data):
    message = data.draw(mutated(data.draw(mime_messages())))
    check(message, data.draw(chunkings(message)))


@given(st.data())
def test_byte_soup(data):
    message = data.draw(st.one_of(st.binary(max_size=2000),
                                  st.lists(st.sampled_from(SPLICES + [b"a", b"b", b"x"]), max_size=300).map(b"".join)))
    check(message, data.draw(chunkings(message)))
