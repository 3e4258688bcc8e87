"""composer + writer: the pre-scan, the transfer-encoding choice, the part tree, and the
properties every written message must have (`assert_clean_message` in helpers.py, which
the other encode tests share)."""

import email
import email.policy
import io
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.write.composer import (BOUNDARY_PREFIX, CRLF, LF, MAX_LINE_LENGTH, SCAN_CHUNK_SIZE, Content, ContentScan,
                              MessageBuilder, Role, choose_transfer_encoding, compose)
from mimekit.errors import DataError, IOFailure, NoInputError, UsageError
from mimekit.write.writer import WRITE_CHUNK_SIZE, message_bytes, write_message

from helpers import assert_clean_message
from strategies import chunkings

SENDER = "Zoë Ångström <zoe@example.org>"


def build(**kwargs) -> email.message.EmailMessage:
    kwargs.setdefault("from_", SENDER)
    return email.message_from_bytes(message_bytes(compose(**kwargs)), policy=email.policy.default)


def scan(data: bytes, forbidden: bytes = b"") -> ContentScan:
    result = ContentScan(forbidden)
    result.feed(data)
    return result


# -- the pre-scan and the choice -----------------------------------------------------------

@pytest.mark.parametrize("data, role, expected", [
    (b"", Role.DATA, "7bit"),
    (b"plain ascii\r\nlines\r\n", Role.DATA, "7bit"),
    (b"plain ascii\nlines\n", Role.TEXT, "7bit"),            # a body's LF become CRLF
    (b"plain ascii\nlines\n", Role.DATA, "base64"),            # a file's LF must come back
    (b"a\rb", Role.TEXT, "quoted-printable"),                 # bare CR is not 7bit
    (b"x" * 999, Role.TEXT, "quoted-printable"),              # a line over 998
    (b"x" * 998, Role.TEXT, "7bit"),
    (b"hi\nFrom me\n", Role.TEXT, "quoted-printable"),        # mbox would mangle it
    (b"From me\n", Role.TEXT, "quoted-printable"),
    ("Schöne Grüße aus Köln, wir sehen uns morgen beim Treffen im Büro.\n".encode(), Role.TEXT,
     "quoted-printable"),
    ("Привет, как дела? Всё хорошо.\n".encode(), Role.TEXT, "base64"),
    (b"ascii text with one NUL\0\n", Role.TEXT, "base64"),
    (b"binary\x00\xff\xfe" * 10, Role.DATA, "base64"),
    (b"ascii\r\n\xff\r\n" + b"text\r\n" * 10, Role.TEXT, "quoted-printable"),
    (b"ascii\r\n\xff\r\n" + b"text\r\n" * 10, Role.DATA, "base64"),   # files: 7bit or base64
])
def test_transfer_encoding_choice(data, role, expected):
    assert choose_transfer_encoding(scan(data), role, CRLF) == expected


def test_a_file_with_lf_lines_is_7bit_in_an_lf_message_but_not_in_a_crlf_one():
    unix_text = scan(b"one\ntwo\n")
    assert choose_transfer_encoding(unix_text, Role.DATA, LF) == "7bit"
    assert choose_transfer_encoding(unix_text, Role.DATA, CRLF) == "base64"
    assert choose_transfer_encoding(scan(b"one\r\ntwo\r\n"), Role.DATA, LF) == "base64"


def test_message_parts_are_always_7bit():
    assert choose_transfer_encoding(scan(b"\xff" * 100), Role.MESSAGE) == "7bit"


def test_a_part_containing_the_boundary_stem_is_not_7bit():
    stem = b"=_mimekit_ABC"
    data = b"text\r\n--=_mimekit_ABC.01\r\n"
    assert scan(data, stem).forbidden_found
    assert choose_transfer_encoding(scan(data, stem), Role.TEXT) == "quoted-printable"
    assert choose_transfer_encoding(scan(data, stem), Role.DATA) == "base64"


def test_the_share_of_escapes_decides_between_qp_and_base64():
    assert choose_transfer_encoding(scan(b"a" * 84 + b"\xff" * 16), Role.TEXT) == "quoted-printable"
    assert choose_transfer_encoding(scan(b"a" * 82 + b"\xff" * 18), Role.TEXT) == "base64"


_scanned_bytes = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"From ", b"=_mi", b"mekit_", b"x" * 500, b"\xe9", b"\0", b"a"]),
    max_size=12).map(b"".join)


