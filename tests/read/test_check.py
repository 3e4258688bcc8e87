"""`mimekit check`: a clean message passes; each listed problem is caught in a purpose-made bad message."""

import io
import json
import subprocess
import sys

import pytest

from mimekit.read.check import MAX_PER_RULE, check_message

GOOD = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Date: Thu, 26 Nov 2026 14:00:00 +0000\r\n"
    b"Message-ID: <1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="=_outer"\r\n'
    b"\r\n"
    b"--=_outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Gr=C3=BC=C3=9Fe\r\n"
    b"--=_outer\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--=_outer--\r\n"
)


def rules(message: bytes, **options) -> set[str]:
    return {violation.rule for violation in check_message(io.BytesIO(message), **options).violations}


def test_clean_message_passes():
    report = check_message(io.BytesIO(GOOD))
    assert report.ok, [str(v) for v in report.violations]


def test_lf_message_passes_only_with_allow_lf():
    lf = GOOD.replace(b"\r\n", b"\n")
    assert "bare-line-ending" in rules(lf)
    assert rules(lf, allow_lf=True) == set()


@pytest.mark.parametrize("bad, rule", [
    (GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", "Grüße\r\n".encode()), "8bit"),
    (GOOD.replace(b"Subject:", "Subject: Grüße".encode() + b" x"), "8bit"),
    (GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", b"x" * 999 + b"\r\n"), "line-too-long"),
    (GOOD.replace(b"AAECAwQFBgcICQ==\r\n", b"QUFB" * 20 + b"\r\n"), "encoded-line-too-long"),
    (GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", b"a\nb\r\n"), "bare-line-ending"),
    (GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", b"a\rb\r\n"), "bare-line-ending"),
    (GOOD.replace(b"AAECAwQFBgcICQ==\r\n", b"AAEC\nAwQFBgcICQ==\r\n"), "bare-line-ending"),
    (GOOD.replace(b"AAECAwQFBgcICQ==\r\n", b"AAEC\nAwQFBgcICQ==\r\n"), "mixed-line-endings"),
    (GOOD.replace(b"--=_outer--\r\n", b""), "missing-final-boundary"),
    (GOOD.replace(b'; boundary="=_outer"', b""), "missing-boundary-parameter"),
    (GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", b"see --=_outer here\r\n"), "boundary-in-content"),
    (GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", b"--=_outerXYZ trailing\r\n"), "boundary-in-content"),
    (GOOD.replace(b"text/plain; charset=utf-8", b"text/plain"), "text-without-charset"),
    (GOOD.replace(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=", b"Subject: =?utf-8?x?bad?="), "malformed-encoded-word"),
    (GOOD.replace(b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=",
                  b"Subject: =?utf-8?q?" + b"a" * 70 + b"?="), "malformed-encoded-word"),
    (GOOD.replace(b"To: bob@example.test\r\n", b"To bob@example.test\r\n"), "missing-header-body-separator"),
    (GOOD.replace(b"Date: Thu, 26 Nov 2026 14:00:00 +0000\r\n", b""), "missing-header"),
    (GOOD.replace(b"From: Alice <alice@example.test>\r\n", b""), "missing-header"),
    (GOOD.replace(b"Message-ID: <1@example.test>\r\n", b""), "missing-header"),
    (GOOD.replace(b"Message-ID: <1@example.test>\r\n", b"Message-ID: <1@x>\r\nMessage-ID: <2@x>\r\n"),
     "duplicate-header"),
    (GOOD.replace(b"AAECAwQFBgcICQ==", b"AAEC!!AwQF"), "base64-junk"),
    (GOOD.replace(b"Gr=C3=BC", b"Gr=ZZ"), "qp-invalid-escape"),
])
def test_each_problem_is_caught(bad, rule):
    assert rule in rules(bad)


def test_nested_multipart_reusing_the_outer_boundary_is_a_duplicate():
    inner = (b"--=_outer\r\n"
             b'Content-Type: multipart/alternative; boundary="=_outer"\r\n\r\n'
             b"--=_outer--\r\n")
    message = GOOD.replace(b"--=_outer--\r\n", inner + b"--=_outer--\r\n")
    assert "duplicate-boundary" in rules(message)


def test_offsets_point_at_the_problem():
    bad = GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", "Grüße\r\n".encode())
    [violation] = [v for v in check_message(io.BytesIO(bad)).violations if v.rule == "8bit"]
    assert bad[violation.offset] >= 0x80 and bad[violation.offset - 1] == ord("r")


def test_long_line_found_across_any_chunk_split():
    from mimekit.read.check import MessageChecker
    bad = GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", b"y" * 1500 + b"\r\n")
    expected = bad.index(b"yyy")
    for size in (1, 7, 64, 997, 999, 4096):
        checker = MessageChecker()
        for start in range(0, len(bad), size):
            checker.feed(bad[start:start + size])
        offsets = [v.offset for v in checker.close().violations if v.rule == "line-too-long"]
        assert offsets == [expected], size


def test_a_flood_of_problems_is_capped():
    many = GOOD.replace(b"Gr=C3=BC=C3=9Fe\r\n", (b"x" * 1000 + b"\r\n") * (MAX_PER_RULE + 5))
    report = check_message(io.BytesIO(many))
    assert sum(v.rule == "line-too-long" for v in report.violations) == MAX_PER_RULE
    assert report.suppressed["line-too-long"] == 5


def test_defects_the_parser_and_decoders_only_counted_still_count():
    """Issue 8: past MAX_DEFECTS_PER_KIND the parser and decoders send one summary
    (Defect.more); the report's counts stay the true number."""
    junk = GOOD.replace(b"AAECAwQFBgcICQ==\r\n", (b"A!" * 38 + b"\r\n") * 100)
    boundaries = GOOD.replace(b"--=_outer--", b"--=_outer junk\r\n\r\nx\r\n" * 300 + b"--=_outer--")
    for message, rule, total in ((junk, "base64-junk", 3800), (boundaries, "boundary-trailing-garbage", 300)):
        report = check_message(io.BytesIO(message))
        assert sum(v.rule == rule for v in report.violations) == MAX_PER_RULE
        assert report.suppressed[rule] == total - MAX_PER_RULE


def run_check(*args, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", "check", *args], input=input, capture_output=True)


def test_cli_exit_codes_and_output(tmp_path):
    good = tmp_path / "good.eml"
    good.write_bytes(GOOD)
    passed = run_check(str(good))
    assert (passed.returncode, passed.stdout, passed.stderr) == (0, b"", b"mimekit check: ok\n")
    result = run_check("-", input=GOOD.replace(b"text/plain; charset=utf-8", b"text/plain"))
    assert result.returncode == 65
    assert result.stdout.decode().startswith("text-without-charset at part 1, byte ")
    assert result.stderr.decode().count("\n") == 1
    missing = run_check(str(tmp_path / "nope.eml"))
    assert missing.returncode == 66 and b"nope.eml" in missing.stderr and b"Traceback" not in missing.stderr


def test_cli_ok_is_a_note_on_stderr_silenced_by_quiet_and_absent_from_json(tmp_path):
    """The verdict is a diagnostic (docs/conventions.md: stdout carries the findings only)."""
    good = tmp_path / "good.eml"
    good.write_bytes(GOOD)
    several = run_check(str(good), "-", input=GOOD)
    assert (several.returncode, several.stdout, several.stderr) == (0, b"", b"mimekit check: ok: 2 messages\n")
    quiet = run_check("-q", str(good), str(good))
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, b"", b"")
    as_json = run_check("--json", str(good))
    assert as_json.returncode == 0 and as_json.stderr == b"" and json.loads(as_json.stdout)["ok"] is True
    failed = run_check(str(good), "-", input=GOOD.replace(b"text/plain; charset=utf-8", b"text/plain"))
    assert failed.returncode == 65 and b"check: ok" not in failed.stderr


def test_cli_json(tmp_path):
    result = run_check("--json", "-", input=GOOD.replace(b"--=_outer--\r\n", b""))
    document = json.loads(result.stdout)
    assert result.returncode == 65
    assert document["schema"] == "mimekit.check/1" and document["ok"] is False
    assert any(v["rule"] == "missing-final-boundary" for v in document["violations"])


def test_cli_limits_are_configurable():
    nested = GOOD.replace(b"--=_outer--\r\n",
                          b"--=_outer\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n--in\r\n"
                          b"Content-Type: text/plain; charset=us-ascii\r\n\r\nx\r\n--in--\r\n--=_outer--\r\n")
    assert run_check("-", input=nested).returncode == 0
    limited = run_check("--parser-limit", "depth=1", "-", input=nested)
    assert limited.returncode == 65 and b"limit-depth" in limited.stdout
    bad = run_check("--parser-limit", "depth=zero", "-", input=nested)
    assert bad.returncode == 64 and b"NAME=N" in bad.stderr
