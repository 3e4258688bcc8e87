"""Replies and forwards: what a new message takes from the message it answers.

Small functions over a parsed original (mimekit.read.tree.Message), shared by
`mimekit encode --reply/--forward/--forward-inline` and the web's compose form
(mimekit.web.send), so both answer a message the same way:

- recipients: a reply goes to the original's Reply-To, else its From (to its To when the
  user sent it, as mutt does); a reply to all copies its To and Cc too, but not the
  user's own addresses nor anyone twice;
- subject: one "Re: " or "Fwd: ", never stacked ("Re: Re:", "RE:", "Aw:", "Sv:" already
  say reply; "Fwd:", "Fw:" already say forward);
- threading (RFC 5322 §3.6.4): In-Reply-To is the original's Message-ID, References its
  References (else its single In-Reply-To) followed by its Message-ID;
- text: the original's best text (mimekit.read.extract, as `decode --text` prints it), cut
  at QUOTED_TEXT_LIMIT characters, quoted under an attribution line, or shown inline under
  a "Forwarded message" block of its From, Date, Subject, To and Cc.
"""

import re
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Iterable

from mimekit.errors import DataError
from mimekit.headers.addresses import Address, Group, parse_address_list
from mimekit.headers.folding import quote_string
from mimekit.read.extract import best_text_part, iter_text
from mimekit.read.safe_names import safe_name
from mimekit.read.tree import Message, Part

QUOTED_TEXT_LIMIT = 1024 * 1024       # characters of the original a reply quotes; the rest is cut
FORWARDED_MARKER = "---------- Forwarded message ----------"
FORWARDED_FIELDS = ("From", "Date", "Subject", "To", "Cc")
# RFC 5322 §3.6.4 msg-id, loosely (any visible ASCII between the brackets): what References
# lists. Not 8-bit: an id with it would go out as an encoded word, which no reader matches.
MSG_ID = re.compile(r"<[!-;=?-~]+>")
# Fields one of which every message has: without any, the input is not a message.
_MESSAGE_FIELDS = ("from", "sender", "reply-to", "to", "cc", "date", "subject", "message-id")
# "Re:", "RE[2]:", and the German and Scandinavian "Aw:" and "Sv:" that mail programs write.
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_FORWARD_PREFIX = re.compile(r"^\s*(?:fwd?\s*:\s*)+", re.I)
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]+")   # a display name typed without quotes
_LINE_BREAKS = re.compile(r"[\r\n\0]+")   # what a decoded header value may hide; a new field refuses it


@dataclass
class Reply:
    """The fields of a reply to one message. `quote` is its attribution line and quoted
    text ("" when not asked for); `in_reply_to` is None when the original has no Message-ID."""

    to: list[Address]
    cc: list[Address]
    subject: str
    in_reply_to: str | None
    references: list[str]
    quote: str


def reply(original: Message, reply_all: bool = False, own: Iterable[str] = (), quote: bool = True) -> Reply:
    """The reply to `original`; `own` are the user's addresses: a reply to all leaves them
    out, and a reply to a message from one of them goes to its To (reply_recipients)."""
    head = original.root
    to, cc = reply_recipients(head, reply_all, own)
    message_id = first_msg_id(head.header("message-id"))
    return Reply(to, cc, reply_subject(head.header("subject")), message_id, references(head, message_id),
                 f"{attribution(head)}\n{quoted(original_text(original))}" if quote else "")


def check_message(original: Message, name: str) -> None:
    """DataError unless `original` (called `name`) has a field every message has (a
    picture, an empty file or a text file read as a message have none)."""
    if not any(original.root.header_fields(field) for field in _MESSAGE_FIELDS):
        raise DataError(f"{name}: not a message: it has no From, To, Date, Subject or Message-ID field")


# -- header fields ----------------------------------------------------------------------------

def reply_subject(subject: str | None) -> str:
    return "Re: " + _REPLY_PREFIX.sub("", _one_line(subject or ""))


def forward_subject(subject: str | None) -> str:
    return "Fwd: " + _FORWARD_PREFIX.sub("", _one_line(subject or ""))


