"""Malicious servers against fetch, folders and send: exit 75 or 76, never 70, never a hang.

Every server here is a SCRIPTED FAKE (tests/scripted_servers.py): a real one will not send
a 5000-digit UID, digits that are not ASCII, an endless stream of untagged responses, or
drip one byte a second on demand. Parser-level cases of the same numbers are in
test_imap_protocol.py, test_pop3_protocol.py and test_smtp_protocol.py.
"""

import os
import subprocess
import sys

import pytest
from helpers import run_bounded
from scripted_servers import (MESSAGE, ScriptedIMAPServer, ScriptedPOP3Server, ScriptedSMTPServer, drip,
                              scripted, silence)

HUGE = b"9" * 5000       # more digits than int() takes (CPython's int_max_str_digits is 4300)


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, MIMEKIT_PASSWORD="pw", XDG_STATE_HOME=str(tmp_path / "state"))


def mimekit(server, *args, env, timeout=60) -> subprocess.CompletedProcess:
    """`mimekit ARGS` against the scripted `server`; `timeout` is the test's own bound."""
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args, "--cafile", str(server.ca_file)],
                          capture_output=True, timeout=timeout, env=env)


def fetch(server, tmp_path, *args, env, timeout=60) -> subprocess.CompletedProcess:
    source = f"{server.url}/INBOX" if server.scheme == "imaps" else server.url
    return mimekit(server, "fetch", source.replace("://", "://bob@"), "-o", f"maildir:{tmp_path / 'out'}",
                   *args, env=env, timeout=timeout)


def assert_protocol_error(result: subprocess.CompletedProcess) -> None:
    stderr = result.stderr.decode()
    assert result.returncode == 76, stderr
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1, stderr


# ------------------------------------------------------------- numbers no server should send

def test_a_literal_size_of_5000_digits_is_a_protocol_error(tmp_path, env):
    server = scripted(ScriptedIMAPServer, tmp_path, fetch=lambda self, tag: [
        b"* 1 FETCH (UID 1 FLAGS () BODY[] {" + HUGE + b"}\r\n", MESSAGE, b")\r\n", tag + b" OK done\r\n"])
    assert_protocol_error(fetch(server, tmp_path, env=env))


def test_a_uid_of_5000_digits_is_a_protocol_error(tmp_path, env):
    server = scripted(ScriptedIMAPServer, tmp_path, search=lambda self, tag: [
        b"* SEARCH 1 " + HUGE + b"\r\n", tag + b" OK done\r\n"])
    assert_protocol_error(fetch(server, tmp_path, env=env))


def test_a_folder_name_literal_of_5000_digits_is_a_protocol_error(tmp_path, env):
    server = scripted(ScriptedIMAPServer, tmp_path, list=lambda self, tag: [
        b'* LIST () "/" {' + HUGE + b"}\r\n", tag + b" OK done\r\n"])
    assert_protocol_error(mimekit(server, "folders", server.url.replace("://", "://bob@"), env=env))


def test_digits_that_are_not_ascii_are_a_protocol_error(tmp_path, env):
    # "²" passes str.isdigit() and then int() refuses it.
    server = scripted(ScriptedPOP3Server, tmp_path, listing=lambda self: "+OK\r\n1 ²\r\n.\r\n".encode())
    assert_protocol_error(fetch(server, tmp_path, env=env))


@pytest.mark.parametrize("size", [HUGE, "²".encode()], ids=["5000-digits", "superscript-two"])
def test_an_smtp_size_that_is_not_a_number_is_ignored(tmp_path, size):
    server = scripted(ScriptedSMTPServer, tmp_path, extensions=("PIPELINING", "SIZE " + size.decode()))
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "send", "--server", server.url, "--cafile",
                             str(server.ca_file), "--to", "bob@example.test"], input=MESSAGE,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert server.messages == [MESSAGE]


# ---------------------------------------------------------------------- endless streams

def endless_ok(self, tag):
    yield b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n"
    while True:
        yield b"* OK still selecting\r\n" * 1000


@pytest.mark.resources
def test_endless_untagged_responses_after_select_end_in_a_protocol_error(tmp_path, env):
    """Every untagged response used to be kept while waiting for the tagged one, until
    MemoryError (exit 70): a command may now draw only so many."""
    server = scripted(ScriptedIMAPServer, tmp_path, select=endless_ok)
    result = run_bounded(["fetch", f"imaps://bob@127.0.0.1:{server.port}/INBOX", "-o",
                          f"maildir:{tmp_path / 'out'}", "--cafile", str(server.ca_file)], env=env, timeout=120)
    assert_protocol_error(result)
    assert b"untagged" in result.stderr


# ---------------------------------------------------------------------------------- time

def test_a_server_dripping_a_body_cannot_keep_a_fetch_alive(tmp_path, env):
    """One byte a second never lets a per-read timeout expire; the idle limit counts the
    time spent waiting, and a trickle buys back only what it delivers at 500 bytes/s."""
    body = MESSAGE * 1000
    server = scripted(ScriptedIMAPServer, tmp_path, fetch=lambda self, tag: [
        b"* 1 FETCH (UID 1 FLAGS () BODY[] {%d}\r\n" % len(body), *drip(body)])
    result = fetch(server, tmp_path, "--timeout", "3", env=env, timeout=15)
    assert result.returncode == 75, result.stderr.decode()


@pytest.mark.parametrize("command", ["fetch", "folders"])
def test_a_silent_server_costs_one_timeout_not_two(tmp_path, env, command):
    """The greeting never comes. The polite LOGOUT after the timeout must not wait for a
    second one: 5 s of --timeout fit in the 9 s allowed, 10 s do not."""
    server = scripted(ScriptedIMAPServer, tmp_path, greeting=lambda self: silence())
    if command == "fetch":
        result = fetch(server, tmp_path, "--timeout", "5", env=env, timeout=9)
    else:
        result = mimekit(server, "folders", server.url.replace("://", "://bob@"), "--timeout", "5",
                         env=env, timeout=9)
    assert result.returncode == 75, result.stderr.decode()
    assert b"within 5s" in result.stderr
