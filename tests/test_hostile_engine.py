"""Issue 8 items 5 and 6 (engine): hostile charsets and numbers never crash the header/body engine.

Item 5: UTF-16/UTF-32 (and UCS-2/UCS-4) without a byte-order mark, with an odd byte count or
an unpaired surrogate, as a body charset, in RFC 2047 words and in RFC 2231 parameters, used to
raise UnicodeError out of mimekit.codecs.charsets (exit 70). Item 6: a number of more than 4300 digits
(int()'s limit) or with a non-ASCII digit such as "²" in an RFC 2231 section index, a date or an
HTML character reference used to raise ValueError (exit 70).
"""

import base64
import json

import pytest
from helpers import run_bounded

from mimekit.codecs.charsets import TextDecoder, decode_text
from mimekit.headers.dates import parse_date
from mimekit.defects import DefectKind
from mimekit.headers.encoded_words import decode_header_value
from mimekit.codecs.html_text import HtmlTextConverter, html_to_text
from mimekit.headers.params import parse_params_header

HUGE = "9" * 5000          # more digits than int() accepts (4300)
REPLACED = DefectKind.CHARSET_FALLBACK


def kinds(defects) -> list[DefectKind]:
    return [defect.kind for defect in defects]


# -- item 5: UTF-16 and UTF-32 ----------------------------------------------------------------

@pytest.mark.parametrize("label, data", [
    ("UTF-16", b"\x00a\x00b"),                              # RFC 2781 §4.3: no mark is big-endian
    ("utf-16", b"\xfe\xff\x00a\x00b"),                      # a mark gives the order and is no text
    ("utf-16", b"\xff\xfea\x00b\x00"),
    ("UCS-2", b"\x00a\x00b"),
    ("ucs-2le", b"a\x00b\x00"),
    ("UTF-32", b"\x00\x00\x00a\x00\x00\x00b"),
    ("utf-32", b"\xff\xfe\x00\x00a\x00\x00\x00b\x00\x00\x00"),
    ("UCS-4", b"\x00\x00\x00a\x00\x00\x00b"),
    ("iso-10646-ucs-2", b"\x00a\x00b"),
])
def test_unicode_labels_decode_with_or_without_a_byte_order_mark(label, data):
    assert decode_text(data, label) == ("ab", [])


@pytest.mark.parametrize("codec, label", [("utf-16-le", "utf-16"), ("utf-32-le", "utf-32"),
                                          ("utf-16-be", "utf-16"), ("utf-32-be", "utf-32")])
def test_byte_order_without_a_mark_follows_the_zero_bytes(codec, label):
    text = "Grüße aus Köln\r\n日本語\r\n"
    assert decode_text(text.encode(codec), label) == (text, [])


@pytest.mark.parametrize("label, data, expected", [
    ("UTF-16", b"\x00a\x00b\x00", "ab\ufffd"),                 # odd byte count
    ("utf-16", b"\xfe\xff\x00a\x00", "a\ufffd"),
    ("UTF-16BE", b"\x00a\xd8\x00\x00b", "a\ufffdb"),           # unpaired high surrogate
    ("utf-16le", b"a\x00\x00\xdcb\x00", "a\ufffdb"),           # unpaired low surrogate
    ("UTF-32", b"\x00\x00\x00a\x00\x00", "a\ufffd"),           # cut code unit
    ("utf-32be", b"\x00\x00\x00a\x00\x11\x00\x00\x00\x00\x00b", "a\ufffdb"),   # past U+10FFFF
])
def test_broken_unicode_text_is_replaced_and_counted(label, data, expected):
    text, defects = decode_text(data, label)
    assert text == expected
    assert kinds(defects) == [REPLACED]


def test_replacement_offset_counts_the_byte_order_mark():
    _, defects = decode_text(b"\xff\xfea\x00b\x00c", "utf-16")
    assert defects[0].offset == 6


def test_mostly_ascii_utf16_with_a_cut_keeps_its_declaration():
    """ASCII characters are evidence for UTF-16 (their bytes are not ASCII text), so one odd
    byte does not turn the body into UTF-8 full of NULs."""
    text, defects = decode_text("Test message\n".encode("utf-16-le") + b"\r", "utf-16le")
    assert text == "Test message\n\ufffd"
    assert kinds(defects) == [REPLACED]


