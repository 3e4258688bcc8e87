"""Decoders for the encodings mail carried before MIME, and still carries: uuencode,
`begin-base64` (uuencode -m), x-gzip64, yEnc and BinHex 4.0.

They are what a mail client may decode when a Content-Transfer-Encoding names one of them
(`x-uuencode`, `x-gzip64`) or when its framing turns up in a body whatever the header says
(`=ybegin`, "(This file must be converted with BinHex"), so a scanner has to decode them
too (mimekit.codecs.encoding_names picks them). Each is a Filter (mimekit.streams.filters)
with `.defects` (offsets into its own input) and `.filename` (None until the framing names
the file). Each decodes the first file it finds and ignores the rest of the body, as
uudecode does; each holds at most a line (MAX_LINE) or a file header between feeds, never
raises on bad input, and records what it could not read as a Defect.
"""

import binascii
import re
import struct
import zlib
from dataclasses import replace

from mimekit.codecs.transfer import Base64Decoder
from mimekit.codecs.uuencode import MAX_LINE, UuBegin, UuData, UuEnd, UuScanner, decode_line
from mimekit.defects import Defect, DefectKind, DefectLog

# The lines that start each framing (at a line start), as the sniffer and the decoders look for them.
YENC_BEGIN = b"=ybegin "
BINHEX_MARKER = b"(This file must be converted with BinHex"
BEGIN_BASE64 = re.compile(rb"begin-base64[ \t]+[0-7]{3,4}[ \t]+(\S(?:[^\r\n]*\S)?)[ \t]*\r?$", re.M)

# x-gzip64: what a gzip member may expand to before decoding stops. Deflate reaches about
# 1032:1, so a ratio cap would stop nothing a bomb does; a size cap does.
MAX_GUNZIP_OUTPUT = 1 << 30


def _placed(defects: list[Defect], base: int) -> list[Defect]:
    """An inner decoder's defects, its input starting at `base` of ours."""
    return [replace(defect, offset=defect.offset + base) for defect in defects]


class LineBlocks:
    """Cuts a stream into blocks of whole lines, for decoders whose markers start a line.

    A line longer than MAX_LINE is handed on in pieces as it comes (it is no marker line);
    `mid_line` then says that the next block starts inside a line.
    """

    def __init__(self) -> None:
        self._pending = b""
        self.offset = 0          # of the next block's first byte in the input
        self.mid_line = False    # the next block starts inside a line

    def feed(self, data: bytes, final: bool = False) -> tuple[bytes, int, bool]:
        """(block, its offset, whether it starts mid-line) for the whole lines fed so far."""
        data = self._pending + data
        cut = len(data) if final else data.rfind(b"\n") + 1
        if len(data) - cut > MAX_LINE:
            cut = len(data)
        block, self._pending = data[:cut], data[cut:]
        placed = (block, self.offset, self.mid_line)
        if block:
            self.offset += len(block)
            self.mid_line = not block.endswith(b"\n")
        return placed


class LineBlockDecoder:
    """The frame of a decoder that reads whole lines (LineBlocks): feed() and flush() hand
    _decode(block, offset, mid_line) the lines complete so far, and flush() adds what
    _finish() makes of the end of the input (a missing end line, a held group). Defects
    go to `_log`."""

    def __init__(self) -> None:
        self._log = DefectLog()
        self._lines = LineBlocks()

    @property
    def defects(self) -> list[Defect]:
        return self._log.defects

    def feed(self, data: bytes) -> bytes:
        return self._decode(*self._lines.feed(data))

    def flush(self) -> bytes:
        out = self._decode(*self._lines.feed(b"", final=True))
        return out + self._finish()

    def _decode(self, block: bytes, offset: int, mid_line: bool) -> bytes:
        raise NotImplementedError

    def _finish(self) -> bytes:
        return b""


def first_line_start(block: bytes, mid_line: bool) -> int:
    """Where the first line that starts in `block` starts (len(block) if none does)."""
    if not mid_line:
        return 0
    newline = block.find(b"\n")
    return len(block) if newline < 0 else newline + 1


def line_end(block: bytes, pos: int) -> int:
    """The offset just past the line break of the line at `pos` (or the end of `block`)."""
    newline = block.find(b"\n", pos)
    return len(block) if newline < 0 else newline + 1


