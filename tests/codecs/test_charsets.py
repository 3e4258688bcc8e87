"""Charset decoding reads what mail programs meant, and says when it had to guess."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.codecs.charsets import (SNIFF_SIZE, WINDOWS_1252, TextDecoder, decode_text, detect_codec, encode_text,
                              is_mislabelled_utf8, resolve_charset)
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


@pytest.mark.parametrize("text", [
    "Grüße aus Köln",                     # chardet: mac-iceland, confidence 0.03
    "Réunion à Orléans",                  # chardet: MacCyrillic, 0.11
    "Perché è così difficile?",           # chardet: cp720, 0.15
    "Intel® 64 and IA-32 Architectures",  # chardet: cp437, 0.11 (mime4j's corpus)
])
def test_a_few_8bit_bytes_are_read_as_windows_1252_not_as_chardet_guesses(text):
    text_read, defects = decode_text(text.encode("latin-1"), None)
    assert text_read == text
    assert [(d.kind, d.detail) for d in defects] == [(DefectKind.CHARSET_DETECTED, f"read as {WINDOWS_1252}")]


@pytest.mark.parametrize("text, codec", [
    ("Совещание в понедельник", "koi8-r"),
    ("日程調整のお願い", "cp932"),
    ("안녕하세요 반갑습니다", "cp949"),
])
def test_two_words_of_another_script_are_enough_for_detection(text, codec):
    assert decode_text(text.encode(codec), None)[0] == text


@pytest.mark.parametrize("eight_bit, confidence, codec", [
    (4, 0.99, WINDOWS_1252),     # too few 8-bit bytes, however sure chardet is
    (5, 0.04, WINDOWS_1252),     # enough bytes, but chardet has no idea
    (5, 0.05, "koi8-r"),
])
def test_chardet_needs_both_enough_8bit_bytes_and_some_confidence(monkeypatch, eight_bit, confidence, codec):
    import chardet
    monkeypatch.setattr(chardet, "detect", lambda sample: {"encoding": "KOI8-R", "confidence": confidence})
    assert detect_codec(b"text " + b"\xd0" * eight_bit) == codec


def test_utf8_under_a_latin_label_in_a_body_is_read_as_declared():
    # Browsers and Thunderbird keep a body's declared charset; only header decoding (where
    # mislabelled UTF-8 is common and short) second-guesses a Latin label.
    assert decode_text("Frösche".encode(), "iso-8859-1") == ("FrÃ¶sche", [])


@pytest.mark.parametrize("label", ["us-ascii", "iso-8859-1", "ISO_8859-1", "latin1", "windows-1252", "x-cp1252"])
def test_valid_multibyte_utf8_under_a_latin_label_is_mislabelled(label):
    assert is_mislabelled_utf8("Frösche".encode(), resolve_charset(label))


@pytest.mark.parametrize("data, label", [
    ("Frösche".encode(), "iso-8859-2"),        # not in the Latin single-byte family
    ("Frösche".encode(), "koi8-r"),
    (b"Fr\xf6sche", "iso-8859-1"),             # genuine Latin-1: not valid UTF-8
    (b"plain", "iso-8859-1"),                  # ASCII: nothing to decide
    (b"\xc3\x28", "iso-8859-1"),               # a lead byte without its continuation
])
def test_other_text_is_not_mislabelled_utf8(data, label):
    assert not is_mislabelled_utf8(data, resolve_charset(label))


@pytest.mark.parametrize("codec", [WINDOWS_1252, "koi8-r", "cp932", "utf-8"])
def test_encode_text_gives_back_the_bytes_text_was_decoded_from(codec):
    data = bytes(range(256)) if codec == WINDOWS_1252 else "Grüße Привет 日本".encode(codec, errors="ignore")
    text, _ = decode_text(data, codec)
    assert encode_text(text, codec) == data


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


CHARSET_LABELS = ["utf-8", "UTF-8", "us-ascii", "iso-8859-1", "windows-1252", "utf-16", "utf-16le", "utf-32",
                  "ucs-2", "utf-7", "utf-8-sig", "gb2312", "shift_jis", "iso-2022-jp", "hz", "koi8-r", "big5",
                  "euc-kr", "cp1251", "cp037", "mac_roman", "unknown-8bit", "x-bogus", "", None]


@given(st.one_of(st.binary(max_size=64),
                 st.tuples(SAMPLE_TEXT, st.sampled_from(CHARSET_LABELS[:-4])).map(
                     lambda pair: pair[0].encode(resolve_charset(pair[1]), "ignore"))),
       st.sampled_from(CHARSET_LABELS))
def test_decode_text_gives_what_the_streaming_decoder_gives(data, label):
    """decode_text reads bytes that decode cleanly in one call; the result is the streaming decoder's."""
    decoder = TextDecoder(label, sniff_size=len(data) + 1)
    streamed = decoder.decode(data) + decoder.finish()
    assert decode_text(data, label) == (streamed, decoder.defects)
