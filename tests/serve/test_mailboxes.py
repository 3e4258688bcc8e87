"""mimekit.serve.mailboxes: routing, the trace fields (Return-Path on the stored copies, Received),
one-file durable delivery to several
Maildirs and the relay queue, and the POP3 maildrop lock (issue 13).

The full-disk case uses a real tmpfs (root only; elsewhere it skips), so ENOSPC comes from
the kernel; the kill case SIGKILLs a real delivering process at random points."""

import asyncio
import dataclasses
import email
import email.policy
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import fsynced_paths, mounted_tmpfs, parse

from mimekit.headers.dates import parse_date
from mimekit.headers.folding import unfold
from mimekit.queue.store import QUEUE_SCHEMES, Queue
from mimekit.read.events import HeaderField
from mimekit.serve import mailboxes as mailboxes_module
from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import (LOCK_NAME, DeliveryError, Mailboxes, Refusal, Route, Trace,
                                     received_field)
from mimekit.serve.server import serve
from mimekit.serve.users import Users, add_user
from mimekit.stores import Maildir
from mimekit.stores.sources import messages_of
from mimekit.transport.urls import parse_url

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "example.test"
RELAY = parse_url("smtp://127.0.0.1:2", QUEUE_SCHEMES)   # never contacted: spooling only
TRACE = Trace("client.example.test", "127.0.0.1", "ESMTPS", "TLSv1.3 TLS_AES_256_GCM_SHA384")
MESSAGE = b"From: bob@example.test\r\nSubject: hello\r\n\r\nline one\r\nline two\r\n"
SENDER = "bob@example.test"

# The Received field as we write it (RFC 5321 §4.4 Stamp, one form of it), unfolded.
RECEIVED = re.compile(r"from (?P<helo>[A-Za-z0-9.\-_:\[\]?]+) \((?P<peer>\[[0-9.]+\]|\[IPv6:[0-9a-fA-F:.]+\])\)"
                      r" by (?P<by>[A-Za-z0-9.\-]+) with (?P<proto>E?SMTPS?A?)(?: \((?P<tls>[^()\\]+)\))?"
                      r" id (?P<id>[A-Za-z0-9]+)(?: for <(?P<for>[^<>]+)>)?; (?P<date>.+)")


def domains_config(root: Path, users=None, relay=None, queue_dir=None) -> ServeConfig:
    return ServeConfig(str(root), hostname="mx.example.test", domains=(DOMAIN,), users=users, relay=relay,
                       queue_dir=str(queue_dir) if queue_dir else None)


def deliver(mailboxes: Mailboxes, addresses: list[str], message: bytes = MESSAGE, authenticated=None,
            trace: Trace = TRACE, sender: str = SENDER):
    routes = [mailboxes.route(address, authenticated) for address in addresses]
    assert all(isinstance(route, Route) for route in routes), routes
    delivery = mailboxes.begin(sender, routes, trace)
    for start in range(0, len(message), 7):   # CRLFs cut between writes
        delivery.write(message[start:start + 7])
    delivery.commit()
    return delivery


def files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []


