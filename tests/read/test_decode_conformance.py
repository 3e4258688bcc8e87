"""`mimekit decode` against the public corpora in ../shared/corpus (skipped when absent).

1. Every corpus message extracts safely in bounded time: DIR stays flat, holds exactly
   the files of the manifest, and each file has the manifest's size and sha256; the
   best text decodes.
2. mime4j's decoded bodies (the files X_decoded.xml names) are what extraction writes
   for that part id (the manifest sha256), with the tree tests' list of differences but
   for messages sent in base64, which extraction decodes and parses as mime4j does.
3. stalwart mail-parser's expectations, for LF input (X.json) and CRLF input
   (X.crlf.json): the decoded Subject, and wherever the structures agree (compared,
   with offsets, in test_parser_corpus.py) the attachment names and the decoded bodies
   (text through mimekit.codecs.charsets); and the bodies of the base64 message stalwart parses
   are what extraction writes for the parts of that message.
4. flanker's original attachments are what extraction writes for the parts named so.

Where mimekit differs on purpose, the case is listed with its reason and runs as a
strict xfail: it must keep differing, or the list must be updated.
"""

import hashlib
import io
import json
from pathlib import Path

import pytest

from corpus import (BASE64_MESSAGE, CORPUS, MIME4J_DECODED_DIFFERENCES, STALWART, corpus_files, mime4j_decoded_files,
                    mime4j_part_id, our_shape, stalwart_shape, with_known_differences)
from helpers import time_limit
from mimekit.codecs.charsets import decode_text
from mimekit.errors import DataError
from mimekit.read.extract import best_text_part, extract_all, iter_text
from mimekit.read.tree import parse_message

pytestmark = pytest.mark.corpus

SECONDS_PER_MESSAGE = 30
FLANKER = CORPUS / "mailgun-flanker" / "tests" / "fixtures" / "messages"
MESSAGES = [name for name in corpus_files() if Path(name).suffix in (".eml", ".msg")]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extract(data: bytes, directory: Path) -> dict[str, dict]:
    """Extract a message; the manifest by part id."""
    with parse_message(io.BytesIO(data)) as message:
        return {entry.id: entry.as_dict() for entry in extract_all(message, str(directory)).entries}


# -- 1. every message extracts safely -----------------------------------------------------

@pytest.mark.parametrize("name", MESSAGES)
def test_every_corpus_message_extracts_safely(corpus_dir, name, tmp_path):
    out = tmp_path / "out"
    with time_limit(SECONDS_PER_MESSAGE):
        with open(corpus_dir / name, "rb") as stream, parse_message(stream) as message:
            entries = extract_all(message, str(out)).entries
            try:
                assert isinstance("".join(iter_text(best_text_part(message), [])), str)
            except DataError:   # no text body: nothing to decode
                pass
    files = {path.name: path for path in out.iterdir()}
    assert all(path.is_file() and not path.is_symlink() for path in files.values())
    assert sorted(files) == sorted(entry.written_name for entry in entries)
    assert len({entry.id for entry in entries}) == len(entries)
    for entry in entries:
        data = files[entry.written_name].read_bytes()
        assert (len(data), sha256(data)) == (entry.size, entry.sha256)


# -- 2. mime4j decoded bodies, as extracted ----------------------------------------------

# The tree keeps an encoded message as one leaf (BASE64_MESSAGE), extraction also decodes
# and parses it: its parts are extracted under the ids mime4j gives them.
MIME4J_EXTRACTED_DIFFERENCES = {name: reason for name, reason in MIME4J_DECODED_DIFFERENCES.items()
                                if reason != BASE64_MESSAGE}


@pytest.mark.parametrize("name", with_known_differences(mime4j_decoded_files(), MIME4J_EXTRACTED_DIFFERENCES,
                                                        keys=lambda name: [Path(name).name]))
def test_mime4j_decoded_body_is_what_extraction_writes(corpus_dir, name, tmp_path):
    decoded = corpus_dir / name
    source = decoded.with_name(decoded.name.split("_decoded_")[0] + ".msg")
    manifest = extract(source.read_bytes(), tmp_path)
    entry = manifest.get(mime4j_part_id(decoded.name))
    assert entry is not None and entry["sha256"] == sha256(decoded.read_bytes())


