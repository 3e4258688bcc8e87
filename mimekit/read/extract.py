"""What `mimekit decode` does with a parsed message: extract parts, find the text, read one part.

Extraction (docs/conventions.md, Safety) writes every leaf part, parts of attached messages
included, the text of a multipart in which no boundary was found, and every uuencoded
file found in a text/plain body, into one flat directory:
names are sanitised (mimekit.read.safe_names), each file is written under a temporary name and
gets its name only once complete (mimekit.streams.files.OutputDirectory: a clash gets a suffix,
nothing is overwritten, an interrupted run leaves no half file), and no part is dropped.
Bodies stream from the message to disk (hashed on the way), so memory does not grow with
their size. The manifest says per file which part it came from, the name the sender gave,
the name written and why they differ. uuencoded files count against Limits.max_parts
with the parts of the message read: past it, a begin line stays text (LIMIT_PARTS).

An attached message sent in base64 or quoted-printable is one leaf of the tree
(mimekit.read.tree: its parts would have no offsets in the input). It is written as one
.eml like any leaf, and on the way also decoded into a temporary file and parsed, so
its parts are extracted too (as mime4j and stalwart do), with the ids they would have
had if it had been sent unencoded: the message decoded from part P is P.1 ("1" when the
whole message is the encoded one), its parts P.1.n. An explicit work list of open
messages (no recursion) keeps the files in document order; the depth of a decoded
message counts from the message read, so encoded messages nested in encoded messages
stop at Limits.max_depth (LIMIT_DEPTH). iter_part_bytes (--part) finds parts by the same ids.
"""

import io
import itertools
import os
import re
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, BinaryIO, Callable, ContextManager, Iterator

from mimekit.codecs.charsets import TextDecoder
from mimekit.defects import Defect, DefectKind, beyond_store_conventions
from mimekit.errors import CantCreateError, DataError
from mimekit.read.events import PartKind
from mimekit.streams.files import OutputDirectory, temporary_file
from mimekit.limits import Limits
from mimekit.read.parser import child_id
from mimekit.read.safe_names import RenameReason, replace_surrogates, safe_name, sanitize_filename
from mimekit.codecs.transfer import IDENTITY_ENCODINGS
from mimekit.read.tree import Message, Part, parse_message
from mimekit.stores.sources import MessageRef, lf_is_normal, opened

if TYPE_CHECKING:
    from mimekit.codecs.uuencode import UuScanner

# hashlib, html_text and uuencode are imported where they are used: `scan` imports this
# module (for best_text_part) and needs none of them, and they are slow to import.

UUENCODED_TYPE = "application/octet-stream"   # uuencode carries a name, never a type
_PARTS_NAMED = 20   # in the error for a part id that is not there
_UU_PART_ID = re.compile(r"(?:(?P<part>.+)\.)?uu(?P<number>[1-9][0-9]{0,19})")   # 20 digits at most: int() refuses 4300
_ENCAPSULATING_TYPES = ("message/rfc822", "message/global")
# Extraction reads the message, and each body again, in chunks of this size: a 135 MB
# message is 524 reads and decoder calls instead of 2,090 with 64 KiB (1 MiB was slower:
# cache). The bodies' second read (pread) then costs 0.06 s of 1.15 s here.
EXTRACT_CHUNK_SIZE = 256 * 1024


@dataclass(frozen=True)
class ManifestEntry:
    """One file written: which part it holds and under which name, and why that name."""

    id: str                      # part id (P.1... inside an encoded message P); "<part id>.uuN" for
                                 # the N-th uuencoded file of a text part
    original_name: str | None    # as the sender gave it (None: no name)
    written_name: str            # the file's name inside the directory
    content_type: str
    size: int                    # bytes written (the decoded body)
    sha256: str
    reasons: tuple[RenameReason, ...]   # why written_name differs from original_name
    reading: str | None = None   # for a part only another reading finds (mimekit.read.readings): which

    def as_dict(self) -> dict:
        """JSON-ready: an original name with undecodable bytes shows them as U+FFFD. Only the
        parts another reading found have a "reading", so the best reading's manifest is the
        same with and without alternative readings."""
        original = None if self.original_name is None else replace_surrogates(self.original_name)
        fields = {"id": self.id, "original_name": original, "written_name": self.written_name,
                  "content_type": self.content_type, "size": self.size, "sha256": self.sha256,
                  "reasons": [reason.value for reason in self.reasons]}
        return fields if self.reading is None else {**fields, "reading": self.reading}