class UudecodeDecoder:
    """uuencode as a Content-Transfer-Encoding (x-uuencode, x-uue, ...), or found in a body.

    A body whose first non-blank line is a uuencoded line is read as uuencoded lines
    throughout, without begin and end lines (lines that are not uuencode are skipped with
    a defect; an `end` line stops). Any other body is searched for a `begin 644 name` line
    and the first file there is decoded (mimekit.codecs.uuencode.UuScanner).
    """

    def __init__(self) -> None:
        self.filename: str | None = None
        self._log = DefectLog()
        self._head = b""          # the first non-blank line, until it is complete
        self._head_offset = 0     # its offset (blank lines before it are skipped)
        self._mode = ""           # "", "framed", "bare" or "done"
        self._scanner = UuScanner(max_files=1)
        self._lines = LineBlocks()

    @property
    def defects(self) -> list[Defect]:
        # the scanner stops at a second file (LIMIT_PARTS): this decoder wants the first only
        found = [defect for defect in self._scanner.defects if defect.kind is not DefectKind.LIMIT_PARTS]
        return self._log.defects + _placed(found, self._head_offset)

    def feed(self, data: bytes) -> bytes:
        if not self._mode:
            data = self._choose_mode(data, final=False)
        return self._decode(data, final=False)

    def flush(self) -> bytes:
        data = self._choose_mode(b"", final=True) if not self._mode else b""
        return self._decode(data, final=True)

    def _choose_mode(self, data: bytes, final: bool) -> bytes:
        """Hold input until the first non-blank line is complete; then pick the mode and
        return the held input, from that line on."""
        head = self._head + data
        body = head.lstrip(b" \t\r\n")
        start = len(head) - len(body)
        start = head.rfind(b"\n", 0, start) + 1   # blank lines go, the first line stays whole
        self._head_offset += start
        head = head[start:]
        newline = head.find(b"\n")
        if newline < 0 and len(head) <= MAX_LINE and not final:
            self._head = head
            return b""
        self._head = b""
        first_line = head[:newline if newline >= 0 else len(head)].rstrip(b"\r")
        self._mode = "bare" if decode_line(first_line) is not None else "framed"
        self._lines.offset = self._head_offset
        return head

    def _decode(self, data: bytes, final: bool) -> bytes:
        if self._mode == "framed":   # once the first file ended, the rest is not looked at
            events = self._scanner.feed(data) if data else []
            return self._framed(events + (self._scanner.close() if final else []))
        if self._mode == "bare":
            return self._bare(*self._lines.feed(data, final))
        return b""

    def _framed(self, events: list) -> bytes:
        out = []
        for event in events:
            if self._mode == "done":
                break
            if isinstance(event, UuBegin):
                self.filename = event.name
            elif isinstance(event, UuData):
                out.append(event.data)
            elif isinstance(event, UuEnd):
                self._mode = "done"
        return b"".join(out)

    def _bare(self, block: bytes, offset: int, mid_line: bool) -> bytes:
        out = []
        pos = first_line_start(block, mid_line)   # the rest of a line too long to be uuencode
        while pos < len(block):
            end = line_end(block, pos)
            line = block[pos:end].rstrip(b"\r\n")
            if line.rstrip() == b"end":
                self._mode = "done"
                break
            if (data := decode_line(line)) is not None:
                out.append(data)
            elif line.strip():
                self._skip_line(offset + pos, "not a uuencoded line: skipped")
            pos = end
        return b"".join(out)

    def _skip_line(self, offset: int, detail: str) -> None:
        self._log.add(Defect(DefectKind.ENCODING_MALFORMED, offset, detail))


