"""Writing a ComposedMessage to a binary sink, streaming.

Each part's content is read in chunks of WRITE_CHUNK_SIZE bytes and passed through its
transfer encoder straight to the sink, so memory stays flat however large the files are.
The chunk is exactly one block of the base64 encoder (2048 lines of 57 bytes): no partial
line is carried between chunks and the encoder hands its one block back without another
copy. Chunks much larger than the CPU cache are slower (with binascii, 912 KiB ones took
twice as long on 100 MB); with pybase64, 57 KiB to 456 KiB chunks measured the same here
(0.18-0.22 s of CPU per 100 MB, under load), so one block is read at a time.

Line ends are CRLF (RFC 5322) unless eol=b"\\n" is asked for (a local file for Unix tools).
"""

import io
from typing import BinaryIO, Callable, Iterator

from mimekit.write.composer import CRLF, ContentScan, Leaf, ComposedMessage, Multipart, Role, choose_transfer_encoding
from mimekit.errors import IOFailure
from mimekit.streams.files import read_chunks
from mimekit.headers.folding import fold_header
from mimekit.streams.filters import chain
from mimekit.headers.params import format_attachment_headers, format_params_header
from mimekit.codecs.transfer import make_encoder

WRITE_CHUNK_SIZE = 57 * 2048   # 114 KiB in, 152 KiB of base64 out


def write_message(message: ComposedMessage, sink: BinaryIO, eol: bytes = CRLF,
                  on_progress: Callable[[int], None] | None = None) -> None:
    """Write `message` to `sink` with `eol` line ends (b"\\r\\n" or b"\\n").

    `on_progress` is called with the number of content bytes read, chunk by chunk.
    """
    header = b"".join(message.header_fields)
    sink.write(header if eol == CRLF else header.replace(CRLF, eol))
    _write_entity(message.body, sink, eol, on_progress or _ignore)


def message_bytes(message: ComposedMessage, eol: bytes = CRLF) -> bytes:
    """The whole message in memory: a convenience for small messages and tests."""
    buffer = io.BytesIO()
    write_message(message, buffer, eol)
    return buffer.getvalue()


def _ignore(nbytes: int) -> None:
    pass


def _write_entity(entity: Leaf | Multipart, sink: BinaryIO, eol: bytes, on_progress) -> None:
    """Content-* fields, the blank line, then the body (the caller wrote any other fields)."""
    if isinstance(entity, Multipart):
        params = [("boundary", entity.boundary), *entity.params]
        sink.write(format_params_header("Content-Type", f"multipart/{entity.subtype}", params, eol) + eol)
        delimiter = b"--" + entity.boundary.encode("ascii")
        for part in entity.parts:
            sink.write(delimiter + eol)
            _write_entity(part, sink, eol, on_progress)
            sink.write(eol)   # the line break before a delimiter belongs to the delimiter
        sink.write(delimiter + b"--" + eol)
        return
    transfer_encoding = entity.transfer_encoding(eol)
    sink.write(_leaf_fields(entity, transfer_encoding, eol) + eol)
    encoder = make_encoder(transfer_encoding, eol, text=entity.line_breaks_are_text)
    # 7bit content goes out as it is, so it is scanned again on the way: a file that changed
    # since the pre-scan (a growing log) must not slip 8-bit data or a boundary into the message.
    rescan = ContentScan(entity.scan.forbidden) if transfer_encoding == "7bit" else None
    with entity.content.open() as stream:
        for data in chain(_read_content(stream, rescan, on_progress), encoder):
            sink.write(data)
    if rescan and not _still_7bit(rescan, entity, eol):
        raise IOFailure(f"{entity.filename or 'the body'} changed while it was being read; "
                        "it no longer fits 7bit, so the message was not completed")


def _read_content(stream: BinaryIO, rescan: ContentScan | None, on_progress) -> Iterator[bytes]:
    """A part's content in WRITE_CHUNK_SIZE chunks, each rescanned (if asked) as it is read
    and counted as read once its encoding is written."""
    for chunk in read_chunks(stream, WRITE_CHUNK_SIZE):
        if rescan:
            rescan.feed(chunk)
        yield chunk
        on_progress(len(chunk))


def _still_7bit(rescan: ContentScan, leaf: Leaf, eol: bytes) -> bool:
    if leaf.role == Role.MESSAGE:
        return rescan.clean_7bit
    return choose_transfer_encoding(rescan, leaf.role, eol) == "7bit"


def _leaf_fields(leaf: Leaf, transfer_encoding: str, eol: bytes) -> bytes:
    type_params = [("charset", leaf.charset)] if leaf.charset else []
    if leaf.disposition:
        fields = format_attachment_headers(leaf.filename, leaf.content_type, disposition=leaf.disposition,
                                           extra_type_params=type_params, eol=eol)
    else:
        fields = format_params_header("Content-Type", leaf.content_type, type_params, eol)
    fields += fold_header("Content-Transfer-Encoding", transfer_encoding, eol)
    if leaf.content_id:
        fields += fold_header("Content-ID", f"<{leaf.content_id}>", eol)
    return fields