def stored(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n")


def received_of(data: bytes, sender: str | None = SENDER) -> str:
    """The Received field's value, unfolded, as mimekit's parser reads it, once the trace is
    checked: a stored copy starts with the Return-Path naming `sender`, then exactly one
    Received; a relayed copy (sender None) starts with that Received."""
    fields = [event for event in parse(data) if isinstance(event, HeaderField)]
    if sender is not None:
        return_path = fields.pop(0)
        assert (return_path.name, return_path.raw_value.strip()) == ("Return-Path", f"<{sender}>".encode())
    assert fields[0].name == "Received" and "Received" not in [field.name for field in fields[1:]]
    return unfold(fields[0].raw_value).decode().strip()


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> Users:
    path = tmp_path_factory.mktemp("users") / "users"
    for name in ("alice", "bob", "carol@example.test"):
        add_user(str(path), name, "password")
    return Users.load(str(path))


# ---- routing -------------------------------------------------------------------------------

ROUTING = [
    # address, authenticated user, users file?, relay?  ->  maildir under root, or (code, enhanced)
    ("Alice@Example.TEST", None, False, False, "alice"),
    ("anyone.at.all@example.test", None, False, False, "anyone.at.all"),
    ("a/b@example.test", None, False, False, (550, "5.1.3")),
    ("x" * 65 + "@example.test", None, False, False, (550, "5.1.3")),
    ('".hidden"@example.test', None, False, False, '".hidden"'),      # the quote keeps it visible
    (".hidden@example.test", None, False, False, (553, "5.1.3")),      # not an SMTP mailbox at all
    ("no-at-sign", None, False, False, (553, "5.1.3")),
    ("a@b@example.test", None, False, False, (553, "5.1.3")),
    ("postmaster", None, True, False, "postmaster"),                   # RFC 5321 §4.1.1.3
    ("PostMaster@example.test", None, True, False, "postmaster"),      # not in the users file
    ("alice@example.test", None, True, False, "alice"),
    ("BOB@example.test", None, True, False, "bob"),
    ("dave@example.test", None, True, False, (550, "5.1.1")),
    ("carol@example.test", None, True, False, "carol@example.test"),  # a name that is an address
    ("someone@other.test", None, False, False, (550, "5.7.1")),
    ("someone@other.test", None, False, True, (550, "5.7.1")),         # relay, but no login
    ("someone@other.test", "alice", False, False, (550, "5.7.1")),     # login, but no relay
    ("someone@other.test", "alice", True, True, "relay"),
    ("postmaster@other.test", None, True, True, (550, "5.7.1")),       # only ours
]


@pytest.mark.parametrize("address, login, with_users, with_relay, expected", ROUTING)
def test_routing_table(tmp_path, users, address, login, with_users, with_relay, expected):
    mailboxes = Mailboxes(domains_config(tmp_path, users if with_users else None, RELAY if with_relay else None))
    route = mailboxes.route(address, login)
    if isinstance(expected, tuple):
        assert isinstance(route, Refusal) and (route.code, route.enhanced) == expected
    elif expected == "relay":
        assert route == Route(address, relay=True)
    else:
        assert route == Route(address, str(tmp_path / expected))


def test_catch_all_puts_one_copy_into_the_root_however_many_recipients(tmp_path):
    mailboxes = Mailboxes(ServeConfig(str(tmp_path / "root")))
    addresses = ["a@one.test", "b@two.test", "Postmaster", "c@[127.0.0.1]"]
    assert all(mailboxes.route(address) == Route(address, str(tmp_path / "root")) for address in addresses)
    assert isinstance(mailboxes.route("not an address"), Refusal)
    delivery = deliver(mailboxes, addresses)
    [path] = files(tmp_path / "root" / "new")
    assert delivery.paths == [str(path)] and delivery.id in path.name
    assert path.read_bytes().endswith(stored(MESSAGE)) and "for <" not in received_of(path.read_bytes())


# ---- the Received field -----------------------------------------------------------------

def test_return_path_then_received_come_first_and_parse_with_mimekit_and_python(tmp_path):
    delivery = deliver(Mailboxes(ServeConfig(str(tmp_path))), ["alice@example.test"])
    data = Path(delivery.paths[0]).read_bytes()
    assert data.startswith(b"Return-Path: <bob@example.test>\nReceived: from client.example.test ")
    value = received_of(data)
    match = RECEIVED.fullmatch(value)
    assert match, value
    assert match["helo"] == "client.example.test" and match["peer"] == "[127.0.0.1]"
    assert match["by"] == "mx.example.test" or match["by"] == "localhost"
    assert (match["proto"], match["tls"]) == ("ESMTPS", "TLSv1.3 TLS_AES_256_GCM_SHA384")
    assert match["id"] == delivery.id and match["for"] == "alice@example.test"
    when, defects = parse_date(value.rpartition(";")[2])
    assert not defects and abs((datetime.now(timezone.utc) - when).total_seconds()) < 60

    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert not parsed.defects and parsed["Received"] == value and parsed["Subject"] == "hello"
    assert parsed["Return-Path"] == "<bob@example.test>"
    assert all(len(line) <= 78 for line in data.split(b"\n\n")[0].split(b"\n"))


def test_hostile_helo_cannot_add_a_field_or_break_the_comment(tmp_path):
    trace = Trace("evil\r\nBcc: victim@example.test (x) ;\x00\u00e9" + "y" * 400, "2001:db8::1", "ESMTP")
    data = Path(deliver(Mailboxes(ServeConfig(str(tmp_path))), ["a@example.test", "b@example.test"],
                        trace=trace).paths[0]).read_bytes()
    fields = [event.name for event in parse(data) if isinstance(event, HeaderField)]
    assert fields == ["Return-Path", "Received", "From", "Subject"]
    match = RECEIVED.fullmatch(received_of(data))
    assert match and match["peer"] == "[IPv6:2001:db8::1]" and match["for"] is None
    assert match["helo"].startswith("evil??Bcc:?victim?example.test??x?????y") and len(match["helo"]) == 255
    assert match["tls"] is None and match["proto"] == "ESMTP"


def test_the_trace_holds_only_what_the_received_field_writes():
    """No login name rides along to the stored message (RFC 4954 §4's AUTH= is for relays
    and not a Received clause): with_protocol's A says a login happened, the log says who."""
    assert [field.name for field in dataclasses.fields(Trace)] == ["helo", "peer_ip", "with_protocol", "tls"]


def test_an_empty_helo_names_the_peer():
    field = received_field(Trace("", "192.0.2.1", "SMTP"), "mx.test", "ID", [], datetime.now(timezone.utc))
    assert field.startswith(b"Received: from [192.0.2.1] ([192.0.2.1]) by mx.test with SMTP")


@pytest.mark.parametrize("sender", ["bob@example.test", "", "zoë@exämple.test"], ids=["address", "null", "utf8"])
def test_the_return_path_names_the_envelope_sender_on_every_local_copy(tmp_path, sender):
    """RFC 5321 §4.4: the final delivery records the reverse-path, `<>` for the null sender
    (a bounce), as the first field of each recipient's copy."""
    delivery = deliver(Mailboxes(domains_config(tmp_path)), ["alice@example.test", "bob@example.test"],
                       sender=sender)
    copies = [files(tmp_path / user / "new") for user in ("alice", "bob")]
    assert [len(paths) for paths in copies] == [1, 1] and delivery.paths == [str(paths[0]) for paths in copies]
    for [path] in copies:
        data = path.read_bytes()
        assert data.startswith(f"Return-Path: <{sender}>\nReceived: ".encode())
        assert RECEIVED.fullmatch(received_of(data, sender)) and data.endswith(stored(MESSAGE))


# ---- delivery ------------------------------------------------------------------------------

def test_several_local_recipients_share_one_file_under_distinct_names(tmp_path):
    mailboxes = Mailboxes(domains_config(tmp_path))
    delivery = deliver(mailboxes, ["alice@example.test", "bob@example.test", "Alice@example.test",
                                   "carol@example.test"])
    found = [files(tmp_path / user / "new") for user in ("alice", "bob", "carol")]
    assert [len(paths) for paths in found] == [1, 1, 1]
    paths = [paths[0] for paths in found]
    assert delivery.paths == [str(path) for path in paths]
    assert len({path.name for path in paths}) == 3
    assert len({path.stat().st_ino for path in paths}) == 1 and paths[0].stat().st_nlink == 3
    assert all(not files(tmp_path / user / "tmp") for user in ("alice", "bob", "carol"))

    bob = Maildir(str(tmp_path / "bob"), create=False)
    bob.remove(*bob.keys())                          # a POP3 DELE of bob's copy
    assert paths[0].read_bytes().endswith(stored(MESSAGE)) and paths[2].exists()


def test_a_copy_taken_by_pop3_at_once_does_not_cost_the_other_recipients_theirs(tmp_path, monkeypatch):
    """A POP3 session may RETR and DELE the first recipient's copy the moment it appears in
    new/: the other recipients' copies are made from the tmp/ file, which no reader moves."""
    mailboxes = Mailboxes(domains_config(tmp_path))
    rename = os.rename

    def rename_then_pop3_takes_alices(source, target):
        rename(source, target)
        if os.path.dirname(target) == str(tmp_path / "alice" / "new"):
            os.unlink(target)

    monkeypatch.setattr(os, "rename", rename_then_pop3_takes_alices)
    deliver(mailboxes, ["alice@example.test", "bob@example.test", "carol@example.test"])
    monkeypatch.undo()
    for user in ("bob", "carol"):
        [path] = files(tmp_path / user / "new")
        assert path.read_bytes().endswith(stored(MESSAGE))
        assert not files(tmp_path / user / "tmp")
    assert not files(tmp_path / "alice" / "new") and not files(tmp_path / "alice" / "tmp")


def test_maildirs_made_up_by_senders_are_not_all_kept_open(tmp_path, monkeypatch):
    """With domains and no users file every local part has a mailbox: the Maildirs a sender
    makes up are created, but only the OPEN_MAILDIRS used last stay open."""
    monkeypatch.setattr(mailboxes_module, "OPEN_MAILDIRS", 2)
    mailboxes = Mailboxes(domains_config(tmp_path))
    for user in ("u1", "u2", "u3", "u1", "u4"):
        deliver(mailboxes, [f"{user}@example.test"])
    assert list(mailboxes._maildirs) == [str(tmp_path / "u1"), str(tmp_path / "u4")]
    assert [len(files(tmp_path / user / "new")) for user in ("u1", "u2", "u3", "u4")] == [2, 1, 1, 1]


def test_abort_leaves_nothing_and_may_be_repeated(tmp_path):
    mailboxes = Mailboxes(domains_config(tmp_path))
    delivery = mailboxes.begin("", [mailboxes.route("alice@example.test")], TRACE)
    delivery.write(MESSAGE)
    assert len(files(tmp_path / "alice" / "tmp")) == 1 and not files(tmp_path / "alice" / "new")
    delivery.abort()
    delivery.abort()
    assert not files(tmp_path / "alice" / "tmp") and not files(tmp_path / "alice" / "new")

    committed = deliver(mailboxes, ["alice@example.test"])
    committed.abort()                                # after a commit: the message stays
    assert [str(path) for path in files(tmp_path / "alice" / "new")] == committed.paths


def test_a_commit_that_cannot_rename_is_a_451_and_leaves_nothing(tmp_path):
    mailboxes = Mailboxes(domains_config(tmp_path))
    delivery = mailboxes.begin("", [mailboxes.route("alice@example.test")], TRACE)
    delivery.write(MESSAGE)
    os.rmdir(tmp_path / "alice" / "new")             # what an administrator's mistake does
    with pytest.raises(DeliveryError) as raised:
        delivery.commit()
    assert (raised.value.refusal.code, raised.value.refusal.enhanced) == (451, "4.3.0")
    assert str(tmp_path) in str(raised.value) and str(tmp_path) not in raised.value.refusal.text
    assert not files(tmp_path / "alice" / "tmp")
    delivery.abort()


def test_relayed_recipients_are_spooled_with_the_delivered_bytes(tmp_path, users):
    queue_dir = tmp_path / "queue"
    mailboxes = Mailboxes(domains_config(tmp_path / "root", users, RELAY, queue_dir))
    mixed = deliver(mailboxes, ["alice@example.test", "x@other.test", "y@else.test", "x@other.test"],
                    authenticated="alice")
    relayed_only = deliver(mailboxes, ["z@other.test"], authenticated="alice")
    local = Path(mixed.paths[0]).read_bytes()
    return_path, relayed = local.split(b"\n", 1)
    assert return_path == b"Return-Path: <bob@example.test>"    # the relay's final delivery adds its own
    with Queue(str(queue_dir)) as queue:
        entries = [queue.read(entry_id) for entry_id in queue.ids()]
        assert sorted(entry.recipients[0].address for entry in entries) == ["x@other.test", "z@other.test"]
        [first] = [entry for entry in entries if entry.recipients[0].address == "x@other.test"]
        assert [r.address for r in first.recipients] == ["x@other.test", "y@else.test"]
        assert first.sender == "bob@example.test" and first.server == "smtp://127.0.0.1:2"
        assert (queue_dir / "queue" / f"{first.id}.eml").read_bytes() == relayed
        assert first.scan.size == len(relayed) + relayed.count(b"\n")     # CRLF size, as SIZE= gives it
        [only] = [entry for entry in entries if entry.recipients[0].address == "z@other.test"]
        queued = (queue_dir / "queue" / f"{only.id}.eml").read_bytes()
        assert RECEIVED.fullmatch(received_of(queued, sender=None)) and queued.endswith(stored(MESSAGE))
    assert RECEIVED.fullmatch(received_of(relayed, sender=None))
    assert relayed_only.paths == [] and not files(queue_dir / "incoming" / "tmp")
    assert not files(queue_dir / "incoming" / "new")


@pytest.fixture
def small_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "small-disk", "2m") as mount_point:
        yield mount_point


