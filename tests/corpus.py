"""The public corpora in ../shared/corpus, read in place: where they are, their file
lists, readers of their expected outputs, and where mimekit differs from them on purpose.

Nothing here reads the corpus at import. Without it every file list is empty, so the
tests parametrized over one collect nothing, and the others skip through the conftest
`corpus_dir` fixture.
"""

import json
import re
from pathlib import Path

import pytest

from mimekit.read.events import PartKind

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
MIME4J = CORPUS / "apache-james-mime4j"
STALWART = CORPUS / "stalwartlabs-mail-parser" / "resources" / "eml"


def corpus_files(pattern: str = "*", root: Path = CORPUS) -> list[str]:
    """Paths relative to the corpus, for test ids; empty when the corpus is absent."""
    return sorted(str(p.relative_to(CORPUS)) for p in root.rglob(pattern) if p.is_file()) if root.is_dir() else []


def with_known_differences(names: list[str], differences: dict[str, str], keys) -> list:
    """Each name, marked as a strict xfail with its reason when one of keys(name) is listed."""
    params = []
    for name in names:
        reason = next((differences[key] for key in keys(name) if key in differences), None)
        params.append(name if reason is None else
                      pytest.param(name, marks=pytest.mark.xfail(reason=reason, strict=True)))
    return params


# -- mime4j: where mimekit differs, and its decoded bodies ---------------------------------

BASE64_MESSAGE = ("message/rfc822 sent in base64: mime4j decodes it and parses the result; mimekit keeps an "
                  "encoded message as one leaf (its parts would have no offsets in the input) - decode, then parse")
BAD_HEADER_LINE = ("a line that is neither a header field nor a continuation starts the body (as in Python's "
                   "email); mime4j by default drops it and reads on as header")
STARTS_BODY_DROPS = ("mime4j's malformedHeaderStartsBody mode starts the body there too but drops lines "
                     "after it; mimekit keeps every byte of the body")
_QP_CRLF = "quoted-printable hard line breaks: mime4j writes CRLF, mimekit keeps the line ending as sent"
_BASE64_TAIL = ("base64 ending in an incomplete group: mimekit decodes the whole bytes it holds "
                "(never drop data); mime4j drops them")

# Decoded bodies (by file name) that differ from what mimekit decodes: test_parser_corpus.py
# compares them with the parser's, test_decode_conformance.py with what extraction writes.
MIME4J_DECODED_DIFFERENCES = {
    "multi-2gifs-base64_decoded_1_1_1.txt": BASE64_MESSAGE,
    "multi-2gifs-base64_decoded_1_1_2.bin": BASE64_MESSAGE,
    "multi-2gifs-base64_decoded_1_1_3.bin": BASE64_MESSAGE,
    "bad-newlines-multiple-parts-base64_decoded_1_1_1.txt": BASE64_MESSAGE,
    "base64encoded-rfc822message_decoded_1_1.txt": BASE64_MESSAGE,
    "base64encoded-rfc822message-nested_decoded_1_1_1.txt": BASE64_MESSAGE,
    "hdr-fakeout_decoded_1.txt": BAD_HEADER_LINE,
    "basic-plain-with-bad-header-separator_decoded_1.txt": BAD_HEADER_LINE,
    "malformedHeader-nocrlfcrlf_decoded_1.txt": BAD_HEADER_LINE,
    "malformedHeader-noheader_decoded_1.txt": BAD_HEADER_LINE,
    "obsolete_decoded_1.txt": BAD_HEADER_LINE,
    "malformedHeaderStartsBody-nocrlfcrlf_decoded_1.txt": STARTS_BODY_DROPS,
    "malformedHeaderStartsBody-noheader_decoded_1.txt": STARTS_BODY_DROPS,
    "empty-preamble_decoded_1_1.txt": _QP_CRLF,
    "jt-0498_decoded_1_2_1.txt": _QP_CRLF,
    "mp-msg-rfc822_decoded_1_2_1.txt": _QP_CRLF,
    "german-qp_decoded_1.txt": _QP_CRLF,
    "frag_decoded_1_2_1_2_1_2_1_2.bin": _BASE64_TAIL,
    "multi-frag_decoded_1_3_2.bin": _BASE64_TAIL,
}

_DECODED_REFERENCE = re.compile(r'<(?:text|binary)-body name="([^"]+)"/>')


def mime4j_decoded_files() -> list[str]:
    names = []
    for listing in corpus_files("*_decoded.xml", MIME4J):
        directory = Path(listing).parent
        text = (CORPUS / listing).read_text("latin-1")
        names += [str(directory / name) for name in _DECODED_REFERENCE.findall(text)]
    return names


def mime4j_part_id(decoded_name: str) -> str:
    """mime4j numbers the message 1 and its parts 1_n: "X_decoded_1_2_1.txt" is part "2.1"."""
    numbers = re.fullmatch(r".*_decoded_([0-9_]+)\.(?:txt|bin)", decoded_name).group(1).split("_")
    return ".".join(numbers[1:])


# -- stalwart mail-parser: expected structures and header vectors ------------------------

def stalwart_shape(document: dict, index: int = 0) -> dict:
    """stalwart's flat part list as a tree of kinds and (header, body, end) offsets."""
    part = document["parts"][index]
    body = part["body"]
    kind = next(iter(body)) if isinstance(body, dict) else body
    if kind == "Multipart":
        children = [stalwart_shape(document, child) for child in body["Multipart"]]
    elif kind == "Message":
        children = [stalwart_shape(body["Message"])]
    else:
        children = []
    kinds = {"Multipart": PartKind.MULTIPART, "Message": PartKind.MESSAGE}
    return {"kind": kinds.get(kind, PartKind.LEAF), "children": children,
            "offsets": (part["offset_header"], part["offset_body"], part["offset_end"])}


def our_shape(part) -> dict:
    """A mimekit part tree in the form of stalwart_shape."""
    return {"kind": part.kind, "children": [our_shape(child) for child in part.children],
            "offsets": (part.header_offset, part.body_offset, part.end_offset)}


def stalwart_vectors(corpus_dir, name: str) -> list[dict]:
    """stalwart mail-parser's header test vectors: [{"header": ..., "expected": ...}]."""
    path = corpus_dir / "stalwartlabs-mail-parser" / "resources" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))
