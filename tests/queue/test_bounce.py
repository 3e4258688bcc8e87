"""Failed entries: the RFC 3464 failure report `queue run --bounce` writes, and `queue retry`
of an entry in failed/.

The report is read back by mimekit and by Python's email package, field by field; against
the real Postfix of tests/servers.py a 550 recipient beside an accepted one gets exactly one
report, a 450 recipient given up after the maximum age gets its own (Status 5.4.7), a full
Maildir keeps the entry queued until a run can write the report, and kill -9 at random
points of `queue run --bounce` loses no report (at most one duplicate per kill).
"""

import email
import email.policy
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from helpers import mounted_tmpfs
from mimekit import parse_message
from mimekit.queue import DONE, FAILED, PENDING, Queue, deliver_queue
from mimekit.queue.bounce import failure_report, original_headers
from mimekit.queue.store import Entry, RecipientState
from mimekit.stores import Maildir
from mimekit.transport.smtp.data import MessageScan
from mimekit.write.writer import message_bytes
from test_queue_postfix import delivered, message, mimekit, queue_json, spool, wait_for

REPO = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600.0   # 2026-01-01T00:00:00Z
KILL_TRIALS = 10
BATCH = 8   # under Postfix's smtpd_soft_error_limit (10): past it, each 550 is answered a second later


def entry_with(*recipients: RecipientState, sender="alice@example.test") -> Entry:
    return Entry("20260101T000000-0123456789", T0, "smtp://127.0.0.1:2525", None, sender, "-", MessageScan(),
                 list(recipients))


def utc_date(epoch: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(epoch))


