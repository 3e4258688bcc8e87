"""Building a MIME message from a body, HTML and files: the part tree `writer` streams out.

Structure (RFC 2046, RFC 2387):

    multipart/mixed                      only when there are attachments
      multipart/alternative              only with both a text body and --html
        text/plain                       the body
        multipart/related; type=...      only when inline files go with the HTML
          text/html
          inline files (Content-ID <NAME@inline>, referenced as cid:NAME@inline)
      attachments

Inline files without HTML have nothing to reference them, so they sit in multipart/mixed
after the body with Content-Disposition: inline, where mail programs show them in place.

Transfer encodings are chosen per part from its whole content, read once in a streaming
pre-scan before anything is written (the writer reads it a second time):
- 7bit: ASCII, no NUL, no bare CR, lines of at most 998 bytes, no line starting "From "
  (mbox readers would mangle it), and, for a file, whose bytes must come back exactly,
  line breaks already as the message writes them (CRLF, or LF under --lf);
- a body (text or HTML) that is not 7bit: quoted-printable in text mode (its line breaks
  become the message's), unless it has a NUL or more than one byte in six that QP would
  escape; then base64, which at that share is the shorter;
- a file that is not 7bit: base64. Files must come back byte for byte, which QP can only
  do in binary mode (CR and LF escaped): unreadable as text anyway, and old decoders
  (munpack) mishandle it in CRLF messages; mail programs send files as base64 too.
- message/* is only ever 7bit (RFC 2046 §5.2.1); one that is not 7-bit clean is attached
  as application/octet-stream, base64, so its bytes still arrive intact.
`--encoding` forces base64 or quoted-printable (binary mode for files) on every part but message/*.

Boundaries are "=_mimekit_" + 24 random base32 characters (one token per message) + a
two-digit serial. They cannot occur in base64 (no "_" in its alphabet, "=" only as final
padding) nor in quoted-printable (every "=" is followed by two hex digits or a line break),
so only 7bit content could contain one: the pre-scan looks for the token, and a part that
contains it is not sent as 7bit. All boundaries of a message have the same length, so none
is a prefix of another (RFC 2046 §5.1.2 readers match boundaries by prefix).
"""

import base64
import io
import itertools
import os
import re
import shutil
import stat
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator

from mimekit.headers.addresses import addr_specs, format_address_header, parse_address_list
from mimekit.headers.dates import format_date, make_message_id, parse_date
from mimekit.headers.encoded_words import encode_unstructured
from mimekit.errors import DataError, UsageError
from mimekit.streams.files import open_input, read_chunks, temporary_file
from mimekit.headers.folding import check_header_value, fold_header
from mimekit.write.sniff import OCTET_STREAM, CharsetDetector, is_media_type, sniff_content_type

CRLF = b"\r\n"
LF = b"\n"
MAX_LINE_LENGTH = 998                 # RFC 5322 §2.1.1, without the line break
SCAN_CHUNK_SIZE = 256 * 1024          # also the head libmagic sees
BOUNDARY_PREFIX = "=_mimekit_"
ENCODINGS = ("auto", "base64", "quoted-printable")

# Bytes quoted-printable must write as =XX (RFC 2045 §6.7): controls other than TAB, CR
# and LF, "=", DEL and everything 8-bit.
_QP_ESCAPED = bytes([*range(0, 9), 11, 12, *range(14, 32), ord("="), *range(127, 256)])

# RFC 5322 §3.6: fields that occur at most once. Address fields given several times are
# merged into one field; the others may not be given twice.
ADDRESS_FIELDS = frozenset({"from", "sender", "reply-to", "to", "cc", "bcc"})
_SINGLE_FIELDS = frozenset({"date", "message-id", "in-reply-to", "references", "subject"})
# Fields the composer writes from the structure it builds: a user value could only contradict it.
_STRUCTURAL_FIELDS = frozenset({"mime-version", "content-type", "content-transfer-encoding",
                                "content-disposition", "content-id", "content-description"})
_FIELD_ORDER = ("date", "from", "sender", "reply-to", "to", "cc", "bcc", "subject", "message-id")
_FIELD_NAME = re.compile(r"[!-9;-~]+")   # RFC 5322 ftext: printable ASCII except ":"
_MSG_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")   # RFC 5322 §3.6.4, loosely: no space, <, > or second @


