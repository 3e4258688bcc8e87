"""Lenient readings (mimekit.headers.lenient): each header-syntax and Content-Type trick of
issue 11 from constructed bytes, well-formed input giving nothing but the parser's reading,
and the body scan giving the same result for every split of its input."""

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.headers.lenient import DelimiterScan, HeaderReading, TypeReading, header_readings, type_readings
from mimekit.headers.params import format_params_header
from mimekit.read.parser import MessageParser
from mimekit.read.events import HeaderField, HeadersEnd
from strategies import BOUNDARY_CHARS, chunkings, file_names, header_junk, header_text, mime_messages


# --- header tokenisations -----------------------------------------------------------------

def parser_view(head: bytes) -> tuple[list[tuple[str, bytes]], int]:
    """The fields and body start the parser gives a part with this header (read as the
    first part of a multipart, so that no garbage before it is skipped)."""
    wrapper = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    parser = MessageParser()
    events = parser.feed(wrapper + head) + parser.close()
    fields = [(event.name.lower(), event.raw_value) for event in events
              if isinstance(event, HeaderField) and event.offset >= len(wrapper)]
    ends = [event.offset - len(wrapper) for event in events if isinstance(event, HeadersEnd)]
    return fields, ends[1]


def test_double_colon():
    head = b"Content-Type:: multipart/mixed; boundary=x\r\nSubject: s\r\n\r\nbody"
    assert header_readings(head, True) == [HeaderReading(
        "header-double-colon", (("content-type", b" multipart/mixed; boundary=x"), ("subject", b" s")), head.index(b"body"))]
    assert parser_view(head) == ([("content-type", b": multipart/mixed; boundary=x"), ("subject", b" s")],
                                 head.index(b"body"))


def test_space_before_the_colon_is_read_by_the_parser_already():
    head = b"Content-Type : application/zip\r\nContent-Transfer-Encoding\t: base64\r\n\r\nUEsDBA=="
    assert header_readings(head, True) == []
    assert parser_view(head)[0] == [("content-type", b" application/zip"), ("content-transfer-encoding", b" base64")]


def test_line_without_colon_skipped():
    head = b"Content-Type: text/plain\r\nthis is no field\r\nContent-Type: application/zip\r\n\r\nPK"
    assert parser_view(head) == ([("content-type", b" text/plain")], head.index(b"this"))
    assert header_readings(head, True) == [HeaderReading(
        "header-no-colon-line", (("content-type", b" text/plain"), ("content-type", b" application/zip")),
        head.index(b"PK"))]


def test_line_without_colon_that_starts_the_body_is_no_reading():
    """A missing blank line before the body: skipping its lines finds no field."""
    assert header_readings(b"Content-Type: text/plain\r\nHello,\r\nhow are you\r\n\r\nBye", True) == []


def test_bare_cr_is_whitespace_not_a_line_end():
    hidden = b"X-A: a\rContent-Type: application/zip\r\n\r\nPK"
    assert parser_view(hidden) == ([("x-a", b" a"), ("content-type", b" application/zip")], hidden.index(b"PK"))
    assert header_readings(hidden, True) == [
        HeaderReading("header-bare-cr", (("x-a", b" a\rContent-Type: application/zip"),), hidden.index(b"PK"))]
    early_end = b"Content-Type: text/plain\r\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA=="
    assert parser_view(early_end)[1] == early_end.index(b"Content-Transfer")
    assert header_readings(early_end, True) == [HeaderReading(
        "header-bare-cr", (("content-type", b" text/plain\r"), ("content-transfer-encoding", b" base64")),
        early_end.index(b"UEsDBA"))]


def test_folded_bare_cr_reads_the_same_both_ways():
    assert header_readings(b"Content-Type: multipart/mixed;\r boundary=x\r\n\r\n", True) == []


def test_field_hidden_in_a_continuation_line():
    head = b"X-A: a\r\n Content-Type: application/zip; name=a.zip\r\n\r\nPK"
    assert parser_view(head) == ([("x-a", b" a\r\n Content-Type: application/zip; name=a.zip")], head.index(b"PK"))
    assert header_readings(head, True) == [HeaderReading(
        "header-in-continuation", (("x-a", b" a"), ("content-type", b" application/zip; name=a.zip")),
        head.index(b"PK"))]


