"""Hostile attachment names become safe names inside DIR, each change explained."""

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.streams.files import suffixed_name
from mimekit.read.safe_names import MAX_NAME_BYTES, RenameReason, fallback_name, safe_name, sanitize_filename


@pytest.mark.parametrize("hostile, expected, reasons", [
    ("../../x", "x", [RenameReason.PATH_SEPARATOR, RenameReason.PARENT_DIRECTORY]),
    ("/etc/passwd", "etc_passwd", [RenameReason.PATH_SEPARATOR]),
    ("..\\..\\windows\\win.ini", "windows_win.ini", [RenameReason.PATH_SEPARATOR, RenameReason.PARENT_DIRECTORY]),
    (".bashrc", "bashrc", [RenameReason.LEADING_DOT]),
    ("\x1b[31mred\x1b[0m.txt", "red.txt", [RenameReason.CONTROL_CHARACTER]),
    ("\x1b]0;pwned\x07title.txt", "title.txt", [RenameReason.CONTROL_CHARACTER]),
    ("line\r\nbreak\x00.txt", "linebreak.txt", [RenameReason.CONTROL_CHARACTER]),
    ("invoice\u202efdp.exe", "invoicefdp.exe", [RenameReason.CONTROL_CHARACTER]),
    ("CON", "_CON", [RenameReason.RESERVED_NAME]),
    ("nul.tar.gz", "_nul.tar.gz", [RenameReason.RESERVED_NAME]),
    ("com1 .txt", "_com1 .txt", [RenameReason.RESERVED_NAME]),
    ("  padded.txt ", "padded.txt", [RenameReason.SURROUNDING_SPACE]),
    ("bad\udcff.txt", "bad\ufffd.txt", [RenameReason.INVALID_UTF8]),
    # issue 8 item 16: the leading-dot rule held only for dots then spaces, not a mix
    (". .forward", "forward", [RenameReason.LEADING_DOT]),
    (" . . .bashrc", "bashrc", [RenameReason.SURROUNDING_SPACE, RenameReason.LEADING_DOT]),
    (".\u3000.profile", "profile", [RenameReason.LEADING_DOT]),
    ("./. .ssh", "ssh", [RenameReason.PATH_SEPARATOR, RenameReason.LEADING_DOT]),
    ("\x1b[0m. .x", "x", [RenameReason.CONTROL_CHARACTER, RenameReason.LEADING_DOT]),
])
def test_hostile_names_are_made_safe_with_reasons(hostile, expected, reasons):
    assert sanitize_filename(hostile) == (expected, reasons)


@pytest.mark.parametrize("kept", ["Grüße aus Köln.pdf", "отчёт 2024.docx", "写真 (1).jpg", "a..b.txt",
                                  "CONFIG.txt", "console.log"])
def test_harmless_names_are_kept_as_sent(kept):
    assert sanitize_filename(kept) == (kept, [])


def test_300_byte_name_is_cut_on_a_character_boundary_keeping_the_extension():
    name = "ü" * 150 + ".pdf"   # 304 bytes in UTF-8
    safe, reasons = sanitize_filename(name)
    assert reasons == [RenameReason.TOO_LONG]
    assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES
    assert safe.endswith(".pdf") and set(safe[:-4]) == {"ü"}


def test_overlong_tail_after_a_dot_is_not_kept_as_an_extension():
    safe, _ = sanitize_filename("x." + "y" * 300)
    assert safe == "x." + "y" * (MAX_NAME_BYTES - 2)


def test_nothing_usable_left_gives_a_fallback_name_from_part_id_and_type():
    assert safe_name("..", "1.2", "application/pdf") == (
        "part-1.2.pdf", [RenameReason.PARENT_DIRECTORY, RenameReason.EMPTY])
    assert safe_name("\x1b[0m", "3", "text/plain") == (
        "part-3.txt", [RenameReason.CONTROL_CHARACTER, RenameReason.EMPTY])


def test_missing_name_gives_fallback_with_type_extension():
    assert safe_name(None, "2", "text/html") == ("part-2.html", [RenameReason.NO_NAME])
    assert fallback_name("4", "message/rfc822") == "part-4.eml"
    assert fallback_name("5", "application/x-unheard-of") == "part-5.bin"
    assert fallback_name("", "TEXT/PLAIN") == "part-message.txt"


def test_fallback_name_of_a_deeply_nested_part_is_bounded():
    name = fallback_name(".".join(["1234"] * 100), "image/png")
    assert name.startswith("part-1234.1234.") and name.endswith(".png")
    assert len(name.encode()) <= MAX_NAME_BYTES


def test_a_cut_that_leaves_a_reserved_name_is_caught_after_it():
    """The cut runs after the reserved-name rule: "CON" + spaces + "x" is harmless until
    the spaces and x are cut off."""
    assert sanitize_filename("CON" + " " * 300 + "x") == ("_CON", [RenameReason.TOO_LONG, RenameReason.RESERVED_NAME])
    assert sanitize_filename("CON" + " " * 300 + "x.txt") == ("_CON.txt",
                                                              [RenameReason.TOO_LONG, RenameReason.RESERVED_NAME])


# Pieces that each rule exists for, so that hypothesis mixes them far more often than
# arbitrary text would: dots, spaces of every kind, separators, escapes, bidi controls,
# lone surrogates (undecodable bytes), reserved device names, long runs.
_HOSTILE_PIECES = st.sampled_from([
    ".", "..", " ", "\t", "\u3000", "\u00a0", "/", "\\", "\x00", "\x1b[2J", "\x1b]0;t\x07", "\x1b",
    "\u202e", "\u2028", "\x85", "\udcff", "CON", "nul", "com1", "LPT\u00b9", "a", "\u00fc", "\u5199",
    ".txt", ".tar.gz", "x" * 120, "\u00fc" * 70, " " * 150])
_ANY_NAME = st.one_of(st.text(st.characters(codec=None, categories=None), max_size=400),
                      st.lists(_HOSTILE_PIECES, max_size=30).map("".join))


def assert_safe(name: str, limit: int = MAX_NAME_BYTES) -> None:
    """Every rule of docs/conventions.md, Safety, for a written name."""
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name
    assert not name.startswith(".")
    assert name == name.strip()
    assert not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in "\u202a\u202b\u202d\u202e" for ch in name)
    assert name.split(".", 1)[0].rstrip(" ").upper() not in ("CON", "PRN", "AUX", "NUL", "COM1", "LPT1", "LPT\u00b9")
    assert len(name.encode("utf-8")) <= limit   # encode() also proves valid UTF-8: no lone surrogate


@given(_ANY_NAME)
def test_any_name_sanitises_to_a_safe_stable_name(name):
    safe, _ = sanitize_filename(name)
    if safe:
        assert_safe(safe)
    assert sanitize_filename(safe) == (safe, [])


@given(_ANY_NAME, st.integers(min_value=0, max_value=10**6))
def test_every_name_written_is_safe_clash_suffix_included(name, attempt):
    """What extraction writes: safe_name (with its fallback), then a clash suffix."""
    written = suffixed_name(safe_name(name, "1.2", "text/plain")[0], attempt)
    assert_safe(written, limit=255)
