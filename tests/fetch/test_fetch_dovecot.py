"""`mimekit fetch` and `mimekit folders` against the real Dovecot of tests/servers.py.

These check the driver: TLS (STARTTLS and implicit, verified against the test CA),
login, the durability rules and --new, through the command a user runs. The protocol
details are covered byte by byte in test_imap_protocol.py and test_pop3_protocol.py.
"""

import imaplib
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.servers
USER = "alice"


def message(subject: str, body: bytes = b"hello\r\n", message_id: str | None = None) -> bytes:
    message_id = message_id or f"<{uuid.uuid4().hex}@example.test>"
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: {message_id}\r\nDate: Mon, 1 Jul 2024 10:00:00 +0000\r\n\r\n").encode() + body


@pytest.fixture
def env(servers, tmp_path):
    return dict(os.environ, MIMEKIT_PASSWORD=servers.users[USER], XDG_STATE_HOME=str(tmp_path / "state"))


def url(servers, scheme: str, folder: str = "") -> str:
    port = getattr(servers, scheme)
    return f"{scheme}://{USER}@{servers.host}:{port}/{folder}".rstrip("/") if scheme.startswith("pop3") \
        else f"{scheme}://{USER}@{servers.host}:{port}/{folder}"


def mimekit(*args, env, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, env=env,
                          input=input, timeout=120)


def fetch_json(servers, env, scheme, *args, folder=""):
    result = mimekit("fetch", url(servers, scheme, folder), "--cafile", str(servers.ca_file), "--json",
                     *args, env=env)
    assert result.returncode == 0, result.stderr.decode()
    return json.loads(result.stdout)


