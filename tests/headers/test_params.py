"""Content-Type / Content-Disposition parameters: RFC 2045, RFC 2231 and what mailers send;
file names checked against Python's `email` as an oracle and stalwart's header vectors."""

import re
from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import given

from corpus import stalwart_vectors
from helpers import fastest_of_three, first_field
from mimekit.defects import DefectKind
from mimekit.errors import DataError
from mimekit.headers.folding import unfold
from mimekit.headers.params import (HeaderParams, format_attachment_headers, format_params_header,
                            parse_params_header, preferred_filename)
from strategies import file_names, header_junk


def kinds(defects):
    return [defect.kind for defect in defects]


def field_values(block: bytes) -> dict[str, bytes]:
    """Unfolded field values of a header block, by lowercased name."""
    fields = re.split(rb"\r\n(?![ \t])", unfold(block).rstrip(b"\r\n"))
    return {name.strip().lower().decode(): value for name, value in (f.split(b":", 1) for f in fields)}


# --- reading ----------------------------------------------------------------------------

def test_value_and_parameters():
    parsed, defects = parse_params_header(b'Text/Plain; Charset="utf-8"; format=flowed')
    assert parsed == HeaderParams("text/plain", {"charset": "utf-8", "format": "flowed"})
    assert defects == []


def test_comments_and_spaces_around_equals_are_tolerated():
    parsed, defects = parse_params_header(" (hello) text (plain) / plain; charset = us-ascii (Plain text)")
    assert parsed == HeaderParams("text/plain", {"charset": "us-ascii"})
    assert defects == []


def test_rfc_2231_continuations_with_charset_and_language():
    raw = ("application/x-stuff;\r\n title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
           " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n title*2=\"isn't it!\"")
    parsed, defects = parse_params_header(raw)
    assert parsed.params == {"title": "This is even more ***fun*** isn't it!"}
    assert parsed.languages == {"title": "en"}
    assert defects == []


def test_rfc_2231_single_extended_value_with_charset():
    parsed, _ = parse_params_header("attachment; filename*=iso-8859-1'de'Gr%FC%DFe.txt")
    assert parsed.params["filename"] == "Grüße.txt" and parsed.languages == {"filename": "de"}


def test_a_character_split_between_rfc_2231_sections_survives():
    raw = "attachment; filename*0*=utf-8''%E2%82; filename*1*=%AC.txt"     # "€" = E2 82 | AC
    parsed, defects = parse_params_header(raw)
    assert parsed.params["filename"] == "€.txt" and defects == []


def test_sections_out_of_order_are_joined_in_number_order():
    parsed, defects = parse_params_header("a/b; name*1=b; name*0=a; name*2=c")
    assert parsed.params["name"] == "abc" and defects == []


def test_a_missing_section_is_reported_and_the_rest_joined():
    parsed, defects = parse_params_header("a/b; name*0=a; name*2=c")
    assert parsed.params["name"] == "ac"
    assert kinds(defects) == [DefectKind.PARAMETER_MALFORMED]


def test_extended_value_wins_over_the_plain_fallback():
    raw = 'attachment; filename="fallback.txt"; filename*=utf-8\'\'r%C3%A9sum%C3%A9.txt'
    parsed, defects = parse_params_header(raw)
    assert parsed.params["filename"] == "résumé.txt" and defects == []


def test_rfc_2047_inside_a_quoted_file_name_is_decoded():
    raw = 'attachment; filename="=?utf-8?B?0YTQsNC50LsucGRm?="'
    assert parse_params_header(raw) == (HeaderParams("attachment", {"filename": "файл.pdf"}), [])


def test_rfc_2047_words_folded_inside_the_quotes_are_joined():
    raw = ('attachment;\r\n\tfilename="=?utf-8?Q?Auftragsbest=C3=A4tigung_Xxxxx_Xxxxxx_XXXXXXXXXX=2EPD?=\r\n'
           ' =?utf-8?Q?F?="')
    parsed, _ = parse_params_header(raw)
    assert parsed.params["filename"] == "Auftragsbestätigung Xxxxx Xxxxxx XXXXXXXXXX.PDF"


def test_a_boundary_is_never_decoded_as_rfc_2047():
    boundary = "=?utf-8?q?not_a_word?="
    parsed, _ = parse_params_header(f'multipart/mixed; boundary="{boundary}"')
    assert parsed.params["boundary"] == boundary


def test_raw_utf8_and_raw_latin1_file_names():
    assert parse_params_header('attachment; filename="Grüße.txt"'.encode())[0].params["filename"] == "Grüße.txt"
    parsed, defects = parse_params_header(b'attachment; filename="Gr\xfc\xdfe.txt"')
    assert parsed.params["filename"] == "Grüße.txt"
    assert kinds(defects) == [DefectKind.CHARSET_FALLBACK]


def test_duplicate_parameter_keeps_the_first_and_is_reported():
    parsed, defects = parse_params_header('attachment; filename="a.txt"; filename="evil.exe"')
    assert parsed.params["filename"] == "a.txt"
    assert kinds(defects) == [DefectKind.PARAMETER_MALFORMED]


