"""Charset decoding reads what mail programs meant, and says when it had to guess."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.charsets import SNIFF_SIZE, WINDOWS_1252, TextDecoder, decode_text, resolve_charset
from mimekit.defects import DefectKind
from strategies import chunkings

RUSSIAN = "Привет! Это письмо написано по-русски, чтобы проверить определение кодировки текста."


def kinds(defects):
    return [defect.kind for defect in defects]


@pytest.mark.parametrize("label", ["iso-8859-1", "ISO_8859-1", "latin1", "us-ascii", "ascii",
                                   "ANSI_X3.4-1968", '"windows-1252"', "x-cp1252"])
def test_latin1_and_ascii_labels_read_as_whatwg_windows_1252(label):
    assert resolve_charset(label) == WINDOWS_1252
    # 0x80 is the euro sign in windows-1252; 0x81 is undefined there and kept as U+0081.
    assert decode_text(b"caf\xe9 \x80 \x81", label) == ("café € \x81", [])


@pytest.mark.parametrize("label, text, codec", [
    ("ks_c_5601-1987", "똠방각하", "cp949"),        # 똠 exists in cp949 only, not EUC-KR
    ("euc-kr", "똠방각하", "cp949"),
    ("gb2312", "汉字 😀", "gb18030"),               # a four-byte GB18030 sequence
    ("x-sjis", "丸数字①", "cp932"),                 # ① is a cp932 (NEC) extension
    ("shift_jis", "丸数字①", "cp932"),
    ("iso-2022-jp", "半角ｱ", "iso2022_jp_ext"),     # half-width katakana via ESC ( I
    ("big5", "中文", "big5hkscs"),
    ("iso-8859-9", "İstanbul €", "cp1254"),
    ("iso-8859-8-i", "שלום", "iso8859_8"),
])
def test_labels_read_as_the_superset_mail_programs_write(label, text, codec):
    assert resolve_charset(label) == codec
    assert decode_text(text.encode(codec), label) == (text, [])


@pytest.mark.parametrize("label", ["base64", "rot13", "unicode_escape", "undefined", "x-klingon",
                                   "utf-8\x00", "utf\udcff"])
def test_labels_that_name_no_charset_are_unknown(label):
    assert resolve_charset(label) is None
    text, defects = decode_text(b"plain words", label)
    assert text == "plain words"
    assert kinds(defects) == [DefectKind.UNKNOWN_CHARSET]


def test_unknown_charset_is_reported_then_detected():
    text, defects = decode_text("丸数字です。日本語のテキスト".encode("cp932"), "x-bogus")
    assert text == "丸数字です。日本語のテキスト"
    assert kinds(defects) == [DefectKind.UNKNOWN_CHARSET, DefectKind.CHARSET_DETECTED]
    assert "'x-bogus'" in defects[0].detail and "cp932" in defects[1].detail


@pytest.mark.parametrize("label", [None, "", "unknown-8bit", "x-unknown"])
def test_undeclared_ascii_needs_no_guess(label):
    assert decode_text(b"just ASCII\r\n", label) == ("just ASCII\r\n", [])


def test_undeclared_utf8_is_detected_as_utf8():
    text, defects = decode_text("Grüße aus Köln".encode("utf-8"), None)
    assert text == "Grüße aus Köln"
    assert kinds(defects) == [DefectKind.CHARSET_DETECTED]
    assert defects[0].detail == "read as utf-8"


def test_undeclared_8bit_text_is_detected_by_chardet():
    text, defects = decode_text(RUSSIAN.encode("koi8-r"), None)
    assert text == RUSSIAN
    assert kinds(defects) == [DefectKind.CHARSET_DETECTED]


def test_wrong_declaration_falls_back_to_what_decodes():
    text, defects = decode_text("Grüße aus Köln, das ist schön".encode("latin-1"), "utf-8")
    assert text == "Grüße aus Köln, das ist schön"
    assert kinds(defects) == [DefectKind.CHARSET_FALLBACK]
    assert "'utf-8'" in defects[0].detail and WINDOWS_1252 in defects[0].detail


def test_stray_damage_keeps_the_declaration_and_counts_replacements():
    data = "Grüße aus Köln".encode("utf-8") + b"\xff!"
    text, defects = decode_text(data, "utf-8")
    assert text == "Grüße aus Köln\ufffd!"
    assert kinds(defects) == [DefectKind.CHARSET_FALLBACK]
    assert defects[0].offset == len("Grüße aus Köln".encode("utf-8"))
    assert defects[0].detail.startswith("1 undecodable sequence")


def test_streaming_decode_chooses_from_the_first_bytes_and_replaces_later_damage():
    decoder = TextDecoder("utf-8")
    head = b"a" * SNIFF_SIZE
    text = decoder.decode(head[:100]) + decoder.decode(head[100:]) + decoder.decode(b"\xe9t\xe9")
    text += decoder.finish()
    assert text == "a" * SNIFF_SIZE + "\ufffdt\ufffd"
    assert decoder.codec == "utf-8"
    assert [(d.kind, d.offset) for d in decoder.defects] == [(DefectKind.CHARSET_FALLBACK, SNIFF_SIZE)]
    assert decoder.defects[0].detail.startswith("2 undecodable")


def test_streaming_decode_holds_back_nothing_once_a_codec_is_chosen():
    decoder = TextDecoder("utf-8", sniff_size=4)
    assert decoder.decode(b"ab") == ""
    assert decoder.decode(b"cd\xc3") == "abcd"     # the first byte of "é" waits for the second
    assert decoder.decode(b"\xa9") == "é"
    assert decoder.finish() == ""


SAMPLE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(st.data(), SAMPLE_TEXT, st.sampled_from(["utf-8", "utf-16", "gb18030", "big5hkscs", "cp932",
                                                "cp949", "koi8-r", "iso2022_jp_ext"]),
       st.integers(1, 64))
def test_any_chunking_decodes_like_the_whole(data, text, codec, sniff_size):
    try:
        encoded = text.encode(codec)
    except UnicodeEncodeError:
        encoded = text.encode("utf-8")
        codec = "utf-8"
    decoder = TextDecoder(codec, sniff_size=sniff_size)
    pieces = data.draw(chunkings(encoded))
    streamed = "".join(decoder.decode(piece) for piece in pieces) + decoder.finish()
    assert (streamed, decoder.defects) == decode_text(encoded, codec) == (text, [])
