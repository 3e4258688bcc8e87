"""sniff: media types from the bytes (the name only refines a vague answer), charsets by
exact checks first and chardet only for legacy text."""

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.write.sniff import (CHARDET_SAMPLE_SIZE, UNKNOWN_CHARSET, CharsetDetector, detect_charset,
                           is_media_type, mime_charset_name, sniff_content_type)


@pytest.mark.parametrize("name, expected", [
    ("tiny.png", "image/png"),
    ("tiny.pdf", "application/pdf"),
    ("blob-with-nul.bin", "application/octet-stream"),
    ("body.html", "text/html"),
    ("utf8-scripts.txt", "text/plain"),
    ("latin1.txt", "text/plain"),
    ("shift_jis.txt", "text/plain"),
    ("empty.txt", "text/plain"),
])
def test_fixture_types(fixtures_dir, name, expected):
    assert sniff_content_type((fixtures_dir / name).read_bytes(), name) == expected


@pytest.mark.parametrize("head, name, expected", [
    (b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n", "", "message/rfc822"),
    (b"From:", "", "text/plain"),                                    # no blank line ends a header
    (b"From: a\nSubject: b\n", "", "text/plain"),
    (b"X-Tag: 1\x01\n\n", "note.eml", "application/octet-stream"),   # the name does not make it one
])
def test_only_a_header_the_reader_takes_for_a_message_is_message_rfc822(head, name, expected):
    assert sniff_content_type(head, name) == expected


def test_bytes_win_over_a_misleading_name(fixtures_dir):
    png = (fixtures_dir / "tiny.png").read_bytes()
    assert sniff_content_type(png, "report.pdf") == "image/png"


def test_binary_named_as_text_stays_binary(fixtures_dir):
    blob = (fixtures_dir / "blob-with-nul.bin").read_bytes()
    assert sniff_content_type(blob, "notes.txt") == "application/octet-stream"


def test_name_refines_vague_answers(fixtures_dir):
    assert sniff_content_type(b"name,size\nx,1\n", "table.csv") == "text/csv"
    blob = (fixtures_dir / "blob-with-nul.bin").read_bytes()
    assert sniff_content_type(blob, "photo.jpg") == "image/jpeg"


def test_text_named_as_binary_type_stays_text():
    assert sniff_content_type(b"just some words\n", "photo.jpg") == "text/plain"


def test_compressed_extension_is_not_taken_for_the_inner_type():
    assert sniff_content_type(b"", "archive.tar.gz") == "application/octet-stream"


def test_empty_content_without_a_known_name_is_octet_stream():
    assert sniff_content_type(b"", "no-extension") == "application/octet-stream"


def test_media_type_syntax():
    assert is_media_type("application/vnd.ms-excel")
    assert is_media_type("text/x-c++")
    for bad in ("text", "text/", "/plain", "text/plain; charset=utf-8", "te xt/plain", "a/b/c"):
        assert not is_media_type(bad)


@pytest.mark.parametrize("name, expected", [
    ("utf8-scripts.txt", "utf-8"),
    ("Résumé – 履歴書.txt", "utf-8"),
    ("shift_jis.txt", "shift_jis"),
    ("empty.txt", "us-ascii"),
])
def test_fixture_charsets(fixtures_dir, name, expected):
    assert detect_charset((fixtures_dir / name).read_bytes()) == expected


def test_latin1_text_gets_a_label_that_reads_it_back(fixtures_dir):
    data = (fixtures_dir / "latin1.txt").read_bytes()
    charset = detect_charset(data)
    assert charset not in ("us-ascii", "utf-8", UNKNOWN_CHARSET)
    assert data.decode(charset) == data.decode("latin-1")


def test_utf8_is_checked_over_the_whole_content_not_a_prefix():
    detector = CharsetDetector()
    detector.feed("é".encode() * 1000)
    detector.feed("é".encode("latin-1"))
    assert detector.charset() != "utf-8"


def test_utf8_split_across_chunks_is_still_utf8():
    data = "日本語".encode()
    detector = CharsetDetector()
    for i in range(len(data)):
        detector.feed(data[i:i + 1])
    assert detector.charset() == "utf-8"


def test_truncated_utf8_at_the_end_is_not_utf8():
    assert detect_charset("ok é".encode()[:-1]) != "utf-8"


def test_detector_settles_once_the_sample_is_full():
    detector = CharsetDetector()
    detector.feed(b"\xff" * (CHARDET_SAMPLE_SIZE + 1))
    assert detector.settled


@given(st.text())
def test_any_unicode_text_in_utf8_is_detected_as_ascii_or_utf8(text):
    data = text.encode("utf-8", "surrogatepass")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return   # lone surrogates are not UTF-8
    assert detect_charset(data) == ("us-ascii" if data.isascii() else "utf-8")


@pytest.mark.parametrize("label, expected", [
    ("CP932", "shift_jis"), ("SHIFT_JIS", "shift_jis"), ("Windows-1252", "windows-1252"),
    ("ISO-8859-1", "iso-8859-1"), ("ISO-8859-15", "iso-8859-15"), ("EUC-JP", "euc-jp"),
    ("CP949", "euc-kr"), ("GB18030", "gb18030"), ("Big5", "big5"), ("KOI8-R", "koi8-r"),
    ("MacRoman", "macintosh"), ("CP866", "ibm866"), ("ascii", "us-ascii"), ("UTF-16", "utf-16"),
    ("ISO-2022-JP", "iso-2022-jp"), (None, None), ("no-such-codec", None),
])
def test_mime_charset_names(label, expected):
    assert mime_charset_name(label) == expected


@pytest.mark.parametrize("label", ["CP932", "Windows-1252", "EUC-JP", "CP949", "GB18030", "KOI8-R",
                                   "MacRoman", "CP866", "ISO-2022-JP", "UTF-16"])
def test_every_written_charset_name_is_one_python_can_read(label):
    codecs.lookup(mime_charset_name(label))
