"""`mimekit scan` through the real CLI: one line (or JSON record) per message of whole
mailboxes, fields chosen, text cut to the terminal, records streamed as they come."""

import json
import os
import pty
import select
import subprocess
import sys

import pytest

from mimekit.stores import Maildir, Mbox

CLI = [sys.executable, "-m", "mimekit_cli"]

PLAIN = (b"From: =?utf-8?q?Zo=C3=AB?= <zoe@example.test>\nSubject: =?utf-8?b?R3LDvMOfZQ==?=\n"
         b"Date: Tue, 1 Dec 2026 10:20:30 +0100\nMessage-ID: <p@x>\n\nFrom the start\n")
WITH_ATTACHMENTS = (
    b"From: bob@example.test\nSubject: two files\nDate: Wed, 2 Dec 2026 08:00:00 +0000\nMIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=B\n\n"
    b"--B\nContent-Type: text/plain; charset=utf-8\n\nsee attached\n"
    b"--B\nContent-Type: application/pdf; name=a.pdf\nContent-Disposition: attachment; filename=a.pdf\n"
    b"Content-Transfer-Encoding: base64\n\nJVBERg==\n"
    b"--B\nContent-Type: image/png\nContent-Disposition: attachment; filename=b.png\n"
    b"Content-Transfer-Encoding: base64\n\niVBORw0KGgo=\n--B--\n")
HOSTILE = b"From: x@example.test\nSubject: \x1b]0;pwned\x07 evil\n\nbody\n"


def run_cli(*args, input=None, **kwargs):
    return subprocess.run([*CLI, *args], input=input, capture_output=True, timeout=120, **kwargs)


@pytest.fixture
def mailboxes(tmp_path):
    maildir = Maildir(str(tmp_path / "md"))
    maildir.add([PLAIN], flags="S")
    maildir.add([WITH_ATTACHMENTS], flags="FR")
    mbox = Mbox(str(tmp_path / "box.mbox"))
    mbox.add([WITH_ATTACHMENTS])
    mbox.add([PLAIN], flags="S")
    return tmp_path / "md", tmp_path / "box.mbox"


def records(result) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_json_lines_name_each_message_and_its_fields(mailboxes):
    maildir, mbox = mailboxes
    found = records(run_cli("scan", "--json", str(maildir), str(mbox)))
    assert [(r["subject"], r["flags"], r["attachments"]) for r in found] == [
        ("Grüße", "S", 0), ("two files", "FR", 2), ("two files", "", 2), ("Grüße", "S", 0)]
    assert found[0]["from"] == "Zoë" and found[0]["date"].startswith("2026-12-01T10:20:30")
    assert found[2]["source"] == f"{mbox}:0" and found[0]["source"].startswith(f"{maildir}:")
    assert all(r["schema"] == "mimekit.scan/1" and r["defect"] is None for r in found)


def test_the_attachment_count_agrees_with_show(mailboxes):
    """"Which messages have attachments": scan's count is the number of parts show --json
    marks is_attachment."""
    maildir, mbox = mailboxes
    scanned = records(run_cli("scan", "--json", str(maildir), str(mbox)))
    shown = records(run_cli("show", "--json", str(maildir), str(mbox)))
    assert [r["source"] for r in scanned] == [r["source"] for r in shown]
    assert [r["attachments"] for r in scanned] == [sum(p["is_attachment"] for p in r["parts"]) for r in shown]


def test_fields_choose_the_columns_and_their_order(mailboxes):
    maildir, _ = mailboxes
    found = records(run_cli("scan", "--json", "--fields", "subject,source", str(maildir)))
    assert [list(r) for r in found] == [["schema", "subject", "source"]] * 2
    text = run_cli("scan", "--fields", "subject,flags", str(maildir))
    assert text.stdout.decode().splitlines() == ["Grüße  S", "two files  FR"]
    bad = run_cli("scan", "--fields", "subject,colour", str(maildir))
    assert bad.returncode == 64 and b"colour" in bad.stderr and not bad.stdout