# -- 3. stalwart mail-parser ---------------------------------------------------------------

_RAW_8BIT = ("raw 8-bit Latin-1 in a header: mimekit reads it as windows-1252 (or chardet's guess), stalwart "
             "replaces it with U+FFFD")
_EMPTY_DISPOSITION = ("'Content-Disposition: ;' followed by filename=...: mimekit still reads the filename, "
                      "stalwart drops the parameters")
_BASE64_JUNK = ("base64 junk (text after '=' padding, placeholder text): mimekit decodes every base64 letter "
                "(never drop data), stalwart keeps the text undecoded or stops at the padding")
_UNDECLARED_8BIT = ("8-bit text with no usable charset: mimekit detects windows-1252 (Grüße), stalwart replaces "
                    "each byte with U+FFFD")
_MIDLINE_BOUNDARY = "'invalid--1--' is body text (a delimiter starts a line); stalwart ends the body at '--1--'"
_ODD_BYTE = ("UTF-16 body with an odd trailing byte: mimekit shows it as U+FFFD (never drop data silently), "
             "stalwart drops it")
_BARE_CR_TAIL = "a bare CR before the closing delimiter's LF stays in the body in mimekit; stalwart drops it"

STALWART_SUBJECT_DIFFERENCES = {
    **{f"legacy/{n}.eml": _RAW_8BIT for n in ("010", "020", "022", "027", "052")},
}
STALWART_NAME_DIFFERENCES = {
    **{f"legacy/{n}.eml": _RAW_8BIT for n in ("016", "023", "026")},
    "malformed/017.eml": _EMPTY_DISPOSITION,
}
STALWART_BODY_DIFFERENCES = {
    "legacy/026.eml": _RAW_8BIT + " (here a uuencode begin line)",
    "legacy/033.eml": _UNDECLARED_8BIT,
    "legacy/052.eml": _UNDECLARED_8BIT,
    "legacy/049.eml lf": _BARE_CR_TAIL,
    "rfc/000.eml": _BASE64_JUNK,
    "thirdparty/002.eml": _BASE64_JUNK,
    "thirdparty/005.eml": _MIDLINE_BOUNDARY + "; for CRLF input also: " + _ODD_BYTE,
}

STALWART_CASES = [f"{name} {variant}" for name in
                  (str(Path(p).relative_to(STALWART.relative_to(CORPUS))) for p in corpus_files("*.eml", STALWART))
                  for variant in ("lf", "crlf")]


def stalwart_keys(case: str) -> list[str]:
    """"legacy/049.eml lf" (this variant), then "legacy/049.eml" (both variants)."""
    return [case, case.split()[0]]


def stalwart_case(case: str) -> tuple[bytes, dict]:
    """The message as stalwart's test feeds it (all LF, or all CRLF) and its expectation."""
    name, variant = case.split()
    data = (STALWART / name).read_bytes().replace(b"\r\n", b"\n")
    if variant == "lf":
        return data, json.loads((STALWART / name).with_suffix(".json").read_text())
    return data.replace(b"\n", b"\r\n"), json.loads((STALWART / name).with_suffix(".crlf.json").read_text())


def stalwart_header(part: dict, name: str):
    return next((field["value"] for field in part["headers"] if field["name"] == name), None)


def stalwart_names(expected: dict) -> list[str | None]:
    """Per part in document order: Content-Disposition filename, else Content-Type name."""
    names = []
    for part in expected["parts"]:
        found = None
        for header, key in (("content_disposition", "filename"), ("content_type", "name")):
            value = stalwart_header(part, header)
            attributes = (value or {}).get("ContentType", {}).get("attributes") or []
            found = found or next((a["value"] for a in attributes if a["name"] == key), None)
        names.append(found)
        if isinstance(part["body"], dict) and "Message" in part["body"]:
            names += stalwart_names(part["body"]["Message"])
    return names


def stalwart_leaves(expected: dict) -> list[tuple[str, object]]:
    """(body kind, content) of every leaf, in document order."""
    parts, leaves = expected["parts"], []

    def visit(index: int) -> None:
        body = parts[index]["body"]
        kind = next(iter(body)) if isinstance(body, dict) else body
        if kind == "Multipart":
            for child in body["Multipart"]:
                visit(child)
        elif kind == "Message":
            leaves.extend(stalwart_leaves(body["Message"]))
        else:
            leaves.append((kind, body[kind] if isinstance(body, dict) else None))
    visit(0)
    return leaves