@given(st.data())
def test_scan_is_the_same_for_any_chunking(data):
    content = data.draw(_scanned_bytes)
    whole = scan(content, b"=_mimekit_")
    pieces = ContentScan(b"=_mimekit_")
    for piece in data.draw(chunkings(content)):
        pieces.feed(piece)
    assert _facts(pieces) == _facts(whole)


def _facts(result: ContentScan) -> tuple:
    return (result.size, result.ascii, result.nul, result.qp_escapes, result.long_line, result.from_line,
            result.forbidden_found, result.bare_cr, result.bare_lf, result.crlf)


@given(_scanned_bytes)
def test_scan_facts_match_a_direct_computation(content):
    result = scan(content, b"=_mimekit_")
    lines = re.split(rb"\r\n|\r|\n", content)
    assert result.long_line == (max(map(len, lines)) > MAX_LINE_LENGTH)
    assert result.from_line == any(line.startswith(b"From ") for line in re.split(rb"\r\n|\n", content))
    assert result.bare_cr == bool(re.search(rb"\r(?!\n)", content))
    assert result.bare_lf == bool(re.search(rb"(?<!\r)\n", content))
    assert result.forbidden_found == (b"=_mimekit_" in content)
    assert result.ascii == content.isascii() and result.nul == (b"\0" in content)


# -- structure --------------------------------------------------------------------------------

def test_text_only_message_is_single_part(fixtures_dir):
    message = build(body=fixtures_dir / "body.txt", subject="Hello")
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == (fixtures_dir / "body.txt").read_text().replace("\n", "\r\n")


def test_text_and_html_make_an_alternative(fixtures_dir):
    message = build(body=fixtures_dir / "body.txt", html=fixtures_dir / "body.html")
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_inline_files_go_with_the_html_in_related(fixtures_dir):
    message = build(body=fixtures_dir / "body.txt", html=fixtures_dir / "body.html",
                    inline=[fixtures_dir / "tiny.png"], attachments=[fixtures_dir / "tiny.pdf"])
    assert message.get_content_type() == "multipart/mixed"
    alternative, pdf = message.iter_parts()
    text, related = alternative.iter_parts()
    assert related.get_content_type() == "multipart/related"
    assert related.get_param("type") == "text/html"
    html, png = related.iter_parts()
    assert png["Content-ID"] == "<tiny.png@inline>"
    assert "cid:tiny.png@inline" in html.get_content()
    assert png.get_content_disposition() == "inline"
    assert png.get_payload(decode=True) == (fixtures_dir / "tiny.png").read_bytes()
    assert pdf.get_content_disposition() == "attachment"


def test_inline_files_without_html_follow_the_body_inline(fixtures_dir):
    message = build(body=fixtures_dir / "body.txt", inline=[fixtures_dir / "tiny.png"])
    assert message.get_content_type() == "multipart/mixed"
    body, png = message.iter_parts()
    assert png.get_content_disposition() == "inline" and png["Content-ID"] == "<tiny.png@inline>"


def test_content_ids_are_unique_and_url_safe():
    builder = MessageBuilder()
    first = builder.add_inline(b"1", filename="a b.png")
    second = builder.add_inline(b"2", filename="a b.png")
    third = builder.add_inline(b"3", filename="Résumé..png")
    assert (first, second, third) == ("a_b.png@inline", "a_b.png-2@inline", "R_sum_.png@inline")


def test_attachments_only_make_a_mixed_message_without_body(fixtures_dir):
    message = build(attachments=[fixtures_dir / "tiny.png"])
    assert [p.get_content_type() for p in message.iter_parts()] == ["image/png"]


def test_no_content_at_all_is_an_empty_text_message():
    message = build()
    assert message.get_content_type() == "text/plain" and message.get_content() == ""


def test_boundaries_are_distinct_same_length_and_carry_the_prefix(fixtures_dir):
    message = build(body=fixtures_dir / "body.txt", html=fixtures_dir / "body.html",
                    inline=[fixtures_dir / "tiny.png"], attachments=[fixtures_dir / "tiny.pdf"])
    boundaries = [p.get_boundary() for p in message.walk() if p.is_multipart()]
    assert len(boundaries) == len(set(boundaries)) == 3
    assert len({len(b) for b in boundaries}) == 1
    assert all(b.startswith(BOUNDARY_PREFIX) for b in boundaries)


def test_each_message_gets_new_boundaries():
    first, second = (build(body=b"x", html=b"<p>x</p>") for _ in range(2))
    assert first.get_boundary() != second.get_boundary()


