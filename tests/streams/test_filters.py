"""Every streaming transformation in mimekit holds the one Filter contract.

The walk finds every class under mimekit with feed() and flush(); each must be listed in
FILTERS with a way to build it and inputs to try, so a new filter cannot skip these checks.
For each: it is a Filter, feed and flush return bytes, and the output (and what it records
on the side, a decoder's defects) does not depend on how the input is cut into feeds.
"""

import base64
import gzip
import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import mimekit
from mimekit.limits import Limits
from mimekit.streams.dot_stuffing import DotStuffer
from mimekit.streams.filters import Chain, Filter, chain
from mimekit.streams.line_endings import CRLFNormaliser
from strategies import chunkings

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures"))

from evasion import begin_base64_file, binhex_file, uuencode_lines, uuencoded_file, yenc_file  # noqa: E402

# The bytes filters give meaning to, in any order: line breaks, dots, "From " and its
# quoting, QP escapes and soft breaks, base64 letters, padding and junk, 8-bit and NUL, and
# the lines that start and end a uuencoded, begin-base64, yEnc or BinHex file.
_FRAGMENTS = [b"\r", b"\n", b"\r\n", b".", b"..", b"From ", b">", b">From ", b"Fro", b"=", b"=3D", b"=\r\n",
              b"=4", b"=ZZ", b" ", b"\t", b"QUJD", b"QQ==", b"Zg", b"!", b"x", b"Bcc: a@b.test", b"Subject: s",
              b":", b"\xff\xc3\xa9", b"\x00", b"a" * 80, b"begin 644 f\n", b"#86)C\n", b"`\nend\n",
              b"begin-base64 644 f\n", b"====\n", b"=ybegin size=3 name=f\n", b"=yend size=3 crc32=0\n",
              b"(This file must be converted with BinHex 4.0)\n"]
soup = st.lists(st.sampled_from(_FRAGMENTS), max_size=40).map(b"".join)

TEXT = (b"From: a@example.test\r\nBcc: hidden@example.test,\r\n more@example.test\r\nSubject: dots\r\n\r\n"
        b"From here\r\n>From there\n.\r\n..two\r.cr\r\n" + b"long " * 40 + b"\r\ntrailing  \t\r\nend")
BASE64 = b"QUJD\r\nREVG\r\nRw==SGk=\r\n!!junk!! \tZm9v\r\nYmFy\r\nYQ"
QUOTED_PRINTABLE = b"caf=C3=A9 =\r\nsoft break  \r\n=ZZ bad =4\nlower =e9\r\n" + b"x" * 1000 + b"   =\r\n="
BINARY = bytes(range(256)) * 3

EIGHT_BIT_MESSAGE = (b"From: a@example.test\r\nSubject: caf\xc3\xa9\r\nMIME-Version: 1.0\r\n"
                     b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                     b"caf\xc3\xa9\r\n.\r\nFrom here\r\n")

# Files in the pre-MIME encodings, with text around them, cut short and damaged, CRLF and LF.
PAYLOAD = b"\x00" * 40 + b"=ab=cd\r\n.\t \x90\x90\x90" + BINARY


