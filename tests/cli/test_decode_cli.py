"""`mimekit decode` through the real CLI: hostile names, modes, exit codes, defects."""

import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest

LONG_NAME = "L" * 296 + ".pdf"   # 300 bytes


def run_cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], input=input, capture_output=True)


def attachment(disposition_params: str, data: bytes) -> bytes:
    return (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; " + disposition_params.encode("utf-8", "surrogateescape")
            + b"\r\n\r\n" + base64.encodebytes(data).replace(b"\n", b"\r\n"))


def message(*parts: bytes, text: bytes = b"Hello.\r\n") -> bytes:
    body = b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"\r\n"
    body += b"".join(b"--B\r\n" + p + b"\r\n" for p in parts) + b"--B--\r\n"
    return b"Subject: hostile\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" + body


# (Content-Disposition parameters, expected written name, expected reasons)
HOSTILE = [
    ('filename="../../x"', "x", ["path-separator", "parent-directory"]),
    ('filename="/etc/passwd"', "etc_passwd", ["path-separator"]),
    ('filename=".bashrc"', "bashrc", ["leading-dot"]),
    ('filename="\x1b[2J\x1b]0;owned\x07evil.txt"', "evil.txt", ["control-character"]),
    ('filename="CON"', "_CON", ["reserved-name"]),
    ('filename="same.txt"', "same.txt", []),
    ('filename="same.txt"', "same-1.txt", ["clash"]),
    (f'filename="{LONG_NAME}"', "L" * 196 + ".pdf", ["too-long"]),
    ("filename*=utf-8''..%2F..%2Fevil.sh", "evil.sh", ["path-separator", "parent-directory"]),
    ('filename="=?utf-8?b?Li4vLi4vZXZpbDIuc2g=?="', "evil2.sh", ["path-separator", "parent-directory"]),
    ("filename*0*=utf-8''%2E%2E%5C; filename*1=\"win.ini\"", "win.ini", ["path-separator", "parent-directory"]),
    ('filename="planted"', "planted-1", ["clash"]),
]


def test_hostile_names_all_land_inside_dir_with_their_reasons(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "planted")        # a symlink waiting under an attachment's name
    payloads = [f"payload {i}".encode() for i in range(len(HOSTILE))]
    source = tmp_path / "hostile.eml"
    source.write_bytes(message(*(attachment(params, data) for (params, _, _), data in zip(HOSTILE, payloads))))

    result = run_cli("decode", str(source), "-o", str(out), "--json")

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["schema"] == "mimekit.decode/1"
    entries = document["parts"][1:]            # the first is the text body
    assert [(e["written_name"], e["reasons"]) for e in entries] == [(n, r) for _, n, r in HOSTILE]
    for entry, data in zip(entries, payloads):
        assert (out / entry["written_name"]).read_bytes() == data
        assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["size"] == len(data)
    assert entries[0]["original_name"] == "../../x"
    assert entries[8]["original_name"] == "../../evil.sh"
    assert entries[6]["original_name"] == "same.txt"        # the manifest maps a suffixed name back
    assert outside.read_bytes() == b"precious" and os.path.islink(out / "planted")
    assert sorted(os.listdir(tmp_path)) == ["hostile.eml", "out", "outside"]
    for path in out.iterdir():
        assert path.parent == out and (path.is_file() or path.name == "planted")
    assert len(list(out.iterdir())) == len(HOSTILE) + 2   # every part, the text, the symlink


def test_human_manifest_shows_where_names_came_from_without_raw_escapes(tmp_path):
    source = tmp_path / "m.eml"
    source.write_bytes(message(attachment(HOSTILE[3][0], b"x"), attachment(HOSTILE[0][0], b"y")))
    result = run_cli("decode", str(source), "-o", str(tmp_path / "out"))
    assert result.returncode == 0
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["PART", "SIZE", "TYPE", "FILE", "NOTE"]
    assert lines[1].split()[:4] == ["1", "8", "text/plain", "part-1.txt"]
    assert 'sent as "\\x1b[2J\\x1b]0;owned\\x07evil.txt": control-character' in lines[2]
    assert 'sent as "../../x": path-separator, parent-directory' in lines[3]
    assert b"\x1b" not in result.stdout and result.stderr == b""


