"""Address lists (RFC 5322 §3.4) with groups, both directions.

Reading is lenient, as the address headers of real mail need: RFC 2047 display names
(also inside quoted strings, as Outlook writes them), comments (used as the display name
when there is no other, the old `addr (Name)` style), obsolete routes and CFWS around dots,
missing angle brackets, a display name after the address, raw UTF-8 (RFC 6532). What had
to be guessed is reported as ADDRESS_MALFORMED.

Writing encodes display names (encode_phrase) and never the address itself; lines are
folded between addresses.

The tokenizer makes one pass over the text; the parser one pass over the tokens.
"""

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mimekit.defects import Defect, DefectKind
from mimekit.headers.encoded_words import (ENCODED_WORD, DetectionBudget, HeaderTextBuilder, byte_offsets, decode_words,
                            encode_phrase, header_text)
from mimekit.errors import DataError
from mimekit.headers.folding import check_header_value, fold_pieces, quote_string, read_comment, read_quoted_string


@dataclass
class Address:
    display_name: str      # decoded; "" when there is none
    addr_spec: str         # local@domain as given, without route or comments


@dataclass
class Group:
    name: str
    members: list[Address]


@dataclass(slots=True)
class _Token:
    kind: str              # "atom", "word" (encoded-word), "quoted", "comment", "literal", or a special
    text: str
    offset: int
    space_before: bool
    match: re.Match | None = None


_SPACE = re.compile(r"[ \t\r\n]+")
_ATOM = re.compile(r'[^ \t\r\n()<>@,;:.\[\]"]+')
_DOMAIN_LITERAL = re.compile(r"\[[^\]]*\]?")
_SPECIALS = "<>@,;:.]"
# The From of most mail, one mailbox: `local@domain` or `Display Name <local@domain>`, in
# ASCII, the address two dot-atoms, the name atoms and encoded-words that are whole tokens
# (no "=?" inside an atom, no blank inside a word) one space apart, a fold allowed before the
# space. parse_address_list reads it without the tokenizer: what _phrase makes of those tokens
# is what decode_words makes of the name's text.
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~-"
_DOT_ATOM = rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*"
_NAME_WORD = (rf"(?:=\?[A-Za-z0-9._-]+\?[BbQq]\?[{_ATEXT.replace('?', '')}]*\?="
              rf"|(?:[{_ATEXT.replace('=', '')}]|=(?!\?))+)")
_SIMPLE_MAILBOX = re.compile(rf"[ \t\r\n]*(?:(?P<name>{_NAME_WORD}(?:(?:\r?\n)? {_NAME_WORD})*)[ \t\r\n]*"
                             rf"<(?P<angle_addr>{_DOT_ATOM}@{_DOT_ATOM})>|(?P<addr>{_DOT_ATOM}@{_DOT_ATOM}))[ \t\r\n]*")
_PHRASE_SPECIALS = {"@", ":", "<", ">", "]", ";"}
_ADDR_SPEC_JOINERS = {".", "@"}


def _tokens(text: str, defects: list[Defect]) -> list[_Token]:
    tokens: list[_Token] = []
    pos, space = 0, False
    while pos < len(text):
        char, start = text[pos], pos
        if char in " \t\r\n":
            pos = _SPACE.match(text, pos).end()
            space = True
            continue
        match = None
        if char == ")":
            defects.append(Defect(DefectKind.ADDRESS_MALFORMED, start, "unbalanced ')'"))
            pos += 1
            continue
        if char == "(":
            content, pos, closed = read_comment(text, pos)
            if not closed:
                defects.append(Defect(DefectKind.ADDRESS_MALFORMED, start, "unclosed comment"))
            tokens.append(_Token("comment", content, start, space))
            space = True      # a comment separates words as whitespace does
            continue
        if char == '"':
            content, pos, closed = read_quoted_string(text, pos)
            if not closed:
                defects.append(Defect(DefectKind.ADDRESS_MALFORMED, start, "unterminated quoted string"))
            kind = "quoted"
        elif char == "[":
            literal = _DOMAIN_LITERAL.match(text, pos)
            content, pos, kind = literal.group(), literal.end(), "literal"
        elif char in _SPECIALS:
            content, pos, kind = char, pos + 1, char
        elif (match := ENCODED_WORD.match(text, pos)) is not None:
            content, pos, kind = match.group(), match.end(), "word"
        else:
            atom = _ATOM.match(text, pos)
            content, pos, kind = atom.group(), atom.end(), "atom"
        tokens.append(_Token(kind, content, start, space, match))
        space = False
    return tokens


