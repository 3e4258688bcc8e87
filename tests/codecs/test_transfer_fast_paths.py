"""The base64 codecs' fast paths (pybase64, issue 16) against the standard library and
against the decoder's behaviour before them, for any line layout and any chunking."""

import base64
import binascii

import pytest
from hypothesis import given, strategies as st

from mimekit.codecs.transfer import Base64Decoder, Base64Encoder
from tests.strategies import chunkings, payloads

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
NOT_ALPHABET = bytes(range(256)).translate(None, ALPHABET)
BLOCK = 57 * 2048  # the encoder's block: inputs around it cross block and line boundaries at once
large_payloads = st.one_of(payloads, st.integers(0, 3 * BLOCK).map(lambda size: bytes(range(256)) * (size // 256)
                                                                     + bytes(size % 256)))


def run(codec, pieces) -> bytes:
    return b"".join([codec.feed(piece) for piece in pieces]) + codec.flush()


def lines_of(text: bytes, width: int, eol: bytes) -> bytes:
    return b"".join(text[start:start + width] + eol for start in range(0, len(text), width))


def defects_of(decoder: Base64Decoder) -> list[tuple]:
    return [(d.kind.name, d.offset, d.detail, d.more) for d in decoder.defects]


# -- encoder ----------------------------------------------------------------------------------

@given(large_payloads, st.sampled_from([b"\r\n", b"\n"]), st.data())
def test_base64_encoder_is_encodebytes_with_eol_for_any_chunking(payload, eol, data):
    pieces = data.draw(chunkings(payload))
    assert run(Base64Encoder(eol=eol), pieces) == base64.encodebytes(payload).replace(b"\n", eol)


@given(st.integers(1, 19), payloads, st.sampled_from([b"\r\n", b"\n"]), st.data())
def test_base64_encoder_lays_out_any_line_length_like_the_standard_library(groups, payload, eol, data):
    encoded = run(Base64Encoder(line_length=4 * groups, eol=eol), data.draw(chunkings(payload)))
    assert encoded == lines_of(base64.b64encode(payload), 4 * groups, eol)


# -- decoder on clean input -------------------------------------------------------------------

@given(payloads, st.integers(1, 80), st.sampled_from([b"\r\n", b"\n", b"\r"]), st.data())
def test_base64_decoder_is_binascii_on_clean_input_of_any_line_width_and_chunking(payload, width, eol, data):
    """Widths that are not a multiple of 4 put groups across line breaks, and chunk
    boundaries anywhere leave 0 to 3 letters of a group to carry, a lone one included."""
    encoded = lines_of(base64.b64encode(payload), width, eol)
    decoder = Base64Decoder()
    assert run(decoder, data.draw(chunkings(encoded))) == binascii.a2b_base64(encoded) == payload
    assert decoder.defects == []


@pytest.mark.parametrize("extra", range(4))
def test_base64_decoder_returns_every_whole_group_of_a_large_feed_at_once(extra):
    payload = bytes(range(256)) * 1000
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    cut = len(encoded) // 2 + extra  # leaves 0 to 3 letters of a group to carry
    decoder = Base64Decoder()
    first = decoder.feed(encoded[:cut])
    assert first == payload[:len(encoded[:cut].translate(None, b"\r\n")) // 4 * 3]
    assert first + decoder.feed(encoded[cut:]) + decoder.flush() == payload


# -- decoder on dirty input ---------------------------------------------------------------------

dirt = st.sampled_from([b" ", b"\t", b"!", b"\x00", b"\xff", b"*~", b"=", b"==", b"\r", b"\n", b"Q"])


@st.composite
def dirty_lines(draw) -> bytes:
    """Clean base64 lines with dirt put in at random places."""
    text = bytearray(base64.encodebytes(draw(payloads)).replace(b"\n", b"\r\n"))
    for _ in range(draw(st.integers(0, 8))):
        at = draw(st.integers(0, len(text)))
        text[at:at] = draw(dirt)
    return bytes(text)


@pytest.mark.parametrize("defects_per_kind", [2, 100])
@given(encoded=dirty_lines(), data=st.data())
def test_base64_decoder_reads_dirty_lines_alike_whole_and_in_chunks(defects_per_kind, encoded, data):
    whole, chunked = Base64Decoder(defects_per_kind), Base64Decoder(defects_per_kind)
    assert run(chunked, data.draw(chunkings(encoded))) == run(whole, [encoded])
    assert defects_of(chunked) == defects_of(whole)


@given(dirty_lines())
def test_base64_decoder_skips_whitespace_and_junk_as_binascii_does_without_padding(encoded):
    """Without "=", the output is that of the letters alone, whatever surrounds them."""
    letters = encoded.translate(None, NOT_ALPHABET)
    whole = letters[:len(letters) - len(letters) % 4]
    decoder = Base64Decoder()
    assert decoder.feed(encoded.replace(b"=", b"")) == binascii.a2b_base64(whole)


# Recorded with the decoder as it was before pybase64 (commit 321bc4d), fed whole; the same
# comes out fed byte by byte. Defects: kind, offset, detail, count of those not listed.
BEFORE_PYBASE64 = [
    (b"QUJD\r\nQUJ\r\nDQQ", b"ABCABCA", [("BASE64_TRUNCATED", 14, "group cut short after 2 letter(s)", 0)]),
    (b"QU JD\tQU\r\n JD", b"ABCABC", []),
    (b"QQ==QQ==\r\nQUI=", b"AAAB", [
        ("BASE64_PADDING_MIDSTREAM", 4, "letters after padding; decoding went on", 0),
        ("BASE64_PADDING_MIDSTREAM", 10, "letters after padding; decoding went on", 0)]),
    (b"QUJD!QUJD*~\x00QU", b"ABCABCA", [
        ("BASE64_JUNK", 4, "1 byte(s) outside the base64 alphabet skipped", 0),
        ("BASE64_JUNK", 9, "3 byte(s) outside the base64 alphabet skipped", 0),
        ("BASE64_TRUNCATED", 14, "group cut short after 2 letter(s)", 0)]),
    (b"Q=QUJD", b"ABC", [
        ("BASE64_TRUNCATED", 1, "group cut short after 1 letter(s)", 0),
        ("BASE64_PADDING_MIDSTREAM", 2, "letters after padding; decoding went on", 0)]),
    (b"QUJD\r\n=\r\n\r\nQUJD", b"ABCABC", [
        ("BASE64_PADDING_MIDSTREAM", 11, "letters after padding; decoding went on", 0)]),
    (b"QUJD\n\rQUJ\rD\n", b"ABCABC", []),
    (b"\xff\xfeQUJD\x80", b"ABC", [
        ("BASE64_JUNK", 0, "2 byte(s) outside the base64 alphabet skipped", 0),
        ("BASE64_JUNK", 6, "1 byte(s) outside the base64 alphabet skipped", 0)]),
    (b"QUJDQUJDQUJDQ", b"ABCABCABC", [("BASE64_TRUNCATED", 13, "group cut short after 1 letter(s)", 0)]),
    (b"=QUJD==QU!JD=", b"ABCABC", [
        ("BASE64_PADDING_MIDSTREAM", 1, "letters after padding; decoding went on", 0),
        ("BASE64_PADDING_MIDSTREAM", 7, "letters after padding; decoding went on", 0),
        ("BASE64_JUNK", 9, "1 byte(s) outside the base64 alphabet skipped", 0)]),
    (b"QR\r\nQQ==", b"A\x14\x10", []),
    (b"A!A!A!A!A!QUJD\r\nQ", b"\x00\x00\x00\x01\x05\t\r", [
        ("BASE64_JUNK", 1, "1 byte(s) outside the base64 alphabet skipped", 0),
        ("BASE64_JUNK", 3, "1 byte(s) outside the base64 alphabet skipped", 0),
        ("BASE64_TRUNCATED", 17, "group cut short after 2 letter(s)", 0),
        ("BASE64_JUNK", 5, "3 more not listed", 3)]),
    (b"QUJD\r\n" * 20 + b"QUJ \r\n", b"ABC" * 20 + b"AB", [
        ("BASE64_TRUNCATED", 126, "group cut short after 3 letter(s)", 0)]),
]


@pytest.mark.parametrize("encoded, decoded, defects", BEFORE_PYBASE64)
def test_base64_decoder_gives_what_it_gave_before_pybase64(encoded, decoded, defects):
    for pieces in ([encoded], [encoded[i:i + 1] for i in range(len(encoded))]):
        decoder = Base64Decoder(defects_per_kind=2)
        assert (run(decoder, pieces), defects_of(decoder)) == (decoded, defects)