def test_continuation_that_only_looks_like_a_field_is_no_reading():
    assert header_readings(b'Content-Type: text/plain;\r\n name="a:b"\r\nSubject: x\r\n y: z\r\n\r\n', True) == []


@pytest.mark.parametrize("junk", [b" \r\n", b"\t \r\n \r\n", b"\x00\r\n", b".\r\n", b"\r\n", b"\r\n\r\n.\r\n"])
def test_junk_lines_before_the_first_field(junk):
    head = junk + b"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA=="
    assert parser_view(head)[0] == []
    fields = (("content-type", b" application/zip"), ("content-transfer-encoding", b" base64"))
    assert header_readings(head, True) == [HeaderReading("header-after-junk", fields, len(head) - 8)]


def test_indented_first_field():
    head = b" Content-Type: application/zip\r\n\r\nPK"
    assert parser_view(head) == ([], 0)
    assert header_readings(head, True) == [
        HeaderReading("header-after-junk", (("content-type", b" application/zip"),), head.index(b"PK"))]


def test_part_without_header_whose_text_looks_like_a_field_is_no_reading():
    assert header_readings(b"\r\nNote: the meeting moved\r\n\r\nsee you", True) == []


def test_window_ending_inside_the_header():
    head = b"Content-Type: text/plain\r\njunk\r\nContent-Type: application/zip\r\nX-Long: " + b"a" * 100
    assert header_readings(head, False) == [HeaderReading(
        "header-no-colon-line", (("content-type", b" text/plain"), ("content-type", b" application/zip")), -1)]
    # the same bytes as the whole part: its header ends where it does
    assert header_readings(head, True)[0].body_start == len(head)


def test_clean_header_is_read_once():
    assert header_readings(b"Content-Type: text/plain;\r\n\tcharset=utf-8\r\nSubject: a: b\r\n\r\nx:y\r\n\r\n", True) == []
    assert header_readings(b"", True) == []


_field_names = st.sampled_from([b"Content-Type", b"content-transfer-encoding", b"Content-Disposition", b"Subject",
                                b"X-Mailer", b"MIME-Version", b"Received"])


@st.composite
def well_formed_parts(draw) -> bytes:
    """A part as a mail program writes it: fields, folds, a blank line, a body; one line end."""
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = []
    for name in draw(st.lists(_field_names, max_size=6)):
        value = draw(header_text.filter(lambda text: not text.startswith(":"))).encode()
        lines.append(name + b": " + value)
        lines += [b"\t" + draw(header_text).encode() for _ in range(draw(st.integers(0, 2)))]
    return eol.join(lines + [b"", draw(st.binary(max_size=40))])


