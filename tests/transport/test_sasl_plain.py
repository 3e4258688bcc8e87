"""Reading a SASL PLAIN response (RFC 4616), once for the SMTP and POP3 servers (mimekit.transport.sasl)."""

import pytest

from mimekit.transport.sasl import OtherUserRequested, parse_plain_response


@pytest.mark.parametrize("response", [b"\0alice\0pw", b"alice\0alice\0pw"])
def test_the_user_and_password_with_an_empty_or_the_same_authzid(response):
    assert parse_plain_response(response) == ("alice", "pw")


def test_utf8_names_and_passwords_and_nul_free_punctuation():
    assert parse_plain_response("\0zoë\0p:ss wörd".encode()) == ("zoë", "p:ss wörd")


def test_acting_as_another_user_is_refused():
    with pytest.raises(OtherUserRequested):
        parse_plain_response(b"root\0alice\0pw")


@pytest.mark.parametrize("response", [b"", b"alice\0pw", b"\0alice\0pw\0more"])
def test_anything_but_three_parts_is_malformed(response):
    with pytest.raises(ValueError):
        parse_plain_response(response)


def test_bytes_that_are_not_utf8_are_refused_not_replaced():
    """Replaced with U+FFFD, two different passwords would read as the same one."""
    with pytest.raises(UnicodeDecodeError):
        parse_plain_response(b"\0alice\0\xff")
