"""What a file is, for the Content-Type we write: its media type and, for text, its charset.

Media type: libmagic (python-magic) looks at the bytes; when it only says "some text" or
"some binary", the file name's extension (the `mimetypes` table) may refine the answer,
but never contradict the bytes: a binary file named notes.txt stays application/octet-stream.

Charset (RFC 2046 §4.1.2: every text part declares one): pure ASCII is us-ascii; bytes that
are valid UTF-8 over the whole content are utf-8 (legacy text almost never is by accident);
anything else is chardet's guess from a bounded sample, written under its IANA name.
We only label; the bytes are never transcoded.
"""

import codecs
import functools
import mimetypes
import re

# The parser's own rule for a field name (mimekit.headers.lenient re-exports it), taken from
# the parser: lenient's other readings are 8 ms of start-up that sniffing never uses.
from mimekit.read.parser import _FIELD_NAME as FIELD_NAME


# Answers from libmagic that say "text" or "binary" but not what kind.
_VAGUE_TYPES = frozenset({"text/plain", "application/octet-stream"})
_EMPTY_TYPES = frozenset({"application/x-empty", "inode/x-empty"})
OCTET_STREAM = "application/octet-stream"

# How much non-ASCII content chardet sees (it decides within far less; memory stays bounded).
CHARDET_SAMPLE_SIZE = 1024 * 1024

# The label RFC 2046 readers expect, keyed by Python's canonical codec name. Where a
# Microsoft superset was detected, the registered base name is written: mail programs
# (and the WHATWG decoders they use) read "shift_jis" as cp932 and "euc-kr" as cp949.
_MIME_CHARSET_NAMES = {
    "ascii": "us-ascii",
    "utf-8": "utf-8",
    "utf-16": "utf-16", "utf-16-le": "utf-16le", "utf-16-be": "utf-16be",
    "utf-32": "utf-32", "utf-32-le": "utf-32le", "utf-32-be": "utf-32be",
    "cp932": "shift_jis", "shift_jis": "shift_jis", "euc_jp": "euc-jp", "iso2022_jp": "iso-2022-jp",
    "cp949": "euc-kr", "euc_kr": "euc-kr", "iso2022_kr": "iso-2022-kr",
    "gb2312": "gb2312", "gbk": "gbk", "gb18030": "gb18030", "hz": "hz-gb-2312",
    "big5": "big5", "cp950": "big5", "big5hkscs": "big5-hkscs",
    "mac-roman": "macintosh", "koi8-r": "koi8-r", "koi8-u": "koi8-u", "tis-620": "tis-620",
}
UNKNOWN_CHARSET = "unknown-8bit"   # RFC 1428: 8-bit text in a charset nobody can name


def sniff_content_type(head: bytes, filename: str = "") -> str:
    """The media type of content starting with `head` (1 MiB is plenty for libmagic)."""
    sniffed = _magic_type(head)
    guessed = _type_from_name(filename)
    fields = message_fields(head)
    if len(fields) > 1 or (fields and guessed == "message/rfc822"):
        # libmagic knows a message only by a few first fields (From:, Received:): to it, one
        # starting "MIME-Version:" is text, which a reader would parse as a message all the
        # same. Two fields say so whatever the name (a saved mail.txt is a message too); one
        # alone only in an .eml: "Subject: notes" over a note is a note.
        if sniffed is None or sniffed in _VAGUE_TYPES or sniffed in _EMPTY_TYPES:
            return "message/rfc822"
    elif not fields:
        # libmagic calls anything starting "From:" a message; a reader would parse it as one.
        if sniffed and sniffed.startswith("message/"):
            sniffed = "text/plain" if not _BINARY_BYTE.search(head) else OCTET_STREAM
        if guessed and guessed.startswith("message/"):
            guessed = None
    if sniffed in _EMPTY_TYPES or sniffed is None:
        return guessed or OCTET_STREAM
    if sniffed in _VAGUE_TYPES and guessed and guessed.startswith("text/") == (sniffed == "text/plain"):
        return guessed
    return sniffed


# Fields a message has and other header-like text seldom does (RFC 5322 3.6, RFC 2045).
_MESSAGE_FIELDS = frozenset({b"from", b"to", b"cc", b"bcc", b"sender", b"reply-to", b"subject", b"date",
                             b"message-id", b"in-reply-to", b"references", b"received", b"return-path",
                             b"delivered-to", b"mime-version", b"newsgroups"})
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\n|\r)")
# Bytes libmagic never finds in text (it allows BEL to CR, ESC and 8-bit bytes).
_BINARY_BYTE = re.compile(rb"[\x00-\x06\x0e-\x1a\x1c-\x1f\x7f]")


