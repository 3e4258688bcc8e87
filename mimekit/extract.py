"""What `mimekit decode` does with a parsed message: extract parts, find the text, read one part.

Extraction (CONVENTIONS.md "Safety") writes every leaf part, parts of attached messages
included, the text of a multipart in which no boundary was found, and every uuencoded
file found in a text/plain body, into one flat directory:
names are sanitised (mimekit.safe_names), files are created exclusively, a clash gets a
suffix, nothing is overwritten and no part is dropped. Bodies stream from the message to
disk (hashed on the way), so memory does not grow with their size. The manifest says
per file which part it came from, the name the sender gave, the name written and why
they differ.
"""

import hashlib
import io
import os
import re
from dataclasses import dataclass, replace
from typing import Callable, Iterator

from mimekit.charsets import TextDecoder
from mimekit.defects import Defect
from mimekit.errors import CantCreateError, DataError
from mimekit.events import PartKind
from mimekit.html_text import HtmlTextConverter
from mimekit.safe_names import OutputDirectory, RenameReason, replace_surrogates, safe_name
from mimekit.tree import Message, Part
from mimekit.uuencode import UuBegin, UuData, UuEnd, UuScanner

UUENCODED_TYPE = "application/octet-stream"   # uuencode carries a name, never a type
_PARTS_NAMED = 20   # in the error for a part id that is not there
_UU_PART_ID = re.compile(r"(?:(?P<part>.+)\.)?uu(?P<number>[1-9][0-9]*)")


@dataclass(frozen=True)
class ManifestEntry:
    """One file written: which part it holds and under which name, and why that name."""

    id: str                      # part id; "<part id>.uuN" for the N-th uuencoded file of a text part
    original_name: str | None    # as the sender gave it (None: no name)
    written_name: str            # the file's name inside the directory
    content_type: str
    size: int                    # bytes written (the decoded body)
    sha256: str
    reasons: tuple[RenameReason, ...]   # why written_name differs from original_name

    def as_dict(self) -> dict:
        """JSON-ready: an original name with undecodable bytes shows them as U+FFFD."""
        original = None if self.original_name is None else replace_surrogates(self.original_name)
        return {"id": self.id, "original_name": original, "written_name": self.written_name,
                "content_type": self.content_type, "size": self.size, "sha256": self.sha256,
                "reasons": [reason.value for reason in self.reasons]}


@dataclass
class Extraction:
    entries: list[ManifestEntry]
    defects: list[Defect]        # the message's, and those found in extracted bodies


def extract_all(message: Message, directory: str,
                on_progress: Callable[[int], None] | None = None) -> Extraction:
    """Write every extractable part (and uuencoded file) of `message` into `directory`.

    The directory is created if missing (CantCreateError if it cannot be). on_progress,
    if given, is called with the number of bytes written after every chunk.
    """
    _make_directory(directory)
    entries: list[ManifestEntry] = []
    body_defects: list[Defect] = []
    with OutputDirectory(directory) as output:
        for part in extractable_parts(message):
            uu_files = _UuFiles(part, output, on_progress) if part.content_type == "text/plain" else None
            name, reasons = safe_name(part.filename, part.id, part.content_type)
            with _HashedFile(output, name, reasons) as out:
                for chunk in part.iter_decoded():
                    out.write(chunk)
                    if on_progress:
                        on_progress(len(chunk))
                    if uu_files:
                        uu_files.feed(chunk)
            entries.append(out.entry(part.id, part.filename, part.content_type))
            if uu_files:
                uu_files.close()
                entries.extend(uu_files.entries)
                body_defects.extend(_placed_in_body(defect, part) for defect in uu_files.scanner.defects)
    return Extraction(entries, message.defects + body_defects)


def extractable_parts(message: Message) -> Iterator[Part]:
    """Every part that holds content of its own: the leaves, and multiparts in which no
    boundary was found (their text would otherwise be lost with the preamble)."""
    return (part for part in message.walk()
            if part.kind is PartKind.LEAF or (part.kind is PartKind.MULTIPART and not part.children))


def best_text_part(message: Message) -> Part:
    """The part a reader means by "the text": the first text/plain body that is not an
    attachment, else the first such text/html one. Parts of attached messages count only
    when the message itself has no text. DataError when there is none."""
    own, attached = [], []
    for part in message.leaves():
        if part.content_type in ("text/plain", "text/html") and part.disposition != "attachment":
            (attached if _inside_attached_message(part) else own).append(part)
    for candidates in (own, attached):
        for wanted in ("text/plain", "text/html"):
            for part in candidates:
                if part.content_type == wanted:
                    return part
    raise DataError("the message has no text/plain or text/html body")


