"""Content-Type and Content-Disposition: a value and its parameters, both directions.

Reading follows RFC 2045 §5.1 and RFC 2231 (continuations `name*0*`, `name*1`, charset and
language), plus what mail programs really send: RFC 2047 encoded-words inside parameter
values (Outlook, Apple Mail), comments anywhere, spaces around '=', a missing ';', unquoted
values with spaces, unterminated quotes. Junk is skipped and reported as
PARAMETER_MALFORMED; nothing here raises on input.

Writing puts a token bare, other ASCII quoted, and non-ASCII or long file names as RFC 2231
`filename*=utf-8''...` with `*0*`, `*1*` continuations so that no line exceeds 78 columns.
Attachments also get an RFC 2047 `name=` on Content-Type, the only form Outlook reads
(it shows RFC 2231-only names as ATT0000x.dat).
"""

import re
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes

from mimekit.defects import Defect, DefectKind
from mimekit.headers.encoded_words import (DetectionBudget, byte_offsets, decode_declared, decode_words, encode_as_words,
                            header_text)
from mimekit.errors import DataError
from mimekit.headers.folding import WANT_LINE, check_header_value, fold_pieces, quote_string, read_comment, read_quoted_string
from mimekit.limits import parse_decimal


@dataclass
class HeaderParams:
    value: str                       # "text/plain", "attachment": lowercased, no comments or spaces
    params: dict[str, str]           # keys lowercased, values decoded
    languages: dict[str, str] = field(default_factory=dict)   # RFC 2231 language tags by key


_SPACE = re.compile(r"[ \t\r\n]+")
_VALUE_RUN = re.compile(r"[^ \t\r\n;()\"]+")
_ATTRIBUTE = re.compile(r"[^ \t\r\n;=()\"]+")
_NEXT_ATTRIBUTE = re.compile(r"[^ \t\r\n;=()\"]+[ \t\r\n]*=")
_SECTIONED = re.compile(r"(?P<name>[^*]+)(?:\*(?P<section>[0-9]+))?(?P<extended>\*)?")
_EXTENDED_VALUE = re.compile(r"(?P<charset>[^']*)'(?P<lang>[^']*)'(?P<text>.*)", re.S)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`{|}~0-9A-Za-z]+")          # RFC 2045 token
_ATTR_CHARS = "!#$&+-.^_`|~"                                       # RFC 2231/5987 attr-char punctuation
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
# Values a reader matches byte for byte (boundary) must never be decoded as RFC 2047.
_LITERAL_PARAMETERS = {"boundary"}
# Human-readable parameters that every reader joins from RFC 2231 continuations.
_SPLITTABLE_PARAMETERS = {"filename", "name"}
# In `name="=?...?="` the word shares its line with ` name="` and `";`.
_QUOTED_WORD_ROOM = WANT_LINE - len(' name="') - len('";')


@dataclass
class _RawParameter:
    attribute: str
    value: str
    offset: int


class _Scanner:
    """Walks the header text once; every method moves `pos` forward."""

    def __init__(self, text: str, defects: list[Defect]):
        self.text, self.pos, self.defects = text, 0, defects

    def at(self, char: str) -> bool:
        return self.text.startswith(char, self.pos)

    def skip_cfws(self) -> None:
        while self.pos < len(self.text):
            space = _SPACE.match(self.text, self.pos)
            if space:
                self.pos = space.end()
            elif self.at("("):
                start = self.pos
                _, self.pos, closed = read_comment(self.text, self.pos)
                if not closed:
                    self.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, start, "unclosed comment"))
            else:
                return

    def quoted(self) -> str:
        start = self.pos
        content, self.pos, closed = read_quoted_string(self.text, self.pos)
        if not closed:
            self.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, start, "unterminated quoted string"))
        return content.replace("\r", "").replace("\n", "")

    def skip_to_semicolon(self) -> None:
        while self.pos < len(self.text) and not self.at(";"):
            if self.at('"'):
                self.quoted()
            elif self.at("("):
                self.skip_cfws()
            else:
                self.pos += 1


