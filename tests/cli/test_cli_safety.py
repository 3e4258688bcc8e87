"""What reaches the terminal and what happens when stdout fails (issue 8, items 7, 13, 17).

- stdout on a full device: exit 74 and one line on stderr, with and without --json; a reader
  that goes away (`| head -1`) ends the run quietly, killed by SIGPIPE as cat is.
- Malformed server URLs: exit 64, and the password in them is never echoed.
- Terminal escapes from outside (header values, file names, server replies, folder names)
  never reach stderr or a text stdout raw; JSON keeps the exact values.
- Secret files open to group or others are refused (exit 78) with the fix in the message.

Servers here are SCRIPTED FAKES on 127.0.0.1 (tests/scripted_servers.py): a real one will
not answer with escape sequences on demand.
"""

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from scripted_servers import ScriptedIMAPServer, ScriptedPOP3Server, ScriptedSMTPServer, scripted

REPO = Path(__file__).resolve().parents[2]

# Bytes a terminal acts on: ESC (CSI, OSC), BEL (ends an OSC title), the one-byte C1 CSI
# (as UTF-8: C2 9B), and the right-to-left override U+202E (E2 80 AE).
OSC_TITLE = "\x1b]0;pwned\x07"
CLEAR_SCREEN = "\x1b[2J"
C1_CSI = "\x9b31m"
RTL_OVERRIDE = "\u202e"
HOSTILE = OSC_TITLE + CLEAR_SCREEN + C1_CSI + RTL_OVERRIDE
TERMINAL_BYTES = (b"\x1b", b"\x07", b"\x9b", RTL_OVERRIDE.encode())


def run_cli(*args, input=None, env=None, stdout=subprocess.PIPE, timeout=60):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, stdout=stdout,
                          stderr=subprocess.PIPE, env=env, timeout=timeout, cwd=REPO)


def assert_no_terminal_bytes(*outputs: bytes) -> None:
    for output in outputs:
        for byte in TERMINAL_BYTES:
            assert byte not in output, f"{byte!r} reached the terminal: {output[:300]!r}"


