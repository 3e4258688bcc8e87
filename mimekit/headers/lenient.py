"""The other ways a mail client may read a header, a Content-Type or a body's boundaries.

The parser (mimekit.read.parser) reads a part one way, RFC first. Mail clients disagree with
it, and attackers hide an attachment in the difference (a field behind a doubled colon, a
boundary that only a lenient reader finds). mimekit.read.readings tries every other reading
found here; each is labelled with the trick it undoes:

- header_readings: other tokenisations of a header block (header-double-colon,
  header-no-colon-line, header-bare-cr, header-in-continuation, header-after-junk), each
  reported only when it sees another Content-Type, Content-Transfer-Encoding or
  Content-Disposition field, or another body start, than the parser's rules do;
- type_readings: every plausible (type, boundary) of a part's Content-Type fields;
- DelimiterScan: in one streaming pass over a body, which candidate boundaries occur as
  delimiter lines, and which boundaries the body's own `--X` lines suggest.

Everything is bounded: a header is read in the window the caller passes, at most one reading
per trick and MAX_TYPE_READINGS type readings, and a body scan holds a tail of at most about
1 KiB and MAX_CANDIDATES inferred boundaries, whatever the body's size.
"""

import re
from collections import Counter
from dataclasses import dataclass
from itertools import filterfalse, islice
from operator import itemgetter
from urllib.parse import unquote_to_bytes

from mimekit.headers.encoded_words import decode_header_value, decode_words
from mimekit.headers.params import HeaderParams, parse_params_header
from mimekit.read.parser import _FIELD_NAME as FIELD_NAME
from mimekit.read.parser import MEDIA_TYPE

DECIDING_FIELDS = frozenset({"content-type", "content-transfer-encoding", "content-disposition"})
MAX_TYPE_READINGS = 8
MAX_BOUNDARY = 200          # longest boundary looked for or inferred (RFC 2046 allows 70)
MAX_ASSIGNMENTS_READ = 16   # `boundary=` occurrences in one Content-Type value read for variants
VALUE_WINDOW = 4 * MAX_BOUNDARY   # bytes after `boundary=` its value is read in


# -- header tokenisations -------------------------------------------------------------------

@dataclass(frozen=True)
class HeaderReading:
    reading: str                              # the trick's label, e.g. "header-double-colon"
    fields: tuple[tuple[str, bytes], ...]     # (lowercase field name, raw value), in order
    body_start: int                           # offset in `head` of the body; -1 if `head` ended inside the header


_STRICT_BREAK = re.compile(rb"\r\n|\n|\r")           # the parser's line ends: a bare CR is one
_CRLF_OR_LF = re.compile(rb"\r?\n")                   # a bare CR is only a character of the line
_BARE_CR = re.compile(rb"\r(?!\n)")
_EXTRA_COLONS = re.compile(rb"(?:[ \t]*:)+")
_HIDDEN_FIELD = re.compile(rb"[ \t]+(content-type|content-transfer-encoding|content-disposition)[ \t]*:", re.I)
_HIDDEN_FIELD_LINE = re.compile(rb"[\r\n]" + _HIDDEN_FIELD.pattern, re.I)
_INDENTED_FIELD = re.compile(rb"[ \t]+" + FIELD_NAME.pattern)
_MAX_JUNK_LINES = 8         # lines skipped before a part's first field
_MAX_JUNK_LINE = 200        # longer lines are text, not junk


@dataclass(frozen=True)
class _Rules:
    """How one reading tokenises a header block; the defaults are the parser's rules."""

    label: str
    line_break: re.Pattern = _STRICT_BREAK
    double_colon: bool = False        # `Name:: value`: the extra colons are not part of the value
    skip_no_colon: bool = False       # a line that is not a field, after a field, is skipped
    split_continuation: bool = False  # ` Content-Type: ...` folded into another field is a field
    skip_junk: bool = False           # short non-field lines before the first field are skipped, an indented field read


_STRICT = _Rules("default")


