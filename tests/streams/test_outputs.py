"""Every file mimekit writes goes through mimekit.streams.files: a temporary name, fsync, then a
rename that never leaves half a file under a final name (issue 8 items 3 and 4).

Proved the hard way: runs killed with SIGKILL at random moments, a full disk (a real
5 MB tmpfs when we may mount one, RLIMIT_FSIZE otherwise), and `-o` onto the things
the shell's `>` writes into (devices, FIFOs, sockets, symlinks).
"""

import base64
import errno
import hashlib
import os
import random
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import mimekit.streams.files
from mimekit.errors import CantCreateError, NoInputError
from mimekit.streams.files import OutputDirectory, atomic_output
from mimekit.read.tree import parse_message

TEMPORARY = re.compile(r"\.mimekit-.*\.tmp")
SENDER, RECIPIENT = "a@example.test", "b@example.test"
TRIALS = 30


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *map(str, args)], capture_output=True,
                          timeout=120, **kwargs)


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mimekit_cli", *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def temporaries(*directories: Path) -> list[str]:
    return [name for directory in directories for name in os.listdir(directory) if TEMPORARY.fullmatch(name)]


def finals(directory: Path) -> dict[str, bytes]:
    """The files under final names (not our temporary files), by name."""
    return {path.name: path.read_bytes() for path in directory.iterdir() if not TEMPORARY.fullmatch(path.name)}


def attachments_message(*attachments: tuple[str, bytes]) -> bytes:
    """A text part, then each (name, data) as a base64 attachment."""
    out = [b"Subject: outputs\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n",
           b"--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"]
    for name, data in attachments:
        out.append(f"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
                   f"Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n".encode())
        out.append(base64.encodebytes(data).replace(b"\n", b"\r\n"))
    return b"".join(out) + b"--XX--\r\n"


@pytest.fixture
def trial_dir(tmp_path):
    """Where the kill trials write: in memory (/dev/shm) where there is such a file system.
    What kill -9 leaves does not depend on the file system, and 60 runs each waiting for
    the disk to fsync 30 MB would only make the test slow."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(prefix="mimekit-kill-", dir="/dev/shm"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture(scope="module")
def big_message(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A 20 MB message of three attachments and a text, and the sha256 each file must have."""
    rng = random.Random(3)
    attachments = [("big.bin", rng.randbytes(10_000_000)), ("second.bin", rng.randbytes(5_000_000)),
                   ("small.bin", rng.randbytes(100_000))]
    path = tmp_path_factory.mktemp("kill") / "big.eml"
    path.write_bytes(attachments_message(*attachments))
    return path, {"part-1.txt": sha256(b"hello"), **{name: sha256(data) for name, data in attachments}}


def killed_at_random(rng: random.Random, trial: int, window: tuple[float, float], watched: Path, *args) -> None:
    """Run, and SIGKILL after a random delay: anywhere in the run for every third trial, else
    while files are written. The aim is taken from this run's own first temporary file in
    `watched`: a whole run's time varies by more than its writing lasts (about 40 of 200 ms)."""
    writing, end = window
    process = start(*args)
    if trial % 3 == 0:
        time.sleep(rng.uniform(0, end))
    else:
        while process.poll() is None and not (watched.exists() and temporaries(watched)):
            time.sleep(0.001)
        time.sleep(rng.uniform(0, end - writing))
    process.kill()
    process.wait()


def writing_window(directory: Path, *args) -> tuple[float, float]:
    """Seconds into a full run when the first temporary file appears in `directory`, and
    when the run ends (polled every 5 ms): how long the writing may last."""
    started = time.monotonic()
    process = start(*args)
    writing = None
    while process.poll() is None:
        if writing is None and directory.exists() and temporaries(directory):
            writing = time.monotonic() - started
        time.sleep(0.005)
    end = time.monotonic() - started
    assert process.returncode == 0
    return (writing if writing is not None else 0.0), end