def _main_value(scan: _Scanner) -> str:
    pieces = []
    while True:
        scan.skip_cfws()
        if scan.pos >= len(scan.text) or scan.at(";"):
            return "".join(pieces).lower()
        if pieces and _NEXT_ATTRIBUTE.match(scan.text, scan.pos):
            scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, scan.pos, "missing ';' after the value"))
            return "".join(pieces).lower()
        run = _VALUE_RUN.match(scan.text, scan.pos)
        if scan.at('"'):
            pieces.append(scan.quoted())
        elif run:
            pieces.append(run.group())
            scan.pos = run.end()
        else:
            scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, scan.pos, "unbalanced ')'"))
            scan.pos += 1


def _unquoted_value(scan: _Scanner, start: int) -> str:
    """A bare value, extended over spaces up to the next ';' unless what follows the space
    looks like the next `attribute=` (a missing ';')."""
    run = _VALUE_RUN.match(scan.text, scan.pos)
    if not run:
        return ""
    pieces = [run.group()]
    scan.pos = run.end()
    while True:
        before_space = scan.pos
        scan.skip_cfws()
        if scan.pos >= len(scan.text) or scan.at(";"):
            return "".join(pieces)
        if _NEXT_ATTRIBUTE.match(scan.text, scan.pos):
            scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, scan.pos, "missing ';' between parameters"))
            return "".join(pieces)
        run = _VALUE_RUN.match(scan.text, scan.pos)
        if not run:   # a stray quote after the value: give up on this parameter's tail
            scan.skip_to_semicolon()
            return "".join(pieces)
        scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, start, "unquoted value contains spaces"))
        pieces.append(scan.text[before_space:scan.pos].replace("\r", "").replace("\n", "") + run.group())
        scan.pos = run.end()


def _raw_parameters(scan: _Scanner) -> list[_RawParameter]:
    found = []
    while scan.pos < len(scan.text):
        if scan.at(";"):
            scan.pos += 1
            continue
        scan.skip_cfws()
        start = scan.pos
        attribute = _ATTRIBUTE.match(scan.text, scan.pos)
        if not attribute:
            if scan.pos < len(scan.text) and not scan.at(";"):
                scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, start, "parameter without a name"))
                scan.pos += 1
                scan.skip_to_semicolon()
            continue
        scan.pos = attribute.end()
        scan.skip_cfws()
        if not scan.at("="):
            scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, start, f"parameter {attribute.group()!r} without '='"))
            scan.skip_to_semicolon()
            continue
        scan.pos += 1
        scan.skip_cfws()
        quoted = scan.at('"')
        value = scan.quoted() if quoted else _unquoted_value(scan, start)
        if not quoted and not value:
            scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, start, f"parameter {attribute.group()!r} without a value"))
            continue
        found.append(_RawParameter(attribute.group().lower(), value, start))
        if quoted:
            scan.skip_cfws()
            if scan.pos < len(scan.text) and not scan.at(";"):
                if not _NEXT_ATTRIBUTE.match(scan.text, scan.pos):
                    scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, scan.pos, "junk after quoted value"))
                    scan.skip_to_semicolon()
                else:
                    scan.defects.append(Defect(DefectKind.PARAMETER_MALFORMED, scan.pos, "missing ';' between parameters"))
    return found


def _extended(value: str, defects: list[Defect], offset: int) -> tuple[str, str, bytes]:
    """Split an RFC 2231 extended value into (charset, language, bytes)."""
    parts = _EXTENDED_VALUE.fullmatch(value)
    if parts is None:
        defects.append(Defect(DefectKind.PARAMETER_MALFORMED, offset, "extended value without charset''"))
        return "", "", unquote_to_bytes(value)
    return parts["charset"], parts["lang"], unquote_to_bytes(parts["text"])


def _join_sections(sections: dict[int, _RawParameter], defects: list[Defect],
                   budget: DetectionBudget) -> tuple[str, str]:
    """Join RFC 2231 continuations in section order; extended sections next to each other
    are decoded as one byte string, so a character split between sections survives."""
    numbers = sorted(sections)
    if numbers != list(range(len(numbers))):
        defects.append(Defect(DefectKind.PARAMETER_MALFORMED, sections[numbers[0]].offset,
                              "RFC 2231 sections missing or not starting at 0"))
    first = sections[numbers[0]]
    charset = language = ""
    pieces: list[str] = []
    pending = bytearray()
    pending_offset = first.offset
    for number in numbers:
        section = sections[number]
        if not section.attribute.endswith("*"):
            if pending:
                pieces.append(decode_declared(bytes(pending), charset or None, defects, pending_offset, budget))
                pending = bytearray()
            pieces.append(section.value)
            continue
        text = section.value
        if number == numbers[0]:
            charset, language, data = _extended(text, defects, section.offset)
        else:
            if charset and text.lower().startswith(charset.lower() + "'"):
                defects.append(Defect(DefectKind.PARAMETER_MALFORMED, section.offset,
                                      "charset repeated in a continuation section"))
                text = re.sub(r"^[^']*'(?:[A-Za-z0-9-]*')?", "", text)
            data = unquote_to_bytes(text)
        if not pending:
            pending_offset = section.offset
        pending += data
    if pending:
        pieces.append(decode_declared(bytes(pending), charset or None, defects, pending_offset, budget))
    return "".join(pieces), language