def reply_recipients(head: Part, reply_all: bool = False,
                     own: Iterable[str] = ()) -> tuple[list[Address], list[Address]]:
    """(to, cc): to is the Reply-To, else the From; but when the From is the user's own
    (one of `own`), the reply goes where that message went, its To but the user, as mutt
    does: answering what you sent continues with its recipients, not with yourself. With
    `reply_all`, cc is the To and Cc but `own` addresses and those already listed
    (addr-specs compared without case)."""
    mine = {address.lower() for address in own}
    authors = mailboxes(head, "from")
    if authors and all(address.addr_spec.lower() in mine for address in authors):
        to = _distinct(mailboxes(head, "to"), set(mine)) or authors
    else:
        to = mailboxes(head, "reply-to") or authors
    if not reply_all:
        return to, []
    return to, _distinct(mailboxes(head, "to") + mailboxes(head, "cc"),
                         mine | {address.addr_spec.lower() for address in to})


def _distinct(addresses: list[Address], taken: set[str]) -> list[Address]:
    """`addresses` but those in `taken` (lower-case addr-specs) and repeats; `taken` grows."""
    kept = []
    for address in addresses:
        if address.addr_spec.lower() not in taken:
            taken.add(address.addr_spec.lower())
            kept.append(address)
    return kept


def mailboxes(head: Part, name: str) -> list[Address]:
    """The mailboxes of every `name` field, groups flattened; read from the raw value, where
    an encoded name's comma cannot split an address."""
    found: list[Address] = []
    for field in head.header_fields(name):
        entries, _ = parse_address_list(field.raw_value)
        for entry in entries:
            found.extend(entry.members if isinstance(entry, Group) else [entry])
    return [address for address in found if address.addr_spec]


def typed(addresses: Iterable[Address]) -> str:
    """Addresses as a user types them ("Name <a@b>", the name quoted when it needs it),
    which the composer reads back."""
    return ", ".join(typed_address(address) for address in addresses)


def typed_address(address: Address) -> str:
    name = _one_line(address.display_name).strip()
    if not name:
        return address.addr_spec
    return f"{name if _ATOMS.fullmatch(name) else quote_string(name)} <{address.addr_spec}>"


def first_msg_id(value: str | None) -> str | None:
    match = MSG_ID.search(value or "")
    return match.group() if match else None


def references(head: Part, message_id: str | None) -> list[str]:
    """The parent's References (else its In-Reply-To when that is one id), then its
    Message-ID: RFC 5322 §3.6.4."""
    earlier = MSG_ID.findall(head.header("references") or "")
    if not earlier:
        in_reply_to = MSG_ID.findall(head.header("in-reply-to") or "")
        earlier = in_reply_to if len(in_reply_to) == 1 else []
    return earlier + [message_id] if message_id else earlier


def forward_attachment_name(subject: str | None) -> str:
    """The file name a forwarded message is attached under: its subject, made safe, .eml."""
    return safe_name(f"{(subject or '')[:100] or 'message'}.eml", "1", "message/rfc822")[0]


# -- text -------------------------------------------------------------------------------------

def attribution(head: Part) -> str:
    """"On DATE, NAME wrote:" (NAME: the From's display name, else its address)."""
    sender = next(iter(mailboxes(head, "from")), None)
    who = _one_line(sender.display_name or sender.addr_spec) if sender else "someone"
    date = _one_line(head.header("date") or "")
    return f"On {date}, {who} wrote:" if date else f"{who} wrote:"


def original_text(message: Message) -> str:
    """The message's text (extract.best_text_part, LF line ends), cut at QUOTED_TEXT_LIMIT
    characters, without trailing line breaks; "" when it has no text."""
    with ExitStack() as opened:
        try:
            part = best_text_part(message, opened)
        except DataError:
            return ""
        pieces, size = [], 0
        for piece in iter_text(part, []):
            pieces.append(piece)
            size += len(piece)
            if size >= QUOTED_TEXT_LIMIT:
                break
    return "".join(pieces)[:QUOTED_TEXT_LIMIT].rstrip("\n")


def quoted(text: str) -> str:
    """Each line of `text` quoted: "> ", or ">" before a line already quoted and before an
    empty one (RFC 3676 §4.5: quote marks stack without spaces, no trailing space); no
    text, no quoted lines."""
    if not text:
        return ""
    return "".join(f">{'' if not line or line.startswith('>') else ' '}{line}\n" for line in text.split("\n"))


def forwarded_inline(original: Message) -> str:
    """The original shown in a body: the marker line, its From, Date, Subject, To and Cc,
    a blank line, its text. Its attachments are not carried."""
    head = original.root
    fields = [f"{name}: {_one_line(value)}" for name in FORWARDED_FIELDS if (value := head.header(name))]
    return "\n".join([FORWARDED_MARKER, *fields, "", original_text(original)]) + "\n"


def _one_line(text: str) -> str:
    """A decoded header value with the line breaks an encoded-word may hide made spaces."""
    return _LINE_BREAKS.sub(" ", text)
