"""Which decoders the Content-Transfer-Encoding fields and the body itself lead to, and the
trick each one's label names."""

import base64
import binascii
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimekit.codecs.encoding_names import (BODY_VARIANTS, DECODER_NAMES, MAX_ENCODING_READINGS, EncodingReading,
                                           default_decoder_name, encoding_readings, make_reading_decoder,
                                           sniff_body_encodings)
from mimekit.errors import UsageError
from tests.strategies import header_junk


def readings(*values: bytes) -> list[tuple[str, str]]:
    return [(reading.encoding, reading.reading) for reading in encoding_readings(list(values))]


@pytest.mark.parametrize("value, expected", [
    (b" base64\r\n", "base64"), (b"Quoted-Printable", "quoted-printable"), (b"7bit", "identity"),
    (b"binary", "identity"), (b"x-uuencode", "identity"), (b"base64 (x)", "identity"), (None, "identity")])
def test_default_decoder_is_make_decoders_choice_for_the_first_field(value, expected):
    assert default_decoder_name(value) == expected


def test_repeated_fields_read_first_and_last():
    assert readings(b"base64", b"quoted-printable") == [("base64", "cte-first-header"),
                                                         ("quoted-printable", "cte-last-header")]
    assert readings(b"7bit", b"8bit", b"base64") == [("identity", "cte-first-header"), ("base64", "cte-last-header")]


@pytest.mark.parametrize("value, expected", [
    (b"base64 quoted-printable", [("base64", "cte-substring"), ("quoted-printable", "cte-substring")]),
    (b"qp,64", [("quoted-printable", "cte-substring"), ("base64", "cte-substring")]),
    (b"7bit, base64", [("identity", "cte-substring"), ("base64", "cte-substring")]),
    (b"x-base64", [("base64", "cte-substring")]),
    (b"base64encoded", [("base64", "cte-substring")]),
    (b"qp", [("quoted-printable", "cte-substring")]),
])
def test_several_names_or_a_name_inside_a_token_are_substrings(value, expected):
    assert readings(value) == expected


@pytest.mark.parametrize("value", [b'"base64"', b"base64 (see RFC 2045)", b"(comment) base64", b"ba\\se64",
                                   b"=?us-ascii?Q?base64?=", b"=?utf-8?B?YmFzZTY0?=", b"\"base\\64\"",
                                   b"base64\r\n (folded comment)"])
def test_comments_quotes_backslashes_and_encoded_words_are_cleaned(value):
    assert default_decoder_name(value) == "identity"
    assert readings(value)[0] == ("base64", "cte-cleaned")


@pytest.mark.parametrize("value, encoding", [
    (b"base-64", "base64"), (b"bas64", "base64"), (b"bsae64", "base64"), (b"Base_64", "base64"),
    (b"quoted-printabl", "quoted-printable"), (b"quoted_printable", "quoted-printable"),
    (b"quoted printable", "quoted-printable"), (b"qouted-printable", "quoted-printable"),
    (b"quoted-print", "quoted-printable"), (b"quotedprintible", "quoted-printable")])
def test_misspellings_are_read_as_the_name_they_miss(value, encoding):
    assert readings(value) == [(encoding, "cte-misspelt")]


@pytest.mark.parametrize("value", [b"base32", b"basic", b"quoted", b"printable", b"x-token", b"hello world", b"",
                                   b"quotable"])
def test_fuzzy_matching_stays_conservative(value):
    assert readings(value) == []


@pytest.mark.parametrize("value, reading", [
    (b"uuencode", ("uuencode", "cte-uuencode")), (b"x-uuencode", ("uuencode", "cte-uuencode")),
    (b"X-UUE", ("uuencode", "cte-uuencode")), (b"uue", ("uuencode", "cte-uuencode")),
    (b"x-uu", ("uuencode", "cte-uuencode")), (b"x-gzip64", ("x-gzip64", "cte-gzip64")),
    (b"x-yenc", ("yenc", "cte-yenc")), (b"yenc", ("yenc", "cte-yenc")), (b"x-binhex", ("binhex", "cte-binhex")),
    (b"binhex", ("binhex", "cte-binhex")), (b"mac-binhex40", ("binhex", "cte-binhex"))])
def test_legacy_encoding_names(value, reading):
    assert readings(value) == [reading]
    assert readings(b"7bit", value) == [("identity", "cte-first-header"), reading]


