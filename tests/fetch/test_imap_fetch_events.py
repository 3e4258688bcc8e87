"""The FETCH fast path of the IMAP protocol (issue 16): a response received whole is
handed out in fewer steps, and must give exactly the events it gives when its bytes come
one at a time, wherever a read ends (after the body, between ")" and its CRLF...)."""

import pytest

from mimekit.errors import ProtocolError
from mimekit.transport.imap.protocol import (Completion, ConnectionClosed, Fetch, FetchBodyChunk, FetchBodyEnd,
                                             FetchBodyStart, IMAPProtocol)
from helpers import protocol_events

GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"
RESPONSES = (b"* 1 FETCH (UID 7 FLAGS (\\Seen $Junk) RFC822.SIZE 12 BODY[] {12}\r\nSubject: )\r\n)\r\n"
             b"* 2 FETCH (UID 8 FLAGS () RFC822.SIZE 0 BODY[] {0}\r\n)\r\n"
             b"* 3 FETCH (UID 9 BODY[] {3}\r\nabc FLAGS (\\Answered))\r\n"
             b"* 4 FETCH (FLAGS (\\Deleted))\r\n"
             b"* 5 FETCH (UID 10 FLAGS (\\Seen $Junk) BODY[] {2}\r\nhi)\r\n"
             b"M1 OK done\r\n")


def fetching() -> IMAPProtocol:
    proto = IMAPProtocol()
    protocol_events(proto, GREETING, closed=ConnectionClosed)
    proto.uid_fetch("7:10", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    proto.data_to_send()
    return proto


def events_in_pieces(pieces) -> list:
    proto, got = fetching(), []
    for piece in pieces:
        got += protocol_events(proto, piece, closed=ConnectionClosed)
    return got


def merged(events: list) -> list:
    """Consecutive body chunks joined: how a body is cut into chunks follows the reads."""
    out = []
    for event in events:
        if isinstance(event, FetchBodyChunk) and out and isinstance(out[-1], FetchBodyChunk):
            out[-1] = FetchBodyChunk(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def test_whole_responses_give_the_expected_events():
    flags = ("\\Seen", "$Junk")
    assert events_in_pieces([RESPONSES]) == [
        FetchBodyStart(1, "BODY[]", 12, {"UID": 7, "FLAGS": flags, "RFC822.SIZE": 12}),
        FetchBodyChunk(b"Subject: )\r\n"), FetchBodyEnd(), Fetch(1, {"UID": 7, "FLAGS": flags, "RFC822.SIZE": 12}),
        FetchBodyStart(2, "BODY[]", 0, {"UID": 8, "FLAGS": (), "RFC822.SIZE": 0}),
        FetchBodyEnd(), Fetch(2, {"UID": 8, "FLAGS": (), "RFC822.SIZE": 0}),
        FetchBodyStart(3, "BODY[]", 3, {"UID": 9}), FetchBodyChunk(b"abc"), FetchBodyEnd(),
        Fetch(3, {"UID": 9, "FLAGS": ("\\Answered",)}),
        Fetch(4, {"FLAGS": ("\\Deleted",)}),
        FetchBodyStart(5, "BODY[]", 2, {"UID": 10, "FLAGS": flags}), FetchBodyChunk(b"hi"), FetchBodyEnd(),
        Fetch(5, {"UID": 10, "FLAGS": flags}),
        Completion("M1", "UID FETCH", "OK", None, "done")]


@pytest.mark.parametrize("cut", range(1, len(RESPONSES)))
def test_a_read_ending_anywhere_gives_the_same_events(cut):
    whole = events_in_pieces([RESPONSES])
    assert merged(events_in_pieces([RESPONSES[:cut], RESPONSES[cut:]])) == whole


def test_byte_by_byte_gives_the_same_events():
    whole = events_in_pieces([RESPONSES])
    assert merged(events_in_pieces([RESPONSES[i:i + 1] for i in range(len(RESPONSES))])) == whole


def test_the_closing_parenthesis_still_counts_against_the_untagged_limit():
    """The bare ")" after a body is one byte of the untagged responses, as on the general
    path; the greeting's line counts too (limits count lines without their CRLF)."""
    line = b"* 1 FETCH (UID 7 BODY[] {2}\r\n"
    counted = len(GREETING) - 2 + len(line) - 2 + 1
    proto = IMAPProtocol(max_untagged_bytes=counted)
    protocol_events(proto, GREETING, closed=ConnectionClosed)
    assert protocol_events(proto, line + b"hi)\r\n", closed=ConnectionClosed)[-1] == Fetch(1, {"UID": 7})
    proto = IMAPProtocol(max_untagged_bytes=counted - 1)
    protocol_events(proto, GREETING, closed=ConnectionClosed)
    got = []
    proto.receive_data(line + b"hi)\r\n")
    with pytest.raises(ProtocolError, match="untagged"):
        while True:
            got.append(proto.next_event())
    assert got == [FetchBodyStart(1, "BODY[]", 2, {"UID": 7}), FetchBodyChunk(b"hi"), FetchBodyEnd()]