@dataclass
class _Tokens:
    fields: list[tuple[str, bytearray]]
    body_start: int
    stopped_at_text: bool = False     # a line that is neither field, fold nor blank ended the header
    skipped: bool = False             # the reading skipped a line the parser stops at, and a field followed


def _tokenise(head: bytes, whole: bool, rules: _Rules) -> _Tokens:
    """The header block at the start of `head` read with `rules` (the parser's
    _read_headers and _finish_field when they are the defaults)."""
    tokens = _Tokens([], -1)
    fields = tokens.fields
    field_open = pending_skip = False
    junk_lines = 0
    line_break = b""
    pos = 0
    while pos < len(head):
        match = rules.line_break.search(head, pos)
        if match is None and not whole:
            return tokens            # the window ends inside a line of the header
        end, next_start = match.span() if match else (len(head), len(head))
        if next_start == len(head) and head.endswith(b"\r") and not whole:
            return tokens            # a CR at the window's end: a line end, or the start of a CRLF
        line = head[pos:end]
        junk = rules.skip_junk and not fields and junk_lines < _MAX_JUNK_LINES and len(line) <= _MAX_JUNK_LINE
        if not line or line[0] in b" \t":
            hidden = ((rules.split_continuation and field_open and _HIDDEN_FIELD.match(line))
                      or (junk and _INDENTED_FIELD.match(line)))
            if hidden:
                fields.append((hidden.group(1).lower().decode("ascii"), bytearray(line[hidden.end():])))
                field_open = tokens.skipped = True
            elif line and field_open:
                fields[-1][1].extend(line_break + line)
            elif junk:
                junk_lines += 1
                pending_skip = True
            else:
                tokens.body_start = next_start if not line else pos
                tokens.stopped_at_text = bool(line)
                return tokens
        elif field := FIELD_NAME.match(line):
            value = line[field.end():]
            if rules.double_colon and (extra := _EXTRA_COLONS.match(value)):
                value = value[extra.end():]
                tokens.skipped = True
            fields.append((field.group(1).lower().decode("ascii"), bytearray(value)))
            field_open = True
            tokens.skipped = tokens.skipped or pending_skip
            pending_skip = False
        elif junk or (rules.skip_no_colon and fields and not line.startswith(b"--")):
            junk_lines += junk
            pending_skip = True
        else:
            tokens.body_start = pos
            tokens.stopped_at_text = True
            return tokens
        line_break = head[end:next_start]
        pos = next_start
    if whole:
        tokens.body_start = len(head)
    return tokens


def _deciding(tokens: _Tokens) -> list[tuple[str, bytes]]:
    return [(name, bytes(value)) for name, value in tokens.fields if name in DECIDING_FIELDS]


def header_readings(head: bytes, head_is_whole_part: bool) -> list[HeaderReading]:
    """Other tokenisations of the header block at the start of `head` (a part's bytes from
    its first header byte; head_is_whole_part: the part ends where `head` does). Only those
    that see other Content-Type, Content-Transfer-Encoding or Content-Disposition fields, or
    another body start, than the parser's rules (for a part: no garbage skipped) are returned.
    Each trick is tried only where the strict reading shows what it undoes."""
    strict = _tokenise(head, head_is_whole_part, _STRICT)
    header_end = strict.body_start if strict.body_start >= 0 else len(head)
    tried = []
    if any(_EXTRA_COLONS.match(value) for _, value in strict.fields):
        tried.append(_Rules("header-double-colon", double_colon=True))
    if strict.fields and strict.stopped_at_text:
        tried.append(_Rules("header-no-colon-line", skip_no_colon=True))
    if _BARE_CR.search(head, 0, header_end):
        tried.append(_Rules("header-bare-cr", line_break=_CRLF_OR_LF))
    if _HIDDEN_FIELD_LINE.search(head, 0, header_end):
        tried.append(_Rules("header-in-continuation", split_continuation=True))
    if not strict.fields and head:
        tried.append(_Rules("header-after-junk", skip_junk=True))
    readings = []
    for rules in tried:
        tokens = _tokenise(head, head_is_whole_part, rules)
        if not tokens.fields or (rules.line_break is _STRICT_BREAK and not tokens.skipped):
            continue    # the trick found nothing to undo (a no-colon line not followed by a field...)
        if rules.skip_junk and not _deciding(tokens):
            continue    # text that happens to look like a field: nothing a client would act on
        if _deciding(tokens) != _deciding(strict) or tokens.body_start != strict.body_start:
            readings.append(HeaderReading(rules.label, tuple((name, bytes(value)) for name, value in tokens.fields),
                                          tokens.body_start))
    return readings