def kinds(shape: dict) -> dict:
    """A shape (corpus.our_shape, corpus.stalwart_shape) without its offsets."""
    return {"kind": shape["kind"], "children": [kinds(child) for child in shape["children"]]}


def structures_agree(message, expected) -> None:
    if kinds(our_shape(message.root)) != kinds(stalwart_shape(expected)):
        pytest.skip("the structures differ (see test_parser_corpus.py::test_stalwart_structure_and_offsets)")


@pytest.mark.parametrize("case", with_known_differences(STALWART_CASES, STALWART_SUBJECT_DIFFERENCES, keys=stalwart_keys))
def test_stalwart_decoded_subject(corpus_dir, case):
    data, expected = stalwart_case(case)
    subject = stalwart_header(expected["parts"][0], "subject")
    with parse_message(io.BytesIO(data)) as message:
        assert message.root.header("subject") == (subject["Text"] if subject else None)


@pytest.mark.parametrize("case", with_known_differences(STALWART_CASES, STALWART_NAME_DIFFERENCES, keys=stalwart_keys))
def test_stalwart_attachment_names(corpus_dir, case):
    data, expected = stalwart_case(case)
    with parse_message(io.BytesIO(data)) as message:
        structures_agree(message, expected)
        assert [part.filename for part in message.walk()] == stalwart_names(expected)


@pytest.mark.parametrize("case", with_known_differences(STALWART_CASES, STALWART_BODY_DIFFERENCES, keys=stalwart_keys))
def test_stalwart_decoded_bodies(corpus_dir, case):
    data, expected = stalwart_case(case)
    with parse_message(io.BytesIO(data)) as message:
        structures_agree(message, expected)
        ours = []
        for part, (kind, _) in zip(message.leaves(), stalwart_leaves(expected)):
            body = part.read_decoded()
            ours.append((kind, list(body) if kind in ("Binary", "InlineBinary")
                         else decode_text(body, part.params.get("charset"))[0]))
        assert ours == stalwart_leaves(expected)


@pytest.mark.parametrize("case", ["rfc/008.eml lf", "rfc/008.eml crlf"])
def test_stalwart_base64_attached_message_is_extracted_part_by_part(corpus_dir, case, tmp_path):
    """stalwart parses the base64 message/rfc822 in part 2 (the tree keeps it as one leaf,
    so the structure tests skip it); extraction writes it whole and then its parts."""
    data, expected = stalwart_case(case)
    manifest = extract(data, tmp_path)
    assert [(entry["id"], entry["content_type"]) for entry in manifest.values()] == [
        ("1", "text/plain"), ("2", "message/rfc822"), ("2.1.1", "text/plain"), ("2.1.2", "text/html")]
    assert manifest["2"]["original_name"] == "attached_email.eml"
    bodies = {entry["id"]: (tmp_path / entry["written_name"]).read_bytes() for entry in manifest.values()}
    assert bodies["2"].startswith(b'To: "email@example.com" <email@example.com>\r\n')
    assert [("Text", bodies["1"].decode()), ("Text", bodies["2.1.1"].decode()), ("Html", bodies["2.1.2"].decode())] \
        == stalwart_leaves(expected)


# -- 4. flanker's original attachments ------------------------------------------------------

def test_flanker_originals_are_extracted_byte_for_byte(corpus_dir, tmp_path):
    originals = {path.name: sha256(path.read_bytes()) for path in (FLANKER / "attachments").iterdir()}
    compared = []
    for index, path in enumerate(sorted(FLANKER.rglob("*.eml"))):
        for entry in extract(path.read_bytes(), tmp_path / str(index)).values():
            if entry["original_name"] in originals:
                compared.append((path.name, entry["original_name"], entry["sha256"] == originals[entry["original_name"]]))
    # Only mailgun.png is attached to a fixture message; flanker composes the others in its tests.
    assert compared == [("mailgun-pic.eml", "mailgun.png", True)]
