"""The streaming parser, byte by byte: framing, every defect with its offset, limits,
and that any chunking of the input gives the same result as one feed."""

import io
import re
import time

import pytest
from hypothesis import given, settings, strategies as st

from helpers import defects, parse, parts, summary
from mimekit.defects import MAX_DEFECTS_PER_KIND, DefectKind
from mimekit.errors import UsageError
from mimekit.read.events import BodyChunk, DefectFound, HeaderField, HeadersEnd, PartEnd, PartKind, PartStart
from mimekit.limits import Limits
from mimekit.read.parser import MessageParser, parse_events
from strategies import chunkings, mime_messages


def defect_kinds(events: list) -> set[DefectKind]:
    return {kind for kind, _, _ in defects(events)}


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("latin-1")


SIMPLE = crlf("Subject: hi\nContent-Type: text/plain\n\nhello\nworld\n")

MULTIPART = crlf(
    "Content-Type: multipart/mixed; boundary=\"b\"\n"
    "\n"
    "preamble\n"
    "--b\n"
    "Content-Type: text/plain\n"
    "\n"
    "one\n"
    "--b\n"
    "\n"
    "two\n"
    "\n"
    "--b--\n"
    "epilogue\n")


# -- framing --------------------------------------------------------------------------

def test_single_part_message_events_in_order():
    events = parse(SIMPLE)
    assert events == [
        PartStart("", 0, 0),
        HeaderField("Subject", b" hi", 0, 8),
        HeaderField("Content-Type", b" text/plain", 13, 26),
        HeadersEnd(41, "text/plain", {}, PartKind.LEAF),
        BodyChunk(b"hello\r\nworld\r\n", 41),
        PartEnd("", len(SIMPLE)),
    ]


def test_multipart_line_break_before_boundary_belongs_to_the_boundary():
    found = parts(parse(MULTIPART))
    assert list(found) == ["", "1", "2"]
    assert found[""]["preamble"] == b"preamble"
    assert found["1"]["body"] == b"one"
    assert found["2"]["body"] == b"two\r\n"   # only the last line break goes with the boundary
    assert found["2"]["type"] == "text/plain" and found["2"]["headers"] == []
    assert found[""]["epilogue"] == b"epilogue\r\n"
    assert defects(parse(MULTIPART)) == []


def test_body_bytes_are_exactly_the_input_between_offsets():
    found = parts(parse(MULTIPART))
    for part in found.values():
        if part["kind"] is PartKind.LEAF:
            assert MULTIPART[part["body_offset"]:part["end"]] == part["body"]


def test_folded_header_keeps_its_folding_and_value_offset():
    data = b"Subject: one\r\n two\r\n\tthree\r\nX: y\r\n\r\n"
    fields = [e for e in parse(data) if isinstance(e, HeaderField)]
    assert fields[0] == HeaderField("Subject", b" one\r\n two\r\n\tthree", 0, 8)
    assert data[fields[1].value_offset:].startswith(b" y")


def test_blanks_before_colon_are_tolerated_and_not_in_the_name():
    fields = [e for e in parse(b"Subject  :x\n\n") if isinstance(e, HeaderField)]
    assert fields == [HeaderField("Subject", b"x", 0, 10)]


def test_nested_multipart_with_empty_epilogue_ends_at_its_close_delimiter():
    data = crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/mixed; boundary=i\n\n"
                "--i\n\nx\n--i--\n--o\n\ny\n--o--\n")
    found = parts(parse(data))
    assert found["1"]["end"] == data.index(b"--i--") + len(b"--i--")   # the CRLF after it is "--o"'s
    assert found["1"]["epilogue"] == b"" and found["2"]["body"] == b"y"


def test_boundary_at_body_start_means_empty_preamble_and_adjacent_delimiters_an_empty_part():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\nx\n--b--\n")
    events = parse(data)
    found = parts(events)
    assert found[""]["preamble"] == b""
    assert found["1"]["body"] == b"" and found["2"]["body"] == b"x"
    assert defects(events) == []


