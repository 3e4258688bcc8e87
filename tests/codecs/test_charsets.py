"""Charset decoding reads what mail programs meant, and says when it had to guess."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.codecs.charsets import (ISO_2022, SNIFF_SIZE, WINDOWS_1252, TextDecoder, decode_text, detect_codec,
                                     encode_text, is_mislabelled_utf8, iso_2022_variant, resolve_charset)
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


@pytest.mark.parametrize("label, text", [
    ("iso-8859-1", "Frösche"), ("windows-1251", RUSSIAN), ("koi8-r", RUSSIAN), ("us-ascii", "naïve café"),
    ("iso-8859-7", "Καλημέρα"), ("windows-1254", "Görüşme İstanbul'da"),
])
def test_utf8_under_a_single_byte_label_in_a_body_is_read_as_utf8(label, text):
    decoded, defects = decode_text(text.encode(), label)
    assert decoded == text
    assert [(d.kind, d.detail) for d in defects] == [(DefectKind.CHARSET_FALLBACK, f"{label!r} text is UTF-8; read as utf-8")]


def test_utf8_under_a_multibyte_label_is_read_as_declared_when_it_decodes():
    # Valid UTF-8 is often valid GB18030 too; a multi-byte label is not second-guessed.
    assert decode_text("Grüße".encode(), "gb18030") == ("Grüße".encode().decode("gb18030"), [])


@pytest.mark.parametrize("label", ["us-ascii", "iso-8859-1", "ISO_8859-1", "latin1", "windows-1252", "x-cp1252",
                                   "iso-8859-2", "koi8-r", "windows-1251", "iso-8859-7"])
def test_valid_multibyte_utf8_under_a_single_byte_label_is_mislabelled(label):
    assert is_mislabelled_utf8("Größe".encode(), resolve_charset(label))


@pytest.mark.parametrize("data, label", [
    ("Frösche".encode(), "shift_jis"),         # a multi-byte charset: its declaration is checked otherwise
    ("Frösche".encode(), "utf-8"),
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


def python_codec(codec):
    """A Python codec that writes what `codec` reads (mimekit reads ISO-2022 with its own decoder)."""
    return "iso2022_jp_2" if codec == ISO_2022 else codec


SAMPLE_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
# What Python's ISO-2022-JP codec writes that mimekit reads otherwise on purpose: JIS X 0208 through
# cp932 (b"\x1b$B!q" is "\uffe0", as Windows reads it, not "\xa2"), and ESC starts an escape sequence.
READ_OTHERWISE_AS_ISO_2022 = dict.fromkeys(map(ord, "\x1b\xa2\xa3\xac\u2016\u2212\u301c"))


@given(st.data(), SAMPLE_TEXT, st.sampled_from(["utf-8", "utf-16", "gb18030", "big5hkscs", "cp932",
                                                "cp949", "koi8-r", "iso2022_jp_ext"]),
       st.integers(1, 64))
def test_any_chunking_decodes_like_the_whole(data, text, codec, sniff_size):
    if codec == "iso2022_jp_ext":
        text = text.translate(READ_OTHERWISE_AS_ISO_2022)
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
                     lambda pair: pair[0].encode(python_codec(resolve_charset(pair[1])), "ignore"))),
       st.sampled_from(CHARSET_LABELS))
def test_decode_text_gives_what_the_streaming_decoder_gives(data, label):
    """decode_text reads bytes that decode cleanly in one call; the result is the streaming decoder's."""
    decoder = TextDecoder(label, sniff_size=len(data) + 1)
    streamed = decoder.decode(data) + decoder.finish()
    assert decode_text(data, label) == (streamed, decoder.defects)


# -- ISO-2022 -------------------------------------------------------------------------------

JIS = b"\x1b$B$3$s$K$A$O\x1b(B world"     # "こんにちは world" in ISO-2022-JP


