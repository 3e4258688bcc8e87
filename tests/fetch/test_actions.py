"""`mimekit fetch --mark-seen/--flag/--unflag/--move-to`: what the server has afterwards is
read with `doveadm` on the real Dovecot of tests/servers.py (not through mimekit), and what
the outputs keep with the stores' readers and Python's `mailbox`.

Dovecot always offers MOVE, so the UID COPY fallback (and its refusal without UIDPLUS) is
tested against a scripted peer (tests/scripted_servers.py) that offers what a test says.
"""

import json
import mailbox
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from scripted_servers import MESSAGE, ScriptedIMAPServer, scripted

from mimekit.errors import UsageError
from mimekit.fetch.run import FetchOptions, check_options
from mimekit.fetch.run import fetch as fetch_library
from mimekit.fetch.state import FetchState
from mimekit.fetch.sinks import open_sink
from mimekit.stores import Maildir, Mbox
from mimekit.transport.imap import protocol as imap_protocol
from mimekit.transport.urls import parse_url

USER = "alice"


def message(subject: str) -> bytes:
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\n{subject}\r\n").encode()


def mimekit(*args, env):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, env=env, timeout=120)


def doveadm(servers, *args) -> str:
    result = subprocess.run(["doveadm", "-c", str(servers.dovecot_conf), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def server_messages(servers, folder: str = "INBOX") -> dict[str, tuple[set[str], bytes]]:
    """{Subject: (flags, bytes)} of a folder, as Dovecot itself has them."""
    found = json.loads(doveadm(servers, "-f", "json", "fetch", "-u", USER, "flags hdr.subject text",
                               "mailbox", folder, "all") or "[]")
    return {m["hdr.subject"].strip(): (set(m["flags"].split()), m["text"].encode()) for m in found}


@pytest.fixture
def imap_env(servers, env):
    return dict(env, MIMEKIT_PASSWORD=servers.users[USER])


@pytest.fixture
def folder(servers):
    """A folder of alice's made for this test (deleted after it)."""
    name = f"Archive{uuid.uuid4().hex[:8]}"
    doveadm(servers, "mailbox", "create", "-u", USER, name)
    yield name
    doveadm(servers, "mailbox", "delete", "-u", USER, "-s", name)


def fetch(servers, env, *args, folder="INBOX"):
    return mimekit("fetch", f"imaps://{USER}@{servers.host}:{servers.imaps}/{folder}", "--cafile",
                   str(servers.ca_file), "--json", *args, env=env)


def fetch_json(servers, env, *args) -> dict:
    result = fetch(servers, env, *args)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


@pytest.mark.servers
def test_mark_seen_sets_seen_on_the_server_and_s_in_the_maildir(servers, imap_env, tmp_path):
    for subject in ("one", "two"):
        servers.deliver_directly(USER, message(subject))
    report = fetch_json(servers, imap_env, "--mark-seen", "-o", f"maildir:{tmp_path / 'out'}")
    assert report["flags_stored"] == 2 and report["moved"] == 0 and report["move_target"] is None
    assert all("\\Seen" in f["flags"] for f in report["fetched"])
    assert {subject: "\\Seen" in flags for subject, (flags, _) in server_messages(servers).items()} == {
        "one": True, "two": True}
    out = Maildir(str(tmp_path / "out"), create=False)
    assert sorted(out.flags(key) for key in out.keys()) == ["S", "S"]


@pytest.mark.servers
def test_flag_unflag_and_a_keyword_reach_the_server_and_the_mbox_status_lines(servers, imap_env, tmp_path):
    servers.deliver_directly(USER, message("marked"))
    doveadm(servers, "flags", "add", "-u", USER, "\\Seen", "mailbox", "INBOX", "all")
    report = fetch_json(servers, imap_env, "--flag", "FLAGGED", "--flag", "answered", "--flag", "\\draft",
                        "--flag", "$Junk", "--unflag", "seen", "-o", f"mbox:{tmp_path / 'box'}")
    [fetched] = report["fetched"]
    assert {"\\Flagged", "\\Answered", "\\Draft", "$Junk"} <= set(fetched["flags"])
    assert "\\Seen" not in fetched["flags"]
    [(flags, _)] = server_messages(servers).values()
    assert {"\\Flagged", "\\Answered", "\\Draft", "$Junk"} <= flags and "\\Seen" not in flags
    data = (tmp_path / "box").read_bytes()
    assert b"\nStatus: O\nX-Status: AFT\nX-Keywords: $Junk\n" in data   # as Dovecot writes an mbox
    box = Mbox(str(tmp_path / "box"), create=False)
    assert [box.flags(key) for key in box.keys()] == ["DFR"]  # Maildir letters: draft, flagged, replied
    [read_back] = mailbox.mbox(str(tmp_path / "box"))
    assert set(read_back.get_flags()) == {"O", "A", "F", "T"}   # Status + X-Status, as Python reads them
    assert read_back["X-Keywords"] == "$Junk" and read_back["Subject"] == "marked"


@pytest.mark.servers
def test_only_this_runs_messages_are_acted_on(servers, imap_env, tmp_path):
    output = f"maildir:{tmp_path / 'out'}"
    servers.deliver_directly(USER, message("earlier"))
    fetch_json(servers, imap_env, "--new", "-o", output)
    servers.deliver_directly(USER, message("later"))
    report = fetch_json(servers, imap_env, "--new", "--mark-seen", "-o", output)
    assert report["skipped"] == 1 and report["flags_stored"] == 1
    assert {subject: "\\Seen" in flags for subject, (flags, _) in server_messages(servers).items()} == {
        "earlier": False, "later": True}


@pytest.mark.servers
def test_mark_seen_with_a_stdout_output(servers, imap_env):
    """Allowed, unlike --delete: setting a flag loses no mail; the stream carries it too."""
    servers.deliver_directly(USER, message("piped"))
    result = mimekit("fetch", f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", "--cafile",
                     str(servers.ca_file), "--unseen", "--mark-seen", "-o", "mbox:-", env=imap_env)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.split(b"\n")[1:3] == [b"Status: RO", b"From: bob@example.test"]
    [(flags, _)] = server_messages(servers).values()
    assert "\\Seen" in flags


@pytest.mark.servers
def test_move_to_takes_the_messages_out_of_inbox_with_the_same_bytes(servers, imap_env, tmp_path, folder):
    delivered = {subject: message(subject) for subject in ("first", "second")}
    for data in delivered.values():
        servers.deliver_directly(USER, data)
    report = fetch_json(servers, imap_env, "--mark-seen", "--move-to", folder, "-o", f"maildir:{tmp_path / 'out'}")
    assert report["moved"] == 2 and report["move_target"] == folder
    assert server_messages(servers) == {}
    moved = server_messages(servers, folder)
    assert {subject: data for subject, (_, data) in moved.items()} == delivered
    assert all("\\Seen" in flags for flags, _ in moved.values()), "flags are set before the move"
    out = Maildir(str(tmp_path / "out"), create=False)
    assert sorted(out.open(key).read() for key in out.keys()) == sorted(
        data.replace(b"\r\n", b"\n") for data in delivered.values())   # a Maildir keeps LF


@pytest.mark.servers
def test_a_run_that_fails_to_save_changes_nothing_on_the_server(servers, tmp_path, monkeypatch, folder):
    """The server hears of flags and moves only once every message is saved and the state
    fsync'd: an output that fails on the second message leaves both messages unflagged
    in INBOX (the first one saved all the same), and no STORE or MOVE was sent."""
    for subject in ("saved", "not saved"):
        servers.deliver_directly(USER, message(subject))
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    add, order, saves = sink.add, [], []

    def failing_second(message, chunks, flags, keywords=()):
        saves.append(message.id)
        if len(saves) == 2:
            raise OSError(28, "No space left on device")
        return add(message, chunks, flags, keywords)

    monkeypatch.setattr(sink, "add", failing_second)
    sync = FetchState.sync
    monkeypatch.setattr(FetchState, "sync", lambda self: order.append("sync") or sync(self))
    command = imap_protocol.IMAPProtocol._command
    monkeypatch.setattr(imap_protocol.IMAPProtocol, "_command",
                        lambda self, name, *args: order.append(name) or command(self, name, *args))
    with pytest.raises(OSError):
        fetch_library(parse_url(f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", {"imaps"}), sink,
                      FetchOptions(flag=("seen", "$Done"), move_to=folder), password=lambda: servers.users[USER],
                      cafile=str(servers.ca_file), state_directory=str(tmp_path / "state"))
    assert "UID STORE" not in order and "UID MOVE" not in order and "sync" not in order, order
    assert {subject: flags & {"\\Seen", "$Done"} for subject, (flags, _) in server_messages(servers).items()} == {
        "saved": set(), "not saved": set()}
    assert server_messages(servers, folder) == {}
    assert len(Maildir(str(tmp_path / "out"), create=False).keys()) == 1
    order.clear()
    fetch_library(parse_url(f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", {"imaps"}),
                  open_sink(f"maildir:{tmp_path / 'again'}"), FetchOptions(flag=("seen",), move_to=folder),
                  password=lambda: servers.users[USER], cafile=str(servers.ca_file),
                  state_directory=str(tmp_path / "state"))
    assert order.index("sync") < order.index("UID STORE") < order.index("UID MOVE"), "saved, fsync'd, then told"


@pytest.mark.servers
def test_move_to_a_missing_folder_is_69_and_moves_nothing(servers, imap_env, tmp_path):
    servers.deliver_directly(USER, message("stays"))
    result = fetch(servers, imap_env, "--move-to", "NoSuchFolder", "-o", f"maildir:{tmp_path / 'out'}")
    assert result.returncode == 69, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["error"]["code"] == 69 and "NoSuchFolder" in report["error"]["message"]
    assert len(report["fetched"]) == 1 and report["moved"] == 0
    assert list(server_messages(servers)) == ["stays"]
    assert len(Maildir(str(tmp_path / "out"), create=False).keys()) == 1, "the message stays saved"
    plain = mimekit("fetch", f"imaps://{USER}@{servers.host}:{servers.imaps}/INBOX", "--cafile",
                    str(servers.ca_file), "--move-to", "NoSuchFolder", "-o", f"maildir:{tmp_path / 'again'}",
                    env=imap_env)
    assert plain.returncode == 69
    assert plain.stderr.decode().count("\n") == 2 and "NoSuchFolder" in plain.stderr.decode()  # saved before + error


@pytest.mark.parametrize("args, why", [
    (["maildir:{tmp}/src", "--mark-seen"], "need an IMAP source"),
    (["pop3s://alice@127.0.0.1:1", "--flag", "flagged"], "need an IMAP source"),
    (["imaps://alice@127.0.0.1:1/INBOX", "--move-to", "Archive", "--delete"], "contradict"),
    (["imaps://alice@127.0.0.1:1/INBOX", "--move-to", "inbox"], "another folder"),
    (["imaps://alice@127.0.0.1:1/INBOX", "--flag", "not a flag"], "IMAP keyword"),
    (["imaps://alice@127.0.0.1:1/INBOX", "--flag", "\\Recent"], "IMAP keyword"),
    (["imaps://alice@127.0.0.1:1/INBOX", "--mark-seen", "--unflag", "SEEN"], "both name"),
])
def test_impossible_actions_are_usage_errors_before_any_connection(tmp_path, env, args, why):
    (tmp_path / "src").mkdir()
    result = mimekit("fetch", *[a.format(tmp=tmp_path) for a in args], "-o", f"maildir:{tmp_path / 'out'}", env=env)
    assert result.returncode == 64 and why in result.stderr.decode(), result.stderr.decode()
    assert result.stderr.decode().count("\n") == 1


# -- the UID COPY fallback, against a scripted server without MOVE ---------------------------------

def without_move(tmp_path: Path, capabilities: bytes) -> ScriptedIMAPServer:
    """A scripted server offering `capabilities` (no MOVE) that accepts COPY, STORE and UID EXPUNGE."""
    def other(self, tag, command):
        verb = b" ".join(command.upper().split()[:2])
        if verb == b"UID COPY":
            return [tag + b" OK [COPYUID 9 1 41] copied\r\n"]
        if verb == b"UID EXPUNGE":
            return [b"* 1 EXPUNGE\r\n", tag + b" OK expunged\r\n"]
        if verb == b"UID STORE":
            return [tag + b" OK stored\r\n"]
        return [tag + b" BAD not in the script\r\n"]
    return scripted(ScriptedIMAPServer, tmp_path, capabilities=b"IMAP4rev1 AUTH=PLAIN SASL-IR " + capabilities,
                    other=other)


def sent_commands(server: ScriptedIMAPServer) -> list[bytes]:
    """What the client sent after logging in, tags removed."""
    return [line.rstrip(b"\r\n").split(b" ", 1)[1] for line in server.commands
            if not line.split(b" ", 2)[1:2] == [b"AUTHENTICATE"]]


def test_move_without_move_copies_then_expunges_exactly_those_uids(tmp_path, env):
    server = without_move(tmp_path, b"UIDPLUS")
    result = mimekit("fetch", f"{server.url.replace('//', '//alice@')}/INBOX", "--cafile", str(server.ca_file),
                     "--json", "--move-to", "Archive", "-o", f"mbox:{tmp_path / 'box'}",
                     env=dict(env, MIMEKIT_PASSWORD="pw"))
    server.close()
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert report["moved"] == 1 and report["move_target"] == "Archive"
    actions = [c for c in sent_commands(server) if c.split()[:2] != [b"UID", b"FETCH"]][-4:]
    assert actions == [b"UID COPY 1 Archive", b"UID STORE 1 +FLAGS.SILENT (\\Deleted)", b"UID EXPUNGE 1", b"LOGOUT"]
    assert b"SELECT INBOX" in sent_commands(server), "an action needs a read-write SELECT"
    assert Mbox(str(tmp_path / "box"), create=False).open("0").read() == MESSAGE.replace(b"\r\n", b"\n")


@pytest.mark.parametrize("action", [["--move-to", "Archive"], ["--delete"]])
def test_without_uidplus_nothing_is_removed_by_a_plain_expunge(tmp_path, env, action):
    """A plain EXPUNGE would also remove whatever else is marked \\Deleted: refused up front."""
    server = without_move(tmp_path, b"")
    result = mimekit("fetch", f"{server.url.replace('//', '//alice@')}/INBOX", "--cafile", str(server.ca_file),
                     *action, "-o", f"maildir:{tmp_path / 'out'}", env=dict(env, MIMEKIT_PASSWORD="pw"))
    server.close()
    assert result.returncode == 69 and "UIDPLUS" in result.stderr.decode(), result.stderr.decode()
    assert not any(c.split()[:2] in ([b"UID", b"FETCH"], [b"UID", b"STORE"], [b"UID", b"COPY"])
                   or c == b"EXPUNGE" for c in sent_commands(server)), "refused before fetching or changing"


def test_only_inbox_is_the_same_folder_in_any_case():
    """Folder names other than INBOX are case-sensitive (RFC 3501 §5.1): moving from
    Archive to archive is a move, from INBOX to inbox is not."""
    check_options(parse_url("imaps://alice@127.0.0.1:1/Archive", {"imaps"}), FetchOptions(move_to="archive"), True)
    with pytest.raises(UsageError, match="another folder"):
        check_options(parse_url("imaps://alice@127.0.0.1:1/Archive", {"imaps"}), FetchOptions(move_to="Archive"), True)
    with pytest.raises(UsageError, match="another folder"):
        check_options(parse_url("imaps://alice@127.0.0.1:1/inbox", {"imaps"}), FetchOptions(move_to="INBOX"), True)