class Role:
    """How a part's bytes may be treated on the way out."""

    TEXT = "text"        # a body: its line breaks are text, written as the message's own
    DATA = "data"        # a file: comes back byte for byte
    MESSAGE = "message"  # message/*: 7bit only, line breaks are the message's own


class Content:
    """Bytes that can be read from the start more than once: scanned, then encoded."""

    def __init__(self, opener: Callable[[], BinaryIO], keep_alive=None):
        self._opener = opener           # returns a new stream positioned at the start
        self._keep_alive = keep_alive   # the spool file of a stream, deleted with this object

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> "Content":
        """A file (checked now: a missing one is NoInputError naming it). One that can be
        read only once, such as a pipe from bash's <(command), is spooled first; stdin is
        Content.from_stream(sys.stdin.buffer)."""
        path = os.fspath(path)
        stream = open_input(path)
        with stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                return cls.from_stream(stream)
        return cls(lambda: open_input(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> "Content":
        return cls(lambda: io.BytesIO(data))

    @classmethod
    def from_stream(cls, stream: BinaryIO) -> "Content":
        """Copy a stream that can only be read once (stdin, a pipe) to an anonymous temp file."""
        spool = temporary_file()
        shutil.copyfileobj(stream, spool, SCAN_CHUNK_SIZE)
        spool.flush()
        return cls.from_open_file(spool)

    @classmethod
    def from_open_file(cls, file: BinaryIO) -> "Content":
        """An open file that has a descriptor (an anonymous spool, an upload's spool file),
        read from the start each time through a duplicate of its descriptor: every reader
        has its own, and closing one leaves `file` open. `file` stays its owner's to close;
        it is kept alive (not closed) as long as this Content."""
        descriptor = file.fileno()

        def reopen() -> BinaryIO:
            reader = os.fdopen(os.dup(descriptor), "rb")
            reader.seek(0)
            return reader

        return cls(reopen, keep_alive=file)

    def size(self) -> int:
        with self.open() as stream:
            return stream.seek(0, io.SEEK_END)

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        stream = self._opener()
        try:
            yield stream
        finally:
            stream.close()


class ContentScan:
    """One streaming pass over a part's content: everything its transfer encoding depends on.

    `forbidden` is the message's boundary stem; 7bit content containing it cannot be sent.
    The composer stops feeding once the choice is decided (see `never_7bit`), so the
    counts then cover what was read, not the whole content.
    """

    def __init__(self, forbidden: bytes = b""):
        self.size = 0
        self.ascii = True
        self.nul = False
        self.qp_escapes = 0          # bytes quoted-printable would write as =XX
        self.long_line = False       # a line over MAX_LINE_LENGTH (CR, LF and CRLF all end lines)
        self.from_line = False       # a line starting "From "
        self.forbidden_found = False
        self.forbidden = forbidden
        self._seam = max(len(forbidden), len(b"\nFrom ")) - 1
        self._tail = b"\n"           # as if after a line break, so "From " at the start counts
        self._cr = self._lf = self._crlf = 0
        self._ended_with_cr = False
        self._line_length = 0

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        self.ascii = self.ascii and data.isascii()
        self.nul = self.nul or b"\0" in data
        self.qp_escapes += len(data) - len(data.translate(None, _QP_ESCAPED))
        self._count_line_breaks(data)
        self._note_line_lengths(data)
        seam = self._tail + data[:self._seam]   # patterns that straddle two chunks
        self.from_line = self.from_line or b"\nFrom " in seam or b"\nFrom " in data
        if self.forbidden and not self.forbidden_found:
            self.forbidden_found = self.forbidden in seam or self.forbidden in data
        self._tail = (self._tail + data[-self._seam:])[-self._seam:]

    def _count_line_breaks(self, data: bytes) -> None:
        self._cr += data.count(b"\r")
        self._lf += data.count(b"\n")
        self._crlf += data.count(b"\r\n") + (self._ended_with_cr and data.startswith(b"\n"))
        self._ended_with_cr = data.endswith(b"\r")

    def _note_line_lengths(self, data: bytes) -> None:
        if self.long_line:
            return
        lines = data.splitlines()   # C speed; a regex search for a long run was far slower
        longest = max(self._line_length + len(lines[0]), max(map(len, lines[1:]), default=0))
        if data.endswith((b"\r", b"\n")):
            self._line_length = 0
        else:
            self._line_length = self._line_length + len(lines[0]) if len(lines) == 1 else len(lines[-1])
        self.long_line = max(longest, self._line_length) > MAX_LINE_LENGTH

    @property
    def bare_cr(self) -> bool:
        return self._cr > self._crlf

    @property
    def bare_lf(self) -> bool:
        return self._lf > self._crlf

    @property
    def crlf(self) -> bool:
        return self._crlf > 0

    @property
    def never_7bit(self) -> bool:
        """Facts that more content cannot undo and that rule out 7bit for any part."""
        return not self.ascii or self.nul or self.long_line or self.forbidden_found

    @property
    def clean_7bit(self) -> bool:
        """RFC 2045 §2.7 7bit data (line breaks aside), and no boundary inside."""
        return (self.ascii and not self.nul and not self.bare_cr and not self.long_line
                and not self.forbidden_found)

    def line_breaks_are(self, eol: bytes) -> bool:
        """True if every line break in the content is `eol` (so 7bit copies it unchanged)."""
        return not self.bare_cr and (not self.bare_lf if eol == CRLF else not self.crlf)


def choose_transfer_encoding(scan: ContentScan, role: str, eol: bytes = CRLF) -> str:
    """The transfer encoding the module docstring describes, for content measured by `scan`."""
    if role == Role.MESSAGE:
        return "7bit"
    exact_line_breaks = role == Role.TEXT or scan.line_breaks_are(eol)
    if scan.clean_7bit and not scan.from_line and exact_line_breaks:
        return "7bit"
    if role == Role.TEXT and not scan.nul and scan.qp_escapes * 6 <= scan.size:
        return "quoted-printable"
    return "base64"


@dataclass
class Leaf:
    """One part with content: its type, labels, and what its pre-scan found."""

    content: Content
    content_type: str
    role: str
    scan: ContentScan
    charset: str | None = None             # for text/* (RFC 2046 §4.1.2)
    filename: str | None = None
    disposition: str | None = None         # "attachment", "inline" or None (a body)
    content_id: str | None = None          # without the angle brackets
    encoding: str = "auto"                 # "auto" or a forced "base64"/"quoted-printable"

    @property
    def line_breaks_are_text(self) -> bool:
        """True if line breaks may be written as the message's own (CRLF is the canonical
        form of text, RFC 2046 §4.1.1): bodies and messages, but not files, and not UTF-16/32
        text, whose line breaks are not the bytes CR and LF."""
        return self.role != Role.DATA and not (self.charset or "").startswith(("utf-16", "utf-32"))

    def transfer_encoding(self, eol: bytes = CRLF) -> str:
        """Forced encodings apply to every part but message/*, which must stay 7bit."""
        if self.encoding != "auto" and self.role != Role.MESSAGE:
            return self.encoding
        return choose_transfer_encoding(self.scan, self.role, eol)


@dataclass
class Multipart:
    subtype: str                           # "mixed", "alternative", "related"
    boundary: str
    parts: list
    params: list[tuple[str, str]] = field(default_factory=list)   # besides boundary


@dataclass
class ComposedMessage:
    """Top-level header fields (complete, folded, 7-bit, CRLF-terminated) and the body entity.

    The fields are rendered (and so validated) when the message is built; the writer only
    changes their line ends under --lf. The body's Content-* fields are written with it.
    `warnings` name what is valid but probably not what the sender meant (a cid: reference
    no inline part has, two inline files that wanted the same Content-ID).
    """

    header_fields: list[bytes]
    body: Leaf | Multipart
    warnings: list[str] = field(default_factory=list)   # what the sender may not have meant

    def leaves(self) -> Iterator[Leaf]:
        """The parts with content, in the order they are written."""
        pending = [self.body]
        while pending:
            entity = pending.pop(0)
            if isinstance(entity, Multipart):
                pending[:0] = entity.parts
            else:
                yield entity

    def content_size(self) -> int:
        """Bytes the writer will read from the parts' contents (for progress)."""
        return sum(leaf.content.size() for leaf in self.leaves())


class MessageBuilder:
    """Collects headers, body, HTML and files; `build()` returns the ComposedMessage to write.

    Every input is checked when it is added (a missing file, a header with CR/LF, a bad
    address), so nothing is written for a message that cannot be made.
    """

    def __init__(self, encoding: str = "auto"):
        if encoding not in ENCODINGS:
            raise UsageError(f"unknown transfer encoding {encoding!r} (choose {', '.join(ENCODINGS)})")
        self.encoding = encoding
        self._stem = BOUNDARY_PREFIX + base64.b32encode(os.urandom(15)).decode("ascii")
        self._boundaries = 0
        self._fields: dict[str, tuple[str, list[str]]] = {}   # lower name -> (name, values)
        self._extra_fields: list[tuple[str, str]] = []
        self._body: Leaf | None = None
        self._html: Leaf | None = None
        self._inline: list[Leaf] = []
        self._attachments: list[Leaf] = []
        self._content_ids: dict[str, str] = {}   # Content-ID -> the inline file that has it
        self._warnings: list[str] = []

    # -- headers --------------------------------------------------------------------------

    def add_header(self, name: str, value: str) -> None:
        """Add a header field. Address fields accumulate; Date/Message-ID replace the generated ones."""
        if not _FIELD_NAME.fullmatch(name):
            raise UsageError(f"not a header field name: {name!r}")
        key = name.lower()
        if key in _STRUCTURAL_FIELDS:
            raise UsageError(f"{name} is written by mimekit from the message structure")
        check_header_value(name, value)
        _check_given_identity(key, name, value)
        if key in ADDRESS_FIELDS:
            format_address_header(name, [value], CRLF)   # raises DataError for a bad address now
            self._fields.setdefault(key, (name, []))[1].append(value)
        elif key in _SINGLE_FIELDS:
            if key in self._fields:
                raise UsageError(f"{name} given twice")
            self._fields[key] = (name, [value])
        else:
            self._extra_fields.append((name, value))

    def add_addresses(self, name: str, addresses) -> None:
        for address in addresses:
            self.add_header(name, address)

    # -- parts ----------------------------------------------------------------------------

    def set_body(self, source, html: bool = False) -> None:
        """The text (or HTML) body; its charset is detected, its line breaks are canonical text."""
        leaf = self._leaf(source, "text/html" if html else "text/plain", Role.TEXT)
        if html:
            self._html = leaf
        else:
            self._body = leaf

    def attach(self, source, filename: str | None = None, content_type: str | None = None) -> Leaf:
        """A file sent byte for byte; its type is sniffed unless `content_type` is given."""
        leaf = self._file_leaf(source, filename, content_type, "attachment")
        self._attachments.append(leaf)
        return leaf

    def add_inline(self, source, filename: str | None = None, content_type: str | None = None) -> str:
        """A file shown in place; returns its Content-ID, which HTML references as cid:ID."""
        leaf = self._file_leaf(source, filename, content_type, "inline")
        leaf.content_id = self._unique_content_id(leaf.filename, _source_name(source, leaf.filename))
        self._inline.append(leaf)
        return leaf.content_id

    def _file_leaf(self, source, filename, content_type, disposition) -> Leaf:
        if content_type is not None and not is_media_type(content_type):
            raise UsageError(f"not a media type (type/subtype): {content_type!r}")
        if filename is None:
            if isinstance(source, (bytes, bytearray, Content)):
                raise UsageError("a file given as data needs a filename")
            filename = _display_name(os.fspath(source))
        check_header_value("Content-Disposition", filename)   # now, not when the message is half written
        leaf = self._leaf(source, content_type, Role.DATA, filename)
        leaf.filename, leaf.disposition = filename, disposition
        if leaf.content_type.startswith("message/"):
            if leaf.scan.clean_7bit:
                leaf.role = Role.MESSAGE
            else:
                leaf.content_type = OCTET_STREAM
        return leaf

    def _leaf(self, source, content_type: str | None, role: str, filename: str = "") -> Leaf:
        """Sniff (unless the type is given), detect a text charset and pre-scan, in one pass."""
        content = as_content(source)
        scan = ContentScan(self._stem.encode("ascii"))
        with content.open() as stream:
            head = stream.read(SCAN_CHUNK_SIZE)
            content_type = content_type or sniff_content_type(head, filename)
            detector = CharsetDetector() if content_type.startswith("text/") else None
            for chunk in itertools.chain([head], read_chunks(stream, SCAN_CHUNK_SIZE)):
                scan.feed(chunk)
                if detector:
                    detector.feed(chunk)
                # Stop when the rest cannot change the choice: a body is base64 once it has a
                # NUL, a file is base64 once it cannot be 7bit (the counts then stay partial).
                decided = scan.nul if role == Role.TEXT else scan.never_7bit
                if decided and (detector is None or detector.settled):
                    break
        return Leaf(content, content_type, role, scan, charset=detector.charset() if detector else None,
                    encoding=self.encoding)

    def _unique_content_id(self, filename: str, source_name: str) -> str:
        """NAME@inline, NAME being the file name in characters a cid: URL keeps as they are.
        A name already taken gets a serial (NAME-2@inline), with a warning: HTML written for
        the first file's cid: would otherwise show the wrong picture without a word."""
        stem = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._+-]", "_", filename)).strip(".") or "part"
        wanted = candidate = f"{stem}@inline"
        serial = 1
        while candidate in self._content_ids:
            serial += 1
            candidate = f"{stem}-{serial}@inline"
        if candidate != wanted:
            self._warnings.append(f"inline files {self._content_ids[wanted]} and {source_name} would share "
                                  f"Content-ID <{wanted}>: {source_name} gets <{candidate}>")
        self._content_ids[candidate] = source_name
        return candidate

    # -- the message ----------------------------------------------------------------------

    def build(self) -> ComposedMessage:
        if "from" not in self._fields:
            raise UsageError("no From address")
        fields = dict(self._fields)
        fields.setdefault("date", ("Date", [format_date()]))
        fields.setdefault("message-id", ("Message-ID", [_new_message_id(fields["from"][1])]))
        rendered = [_render_field(*fields.pop(key)) for key in _FIELD_ORDER if key in fields]
        rendered += [_render_field(name, values) for name, values in fields.values()]
        rendered += [_render_field(name, [value]) for name, value in self._extra_fields]
        rendered.append(fold_header("MIME-Version", "1.0", CRLF))
        return ComposedMessage(rendered, self._structure(), self._warnings + self._missing_cid_warnings())

    def _missing_cid_warnings(self) -> list[str]:
        """One warning per cid: reference in the HTML body that no inline part answers
        (a picture the reader will see broken)."""
        if self._html is None:
            return []
        return [f"the HTML body references cid:{reference}, which no inline part has"
                for reference in sorted(_cid_references(self._html.content)) if reference not in self._content_ids]

    def build_report(self, report_type: str, parts) -> ComposedMessage:
        """An RFC 6522 multipart/report: the body (the human-readable part), then `parts`,
        (source, media type) pairs such as message/delivery-status (RFC 3464), in order.
        message/* parts must be 7-bit clean (RFC 2046 §5.2.1); text/* ones are encoded as bodies."""
        if self._html is not None or self._inline or self._attachments:
            raise UsageError("a report has a text body and its report parts only")
        message = self.build()
        leaves = []
        for source, content_type in parts:
            role = Role.MESSAGE if content_type.startswith("message/") else Role.TEXT
            leaf = self._leaf(source, content_type, role)
            if role == Role.MESSAGE and not leaf.scan.clean_7bit:
                raise DataError(f"a {content_type} part must be 7-bit clean")
            leaves.append(leaf)
        return ComposedMessage(message.header_fields,
                               self._multipart("report", [message.body, *leaves], [("report-type", report_type)]))

    def _structure(self) -> Leaf | Multipart:
        main = self._html
        if main is not None and self._inline:
            main = self._multipart("related", [main, *self._inline], [("type", "text/html")])
        if main is not None and self._body is not None:
            main = self._multipart("alternative", [self._body, main])
        elif main is None:
            main = self._body
        extras = self._attachments if self._html is not None else [*self._inline, *self._attachments]
        if not extras:
            return main if main is not None else self._leaf(b"", "text/plain", Role.TEXT)
        return self._multipart("mixed", [main, *extras] if main is not None else extras)

    def _multipart(self, subtype: str, parts: list, params=()) -> Multipart:
        self._boundaries += 1
        return Multipart(subtype, f"{self._stem}.{self._boundaries:02d}", parts, list(params))


def compose(*, from_: str | list[str], to=(), cc=(), bcc=(), subject: str | None = None,
            headers=(), body=None, html=None, attachments=(), inline=(),
            attachment_type: str | None = None, encoding: str = "auto", forwarded=()) -> ComposedMessage:
    """A whole message in one call. `headers` are (name, value) pairs; sources are paths,
    bytes or Content. An attachment or inline file given as a (source, media type) pair
    has that type; `attachment_type` is the type of every attachment given without one
    (not of inline files, whose HTML needs their real type); the others are sniffed.
    `forwarded` are (source, file name) pairs of messages attached whole as message/rfc822."""
    builder = MessageBuilder(encoding)
    builder.add_addresses("From", [from_] if isinstance(from_, str) else from_)
    builder.add_addresses("To", to)
    builder.add_addresses("Cc", cc)
    builder.add_addresses("Bcc", bcc)
    if subject is not None:
        builder.add_header("Subject", subject)
    for name, value in headers:
        builder.add_header(name, value)
    if body is not None:
        builder.set_body(body)
    if html is not None:
        builder.set_body(html, html=True)
    for source, content_type in map(_typed_source, inline):
        builder.add_inline(source, content_type=content_type)
    for source, content_type in map(_typed_source, attachments):
        builder.attach(source, content_type=content_type or attachment_type)
    for source, filename in forwarded:
        builder.attach(source, filename=filename, content_type="message/rfc822")
    return builder.build()


def _typed_source(entry) -> tuple:
    """(source, media type or None) for an entry of compose's attachments or inline."""
    return entry if isinstance(entry, tuple) else (entry, None)


# A cid: URL (RFC 2392) in HTML, up to what ends an attribute value or a CSS url().
_CID_URL = re.compile(rb"""\bcid:([^\s"'<>()]+)""", re.IGNORECASE)
_LONGEST_CID = 998   # a longer one is not a Content-ID a header line could carry


def _cid_references(content: Content) -> set[str]:
    """The Content-IDs HTML content references as cid:ID (percent-decoded), read in chunks:
    a reference cut by a chunk's end is read again whole with the next chunk."""
    references, pending = set(), b""
    with content.open() as stream:
        for chunk in itertools.chain(read_chunks(stream, SCAN_CHUNK_SIZE), [None]):
            text = pending + (chunk or b"")
            keep_from = max(len(text) - len(b"cid:"), 0) if chunk is not None else len(text)
            for match in _CID_URL.finditer(text):
                if match.end() == len(text) and chunk is not None:
                    keep_from = match.start()   # may go on in the next chunk
                    break
                references.add(urllib.parse.unquote(match[1].decode("ascii", "replace")))
            pending = text[keep_from:] if len(text) - keep_from <= _LONGEST_CID else b""
    return references


def as_content(source) -> Content:
    """A part's source (a path, bytes or Content) as Content."""
    if isinstance(source, Content):
        return source
    if isinstance(source, (bytes, bytearray)):
        return Content.from_bytes(bytes(source))
    return Content.from_path(source)


def _source_name(source, filename: str) -> str:
    """How a warning names a part's source: its path as given, else its file name."""
    return os.fsdecode(source) if isinstance(source, (str, os.PathLike)) else filename


def _display_name(path: str) -> str:
    """The file's own name as text: undecodable bytes in it become U+FFFD, not surrogates."""
    return os.fsencode(os.path.basename(path)).decode("utf-8", "replace")


def _check_given_identity(key: str, name: str, value: str) -> None:
    """A Date or Message-ID given by the caller replaces ours, so it must be as valid as ours."""
    if key == "date":
        when, defects = parse_date(value)
        if when is None or defects:
            raise DataError(f"header {name}: not an RFC 5322 date: {value!r}")
    elif key == "message-id" and not _MSG_ID.fullmatch(value):
        raise DataError(f"header {name}: not a message id <left@right>: {value!r}")


def _new_message_id(from_values: list[str]) -> str:
    """A Message-ID on the sender's domain (the host's if that is a domain literal)."""
    specs = addr_specs(entry for value in from_values for entry in parse_address_list(value)[0])
    domain = specs[0].rpartition("@")[2] if specs else None
    return make_message_id(domain if domain and not domain.startswith("[") else None)


def _render_field(name: str, values: list[str]) -> bytes:
    if name.lower() in ADDRESS_FIELDS:
        return format_address_header(name, values, CRLF)
    value = values[0]
    return fold_header(name, encode_unstructured(value, offset=len(name) + 2), CRLF)