class BeginBase64Decoder(LineBlockDecoder):
    """`begin-base64 MODE NAME`, base64 lines, then `====`: the framing of `uuencode -m`.
    The first such file in the input is decoded (leniently, as mimekit.codecs.transfer's
    Base64Decoder does); what comes before or after it is ignored."""

    _END = re.compile(rb"^====[ \t]*\r?$", re.M)

    def __init__(self) -> None:
        super().__init__()
        self.filename: str | None = None
        self._base64: Base64Decoder | None = None   # once the begin line is found
        self._data_offset = 0
        self._done = False

    @property
    def defects(self) -> list[Defect]:
        inner = _placed(self._base64.defects, self._data_offset) if self._base64 else []
        return self._log.defects + inner

    def _finish(self) -> bytes:
        if self._base64 is None:
            self._log.add(Defect(DefectKind.ENCODING_MALFORMED, 0, "no begin-base64 line"))
            return b""
        if self._done:
            return b""
        self._log.add(Defect(DefectKind.UUENCODE_MISSING_END, self._lines.offset,
                             "begin-base64 data stopped without its '====' line"))
        return self._base64.flush()

    def _decode(self, block: bytes, offset: int, mid_line: bool) -> bytes:
        if self._done or not block:
            return b""
        lines_from = first_line_start(block, mid_line)
        data_from = 0
        if self._base64 is None:
            begin = BEGIN_BASE64.search(block, lines_from)
            if not begin:
                return b""
            self.filename = begin[1].decode("utf-8", "surrogateescape")
            lines_from = data_from = line_end(block, begin.end())
            self._base64, self._data_offset = Base64Decoder(), offset + data_from
        end = self._END.search(block, lines_from) if b"====" in block else None
        if not end:
            return self._base64.feed(block[data_from:])
        self._done = True
        return self._base64.feed(block[data_from:end.start()]) + self._base64.flush()


class Gzip64Decoder:
    """x-gzip64: base64, then gunzip (RFC 1952; zlib streams are read too).

    Decompression stops, with a LIMIT_DECODED_SIZE defect, once `max_output` bytes came
    out (MAX_GUNZIP_OUTPUT, 1 GiB): a gzip bomb cannot fill the disk. Concatenated
    members are all read; data after the last member, or corrupt data, ends decoding with
    a defect. The encoded input is decoded in segments of MAX_LINE bytes, whatever the
    feeds (each feed returns at most what its whole segments inflate to), so gunzip's
    defects, placed at the offset of the segment in which they were found, do not depend
    on how the input was cut.
    """

    def __init__(self, max_output: int = MAX_GUNZIP_OUTPUT) -> None:
        self.filename: str | None = None
        self._base64 = Base64Decoder()
        self._log = DefectLog()
        self._inflater = zlib.decompressobj(wbits=47)
        self._room = max_output
        self._segment = b""        # encoded input short of a whole segment
        self._offset = 0           # of the encoded input decoded so far
        self._inflating = False    # a member has started and not ended
        self._stopped = False

    @property
    def defects(self) -> list[Defect]:
        return self._base64.defects + self._log.defects

    def feed(self, data: bytes) -> bytes:
        data = self._segment + data
        whole = len(data) - len(data) % MAX_LINE
        self._segment = data[whole:]
        return b"".join(self._decode(data[start:start + MAX_LINE]) for start in range(0, whole, MAX_LINE))

    def flush(self) -> bytes:
        out = self._decode(self._segment) + self._gunzip(self._base64.flush())
        self._segment = b""
        if self._inflating and not self._stopped:
            self._stop(DefectKind.ENCODING_MALFORMED, "gzip data ended before its last member did")
        return out

    def _decode(self, encoded: bytes) -> bytes:
        out = self._gunzip(self._base64.feed(encoded))
        self._offset += len(encoded)
        return out

    def _gunzip(self, compressed: bytes) -> bytes:
        out = []
        while compressed and not self._stopped:
            try:
                inflated = self._inflater.decompress(compressed, self._room + 1)
            except zlib.error as error:
                self._stop(DefectKind.ENCODING_MALFORMED, f"not gzip data: {error}")
                break
            self._inflating = True
            if len(inflated) > self._room:
                out.append(inflated[:self._room])
                self._stop(DefectKind.LIMIT_DECODED_SIZE, "decompressed data cut at its size limit")
                break
            out.append(inflated)
            self._room -= len(inflated)
            compressed = b""
            if self._inflater.eof:   # another member may follow
                self._inflating = False
                compressed = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=47)
                if compressed and not compressed.startswith(b"\x1f\x8b"[:len(compressed)]):
                    self._stop(DefectKind.ENCODING_MALFORMED, "data after the last gzip member ignored")
        return b"".join(out)

    def _stop(self, kind: DefectKind, detail: str) -> None:
        self._stopped = True
        self._log.add(Defect(kind, self._offset, detail))