# -- item 3: kill -9 at random moments ------------------------------------------------------

def test_decode_killed_at_random_moments_never_leaves_a_half_file_and_a_rerun_completes(big_message, trial_dir):
    message, expected = big_message
    window = writing_window(trial_dir / "reference", "decode", message, "-o", trial_dir / "reference")
    rng = random.Random(8)
    half_written = lost = interrupted_while_writing = 0
    for trial in range(TRIALS):
        out = trial_dir / f"trial-{trial}"
        killed_at_random(rng, trial, window, out, "decode", message, "-o", out)
        if out.exists():
            interrupted_while_writing += bool(temporaries(out))
            half_written += sum(sha256(data) != expected.get(name) for name, data in finals(out).items())
        rerun = cli("decode", message, "-o", out)
        assert rerun.returncode == 0, rerun.stderr
        assert temporaries(out) == []   # the killed run's temporary files were cleaned up
        found = Counter(sha256(data) for data in finals(out).values())
        lost += sum(digest not in found for digest in expected.values())
        half_written += sum(count for digest, count in found.items() if digest not in expected.values())
        shutil.rmtree(out)
    assert (lost, half_written) == (0, 0)
    assert interrupted_while_writing > 0, "no kill landed while files were being written: the test proved nothing"


def test_encode_killed_at_random_moments_leaves_the_old_file_or_the_whole_new_one(trial_dir):
    attachment = random.Random(5).randbytes(15_000_000)
    (trial_dir / "big.bin").write_bytes(attachment)
    out = trial_dir / "out" / "message.eml"
    out.parent.mkdir()
    encode = ("encode", "--from", SENDER, "--to", RECIPIENT, "--attach", trial_dir / "big.bin", "-o", out)
    window = writing_window(out.parent, *encode)
    previous = b"Subject: the previous version\r\n\r\nkept until the new one is complete\r\n"

    def state() -> str:
        if not out.exists():
            return "absent"
        raw = out.read_bytes()
        if raw == previous:
            return "previous"
        with parse_message(out.open("rb")) as message:
            leaf = next(part for part in message.leaves() if part.filename == "big.bin")
            return "complete" if sha256(b"".join(leaf.iter_decoded())) == sha256(attachment) else "half-written"

    rng = random.Random(9)
    outcomes = Counter()
    for trial in range(TRIALS):
        if trial % 2:
            out.write_bytes(previous)
        elif out.exists():
            out.unlink()
        killed_at_random(rng, trial, window, out.parent, *encode)
        outcomes[state()] += 1
        outcomes["interrupted while writing"] += bool(temporaries(out.parent))
        assert cli(*encode).returncode == 0
        assert temporaries(out.parent) == [] and state() == "complete"
    assert outcomes["half-written"] == 0, outcomes
    assert outcomes["interrupted while writing"] > 0, outcomes


# -- item 3: a full disk ------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A real 5 MB file system (tmpfs), when we may mount one."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", mount_point],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (root needed); the RLIMIT_FSIZE test covers the same path")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", mount_point], check=True)


def full_disk_message(tmp_path: Path) -> Path:
    path = tmp_path / "full.eml"
    path.write_bytes(attachments_message(("small.bin", b"fits"), ("big.bin", random.Random(1).randbytes(8_000_000)),
                                         ("after.bin", b"never reached")))
    return path


def assert_failed_cleanly(result: subprocess.CompletedProcess) -> None:
    assert result.returncode in (73, 74), result.stderr
    stderr = result.stderr.decode()
    assert len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr


def test_decode_on_a_full_disk_exits_74_with_no_half_file(tmp_path, small_disk):
    result = cli("decode", full_disk_message(tmp_path), "-o", small_disk)
    assert_failed_cleanly(result)
    assert finals(small_disk) == {"part-1.txt": b"hello", "small.bin": b"fits"}   # what was complete, whole
    assert temporaries(small_disk) == []


