"""The SMTP state machine driven with byte strings: every odd server reply is a short test."""

import base64

import pytest

from mimekit.errors import AuthError, DataError, ProtocolError, UnavailableError
from mimekit.transport.sansio import NEED_DATA
from mimekit.transport.smtp.protocol import (
    TRANSITIONS, AuthChallenge, AuthReply, BdatReply, Capabilities, ConnectionClosed, DataReply, EhloReply,
    Greeting, MailReply, MessageReply, QuitReply, RcptReply, Reply, ReplyReader, RsetReply,
    ServiceClosing, SMTPProtocol, SMTPStateError, StartTLSReply, State, Step, queue_id_from)

POSTFIX_EHLO = (b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n"
                b"250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n"
                b"250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n")


def events(conn: SMTPProtocol, data: bytes) -> list:
    """Feed what the server said and collect every event it completes."""
    conn.receive_data(data)
    found = []
    while (event := conn.next_event()) is not NEED_DATA:
        found.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return found


def sent(conn: SMTPProtocol) -> bytes:
    """What the protocol queued to write since the last look."""
    return bytes(conn.data_to_send())


def reply_of(data: bytes) -> Reply:
    reader = ReplyReader()
    reader.feed(data)
    return reader.next_reply()


def ready(ehlo: bytes = POSTFIX_EHLO, tls: bool = True, **options) -> SMTPProtocol:
    """A connection past greeting and EHLO."""
    conn = SMTPProtocol(tls=tls, **options)
    assert [type(e) for e in events(conn, b"220 mx.example.test ESMTP Postfix\r\n")] == [Greeting]
    conn.send_ehlo("[127.0.0.1]")
    assert sent(conn) == b"EHLO [127.0.0.1]\r\n"
    [ehlo_event] = events(conn, ehlo)
    assert ehlo_event.capabilities is not None
    return conn


# --- replies -------------------------------------------------------------------------------

def test_multiline_reply_with_enhanced_codes_on_every_line():
    reply = reply_of(b"550-5.1.1 first line\r\n550-5.1.1 second\r\n550 5.1.1 last\r\n")
    assert reply == Reply(550, ("first line", "second", "last"), "5.1.1")
    assert str(reply) == "550 5.1.1 first line second last"


def test_enhanced_code_must_match_the_reply_class():
    assert reply_of(b"250 5.0.0 odd\r\n").enhanced is None
    assert reply_of(b"250 2.0.0 Ok: queued as 4AbC\r\n").enhanced == "2.0.0"


def test_bare_code_and_lf_only_lines_are_accepted():
    assert reply_of(b"250\n") == Reply(250, ("",))


def test_replies_split_across_any_number_of_reads():
    reader = ReplyReader()
    data = b"250-a\r\n250 b\r\n354 go\r\n"
    replies = []
    for byte in data:
        reader.feed(bytes([byte]))
        while (reply := reader.next_reply()) is not None:
            replies.append(reply)
    assert [r.code for r in replies] == [250, 354]
    assert replies[0].lines == ("a", "b")


@pytest.mark.parametrize("garbage", [b"hello\r\n", b"25 x\r\n", b"250-a\r\n251 b\r\n", b"650 no\r\n",
                                     "2²0 ok\r\n".encode(), "25٠ ok\r\n".encode()])
def test_malformed_replies_are_protocol_errors(garbage):
    reader = ReplyReader()
    reader.feed(garbage)
    with pytest.raises(ProtocolError):
        reader.next_reply()


def test_endless_reply_line_is_refused_instead_of_buffered():
    reader = ReplyReader()
    reader.feed(b"250 " + b"x" * 70000)
    with pytest.raises(ProtocolError):
        reader.next_reply()