def status_blocks(report: bytes) -> list[dict]:
    """The message/delivery-status part's blocks as Python's email package parses them."""
    parsed = email.message_from_bytes(report, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    text, status, headers = parsed.get_payload()
    assert (text.get_content_type(), status.get_content_type(), headers.get_content_type()) == \
           ("text/plain", "message/delivery-status", "text/rfc822-headers")
    return [dict(block.items()) for block in status.get_payload()]


def reports_in(maildir: Path) -> list[bytes]:
    return [path.read_bytes() for sub in ("new", "cur") for path in sorted((maildir / sub).iterdir())]


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Dates in the report are local time: pin the zone so that they can be compared."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_report_reads_back_field_by_field_with_python_email_and_mimekit():
    refused = RecipientState("nobody@example.test", FAILED, 1, 0,
                             {"code": 550, "enhanced": "5.1.1", "text": "<nobody@example.test>: User unknown"},
                             T0 + 60)
    given_up = RecipientState("busy@example.test", FAILED, 9, 0,
                              {"code": 450, "enhanced": "4.2.1", "text": "given up after 5 days in the queue; "
                                                                         "last: mailbox busy \u00e9t\u00e9\x1b"},
                              T0 + 5 * 86400 + 1)
    never_reached = RecipientState("far@example.test", FAILED, 3, 0,
                                   {"code": None, "enhanced": None, "text": "cannot connect"}, T0 + 120)
    done = RecipientState("carol@example.test", DONE, 1, 0, {"code": 250, "enhanced": "2.0.0", "text": "Ok"}, T0)
    original = b"From: alice@example.test\r\nTo: nobody@example.test\r\nSubject: hello\r\n"
    report = message_bytes(failure_report(entry_with(refused, done, given_up, never_reached), original,
                                          "mx.example.test"))

    assert status_blocks(report) == [
        {"Reporting-MTA": "dns; mx.example.test", "Arrival-Date": utc_date(T0)},
        {"Final-Recipient": "rfc822; nobody@example.test", "Action": "failed", "Status": "5.1.1",
         "Remote-MTA": "dns; 127.0.0.1", "Diagnostic-Code": "smtp; 550 5.1.1 <nobody@example.test>: User unknown",
         "Last-Attempt-Date": utc_date(T0 + 60)},
        {"Final-Recipient": "rfc822; busy@example.test", "Action": "failed", "Status": "5.4.7",
         "Remote-MTA": "dns; 127.0.0.1",
         "Diagnostic-Code": "smtp; 450 4.2.1 given up after 5 days in the queue; last: mailbox busy "
                            "\\xe9t\\xe9 ",
         "Last-Attempt-Date": utc_date(T0 + 5 * 86400 + 1)},
        {"Final-Recipient": "rfc822; far@example.test", "Action": "failed", "Status": "5.0.0",
         "Last-Attempt-Date": utc_date(T0 + 120)},
    ]
    parsed = email.message_from_bytes(report, policy=email.policy.default)
    assert (parsed["From"], parsed["To"], parsed["Auto-Submitted"]) == \
           ("Mail Delivery System <MAILER-DAEMON@mx.example.test>", "alice@example.test", "auto-replied")
    text = parsed.get_payload()[0].get_content()
    assert "<nobody@example.test>: 550 5.1.1 <nobody@example.test>: User unknown" in text
    assert "carol@example.test" not in report.decode("ascii")   # the delivered recipient is named nowhere

    with parse_message(io.BytesIO(report)) as tree:
        assert [(p.id, p.content_type) for p in tree.walk()] == [
            ("", "multipart/report"), ("1", "text/plain"), ("2", "message/delivery-status"),
            ("3", "text/rfc822-headers")]
        assert tree.root.params["report-type"] == "delivery-status"
        assert tree.defects == []
        assert tree.part("3").read_decoded() == original
        blocks = tree.part("2").read_decoded().split(b"\r\n\r\n")
        fields = []
        for block in blocks:
            with parse_message(io.BytesIO(block.rstrip(b"\r\n") + b"\r\n\r\n")) as fields_only:
                fields.append([(f.name, fields_only.root.header(f.name)) for f in fields_only.root.headers])
    assert fields[0] == [("Reporting-MTA", "dns; mx.example.test"), ("Arrival-Date", utc_date(T0))]
    assert fields[1][:3] == [("Final-Recipient", "rfc822; nobody@example.test"), ("Action", "failed"),
                             ("Status", "5.1.1")]
    assert [name for name, _ in fields[3]] == ["Final-Recipient", "Action", "Status", "Last-Attempt-Date"]


def test_a_report_to_the_null_sender_has_no_to_and_the_header_block_is_cut_at_its_end():
    refused = RecipientState("nobody@example.test", FAILED, 1, 0, {"code": 550, "enhanced": None, "text": "no"}, T0)
    parsed = email.message_from_bytes(message_bytes(failure_report(entry_with(refused, sender=""), b"", "h")),
                                      policy=email.policy.default)
    assert parsed["To"] is None and status_blocks(parsed.as_bytes())[1]["Status"] == "5.0.0"
    assert original_headers([b"Subject: a\r\nX: b\r", b"\n\r\nbody\r\n"]) == b"Subject: a\r\nX: b\r\n"
    assert original_headers([b"Subject: a\nX: b\n\nbody\n"]) == b"Subject: a\nX: b\n"
    assert original_headers([b"\r\nbody"]) == b""
    assert original_headers([b"X: " + b"y" * (2 << 20)]) == b""   # no line end within the limit: nothing



def test_an_mx_entry_names_the_exchanger_that_refused_as_remote_mta():
    """An mx: entry has no relay host: Remote-MTA is the exchanger of the session that
    answered (it was "dns; " with nothing after it)."""
    refused = RecipientState("nobody@example.test", FAILED, 1, 0, {"code": 550, "enhanced": "5.1.1", "text": "no"},
                             T0, transfer={"exchanger": "mx1.example.test", "address": "127.0.0.1",
                                           "policy": "verify", "result": "verified TLS"})
    entry = entry_with(refused)
    entry.server = "mx:verify"
    assert status_blocks(message_bytes(failure_report(entry, b"", "h")))[1]["Remote-MTA"] == "dns; mx1.example.test"

@pytest.mark.servers
def test_a_550_recipient_gets_exactly_one_report_and_the_accepted_one_none(mail_servers, tmp_path):
    s, token = mail_servers, f"bounce-{uuid.uuid4().hex}"
    with Queue(str(tmp_path / "q")) as queue:
        entry = spool(queue, s, s.smtp_plain, token, to=("carol@example.test", "nobody@example.test"))
    bounces = tmp_path / "bounces"
    run = mimekit("queue", "run", "--json", "--bounce", str(bounces), str(tmp_path / "q"))
    assert run.returncode == 69, run.stderr
    document = json.loads(run.stdout)
    [report_path] = [item["path"] for item in document["bounces"] if item["id"] == entry.id]
    assert document["bounce_errors"] == [] and document["failed"] == 1 and document["delivered"] == 1
    [report] = reports_in(bounces)
    assert Path(report_path).read_bytes() == report
    per_message, per_recipient = status_blocks(report)
    assert per_message["Reporting-MTA"].startswith("dns; ") and per_message["Arrival-Date"] == utc_date(entry.created)
    assert (per_recipient["Final-Recipient"], per_recipient["Action"], per_recipient["Status"],
            per_recipient["Remote-MTA"]) == ("rfc822; nobody@example.test", "failed", "5.1.1", "dns; 127.0.0.1")
    assert per_recipient["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <nobody@example.test>")
    assert b"carol@example.test" not in report.split(b"text/rfc822-headers")[0]   # only in the original's header
    again = mimekit("queue", "run", "--bounce", str(bounces), str(tmp_path / "q"))
    assert again.returncode == 0 and len(reports_in(bounces)) == 1   # failed/ is not reported twice
    assert wait_for(s, "carol", token, 1) == {token: 1}


@pytest.mark.servers
def test_a_4xx_recipient_given_up_after_the_maximum_age_is_reported_as_expired(mail_servers, tmp_path):
    s, token = mail_servers, f"expired-{uuid.uuid4().hex}"
    bounces = Maildir(str(tmp_path / "bounces"))
    with Queue(str(tmp_path / "q")) as queue:
        entry = spool(queue, s, s.smtp_plain, token, to=(s.tempfail_recipient,), now=T0)
        first = deliver_queue(queue, now=lambda: T0, bounce=bounces)
        assert first.recipients(PENDING) == 1 and first.bounces == []
        last = deliver_queue(queue, now=lambda: T0 + 5 * 86400 + 1, bounce=bounces)
        assert [outcome.status for outcome in last.outcomes] == ["failed"] and last.bounces[0][0] == entry.id
    [report] = reports_in(tmp_path / "bounces")
    recipient = status_blocks(report)[1]
    assert (recipient["Final-Recipient"], recipient["Status"]) == (f"rfc822; {s.tempfail_recipient}", "5.4.7")
    assert recipient["Diagnostic-Code"].startswith("smtp; 450 4.2.1 given up after 5 days in the queue; last: ")


@pytest.mark.servers
def test_a_full_maildir_keeps_the_entry_queued_until_its_report_is_written(mail_servers, tmp_path):
    s, token = mail_servers, f"full-{uuid.uuid4().hex}"
    queue_dir = tmp_path / "q"
    with Queue(str(queue_dir)) as queue:
        entry = spool(queue, s, s.smtp_plain, token, to=("nobody@example.test", "carol@example.test"))
    with mounted_tmpfs(tmp_path / "small", "1m") as mount_point:
        Maildir(str(mount_point / "bounces"))
        filler = mount_point / "filler"
        with open(filler, "wb") as stream:
            try:
                stream.write(b"x" * (2 << 20))
            except OSError:
                pass
        run = mimekit("queue", "run", "--bounce", str(mount_point / "bounces"), str(queue_dir))
        assert run.returncode in (73, 74), run.stderr
        assert f"{entry.id}: cannot write its failure report".encode() in run.stderr
        [listed] = queue_json(queue_dir)["entries"]
        assert listed["status"] == "queued" and {r["state"] for r in listed["recipients"]} == {DONE, FAILED}
        assert reports_in(mount_point / "bounces") == [] and os.listdir(mount_point / "bounces" / "tmp") == []
        filler.unlink()
        run = mimekit("queue", "run", "--bounce", str(mount_point / "bounces"), str(queue_dir))
        assert run.returncode == 0, run.stderr   # nothing attempted in this run failed
        assert len(reports_in(mount_point / "bounces")) == 1
    assert [e["status"] for e in queue_json(queue_dir)["entries"]] == ["failed"]
    assert wait_for(s, "carol", token, 1) == {token: 1}   # carol was not sent to again


@pytest.mark.servers
def test_kill_9_at_random_points_of_queue_run_bounce_loses_no_report(mail_servers, tmp_path):
    s, prefix = mail_servers, f"bkill-{uuid.uuid4().hex[:12]}-"
    rng = random.Random(os.environ.get("MIMEKIT_TEST_SEED", "bounce-kill"))
    queue_dir, bounces = tmp_path / "q", tmp_path / "bounces"
    spooled, kills = [], 0
    with Queue(str(queue_dir)) as queue:
        while kills < KILL_TRIALS:
            if not queue.ids():
                spooled += [spool(queue, s, s.smtp_plain, f"{prefix}{len(spooled)}", to=("nobody@example.test",)).id
                            for _ in range(BATCH)]
            run = subprocess.Popen([sys.executable, "-m", "mimekit_cli", "queue", "run", "-q", "--bounce",
                                    str(bounces), str(queue_dir)], cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.3, 1.5))
            if run.poll() is None:
                run.send_signal(signal.SIGKILL)
                kills += 1
            run.wait()
    final = mimekit("queue", "run", "--bounce", str(bounces), str(queue_dir))
    assert final.returncode in (0, 69), final.stderr
    reported = [status_blocks(report) for report in reports_in(bounces)]
    ids = [email.message_from_bytes(report).get_payload()[0].get_payload() for report in reports_in(bounces)]
    per_entry = {entry_id: sum(entry_id in text for text in ids) for entry_id in spooled}
    duplicates = sum(count - 1 for count in per_entry.values())
    print(f"{len(spooled)} failing entries, {kills} kills, {duplicates} duplicate report(s)")
    assert min(per_entry.values()) == 1 and duplicates <= kills
    assert all(blocks[1]["Final-Recipient"] == "rfc822; nobody@example.test" for blocks in reported)
    assert os.listdir(queue_dir / "queue") == [] and len(os.listdir(queue_dir / "failed")) == 2 * len(spooled)