def test_boundary_not_at_line_start_is_text():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nsee --b here\n --b\n--b--\n")
    found = parts(parse(data))
    assert found["1"]["body"] == b"see --b here\r\n --b"


def test_boundary_prefix_of_nested_boundary_is_told_apart():
    data = crlf("Content-Type: multipart/mixed; boundary=\"--x\"\n\n"
                "----x\nContent-Type: multipart/alternative; boundary=\"--x-1\"\n\n"
                "----x-1\n\na\n----x-1\n\nb\n----x-1--\n"
                "----x\n\nc\n----x--\n")
    found = parts(parse(data))
    assert [pid for pid in found] == ["", "1", "1.1", "1.2", "2"]
    assert (found["1.1"]["body"], found["1.2"]["body"], found["2"]["body"]) == (b"a", b"b", b"c")
    assert defects(parse(data)) == []


def test_message_rfc822_is_parsed_as_a_child_part():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n"
                "--b\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--b--\n")
    found = parts(parse(data))
    assert found["2"]["kind"] is PartKind.MESSAGE
    assert found["2.1"]["headers"] == ["Subject"] and found["2.1"]["body"] == b"inner body"
    assert found["2.1"]["start"] == found["2"]["body_offset"]


def test_message_global_is_parsed_too_but_encoded_message_is_a_leaf():
    data = crlf("Content-Type: message/global\n\nSubject: x\n\nbody\n")
    assert parts(parse(data))["1"]["body"] == b"body\r\n"
    encoded = crlf("Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoK\n")
    found = parts(parse(encoded))
    assert found[""]["kind"] is PartKind.LEAF and list(found) == [""]


def test_digest_parts_default_to_message_rfc822():
    data = crlf("Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\n1\n"
                "--d\nContent-Type: text/plain\n\nplain\n--d--\n")
    found = parts(parse(data))
    assert found["1"]["type"] == "message/rfc822" and found["1.1"]["body"] == b"1"
    assert found["2"]["type"] == "text/plain"


def test_default_content_type_is_text_plain():
    assert parts(parse(b"Subject: x\n\nbody"))[""]["type"] == "text/plain"


def test_content_type_without_subtype_falls_back_to_default():
    events = parse(b"Content-Type: garbage\n\nbody")
    assert parts(events)[""]["type"] == "text/plain"
    assert (DefectKind.MALFORMED_HEADER, 13, "") in defects(events)


def test_message_without_header_and_header_without_body():
    assert parts(parse(b"\nbody only"))[""]["body"] == b"body only"
    found = parts(parse(b"Subject: x\r\n"))
    assert found[""]["headers"] == ["Subject"] and found[""]["body"] == b""
    assert parts(parse(b""))[""]["body"] == b""


def test_mbox_file_with_many_messages_is_one_message_with_a_garbage_line():
    data = b"From a@b Mon Jan 1 00:00:00 2024\nSubject: 1\n\none\nFrom c@d Tue Jan 2 00:00:00 2024\nSubject: 2\n\n"
    found = parts(parse(data))
    assert found[""]["headers"] == ["Subject"]
    assert found[""]["body"].startswith(b"one\nFrom c@d")


def test_parse_events_reads_a_binary_file_in_chunks():
    assert summary(list(parse_events(io.BytesIO(MULTIPART), chunk_size=3))) == summary(parse(MULTIPART))


def test_feed_after_close_is_a_usage_error():
    parser = MessageParser()
    parser.close()
    with pytest.raises(UsageError):
        parser.feed(b"x")
    assert parser.close() == []


# -- defects, each with its offset ------------------------------------------------------

def test_outer_boundary_ends_truncated_inner_part():
    data = crlf("Content-Type: multipart/mixed; boundary=outer\n\n"
                "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n"
                "--inner\n\ncut short\n"
                "--outer\n\nnext\n--outer--\n")
    events = parse(data)
    found = parts(events)
    assert found["1.1"]["body"] == b"cut short" and found["2"]["body"] == b"next"
    second_outer = data.index(b"--outer", data.index(b"cut short"))
    assert defects(events) == [(DefectKind.TRUNCATED_PART, second_outer, "1")]
    assert found["1"]["end"] == found["1.1"]["end"] == second_outer - 2


