"""mimekit.write.downgrade: an 8-bit message made 7-bit clean, changing only what must change.

Every converted message must pass the strict checker (mimekit.read.check) and read back in
Python's `email` (policy.default) with the same decoded content and no defects; the bytes
that needed no change must come out as they went in.
"""

import base64
import email
import email.policy
import io
import os
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.read.check import check_message
from mimekit.write.downgrade import downgrade_to_7bit
from mimekit.errors import DataError, IOFailure
from mimekit.limits import Limits
from strategies import chunkings

HEADER = (b"From: Alice <alice@example.test>\r\n"
          b"To: Bob <bob@example.test>\r\n"
          b"Subject: test\r\n"
          b"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n"
          b"Message-ID: <downgrade@example.test>\r\n"
          b"MIME-Version: 1.0\r\n")
TEXT = "Grüße aus Köln – a café, a naïve résumé.\r\nSecond line, plain ASCII.\r\n.leading dot\r\nFrom here\r\n"
BINARY = bytes(range(256)) + b"\r\n\n\r\x00" + os.urandom(3000)


def downgrade(message: bytes, **options) -> bytes:
    return b"".join(downgrade_to_7bit(lambda: [message], **options))


def read_back(converted: bytes) -> email.message.EmailMessage:
    """The converted message as Python reads it; it must be strictly 7-bit and defect-free."""
    assert converted.isascii()
    report = check_message(io.BytesIO(converted))
    assert report.ok, report.violations
    parsed = email.message_from_bytes(converted, policy=email.policy.default)
    for part in parsed.walk():
        assert not part.defects, (part.get_content_type(), part.defects)
    return parsed


def text_message(body: bytes, charset: str = "utf-8", encoding: bytes = b"8bit") -> bytes:
    return (HEADER + b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n"
            b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body)


MULTIPART = (HEADER + b"Content-Type: multipart/mixed; boundary=\"outer-b\"\r\n\r\n"
             b"This is a multi-part message in MIME format.\r\n"
             b"--outer-b\r\n"
             b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
             b"Plain ASCII body, untouched.\r\n"
             b"--outer-b\r\n"
             b"Content-Type: application/octet-stream\r\n"
             b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
             b"Content-Transfer-Encoding: binary\r\n\r\n" + BINARY + b"\r\n"
             b"--outer-b\r\n"
             b"Content-Type: image/png\r\n"
             b"Content-Transfer-Encoding: base64\r\n\r\n"
             b"iVBORw0KGgo=\r\n"
             b"--outer-b--\r\n"
             b"epilogue\r\n")


# --- bodies -------------------------------------------------------------------------------

def test_8bit_text_becomes_quoted_printable_and_reads_back_the_same():
    converted = downgrade(text_message(TEXT.encode()))
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in converted
    assert b"Content-Transfer-Encoding: 8bit" not in converted
    assert b"Gr=C3=BC=C3=9Fe aus K=C3=B6ln" in converted
    assert read_back(converted).get_content() == TEXT


def test_text_that_is_mostly_8bit_gets_base64_as_the_composer_would_choose():
    text = "履歴書と職務経歴書を添付します。\r\nよろしくお願いします。\r\n"
    converted = downgrade(text_message(text.encode()))
    assert b"Content-Transfer-Encoding: base64\r\n" in converted
    assert read_back(converted).get_content() == text


def test_text_in_a_legacy_charset_keeps_its_bytes_and_its_label():
    text = "Ærøskøbing, façade, Straße\r\n"
    converted = downgrade(text_message(text.encode("iso-8859-1"), charset="iso-8859-1"))
    part = read_back(converted)
    assert part.get_content_charset() == "iso-8859-1"
    assert part.get_payload(decode=True) == text.encode("iso-8859-1")


def test_8bit_binary_becomes_base64_byte_exact():
    message = (HEADER + b"Content-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\n" + BINARY)
    converted = downgrade(message)
    assert b"Content-Transfer-Encoding: base64\r\n" in converted
    assert read_back(converted).get_content() == BINARY


