"""One message as the page and the API show it: JMAP Mail's Email (RFC 8621 §4.1) in
full, its parts streamed for download, its HTML body, and the strict checker's verdict.

Everything is read with the engine `show`, `decode` and `check` use (mimekit.read), so
the page says what those commands say. A message is read from its store on each call and
never held whole: bodies stream from the file, a part download keeps the file open only
while its bytes are sent, and text is capped (a 1 GB "text" part must not fill memory).

Part ids are mimekit's (`show`, `decode --part`: "1", "2.1"), except the message's own
body, "" there, which is "0" here: a URL path segment cannot be empty, and no part of a
multipart is numbered 0.
"""

import re
from contextlib import ExitStack
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator
from urllib.parse import quote

from mimekit.codecs.charsets import TextDecoder
from mimekit.errors import NoInputError
from mimekit.headers.addresses import Group, parse_address_list
from mimekit.read.charset_hints import charset_hints
from mimekit.read.check import check_message
from mimekit.read.events import PartKind
from mimekit.read.extract import inside_attached_message, iter_part_bytes, iter_text
from mimekit.read.safe_names import replace_surrogates, safe_name
from mimekit.read.summary import body_part, content_id, is_attachment, summarise_parsed
from mimekit.read.tree import Message, Part, parse_message
from mimekit.stores.sources import from_store, lf_is_normal
from mimekit.web.html_body import MAX_HTML_CHARACTERS, sanitise
from mimekit.web.model import EmailAddress, IndexedEmail

# Characters of text in bodyValues, over all the text body parts together (JMAP's
# maxBodyValueBytes): a message of hundreds of inline text parts must not make a view hold
# hundreds of MiB. A part past the budget is listed with an empty, truncated value.
MAX_BODY_VALUE = 1024 * 1024
ROOT_PART_ID = "0"             # the message's own body in part ids here ("" in mimekit's)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class PartDownload:
    """What a download response says about a part before its bytes: the type the message
    declares (the API decides how to serve it), a safe file name, and the size when it is
    known without decoding (an identity transfer encoding), else None."""

    content_type: str
    filename: str
    size: int | None


def details(mail, email: IndexedEmail, user: str | None) -> dict:
    """The JMAP Email of `email` in full: email.as_jmap(), and "headers" (every field,
    decoded, in order), "replyTo", "bcc", "inReplyTo", "references", "bodyStructure" (the
    tree of parts: partId, type, charset, disposition, name, cid, size; "subParts" for a
    multipart, and for an attached message, whose one sub-part is that message),
    "textBody", "htmlBody", "attachments" (parts without subParts), "bodyValues" (the
    text of the textBody parts), "defects" (as `show --json` lists them) and "source"
    (the message's reference). Reading it decodes every body once, streamed, to count sizes."""
    with _parsed(mail, email.id, user) as message:
        summary = summarise_parsed(message, lf_is_normal=lf_is_normal(email.ref))
        root = message.root
        text_parts, html_parts = _body_parts(message)
        extra = {
            "replyTo": _addresses(root, "reply-to"), "bcc": _addresses(root, "bcc"),
            "inReplyTo": _message_ids(root, "in-reply-to"), "references": _message_ids(root, "references"),
            "bodyValues": _body_values(text_parts),
        }
    rows = {row["id"]: _body_part_of(row) for row in summary["parts"]}
    return _without_surrogates({
        **email.as_jmap(), "headers": summary["headers"], **extra,
        "bodyStructure": _tree(summary["parts"], rows),
        "textBody": [rows[part.id] for part in text_parts], "htmlBody": [rows[part.id] for part in html_parts],
        "attachments": [rows[row["id"]] for row in summary["parts"] if row["is_attachment"]],
        "defects": summary["defects"], "source": str(email.ref),
    })


@dataclass(frozen=True)
class SafeHtmlBody:
    """The HTML body as the page shows it: the iframe's document, how many remote
    resources it blocks ("Show remote images (N)"; 0 when they are allowed), and whether
    the body was longer than html_body.MAX_HTML_CHARACTERS and is cut (the page says so)."""

    document: str
    remote_blocked: int
    truncated: bool


def safe_html_body(mail, email_id: str, user: str | None, allow_remote: bool) -> SafeHtmlBody | None:
    """The message's HTML body made safe (html_body.sanitise), its cid: images served by
    cid_url; None when it has none. A message view asks twice, for the page (the count)
    and for its iframe (the document): the last few results are kept, so that the view
    parses the body once (a MiB of hostile markup is seconds of CPU)."""
    email = mail.email(email_id, user)     # the user may read it (NoInputError otherwise)
    return _sanitised_body(mail, email_id, user, allow_remote, (email.size, email.received_at))