def test_boundary_of_a_truncated_inner_multipart_is_text_afterwards():
    data = crlf("Content-Type: multipart/mixed; boundary=o\n\n"
                "--o\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\nx\n"
                "--o\n\nsecond\n--i\nstill second\n--o--\n")
    found = parts(parse(data))
    assert list(found) == ["", "1", "1.1", "2"]
    assert found["2"]["body"] == b"second\r\n--i\r\nstill second"


def test_missing_final_boundary():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\nno end\n")
    events = parse(data)
    assert parts(events)["1"]["body"] == b"no end\r\n"
    assert defects(events) == [(DefectKind.MISSING_FINAL_BOUNDARY, len(data), "")]


def test_multipart_with_no_boundary_at_all_is_all_preamble():
    data = crlf("Content-Type: multipart/alternative; boundary=b\n\nAAA\n")
    events = parse(data)
    assert parts(events)[""]["preamble"] == b"AAA\r\n"
    assert defects(events) == [(DefectKind.MISSING_FINAL_BOUNDARY, len(data), ""),
                               (DefectKind.NO_PARTS, len(data), "")]


def test_close_delimiter_before_any_part():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b--\nafter\n")
    events = parse(data)
    assert parts(events)[""]["epilogue"] == b"after\r\n"
    assert defects(events) == [(DefectKind.NO_PARTS, data.index(b"--b--"), "")]


def test_trailing_whitespace_after_boundary_is_accepted():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\nx\n--b--  \n")
    events = parse(data)
    assert parts(events)["1"]["body"] == b"x"
    assert defects(events) == [(DefectKind.BOUNDARY_TRAILING_WHITESPACE, data.index(b"--b \t"), ""),
                               (DefectKind.BOUNDARY_TRAILING_WHITESPACE, data.index(b"--b--"), "")]


def test_text_after_boundary_and_blank_is_ignored():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b this is ignored\n\nx\n--b-- and this\nepi")
    events = parse(data)
    found = parts(events)
    assert found["1"]["body"] == b"x" and found[""]["epilogue"] == b"epi"
    assert [kind for kind, _, _ in defects(events)] == [DefectKind.BOUNDARY_TRAILING_GARBAGE] * 2


def test_multipart_without_boundary_parameter_is_a_text_leaf():
    data = crlf("Content-Type: multipart/mixed\n\n--x\n\nbody\n")
    events = parse(data)
    found = parts(events)
    assert list(found) == [""] and found[""]["type"] == "text/plain" and found[""]["kind"] is PartKind.LEAF
    assert defects(events) == [(DefectKind.MISSING_BOUNDARY_PARAMETER, data.index(b"--x"), "")]


def test_bare_lf_is_reported_once_at_its_offset():
    data = b"Subject: x\n\nline\nline\n"
    events = parse(data)
    assert defects(events) == [(DefectKind.BARE_LINE_ENDING, 10, "")]
    assert parts(events)[""]["body"] == b"line\nline\n"


def test_bare_cr_line_endings_frame_a_multipart():
    data = MULTIPART.replace(b"\r\n", b"\r")
    events = parse(data)
    found = parts(events)
    assert (found["1"]["body"], found["2"]["body"], found[""]["epilogue"]) == (b"one", b"two\r", b"epilogue\r")
    assert defects(events) == [(DefectKind.BARE_LINE_ENDING, data.index(b"\r"), "")]


def test_mixed_line_endings_reported_at_first_change():
    data = b"Subject: x\r\nFrom: y\n\r\nbody\r\n"
    events = parse(data)
    assert defects(events) == [(DefectKind.BARE_LINE_ENDING, 19, ""), (DefectKind.MIXED_LINE_ENDINGS, 19, "")]
    assert [e.name for e in events if isinstance(e, HeaderField)] == ["Subject", "From"]


def test_mixed_line_endings_from_bare_lf_style():
    data = b"Subject: x\nFrom: y\r\n\nbody"
    assert defects(parse(data)) == [(DefectKind.BARE_LINE_ENDING, 10, ""), (DefectKind.MIXED_LINE_ENDINGS, 18, "")]


