"""Transfer codecs: round trips, chunking invariance, RFC 2045 layout, leniency, peers."""

import base64
import binascii
import email
import email.policy
import quopri
import random
import re

import pytest
from hypothesis import given, strategies as st

from mimekit.defects import MAX_DEFECTS_PER_KIND, DefectKind
from mimekit.errors import UsageError
from mimekit.codecs.transfer import (Base64Decoder, Base64Encoder, IdentityCodec, QuotedPrintableDecoder,
                              QuotedPrintableEncoder, make_decoder, make_encoder)
from tests.strategies import chunkings, payloads

# Text that exercises QP's corner cases: line-start protection, trailing whitespace,
# every kind of line break, "=", 8-bit bytes and lines longer than 76.
mail_text = st.lists(st.sampled_from([
    b"From ", b"From", b"F", b"rom ", b".", b" ", b"\t", b"\r\n", b"\n", b"\r", b"=",
    b"a", b"word ", b"\xc3\xa9", b"\x00", b"x" * 80,
])).map(b"".join)

# Encoded-looking input, dirty: for checking that decoders do not depend on chunking.
dirty_base64 = st.lists(st.sampled_from([
    b"Q", b"U", b"J", b"D", b"QUJD", b"QQ==", b"QUI=", b"=", b"\r\n", b"\n", b"\r", b" ", b"\t", b"!",
    b"\x00", b"*~",
])).map(b"".join)
dirty_qp = st.lists(st.sampled_from([
    b"a", b"=", b"=3D", b"=e9", b"=ZZ", b"=4", b"==", b" ", b"\t", b"\r\n", b"\n", b"\r",
    b"=\r\n", b"=  \n", b" " * 997, b" " * 3,
])).map(b"".join)


def run(codec, pieces) -> bytes:
    """Feed `pieces` one call each, then flush: what a streaming caller gets."""
    return b"".join([codec.feed(piece) for piece in pieces]) + codec.flush()


def normalise_line_breaks(text: bytes) -> bytes:
    """What QP text mode promises to give back: every CRLF or bare LF as CRLF."""
    return re.sub(rb"\r?\n", b"\r\n", text)


def python_email_decode(cte: str, encoded: bytes) -> bytes:
    message = email.message_from_bytes(
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: "
        + cte.encode() + b"\r\n\r\n" + encoded, policy=email.policy.default)
    return message.get_payload(decode=True)


# -- base64 encoder -------------------------------------------------------------------------

@given(payloads, st.data())
def test_base64_encoder_gives_encodebytes_layout_with_crlf_for_any_chunking(payload, data):
    encoded = run(Base64Encoder(), data.draw(chunkings(payload)))
    assert encoded == base64.encodebytes(payload).replace(b"\n", b"\r\n")


@given(payloads, st.data())
def test_base64_encoder_with_lf_is_exactly_encodebytes(payload, data):
    assert run(Base64Encoder(eol=b"\n"), data.draw(chunkings(payload))) == base64.encodebytes(payload)


def test_base64_encoder_is_exact_across_many_internal_blocks():
    payload = random.Random(2).randbytes(3 * 57 * 1024 * 3 + 100)  # several binascii blocks
    rng = random.Random(3)
    pieces, pos = [], 0
    while pos < len(payload):
        size = rng.choice([1, 56, 57, 58, 65536, 200_000])
        pieces.append(payload[pos:pos + size])
        pos += size
    assert run(Base64Encoder(), pieces) == base64.encodebytes(payload).replace(b"\n", b"\r\n")


def test_base64_encoder_writes_every_whole_line_at_once_and_holds_only_the_rest():
    encoder = Base64Encoder()
    assert len(encoder.feed(bytes(57 * 10 + 56))) == 78 * 10
    assert encoder.flush() == base64.b64encode(bytes(56)) + b"\r\n"


def test_base64_encoder_writes_nothing_for_empty_input():
    assert run(Base64Encoder(), [b"", b""]) == b""


@given(st.integers(1, 19), payloads)
def test_base64_encoder_honours_shorter_line_lengths(groups, payload):
    encoded = run(Base64Encoder(line_length=4 * groups), [payload])
    assert all(len(line) <= 4 * groups for line in encoded.split(b"\r\n"))
    assert base64.b64decode(encoded.replace(b"\r\n", b"")) == payload