def cid_url(email_id: str, content_id: str) -> str:
    """Where open_cid serves the part with that Content-ID (an HTML body's cid: image)."""
    return f"/api/messages/{quote(email_id, safe='')}/cid/{quote(content_id, safe='')}"


def open_part(mail, email_id: str, part_id: str, user: str | None) -> tuple[PartDownload, Iterator[bytes]]:
    """Part `part_id` of the message, found before any byte is sent (NoInputError: no such
    part), and an iterator over its decoded bytes, streamed from the store. The message
    stays open until the iterator ends or is closed (or collected)."""
    return _open(mail, email_id, user, lambda message: _part(message, part_id), f"part {part_id!r}")


def open_cid(mail, email_id: str, cid: str, user: str | None) -> tuple[PartDownload, Iterator[bytes]]:
    """The part whose Content-ID is `cid` (without <>, as a cid: URL gives it), as open_part."""
    def find(message: Message) -> Part | None:
        return next((part for part in message.walk() if part.kind is not PartKind.MULTIPART and content_id(part) == cid),
                    None)
    return _open(mail, email_id, user, find, f"part with Content-ID {cid!r}")


def check(mail, email_id: str, user: str | None) -> dict:
    """The strict checker's verdict on the message as stored, as `check --json` prints it.
    A store keeps LF line endings, so they are accepted there, as `check` does."""
    email = mail.email(email_id, user)
    with mail.open(email_id, user) as stream:
        report = check_message(stream, allow_lf=from_store(email.ref))
    return _without_surrogates({"schema": "mimekit.check/1", "source": str(email.ref), **report.as_dict()})