def test_bare_lf_inside_a_text_body_is_found_but_not_inside_base64():
    text = b"Subject: x\r\n\r\nline\r\nbare\nline\r\n"
    assert defects(parse(text)) == [(DefectKind.BARE_LINE_ENDING, text.index(b"bare") + 4, ""),
                                    (DefectKind.MIXED_LINE_ENDINGS, text.index(b"bare") + 4, "")]
    encoded = b"Content-Transfer-Encoding: base64\r\n\r\nQUJD\nQUJD\r\n"
    assert defects(parse(encoded)) == []


def test_bare_cr_at_the_very_end_is_reported():
    data = b"Subject: x\r\n\r\nbody\r"
    assert defects(parse(data, pieces=[data])) == [(DefectKind.BARE_LINE_ENDING, len(data) - 1, ""),
                                                   (DefectKind.MIXED_LINE_ENDINGS, len(data) - 1, "")]


def test_line_ending_cr_split_across_feeds_is_not_bare():
    data = b"Subject: x\r\n\r\nbody\r\n"
    assert defects(parse(data, pieces=[b"Subject: x\r", b"\n\r", b"\nbody\r", b"\n"])) == []


def test_missing_header_body_separator_starts_the_body():
    data = crlf("Subject: x\nthis is not a header\nFrom: y\n\nrest\n")
    events = parse(data)
    found = parts(events)
    assert found[""]["headers"] == ["Subject"]
    assert found[""]["body"] == crlf("this is not a header\nFrom: y\n\nrest\n")
    assert defects(events) == [(DefectKind.MISSING_HEADER_BODY_SEPARATOR, data.index(b"this"), "")]


def test_part_header_ended_by_boundary_is_an_empty_body():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n--b--\n")
    events = parse(data)
    assert parts(events)["1"]["type"] == "text/html" and parts(events)["1"]["body"] == b""
    assert defects(events) == [(DefectKind.MISSING_HEADER_BODY_SEPARATOR, data.rindex(b"--b--"), "1")]


def test_eight_bit_header_is_kept_raw_and_reported_once():
    data = "Subject: Grüße\nFrom: Jörg\n\n".encode("utf-8")
    events = parse(data)
    assert [e.raw_value for e in events if isinstance(e, HeaderField)] == [" Grüße".encode(), " Jörg".encode()]
    assert (DefectKind.EIGHT_BIT_HEADER, data.index("ü".encode()), "") in defects(events)
    assert [kind for kind, _, _ in defects(events)].count(DefectKind.EIGHT_BIT_HEADER) == 1


def test_garbage_before_first_header_is_skipped():
    data = b"From someone@example.com Sat Jan  3 01:05:34 1996\n  junk\nSubject: x\n\nbody"
    events = parse(data)
    found = parts(events)
    assert found[""]["headers"] == ["Subject"] and found[""]["start"] == 0
    assert (DefectKind.GARBAGE_BEFORE_HEADERS, 0, "") in defects(events)


def test_text_without_any_header_is_a_body():
    data = b"This is a simple message not having headers.\nThe whole text is the body.\n"
    events = parse(data)
    assert parts(events)[""]["body"] == data and parts(events)[""]["headers"] == []
    assert (DefectKind.MISSING_HEADER_BODY_SEPARATOR, 0, "") in defects(events)


def test_unknown_transfer_encoding_is_reported_at_its_value():
    data = b"Content-Transfer-Encoding: x-rot13\n\nbody"
    assert (DefectKind.UNKNOWN_TRANSFER_ENCODING, 26, "") in defects(parse(data))


def test_defects_name_the_part_they_belong_to():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed\n\nx\n--b--\n")
    assert defects(parse(data)) == [(DefectKind.MISSING_BOUNDARY_PARAMETER, data.index(b"x\r\n--b--"), "1")]


# -- limits -----------------------------------------------------------------------------

def nested_multiparts(depth: int) -> bytes:
    head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (n, n) for n in range(depth))
    tail = b"".join(b"\r\n--b%d--" % n for n in reversed(range(depth)))
    return head + b"\r\nleaf" + tail + b"\r\n"


