"""The values the index stores and the API and pages show: a folder, an indexed message, a
search query and a page of results. Field names follow JMAP Mail (RFC 8621) where the API
shows them."""

import re
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timezone

from mimekit.errors import UsageError
from mimekit.stores.sources import MessageRef


@dataclass(frozen=True)
class Folder:
    """One folder of the sources: `id` is stable (a hash of `source`), `name` what the page
    shows ("INBOX", "Sent", "Archive/2024"), `source` what stores.sources.messages_of reads,
    `kind` "maildir", "mbox" or "files". `owner`: the user whose Maildir it is (serve --domain)."""

    id: str
    name: str
    source: str
    kind: str
    writable: bool = False
    owner: str | None = None


@dataclass(frozen=True)
class EmailAddress:
    name: str | None
    email: str

    def as_jmap(self) -> dict:
        return {"name": self.name, "email": self.email}


def jmap_date(seconds: float | None) -> str | None:
    """RFC 8621 UTCDate: "2024-05-01T10:00:00Z"."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IndexedEmail:
    """A message as the index knows it: enough for a list row and to open the message."""

    id: str                          # stable across rebuilds: a hash of the folder's source and str(ref)
    folder_id: str
    ref: MessageRef                  # how to open it (stores.sources.opened)
    flags: str                       # Maildir flag letters ("S": seen)
    received_at: float               # delivery time (Maildir name, Received, file time), epoch seconds
    sent_at: float | None            # the Date field
    from_: tuple[EmailAddress, ...] = ()
    to: tuple[EmailAddress, ...] = ()
    cc: tuple[EmailAddress, ...] = ()
    subject: str = ""
    size: int = 0                    # bytes as stored
    has_attachment: bool = False     # summary.is_attachment of any part
    preview: str = ""                # the start of the text body, white space collapsed (≤ 256 chars)
    message_id: str | None = None    # without <>

    @property
    def unread(self) -> bool:
        return "S" not in self.flags

    def as_jmap(self) -> dict:
        """The RFC 8621 Email properties a list shows."""
        return {
            "id": self.id, "mailboxIds": {self.folder_id: True},
            "keywords": keywords(self.flags),
            "from": [a.as_jmap() for a in self.from_], "to": [a.as_jmap() for a in self.to],
            "cc": [a.as_jmap() for a in self.cc], "subject": self.subject,
            "receivedAt": jmap_date(self.received_at), "sentAt": jmap_date(self.sent_at),
            "size": self.size, "hasAttachment": self.has_attachment, "preview": self.preview,
            "messageId": [self.message_id] if self.message_id else None,
        }


_KEYWORD_OF_FLAG = {"S": "$seen", "F": "$flagged", "R": "$answered", "D": "$draft", "P": "$forwarded"}
FLAG_OF_KEYWORD = {keyword: flag for flag, keyword in _KEYWORD_OF_FLAG.items()}


def keywords(flags: str) -> dict[str, bool]:
    """Maildir flag letters as JMAP keywords (RFC 8621 §4.1.1)."""
    return {_KEYWORD_OF_FLAG[flag]: True for flag in flags if flag in _KEYWORD_OF_FLAG}


MAX_QUERY_LENGTH = 1000
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Query:
    """A search. `text` matches the subject, the addresses and the text of text bodies
    (words, each must match); the others narrow it. Dates are epoch seconds, `before`
    exclusive."""

    text: str = ""
    from_: str = ""
    to: str = ""
    subject: str = ""
    after: float | None = None
    before: float | None = None
    has_attachment: bool | None = None
    unread: bool | None = None

    @classmethod
    def parse(cls, q: str) -> "Query":
        """The search box's language, as Mailpit and Gmail write it:
        `from:alice to:bob subject:"two words" after:2024-01-01 before:2024-02-01
        has:attachment is:unread is:read` and free words. Control characters (a NUL, a
        pasted tab) separate words. UsageError for a bad date, an unknown `is:`/`has:` value
        or a query past MAX_QUERY_LENGTH."""
        if len(q) > MAX_QUERY_LENGTH:
            raise UsageError(f"the search is {len(q)} characters long: at most {MAX_QUERY_LENGTH}")
        q = _CONTROL_CHARACTERS.sub(" ", q)
        try:
            words = shlex.split(q)
        except ValueError:                         # an unbalanced quote: take the words as they are
            words = q.split()
        found: dict = {}
        free = []
        for word in words:
            name, colon, value = word.partition(":")
            name = name.lower()
            if not colon or name not in _OPERATORS or not value:
                free.append(word)
                continue
            found.update(_OPERATORS[name](value))
        text = " ".join(free)
        return cls(text=text, **found)

    @property
    def empty(self) -> bool:
        return self == Query()


def _date(value: str) -> float:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise UsageError(f"{value!r}: expected a date as YYYY-MM-DD")
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise UsageError(f"{value!r}: no such date") from None


def _choice(options: dict) -> "callable":
    def parse(value: str) -> dict:
        if value.lower() not in options:
            raise UsageError(f"{value!r}: expected one of {', '.join(options)}")
        return options[value.lower()]
    return parse


_OPERATORS = {
    "from": lambda value: {"from_": value},
    "to": lambda value: {"to": value},
    "subject": lambda value: {"subject": value},
    "after": lambda value: {"after": _date(value)},
    "before": lambda value: {"before": _date(value)},
    "has": _choice({"attachment": {"has_attachment": True}, "noattachment": {"has_attachment": False}}),
    "is": _choice({"unread": {"unread": True}, "read": {"unread": False}}),
}


@dataclass(frozen=True)
class Page:
    total: int                        # messages matching, over all pages
    position: int                     # index of the first one here
    emails: list[IndexedEmail] = field(default_factory=list)
