"""The POP3 client as a pure state machine, and dot-unstuffing as a streaming filter."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import ProtocolError, TempFailure, UsageError
from mimekit.streams.dot_stuffing import DotUnstuffer
from mimekit.transport.pop3.protocol import (Capabilities, ConnectionClosed, Greeting,
                                   MessageChunk, MessageEnd, MessageStart, POP3Protocol, Reply, Sizes,
                                   Stat, UniqueIds)
from helpers import protocol_events
from strategies import chunkings


def events(proto, data=b""):
    return protocol_events(proto, data, closed=ConnectionClosed)


def greeted() -> POP3Protocol:
    proto = POP3Protocol()
    assert events(proto, b"+OK POP3 ready\r\n") == [Greeting(True, "POP3 ready")]
    return proto


def body_of(evs) -> bytes:
    return b"".join(e.data for e in evs if isinstance(e, MessageChunk))


def stuff(lines: list[bytes]) -> bytes:
    """What a server sends for these lines (RFC 1939 §3)."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


# ------------------------------------------------------------------------ the filter

def test_unstuffer_removes_one_leading_dot_and_stops_at_the_terminator():
    out, rest = DotUnstuffer().feed(b"a\r\n..b\r\n...\r\n.\r\n+OK next\r\n")
    assert out == b"a\r\n.b\r\n..\r\n" and rest == b"+OK next\r\n"


def test_unstuffer_handles_a_dot_line_first_and_an_empty_body():
    assert DotUnstuffer().feed(b"..x\r\n.\r\n") == (b".x\r\n", b"")
    assert DotUnstuffer().feed(b".\r\n") == (b"", b"")


def test_unstuffer_passes_a_lone_dot_that_is_not_stuffing():
    assert DotUnstuffer().feed(b".x\r\n.\r\n")[0] == b".x\r\n"


def test_unstuffer_does_not_end_on_dots_inside_lines():
    filt = DotUnstuffer()
    out, rest = filt.feed(b"a.\r\nb\r\n.c\r\n")
    assert not filt.done and out + filt.feed(b".\r\n")[0] == b"a.\r\nb\r\n.c\r\n"


line_lists = st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=20)


@given(st.data())
def test_unstuffer_gives_the_lines_back_for_any_chunking(data):
    lines = data.draw(line_lists)
    wire = stuff(lines) + b"TAIL"
    filt, out, rest = DotUnstuffer(), bytearray(), b""
    for piece in data.draw(chunkings(wire)):
        if filt.done:
            rest += piece
            continue
        body, after = filt.feed(piece)
        out += body
        rest += after
    assert filt.done
    assert bytes(out) == b"".join(line + b"\r\n" for line in lines)
    assert rest == b"TAIL"


# ---------------------------------------------------------------------- the protocol

def test_err_greeting_is_reported():
    assert events(POP3Protocol(), b"-ERR go away\r\n") == [Greeting(False, "go away")]


def test_garbage_instead_of_a_status_is_a_protocol_error():
    proto = greeted()
    proto.stat()
    with pytest.raises(ProtocolError):
        events(proto, b"HELLO\r\n")


def test_reply_without_a_command_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        events(greeted(), b"+OK unasked\r\n")


def test_capa_is_parsed_into_names_and_arguments():
    proto = greeted()
    proto.capa()
    assert proto.data_to_send() == b"CAPA\r\n"
    [capa] = events(proto, b"+OK\r\nTOP\r\nUIDL\r\nSASL PLAIN LOGIN\r\nSTLS\r\nPIPELINING\r\n.\r\n")
    assert capa == Capabilities({"TOP": (), "UIDL": (), "SASL": ("PLAIN", "LOGIN"), "STLS": (), "PIPELINING": ()})
    assert "STLS" in proto.capabilities


def test_capa_not_supported_is_an_err_reply():
    proto = greeted()
    proto.capa()
    assert events(proto, b"-ERR unknown command\r\n") == [Reply("CAPA", False, None, "unknown command")]


def test_stls_ok_clears_capabilities_and_refuses_injected_data():
    proto = greeted()
    proto.capa()
    events(proto, b"+OK\r\nSTLS\r\n.\r\n")
    proto.stls()
    assert events(proto, b"+OK begin TLS\r\n") == [Reply("STLS", True, None, "begin TLS")]
    assert proto.capabilities == {}
    proto = greeted()
    proto.stls()
    with pytest.raises(ProtocolError, match="STLS"):
        events(proto, b"+OK begin TLS\r\n+OK injected\r\n")


def test_user_pass_and_response_codes():
    proto = greeted()
    proto.user("alice")
    proto.password("se cret")
    assert proto.data_to_send() == b"USER alice\r\nPASS se cret\r\n"
    assert events(proto, b"+OK\r\n-ERR [AUTH] Authentication failed.\r\n") == [
        Reply("USER", True, None, ""), Reply("PASS", False, "AUTH", "Authentication failed.")]


def test_credentials_with_line_breaks_are_refused():
    with pytest.raises(UsageError):
        greeted().password("a\r\nDELE 1")


def test_auth_plain_waits_for_the_continuation():
    proto = greeted()
    proto.auth_plain("alice", "secret")
    proto.stat()                      # queued behind the authentication
    assert proto.data_to_send() == b"AUTH PLAIN\r\n"
    assert events(proto, b"+ \r\n") == []
    assert proto.data_to_send() == b"AGFsaWNlAHNlY3JldA==\r\n"
    assert events(proto, b"+OK Logged in.\r\n") == [Reply("AUTH", True, None, "Logged in.")]
    assert proto.data_to_send() == b"STAT\r\n"