def test_a_body_with_a_line_over_998_bytes_is_reencoded_even_if_it_is_ascii():
    text = "x" * 2500 + "\r\nshort\r\n"
    converted = downgrade(text_message(text.encode(), charset="us-ascii", encoding=b"7bit"))
    assert max(map(len, converted.split(b"\r\n"))) <= 76
    assert read_back(converted).get_content() == text


def test_one_line_base64_is_rewrapped():
    encoded = base64.b64encode(BINARY)   # one line of 4,000 characters
    message = (HEADER + b"Content-Type: application/octet-stream\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"\r\n")
    converted = downgrade(message)
    assert max(map(len, converted.split(b"\r\n"))) <= 76
    assert read_back(converted).get_content() == BINARY


def test_raw_8bit_in_a_quoted_printable_body_is_encoded_properly():
    body = "A raw café in a quoted-printable body, and =3D an escape.\r\n".encode()
    converted = downgrade(text_message(body, encoding=b"quoted-printable"))
    assert b"A raw caf=C3=A9 in a quoted-printable body, and =3D an escape." in converted
    assert read_back(converted).get_content() == "A raw café in a quoted-printable body, and = an escape.\r\n"


def test_a_7bit_message_comes_out_byte_for_byte():
    message = MULTIPART.replace(BINARY, b"now plain ASCII").replace(b"binary", b"7bit")
    assert downgrade(message) == message


# --- headers ------------------------------------------------------------------------------

def test_8bit_subject_and_display_names_become_rfc2047():
    message = text_message(b"Hello.\r\n", encoding=b"7bit")
    message = message.replace(b"Subject: test", "Subject: Grüße, 履歴書 – résumé".encode())
    message = message.replace(b"From: Alice", "From: Zoë Ærø".encode())
    message = message.replace(b"To: Bob <bob@example.test>",
                              "To: Jörg <joerg@example.test>, \"Müller, Ann\" <ann@example.test>".encode())
    converted = downgrade(message)
    assert b"=?utf-8?" in converted
    parsed = read_back(converted)
    assert parsed["Subject"] == "Grüße, 履歴書 – résumé"
    assert parsed["From"].addresses[0].display_name == "Zoë Ærø"
    assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
        ("Jörg", "joerg@example.test"), ("Müller, Ann", "ann@example.test")]
    assert converted.endswith(b"\r\n\r\nHello.\r\n")   # the 7-bit body is not touched
    assert b"Content-Transfer-Encoding: 7bit\r\n" in converted


def test_a_raw_utf8_file_name_becomes_rfc2231():
    name = "Résumé – 履歴書.pdf"
    message = MULTIPART.replace(b'filename="data.bin"', f'filename="{name}"'.encode())
    parsed = read_back(downgrade(message))
    [attachment] = [p for p in parsed.walk() if p.get_content_type() == "application/octet-stream"]
    assert attachment.get_filename() == name
    assert attachment.get_content() == BINARY


def test_7bit_header_fields_are_kept_byte_for_byte_beside_a_converted_one():
    folded = b"X-Folded: one\r\n\ttwo  (odd   spacing)\r\n"
    message = HEADER.replace(b"Subject: test", "Subject: café".encode()) + folded + b"\r\nbody\r\n"
    converted = downgrade(message)
    assert converted.startswith(HEADER.split(b"Subject")[0])
    assert folded in converted and b"Date: Thu, 01 Jan 2026 10:00:00 +0000\r\n" in converted


# --- structure ----------------------------------------------------------------------------

def test_in_a_multipart_only_the_8bit_part_changes():
    converted = downgrade(MULTIPART)
    before, _, after = MULTIPART.partition(b"Content-Transfer-Encoding: binary\r\n\r\n" + BINARY)
    new_before, _, rest = converted.partition(b"Content-Transfer-Encoding: base64\r\n\r\n")
    assert new_before == before   # headers, preamble, the first part and the next header
    assert converted.endswith(after)   # the delimiter, the last part, the epilogue
    parsed = read_back(converted)
    leaves = [p for p in parsed.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in leaves] == ["text/plain", "application/octet-stream", "image/png"]
    assert leaves[0].get_content() == "Plain ASCII body, untouched."
    assert leaves[1].get_content() == BINARY
    assert leaves[2].get_content() == b"\x89PNG\r\n\x1a\n"