@pytest.mark.parametrize("line_length", [0, 75, 80])
def test_base64_encoder_refuses_lines_that_do_not_hold_whole_groups_or_exceed_76(line_length):
    with pytest.raises(ValueError):
        Base64Encoder(line_length=line_length)


@given(payloads)
def test_python_email_reads_our_base64(payload):
    assert python_email_decode("base64", run(Base64Encoder(), [payload])) == payload


# -- base64 decoder -------------------------------------------------------------------------

@given(payloads, st.data())
def test_base64_round_trip_for_any_chunking_without_defects(payload, data):
    encoded = run(Base64Encoder(), [payload])
    decoder = Base64Decoder()
    assert run(decoder, data.draw(chunkings(encoded))) == payload
    assert decoder.defects == []


@given(dirty_base64, st.data())
def test_base64_decoder_output_and_defects_do_not_depend_on_chunking(encoded, data):
    whole, chunked = Base64Decoder(), Base64Decoder()
    assert run(chunked, data.draw(chunkings(encoded))) == run(whole, [encoded])
    assert chunked.defects == whole.defects


@given(st.lists(st.sampled_from([b"QUJD", b"QQ", b"QUI", b"\r\n", b" ", b"\t"])).map(b"".join))
def test_base64_decoder_agrees_with_binascii_on_unpadded_clean_input(encoded):
    letters = encoded.translate(None, b" \t\r\n")
    whole = letters[:len(letters) - len(letters) % 4]
    assert Base64Decoder().feed(encoded) == binascii.a2b_base64(whole)


def test_base64_decoder_goes_on_after_padding_in_mid_stream():
    decoder = Base64Decoder()
    assert run(decoder, [b"QQ==QQ==\r\nQUI="]) == b"AAAB"
    assert [(d.kind, d.offset) for d in decoder.defects] == [
        (DefectKind.BASE64_PADDING_MIDSTREAM, 4), (DefectKind.BASE64_PADDING_MIDSTREAM, 10)]


def test_base64_decoder_skips_whitespace_silently_and_junk_with_one_defect_per_run():
    decoder = Base64Decoder()
    assert run(decoder, [b"QU \tJD\r\n", b"QU!", b"!~JD*"]) == b"ABCABC"
    assert [(d.kind, d.offset, d.detail) for d in decoder.defects] == [
        (DefectKind.BASE64_JUNK, 10, "3 byte(s) outside the base64 alphabet skipped"),
        (DefectKind.BASE64_JUNK, 15, "1 byte(s) outside the base64 alphabet skipped")]


@pytest.mark.parametrize("encoded, decoded, offset", [
    (b"QUJDQUI", b"ABCAB", 7),   # input ends inside a group: what it holds is decoded
    (b"QUJDQ", b"ABC", 5),       # one letter holds no whole byte
    (b"QUJDQ=", b"ABC", 5),      # a lone letter before padding
])
def test_base64_decoder_reports_groups_cut_short_where_they_end(encoded, decoded, offset):
    decoder = Base64Decoder()
    assert run(decoder, [encoded]) == decoded
    assert [(d.kind, d.offset) for d in decoder.defects] == [(DefectKind.BASE64_TRUNCATED, offset)]


def test_base64_decoder_returns_every_whole_group_at_once():
    assert Base64Decoder().feed(b"QUJD" * 1000 + b"QU") == b"ABC" * 1000


# -- quoted-printable encoder ---------------------------------------------------------------

def assert_transportable_qp(encoded: bytes, eol: bytes = b"\r\n", line_length: int = 76) -> None:
    """7-bit, short lines, no trailing whitespace, nothing SMTP or mbox would alter."""
    lines = encoded.split(eol)
    for line in lines:
        assert len(line) <= line_length, line
        assert all(32 <= byte < 127 or byte == 9 for byte in line), line  # tab is literal in QP
        assert not line.endswith((b" ", b"\t")), line
        assert not line.startswith((b".", b"From ")), line


@given(payloads, st.data())
def test_qp_binary_round_trip_for_any_chunking(payload, data):
    encoded = run(QuotedPrintableEncoder(binary=True), data.draw(chunkings(payload)))
    decoder = QuotedPrintableDecoder()
    assert run(decoder, data.draw(chunkings(encoded))) == payload
    assert decoder.defects == []