def message_fields(head: bytes) -> set[bytes]:
    """The names (lower case) of the fields a message has that start `head`, when it starts
    with what the reader takes for a message's header: lines that are fields or their
    continuations, ended by a blank line within `head`; else none. Content without any
    would get a defect as message/rfc822."""
    names, position = set(), 0
    while line := _LINE.match(head, position):   # match, not finditer: no rescan of a line without end
        text, position = line[1], line.end()
        if not text:
            return names & _MESSAGE_FIELDS
        if text[0] in b" \t" and names:
            continue
        field = FIELD_NAME.match(text)
        if field is None:
            return set()
        names.add(field[1].lower())
    return set()


@functools.cache
def _libmagic():
    """python-magic, loaded on first use: loading it runs ldconfig, which commands that
    never sniff should not pay for. None when libmagic is missing; the name decides then."""
    try:
        import magic
    except ImportError:
        return None
    return magic


def _magic_type(head: bytes) -> str | None:
    magic = _libmagic()
    if magic is None:
        return None
    try:
        sniffed = magic.from_buffer(head, mime=True)
    except magic.MagicException:
        return None
    return sniffed.lower() if is_media_type(sniffed) else None


def _type_from_name(filename: str) -> str | None:
    """The extension's type, unless the name also says it is compressed (x.tar.gz is not a tar)."""
    guessed, compression = mimetypes.guess_type(filename, strict=False)
    return guessed.lower() if guessed and not compression else None


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")


def is_media_type(value: str) -> bool:
    """True for a bare `type/subtype` made of RFC 2045 token characters."""
    return bool(_MEDIA_TYPE.fullmatch(value))


class CharsetDetector:
    """Streaming charset detection: feed every chunk of the content, then ask `charset()`."""

    def __init__(self):
        self._ascii = True
        self._utf8 = codecs.getincrementaldecoder("utf-8")()   # None once the bytes are not UTF-8
        self._sample = bytearray()

    def feed(self, data: bytes) -> None:
        if self._ascii and data.isascii():
            return
        self._ascii = False
        if self._utf8 is not None:
            try:
                self._utf8.decode(data)
            except UnicodeDecodeError:
                self._utf8 = None
        if len(self._sample) < CHARDET_SAMPLE_SIZE:
            self._sample += data[:CHARDET_SAMPLE_SIZE - len(self._sample)]

    @property
    def settled(self) -> bool:
        """True when more content cannot change the answer (chardet has its whole sample)."""
        return self._utf8 is None and len(self._sample) >= CHARDET_SAMPLE_SIZE

    def charset(self) -> str:
        if self._ascii:
            return "us-ascii"
        if self._utf8 is not None:
            try:
                self._utf8.decode(b"", final=True)
                return "utf-8"
            except UnicodeDecodeError:
                self._utf8 = None
        # Imported here: chardet costs ~20 ms of start-up that ASCII and UTF-8 never need.
        import chardet

        guess = mime_charset_name(chardet.detect(bytes(self._sample))["encoding"])
        # The checks above are exact; a guess that contradicts them is no answer.
        return UNKNOWN_CHARSET if guess in (None, "us-ascii", "utf-8") else guess


def detect_charset(data: bytes) -> str:
    """The charset of a whole text held in memory (convenience over CharsetDetector)."""
    detector = CharsetDetector()
    detector.feed(data)
    return detector.charset()


def mime_charset_name(codec_label: str | None) -> str | None:
    """The IANA charset name for a codec label such as chardet's "CP932" or "Windows-1252"."""
    if not codec_label:
        return None
    try:
        name = codecs.lookup(codec_label).name
    except LookupError:
        return None
    if name in _MIME_CHARSET_NAMES:
        return _MIME_CHARSET_NAMES[name]
    if match := re.fullmatch(r"iso8859-([0-9]+)", name):
        return f"iso-8859-{match[1]}"
    if match := re.fullmatch(r"cp(125[0-9])", name):
        return f"windows-{match[1]}"
    if match := re.fullmatch(r"cp([0-9]{3})", name):
        return f"ibm{match[1]}"
    return name.replace("_", "-")