def _phrase(tokens: Iterable[_Token], defects: list[Defect], budget: DetectionBudget, raw_codec: str | None) -> str:
    """Decoded display name: words joined by one space where CFWS separated them.

    `raw_codec` is the codec header_text read the value with, for raw 8-bit text in words.
    """
    builder = HeaderTextBuilder(defects, budget, raw_codec)
    first = True
    for token in tokens:
        if token.kind == "comment":
            continue
        if token.space_before and not first:
            builder.add_space(" ")
        first = False
        if token.kind == "word":
            builder.add_encoded_word(token.match, token.offset)
        elif token.kind == "quoted":
            if ENCODED_WORD.search(token.text):
                defects.append(Defect(DefectKind.ENCODED_WORD_MALFORMED, token.offset,
                                      "encoded-word inside a quoted string"))
            builder.add_text(decode_words(token.text, defects, token.offset + 1, budget, raw_codec))
        else:
            if token.kind in _PHRASE_SPECIALS:
                defects.append(Defect(DefectKind.ADDRESS_MALFORMED, token.offset,
                                      f"{token.text!r} in a display name"))
            builder.add_text(token.text)
    return builder.text()


def _comment_text(tokens: Iterable[_Token], defects: list[Defect], budget: DetectionBudget,
                  raw_codec: str | None) -> str:
    """Comments outside the address, the old `addr (Full Name)` style of display name."""
    return " ".join(decode_words(t.text, defects, t.offset + 1, budget, raw_codec).strip()
                    for t in tokens if t.kind == "comment")


def _addr_spec(tokens: list[_Token]) -> str:
    """local@domain with comments and whitespace dropped and an obsolete route removed."""
    tokens = [t for t in tokens if t.kind != "comment"]
    if tokens and tokens[0].kind == "@":
        colon = next((i for i, t in enumerate(tokens) if t.kind == ":"), None)
        if colon is not None:
            tokens = tokens[colon + 1:]
    return "".join(quote_string(t.text) if t.kind == "quoted" else t.text for t in tokens)


def _connected(left: _Token, right: _Token) -> bool:
    """Whether two tokens belong to one addr-spec: dots and '@' may have CFWS around them."""
    return left.kind in _ADDR_SPEC_JOINERS or right.kind in _ADDR_SPEC_JOINERS or not right.space_before


def _mailbox(tokens: list[_Token], defects: list[Defect], budget: DetectionBudget,
             raw_codec: str | None) -> Address | None:
    words = [t for t in tokens if t.kind != "comment"]
    if not words:
        return None   # an empty list element, allowed by RFC 5322 §4.4
    opening = next((i for i, t in enumerate(tokens) if t.kind == "<"), None)
    if opening is not None:
        closing = next((i for i in range(opening, len(tokens)) if tokens[i].kind == ">"), None)
        if closing is None:
            defects.append(Defect(DefectKind.ADDRESS_MALFORMED, tokens[opening].offset, "missing '>'"))
            closing = len(tokens)
        name = _phrase(tokens[:opening], defects, budget, raw_codec)
        trailing = [t for t in tokens[closing + 1:] if t.kind != "comment"]
        if trailing:
            defects.append(Defect(DefectKind.ADDRESS_MALFORMED, trailing[0].offset, "text after the address"))
            if not name:
                name = _phrase(trailing, defects, budget, raw_codec)
        outside = tokens[:opening] + tokens[closing + 1:]
        address = Address(name or _comment_text(outside, defects, budget, raw_codec),
                          _addr_spec(tokens[opening + 1:closing]))
    else:
        at = next((i for i, t in enumerate(words) if t.kind == "@"), None)
        start, end = 0, len(words)
        if at is None:
            defects.append(Defect(DefectKind.ADDRESS_MALFORMED, words[0].offset, "address without '@'"))
        else:
            start = at
            while start > 0 and _connected(words[start - 1], words[start]):
                start -= 1
            end = at + 1
            while end < len(words) and _connected(words[end - 1], words[end]):
                end += 1
        name = _phrase(words[:start], defects, budget, raw_codec)
        if start:
            defects.append(Defect(DefectKind.ADDRESS_MALFORMED, words[0].offset, "display name without '<>'"))
        if end < len(words):
            defects.append(Defect(DefectKind.ADDRESS_MALFORMED, words[end].offset, "text after the address"))
        first, last = words[start].offset, words[end - 1].offset
        outside = [t for t in tokens if t.offset < first or t.offset > last]
        address = Address(name or _comment_text(outside, defects, budget, raw_codec), _addr_spec(words[start:end]))
    if not address.addr_spec:
        defects.append(Defect(DefectKind.ADDRESS_MALFORMED, tokens[0].offset, "empty address"))
    return address