# yEnc (yenc.org, version 1.3): "=" escapes the next byte (which is the byte + 64);
# every other byte is the data byte + 42; line breaks are not data.
_YENC_DATA = bytes((byte - 42) % 256 for byte in range(256))
_YENC_ESCAPED = [bytes([(byte - 64) % 256]) for byte in range(256)]
_YENC_ESCAPE = re.compile(rb"=(.)", re.S)
_YENC_CONTROL = re.compile(rb"^=y(part|end)\b([^\r\n]*)", re.M)
_YENC_NAME = re.compile(rb"\bname=[ \t]*([^\r\n]*?)[ \t]*\r?$")


def _yenc_number(header: bytes, key: bytes, base: int = 10) -> int | None:
    """The value of `key=` in a yEnc header line (decimal, or hex for CRCs), if any."""
    digits = rb"[0-9]{1,20}" if base == 10 else rb"[0-9a-fA-F]{1,8}"
    found = re.search(rb"\b" + key + rb"=(" + digits + rb")\b", header)
    return int(found[1], base) if found else None


class YencDecoder(LineBlockDecoder):
    """yEnc: the first `=ybegin ... name=NAME` block (one part of a multi-part post is
    read as it is), up to its `=yend`, whose size and CRC32 are checked."""

    def __init__(self) -> None:
        super().__init__()
        self.filename: str | None = None
        self._begun = False
        self._done = False
        self._part = False          # =ybegin said part=: the =yend's CRC is pcrc32
        self._escape_open = False   # the data so far ends with an "=" whose byte is yet to come
        self._size = 0
        self._crc = 0

    def _finish(self) -> bytes:
        if not self._begun:
            self._log.add(Defect(DefectKind.ENCODING_MALFORMED, 0, "no =ybegin line"))
        elif not self._done:
            self._log.add(Defect(DefectKind.ENCODING_MALFORMED, self._lines.offset,
                                 "yEnc data stopped without its =yend line"))
        return b""

    def _decode(self, block: bytes, offset: int, mid_line: bool) -> bytes:
        if self._done or not block:
            return b""
        lines_from = first_line_start(block, mid_line)
        data_from = 0
        if not self._begun:
            begin = self._find_begin(block, lines_from)
            if begin < 0:
                return b""
            lines_from = data_from = self._read_header(block, begin)
        out = []
        while (control := _YENC_CONTROL.search(block, lines_from)):
            out.append(self._data(block[data_from:control.start()]))
            lines_from = data_from = line_end(block, control.end())
            if control[1] == b"end":
                self._check_end(control[2], offset + control.start())
                return b"".join(out)
        out.append(self._data(block[data_from:]))
        return b"".join(out)

    @staticmethod
    def _find_begin(block: bytes, pos: int) -> int:
        while (found := block.find(YENC_BEGIN, pos)) >= 0:
            if found == pos or block[found - 1] == 0x0A:
                return found
            pos = found + 1
        return -1

    def _read_header(self, block: bytes, begin: int) -> int:
        """Read the =ybegin line at `begin`; the offset of the line after it."""
        end = line_end(block, begin)
        header = block[begin:end].rstrip(b"\r\n")
        self._begun = True
        self._part = _yenc_number(header, b"part") is not None
        if name := _YENC_NAME.search(header):
            self.filename = name[1].decode("utf-8", "surrogateescape")
        return end

    def _data(self, encoded: bytes) -> bytes:
        encoded = encoded.translate(None, b"\r\n")
        if self._escape_open:
            encoded, self._escape_open = b"=" + encoded, False
        run = len(encoded) - len(encoded.rstrip(b"="))
        if run % 2:   # pairs are read from the left: an odd final run ends with a lone "="
            encoded, self._escape_open = encoded[:-1], True
        if b"=" in encoded:
            encoded = _YENC_ESCAPE.sub(lambda escape: _YENC_ESCAPED[escape[1][0]], encoded)
        data = encoded.translate(_YENC_DATA)
        self._size += len(data)
        self._crc = zlib.crc32(data, self._crc)
        return data

    def _check_end(self, trailer: bytes, offset: int) -> None:
        self._done = True
        size = _yenc_number(trailer, b"size")
        crc = _yenc_number(trailer, b"pcrc32" if self._part else b"crc32", 16)
        if size is not None and size != self._size:
            self._log.add(Defect(DefectKind.CHECKSUM_MISMATCH, offset,
                                 f"yEnc =yend says {size} bytes; {self._size} decoded"))
        if crc is not None and crc != self._crc:
            self._log.add(Defect(DefectKind.CHECKSUM_MISMATCH, offset,
                                 f"yEnc CRC32 {crc:08x} declared, {self._crc:08x} computed"))


