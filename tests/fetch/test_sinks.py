"""fetch's outputs driven directly, without the CLI: what each sink saves, where, and how it
finds again (mark, orphans) and compares (open, as_stored) a message a killed run saved."""

import errno
import io
import mailbox
import os
import re
import signal
import threading
import time
from concurrent import futures

import pytest

from mimekit.errors import IOFailure, UsageError
from mimekit.fetch.message import ListedMessage
from mimekit.fetch.run import _stored_digest
from mimekit.fetch.state import FetchState
from mimekit.fetch.sinks import (DirectorySink, MaildirSink, MboxSink, MboxStreamSink, StdoutSink, imap_flags,
                                 maildir_flags, open_sink)
from mimekit.stores import Mbox
from mimekit.streams.files import read_chunks

MESSAGE = b"From: a@example.test\r\nSubject: s\r\n\r\nFrom the body\r\nlone\rCR\r\n"
STORED = b"From: a@example.test\nSubject: s\n\nFrom the body\nlone\rCR\n"


def listed(message_id: str = "7") -> ListedMessage:
    return ListedMessage(message_id, 1, size=len(MESSAGE), flags=("\\Seen",))


def chunks() -> list[bytes]:
    return [MESSAGE[:5], MESSAGE[5:40], MESSAGE[40:]]


def test_open_sink_picks_the_kind_from_the_spec(tmp_path):
    assert isinstance(open_sink(f"maildir:{tmp_path / 'md'}"), MaildirSink)
    assert isinstance(open_sink(f"MBOX:{tmp_path / 'mb'}"), MboxSink)
    assert isinstance(open_sink(str(tmp_path / "dir")), DirectorySink)


def test_flags_map_between_imap_names_and_maildir_letters():
    assert maildir_flags(("\\Seen", "\\flagged", "$Forwarded", "\\Recent", "custom")) == "FPS"
    assert imap_flags("FPS") == ("\\Flagged", "$Forwarded", "\\Seen")


@pytest.mark.parametrize("kind", ["maildir", "mbox"])
def test_a_store_sink_keeps_lf_and_gives_back_what_as_stored_predicts(tmp_path, kind):
    sink = open_sink(f"{kind}:{tmp_path / 'out'}")
    assert sink.durable and sink.identity == f"{kind}:{os.path.realpath(tmp_path / 'out')}"
    key, path = sink.add(listed(), chunks(), "S")
    sink.sync()                  # a Maildir's message has its name once sync() has run
    assert b"".join(sink.as_stored(chunks())) == STORED
    with sink.open(key) as stored:
        saved = stored.read()
    if kind == "maildir":
        assert saved == STORED and path.endswith(f"{key}:2,S") and os.path.basename(os.path.dirname(path)) == "cur"
    else:
        assert saved == b"Status: RO\n" + STORED and path == f"{tmp_path / 'out'}:{key}"


@pytest.mark.parametrize("kind", ["maildir", "mbox", "dir"])
def test_orphans_are_what_was_added_after_the_mark_and_not_recorded(tmp_path, kind):
    sink = open_sink(str(tmp_path / "out") if kind == "dir" else f"{kind}:{tmp_path / 'out'}")
    before, _ = sink.add(listed("1"), chunks(), "")
    mark = sink.mark()
    recorded, _ = sink.add(listed("2"), chunks(), "")
    orphan, _ = sink.add(listed("3"), chunks(), "")
    sink.sync()
    assert sink.orphans(mark, {before, recorded}) == [orphan]
    assert sink.orphans(mark, {before, recorded, orphan}) == []


def test_maildir_orphans_are_only_this_processes(tmp_path):
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    mark = {**sink.mark(), "pid": os.getpid() + 1}
    sink.add(listed(), chunks(), "")
    sink.sync()
    assert sink.store.keys() and sink.orphans(mark, set()) == []


def test_a_maildir_message_shows_in_new_without_waiting_for_the_batch(tmp_path):
    """Its commit runs beside the next fetch, not at the batch's sync: a reader of the
    Maildir sees each message within moments of its fsync."""
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    key, path = sink.add(listed(), chunks(), "")
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert os.path.exists(path), "still not in new/ after 10 s, with no sync()"
    assert sink.store.keys() == [key]
    sink.sync()


