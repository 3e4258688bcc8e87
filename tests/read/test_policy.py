"""Library policy: named Limits presets, and defects recorded or raised (on_defect)."""

import dataclasses
import io

import pytest

from mimekit.defects import DefectError, DefectKind, apply_defect_policy
from mimekit.errors import DataError, UsageError
from mimekit.limits import Limits
from mimekit.read.tree import parse_message

TRUNCATED = (b"From: a@example.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
             b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n")
BAD_BASE64 = (b"From: a@example.test\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8!!\r\n")
CLEAN = b"From: a@example.test\r\nSubject: hi\r\n\r\nhello\r\n"


def test_presets_are_ordered_from_strict_to_permissive():
    assert Limits.DEFAULT == Limits()
    for field in dataclasses.fields(Limits):
        strict, default, permissive = (getattr(preset, field.name)
                                       for preset in (Limits.STRICT, Limits.DEFAULT, Limits.PERMISSIVE))
        assert strict <= default < permissive, field.name
    assert Limits.STRICT.max_line_length == 1000    # RFC 5322 2.1.1: 998 characters and CRLF


def test_the_presets_are_not_fields():
    assert "DEFAULT" not in {field.name for field in dataclasses.fields(Limits)}


def test_a_strict_preset_reports_what_the_default_accepts():
    long_header = b"From: a@example.test\r\nX-Long: " + b"x" * 2000 + b"\r\n\r\nbody\r\n"
    with parse_message(io.BytesIO(long_header)) as message:
        assert not message.defects
    with parse_message(io.BytesIO(long_header), Limits.STRICT) as message:
        assert [defect.kind for defect in message.defects] == [DefectKind.LIMIT_LINE_LENGTH]


def test_defects_are_recorded_by_default():
    with parse_message(io.BytesIO(TRUNCATED)) as message:
        assert DefectKind.MISSING_FINAL_BOUNDARY in {defect.kind for defect in message.defects}


def test_on_defect_raise_ends_the_parse_at_the_first_defect():
    with pytest.raises(DefectError) as raised:
        parse_message(io.BytesIO(TRUNCATED), on_defect="raise")
    assert isinstance(raised.value, DataError)
    assert raised.value.defects[0].kind is DefectKind.MISSING_FINAL_BOUNDARY
    assert "missing-final-boundary" in str(raised.value)


def test_on_defect_raise_also_covers_decoding_a_body():
    with parse_message(io.BytesIO(BAD_BASE64), on_defect="raise") as message:
        with pytest.raises(DefectError) as raised:
            message.root.read_decoded()
    assert raised.value.defects[0].kind is DefectKind.BASE64_JUNK


def test_on_defect_raise_leaves_a_clean_message_alone():
    with parse_message(io.BytesIO(CLEAN), on_defect="raise") as message:
        assert message.root.read_decoded() == b"hello\r\n" and not message.defects


def test_an_unknown_policy_is_a_usage_error():
    with pytest.raises(UsageError, match="on_defect"):
        parse_message(io.BytesIO(CLEAN), on_defect="ignore")


def test_apply_defect_policy_raises_only_when_asked():
    with parse_message(io.BytesIO(TRUNCATED)) as message:
        defects = message.defects
    apply_defect_policy(defects, "record")
    with pytest.raises(DefectError) as raised:
        apply_defect_policy(defects, "raise")
    assert raised.value.defects == defects
    apply_defect_policy([], "raise")