def test_json_manifest_is_valid_utf8_for_undecodable_names(tmp_path):
    raw = b"Subject: uu\r\n\r\nhi\r\nbegin 644 caf\xe9.txt\r\n#86)C\r\n`\r\nend\r\n"
    result = run_cli("decode", "-", "-o", str(tmp_path), "--json", input=raw)
    assert result.returncode == 0
    uu_entry = json.loads(result.stdout.decode("utf-8"))["parts"][1]
    assert (uu_entry["id"], uu_entry["original_name"], uu_entry["written_name"], uu_entry["reasons"]) == (
        "uu1", "caf\ufffd.txt", "caf\ufffd.txt", ["invalid-utf8"])
    assert (tmp_path / "caf\ufffd.txt").read_bytes() == b"abc"


def test_text_prints_the_text_body_as_utf8():
    raw = message(text="Grüße\r\nzweite Zeile".encode("utf-8"))
    result = run_cli("decode", "-", "--text", input=raw)
    assert (result.returncode, result.stdout, result.stderr) == (0, "Grüße\nzweite Zeile".encode(), b"")


def test_part_prints_decoded_bytes(tmp_path):
    data = bytes(range(256))
    result = run_cli("decode", "-", "--part", "2", input=message(attachment('filename="b.bin"', data)))
    assert (result.returncode, result.stdout) == (0, data)


def test_unknown_part_is_a_data_error_naming_the_parts():
    result = run_cli("decode", "-", "--part", "7", input=message())
    assert result.returncode == 65
    assert result.stderr == b"mimekit decode: no part '7' in the message (parts: 1)\n"


def test_truncated_message_yields_what_it_holds_with_defects(tmp_path):
    cut = message(attachment('filename="a.bin"', b"A" * 300))[:-60]   # inside the base64, no final boundary
    source = tmp_path / "cut.eml"
    source.write_bytes(cut)
    result = run_cli("decode", str(source), "-o", str(tmp_path / "out"))
    assert result.returncode == 0
    assert (tmp_path / "out" / "a.bin").read_bytes().startswith(b"A" * 200)
    defect_lines = result.stderr.decode().splitlines()
    assert defect_lines and all(line.startswith("mimekit decode: defect: ") for line in defect_lines)
    assert any("missing-final-boundary" in line for line in defect_lines)

    strict = run_cli("decode", str(source), "-o", str(tmp_path / "again"), "--strict")
    assert strict.returncode == 65
    assert (tmp_path / "again" / "a.bin").exists()         # the work is done first
    assert strict.stderr.decode().splitlines()[-1].endswith("defect(s) found (--strict)")

    as_json = run_cli("decode", str(source), "-o", str(tmp_path / "third"), "--strict", "--json")
    assert as_json.returncode == 65 and as_json.stderr == b""
    kinds = [d["kind"] for d in json.loads(as_json.stdout)["defects"]]
    assert "missing-final-boundary" in kinds


def test_missing_input_is_66_in_one_line(tmp_path):
    result = run_cli("decode", str(tmp_path / "nope.eml"), "-o", str(tmp_path / "out"))
    assert result.returncode == 66
    assert result.stderr.decode().count("\n") == 1 and b"Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_missing_input_under_json_is_a_json_error(tmp_path):
    result = run_cli("decode", str(tmp_path / "nope.eml"), "-o", str(tmp_path / "out"), "--json")
    assert result.returncode == 66
    document = json.loads(result.stdout)
    assert document["schema"] == "mimekit.decode/1"
    assert (document["error"]["code"], document["error"]["kind"]) == (66, "no-input")


def test_directory_that_cannot_be_created_is_73(tmp_path):
    (tmp_path / "file").write_bytes(b"")
    result = run_cli("decode", "-", "-o", str(tmp_path / "file" / "dir"), input=message())
    assert result.returncode == 73
    assert result.stderr.decode().count("\n") == 1 and b"Traceback" not in result.stderr


@pytest.mark.parametrize("args", [[], ["--text", "--part", "1"], ["-o", "d", "--text"]])
def test_modes_are_exclusive_usage_errors(args):
    result = run_cli("decode", "-", *args, input=message())
    assert result.returncode == 64
    assert result.stdout == b"" and result.stderr.startswith(b"mimekit decode: ")


def test_json_without_a_manifest_to_print_is_a_json_usage_error():
    result = run_cli("decode", "-", "--text", "--json", input=message())
    assert result.returncode == 64
    assert json.loads(result.stdout)["error"]["kind"] == "usage"


def test_message_without_text_makes_text_a_data_error():
    raw = (b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(b"\x89PNG"))
    result = run_cli("decode", "-", "--text", input=raw)
    assert (result.returncode, result.stdout) == (65, b"")