def test_encode_on_a_full_disk_keeps_the_previous_file(tmp_path, small_disk):
    (tmp_path / "big.bin").write_bytes(random.Random(2).randbytes(8_000_000))
    out = small_disk / "message.eml"
    out.write_bytes(b"previous")
    result = cli("encode", "--from", SENDER, "--attach", tmp_path / "big.bin", "-o", out)
    assert_failed_cleanly(result)
    assert out.read_bytes() == b"previous" and temporaries(small_disk) == []


def file_size_limit(limit: int):
    """For preexec_fn: writes past `limit` bytes fail with EFBIG, as on a full disk
    (SIGXFSZ ignored, so the write returns the error instead of killing the process)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_decode_past_the_file_size_limit_exits_74_with_no_half_file(tmp_path):
    message = full_disk_message(tmp_path)
    out = tmp_path / "out"
    result = cli("decode", message, "-o", out, preexec_fn=file_size_limit(1_000_000))
    assert_failed_cleanly(result)
    assert finals(out) == {"part-1.txt": b"hello", "small.bin": b"fits"}
    assert temporaries(out) == []


def test_encode_past_the_file_size_limit_keeps_the_previous_file(tmp_path):
    (tmp_path / "big.bin").write_bytes(random.Random(2).randbytes(3_000_000))
    out = tmp_path / "message.eml"
    out.write_bytes(b"previous")
    result = cli("encode", "--from", SENDER, "--attach", tmp_path / "big.bin", "-o", out,
                 preexec_fn=file_size_limit(1_000_000))
    assert_failed_cleanly(result)
    assert out.read_bytes() == b"previous" and temporaries(tmp_path) == []


# -- item 3: orphans of killed runs ----------------------------------------------------------

ORPHAN_MAKER = """
import os, sys
from mimekit.streams.files import OutputDirectory
directory = OutputDirectory(sys.argv[1])
directory.new_file("x.bin").stream.write(b"half")
os._exit(0)   # as kill -9 would: no cleanup at all
"""


def test_opening_a_directory_removes_only_orphans_that_prove_they_are_ours(tmp_path):
    subprocess.run([sys.executable, "-c", ORPHAN_MAKER, tmp_path], check=True)
    (orphan,) = temporaries(tmp_path)
    future = tmp_path / "future"
    future.mkdir()
    subprocess.run([sys.executable, "-c", ORPHAN_MAKER, future], check=True)
    (future_orphan,) = temporaries(future)
    os.utime(future / future_orphan, (time.time() + 3600,) * 2)   # written after this run started: not ours to judge
    _, host, pid, rest = orphan.split("-")
    look_alikes = {".mimekit-notours.tmp", "mine.tmp",
                   f".mimekit-{'0' * 8 if host != '0' * 8 else '1' * 8}-{pid}-{rest}",   # another host
                   f".mimekit-{host}-1-{rest}"}                                          # pid 1 is alive
    for name in look_alikes:
        (tmp_path / name).write_bytes(b"")
    with OutputDirectory(str(tmp_path)) as busy:
        busy.new_file("busy.bin")   # a live run's temporary file (this process's)
        (live,) = set(temporaries(tmp_path)) - look_alikes - {orphan}
        with OutputDirectory(str(tmp_path)), OutputDirectory(str(future)):
            assert set(os.listdir(tmp_path)) == look_alikes | {live, "future"}
            assert os.listdir(future) == [future_orphan]


# -- the mechanism: never overwrite, never follow, never leave half --------------------------

def write_new(directory: Path, name: str, data: bytes = b"") -> str:
    with OutputDirectory(str(directory)) as output, output.new_file(name) as new:
        new.stream.write(data)
    return new.written_name


@pytest.fixture(params=["renameat2", "link"])
def no_replace_rename(request, monkeypatch):
    """Both ways of renaming without replacing: renameat2(RENAME_NOREPLACE), and link(2)
    then unlink(2) where the C library or the file system has no renameat2."""
    if request.param == "link":
        monkeypatch.setattr(mimekit.streams.files, "_renameat2", lambda: None)


@pytest.mark.usefixtures("no_replace_rename")
def test_a_new_file_never_overwrites_and_a_clash_gets_a_suffix(tmp_path):
    (tmp_path / "report.pdf").write_bytes(b"already here")
    assert write_new(tmp_path, "report.pdf", b"one") == "report-1.pdf"
    assert write_new(tmp_path, "report.pdf", b"two") == "report-2.pdf"
    assert finals(tmp_path) == {"report.pdf": b"already here", "report-1.pdf": b"one", "report-2.pdf": b"two"}
    assert temporaries(tmp_path) == []


@pytest.mark.usefixtures("no_replace_rename")
def test_a_planted_symlink_or_directory_is_a_taken_name_never_followed(tmp_path):
    target = tmp_path / "outside.txt"
    target.write_bytes(b"precious")
    directory = tmp_path / "dir"
    directory.mkdir()
    os.symlink(target, directory / "x.txt")
    os.symlink(tmp_path / "nowhere", directory / "dangling")
    (directory / "notes").mkdir()
    assert write_new(directory, "x.txt", b"attacker data") == "x-1.txt"
    assert write_new(directory, "dangling") == "dangling-1"
    assert write_new(directory, "notes") == "notes-1"
    assert target.read_bytes() == b"precious" and not (tmp_path / "nowhere").exists()
    assert os.path.islink(directory / "x.txt")


def test_many_clashes_on_one_name_cost_linear_attempts(tmp_path, monkeypatch):
    attempts = []
    real = mimekit.streams.files._rename_no_replace
    monkeypatch.setattr(mimekit.streams.files, "_rename_no_replace",
                        lambda *args, **kwargs: attempts.append(args[1]) or real(*args, **kwargs))
    with OutputDirectory(str(tmp_path)) as output:
        names = []
        for _ in range(200):
            with output.new_file("image.png") as new:
                pass
            names.append(new.written_name)
    assert names[-1] == "image-199.png"
    assert len(attempts) == 200      # one attempt per file


def test_a_missing_directory_is_cant_create(tmp_path):
    with pytest.raises(CantCreateError, match="missing"):
        OutputDirectory(str(tmp_path / "missing"))


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    with pytest.raises(OSError):
        with OutputDirectory(str(tmp_path)) as output:
            output.new_file("committed.bin").commit()
            output.new_file("forgotten.bin").stream.write(b"half")   # never committed: the directory discards it
            with output.new_file("failing.bin") as new:
                new.stream.write(b"half")
                raise OSError(errno.ENOSPC, "No space left on device")
    assert os.listdir(tmp_path) == ["committed.bin"]


def test_atomic_output_keeps_the_previous_file_when_the_block_fails(tmp_path):
    out = tmp_path / "message.eml"
    out.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(str(out)) as stream:
            stream.write(b"half of the new one")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["message.eml"] and out.read_bytes() == b"previous"


# -- item 4: -o PATH behaves like the shell's > ----------------------------------------------

def encode_to(target, **kwargs) -> subprocess.CompletedProcess:
    return cli("encode", "--from", SENDER, "--to", RECIPIENT, "--subject", "to a special file", "-o", target, **kwargs)


def test_output_onto_dev_null_writes_into_the_device():
    before = os.stat("/dev/null")
    result = encode_to("/dev/null")
    assert result.returncode == 0, result.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_output_onto_dev_stdout_writes_into_the_pipe():
    link = os.readlink("/dev/stdout")
    result = encode_to("/dev/stdout")
    assert result.returncode == 0, result.stderr
    assert b"Subject: to a special file\r\n" in result.stdout
    assert os.readlink("/dev/stdout") == link


def test_output_onto_a_fifo_writes_into_it_for_its_reader(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = encode_to(fifo)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert not reader.is_alive() and b"Subject: to a special file\r\n" in received[0]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and temporaries(tmp_path) == []


def test_output_onto_a_socket_fails_like_the_shell_and_keeps_it(tmp_path):
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        result = encode_to(path)
    assert result.returncode == 73 and "sock" in result.stderr.decode()   # bash: "No such device or address"
    assert stat.S_ISSOCK(os.lstat(path).st_mode) and temporaries(tmp_path) == []


def test_output_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "message.eml"
    target.write_bytes(b"previous")
    link = tmp_path / "links" / "message.eml"
    os.symlink("../real/message.eml", link)
    dangling = tmp_path / "links" / "new.eml"
    os.symlink("../real/new.eml", dangling)
    assert encode_to(link).returncode == 0 and encode_to(dangling).returncode == 0
    assert os.readlink(link) == "../real/message.eml" and os.readlink(dangling) == "../real/new.eml"
    assert b"Subject: to a special file\r\n" in target.read_bytes()
    assert b"Subject: to a special file\r\n" in (tmp_path / "real" / "new.eml").read_bytes()
    assert temporaries(tmp_path / "real", tmp_path / "links") == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_have_the_mode_the_umask_gives(tmp_path, umask, mode):
    def with_umask():
        os.umask(umask)
    out = tmp_path / "message.eml"
    assert encode_to(out, preexec_fn=with_umask).returncode == 0
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert cli("decode", out, "-o", tmp_path / "parts", preexec_fn=with_umask).returncode == 0
    assert {stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "parts").iterdir()} == {mode}


def test_a_path_with_a_nul_is_no_input_not_a_crash():
    """A library caller's path with a NUL (impossible on a command line) is NoInputError."""
    with pytest.raises(NoInputError, match="not a usable file name"):
        mimekit.streams.files.open_input("report\0.pdf")