def test_content_containing_the_boundary_stem_is_still_delimited_correctly():
    builder = MessageBuilder()
    builder.add_header("From", SENDER)
    hostile = f"line\r\n--{builder._stem}.01\r\n--{builder._stem}.01--\r\n".encode()
    builder.attach(hostile, filename="hostile.txt")
    builder.attach(b"second", filename="second.txt")
    raw = message_bytes(builder.build())
    message = assert_clean_message(raw)
    parts = list(message.iter_parts())
    assert len(parts) == 2 and parts[0].get_payload(decode=True) == hostile


# -- parts -------------------------------------------------------------------------------------

def test_attachment_bytes_come_back_exactly_for_every_fixture(fixtures_dir):
    files = sorted(p for p in fixtures_dir.iterdir() if p.suffix in (".txt", ".bin", ".png", ".pdf", ".html"))
    message = build(attachments=files)
    for path, part in zip(files, message.iter_parts()):
        assert part.get_filename() == path.name
        assert part.get_payload(decode=True) == path.read_bytes(), path.name


@pytest.mark.parametrize("name, charset", [("utf8-scripts.txt", "utf-8"), ("shift_jis.txt", "shift_jis"),
                                           ("empty.txt", "us-ascii")])
def test_text_attachments_declare_their_detected_charset(fixtures_dir, name, charset):
    part, = build(attachments=[fixtures_dir / name]).iter_parts()
    assert part.get_param("charset") == charset


def test_body_text_in_any_charset_reads_back(fixtures_dir):
    for name, codec in (("latin1.txt", "latin-1"), ("shift_jis.txt", "shift_jis"), ("utf8-scripts.txt", "utf-8")):
        message = build(body=fixtures_dir / name)
        expected = (fixtures_dir / name).read_bytes().decode(codec).replace("\n", "\r\n")
        assert message.get_content() == expected, name


@pytest.mark.parametrize("encoding", ["auto", "base64", "quoted-printable"])
def test_body_line_breaks_read_back_the_same_in_every_encoding(encoding):
    message = build(body="один\rдва\r\nтри\nчетыре\r".encode(), encoding=encoding)
    assert message.get_content() == "один\rдва\r\nтри\r\nчетыре\r"   # a bare CR is data


