"""TNEF objects (winmail.dat) are expanded into their attachments, with names, in bounded memory,
and broken ones give the attachments found before the break and a defect, never an exception.

The objects are built here from MS-OXTNEF; where the `tnef` tool is installed it must extract
the same names and bytes from them."""

import hashlib
import io
import shutil
import struct
import subprocess
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corpus import CORPUS
from mimekit.codecs.tnef import (ATT_ATTACH_DATA, ATT_ATTACH_REND_DATA, ATT_ATTACH_TITLE, ATT_ATTACHMENT,
                                 ATT_OEM_CODEPAGE, PR_ATTACH_DATA_OBJ, PR_ATTACH_LONG_FILENAME, PT_BINARY, PT_OBJECT,
                                 PT_STRING8, PT_UNICODE, TNEF_SIGNATURE, TnefAttachment, iter_attachment_data,
                                 tnef_attachments)
from mimekit.defects import DefectKind
from mimekit.limits import Limits

ATT_TNEF_VERSION = 0x00089006
ATT_MESSAGE_CLASS = 0x00078008
PR_ATTACH_METHOD, PT_LONG = 0x3705, 0x0003
IID_IMESSAGE = bytes.fromhex("0703020000000000c000000000000046")


# -- a small TNEF writer (MS-OXTNEF 2.1.3) ---------------------------------------------------------

def attribute(level: int, attribute_id: int, data: bytes, checksum: int | None = None) -> bytes:
    checksum = sum(data) & 0xFFFF if checksum is None else checksum
    return struct.pack("<BII", level, attribute_id, len(data)) + data + struct.pack("<H", checksum)


def padded(value: bytes) -> bytes:
    return value + b"\0" * (-len(value) % 4)


def variable_property(property_type: int, property_id: int, *values: bytes) -> bytes:
    return struct.pack("<HHI", property_type, property_id, len(values)) + b"".join(
        struct.pack("<I", len(value)) + padded(value) for value in values)


def long_name_property(name: str, unicode: bool = False) -> bytes:
    if unicode:
        return variable_property(PT_UNICODE, PR_ATTACH_LONG_FILENAME, (name + "\0").encode("utf-16-le"))
    return variable_property(PT_STRING8, PR_ATTACH_LONG_FILENAME, name.encode("cp1252") + b"\0")


KEYWORDS = "Keywords\0".encode("utf-16-le")
# Properties an Outlook attachment has besides its name: a fixed-size one, a named one, a multi-valued one.
OTHER_PROPERTIES = [
    struct.pack("<HHI", PT_LONG, PR_ATTACH_METHOD, 1),
    struct.pack("<HH", PT_LONG, 0x8005) + bytes(range(16)) + struct.pack("<III", 0, 0x8233, 7),
    struct.pack("<HH", PT_BINARY | 0x1000, 0x8006) + bytes(16) + struct.pack("<II", 1, len(KEYWORDS)) + padded(KEYWORDS)
    + struct.pack("<II", 2, 3) + padded(b"abc") + struct.pack("<I", 0),
]


def property_list(*properties: bytes) -> bytes:
    return struct.pack("<I", len(properties)) + b"".join(properties)


@dataclass
class Spec:
    data: bytes
    title: bytes | None = None          # attAttachTitle (8.3), as written
    properties: tuple[bytes, ...] = ()  # attAttachment's MAPI properties