def test_text_lines_are_aligned_and_made_printable(tmp_path, mailboxes):
    maildir, mbox = mailboxes
    (tmp_path / "hostile.eml").write_bytes(HOSTILE)
    result = run_cli("scan", str(mbox), str(tmp_path / "hostile.eml"))
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 3 and b"\x1b" not in result.stdout and "\\x1b]0;pwned\\x07 evil" in lines[2]
    assert lines[0].index("two files") == lines[1].index("Grüße")   # the reference column has one width


def test_on_a_terminal_lines_are_cut_to_its_width(mailboxes):
    maildir, _ = mailboxes
    leader, follower = pty.openpty()
    process = subprocess.Popen([*CLI, "scan", str(maildir)], stdout=follower, stderr=subprocess.PIPE,
                               env={**os.environ, "COLUMNS": "40"})
    os.close(follower)
    output = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 4096) if ready else b""
        except OSError:
            chunk = b""
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=60) == 0
    lines = output.decode().splitlines()
    assert len(lines) == 2 and all(len(line) == 40 and line.endswith("…") for line in lines), lines


def test_the_first_record_comes_before_the_input_ends(mailboxes):
    """JSON Lines stream: a consumer of `... | scan --json mbox:-` sees the first message's
    record while the producer is still writing."""
    _, mbox = mailboxes
    data = mbox.read_bytes()
    second = data.index(b"\nFrom ", 1) + 1
    next_from_line = data.index(b"\n", second) + 1
    process = subprocess.Popen([*CLI, "scan", "--json", "mbox:-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdin.write(data[:next_from_line])   # the next "From " line ends the first message
    process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], 60)
    assert ready, "no record before the end of the input"
    first = json.loads(process.stdout.readline())
    assert first["source"] == "-:0" and first["subject"] == "two files"
    process.stdin.write(data[next_from_line:])
    process.stdin.close()
    rest = [json.loads(line) for line in process.stdout.read().splitlines()]
    assert process.wait(timeout=60) == 0 and [r["subject"] for r in rest] == ["Grüße"]


def test_a_bad_source_is_a_record_in_its_place_and_the_exit_is_66(mailboxes, tmp_path):
    maildir, mbox = mailboxes
    result = run_cli("scan", "--json", "-j", "2", str(maildir), str(tmp_path / "missing"), str(mbox))
    assert result.returncode == 66
    found = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [("error" in r) for r in found] == [False, False, True, False, False]
    assert found[2]["source"] == str(tmp_path / "missing") and found[2]["error"]["code"] == 66


def test_jobs_do_not_change_the_output(mailboxes):
    maildir, mbox = mailboxes
    outputs = {jobs: run_cli("scan", "--json", "-j", jobs, str(maildir), str(mbox), str(maildir)).stdout
               for jobs in ("1", "2")}
    assert outputs["1"] == outputs["2"] and outputs["1"].count(b"\n") == 6


def test_lf_line_endings_are_no_defect_to_readers_but_check_still_judges_them(tmp_path):
    """Unix keeps .eml files with LF: scan, show and decode do not flag that (it would be
    on every line of a dump and hide the real defects); a bare CR among CRLF lines they do,
    and check, which judges the wire format, reports the LF file too."""
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "a.eml").write_bytes(PLAIN)
    (tmp_path / "dump" / "b.eml").write_bytes(b"From: x@example.test\r\nSubject: cr\r\nX-A: 1\rX-B: 2\r\n\r\nbody\r\n")
    (tmp_path / "dump" / "c.eml").write_bytes(b"From: x@example.test\r\nSubject: mixed\nX-A: 1\r\n\r\nbody\r\n")
    found = records(run_cli("scan", "--json", str(tmp_path / "dump")))
    assert [(r["subject"], r["defect"]) for r in found] == [
        ("Grüße", None), ("cr", "bare-line-ending"), ("mixed", "mixed-line-endings")]
    shown = run_cli("show", str(tmp_path / "dump" / "a.eml"))
    assert shown.returncode == 0 and b"bare LF" not in shown.stderr
    checked = run_cli("check", str(tmp_path / "dump" / "a.eml"))
    assert checked.returncode == 65 and b"bare LF" in checked.stdout