def test_full_disk_is_a_452_and_delivers_nothing_anywhere(small_disk):
    mailboxes = Mailboxes(domains_config(small_disk / "root"))
    routes = [mailboxes.route(address) for address in ("alice@example.test", "bob@example.test")]
    big = MESSAGE + b"x" * 76 + b"\r\n" + (b"y" * 998 + b"\r\n") * 3000        # 3 MB > 2 MiB
    delivery = mailboxes.begin("", routes, TRACE)
    with pytest.raises(DeliveryError) as raised:
        for start in range(0, len(big), 65536):
            delivery.write(big[start:start + 65536])
        delivery.commit()
    assert (raised.value.refusal.code, raised.value.refusal.enhanced, raised.value.refusal.text) == \
        (452, "4.3.1", "insufficient system storage")
    delivery.abort()
    for user in ("alice", "bob"):
        assert not files(small_disk / "root" / user / "new") and not files(small_disk / "root" / user / "tmp")
    deliver(mailboxes, ["alice@example.test", "bob@example.test"])   # the space came back
    assert [len(files(small_disk / "root" / user / "new")) for user in ("alice", "bob")] == [1, 1]


# ---- SIGKILL -------------------------------------------------------------------------------

DELIVERY_LOOP = r"""
import sys
from mimekit.queue.store import QUEUE_SCHEMES
from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import Mailboxes, Trace
from mimekit.transport.urls import parse_url
root, queue_dir, trial = sys.argv[1], sys.argv[2], int(sys.argv[3])
mailboxes = Mailboxes(ServeConfig(root, domains=("example.test",), relay=parse_url("smtp://127.0.0.1:2", QUEUE_SCHEMES),
                                  queue_dir=queue_dir))
routes = [mailboxes.route(a, "alice") for a in ("alice@example.test", "bob@example.test", "x@other.test")]
print("ready", flush=True)
for n in range(1000):
    delivery = mailboxes.begin("s@example.test", routes, Trace("h", "127.0.0.1", "ESMTPA"))
    delivery.write(b"Subject: %d-%d\r\n\r\n" % (trial, n))
    for i in range(LINES):
        delivery.write(b"line %05d of message %d, long enough that a kill often lands inside a write\r\n" % (i, n))
    delivery.commit()
    print(n, flush=True)
"""
LINES = 300
KILL_TRIALS = int(os.environ.get("MIMEKIT_KILL_TRIALS", "15"))
SUBJECT = re.compile(rb"\nSubject: ([0-9]+)-([0-9]+)\n")


