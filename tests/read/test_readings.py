"""The alternative-readings engine (mimekit.read.readings): ids, labels, dedup, bounds, and
that a well-formed message gets nothing extra. Per-trick recovery is in test_readings_recovery."""

import base64
import hashlib
import io
import json
import subprocess
import struct
import sys
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimekit.limits import Limits
from mimekit.read.extract import extract_all
from mimekit.read.readings import MAX_READINGS_PER_PART, alternative_readings
from mimekit.read.summary import summarise
from mimekit.read.tree import parse_message
from mimekit.write.composer import CRLF, LF, MessageBuilder
from mimekit.write.writer import message_bytes

from strategies import file_names, header_text, payloads

ZIP = b"PK\x03\x04" + bytes(range(200))


def readings(raw: bytes, limits: Limits = Limits.DEFAULT) -> list[tuple[str, str, bytes]]:
    with parse_message(io.BytesIO(raw), limits) as message:
        return [(alternative.id, alternative.reading, b"".join(alternative.iter_decoded()))
                for alternative in alternative_readings(message, limits)]


def manifest(raw: bytes, directory, all_readings: bool) -> list[dict]:
    with parse_message(io.BytesIO(raw)) as message:
        return [entry.as_dict() for entry in extract_all(message, str(directory), all_readings=all_readings).entries]


def lost_boundary_message(eol: bytes = b"\r\n") -> bytes:
    """The declared boundary never occurs: the body's own delimiter lines are another one."""
    lines = [b"Content-Type: multipart/mixed; boundary=\"declared\"", b"", b"--real", b"Content-Type: text/plain",
             b"", b"hello", b"--real", b"Content-Type: application/zip; name=\"a.zip\"",
             b"Content-Transfer-Encoding: base64", b"", base64.b64encode(ZIP), b"--real--", b""]
    return eol.join(lines)


def test_a_boundary_inferred_from_the_body_finds_the_hidden_parts_with_ids_under_the_message():
    found = readings(lost_boundary_message())
    assert ("~1.2", "boundary-inferred", ZIP) in found
    assert ("~1.1", "boundary-inferred", b"hello") in found


def test_the_parts_a_reading_finds_are_read_again_themselves():
    """Inside the multipart an inferred boundary finds, a part with two transfer encodings
    gets its own reading: ids nest (~1.2~1)."""
    raw = (b"Content-Type: multipart/mixed; boundary=declared\r\n\r\n--real\r\nContent-Type: application/zip\r\n"
           b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.b64encode(ZIP) + b"\r\n--real--\r\n")
    found = readings(raw)
    assert ("~1.1~1", "cte-last-header", ZIP) in found


def test_extraction_writes_what_other_readings_find_once_and_labelled(tmp_path):
    entries = manifest(lost_boundary_message(), tmp_path / "out", all_readings=True)
    hidden = [entry for entry in entries if entry["sha256"] == hashlib.sha256(ZIP).hexdigest()]
    assert len(hidden) == 1
    assert hidden[0]["reading"] == "boundary-inferred" and hidden[0]["original_name"] == "a.zip"
    assert (tmp_path / "out" / hidden[0]["written_name"]).read_bytes() == ZIP
    assert len({entry["sha256"] for entry in entries}) == len(entries)   # nothing written twice
    assert all("reading" not in entry for entry in manifest(lost_boundary_message(), tmp_path / "plain", False))


def test_content_after_the_close_delimiter_is_read_when_the_boundary_goes_on():
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b--\r\n"
           b"--b\r\nContent-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.b64encode(ZIP) + b"\r\n--b--\r\n")
    assert ("1~1.1", "after-close-delimiter", ZIP) not in readings(raw)   # the epilogue is the multipart's, not part 1's
    assert ("~1.1", "after-close-delimiter", ZIP) in readings(raw)


