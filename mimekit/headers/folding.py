"""RFC 5322 lexical layer: field names, folding and unfolding, quoted strings and comments.

Folding (RFC 5322 §2.2.3) inserts a line break before existing whitespace, so unfolding
(removing a CRLF that is followed by WSP) gives back exactly the value that was folded.
Lines are kept to 78 columns where the value allows it and never over 998 (§2.1.1).

Every scanner here moves an index forward through the text and never re-slices the rest
of it, so a hostile 200 KB header costs linear time (Python's `email` re-slices, which is
quadratic: gh-136063). The regular expressions have no nested or overlapping quantifiers.
"""

import re
from collections.abc import Iterable

from mimekit.errors import DataError

MAX_LINE = 998          # RFC 5322 §2.1.1: MUST NOT be exceeded
WANT_LINE = 78          # RFC 5322 §2.1.1: SHOULD NOT be exceeded

_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")       # ftext: printable ASCII except ':'
_WORD = re.compile(r"[ \t]*[^ \t]+")                       # a word with the whitespace before it
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
# Quoted string body, "unrolled loop" form: linear, no backtracking between alternatives.
_QUOTED_BODY = re.compile(r'[^"\\]*(?:\\[\s\S][^"\\]*)*')
_QUOTED_PAIR = re.compile(r"\\([\s\S])")
_COMMENT_STEP = re.compile(r"[^()\\]+|\\[\s\S]?|[()]")


def check_header_value(name: str, value: str) -> None:
    """Refuse what would let a caller inject header lines, write an unreadable field name, or
    put a NUL in a header (RFC 5322 allows none; C readers stop at it, so a reader would see
    part of the value and a filter another part). Every writer of a header value calls this."""
    if not _FIELD_NAME.fullmatch(name):
        raise DataError(f"header {name!r}: invalid field name (RFC 5322 ftext)")
    if "\r" in value or "\n" in value:
        raise DataError(f"header {name}: value contains CR or LF")
    if "\0" in value:
        raise DataError(f"header {name}: value contains NUL")


def fold_header(name: str, value: str, eol: bytes = b"\r\n", max_len: int = WANT_LINE) -> bytes:
    """Write `Name: value` folded at whitespace; `value` must already be 7-bit (encoded)."""
    check_header_value(name, value)
    return _layout(name, [[word] for word in _split_words(value)], eol, max_len)


def fold_pieces(name: str, pieces: Iterable[str], eol: bytes = b"\r\n",
                max_len: int = WANT_LINE) -> bytes:
    """Write `Name: p1 p2 ...`, breaking lines preferably between pieces.

    A piece (one address, one parameter) stays on one line when it fits on one; only a
    piece too long for any line is broken at its own inner whitespace. Structured headers
    use this so that a break never lands inside a quoted parameter value that would fit.
    """
    units = []
    for piece in pieces:
        check_header_value(name, piece)
        words = _split_words(piece)
        if units and words:
            words[0] = " " + words[0]
        if words:
            units.append(words)
    return _layout(name, units, eol, max_len)


def unfold(raw: bytes) -> bytes:
    """Remove each line break (CRLF or bare LF) that is followed by whitespace."""
    return _FOLD.sub(b"", raw)


def quote_string(text: str) -> str:
    """`text` as a quoted-string: the inverse of read_quoted_string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_quoted_string(text: str, start: int) -> tuple[str, int, bool]:
    """Read the quoted-string whose opening quote is at `start`.

    Returns (content with quoted-pairs undone, index after the closing quote, whether the
    closing quote was there). An unterminated string runs to the end of `text`.
    """
    body = _QUOTED_BODY.match(text, start + 1)
    end = body.end()
    terminated = end < len(text)
    content = _QUOTED_PAIR.sub(r"\1", body.group())
    return content, end + 1 if terminated else end, terminated


def read_comment(text: str, start: int) -> tuple[str, int, bool]:
    """Read the (possibly nested) comment whose "(" is at `start`.

    Returns (inner text with quoted-pairs undone, index after the closing ")", whether it
    was closed). An unclosed comment runs to the end of `text`.
    """
    depth, pos, pieces = 0, start, []
    while pos < len(text):
        step = _COMMENT_STEP.match(text, pos)
        token = step.group()
        pos = step.end()
        if token == "(":
            depth += 1
            if depth == 1:
                continue
        elif token == ")":
            depth -= 1
            if depth == 0:
                return "".join(pieces), pos, True
        elif token[0] == "\\":
            token = token[1:]
        pieces.append(token)
    return "".join(pieces), pos, False


def _split_words(value: str) -> list[str]:
    """Split into words that each carry the whitespace before them.

    Whitespace at the very end joins the last word: a folded line may not consist of
    whitespace only.
    """
    words = _WORD.findall(value)
    tail = len(value) - sum(map(len, words))
    if tail:
        if words:
            words[-1] += value[-tail:]
        else:
            words = [value]
    return words


def _octets(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _layout(name: str, units: list[list[str]], eol: bytes, max_len: int) -> bytes:
    """Greedy line filling: a unit goes on the current line if it fits, else it starts a new
    line, where it is broken at its inner whitespace if it is longer than a line.

    Nothing ever breaks before the first word: after `Name:` a break would give an
    unstructured value a leading space in common parsers (Python's included).
    """
    lines, widths = [name + ":"], [len(name) + 1]

    def place(word: str, new_line: bool) -> None:
        if new_line:
            lines.append("")
            widths.append(0)
        lines[-1] += word
        widths[-1] += _octets(word)
        if widths[-1] > MAX_LINE:
            raise DataError(f"header {name}: a word cannot be folded into lines of at most "
                            f"{MAX_LINE} characters")

    for index, unit in enumerate(units):
        words = unit
        if index == 0:
            place(" " + unit[0], new_line=False)
            words = unit[1:]
        else:
            size = sum(map(_octets, unit))
            if widths[-1] + size <= max_len:
                place("".join(unit), new_line=False)
                continue
            place(unit[0], new_line=True)
            words = unit[1:]
        for word in words:
            place(word, new_line=widths[-1] + _octets(word) > max_len)
    return eol.join(line.encode("utf-8") for line in lines) + eol