def tnef(*attachments: Spec, codepage: int | None = 1252) -> bytes:
    message = attribute(1, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    if codepage is not None:
        message += attribute(1, ATT_OEM_CODEPAGE, struct.pack("<II", codepage, 0))
    message += attribute(1, ATT_MESSAGE_CLASS, b"IPM.Microsoft Mail.Note\0")
    for spec in attachments:
        message += attribute(2, ATT_ATTACH_REND_DATA, struct.pack("<HIHHI", 1, 0xFFFFFFFF, 0, 0, 0))
        if spec.title is not None:
            message += attribute(2, ATT_ATTACH_TITLE, spec.title + b"\0")
        message += attribute(2, ATT_ATTACH_DATA, spec.data)
        if spec.properties:
            message += attribute(2, ATT_ATTACHMENT, property_list(*spec.properties))
    return struct.pack("<IH", TNEF_SIGNATURE, 0x0101) + message


def named_file(name: str, data: bytes, unicode: bool = False) -> Spec:
    """An attachment as Outlook writes one: an 8.3 title, the long name among other properties."""
    return Spec(data, b"SHORT~1.DAT", (*OTHER_PROPERTIES, long_name_property(name, unicode)))


def expand(raw: bytes, limits: Limits = Limits()) -> tuple[list[tuple[str | None, bytes]], list]:
    """(name, data) of every attachment, and the defects as (kind, offset)."""
    stream = io.BytesIO(raw)
    attachments, defects = tnef_attachments(stream, limits)
    files = [(a.name, b"".join(iter_attachment_data(stream, a, chunk_size=7))) for a in attachments]
    return files, [(d.kind, d.offset) for d in defects]


def kinds(defects: list) -> list[DefectKind]:
    return [kind for kind, _ in defects]


# -- reading --------------------------------------------------------------------------------------

def test_long_names_and_data_of_three_attachments():
    files = [("Quarterly report 2024.xlsx", bytes(range(256)) * 40), ("notes.txt", b"hello\r\n"),
             ("a name longer than eight.three.pdf", b"%PDF-1.4 ...")]
    assert expand(tnef(*(named_file(name, data) for name, data in files))) == (files, [])


def test_only_an_8_3_title_names_the_attachment():
    assert expand(tnef(Spec(b"data", b"REPORT.DOC"))) == ([("REPORT.DOC", b"data")], [])


def test_unicode_long_name():
    name = "Übersicht 报告 – Ω.pdf"
    assert expand(tnef(named_file(name, b"x", unicode=True))) == ([(name, b"x")], [])


def test_8bit_names_are_read_in_the_code_page_the_object_names():
    title = "Отчёт.doc".encode("cp1251")
    assert expand(tnef(Spec(b"x", title), codepage=1251))[0] == [("Отчёт.doc", b"x")]
    # without attOemCodepage: UTF-8, the bytes that are not kept surrogate-escaped
    assert expand(tnef(Spec(b"x", title), codepage=None))[0] == [(title.decode("utf-8", "surrogateescape"), b"x")]


def test_a_name_ends_at_its_first_nul_as_windows_reads_it():
    spec = Spec(b"x", b"A.TXT", (variable_property(PT_STRING8, PR_ATTACH_LONG_FILENAME, b"invoice.pdf\0.exe\0"),))
    assert expand(tnef(spec))[0] == [("invoice.pdf", b"x")]


def test_empty_attachment_and_nameless_one():
    raw = tnef(named_file("empty.txt", b""), Spec(b"anonymous"))
    assert expand(raw) == ([("empty.txt", b""), (None, b"anonymous")], [])


def test_offsets_point_into_the_stream_and_data_is_not_read_while_listing():
    data = b"0123456789" * 100
    raw = tnef(named_file("digits.txt", data))

    class CountingStream(io.BytesIO):
        bytes_read = 0

        def read(self, size=-1):
            chunk = super().read(size)
            self.bytes_read += len(chunk)
            return chunk

    stream = CountingStream(raw)
    (attachment,), defects = tnef_attachments(stream)
    assert defects == [] and stream.bytes_read == len(raw) - len(data)   # all but the data
    assert attachment == TnefAttachment("digits.txt", raw.index(data), len(data))


def test_the_object_may_start_inside_a_larger_stream():
    raw = tnef(named_file("x.bin", b"payload"))
    stream = io.BytesIO(b"garbage before" + raw)
    stream.seek(len(b"garbage before"))
    (attachment,), defects = tnef_attachments(stream)
    assert defects == [] and b"".join(iter_attachment_data(stream, attachment)) == b"payload"


def test_data_embedded_as_a_mapi_object():
    embedded_message = tnef(named_file("inner.txt", b"inner"))
    spec = Spec(b"", b"MESSAGE.MSG", (variable_property(PT_OBJECT, PR_ATTACH_DATA_OBJ, IID_IMESSAGE + embedded_message),
                                      long_name_property("forwarded.msg")))
    binary = Spec(b"", None, (variable_property(PT_BINARY, PR_ATTACH_DATA_OBJ, b"binary object"),))
    files, defects = expand(tnef(spec, binary))
    assert (files, defects) == ([("forwarded.msg", embedded_message), (None, b"binary object")], [])
    # an embedded message is a TNEF object of its own, read from its range
    assert expand(embedded_message)[0] == [("inner.txt", b"inner")]


# -- broken objects -------------------------------------------------------------------------------

def test_not_a_tnef_object():
    assert expand(b"PK\x03\x04 a zip file") == ([], [(DefectKind.TNEF_MALFORMED, 0)])
    assert expand(b"") == ([], [(DefectKind.TNEF_MALFORMED, 0)])


def test_bad_checksum_is_a_defect_and_the_value_is_still_read():
    raw = tnef(Spec(b"x", b"A.TXT"))
    title = attribute(2, ATT_ATTACH_TITLE, b"A.TXT\0")
    broken = raw.replace(title, attribute(2, ATT_ATTACH_TITLE, b"A.TXT\0", checksum=0xBEEF))
    files, defects = expand(broken)
    assert files == [("A.TXT", b"x")]
    assert defects == [(DefectKind.TNEF_MALFORMED, raw.index(title) + len(title) - 2)]


def test_bad_checksum_of_small_data_but_not_of_large_data_which_is_not_read():
    for data, defects in ((b"small", [DefectKind.TNEF_MALFORMED]), (bytes(513), [])):
        good = attribute(2, ATT_ATTACH_DATA, data)
        raw = tnef(Spec(data, b"A.TXT")).replace(good, attribute(2, ATT_ATTACH_DATA, data, checksum=0xBEEF))
        assert expand(raw) == ([("A.TXT", data)], [(kind, raw.index(data) + len(data)) for kind in defects])


def test_bad_checksum_of_a_property_list():
    raw = tnef(named_file("long name.txt", b"x"))   # attAttachment is last: its checksum ends the object
    files, defects = expand(raw[:-2] + b"\0\0")
    assert files == [("long name.txt", b"x")] and defects == [(DefectKind.TNEF_MALFORMED, len(raw) - 2)]


def test_declared_length_past_the_end():
    first = named_file("first.txt", b"one")
    raw = tnef(first) + struct.pack("<BII", 2, ATT_ATTACH_REND_DATA, 10**9) + b"\0" * 20
    files, defects = expand(raw)
    assert files == [("first.txt", b"one")]
    assert defects == [(DefectKind.TRUNCATED_PART, len(tnef(first)))]


def test_truncated_data_keeps_the_bytes_there_are():
    data = bytes(range(200))
    raw = tnef(named_file("first.txt", b"one"), Spec(data, b"SECOND.BIN"))
    cut = raw.index(data) + 50
    files, defects = expand(raw[:cut])
    assert files == [("first.txt", b"one"), ("SECOND.BIN", data[:50])]
    assert kinds(defects) == [DefectKind.TRUNCATED_PART]


def test_every_truncation_gives_a_prefix_and_a_defect_unless_between_attributes():
    specs = [named_file("a.txt", b"first file"), named_file("€ b.bin", bytes(30), unicode=True), Spec(b"c", b"C.TXT")]
    raw = tnef(*specs)
    whole, _ = expand(raw)
    attribute_ends, position = {6}, 6   # after the signature and key
    while position < len(raw):
        position += 9 + struct.unpack_from("<I", raw, position + 5)[0] + 2
        attribute_ends.add(position)
    for cut in range(len(raw)):
        files, defects = expand(raw[:cut])
        assert defects or cut in attribute_ends, cut
        assert len(files) <= len(whole)
        for (name, data), (whole_name, whole_data) in zip(files, whole):
            assert whole_data.startswith(data), cut
            assert name in (whole_name, "SHORT~1.DAT", None), cut


def test_line_end_after_the_object_is_no_defect_but_other_bytes_are():
    raw = tnef(Spec(b"x", b"A.TXT"))
    assert expand(raw + b"\r\n") == ([("A.TXT", b"x")], [])
    assert expand(raw + b"junk")[1] == [(DefectKind.TNEF_MALFORMED, len(raw))]


def test_more_attachments_than_limits_allow():
    raw = tnef(*(Spec(bytes([n]), f"F{n}.TXT".encode()) for n in range(3)))
    files, defects = expand(raw, Limits(max_parts=2))
    assert files == [("F0.TXT", b"\0"), ("F1.TXT", b"\1")] and kinds(defects) == [DefectKind.LIMIT_PARTS]


def test_attributes_and_values_are_bounded():
    raw = tnef(*(Spec(b"x", b"A.TXT") for _ in range(10)))
    files, defects = expand(raw, Limits(max_header_total_count=12))
    assert len(files) < 10 and kinds(defects) == [DefectKind.LIMIT_HEADER_TOTAL]


def test_an_overlong_name_is_skipped_for_the_title():
    spec = Spec(b"x", b"A.TXT", (long_name_property("n" * 5000),))
    files, defects = expand(tnef(spec), Limits(max_header_field_size=1000))
    assert files == [("A.TXT", b"x")] and kinds(defects) == [DefectKind.LIMIT_HEADER_SIZE]


def test_a_property_of_unknown_size_ends_the_list_with_a_defect():
    spec = Spec(b"x", b"A.TXT", (struct.pack("<HH", 0x00FD, 0x3000), long_name_property("lost.txt")))
    files, defects = expand(tnef(spec))
    assert files == [("A.TXT", b"x")] and kinds(defects) == [DefectKind.TNEF_MALFORMED]


def test_a_property_list_that_declares_more_than_it_holds():
    properties = long_name_property("named.txt")
    spec = Spec(b"x", b"A.TXT")
    raw = tnef(spec) + attribute(2, ATT_ATTACHMENT, struct.pack("<I", 5) + properties)
    files, defects = expand(raw)
    assert files == [("named.txt", b"x")] and kinds(defects) == [DefectKind.TNEF_MALFORMED]


def test_a_value_past_the_end_of_its_list():
    value_size = struct.pack("<HHII", PT_STRING8, PR_ATTACH_LONG_FILENAME, 1, 1000) + b"short"
    raw = tnef(Spec(b"x", b"A.TXT")) + attribute(2, ATT_ATTACHMENT, struct.pack("<I", 1) + value_size)
    files, defects = expand(raw)
    assert files == [("A.TXT", b"x")] and kinds(defects) == [DefectKind.TRUNCATED_PART]


@given(st.lists(st.tuples(st.text(min_size=1, max_size=20).filter(lambda s: "\0" not in s), st.binary(max_size=300),
                          st.booleans()), max_size=4))
def test_what_is_written_is_read(files):
    raw = tnef(*(named_file(name, data, unicode=True) if unicode else
                 Spec(data, b"T.DAT", (long_name_property(name.encode("cp1252", "replace").decode("cp1252")),))
                 for name, data, unicode in files))
    expected = [(name if unicode else name.encode("cp1252", "replace").decode("cp1252"), data)
                for name, data, unicode in files]
    assert expand(raw) == (expected, [])


@given(st.data())
def test_damaged_objects_never_raise_nor_point_outside(data):
    raw = bytearray(tnef(named_file("a.txt", b"first"), named_file("b.txt", bytes(40), unicode=True),
                         Spec(b"", None, (variable_property(PT_OBJECT, PR_ATTACH_DATA_OBJ, IID_IMESSAGE + b"m"),))))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    attachments, _ = tnef_attachments(io.BytesIO(bytes(raw)))
    assert all(0 <= a.offset and a.offset + a.size <= len(raw) for a in attachments)


def test_a_20_mb_attachment_is_listed_and_read_in_bounded_memory(tmp_path):
    size = 20 * 1024 * 1024
    block = bytes(range(256)) * 4096   # 1 MiB
    path = tmp_path / "winmail.dat"
    with open(path, "wb") as out:
        out.write(tnef(named_file("small.txt", b"small")))
        out.write(attribute(2, ATT_ATTACH_REND_DATA, bytes(14)))
        out.write(attribute(2, ATT_ATTACH_TITLE, b"BIG.BIN\0"))
        out.write(struct.pack("<BII", 2, ATT_ATTACH_DATA, size))
        for _ in range(size // len(block)):
            out.write(block)
        out.write(struct.pack("<H", sum(block) * (size // len(block)) & 0xFFFF))
        out.write(attribute(2, ATT_ATTACHMENT, property_list(long_name_property("big file.bin"))))
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        with open(path, "rb") as stream:
            attachments, defects = tnef_attachments(stream)
            for chunk in iter_attachment_data(stream, attachments[1]):
                digest.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert defects == [] and [(a.name, a.size) for a in attachments] == [("small.txt", 5), ("big file.bin", size)]
    assert digest.hexdigest() == hashlib.sha256(block * (size // len(block))).hexdigest()
    assert peak < 1024 * 1024


# -- the tnef tool and the corpus agree -----------------------------------------------------------

def tool_extracts(raw: bytes, directory: Path) -> dict[str, bytes]:
    """What the `tnef` command writes out of `raw`: file name -> bytes."""
    source = directory / "winmail.dat"
    source.write_bytes(raw)
    output = directory / "out"
    output.mkdir()
    subprocess.run(["tnef", "-f", str(source), "-C", str(output)], check=True, capture_output=True, timeout=60)
    return {path.name: path.read_bytes() for path in output.iterdir()}


needs_tnef_tool = pytest.mark.skipif(shutil.which("tnef") is None, reason="the tnef tool is not installed")


@needs_tnef_tool
@pytest.mark.parametrize("specs", [
    [named_file("Quarterly report.xlsx", bytes(range(256)) * 40), named_file("notes.txt", b"hello\r\n"),
     Spec(b"%PDF-1.4", b"SCAN.PDF")],
    [named_file("Übersicht 报告.pdf", b"unicode named", unicode=True), named_file("empty.txt", b"")],
    [Spec(b"", None, (variable_property(PT_BINARY, PR_ATTACH_DATA_OBJ, b"data in the property list"),
                      long_name_property("object.bin")))],
], ids=["long-and-8.3-names", "unicode-and-empty", "data-object"])
def test_the_tnef_tool_extracts_the_same_files(specs, tmp_path):
    files, defects = expand(tnef(*specs))
    assert defects == [] and dict(files) == tool_extracts(tnef(*specs), tmp_path)


def corpus_tnef_parts() -> list[bytes]:
    """The decoded application/ms-tnef parts of the corpus messages that have one."""
    from mimekit.read.tree import parse_message

    objects = []
    for path in sorted(CORPUS.rglob("*")) if CORPUS.is_dir() else []:
        if path.is_file() and b"ms-tnef" in path.read_bytes().lower():
            with open(path, "rb") as stream, parse_message(stream) as message:
                objects += [b"".join(part.iter_decoded()) for part in message.walk()
                            if part.content_type == "application/ms-tnef"]
    return objects


def test_corpus_tnef_objects(corpus_dir, tmp_path):
    objects = corpus_tnef_parts()
    if not objects:
        pytest.skip("no application/ms-tnef part in ../shared/corpus")
    for number, raw in enumerate(objects):
        files, defects = expand(raw)
        assert files and defects == [], number
        if shutil.which("tnef"):
            directory = tmp_path / str(number)
            directory.mkdir()
            assert {name: data for name, data in files} == tool_extracts(raw, directory), number