def test_auth_refused_before_the_continuation_sends_no_credentials():
    proto = greeted()
    proto.auth_plain("alice", "secret")
    proto.data_to_send()
    assert events(proto, b"-ERR [SYS/TEMP] try later\r\n") == [Reply("AUTH", False, "SYS/TEMP", "try later")]
    assert proto.data_to_send() == b""


def test_stat_uidl_and_list():
    proto = greeted()
    proto.stat()
    proto.uidl()
    proto.list()
    assert proto.data_to_send() == b"STAT\r\nUIDL\r\nLIST\r\n"
    evs = events(proto, b"+OK 2 320\r\n+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2 QhdPYR:00WBw1Ph7x7\r\n.\r\n"
                        b"+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n")
    assert evs == [Stat(2, 320), UniqueIds({1: "whqtswO00WBw418f9t5JxYwZ", 2: "QhdPYR:00WBw1Ph7x7"}),
                   Sizes({1: 120, 2: 200})]


HUGE = b"9" * 5000       # more digits than int() takes (CPython's int_max_str_digits is 4300)


@pytest.mark.parametrize("reply", [
    b"+OK lots\r\n", b"+OK\r\nx 1\r\n.\r\n",
    # numbers that are not 1 to 20 ASCII digits: "²" passes str.isdigit(), then int() refuses it
    "+OK 1 ²\r\n".encode(), b"+OK 1 " + HUGE + b"\r\n",
    "+OK\r\n1 ²\r\n.\r\n".encode(), b"+OK\r\n1 " + HUGE + b"\r\n.\r\n", b"+OK\r\n" + HUGE + b" 1\r\n.\r\n",
], ids=["stat-words", "list-word", "stat-superscript", "stat-5000-digits", "list-superscript",
        "list-5000-digits", "list-number-5000-digits"])
def test_malformed_stat_or_listing_is_a_protocol_error(reply):
    proto = greeted()
    proto.stat() if reply.count(b"\r\n") == 1 else proto.list()
    with pytest.raises(ProtocolError):
        events(proto, reply)


def test_a_uidl_number_that_is_not_ascii_digits_is_a_protocol_error():
    proto = greeted()
    proto.uidl()
    with pytest.raises(ProtocolError):
        events(proto, "+OK\r\n² abc\r\n.\r\n".encode())


def test_overlong_listing_is_a_protocol_error():
    proto = POP3Protocol(max_listing=50)
    events(proto, b"+OK hi\r\n")
    proto.uidl()
    with pytest.raises(ProtocolError, match="longer"):
        events(proto, b"+OK\r\n" + b"".join(b"%d uid%d\r\n" % (i, i) for i in range(20)))


def test_pipelined_retr_streams_each_message_in_order():
    proto = greeted()
    proto.retr(1)
    proto.top(2, 0)
    proto.retr(3)
    proto.dele(1)
    assert proto.data_to_send() == b"RETR 1\r\nTOP 2 0\r\nRETR 3\r\nDELE 1\r\n"
    assert proto.outstanding == 4
    evs = events(proto, b"+OK 9 octets\r\nA: b\r\n\r\n..x\r\n.\r\n+OK\r\nB: c\r\n\r\n.\r\n"
                        b"-ERR no such message\r\n+OK marked\r\n")
    assert evs[0] == MessageStart("RETR", 1)
    assert evs[1:3] == [MessageChunk(b"A: b\r\n\r\n.x\r\n"), MessageEnd(1)]
    assert evs[3:6] == [MessageStart("TOP", 2), MessageChunk(b"B: c\r\n\r\n"), MessageEnd(2)]
    assert evs[6:] == [Reply("RETR", False, None, "no such message"), Reply("DELE", True, None, "marked")]
    assert proto.outstanding == 0


MESSAGES = (b"+OK\r\n" + stuff([b"Subject: one", b"", b".leading dot", b"..", b"end"])
            + b"+OK 2\r\n" + stuff([b"", b"."]) + b"+OK bye\r\n")


@given(chunkings(MESSAGES))
def test_retr_gives_the_same_messages_for_any_chunking(pieces):
    proto = greeted()
    proto.retr(1)
    proto.retr(2)
    proto.quit()
    got = []
    for piece in pieces:
        got += events(proto, piece)
    bodies, current = [], bytearray()
    for event in got:
        if isinstance(event, MessageChunk):
            current += event.data
        elif isinstance(event, MessageEnd):
            bodies.append(bytes(current))
            current = bytearray()
    assert bodies == [b"Subject: one\r\n\r\n.leading dot\r\n..\r\nend\r\n", b"\r\n.\r\n"]
    assert got[-1] == Reply("QUIT", True, None, "bye")


def test_a_large_message_is_never_buffered_whole():
    proto = greeted()
    proto.retr(1)
    events(proto, b"+OK\r\n")
    line = b"y" * 76 + b"\r\n"
    piece, received, largest = line * 800, 0, 0
    for _ in range(300):                                # 300 x 62 KB = 18.6 MB
        for event in events(proto, piece):
            received += len(event.data)
            largest = max(largest, len(event.data))
    evs = events(proto, b".\r\n")
    assert evs[-1] == MessageEnd(1)
    received += len(body_of(evs))
    assert received == 300 * len(piece) and largest <= len(piece) + 5


def test_connection_closed_mid_message_is_a_temporary_failure():
    proto = greeted()
    proto.retr(1)
    events(proto, b"+OK\r\npartial line\r\n")
    proto.receive_data(b"")
    with pytest.raises(TempFailure):
        events(proto)


def test_connection_closed_between_replies():
    proto = greeted()
    proto.receive_data(b"")
    assert events(proto) == [ConnectionClosed()]
