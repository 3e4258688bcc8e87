"""`mimekit fetch ... -o mbox:-`: many messages on stdout as one mboxrd stream.

The stream is read back here without Python's mailbox module: split on "From " lines,
un-quoted by hand, and compared byte for byte with what was stored (LF form). Server runs
go through the real Dovecot of tests/servers.py.
"""

import imaplib
import os
import json
import re
import signal
import ssl
import subprocess
import sys
import time

import pytest

from mimekit.stores import Maildir

USER = "alice"
CLI = [sys.executable, "-m", "mimekit_cli"]

QUOTED = (b"Return-Path: <bounce@example.test>\r\nFrom: bob@example.test\r\nSubject: quoted\r\n"
          b"Message-ID: <quoted@example.test>\r\n\r\nFrom me\r\n>From x\r\n>>From y\r\nFrom\r\n")
EIGHT_BIT = ("From: b\u00f6b@example.test\r\nSubject: Gr\u00fc\u00dfe\r\nMessage-ID: <8bit@example.test>\r\n"
             "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
             "\u00fcn\u00efc\u00f6d\u00e9 \u2603\r\n").encode()
FLAGGED = (b"From: carol@example.test\r\nSubject: flagged\r\nMessage-ID: <flagged@example.test>\r\n\r\n"
           b"body\r\n")
MESSAGES = [QUOTED, EIGHT_BIT, FLAGGED]


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def split_mboxrd(stream: bytes) -> list[tuple[bytes, bytes]]:
    """(sender, message) for each message of an mboxrd stream, un-quoted, its separating
    blank line removed; every "From " line must follow a blank line (or start the stream)."""
    starts = [m for m in re.finditer(rb"(?m)^From (\S+) ([^\n]*)\n", stream)]
    assert starts and starts[0].start() == 0, stream[:80]
    found = []
    for match, following in zip(starts, starts[1:] + [None]):
        end = following.start() if following else len(stream)
        assert stream[end - 2:end] == b"\n\n", "a blank line ends every message"
        time.strptime(match[2].decode(), "%a %b %d %H:%M:%S %Y")   # asctime, as mbox writers put it
        body = stream[match.end():end - 1]
        found.append((match[1], re.sub(rb"(?m)^>(>*From )", rb"\1", body)))
    return found


def by_subject(found: list[tuple[bytes, bytes]]) -> dict[bytes, tuple[bytes, bytes]]:
    return {re.search(rb"(?m)^Subject: (.*)$", message)[1]: (sender, message) for sender, message in found}


def expected(flag_lines: bytes = b"") -> dict[bytes, tuple[bytes, bytes]]:
    return {b"quoted": (b"bounce@example.test", lf(QUOTED)),
            "Grüße".encode(): (b"MAILER-DAEMON", lf(EIGHT_BIT)),
            b"flagged": (b"MAILER-DAEMON", flag_lines + lf(FLAGGED))}


# -- local sources and refusals: no server needed --------------------------------------------

@pytest.fixture
def env(tmp_path):
    return dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))


@pytest.fixture
def source(tmp_path) -> str:
    box = Maildir(str(tmp_path / "source"))
    for data, flags in zip(MESSAGES, ["", "S", "FS"]):
        box.add([data], flags)
    return f"maildir:{tmp_path / 'source'}"


