"""Local stores: atomic Maildir delivery, locked mboxrd append, quoting that round-trips."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import NoInputError, TempFailure, UsageError
from mimekit.stores import Maildir, Mbox, open_mailbox
from mimekit.streams.line_endings import LFNormaliser
from mimekit.streams.from_quoting import FromQuoter
from mimekit.transport.urls import parse_url
from strategies import chunkings

REPO = Path(__file__).resolve().parents[2]

MESSAGE = b"From: a@example.test\r\nSubject: hi\r\n\r\nline one\r\nFrom here on\r\n>From quoted\r\n"
MESSAGE_LF = MESSAGE.replace(b"\r\n", b"\n")


class Boom(Exception):
    pass


def failing_after_first_chunk():
    yield b"From: a@example.test\r\n\r\npartial body"
    raise Boom("the source failed mid-stream")


def files_under(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- Maildir -----------------------------------------------------------------------------

def test_maildir_delivers_into_new_with_lf_line_endings(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    path = box.add([MESSAGE[:7], MESSAGE[7:30], MESSAGE[30:]])
    assert os.path.dirname(path) == str(tmp_path / "box" / "new")
    assert Path(path).read_bytes() == MESSAGE_LF
    assert files_under(tmp_path / "box" / "tmp") == []
    [key] = box.keys()
    with box.open(key) as stream:
        assert stream.read() == MESSAGE_LF


def test_maildir_flags_go_to_cur_sorted_and_deduplicated(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    path = box.add([MESSAGE], flags="SFS")
    assert os.path.dirname(path) == str(tmp_path / "box" / "cur")
    assert path.endswith(":2,FS")
    [key] = box.keys()
    assert ":" not in key
    assert box.open(key).read() == MESSAGE_LF


def test_maildir_refuses_unknown_flags(tmp_path):
    with pytest.raises(UsageError):
        Maildir(str(tmp_path / "box")).add([MESSAGE], flags="x")


def test_maildir_exception_mid_stream_leaves_nothing_behind(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    with pytest.raises(Boom):
        box.add(failing_after_first_chunk())
    for sub in ("tmp", "new", "cur"):
        assert files_under(tmp_path / "box" / sub) == []
    assert box.keys() == []


def test_maildir_keys_are_in_delivery_order_across_new_and_cur(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    bodies = [f"Subject: {i}\n\n{i}\n".encode() for i in range(12)]
    for i, body in enumerate(bodies):
        box.add([body], flags="S" if i % 3 == 0 else "")
    assert [box.open(key).read() for key in box.keys()] == bodies


def test_maildir_open_follows_a_message_renamed_by_a_reader(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    path = box.add([MESSAGE])
    [key] = box.keys()
    os.rename(path, str(tmp_path / "box" / "cur" / (key + ":2,S")))  # what an MUA does
    assert box.open(key).read() == MESSAGE_LF


def test_maildir_without_create_requires_an_existing_maildir(tmp_path):
    with pytest.raises(NoInputError):
        Maildir(str(tmp_path / "missing"), create=False)


# --- streaming filters -------------------------------------------------------------------

lines = st.lists(st.sampled_from([b"", b"From ", b"From x", b">From y", b">>From z", b"From",
                                  b">", b">>Fro", b"text From here", b"\r", b"x\r"]), max_size=20)


@given(st.data(), lines)
def test_from_quoting_is_chunking_independent_and_reversible(data, body_lines):
    text = b"\n".join(body_lines)
    whole = FromQuoter()
    quoted = whole.feed(text) + whole.flush()
    pieces = data.draw(chunkings(text))
    chunked = FromQuoter()
    assert b"".join(chunked.feed(p) for p in pieces) + chunked.flush() == quoted
    assert all(not line.lstrip(b">").startswith(b"From ") or line.startswith(b">")
               for line in quoted.split(b"\n"))
    unquoted_pieces = data.draw(chunkings(quoted))
    unquoter = FromQuoter(unquote=True)
    assert b"".join(unquoter.feed(p) for p in unquoted_pieces) + unquoter.flush() == text


@given(st.data(), st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\r\n")))
def test_lf_normaliser_converts_crlf_only_whatever_the_chunking(data, text):
    normaliser = LFNormaliser()
    pieces = data.draw(chunkings(text))
    assert b"".join(normaliser.feed(p) for p in pieces) + normaliser.flush() == text.replace(b"\r\n", b"\n")


# --- mbox --------------------------------------------------------------------------------

def test_mbox_quotes_from_lines_on_disk_and_unquotes_on_open(tmp_path):
    box = Mbox(str(tmp_path / "mbox"))
    key = box.add([MESSAGE], sender="a@example.test")
    raw = (tmp_path / "mbox").read_bytes()
    assert raw.startswith(b"From a@example.test ")
    assert b"\n>From here on\n>>From quoted\n\n" in raw
    assert box.keys() == [key]
    assert box.open(key).read() == MESSAGE_LF


@given(st.lists(lines, min_size=1, max_size=4))
def test_mbox_round_trips_every_message(tmp_path_factory, messages):
    path = tmp_path_factory.mktemp("mbox") / "mbox"
    box = Mbox(str(path))
    bodies = [b"\n".join(body_lines) + b"\n" for body_lines in messages]
    keys = [box.add([body]) for body in bodies]
    assert box.keys() == keys
    assert [box.open(key).read() for key in keys] == [body.replace(b"\r\n", b"\n") for body in bodies]


def test_mbox_message_without_final_newline_gets_one(tmp_path):
    box = Mbox(str(tmp_path / "mbox"))
    first = box.add([b"Subject: a\n\nno newline"])
    second = box.add([b"Subject: b\n\nbody\n"])
    assert box.open(first).read() == b"Subject: a\n\nno newline\n"
    assert box.open(second).read() == b"Subject: b\n\nbody\n"


def test_mbox_appends_after_a_file_missing_its_blank_separator(tmp_path):
    (tmp_path / "mbox").write_bytes(b"From x Thu Jan  1 00:00:00 1970\nSubject: old\n\nold body")
    box = Mbox(str(tmp_path / "mbox"), create=False)
    key = box.add([b"Subject: new\n\nnew\n"])
    assert box.keys() == ["0", key]
    assert box.open("0").read() == b"Subject: old\n\nold body\n"
    assert box.open(key).read() == b"Subject: new\n\nnew\n"


def test_mbox_flags_become_status_headers(tmp_path):
    box = Mbox(str(tmp_path / "mbox"))
    key = box.add([b"Subject: s\n\nbody\n"], flags="SRF")
    assert box.open(key).read() == b"Status: RO\nX-Status: AF\nSubject: s\n\nbody\n"


def test_mbox_failure_truncates_back_to_the_previous_size(tmp_path):
    box = Mbox(str(tmp_path / "mbox"))
    box.add([MESSAGE])
    before = (tmp_path / "mbox").read_bytes()
    with pytest.raises(Boom):
        box.add(failing_after_first_chunk())
    assert (tmp_path / "mbox").read_bytes() == before
    assert not (tmp_path / "mbox.lock").exists()


def test_mbox_waits_for_a_dotlock_held_by_another_program(tmp_path):
    box = Mbox(str(tmp_path / "mbox"))
    lock = tmp_path / "mbox.lock"
    lock.write_bytes(b"")
    threading.Timer(0.3, lock.unlink).start()
    key = box.add([MESSAGE])
    assert box.open(key).read() == MESSAGE_LF


def test_mbox_gives_up_on_a_dotlock_that_is_never_released(tmp_path, monkeypatch):
    box = Mbox(str(tmp_path / "mbox"))
    (tmp_path / "mbox.lock").write_bytes(b"")
    monkeypatch.setattr(Mbox, "DOTLOCK_TIMEOUT", 0.2)
    with pytest.raises(TempFailure):
        box.add([MESSAGE])
    assert (tmp_path / "mbox").read_bytes() == b""


APPENDER = """
import sys, time
from mimekit.stores import Mbox
path, tag = sys.argv[1], sys.argv[2]
box = Mbox(path)
for n in range(25):
    def chunks():
        yield f"Subject: {tag} {n}\\r\\n\\r\\n".encode()
        for line in range(20):
            time.sleep(0.0005)   # give the other writer every chance to interleave
            yield f"{tag} {n} line {line}\\r\\n".encode()
    box.add(chunks(), sender=tag)