@given(mail_text | payloads, st.data())
def test_qp_text_round_trip_normalises_line_breaks_to_crlf(text, data):
    encoded = run(QuotedPrintableEncoder(), data.draw(chunkings(text)))
    assert run(QuotedPrintableDecoder(), data.draw(chunkings(encoded))) == normalise_line_breaks(text)


@given(mail_text | payloads, st.booleans(), st.data())
def test_qp_encoder_output_does_not_depend_on_chunking(text, binary, data):
    whole = run(QuotedPrintableEncoder(binary=binary), [text])
    assert run(QuotedPrintableEncoder(binary=binary), data.draw(chunkings(text))) == whole


@given(mail_text | payloads, st.booleans(), st.data())
def test_qp_output_is_7bit_short_lined_and_safe_from_smtp_and_mbox(text, binary, data):
    assert_transportable_qp(run(QuotedPrintableEncoder(binary=binary), data.draw(chunkings(text))))


@given(mail_text, st.integers(4, 76))
def test_qp_encoder_honours_shorter_line_lengths(text, line_length):
    encoded = run(QuotedPrintableEncoder(line_length=line_length), [text])
    assert_transportable_qp(encoded, line_length=line_length)
    assert run(QuotedPrintableDecoder(), [encoded]) == normalise_line_breaks(text)


@given(mail_text)
def test_qp_encoder_with_lf_writes_lf_lines_only(text):
    encoded = run(QuotedPrintableEncoder(eol=b"\n"), [text])
    assert b"\r" not in encoded
    assert_transportable_qp(encoded, eol=b"\n")
    assert run(QuotedPrintableDecoder(), [encoded]) == re.sub(rb"\r?\n", b"\n", text)


@given(mail_text | payloads, st.booleans())
def test_python_decoders_read_our_qp(text, binary):
    encoded = run(QuotedPrintableEncoder(binary=binary), [text])
    expected = text if binary else normalise_line_breaks(text)
    assert binascii.a2b_qp(encoded) == expected
    assert quopri.decodestring(encoded) == expected
    assert python_email_decode("quoted-printable", encoded) == expected


@pytest.mark.parametrize("text, encoded", [
    (b"a=b", b"a=3Db"),
    (b"caf\xc3\xa9", b"caf=C3=A9"),
    (b"space \r\ntab\t\nend ", b"space=20\r\ntab=09\r\nend=20"),
    (b"two  spaces\n", b"two  spaces\r\n"),
    (b".\r\n..\n", b"=2E\r\n=2E.\r\n"),
    (b"From here\nFrom\nFromage\n", b"=46rom here\r\nFrom\r\nFromage\r\n"),
    (b"bare\rCR", b"bare=0DCR"),
    (b"x" * 76 + b"\n", b"x" * 75 + b"=\r\nx\r\n"),
    (b"x" * 74 + b"=" + b"\n", b"x" * 74 + b"=\r\n=3D\r\n"),   # an escape is never split
    (b"x" * 75 + b".y", b"x" * 75 + b"=\r\n=2Ey"),            # protection after a soft break too
])
def test_qp_text_mode_examples(text, encoded):
    assert run(QuotedPrintableEncoder(), [text]) == encoded


def test_qp_binary_mode_escapes_line_breaks_and_uses_soft_breaks_only():
    encoded = run(QuotedPrintableEncoder(binary=True), [b"a\r\nb\n" + b"z" * 100])
    assert encoded == b"a=0D=0Ab=0A" + b"z" * 64 + b"=\r\n" + b"z" * 36


def test_qp_encoder_protects_from_even_when_split_across_calls():
    assert run(QuotedPrintableEncoder(), [b"Fr", b"o", b"m the start"]) == b"=46rom the start"


def test_qp_encoder_keeps_only_a_trailing_space_between_calls():
    encoder = QuotedPrintableEncoder(binary=True)
    assert encoder.feed(b"y" * 10 + b" ") == b"y" * 10
    assert encoder.flush() == b"=20"


@pytest.mark.parametrize("line_length", [3, 77])
def test_qp_encoder_refuses_impossible_line_lengths(line_length):
    with pytest.raises(ValueError):
        QuotedPrintableEncoder(line_length=line_length)


# -- quoted-printable decoder ---------------------------------------------------------------

@given(dirty_qp, st.data())
def test_qp_decoder_output_and_defects_do_not_depend_on_chunking(encoded, data):
    whole, chunked = QuotedPrintableDecoder(), QuotedPrintableDecoder()
    assert run(chunked, data.draw(chunkings(encoded))) == run(whole, [encoded])
    assert chunked.defects == whole.defects