@pytest.mark.parametrize("sniff_size", [1, 2, 3, 5, 64])
def test_unicode_body_fed_byte_by_byte(sniff_size):
    data = "Grüße\n".encode("utf-16-le") + b"\x00"
    decoder = TextDecoder("utf-16", sniff_size=sniff_size)
    text = "".join(decoder.decode(data[i:i + 1]) for i in range(len(data))) + decoder.finish()
    assert "\ufffd" in text and text.count("\x00") == 0
    assert kinds(decoder.defects) == [REPLACED]


@pytest.mark.parametrize("value, expected, defect_kinds", [
    ("=?UTF-16?B?AGEAYg==?=", "ab", []),
    ("=?utf-16?b?AGEA?=", "a\ufffd", [REPLACED]),
    ("=?UTF-32?B?AAAAYQAA?=", "a\ufffd", [REPLACED]),
    ("=?ucs-2?q?=00=D8?=", "Ø", []),
    ("=?utf-16?q?=D8=00=00a?=", "\ufffda", [REPLACED]),
    ("=?utf-16?q?=00a?= =?utf-16?q?=00?=", "a\ufffd", [REPLACED]),   # one run, cut at its end
])
def test_encoded_words_in_unicode_charsets(value, expected, defect_kinds):
    text, defects = decode_header_value(value)
    assert text == expected
    assert kinds(defects) == defect_kinds


@pytest.mark.parametrize("value, expected", [
    ("attachment; filename*=utf-16''%00a%00b", "ab"),
    ("attachment; filename*=utf-16''%00a%00b%00", "ab\ufffd"),
    ("attachment; filename*0*=utf-32''%00%00%00a; filename*1*=%00%00", "a\ufffd"),
    ("attachment; filename*=UCS-2''%00a%D8%00%00b", "a\ufffdb"),
])
def test_rfc2231_parameters_in_unicode_charsets(value, expected):
    parsed, _ = parse_params_header(value)
    assert parsed.params["filename"] == expected


# -- item 6: numbers ----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    f"attachment; filename*{HUGE}=x; filename*0=a",
    f"attachment; filename*{HUGE}*=utf-8''x; filename*0=a",
    f"attachment; filename*0=a; filename*0{HUGE}=x",
    "attachment; filename*0=a; filename*1²=x",
])
def test_rfc2231_section_numbers_too_long_or_not_ascii_are_skipped(value):
    parsed, defects = parse_params_header(value)
    assert parsed.params == {"filename": "a"}
    assert kinds(defects) == [DefectKind.PARAMETER_MALFORMED]


def test_largest_section_number_still_sorts():
    parsed, defects = parse_params_header("attachment; filename*0=a; filename*18446744073709551615=b")
    assert parsed.params["filename"] == "ab"
    assert kinds(defects) == [DefectKind.PARAMETER_MALFORMED]   # sections missing


@pytest.mark.parametrize("date", [
    f"{HUGE} Jan 2020 10:00 +0000",
    f"1 {HUGE} 2020 10:00 +0000",
    f"1 Jan {HUGE} 10:00 +0000",
    f"1 Jan 2020 {HUGE}:00 +0000",
    f"1 Jan 2020 10:{HUGE} +0000",
    f"1 Jan 2020 10:00:{HUGE} +0000",
    "1 Jan 99999999999999999999 10:00 +0000",   # parses as a number, too large for datetime
    "1 Jan 2020 99999999999999999999:00 +0000",
    "² Jan 2020 10:00 +0000",
    "1 ² 2020 10:00 +0000",
    "1 Jan ² 10:00 +0000",
    "1 Jan 2020 ²:00 +0000",
    "1 Jan 2020 10:² +0000",
    "1 Jan 2020 10:00:² +0000",
])
def test_dates_with_hostile_numbers_are_malformed(date):
    when, defects = parse_date(date)
    assert when is None
    assert kinds(defects) == [DefectKind.DATE_MALFORMED]


def test_zone_with_a_non_ascii_digit_is_read_as_utc():
    when, defects = parse_date("1 Jan 2020 10:00 +²")
    assert when.utcoffset().total_seconds() == 0
    assert kinds(defects) == [DefectKind.DATE_MALFORMED]


def test_plain_dates_still_parse():
    when, defects = parse_date("Tue, 1 Jul 2003 10:52:37 +0200")
    assert (when.year, when.month, when.day, when.second, defects) == (2003, 7, 1, 37, [])
    assert parse_date("1 7 03 10:52 EST")[0].year == 2003