def test_nested_message_rfc822_is_converted_from_the_inside():
    inner = (b"From: Carol <carol@example.test>\r\n"
             + "Subject: Forwarded – café\r\n".encode() +
             b"Date: Wed, 31 Dec 2025 09:00:00 +0000\r\n"
             b"Message-ID: <inner@example.test>\r\n"
             b"Content-Type: multipart/alternative; boundary=inner-b\r\n\r\n"
             b"--inner-b\r\n"
             b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + TEXT.encode() + b"\r\n"
             b"--inner-b\r\n"
             b"Content-Type: text/html; charset=utf-8\r\n"
             b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "<p>naïve</p>\r\n".encode() + b"\r\n"
             b"--inner-b--\r\n")
    message = (HEADER + b"Content-Type: multipart/mixed; boundary=outer-b\r\n\r\n"
               b"--outer-b\r\n"
               b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
               b"See the forwarded message.\r\n"
               b"--outer-b\r\n"
               b"Content-Type: message/rfc822\r\n"
               b"Content-Transfer-Encoding: 8bit\r\n\r\n" + inner + b"\r\n"
               b"--outer-b--\r\n")
    converted = downgrade(message)
    assert b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n" in converted
    parsed = read_back(converted)
    [forwarded] = [p for p in parsed.walk() if p.get_content_type() == "message/rfc822"]
    inner_message = forwarded.get_content()
    assert inner_message["Subject"] == "Forwarded – café"
    assert inner_message["MIME-Version"] == "1.0"   # it is MIME now, and must say so
    plain, html = inner_message.iter_parts()
    assert plain.get_content() == TEXT
    assert html.get_content() == "<p>naïve</p>\r\n"


def test_a_message_without_mime_version_gets_one():
    message = b"From: a@example.test\r\nSubject: x\r\n\r\n" + "café\r\n".encode()
    converted = downgrade(message)
    assert converted.startswith(b"From: a@example.test\r\nSubject: x\r\n")
    assert b"MIME-Version: 1.0\r\n" in converted
    parsed = email.message_from_bytes(converted, policy=email.policy.default)
    assert parsed.get_payload(decode=True) == "café\r\n".encode()


