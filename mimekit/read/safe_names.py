"""Safe file names for extracted parts.

A part's name is chosen by whoever sent the message, so it is hostile until proven
otherwise (docs/conventions.md, Safety). `sanitize_filename` keeps a name as sent where it is
harmless (spaces and non-ASCII letters stay) and records every change it makes, so the
decode manifest can say why a written name differs from the original. Writing the file
(exclusively, never replacing, a clash suffixed) is mimekit.streams.files.OutputDirectory's.
"""

import re
import unicodedata
from enum import Enum
from functools import cache

from mimekit.streams.files import split_extension

# Most file systems allow 255 bytes per name; the margin leaves room for a clash suffix.
MAX_NAME_BYTES = 200


class RenameReason(str, Enum):
    """Why a written name differs from the name the message gave (manifest `reasons`)."""

    NO_NAME = "no-name"                      # the part had no name: a fallback was made up
    INVALID_UTF8 = "invalid-utf8"            # undecodable bytes replaced by U+FFFD
    CONTROL_CHARACTER = "control-character"  # control, escape or bidi-override characters removed
    PATH_SEPARATOR = "path-separator"        # "/" or "\\" replaced, directories flattened
    PARENT_DIRECTORY = "parent-directory"    # ".." components removed
    SURROUNDING_SPACE = "surrounding-space"  # leading/trailing white space removed
    LEADING_DOT = "leading-dot"              # would have been a hidden file
    RESERVED_NAME = "reserved-name"          # CON, NUL, COM1 ... cannot be created on Windows
    TOO_LONG = "too-long"                    # cut to MAX_NAME_BYTES, extension kept
    EMPTY = "empty"                          # nothing usable was left: a fallback was made up
    CLASH = "clash"                          # the name was taken in DIR: a suffix was added


# Terminal escape sequences (CSI and OSC) are removed whole, so "\x1b[31mx" becomes "x".
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
# Bidi controls make "exe.pdf" display as "fdp.exe" (the RLO trick); they are never needed in a name.
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SEPARATORS = re.compile(r"[/\\]")
# Dots and white space in any mix: ". .forward" is as hidden as ".forward".
_LEADING_DOTS = re.compile(r"^[.\s]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"COM{n}" for n in "123456789¹²³"]
    + [f"LPT{n}" for n in "123456789¹²³"]
)


@cache
def _builtin_extensions() -> dict[str, str]:
    """Media type -> preferred extension from Python's built-in table only (what
    MimeTypes().guess_extension answers before reading /etc/mime.types): the system file
    differs between machines, so fallback names would too, and reading it costs every
    decode 25 ms of start-up. Made on first use: `show` and `scan` import this module and
    never name a file (the table and mimetypes cost 7.8M instructions of start-up)."""
    import mimetypes
    extensions: dict[str, str] = {}
    for table in (mimetypes._types_map_default, mimetypes._common_types_default):
        for extension, media_type in table.items():
            extensions.setdefault(media_type, extension)
    return extensions


def sanitize_filename(name: str) -> tuple[str, list[RenameReason]]:
    """Return `name` made safe to create inside a directory, and the reasons it changed.

    The result may be "" (e.g. for ".."): the caller then needs a fallback name.
    """
    reasons: list[RenameReason] = []

    def changed(reason: RenameReason, before: str, after: str) -> str:
        if after != before and reason not in reasons:
            reasons.append(reason)
        return after

    name = changed(RenameReason.INVALID_UTF8, name, replace_surrogates(name))
    name = changed(RenameReason.CONTROL_CHARACTER, name, _remove_control_characters(name))
    components = _SEPARATORS.split(name)
    if len(components) > 1:
        reasons.append(RenameReason.PATH_SEPARATOR)
    if ".." in (component.strip() for component in components):
        reasons.append(RenameReason.PARENT_DIRECTORY)
    name = "_".join(c for c in components if c.strip() not in ("", ".", ".."))
    # One step can undo another's work (a cut can leave "CON.txt" or a trailing space),
    # so they run until the name holds still: the rules hold for the name returned.
    # This ends: every step but one only shortens, and the "_" it prefixes stays first.
    while True:
        before = name
        name = changed(RenameReason.SURROUNDING_SPACE, name, name.strip())
        name = changed(RenameReason.LEADING_DOT, name, _LEADING_DOTS.sub("", name))
        name = changed(RenameReason.RESERVED_NAME, name, "_" + name if _is_windows_reserved(name) else name)
        name = changed(RenameReason.TOO_LONG, name, _cut_to_bytes(name, MAX_NAME_BYTES))
        if name == before:
            return name, reasons


def fallback_name(part_id: str, content_type: str) -> str:
    """A made-up name for a part without one: its id plus an extension for its type.

    Ids of deeply nested parts can be long: the name is cut like any other.
    """
    extension = _builtin_extensions().get(content_type.lower(), ".bin")
    return _cut_to_bytes(f"part-{part_id or 'message'}{extension}", MAX_NAME_BYTES)


def safe_name(original: str | None, part_id: str, content_type: str) -> tuple[str, list[RenameReason]]:
    """The name to write a part under, and why it differs from `original` (None = no name)."""
    if not original:
        return fallback_name(part_id, content_type), [RenameReason.NO_NAME]
    name, reasons = sanitize_filename(original)
    if not name:
        return fallback_name(part_id, content_type), reasons + [RenameReason.EMPTY]
    return name, reasons


def replace_surrogates(text: str) -> str:
    """`text` with each lone surrogate (e.g. a surrogate-escaped undecodable byte) as
    U+FFFD: lone surrogates cannot be written as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def _remove_control_characters(name: str) -> str:
    name = _ESCAPE_SEQUENCE.sub("", name)
    return "".join(
        ch for ch in name
        if ch not in _BIDI_CONTROLS and unicodedata.category(ch) not in ("Cc", "Zl", "Zp")
    )


def _is_windows_reserved(name: str) -> bool:
    """Windows reserves these device names whatever follows the first dot ("CON.txt" too)."""
    return name.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_RESERVED


def _cut_to_bytes(name: str, limit: int) -> str:
    """Cut `name` to at most `limit` UTF-8 bytes on a character boundary, keeping its extension."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, extension = split_extension(name)
    room = limit - len(extension.encode("utf-8"))
    return stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip() + extension
