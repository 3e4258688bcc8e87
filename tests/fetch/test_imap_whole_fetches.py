"""FetchWhole (issue 16): with whole_fetches, a FETCH response of the shape IMAPClient asks
for, received whole, is one event. It must say exactly what the four events of the other
paths say (FetchBodyStart, FetchBodyChunk, FetchBodyEnd, Fetch), wherever the reads end,
and leave every other response, and every limit, to those paths."""

import pytest
from hypothesis import given, settings, strategies as st

from mimekit.errors import ProtocolError, TempFailure
from mimekit.transport.imap import protocol
from mimekit.transport.imap.protocol import (ConnectionClosed, Exists, Fetch, FetchBodyChunk, FetchBodyEnd, FetchBodyStart,
                                             FetchWhole, IMAPProtocol)
from mimekit.transport.sansio import NEED_DATA
from helpers import protocol_events
from strategies import chunkings

GREETING = b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"


def whole(sequence: int, uid: int, flags: bytes, body: bytes, section: bytes = b"BODY[]") -> bytes:
    return (b"* %d FETCH (UID %d FLAGS (%s) RFC822.SIZE %d %s {%d}\r\n" % (sequence, uid, flags, len(body), section,
                                                                             len(body)) + body + b")\r\n")


# The shape FetchWhole takes, and shapes next to it that it must leave to the other paths.
RESPONSE = st.one_of(
    st.builds(whole, st.integers(1, 10**6), st.integers(1, 10**6),
              st.sampled_from([b"", b"\\Seen", b"\\Seen $Junk", b"\\Recent"]),
              st.binary(max_size=40) | st.sampled_from([b"", b")\r\n", b"* 9 FETCH (UID 1 BODY[] {3}\r\n"]),
              st.sampled_from([b"BODY[]", b"BODY[HEADER]", b"BODY[TEXT]"])),
    st.sampled_from([b"* 3 FETCH (UID 9 BODY[] {3}\r\nabc FLAGS (\\Answered))\r\n",
                     b"* 4 FETCH (FLAGS (\\Deleted))\r\n",
                     b"* 5 FETCH (UID 10 FLAGS (\\Seen) RFC822.SIZE 2 BODY[] {2}\r\nhi UID 10)\r\n",
                     b"* 6 fetch (uid 11 flags () rfc822.size 1 body[] {1}\r\nx)\r\n",
                     b"* 7 FETCH (UID 12 FLAGS () RFC822.SIZE 1 MODSEQ 4 BODY[] {1}\r\nx)\r\n",
                     b"* 8 FETCH (UID 123456789012345678901 FLAGS () RFC822.SIZE 1 BODY[] {1}\r\nx)\r\n",
                     b"* 2 EXISTS\r\n", b"* OK still here\r\n"]))


def fetching(whole_fetches: bool, **limits) -> IMAPProtocol:
    proto = IMAPProtocol(whole_fetches=whole_fetches, **limits)
    protocol_events(proto, GREETING, closed=ConnectionClosed)
    proto.uid_fetch("1:*", "(UID FLAGS RFC822.SIZE BODY.PEEK[])")
    proto.data_to_send()
    return proto


def events_of(proto: IMAPProtocol, pieces) -> list:
    """The events of `pieces` read one after the other; a ProtocolError ends them, as its text."""
    got = []
    try:
        for piece in filter(None, pieces):      # b"" would be the end of the stream
            proto.receive_data(piece)
            while (event := proto.next_event()) is not NEED_DATA:
                got.append(event)
    except ProtocolError as error:
        got.append(str(error))
    return got


def as_four(events: list) -> list:
    """Each FetchWhole as the events it stands for, and consecutive body chunks joined (how
    a body is cut into chunks follows the reads)."""
    out = []
    for event in events:
        if isinstance(event, FetchWhole):
            out.append(FetchBodyStart(event.sequence, event.section, len(event.data), dict(event.items)))
            out += [FetchBodyChunk(event.data)] if event.data else []
            out += [FetchBodyEnd(), Fetch(event.sequence, event.items)]
        elif isinstance(event, FetchBodyChunk) and out and isinstance(out[-1], FetchBodyChunk):
            out[-1] = FetchBodyChunk(out[-1].data + event.data)
        else:
            out.append(event)
    return out


@settings(max_examples=300)
@given(st.lists(RESPONSE, max_size=6).map(lambda responses: b"".join(responses) + b"M1 OK done\r\n")
       .flatmap(lambda stream: st.tuples(st.just(stream), chunkings(stream))))
def test_whole_fetches_say_what_the_four_events_say_for_any_reads(case):
    stream, pieces = case
    expected = as_four(events_of(fetching(False), [stream]))
    assert as_four(events_of(fetching(True), pieces)) == expected
    assert as_four(events_of(fetching(True), [stream])) == expected