# -- Content-Type readings ------------------------------------------------------------------

@dataclass(frozen=True)
class TypeReading:
    reading: str            # "default" for the parser's reading of the first field, else a label
    content_type: str       # lowercase type/subtype ("" if none could be read)
    boundary: bytes | None  # the boundary parameter's bytes (no "--"), or None


_FOLD = re.compile(rb"\r\n|\r|\n")
_BOUNDARY_IS = re.compile(rb"boundary[ \t]*=[ \t]*", re.I)
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"', re.S)
_RAW_VALUE = re.compile(rb"[^ \t;]*")
_ESCAPE = re.compile(rb"\\(.)", re.S)
_COMMENT = re.compile(rb"\([^()]*\)")
_UNQUOTED_SPECIALS = re.compile(rb'["(\\]')            # not token characters: where a reader may stop
_SECTION = re.compile(rb"(?<![A-Za-z0-9_-])boundary(\*)?([0-9]{1,3})?(\*)?[ \t]*=[ \t]*"
                      rb'(?:"((?:[^"\\]|\\.)*)"|([^ \t;]*))', re.I)
_EXTENDED_PREFIX = re.compile(rb"[^']*'[^']*'")


def _params_type(parsed: HeaderParams) -> str:
    content_type = parsed.value.strip().lower()
    return content_type if MEDIA_TYPE.fullmatch(content_type) else ""


def _params_boundary(parsed: HeaderParams) -> bytes | None:
    """The boundary as the parser takes it from the parameters (an empty one is none)."""
    return parsed.params.get("boundary", "").encode("utf-8", "surrogateescape") or None


def _strict_reading(label: str, value: bytes | str) -> TypeReading:
    parsed, _ = parse_params_header(value)
    return TypeReading(label, _params_type(parsed), _params_boundary(parsed))


def _usable(boundary: bytes) -> bool:
    return 0 < len(boundary) <= MAX_BOUNDARY and not boundary.isspace()


def _value_readings(rest: bytes) -> list[bytes]:
    """The ways a lenient reader reads the value at the start of `rest` (what follows
    `boundary=`), the RFC's first: escapes undone or kept, quotes (double, single,
    unbalanced) taken off or kept, comments dropped or kept, the value cut at a blank."""
    if quoted := _QUOTED.match(rest):
        content = quoted.group(1)
        return [_ESCAPE.sub(rb"\1", content), content]
    raw = _RAW_VALUE.match(rest).group()
    to_semicolon = rest.split(b";", 1)[0].strip(b" \t")
    no_comments = _COMMENT.sub(b"", raw)
    unquoted = raw[1:-1] if len(raw) > 1 and raw[0] == raw[-1] and raw[:1] in b"'\"" else raw
    readings = [no_comments, raw, unquoted, _ESCAPE.sub(rb"\1", raw), to_semicolon,
                _UNQUOTED_SPECIALS.split(no_comments, 1)[0]]
    if raw.startswith(b'"'):     # an unbalanced quote: the value may run to the ';'
        readings.insert(0, to_semicolon.strip(b'"'))
    return readings