@given(well_formed_parts())
def test_well_formed_headers_give_no_reading(part):
    assert header_readings(part, True) == []
    assert header_readings(part[:len(part) // 2], False) == []


# --- Content-Type readings ------------------------------------------------------------------

def pairs(values: list[bytes]) -> list[tuple[str, str, bytes | None]]:
    return [(reading.reading, reading.content_type, reading.boundary) for reading in type_readings(values)]


def test_two_content_type_fields():
    assert pairs([b"text/plain", b"multipart/mixed; boundary=z"]) == [
        ("default", "text/plain", None), ("content-type-last-header", "multipart/mixed", b"z")]


def test_two_boundary_parameters():
    assert pairs([b"multipart/mixed; boundary=a; boundary=\"b\""]) == [
        ("default", "multipart/mixed", b"a"), ("boundary-last-param", "multipart/mixed", b"b")]


@pytest.mark.parametrize("value, strict, other", [
    (b"multipart/mixed; boundary=a\\b", b"a\\b", b"ab"),                       # a backslash escape, unquoted
    (b"multipart/mixed; boundary='abc'", b"'abc'", b"abc"),                    # single quotes
    (b'multipart/mixed; boundary="abc', b"abc", b'"abc'),                      # an unbalanced quote
    (b"multipart/mixed; boundary=(comment)abc", b"abc", b"(comment)abc"),      # a comment
    (b"multipart/mixed; boundary=abc def", b"abc def", b"abc"),                # cut at the blank
])
def test_parameter_variants(value, strict, other):
    readings = pairs([value])
    assert readings[0] == ("default", "multipart/mixed", strict)
    assert ("boundary-param-variant", "multipart/mixed", other) in readings


def test_boundary_inside_another_parameter():
    readings = pairs([b'multipart/mixed; name="x; boundary=evil"'])
    assert readings[0] == ("default", "multipart/mixed", None)
    assert ("boundary-param-variant", "multipart/mixed", b"evil") in readings


def test_boundary_without_semicolon_before_it():
    readings = pairs([b"multipart/mixed; charset=us-ascii boundary=\"evil\" (x)"])
    assert ("multipart/mixed", b"evil") in {(content_type, boundary) for _, content_type, boundary in readings}


def test_many_boundary_assignments_cost_bounded_memory_and_keep_the_last_parameter():
    """A 40 KB value of `boundary=` repeated (each one's value running to the end) was read
    once per occurrence: quadratic time and memory (220 MB for 63 KB). The first few
    occurrences and the last parameter are read, each in a window a boundary fits in."""
    value = b"multipart/mixed; " + b"boundary=" * 4500 + b"; boundary=last"
    tracemalloc.start()
    readings = pairs([value])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 1024 * 1024
    assert ("boundary-last-param", "multipart/mixed", b"last") in readings


@pytest.mark.parametrize("value, strict, joined", [
    (b"multipart/mixed; boundary*0=a; boundary1=b", b"a", b"ab"),                               # missing "*"
    (b"multipart/mixed; boundary0=a; boundary1=b", None, b"ab"),
    (b"multipart/mixed; boundary*0*=us-ascii''a%2D; boundary*1=b; boundary*1=c", b"a-b", b"a-c"),  # duplicates
])
def test_rfc2231_continuations(value, strict, joined):
    readings = pairs([value])
    assert readings[0] == ("default", "multipart/mixed", strict)
    assert ("boundary-rfc2231", "multipart/mixed", joined) in readings


def test_encoded_word_in_the_boundary_and_in_the_type():
    assert pairs([b'multipart/mixed; boundary="=?us-ascii?q?abc?="']) == [
        ("default", "multipart/mixed", b"=?us-ascii?q?abc?="), ("boundary-encoded-word", "multipart/mixed", b"abc")]
    assert pairs([b"=?us-ascii?q?multipart/mixed?=; boundary=x"]) == [
        ("default", "", b"x"), ("boundary-encoded-word", "multipart/mixed", b"x")]


@pytest.mark.parametrize("declared", [b"ultipart/mixed", b"x-multipart/mixed", b"multipart", b"text/plain"])
def test_misspelt_multipart_type_with_a_boundary(declared):
    readings = pairs([declared + b"; boundary=zz"])
    assert readings[0][2] == b"zz" and not readings[0][1].startswith("multipart/")
    assert readings[1:] == [("multipart-type-variant", "multipart/mixed", b"zz")]


def test_at_most_eight_readings():
    value = b"; ".join([b"ultipart/mixed"] + [b"boundary=(c)a\\%d'" % n for n in range(20)])
    readings = type_readings([value, b"multipart/related; boundary=r"])
    assert len(readings) == 8 and readings[0].reading == "default"
    assert len({(reading.content_type, reading.boundary) for reading in readings}) == 8


@given(st.lists(header_junk.map(lambda junk: junk if isinstance(junk, bytes) else junk.encode("utf-8", "replace")),
                min_size=1, max_size=3))
def test_any_value_gives_bounded_distinct_readings_default_first(values):
    readings = type_readings(values)
    assert readings[0].reading == "default" and 1 <= len(readings) <= 8
    assert len({(reading.content_type, reading.boundary) for reading in readings}) == len(readings)


def test_no_content_type():
    assert type_readings([]) == [TypeReading("default", "", None)]


# A boundary in single quotes ('abc', a valid token) is what the single-quote trick reads as abc:
# that reading is kept only if "--abc" occurs in the body, so it is left out here.
_written_boundaries = st.text(BOUNDARY_CHARS, min_size=1, max_size=70).filter(
    lambda boundary: not (len(boundary) > 1 and boundary[0] == boundary[-1] == "'"))


@given(st.sampled_from(["multipart/mixed", "multipart/alternative", "text/plain"]), _written_boundaries,
       st.one_of(st.none(), file_names))
def test_well_formed_content_type_gives_only_the_default(content_type, boundary, name):
    params = [("boundary", boundary)] + ([("name", name)] if name else [])
    value = format_params_header("Content-Type", content_type, params).split(b":", 1)[1]
    assert type_readings([value])[0] == TypeReading("default", content_type, boundary.encode())
    if content_type.startswith("multipart/"):
        assert len(type_readings([value])) == 1


# --- boundaries in a body -------------------------------------------------------------------

def scan(body: bytes, boundaries=(), cuts=(), infer=True, max_candidates=32):
    scanner = DelimiterScan(list(boundaries), infer, max_candidates)
    start = 0
    for cut in list(cuts) + [len(body)]:
        scanner.feed(body[start:cut])
        start = cut
    return scanner.close()


BODY = (b"preamble\r\n-- \r\nJohn\r\n-----\r\n\r\n-----\r\n--real\r\nContent-Type: text/plain\r\n\r\nhi\r\n--rea"
        b"\r\n--real-x\r\n--real \r\nContent-Type: application/zip\r\n\r\nPK\r\n--real--\r\n--oops")


def test_given_boundaries_found_as_delimiter_lines_only():
    assert scan(BODY, [b"nowhere", b"real", b"rea", b"real-x", b"re"]) == ([b"real", b"rea", b"real-x"], [b"real"])


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
def test_every_split_gives_the_same_result(eol):
    body = BODY.replace(b"\r\n", eol)
    whole = scan(body, [b"real", b"rea", b"oops"])
    assert whole == ([b"real", b"rea", b"oops"], [b"real"])
    for cut in range(len(body) + 1):
        assert scan(body, [b"real", b"rea", b"oops"], [cut]) == whole, cut
    for first in range(0, len(body), 3):
        for second in range(first, len(body) + 1, 5):
            assert scan(body, [b"real", b"rea", b"oops"], [first, second]) == whole, (first, second)


def test_long_lines_split_anywhere():
    body = b"x" * 3000 + b"\r\n--" + b"y" * 1500 + b"\r\n--b\r\nContent-Type: a/b\r\n\r\n--b--\r\n" + b"z" * 2000
    whole = scan(body, [b"b"])
    assert whole == ([b"b"], [b"b"])
    for cut in range(0, len(body) + 1, 7):
        assert scan(body, [b"b"], [cut, cut + 1100]) == whole, cut


def test_signatures_and_rules_do_not_win():
    text = b"Hi\r\n\r\n-- \r\nJohn\r\n--\r\n" + b"------\r\n======\r\n" * 5 + b"--=====\r\n" * 3
    assert scan(text) == ([], [])
    assert scan(text + b"--cut\r\nContent-Type: text/plain\r\n\r\nx\r\n" + text)[1][0] == b"cut"
    assert scan(text + b"--cut\r\n\r\nx\r\n--cut--\r\n" + text)[1] == [b"cut"]


def test_close_delimiter_ranks_above_a_repeated_text_line():
    body = b"--note\r\ntext\r\n--note\r\n--b\r\nx\r\n--b\r\ny\r\n--b--\r\n"
    assert scan(body)[1] == [b"b", b"note"]


def test_a_boundary_seen_once_without_field_or_close_is_not_inferred():
    assert scan(b"see below\r\n--important\r\nthe end\r\n")[1] == []


def test_tracked_candidates_are_bounded_but_the_real_boundary_survives():
    junk = b"".join(b"--junk%d\r\ntext\r\n" % number for number in range(200))
    body = junk + b"--real\r\nContent-Type: text/plain\r\n\r\nx\r\n" + junk + b"--real--\r\n"
    scanner = DelimiterScan([], True, max_candidates=8)
    for start in range(0, len(body), 512):
        scanner.feed(body[start:start + 512])
        assert len(scanner._tracked) <= 8
    assert scanner.close()[1][0] == b"real"


def test_no_inference_asked():
    assert scan(BODY, [b"real"], infer=False) == ([b"real"], [])


@given(st.data(), mime_messages())
def test_any_split_of_a_message_gives_the_same_scan(data, message):
    boundaries = [b"a", b"b", b"abc", b"-"]
    pieces = data.draw(chunkings(message))
    scanner = DelimiterScan(boundaries, True)
    for piece in pieces:
        scanner.feed(piece)
    assert scanner.close() == scan(message, boundaries)


@given(mime_messages())
def test_header_readings_of_any_message_stay_in_it(message):
    for whole in (True, False):
        for reading in header_readings(message, whole):
            assert reading.fields and -1 <= reading.body_start <= len(message)
