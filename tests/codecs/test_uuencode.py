"""uuencoded blocks inside text bodies are found and decoded, whatever the chunking."""

import binascii

from hypothesis import given
from hypothesis import strategies as st

from mimekit.defects import DefectKind
from mimekit.codecs.uuencode import MAX_LINE, UuBegin, UuData, UuEnd, UuScanner
from strategies import chunkings


def uuencode(data: bytes, name: str = "file.bin", newline: bytes = b"\n") -> bytes:
    lines = [f"begin 644 {name}".encode()]
    lines += [binascii.b2a_uu(data[i:i + 45], backtick=True).rstrip(b"\n") for i in range(0, len(data), 45)]
    lines += [b"`", b"end"]
    return newline.join(lines) + newline


def scan(*chunks: bytes, max_files: int | None = None) -> tuple[list[tuple[str, bytes, bool]], list]:
    """Files found as (name, bytes, complete), and the scanner's defects."""
    scanner = UuScanner(max_files)
    events = [event for chunk in chunks for event in scanner.feed(chunk)] + scanner.close()
    files = []
    for event in events:
        if isinstance(event, UuBegin):
            files.append([event.name, b"", None])
        elif isinstance(event, UuData):
            files[-1][1] += event.data
        else:
            assert isinstance(event, UuEnd)
            files[-1][2] = event.complete
    return [tuple(f) for f in files], scanner.defects


def test_block_inside_text_is_decoded_with_its_name():
    payload = bytes(range(256)) * 3
    body = b"Hi,\nhere is the file:\n\n" + uuencode(payload, "my report.pdf") + b"\nBye\n"
    assert scan(body) == ([("my report.pdf", payload, True)], [])


def test_begin_offset_points_at_the_begin_line():
    scanner = UuScanner()
    events = scanner.feed(b"text\n" + uuencode(b"x"))
    assert events[0] == UuBegin("file.bin", 5)


def test_crlf_lines_and_two_blocks():
    body = uuencode(b"first", "a.txt", b"\r\n") + b"between\r\n" + uuencode(b"second", "b.txt", b"\r\n")
    assert scan(body) == ([("a.txt", b"first", True), ("b.txt", b"second", True)], [])


def test_begin_must_start_a_line():
    assert scan(b"please begin 644 x.txt\nM86)C\nend\n") == ([], [])
    assert scan(b"beginning 644 notes\n") == ([], [])


def test_lines_that_lost_trailing_spaces_are_zero_padded():
    payload = b"\x00" * 45 + b"AB"
    encoded = uuencode(payload).replace(b"`", b" ").replace(b" \n", b"\n")   # spaces stripped in transit
    assert scan(encoded)[0] == [("file.bin", payload, True)]


def test_characters_after_the_declared_length_are_ignored():
    body = b"begin 600 c.txt\n#86)C=\n`\nend\n"   # "abc" plus a checksum character
    assert scan(body)[0] == [("c.txt", b"abc", True)]


def test_block_without_end_stops_at_the_first_text_line():
    payload = b"payload bytes " * 10
    cut = uuencode(payload).replace(b"`\nend\n", b"")
    files, defects = scan(cut + b"This is a normal line of text.\n" + uuencode(b"next", "n.txt"))
    assert files == [("file.bin", payload, False), ("n.txt", b"next", True)]
    assert [d.kind for d in defects] == [DefectKind.UUENCODE_MISSING_END]
    assert defects[0].offset == len(cut)


def test_block_cut_at_the_end_of_the_body_keeps_what_it_holds():
    payload = b"z" * 100
    truncated = uuencode(payload).split(b"\n`\n")[0]   # no final newline, no end
    files, defects = scan(truncated)
    assert files == [("file.bin", payload, False)]
    assert [d.kind for d in defects] == [DefectKind.UUENCODE_MISSING_END]


def test_an_overlong_line_is_skipped_without_being_held():
    garbage = b"x" * (MAX_LINE * 50)
    chunks = [garbage[i:i + 1000] for i in range(0, len(garbage), 1000)]
    assert scan(*chunks, b"\n" + uuencode(b"after")) == ([("file.bin", b"after", True)], [])


def test_an_overlong_line_ends_an_open_block():
    files, defects = scan(b"begin 644 f\n#86)C\n" + b"M" * (MAX_LINE + 1) + b"\nend\n")
    assert files == [("f", b"abc", False)]
    assert [d.kind for d in defects] == [DefectKind.UUENCODE_MISSING_END]


def test_undecodable_name_bytes_are_surrogate_escaped_for_the_sanitiser():
    files, _ = scan(b"begin 644 caf\xe9.txt\n#86)C\nend\n")
    assert files[0][0] == "caf\udce9.txt"


@given(st.data(), st.binary(max_size=500), st.sampled_from([b"\n", b"\r\n"]))
def test_any_chunking_finds_the_same_files(data, payload, newline):
    body = b"text before\n" + uuencode(payload, "f.bin", newline) + b"text after" + newline + b"begin"
    pieces = data.draw(chunkings(body))
    assert scan(*pieces) == scan(body) == ([("f.bin", payload, True)], [])


@given(chunkings(b"text\n" + b"".join(uuencode(bytes([n]) * 50, f"f{n}") for n in range(5)) + b"bye\n"))
def test_past_max_files_a_begin_line_is_text_with_one_limit_defect(chunks):
    """issue 8 item 10: a million begin lines must not make a million files."""
    files, defects = scan(*chunks, max_files=2)
    assert files == [("f0", b"\0" * 50, True), ("f1", b"\1" * 50, True)]
    third_begin = len(b"text\n") + 2 * len(uuencode(b"\0" * 50, "f0"))
    assert [(d.kind, d.offset) for d in defects] == [(DefectKind.LIMIT_PARTS, third_begin)]