def content_disposition(filename: str) -> str:
    """`attachment` with the name made safe (safe_names.safe_name), as RFC 6266 §4.3 asks:
    an ASCII `filename` for old browsers (every other character "_"; no quote, backslash,
    "%" or control that could end or change it) and the name itself as `filename*`,
    percent-encoded UTF-8 (RFC 8187)."""
    name, _ = safe_name(filename, "download", "application/octet-stream")
    name = replace_surrogates(name)
    fallback = "".join(char if " " <= char <= "~" and char not in '"\\%' else "_" for char in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


# -- reading the message ---------------------------------------------------------------

def _html_text(mail, email_id: str, user: str | None) -> tuple[str, bool] | None:
    """html_body's text and whether it was cut; None without an HTML body."""
    with _parsed(mail, email_id, user) as message:
        _, html_parts = _body_parts(message)
        if not html_parts:
            return None
        pieces, truncated = _bounded(_decoded_text(html_parts[0]), MAX_HTML_CHARACTERS)
        return "".join(pieces), truncated


@lru_cache(maxsize=4)
def _sanitised_body(mail, email_id: str, user: str | None, allow_remote: bool, version: tuple) -> SafeHtmlBody | None:
    """safe_html_body's result, kept per message, user and `version` (the indexed size and
    date: a store that reuses an id for other bytes, as an mbox offset may, is read again)."""
    found = _html_text(mail, email_id, user)
    if found is None:
        return None
    text, truncated = found
    document, remote_blocked = sanitise(text, lambda content_id: cid_url(email_id, content_id), allow_remote)
    return SafeHtmlBody(document, remote_blocked, truncated)


class _parsed:
    """The message parsed from its store, closed (file and all) on leaving the block."""

    def __init__(self, mail, email_id: str, user: str | None):
        self._stack = ExitStack()
        stream = self._stack.enter_context(mail.open(email_id, user))
        self.message = self._stack.enter_context(parse_message(stream))

    def __enter__(self) -> Message:
        return self.message

    def __exit__(self, *exc_info) -> None:
        self._stack.close()


def _open(mail, email_id: str, user: str | None, find, what: str) -> tuple[PartDownload, Iterator[bytes]]:
    parsed = _parsed(mail, email_id, user)
    try:
        part = find(parsed.message)
        if part is None:
            raise NoInputError(f"message {email_id!r} has no {what}")
        size = part.size if part.transfer_encoding in ("7bit", "8bit", "binary") else None
        name, _ = safe_name(part.filename, _external_id(part.id), part.content_type)
        chunks = _streamed(parsed, part.id)
        next(chunks)   # into the generator's try: from now on closing it closes the message
    except BaseException:
        parsed.__exit__(None, None, None)
        raise
    return PartDownload(part.content_type, replace_surrogates(name), size), chunks


def _streamed(parsed: _parsed, part_id: str) -> Iterator[bytes]:
    """The part's decoded bytes (extract.iter_part_bytes, as `decode --part`), then the
    message closed. The first item is None, taken by _open before handing it over."""
    try:
        yield None
        yield from iter_part_bytes(parsed.message, part_id)
    finally:
        parsed.__exit__(None, None, None)


def _part(message: Message, part_id: str) -> Part | None:
    """The part called `part_id` here ("0" the message's body), or None."""
    try:
        return message.part("" if part_id == ROOT_PART_ID else part_id)
    except KeyError:
        return None


def _body_parts(message: Message) -> tuple[list[Part], list[Part]]:
    """The text/plain and the text/html parts that are the message's body, in document
    order: not attachments (summary.is_attachment, which `scan` and the index count too),
    not in an attached message (its body is the attachment's, not this one's)."""
    body = body_part(message)
    texts: list[Part] = []
    htmls: list[Part] = []
    for part in message.leaves():
        if part.content_type not in ("text/plain", "text/html"):
            continue
        if is_attachment(part, body) or inside_attached_message(part):
            continue
        (texts if part.content_type == "text/plain" else htmls).append(part)
    return texts, htmls


def _body_values(parts: list[Part]) -> dict[str, dict]:
    """JMAP EmailBodyValues: each part's text as `decode` gives it, MAX_BODY_VALUE characters
    in all; a part cut there, or reached after the budget is spent, has isTruncated."""
    values, budget = {}, MAX_BODY_VALUE
    for part in parts:
        pieces, truncated = _bounded(iter_text(part, []), budget) if budget else ([], True)
        value = "".join(pieces)
        budget -= len(value)
        values[_external_id(part.id)] = {"value": value, "isTruncated": truncated}
    return values


def _decoded_text(part: Part) -> Iterator[str]:
    """The part's body decoded from its charset as iter_text decodes it, but kept as it is
    (iter_text makes HTML plain text)."""
    decoder = TextDecoder(part.params.get("charset"), hints=charset_hints(part))
    for chunk in part.iter_decoded():
        yield decoder.decode(chunk)
    yield decoder.finish()


def _bounded(pieces: Iterator[str], limit: int) -> tuple[list[str], bool]:
    """The first `limit` characters of the text `pieces` make, and whether there was more.
    Reading stops there: the rest of the body is never decoded."""
    kept, length = [], 0
    for piece in pieces:
        if length + len(piece) > limit:
            kept.append(piece[:limit - length])
            return kept, True
        kept.append(piece)
        length += len(piece)
    return kept, False


def _addresses(part: Part, name: str) -> list[dict] | None:
    """JMAP's Addresses form of every `name` field (groups flattened), None without one."""
    fields = part.header_fields(name)
    if not fields:
        return None
    found = []
    for field in fields:
        entries, _ = parse_address_list(field.raw_value)
        for entry in entries:
            for address in entry.members if isinstance(entry, Group) else [entry]:
                found.append(EmailAddress(address.display_name or None, address.addr_spec).as_jmap())
    return found


def _message_ids(part: Part, name: str) -> list[str] | None:
    """JMAP's MessageIds form of the first `name` field: the ids without <>, None without one."""
    value = part.header(name)
    return None if value is None else _MESSAGE_ID.findall(value) or None


# -- the JMAP body structure --------------------------------------------------------------

def _external_id(part_id: str) -> str:
    return part_id or ROOT_PART_ID


def _body_part_of(row: dict) -> dict:
    """JMAP EmailBodyPart (without subParts) of one row of summarise's "parts"."""
    return {"partId": _external_id(row["id"]), "type": row["content_type"], "charset": row["charset"],
            "disposition": row["disposition"], "name": row["name"], "cid": row["content_id"], "size": row["size"]}


def _tree(rows: list[dict], parts: dict[str, dict]) -> dict:
    """The rows (document order, each with its depth) as one tree: each container (a
    multipart, an attached message: size None) gets its sub-parts."""
    nodes = [{**parts[row["id"]], "subParts": [] if row["size"] is None else None} for row in rows]
    open_containers: list[tuple[int, dict]] = []
    for row, node in zip(rows, nodes):
        while open_containers and open_containers[-1][0] >= row["depth"]:
            open_containers.pop()
        if open_containers:
            open_containers[-1][1]["subParts"].append(node)
        if node["subParts"] is not None:
            open_containers.append((row["depth"], node))
    return nodes[0]


def _without_surrogates(value):
    """`value` with every lone surrogate (an undecodable byte a name or header kept) as
    U+FFFD, so that it can be sent as UTF-8 JSON."""
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, dict):
        return {key: _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(item) for item in value]
    return value
