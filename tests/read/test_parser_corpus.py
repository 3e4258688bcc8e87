"""The parser against the public corpora in ../shared/corpus (skipped when absent).

1. Every file of the three corpora, message or not, parses within a time bound,
   the tree is consistent, every body decodes, and 1000-byte feeds give the same
   events as one feed.
2. mime4j's parse-event trees (X.xml, written by its TestHandler: headers as raw
   field text, preamble, body parts, raw bodies, epilogue) are matched part by part.
3. mime4j's decoded bodies (files named in X_decoded.xml) are matched.
4. stalwart's expected structures (X.json for the message with LF line endings,
   X.crlf.json with CRLF): the part tree and every part's header, body and end offset.
5. Differential: wherever Python's `email` (policy.default) reports no defect at
   all, mimekit finds the same leaf parts, in order, with the same decoded bytes.

Where mimekit differs on purpose, the case is listed below with its reason and runs
as a strict xfail: it must keep differing, or the list must be updated.
"""

import email
import email.policy
import io
import json
import re
from pathlib import Path

import pytest

from corpus import (BASE64_MESSAGE, BAD_HEADER_LINE, CORPUS, MIME4J, MIME4J_DECODED_DIFFERENCES, STALWART,
                    STARTS_BODY_DROPS, corpus_files, mime4j_decoded_files, mime4j_part_id, our_shape,
                    stalwart_shape, with_known_differences)
from helpers import defects, summary, time_limit
from mimekit.read.events import PartKind
from mimekit.limits import Limits
from mimekit.read.parser import MessageParser
from mimekit.read.tree import parse_message

pytestmark = pytest.mark.corpus

SECONDS_PER_FILE = 20


def events_of(data: bytes, piece_size: int) -> list:
    parser = MessageParser()
    events = []
    for start in range(0, len(data), piece_size):
        events += parser.feed(data[start:start + piece_size])
    return events + parser.close()


# -- 1. no crash, no hang, consistent trees -------------------------------------------------

@pytest.mark.parametrize("name", corpus_files())
def test_every_corpus_file_parses_in_bounded_time(corpus_dir, name):
    path = corpus_dir / name
    data = path.read_bytes()
    with time_limit(SECONDS_PER_FILE):
        with open(path, "rb") as stream, parse_message(stream) as message:
            parts = list(message.walk())
            assert len(parts) <= Limits().max_parts
            for part in parts:
                assert part.header_offset <= part.body_offset <= part.end_offset <= len(data)
                for child in part.children:
                    assert part.body_offset <= child.header_offset <= child.end_offset <= part.end_offset
                if part.kind is PartKind.LEAF:
                    sum(len(chunk) for chunk in part.iter_decoded())
                    part.filename, part.charset, part.disposition, part.header("subject")
            assert message.root.end_offset == len(data)
        whole = events_of(data, max(len(data), 1))
        chunked = events_of(data, 1000)
        assert summary(chunked) == summary(whole) and defects(chunked) == defects(whole)


# -- 2. mime4j parse-event trees ------------------------------------------------------------

_EPILOGUE_LF = ("the file ends '--boundary--' + bare LF: mimekit ends the close-delimiter line there; "
                "mime4j gives that LF to the epilogue")

MIME4J_STRUCTURE_DIFFERENCES = {
    "multi-2gifs-base64": BASE64_MESSAGE,
    "bad-newlines-multiple-parts-base64": BASE64_MESSAGE,
    "base64encoded-rfc822message": BASE64_MESSAGE,
    "base64encoded-rfc822message-nested": BASE64_MESSAGE,
    "attachment-filename-encoding-Latin1": _EPILOGUE_LF,
    "attachment-filename-encoding-UTF8": _EPILOGUE_LF,
    "empty-preamble": _EPILOGUE_LF,
    "ticket-60931": _EPILOGUE_LF,
    "twopart": _EPILOGUE_LF,
    "hdr-fakeout": BAD_HEADER_LINE,
    "basic-plain-with-bad-header-separator": BAD_HEADER_LINE,
    "malformedHeader-nocrlfcrlf": BAD_HEADER_LINE,
    "malformedHeader-noheader": BAD_HEADER_LINE,
    "obsolete": BAD_HEADER_LINE + " (here a field name with an 8-bit byte)",
    "malformedHeaderStartsBody-nocrlfcrlf": STARTS_BODY_DROPS,
    "malformedHeaderStartsBody-noheader": STARTS_BODY_DROPS,
}

