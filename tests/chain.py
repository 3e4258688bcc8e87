"""The pieces of the whole-chain tests (tests/test_chain.py through Postfix and Dovecot,
tests/serve/test_serve_chain.py through mimekit serve): the inputs, the message `mimekit encode`
makes of them, and the check that a fetched message decodes back to the same bytes, names and text."""

import json
import os
import subprocess
import sys
from pathlib import Path

BODY = "Grüße aus Köln — 日本語\nZweite Zeile, mit Umlauten: äöü ß\n"
SUBJECT = "Grüße — 日本語 ✓ test"
ATTACHMENT_NAME = "Grüße 日本 ünïcode.txt"


def mimekit(*args, env, input=None, cwd=None):
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, env=env,
                            input=input, timeout=120, cwd=cwd)
    assert result.returncode == 0, f"mimekit {args[0]} exited {result.returncode}: {result.stderr.decode()}"
    return result


def compose(tmp_path: Path) -> tuple[Path, Path]:
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