def test_a_maildir_streams_as_one_mbox_with_its_flags(source, env, tmp_path):
    result = subprocess.run([*CLI, "fetch", source, "-o", "mbox:-"], capture_output=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b"mimekit fetch: 3 fetched, 0 skipped, 0 deleted\n"
    found = by_subject(split_mboxrd(result.stdout))
    want = expected(flag_lines=b"Status: RO\nX-Status: F\n")
    want["Grüße".encode()] = (b"MAILER-DAEMON", b"Status: RO\n" + lf(EIGHT_BIT))
    assert found == want
    assert b"\n>From me\n>>From x\n>>>From y\nFrom\n" in result.stdout
    assert not (tmp_path / "state").exists(), "stdout keeps no fetch state"


@pytest.mark.parametrize("extra, says", [
    (["--delete"], "not durable"),
    (["--new"], "no state"),
    (["--json"], "standard output carries the messages"),
])
@pytest.mark.parametrize("output", ["mbox:-", "-"])
def test_what_stdout_cannot_keep_is_refused_in_one_line(source, env, tmp_path, extra, says, output):
    result = subprocess.run([*CLI, "fetch", source, "-o", output, "--limit", "1", *extra], capture_output=True,
                            env=env, timeout=60)
    assert (result.returncode, result.stdout) == (64, b"")
    stderr = result.stderr.decode()
    assert stderr.count("\n") == 1 and stderr.startswith("mimekit fetch: ") and says in stderr, stderr
    assert len(Maildir(source.split(":", 1)[1], create=False).keys()) == 3


def test_a_closed_pipe_ends_the_run_by_sigpipe(tmp_path, env):
    box = Maildir(str(tmp_path / "many"))
    for n in range(200):
        box.add([b"Subject: %d\n\n" % n + b"line of a body\n" * 1000])
    fetch = subprocess.Popen([*CLI, "fetch", f"maildir:{tmp_path / 'many'}", "-o", "mbox:-", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert fetch.stdout.read(5) == b"From "
    fetch.stdout.close()                   # as `| head -c 5` does
    stderr = fetch.stderr.read()
    assert fetch.wait(timeout=60) == -signal.SIGPIPE, stderr.decode()   # the shell sees 141
    assert stderr == b""


def peak_memory_kib(args: list[str], stdout_path, env) -> int:
    """Peak resident memory of one CLI run (its stdout into a file), from a parent of its own."""
    measure = ("import resource, subprocess, sys\n"
               "with open(sys.argv[1], 'wb') as out:\n"
               "    code = subprocess.run(sys.argv[2:], stdout=out).returncode\n"
               "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    result = subprocess.run([sys.executable, "-c", measure, str(stdout_path), *CLI, *args], capture_output=True,
                            env=env, timeout=120, check=True)
    code, peak = map(int, result.stdout.split())
    assert code == 0, result.stderr.decode()
    return peak


def test_a_big_message_streams_in_bounded_memory(tmp_path, env):
    line = b"From a line that must be quoted, and then some more text to fill the line\n"
    big = b"Subject: big\n\n" + line * (64 * 1024 * 1024 // len(line))       # 64 MiB
    for name, body in (("small", b"Subject: small\n\nFrom a line\n"), ("big", big)):
        Maildir(str(tmp_path / name)).add([body])
    small_peak = peak_memory_kib(["fetch", f"maildir:{tmp_path / 'small'}", "-o", "mbox:-", "-q"],
                                 tmp_path / "small.mbox", env)
    big_peak = peak_memory_kib(["fetch", f"maildir:{tmp_path / 'big'}", "-o", "mbox:-", "-q"],
                               tmp_path / "big.mbox", env)
    written = (tmp_path / "big.mbox").stat().st_size
    from_line = (tmp_path / "big.mbox").open("rb").readline()
    assert written == len(from_line) + len(big) + big.count(b"\nFrom ") + 1
    assert big_peak < small_peak + 16 * 1024, f"{big_peak} KiB for 64 MiB, {small_peak} KiB for a few bytes"


# -- the real Dovecot --------------------------------------------------------------------------

@pytest.fixture
def server_env(servers, tmp_path):
    return dict(os.environ, MIMEKIT_PASSWORD=servers.users[USER], XDG_STATE_HOME=str(tmp_path / "state"))


def deliver_and_flag(servers) -> None:
    """The three messages in alice's INBOX, "flagged" marked \\Seen \\Flagged through imaplib."""
    for data in MESSAGES:
        servers.deliver_directly(USER, data)
    client = imaplib.IMAP4_SSL(servers.host, servers.imaps,
                               ssl_context=ssl.create_default_context(cafile=str(servers.ca_file)))
    client.login(USER, servers.users[USER])
    client.select("INBOX")
    _, [numbers] = client.search(None, "SUBJECT", "flagged")
    client.store(numbers.decode(), "+FLAGS", "(\\Seen \\Flagged)")
    client.logout()


def server_url(servers, scheme: str) -> str:
    return f"{scheme}://{USER}@{servers.host}:{getattr(servers, scheme)}" + ("/INBOX" if "imap" in scheme else "")


@pytest.mark.servers
@pytest.mark.parametrize("scheme", ["imap", "pop3s"])
def test_server_messages_stream_as_one_mbox_byte_for_byte(servers, server_env, scheme):
    deliver_and_flag(servers)
    result = subprocess.run([*CLI, "fetch", server_url(servers, scheme), "--cafile", str(servers.ca_file),
                             "-o", "mbox:-", "-q"], capture_output=True, env=server_env, timeout=120)
    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    flag_lines = b"Status: RO\nX-Status: F\n" if scheme == "imap" else b""   # POP3 has no flags
    assert by_subject(split_mboxrd(result.stdout)) == expected(flag_lines)


@pytest.mark.servers
def test_fetch_feeds_scan_through_a_pipe(servers, server_env):
    """Several IMAP messages, fetched as one mbox on stdout, read by `scan mbox:-` as they
    come: one record per message, in order, with the flags IMAP gave and the decoded subject."""
    deliver_and_flag(servers)
    fetch = subprocess.Popen([*CLI, "fetch", server_url(servers, "imaps"), "--cafile", str(servers.ca_file),
                              "-o", "mbox:-", "-q"], stdout=subprocess.PIPE, env=server_env)
    scan = subprocess.run([*CLI, "scan", "--json", "mbox:-"], stdin=fetch.stdout, capture_output=True,
                          env=server_env, timeout=120)
    fetch.stdout.close()
    assert fetch.wait(timeout=60) == 0 and scan.returncode == 0, scan.stderr.decode()
    records = [json.loads(line) for line in scan.stdout.decode().splitlines()]
    assert sorted(record["subject"] for record in records) == sorted(["quoted", "Grüße", "flagged"])
    assert all(record["schema"] == "mimekit.scan/1" and record["source"].startswith("-:") for record in records)
    assert [int(record["source"][2:]) for record in records] == sorted(int(r["source"][2:]) for r in records)
    flags = {record["subject"]: record["flags"] for record in records}
    assert flags["flagged"] == "FS" and flags["quoted"] == ""
    assert {record["from"] for record in records} >= {"bob@example.test"}