_TAG = re.compile(r"<(/?)(message|header|field|multipart|preamble|body-part|body|epilogue)>")


def read_mime4j_tree(text: str) -> dict:
    """mime4j TestHandler output as nested dicts. Its content is escaped (&lt; &gt; &amp;),
    so every '<' starts a tag; each opening tag is followed by CRLF, and content (one
    byte per char, Latin-1) runs up to the closing tag."""
    root: dict = {"children": []}
    stack = [root]
    for match in _TAG.finditer(text):
        closing, tag = match.groups()
        if not closing:
            node = {"tag": tag, "children": [], "start": match.end() + 2}
            stack[-1]["children"].append(node)
            stack.append(node)
            continue
        node = stack.pop()
        assert node["tag"] == tag
        raw = text[node["start"]:match.start()]
        node["bytes"] = raw.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").encode("latin-1")
    return root["children"][0]


def child(node: dict, tag: str) -> dict | None:
    return next((c for c in node["children"] if c["tag"] == tag), None)


def mime4j_differences(data: bytes, expected: dict, message) -> list[str]:
    """Where the tree differs from mime4j's, walking both side by side."""
    found = []
    work = [(expected, message.root)]
    while work:
        node, part = work.pop()
        where = part.id or "(message)"
        fields = [f["bytes"] for f in child(node, "header")["children"]]
        ours = [data[f.offset:f.value_offset + len(f.raw_value)] for f in part.headers]
        if ours != fields:
            found.append(f"{where}: header fields {ours!r} != {fields!r}")
        content = next(c for c in node["children"] if c["tag"] != "header")
        expected_kind = {"body": PartKind.LEAF, "message": PartKind.MESSAGE, "multipart": PartKind.MULTIPART}
        if part.kind is not expected_kind[content["tag"]]:
            found.append(f"{where}: {part.kind.value} != {content['tag']}")
        elif part.kind is PartKind.LEAF:
            if part.open_raw().read() != content["bytes"]:
                found.append(f"{where}: body differs")
        elif part.kind is PartKind.MESSAGE:
            work.append((content, part.children[0]))
        else:
            for tag, reader in (("preamble", part.open_preamble), ("epilogue", part.open_epilogue)):
                if reader().read() != (child(content, tag) or {"bytes": b""})["bytes"]:
                    found.append(f"{where}: {tag} differs")
            body_parts = [c for c in content["children"] if c["tag"] == "body-part"]
            if len(body_parts) != len(part.children):
                found.append(f"{where}: {len(part.children)} parts != {len(body_parts)}")
            work.extend(zip(body_parts, part.children))
    return found


MIME4J_TREES = [name for name in corpus_files("*.xml", MIME4J)
                if not name.endswith("_decoded.xml") and (CORPUS / name).with_suffix(".msg").is_file()]


@pytest.mark.parametrize("name", with_known_differences(MIME4J_TREES, MIME4J_STRUCTURE_DIFFERENCES,
                                                        keys=lambda name: [Path(name).stem]))
def test_mime4j_parse_tree(corpus_dir, name):
    xml = corpus_dir / name
    data = xml.with_suffix(".msg").read_bytes()
    expected = read_mime4j_tree(xml.read_bytes().decode("latin-1"))
    with parse_message(io.BytesIO(data)) as message:
        assert mime4j_differences(data, expected, message) == []


# -- 3. mime4j decoded bodies -----------------------------------------------------------------