def _framed(lines: list[bytes]) -> list[bytes]:
    """`lines` after and before some text, cut short, and each in CRLF and LF."""
    whole = [b"Hello,", b"", *lines, b"", b"Regards", b"end"]
    variants = [whole, lines[:len(lines) // 2], [line.replace(b"=", b"!") for line in lines]]
    return [eol.join(variant) + eol for variant in variants for eol in (b"\r\n", b"\n")]


UUENCODED = _framed(uuencoded_file(PAYLOAD, "f.bin")) + _framed(uuencode_lines(PAYLOAD) + [b"`", b"end"])
BEGIN_BASE64 = _framed(begin_base64_file(PAYLOAD, "f.bin"))
YENC = _framed(yenc_file(PAYLOAD, "f.bin", line_length=60)) + [b"=ybegin part=1 name=p\r\nkk==\r\n=yend pcrc32=1"]
BINHEX = _framed(binhex_file(PAYLOAD, "f.bin"))
_GZIPPED = gzip.compress(PAYLOAD)
GZIP64 = [base64.encodebytes(data) for data in (_GZIPPED, _GZIPPED * 2, _GZIPPED[:-9], _GZIPPED + b"junk",
                                                 b"not gzip at all")]
# base64 whose lines are cut mid-group, padded mid-stream, with junk mid-line and a line
# longer than the 4096 bytes a decoder holds.
IRREGULAR_BASE64 = [b"".join(base64.encodebytes(PAYLOAD).splitlines()[:3]) + b"\r\nQUJ\r\nDRA==\r\nQUJD!junk\r\n"
                    b"  QQ= = QU\nRw==\nYWJj" + b"QUJD" * 1100 + b"!x\r\nYQ", BASE64]


def _splicer(cls):
    """The 7-bit downgrade's second pass, with the plan its first pass makes for EIGHT_BIT_MESSAGE."""
    from mimekit.write.downgrade import _Planner
    planner = _Planner(b"\r\n", Limits())
    planner.feed(EIGHT_BIT_MESSAGE)
    edits, size = planner.close()
    return cls(edits, b"\r\n", size)


# Class name -> (ways to build one, inputs to try besides `soup`; None: only these inputs).
FILTERS = {
    "Base64Encoder": ([lambda cls: cls(), lambda cls: cls(line_length=8, eol=b"\n")], [BINARY, TEXT]),
    "Base64Decoder": ([lambda cls: cls(), lambda cls: cls(defects_per_kind=1)], [BASE64]),
    "QuotedPrintableEncoder": ([lambda cls: cls(), lambda cls: cls(binary=True), lambda cls: cls(eol=b"\n", line_length=10)],
                               [TEXT, BINARY]),
    "QuotedPrintableDecoder": ([lambda cls: cls(), lambda cls: cls(defects_per_kind=1)], [QUOTED_PRINTABLE]),
    "IdentityCodec": ([lambda cls: cls()], [BINARY]),
    "LineEndingNormaliser": ([lambda cls: cls(b"\r\n", lone_cr_is_break=True),
                              lambda cls: cls(b"\n", lone_cr_is_break=False)], [TEXT]),
    "CRLFNormaliser": ([lambda cls: cls()], [TEXT]),
    "LFNormaliser": ([lambda cls: cls()], [TEXT]),
    "DotStuffer": ([lambda cls: cls()], [TEXT.replace(b"\r", b"").replace(b"\n", b"\r\n")]),
    "FromQuoter": ([lambda cls: cls(), lambda cls: cls(unquote=True)], [TEXT.replace(b"\r", b"")]),
    "BccRemover": ([lambda cls: cls(), lambda cls: cls(capture=frozenset({"bcc", "subject"}))], [TEXT]),
    "Chain": ([lambda cls: cls(), lambda cls: cls(CRLFNormaliser(), DotStuffer())], [TEXT]),
    "_Splicer": ([_splicer], None),
    "UudecodeDecoder": ([lambda cls: cls()], UUENCODED),
    "BeginBase64Decoder": ([lambda cls: cls()], BEGIN_BASE64),
    "Gzip64Decoder": ([lambda cls: cls(), lambda cls: cls(max_output=100)], GZIP64),
    "YencDecoder": ([lambda cls: cls()], YENC),
    "BinHexDecoder": ([lambda cls: cls()], BINHEX),
    "Base64StopAtPaddingDecoder": ([lambda cls: cls()], IRREGULAR_BASE64),
    "Base64PerLineDecoder": ([lambda cls: cls()], IRREGULAR_BASE64),
    "Base64LinePrefixDecoder": ([lambda cls: cls()], IRREGULAR_BASE64),
}
# Frames that filters are built on, never used alone: their subclasses are the filters.
ABSTRACT = {"LineBlockDecoder"}


def _filter_classes() -> dict[str, type]:
    """Every class defined under mimekit that has feed() and flush()."""
    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(mimekit.__path__, "mimekit."):
        module = importlib.import_module(module_info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (cls.__module__ == module.__name__ and not getattr(cls, "_is_protocol", False) and name not in ABSTRACT
                    and callable(getattr(cls, "feed", None)) and callable(getattr(cls, "flush", None))):
                assert name not in found, f"two filters named {name}: {found[name]} and {cls}"
                found[name] = cls
    return found


FILTER_CLASSES = _filter_classes()
CASES = [pytest.param(FILTER_CLASSES.get(name), build, inputs, id=f"{name}-{index}")
         for name, (builds, inputs) in FILTERS.items() for index, build in enumerate(builds)]


def test_every_filter_under_mimekit_is_listed_here():
    assert sorted(FILTER_CLASSES) == sorted(FILTERS)


def run(stage: Filter, pieces: list[bytes]) -> tuple[bytes, list]:
    out = []
    for piece in pieces:
        out.append(stage.feed(piece))
    out.append(stage.flush())
    assert all(type(data) is bytes for data in out)
    # What is recorded is compared, not in what order: a decoder whose list of a kind is full
    # sums up each kind once the list fills, which the chunking may make happen in another order.
    return b"".join(out), sorted(map(str, getattr(stage, "defects", [])))


@pytest.mark.parametrize("cls, build, inputs", CASES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_output_does_not_depend_on_how_the_input_is_cut(cls, build, inputs, data):
    text = data.draw(st.sampled_from([EIGHT_BIT_MESSAGE]) if inputs is None
                     else st.one_of(st.sampled_from(inputs), soup))
    whole = build(cls)
    assert isinstance(whole, Filter)
    assert run(build(cls), data.draw(chunkings(text))) == run(whole, [text])


def test_chain_equals_one_filter_made_of_the_stages():
    text = b"a\n.b\r\n.\rc"
    pieces = [text[:2], text[2:3], text[3:]]
    assert b"".join(chain(pieces, CRLFNormaliser(), DotStuffer())) == run(Chain(CRLFNormaliser(), DotStuffer()), pieces)[0]
    assert b"".join(chain(pieces, CRLFNormaliser(), DotStuffer())) == b"a\r\n..b\r\n..\r\nc\r\n.\r\n"
    assert list(chain([b"", b"x", b""])) == [b"x"]
