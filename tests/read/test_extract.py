"""Extraction into a flat directory, the best text, and single parts, on the real tree."""

import base64
import binascii
import errno
import hashlib
import io
import json
import os
import tracemalloc
from contextlib import ExitStack

import pytest

from mimekit.defects import DefectKind
from mimekit.errors import CantCreateError, DataError
from mimekit.read.extract import best_text, best_text_part, extract_all, iter_part_bytes, part_bytes
from mimekit.limits import Limits
from mimekit.read.safe_names import RenameReason
from mimekit.read.tree import Part, parse_message
from helpers import run_bounded

PDF = b"%PDF-1.4 fake\x00\xff" * 50


def part(headers: str, body: bytes) -> bytes:
    return headers.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body


def multipart(*parts: bytes, subtype: str = "mixed", headers: str = "Subject: test") -> bytes:
    head = f"{headers}\nMIME-Version: 1.0\nContent-Type: multipart/{subtype}; boundary=\"XX\""
    body = b"".join(b"--XX\r\n" + p + b"\r\n" for p in parts) + b"--XX--\r\n"
    return part(head, body)


def base64_part(content_type: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f"\nContent-Disposition: attachment; filename=\"{filename}\"" if filename else ""
    return part(f"Content-Type: {content_type}\nContent-Transfer-Encoding: base64{disposition}",
                base64.encodebytes(data).replace(b"\n", b"\r\n"))


def parse(raw: bytes):
    return parse_message(io.BytesIO(raw))


def uuencoded(data: bytes, name: str) -> bytes:
    lines = [binascii.b2a_uu(data[i:i + 45], backtick=True).rstrip(b"\n") for i in range(0, len(data), 45)]
    return b"\r\n".join([f"begin 644 {name}".encode(), *lines, b"`", b"end"]) + b"\r\n"


MESSAGE = multipart(
    part("Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable",
         b"Gr=FC=DFe aus K=F6ln"),
    base64_part("application/pdf", PDF, "report.pdf"),
    part("Content-Type: message/rfc822", multipart(
        part("Content-Type: text/html; charset=utf-8", "<p>Inner <b>héllo</b></p>".encode()),
        base64_part("image/png", b"\x89PNG inner", "../../inner.png"),
        headers="Subject: inner")),
)


def test_every_leaf_is_written_with_its_manifest_entry(tmp_path):
    with parse(MESSAGE) as message:
        extraction = extract_all(message, str(tmp_path / "out"))
    entries = {entry.id: entry for entry in extraction.entries}
    assert list(entries) == ["1", "2", "3.1.1", "3.1.2"]
    pdf = entries["2"]
    assert (pdf.original_name, pdf.written_name, pdf.content_type, pdf.reasons) == (
        "report.pdf", "report.pdf", "application/pdf", ())
    assert (pdf.size, pdf.sha256) == (len(PDF), hashlib.sha256(PDF).hexdigest())
    assert (tmp_path / "out" / "report.pdf").read_bytes() == PDF
    assert (tmp_path / "out" / "part-1.txt").read_bytes() == "Grüße aus Köln".encode("latin-1")
    assert entries["1"].reasons == (RenameReason.NO_NAME,)
    inner = entries["3.1.2"]
    assert (inner.written_name, inner.reasons) == (
        "inner.png", (RenameReason.PATH_SEPARATOR, RenameReason.PARENT_DIRECTORY))
    assert sorted(os.listdir(tmp_path / "out")) == ["inner.png", "part-1.txt", "part-3.1.1.html", "report.pdf"]
    assert entries["2"].as_dict() == {
        "id": "2", "original_name": "report.pdf", "written_name": "report.pdf",
        "content_type": "application/pdf", "size": len(PDF), "sha256": hashlib.sha256(PDF).hexdigest(),
        "reasons": []}


def test_same_name_twice_and_existing_files_are_never_overwritten(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"mine")
    raw = multipart(base64_part("application/octet-stream", b"first", "a.bin"),
                    base64_part("application/octet-stream", b"second", "a.bin"))
    with parse(raw) as message:
        entries = extract_all(message, str(tmp_path)).entries
    assert [(e.written_name, e.reasons) for e in entries] == [
        ("a-1.bin", (RenameReason.CLASH,)), ("a-2.bin", (RenameReason.CLASH,))]
    assert (tmp_path / "a.bin").read_bytes() == b"mine"
    assert (tmp_path / "a-1.bin").read_bytes() == b"first"
    assert (tmp_path / "a-2.bin").read_bytes() == b"second"


def test_uuencoded_files_in_text_bodies_become_extra_entries(tmp_path):
    text = b"See attached.\r\n" + uuencoded(PDF, "old.pdf") + b"Bye\r\n" + uuencoded(b"2nd", "two.txt")
    raw = multipart(part("Content-Type: text/plain", text))
    with parse(raw) as message:
        extraction = extract_all(message, str(tmp_path))
        assert part_bytes(message, "1.uu1") == PDF
        assert part_bytes(message, "1.uu2") == b"2nd"
        with pytest.raises(DataError, match="holds 2 uuencoded"):
            part_bytes(message, "1.uu3")
    assert [(e.id, e.written_name, e.content_type) for e in extraction.entries] == [
        ("1", "part-1.txt", "text/plain"),
        ("1.uu1", "old.pdf", "application/octet-stream"),
        ("1.uu2", "two.txt", "application/octet-stream")]
    assert (tmp_path / "old.pdf").read_bytes() == PDF
    assert (tmp_path / "part-1.txt").read_bytes() == text   # the text body is kept whole


def test_uuencoded_block_without_end_is_kept_with_a_defect(tmp_path):
    cut = uuencoded(b"cut short", "cut.bin").replace(b"`\r\nend\r\n", b"")
    with parse(part("Subject: x", cut)) as message:
        extraction = extract_all(message, str(tmp_path))
    assert [(e.id, e.size) for e in extraction.entries] == [("", len(cut)), ("uu1", len(b"cut short"))]
    missing_end = [d for d in extraction.defects if d.kind is DefectKind.UUENCODE_MISSING_END]
    assert len(missing_end) == 1 and missing_end[0].part == ""


def test_uuencoded_files_count_against_the_parts_limit(tmp_path):
    """issue 8 item 10: uuencoded files share Limits.max_parts with the message's parts,
    across text parts; a begin line past it stays text, with a LIMIT_PARTS defect."""
    blocks = b"".join(uuencoded(f"file {n}".encode(), f"f{n}.bin") for n in range(3))
    raw = multipart(part("Content-Type: text/plain", blocks), part("Content-Type: text/plain", blocks))
    with parse(raw) as message:   # 3 parts (the multipart and two texts): room for 3 uuencoded files
        extraction = extract_all(message, str(tmp_path), limits=Limits(max_parts=6))
    assert [e.id for e in extraction.entries] == ["1", "1.uu1", "1.uu2", "1.uu3", "2"]
    assert len(os.listdir(tmp_path)) == 5
    (limit,) = [d for d in extraction.defects if d.kind is DefectKind.LIMIT_PARTS]
    assert limit.part == "2" and "parts limit" in limit.detail
    with parse(raw) as message:
        extraction = extract_all(message, str(tmp_path / "tighter"), limits=Limits(max_parts=5))
    assert [e.id for e in extraction.entries] == ["1", "1.uu1", "1.uu2", "2"]
    assert [(d.kind, d.part) for d in extraction.defects] == [(DefectKind.LIMIT_PARTS, "1"),
                                                              (DefectKind.LIMIT_PARTS, "2")]


@pytest.mark.resources
def test_200000_begin_lines_make_at_most_max_parts_files_in_bounded_memory(tmp_path):
    """issue 8 item 10 under the resource tier: 200,000 uuencoded blocks in one body."""
    source = tmp_path / "begins.eml"
    source.write_bytes(b"Subject: begins\r\n\r\n" + b"begin 644 x\r\n`\r\nend\r\n" * 200_000)
    result = run_bounded(["decode", str(source), "-o", str(tmp_path / "out"), "--json",
                          "--parser-limit", "parts=1000"])
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert len(document["parts"]) == len(os.listdir(tmp_path / "out")) == 1000
    assert [d["kind"] for d in document["defects"]] == ["limit-parts"]


def test_an_extraction_that_fails_part_way_leaves_only_whole_files(tmp_path, monkeypatch):
    """A full disk (here: a fault injected into the second attachment's body) ends the
    extraction; what was complete stays, the rest leaves no file and no temporary file."""
    real_iter_decoded = Part.iter_decoded

    def failing(part, *args, **kwargs):
        for number, chunk in enumerate(real_iter_decoded(part, *args, **kwargs)):
            if part.filename == "big.bin" and number == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            yield chunk
    monkeypatch.setattr(Part, "iter_decoded", failing)
    raw = multipart(base64_part("application/pdf", PDF, "report.pdf"),
                    base64_part("application/octet-stream", os.urandom(1_000_000), "big.bin"))
    with parse(raw) as message, pytest.raises(OSError, match="No space"):
        extract_all(message, str(tmp_path))
    assert os.listdir(tmp_path) == ["report.pdf"] and (tmp_path / "report.pdf").read_bytes() == PDF


def test_multipart_whose_boundary_never_comes_keeps_its_text(tmp_path):
    raw = part("Content-Type: multipart/mixed; boundary=nowhere", b"the only text\r\n")
    with parse(raw) as message:
        entries = extract_all(message, str(tmp_path)).entries
    assert [(e.id, e.written_name) for e in entries] == [("", "part-message.bin")]
    assert (tmp_path / "part-message.bin").read_bytes() == b"the only text\r\n"


def test_directory_is_created_or_refused(tmp_path):
    with parse(MESSAGE) as message:
        extract_all(message, str(tmp_path / "new" / "deeper"))
        (tmp_path / "file").write_bytes(b"")
        with pytest.raises(CantCreateError, match="file"):
            extract_all(message, str(tmp_path / "file" / "sub"))
    assert len(os.listdir(tmp_path / "new" / "deeper")) == 4


def test_a_large_body_streams_to_disk(tmp_path):
    payload = os.urandom(8 * 1024 * 1024)
    raw = multipart(base64_part("application/octet-stream", payload, "big.bin"))
    source = tmp_path / "big.eml"
    source.write_bytes(raw)
    del raw
    tracemalloc.start()
    with open(source, "rb") as stream, parse_message(stream) as message:
        entry = extract_all(message, str(tmp_path / "out")).entries[0]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert entry.sha256 == hashlib.sha256(payload).hexdigest()
    assert peak < 2 * 1024 * 1024


def test_best_text_prefers_plain_then_html_and_decodes_the_charset():
    with parse(MESSAGE) as message:
        assert best_text_part(message).id == "1"
        assert best_text(message) == "Grüße aus Köln"
    html_only = multipart(part("Content-Type: text/html; charset=utf-8",
                               "<p>Hi&nbsp;<a href='https://x.org/'>there</a></p>\r\n<p>é</p>".encode()),
                          base64_part("text/plain", b"an attached text file", "notes.txt"))
    with parse(html_only) as message:
        assert best_text(message) == "Hi there <https://x.org/>\n\né\n"


def test_best_text_looks_into_attached_messages_only_when_the_message_has_no_text():
    forwarded = multipart(part("Content-Type: message/rfc822",
                               part("Content-Type: text/plain", b"inner text")))
    with parse(forwarded) as message:
        assert best_text_part(message).id == "1.1"
        assert best_text(message) == "inner text"


def test_best_text_normalises_line_ends_and_detects_undeclared_charsets():
    raw = part("Content-Type: text/plain", "línea uno\r\nlínea dos\r\n".encode("utf-8"))
    with parse(raw) as message:
        assert best_text(message) == "línea uno\nlínea dos\n"


def test_no_text_at_all_is_a_data_error():
    with parse(multipart(base64_part("image/png", b"png", "a.png"))) as message:
        with pytest.raises(DataError, match="no text"):
            best_text_part(message)


def test_part_bytes_gives_decoded_bytes_or_names_the_parts_there_are():
    with parse(MESSAGE) as message:
        assert part_bytes(message, "2") == PDF
        assert b"".join(iter_part_bytes(message, "3.1.2")) == b"\x89PNG inner"
        with pytest.raises(DataError, match=r"no part '9' in the message \(parts: 1, 2, 3, 3.1, 3.1.1, 3.1.2\)"):
            part_bytes(message, "9")


# -- attached messages sent in base64 or quoted-printable: decoded, parsed, extracted -----

def encoded_message(inner: bytes, encoding: str = "base64", filename: str | None = None) -> bytes:
    """A message/rfc822 part sent in `encoding`. Quoted-printable here is the message as it
    is: valid as long as it holds no '=' and no line over 76 characters."""
    disposition = f"\nContent-Disposition: attachment; filename=\"{filename}\"" if filename else ""
    body = base64.encodebytes(inner).replace(b"\n", b"\r\n") if encoding == "base64" else inner
    assert encoding == "base64" or b"=" not in inner
    return part(f"Content-Type: message/rfc822\nContent-Transfer-Encoding: {encoding}{disposition}", body)


FORWARDED = multipart(
    part("Content-Type: text/plain", b"inner text\r\n" + uuencoded(b"old file", "old.bin")),
    base64_part("application/pdf", PDF, "report.pdf"),
    headers="Subject: forwarded")
WITH_ENCODED = multipart(part("Content-Type: text/plain", b"see the attached message"),
                         encoded_message(FORWARDED, filename="fwd.eml"))


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_encoded_message_is_written_whole_and_then_part_by_part(tmp_path):
    descriptors = open_descriptors()
    with parse(WITH_ENCODED) as message:
        assert message.part("2").is_message is False   # the tree keeps it as one leaf
        extraction = extract_all(message, str(tmp_path))
    assert open_descriptors() == descriptors           # the decoded message's file is released
    entries = {entry.id: entry for entry in extraction.entries}
    assert [(e.id, e.written_name, e.content_type) for e in extraction.entries] == [
        ("1", "part-1.txt", "text/plain"),
        ("2", "fwd.eml", "message/rfc822"),
        ("2.1.1", "part-2.1.1.txt", "text/plain"),
        ("2.1.1.uu1", "old.bin", "application/octet-stream"),
        ("2.1.2", "report.pdf", "application/pdf")]
    assert (tmp_path / "fwd.eml").read_bytes() == FORWARDED
    assert (tmp_path / "report.pdf").read_bytes() == PDF
    assert (entries["2.1.2"].size, entries["2.1.2"].sha256) == (len(PDF), hashlib.sha256(PDF).hexdigest())
    assert (tmp_path / "old.bin").read_bytes() == b"old file"
    assert extraction.defects == []


def test_part_bytes_finds_parts_of_encoded_messages_by_the_same_ids():
    descriptors = open_descriptors()
    with parse(WITH_ENCODED) as message:
        assert part_bytes(message, "2") == FORWARDED
        assert part_bytes(message, "2.1") == FORWARDED.split(b"\r\n\r\n", 1)[1]
        assert part_bytes(message, "2.1.2") == PDF
        assert part_bytes(message, "2.1.1.uu1") == b"old file"
        for missing in ("2.2", "2.1.3", "2.1.2.1", "1.1"):
            with pytest.raises(DataError, match=rf"no part '{missing}' in the message \(parts: 1, 2\)"):
                part_bytes(message, missing)
        assert open_descriptors() == descriptors   # each decoded message released once read


def test_encoded_messages_nested_in_encoded_messages_are_all_extracted(tmp_path):
    innermost = multipart(base64_part("image/png", b"\x89PNG deep", "deep.png"))
    middle = b"Subject: middle\r\n" + encoded_message(innermost, "base64")
    outer = encoded_message(middle, "quoted-printable")   # the whole message is the encoded one
    with parse(outer) as message:
        extraction = extract_all(message, str(tmp_path))
        assert part_bytes(message, "1.1.1") == b"\x89PNG deep"
    assert [(e.id, e.content_type) for e in extraction.entries] == [
        ("", "message/rfc822"), ("1", "message/rfc822"), ("1.1.1", "image/png")]
    assert (tmp_path / "deep.png").read_bytes() == b"\x89PNG deep"


def test_defects_of_a_decoded_message_name_its_parts_and_say_where_they_are(tmp_path):
    truncated = part("Content-Type: multipart/mixed; boundary=in", b"--in\r\nContent-Type: text/plain\r\n\r\ncut")
    raw = multipart(part("Content-Type: text/plain", b"hi"), encoded_message(truncated))
    with parse(raw) as message:
        encoded_body = message.part("2").body_offset
        extraction = extract_all(message, str(tmp_path))
    assert [e.id for e in extraction.entries] == ["1", "2", "2.1.1"]
    assert (tmp_path / "part-2.1.1.txt").read_bytes() == b"cut"
    missing = [d for d in extraction.defects if d.kind is DefectKind.MISSING_FINAL_BOUNDARY]
    assert len(missing) == 1
    assert (missing[0].part, missing[0].offset) == ("2.1", encoded_body)
    assert missing[0].detail.endswith(f"(byte {len(truncated)} in the decoded content of part 2)")


def test_a_chain_of_encoded_messages_stops_at_the_depth_limit(tmp_path):
    chain = part("Content-Type: text/plain", b"the end of the chain")
    for _ in range(200):
        chain = encoded_message(chain, "quoted-printable")
    with parse_message(io.BytesIO(chain), Limits(max_depth=5)) as message:
        extraction = extract_all(message, str(tmp_path), limits=Limits(max_depth=5))
        with pytest.raises(DataError, match="no part '1.1.1.1.1'"):
            part_bytes(message, "1.1.1.1.1", Limits(max_depth=5))
    assert [e.id for e in extraction.entries] == ["", "1", "1.1", "1.1.1", "1.1.1.1"]
    assert [(d.kind, d.part) for d in extraction.defects] == [(DefectKind.LIMIT_DEPTH, "1.1.1.1")]
    assert "nested deeper than 5" in extraction.defects[0].detail
    with parse(chain) as message:   # the default limit bounds it too, long before any recursion limit
        entries = extract_all(message, str(tmp_path / "default")).entries
    assert len(entries) == Limits().max_depth


def test_a_large_body_inside_an_encoded_message_streams_too(tmp_path):
    payload = os.urandom(4 * 1024 * 1024)
    source = tmp_path / "big.eml"
    attached = multipart(base64_part("application/octet-stream", payload, "big.bin"))
    source.write_bytes(multipart(encoded_message(attached)))
    tracemalloc.start()
    with open(source, "rb") as stream, parse_message(stream) as message:
        entries = extract_all(message, str(tmp_path / "out")).entries
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(e.id, e.written_name) for e in entries] == [("1", "part-1.eml"), ("1.1.1", "big.bin")]
    assert entries[1].sha256 == hashlib.sha256(payload).hexdigest()
    assert peak < 2 * 1024 * 1024


