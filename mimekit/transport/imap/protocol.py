"""Sans-IO IMAP4rev1 client protocol (RFC 3501), in the manner of h11.

`IMAPProtocol` never touches a socket. Feed it whatever arrived with
`receive_data()` (b"" for end of stream), take typed events from `next_event()`
until it returns mimekit.transport.sansio.NEED_DATA, and write whatever `data_to_send()` returns. Each
command is one method that queues its bytes and returns its tag; the tagged
completion comes back as a `Completion` event.

Bodies are never buffered: a literal carrying a FETCH body section (RFC 3501
§7.4.2: BODY[...], BINARY[...], RFC822, RFC822.HEADER, RFC822.TEXT) is handed out
as FetchBodyStart, FetchBodyChunk..., FetchBodyEnd while its bytes arrive, so a
100 MB message costs no more memory than the largest chunk received. Everything
else is bounded: a response line by `max_line`, any other literal by `max_literal`,
and what one command draws in untagged responses (which a driver may keep until the
command completes) by `max_untagged` responses and `max_untagged_bytes`; a server that
sends more broke the protocol. Numbers are 1 to 20 ASCII digits (limits.parse_decimal).

Synchronising literals in commands (§7.5: "{n}" then wait for "+") are handled
here: the rest of the command is held back until the server's continuation
arrives, or sent at once as "{n+}" when the server offers LITERAL+ (RFC 7888).
"""

import base64
import binascii
import functools
import re
from collections import deque
from dataclasses import dataclass
from datetime import date

from mimekit.errors import ProtocolError, TempFailure, UsageError
from mimekit.limits import MAX_DECIMAL_DIGITS, parse_decimal
from mimekit.transport.sansio import BufferedProtocol

# RFC 3501 sets no line limit and RFC 7162 §4 asks for at least 8192 octets; a SEARCH
# result for ~1M messages is one line, and still fits.
MAX_LINE = 8 * 1024 * 1024
MAX_LITERAL = 1024 * 1024         # literals that are not body sections (names, envelopes: RFC 3501 §4.3)
# Untagged responses to one command. SELECT draws seven (RFC 3501 §6.3.1), LIST one per
# folder, SEARCH one; FETCH and EXPUNGE answers (one per message) are not counted, as the
# driver keeps none of them whole. The count is far above any account's folder list and
# stops an endless stream in about a second; the bytes fit one SEARCH line of MAX_LINE.
MAX_UNTAGGED = 100_000
MAX_UNTAGGED_BYTES = 2 * MAX_LINE


# --------------------------------------------------------------------------- events

@dataclass(slots=True)
class ResponseCode:
    """The bracketed code at the start of a status text, e.g. [UIDVALIDITY 1234]."""
    name: str
    args: str = ""


@dataclass(slots=True)
class Greeting:
    status: str                    # "OK", "PREAUTH" or "BYE"
    code: ResponseCode | None
    text: str


@dataclass(slots=True)
class StatusResponse:
    """An untagged OK, NO, BAD or BYE after the greeting."""
    status: str
    code: ResponseCode | None
    text: str


@dataclass(slots=True)
class Completion:
    """The tagged end of a command."""
    tag: str
    command: str
    status: str                    # "OK", "NO" or "BAD"
    code: ResponseCode | None
    text: str

    @property
    def ok(self) -> bool:
        return self.status == "OK"


@dataclass(slots=True)
class Continuation:
    """A "+" the protocol did not consume itself (no literal was waiting for it)."""
    text: str


@dataclass(slots=True)
class Capability:
    capabilities: frozenset[str]


@dataclass(slots=True)
class ListEntry:
    flags: tuple[str, ...]
    delimiter: str | None
    name: str                      # decoded from modified UTF-7
    raw_name: bytes                # as the server spelled it


@dataclass(slots=True)
class Exists:
    count: int


@dataclass(slots=True)
class Expunge:
    sequence: int


@dataclass(slots=True)
class Search:
    uids: tuple[int, ...]


@dataclass(slots=True)
class FetchBodyStart:
    """A body section literal begins; `items` holds what the server sent before it."""
    sequence: int
    section: str
    size: int
    items: dict


@dataclass(slots=True)
class FetchBodyChunk:
    data: bytes


@dataclass(slots=True)
class FetchBodyEnd:
    pass


@dataclass(slots=True)
class Fetch:
    """The end of one FETCH response: every item except streamed body sections."""
    sequence: int
    items: dict


@dataclass(slots=True)
class FetchWhole:
    """A FETCH response received whole, given only by a protocol made with whole_fetches:
    what FetchBodyStart, FetchBodyChunk (none for an empty body), FetchBodyEnd and Fetch
    would say of it, in one event. `items` are all the response has besides the body."""
    sequence: int
    section: str
    items: dict
    data: bytes


@dataclass(slots=True)
class OtherData:
    """Any other untagged data (FLAGS, RECENT, STATUS, ...), tokenised."""
    name: str
    tokens: list