def test_depth_limit_keeps_deeper_content_as_one_body():
    events = parse(nested_multiparts(10), Limits(max_depth=3))
    found = parts(events)
    assert max(len(pid.split(".")) for pid in found if pid) == 3
    deepest = found["1.1.1"]
    assert deepest["kind"] is PartKind.LEAF and deepest["type"] == "multipart/mixed"
    assert b"--b5" in deepest["body"]
    assert DefectKind.LIMIT_DEPTH in defect_kinds(events)
    assert DefectKind.TRUNCATED_PART not in defect_kinds(events)


def test_deep_nesting_is_linear_and_never_recursive():
    started = time.perf_counter()
    events = parse(nested_multiparts(5000))
    assert time.perf_counter() - started < 10
    assert max(e.depth for e in events if isinstance(e, PartStart)) == Limits().max_depth
    assert DefectKind.LIMIT_DEPTH in defect_kinds(events)


def test_endlessly_nested_messages_stop_at_depth_limit():
    data = b"Content-Type: message/rfc822\r\n\r\n" * 10_000 + b"body"
    events = parse(data)
    assert max(e.depth for e in events if isinstance(e, PartStart)) == Limits().max_depth
    assert DefectKind.LIMIT_DEPTH in defect_kinds(events)


def test_part_limit_turns_the_rest_into_epilogue():
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20 + b"--b--\r\n"
    events = parse(data, Limits(max_parts=5))
    found = parts(events)
    assert len(found) == 5
    assert found[""]["epilogue"].startswith(b"\r\n--b\r\n\r\nx") and found[""]["epilogue"].endswith(b"--b--\r\n")
    assert [kind for kind, _, _ in defects(events)] == [DefectKind.LIMIT_PARTS]


def test_thousands_of_parts_are_fast():
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\nX: y\r\n\r\nbody\r\n" * 20_000 + b"--b--\r\n"
    started = time.perf_counter()
    events = parse(data)
    assert time.perf_counter() - started < 10
    assert len(parts(events)) == Limits().max_parts
    assert DefectKind.LIMIT_PARTS in defect_kinds(events)


def test_header_count_limit_starts_the_body():
    data = b"".join(b"X-%d: v\r\n" % n for n in range(10)) + b"\r\nbody"
    events = parse(data, Limits(max_header_count=4))
    found = parts(events)
    assert len(found[""]["headers"]) == 4 and found[""]["body"].startswith(b"X-4: v")
    assert defects(events) == [(DefectKind.LIMIT_HEADER_COUNT, data.index(b"X-4"), "")]


def test_header_field_size_limit_cuts_the_field():
    data = b"Subject: " + b"word " * 100 + b"\r\n" + b" more\r\n" * 50 + b"To: x\r\n\r\nbody"
    events = parse(data, Limits(max_header_field_size=200))
    fields = [e for e in events if isinstance(e, HeaderField)]
    assert len(fields[0].raw_value) == 200 and [f.name for f in fields] == ["Subject", "To"]
    assert [kind for kind, _, _ in defects(events)] == [DefectKind.LIMIT_HEADER_SIZE]
    assert parts(events)[""]["body"] == b"body"


def test_header_block_size_limit_starts_the_body():
    data = b"".join(b"X-%d: %s\r\n" % (n, b"v" * 50) for n in range(100)) + b"\r\nbody"
    events = parse(data, Limits(max_header_block_size=1000))
    assert DefectKind.LIMIT_HEADER_SIZE in defect_kinds(events)
    assert parts(events)[""]["body"].endswith(b"\r\n\r\nbody")


def many_parts(count: int, header: bytes, body: bytes = b"x\r\n") -> bytes:
    return (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + (b"--b\r\n" + header + b"\r\n" + body) * count
            + b"--b--\r\n")