def test_best_text_decodes_encoded_attached_messages_last_and_level_by_level():
    only_encoded = multipart(base64_part("image/png", b"png", "a.png"),
                             encoded_message(multipart(part("Content-Type: text/plain", b"forwarded text"))))
    with parse(only_encoded) as message:
        with pytest.raises(DataError, match="no text"):
            best_text_part(message)                      # without `opened` nothing is decoded
        assert best_text(message) == "forwarded text"
        with ExitStack() as opened:
            found = best_text_part(message, opened)
            assert (found.content_type, found.read_decoded()) == ("text/plain", b"forwarded text")
    nested = encoded_message(b"Subject: middle\r\n" + encoded_message(part("Content-Type: text/plain", b"deep")))
    with parse(nested) as message:
        assert best_text(message) == "deep"
    with parse(WITH_ENCODED) as message:                  # the message's own text still wins
        assert best_text(message) == "see the attached message"


def test_decode_text_reads_the_text_of_an_encoded_attached_message():
    import subprocess
    import sys
    only_encoded = multipart(encoded_message(part("Content-Type: text/plain; charset=utf-8", "Grüße".encode())))
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "decode", "--text", "-"], input=only_encoded,
                            capture_output=True)
    assert result.returncode == 0 and result.stdout == "Grüße".encode()