@pytest.mark.parametrize("label", [None, "", "us-ascii", "US-ASCII", "iso-8859-1", "utf-8", "unknown-8bit"])
def test_iso_2022_jp_without_its_label_is_recognised_by_its_escapes(label):
    text, defects = decode_text(JIS, label)
    assert text == "こんにちは world"
    assert [d.kind for d in defects] == [DefectKind.CHARSET_DETECTED]
    assert defects[0].detail.endswith("read as iso-2022-jp")


@pytest.mark.parametrize("data, variant, text", [
    (JIS, "iso-2022-jp", "こんにちは world"),
    (b"\x1b(I1\x1b(B", "iso-2022-jp", "ｱ"),
    ("안녕하세요".encode("iso2022_kr"), "iso-2022-kr", "안녕하세요"),
    (b"\x1b$)A\x0e::WV\x0f", "iso-2022-cn", "汉字"),
    ("中文 한국".encode("iso2022_jp_2"), "iso-2022-jp", "中文 한국"),   # JP-2 designates JIS X 0208 first
])
def test_each_variant_is_named_and_read(data, variant, text):
    assert iso_2022_variant(data) == variant
    assert decode_text(data, None)[0] == text


@pytest.mark.parametrize("data", [b"plain text", b"an \x1b[1m ANSI \x1b[0m escape", "日本".encode("iso2022_jp")[3:]])
def test_text_without_a_designation_is_not_iso_2022(data):
    assert iso_2022_variant(data) is None


def test_8bit_text_is_never_iso_2022():
    assert iso_2022_variant(JIS + "é".encode()) is None


@pytest.mark.parametrize("label", ["iso-2022-jp", "ISO-2022-JP-2", "csISO2022JP", "iso-2022-kr", "iso-2022-cn", "cp50220"])
def test_iso_2022_labels_are_read_by_mimekit_s_own_decoder(label):
    assert resolve_charset(label) == ISO_2022


@pytest.mark.parametrize("jis, text", [
    (b"\x1b$B-!-\"-j\x1b(B", "①②㈱"),       # NEC row 13
    (b"\x1b$By!y\"\x1b(B", "纊褜"),           # NEC-selected IBM kanji, rows 89-92
    (b"\x1b$B9b\x1b(B", "高"),
    (b"\x1b(I6@6E\x1b(B", "ｶﾀｶﾅ"),            # half-width katakana (ESC ( I)
    (b"\x1b)I\x0e6@\x0f", "ｶﾀ"),               # the same through G1 and SO (CP50222)
    (b"\x1b(J\\~\x1b(B", "¥‾"),               # JIS X 0201 Roman
    (b"\x1b$(D\"/\x1b(B", "˘"),               # JIS X 0212
    (b"\x1b.A\x1bNv", "ö"),                    # ISO-2022-JP-2: Latin-1 in G2, single shift
])
def test_vendor_and_other_sets_of_iso_2022_jp_are_characters_not_replacements(jis, text):
    assert decode_text(jis, "iso-2022-jp") == (text, [])


def test_what_iso_2022_cannot_read_is_replaced_and_counted():
    text, defects = decode_text(b"ok \x1b$B$3$\x1b(B \x1b$)G\x0eDD\x0f", "iso-2022-jp")
    assert text == "ok こ\ufffd \ufffd"    # a half pair; CNS 11643, which Python has no codec for
    assert [(d.kind, d.offset) for d in defects] == [(DefectKind.CHARSET_FALLBACK, 8)]
    assert defects[0].detail.startswith("2 undecodable sequence(s) in iso-2022")


@pytest.mark.parametrize("encoded, text", [
    (b"\x0f", "\x0f"),                          # hypothesis found it: Python's ISO-2022-JP writes SO/SI as they are
    (b"a\x0eb\x0f\x0e", "a\x0eb\x0f\x0e"),
    (b"\x1b$)C\x0e!!\x0fa\x0f", "\u3000a"),       # ISO-2022-KR: G1 holds KS X 1001, so they shift
])
def test_shift_in_and_out_shift_only_once_g1_holds_a_set(encoded, text):
    decoder = TextDecoder("iso-2022-jp", sniff_size=1)
    streamed = "".join(decoder.decode(encoded[index:index + 1]) for index in range(len(encoded))) + decoder.finish()
    assert (streamed, decoder.defects) == decode_text(encoded, "iso-2022-jp") == (text, [])


