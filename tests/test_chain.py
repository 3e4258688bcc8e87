"""The whole chain, the way a message really travels, as the user runs it:

    mimekit encode -> mimekit send (Postfix submission: STARTTLS + AUTH, test CA)
    -> Dovecot mailbox -> mimekit fetch (IMAP, and separately POP3) -> mimekit decode

must give back the same bytes, file names and text that went in. And the same with no
server at all: send --server maildir:X, then fetch maildir:X.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BODY = "Grüße aus Köln — 日本語\nZweite Zeile, mit Umlauten: äöü ß\n"
SUBJECT = "Grüße — 日本語 ✓ test"
ATTACHMENT_NAME = "Grüße 日本 ünïcode.txt"


def mimekit(*args, env, input=None, cwd=None):
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, env=env,
                            input=input, timeout=120, cwd=cwd)
    assert result.returncode == 0, f"mimekit {args[0]} exited {result.returncode}: {result.stderr.decode()}"
    return result


@pytest.fixture
def composed(tmp_path):
    """The inputs on disk and the message `mimekit encode` makes of them."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "body.txt").write_text(BODY, encoding="utf-8")
    binary = bytes(range(256)) * 40 + os.urandom(5000)           # every byte value, and noise
    (inputs / "data.bin").write_bytes(binary)
    (inputs / ATTACHMENT_NAME).write_bytes("Inhalt mit ä und 日本\n".encode())
    message = tmp_path / "message.eml"
    mimekit("encode", "--from", "bob@example.test", "--to", "alice@example.test", "--subject", SUBJECT,
            "--body", str(inputs / "body.txt"), "--attach", str(inputs / "data.bin"),
            "--attach", str(inputs / ATTACHMENT_NAME), "-o", str(message), env=dict(os.environ))
    return inputs, message


def check_decoded(message: bytes, inputs: Path, workdir: Path, env) -> None:
    """decode and show the fetched message: attachments byte for byte under their own
    names, the body's text, and the subject."""
    out = workdir / "decoded"
    manifest = json.loads(mimekit("decode", "-", "-o", str(out), "--json", env=env, input=message).stdout)
    by_name = {part["original_name"]: part for part in manifest["parts"]}
    for name in ("data.bin", ATTACHMENT_NAME):
        assert by_name[name]["written_name"] == name
        assert (out / name).read_bytes() == (inputs / name).read_bytes()
    text = mimekit("decode", "-", "--text", env=env, input=message).stdout.decode("utf-8")
    assert text.replace("\r\n", "\n").rstrip("\n") == BODY.rstrip("\n")
    headers = json.loads(mimekit("show", "-", "--json", env=env, input=message).stdout)["headers"]
    assert {"name": "Subject", "value": SUBJECT} in headers


@pytest.mark.servers
def test_encode_send_fetch_decode_through_postfix_and_dovecot(mail_servers, composed, tmp_path):
    servers = mail_servers
    inputs, message = composed
    servers.clear_mailbox("alice")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    mimekit("send", "--server", f"smtp://{servers.host}:{servers.submission}", "--user", "bob",
            "--cafile", str(servers.ca_file), "-t", str(message),
            env={**env, "MIMEKIT_PASSWORD": servers.users["bob"]})
    servers.wait_for_messages("alice", 1)
    fetch_env = {**env, "MIMEKIT_PASSWORD": servers.users["alice"]}

    over_imap = mimekit("fetch", f"imap://alice@{servers.host}:{servers.imap}/INBOX", "--cafile",
                        str(servers.ca_file), "-o", "-", "--limit", "1", "-q", env=fetch_env).stdout
    (tmp_path / "imap").mkdir()
    check_decoded(over_imap, inputs, tmp_path / "imap", fetch_env)

    report = json.loads(mimekit("fetch", f"pop3://alice@{servers.host}:{servers.pop3}", "--cafile",
                                str(servers.ca_file), "-o", f"maildir:{tmp_path / 'pop3-box'}", "--json",
                                env=fetch_env).stdout)
    [fetched] = report["fetched"]
    over_pop3 = Path(fetched["path"]).read_bytes()
    assert over_pop3 == over_imap.replace(b"\r\n", b"\n"), "both protocols deliver the same message"
    (tmp_path / "pop3").mkdir()
    check_decoded(over_pop3, inputs, tmp_path / "pop3", fetch_env)


def test_encode_send_fetch_decode_with_no_server(composed, tmp_path):
    inputs, message = composed
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    box = f"maildir:{tmp_path / 'box'}"
    mimekit("send", "--server", box, "-t", str(message), env=env)
    fetched = mimekit("fetch", box, "-o", "-", "--limit", "1", "-q", env=env).stdout
    assert fetched == message.read_bytes(), "stdout gives the message back in its network form, byte for byte"
    check_decoded(fetched, inputs, tmp_path, env)