def test_reply_limits_are_the_callers_to_choose():
    reader = ReplyReader(max_line=100, max_lines=3)
    reader.feed(b"250 " + b"x" * 200)
    with pytest.raises(ProtocolError, match="100 bytes"):
        reader.next_reply()
    reader = ReplyReader(max_line=100, max_lines=3)
    reader.feed(b"250-a\r\n" * 4)
    with pytest.raises(ProtocolError, match="3 lines"):
        reader.next_reply()


def test_an_enhanced_code_is_ascii_digits():
    assert reply_of("250 2.٠.0 ok\r\n".encode()).enhanced is None


# --- capabilities --------------------------------------------------------------------------

def test_postfix_ehlo_capabilities():
    caps = Capabilities.from_ehlo(reply_of(POSTFIX_EHLO))
    assert caps.size_limit == 10240000
    assert caps.auth == {"PLAIN", "LOGIN"}
    for keyword in ("PIPELINING", "STARTTLS", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES"):
        assert keyword in caps


def test_old_style_auth_and_size_without_a_limit():
    caps = Capabilities.from_ehlo(reply_of(b"250-host\r\n250-AUTH=LOGIN\r\n250 SIZE\r\n"))
    assert caps.auth == {"LOGIN"} and caps.size_limit == 0
    assert Capabilities.from_ehlo(reply_of(b"250 host\r\n")).size_limit is None


@pytest.mark.parametrize("size", [b"9" * 5000, "²".encode(), b"10M"], ids=["5000-digits", "superscript", "word"])
def test_a_size_that_is_not_1_to_20_ascii_digits_announces_no_limit(size):
    """RFC 1870 §4: the parameter is 1*20DIGIT; anything else is ignored, not a crash."""
    caps = Capabilities.from_ehlo(reply_of(b"250-host\r\n250 SIZE " + size + b"\r\n"))
    assert "SIZE" in caps and caps.size_limit == 0


# --- a whole session -------------------------------------------------------------------------

def test_starttls_auth_and_a_pipelined_transaction_byte_for_byte():
    conn = SMTPProtocol()
    events(conn, b"220 mx ESMTP\r\n")
    conn.send_ehlo("client")
    assert sent(conn) == b"EHLO client\r\n"
    events(conn, POSTFIX_EHLO)
    conn.send_starttls()
    assert sent(conn) == b"STARTTLS\r\n"
    [started] = events(conn, b"220 2.0.0 Ready to start TLS\r\n")
    assert isinstance(started, StartTLSReply) and started.reply.code == 220
    assert "PIPELINING" not in conn.capabilities   # forgotten until the new EHLO
    conn.tls_started()
    conn.send_ehlo("client")
    events(conn, POSTFIX_EHLO)
    sent(conn)
    conn.start_auth("alice", "s3cret")
    assert sent(conn) == b"AUTH PLAIN " + base64.b64encode(b"\0alice\0s3cret") + b"\r\n"
    [done] = events(conn, b"235 2.7.0 Authentication successful\r\n")
    assert isinstance(done, AuthReply) and conn.authenticated
    conn.send_mail("a@example.test", size=1234), conn.send_rcpt("b@example.test")
    conn.send_rcpt("c@example.test"), conn.send_data()
    assert sent(conn) == (b"MAIL FROM:<a@example.test> SIZE=1234\r\nRCPT TO:<b@example.test>\r\n"
                     b"RCPT TO:<c@example.test>\r\nDATA\r\n")
    got = events(conn, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n450 4.2.1 <c@example.test>: busy\r\n"
                       b"354 End data with <CR><LF>.<CR><LF>\r\n")
    assert [type(e) for e in got] == [MailReply, RcptReply, RcptReply, DataReply]
    assert [(e.address, e.reply.code, e.reply.enhanced) for e in got[1:3]] == \
        [("b@example.test", 250, "2.1.5"), ("c@example.test", 450, "4.2.1")]
    conn.end_data()
    [accepted] = events(conn, b"250 2.0.0 Ok: queued as 4Xyz9\r\n")
    assert isinstance(accepted, MessageReply) and accepted.queue_id == "4Xyz9"
    conn.send_quit()
    assert sent(conn) == b"QUIT\r\n"
    assert isinstance(events(conn, b"221 2.0.0 Bye\r\n")[0], QuitReply)


def test_auth_login_answers_each_challenge_in_turn():
    conn = ready()
    conn.start_auth("bob", "pw", mechanism="LOGIN")
    assert sent(conn) == b"AUTH LOGIN\r\n"
    [challenge] = events(conn, b"334 VXNlcm5hbWU6\r\n")
    assert isinstance(challenge, AuthChallenge)
    conn.answer_challenge()
    assert sent(conn) == base64.b64encode(b"bob") + b"\r\n"
    events(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.answer_challenge()
    assert sent(conn) == base64.b64encode(b"pw") + b"\r\n"
    [result] = events(conn, b"535 5.7.8 Error: authentication failed\r\n")
    assert isinstance(result, AuthReply) and result.reply.code == 535 and not conn.authenticated


def test_an_unexpected_challenge_is_cancelled():
    conn = ready()
    conn.start_auth("bob", "pw")
    events(conn, b"334 \r\n")
    sent(conn)
    conn.answer_challenge()
    assert sent(conn) == b"*\r\n"


def test_no_starttls_offered_is_refused_before_any_credential():
    conn = ready(ehlo=b"250-mx\r\n250 AUTH PLAIN\r\n", tls=False)
    with pytest.raises(AuthError, match="STARTTLS"):
        conn.send_starttls()
    assert conn.pending == 0


def test_credentials_never_go_out_in_plain_text_unless_allowed():
    with pytest.raises(AuthError, match="unencrypted"):
        ready(ehlo=b"250-mx\r\n250 AUTH PLAIN\r\n", tls=False).start_auth("a", "b")
    allowed = ready(ehlo=b"250-mx\r\n250 AUTH PLAIN\r\n", tls=False, allow_insecure_auth=True)
    allowed.start_auth("a", "b")
    assert sent(allowed).startswith(b"AUTH PLAIN ")


def test_unsupported_mechanisms_only():
    with pytest.raises(AuthError, match="CRAM-MD5"):
        ready(ehlo=b"250-mx\r\n250 AUTH CRAM-MD5\r\n").start_auth("a", "b")


def test_bytes_after_a_starttls_220_are_an_injection_and_refused():
    conn = ready(tls=False)
    conn.send_starttls()
    with pytest.raises(ProtocolError, match="injection"):
        events(conn, b"220 go ahead\r\n250 injected\r\n")


# --- transactions --------------------------------------------------------------------------

def test_without_pipelining_each_command_waits_for_its_reply():
    conn = ready(ehlo=b"250-mx\r\n250 SIZE 1000\r\n")
    conn.send_mail("a@x")
    with pytest.raises(SMTPStateError, match="PIPELINING"):
        conn.send_rcpt("b@x")
    events(conn, b"250 ok\r\n")
    sent(conn)
    conn.send_rcpt("b@x")
    assert sent(conn) == b"RCPT TO:<b@x>\r\n"


def test_size_over_the_servers_limit_is_refused_before_sending():
    conn = ready(ehlo=b"250-mx\r\n250 SIZE 1000\r\n")
    with pytest.raises(UnavailableError, match="at most 1000"):
        conn.send_mail("a@x", size=1001)
    assert conn.pending == 0 and sent(conn) == b""
    conn.send_mail("a@x", size=1000)
    assert sent(conn) == b"MAIL FROM:<a@x> SIZE=1000\r\n"


def test_8bit_and_utf8_parameters_follow_the_message_and_the_server():
    conn = ready()
    conn.send_mail("andré@example.test", eight_bit=True)
    assert sent(conn) == \
        "MAIL FROM:<andré@example.test> BODY=8BITMIME SMTPUTF8\r\n".encode()
    conn.send_rcpt("zoë@example.test")
    plain = ready(ehlo=b"250-mx\r\n250 PIPELINING\r\n")
    with pytest.raises(DataError, match="8BITMIME"):
        plain.send_mail("a@x", eight_bit=True)
    with pytest.raises(DataError, match="SMTPUTF8"):
        plain.send_mail("andré@x")
    plain.send_mail("a@x")
    with pytest.raises(DataError, match="SMTPUTF8"):
        plain.send_rcpt("zoë@x")


@pytest.mark.parametrize("address", ["a@x\r\nRCPT TO:<evil@x>", "a@x>", "a\0@x", "a@b> SIZE=1 AUTH=<evil",
                                     "a@b SIZE=1", "a\x7f@x", "a\x85@x", "a\u2028@x", "a\x1b[2J@x"])
def test_addresses_cannot_smuggle_commands(address):
    conn = ready()
    with pytest.raises(DataError):
        conn.send_mail(address)
    conn.send_mail("a@x")
    with pytest.raises(DataError):
        conn.send_rcpt(address)


def test_a_refused_data_leaves_the_transaction_for_rset():
    conn = ready()
    conn.send_mail("a@x"), conn.send_rcpt("nobody@x"), conn.send_data()
    assert sent(conn).endswith(b"DATA\r\n")
    got = events(conn, b"250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 Error: no valid recipients\r\n")
    assert got[-1].reply.code == 554
    with pytest.raises(SMTPStateError):
        conn.send_mail("a@x")
    conn.send_rset()
    assert sent(conn) == b"RSET\r\n"
    conn.send_mail("a@x")
    assert sent(conn) == b"MAIL FROM:<a@x>\r\n"   # RSET and MAIL pipelined
    assert isinstance(events(conn, b"250 reset\r\n250 ok\r\n")[0], RsetReply)


def test_next_message_may_be_pipelined_after_the_final_dot():
    conn = ready()
    conn.send_mail("a@x"), conn.send_rcpt("b@x"), conn.send_data()
    events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.end_data()
    conn.send_mail("a@x")   # RFC 2920: message content may be the first "command" of a group
    got = events(conn, b"250 2.0.0 Ok: queued as A1\r\n250 ok\r\n")
    assert [type(e) for e in got] == [MessageReply, MailReply]


def test_bdat_chunks_go_out_as_they_are_and_the_last_reply_is_the_message_reply():
    conn = ready()
    content = b"Subject: x\r\n\r\n.\r\n..\r\n"
    conn.send_mail("a@x", size=len(content)), conn.send_rcpt("b@x"), conn.send_bdat(content[:12])
    conn.send_bdat(content[12:], last=True), conn.send_rset()
    assert sent(conn) == (b"MAIL FROM:<a@x> SIZE=21\r\nRCPT TO:<b@x>\r\nBDAT 12\r\nSubject: x\r\n"
                   b"BDAT 9 LAST\r\n\r\n.\r\n..\r\nRSET\r\n")
    got = events(conn, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: 12 bytes\r\n"
                       b"250 2.0.0 Ok: queued as B1\r\n250 2.0.0 Ok\r\n")
    assert [type(e) for e in got] == [MailReply, RcptReply, BdatReply, MessageReply, RsetReply]
    assert got[3].queue_id == "B1"
    conn.send_mail("a@x")
    assert sent(conn) == b"MAIL FROM:<a@x>\r\n"


def test_bdat_needs_chunking_and_ends_the_recipient_list():
    plain = ready(ehlo=b"250-mx\r\n250 PIPELINING\r\n")
    plain.send_mail("a@x")
    with pytest.raises(SMTPStateError, match="CHUNKING"):
        plain.send_bdat(b"x", last=True)
    conn = ready()
    conn.send_mail("a@x"), conn.send_rcpt("b@x"), conn.send_bdat(b"part")
    with pytest.raises(SMTPStateError, match="after BDAT"):
        conn.send_rcpt("c@x")
    with pytest.raises(SMTPStateError, match="after BDAT"):
        conn.send_data()


# --- the server going away ---------------------------------------------------------------

def test_421_mid_session_closes_and_forgets_pending_commands():
    conn = ready()
    conn.send_mail("a@x"), conn.send_rcpt("b@x")
    [closing] = events(conn, b"421 4.3.2 Service shutting down\r\n")
    assert isinstance(closing, ServiceClosing) and closing.reply.transient
    with pytest.raises(SMTPStateError):
        conn.send_rset()


def test_dropped_connection_names_the_commands_left_unanswered():
    conn = ready()
    conn.send_mail("a@x"), conn.send_rcpt("b@x"), conn.send_data()
    events(conn, b"250 ok\r\n")
    [closed] = events(conn, b"")
    assert closed == ConnectionClosed(("RCPT", "DATA"))


def test_unsolicited_reply_is_a_protocol_error_but_unsolicited_421_is_a_goodbye():
    with pytest.raises(ProtocolError, match="unsolicited"):
        events(ready(), b"250 surprise\r\n")
    assert isinstance(events(ready(), b"421 idle too long\r\n")[0], ServiceClosing)


def test_ehlo_refused_leaves_room_for_another_try():
    conn = SMTPProtocol()
    events(conn, b"220 hi\r\n")
    conn.send_ehlo("client")
    [refused] = events(conn, b"502 5.5.1 no\r\n")
    assert isinstance(refused, EhloReply) and refused.capabilities is None
    sent(conn)
    conn.send_ehlo("client")
    assert sent(conn) == b"EHLO client\r\n"


@pytest.mark.parametrize("text, queue_id", [
    ("250 2.0.0 Ok: queued as 4ZxK3m1Bq9z3", "4ZxK3m1Bq9z3"),
    ("250 OK id=1rBcDe-0004Xy-2a", "1rBcDe-0004Xy-2a"),
    ("250 2.0.0 41MJ3e8A012345 Message accepted for delivery", "41MJ3e8A012345"),
    ("250 Ok", None),
])
def test_queue_ids_as_common_servers_report_them(text, queue_id):
    assert queue_id_from(reply_of(text.encode() + b"\r\n")) == queue_id


# --- the transition table ------------------------------------------------------------------

def test_every_state_but_the_first_is_reached_and_every_state_can_end():
    reached = {State.GREETING} | set(TRANSITIONS.values())
    assert reached == set(State)
    assert all((state, Step.CLOSED) in TRANSITIONS for state in State)


def test_a_command_out_of_turn_names_the_state_it_met():
    conn = ready()
    conn.send_mail("a@x"), conn.send_rcpt("b@x"), conn.send_data()
    with pytest.raises(SMTPStateError, match="QUIT is not allowed while DATA waits for its reply"):
        conn.send_quit()
    events(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    assert conn.state is State.DATA and not conn.can_quit
    with pytest.raises(SMTPStateError, match="RSET is not allowed while the message content"):
        conn.send_rset()
    conn.send_content(b"x\r\n.\r\n")
    conn.end_data()
    assert conn.state is State.SESSION and conn.can_quit


def test_content_goes_out_only_after_a_354():
    conn = ready()
    conn.send_mail("a@x"), conn.send_rcpt("b@x"), conn.send_data()
    with pytest.raises(SMTPStateError, match="content"):
        conn.send_content(b"too early\r\n")
    events(conn, b"250 ok\r\n250 ok\r\n554 no\r\n")
    assert conn.state is State.TRANSACTION   # refused: RSET comes next
    with pytest.raises(SMTPStateError):
        conn.send_content(b"refused\r\n")


def test_a_server_closing_moves_any_state_to_closed():
    conn = ready()
    conn.start_auth("bob", "pw")
    assert conn.state is State.AUTH
    events(conn, b"421 4.3.2 bye\r\n")
    assert conn.state is State.CLOSED and not conn.can_quit
