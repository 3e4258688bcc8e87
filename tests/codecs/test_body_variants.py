"""The other readings of a damaged base64 or quoted-printable body: each gives what the
reader it imitates gives, for any chunking."""

import base64
import binascii

from hypothesis import given, settings
from hypothesis import strategies as st

from mimekit.codecs.body_variants import Base64LinePrefixDecoder, Base64PerLineDecoder, Base64StopAtPaddingDecoder
from mimekit.codecs.transfer import Base64Decoder, QuotedPrintableDecoder
from mimekit.defects import DefectKind
from tests.strategies import chunkings

PAYLOAD = bytes(range(256)) * 4


def decode(decoder, *pieces: bytes) -> bytes:
    return b"".join(decoder.feed(piece) for piece in pieces) + decoder.flush()


def lines_of(data: bytes, width: int) -> list[bytes]:
    return [data[i:i + width] for i in range(0, len(data), width)]


# ------------------------------------------------------------------ base64, each line alone

def odd_line_body(payload: bytes, junk: bytes = b"Zz") -> bytes:
    """Each 57-byte slice encoded alone, then 2 junk letters: joined, the groups shift."""
    return b"".join(base64.b64encode(piece) + junk + b"\r\n" for piece in lines_of(payload, 57))


def test_per_line_drops_each_lines_incomplete_group():
    body = odd_line_body(PAYLOAD)
    assert decode(Base64Decoder(), body) != PAYLOAD
    decoder = Base64PerLineDecoder()
    assert decode(decoder, body) == PAYLOAD
    truncated = [defect for defect in decoder.defects if defect.kind is DefectKind.BASE64_TRUNCATED]
    assert truncated[0].offset == 0 and truncated[1].offset == body.index(b"\r\n") + 2


def test_per_line_keeps_padding_at_the_end_of_each_line():
    body = b"QQ==\nQkI=\nQ0ND\n"
    assert decode(Base64PerLineDecoder(), body) == b"ABBCCC"


@settings(max_examples=50, deadline=None)
@given(st.data(), st.binary(max_size=600))
def test_per_line_any_chunking_gives_the_same_output(data, payload):
    body = odd_line_body(payload, junk=b"Q")
    assert decode(Base64PerLineDecoder(), *data.draw(chunkings(body))) == payload


_LINES = st.lists(st.sampled_from([b"QUJD", b"QUJDRE", b"QU!JD", b"Q", b"", b"  ", b"QUJDREVG" * 9]), max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.data(), _LINES, st.sampled_from([b"\n", b"\r\n"]))
def test_per_line_decodes_each_line_alone_whole_lines_or_not(data, lines, eol):
    letters = [line.translate(None, b"! ") for line in lines]
    expected = b"".join(binascii.a2b_base64(line[:len(line) // 4 * 4]) for line in letters)
    body = b"".join(line + eol for line in lines)
    assert decode(Base64PerLineDecoder(), *data.draw(chunkings(body))) == expected


def test_per_line_reads_a_line_longer_than_any_buffer_in_pieces():
    payload = PAYLOAD * 40   # one line of 40 KB of base64
    body = base64.b64encode(payload) + b"AB\n"
    decoder = Base64PerLineDecoder()
    assert decode(decoder, *lines_of(body, 1000)) == payload


# ------------------------------------------------------------------ base64, stopped at padding

def test_stop_at_padding_ignores_what_follows_the_first_padded_group():
    body = b"QUJD\r\nRA==\r\nRUZH\r\n"
    assert decode(Base64Decoder(), body) == b"ABCDEFG"
    decoder = Base64StopAtPaddingDecoder()
    assert decode(decoder, body) == b"ABCD"
    assert [defect.kind for defect in decoder.defects] == [DefectKind.BASE64_PADDING_MIDSTREAM]


def test_stop_at_padding_ignores_an_equals_sign_that_completes_no_group():
    assert decode(Base64StopAtPaddingDecoder(), b"=QU=JD\nR=E=VG\n") == b"ABCDEF"


_BASE64_TEXT = st.lists(st.sampled_from([b"Q", b"U", b"J", b"D", b"+", b"/", b"=", b"==", b"\n", b" ", b"!", b"QUJD"]),
                        max_size=40).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.data(), _BASE64_TEXT)
def test_stop_at_padding_reads_as_binascii_does(data, text):
    try:
        expected = binascii.a2b_base64(text)
    except binascii.Error:   # a group cut short at the end: binascii refuses, the decoder pads it
        return
    assert decode(Base64StopAtPaddingDecoder(), *data.draw(chunkings(text))) == expected


# ------------------------------------------------------------------ base64, each line's prefix

def test_line_prefix_drops_the_rest_of_each_line_after_a_foreign_character():
    lines = [base64.b64encode(piece) for piece in lines_of(PAYLOAD, 57)]
    body = b"".join(line + b"!" + line[:9] + b"\r\n" for line in lines)   # junk, then letters that shift groups
    assert decode(Base64Decoder(), body) != PAYLOAD
    decoder = Base64LinePrefixDecoder()
    assert decode(decoder, body) == PAYLOAD
    assert decoder.defects[0].kind is DefectKind.BASE64_JUNK
    assert decoder.defects[0].offset == body.index(b"!")


def test_line_prefix_skips_leading_blanks_and_keeps_padding():
    assert decode(Base64LinePrefixDecoder(), b"  QUJD\n\tRA== x\nRUZH\n") == b"ABCDEFG"


@settings(max_examples=50, deadline=None)
@given(st.data(), st.binary(max_size=600), st.sampled_from([b"!", b"*junk*", b" -- ", b"\x00"]))
def test_line_prefix_any_chunking_gives_the_same_output(data, payload, junk):
    body = b"".join(base64.b64encode(piece) + junk + b"QUJD\n" for piece in lines_of(payload, 57))
    assert decode(Base64LinePrefixDecoder(), *data.draw(chunkings(body))) == payload


def test_line_prefix_of_a_line_longer_than_any_buffer_stops_at_its_first_foreign_character():
    body = base64.b64encode(PAYLOAD * 30) + b"!" + b"QUJD" * 3000 + b"\nRA==\n"
    assert decode(Base64LinePrefixDecoder(), *lines_of(body, 700)) == PAYLOAD * 30 + b"D"


# ------------------------------------------------------------------ quoted-printable, invalid escapes dropped

def test_qp_invalid_escapes_dropped():
    encoded = b"==41 =0=41 =4a =ZZ end=\r\n"
    assert decode(QuotedPrintableDecoder(), encoded) == b"=A =0A J =ZZ end"
    decoder = QuotedPrintableDecoder(keep_invalid_escapes=False)
    assert decode(decoder, encoded) == b"A 0A J ZZ end"
    assert [defect.offset for defect in decoder.defects] == [0, 5, 15]
    assert "dropped" in decoder.defects[0].detail


@settings(max_examples=50, deadline=None)
@given(st.data(), st.lists(st.sampled_from([b"=", b"==41", b"=0=41", b"=4", b"1", b"a", b"=\r\n", b" ", b"\r\n"]),
                           max_size=40).map(b"".join))
def test_qp_invalid_escapes_dropped_any_chunking_gives_the_same_output(data, encoded):
    whole = decode(QuotedPrintableDecoder(keep_invalid_escapes=False), encoded)
    pieces = data.draw(chunkings(encoded))
    assert decode(QuotedPrintableDecoder(keep_invalid_escapes=False), *pieces) == whole