def isolated_env(tmp_path: Path, **extra) -> dict:
    """HOME and XDG dirs in tmp_path: no real netrc, config or fetch state is read."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MIMEKIT_", "XDG_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"), **extra)
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


# -- item 7: stdout that fails ---------------------------------------------------------------

def plain_message(tmp_path: Path, header_count: int = 3, body_lines: int = 3) -> str:
    headers = "".join(f"X-Filler-{n}: {'x' * 150}\r\n" for n in range(header_count))
    path = tmp_path / "plain.eml"
    path.write_bytes((f"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: plain\r\n{headers}"
                      "Content-Type: text/plain; charset=utf-8\r\n\r\n" + "body line\r\n" * body_lines).encode())
    return str(path)


def writing_commands(tmp_path: Path) -> dict[str, list[str]]:
    """Every command that writes data or a report to stdout, with a small input."""
    message = plain_message(tmp_path)
    (tmp_path / "maildir").mkdir()
    return {
        "show": ["show", message],
        "show --json": ["show", "--json", message],
        "check": ["check", message],               # Date and Message-ID are missing: lines on stdout
        "check --json": ["check", "--json", message],
        "decode --text": ["decode", "--text", message],
        "decode --part": ["decode", "--part", "", message],   # "": the message itself
        "decode -o": ["decode", "-o", str(tmp_path / "out1"), message],
        "decode --json -o": ["decode", "--json", "-o", str(tmp_path / "out2"), message],
        "encode": ["encode", "--from", "a@example.test", "--to", "b@example.test", "--body", message],
        "send --json": ["send", "--json", "--server", f"maildir:{tmp_path / 'maildir'}",
                        "--to", "b@example.test", message],
        "fetch -o -": ["fetch", f"maildir:{tmp_path / 'maildir'}", "-o", "-", "--limit", "1"],
        "fetch --json": ["fetch", "--json", f"maildir:{tmp_path / 'maildir'}", "-o", str(tmp_path / "fetched")],
        "--help": ["--help"],
    }


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_device_is_exit_74_and_one_line(tmp_path):
    commands = writing_commands(tmp_path)
    # send first, so that fetch finds a message in the Maildir
    order = ["send --json"] + [name for name in commands if name != "send --json"]
    for name in order:
        with open("/dev/full", "wb") as full:
            result = run_cli(*commands[name], env=isolated_env(tmp_path), stdout=full)
        stderr = result.stderr.decode()
        assert result.returncode == 74, f"{name}: exit {result.returncode}: {stderr}"
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, f"{name}: {stderr}"
        assert stderr.count("\n") == 1 and "cannot write to standard output" in stderr, f"{name}: {stderr!r}"


def test_reader_going_away_ends_the_run_quietly(tmp_path):
    """`mimekit show big.eml | head -1`: no traceback, no "Exception ignored", and the status
    cat would have (killed by SIGPIPE), so `set -o pipefail` sees what it sees for other tools."""
    message = plain_message(tmp_path, header_count=900, body_lines=100_000)   # far more than a pipe holds
    for args in (["show", message], ["show", "--json", message], ["decode", "--text", message],
                 ["encode", "--from", "a@example.test", "--to", "b@example.test", "--attach", message]):
        process = subprocess.Popen([sys.executable, "-m", "mimekit_cli", *args], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, cwd=REPO)
        assert process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == -signal.SIGPIPE, (args[0], stderr)
        assert stderr == b"", (args[0], stderr)


# -- item 7 and 17: malformed URLs -------------------------------------------------------------

@pytest.mark.parametrize("url", ["smtp://[::1", "smtps://bob:PW@/INBOX", "smtp://host:99999", "smtp://host:abc",
                                 "smtp://host:0", "smtp://bob:PW@host:abc", "smtp://bob:PW/x@host",
                                 "smtps://bob:PW@host"])
@pytest.mark.parametrize("as_json", [False, True])
def test_malformed_send_url_is_usage_error_without_the_password(tmp_path, url, as_json):
    result = run_cli("send", *(["--json"] if as_json else []), "--server", url, "--to", "b@example.test",
                     "--from", "a@example.test", "-", input=b"Subject: x\r\n\r\nx\r\n", env=isolated_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 64, output
    assert b"PW" not in output and b"internal error" not in output
    if as_json:
        assert json.loads(result.stdout)["error"]["code"] == 64


@pytest.mark.parametrize("url", ["imaps://bob:PW@/INBOX", "imaps://[::1", "pop3s://bob:PW@host:1x"])
def test_malformed_fetch_url_is_usage_error_without_the_password(tmp_path, url):
    result = run_cli("fetch", url, "-o", str(tmp_path / "out"), env=isolated_env(tmp_path))
    assert result.returncode == 64, result.stderr
    assert b"PW" not in result.stdout + result.stderr
    assert result.stderr.count(b"\n") == 1


# -- item 13: hostile text from a message ------------------------------------------------------

@pytest.fixture
def hostile_message(tmp_path) -> Path:
    """Escapes in From, Subject, a charset, a transfer encoding, a content type and a file name."""
    path = tmp_path / "hostile.eml"
    path.write_bytes((
        f"From: Eve {HOSTILE} <eve@example.test>\r\n"
        "To: bob@example.test\r\n"
        f"Subject: invoice {HOSTILE}fdp.exe\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        "--b\r\n"
        f"Content-Type: text/plain; charset=\"ut{OSC_TITLE}f-8\"\r\n"
        f"Content-Transfer-Encoding: 7b{CLEAR_SCREEN}it\r\n\r\n"
        "hello\r\n"
        "--b\r\n"
        f"Content-Type: application/x{OSC_TITLE}y\r\n"
        f"Content-Disposition: attachment; filename=\"a{HOSTILE}.bin\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        "aGVsbG8=\r\n"
        "--b--\r\n").encode())
    return path


def test_show_text_escapes_everything_from_the_message(hostile_message):
    result = run_cli("show", str(hostile_message))
    assert_no_terminal_bytes(result.stdout, result.stderr)
    assert b"\\x1b]0;pwned\\x07" in result.stdout, "the escape is shown, not dropped"
    assert b"\\u202efdp.exe" in result.stdout


def test_show_json_keeps_the_exact_values(hostile_message):
    result = run_cli("show", "--json", str(hostile_message))
    assert_no_terminal_bytes(result.stdout)   # written as \u001b, \u009b, \u202e: the same JSON values
    headers = {header["name"]: header["value"] for header in json.loads(result.stdout)["headers"]}
    assert headers["Subject"] == f"invoice {HOSTILE}fdp.exe"
    assert headers["From"] == f"Eve {HOSTILE} <eve@example.test>"


def test_decode_manifest_and_diagnostics_escape_the_names(hostile_message, tmp_path):
    result = run_cli("decode", "-o", str(tmp_path / "out"), str(hostile_message))
    assert result.returncode == 0, result.stderr
    assert_no_terminal_bytes(result.stdout, result.stderr)
    assert b"\\x1b]0;pwned\\x07" in result.stdout and b"defect" in result.stderr

    result = run_cli("decode", "--json", "-o", str(tmp_path / "out-json"), str(hostile_message))
    assert_no_terminal_bytes(result.stdout)
    names = [part["original_name"] for part in json.loads(result.stdout)["parts"]]
    assert f"a{HOSTILE}.bin" in names, "the manifest keeps the exact original name"


def test_check_report_escapes_the_message_text(hostile_message):
    result = run_cli("check", str(hostile_message))
    assert result.returncode == 65
    assert_no_terminal_bytes(result.stdout, result.stderr)
    assert b"\\x1b" in result.stdout


def test_error_messages_escape_file_names(tmp_path):
    result = run_cli("show", str(tmp_path / f"missing{HOSTILE}.eml"))
    assert result.returncode == 66
    assert_no_terminal_bytes(result.stderr)
    assert result.stderr.count(b"\n") == 1


def test_usage_errors_escape_the_argument_they_quote():
    """click quotes an extra argument as it is (`mimekit fetch URL "$@"` with a hostile file name)."""
    result = run_cli("fetch", "maildir:a", f"b{OSC_TITLE}.eml")
    assert result.returncode == 64
    assert_no_terminal_bytes(result.stderr)
    assert b"\\x1b]0;pwned" in result.stderr


def test_each_missing_source_is_one_escaped_line(tmp_path):
    """Reading commands take many sources: each one missing is one line naming it, escaped."""
    result = run_cli("show", str(tmp_path / "a.eml"), str(tmp_path / f"b{OSC_TITLE}.eml"))
    assert result.returncode == 66
    assert_no_terminal_bytes(result.stderr)
    assert b"\\x1b]0;pwned" in result.stderr and result.stderr.count(b"\n") == 3   # two sources, one summary


# -- item 13: hostile servers (scripted fakes: tests/scripted_servers.py) ----------------------

def test_imap_refusals_are_escaped(tmp_path):
    """A NO to SELECT (fetch) and a BAD to LIST (folders), both carrying escapes."""
    hostile = (OSC_TITLE + CLEAR_SCREEN).encode()
    server = scripted(ScriptedIMAPServer, tmp_path,
                      select=lambda self, tag: [tag + b" NO [NONEXISTENT] " + hostile + b" no such folder\r\n"],
                      list=lambda self, tag: [tag + b" BAD " + hostile + b" no listing\r\n"])
    env = isolated_env(tmp_path, MIMEKIT_PASSWORD="pw")
    fetched = run_cli("fetch", f"{server.url.replace('//', '//alice@')}/INBOX", "--cafile", str(server.ca_file),
                      "-o", str(tmp_path / "out"), env=env)
    listed = run_cli("folders", server.url.replace("//", "//alice@"), "--cafile", str(server.ca_file), env=env)
    server.close()
    assert (fetched.returncode, listed.returncode) == (69, 76), (fetched.stderr, listed.stderr)
    for result in (fetched, listed):
        assert_no_terminal_bytes(result.stderr)
        assert b"\\x1b]0;pwned" in result.stderr and result.stderr.count(b"\n") == 1


def test_folder_names_are_escaped_in_text_and_exact_in_json(tmp_path):
    # a quoted name with ESC and BEL, and modified UTF-7 names decoding to U+009B and U+202E
    names = [b'"evil\x1b]0;pwned\x07"', b'"&AJs-31m"', b'"&IC4-exe"']
    server = scripted(ScriptedIMAPServer, tmp_path, list=lambda self, tag: [
        *(b'* LIST () "/" ' + name + b"\r\n" for name in names), tag + b" OK done\r\n"])
    env = isolated_env(tmp_path, MIMEKIT_PASSWORD="pw")
    url, cafile = server.url.replace("//", "//alice@"), str(server.ca_file)
    text = run_cli("folders", url, "--cafile", cafile, env=env)
    as_json = run_cli("folders", "--json", url, "--cafile", cafile, env=env)
    server.close()
    assert text.returncode == 0, text.stderr
    assert_no_terminal_bytes(text.stdout, text.stderr, as_json.stdout)
    assert text.stdout.decode().splitlines() == ["evil\\x1b]0;pwned\\x07", "\\x9b31m", "\\u202eexe"]
    assert [folder["name"] for folder in json.loads(as_json.stdout)["folders"]] == [
        "evil\x1b]0;pwned\x07", "\x9b31m", "\u202eexe"]


def test_pop3_refusal_text_is_escaped(tmp_path):
    server = scripted(ScriptedPOP3Server, tmp_path,
                      listing=lambda self: f"-ERR {OSC_TITLE}{CLEAR_SCREEN} no listing\r\n".encode())
    result = run_cli("fetch", server.url.replace("//", "//alice@"), "--cafile", str(server.ca_file),
                     "-o", str(tmp_path / "out"), env=isolated_env(tmp_path, MIMEKIT_PASSWORD="pw"))
    server.close()
    assert result.returncode == 76, result.stderr
    assert_no_terminal_bytes(result.stderr)
    assert b"\\x1b]0;pwned" in result.stderr


def test_smtp_refusal_texts_are_escaped(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path,
                      rcpt=lambda self, address, count: f"550 5.1.1 {OSC_TITLE}{CLEAR_SCREEN}{RTL_OVERRIDE} no")
    result = run_cli("send", "--server", server.url, "--cafile", str(server.ca_file), "--to", "b@example.test",
                     "-", input=b"From: a@example.test\r\nSubject: x\r\n\r\nx\r\n", env=isolated_env(tmp_path))
    server.close()
    assert result.returncode == 69, result.stderr
    assert_no_terminal_bytes(result.stderr)
    assert b"\\x1b]0;pwned\\x07" in result.stderr and b"\\u202e" in result.stderr


def test_smtp_greeting_refusal_is_escaped(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, greeting=lambda self: f"554 {OSC_TITLE} go away")
    result = run_cli("send", "--server", server.url, "--cafile", str(server.ca_file), "--to", "b@example.test",
                     "-", input=b"From: a@example.test\r\nSubject: x\r\n\r\nx\r\n", env=isolated_env(tmp_path))
    server.close()
    assert result.returncode == 69, result.stderr
    assert_no_terminal_bytes(result.stderr)


# -- item 17: secret files and the password command --------------------------------------------

def test_shared_netrc_is_refused_and_a_private_one_is_used(tmp_path):
    env = isolated_env(tmp_path)
    netrc = tmp_path / "home" / ".netrc"
    netrc.write_text("machine 127.0.0.1 login alice password fromnetrc\n")
    for mode in (0o644, 0o600):
        netrc.chmod(mode)
        server = scripted(ScriptedIMAPServer, tmp_path)
        result = run_cli("fetch", server.url.replace("//", "//alice@"), "--cafile", str(server.ca_file),
                         "-o", str(tmp_path / "out"), env=env)
        server.close()
        logins = [base64.b64decode(line.split()[-1]) for line in server.commands if b"AUTHENTICATE" in line]
        if mode == 0o644:
            assert result.returncode == 78, result.stderr
            assert f"chmod 600 {netrc}".encode() in result.stderr and b"0644" in result.stderr
            assert logins == [], "no password is sent when the netrc is refused"
        else:
            assert result.returncode == 0, result.stderr
            assert logins == [b"\0alice\0fromnetrc"]


def test_shared_config_with_a_password_is_refused(tmp_path):
    config = tmp_path / "home" / ".config" / "mimekit" / "config.ini"
    config.parent.mkdir(parents=True)
    config.write_text("[alice@127.0.0.1]\npassword = fromconfig\n")
    config.chmod(0o640)
    # send looks the password up once TLS is up (as fetch does), and then refuses the config
    server = scripted(ScriptedSMTPServer, tmp_path)
    result = run_cli("send", "--server", server.url.replace("//", "//alice@"), "--cafile", str(server.ca_file),
                     "--to", "b@example.test", "-", input=b"From: a@example.test\r\n\r\nx\r\n",
                     env=isolated_env(tmp_path))
    server.close()
    assert result.returncode == 78, result.stderr
    assert f"chmod 600 {config}".encode() in result.stderr and b"fromconfig" not in result.stderr
    assert not any(command.upper().startswith("AUTH") for command in server.commands)


def test_failed_password_command_shows_its_stderr_printable(tmp_path):
    command = f"echo 'vault is locked {OSC_TITLE}' >&2; echo notthepassword; exit 3"
    server = scripted(ScriptedSMTPServer, tmp_path)
    result = run_cli("send", "--server", server.url.replace("//", "//alice@"), "--cafile", str(server.ca_file),
                     "--password-command", command, "--to", "b@example.test", "-",
                     input=b"From: a@example.test\r\n\r\nx\r\n", env=isolated_env(tmp_path))
    server.close()
    assert result.returncode == 78, result.stderr
    assert b"exit status 3" in result.stderr and b"vault is locked" in result.stderr
    assert b"notthepassword" not in result.stderr
    assert_no_terminal_bytes(result.stderr)