@dataclass(slots=True)
class ConnectionClosed:
    pass


@dataclass(slots=True)
class Mailbox:
    """What SELECT or EXAMINE told us about the open mailbox (§6.3.1)."""
    name: bytes
    read_only: bool
    exists: int = 0
    uidvalidity: int | None = None
    uidnext: int | None = None
    highestmodseq: int | None = None   # RFC 7162 §3.1.2.1; None without CONDSTORE or with NOMODSEQ
    opened: bool = False               # the SELECT completed: a later EXISTS is new mail


# ---------------------------------------------------------------- modified UTF-7

def decode_mailbox_name(raw: bytes) -> str:
    """Modified UTF-7 (RFC 3501 §5.1.3) to text; a malformed name is shown as sent."""
    out, i = [], 0
    while i < len(raw):
        amp = raw.find(b"&", i)
        if amp < 0:
            out.append(raw[i:].decode("utf-8", "replace"))
            break
        out.append(raw[i:amp].decode("utf-8", "replace"))
        end = raw.find(b"-", amp + 1)
        if end < 0:
            return raw.decode("utf-8", "replace")
        if end == amp + 1:
            out.append("&")
        else:
            chunk = raw[amp + 1:end].replace(b",", b"/")
            try:
                out.append(base64.b64decode(chunk + b"=" * (-len(chunk) % 4), validate=True)
                           .decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError):
                return raw.decode("utf-8", "replace")
        i = end + 1
    return "".join(out)