def _parameter_readings(value: bytes) -> list[tuple[str, bytes]]:
    """Boundaries from the `boundary=` in the value, a parameter or not: the last of
    several parameters (boundary-last-param), then every other lenient reading of the first
    MAX_ASSIGNMENTS_READ (more could not make the MAX_TYPE_READINGS kept). Each value is read
    in a window of VALUE_WINDOW bytes: read to the end of the field, a value of thousands of
    `boundary=` cost time and memory quadratic in its length."""
    parameters, last, variants = 0, b"", []
    for number, found in enumerate(_BOUNDARY_IS.finditer(value)):
        proper = _after_semicolon(value, found.start())
        if number >= MAX_ASSIGNMENTS_READ and not proper:
            continue
        readings = _value_readings(value[found.end():found.end() + VALUE_WINDOW])
        if proper:
            parameters, last = parameters + 1, readings[0]
        if number < MAX_ASSIGNMENTS_READ:
            variants += readings
    last_parameter = [("boundary-last-param", last)] if parameters > 1 else []
    return last_parameter + [("boundary-param-variant", boundary) for boundary in variants]


def _after_semicolon(value: bytes, position: int) -> bool:
    """Whether what starts at `position` follows a ';' (blanks between): it is a parameter.
    Only the blanks just before it are looked at, so that every occurrence costs no rescan."""
    position -= 1
    while position >= 0 and value[position] in b" \t":
        position -= 1
    return position >= 0 and value[position] == ord(";")


def _section_value(quoted: bytes | None, bare: bytes, extended: bool, first: bool) -> bytes:
    if quoted is not None:
        return _ESCAPE.sub(rb"\1", quoted)
    if not extended:
        return bare
    if first and (prefix := _EXTENDED_PREFIX.match(bare)):
        bare = bare[prefix.end():]
    return unquote_to_bytes(bare)


def _continuation_readings(value: bytes) -> list[bytes]:
    """RFC 2231 boundaries joined from `boundary*0=`, `boundary*1*=`, also without the `*`
    (`boundary1=`) and with duplicated sections: the first of each, then the last of each."""
    sections: dict[int, list[bytes]] = {}
    for found in _SECTION.finditer(value):
        star, number, star_after = found.group(1), found.group(2), found.group(3)
        if not (star or number or star_after):
            continue      # a plain boundary= (_parameter_readings)
        index = int(number) if number else 0
        extended = bool(star_after or (star and not number))   # boundary*= and boundary*0*= carry charset''
        sections.setdefault(index, []).append(_section_value(found.group(4), found.group(5), extended, index == 0))
    joined = []
    for pick in (0, -1):
        pieces = []
        for index in range(len(sections)):
            if index not in sections:
                break
            pieces.append(sections[index][pick])
        joined.append(b"".join(pieces))
    return joined


def _encoded_word_readings(value: bytes, boundary: bytes | None) -> list[tuple[str, bytes | None]]:
    """RFC 2047 decoded in the whole value (a type written as an encoded-word) and in the
    boundary alone; (content type, boundary) pairs."""
    if b"=?" not in value:
        return []
    parsed, _ = parse_params_header(decode_header_value(value)[0])
    readings = [(_params_type(parsed), _params_boundary(parsed))]
    if boundary and b"=?" in boundary:
        decoded = decode_words(boundary.decode("utf-8", "surrogateescape"), [])
        readings.append(("", decoded.encode("utf-8", "surrogateescape")))
    return readings


def type_readings(values: list[bytes]) -> list[TypeReading]:
    """Every plausible (type, boundary) of a part's Content-Type raw values (in header
    order): the parser's reading of the first one ("default") first, then distinct pairs,
    at most MAX_TYPE_READINGS. A type that is not multipart (misspelt, unknown, or text/plain)
    but has a boundary is also read as multipart/mixed: the caller keeps that reading only
    if the boundary occurs in the body."""
    if not values:
        return [TypeReading("default", "", None)]
    default = _strict_reading("default", values[0])
    found = [default]
    found += [_strict_reading("content-type-last-header", value) for value in reversed(values[1:])]
    first = _FOLD.sub(b"", values[0])
    found += [TypeReading(label, default.content_type, boundary) for label, boundary in _parameter_readings(first)
              if _usable(boundary)]
    found += [TypeReading("boundary-rfc2231", default.content_type, boundary)
              for boundary in _continuation_readings(first) if _usable(boundary)]
    found += [TypeReading("boundary-encoded-word", content_type or default.content_type, boundary)
              for content_type, boundary in _encoded_word_readings(first, default.boundary)]
    found += [TypeReading("multipart-type-variant", "multipart/mixed", reading.boundary) for reading in list(found)
              if reading.boundary and not reading.content_type.startswith("multipart/")]
    readings, seen = [], set()
    for reading in found:
        if (reading.content_type, reading.boundary) not in seen:
            seen.add((reading.content_type, reading.boundary))
            readings.append(reading)
    return readings[:MAX_TYPE_READINGS]