def test_a_part_without_header_fields_gets_its_transfer_encoding():
    message = (HEADER + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\n\r\n" + "implicit text/plain, 8-bit: café\r\n".encode() + b"\r\n--b--\r\n")
    converted = downgrade(message)
    assert b"--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nimplicit" in converted
    [part] = email.message_from_bytes(converted, policy=email.policy.default).iter_parts()
    assert part.get_payload(decode=True) == "implicit text/plain, 8-bit: café\r\n".encode()


def test_content_that_would_expose_a_boundary_is_kept_in_base64():
    # A text part whose old encoding hid a line "--b": quoted-printable or 7bit would turn
    # it into a delimiter of the enclosing multipart. The one-line base64 must be re-encoded.
    hidden = "before\r\n--b\r\nafter, at the café: " + "text " * 200 + "\r\n"
    encoded = base64.b64encode(hidden.encode())
    message = (HEADER + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
               b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"\r\n--b--\r\n")
    parsed = read_back(downgrade(message))
    [part] = parsed.iter_parts()
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content() == hidden


# --- what cannot be converted -------------------------------------------------------------

@pytest.mark.parametrize("message, reason", [
    (HEADER.replace(b"To: Bob <bob@example.test>", "To: jörg@bücher.example".encode()) + b"\r\nx\r\n",
     "not ASCII"),
    (HEADER.replace(b"<downgrade@example.test>", "<café@example.test>".encode()) + b"\r\nx\r\n",
     "Message-ID has 8-bit"),
    (MULTIPART.replace(b"This is a multi-part", "Ceci est un message en plusieurs parties é".encode()),
     "8-bit data at byte"),
    (HEADER + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: x-custom\r\n\r\n" + "é\r\n".encode(),
     "unknown transfer encoding"),
])
def test_what_has_no_7bit_form_is_refused(message, reason):
    with pytest.raises(DataError, match=reason):
        downgrade(message)


def test_a_message_beyond_the_parser_limits_is_refused():
    with pytest.raises(DataError, match="limit-parts"):
        downgrade(MULTIPART, limits=Limits(max_parts=3))


def test_a_message_that_changes_between_the_two_passes_is_an_io_failure():
    versions = iter([text_message(TEXT.encode()), text_message(TEXT.encode() + b"more")])
    with pytest.raises(IOFailure, match="changed"):
        b"".join(downgrade_to_7bit(lambda: [next(versions)]))


# --- streaming ----------------------------------------------------------------------------

@given(st.data())
def test_any_chunking_of_either_pass_gives_the_same_output(data):
    message = MULTIPART.replace(b"Subject: test", "Subject: Grüße".encode())
    passes = iter([data.draw(chunkings(message)), data.draw(chunkings(message))])
    chunked = b"".join(downgrade_to_7bit(lambda: next(passes)))
    assert chunked == downgrade(message)


@given(st.data(), st.binary(max_size=600), st.sampled_from([b"text/plain; charset=utf-8",
                                                           b"application/octet-stream"]))
def test_any_body_reads_back_the_same(data, body, content_type):
    message = (HEADER + b"Content-Type: " + content_type + b"\r\n"
               b"Content-Transfer-Encoding: binary\r\n\r\n" + body)
    passes = iter([data.draw(chunkings(message)), data.draw(chunkings(message))])
    converted = b"".join(downgrade_to_7bit(lambda: next(passes)))
    assert converted.isascii()
    decoded = email.message_from_bytes(converted, policy=email.policy.default).get_payload(decode=True)
    if content_type.startswith(b"text/"):   # text: a line break is a line break, CRLF or LF
        decoded, body = decoded.replace(b"\r\n", b"\n"), body.replace(b"\r\n", b"\n")
    assert decoded == body


_lines = st.lists(st.binary(max_size=1100).map(lambda line: line.replace(b"\r", b"").replace(b"\n", b"")),
                  max_size=4).map(b"\r\n".join)
_parts = st.lists(st.tuples(st.sampled_from([b"text/plain; charset=utf-8", b"application/octet-stream"]),
                            st.sampled_from([b"7bit", b"8bit", b"binary"]), _lines), min_size=1, max_size=4)


@given(st.data(), st.from_regex(r"[^\x00-\x1f\x7f]{1,60}", fullmatch=True).filter(lambda s: s.strip() == s),
       _parts)
def test_any_multipart_message_converts_to_a_valid_one_with_the_same_content(data, subject, parts):
    message = HEADER.replace(b"Subject: test", b"Subject: " + subject.encode())
    message += b"Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n"
    for content_type, encoding, body in parts:
        message += (b"--=_b\r\nContent-Type: " + content_type + b"\r\n"
                    b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body + b"\r\n")
    message += b"--=_b--\r\n"
    passes = iter([data.draw(chunkings(message)), data.draw(chunkings(message))])
    converted = b"".join(downgrade_to_7bit(lambda: next(passes)))
    parsed = read_back(converted)
    assert parsed["Subject"] == subject
    assert [part.get_payload(decode=True) for part in parsed.iter_parts()] == [body for _, _, body in parts]


def test_memory_stays_bounded_however_large_the_body():
    chunk = (bytes(range(256)) * 256)   # 64 KiB with every byte value
    count = 256                          # 16 MiB of 8-bit data, never held whole

    def read():
        yield HEADER + b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        for _ in range(count):
            yield chunk

    tracemalloc.start()
    try:
        size = sum(len(out) for out in downgrade_to_7bit(read))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > len(chunk) * count * 4 // 3
    assert peak < 4 * 1024 * 1024