def test_the_fetch_shape_received_whole_is_one_event_and_any_other_is_not():
    got = events_of(fetching(True), [whole(1, 7, b"\\Seen $Junk", b"Subject: x\r\n\r\n")
                                     + b"* 3 FETCH (UID 9 BODY[] {3}\r\nabc FLAGS (\\Answered))\r\n"])
    assert got[0] == FetchWhole(1, "BODY[]", {"UID": 7, "FLAGS": ("\\Seen", "$Junk"), "RFC822.SIZE": 14},
                                b"Subject: x\r\n\r\n")
    assert [type(event) for event in got[1:]] == [FetchBodyStart, FetchBodyChunk, FetchBodyEnd, Fetch]


def test_a_small_body_is_awaited_whole_and_a_large_one_streams(monkeypatch):
    monkeypatch.setattr(protocol, "WHOLE_FETCH_WAIT", 10)
    small, large = whole(1, 7, b"", b"0123456789"), whole(2, 8, b"", b"0123456789A")
    proto = fetching(True)
    assert events_of(proto, [small[:-5]]) == []
    assert events_of(proto, [small[-5:]]) == [FetchWhole(1, "BODY[]", {"UID": 7, "FLAGS": (), "RFC822.SIZE": 10},
                                                         b"0123456789")]
    assert [type(event) for event in events_of(proto, [large[:-5]])] == [FetchBodyStart, FetchBodyChunk]


def test_unsolicited_fetches_are_counted_on_the_other_paths():
    """With no UID FETCH pending, a FETCH response counts against max_untagged: the other
    paths count it, one response at a time, and stop at the limit where they always did."""
    stream = whole(1, 7, b"", b"ab") + whole(2, 8, b"", b"cd")
    for whole_fetches in (False, True):
        proto = IMAPProtocol(whole_fetches=whole_fetches, max_untagged=2)   # the greeting is one
        protocol_events(proto, GREETING, closed=ConnectionClosed)
        proto.receive_data(stream)
        got = []
        with pytest.raises(ProtocolError, match="untagged responses"):
            while True:
                got.append(proto.next_event())
        assert [type(event) for event in got] == [FetchBodyStart, FetchBodyChunk, FetchBodyEnd, Fetch,
                                                  FetchBodyStart, FetchBodyChunk, FetchBodyEnd]


def outcomes_near_the_byte_limit(body: bytes, room: int, cut: int) -> list:
    """What the other paths, then the whole-fetch path, make of an EXISTS and a FETCH of
    `body` (its last `cut` bytes not yet received) with `room` bytes to spare, or short,
    under max_untagged_bytes at the end of the FETCH line."""
    exists, response = b"* 9 EXISTS\r\n", whole(1, 7, b"", body)
    needed = len(GREETING) - 2 + len(exists) - 2 + response.index(b"\r\n") + 1
    outcomes = []
    for whole_fetches in (False, True):
        proto = IMAPProtocol(whole_fetches=whole_fetches, max_untagged_bytes=needed + room)
        protocol_events(proto, GREETING, closed=ConnectionClosed)
        proto.uid_store("1", "+FLAGS.SILENT", "(\\Seen)")
        proto.data_to_send()
        outcomes.append(as_four(events_of(proto, [exists + response[:len(response) - cut]])))
    return outcomes


@pytest.mark.parametrize("room", [-2, -1, 0, 1])
def test_the_untagged_byte_limit_holds_as_on_the_other_paths(room):
    """A response whose line and ")" would pass max_untagged_bytes goes to the other
    paths, which deliver what they delivered before failing at the same byte. The
    greeting and an EXISTS are what the command has drawn before (the FETCH answers it)."""
    outcomes = outcomes_near_the_byte_limit(b"ab", room, cut=0)
    assert outcomes[0] == outcomes[1]
    assert isinstance(outcomes[0][-1], str) == (room < 0)


@pytest.mark.parametrize("room", [-2, -1])
def test_a_response_past_the_byte_limit_is_not_awaited(room):
    """Its line is handed to the other paths at once, even while its body is still coming."""
    outcomes = outcomes_near_the_byte_limit(b"abcdef", room, cut=5)
    assert outcomes[0] == outcomes[1]
    assert [type(event) for event in outcomes[0]] == ([Exists, str] if room == -2 else
                                                       [Exists, FetchBodyStart, FetchBodyChunk])


def test_a_connection_closed_while_a_body_is_awaited_is_a_temporary_failure():
    proto = fetching(True)
    proto.receive_data(whole(1, 7, b"", b"abcdef")[:-4])
    proto.receive_data(b"")
    with pytest.raises(TempFailure, match="middle of a response"):
        proto.next_event()
