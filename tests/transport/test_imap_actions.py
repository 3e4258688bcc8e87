"""The IMAP commands behind fetch's actions (--flag, --move-to) as the sans-IO protocol
writes and reads them: no socket (Dovecot is checked in tests/fetch/test_actions.py)."""

import pytest

from helpers import protocol_events
from mimekit.errors import ProtocolError
from mimekit.transport.imap.protocol import (Completion, ConnectionClosed, Expunge, IMAPProtocol, ResponseCode,
                                             StatusResponse, uid_set_size)

GREETING = b"* OK [CAPABILITY IMAP4rev1 MOVE UIDPLUS] ready\r\n"


def greeted(max_untagged: int = 100_000) -> IMAPProtocol:
    proto = IMAPProtocol(max_untagged=max_untagged)
    protocol_events(proto, GREETING, closed=ConnectionClosed)
    return proto


@pytest.mark.parametrize("folder, spelled", [
    ("Archive", b"Archive"),
    ("Old mail", b'"Old mail"'),                 # a space: quoted
    ("Entw\u00fcrfe", b"Entw&APw-rfe"),           # modified UTF-7 (RFC 3501 §5.1.3)
])
def test_uid_move_and_uid_copy_name_the_folder_as_imap_spells_it(folder, spelled):
    proto = greeted()
    move, copy = proto.uid_move("1:3,7", folder), proto.uid_copy("4", folder)
    assert proto.data_to_send() == (move.encode() + b" UID MOVE 1:3,7 " + spelled + b"\r\n"
                                    + copy.encode() + b" UID COPY 4 " + spelled + b"\r\n")


def test_uid_store_of_flags_and_keywords():
    proto = greeted()
    tag = proto.uid_store("5:9", "-FLAGS.SILENT", "(\\Seen $Junk)")
    assert proto.data_to_send() == tag.encode() + b" UID STORE 5:9 -FLAGS.SILENT (\\Seen $Junk)\r\n"


def test_a_move_reports_copyuid_and_its_expunges_which_are_not_counted_as_untagged_noise():
    """RFC 6851 §4.3: an untagged OK [COPYUID], then one EXPUNGE per message moved."""
    proto = greeted(max_untagged=3)
    tag = proto.uid_move("1:10", "Archive")
    answer = (b"* OK [COPYUID 7 1:10 101:110] moved\r\n" + b"* 1 EXPUNGE\r\n" * 10
              + tag.encode() + b" OK [HIGHESTMODSEQ 9] done\r\n")
    events = protocol_events(proto, answer, closed=ConnectionClosed)
    assert events[0] == StatusResponse("OK", ResponseCode("COPYUID", "7 1:10 101:110"), "moved")
    assert events[1:11] == [Expunge(1)] * 10
    assert isinstance(events[11], Completion) and events[11].command == "UID MOVE" and events[11].ok


def test_a_refused_move_is_a_no_with_the_servers_text():
    proto = greeted()
    tag = proto.uid_move("1", "Nope")
    [completion] = protocol_events(proto, tag.encode() + b" NO [TRYCREATE] Mailbox doesn't exist: Nope\r\n",
                                   closed=ConnectionClosed)
    assert (completion.status, completion.code.name, completion.text) == ("NO", "TRYCREATE",
                                                                          "Mailbox doesn't exist: Nope")


def test_expunges_without_a_command_that_draws_them_are_still_bounded():
    proto = greeted(max_untagged=3)
    proto.noop()
    with pytest.raises(ProtocolError, match="untagged responses"):
        protocol_events(proto, b"* 1 EXPUNGE\r\n" * 4, closed=ConnectionClosed)


@pytest.mark.parametrize("text, size", [("1", 1), ("1:3,7", 4), ("9:7", 3), ("1:4294967295", 4294967295),
                                        ("", None), ("1:*", None), ("0", None), ("1:2:3", None), ("x", None)])
def test_uid_set_size_counts_a_servers_uid_set_without_expanding_it(text, size):
    assert uid_set_size(text) == size