# -- boundaries in a body -------------------------------------------------------------------

# A boundary as lenient readers take it: printable or 8-bit bytes, blanks inside, not at either end.
_INFERRED = rb"([!-~\x80-\xff](?:[ \t!-~\x80-\xff]{0,%d}[!-~\x80-\xff])?)" % (MAX_BOUNDARY - 2)
# Each pattern starts with the line break before the line, a literal that re finds at memchr
# speed (a look-behind for "a line start" would cost ten times more); the scanned text always
# begins with the break before its first line.
# A `--X` line, and the line break after it when a field follows (`Content-Type:`): one pass.
_DASH_LINES = {br: re.compile(br + b"--" + _INFERRED + rb"[ \t]*(?=[\r\n])"
                              rb"((?:\r\n|\r|\n)(?=[A-Za-z][A-Za-z0-9_-]{0,75}[ \t]*:))?")
               for br in (b"\n", b"\r")}
_HELD_LINE = 256            # a last complete line this short, starting with "--", waits for the next line
_KEPT_PARTIAL = 768         # a partial line at most this long is carried whole to the next feed
_PARTIAL_START = 100        # of a longer one, its start (enough to see a field name) and a stop mark
_NOT_A_BOUNDARY = b"\x00"   # no boundary contains it: a shortened line can never match