def test_readings_per_part_and_per_message_are_bounded():
    """A part offering every trick at once gets at most MAX_READINGS_PER_PART readings, and a
    message at most Limits.max_parts alternatives in all."""
    encodings = b"".join(b"Content-Transfer-Encoding: %s\r\n" % name for name in
                         (b"7bit", b"base64", b"quoted-printable", b"x-uuencode", b"x-gzip64", b"yenc",
                          b"binhex", b"base64 qp", b"quoted-printabl", b"x-base64"))
    leaf = b"Content-Type: application/octet-stream\r\n" + encodings + b"\r\nQUJD=41\r\n"
    found = readings(leaf)
    assert 0 < len(found) <= MAX_READINGS_PER_PART
    many = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" + (b"--b\r\n" + leaf) * 30 + b"--b--\r\n"
    limits = replace(Limits.DEFAULT, max_parts=40)
    assert len(readings(many, limits)) <= 40


def _composed(text: str, attachments: list[tuple[bytes, str]], eol: bytes, subject: str) -> bytes:
    builder = MessageBuilder()
    builder.add_header("From", "someone@example.org")
    builder.add_header("Subject", subject)
    builder.set_body(text.encode("utf-8"))
    for payload, filename in attachments:
        builder.attach(payload, filename=filename)
    return message_bytes(builder.build(), eol)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=300), attachments=st.lists(st.tuples(payloads, file_names), max_size=3),
       eol=st.sampled_from([CRLF, LF]), subject=header_text)
def test_a_well_formed_message_gets_no_alternative(tmp_path_factory, text, attachments, eol, subject):
    """Property: for any message mimekit composes, other readings add no part, in decode
    (same manifest, same files) and in show (same rows)."""
    raw = _composed(text, attachments, eol, subject)
    directory = tmp_path_factory.mktemp("readings")
    assert manifest(raw, directory / "all", True) == manifest(raw, directory / "best", False)
    assert sorted(p.name for p in (directory / "all").iterdir()) == sorted(p.name for p in (directory / "best").iterdir())
    assert summarise(io.BytesIO(raw), all_readings=True) == summarise(io.BytesIO(raw))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True)


def test_show_lists_alternatives_with_their_reading_and_digest(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(lost_boundary_message())
    result = run_cli("show", "--all-readings", "--json", str(path))
    parts = json.loads(result.stdout)["parts"]
    hidden = [part for part in parts if part.get("sha256") == hashlib.sha256(ZIP).hexdigest()]
    assert hidden and hidden[0]["reading"] == "boundary-inferred" and hidden[0]["id"] == "~1.2"
    text = run_cli("show", "--all-readings", str(path)).stdout.decode()
    assert "READING" in text and "boundary-inferred" in text
    assert run_cli("decode", "--part", "~1.2", str(path)).stdout == ZIP   # the ids show lists
    missing = run_cli("decode", "--part", "~9", str(path))
    assert missing.returncode == 65 and b"no part '~9' in any reading" in missing.stderr


@pytest.mark.parametrize("args", [["decode", "--all-readings", "--text"], ["decode", "--all-readings", "--part", "1"]])
def test_all_readings_without_an_output_directory_is_a_usage_error(tmp_path, args):
    path = tmp_path / "m.eml"
    path.write_bytes(lost_boundary_message())
    result = run_cli(*args, str(path))
    assert result.returncode == 64 and b"--all-readings goes with -o DIR" in result.stderr


def test_a_gzip_bomb_is_inflated_a_few_megabytes_at_a_time():
    """x-gzip64 inflates up to 1032:1: the body is fed to it in small pieces, so no chunk of
    the alternative (64 MiB of zeros from 64 KiB) holds more than a few megabytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(compressor.compress(bytes(1 << 20)) for _ in range(64)) + compressor.flush()
    raw = (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: x-gzip64\r\n\r\n"
           + base64.encodebytes(bomb).replace(b"\n", b"\r\n"))
    with parse_message(io.BytesIO(raw)) as message:
        [alternative] = alternative_readings(message)
        sizes = [len(chunk) for chunk in alternative.iter_decoded()]
    assert alternative.reading == "cte-gzip64" and sum(sizes) == 64 << 20
    assert max(sizes) <= 4 << 20


def test_alternatives_in_an_encoded_attached_message_have_ids_under_its_root(tmp_path):
    """The readings of a base64 message/rfc822 part's message are numbered as its parts are
    (2.1 is its root): its own readings are 2.1~1, not 2.1.~1."""
    inner = (b"Content-Type: application/zip; name=b.zip\r\nContent-Transfer-Encoding: 7bit\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(ZIP) + b"\r\n")
    raw = (b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\r\ntext\r\n--o\r\n"
           b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.encodebytes(inner).replace(b"\n", b"\r\n") + b"--o--\r\n")
    entries = manifest(raw, tmp_path / "out", all_readings=True)
    assert [(entry["id"], entry.get("reading")) for entry in entries if entry["sha256"] == hashlib.sha256(ZIP).hexdigest()] \
        == [("2.1~1", "cte-last-header")]


def _tnef_of(count: int) -> bytes:
    """A winmail.dat of `count` attachments: fixtures/evasion.py's one-attachment object,
    the attachment attributes of the others appended after its three message attributes."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures"))
    from evasion import tnef_file
    objects = [tnef_file(b"data%d" % number, f"f{number}.bin") for number in range(count)]
    head = 6   # signature and key
    for _ in range(3):
        head += 9 + struct.unpack_from("<I", objects[0], head + 5)[0] + 2
    return objects[0][:head] + b"".join(one[head:] for one in objects)