@pytest.mark.parametrize("name", with_known_differences(mime4j_decoded_files(), MIME4J_DECODED_DIFFERENCES,
                                                        keys=lambda name: [Path(name).name]))
def test_mime4j_decoded_body(corpus_dir, name):
    decoded = corpus_dir / name
    message_path = decoded.with_name(decoded.name.split("_decoded_")[0] + ".msg")
    with open(message_path, "rb") as stream, parse_message(stream) as message:
        assert message.part(mime4j_part_id(decoded.name)).read_decoded() == decoded.read_bytes()


# -- 4. stalwart structures and offsets -----------------------------------------------------

_PREFIX = ("'--' + boundary + more text is no delimiter here (the boundary must be followed by '--', blanks "
           "or the line end, which tells nested boundaries 'a' and 'ab' apart); Dovecot and stalwart match a prefix")
_PYTHON_AGREES = " (Python's email finds the same parts as mimekit)"

STALWART_DIFFERENCES = {
    "malformed/001": _PREFIX,
    "malformed/004": _PREFIX,
    "malformed/007": _PREFIX,
    "malformed/008": _PREFIX,
    "malformed/000": "boundary ':foo': stalwart finds no part; mimekit splits at every delimiter line" + _PYTHON_AGREES,
    "malformed/002": ("a multipart whose boundary never appears stays a multipart whose preamble holds everything "
                      "(as in mime4j); stalwart reads it as a text leaf"),
    "malformed/009": "after an outer delimiter ends a truncated inner multipart, the outer one goes on" + _PYTHON_AGREES,
    "malformed/011": "after an outer delimiter ends a truncated inner multipart, the outer one goes on" + _PYTHON_AGREES,
    "malformed/012": "after an outer delimiter ends a truncated inner multipart, the outer one goes on" + _PYTHON_AGREES,
    "malformed/016": "after an outer delimiter ends a truncated inner multipart, the outer one goes on" + _PYTHON_AGREES,
    "malformed/014": "a delimiter line ending the input starts an empty last part" + _PYTHON_AGREES,
    "malformed/013": ("one boundary nested three deep: each delimiter goes to the innermost open multipart; "
                      "stalwart differs at the third level"),
    "malformed/019": ("a line that is not a header field starts the body (as in Python's email); stalwart reads "
                      "junk lines on as header"),
    "malformed/020": "two Content-Type fields: the first counts, as in Python's email; stalwart takes the last",
    "malformed/021": "two Content-Type fields: the first counts, as in Python's email; stalwart takes the last",
    "malformed/022": ("message/rfc822 whose content has no header is still an encapsulated message (body only, "
                      "with a defect)" + _PYTHON_AGREES + "; stalwart keeps it as a leaf"),
    "rfc/008": BASE64_MESSAGE,
    "thirdparty/005": "'invalid--1--' is text: a delimiter starts a line (RFC 2046); stalwart ends the part inside it",
    "thirdparty/015": ("attached messages cut after their header keep their place as parts" + _PYTHON_AGREES +
                       "; stalwart folds the rest into one part"),
    "legacy/049.json": "the input ends in a bare CR: mimekit keeps it in the last body, stalwart leaves it out",
}


def stalwart_keys(name: str) -> list[str]:
    """"legacy/049.json" (this variant), then "legacy/049" (both variants)."""
    relative = str(Path(name).relative_to(STALWART.relative_to(CORPUS)))
    return [relative, relative.split(".")[0]]


@pytest.mark.parametrize("name", with_known_differences(corpus_files("*.json", STALWART), STALWART_DIFFERENCES,
                                                        keys=stalwart_keys))
def test_stalwart_structure_and_offsets(corpus_dir, name):
    expected = corpus_dir / name
    data = expected.with_name(expected.name.split(".")[0] + ".eml").read_bytes()
    data = data.replace(b"\r\n", b"\n")
    if name.endswith(".crlf.json"):
        data = data.replace(b"\n", b"\r\n")
    with parse_message(io.BytesIO(data)) as message:
        assert our_shape(message.root) == stalwart_shape(json.loads(expected.read_text()))