# What most values are: `value; name=token; name="quoted"`, ASCII, no comment, no RFC 2231 or
# 2047 (no "*", no "=?"), no escape: read with two regexes (parsing mail's Content-Type per
# part is on `scan`'s hot path); anything else takes the scanner below, which reads it the same.
_SIMPLE_PARAMS = re.compile(r'[ \t\r\n]*([^ \t\r\n;()"=]+)[ \t\r\n]*'
                            r'((?:;[ \t\r\n]*[^ \t\r\n;=()"*]+[ \t\r\n]*=[ \t\r\n]*'
                            r'(?:[^ \t\r\n;()"]+|"[^"\\\r\n]*")[ \t\r\n]*)*);?[ \t\r\n]*')
_SIMPLE_PARAM = re.compile(r';[ \t\r\n]*([^ \t\r\n;=()"*]+)[ \t\r\n]*=[ \t\r\n]*(?:([^ \t\r\n;()"]+)|"([^"]*)")')


def _simple_params(raw: bytes) -> HeaderParams | None:
    if not raw.isascii() or b"=?" in raw or not (simple := _SIMPLE_PARAMS.fullmatch(raw.decode("ascii"))):
        return None
    params: dict[str, str] = {}
    for parameter in _SIMPLE_PARAM.finditer(simple.group(2)):
        name = parameter.group(1).lower()
        if name in params:
            return None   # a duplicate: the scanner reports it
        params[name] = parameter.group(2) if parameter.group(2) is not None else parameter.group(3)
    return HeaderParams(simple.group(1).lower(), params)


def parse_params_header(raw: bytes | str) -> tuple[HeaderParams, list[Defect]]:
    """Parse a Content-Type or Content-Disposition value."""
    if isinstance(raw, bytes) and (simple := _simple_params(raw)):
        return simple, []
    return _read_params(raw)


def _read_params(raw: bytes | str) -> tuple[HeaderParams, list[Defect]]:
    """The full reader, for any value; the fast path must agree with it (tests call it alone)."""
    defects: list[Defect] = []
    text, codec = header_text(raw, defects)
    scan = _Scanner(text, defects)
    value = _main_value(scan)
    plain: dict[str, _RawParameter] = {}
    extended: dict[str, dict[int, _RawParameter]] = {}
    for parameter in _raw_parameters(scan):
        shape = _SECTIONED.fullmatch(parameter.attribute)
        if shape is None:
            defects.append(Defect(DefectKind.PARAMETER_MALFORMED, parameter.offset,
                                  f"unreadable parameter name {parameter.attribute!r}"))
            continue
        name = shape["name"]
        if shape["section"] is None and not shape["extended"]:
            target, key = plain, name
        else:
            number = parse_decimal(shape["section"]) if shape["section"] is not None else 0
            if number is None:
                defects.append(Defect(DefectKind.PARAMETER_MALFORMED, parameter.offset,
                                      f"RFC 2231 section number of {name!r} too long; the section is skipped"))
                continue
            target, key = extended.setdefault(name, {}), number
        if key in target:
            defects.append(Defect(DefectKind.PARAMETER_MALFORMED, parameter.offset,
                                  f"duplicate parameter {parameter.attribute!r}; the first one is kept"))
            continue
        target[key] = parameter
    params: dict[str, str] = {}
    languages: dict[str, str] = {}
    budget = DetectionBudget()
    for name, parameter in plain.items():
        if name in _LITERAL_PARAMETERS or "=?" not in parameter.value:
            params[name] = parameter.value
        else:
            params[name] = decode_words(parameter.value, defects, parameter.offset, budget, raw_codec=codec)
    for name, sections in extended.items():
        params[name], language = _join_sections(sections, defects, budget)
        if language:
            languages[name] = language
    return HeaderParams(value, params, languages), byte_offsets(defects, text, codec)