def whole_message(data: bytes, sender: str | None = "s@example.test") -> tuple[int, int]:
    """(trial, n) of a stored message, after checking it is whole: the Return-Path (none on
    the queued copy: sender None) and the Received field, then exactly the message the loop wrote."""
    trial, n = map(int, SUBJECT.search(data).groups())
    assert RECEIVED.fullmatch(received_of(data, sender))
    assert data.endswith(b"Subject: %d-%d\n\n" % (trial, n) + b"".join(
        b"line %05d of message %d, long enough that a kill often lands inside a write\n" % (i, n)
        for i in range(LINES)))
    return trial, n


def test_deliveries_killed_at_random_points_leave_whole_messages_or_none(tmp_path):
    """Everything under new/ and in the queue is a whole message; every message whose commit
    returned is in both Maildirs and in the queue; at most the one being delivered when the
    kill came is there without its commit having returned. The next opening of a Maildir
    removes the tmp files the dead processes left."""
    root, queue_dir, rng = tmp_path / "root", tmp_path / "queue", random.Random(13)
    committed: set[tuple[int, int]] = set()
    cut_writes = 0
    for trial in range(KILL_TRIALS):
        process = subprocess.Popen([sys.executable, "-c", DELIVERY_LOOP.replace("LINES", str(LINES)), str(root),
                                    str(queue_dir), str(trial)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout.readline() == b"ready\n", process.stderr.read().decode()
        time.sleep(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == -signal.SIGKILL
        committed |= {(trial, int(line)) for line in output.split()}
        delivered = {user: {whole_message(path.read_bytes()) for path in files(root / user / "new")}
                     for user in ("alice", "bob")}
        with Queue(str(queue_dir)) as queue:
            queued = {whole_message((queue_dir / "queue" / f"{entry_id}.eml").read_bytes(), sender=None)
                      for entry_id in queue.ids()}
        assert committed <= queued <= delivered["bob"] <= delivered["alice"]     # the order commit works in
        assert len(delivered["alice"] - committed) <= trial + 1
        cut_writes += len(files(root / "alice" / "tmp"))
    cut_commits = len(delivered["alice"] - committed)
    print(f"{len(committed)} committed, {cut_writes} kills before the rename, {cut_commits} after it")
    assert len(committed) > KILL_TRIALS, "hardly a delivery was committed before a kill: the trials prove little"
    assert cut_writes + cut_commits > 0, "no kill landed inside a delivery: the trials prove little"
    for user in ("alice", "bob"):
        Maildir(str(root / user))
        assert not files(root / user / "tmp")


def test_serve_makes_a_new_root_durable_before_the_first_client(tmp_path, monkeypatch):
    """A root made at start is fsync'd into its parent, as a Maildir made now is: mail
    acknowledged under it must not vanish with the directory in a crash."""
    fsynced = fsynced_paths(monkeypatch)
    stop = asyncio.Event()
    stop.set()
    asyncio.run(serve(domains_config(tmp_path / "mail" / "root"), smtp=("127.0.0.1", 0), pop3=None, stop=stop))
    assert (tmp_path / "mail" / "root").is_dir()
    assert sorted(fsynced) == [str(tmp_path), str(tmp_path / "mail")]


# ---- the POP3 maildrop ---------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import Mailboxes
lock = Mailboxes(ServeConfig(sys.argv[1], domains=("example.test",))).lock_maildrop("alice")
print("held" if lock else "busy", flush=True)
time.sleep(60)
"""


def test_maildrop_lock_excludes_sessions_of_this_process_and_others(tmp_path):
    mailboxes = Mailboxes(domains_config(tmp_path))
    first = mailboxes.lock_maildrop("Alice")
    assert first is not None and mailboxes.lock_maildrop("alice") is None
    assert mailboxes.lock_maildrop("bob") is not None    # another user's maildrop is free
    first.release()
    first.release()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        assert mailboxes.lock_maildrop("alice") is None
    finally:
        holder.kill()
        holder.wait()
    with mailboxes.lock_maildrop("alice") as again:         # the kernel released the dead holder's
        assert again is not None


def test_the_lock_file_is_no_message_to_any_reader(tmp_path):
    for config in (ServeConfig(str(tmp_path / "catch-all")), domains_config(tmp_path / "domains")):
        mailboxes = Mailboxes(config)
        deliver(mailboxes, ["alice@example.test"])
        with mailboxes.lock_maildrop("alice"):
            maildrop = mailboxes.maildrop("alice")
            assert (Path(maildrop.path) / LOCK_NAME).exists()
            assert len(maildrop.keys()) == 1
            assert len(list(messages_of(f"maildir:{maildrop.path}", recursive=True))) == 1
            assert len(list(messages_of(str(tmp_path), recursive=True))) >= 1
            assert not [ref for ref in messages_of(config.root, recursive=True) if LOCK_NAME in str(ref)]


def test_maildrop_is_the_root_in_catch_all_mode_and_a_user_directory_otherwise(tmp_path):
    assert Mailboxes(ServeConfig(str(tmp_path / "all"))).maildrop("anyone").path == str(tmp_path / "all")
    assert Mailboxes(domains_config(tmp_path / "d")).maildrop("Bob").path == str(tmp_path / "d" / "bob")
    with pytest.raises(Exception, match="cannot name a mailbox"):
        Mailboxes(domains_config(tmp_path / "d")).maildrop("../etc")