def test_header_fields_stop_being_emitted_past_the_message_wide_count_and_size():
    """Issue 8: 10,000 parts of 1,000 empty fields made 10 million field objects (1.4 GB);
    per-block limits do not bound the whole message."""
    part_header = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\nX: 1\r\n"
    data = many_parts(30, part_header, b"QUJD\r\n")
    for limits in (Limits(max_header_total_count=31), Limits(max_header_total_size=data.index(b"\r\n\r\n") + 2 + 10 * len(part_header))):
        events = parse(data, limits)
        fields = [e for e in events if isinstance(e, HeaderField)]
        assert len(fields) == 31   # the message's Content-Type and 10 parts of 3
        assert defects(events) == [(DefectKind.LIMIT_HEADER_TOTAL, data.index(b"--b", fields[-1].offset) + 5, "11")]
        ends = [e for e in events if isinstance(e, HeadersEnd)][1:]
        assert len(ends) == 30   # every part is still found, typed and decodable
        assert {(e.content_type, e.params["charset"], e.transfer_encoding) for e in ends} == {
            ("text/plain", "utf-8", "base64")}


def test_per_part_header_bytes_and_counts_add_up_across_parts_by_default():
    data = many_parts(101, b"X:\r\n" * 1000)   # 101,000 fields: over the default 100,000
    events = parse(data)
    assert sum(isinstance(e, HeaderField) for e in events) == Limits().max_header_total_count
    assert [kind for kind, _, _ in defects(events)] == [DefectKind.LIMIT_HEADER_TOTAL]
    assert len(parts(events)) == 102


def test_headers_end_carries_the_first_transfer_encoding_lowercase():
    events = parse(b"Content-Transfer-Encoding:  Base64 \r\nContent-Transfer-Encoding: 8bit\r\n\r\nQUJD")
    assert [e.transfer_encoding for e in events if isinstance(e, HeadersEnd)] == ["base64"]
    assert [e.transfer_encoding for e in parse(SIMPLE) if isinstance(e, HeadersEnd)] == ["7bit"]


def test_field_names_are_shared_between_fields():
    fields = [e for e in parse(many_parts(3, b"Received: a\r\nReceived: b\r\n")) if isinstance(e, HeaderField)]
    assert len({id(field.name) for field in fields if field.name == "Received"}) == 1


def test_defects_of_one_kind_are_emitted_up_to_the_cap_then_summed_up_once():
    """Issue 8: a defect per line (or per byte) must not become millions of events."""
    data = many_parts(250, b"X: y\r\n").replace(b"--b\r\n", b"--b  junk\r\n")
    events = parse(data)
    garbage = [e.defect for e in events if isinstance(e, DefectFound)
               and e.defect.kind is DefectKind.BOUNDARY_TRAILING_GARBAGE]
    listed, summaries = [d for d in garbage if not d.more], [d for d in garbage if d.more]
    assert [d.offset for d in listed] == [m.start() for m in re.finditer(b"--b  junk", data)][:MAX_DEFECTS_PER_KIND]
    assert [(d.more, d.offset) for d in summaries] == [(150, [m.start() for m in re.finditer(b"--b  junk", data)][100])]
    assert events[-1] == DefectFound(summaries[0])   # after every part ended: the count is final


def test_per_part_defects_consumers_act_on_are_never_capped():
    data = many_parts(150, b"X: y\r\nnot a field\r\n")
    found = [kind for kind, _, _ in defects(parse(data))]
    assert found.count(DefectKind.MISSING_HEADER_BODY_SEPARATOR) == 150


def test_long_header_line_is_cut_and_skipped_in_linear_time():
    data = b"Subject: " + b"x" * 100_000 + b"\r\nTo: y\r\n\r\nbody"
    events = parse(data, Limits(max_line_length=1000), pieces=[data[i:i + 10] for i in range(0, len(data), 10)])
    fields = [e for e in events if isinstance(e, HeaderField)]
    assert [f.name for f in fields] == ["Subject", "To"] and len(fields[0].raw_value) == 1000 - len(b"Subject:")
    assert defects(events) == [(DefectKind.LIMIT_LINE_LENGTH, 0, "")]
    assert parts(events)[""]["body"] == b"body"


