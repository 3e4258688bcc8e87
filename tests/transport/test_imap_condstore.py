"""What SELECT tells for incremental fetching (RFC 3501 UIDNEXT, RFC 7162 CONDSTORE
HIGHESTMODSEQ), and when it stops being true: the protocol alone, no socket."""

from mimekit.transport.imap.protocol import ConnectionClosed, IMAPProtocol
from helpers import protocol_events

GREETING = b"* OK [CAPABILITY IMAP4rev1 CONDSTORE] ready\r\n"


def opened(answer: bytes, condstore: bool = True) -> IMAPProtocol:
    proto = IMAPProtocol()
    protocol_events(proto, GREETING, closed=ConnectionClosed)
    tag = proto.select("INBOX", read_only=True, condstore=condstore)
    sent = proto.data_to_send()
    assert sent == f"{tag} EXAMINE INBOX{' (CONDSTORE)' if condstore else ''}\r\n".encode()
    protocol_events(proto, answer + tag.encode() + b" OK [READ-ONLY] done\r\n", closed=ConnectionClosed)
    return proto


SELECTED = (b"* 3 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n* OK [UIDNEXT 42] ok\r\n"
            b"* OK [HIGHESTMODSEQ 90000000000000001] ok\r\n")


def test_select_with_condstore_collects_highestmodseq():
    box = opened(SELECTED).mailbox
    assert (box.exists, box.uidvalidity, box.uidnext, box.highestmodseq, box.read_only) == \
        (3, 9, 42, 90000000000000001, True)


def test_without_condstore_or_with_nomodseq_there_is_no_highestmodseq():
    assert opened(SELECTED.replace(b"* OK [HIGHESTMODSEQ 90000000000000001] ok\r\n", b""),
                  condstore=False).mailbox.highestmodseq is None
    assert opened(SELECTED.replace(b"HIGHESTMODSEQ 90000000000000001", b"NOMODSEQ")).mailbox.highestmodseq is None


def test_an_exists_after_the_select_voids_uidnext_and_highestmodseq():
    """New mail after SELECT: its UIDNEXT no longer says where new messages start. Any
    EXISTS counts, since an EXPUNGE and an arrival leave the count where it was."""
    proto = opened(SELECTED)
    protocol_events(proto, b"* 3 EXISTS\r\n", closed=ConnectionClosed)
    assert (proto.mailbox.uidnext, proto.mailbox.highestmodseq, proto.mailbox.uidvalidity) == (None, None, 9)


def test_an_exists_during_the_select_is_its_answer():
    box = opened(b"* OK [UIDNEXT 42] ok\r\n* 3 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n").mailbox
    assert (box.uidnext, box.exists) == (42, 3)


def test_expunge_lowers_the_message_count():
    proto = opened(SELECTED)
    protocol_events(proto, b"* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n", closed=ConnectionClosed)
    assert proto.mailbox.exists == 1 and proto.mailbox.uidnext == 42