def parse_address_list(raw: bytes | str) -> tuple[list[Address | Group], list[Defect]]:
    """Parse an address header value (From, To, Cc, Reply-To, ...) into addresses and groups."""
    defects: list[Defect] = []
    if isinstance(raw, bytes) and raw.isascii() and (simple := _SIMPLE_MAILBOX.fullmatch(raw.decode("ascii"))):
        if simple["addr"] is not None:
            return [Address("", simple["addr"])], defects
        return [Address(decode_words(simple["name"], defects, simple.start("name")), simple["angle_addr"])], defects
    text, codec = header_text(raw, defects)
    result: list[Address | Group] = []
    group: Group | None = None
    current: list[_Token] = []
    in_angle = False
    current_has_address = False     # kept as a flag: rescanning `current` would be quadratic
    budget = DetectionBudget()

    def finish() -> None:
        nonlocal current_has_address
        mailbox = _mailbox(current, defects, budget, codec)
        if mailbox is not None:
            (group.members if group is not None else result).append(mailbox)
        current.clear()
        current_has_address = False

    for token in _tokens(text, defects):
        kind = token.kind
        if in_angle:                      # a route's ',' and ':' belong to the address
            in_angle = kind != ">"
        elif kind == "<":
            in_angle = True
        elif kind == ",":
            finish()
            continue
        elif kind == ":" and group is None and not current_has_address:
            name = _phrase(current, defects, budget, codec)
            if not name:
                defects.append(Defect(DefectKind.ADDRESS_MALFORMED, token.offset, "group without a name"))
            group = Group(name, [])
            current.clear()
            continue
        elif kind == ";":
            finish()
            if group is None:
                defects.append(Defect(DefectKind.ADDRESS_MALFORMED, token.offset, "';' outside a group"))
            else:
                result.append(group)
                group = None
            continue
        current.append(token)
        current_has_address = current_has_address or kind in ("@", "<")
    finish()
    if group is not None:
        defects.append(Defect(DefectKind.ADDRESS_MALFORMED, len(text), "group not closed with ';'"))
        result.append(group)
    return result, byte_offsets(defects, text, codec)


# RFC 5321 §4.1.2 Mailbox, with RFC 6531's UTF-8: what MAIL FROM and RCPT TO may carry.
# Stricter than the grammar in one way: a quoted local part may not hold a space, "<" or ">"
# (legal there, but a server or filter that splits the command line naively would end the
# path at them). Unprintable characters are refused before the pattern (str.isprintable).
_UTF8 = "\u0080-\U0010ffff"
_DOT_STRING = f"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{_UTF8}-]+"
_QUOTED_LOCAL = rf'"(?:[!#-;=?-\[\]-~{_UTF8}]|\\[!-;=?-~])*"'
_LABEL = f"[A-Za-z0-9{_UTF8}](?:[A-Za-z0-9{_UTF8}-]*[A-Za-z0-9{_UTF8}])?"
_ADDRESS_LITERAL = r"\[[!-;=?-Z^-~]+\]"
_SMTP_MAILBOX = rf"(?:{_DOT_STRING}(?:\.{_DOT_STRING})*|{_QUOTED_LOCAL})@(?:{_LABEL}(?:\.{_LABEL})*|{_ADDRESS_LITERAL})"
MAX_SMTP_PATH = 254   # RFC 5321 §4.5.3.1.3: 256 octets with the angle brackets
SHOWN_VALUE = 200     # characters of a refused value quoted in the error