def test_tnef_attachments_count_against_the_message_budget():
    """Limits.max_parts bounds the alternatives of a message, however many each TNEF object holds."""
    tnef = base64.encodebytes(_tnef_of(50)).replace(b"\n", b"\r\n")
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"".join(
        b"--b\r\nContent-Type: application/ms-tnef\r\nContent-Transfer-Encoding: base64\r\n\r\n" + tnef
        for _ in range(3)) + b"--b--\r\n"
    assert len(readings(raw)) == 150
    assert len(readings(raw, replace(Limits.DEFAULT, max_parts=70))) == 70


def test_show_rows_of_alternatives_sit_one_level_under_what_they_read_again():
    """2~1 is part 2 (depth 1) read again: depth 2. ~1 is the message (depth 0) read again, at
    depth 1 (it has no row of its own here), and ~1.2 a part of it: depth 2."""
    rows = summarise(io.BytesIO(lost_boundary_message()), all_readings=True)["parts"]
    assert {row["id"]: row["depth"] for row in rows if "reading" in row} == {"~1.1": 2, "~1.2": 2}
    raw = (b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\r\ntext\r\n--o\r\n"
           b"Content-Type: application/zip\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.b64encode(ZIP) + b"\r\n--o--\r\n")
    rows = summarise(io.BytesIO(raw), all_readings=True)["parts"]
    assert {row["id"]: row["depth"] for row in rows if "reading" in row} == {"2~1": 2}


def test_an_alternative_decodes_the_same_every_time_it_is_read():
    raw = (b"Content-Type: application/zip\r\nContent-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\n"
           + base64.b64encode(ZIP) + b"\r\n")
    with parse_message(io.BytesIO(raw)) as message:
        alternative, = alternative_readings(message)
        assert b"".join(alternative.iter_decoded()) == b"".join(alternative.iter_decoded()) == ZIP


def test_a_file_uuencoded_in_a_text_body_is_no_other_reading_in_show_as_decode_already_writes_it():
    import binascii
    encoded = b"".join(binascii.b2a_uu(ZIP[i:i + 45]) for i in range(0, len(ZIP), 45))
    raw = b"Content-Type: text/plain\r\n\r\nsee attached\r\nbegin 644 a.zip\r\n" + encoded + b"`\r\nend\r\n"
    assert readings(raw) == []
    assert not any("reading" in part for part in summarise(io.BytesIO(raw), all_readings=True)["parts"])
