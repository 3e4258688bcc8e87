"""Splitting an mbox into its messages, streaming: a multi-gigabyte mbox is read once, in
chunks, and never held in memory.

A message starts at a "From " line that begins the file or follows an empty line: every
mbox writer (mutt, Thunderbird, Postfix's local, Dovecot, ours) puts an empty line
before it, and a body line "From here on..." that an mboxo writer left unquoted rarely
follows one. Where a message's header block has a Content-Length (mboxcl2, Solaris and
some exports) and the stated length ends exactly at the next "From " line or at the end
of the file, the body is skipped whole, so unquoted "From " lines inside it split
nothing; a Content-Length that does not fit is ignored, as mutt ignores it.

The search runs at C speed (one regex over each chunk for the next message start, one
over each header block for Content-Length and Status); Python code runs per message,
not per line. Only spans are found here (offsets and flags); reading a span un-quotes
mboxrd's ">From " (`unquoted_range`).
"""

import io
import os
import re
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from mimekit.errors import DataError
from mimekit.limits import parse_decimal
from mimekit.streams.files import CHUNK_SIZE
from mimekit.streams.from_quoting import FromQuoter

HEADER_BLOCK_LIMIT = 1024 * 1024   # a longer header block is not looked into for Content-Length/Status
# Maildir flag -> mbox X-Status letter, as UW-IMAP and Dovecot write them (answered A,
# flagged F, deleted D, draft T: Maildir's T is trashed, its D draft)
X_STATUS = (("R", "A"), ("F", "F"), ("T", "D"), ("D", "T"))

_MESSAGE_START = re.compile(rb"\n\r?\nFrom ")          # an empty line, then a "From " line
_HEADER_END = re.compile(rb"\n\r?\n")
_MBOX_FIELDS = re.compile(rb"^(content-length|status|x-status)[ \t]*:([^\n]*)", re.I | re.M)
_BEFORE_THE_FILE = b"\n\n"     # the file's start counts as following an empty line


@dataclass
class MboxSpan:
    """One message: its "From " line at `offset`, its bytes from `start` (the first header
    line) to `end` (excluding the empty line that separates it from the next one), and
    `following`: where the next message's "From " line (or the file's end) is."""

    offset: int
    start: int
    end: int
    following: int
    flags: str


class _Window:
    """The part of the stream being searched, with absolute offsets: chunks are appended
    as the search needs them and what lies before the current message is dropped."""

    def __init__(self, stream: BinaryIO, offset: int):
        self.stream = stream
        self._read = getattr(stream, "read1", stream.read)   # a pipe's bytes as they come
        lead = max(offset - 3, 0)                             # the bytes that say what precedes `offset`
        if offset:
            stream.seek(lead)
        self.data = b"" if offset else _BEFORE_THE_FILE
        self.base = lead - len(self.data)                     # absolute offset of data[0]
        self.eof = False

    def more(self) -> bool:
        """Read one more chunk; False at the end of the stream."""
        if self.eof:
            return False
        chunk = self._read(CHUNK_SIZE)
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    def drop_before(self, position: int) -> None:
        cut = position - self.base
        if cut > CHUNK_SIZE:
            self.data = self.data[cut:]
            self.base = position

    def search(self, pattern: re.Pattern, position: int, within: int | None = None) -> re.Match | None:
        """The first match at or after `position`, reading on as needed (None at the end);
        match offsets are relative to `self.base`. With `within`, only that many bytes
        from `position` are searched, and all of them stay in the window."""
        start = position
        while True:
            match = pattern.search(self.data, max(position - self.base, 0))
            if match is not None:
                return match
            if within is not None and self.end - start > within:
                return None
            position = max(position, self.end - 8)   # a match may span two chunks
            if within is None:
                self.drop_before(position)
            if not self.more():
                return None

    def find_line_end(self, position: int, limit: int) -> int:
        """The offset just after the line that starts at `position`, or `limit` bytes on
        for a longer line (or the end)."""
        while True:
            at = self.data.find(b"\n", position - self.base, position - self.base + limit)
            if at >= 0:
                return self.base + at + 1
            if self.end - position >= limit or not self.more():
                return min(self.end, position + limit)

    def jump(self, position: int) -> None:
        """Go on reading at `position` (a seekable stream only)."""
        if position > self.base + len(self.data):
            self.stream.seek(position)
            self.data, self.base = b"", position
        self.drop_before(position)

    @property
    def end(self) -> int:
        return self.base + len(self.data)


