"""`mimekit fetch maildir:X` and `mbox:X`: local stores as sources, no server involved;
and the option checks that need no server at all."""

import json
import os
import subprocess
import sys

import pytest

from mimekit.stores import Maildir, Mbox

MESSAGES = [
    b"From: a@example.test\r\nSubject: one\r\nMessage-ID: <1@x>\r\n\r\nbody one\r\n",
    b"From: b@example.test\r\nSubject: two\r\nMessage-ID: <2@x>\r\n\r\nFrom the start of a line\r\n>From quoted\r\n",
]


def mimekit(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, timeout=60,
                          env=env, cwd=cwd)


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def copied_list(path) -> list[bytes]:
    box = Maildir(str(path), create=False)
    return [box.open(key).read() for key in box.keys()]


def copied(path) -> set[bytes]:
    return set(copied_list(path))


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_local_store_is_copied_message_for_message(tmp_path, env, kind):
    source = (Maildir if kind == "maildir" else Mbox)(str(tmp_path / "source"))
    keys = [source.add([data]) for data in MESSAGES]
    result = mimekit("fetch", f"{kind}:{tmp_path / 'source'}", "-o", f"maildir:{tmp_path / 'out'}", "--json", env=env)
    assert result.returncode == 0, result.stderr.decode()
    report = json.loads(result.stdout)
    assert len(report["fetched"]) == 2 and all("key" in f for f in report["fetched"])
    assert report["source"] == f"{kind}:{tmp_path / 'source'}"
    if kind == "mbox":
        assert [f["key"] for f in report["fetched"]] == keys
    assert copied(tmp_path / "out") == {lf(data) for data in MESSAGES}


def test_new_from_a_local_store_takes_only_what_was_added(tmp_path, env):
    source = Maildir(str(tmp_path / "source"))
    source.add([MESSAGES[0]])
    args = ["fetch", f"maildir:{tmp_path / 'source'}", "--new", "-o", f"mbox:{tmp_path / 'out.mbox'}", "--json"]
    assert len(json.loads(mimekit(*args, env=env).stdout)["fetched"]) == 1
    source.add([MESSAGES[1]])
    second = json.loads(mimekit(*args, env=env).stdout)
    assert len(second["fetched"]) == 1 and second["skipped"] == 1
    out = Mbox(str(tmp_path / "out.mbox"), create=False)
    assert {out.open(key).read() for key in out.keys()} == {lf(data) for data in MESSAGES}


def test_headers_only_and_one_message_to_stdout(tmp_path, env):
    source = Maildir(str(tmp_path / "source"))
    source.add([MESSAGES[1]])
    result = mimekit("fetch", f"maildir:{tmp_path / 'source'}", "--headers-only", "--limit", "1", "-o", "-",
                     env=env)
    # stdout carries the network form (CRLF), though the store keeps LF
    header_block = lf(MESSAGES[1]).split(b"\n\n")[0] + b"\n\n"
    assert result.returncode == 0 and result.stdout == header_block.replace(b"\n", b"\r\n")


@pytest.mark.parametrize("kind", ["maildir"])
def test_delete_removes_from_a_local_store_exactly_what_was_saved(tmp_path, env, kind):
    source = Maildir(str(tmp_path / "source"))
    bodies = [f"Subject: {n}\r\nMessage-ID: <{n}@x>\r\n\r\nFrom body {n}\r\n".encode() for n in range(5)]
    for data in bodies:
        source.add([data])
    args = ["fetch", f"{kind}:{tmp_path / 'source'}", "-o", f"maildir:{tmp_path / 'out'}", "--delete", "--json"]
    first = mimekit(*args, "--limit", "2", env=env)
    assert first.returncode == 0, first.stderr.decode()
    assert json.loads(first.stdout)["deleted"] == 2
    assert copied(tmp_path / "out") == {lf(data) for data in bodies[:2]}
    assert [source.open(key).read() for key in source.keys()] == [lf(data) for data in bodies[2:]]

    source.add([bodies[0]])   # delivered again after the delete: a new message, fetched again
    second = json.loads(mimekit(*args, "--new", env=env).stdout)
    assert second["deleted"] == 4 and len(second["fetched"]) == 4
    assert source.keys() == []
    assert sorted(copied_list(tmp_path / "out")) == sorted([lf(data) for data in bodies] + [lf(bodies[0])])


@pytest.mark.parametrize("source_kind, extra, refused", [
    ("mbox", [], "byte offsets"),                              # offsets move when the file is rewritten
    ("maildir", ["--headers-only"], "only the header"),        # would delete what was not saved
])
def test_deletes_that_could_lose_mail_are_refused(tmp_path, env, source_kind, extra, refused):
    source = (Maildir if source_kind == "maildir" else Mbox)(str(tmp_path / "source"))
    source.add([MESSAGES[1]])
    result = mimekit("fetch", f"{source_kind}:{tmp_path / 'source'}", "-o", f"maildir:{tmp_path / 'out'}",
                     "--delete", *extra, env=env)
    assert result.returncode == 64 and refused in result.stderr.decode()
    assert len(source.keys()) == 1


def test_missing_source_store_is_no_input(tmp_path, env):
    result = mimekit("fetch", f"maildir:{tmp_path / 'nowhere'}", "-o", str(tmp_path / "out"), env=env)
    assert result.returncode == 66
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("args", [
    ["maildir:{tmp}/src", "--unseen"],                       # no server-side search
    ["pop3s://alice@127.0.0.1:1", "--since", "2024-01-01"],   # POP3 cannot search: refused before connecting
    ["imaps://alice@127.0.0.1:1", "--since", "yesterday"],
    ["imaps://alice@127.0.0.1:1", "--search", "SUBJECT Grüße"],
    ["imaps://alice@127.0.0.1:1", "-o", "-"],                 # stdout takes one message: --limit 1
    ["imaps://alice@127.0.0.1:1", "--limit", "0"],
    ["smtp://127.0.0.1"],
])
def test_usage_errors_exit_64_before_any_connection(tmp_path, env, args):
    Maildir(str(tmp_path / "src"))
    # in tmp_path: without -o, the default output is ./mail (the repository's, run from there)
    result = mimekit("fetch", *[a.format(tmp=tmp_path) for a in args], "--json", env=env, cwd=tmp_path)
    assert result.returncode == 64, result.stderr.decode()
    assert not (tmp_path / "mail").exists()      # refused before the default output was created


def test_unreachable_server_exits_69_with_a_json_error(tmp_path, env):
    result = mimekit("fetch", "imaps://alice@127.0.0.1:1", "-o", str(tmp_path / "out"), "--json",
                     env={**env, "MIMEKIT_PASSWORD": "x"})
    assert result.returncode == 69
    document = json.loads(result.stdout)
    assert document["schema"] == "mimekit.fetch/1" and document["error"]["code"] == 69
    assert document["fetched"] == [] and document["source"] == "imaps://alice@127.0.0.1:1/INBOX"   # no secret