"""


def expected_message(tag: str, n: int) -> bytes:
    return (f"Subject: {tag} {n}\n\n" + "".join(f"{tag} {n} line {line}\n" for line in range(20))).encode()


def test_concurrent_appends_from_two_processes_do_not_interleave(tmp_path):
    path = str(tmp_path / "mbox")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, path, tag], env=env) for tag in ("alpha", "beta")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    box = Mbox(path, create=False)
    stored = [box.open(key).read() for key in box.keys()]
    expected = [expected_message(tag, n) for tag in ("alpha", "beta") for n in range(25)]
    assert sorted(stored) == sorted(expected)
    for tag in ("alpha", "beta"):  # each writer's messages keep their order
        assert [m for m in stored if m.startswith(f"Subject: {tag}".encode())] == \
            [expected_message(tag, n) for n in range(25)]


def test_open_mailbox_picks_the_store_from_the_url(tmp_path):
    assert isinstance(open_mailbox(parse_url(f"maildir:{tmp_path}/md", {"maildir", "mbox"})), Maildir)
    assert isinstance(open_mailbox(parse_url(f"mbox:{tmp_path}/mb", {"maildir", "mbox"})), Mbox)

def test_remove_follows_a_flag_rename_made_after_the_look_up(tmp_path, monkeypatch):
    """Another reader renames the file (a flag change) between remove's look-up and its
    unlink: the message is still removed, under its new name."""
    maildir = Maildir(str(tmp_path / "box"))
    maildir.add([b"Subject: x\n\nbody\n"])
    [key] = maildir.keys()
    looked_up = maildir.message_path(key)
    real_path = Maildir.message_path

    def look_up_then_rename(self, wanted):
        path = real_path(self, wanted)
        os.rename(path, os.path.join(self.path, "cur", f"{wanted}:2,S"))
        return path

    monkeypatch.setattr(Maildir, "message_path", look_up_then_rename)
    maildir.remove(key)
    monkeypatch.undo()
    assert maildir.keys() == [] and not os.path.exists(looked_up)