def maildir_files(path: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") if (path / sub).is_dir() for p in (path / sub).iterdir())


def stored(path: Path) -> set[bytes]:
    return {p.read_bytes() for p in maildir_files(path)}


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def imap_client(servers) -> imaplib.IMAP4_SSL:
    """Python's imaplib as a second client that changes the mailbox behind our back."""
    client = imaplib.IMAP4_SSL(servers.host, servers.imaps,
                               ssl_context=ssl.create_default_context(cafile=str(servers.ca_file)))
    client.login(USER, servers.users[USER])
    return client


def server_count(servers, folder="INBOX") -> int:
    client = imap_client(servers)
    try:
        status, data = client.select(folder, readonly=True)
        return int(data[0])
    finally:
        client.logout()


TRICKY = [
    message("plain"),
    message("dots", b".leading dot\r\n..two dots\r\n.\r\nend\r\n"),
    message("8bit", "Grüße, ünïcödé\r\n".encode() + bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"),
]


@pytest.mark.parametrize("scheme", ["imap", "imaps", "pop3", "pop3s"])
def test_fetch_saves_every_message_byte_for_byte_and_leaves_the_server_alone(servers, env, tmp_path, scheme):
    for data in TRICKY:
        servers.deliver_directly(USER, data)
    out = tmp_path / "out"
    report = fetch_json(servers, env, scheme, "-o", f"maildir:{out}")
    assert report["schema"] == "mimekit.fetch/1"
    assert len(report["fetched"]) == 3 and report["deleted"] == 0
    assert stored(out) == {lf(d) for d in TRICKY}
    assert all(Path(f["path"]).exists() for f in report["fetched"])
    assert {f["size"] for f in report["fetched"]} == {len(d) for d in TRICKY}
    assert server_count(servers) == 3


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_headers_only_saves_the_header_block(servers, env, tmp_path, scheme):
    data = message("headers", b"the body is not wanted\r\n")
    servers.deliver_directly(USER, data)
    out = tmp_path / "out"
    fetch_json(servers, env, scheme, "--headers-only", "-o", f"maildir:{out}")
    [saved] = stored(out)
    assert saved == lf(data.split(b"\r\n\r\n")[0]) + b"\n\n"


def test_imap_flags_go_into_the_maildir_info_and_unseen_selects(servers, env, tmp_path):
    for n in range(3):
        servers.deliver_directly(USER, message(f"flags {n}"))
    client = imap_client(servers)
    client.select("INBOX")
    client.store("1", "+FLAGS", "(\\Seen \\Flagged)")
    client.store("2", "+FLAGS", "(\\Answered \\Draft)")
    client.logout()
    everything = fetch_json(servers, env, "imaps", "-o", f"maildir:{tmp_path / 'all'}")
    first, second, third = sorted(f["uid"] for f in everything["fetched"])
    names = {f["uid"]: os.path.basename(f["path"]) for f in everything["fetched"]}
    assert names[first].endswith(":2,FS") and names[second].endswith(":2,DR") and ":2," not in names[third]
    assert {"\\Seen", "\\Flagged"} <= {flag for f in everything["fetched"] if f["uid"] == first for flag in f["flags"]}
    unseen = fetch_json(servers, env, "imaps", "--unseen", "-o", f"maildir:{tmp_path / 'unseen'}")
    assert sorted(f["uid"] for f in unseen["fetched"]) == [second, third]
    client = imap_client(servers)
    client.select("INBOX", readonly=True)
    assert b"\\Seen" not in client.fetch("3", "(FLAGS)")[1][0], "fetching must not set \\Seen"
    client.logout()


def test_since_and_search_select_on_the_server(servers, env, tmp_path):
    old = servers.deliver_directly(USER, message("old needle"))
    os.utime(old, (time.mktime((2020, 1, 1, 0, 0, 0, 0, 0, -1)),) * 2)   # Dovecot's INTERNALDATE
    servers.deliver_directly(USER, message("new needle"))
    servers.deliver_directly(USER, message("new haystack"))
    since = fetch_json(servers, env, "imaps", "--since", "2024-01-01", "-o", f"maildir:{tmp_path / 'since'}")
    assert len(since["fetched"]) == 2
    both = fetch_json(servers, env, "imaps", "--since", "2024-01-01", "--search", 'SUBJECT "needle"',
                      "-o", f"maildir:{tmp_path / 'both'}")
    [saved] = stored(tmp_path / "both")
    assert len(both["fetched"]) == 1 and b"Subject: new needle" in saved


@pytest.mark.parametrize("scheme", ["imap", "pop3"])
def test_new_fetches_each_message_once_across_runs(servers, env, tmp_path, scheme):
    out = f"maildir:{tmp_path / 'out'}"
    for n in range(3):
        servers.deliver_directly(USER, message(f"first {n}"))
    assert len(fetch_json(servers, env, scheme, "--new", "-o", out)["fetched"]) == 3
    for n in range(2):
        servers.deliver_directly(USER, message(f"second {n}"))
    second = fetch_json(servers, env, scheme, "--new", "-o", out)
    assert len(second["fetched"]) == 2 and second["skipped"] == 3
    third = fetch_json(servers, env, scheme, "--new", "-o", out)
    assert third["fetched"] == [] and third["skipped"] == 5
    assert len(maildir_files(tmp_path / "out")) == 5
    other = fetch_json(servers, env, scheme, "--new", "-o", f"maildir:{tmp_path / 'other'}")
    assert len(other["fetched"]) == 5, "--new is per output: another store gets everything"


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_delete_removes_exactly_what_was_saved(servers, env, tmp_path, scheme):
    for n in range(3):
        servers.deliver_directly(USER, message(f"delete {n}"))
    report = fetch_json(servers, env, scheme, "--delete", "--limit", "2", "-o", f"maildir:{tmp_path / 'out'}")
    assert len(report["fetched"]) == 2 and report["deleted"] == 2
    assert server_count(servers) == 1
    [left] = [p.read_bytes() for p in servers.messages(USER)]
    assert lf(left) not in stored(tmp_path / "out")


@pytest.mark.parametrize("scheme", ["imaps", "pop3s"])
def test_nothing_is_deleted_when_saving_fails(servers, env, tmp_path, scheme):
    """new/ on another file system: the rename that makes a message durable fails (EXDEV)."""
    elsewhere = Path("/dev/shm") / f"mimekit-fetch-{uuid.uuid4().hex}"
    out = tmp_path / "out"
    for sub in ("tmp", "cur"):
        (out / sub).mkdir(parents=True)
    elsewhere.mkdir()
    try:
        if os.stat(elsewhere).st_dev == os.stat(out).st_dev:
            pytest.skip("/dev/shm is on the same file system as the test directory")
        (out / "new").symlink_to(elsewhere)
        for n in range(2):
            servers.deliver_directly(USER, message(f"keep {n}"))
        result = mimekit("fetch", url(servers, scheme), "--cafile", str(servers.ca_file), "--delete",
                         "-o", f"maildir:{out}", env=env)
        assert result.returncode == 74, result.stderr.decode()
        assert server_count(servers) == 2
        assert list(elsewhere.iterdir()) == [] and list((out / "tmp").iterdir()) == []
    finally:
        for leftover in elsewhere.iterdir():
            leftover.unlink()
        elsewhere.rmdir()


def test_uidvalidity_change_refetches_without_duplicates(servers, env, tmp_path):
    """Recreating a folder gives it a new UIDVALIDITY: every UID we knew is void."""
    folder = f"Work{uuid.uuid4().hex[:8]}"
    first = [message(f"work {n}") for n in range(3)]
    client = imap_client(servers)
    client.create(folder)
    for data in first:
        client.append(folder, None, None, data)
    client.logout()
    out = f"maildir:{tmp_path / 'out'}"
    assert len(fetch_json(servers, env, "imaps", "--new", "-o", out, folder=folder)["fetched"]) == 3
    extra = message("arrived after the rebuild")
    client = imap_client(servers)
    client.delete(folder)
    client.create(folder)
    for data in [*first, extra, message("no id", message_id="").replace(b"Message-ID: \r\n", b"")]:
        client.append(folder, None, None, data)
    client.logout()
    report = fetch_json(servers, env, "imaps", "--new", "-o", out, folder=folder)
    assert report["uidvalidity_changed"] is True
    assert report["skipped"] == 3 and len(report["fetched"]) == 2
    assert stored(tmp_path / "out") >= {lf(d) for d in first + [extra]}
    assert len(maildir_files(tmp_path / "out")) == 5
    again = fetch_json(servers, env, "imaps", "--new", "-o", out, folder=folder)
    assert again["fetched"] == [] and again["skipped"] == 5 and again["uidvalidity_changed"] is False


@pytest.mark.parametrize("scheme", ["imaps", "pop3s", "imap", "pop3"])
def test_wrong_password_exits_77(servers, env, tmp_path, scheme):
    result = mimekit("fetch", url(servers, scheme), "--cafile", str(servers.ca_file), "-o", str(tmp_path / "o"),
                     env={**env, "MIMEKIT_PASSWORD": "wrong"})
    assert result.returncode == 77, result.stderr.decode()
    assert b"wrong" not in result.stderr


@pytest.mark.parametrize("scheme", ["imaps", "pop3s", "imap", "pop3"])
def test_untrusted_certificate_fails_before_any_credential(servers, env, tmp_path, scheme):
    marker = tmp_path / "password-was-asked-for"
    result = mimekit("fetch", url(servers, scheme), "--password-command", f"touch {marker}; echo pw",
                     "-o", str(tmp_path / "o"), env=env)
    assert result.returncode == 77 and b"certificate" in result.stderr, result.stderr.decode()
    assert not marker.exists()


@pytest.mark.parametrize("scheme, port", [("imap", "imap_no_tls"), ("pop3", "pop3_no_tls")])
def test_server_without_starttls_gets_no_credential(servers, env, tmp_path, scheme, port):
    marker = tmp_path / "password-was-asked-for"
    target = f"{scheme}://{USER}@{servers.host}:{getattr(servers, port)}"
    result = mimekit("fetch", target, "--cafile", str(servers.ca_file), "--json",
                     "--password-command", f"touch {marker}; echo pw", "-o", str(tmp_path / "o"), env=env)
    assert result.returncode == 77
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "auth" and ("STARTTLS" in error["message"] or "STLS" in error["message"])
    assert not marker.exists()


def test_one_message_to_stdout_as_received(servers, env):
    data = TRICKY[1]
    servers.deliver_directly(USER, data)
    result = mimekit("fetch", url(servers, "imaps"), "--cafile", str(servers.ca_file), "-o", "-", "--limit", "1",
                     "-q", env=env)
    assert result.returncode == 0 and result.stdout == data and result.stderr == b""


def test_stdout_needs_limit_one_and_refuses_delete(servers, env):
    base = ["fetch", url(servers, "imaps"), "--cafile", str(servers.ca_file), "-o", "-"]
    assert mimekit(*base, env=env).returncode == 64
    assert mimekit(*base, "--limit", "1", "--delete", env=env).returncode == 64


def test_directory_and_mbox_outputs(servers, env, tmp_path):
    for data in TRICKY[:2]:
        servers.deliver_directly(USER, data)
    emls = fetch_json(servers, env, "pop3s", "-o", str(tmp_path / "eml"))
    files = sorted((tmp_path / "eml").iterdir())
    assert [p.name for p in files] == sorted(f"{f['uidl']}.eml" for f in emls["fetched"])
    assert {p.read_bytes() for p in files} == set(TRICKY[:2])
    again = fetch_json(servers, env, "pop3s", "-o", str(tmp_path / "eml"))
    assert len(list((tmp_path / "eml").iterdir())) == 4, "a name clash gets a suffix, never an overwrite"
    assert all(f["path"].endswith("-1.eml") for f in again["fetched"])
    fetch_json(servers, env, "imaps", "-o", f"mbox:{tmp_path / 'box'}")
    box = (tmp_path / "box").read_bytes()
    assert box.count(b"\nFrom ") + box.startswith(b"From ") == 2 and b"\n..two dots\n" in box


def test_folders_lists_decoded_names(servers, env):
    folder = f"Entwürfe {uuid.uuid4().hex[:6]}"
    client = imap_client(servers)
    client.create(client._quote(folder.replace("ü", "&APw-")))
    client.logout()
    try:
        result = mimekit("folders", url(servers, "imap").rstrip("/"), "--cafile", str(servers.ca_file), env=env)
        assert result.returncode == 0, result.stderr.decode()
        names = result.stdout.decode().splitlines()
        assert "INBOX" in names and folder in names
        listing = mimekit("folders", url(servers, "imaps"), "--cafile", str(servers.ca_file), "--json", env=env)
        document = json.loads(listing.stdout)
        assert document["schema"] == "mimekit.folders/1"
        assert folder in {f["name"] for f in document["folders"]}
    finally:
        client = imap_client(servers)
        client.delete(client._quote(folder.replace("ü", "&APw-")))
        client.logout()