@pytest.mark.parametrize("eol", [CRLF, LF])
def test_a_line_break_split_between_write_chunks_stays_one(eol):
    text = b"\xd0\x96" * (WRITE_CHUNK_SIZE // 2 - 1) + b"x\r\n" + b"\xd0\x96" * 10
    assert text[WRITE_CHUNK_SIZE - 1:WRITE_CHUNK_SIZE] == b"\r"   # the CR ends the first chunk read
    message = email.message_from_bytes(message_bytes(compose(from_=SENDER, body=text), eol),
                                       policy=email.policy.default)
    assert message["Content-Transfer-Encoding"] == "base64"
    assert message.get_payload(decode=True) == text.replace(b"\r\n", eol)


def test_attachment_type_override_applies_to_attachments_only(fixtures_dir):
    message = build(attachments=[fixtures_dir / "tiny.png", fixtures_dir / "tiny.pdf"],
                    inline=[fixtures_dir / "tiny.png"], attachment_type="application/x-custom")
    types = [p.get_content_type() for p in message.iter_parts()]
    assert types == ["image/png", "application/x-custom", "application/x-custom"]


def test_bad_attachment_type_is_a_usage_error(fixtures_dir):
    with pytest.raises(UsageError):
        compose(from_=SENDER, attachments=[fixtures_dir / "tiny.png"], attachment_type="png")


def test_forced_encodings_apply_to_every_part(fixtures_dir):
    for forced in ("base64", "quoted-printable"):
        message = build(body=fixtures_dir / "body.txt", attachments=[fixtures_dir / "tiny.png"],
                        encoding=forced)
        for part in message.walk():
            if not part.is_multipart():
                assert part["Content-Transfer-Encoding"] == forced
        assert message.get_payload()[1].get_payload(decode=True) == (fixtures_dir / "tiny.png").read_bytes()


def test_clean_attached_message_is_message_rfc822_in_7bit():
    inner = b"From: a@example.org\nTo: b@example.org\nSubject: inner\n\nFrom the body\n"
    builder = MessageBuilder("base64")
    builder.add_header("From", SENDER)
    leaf = builder.attach(inner, filename="forwarded.eml")
    assert leaf.content_type == "message/rfc822" and leaf.transfer_encoding() == "7bit"
    message = email.message_from_bytes(message_bytes(builder.build()), policy=email.policy.default)
    attached, = message.iter_parts()
    assert attached.get_content_type() == "message/rfc822"
    assert attached.get_content()["Subject"] == "inner"


def test_an_8bit_attached_message_travels_as_octet_stream():
    inner = "From: a@example.org\nSubject: inner\n\nGrüße\n".encode()
    builder = MessageBuilder()
    builder.add_header("From", SENDER)
    leaf = builder.attach(inner, filename="forwarded.eml", content_type="message/rfc822")
    assert leaf.content_type == "application/octet-stream"
    assert leaf.transfer_encoding() == "base64"
    attached, = email.message_from_bytes(message_bytes(builder.build()), policy=email.policy.default).iter_parts()
    assert attached.get_payload(decode=True) == inner


def test_scan_of_a_file_stops_once_it_cannot_be_7bit(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"\0\xff" + b"a" * (3 * SCAN_CHUNK_SIZE))
    leaf = MessageBuilder().attach(path)
    assert leaf.scan.size == SCAN_CHUNK_SIZE and leaf.transfer_encoding() == "base64"


def test_a_late_8bit_byte_in_a_long_attached_message_is_still_seen():
    inner = b"From: a@example.org\n\nFrom here on\n" + b"x\n" * SCAN_CHUNK_SIZE + b"\xe9\n"
    leaf = MessageBuilder().attach(inner, filename="long.eml", content_type="message/rfc822")
    assert leaf.content_type == "application/octet-stream"


def test_unknown_encoding_is_a_usage_error():
    with pytest.raises(UsageError):
        MessageBuilder("uuencode")


def test_bytes_attachment_needs_a_filename():
    with pytest.raises(UsageError):
        MessageBuilder().attach(b"data")


def test_missing_file_is_noinput_naming_it(tmp_path):
    with pytest.raises(NoInputError, match="nope.pdf"):
        MessageBuilder().attach(tmp_path / "nope.pdf")


def test_stream_content_is_spooled_and_read_twice(tmp_path):
    path = tmp_path / "body.txt"
    path.write_bytes(b"from a pipe\n")
    with open(path, "rb") as pipe_like:
        content = Content.from_stream(pipe_like)
    assert content.size() == 12
    message = build(body=content)
    assert message.get_content() == "from a pipe\r\n"


# -- headers -----------------------------------------------------------------------------------

def test_required_headers_are_generated(fixtures_dir):
    message = assert_clean_message(message_bytes(compose(from_=SENDER, body=fixtures_dir / "body.txt")))
    assert message["MIME-Version"] == "1.0"
    assert message["Message-ID"].endswith("@example.org>")
    assert message["Date"].datetime is not None


def test_date_and_message_id_can_be_given():
    message = build(headers=[("Date", "Mon, 01 Jan 2024 10:00:00 +0000"), ("Message-ID", "<given@example.org>")])
    assert message["Message-ID"] == "<given@example.org>"
    assert message.get_all("Date") == ["Mon, 01 Jan 2024 10:00:00 +0000"]


@pytest.mark.parametrize("name, value", [("Date", "yesterday"), ("Date", "Mon, 01 Jan 2024 10:00:00 +9999"),
                                         ("Message-ID", "no-angle@example.org"), ("Message-ID", "<a b@c>"),
                                         ("Message-ID", "<a@b@c>")])
def test_a_given_date_or_message_id_must_be_valid(name, value):
    with pytest.raises(DataError, match=name):
        MessageBuilder().add_header(name, value)


def test_message_id_for_a_sender_at_a_domain_literal_uses_the_host():
    message = build(from_="a@[192.0.2.1]")
    assert message["Message-ID"].startswith("<") and "[" not in message["Message-ID"]


def test_bcc_is_written_for_send_to_find():
    message = build(to=["a@example.org"], bcc=["hidden@example.org"])
    assert message["Bcc"] == "hidden@example.org"


def test_repeated_address_options_merge_into_one_field():
    message = build(to=["a@example.org", "Bé <b@example.org>"], headers=[("To", "c@example.org")])
    assert len(message.get_all("To")) == 1
    assert [a.addr_spec for a in message["To"].addresses] == ["a@example.org", "b@example.org", "c@example.org"]
    assert message["To"].addresses[1].display_name == "Bé"


def test_non_ascii_subject_and_extra_headers_are_encoded():
    message = build(subject="Grüße – 履歴書", headers=[("X-Note", "Ça va")])
    assert message["Subject"] == "Grüße – 履歴書"
    assert message["X-Note"] == "Ça va"


@pytest.mark.parametrize("name, value", [("Subject", "a\r\nBcc: x@example.org"), ("X-Note", "a\nb"),
                                         ("To", "a@example.org\r\nBcc: x@example.org")])
def test_cr_or_lf_in_a_header_value_is_refused(name, value):
    with pytest.raises(DataError):
        MessageBuilder().add_header(name, value)


@pytest.mark.parametrize("argument", [
    dict(from_="a\x00@example.org"), dict(from_=["Zoë <zoe@example.org>", '"Z\x00" <z@example.org>']),
    dict(to=["b\x00@x"]), dict(cc=["Carol\x00 <c@example.org>"]), dict(bcc=["d@example.org\x00"]),
    dict(subject="a\x00b"), dict(headers=[("X-Note", "a\x00b")]), dict(headers=[("Reply-To", "r\x00@x")]),
    dict(headers=[("Date", "Thu, 01 Jan 2026 10:00:00 +0000\x00")]), dict(headers=[("Message-ID", "<a\x00@b>")]),
    dict(headers=[("In-Reply-To", "<a@b>\x00")]),
], ids=lambda argument: "-".join(argument))
def test_nul_in_any_header_value_is_refused_before_anything_is_written(argument):
    argument.setdefault("from_", SENDER)
    with pytest.raises(DataError, match="NUL"):
        compose(**argument)


@pytest.mark.parametrize("add", [MessageBuilder.attach, MessageBuilder.add_inline])
def test_nul_in_a_file_name_is_refused_when_the_file_is_added(add):
    with pytest.raises(DataError, match="NUL"):
        add(MessageBuilder(), b"data", filename="invoice.pdf\x00.exe")


def test_encode_refuses_an_address_with_a_control_character_and_writes_nothing(tmp_path):
    """An address is never encoded, so an ESC in one would reach the header raw."""
    output = tmp_path / "m.eml"
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "encode", "--from", "a@example.org",
                             "--to", "b\x1bc\x07@example.org", "-o", str(output)],
                            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 65 and b"unprintable" in result.stderr
    assert not output.exists()