def test_missing_semicolons_are_tolerated():
    parsed, defects = parse_params_header("message/external-body\r\n access-type=mail-server\r\n"
                                          ' server="listserv@bogus.bitnet"')
    assert parsed == HeaderParams("message/external-body",
                                  {"access-type": "mail-server", "server": "listserv@bogus.bitnet"})
    assert kinds(defects) == [DefectKind.PARAMETER_MALFORMED] * 2


def test_an_unquoted_value_with_spaces_runs_to_the_semicolon():
    parsed, defects = parse_params_header("attachment; filename=My Document 2.pdf; size=10")
    assert parsed.params == {"filename": "My Document 2.pdf", "size": "10"}
    assert set(kinds(defects)) == {DefectKind.PARAMETER_MALFORMED}


def test_an_unterminated_quote_runs_to_the_end():
    parsed, defects = parse_params_header('inline; filename="open.txt')
    assert parsed.params["filename"] == "open.txt"
    assert kinds(defects) == [DefectKind.PARAMETER_MALFORMED]


@pytest.mark.parametrize("raw", ["text/plain; =x; ; name", "text/plain; (open", 'a/b; "q"=1', "text/plain;;;"])
def test_junk_is_skipped(raw):
    parsed, _ = parse_params_header(raw)
    assert parsed.value == "text/plain" or parsed.value == "a/b"
    assert parsed.params == {}


def test_defect_offsets_are_bytes_from_the_value_start():
    _, defects = parse_params_header('é; a="x'.encode())
    assert defects[0].offset == len('é; a='.encode())


@given(header_junk)
def test_any_value_is_parsed_without_raising_and_defects_point_inside_it(raw):
    parsed, defects = parse_params_header(raw)
    assert parsed.value == parsed.value.lower() and all(key == key.lower() for key in parsed.params)
    assert all(0 <= defect.offset <= len(raw) for defect in defects)


def test_file_name_is_preferred_over_the_type_name():
    content_type = HeaderParams("application/pdf", {"name": "from-type.pdf"})
    disposition = HeaderParams("attachment", {"filename": "from-disposition.pdf"})
    assert preferred_filename(content_type, disposition) == "from-disposition.pdf"
    assert preferred_filename(content_type, HeaderParams("attachment", {})) == "from-type.pdf"
    assert preferred_filename(content_type, None) == "from-type.pdf"
    assert preferred_filename(None, None) is None


# --- writing ----------------------------------------------------------------------------

def test_tokens_are_bare_and_other_ascii_quoted():
    line = format_params_header("Content-Type", "text/plain", [("charset", "utf-8"), ("x-note", 'a "b" c')])
    assert line == b'Content-Type: text/plain; charset=utf-8; x-note="a \\"b\\" c"\r\n'


def test_non_ascii_value_is_rfc_2231_encoded():
    line = format_params_header("Content-Disposition", "attachment", [("filename", "résumé.pdf")])
    assert line == b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"


def test_a_long_file_name_uses_continuations_within_78_columns():
    name = "Quartalsbericht über die Entwicklung der Märkte im dritten Quartal 2024 (final).pdf"
    block = format_params_header("Content-Disposition", "attachment", [("filename", name)])
    assert b"filename*0*=utf-8''" in block and b"filename*1*=" in block
    assert all(len(line) <= 78 for line in block.split(b"\r\n"))
    assert parse_params_header(field_values(block)["content-disposition"])[0].params["filename"] == name


def test_a_long_boundary_is_never_split():
    boundary = "=_" + "b" * 70
    block = format_params_header("Content-Type", "multipart/mixed", [("boundary", boundary)])
    assert f'boundary="{boundary}"'.encode() in block


@pytest.mark.parametrize("params", [[("filename", "a\r\nb")], [("file name", "x")], [("name*", "x")]])
def test_cr_lf_and_bad_parameter_names_are_refused(params):
    with pytest.raises(DataError):
        format_params_header("Content-Disposition", "attachment", params)


def test_short_ascii_attachment_name_is_plain_in_both_headers():
    assert format_attachment_headers("report.pdf", "application/pdf") == (
        b'Content-Type: application/pdf; name="report.pdf"\r\n'
        b'Content-Disposition: attachment; filename="report.pdf"\r\n')


def test_non_ascii_attachment_name_is_rfc_2047_for_outlook_and_rfc_2231_for_others():
    block = format_attachment_headers("Grüße.pdf", "application/pdf", disposition="inline",
                                      extra_type_params=[("x-mac-type", "50444620")])
    assert block == (b'Content-Type: application/pdf; x-mac-type=50444620;\r\n'
                     b' name="=?utf-8?b?R3LDvMOfZS5wZGY=?="\r\n'
                     b"Content-Disposition: inline; filename*=utf-8''Gr%C3%BC%C3%9Fe.pdf\r\n")


