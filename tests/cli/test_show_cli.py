"""`mimekit show` through the real CLI: decoded headers, the part tree, defects, exit codes."""

import base64
import json
import subprocess
import sys

MESSAGE = (
    b"From: =?utf-8?q?J=C3=B6rg?= <jorg@example.com>\r\n"
    b"Subject: =?iso-8859-1?q?Gr=FC=DFe?= and \x1b[31mred\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"caf=C3=A9\r\n"
    b"--B\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: inner\r\nContent-Type: application/pdf; name=\"inner.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(b"%PDF" * 100).replace(b"\n", b"\r\n")
    + b"\r\n--B--\r\n"
)


def run_cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True)


def test_json_lists_decoded_headers_and_every_part():
    result = run_cli("show", "-", "--json", input=MESSAGE)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "mimekit.show/1"
    headers = {h["name"]: h["value"] for h in document["headers"]}
    assert headers["From"] == "Jörg <jorg@example.com>"
    assert headers["Subject"] == "Grüße and \x1b[31mred"
    assert [(p["id"], p["depth"], p["content_type"], p["charset"], p["transfer_encoding"], p["size"], p["name"])
            for p in document["parts"]] == [
        ("", 0, "multipart/mixed", None, "7bit", None, None),
        ("1", 1, "text/plain", "utf-8", "quoted-printable", 5, None),
        ("2", 1, "message/rfc822", None, "7bit", None, None),
        ("2.1", 2, "application/pdf", None, "base64", 400, "inner.pdf"),
    ]
    assert document["defects"] == []


def test_human_output_escapes_terminal_controls_and_indents_the_tree():
    result = run_cli("show", "-", input=MESSAGE)
    assert result.returncode == 0
    text = result.stdout.decode()
    assert b"\x1b" not in result.stdout
    assert "Subject: Grüße and \\x1b[31mred" in text
    lines = text.splitlines()
    table = lines[lines.index("") + 1:]
    assert table[0].split() == ["PART", "TYPE", "CHARSET", "ENCODING", "SIZE", "NAME"]
    assert table[4].split() == ["2.1", "application/pdf", "base64", "400", "inner.pdf"]
    assert table[4].startswith("    2.1")


def test_defects_go_to_stderr_and_strict_makes_them_65():
    truncated = MESSAGE[:-12]
    result = run_cli("show", "-", input=truncated)
    assert result.returncode == 0
    assert b"mimekit show: defect: missing-final-boundary" in result.stderr
    strict = run_cli("show", "-", "--strict", input=truncated)
    assert strict.returncode == 65 and strict.stdout == result.stdout


def test_missing_input_is_66(tmp_path):
    result = run_cli("show", str(tmp_path / "missing.eml"))
    assert result.returncode == 66
    assert result.stderr.decode().startswith("mimekit show: ") and b"Traceback" not in result.stderr


def test_show_and_decode_take_parser_limits(tmp_path):
    nested = (b"From: a@example.test\r\nContent-Type: multipart/mixed; boundary=out\r\n\r\n"
              b"--out\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
              b"--in\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nhello\r\n--in--\r\n--out--\r\n")
    import subprocess
    import sys
    run = lambda *args: subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=nested,
                                       capture_output=True)
    assert b"limit-depth" not in run("show", "-").stderr
    limited = run("show", "--parser-limit", "depth=1", "-")
    assert limited.returncode == 0 and b"limit-depth" in limited.stderr
    assert run("decode", "--parser-limit", "depth=1", "--strict", "--text", "-").returncode == 65
    assert run("decode", "--parser-limit", "bogus=1", "--text", "-").returncode == 64