# BinHex 4.0 (RFC 1741): 6-bit characters between ":" markers, run-length coded (0x90 n:
# the byte before repeated to n in all; 0x90 0: a 0x90), holding a header, the data fork
# and the resource fork, each followed by its CRC (CRC-16/XMODEM, binascii.crc_hqx).
BINHEX_ALPHABET = b"!\"#$%&'()*+,-012345689@ABCDEFGHIJKLMNPQRSTUVXYZ[`abcdefhijklmpqr"
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BINHEX_AS_BASE64 = bytes.maketrans(BINHEX_ALPHABET, _BASE64_ALPHABET)   # binascii then does the bit work
_NOT_BINHEX = bytes(sorted(set(range(256)) - set(BINHEX_ALPHABET)))
_BINHEX_TEXT = BINHEX_ALPHABET + b" \t\r\n"      # what BinHex data may hold without a defect
_NOT_BINHEX_TEXT = re.compile(b"[^" + re.escape(_BINHEX_TEXT) + b"]")
_BINHEX_RUN = 0x90
_BINHEX_HEADER_AFTER_NAME = 1 + 4 + 4 + 2 + 4 + 4 + 2   # version, type, creator, flags, lengths, CRC


class BinHexDecoder:
    """BinHex 4.0: the data fork of the first file after the "(This file must be
    converted with BinHex" line; its name from the BinHex header. A CRC that does not
    match is a defect, not the end: the data is written all the same."""

    def __init__(self) -> None:
        self.filename: str | None = None
        self._log = DefectLog()
        self._stage = "marker"       # marker, colon, data, done
        self._offset = 0             # of the input fed so far
        self._tail = b""             # the end of the input, in case the marker straddles two feeds
        self._letters = b""          # 6-bit characters (as base64) short of a 4-character group
        self._junk_reported = False  # characters outside the alphabet were found (and reported)
        self._run_pending = False    # the bytes so far end with a run marker whose count is yet to come
        self._last = b""             # the last byte out of run-length decoding
        self._header = b""           # the BinHex header, until it is whole
        self._fork_left = -1         # data fork bytes still to come (-1: header not read yet)
        self._crc = 0
        self._crc_bytes = b""        # the data fork's CRC, as it arrives

    @property
    def defects(self) -> list[Defect]:
        return self._log.defects

    def feed(self, data: bytes) -> bytes:
        out = self._decode(data)
        self._offset += len(data)
        return out

    def flush(self) -> bytes:
        if self._stage == "data":
            out = self._end_of_data(self._offset)
            self._log.add(Defect(DefectKind.ENCODING_MALFORMED, self._offset,
                                 "BinHex data stopped without its closing ':'"))
            return out
        if self._stage != "done":
            self._log.add(Defect(DefectKind.ENCODING_MALFORMED, self._offset, "no BinHex data found"))
        return b""

    def _decode(self, data: bytes) -> bytes:
        pos = 0
        if self._stage == "marker":
            window = self._tail + data
            found = window.find(BINHEX_MARKER)
            if found < 0:
                self._tail = window[-(len(BINHEX_MARKER) - 1):]
                return b""
            self._stage, self._tail = "colon", b""
            pos = max(0, found - (len(window) - len(data)) + len(BINHEX_MARKER))
        if self._stage == "colon":
            colon = data.find(b":", pos)
            if colon < 0:
                return b""
            self._stage, pos = "data", colon + 1
        if self._stage != "data":
            return b""
        colon = data.find(b":", pos)
        out = self._characters(data[pos:] if colon < 0 else data[pos:colon], self._offset + pos)
        if colon >= 0:
            out += self._end_of_data(self._offset + colon)
        return out

    def _characters(self, text: bytes, offset: int) -> bytes:
        """Decode BinHex characters (line breaks and junk skipped) as far as whole groups go.
        Junk is reported once, where it first is, so that the report does not depend on
        how the input was cut."""
        if not self._junk_reported and text.translate(None, _BINHEX_TEXT):
            self._junk_reported = True
            self._log.add(Defect(DefectKind.ENCODING_MALFORMED, offset + _NOT_BINHEX_TEXT.search(text).start(),
                                 "characters outside the BinHex alphabet skipped"))
        letters = self._letters + text.translate(_BINHEX_AS_BASE64, _NOT_BINHEX)
        whole = len(letters) - len(letters) % 4
        self._letters = letters[whole:]
        return self._unpack(self._run_length_decoded(binascii.a2b_base64(letters[:whole])))

    def _end_of_data(self, offset: int) -> bytes:
        """The closing ':' (or the end of the input): the last, short group, then checks."""
        self._stage = "done"
        group, self._letters = self._letters, b""
        out = self._unpack(self._run_length_decoded(binascii.a2b_base64(group + b"==")) if len(group) >= 2 else b"")
        if self._fork_left:   # the header, the fork or its CRC is incomplete
            self._log.add(Defect(DefectKind.ENCODING_MALFORMED, offset, "BinHex data ended before its data fork did"))
        return out

    def _run_length_decoded(self, data: bytes) -> bytes:
        out = []
        pos = 0
        if self._run_pending and data:
            self._run_pending = False
            self._expand_run(data[0], out)
            pos = 1
        while (marker := data.find(_BINHEX_RUN, pos)) >= 0:
            self._emit(data[pos:marker], out)
            if marker + 1 == len(data):
                self._run_pending = True
                return b"".join(out)
            self._expand_run(data[marker + 1], out)
            pos = marker + 2
        self._emit(data[pos:], out)
        return b"".join(out)

    def _expand_run(self, count: int, out: list[bytes]) -> None:
        """Output what a run marker followed by `count` stands for."""
        if count == 0:
            self._emit(bytes([_BINHEX_RUN]), out)
        elif self._last:
            out.append(self._last * (count - 1))

    def _emit(self, data: bytes, out: list[bytes]) -> None:
        if data:
            out.append(data)
            self._last = data[-1:]

    def _unpack(self, data: bytes) -> bytes:
        """The data fork's bytes among the decoded ones; the header read on the way."""
        if self._fork_left < 0:
            self._header += data
            if not self._header or len(self._header) < 1 + self._header[0] + _BINHEX_HEADER_AFTER_NAME:
                return b""
            data = self._read_header()
        fork, data = data[:self._fork_left], data[self._fork_left:]
        self._fork_left -= len(fork)
        self._crc = binascii.crc_hqx(fork, self._crc)
        if not self._fork_left and len(self._crc_bytes) < 2:
            self._crc_bytes += data[:2 - len(self._crc_bytes)]
            if len(self._crc_bytes) == 2:
                self._check_crc(self._crc_bytes, self._crc, "data fork")
        return fork

    def _read_header(self) -> bytes:
        """Parse the whole header; the decoded bytes after it."""
        name_length = self._header[0]
        end = 1 + name_length + _BINHEX_HEADER_AFTER_NAME
        header, rest = self._header[:end], self._header[end:]
        self._header = b""
        self.filename = header[1:1 + name_length].decode("mac_roman")
        self._fork_left, _resource_length = struct.unpack(">II", header[end - 10:end - 2])
        self._check_crc(header[end - 2:], binascii.crc_hqx(header[:end - 2], 0), "header")
        return rest

    def _check_crc(self, declared: bytes, computed: int, what: str) -> None:
        if int.from_bytes(declared, "big") != computed:
            self._log.add(Defect(DefectKind.CHECKSUM_MISMATCH, self._offset,
                                 f"BinHex {what} CRC {declared.hex()} declared, {computed:04x} computed"))