@given(payloads)
def test_qp_decoder_reads_binascii_output(payload):
    assert run(QuotedPrintableDecoder(), [binascii.b2a_qp(payload, istext=False)]) == payload


@pytest.mark.parametrize("encoded, decoded", [
    (b"a=\r\nb=\nc", b"abc"),                        # soft breaks, CRLF and LF
    (b"a=  \t\r\nb", b"ab"),                         # soft break with trailing whitespace
    (b"a\r\nb\nc", b"a\r\nb\nc"),                    # hard breaks come out as they came in
    (b"a  \r\nb \t\nc ", b"a\r\nb\nc"),              # trailing whitespace is deleted (RFC 2045 §6.7 (3))
    (b"a  =\r\nb", b"a  b"),                         # whitespace before a soft break is data
    (b"caf=c3=A9", b"caf\xc3\xa9"),                  # lower-case hex is accepted
    (b"no final break=", b"no final break"),         # "=" at the very end is a soft break
])
def test_qp_decoder_examples(encoded, decoded):
    decoder = QuotedPrintableDecoder()
    assert run(decoder, [encoded]) == decoded
    assert decoder.defects == []


@pytest.mark.parametrize("encoded, decoded, offsets", [
    (b"a=ZZb", b"a=ZZb", [1]),
    (b"a==41", b"a=A", [1]),
    (b"x=4", b"x=4", [1]),
    (b"=\rx=G1\r\n", b"=\rx=G1\r\n", [0, 3]),
])
def test_qp_decoder_passes_invalid_escapes_through_and_records_where(encoded, decoded, offsets):
    decoder = QuotedPrintableDecoder()
    assert run(decoder, [encoded]) == decoded
    assert [d.kind for d in decoder.defects] == [DefectKind.QP_INVALID_ESCAPE] * len(offsets)
    assert [d.offset for d in decoder.defects] == offsets


def test_qp_decoder_keeps_whitespace_runs_too_long_to_be_padding():
    long_run = b"a" + b" " * 999 + b"\r\nb"
    assert run(QuotedPrintableDecoder(), [long_run]) == long_run
    split = [long_run[:300], long_run[300:700], long_run[700:]]
    assert run(QuotedPrintableDecoder(), split) == long_run
    assert run(QuotedPrintableDecoder(), [b"a" + b" " * 998 + b"\r\nb"]) == b"a\r\nb"


def test_qp_decoder_holds_only_what_the_next_bytes_can_change():
    decoder = QuotedPrintableDecoder()
    assert decoder.feed(b"x" * 10_000) == b"x" * 10_000
    assert decoder.feed(b"y  ") == b"y"            # the spaces may be padding
    assert decoder.feed(b" " * 1000) == b" " * 1002  # no longer: too long
    assert decoder.feed(b"=4") == b""              # may become an escape
    assert run(decoder, [b"1"]) == b"A"


# -- defects per kind are capped (issue 8) ---------------------------------------------------

def listed_and_unlisted(defects) -> tuple[list, dict]:
    """The defects listed, and per kind how many a summary says were not."""
    return [d for d in defects if not d.more], {d.kind: d.more for d in defects if d.more}


def capped_like(all_defects: list, per_kind: int) -> tuple[list, dict, dict]:
    """What a cap of `per_kind` should make of the full list: the first per_kind of each
    kind, and per kind the count and the offset of the first of the rest."""
    listed, unlisted, first_unlisted = [], {}, {}
    for defect in all_defects:
        if sum(d.kind is defect.kind for d in listed) < per_kind:
            listed.append(defect)
        else:
            unlisted[defect.kind] = unlisted.get(defect.kind, 0) + 1
            first_unlisted.setdefault(defect.kind, defect.offset)
    return listed, unlisted, first_unlisted


@pytest.mark.parametrize("decoder_type, encoded", [
    (Base64Decoder, dirty_base64), (QuotedPrintableDecoder, dirty_qp)])
