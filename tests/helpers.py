"""Helpers shared by several test files: timing, header vectors, parser events, and the
properties every written message must have."""

import email
import email.policy
import io
import os
import re
import resource
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from mimekit.read.check import check_message
from mimekit.write.composer import CRLF, LF, MAX_LINE_LENGTH
from mimekit.defects import DefectKind
from mimekit.read.events import (BodyChunk, DefectFound, Epilogue, HeaderField, HeadersEnd, PartEnd, PartKind,
                            PartStart, Preamble)
from mimekit.limits import Limits
from mimekit.read.parser import MessageParser
from mimekit.transport.sansio import NEED_DATA


# -- time ----------------------------------------------------------------------------------

def fastest_of_three(work) -> float:
    """Seconds `work()` takes at best: the machine is shared, and a linear 200 KB job must
    not fail because another process held the CPU once. A quadratic one takes minutes."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


@contextmanager
def time_limit(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a parse that takes too long."""
    def expired(signum, frame):
        raise TimeoutError(f"still parsing after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- hostile input under a memory limit ----------------------------------------------------

BOUNDED_MEMORY = 100 * 1024 * 1024   # the resource tier's address-space limit (issue 8)


def run_bounded(args: list[str], input: bytes | None = None, timeout: float = 120,
                memory: int = BOUNDED_MEMORY, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m mimekit_cli ARGS` (or `python ARGS` when ARGS[0] is "-c") with its address
    space capped at `memory`: a hostile input that makes mimekit grow without bound ends in a
    MemoryError (exit 70) instead of eating the machine, and `timeout` catches a hang."""
    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    command = [sys.executable, *args] if args[:1] == ["-c"] else [sys.executable, "-m", "mimekit_cli", *args]
    return subprocess.run(command, input=input, capture_output=True, timeout=timeout,
                          preexec_fn=cap_memory, **kwargs)


# -- header text ---------------------------------------------------------------------------

def first_field(header: str) -> str:
    """The value of the first field of a header block: up to the first line break that is
    not folding. The stalwart header vectors include the next field or a body line."""
    return re.split(r"\r?\n(?![ \t])", header, maxsplit=1)[0]


# -- parser events -------------------------------------------------------------------------

def parse(data: bytes, limits: Limits = Limits(), pieces: list[bytes] | None = None) -> list:
    parser = MessageParser(limits)
    events = []
    for piece in pieces if pieces is not None else [data]:
        events += parser.feed(piece)
    return events + parser.close()


def defects(events: list) -> list[tuple[DefectKind, int, str]]:
    return sorted((e.defect.kind, e.defect.offset, e.defect.part) for e in events if isinstance(e, DefectFound))


def summary(events: list) -> list:
    """Events without defects, each part's consecutive data events merged into one:
    what must not depend on how the input was cut into feeds."""
    merged = []
    for event in events:
        if isinstance(event, DefectFound):
            continue
        if merged and type(event) is type(merged[-1]) and isinstance(event, (BodyChunk, Preamble, Epilogue)):
            merged[-1] = type(event)(merged[-1].data + event.data, merged[-1].offset)
        else:
            merged.append(event)
    return merged


def parts(events: list) -> dict[str, dict]:
    """Per part id: content type, kind, raw body, preamble, epilogue, header names."""
    result, open_ids = {}, []
    for event in events:
        if isinstance(event, PartStart):
            open_ids.append(event.part_id)
            result[event.part_id] = {"type": None, "kind": None, "body": b"", "preamble": b"",
                                     "epilogue": b"", "headers": [], "start": event.offset}
        elif isinstance(event, PartEnd):
            assert open_ids.pop() == event.part_id
            result[event.part_id]["end"] = event.offset
        elif isinstance(event, HeaderField):
            result[open_ids[-1]]["headers"].append(event.name)
        elif isinstance(event, HeadersEnd):
            result[open_ids[-1]].update(type=event.content_type, kind=event.kind, body_offset=event.offset)
        elif isinstance(event, BodyChunk):
            result[open_ids[-1]]["body"] += event.data
        elif isinstance(event, Preamble):
            result[open_ids[-1]]["preamble"] += event.data
        elif isinstance(event, Epilogue):
            result[open_ids[-1]]["epilogue"] += event.data
    assert not open_ids, "every part must end"
    children: dict[str, list[str]] = {part_id: [] for part_id in result}
    for part_id in result:
        if part_id:
            children[part_id.rpartition(".")[0]].append(part_id)
    for part_id, part in result.items():
        if part["kind"] is PartKind.LEAF:
            assert children[part_id] == [], f"leaf {part_id!r} has parts"
        elif part["kind"] is PartKind.MESSAGE:
            assert children[part_id] == [f"{part_id}.1" if part_id else "1"]
    return result


# -- written messages ----------------------------------------------------------------------

def assert_clean_message(raw: bytes, eol: bytes = CRLF) -> email.message.EmailMessage:
    """`mimekit check` passes it, and, checked here independently of it (with Python's email
    as the parser): 7-bit, line ends, line lengths, boundaries, charsets, required fields."""
    report = check_message(io.BytesIO(raw), allow_lf=eol == LF)
    assert report.ok, [str(violation) for violation in report.violations]
    assert raw.isascii(), "8-bit byte in the message"
    if eol == CRLF:
        assert raw.count(b"\r") == raw.count(b"\r\n") == raw.count(b"\n"), "bare CR or LF"
    else:
        assert b"\r" not in raw, "CR in an LF message"
    lines = raw.split(eol)
    assert max(map(len, lines)) <= MAX_LINE_LENGTH
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for name in ("Date", "From", "Message-ID", "MIME-Version"):
        assert len(message.get_all(name, [])) == 1, f"{name} missing or repeated"
    boundaries = [part.get_boundary() for part in message.walk() if part.is_multipart()]
    assert len(set(boundaries)) == len(boundaries)
    for boundary in boundaries:
        delimiter = b"--" + boundary.encode()
        # the boundary appears in its Content-Type parameter and on delimiter lines, nowhere else
        on_lines = [line for line in lines if boundary.encode() in line]
        assert all(line in (delimiter, delimiter + b"--") or b"boundary=" in line for line in on_lines)
        assert lines.count(delimiter + b"--") == 1
    for part in message.walk():
        assert not part.defects, part.defects
        if part.get_content_maintype() == "text":
            assert part.get_param("charset"), f"{part.get_content_type()} without charset"
        if part["Content-Transfer-Encoding"] in ("base64", "quoted-printable"):
            body_lines = part.get_payload().split(eol.decode())
            assert max(map(len, body_lines)) <= 76
    return message


# -- sans-IO protocol clients ---------------------------------------------------------

def protocol_events(proto, data: bytes = b"", closed: type = type(None)) -> list:
    """Hand a sans-IO client `data` (if any) and collect every event it completes,
    stopping after the protocol's ConnectionClosed event (`closed`)."""
    if data:
        proto.receive_data(data)
    out = []
    while (event := proto.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, closed):
            break
    return out


@contextmanager
def mounted_tmpfs(mount_point, size: str):
    """A tmpfs of `size` (e.g. "2m") at `mount_point`: a real full disk for the tests that
    need one. Mounting needs root (CI and the developers' machines are); else the test skips."""
    import os
    import pytest
    mount_point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fsynced_paths(monkeypatch) -> list[str]:
    """The paths os.fsync is called on from now on (read back from /proc/self/fd): what a
    test of durability checks, since a crash is not something a test can wait for."""
    found, fsync = [], os.fsync

    def recording_fsync(fd):
        found.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return found


def write_config(env: dict, text: str, mode: int = 0o600) -> Path:
    """The accounts file (config.toml) of the environment `env` (the `env` fixture of tests/cli)."""
    path = Path(env["XDG_CONFIG_HOME"]) / "mimekit" / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path