# -- 5. differential against Python's email ---------------------------------------------------

_ENCAPSULATING = {"message/rfc822", "message/global"}

PYTHON_DIFFERENCES = {
    "apache-james-mime4j/core/src/test/resources/mimetools-testmsgs/2002_06_12_doublebound.msg":
        "two delimiter lines in a row enclose an empty part (RFC 2046; mime4j agrees); Python skips it",
    "stalwartlabs-mail-parser/resources/eml/malformed/000.eml":
        "two delimiter lines in a row enclose an empty part (RFC 2046; mime4j agrees); Python skips it",
    "apache-james-mime4j/core/src/test/resources/mimetools-testmsgs/german-qp.out":
        "blanks ending a quoted-printable line are removed (RFC 2045 6.7 (3)); Python keeps them",
    "mailgun-flanker/tests/fixtures/messages/bilingual-simple.eml":
        "blanks ending a quoted-printable line are removed (RFC 2045 6.7 (3)); Python keeps them",
    "stalwartlabs-mail-parser/resources/eml/thirdparty/002.eml":
        "base64 text after '=' padding is decoded too (never drop data); Python stops at the padding",
    "stalwartlabs-mail-parser/resources/eml/thirdparty/003.eml":
        "'Content-Transfer-Encoding: quoted-printable' with trailing blanks is decoded; Python ignores it",
    "stalwartlabs-mail-parser/resources/eml/legacy/048.eml":
        "Content-Transfer-Encoding x-uuencode: Python undoes it, mimekit.codecs.transfer keeps the body as sent "
        "(uuencoded blocks are extracted later, by the decode command)",
}


def python_leaves(message) -> list[tuple[str, bytes | None]]:
    """Python's leaves. Python reads every message/* type as an encapsulated message;
    RFC 2046 says that of message/rfc822 only (message/delivery-status, /partial,
    /external-body... are bodies), so such a part counts as one leaf, content unchecked."""
    leaves, stack = [], [message]
    while stack:
        part = stack.pop()
        content_type = part.get_content_type()
        if content_type.startswith("message/") and content_type not in _ENCAPSULATING:
            leaves.append((content_type, None))
        elif part.is_multipart():
            stack.extend(reversed(part.get_payload()))
        else:
            leaves.append((content_type, part.get_payload(decode=True)))
    return leaves


def python_is_clean(message) -> bool:
    for part in message.walk():
        if part.defects or any(getattr(value, "defects", None) for value in part.values()):
            return False
    return True


def python_clean_messages() -> list[str]:
    """Corpus messages (.eml, .msg, and mime4j's re-serialised .out) that Python's email parses without a single defect:
    the ones where it is a fair oracle. Chosen at collection, so nothing is skipped."""
    clean = []
    for name in corpus_files():
        if not name.endswith((".eml", ".msg", ".out")):
            continue
        try:
            parsed = email.message_from_bytes((CORPUS / name).read_bytes(), policy=email.policy.default)
            if python_is_clean(parsed):
                clean.append(name)
        except Exception:  # Python's header parsing can raise on hostile input: no oracle then
            continue
    return clean


PYTHON_CLEAN = python_clean_messages()


def test_python_is_an_oracle_for_enough_messages(corpus_dir):
    assert len(PYTHON_CLEAN) >= 100


@pytest.mark.parametrize("name", with_known_differences(PYTHON_CLEAN, PYTHON_DIFFERENCES, keys=lambda name: [name]))
def test_same_leaves_as_python_email_where_it_finds_no_defect(corpus_dir, name):
    data = (corpus_dir / name).read_bytes()
    theirs = email.message_from_bytes(data, policy=email.policy.default)
    with parse_message(io.BytesIO(data)) as message:
        ours = [(part.content_type, None if part.content_type.startswith("message/") else part.read_decoded())
                for part in message.leaves()]
    assert ours == python_leaves(theirs)