@dataclass
class Extraction:
    entries: list[ManifestEntry]
    defects: list[Defect]        # the message's, those found in extracted bodies, then those of each
                                 # decoded message (placed at its encoded body: _Scope.placed)
    directory: str = ""          # where the files were written


def extract(message: "MessageRef | BinaryIO", directory: str, limits: Limits = Limits(),
            own_folder: bool = False, on_progress: Callable[[int], None] | None = None,
            all_readings: bool = False) -> Extraction:
    """Parse `message` (a MessageRef, which it opens itself, or a binary stream) and write
    its parts into `directory`, or, with `own_folder`, into a folder of `directory` named
    after the message's reference (`message_folder`): the top-level function a worker
    process runs for each message of a mailbox. LF line endings are no defect (lf_is_normal)."""
    if own_folder:
        directory = _message_directory(directory, message_folder(message))
    with opened(message) as stream, parse_message(stream, limits, EXTRACT_CHUNK_SIZE) as parsed:
        extraction = extract_all(parsed, directory, on_progress, limits, all_readings)
    if lf_is_normal(message):
        extraction.defects = beyond_store_conventions(extraction.defects)
    extraction.directory = directory
    return extraction


def message_folder(message: "MessageRef") -> str:
    """A folder name made from the message's reference, the same in every run and on every
    worker, and different for different references: "%", "@", "/" and "\\" are escaped
    (%25, %40, %2F, %5C) and the ":" before a key becomes "@" (box.mbox:1234 ->
    box.mbox@1234, dump/a.eml -> dump%2Fa.eml). A name the sanitiser still had to change
    (cut to length, a leading dot...) starts with a digest of the whole reference."""
    reference = str(message)
    escaped = (reference.replace("%", "%25").replace("@", "%40").replace("/", "%2F").replace("\\", "%5C")
               .replace(":", "@"))
    name, reasons = sanitize_filename(escaped)
    if reasons or not name:
        import hashlib
        digest = hashlib.sha256(reference.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        name = sanitize_filename(f"{digest}-{name}")[0]
    return name


def extract_all(message: Message, directory: str, on_progress: Callable[[int], None] | None = None,
                limits: Limits = Limits(), all_readings: bool = False) -> Extraction:
    """Write every extractable part (and uuencoded file) of `message` into `directory`,
    and those of the messages decoded from its encoded message parts. With
    `all_readings`, also what other readings of each of those messages find
    (mimekit.read.readings) and no part already written holds: their entries say which
    reading found them.

    The directory is created if missing (CantCreateError if it cannot be). on_progress,
    if given, is called with the number of bytes written after every chunk. `limits`
    should be those `message` was parsed with: decoded messages are parsed with them too.
    """
    _make_directory(directory)
    entries: list[ManifestEntry] = []
    uu_budget = _UuBudget(limits.max_parts - sum(1 for _ in message.walk()))
    outer = _Scope(message)
    defects = [outer.defects]   # one list per message, in document order; filled when it is done
    work = [(outer, extractable_parts(message))]
    try:
        with OutputDirectory(directory) as output:
            while work:
                scope, parts = work[-1]
                part = next(parts, None)
                if part is None:
                    if all_readings:
                        _write_alternatives(scope, output, entries, on_progress, limits)
                    work.pop()
                    scope.finish()
                    continue
                part_id = scope.id_of(part.id)
                uu_files = (_UuFiles(part_id, output, on_progress, uu_budget)
                            if part.content_type == "text/plain" else None)
                with scope.spool_for(part, limits) as spool:
                    name, reasons = safe_name(part.filename, part_id, part.content_type)
                    out = _HashedFile(output, name, reasons)   # discarded by `output` if this fails
                    for chunk in part.iter_decoded(EXTRACT_CHUNK_SIZE):
                        out.write(chunk)
                        if on_progress:
                            on_progress(len(chunk))
                        if uu_files:
                            uu_files.feed(chunk)
                        if spool is not None:
                            spool.write(chunk)
                    entries.append(out.commit(part_id, part.filename, part.content_type))
                    if uu_files:
                        uu_files.close()
                        entries.extend(uu_files.entries)
                        scope.defects.extend(_placed_in_body(defect, part) for defect in uu_files.scanner.defects)
                    if spool is not None:
                        inner = scope.decoded(part, spool, limits)
                        defects.append(inner.defects)
                        work.append((inner, extractable_parts(inner.message)))
    finally:
        for scope, _ in work:   # only after an error: a message is closed when it is done
            scope.close()
    return Extraction(entries, [defect for found in defects for defect in found])


def _write_alternatives(scope: "_Scope", output: OutputDirectory, entries: list[ManifestEntry],
                        on_progress: Callable[[int], None] | None, limits: Limits) -> None:
    """Write the parts other readings of the scope's message find, except those whose bytes
    are already written (by sha256) and empty ones: a clean message gets none."""
    from mimekit.read.readings import alternative_readings
    written = {entry.sha256 for entry in entries}
    for alternative in alternative_readings(scope.message, limits):
        chunks = alternative.iter_decoded()
        first = next(chunks, b"")   # a framing names its file before its first byte
        part_id = scope.id_of(alternative.id)
        out = _HashedFile(output, *safe_name(alternative.filename, part_id, alternative.content_type))
        for chunk in itertools.chain((first,), chunks):
            out.write(chunk)
            if on_progress:
                on_progress(len(chunk))
        if out.size == 0 or out.sha256 in written:
            out.discard()
            continue
        written.add(out.sha256)
        entry = out.commit(part_id, alternative.filename, alternative.content_type)
        entries.append(replace(entry, reading=alternative.reading))


def extractable_parts(message: Message) -> Iterator[Part]:
    """Every part that holds content of its own: the leaves, and multiparts in which no
    boundary was found (their text would otherwise be lost with the preamble)."""
    return (part for part in message.walk()
            if part.kind is PartKind.LEAF or (part.kind is PartKind.MULTIPART and not part.children))


def best_text_part(message: Message, opened: ExitStack | None = None, limits: Limits = Limits()) -> Part:
    """The part a reader means by "the text": the first text/plain body that is not an
    attachment, else the first such text/html one. Parts of attached messages count only
    when the message itself has no text. With `opened`, messages attached in an encoded
    form (base64, quoted-printable) are decoded and searched last, level by level; they
    stay open, for their text to be read, until `opened` closes them; a part found there
    has the id and offsets it has inside its decoded message. DataError when there is no
    text anywhere."""
    scopes = [_Scope(message)]
    while scopes:
        scope = scopes.pop(0)
        own, attached, encoded = [], [], []
        for part in scope.message.leaves():
            if _is_encoded_message(part):
                encoded.append(part)
            elif part.content_type in ("text/plain", "text/html") and part.disposition != "attachment":
                (attached if inside_attached_message(part) else own).append(part)
        for candidates in (own, attached):
            for wanted in ("text/plain", "text/html"):
                for part in candidates:
                    if part.content_type == wanted:
                        return part
        for holder in encoded if opened is not None else ():
            decoded = _decoded_scope(scope, holder, limits, opened)
            if decoded is not None:
                scopes.append(decoded)
    raise DataError("the message has no text/plain or text/html body")


def iter_text(part: Part, defects: list[Defect]) -> Iterator[str]:
    """The part's body as text with LF line ends, decoded from its charset (HTML made
    plain text), streamed. What the charset decoding found is appended to `defects`
    once the body is read. Text that does not say its charset is first tried in those the
    message declares elsewhere (mimekit.read.charset_hints).
    """
    from mimekit.read.charset_hints import charset_hints
    # not part.charset: undeclared is detected
    decoder = TextDecoder(part.params.get("charset"), hints=charset_hints(part))
    newlines = io.IncrementalNewlineDecoder(None, translate=True)
    from mimekit.codecs.html_text import HtmlTextConverter
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
    with ExitStack() as opened:
        return "".join(iter_text(best_text_part(message, opened), []))


def iter_part_bytes(message: Message, part_id: str, limits: Limits = Limits()) -> Iterator[bytes]:
    """The decoded bytes of part `part_id` (or of uuencoded file "<id>.uuN", or of a part
    another reading finds, "<id>~N..."), streamed.

    Parts of encoded messages have the ids extract_all() gives them: the encoded
    messages on the way are decoded and parsed with `limits` (those `message` was
    parsed with). DataError names the parts there are when there is no such part.
    """
    if "~" in part_id:
        yield from _alternative_bytes(message, part_id, limits)
        return
    uu = _UU_PART_ID.fullmatch(part_id)
    wanted_id = uu["part"] or "" if uu else part_id
    with ExitStack() as opened:
        part = _find_part(message, wanted_id, limits, opened)
        if part is None:
            ids = [p.id for p in message.walk() if p.id]
            known = ", ".join(ids[:_PARTS_NAMED]) + (", ..." if len(ids) > _PARTS_NAMED else "")
            known = known or "none besides the message itself"
            raise DataError(f"no part {part_id!r} in the message (parts: {known})")
        if not uu:
            yield from part.iter_decoded()
            return
        from mimekit.codecs.uuencode import UuBegin, UuData, UuScanner
        wanted, found = int(uu["number"]), 0
        scanner = UuScanner()
        for events in _scan(part, scanner):
            for event in events:
                if isinstance(event, UuBegin):
                    found += 1
                elif isinstance(event, UuData) and found == wanted:
                    yield event.data
        if found < wanted:
            raise DataError(f"part {wanted_id or '(message)'} holds {found} uuencoded file(s), not {wanted}")


def _alternative_bytes(message: Message, part_id: str, limits: Limits) -> Iterator[bytes]:
    """The decoded bytes of the part another reading finds under `part_id` (show --all-readings lists them)."""
    from mimekit.read.readings import alternative_readings
    for alternative in alternative_readings(message, limits):
        if alternative.id == part_id:
            yield from alternative.iter_decoded()
            return
    raise DataError(f"no part {part_id!r} in any reading of the message")


def part_bytes(message: Message, part_id: str, limits: Limits = Limits()) -> bytes:
    """A part's decoded bytes in memory: a convenience over iter_part_bytes()."""
    return b"".join(iter_part_bytes(message, part_id, limits))


class _HashedFile:
    """A new file in the directory, named `name` (or a suffixed name) once complete,
    counting and hashing what is written. Never committed, `output` discards it."""

    def __init__(self, output: OutputDirectory, name: str, reasons: list[RenameReason]):
        self._file = output.new_file(name)
        import hashlib
        self._name, self._reasons = name, tuple(reasons)
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.stream.write(data)
        self._sha256.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def commit(self, part_id: str, original_name: str | None, content_type: str) -> ManifestEntry:
        """Give the complete file its name; the manifest entry says which."""
        written_name = self._file.commit()
        reasons = self._reasons + ((RenameReason.CLASH,) if written_name != self._name else ())
        return ManifestEntry(part_id, original_name, written_name, content_type, self.size, self.sha256, reasons)

    def discard(self) -> None:
        self._file.discard()


@dataclass
class _UuBudget:
    """How many more uuencoded files one extraction may write (Limits.max_parts)."""

    left: int


class _UuFiles:
    """Writes the uuencoded files found in one text part as its decoded body streams by."""

    def __init__(self, part_id: str, output: OutputDirectory, on_progress: Callable[[int], None] | None,
                 budget: _UuBudget):
        from mimekit.codecs.uuencode import UuScanner
        self.scanner = UuScanner(max_files=max(budget.left, 0))
        self.entries: list[ManifestEntry] = []
        self._part_id, self._output, self._on_progress, self._budget = part_id, output, on_progress, budget
        self._open: tuple[str, str, _HashedFile] | None = None   # id, original name, file

    def feed(self, chunk: bytes) -> None:
        self._handle(self.scanner.feed(chunk))

    def close(self) -> None:
        self._handle(self.scanner.close())
        self._budget.left -= len(self.entries)

    def _handle(self, events) -> None:
        from mimekit.codecs.uuencode import UuBegin, UuData, UuEnd
        for event in events:
            if isinstance(event, UuBegin):
                uu_id = _uu_part_id(self._part_id, len(self.entries) + 1)
                name, reasons = safe_name(event.name, uu_id, UUENCODED_TYPE)
                self._open = uu_id, event.name, _HashedFile(self._output, name, reasons)
            elif isinstance(event, UuData):
                self._open[2].write(event.data)
                if self._on_progress:
                    self._on_progress(len(event.data))
            elif isinstance(event, UuEnd):
                uu_id, original, out = self._open
                self.entries.append(out.commit(uu_id, original, UUENCODED_TYPE))
                self._open = None


def _scan(part: Part, scanner: "UuScanner") -> Iterator[list]:
    for chunk in part.iter_decoded():
        yield scanner.feed(chunk)
    yield scanner.close()


class _Scope:
    """A message whose parts are extracted or looked up: the message read, or one decoded
    from an encoded message part, with the ids and depths its parts have in the message
    read (mimekit.read.tree's numbering, as if the encoded message had been sent unencoded)."""

    def __init__(self, message: Message, holder_id: str | None = None, offset: int = 0, depth: int = 0) -> None:
        self.message = message
        self.holder_id = holder_id   # the part it was decoded from (None: it is the message read)
        self.offset = offset         # where the outermost encoded body on its way starts in the message read
        self.depth = depth           # its root's depth in the message read
        self.defects: list[Defect] = []   # found while extracting; after finish(), all of them, placed

    def id_of(self, local_id: str) -> str:
        """The id in the message read of this message's part `local_id` (or of an alternative
        reading's: the message's own, "~1", are its root's, "2.1~1")."""
        if self.holder_id is None:
            return local_id
        root = child_id(self.holder_id, 1)
        return f"{root}.{local_id}" if local_id and not local_id.startswith("~") else root + local_id

    def local_id(self, part_id: str) -> str | None:
        """The id in this message of part `part_id` of the message read (None: not in it)."""
        if self.holder_id is None:
            return part_id
        root = child_id(self.holder_id, 1)
        if part_id == root:
            return ""
        return part_id[len(root) + 1:] if part_id.startswith(root + ".") else None

    def spool_for(self, part: Part, limits: Limits) -> ContextManager[BinaryIO | None]:
        """A temporary file to decode `part` into, if it is an encoded message that may be
        parsed. A message decoded from it would be at one level deeper, and from
        max_depth on it could not hold parts: it stays one body (LIMIT_DEPTH), which also
        bounds encoded messages nested in encoded messages."""
        if not _is_encoded_message(part):
            return nullcontext()
        if self.depth + part.depth + 1 >= limits.max_depth:
            self.defects.append(Defect(DefectKind.LIMIT_DEPTH, part.body_offset,
                                       f"nested deeper than {limits.max_depth}: encoded message kept as one body",
                                       part.id))
            return nullcontext()
        return temporary_file()   # a real file: parse_message reads it in place, no second copy

    def decoded(self, part: Part, spool: BinaryIO, limits: Limits) -> "_Scope":
        """The message decoded from our part `part` into `spool`, parsed. Its depth counts
        from the message read, so max_depth bounds the whole chain."""
        depth = self.depth + part.depth + 1
        spool.seek(0)
        message = parse_message(spool, replace(limits, max_depth=limits.max_depth - depth))
        offset = part.body_offset if self.holder_id is None else self.offset
        return _Scope(message, self.id_of(part.id), offset, depth)

    def placed(self, defect: Defect) -> Defect:
        """A defect of this message, placed in the message read. A decoded message has no
        offsets there: its defects sit at the start of the encoded body it came from, and
        the detail says where they are in the decoded message."""
        if self.holder_id is None:
            return defect
        holder = f"part {self.holder_id}" if self.holder_id else "the message"
        where = f"byte {defect.offset} in the decoded content of {holder}"
        return replace(defect, offset=self.offset, part=self.id_of(defect.part),
                       detail=f"{defect.detail} ({where})" if defect.detail else where)

    def finish(self) -> None:
        """Every body has been read, so the message's defects (decoding ones are recorded
        as bodies are read) are complete: collect them all, placed, and close."""
        self.defects[:] = [self.placed(defect) for defect in self.message.defects + self.defects]
        self.close()

    def close(self) -> None:
        """Release a decoded message's temporary file; the message read is the caller's."""
        if self.holder_id is not None:
            self.message.close()


def _is_encoded_message(part: Part) -> bool:
    """A message/rfc822 (or message/global) part that the parser kept as one leaf because
    its content is transfer-encoded (a leaf for a limit has an identity encoding)."""
    return (part.kind is PartKind.LEAF and part.content_type in _ENCAPSULATING_TYPES
            and part.transfer_encoding not in IDENTITY_ENCODINGS)


def _find_part(message: Message, part_id: str, limits: Limits, opened: ExitStack) -> Part | None:
    """Part `part_id` of `message`, or of a message decoded from one of its encoded message
    parts (each one on the way decoded, parsed, and closed by `opened`); None if there is none."""
    scope = _Scope(message)
    while True:   # each round one level deeper: the holder's decoded message holds part_id
        local_id = scope.local_id(part_id)
        try:
            return scope.message.part(local_id)
        except KeyError:
            holder = _encoded_holder(scope.message, local_id)
        if holder is None:
            return None
        scope = _decoded_scope(scope, holder, limits, opened)
        if scope is None:   # beyond max_depth: extraction did not parse it either
            return None


def _decoded_scope(scope: _Scope, holder: Part, limits: Limits, opened: ExitStack) -> _Scope | None:
    """The message decoded from the encoded message part `holder` of `scope`, parsed and
    closed by `opened`; None beyond max_depth."""
    with scope.spool_for(holder, limits) as spool:
        if spool is None:
            return None
        spool.writelines(holder.iter_decoded())
        decoded = scope.decoded(holder, spool, limits)
    opened.callback(decoded.close)
    return decoded


def _encoded_holder(message: Message, local_id: str) -> Part | None:
    """The encoded message part of `message` whose decoded message would hold `local_id`:
    the leaf on the way down its number, whose next number is the ".1" of the message in it."""
    numbers = local_id.split(".")
    for count, number in enumerate(numbers):
        try:
            part = message.part(".".join(numbers[:count]))
        except KeyError:
            return None
        if _is_encoded_message(part):
            return part if number == "1" else None
    return None


def _uu_part_id(part_id: str, number: int) -> str:
    return f"{part_id}.uu{number}" if part_id else f"uu{number}"


def inside_attached_message(part: Part) -> bool:
    """Whether `part` is inside an attached message (message/rfc822, message/global), whose
    parts belong to it rather than to the message that carries it."""
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


def _message_directory(directory: str, name: str) -> str:
    """The folder `name` inside `directory`, made here. One already there is used (a run
    again into the same DIR: its files get " (1)"); a link or a file in its place is
    refused, since writing through a link planted there would write outside DIR."""
    _make_directory(directory)
    path = os.path.join(directory, name)
    try:
        os.mkdir(path, 0o777)
    except FileExistsError:
        if os.path.islink(path) or not os.path.isdir(path):
            raise CantCreateError(f"{path}: already there and not a folder (a link or a file): "
                                  "nothing written for this message") from None
    except OSError as exc:
        raise CantCreateError(f"{path}: {exc.strerror or exc}") from exc
    return path


def _make_directory(directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise CantCreateError(f"{directory}: {exc.strerror or exc}") from exc