class DelimiterScan:
    """One streaming pass over a body: which candidate boundaries occur as delimiter lines,
    and which boundaries the body's own `--X` lines suggest.

    Whole feeds are searched with compiled regexes (no Python work per line of body); only
    the incomplete last line, and the last complete one when it may be a delimiter whose
    next line is not there yet, are carried over (about 1 KiB at most); at most
    `max_candidates` inferred boundaries are tracked, a new one replacing the least likely.
    """

    def __init__(self, boundaries: list[bytes], infer: bool, max_candidates: int = 32) -> None:
        self._wanted = {boundary for boundary in boundaries if boundary}
        self._order = list(dict.fromkeys(boundary for boundary in boundaries if boundary))
        self._present: set[bytes] = set()
        self._infer = infer
        self._max_candidates = max_candidates
        self._tracked: dict[bytes, list[int]] = {}   # boundary -> [delimiter lines, close lines, lines before a field]
        self._tail = b"\n"                            # the body starts at a line start
        self._delimiter_lines: dict[bytes, re.Pattern] = {}   # by the line break before the line
        self._compile()

    def _compile(self) -> None:
        looked_for = sorted(self._wanted - self._present, key=len, reverse=True)   # "b-1" before "b"
        alternatives = b"|".join(re.escape(boundary) for boundary in looked_for)
        self._delimiter_lines = {br: re.compile(re.escape(br) + b"--(" + alternatives + rb")(?:--)?(?=[ \t\r\n])")
                                 for br in (b"\n", b"\r")} if looked_for else {}

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        text = self._tail + chunk
        searched = len(text) - 1 if text.endswith(b"\r") else len(text)   # a CR may be the start of a CRLF
        last_break = max(text.rfind(b"\n", 0, searched), text.rfind(b"\r", 0, searched))
        if last_break <= 0:
            self._tail = self._shortened(text)
            return
        line_end = last_break - 1 if text[last_break - 1:last_break + 1] == b"\r\n" else last_break
        before_line = max(text.rfind(b"\n", 0, line_end), text.rfind(b"\r", 0, line_end))
        hold_from = last_break
        if line_end - before_line <= _HELD_LINE and text.startswith(b"--", before_line + 1):
            hold_from = before_line   # its next line decides whether it comes before a field
        self._scan(text[:hold_from + 1])
        self._tail = self._shortened(text[hold_from:])

    def close(self) -> tuple[list[bytes], list[bytes]]:
        """(the given boundaries that occur as delimiter lines, in the given order; the
        inferred boundaries, most likely first)."""
        self._scan(self._tail + b"\n")
        self._tail = b"\n"
        present = [boundary for boundary in self._order if boundary in self._present]
        return present, self._inferred()

    @staticmethod
    def _shortened(tail: bytes) -> bytes:
        """The carried text, its incomplete last line cut to its start when long."""
        line_start = max(tail.rfind(b"\n", 0, len(tail) - 1), tail.rfind(b"\r", 0, len(tail) - 1)) + 1
        if len(tail) - line_start <= _KEPT_PARTIAL:
            return tail
        cr = b"\r" if tail.endswith(b"\r") else b""
        return tail[:line_start + _PARTIAL_START] + _NOT_A_BOUNDARY + cr

    def _scan(self, text: bytes) -> None:
        if b"-" not in text:   # base64 has none: one memchr over the feed
            return
        breaks = [br for br in (b"\n", b"\r") if br + b"--" in text]
        if self._delimiter_lines and breaks:
            found = {boundary for br in breaks for boundary in self._delimiter_lines[br].findall(text)}
            if found:
                self._present |= found
                self._compile()
        if self._infer and breaks:
            lines: Counter = Counter()
            for br in breaks:
                lines.update(_DASH_LINES[br].findall(text))
            self._track(lines)

    def _track(self, lines: Counter) -> None:
        """Add this text's `--X` lines (counted in C as (X, break before a field or b"")) to
        the tracked boundaries; bounded work per feed: the tracked ones, then at most
        max_candidates new ones."""
        tracked = self._tracked

        def counts_of(boundary: bytes) -> list[int]:
            before_field = sum(lines.get((boundary, br), 0) for br in (b"\r\n", b"\n", b"\r"))
            close_lines = sum(lines.get((boundary + b"--", br), 0) for br in (b"", b"\r\n", b"\n", b"\r"))
            return [lines.get((boundary, b""), 0) + before_field, close_lines, before_field]

        for boundary, counts in tracked.items():
            counts[:] = [total + new for total, new in zip(counts, counts_of(boundary))]
        is_tracked = lambda line: line[0] in tracked   # noqa: E731
        newcomers = list(islice(filterfalse(is_tracked, filter(itemgetter(1), lines)), self._max_candidates))
        newcomers += islice(filterfalse(is_tracked, lines), self._max_candidates)   # those before a field first
        weakest = None
        for boundary, _ in newcomers:
            if boundary in tracked or (boundary.endswith(b"--") and boundary[:-2] in tracked):
                continue
            counts = counts_of(boundary)
            if len(tracked) >= self._max_candidates:
                weakest = weakest or min(tracked, key=lambda known: _likelihood(known, tracked[known]))
                if _likelihood(boundary, counts) <= _likelihood(weakest, tracked[weakest]):
                    continue
                del tracked[weakest]
                weakest = None
            tracked[boundary] = counts

    def _inferred(self) -> list[bytes]:
        tracked = self._tracked
        plausible = [boundary for boundary, (delimiters, closes, before_field) in tracked.items()
                     if delimiters and not (boundary.endswith(b"--") and tracked.get(boundary[:-2], [0, 0])[0])
                     and (before_field or (not _is_rule(boundary) and (closes or delimiters > 1)))]
        return sorted(plausible, key=lambda boundary: (_likelihood(boundary, tracked[boundary]), boundary), reverse=True)


def _is_rule(boundary: bytes) -> bool:
    """`-----`, `=====`: a line drawn in text, not a boundary."""
    return len(set(boundary)) == 1 and not boundary.isalnum()


def _likelihood(boundary: bytes, counts: list[int]) -> tuple:
    """How likely a `--X` line is a delimiter: not a rule, a field after it, a close
    delimiter seen, then how often."""
    delimiters, closes, before_field = counts
    return (not _is_rule(boundary), before_field > 0, closes > 0, delimiters + closes)
