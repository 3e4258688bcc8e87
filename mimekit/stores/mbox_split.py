"""Splitting an mbox into its messages, streaming: a multi-gigabyte mbox is read once, a
line at a time, and never held in memory.

A message starts at a "From " line that begins the file or follows an empty line: every
mbox writer (mutt, Thunderbird, Postfix's local, Dovecot, ours) puts an empty line
before it, and a body line "From here on..." that an mboxo writer left unquoted rarely
follows one. Where a message's header block has a Content-Length (mboxcl2, Solaris and
some exports) and the stated length ends exactly at the next "From " line or at the end
of the file, the body is skipped whole, so unquoted "From " lines inside it split
nothing; a Content-Length that does not fit is ignored, as mutt ignores it.

Only spans are found here (offsets and flags); reading a span un-quotes mboxrd's ">From "
(`unquoted_range`).
"""

import io
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from mimekit.limits import parse_decimal
from mimekit.streams.files import CHUNK_SIZE
from mimekit.streams.from_quoting import FromQuoter

LINE_LIMIT = 64 * 1024           # longer lines are read in pieces; only a piece at a line start counts
X_STATUS = (("R", "A"), ("F", "F"), ("T", "D"))   # Maildir flag -> mbox X-Status letter


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


def status_flags(name: bytes, value: bytes) -> set[str]:
    """Maildir flag letters that one Status or X-Status header field says (mutt's and
    Python mailbox's reading: R in Status is seen; A, F, D in X-Status)."""
    name = name.strip().lower()
    if name == b"status":
        return {"S"} if b"R" in value else set()
    if name == b"x-status":
        return {flag for flag, letter in X_STATUS if letter.encode() in value}
    return set()


def is_blank(line: bytes) -> bool:
    return line in (b"\n", b"\r\n")


def split_mbox(stream: BinaryIO, offset: int = 0, stop: int | None = None) -> Iterator[MboxSpan]:
    """The messages of the mbox read from `stream`, positioned at `offset`.

    `offset` 0 is the file's start; any other offset is resynchronised to the next message
    start, so that byte ranges [a, b) of one file can be split by independent workers
    (`stop`: only messages whose "From " line starts before it; the last one is still read
    to its end). Content-Length is checked only on a seekable stream.
    """
    seekable = stream.seekable()
    if offset:
        stream.seek(offset - 1)
        position = offset - 1
        while True:                        # the rest of the line the range starts in, in pieces
            piece = stream.readline(LINE_LIMIT)
            position += len(piece)
            if not piece or piece.endswith(b"\n"):
                break
        stream.seek(max(position - 3, 0))
        before = stream.read(position - max(position - 3, 0))
        previous_blank = before.endswith(b"\n\n") or before.endswith(b"\n\r\n") or position <= 1
    else:
        position, previous_blank = 0, True
    at_line_start = True
    current: MboxSpan | None = None      # the message being read
    in_headers, content_length, flags = False, None, set()
    separator = 0                        # length of the last line when it was empty
    while True:
        line = stream.readline(LINE_LIMIT)
        if not line:
            break
        line_start, at_line_start = at_line_start, line.endswith(b"\n")
        if line_start and previous_blank and line.startswith(b"From "):
            if stop is not None and position >= stop:
                break
            if current is not None:
                current.end, current.following = position - separator, position
                current.flags = "".join(sorted(flags))
                yield current
            current = MboxSpan(position, position + len(line), 0, 0, "")
            in_headers, content_length, flags = True, None, set()
            position += len(line)
            previous_blank, separator = False, 0
            continue
        position += len(line)
        blank = line_start and is_blank(line)
        previous_blank, separator = blank, (len(line) if blank else 0)
        if current is None or not in_headers:
            continue
        if blank:
            in_headers = False
            if content_length is not None and seekable and _fits(stream, position + content_length):
                position += content_length
                stream.seek(position)      # what follows is a "From " line, or the end
                previous_blank, separator, at_line_start = True, 0, True
        elif line_start:
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            if name.strip().lower() == b"content-length":
                content_length = parse_decimal(value.strip().decode("ascii", "replace"))
            else:
                flags |= status_flags(name, value)
    if current is not None:
        current.end, current.following = position - separator, position
        current.flags = "".join(sorted(flags))
        yield current


def _fits(stream: BinaryIO, body_end: int) -> bool:
    """Whether a Content-Length ending at `body_end` ends a line, at the file's end or right
    before a "From " line (after the separating empty line). A file may be seeked past its
    end, so the body's last byte is read to know that it is there."""
    here = stream.tell()
    try:
        stream.seek(body_end - 1)
        last, following = stream.read(1), stream.read(7)
        return last == b"\n" and (following == b"" or following.startswith((b"From ", b"\nFrom ", b"\r\nFrom ")))
    finally:
        stream.seek(here)


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