@given(data=st.data())
def test_decoders_list_the_first_defects_of_a_kind_and_count_the_rest_for_any_chunking(decoder_type, encoded, data):
    encoded = data.draw(encoded)
    capped, chunked, every = decoder_type(defects_per_kind=2), decoder_type(defects_per_kind=2), decoder_type(10**9)
    assert run(chunked, data.draw(chunkings(encoded))) == run(capped, [encoded]) == run(every, [encoded])
    assert chunked.defects == capped.defects
    listed, unlisted = listed_and_unlisted(capped.defects)
    expected_listed, expected_unlisted, first_unlisted = capped_like(every.defects, 2)
    assert (listed, unlisted) == (expected_listed, expected_unlisted)
    assert {d.kind: d.offset for d in capped.defects if d.more} == first_unlisted


@pytest.mark.parametrize("decoder_type, encoded", [
    (Base64Decoder, b"QU!!JD*~\x00 QQ==!!" * 6 + b"QU!"), (QuotedPrintableDecoder, b"a=ZZ=4 =\r\n=G" * 6)])
def test_decoders_count_defects_beyond_the_cap_alike_when_fed_byte_by_byte(decoder_type, encoded):
    """Every run of junk crosses a chunk boundary, before and after the cap is reached."""
    whole, bytewise = decoder_type(defects_per_kind=2), decoder_type(defects_per_kind=2)
    assert run(bytewise, [encoded[i:i + 1] for i in range(len(encoded))]) == run(whole, [encoded])
    assert bytewise.defects == whole.defects
    assert any(d.more for d in whole.defects)


@pytest.mark.parametrize("decoder_type, junk, kind", [
    (Base64Decoder, b"A!" * 38 + b"\r\n", DefectKind.BASE64_JUNK),
    (QuotedPrintableDecoder, b"=Z" * 38 + b"\r\n", DefectKind.QP_INVALID_ESCAPE),
])
def test_a_defect_every_two_bytes_keeps_a_hundred_and_counts_the_rest(decoder_type, junk, kind):
    """Issue 8: 50 MB of base64 "A!" or QP "=Z" made 25 million Defect objects (8 GB)."""
    decoder = decoder_type()
    lines = 30_000   # 2.3 MB, 1,140,000 defects
    for _ in range(lines // 1000):
        decoder.feed(junk * 1000)
    decoder.flush()
    listed, unlisted = listed_and_unlisted(decoder.defects)
    assert [d.kind for d in listed] == [kind] * MAX_DEFECTS_PER_KIND
    assert unlisted == {kind: lines * 38 - MAX_DEFECTS_PER_KIND}
    assert str(decoder.defects[-1]).startswith(f"... and {lines * 38 - MAX_DEFECTS_PER_KIND} more {kind.value} defects")


# -- identity and factories -----------------------------------------------------------------

def test_identity_codec_passes_bytes_through():
    codec = IdentityCodec()
    assert run(codec, [b"\x00\xff\r", b"\n"]) == b"\x00\xff\r\n"
    assert codec.defects == []


@pytest.mark.parametrize("name, kind", [
    ("base64", Base64Decoder), ("BASE64", Base64Decoder),
    (" Quoted-Printable ", QuotedPrintableDecoder),
    ("7bit", IdentityCodec), ("8BIT", IdentityCodec), ("binary", IdentityCodec),
    ("x-uuencode", IdentityCodec),
])
def test_make_decoder_is_case_insensitive_and_keeps_unknown_encodings_as_they_are(name, kind):
    assert type(make_decoder(name)) is kind


def test_make_encoder_passes_eol_on():
    assert run(make_encoder("Base64", eol=b"\n", text=False), [b"x" * 60]) == base64.encodebytes(b"x" * 60)
    assert run(make_encoder("quoted-printable", eol=b"\n", text=True), [b"a\r\nb"]) == b"a\nb"
    assert type(make_encoder("8bit", text=False)) is IdentityCodec


def test_make_encoder_refuses_an_unknown_encoding():
    with pytest.raises(UsageError):
        make_encoder("x-uuencode", text=False)


def test_make_encoder_turns_text_line_breaks_into_eol_in_every_encoding():
    assert run(make_encoder("base64", eol=b"\n", text=True), [b"a\r", b"\nb\rc"]) == base64.encodebytes(b"a\nb\rc")
    assert run(make_encoder("8bit", eol=b"\r\n", text=True), [b"a\nb\r", b"\nc"]) == b"a\r\nb\r\nc"
    assert run(make_encoder("quoted-printable", eol=b"\n", text=False), [b"a\r\nb"]) == b"a=0D=0Ab"
