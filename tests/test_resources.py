"""Resource tier for issue 8 items 8 and 9: hostile messages that once grew without bound
run through every reading command under a 100 MiB address-space limit (helpers.run_bounded).

- base64 "A!" (a junk run every two bytes) and QP "=Z" (an invalid escape every two
  bytes): 50 MB of either made 25 million Defect objects (8 GB) and gigabytes of stderr.
- parts of 1,000 empty header fields each: 10,000 of them (40 MB) made 10 million header
  objects (1.37 GB).
- a message header full of malformed encoded-words: `show` decodes it itself, and printed
  a line per word (5 MB of stderr for 1 MB of header).

Each command must finish with its usual exit status (a MemoryError would be 70, the
kernel's kill a negative status), write little to stderr, and take time linear in the
input: the same command on an input four times as large uses less than ten times the
CPU (a quadratic one would use about sixteen times). Sizes: the larger input of each
kind made every command but one end in MemoryError under the limit before the fix, and
the smaller one makes the work outweigh Python's start-up, so the ratio means something.
"""

import json
import resource

import pytest
from helpers import run_bounded

from mimekit.defects import MAX_DEFECTS_PER_KIND
from mimekit.limits import Limits

pytestmark = pytest.mark.resources

MAX_STDERR = 100 * 1024
LINEAR_FACTOR = 10   # 4x the input in under 10x the CPU: linear with room for noise, not quadratic

BASE64_JUNK_LINE = b"A!" * 38 + b"\r\n"   # 38 junk runs
QP_INVALID_LINE = b"=Z" * 38 + b"\r\n"    # 38 invalid escapes
EMPTY_FIELDS_PART = b"--b\r\n" + b"X:\r\n" * 1000 + b"\r\nx\r\n"


def base64_junk(lines: int) -> tuple[bytes, bytes, int, bytes]:
    return (b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            BASE64_JUNK_LINE, lines, b"")


def qp_invalid(lines: int) -> tuple[bytes, bytes, int, bytes]:
    return (b"Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            QP_INVALID_LINE, lines, b"")


def empty_fields(parts: int) -> tuple[bytes, bytes, int, bytes]:
    return b"Content-Type: multipart/mixed; boundary=b\r\n\r\n", EMPTY_FIELDS_PART, parts, b"--b--\r\n"


# kind -> (message for a size, smaller size, defect kind counted and how many per unit, command timed)
HOSTILE = {
    "base64-junk": (base64_junk, 80_000, "base64-junk", 38, "check"),          # 6.2 MB and 25 MB
    "qp-invalid-escape": (qp_invalid, 40_000, "qp-invalid-escape", 38, "show"),  # 3.1 MB and 12.5 MB
    "empty-header-fields": (empty_fields, 150, None, 0, "show"),               # 0.6 MB and 2.4 MB
}


def write_message(path, head: bytes, unit: bytes, count: int, tail: bytes) -> None:
    """HEAD, UNIT repeated COUNT times, TAIL: written in blocks, never whole in memory."""
    with open(path, "wb") as out:
        out.write(head)
        for done in range(0, count, 1000):
            out.write(unit * min(1000, count - done))
        out.write(tail)


def run_timed(args: list[str]) -> tuple[object, float]:
    """run_bounded(ARGS) and the CPU seconds its process used (less noisy than wall time
    on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run_bounded(args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return result, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def assert_bounded(result, expected_code: int) -> None:
    assert result.returncode == expected_code, result.stderr[-500:]   # 70: MemoryError; < 0: killed
    assert len(result.stderr) < MAX_STDERR, f"{len(result.stderr)} bytes of stderr"


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_input_stays_bounded_in_every_reading_command(kind, tmp_path):
    build, size, defect_kind, per_unit, timed = HOSTILE[kind]
    small, large = tmp_path / "small.eml", tmp_path / "large.eml"
    write_message(small, *build(size))
    write_message(large, *build(4 * size))

    commands = {"show": ["show"], "show --json": ["show", "--json"], "decode --text": ["decode", "--text"],
                "decode -o": ["decode", "-o", str(tmp_path / "out")], "check": ["check"]}
    runs = {name: run_timed([*args, str(large)]) for name, args in commands.items()}
    for name, (result, _) in runs.items():
        assert_bounded(result, 65 if name == "check" else 0)

    document = json.loads(runs["show --json"][0].stdout)
    if defect_kind is not None:
        # the first ones are listed with their offsets; one summary carries the true number of the rest
        found = [defect for defect in document["defects"] if defect["kind"] == defect_kind]
        listed = [defect for defect in found if "more" not in defect]
        assert len(listed) == MAX_DEFECTS_PER_KIND
        assert len(listed) + sum(defect.get("more", 0) for defect in found) == 4 * size * per_unit
    else:
        # past the message-wide header budget every part is still found and extracted
        assert len(document["parts"]) == 1 + 4 * size
        assert len(list((tmp_path / "out").iterdir())) == 4 * size
        assert [defect["kind"] for defect in document["defects"]] == ["limit-header-total"]
        assert size * 1000 > Limits().max_header_total_count   # both inputs are past it

    (large_result, large_cpu), (small_result, small_cpu) = runs[timed], run_timed([*commands[timed], str(small)])
    assert small_result.returncode == large_result.returncode
    assert large_cpu < LINEAR_FACTOR * small_cpu, f"{timed}: {small_cpu:.2f} s for N, {large_cpu:.2f} s for 4N"


def test_a_header_full_of_malformed_encoded_words_is_reported_in_bounded_lines(tmp_path):
    words_per_field, fields = 3800, 15   # 15 fields of 64 KB: within the header block limit (1 MiB)
    message = tmp_path / "words.eml"
    write_message(message, b"", b"Subject: " + b"=?utf-8?q?a=ZZ?= " * words_per_field + b"\r\n", fields, b"\r\nx\r\n")
    assert_bounded(run_bounded(["show", str(message)]), 0)
    shown = run_bounded(["show", "--json", str(message)])
    assert_bounded(shown, 0)
    found = [defect for defect in json.loads(shown.stdout)["defects"] if defect["kind"] == "encoded-word-malformed"]
    assert len(found) == MAX_DEFECTS_PER_KIND + 1
    assert len(found) - 1 + found[-1]["more"] == words_per_field * fields
