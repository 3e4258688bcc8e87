"""Folding, unfolding, field-name checks and the RFC 5322 lexical scanners."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import fastest_of_three, first_field
from mimekit.errors import DataError
from mimekit.headers.folding import (check_header_value, fold_header, fold_pieces, read_comment,
                             read_quoted_string, unfold)


def lines_of(folded: bytes, eol: bytes = b"\r\n") -> list[bytes]:
    assert folded.endswith(eol)
    return folded[:-len(eol)].split(eol)


@pytest.mark.parametrize("value", ["a\r\nBcc: victim@example.com", "a\nb", "a\rb", "\r\n"])
def test_cr_or_lf_in_a_value_is_refused(value):
    with pytest.raises(DataError, match="header Subject: value contains CR or LF"):
        check_header_value("Subject", value)


@pytest.mark.parametrize("name", ["", "Sub ject", "Subject:", "Süb", "X\tY", "X\x7f"])
def test_field_names_outside_ftext_are_refused(name):
    with pytest.raises(DataError, match="invalid field name"):
        check_header_value(name, "value")


def test_fold_header_refuses_injection_too():
    with pytest.raises(DataError):
        fold_header("Subject", "hi\r\nBcc: victim@example.com")


def test_short_value_is_one_line():
    assert fold_header("Subject", "Hello world") == b"Subject: Hello world\r\n"


def test_empty_value_has_no_trailing_space():
    assert fold_header("X-Empty", "") == b"X-Empty:\r\n"


def test_long_value_folds_before_whitespace_within_78_columns():
    value = " ".join(f"word{i:03d}" for i in range(40))
    folded = fold_header("Subject", value)
    lines = lines_of(folded)
    assert len(lines) > 1
    assert all(len(line) <= 78 for line in lines)
    assert all(line.startswith(b" ") for line in lines[1:])
    assert unfold(folded) == f"Subject: {value}\r\n".encode()


def test_whitespace_runs_survive_folding_exactly():
    value = "a" * 40 + "   " + "b" * 40 + "\t" + "c" * 40
    folded = fold_header("Subject", value)
    assert unfold(folded) == f"Subject: {value}\r\n".encode()


def test_no_line_is_only_whitespace():
    folded = fold_header("Subject", "x" * 70 + "      ")
    assert all(line.strip() for line in lines_of(folded))


def test_never_breaks_between_the_colon_and_the_first_word():
    # "Subject:\r\n word" reads back with a leading space in common parsers.
    folded = fold_header("Subject", "x" * 90 + " y")
    assert folded.startswith(b"Subject: " + b"x" * 90 + b"\r\n y")


def test_a_word_longer_than_78_stays_whole_on_its_own_line():
    long_word = "u" * 200
    folded = fold_header("X-Url", f"see {long_word} now")
    assert lines_of(folded) == [b"X-Url: see", b" " + long_word.encode(), b" now"]


def test_a_word_that_cannot_fit_998_is_refused():
    with pytest.raises(DataError, match="998"):
        fold_header("X-Blob", "z" * 1000)


def test_eol_can_be_lf():
    folded = fold_header("Subject", " ".join(["abcdefghij"] * 12), eol=b"\n")
    assert b"\r" not in folded and folded.count(b"\n") == 2


@given(st.lists(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1, max_size=30),
                min_size=1, max_size=30),
       st.lists(st.sampled_from([" ", "  ", "\t", " \t "]), min_size=30, max_size=30))
def test_folding_is_undone_by_unfolding_and_keeps_lines_short(words, spaces):
    value = "".join(word + space for word, space in zip(words, spaces)).rstrip(" \t")
    folded = fold_header("Subject", value)
    assert unfold(folded) == f"Subject: {value}\r\n".encode()
    assert all(len(line) <= 78 for line in lines_of(folded))


def test_fold_pieces_keeps_each_piece_on_one_line_when_it_fits():
    pieces = ['attachment;', 'filename="a rather long file name with spaces in it.pdf";', 'size=12345']
    folded = fold_pieces("Content-Disposition", pieces)
    assert lines_of(folded) == [b"Content-Disposition: attachment;",
                                b' filename="a rather long file name with spaces in it.pdf"; size=12345']


def test_fold_pieces_breaks_inside_a_piece_only_when_it_is_longer_than_a_line():
    long_piece = " ".join(["=?utf-8?q?abcdefghijklmnopqrstuvwxyz?="] * 4) + " <a@example.com>"
    folded = fold_pieces("To", ["x@example.com,", long_piece])
    lines = lines_of(folded)
    assert lines[0] == b"To: x@example.com,"
    assert all(len(line) <= 78 for line in lines)
    assert unfold(folded) == f"To: x@example.com, {long_piece}\r\n".encode()


@pytest.mark.parametrize("raw, unfolded", [
    (b"a\r\n b", b"a b"),
    (b"a\n\tb", b"a\tb"),
    (b"a\r\n\r\n b", b"a\r\n b"),     # only the break right before whitespace goes
    (b"a\r\nb", b"a\r\nb"),
])
def test_unfold_removes_only_line_breaks_before_whitespace(raw, unfolded):
    assert unfold(raw) == unfolded


def test_quoted_string_undoes_quoted_pairs():
    assert read_quoted_string('x "a \\"b\\" \\\\c" y', 2) == ('a "b" \\c', 15, True)


def test_unterminated_quoted_string_runs_to_the_end():
    assert read_quoted_string('"abc', 0) == ("abc", 4, False)


def test_comments_nest_and_undo_quoted_pairs():
    text = "(a (b \\) c) d) rest"
    assert read_comment(text, 0) == ("a (b ) c) d", 14, True)


def test_unclosed_comment_runs_to_the_end():
    assert read_comment("(a (b", 0) == ("a (b", 5, False)


@pytest.mark.parametrize("text, scan", [
    ("(" * 200_000, lambda t: read_comment(t, 0)),
    ('"' + "\\a" * 100_000, lambda t: read_quoted_string(t, 0)),
    ("a " * 100_000, lambda t: fold_header("Subject", t)),
])
def test_scanners_are_linear_on_200_kb(text, scan):
    assert fastest_of_three(lambda: scan(text)) < 2


@pytest.mark.parametrize("header, value", [
    ("Re: Saying Hello\r\n", "Re: Saying Hello"),
    (" Fwd: \n\tSaying \n Hello\r\n", " Fwd: \n\tSaying \n Hello"),
    (" FWD: \n Saying Hello \nX-Mailer: 123\r\n", " FWD: \n Saying Hello "),
    ("a\r\n\r\n body", "a"),
    ("no line break", "no line break"),
])
def test_first_field_stops_at_a_line_break_that_is_not_folding(header, value):
    assert first_field(header) == value
