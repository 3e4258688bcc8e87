"""map_messages: per-message work in a process pool, results in input order, a failure being
that message's result; what cannot go to a worker (a stream, an unreadable source) is done
here, in its place."""

import fcntl
import io
import itertools
import os
import threading

import pytest
from helpers import time_limit

from mimekit.errors import DataError, IOFailure, NoInputError
from mimekit.read.batch import BATCH_SIZE, InternalError, Unreadable, map_messages
from mimekit.stores.mbox import Mbox
from mimekit.stores.sources import MessageRef, StreamSource, messages

COUNT = 7 * BATCH_SIZE + 5      # batches, and a partial one at the end


def digest(ref: MessageRef) -> tuple[str, int, str]:
    """What a worker makes of a message: module level, so it pickles."""
    with ref.open() as stream:
        data = stream.read()
    if b"data-error" in data:
        raise DataError(f"{ref}: not usable")
    if b"bug" in data:
        raise ValueError("a bug")
    if b"recursion" in data:
        return digest(ref)
    return str(ref), len(data), data.decode()


def pid_of(ref) -> int:
    return os.getpid()


def digest_or_die(ref: MessageRef):
    """A worker killed while reading one message, as the out-of-memory killer would."""
    with ref.open() as stream:
        if b"kill me" in stream.read():
            os._exit(137)
    return digest(ref)


@pytest.fixture
def message_files(tmp_path) -> list[MessageRef]:
    for n in range(COUNT):
        (tmp_path / f"{n:04d}.eml").write_bytes(b"Subject: %d\n\n%s\n" % (n, b"x" * n))
    return list(messages([str(tmp_path)]))


def test_two_jobs_give_what_one_gives_in_the_same_order(message_files):
    one = list(map_messages(digest, message_files, jobs=1))
    two = list(map_messages(digest, message_files, jobs=2))
    assert [ref for ref, _ in one] == message_files
    assert two == one
    assert [result[0] for _, result in two] == [str(ref) for ref in message_files]


def test_with_two_jobs_the_work_is_done_in_worker_processes(message_files):
    pids = {pid for _, pid in map_messages(pid_of, message_files, jobs=2)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_a_failure_is_that_messages_result_and_the_others_still_come(tmp_path, message_files):
    broken = {3: b"data-error", 40: b"bug", 41: b"recursion"}
    for n, text in broken.items():
        (tmp_path / f"{n:04d}.eml").write_bytes(text)
    (tmp_path / "0050.eml").unlink()
    for jobs in (1, 2):
        results = list(map_messages(digest, message_files, jobs=jobs))
        assert [ref for ref, _ in results] == message_files
        for n, (ref, result) in enumerate(results):
            if n == 3:
                assert isinstance(result, DataError) and str(result) == f"{ref}: not usable"
            elif n == 40:
                assert isinstance(result, InternalError) and str(result) == f"{ref}: internal error: ValueError: a bug"
            elif n == 41:
                assert isinstance(result, InternalError) and "RecursionError" in str(result)
            elif n == 50:
                assert isinstance(result, (NoInputError, IOFailure)) and str(ref) in str(result)
            else:
                assert result == digest(ref), n


def test_a_worker_that_dies_loses_only_the_message_that_killed_it(tmp_path, message_files):
    """The pool is started again; the batches that were in flight are done again one
    message at a time, so only the killer is lost, as an error in its place."""
    (tmp_path / "0020.eml").write_bytes(b"kill me")
    results = list(map_messages(digest_or_die, message_files, jobs=2))
    assert [ref for ref, _ in results] == message_files
    lost = [str(ref) for ref, result in results if isinstance(result, InternalError)]
    assert lost == [str(message_files[20])] and "died" in str(results[20][1])
    assert [result for _, result in results if not isinstance(result, InternalError)] == \
        [digest(ref) for n, ref in enumerate(message_files) if n != 20]


def test_a_stream_message_and_an_unreadable_source_are_done_here_in_their_place(message_files):
    stream_refs = list(messages([StreamSource(io.BytesIO(b"Subject: stdin\n\n"), "-")]))
    missing = Unreadable("missing", NoInputError("missing: no such file"))
    refs = message_files[:20] + stream_refs + message_files[20:37] + [missing] + message_files[37:]
    results = list(map_messages(pid_of, refs, jobs=2))
    assert [ref for ref, _ in results] == refs
    assert results[20][1] == os.getpid()
    assert results[38][1] is missing.error
    assert all(pid != os.getpid() for ref, pid in results if ref.reopenable)


def test_a_stream_ref_reads_its_own_bytes_among_the_workers(message_files):
    stream_refs = list(messages([StreamSource(io.BytesIO(b"Subject: stdin\n\n"), "-")]))
    refs = message_files[:50] + stream_refs + message_files[50:]
    results = list(map_messages(digest, refs, jobs=2))
    assert results[50][1] == ("-", 16, "Subject: stdin\n\n")
    assert results[:50] + results[51:] == list(map_messages(digest, message_files, jobs=1))


def test_references_are_taken_as_they_are_needed_not_all_at_once(message_files):
    """An endless listing still gives its first results: memory stays flat however long the
    source is."""
    taken = []

    def endless():
        for ref in itertools.cycle(message_files):
            taken.append(ref)
            yield ref
    results = map_messages(digest, endless(), jobs=2)
    first = list(itertools.islice(results, 3 * BATCH_SIZE))
    results.close()
    assert [ref for ref, _ in first] == message_files[:3 * BATCH_SIZE]
    assert len(taken) <= (2 * 4 + 4) * BATCH_SIZE


def mbox_of(tmp_path, sizes: list[int]) -> bytes:
    """An mbox whose messages have bodies of these sizes in bytes."""
    box = Mbox(str(tmp_path / "box"))
    for n, size in enumerate(sizes):
        box.add([b"Subject: %d\n\n%s\n" % (n, b"x" * size)])
    return (tmp_path / "box").read_bytes()


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_message_of_an_mbox_on_a_pipe_that_pauses_is_done_before_the_input_goes_on(tmp_path, jobs):
    """`fetch -o mbox:- | scan --json mbox:-`: the message that arrived before a pause is not
    held for a batch while the next one is still coming."""
    data = mbox_of(tmp_path, [100, 200_000, 100])
    second = data.index(b"\nFrom ", 1) + 1
    third = data.index(b"\nFrom ", second) + 1
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 1024 * 1024)   # all that comes before the pause fits
    except (AttributeError, OSError):
        os.close(read_end)
        os.close(write_end)
        pytest.skip("this process may not widen a pipe")
    with open(read_end, "rb") as reader, open(write_end, "wb", buffering=0) as writer:
        # The first message, and more of the second than one read takes: input is still
        # waiting in the pipe when the first is listed, and then it pauses.
        writer.write(data[:second + 150_000])
        results = map_messages(digest, messages([StreamSource(reader, "-", mbox=True)]), jobs=jobs)
        with time_limit(10):
            ref, result = next(results)
        assert (str(ref), result[1]) == ("-:0", len(b"Subject: 0\n\n\n") + 100)
        rest_written = threading.Thread(target=lambda: (writer.write(data[second + 150_000:]), writer.close()))
        rest_written.start()                  # more than a pipe holds: written while it is read
        rest = list(results)
        rest_written.join()
    assert [(str(ref), result[1]) for ref, result in rest] == \
        [(f"-:{second}", len(b"Subject: 1\n\n\n") + 200_000), (f"-:{third}", len(b"Subject: 2\n\n\n") + 100)]
