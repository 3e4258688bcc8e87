"""Reading a pipe: its buffer widened to 1 MiB (widen_pipe), so that `cat big.eml | mimekit
decode` does not wake writer and reader every 64 KiB; what is not a pipe is left alone."""

import fcntl
import io
import os
import subprocess
import sys
import time

import pytest
from helpers import time_limit

from mimekit.streams.files import PIPE_BUFFER_SIZE, widen_pipe


def pipes_may_be_widened() -> bool:
    """Whether this process may give a pipe PIPE_BUFFER_SIZE (pipe sizes are Linux's, and
    a user over fs/pipe-user-pages-soft may not)."""
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        return False
    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BUFFER_SIZE)
        return True
    except OSError:
        return False
    finally:
        os.close(read_end)
        os.close(write_end)


pytestmark = pytest.mark.skipif(not pipes_may_be_widened(), reason="this process may not widen a pipe")
MESSAGE = (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: piped\r\n"
           b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <piped@example.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=us-ascii\r\n\r\nbody\r\n")   # check finds nothing


def pipe_size(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def test_a_pipe_read_from_gets_the_wide_buffer():
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as reader, open(write_end, "wb"):
        assert pipe_size(read_end) < PIPE_BUFFER_SIZE
        widen_pipe(reader)
        assert pipe_size(write_end) == PIPE_BUFFER_SIZE    # one buffer, seen from both ends


def test_what_is_not_a_pipe_is_left_as_it_is(tmp_path):
    (tmp_path / "file").write_bytes(MESSAGE)
    with open(tmp_path / "file", "rb") as regular:
        widen_pipe(regular)
        assert regular.read() == MESSAGE
    widen_pipe(io.BytesIO(MESSAGE))      # no descriptor: nothing to do, and no error


def widened_while_reading(process: subprocess.Popen, writer) -> bool:
    """Whether the pipe `writer` writes into reaches PIPE_BUFFER_SIZE while `process` waits
    for the rest of its input (it gets MESSAGE, then the end of it); the process must succeed."""
    try:
        writer.write(MESSAGE)
        writer.flush()
        deadline = time.monotonic() + 30
        while pipe_size(writer.fileno()) != PIPE_BUFFER_SIZE and time.monotonic() < deadline:
            time.sleep(0.01)
        return pipe_size(writer.fileno()) == PIPE_BUFFER_SIZE
    finally:
        writer.close()
        stderr = process.stderr.read()
        process.wait(timeout=60)
        assert process.returncode == 0, stderr


def mimekit(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mimekit_cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)


@pytest.mark.parametrize("command", [["show", "-"], ["decode", "-o", "{out}", "-"], ["check", "-"],
                                     ["encode", "--from", "a@example.test", "--body", "-"]])
def test_a_command_reading_stdin_widens_its_pipe(tmp_path, command):
    process = mimekit(*(arg.format(out=tmp_path / "out") for arg in command), stdin=subprocess.PIPE)
    assert widened_while_reading(process, process.stdin)


def test_a_named_pipe_given_as_a_source_is_widened(tmp_path):
    """`mimekit show <(cat big.eml)`: the shell hands over a pipe by name."""
    os.mkfifo(tmp_path / "pipe")
    process = mimekit("show", tmp_path / "pipe")
    with time_limit(60), open(tmp_path / "pipe", "wb") as writer:    # waits for mimekit to open it
        assert widened_while_reading(process, writer)