def encode_mailbox_name(name: str) -> bytes:
    """Text to modified UTF-7: printable ASCII stays, "&" is "&-", the rest is base64."""
    out, pending = [], []

    def flush():
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append(b"&" + encoded.replace(b"/", b",") + b"-")
            pending.clear()

    for ch in name:
        if "\x20" <= ch <= "\x7e":
            flush()
            out.append(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return b"".join(out)


# ------------------------------------------------------------------- arguments

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def search_criteria(since: date | None = None, unseen: bool = False, raw: str | None = None) -> str | None:
    """UID SEARCH criteria for --since, --unseen and --search (ANDed); None for everything.

    `raw` is IMAP search syntax passed through, parenthesised when combined; it must be
    ASCII (no CHARSET support) and a single line.
    """
    parts = []
    if since is not None:
        parts.append(f"SINCE {since.day}-{_MONTHS[since.month - 1]}-{since.year}")   # §9 date
    if unseen:
        parts.append("UNSEEN")
    if raw:
        _ascii_argument(raw, "search")
        parts.append(f"({raw})" if parts else raw)
    return " ".join(parts) or None


def uid_set(uids) -> str:
    """Compress UIDs into an IMAP sequence set: 1,2,3,7 -> "1:3,7"."""
    ranges, start, prev = [], None, None
    for uid in sorted(set(uids)):
        if start is None:
            start = prev = uid
        elif uid == prev + 1:
            prev = uid
        else:
            ranges.append(f"{start}:{prev}" if prev != start else str(start))
            start = prev = uid
    if start is not None:
        ranges.append(f"{start}:{prev}" if prev != start else str(start))
    if not ranges:
        raise ValueError("an empty UID set cannot be sent")
    return ",".join(ranges)


def uid_set_size(text: str) -> int | None:
    """How many UIDs a server's uid-set names ("1:3,7" -> 4: RFC 4315 §4, as in COPYUID),
    counted without expanding it; None if it is not one."""
    total = 0
    for part in text.split(","):
        ends = [parse_decimal(end.encode("ascii", "replace")) for end in part.split(":")]
        if len(ends) > 2 or None in ends or 0 in ends:
            return None
        total += abs(ends[-1] - ends[0]) + 1
    return total


_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")


@dataclass(slots=True)
class _Literal:
    data: bytes


def _astring(value: bytes):
    """An astring argument (§9): an atom if it can be, else quoted, else a literal."""
    if _ATOM.fullmatch(value):
        return value
    if _QUOTABLE.fullmatch(value):
        return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return _Literal(value)


# ------------------------------------------------------------------ the parser

_LITERAL_AT_END = re.compile(rb"\{([0-9]+)\+?\}\Z")
_STATUS = re.compile(rb"(OK|NO|BAD|BYE|PREAUTH)(?: |\Z)", re.I)
_CODE = re.compile(rb"\[([^\] ]+)(?: ([^\]]*))?\] ?")
_TOKEN = re.compile(rb' *(?:(\()|(\))|"((?:[^"\\\r\n]|\\.)*)"|((?:[^ ()"{\[\r\n]|\[[^\]\r\n]*\]|\[)+))')
_UNESCAPE = re.compile(rb"\\(.)")
_BODY_SECTION = re.compile(r"(?:BODY|BINARY)\[.*\](?:<[0-9]+>)?|RFC822(?:\.HEADER|\.TEXT)?")
_STREAMED = object()   # stands in an item list where a streamed body literal was
# The hot path of a fetch: "* 12 FETCH (UID 34 FLAGS (\Seen) RFC822.SIZE 567 BODY[] {567}".
# Lines of exactly this shape skip the general tokenizer; any other shape takes it.
_FAST_BODY = re.compile(rb"\* ([0-9]+) FETCH \(((?:(?:UID|RFC822\.SIZE|MODSEQ) [0-9]+ |FLAGS \([^()\"{\[\]]*\) )*)"
                        rb"((?:BODY|BINARY)\[[^\]\"{]*\]|RFC822(?:\.HEADER|\.TEXT)?) \{([0-9]+)\}\Z", re.I)
_FAST_ITEM = re.compile(rb"(\S+) (?:([0-9]+)|\(([^)]*)\)) ")
# The response IMAPClient.retrieve asks for, as Dovecot (like most servers) sends it:
# "* 12 FETCH (UID 34 FLAGS (\Seen) RFC822.SIZE 567 BODY[] {567}\r\n" + 567 bytes + ")\r\n".
# With whole_fetches, one of exactly this shape whose body is at most WHOLE_FETCH_WAIT bytes
# is awaited whole and given as one FetchWhole; any other shape, or a larger body, takes the
# paths above, which give the same in four events and stream the body.
_WHOLE_FETCH = re.compile(rb"\* ([0-9]{1,20}) FETCH \(UID ([0-9]{1,20}) FLAGS \(([^()\"{\[\]\r\n]*)\) "
                          rb"RFC822\.SIZE ([0-9]{1,20}) (BODY\[(?:HEADER)?\]) \{([0-9]{1,20})\}\r\n")
WHOLE_FETCH_WAIT = 64 * 1024
# mailbox-data "SEARCH" *(SP nz-number) (RFC 3501 §9), with RFC 7162's "(MODSEQ n)" at the end:
# parsed without the tokenizer, whose objects would cost ~100 bytes per number of a long result.
_SEARCH = re.compile(rb"\* SEARCH((?: [0-9]{1,20})*)(?: \(MODSEQ [0-9]{1,20}\))? ?\Z", re.I)
_SEARCH_SLICE = 64 * 1024


@dataclass(slots=True)
class _Command:
    tag: str
    name: str


# The untagged response a command draws once per message (RFC 3501 §6.4.5, §6.4.6, §6.4.3,
# RFC 4315 §2.1, RFC 6851 §4.3): not counted against max_untagged and max_untagged_bytes, though each one
# alone must still fit in what is left of the bytes.
_ANSWERS = {"UID FETCH": b"FETCH", "UID STORE": b"FETCH", "EXPUNGE": b"EXPUNGE", "UID EXPUNGE": b"EXPUNGE",
            "UID MOVE": b"EXPUNGE"}


class _Partial:
    """A data response whose line was cut by a literal: its token tree so far, and the
    FETCH items already converted for a FetchBodyStart (the first `parsed` tokens).
    `sequence` is set when the fast path converted every item before the body, so a
    bare ")" after it ends the response without the tokenizer or _data.
    A plain class: one is made per response, and a dataclass with factories costs more."""

    __slots__ = ("stack", "parsed", "items", "sequence")

    def __init__(self, stack: list | None = None):
        self.stack = stack if stack is not None else [[]]
        self.parsed = 0
        self.items: dict = {}
        self.sequence: int | None = None


class IMAPProtocol(BufferedProtocol):
    """One IMAP client session. A response line is bounded by `max_line` bytes, a literal
    that is not a body section by `max_literal`, and what one command draws in untagged
    responses by `max_untagged` responses and `max_untagged_bytes` bytes. `whole_fetches`
    asks for FetchWhole events (see _WHOLE_FETCH): a small message is then one event for
    the driver instead of four, and half the parsing."""

    def __init__(self, max_line: int = MAX_LINE, max_literal: int = MAX_LITERAL,
                 max_untagged: int = MAX_UNTAGGED, max_untagged_bytes: int = MAX_UNTAGGED_BYTES,
                 whole_fetches: bool = False):
        self.whole_fetches = whole_fetches
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_untagged = max_untagged
        self.max_untagged_bytes = max_untagged_bytes
        self.capabilities: frozenset[str] = frozenset()
        self.mailbox: Mailbox | None = None
        super().__init__()
        self._scan_from = 0
        self._closed_reported = False
        self._greeted = False
        self._partial: _Partial | None = None
        self._body_left = 0            # bytes of a streamed body literal still to come
        self._streaming = False
        self._literal_left = 0         # bytes of a buffered literal still to come
        self._pending: dict[str, _Command] = {}
        self._counter = 0
        self._held: deque = deque()    # (tag, needs_continuation, bytes) behind a literal
        self._untagged = 0             # untagged responses since the last completion
        self._untagged_bytes = 0       # their bytes, streamed bodies excepted
        self._response_bytes = 0       # bytes of the untagged response being read

    # ---------------------------------------------------------------- state

    def pending_commands(self) -> list[str]:
        """Names of the commands sent and not yet completed, oldest first."""
        return [command.name for command in self._pending.values()]

    # ------------------------------------------------------------------ commands

    def capability(self) -> str:
        return self._command("CAPABILITY")

    def starttls(self) -> str:
        return self._command("STARTTLS")

    def login(self, user: str, password: str) -> str:
        return self._command("LOGIN", _astring(user.encode("utf-8")), _astring(password.encode("utf-8")))

    def authenticate_plain(self, user: str, password: str) -> str:
        """SASL PLAIN (RFC 4616)."""
        return self.authenticate("PLAIN", b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8"))

    def authenticate(self, mechanism: str, response: bytes) -> str:
        """AUTHENTICATE with a mechanism of one client response (PLAIN, the OAuth2 ones of
        transport/sasl.py), in the first line when the server offers SASL-IR (RFC 4959),
        else after its first "+". A later "+" is a Continuation event: the server's
        challenge, answered with continue_authentication()."""
        encoded = base64.b64encode(response)
        name = mechanism.encode("ascii")
        if "SASL-IR" in self.capabilities:
            return self._command("AUTHENTICATE", name, encoded)
        return self._command("AUTHENTICATE", name, _Continued(encoded))

    def continue_authentication(self, response: bytes) -> None:
        """Answer the server's challenge in an AUTHENTICATE exchange (RFC 3501 §6.2.2)."""
        self._outbox += base64.b64encode(response) + b"\r\n"

    def list(self, reference: str = "", pattern: str = "*") -> str:
        return self._command("LIST", _astring(encode_mailbox_name(reference)) if reference else b'""',
                             _list_pattern(encode_mailbox_name(pattern)))

    def select(self, mailbox: str, read_only: bool = True, condstore: bool = False) -> str:
        """EXAMINE (read_only) or SELECT; the answer accumulates in `self.mailbox`.
        `condstore` adds the CONDSTORE parameter (RFC 7162 §3.1.8), for HIGHESTMODSEQ."""
        raw = encode_mailbox_name(mailbox)
        parameters = (b"(CONDSTORE)",) if condstore else ()
        tag = self._command("EXAMINE" if read_only else "SELECT", _astring(raw), *parameters)
        self.mailbox = Mailbox(name=raw, read_only=read_only)
        return tag

    def uid_search(self, criteria: str) -> str:
        """UID SEARCH with criteria as IMAP text (ASCII; build it with search_criteria())."""
        return self._command("UID SEARCH", _ascii_argument(criteria, "search criteria"))

    def uid_fetch(self, uids: str, items: str) -> str:
        return self._command("UID FETCH", uids.encode("ascii"), items.encode("ascii"))

    def uid_store(self, uids: str, action: str, flags: str) -> str:
        return self._command("UID STORE", uids.encode("ascii"), action.encode("ascii"), flags.encode("ascii"))

    def uid_expunge(self, uids: str) -> str:
        """UID EXPUNGE (RFC 4315, UIDPLUS): removes only these \\Deleted messages."""
        return self._command("UID EXPUNGE", uids.encode("ascii"))

    def uid_copy(self, uids: str, mailbox: str) -> str:
        """UID COPY (RFC 3501 §6.4.8); with UIDPLUS the OK carries [COPYUID ...]."""
        return self._command("UID COPY", uids.encode("ascii"), _astring(encode_mailbox_name(mailbox)))

    def uid_move(self, uids: str, mailbox: str) -> str:
        """UID MOVE (RFC 6851): copy, then expunge from this mailbox, in one command; the
        EXPUNGE (or VANISHED) responses it draws are answers, like UID EXPUNGE's."""
        return self._command("UID MOVE", uids.encode("ascii"), _astring(encode_mailbox_name(mailbox)))

    def expunge(self) -> str:
        return self._command("EXPUNGE")

    def noop(self) -> str:
        return self._command("NOOP")

    def idle(self) -> str:
        """IDLE (RFC 2177): the server's "+" comes back as a Continuation event, then
        untagged responses as the mailbox changes, until done() ends it (the tagged
        completion of this tag follows)."""
        return self._command("IDLE")

    def done(self) -> None:
        """End the IDLE in progress (RFC 2177 §3: "DONE", untagged)."""
        self._outbox += b"DONE\r\n"

    def logout(self) -> str:
        return self._command("LOGOUT")

    def _command(self, name: str, *args) -> str:
        self._counter += 1
        tag = f"M{self._counter}"
        self._pending[tag] = _Command(tag, name)
        segments = [bytearray(f"{tag} {name}".encode("ascii"))]
        for arg in args:
            if isinstance(arg, _Continued):
                segments[-1] += b"\r\n"
                segments.append(bytearray(arg.data))
                continue
            segments[-1] += b" "
            if isinstance(arg, _Literal):
                if "LITERAL+" in self.capabilities:
                    segments[-1] += b"{%d+}\r\n" % len(arg.data) + arg.data
                else:
                    segments[-1] += b"{%d}\r\n" % len(arg.data)
                    segments.append(bytearray(arg.data))
            else:
                segments[-1] += arg
        segments[-1] += b"\r\n"
        if self._held:
            self._held.append((tag, False, bytes(segments[0])))
        else:
            self._outbox += segments[0]
        self._held.extend((tag, True, bytes(s)) for s in segments[1:])
        return tag

    def _release_held(self, continuation: bool) -> None:
        """Send what waited for a "+" (if one came) and what queued up behind it."""
        if continuation:
            self._outbox += self._held.popleft()[2]
        while self._held and not self._held[0][1]:
            self._outbox += self._held.popleft()[2]

    # ------------------------------------------------------------------- parsing

    def _step(self) -> bool:
        """Consume what can be consumed; False when more data is needed."""
        if self._streaming:
            return self._step_body()
        if self._literal_left:
            if len(self._buffer) < self._literal_left:
                return False
            size = self._literal_left
            self._partial.stack[-1].append(bytes(self._buffer[:size]))
            del self._buffer[:size]
            self._literal_left = 0
            self._scan_from = 0
            return True
        partial = self._partial
        if partial is None and self.whole_fetches and self._greeted:
            taken = self._whole_fetches()
            if taken is not None:
                return taken
        if partial is not None and partial.sequence is not None and self._buffer.startswith(b")\r\n"):
            del self._buffer[:3]       # a fast-path FETCH ends right after its body
            self._scan_from = 0
            self._count_bytes(1)
            self._partial = None
            self._count_response(b"FETCH")
            self._events.append(Fetch(partial.sequence, partial.items))
            return True
        end = self._buffer.find(b"\r\n", self._scan_from)
        if end < 0:
            if len(self._buffer) > self.max_line:
                raise ProtocolError(f"IMAP server sent a line longer than {self.max_line} bytes")
            self._scan_from = max(len(self._buffer) - 1, 0)
            return False
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 2]
        self._scan_from = 0
        self._line(line)
        return True

    # ------------------------------------------------------- what one command draws

    def _count_bytes(self, size: int) -> None:
        """`size` more bytes of the untagged response being read (a line or a literal)."""
        self._response_bytes += size
        if self._untagged_bytes + self._response_bytes > self.max_untagged_bytes:
            raise ProtocolError(f"IMAP server sent more than {self.max_untagged_bytes} bytes of untagged "
                                "responses to one command")

    def _count_response(self, kind: bytes) -> None:
        """An untagged response of `kind` ended: count it, unless it answers a pending command."""
        size, self._response_bytes = self._response_bytes, 0
        if self._answers_pending(kind):
            return
        self._untagged += 1
        self._untagged_bytes += size
        if self._untagged > self.max_untagged:
            raise ProtocolError(f"IMAP server sent more than {self.max_untagged} untagged responses "
                                "to one command")

    def _answers_pending(self, kind: bytes) -> bool:
        """Whether an untagged response of `kind` answers a command pending (see _ANSWERS)."""
        for command in self._pending.values():      # a loop: any() over a generator costs more
            if _ANSWERS.get(command.name) == kind:
                return True
        return False

    def _step_body(self) -> bool:
        if self._body_left and not self._buffer:
            return False
        if self._body_left:
            take = min(self._body_left, len(self._buffer))
            chunk = bytes(self._buffer[:take])
            del self._buffer[:take]
            self._body_left -= take
            self._events.append(FetchBodyChunk(chunk))
        if not self._body_left:
            self._streaming = False
            self._events.append(FetchBodyEnd())
        return True

    def _line(self, line: bytes) -> None:
        partial = self._partial
        if partial is None and self._greeted and (fast := _FAST_BODY.match(line)):
            self._count_bytes(len(line))
            self._fast_fetch(fast)
            return
        if line[:1] == b"*" or partial is not None:
            self._count_bytes(len(line))
        if partial is not None:
            partial.sequence = None    # more follows the body (a bare ")" ends in _step): the general path
        if self._partial is None:
            if line[:1] == b"+":
                self._continuation(line[2:] if line[1:2] == b" " else line[1:])
                return
            tag, sp, rest = line.partition(b" ")
            status = _STATUS.match(rest)
            if not sp or (tag != b"*" and not status):
                raise ProtocolError(f"IMAP server sent an unparsable line: {_show(line)}")
            if status:
                self._status(tag, status.group(1).upper().decode(), rest[status.end():])
                return
            if not self._greeted:
                raise ProtocolError(f"IMAP server sent data before its greeting: {_show(line)}")
            if rest[:6].upper() == b"SEARCH" and rest[6:7] in (b"", b" "):
                self._search(line)
                return
            self._partial = _Partial()
        if line == b")" and len(self._partial.stack) == 2:     # the end of a FETCH after its body
            self._partial.stack.pop()
            literal = None
        else:
            literal = _LITERAL_AT_END.search(line)
            self._tokenize(line[:literal.start()] if literal else line)
        if literal:
            self._literal(_number(literal.group(1), "a literal size"))
        else:
            partial, self._partial = self._partial, None
            if len(partial.stack) != 1:
                raise ProtocolError(f"IMAP server sent unbalanced parentheses: {_show(line)}")
            self._data(partial.stack[0], partial)

    def _fast_fetch(self, fast: re.Match) -> None:
        """A line _FAST_BODY matched: its items go straight to the dict _fetch_items would
        build (UID and RFC822.SIZE as int, FLAGS as str, MODSEQ as sent), and the body
        starts streaming, as _literal would do after the tokenizer, at a fraction of the
        cost per message; a body already received whole is handed out at once. The token
        tree keeps only the body section, for whatever follows the body on its closing line."""
        sequence, listed, section, size = fast.groups()
        items: dict = {}
        for name, number, flags in _FAST_ITEM.findall(listed):
            name = _ITEM_NAMES.get(name) or name.decode("ascii").upper()
            if name == "FLAGS":
                items[name] = _flag_names(flags)
            else:
                items[name] = number if name == "MODSEQ" else _digits(number)
        tail = [section, _STREAMED]
        partial = self._partial = _Partial([[b"*", sequence, b"FETCH", tail], tail])
        partial.items, partial.sequence = items, _digits(sequence)
        size = _digits(size, "a literal size")
        self._events.append(FetchBodyStart(partial.sequence, section.decode("ascii").upper(), size, dict(items)))
        if len(self._buffer) >= size:  # the whole body has arrived with its line: the events
            if size:                   # _step_body would give, without a step of streaming
                self._events.append(FetchBodyChunk(bytes(self._buffer[:size])))
                del self._buffer[:size]
            self._events.append(FetchBodyEnd())
        else:
            self._streaming = True
            self._body_left = size

    def _whole_fetches(self) -> bool | None:
        """The responses at the start of the buffer that _WHOLE_FETCH matches and that have
        arrived whole, each given as a FetchWhole: True if any was, False while the first
        one's body and ")" are still coming. None when the first is for the other paths: no
        such line, a larger body, more after the body, no UID FETCH (or STORE) it answers,
        or one past the limit on what a command draws, which those paths report as they would."""
        if not self._answers_pending(b"FETCH"):
            return None
        buffer, pos = self._buffer, 0
        while whole := _WHOLE_FETCH.match(buffer, pos):
            start = whole.end()
            line_size = start - pos - 2
            if self._untagged_bytes + self._response_bytes + line_size + 1 > self.max_untagged_bytes:
                break
            stop = start + int(whole.group(6))
            if len(buffer) < stop + 3:
                if pos == 0 and stop - start <= WHOLE_FETCH_WAIT:
                    return False
                break
            if buffer[stop:stop + 3] != b")\r\n":
                break
            sequence, uid, flags, size, section = whole.group(1, 2, 3, 4, 5)
            items = {"UID": int(uid), "FLAGS": _flag_names(flags), "RFC822.SIZE": int(size)}
            self._events.append(FetchWhole(int(sequence), section.decode("ascii"), items, bytes(buffer[start:stop])))
            pos = stop + 3
            # Its line and ")" counted, then the answer not counted: _count_bytes, _count_response.
            self._response_bytes = 0
        if pos == 0:
            return None
        del buffer[:pos]
        self._scan_from = 0
        return True

    def _tokenize(self, segment: bytes) -> None:
        stack = self._partial.stack
        pos, end = 0, len(segment.rstrip(b" "))
        while pos < end:
            match = _TOKEN.match(segment, pos)
            if not match:
                raise ProtocolError(f"IMAP server sent an unparsable response: {_show(segment)}")
            pos = match.end()
            opened, closed, quoted, atom = match.groups()
            if atom is not None:
                stack[-1].append(None if atom.upper() == b"NIL" else atom)
            elif quoted is not None:
                stack[-1].append(_UNESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted)
            elif opened:
                new: list = []
                stack[-1].append(new)
                stack.append(new)
            else:
                if len(stack) == 1:
                    raise ProtocolError(f"IMAP server sent unbalanced parentheses: {_show(segment)}")
                stack.pop()

    def _literal(self, size: int) -> None:
        stack = self._partial.stack
        top, current = stack[0], stack[-1]
        section = current[-1].decode("ascii", "replace").upper() if current and isinstance(current[-1], bytes) else ""
        if (len(stack) == 2 and len(top) >= 3 and isinstance(top[2], bytes) and top[2].upper() == b"FETCH" and len(current) % 2 == 1
                and _BODY_SECTION.fullmatch(section)):
            partial = self._partial
            _fetch_items(current[partial.parsed:-1], partial.items)
            partial.parsed = len(current) - 1
            self._events.append(FetchBodyStart(_number(top[1]), section, size, dict(partial.items)))
            current.append(_STREAMED)
            self._streaming = True
            self._body_left = size
            return
        if size > self.max_literal:
            raise ProtocolError(f"IMAP server sent a {size}-byte literal outside a message body")
        self._count_bytes(size)
        if size == 0:
            current.append(b"")
        else:
            self._literal_left = size

    def _continuation(self, text: bytes) -> None:
        if self._held and self._held[0][1]:
            self._release_held(continuation=True)
        else:
            self._count_bytes(len(text))
            self._count_response(b"+")
            self._events.append(Continuation(text.decode("utf-8", "replace")))

    def _status(self, tag: bytes, status: str, rest: bytes) -> None:
        code = None
        match = _CODE.match(rest)
        if match:
            code = ResponseCode(match.group(1).decode("ascii", "replace").upper(),
                                (match.group(2) or b"").decode("utf-8", "replace"))
            rest = rest[match.end():]
            if code.name == "CAPABILITY":
                self.capabilities = _capabilities(code.args.encode().split())
        text = rest.decode("utf-8", "replace")
        if tag == b"*":
            self._count_response(status.encode())
            if not self._greeted:
                if status not in ("OK", "PREAUTH", "BYE"):
                    raise ProtocolError(f"IMAP server greeted with {status}")
                self._greeted = True
                self._events.append(Greeting(status, code, text))
                return
            if code and self.mailbox is not None and code.name in ("UIDVALIDITY", "UIDNEXT", "HIGHESTMODSEQ"):
                setattr(self.mailbox, code.name.lower(), _number(match.group(2) or b"", code.name))
            elif code and self.mailbox is not None and code.name == "NOMODSEQ":
                self.mailbox.highestmodseq = None
            self._events.append(StatusResponse(status, code, text))
            return
        command = self._pending.pop(tag.decode("ascii", "replace"), None)
        if command is None or status not in ("OK", "NO", "BAD"):
            raise ProtocolError(f"IMAP server completed a command we did not send: {_show(tag)} {status}")
        self._untagged = self._untagged_bytes = 0
        if any(held[0] == command.tag for held in self._held):
            self._held = deque(held for held in self._held if held[0] != command.tag)
            self._release_held(continuation=False)
        if command.name == "STARTTLS" and status == "OK":
            if self._buffer:
                raise ProtocolError("IMAP server sent data after STARTTLS before the TLS handshake")
            self.capabilities = frozenset()    # §6.2.1: discard what plaintext told us
        if command.name in ("SELECT", "EXAMINE") and status != "OK":
            self.mailbox = None
        elif self.mailbox is not None and code and code.name in ("READ-ONLY", "READ-WRITE"):
            self.mailbox.read_only = code.name == "READ-ONLY"
        if command.name in ("SELECT", "EXAMINE") and self.mailbox is not None:
            self.mailbox.opened = True
        self._events.append(Completion(command.tag, command.name, status, code, text))

    def _data(self, tokens: list, partial: _Partial) -> None:
        if len(tokens) < 2 or not isinstance(tokens[1], bytes):
            raise ProtocolError("IMAP server sent an empty untagged response")
        name = tokens[1].upper()
        if name[:1].isdigit() and len(tokens) >= 3 and isinstance(tokens[2], bytes):
            number, kind = _number(name), tokens[2].upper()
            self._count_response(kind)
            if kind == b"FETCH":
                if len(tokens) != 4 or not isinstance(tokens[3], list):
                    raise ProtocolError(f"IMAP server sent a malformed FETCH for message {number}")
                self._unstreamed_bodies(number, tokens[3])
                self._events.append(Fetch(number, _fetch_items(tokens[3][partial.parsed:], partial.items)))
            elif kind == b"EXISTS":
                if self.mailbox is not None:
                    if self.mailbox.opened:
                        # Mail may have come after the SELECT: what it told of UIDNEXT and
                        # HIGHESTMODSEQ may be past (an EXPUNGE then an arrival keep the count).
                        self.mailbox.uidnext = self.mailbox.highestmodseq = None
                    self.mailbox.exists = number
                self._events.append(Exists(number))
            elif kind == b"EXPUNGE":
                if self.mailbox is not None:
                    self.mailbox.exists = max(self.mailbox.exists - 1, 0)   # RFC 3501 §7.4.1
                self._events.append(Expunge(number))
            else:
                self._events.append(OtherData(kind.decode("ascii", "replace"), [number, *tokens[3:]]))
            return
        self._count_response(name)
        if name == b"CAPABILITY":
            self.capabilities = _capabilities(tokens[2:])
            self._events.append(Capability(self.capabilities))
        elif name in (b"LIST", b"LSUB"):
            self._events.append(_list_entry(tokens))
        else:
            self._events.append(OtherData(name.decode("ascii", "replace"), tokens[2:]))

    def _search(self, line: bytes) -> None:
        """A SEARCH response (see _SEARCH), its numbers converted a slice at a time."""
        match = _SEARCH.match(line)
        if not match:
            raise ProtocolError(f"IMAP server sent a malformed SEARCH response: {_show(line)}")
        self._count_response(b"SEARCH")
        numbers, text, start = [], match.group(1), 0
        while start < len(text):
            end = text.find(b" ", start + _SEARCH_SLICE)
            end = len(text) if end < 0 else end
            numbers += map(int, text[start:end].split())
            start = end
        self._events.append(Search(tuple(numbers)))

    def _unstreamed_bodies(self, number: int, items: list) -> None:
        """A body section sent as a quoted string or NIL: hand it out like a literal."""
        for key, value in zip(items[0::2], items[1::2]):
            if value is _STREAMED or isinstance(value, list) or not isinstance(key, bytes) \
                    or key[:1] not in b"BbRr":
                continue
            section = key.decode("ascii", "replace").upper()
            if _BODY_SECTION.fullmatch(section):
                data = value or b""
                self._events.append(FetchBodyStart(number, section, len(data), {}))
                if data:
                    self._events.append(FetchBodyChunk(data))
                self._events.append(FetchBodyEnd())

    def _end_of_stream(self):
        if self._buffer or self._partial is not None or self._streaming or self._literal_left:
            raise TempFailure("IMAP server closed the connection in the middle of a response")
        if self._closed_reported:
            raise TempFailure("IMAP connection already closed")
        self._closed_reported = True
        return ConnectionClosed()


@dataclass(slots=True)
class _Continued:
    """An argument sent only after the server's "+" (the AUTHENTICATE response)."""
    data: bytes


def _list_pattern(value: bytes) -> bytes:
    # list-mailbox (§9) allows the wildcards % and * unquoted; quote anything else odd.
    return value if re.fullmatch(rb'[^\x00-\x20\x7f-\xff(){"\\]+', value) else _astring(value)


def _ascii_argument(text: str, what: str) -> bytes:
    if "\r" in text or "\n" in text or "\0" in text:
        raise UsageError(f"{what} must not contain CR, LF or NUL")
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        raise UsageError(f"{what} must be ASCII (non-ASCII searches are not supported)") from None


def _capabilities(tokens) -> frozenset[str]:
    return frozenset(t.decode("ascii", "replace").upper() for t in tokens if isinstance(t, bytes))


def _number(token, what: str = "a number") -> int:
    number = parse_decimal(token) if isinstance(token, bytes) else None
    if number is None:
        shown = _show(token) if isinstance(token, bytes) else "NIL" if token is None else "a list"
        raise ProtocolError(f"IMAP server sent {shown} where {what} belongs")
    return number


def _digits(token: bytes, what: str = "a number") -> int:
    """_number for a token a fast-path pattern matched as [0-9]+: only its length is left
    to check, and int() alone is a fifth of parse_decimal's cost (4 numbers a message)."""
    return int(token) if len(token) <= MAX_DECIMAL_DIGITS else _number(token, what)


@functools.lru_cache(maxsize=256)
def _flag_names(flags: bytes) -> tuple[str, ...]:
    """A FLAGS list's text (what is inside the parentheses) as names: a mailbox has few
    distinct flag sets, so most messages take an earlier one's."""
    return tuple([f.decode("utf-8", "replace") for f in flags.split()])


_ITEM_NAMES = {b"UID": "UID", b"FLAGS": "FLAGS", b"RFC822.SIZE": "RFC822.SIZE"}


def _fetch_items(tokens: list, items: dict | None = None) -> dict:
    """FETCH item pairs to a dict (adding to `items`); UID and RFC822.SIZE as int, FLAGS as str."""
    items = {} if items is None else items
    pairs = iter(tokens)
    for key, value in zip(pairs, pairs):
        if value is _STREAMED or not isinstance(key, bytes):
            continue
        name = _ITEM_NAMES.get(key) or key.decode("ascii", "replace").upper()
        if name == "UID" or name == "RFC822.SIZE":
            items[name] = _number(value)
        elif name == "FLAGS":
            if not isinstance(value, list):
                raise ProtocolError("IMAP server sent FLAGS that are not a list")
            items[name] = tuple([f.decode("utf-8", "replace") for f in value if isinstance(f, bytes)])
        else:
            items[name] = value
    return items


def _list_entry(tokens: list) -> ListEntry:
    if len(tokens) != 5 or not isinstance(tokens[2], list):
        raise ProtocolError("IMAP server sent a malformed LIST response")
    flags = tuple(f.decode("ascii", "replace") for f in tokens[2] if isinstance(f, bytes))
    delimiter = tokens[3].decode("utf-8", "replace") if isinstance(tokens[3], bytes) else None
    raw = tokens[4] if isinstance(tokens[4], bytes) else b""
    return ListEntry(flags, delimiter, decode_mailbox_name(raw), raw)


def _show(data: bytes) -> str:
    return repr(data[:200].decode("utf-8", "replace"))