def envelope_entries(value: str | bytes, what: str) -> list[Address | Group]:
    """Parse addresses for the SMTP envelope, where nothing may be guessed: DataError (naming
    `what` and the value) on any defect, or on an addr-spec SMTP cannot carry as it is."""
    entries, defects = parse_address_list(value)
    if defects:
        raise DataError(f"{what} {shown_value(value)}: cannot be read without guessing "
                        f"({defects[0].detail or defects[0].kind.value})")
    for spec in addr_specs(entries):
        problem = smtp_mailbox_problem(spec)
        if problem:
            raise DataError(f"{what} {shown_value(value)}: {problem}")
    return entries


def smtp_mailbox_problem(spec: str) -> str | None:
    """Why the addr-spec `spec` cannot travel in MAIL FROM or RCPT TO as it is, or None when
    it can (the envelope check above, and what a server accepts in RCPT TO)."""
    if not spec.isprintable() or any(char in spec for char in " <>"):
        return f"{spec!r} contains characters not allowed in an SMTP command"
    if not _smtp_mailbox().fullmatch(spec):
        return f"{spec!r} is not an address SMTP can carry (RFC 5321 §4.1.2)"
    if len(spec.encode("utf-8")) > MAX_SMTP_PATH:
        return f"the address is over {MAX_SMTP_PATH} bytes (RFC 5321)"
    return None


@functools.cache
def _smtp_mailbox() -> re.Pattern:
    """_SMTP_MAILBOX compiled when an envelope is first checked: its UTF-8 ranges take 50 ms to
    compile, which every command would pay at start-up."""
    return re.compile(_SMTP_MAILBOX)


def shown_value(value: str | bytes) -> str:
    """A refused value as an error shows it: escaped (no control reaches a terminal) and bounded."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return repr(text[:SHOWN_VALUE]) + ("..." if len(text) > SHOWN_VALUE else "")


def addr_specs(addresses: Iterable[Address | Group]) -> list[str]:
    """Bare addresses with groups flattened: the envelope recipients."""
    flat: list[str] = []
    for entry in addresses:
        members = entry.members if isinstance(entry, Group) else [entry]
        flat.extend(member.addr_spec for member in members if member.addr_spec)
    return flat


def format_address(addr: Address, offset: int = 0) -> str:
    """`Display Name <addr>` with the name encoded as needed; the address stays as given.

    `offset` is the column where the address starts, so a first encoded-word fits the line.
    """
    if not addr.display_name:
        return addr.addr_spec
    return f"{encode_phrase(addr.display_name, offset)} <{addr.addr_spec}>"


def format_group(group: Group, offset: int = 0) -> str:
    members = ", ".join(format_address(member) for member in group.members)
    return f"{encode_phrase(group.name, offset)}:{' ' if members else ''}{members};"


def format_address_header(name: str, addresses: list[str], eol: bytes = b"\r\n") -> bytes:
    """An address header from addresses as a user typed them ("Jörg <j@example.com>", "a@b.c").

    Raises DataError on CR/LF/NUL, on an address that cannot be read without guessing or
    that has an unprintable character, or when no address is given.
    """
    entries: list[Address | Group] = []
    for typed in addresses:
        check_header_value(name, typed)
        parsed, defects = parse_address_list(typed)
        problems = [d for d in defects if d.kind is DefectKind.ADDRESS_MALFORMED]
        if problems or not parsed:
            reason = problems[0].detail if problems else "no address"
            raise DataError(f"header {name}: cannot read address {typed!r}: {reason}")
        # An address is written as given, never encoded: a control in it would reach the header raw.
        unprintable = next((spec for spec in addr_specs(parsed) if not spec.isprintable()), None)
        if unprintable is not None:
            raise DataError(f"header {name}: address {unprintable!r} has an unprintable character")
        entries.extend(parsed)
    if not entries:
        raise DataError(f"header {name}: no address given")
    pieces = []
    for index, entry in enumerate(entries):
        offset = len(name) + 2 if index == 0 else 1
        text = format_group(entry, offset) if isinstance(entry, Group) else format_address(entry, offset)
        pieces.append(text if index == len(entries) - 1 else text + ",")
    return fold_pieces(name, pieces, eol)