def test_fetch_into_a_directory_cleans_what_a_killed_fetch_left(tmp_path):
    """DirectorySink writes through OutputDirectory, so its temporary files are ours to clean."""
    from mimekit.fetch.sinks import DirectorySink
    from mimekit.fetch.message import ListedMessage
    out = tmp_path / "eml"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = out / f".mimekit-{mimekit.streams.files._host_tag()}-{dead.pid}-{'0' * 12}.tmp"
    orphan.write_bytes(b"half a message")
    os.utime(orphan, (time.time() - 10, time.time() - 10))
    sink = DirectorySink(str(out))
    key, path = sink.add(ListedMessage("7", 7), [b"Subject: x\r\n\r\nbody\r\n"], "")
    assert sorted(p.name for p in out.iterdir()) == ["7.eml"] and key == "7.eml"
    assert Path(path).read_bytes() == b"Subject: x\r\n\r\nbody\r\n"


def test_a_library_caller_with_a_file_named_dash_gets_that_file(tmp_path, monkeypatch):
    """"-" means stdin or stdout on the command line only (mimekit_cli.common)."""
    monkeypatch.chdir(tmp_path)
    with mimekit.streams.files.atomic_output("-") as stream:
        stream.write(b"into the file\n")
    assert (tmp_path / "-").read_bytes() == b"into the file\n"
    with mimekit.streams.files.open_input("-") as stream:
        assert stream.read() == b"into the file\n"


@pytest.mark.parametrize("buffered", [True, False])
def test_open_input_names_a_directory_and_reads_a_file_whole(tmp_path, buffered):
    """open() itself refuses a directory (no stat of our own), with the same one-line message."""
    with pytest.raises(NoInputError, match=r": is a directory$"):
        mimekit.streams.files.open_input(str(tmp_path), buffered=buffered)
    data = os.urandom(200_000)
    (tmp_path / "m").write_bytes(data)
    with mimekit.streams.files.open_input(str(tmp_path / "m"), buffered=buffered) as stream:
        assert b"".join(mimekit.streams.files.read_chunks(stream, 65536)) == data