@pytest.mark.servers
def test_retry_puts_a_failed_entry_back_and_it_is_delivered_once_the_cause_is_lifted(mail_servers, tmp_path):
    s, token = mail_servers, f"requeue-{uuid.uuid4().hex}"
    s.set_switchable_access({"carol@example.test": "550 5.7.1 not today"})
    try:
        sent = mimekit("send", f"--queue={tmp_path}", "--server", f"smtp://127.0.0.1:{s.smtp_switchable}",
                       "--cafile", str(s.ca_file), "--to", "carol@example.test", "--to", "bob@example.test", "-",
                       input=message(token))
        assert sent.returncode == 69, sent.stderr
    finally:
        s.set_switchable_access({})
    [entry] = queue_json(tmp_path)["entries"]
    assert entry["status"] == "failed"
    retried = mimekit("queue", "retry", "-d", str(tmp_path), entry["id"])
    assert retried.returncode == 0, retried.stderr
    assert b"back in the queue, due now for carol@example.test" in retried.stderr
    [again] = queue_json(tmp_path)["entries"]
    states = {r["address"]: (r["state"], r["attempts"]) for r in again["recipients"]}
    assert again["status"] == "queued" and states == {"carol@example.test": (PENDING, 0), "bob@example.test": (DONE, 1)}
    run = mimekit("queue", "run", "--json", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["delivered"] == 1 and queue_json(tmp_path)["entries"] == []
    assert wait_for(s, "carol", token, 1) == {token: 1} and delivered(s, "bob", token) == {token: 1}


def failed_entry(queue: Queue, tmp_path: Path) -> str:
    """An entry in failed/: its one recipient given up on (a closed port, past the maximum age)."""
    import socket
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    source = tmp_path / "m.eml"
    source.write_bytes(message("requeue", "bob@example.test"))
    from mimekit.transport.smtp.envelope import prepare_message
    from mimekit.transport.urls import parse_url
    entry = queue.spool(prepare_message(str(source), extract=True), parse_url(f"smtp://127.0.0.1:{port}", {"smtp"}),
                        timeout=5, now=T0)
    deliver_queue(queue, now=lambda: T0 + 6 * 86400)
    assert queue.ids(failed=True) == [entry.id]
    return entry.id


@pytest.mark.parametrize("cut_at", ["rename", "unlink"])
def test_a_requeue_cut_short_leaves_one_consistent_entry(tmp_path, monkeypatch, cut_at):
    """A kill inside requeue, stood in for by the failing system call at that step."""
    with Queue(str(tmp_path / "q")) as queue:
        entry_id = failed_entry(queue, tmp_path)
        real = getattr(os, cut_at)

        def killed(*args, **kwargs):
            if str(args[0]).endswith(f"failed/{entry_id}" + (".eml" if cut_at == "rename" else ".json")):
                raise KeyboardInterrupt
            return real(*args, **kwargs)
        monkeypatch.setattr(os, cut_at, killed)
        with pytest.raises(KeyboardInterrupt):
            with queue.lock_or_fail(entry_id) as locked:
                locked.requeue(T0 + 7 * 86400)
        monkeypatch.setattr(os, cut_at, real)
        queue.recover()
        if cut_at == "rename":   # the new state only: the entry stays failed, its recipient pending
            assert (queue.ids(), queue.ids(failed=True)) == ([], [entry_id])
            assert queue.read(entry_id, failed=True).recipients[0].state == PENDING
        else:                    # the message moved too: it is queued, the old state gone
            assert (queue.ids(), queue.ids(failed=True)) == ([entry_id], [])
            assert sorted(os.listdir(queue.failed_path)) == []
            requeued = queue.read(entry_id)
            assert (requeued.created, requeued.recipients[0].state) == (T0 + 7 * 86400, PENDING)
        locked = queue.lock(entry_id, failed=cut_at == "rename")
        assert locked is not None   # nothing left locked
        locked.unlock()


def test_recover_meeting_a_requeue_that_its_own_process_finishes_meanwhile(tmp_path, monkeypatch):
    """recover saw failed/ID.json without its message (a requeue half-way), then `queue retry`
    finished that requeue before recover got the lock: the stale state was gone already, and
    recover's unlink of it failed the whole run (FileNotFoundError, exit 74)."""
    with Queue(str(tmp_path / "q")) as queue:
        entry_id = failed_entry(queue, tmp_path)
        os.rename(Path(queue.failed_path) / f"{entry_id}.eml", Path(queue.active_path) / f"{entry_id}.eml")
        os.link(Path(queue.failed_path) / f"{entry_id}.json", Path(queue.active_path) / f"{entry_id}.json")
        real_lock = Queue._lock_message

        def lock_after_the_requeue_ends(self, *args, **kwargs):
            (Path(queue.failed_path) / f"{entry_id}.json").unlink(missing_ok=True)   # what requeue does last
            return real_lock(self, *args, **kwargs)
        monkeypatch.setattr(Queue, "_lock_message", lock_after_the_requeue_ends)
        queue.recover()
        assert (queue.ids(), queue.ids(failed=True)) == ([entry_id], [])
