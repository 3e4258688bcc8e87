"""The regex fast path of parse_params_header must read every value exactly as the full
scanner (_read_params) does: values it takes, and near misses it must refuse or read the same."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimekit.headers.params import _read_params, _simple_params, parse_params_header

_PRINTABLE = [chr(code) for code in range(0x21, 0x7f)]
_spaces = st.text(" \t\r\n", max_size=3)
_main_values = st.text([c for c in _PRINTABLE if c not in ';()"='], min_size=1, max_size=12)
# Names that often clash, in any case, beside arbitrary ones.
_names = st.one_of(st.sampled_from(["charset", "Charset", "name", "NAME", "filename", "boundary"]),
                   st.text([c for c in _PRINTABLE if c not in ';=()"*'], min_size=1, max_size=8))
_bare_values = st.text([c for c in _PRINTABLE if c not in ';()"'], min_size=1, max_size=12)
_quoted_values = st.text([c for c in _PRINTABLE if c not in '"\\'] + [" ", "\t"], max_size=12).map(lambda v: f'"{v}"')

# One odd piece each, by the place it takes in `value; name=value`: escapes, RFC 2231, RFC 2047,
# comments, empty parameters, non-ASCII, stray quotes and parentheses, odd separators.
ODD_PIECES = [("main", text) for text in ["", '"text/plain"', "text/plain (c)", "text / plain", "(c) text/plain",
                                          "t\u00e9xt/plain", "a=b", "=?utf-8?q?x?=", "text/plain)", "\x0btext/plain"]]
ODD_PIECES += [("separator", text) for text in [";;", "; ;", "", " ", ";(c)", "\r\n ;", "\x0b;", ";\u00a0"]]
ODD_PIECES += [("name", text) for text in ["name*", "name*0", "name*1", "name*0*", "filename*", "name**",
                                           "n\u00e4me", "", "a\\b", "(c)name", "name(c)"]]
ODD_PIECES += [("value", text) for text in ['"a\\"b"', '"\\\\"', "\\", "utf-8''%C3%A9", "''x", "=?utf-8?q?x?=",
                                            '"=?utf-8?q?caf=C3=A9?="', "?x", '"\u00e9"', "\u00e9", "(c) x", "x (c)",
                                            "", '"open', '"x" junk', '"x"y', "a b", "a(b", '"a\r\n b"', "\x00", ")"]]
ODD_PIECES += [("anywhere", text) for text in ["\\", '"', "(", ")", "*", ";", "=", "=?", "\u00e9", "\x80", "\r\n\t"]]
ODD_PIECES += [("duplicate", "same"), ("duplicate", "other case")]
_MIN_PARAMS = {"main": 0, "anywhere": 0, "separator": 1, "name": 1, "value": 1, "duplicate": 2}


@st.composite
def values_with(draw, odd_pieces: list[tuple[str, str]] = ()) -> bytes:
    """`value; name=token; name="quoted"` in the fast path's shape, each odd piece put in one
    place of its kind; ASCII when there is none, else UTF-8 or Latin-1 bytes."""
    params = draw(st.lists(st.tuples(_names, st.one_of(_bare_values, _quoted_values)), max_size=4,
                           min_size=max([_MIN_PARAMS[kind] for kind, _ in odd_pieces], default=0),
                           unique_by=lambda param: param[0].lower()))
    slots = {"main": [draw(_main_values)], "separator": [";"] * len(params),
             "name": [name for name, _ in params], "value": [value for _, value in params]}
    inserts = []
    for kind, text in odd_pieces:
        if kind == "duplicate":
            first, second = draw(st.permutations(range(len(params))))[:2]
            slots["name"][second] = slots["name"][first].swapcase() if text == "other case" else slots["name"][first]
        elif kind == "anywhere":
            inserts.append(text)
        else:
            slots[kind][draw(st.integers(0, len(slots[kind]) - 1))] = text
    text = draw(_spaces) + slots["main"][0] + draw(_spaces)
    for separator, name, value in zip(slots["separator"], slots["name"], slots["value"]):
        text += separator + draw(_spaces) + name + draw(_spaces) + "=" + draw(_spaces) + value + draw(_spaces)
    if draw(st.booleans()):
        text += ";" + draw(_spaces)
    for insert in inserts:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + insert + text[at:]
    return text.encode(draw(st.sampled_from(["utf-8", "latin-1"])) if odd_pieces else "ascii")


@given(values_with())
def test_values_in_the_fast_paths_shape_are_taken_and_read_as_the_full_reader_reads_them(raw):
    if b"=?" not in raw:   # a bare value may hold '=?' or follow '=' with '?': RFC 2047 look-alikes go the full way
        assert _simple_params(raw) is not None
    assert parse_params_header(raw) == _read_params(raw)


@pytest.mark.parametrize("odd", ODD_PIECES, ids=repr)
@settings(max_examples=10)
@given(data=st.data())
def test_each_near_miss_reads_as_the_full_reader_reads_it(odd, data):
    raw = data.draw(values_with([odd]))
    assert parse_params_header(raw) == _read_params(raw)


@given(st.lists(st.sampled_from(ODD_PIECES), max_size=3).flatmap(values_with))
def test_values_with_several_odd_pieces_read_as_the_full_reader_reads_them(raw):
    assert parse_params_header(raw) == _read_params(raw)


@given(st.binary(max_size=80))
def test_any_bytes_read_as_the_full_reader_reads_them(raw):
    assert parse_params_header(raw) == _read_params(raw)
