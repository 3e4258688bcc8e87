"""Hostile attachment names become safe names inside DIR, each change explained."""

import os
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import CantCreateError
from mimekit.safe_names import (
    MAX_NAME_BYTES,
    OutputDirectory,
    RenameReason,
    create_exclusive,
    fallback_name,
    safe_name,
    sanitize_filename,
)


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


@given(st.text(max_size=400))
def test_any_name_sanitises_to_a_safe_stable_name(name):
    safe, _ = sanitize_filename(name)
    if safe:
        assert "/" not in safe and "\\" not in safe
        assert not safe.startswith(".") and safe not in ("", ".", "..")
        assert safe == safe.strip()
        assert len(safe.encode("utf-8")) <= MAX_NAME_BYTES   # also proves valid UTF-8
        assert not any(unicodedata.category(ch) == "Cc" for ch in safe)
    assert sanitize_filename(safe) == (safe, [])


def test_create_exclusive_never_overwrites_and_suffixes_clashes(tmp_path):
    (tmp_path / "report.pdf").write_bytes(b"already here")
    first_path, first = create_exclusive(str(tmp_path), "report.pdf")
    second_path, second = create_exclusive(str(tmp_path), "report.pdf")
    with first, second:
        first.write(b"one")
        second.write(b"two")
    assert (tmp_path / "report.pdf").read_bytes() == b"already here"
    assert first_path == str(tmp_path / "report (1).pdf")
    assert second_path == str(tmp_path / "report (2).pdf")
    assert (tmp_path / "report (1).pdf").read_bytes() == b"one"
    assert (tmp_path / "report (2).pdf").read_bytes() == b"two"


def test_create_exclusive_never_follows_a_planted_symlink(tmp_path):
    target = tmp_path / "outside.txt"
    target.write_bytes(b"precious")
    directory = tmp_path / "dir"
    directory.mkdir()
    os.symlink(target, directory / "x.txt")
    os.symlink(tmp_path / "nowhere", directory / "dangling")
    path, stream = create_exclusive(str(directory), "x.txt")
    with stream:
        stream.write(b"attacker data")
    dangling_path, dangling = create_exclusive(str(directory), "dangling")
    dangling.close()
    assert target.read_bytes() == b"precious"
    assert not (tmp_path / "nowhere").exists()
    assert path == str(directory / "x (1).txt") and dangling_path == str(directory / "dangling (1)")
    assert os.path.islink(directory / "x.txt")


def test_create_exclusive_treats_a_directory_of_that_name_as_taken(tmp_path):
    (tmp_path / "notes").mkdir()
    path, stream = create_exclusive(str(tmp_path), "notes")
    stream.close()
    assert path == str(tmp_path / "notes (1)")


def test_many_clashes_on_one_name_cost_linear_attempts(tmp_path, monkeypatch):
    attempts = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *args, **kwargs: attempts.append(args[0]) or real_open(*args, **kwargs))
    paths = []
    with OutputDirectory(str(tmp_path)) as output:
        for _ in range(200):
            path, stream = output.create_exclusive("image.png")
            stream.close()
            paths.append(path)
    assert paths[-1] == str(tmp_path / "image (199).png")
    assert len(attempts) == 1 + 200      # the directory, then one attempt per file


def test_create_exclusive_in_missing_directory_is_cant_create(tmp_path):
    with pytest.raises(CantCreateError, match="missing"):
        create_exclusive(str(tmp_path / "missing"), "x.txt")