def iter_text(part: Part, defects: list[Defect]) -> Iterator[str]:
    """The part's body as text with LF line ends, decoded from its charset (HTML made
    plain text), streamed. What the charset decoding found is appended to `defects`
    once the body is read.
    """
    decoder = TextDecoder(part.params.get("charset"))   # not part.charset: undeclared is detected
    newlines = io.IncrementalNewlineDecoder(None, translate=True)
    html = HtmlTextConverter() if part.content_type == "text/html" else None
    for chunk in part.iter_decoded():
        text = newlines.decode(decoder.decode(chunk))
        yield html.feed(text) if html else text
    text = newlines.decode(decoder.finish(), final=True)
    yield html.feed(text) + html.close() if html else text
    defects.extend(_placed_in_body(defect, part) for defect in decoder.defects)


def best_text(message: Message) -> str:
    """The best text of `message` in memory (DataError if it has none): a convenience
    over best_text_part() and iter_text()."""
    return "".join(iter_text(best_text_part(message), []))


def iter_part_bytes(message: Message, part_id: str) -> Iterator[bytes]:
    """The decoded bytes of part `part_id` (or of uuencoded file "<id>.uuN"), streamed.

    DataError names the parts there are when there is no such part.
    """
    uu = _UU_PART_ID.fullmatch(part_id)
    try:
        part = message.part(uu["part"] or "" if uu else part_id)
    except KeyError:
        ids = [p.id for p in message.walk() if p.id]
        known = ", ".join(ids[:_PARTS_NAMED]) + (", ..." if len(ids) > _PARTS_NAMED else "")
        known = known or "none besides the message itself"
        raise DataError(f"no part {part_id!r} in the message (parts: {known})") from None
    if not uu:
        yield from part.iter_decoded()
        return
    wanted, found = int(uu["number"]), 0
    scanner = UuScanner()
    for events in _scan(part, scanner):
        for event in events:
            if isinstance(event, UuBegin):
                found += 1
            elif isinstance(event, UuData) and found == wanted:
                yield event.data
    if found < wanted:
        raise DataError(f"part {part.id or '(message)'} holds {found} uuencoded file(s), not {wanted}")


def part_bytes(message: Message, part_id: str) -> bytes:
    """A part's decoded bytes in memory: a convenience over iter_part_bytes()."""
    return b"".join(iter_part_bytes(message, part_id))


class _HashedFile:
    """A file created exclusively in the directory, counting and hashing what is written."""

    def __init__(self, output: OutputDirectory, name: str, reasons: list[RenameReason]):
        path, self._stream = output.create_exclusive(name)
        self.written_name = os.path.basename(path)
        self.reasons = tuple(reasons) + ((RenameReason.CLASH,) if self.written_name != name else ())
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._sha256.update(data)
        self.size += len(data)

    def entry(self, part_id: str, original_name: str | None, content_type: str) -> ManifestEntry:
        return ManifestEntry(part_id, original_name, self.written_name, content_type, self.size,
                             self._sha256.hexdigest(), self.reasons)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> "_HashedFile":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _UuFiles:
    """Writes the uuencoded files found in one text part as its decoded body streams by."""

    def __init__(self, part: Part, output: OutputDirectory, on_progress: Callable[[int], None] | None):
        self.scanner = UuScanner()
        self.entries: list[ManifestEntry] = []
        self._part, self._output, self._on_progress = part, output, on_progress
        self._open: tuple[str, str, _HashedFile] | None = None   # id, original name, file

    def feed(self, chunk: bytes) -> None:
        self._handle(self.scanner.feed(chunk))

    def close(self) -> None:
        self._handle(self.scanner.close())

    def _handle(self, events) -> None:
        for event in events:
            if isinstance(event, UuBegin):
                uu_id = _uu_part_id(self._part.id, len(self.entries) + 1)
                name, reasons = safe_name(event.name, uu_id, UUENCODED_TYPE)
                self._open = uu_id, event.name, _HashedFile(self._output, name, reasons)
            elif isinstance(event, UuData):
                self._open[2].write(event.data)
                if self._on_progress:
                    self._on_progress(len(event.data))
            elif isinstance(event, UuEnd):
                uu_id, original, out = self._open
                out.close()
                self.entries.append(out.entry(uu_id, original, UUENCODED_TYPE))
                self._open = None


def _scan(part: Part, scanner: UuScanner) -> Iterator[list]:
    for chunk in part.iter_decoded():
        yield scanner.feed(chunk)
    yield scanner.close()


def _uu_part_id(part_id: str, number: int) -> str:
    return f"{part_id}.uu{number}" if part_id else f"uu{number}"


def _inside_attached_message(part: Part) -> bool:
    ancestor = part.parent
    while ancestor is not None:
        if ancestor.kind is PartKind.MESSAGE:
            return True
        ancestor = ancestor.parent
    return False


def _placed_in_body(defect: Defect, part: Part) -> Defect:
    """A defect found in a decoded body, placed at the body's start in the message (the
    offset into the decoded body goes into the detail)."""
    detail = f"{defect.detail} (decoded byte {defect.offset})" if defect.offset else defect.detail
    return replace(defect, offset=part.body_offset, part=part.id, detail=detail)


def _make_directory(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise CantCreateError(f"{directory}: {exc.strerror or exc}") from exc