def split_mbox(stream: BinaryIO, offset: int = 0, stop: int | None = None) -> Iterator[MboxSpan]:
    """The messages of the mbox read from `stream`, positioned at `offset`.

    `offset` 0 is the file's start; any other offset is resynchronised to the next message
    start, so that byte ranges [a, b) of one file can be split by independent workers
    (`stop`: only messages whose "From " line starts before it; the last one is still read
    to its end). Content-Length is checked only on a seekable stream with a descriptor.
    """
    window = _Window(stream, offset)
    if not offset:
        _check_mbox_start(window)
    seekable = stream.seekable() and _has_descriptor(stream)
    match = window.search(_MESSAGE_START, offset - 3 if offset else window.base)
    while match is not None and match.end() - 5 + window.base < offset:   # a "From " line of the range before
        match = window.search(_MESSAGE_START, match.start() + 1 + window.base)
    from_line = match.end() - 5 + window.base if match else None
    while from_line is not None and (stop is None or from_line < stop):
        start = window.find_line_end(from_line, HEADER_BLOCK_LIMIT)
        header_end = window.search(_HEADER_END, start - 1, within=HEADER_BLOCK_LIMIT)
        search_from = start - 1
        content_length, flags = None, set()
        if header_end is not None:
            header_block = window.data[start - window.base:header_end.start() + 1]
            content_length, flags = _header_facts(header_block)
            search_from = header_end.start() + window.base
        body_start = search_from + (len(header_end[0]) if header_end is not None else 0)
        if content_length is not None and seekable:
            separator = _separator_after(stream, body_start + content_length)
            if separator is not None:
                following = body_start + content_length + separator
                yield MboxSpan(from_line, start, body_start + content_length, following, _sorted(flags))
                window.jump(following)
                from_line = following if window.end > following or window.more() else None
                continue
        match = window.search(_MESSAGE_START, search_from)
        if match is None:
            end = window.end
            tail = window.data[-3:]
            end -= 2 if tail.endswith(b"\n\r\n") else 1 if tail.endswith(b"\n\n") else 0
            yield MboxSpan(from_line, start, max(end, start), window.end, _sorted(flags))
            return
        following = match.end() - 5 + window.base
        yield MboxSpan(from_line, start, max(match.start() + 1 + window.base, start), following, _sorted(flags))
        window.drop_before(following)
        from_line = following


def _check_mbox_start(window: _Window) -> None:
    """An mbox starts with a "From " line (after empty lines, at most; a file cut inside
    its first five bytes is an empty mbox): a file that does not is no mbox, and reading it
    as one would skip what comes before its first "From " line without a word."""
    while len(window.data.lstrip(b"\r\n")) < 5 and window.more():
        pass
    content = window.data.lstrip(b"\r\n")
    if content and not content.startswith(b"From ") and not (window.eof and b"From ".startswith(content)):
        name = getattr(window.stream, "name", "the input")
        raise DataError(f"{name}: not an mbox: it does not start with a \"From \" line")


def _header_facts(header_block: bytes) -> tuple[int | None, set[str]]:
    """Content-Length and the Maildir flags of the Status/X-Status fields (mutt's and
    Python mailbox's reading: R in Status is seen; A, F, D in X-Status)."""
    content_length, flags = None, set()
    for name, value in _MBOX_FIELDS.findall(header_block):
        name = name.lower()
        if name == b"content-length":
            content_length = parse_decimal(value.strip().decode("ascii", "replace"))
        elif name == b"status":
            flags |= {"S"} if b"R" in value else set()
        else:
            flags |= {flag for flag, letter in X_STATUS if letter.encode() in value}
    return content_length, flags


def _separator_after(stream: BinaryIO, body_end: int) -> int | None:
    """If a Content-Length ending at `body_end` ends at the file's end, or at an empty
    line before a "From " line (which is what a message start is everywhere else: a byte
    range listed alone must find the same start), the length of that line; else None."""
    before_and_following = os.pread(stream.fileno(), 9, body_end - 1)
    if before_and_following[1:] == b"":
        return 0 if os.fstat(stream.fileno()).st_size == body_end else None
    for separator, pattern in ((1, b"\n\nFrom "), (2, b"\n\r\nFrom ")):
        if before_and_following.startswith(pattern):
            return separator
    return None


def _has_descriptor(stream: BinaryIO) -> bool:
    try:
        stream.fileno()
        return True
    except (OSError, AttributeError):
        return False


def _sorted(flags: set[str]) -> str:
    return "".join(sorted(flags))


class UnquotedRange(io.RawIOBase):
    """Bytes [start, end) of an mbox through FromQuoter(unquote=True): a message as it was
    before mboxrd quoting. Closing it closes the mbox file."""

    def __init__(self, mbox: BinaryIO, start: int, end: int):
        self._mbox = mbox
        self._remaining = end - start
        self._unquoter = FromQuoter(unquote=True)
        self._pending = b""
        mbox.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending and self._unquoter is not None:
            raw = self._mbox.read(min(CHUNK_SIZE, self._remaining)) if self._remaining else b""
            self._remaining -= len(raw)
            if raw:
                self._pending = self._unquoter.feed(raw)
            else:
                self._pending, self._unquoter = self._unquoter.flush(), None
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._mbox.close()
        super().close()


def unquoted_range(path: str, start: int, end: int) -> BinaryIO:
    """The message stored in bytes [start, end) of the mbox at `path`, un-quoted."""
    return io.BufferedReader(UnquotedRange(open(path, "rb"), start, end), CHUNK_SIZE)