def test_attachment_name_with_encoded_word_syntax_is_not_written_plainly():
    block = format_attachment_headers("=?utf-8?q?x?=.txt", "text/plain")
    values = field_values(block)
    assert parse_params_header(values["content-type"])[0].params["name"] == "=?utf-8?q?x?=.txt"
    assert parse_params_header(values["content-disposition"])[0].params["filename"] == "=?utf-8?q?x?=.txt"


def test_attachment_name_with_cr_lf_is_refused():
    with pytest.raises(DataError):
        format_attachment_headers("a\nContent-Type: text/html", "text/plain")


@given(file_names)
def test_any_file_name_reads_back_exactly_in_pythons_email_and_ours(name):
    block = format_attachment_headers(name, "application/octet-stream")
    message = BytesParser(policy=policy.default).parsebytes(
        b"MIME-Version: 1.0\r\n" + block + b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n")
    assert message.get_filename() == name
    assert message.defects == [] and message["Content-Disposition"].defects == ()
    # The RFC 2047 name= that Outlook reads is, to Python, an encoded-word in a quoted string.
    assert {str(d) for d in message["Content-Type"].defects} <= {
        "encoded word inside quoted string", "missing trailing whitespace after encoded-word"}
    assert block.isascii() and all(len(line) <= 78 for line in block.split(b"\r\n"))
    values = field_values(block)
    assert parse_params_header(values["content-type"]) == (
        HeaderParams("application/octet-stream", {"name": name}), [])
    assert parse_params_header(values["content-disposition"]) == (
        HeaderParams("attachment", {"filename": name}), [])


# --- stalwart's vectors -----------------------------------------------------------------

# Where stalwart's conventions and ours differ on purpose:
# - adjacent encoded-words inside a quoted value are joined without the whitespace between
#   them (RFC 2047 §6.2), as stalwart itself does for the same words unquoted;
# - parameter names that are not RFC 2231 `name`, `name*`, `name*N` or `name*N*` (`3**`,
#   `*5**6*`, `1 * 9...9 *`) are skipped and reported, not guessed at: a hostile header
#   must not be able to produce a file name by confusing the parser.
STALWART_CONTENT_TYPE_DIFFERENCES = {
    'image/jpeg;\n   name="=?iso-8859-1?B?4Q==?= =?utf-8?B?w6k=?= =?iso-8859-1?q?=ED?=.jpeg"\n',
    "malicious/attempt; 1*2*=a; 3**=b; 4***=c; *5**6*=d;*****7*8*=e; 9*10*11*12*13*14=f; "
    "15*x***fff*===g;1 * 999999999999999999 *= h; 18 *=*=*=*=*==i;\n",
}


def stalwart_shape(parsed: HeaderParams) -> dict | None:
    """Our result in stalwart's terms; stalwart has no result for an empty type."""
    if not parsed.value or parsed.value.startswith("/"):
        return None
    main, _, sub = parsed.value.partition("/")
    attributes = dict(parsed.params) | {f"{key}-language": tag for key, tag in parsed.languages.items()}
    return {"c_type": main, "c_subtype": sub or None, "attributes": attributes or None}


@pytest.mark.corpus
def test_stalwart_content_type_vectors(corpus_dir):
    differ = set()
    vectors = stalwart_vectors(corpus_dir, "content_type")
    for vector in vectors:
        expected = vector["expected"]
        if expected is not None:
            expected = dict(expected, attributes=dict(expected["attributes"]) if expected.get("attributes") else None)
        if stalwart_shape(parse_params_header(first_field(vector["header"]))[0]) != expected:
            differ.add(vector["header"])
    assert differ == STALWART_CONTENT_TYPE_DIFFERENCES
    assert len(vectors) - len(differ) == 101


# --- cost -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "text/plain" + "; a=b" * 40_000,
    "text/plain; name*0*=utf-8''%41" + "".join(f"; name*{i}*=%41" for i in range(1, 15_000)),
    'attachment; filename="' + "\\x" * 100_000,
    "text/plain; " + "(" * 200_000,
    "text/plain; a=" + "b " * 100_000,
    "text/plain" + "".join(f'; n{i}="=?utf-8?q?=E9?="' for i in range(8_000)),
], ids=["parameters", "sections", "quoted", "comment", "spaced-value", "undecodable"])
def test_a_200_kb_value_parses_in_linear_time(raw):
    assert fastest_of_three(lambda: parse_params_header(raw)) < 2


def test_raw_latin1_byte_inside_an_encoded_word_in_a_parameter():
    # A raw 8-bit byte inside =?iso-8859-1?Q?...?= is that charset's byte, like its =XX escapes.
    parsed, _ = parse_params_header(b'attachment; filename="=?iso-8859-1?Q?Fr\xf6sche.txt?="')
    assert parsed.params["filename"] == "Frösche.txt"
    parsed, _ = parse_params_header(b'attachment; filename="=?koi8-r?Q?\xf0\xd2\xc9\xd7\xc5\xd4.txt?="')
    assert parsed.params["filename"] == "Привет.txt"