def test_long_boundary_line_is_cut():
    data = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b ") + b"z" * 5000 + crlf("\n\nx\n--b--\n")
    events = parse(data, Limits(max_line_length=100))
    assert parts(events)["1"]["body"] == b"x"
    assert {DefectKind.LIMIT_LINE_LENGTH, DefectKind.BOUNDARY_TRAILING_GARBAGE} == defect_kinds(events)


def test_long_body_lines_cost_nothing():
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + b"y" * 3_000_000 + b"\r\n--b--\r\n"
    events = parse(data, Limits(max_line_length=100), pieces=[data[i:i + 65536] for i in range(0, len(data), 65536)])
    assert len(parts(events)["1"]["body"]) == 3_000_000
    assert defects(events) == []


def test_boundary_lookalikes_are_skipped_in_c(monkeypatch):
    """Text holding "--b" mid-line, or "--b" followed by more text, never reaches the
    parser's Python checks: only real delimiter lines do (here: two)."""
    calls = []
    original = MessageParser._boundary_at
    monkeypatch.setattr(MessageParser, "_boundary_at", lambda self, *a: calls.append(a) or original(self, *a))
    body = b"x--b\r\n--bx\r\n --b\r\n" * 50_000
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n" + body + b"\r\n--b--\r\n"
    events = parse(data, pieces=[data[i:i + 4096] for i in range(0, len(data), 4096)])
    assert parts(events)["1"]["body"] == body and len(calls) == 2


def test_buffer_stays_bounded_while_streaming_a_body():
    parser = MessageParser()
    parser.feed(b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n")
    for _ in range(200):
        parser.feed(b"QUJD" * 16384)
        assert len(parser._buf) <= len(b"\r\n--b--\r")


# -- chunking independence ----------------------------------------------------------------

@settings(max_examples=1000)  # the property that guards every hold-back and wait-for-more path
@given(st.data())
def test_any_chunking_gives_the_same_events(data):
    message = data.draw(mime_messages())
    pieces = data.draw(chunkings(message))
    whole = parse(message)
    chunked = parse(message, pieces=pieces)
    assert summary(chunked) == summary(whole)
    assert defects(chunked) == defects(whole)


@given(st.data())
def test_byte_at_a_time_gives_the_same_events(data):
    message = data.draw(mime_messages(max_depth=2))
    whole = parse(message)
    single_bytes = parse(message, pieces=[message[i:i + 1] for i in range(len(message))])
    assert summary(single_bytes) == summary(whole)
    assert defects(single_bytes) == defects(whole)


@given(mime_messages())
def test_leaf_bodies_are_the_input_between_their_offsets(message):
    for part in parts(parse(message)).values():
        if part["kind"] is PartKind.LEAF:
            assert message[part["body_offset"]:part["end"]] == part["body"]


@st.composite
def well_formed_trees(draw, depth: int = 0):
    """(message bytes, {part id: (content type, body)}) for clean CRLF messages."""
    counter = draw(st.integers(0, 10 ** 6))
    if depth < 3 and draw(st.booleans()):
        boundary = f"=_{depth}_{counter}".encode()
        children = draw(st.lists(well_formed_trees(depth + 1), min_size=1, max_size=3))
        text = b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\npreamble"
        expected = {"": ("multipart/mixed", None)}
        for number, (child, child_expected) in enumerate(children, 1):
            text += b"\r\n--" + boundary + b"\r\n" + child
            expected.update({(f"{number}.{pid}" if pid else str(number)): value
                             for pid, value in child_expected.items()})
        return text + b"\r\n--" + boundary + b"--\r\n", expected
    content = b"\r\n".join(draw(st.lists(st.binary(max_size=40).filter(
        lambda line: b"\r" not in line and b"\n" not in line and not line.startswith(b"--=_")), max_size=5)))
    return b"Content-Type: application/octet-stream\r\n\r\n" + content, {"": ("application/octet-stream", content)}


@given(well_formed_trees())
def test_well_formed_trees_are_recovered_exactly(tree):
    message, expected = tree
    events = parse(message)
    found = parts(events)
    assert {pid: (part["type"], part["body"] if part["kind"] is PartKind.LEAF else None)
            for pid, part in found.items()} == expected
    assert defects(events) == []