def test_readings_are_distinct_bounded_and_ordered_by_plausibility():
    values = [b"base64", b"qp", b"x-uue", b"yenc", b"binhex", b"x-gzip64", b"8bit", b"quoted-printable"] * 50
    found = encoding_readings(values)
    assert len({reading.encoding for reading in found}) == len(found) <= MAX_ENCODING_READINGS
    assert found[:2] == [EncodingReading("base64", "cte-first-header"),
                         EncodingReading("quoted-printable", "cte-last-header")]
    assert all(reading.encoding in DECODER_NAMES for reading in found)


def test_a_huge_value_is_read_only_in_its_first_bytes():
    assert readings(b"7bit " + b"x" * 5000 + b" base64") == [("identity", "cte-substring")]


@settings(max_examples=200, deadline=None)
@given(st.lists(header_junk.map(lambda value: value.encode("utf-8", "surrogatepass") if isinstance(value, str)
                                else value), max_size=4))
def test_any_values_give_distinct_known_decoders(values):
    found = encoding_readings(values)
    assert len({reading.encoding for reading in found}) == len(found) <= MAX_ENCODING_READINGS
    assert {reading.encoding for reading in found} <= DECODER_NAMES


def test_no_field_no_reading():
    assert encoding_readings([]) == []


# ------------------------------------------------------------------ framings in a body

UU_BEGIN = b"begin 644 evil.zip\n"
YENC_BEGIN = b"=ybegin line=128 size=3 name=evil.zip\r\n"
BINHEX_LINE = b"(This file must be converted with BinHex 4.0)\r\n"
BEGIN_BASE64 = b"begin-base64 644 evil.zip\n"
ALL_FOUND = [("uuencode", "uuencode-in-body"), ("yenc", "yenc-in-body"), ("binhex", "binhex-in-body"),
             ("begin-base64", "begin-base64")]


def sniffed(data: bytes) -> list[tuple[str, str]]:
    return sorted((reading.encoding, reading.reading) for reading in sniff_body_encodings(data))


def test_sniff_finds_each_framing_at_the_start_or_after_a_line_break():
    for marker, expected in zip([UU_BEGIN, YENC_BEGIN, BINHEX_LINE, BEGIN_BASE64], ALL_FOUND):
        assert sniffed(marker) == [expected]
        assert sniffed(b"text\r\n" + marker) == [expected]


def test_sniff_ignores_markers_inside_a_line():
    assert sniffed(b"see: begin 644 x and =ybegin name=x; begin-base64 644 x") == []
    assert sniffed(b"begin here\nbegin 64 x\nbegin 644\n") == []


def test_sniff_finds_markers_at_both_ends_of_a_big_buffer():
    lines = base64.encodebytes(os.urandom(3 * 1024 * 1024))
    assert sniffed(lines) == []
    big = b"".join([UU_BEGIN, YENC_BEGIN] + [lines] * 24 + [BINHEX_LINE, BEGIN_BASE64])   # about 100 MB
    assert len(big) > 95_000_000
    assert sniffed(big) == sorted(ALL_FOUND)


# ------------------------------------------------------------------ decoders

def test_every_decoder_name_makes_a_fresh_decoder():
    for name in DECODER_NAMES:
        first, second = make_reading_decoder(name), make_reading_decoder(name)
        assert first is not second
        assert first.flush() == b"" and isinstance(first.defects, list)


def test_decoders_by_name_decode_what_their_name_says():
    uu = b"".join(binascii.b2a_uu(b"hello world"[i:i + 45]) for i in range(0, 11, 45))
    cases = {"identity": b"=41", "base64": b"QUJD", "quoted-printable": b"=41=42", "uuencode": uu,
             "base64-per-line": b"QUJDRA\n", "base64-stop-at-padding": b"QUI=RA==",
             "base64-line-prefix": b"QUJD!RA==\n", "qp-invalid-dropped": b"==41=42"}
    expected = {"identity": b"=41", "base64": b"ABC", "quoted-printable": b"AB", "uuencode": b"hello world",
                "base64-per-line": b"ABC", "base64-stop-at-padding": b"AB", "base64-line-prefix": b"ABC",
                "qp-invalid-dropped": b"AB"}
    for name, encoded in cases.items():
        decoder = make_reading_decoder(name)
        assert decoder.feed(encoded) + decoder.flush() == expected[name], name


def test_body_variants_are_decoder_names_for_the_default_decoders():
    assert set(BODY_VARIANTS) == {"base64", "quoted-printable"}
    assert [reading.reading for reading in BODY_VARIANTS["base64"]] == [
        "base64-per-line", "base64-stop-at-padding", "base64-line-prefix"]
    assert all(reading.encoding in DECODER_NAMES for variants in BODY_VARIANTS.values() for reading in variants)


def test_an_unknown_decoder_name_is_a_usage_error():
    with pytest.raises(UsageError):
        make_reading_decoder("rot13")