@pytest.mark.parametrize("html, expected", [
    (f"<p>x&#{HUGE};y</p>", "x\ufffdy\n"),
    (f"<p>&#{'0' * 5000}65;</p>", "A\n"),                      # leading zeros: still "A"
    (f'<a href="&#{HUGE};">x</a>', "x <\ufffd>\n"),
    (f'<img alt="&#{"0" * 5000}66;">', "[B]\n"),
    ("<p>&#65; &#0000000066; &#1114112;</p>", "A B \ufffd\n"),
])
def test_long_decimal_character_references(html, expected):
    assert html_to_text(html) == expected


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_long_character_reference_across_pieces(piece):
    html = f"<p>a&#{'0' * 3000}{HUGE}b&#{'0' * 5000}66;</p>"
    converter = HtmlTextConverter()
    text = "".join(converter.feed(html[i:i + piece]) for i in range(0, len(html), piece)) + converter.close()
    assert text == "a\ufffdbB\n"


# -- through the CLI ----------------------------------------------------------------------------

HOSTILE_MESSAGE = (
    b"Subject: =?UTF-16?B?AGEAYg==?= =?utf-32?b?AAAAYQAA?=\r\n"
    b"Date: 1 Jan 2020 10:00:" + HUGE.encode() + b" +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
    b"--B\r\nContent-Type: text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode("Grüße\r\n".encode("utf-16-le") + b"\x00") + b"\r\n"
    b"--B\r\nContent-Type: text/plain; charset=UCS-4; name*=utf-16''%00n%00a%00m%00e%00\r\n"
    b"Content-Disposition: attachment; filename*0*=utf-16''%00x%D8; filename*" + HUGE.encode() + b"=y\r\n\r\n"
    b"odd\r\n"
    b"--B\r\nContent-Type: text/html; charset=utf-16be\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(f"<p>x&#{HUGE};y</p>".encode("utf-16-be") + b"\x00") + b"\r\n"
    b"--B--\r\n"
)


def run_cli(*args, message: bytes = HOSTILE_MESSAGE):
    """The CLI on a hostile message, under the resource tier's 100 MiB address-space limit."""
    return run_bounded([*args, "-"], input=message)


@pytest.mark.resources
def test_show_reads_the_hostile_message():
    result = run_cli("show")
    assert result.returncode == 0, result.stderr
    assert "Subject: aba\ufffd" in result.stdout.decode()   # RFC 2047 §6.2: no space between words
    assert b"parameter-malformed" in result.stderr
    assert b"Traceback" not in result.stderr


@pytest.mark.resources
def test_show_json_reads_the_hostile_message():
    result = run_cli("show", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert {h["name"]: h["value"] for h in document["headers"]}["Subject"] == "aba\ufffd"
    assert [p["name"] for p in document["parts"]] == [None, None, "x\ufffd", None]
    assert {"charset-fallback", "parameter-malformed"} <= {d["kind"] for d in document["defects"]}


@pytest.mark.resources
def test_decode_text_reads_the_hostile_body():
    result = run_cli("decode", "--text")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("Grüße\n\ufffd")
    assert b"charset-fallback" in result.stderr


@pytest.mark.resources
def test_decode_text_reads_the_hostile_html():
    message = (b"Content-Type: text/html; charset=utf-16\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               + base64.b64encode(f"<p>x&#{HUGE};y</p>".encode("utf-16-le") + b"\x00") + b"\r\n")
    result = run_cli("decode", "--text", message=message)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "x\ufffdy\n\n\ufffd\n"   # the odd byte is after </p>


@pytest.mark.resources
def test_decode_to_a_directory_writes_every_part(tmp_path):
    result = run_cli("decode", "--json", "-o", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [p["id"] for p in document["parts"]] == ["1", "2", "3"]
    assert document["parts"][1]["original_name"] == "x\ufffd"
    assert len(list((tmp_path / "out").iterdir())) == 3


@pytest.mark.resources
@pytest.mark.parametrize("part_id", [f"uu{HUGE}", f"1.uu{HUGE}", "uu²"])
def test_decode_part_with_a_hostile_uuencode_number_is_no_such_part(part_id):
    result = run_cli("decode", "--part", part_id, message=b"Subject: x\r\n\r\nhi\r\n")
    assert result.returncode == 65, result.stderr
    assert b"no part" in result.stderr