def preferred_filename(content_type: HeaderParams | None, disposition: HeaderParams | None) -> str | None:
    """The attachment's name: Content-Disposition filename, else Content-Type name."""
    for header, key in ((disposition, "filename"), (content_type, "name")):
        if header is not None and header.params.get(key):
            return header.params[key]
    return None


# ---------------------------------------------------------------------------------------
# writing

def _continuations(key: str, value: str, max_len: int) -> list[str]:
    """RFC 2231 `key*0*=utf-8''...`, `key*1*=...`, each on a line of its own within max_len;
    a character is never split between sections (readers decode each section alone)."""
    sections: list[str] = []
    current = "utf-8''"
    for char in value:
        encoded = quote(char, safe=_ATTR_CHARS)
        line = len(f" {key}*{len(sections)}*=") + len(current) + len(encoded) + len(";")
        if line > max_len and current not in ("", "utf-8''"):
            sections.append(current)
            current = ""
        current += encoded
    sections.append(current)
    return [f"{key}*{number}*={text}" for number, text in enumerate(sections)]


def _parameter_pieces(key: str, value: str, max_len: int = WANT_LINE) -> list[str]:
    """One parameter as the fewest pieces that each fit on a folded line, where possible."""
    if not _TOKEN.fullmatch(key) or "*" in key or "'" in key or "%" in key:
        raise DataError(f"parameter name {key!r} is not a token")
    # Readers decode RFC 2047 in quoted values, so a value containing "=?" goes RFC 2231.
    literal = key in _LITERAL_PARAMETERS or "=?" not in value
    # File names are quoted even when they are tokens: some readers expect it.
    bare = f"{key}={value}" if literal and _TOKEN.fullmatch(value) and key not in _SPLITTABLE_PARAMETERS else None
    quoted = f"{key}={quote_string(value)}" if literal and _PRINTABLE.fullmatch(value) else None
    for candidate in (bare, quoted):
        if candidate and (len(candidate) + len(" ;") <= max_len or key not in _SPLITTABLE_PARAMETERS):
            return [candidate]
    extended = f"{key}*=utf-8''{quote(value, safe=_ATTR_CHARS)}"
    if len(extended) + len(" ;") <= max_len:
        return [extended]
    return _continuations(key, value, max_len)


def _with_separators(pieces: list[str]) -> list[str]:
    return [piece + ";" for piece in pieces[:-1]] + pieces[-1:]


def _header_pieces(value: str, params: list[tuple[str, str]]) -> list[str]:
    pieces = [value]
    for key, parameter_value in params:
        pieces.extend(_parameter_pieces(key, parameter_value))
    return _with_separators(pieces)


def format_params_header(name: str, value: str, params: list[tuple[str, str]], eol: bytes = b"\r\n") -> bytes:
    """A full folded header line such as `Content-Type: text/plain; charset=utf-8`."""
    check_header_value(name, value)
    for _, parameter_value in params:
        check_header_value(name, parameter_value)
    return fold_pieces(name, _header_pieces(value, params), eol)


def format_attachment_headers(filename: str, content_type: str, disposition: str = "attachment",
                              extra_type_params: list[tuple[str, str]] = (), eol: bytes = b"\r\n") -> bytes:
    """Content-Type with an RFC 2047 `name=` (Outlook) and Content-Disposition with an
    RFC 2231 `filename*=` (everyone else); a short ASCII name is written plainly in both."""
    check_header_value("Content-Type", content_type)
    check_header_value("Content-Disposition", filename)
    filename_pieces = _parameter_pieces("filename", filename)
    type_pieces = [content_type]
    for key, parameter_value in extra_type_params:
        check_header_value("Content-Type", parameter_value)
        type_pieces.extend(_parameter_pieces(key, parameter_value))
    if filename_pieces[0].startswith("filename*"):
        words = encode_as_words(filename, phrase=True, first_room=_QUOTED_WORD_ROOM, room=_QUOTED_WORD_ROOM)
        type_pieces.append('name="' + " ".join(words) + '"')
    else:
        type_pieces.append("name" + filename_pieces[0][len("filename"):])
    return (fold_pieces("Content-Type", _with_separators(type_pieces), eol)
            + fold_pieces("Content-Disposition", _with_separators([disposition] + filename_pieces), eol))