@pytest.mark.parametrize("name", ["Content-Type", "MIME-Version", "content-transfer-encoding"])
def test_structural_fields_cannot_be_given(name):
    with pytest.raises(UsageError):
        MessageBuilder().add_header(name, "x")


def test_single_fields_cannot_be_given_twice():
    builder = MessageBuilder()
    builder.add_header("Subject", "one")
    with pytest.raises(UsageError):
        builder.add_header("subject", "two")


def test_bad_field_name_is_refused():
    with pytest.raises((UsageError, DataError)):
        MessageBuilder().add_header("Bad Name", "x")


def test_a_message_needs_a_sender():
    with pytest.raises(UsageError):
        MessageBuilder().build()


# -- the written message -----------------------------------------------------------------------

def test_full_message_is_clean_in_crlf_and_lf(fixtures_dir):
    kwargs = dict(from_=SENDER, to=["a@example.org"], subject="Réunion – 会議", body=fixtures_dir / "body.txt",
                  html=fixtures_dir / "body.html", inline=[fixtures_dir / "tiny.png"],
                  attachments=sorted(p for p in fixtures_dir.iterdir() if p.suffix != ".py"))
    message = compose(**kwargs)
    assert_clean_message(message_bytes(message, CRLF), CRLF)
    lf_raw = message_bytes(message, LF)
    assert_clean_message(lf_raw, LF)


def test_lf_message_keeps_attachment_bytes(fixtures_dir):
    files = sorted(p for p in fixtures_dir.iterdir() if p.suffix != ".py")
    message = email.message_from_bytes(message_bytes(compose(from_=SENDER, attachments=files), LF),
                                       policy=email.policy.default)
    for path, part in zip(files, message.iter_parts()):
        assert part.get_payload(decode=True) == path.read_bytes(), path.name


def test_a_7bit_file_that_changes_before_it_is_written_is_refused(tmp_path):
    log = tmp_path / "growing.log"
    log.write_bytes(b"line one\r\n")
    message = compose(from_=SENDER, attachments=[log])
    with open(log, "ab") as appending:
        appending.write("ligne trois: é\r\n".encode())
    with pytest.raises(IOFailure, match="growing.log"):
        message_bytes(message)


def test_large_content_is_streamed_in_chunks(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 20000)   # 5 MB, several write chunks
    reads = []
    message = compose(from_=SENDER, attachments=[big])
    write_message(message, io.BytesIO(), on_progress=reads.append)
    assert sum(reads) == big.stat().st_size and len(reads) > 1
    assert message.content_size() == big.stat().st_size