def test_a_maildir_commit_that_fails_is_raised_and_leaves_nothing_behind(tmp_path, monkeypatch):
    """The fsync fails on a committer thread (EIO, as a failing disk gives it): the next
    add() or sync() raises it as IOFailure once every commit begun has ended, and so does
    every later one; the message is neither in new/ nor left in tmp/, and the messages
    whose fsync worked are kept."""
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    real_fsync = os.fsync
    failing = threading.Event()

    def fsync(fd):
        if failing.is_set() and os.path.dirname(os.readlink(f"/proc/self/fd/{fd}")).endswith("/tmp"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    kept, _ = sink.add(listed("1"), chunks(), "")
    sink.sync()
    failing.set()
    sink.add(listed("2"), chunks(), "")
    with pytest.raises(IOFailure, match="Input/output error"):
        for n in range(3, 3 + MaildirSink.MAX_COMMITTING + 1):   # add waits for the first once the queue is full
            sink.add(listed(str(n)), chunks(), "")
        sink.sync()
    failing.clear()
    with pytest.raises(IOFailure, match="Input/output error"):
        sink.sync()                       # the failed message's record must never be kept
    with pytest.raises(IOFailure, match="Input/output error"):
        sink.add(listed("99"), chunks(), "")
    assert sink.store.keys() == [kept]
    assert os.listdir(tmp_path / "out" / "tmp") == []


def test_ctrl_c_while_a_failed_commit_is_told_never_lets_the_state_record_it(tmp_path, monkeypatch):
    """Message 0's fsync fails while 16 others are slow to commit; Ctrl-C lands while the
    17th add waits for them. The state is then closed as fetch's session closes it: every
    message it records is on disk, and the failure is raised again (the record of message
    0 waited for a sync that must not succeed)."""
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    state = FetchState(str(tmp_path / "state.json"))
    real_fsync = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "/out/tmp/" in name:
            with open(name, "rb") as message:
                failing = b"FAIL" in message.read()
            time.sleep(0.1 if failing else 0.5)
            if failing:
                raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    def ctrl_c(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", fsync)
    previous = signal.signal(signal.SIGALRM, ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            for n in range(MaildirSink.MAX_COMMITTING + 1):
                state.begin(str(n), sink.mark())
                if n == MaildirSink.MAX_COMMITTING:
                    signal.setitimer(signal.ITIMER_REAL, 0.3)   # after 0's failure, before the rest end
                key, _ = sink.add(listed(str(n)), [b"Subject: %d\n\n%s\n" % (n, b"FAIL" if n == 0 else b"ok")], "")
                state.record(str(n), key, output=sink)
            time.sleep(1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(IOFailure, match="Input/output error"):
        state.close()
    assert (tmp_path / "out" / "new").is_dir() and os.listdir(tmp_path / "out" / "tmp") == []
    on_disk = set(sink.store.keys())
    with FetchState(str(tmp_path / "state.json")) as reopened:
        assert reopened.keys() <= on_disk
    # 1 to 15 saved; 0 failed; 16 never begun, its add waiting for the queue when interrupted
    assert len(on_disk) == MaildirSink.MAX_COMMITTING - 1 and not any(b"FAIL" in p.read_bytes()
                                                                   for p in (tmp_path / "out" / "new").iterdir())


def failing_fsync_of(marker: bytes, delay: float):
    """An os.fsync that fails with ENOSPC, after `delay`, for a tmp/ file holding `marker`."""
    real_fsync = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "/tmp/" in name:
            with open(name, "rb") as message:
                if marker in message.read():
                    time.sleep(delay)
                    raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    return fsync


def test_a_failure_that_coincides_with_ctrl_c_stays_the_disk_error(tmp_path, monkeypatch):
    """Ctrl-C lands as the commit waited for fails: the failure kept (and raised by every
    later sync, so by the session's close) is the disk's, exit 74, not the interrupt."""
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    monkeypatch.setattr(os, "fsync", failing_fsync_of(b"FAIL", 0.05))
    sink.add(listed(), [b"Subject: 0\n\nFAIL\n"], "")

    def interrupted_result(self, timeout=None):   # SIGINT's handler runs as the wait returns
        futures.wait([self])
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(futures.Future, "result", interrupted_result)
        with pytest.raises(BaseException) as first:      # not KeyboardInterrupt: it would end pytest
            sink.sync()
    with pytest.raises(BaseException) as later:
        sink.sync()
    for raised in (first, later):
        assert raised.type is IOFailure and "No space left" in str(raised.value)


def test_unsaved_waits_for_a_commit_still_running(tmp_path, monkeypatch):
    """An error elsewhere (the source's) while a commit runs: the report is cut down to what
    was saved only once that commit has ended, so a commit that fails later is left out."""
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    monkeypatch.setattr(os, "fsync", failing_fsync_of(b"FAIL", 0.3))
    _, failed = sink.add(listed("1"), [b"Subject: 1\n\nFAIL\n"], "")
    assert sink.unsaved == {failed}


def test_a_maildir_sink_commits_messages_while_others_are_written(tmp_path, monkeypatch):
    """Several messages are written and fsync'd at once (the journal then takes their fsyncs
    together): with fsync slowed to 50 ms, more than one waits in it at a time."""
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    real_fsync = os.fsync
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_fsync(fd):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    keys = [sink.add(listed(str(n)), chunks(), "")[0] for n in range(8)]
    sink.sync()
    assert sorted(sink.store.keys()) == sorted(keys)
    assert most[0] > 1, "commits ran one after another"


def test_a_maildir_message_too_large_to_hold_is_written_as_it_comes(tmp_path):
    """Past HELD_MESSAGE bytes the message goes to tmp/ as it arrives (add's memory stays
    bounded), and is stored the same."""
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    line = b"a line of a large body, long enough to count.\r\n"
    large = [MESSAGE] + [line * 1000] * (2 * MaildirSink.HELD_MESSAGE // (len(line) * 1000))
    in_tmp_before_the_end = []

    def arriving():
        yield from large
        in_tmp_before_the_end.extend(os.listdir(tmp_path / "out" / "tmp"))

    key, path = sink.add(listed(), arriving(), "S")
    assert in_tmp_before_the_end == [key], "written as it came, not held to the end"
    sink.sync()
    with sink.open(key) as stored:
        assert stored.read() == b"".join(sink.as_stored(large))
    assert path.endswith(f"{key}:2,S") and os.path.getsize(path) > MaildirSink.HELD_MESSAGE


def test_directory_sink_keeps_the_bytes_as_received_under_free_names(tmp_path):
    sink = DirectorySink(str(tmp_path / "out"))
    first, first_path = sink.add(listed("7"), chunks(), "S")
    second, _ = sink.add(listed("7"), chunks(), "")
    assert (first, second) == ("7.eml", "7-1.eml")
    assert first_path == str(tmp_path / "out" / "7.eml")
    assert (tmp_path / "out" / "7.eml").read_bytes() == MESSAGE
    assert b"".join(sink.as_stored(chunks())) == MESSAGE
    with sink.open(second) as stored:
        assert stored.read() == MESSAGE


def test_stdout_sink_writes_one_message_in_network_form(tmp_path):
    stream = io.BytesIO()
    sink = StdoutSink(stream)
    assert not sink.durable
    assert sink.add(listed(), [STORED[:9], STORED[9:]], "") == ("-", "-")
    assert stream.getvalue() == MESSAGE
    with pytest.raises(UsageError):
        sink.add(listed("8"), [STORED], "")


class FlushRecorder(io.BytesIO):
    """A stream that remembers what had been written at each flush."""

    def __init__(self):
        super().__init__()
        self.flushed_at = []

    def flush(self):
        self.flushed_at.append(self.getvalue())


def without_dates(mbox: bytes) -> bytes:
    return re.sub(rb"(?m)^(From \S+) .*$", rb"\1 DATE", mbox)


def test_mbox_stream_sink_writes_what_an_mbox_file_holds_and_flushes_each_message(tmp_path):
    messages = [MESSAGE, b"Return-Path: <bounce@example.test>\r\nSubject: two\r\n\r\n>From x\r\nno newline"]
    stream = FlushRecorder()
    sink = MboxStreamSink(stream)
    file_sink = open_sink(f"mbox:{tmp_path / 'box'}")
    assert not sink.durable
    keys = []
    for n, (data, flags) in enumerate(zip(messages, ["SF", ""])):
        parts = [data[i:i + 3] for i in range(0, len(data), 3)]
        keys.append(sink.add(listed(str(n)), parts, flags))
        file_sink.add(listed(str(n)), parts, flags)
    written = stream.getvalue()
    assert without_dates(written) == without_dates((tmp_path / "box").read_bytes())
    second = written.index(b"\nFrom bounce@example.test ") + 1
    assert keys == [("0", "-:0"), (str(second), f"-:{second}")]
    assert stream.flushed_at == [written[:second], written]
    assert re.fullmatch(rb"From MAILER-DAEMON \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\n"
                        rb"Status: RO\nX-Status: F\n", written[:written.index(b"From: a")])
    assert written[written.index(b"From: a"):second] == STORED.replace(b"\nFrom the", b"\n>From the") + b"\n"
    assert written[second:].endswith(b"\n>>From x\nno newline\n\n")


@pytest.mark.parametrize("header, sender", [
    (b"Return-Path: <bounce@example.test>\n", b"bounce@example.test"),
    (b"return-path:\n  <folded@example.test>\n", b"folded@example.test"),
    (b"Return-Path: <>\n", b"MAILER-DAEMON"),                     # a bounce: the null sender
    (b"Return-Path: <two words@example.test>\n", b"MAILER-DAEMON"),
    (b"Return-Path: <ctl\x01@example.test>\n", b"MAILER-DAEMON"),
    (b"", b"MAILER-DAEMON"),
])
def test_mbox_from_line_names_the_return_path(tmp_path, header, sender):
    data = b"Subject: s\n" + header + b"\nReturn-Path: <in-the-body@example.test>\n"
    stream = io.BytesIO()
    MboxStreamSink(stream).add(listed(), [data[i:i + 1] for i in range(len(data))], "")
    file_sink = open_sink(f"mbox:{tmp_path / 'box'}")
    file_sink.add(listed(), [data], "")
    for written in (stream.getvalue(), (tmp_path / "box").read_bytes()):
        assert written.startswith(b"From " + sender + b" ") and written.endswith(data + b"\n")


CARRYING = (b"From: a@example.test\r\nStatus: RO\r\nX-Status: F\r\nX-Keywords: old\r\n  older\r\nSubject: s\r\n"
            b"\r\nStatus: a body line, kept\r\n")


@pytest.mark.parametrize("kind", ["file", "stream"])
def test_an_mbox_output_writes_one_set_of_flag_fields_replacing_those_the_message_carried(tmp_path, kind):
    """The Status lines come from the flags alone (the message's own would contradict an
    --unflag); its X-Keywords words are kept, merged into the one field written."""
    stream = io.BytesIO()
    sink = MboxSink(Mbox(str(tmp_path / "box"))) if kind == "file" else MboxStreamSink(stream)
    sink.add(listed(), [CARRYING[:30], CARRYING[30:]], "R", ("new", "old"))
    data = (tmp_path / "box").read_bytes() if kind == "file" else stream.getvalue()
    header = data.split(b"\n\n")[0]
    assert header.split(b"\n")[1:] == [b"Status: O", b"X-Status: A", b"X-Keywords: old older new",
                                       b"From: a@example.test", b"Subject: s"]
    assert b"\n\nStatus: a body line, kept\n" in data
    [read_back] = mailbox.mbox(str(tmp_path / "box")) if kind == "file" else [mailbox.mboxMessage(data)]
    assert set(read_back.get_flags()) == {"O", "A"}


def test_a_killed_runs_mbox_orphan_with_flag_fields_is_still_recognised(tmp_path):
    """fetch's orphan check compares a stored message with the source's bytes, flag fields
    aside: the fields the output rewrote (continuation lines too) do not hide the match."""
    sink = MboxSink(Mbox(str(tmp_path / "box")))
    mark = sink.mark()
    key, _ = sink.add(listed(), [CARRYING], "S", ("new",))
    with sink.open(key) as stored:
        assert _stored_digest(read_chunks(stored)) == _stored_digest(sink.as_stored([CARRYING]))
    assert sink.orphans(mark, set()) == [key]