@given(st.data(), st.text(st.sampled_from("日本語のテキスト①纊ｱｲ abc\n"), max_size=60))
def test_iso_2022_streams_whatever_the_chunks(data, text):
    from test_multilingual import iso_2022_jp
    encoded = iso_2022_jp(text) + "한국中文".encode("iso2022_jp_2")
    expected = text + "한국中文"
    decoder = TextDecoder("iso-2022-jp", sniff_size=data.draw(st.integers(1, 16)))
    streamed = "".join(decoder.decode(piece) for piece in data.draw(chunkings(encoded))) + decoder.finish()
    assert (streamed, decoder.defects) == (expected, [])


# -- UTF-8 under a single-byte label ----------------------------------------------------------

def test_mislabelled_utf8_is_judged_on_the_sniffed_sample_and_a_cut_character_waits():
    decoder = TextDecoder("windows-1251", sniff_size=5)
    data = RUSSIAN.encode()
    text = decoder.decode(data[:5]) + decoder.decode(data[5:]) + decoder.finish()
    assert (text, decoder.codec) == (RUSSIAN, "utf-8")


def test_one_utf8_character_under_a_non_latin_label_keeps_the_label():
    # "Ăś" in Latin-2 is also UTF-8 "ö": one such pair is too little to overrule the label.
    assert not is_mislabelled_utf8("Ăś".encode("iso8859_2"), resolve_charset("iso-8859-2"))
    assert is_mislabelled_utf8("öß".encode(), resolve_charset("iso-8859-2"))


# -- hints: charsets declared elsewhere in the message -----------------------------------------

TURKISH = "Toplantı yarın saat beşte."   # three 8-bit letters: too few for chardet


def test_undeclared_text_is_first_tried_in_a_charset_the_message_declares():
    data = TURKISH.encode("iso8859_9")
    assert decode_text(data, None)[0] == "Toplantý yarýn saat beþte."   # without hints: windows-1252
    decoder = TextDecoder(None, hints=("us-ascii-is-skipped-upstream", "iso-8859-9"))
    assert decoder.decode(data) + decoder.finish() == TURKISH
    assert [(d.kind, d.detail) for d in decoder.defects] == [
        (DefectKind.CHARSET_DETECTED, "read as cp1254 (declared elsewhere in the message)")]


def test_a_wrong_declaration_also_falls_back_to_the_hints():
    decoder = TextDecoder("utf-8", hints=("windows-1251",))
    assert decoder.decode(RUSSIAN.encode("cp1251")) + decoder.finish() == RUSSIAN
    assert "declared elsewhere" in decoder.defects[0].detail


@pytest.mark.parametrize("text, wrong_hint", [
    ("Grüße aus Köln, schöne Größe", "koi8-r"),          # Latin-1 as koi8-r mixes scripts: "GrЭЪe"
    (RUSSIAN, "windows-1252"),                           # windows-1251 as windows-1252: words of accents only
    ("Zażółć gęślą jaźń, świętość", "iso-8859-2"),       # windows-1250 as iso-8859-2: C1 controls
])
def test_a_hint_that_reads_the_text_implausibly_is_passed_over(text, wrong_hint):
    codec = {"koi8-r": "latin-1", "windows-1252": "cp1251", "iso-8859-2": "cp1250"}[wrong_hint]
    assert detect_codec(text.encode(codec), hints=(wrong_hint,)) != resolve_charset(wrong_hint)


def test_hints_never_overrule_valid_utf8():
    assert detect_codec("Grüße".encode(), hints=("iso-8859-1",)) == "utf-8"
