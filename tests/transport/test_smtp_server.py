"""The SMTP server role as a pure state machine, driven with byte strings: what a client
sends goes in, events and the exact reply bytes come out. Replies are read back with the
client role's ReplyReader and Capabilities, the same parsing mimekit's own client uses."""

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimekit.transport.sansio import NEED_DATA
from mimekit.transport.smtp.protocol import (Capabilities, DataReply, EhloReply, Greeting, MailReply,
                                             MessageReply, QuitReply, RcptReply, Reply, ReplyReader,
                                             SMTPProtocol, SMTPStateError)
from mimekit.transport.smtp.server import (MAX_COMMAND_LINE, MAX_ERRORS, MAX_QUEUED_REPLIES, Bdat, ConnectionClosed, Content,
                                           ContentEnd, ContentTooLarge, Credentials, DataStart, Decision, Ehlo,
                                           Mail, Quit, Rcpt, Reset, ServiceClosing, SMTPServerProtocol, StartTLS)
from strategies import chunkings

HOST = "mx.serve.test"
PASSWORD = "s3cret"


def server(max_size: int = 10_000, max_recipients: int = 5, **options) -> SMTPServerProtocol:
    proto = SMTPServerProtocol(HOST, max_size, max_recipients, **options)
    proto.greet()
    return proto


def decide(proto: SMTPServerProtocol, event) -> None:
    """What a session decides, scripted: recipients at refused.test are unknown, the
    message gets a queue id, the password is PASSWORD."""
    if isinstance(event, Rcpt) and event.address.endswith("@refused.test"):
        proto.refuse(550, "5.1.1", "no such user here")
    elif isinstance(event, ContentEnd) and event.last:
        proto.accept("Ok: queued as Q1")
    elif isinstance(event, Credentials) and event.password != PASSWORD:
        proto.refuse(535, "5.7.8", "Authentication credentials invalid")
    else:
        proto.accept()


def converse(proto: SMTPServerProtocol, *chunks: bytes, decider=decide, handshake: bool = True
             ) -> tuple[list, list[Reply]]:
    """Feed the chunks (b"" is the client closing), answer each decision (and, with
    `handshake`, pretend the TLS handshake after STARTTLS), and return the events and the
    replies the server queued, parsed by the client role's ReplyReader. Adjacent Content
    events are joined, and the Content just before a ContentTooLarge left out (the session
    throws it away), so that any split of the same bytes compares equal."""
    found = []
    for chunk in chunks:
        proto.receive_data(chunk)
        while (event := proto.next_event()) is not NEED_DATA:
            if isinstance(event, Content) and found and isinstance(found[-1], Content):
                found[-1] = Content(found[-1].data + event.data)
            elif isinstance(event, ContentTooLarge) and found and isinstance(found[-1], Content):
                found[-1] = event
            else:
                found.append(event)
            if isinstance(event, Decision):
                decider(proto, event)
            if isinstance(event, StartTLS):
                if not handshake:
                    return found, replies(proto)
                proto.tls_started()
            if isinstance(event, ConnectionClosed):
                break
    return found, replies(proto)


def replies(proto: SMTPServerProtocol) -> list[Reply]:
    reader = ReplyReader()
    reader.feed(bytes(proto.data_to_send()))
    out = []
    while (reply := reader.next_reply()) is not None:
        out.append(reply)
    assert not reader.has_unread_bytes
    return out


def codes(reply_list: list[Reply]) -> list[str]:
    return [f"{r.code} {r.enhanced}" if r.enhanced else str(r.code) for r in reply_list]


def greeted(**options) -> SMTPServerProtocol:
    proto = server(**options)
    [greeting] = replies(proto)
    assert greeting == Reply(220, (f"{HOST} ESMTP mimekit",))
    converse(proto, b"EHLO client.test\r\n")
    return proto


def in_transaction(**options) -> SMTPServerProtocol:
    proto = greeted(**options)
    events, got = converse(proto, b"MAIL FROM:<a@client.test>\r\nRCPT TO:<b@serve.test>\r\n")
    assert codes(got) == ["250 2.1.0", "250 2.1.5"]
    return proto


# --- EHLO and the capabilities -----------------------------------------------------------

def test_ehlo_offers_what_the_client_role_reads_back():
    proto = server(starttls=True, auth=True)
    events, got = converse(proto, b"EHLO client.test\r\n")
    assert events == [Ehlo("client.test", True)]
    ehlo = got[-1]
    assert ehlo.code == 250 and ehlo.lines[0] == f"{HOST} Hello client.test"
    caps = Capabilities.from_ehlo(ehlo)
    assert caps.keywords == {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING",
                             "STARTTLS"}
    assert caps.size_limit == 10_000
    assert not caps.auth          # no login before TLS


def test_auth_is_offered_over_tls_or_when_allowed_in_plain_text():
    for options in ({"tls": True}, {"allow_insecure_auth": True}):
        proto = server(starttls=True, auth=True, **options)
        caps = Capabilities.from_ehlo(converse(proto, b"EHLO c\r\n")[1][-1])
        assert caps.auth == {"PLAIN", "LOGIN"}
        assert ("STARTTLS" in caps) is not options.get("tls", False)
    caps = Capabilities.from_ehlo(converse(server(tls=True), b"EHLO c\r\n")[1][-1])
    assert not caps.auth            # no users file: no AUTH


def test_helo_offers_nothing_and_takes_no_parameters():
    proto = server()
    events, got = converse(proto, b"HELO old.test\r\nMAIL FROM:<a@b.test> BODY=8BITMIME\r\nMAIL FROM:<a@b.test>\r\n")
    assert events[0] == Ehlo("old.test", False) and got[1].lines == (f"{HOST} Hello old.test",)
    assert codes(got[2:]) == ["555 5.5.4", "250 2.1.0"]


def test_ehlo_needs_a_name_without_spaces_or_controls():
    _, got = converse(server(), b"EHLO\r\nEHLO a b\r\nHELO <x>\r\n")
    assert codes(got[1:]) == ["501 5.5.4"] * 3


def test_ehlo_in_a_transaction_drops_it():
    proto = in_transaction()
    events, got = converse(proto, b"EHLO again.test\r\nRCPT TO:<b@serve.test>\r\n")
    assert events == [Reset(), Ehlo("again.test", True)]
    assert codes(got[1:]) == ["503 5.5.1"]


# --- a whole transaction, pipelined -------------------------------------------------------

def test_a_pipelined_session_is_answered_in_order():
    proto = server()
    script = (b"EHLO client.test\r\nMAIL FROM:<a@client.test> SIZE=20 BODY=8BITMIME\r\n"
              b"RCPT TO:<b@serve.test>\r\nRCPT TO:<x@refused.test>\r\nRCPT TO:<c@serve.test>\r\nDATA\r\n")
    events, got = converse(proto, script)
    assert events == [Ehlo("client.test", True), Mail("a@client.test", {"SIZE": "20", "BODY": "8BITMIME"}),
                      Rcpt("b@serve.test"), Rcpt("x@refused.test"), Rcpt("c@serve.test"), DataStart()]
    assert codes(got) == ["220", "250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354"]
    events, got = converse(proto, b"Subject: hi\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n")
    assert events == [Content(b"Subject: hi\r\n\r\n.leading dot\r\n"), ContentEnd(True, 29), Quit()]
    assert [str(r) for r in got] == ["250 2.0.0 Ok: queued as Q1", f"221 2.0.0 {HOST} Bye"]


def test_pipelined_commands_wait_while_their_replies_are_unwritten():
    """One read of pipelined HELPs would queue twenty times its size in replies: past
    MAX_QUEUED_REPLIES the protocol says NEED_DATA with replies to send, and goes on once
    they are taken, so every command is answered and the outbox stays bounded."""
    proto = greeted()
    commands = b"HELP\r\nNOOP\r\n" * (1024 * 1024 // 12)
    longest_batch = answered = 0
    for start in range(0, len(commands), 256 * 1024):   # what ServerSession reads at once
        proto.receive_data(commands[start:start + 256 * 1024])
        while True:
            assert proto.next_event() is NEED_DATA
            if not proto.bytes_to_send:
                break
            batch = replies(proto)
            longest_batch = max(longest_batch, sum(len(reply.to_bytes()) for reply in batch))
            answered += len(batch)
    assert answered == commands.count(b"\n")
    assert MAX_QUEUED_REPLIES < longest_batch < MAX_QUEUED_REPLIES + 200


def test_nothing_after_quit_is_read():
    proto = greeted()
    events, got = converse(proto, b"QUIT\r\nMAIL FROM:<a@b.test>\r\n", b"NOOP\r\n", b"")
    assert events == [Quit(), ConnectionClosed(False)]
    assert codes(got) == ["221 2.0.0"]


def test_the_client_role_and_the_server_role_talk():
    """mimekit's own client against the server role, bytes passed by hand both ways."""
    client, proto = SMTPProtocol(tls=True), server(max_size=1000, tls=True)
    seen, server_events = [], []

    def pump():
        while True:
            to_server, to_client = bytes(client.data_to_send()), b""
            if to_server:
                proto.receive_data(to_server)
                while (event := proto.next_event()) is not NEED_DATA:
                    server_events.append(event)
                    if isinstance(event, Decision):
                        decide(proto, event)
            to_client = bytes(proto.data_to_send())
            if to_client:
                client.receive_data(to_client)
                while (event := client.next_event()) is not NEED_DATA:
                    seen.append(event)
            if not to_server and not to_client:
                return

    pump()
    client.send_ehlo("client.test")
    pump()
    client.send_mail("a@client.test", size=10)
    client.send_rcpt("b@serve.test")
    client.send_data()
    pump()
    client.send_content(b"Hi\r\n.\r\n")
    client.end_data()
    client.send_quit()
    pump()
    assert [type(e) for e in seen] == [Greeting, EhloReply, MailReply, RcptReply, DataReply, MessageReply,
                                       QuitReply]
    assert seen[1].capabilities.size_limit == 1000
    assert seen[5].queue_id == "Q1"
    assert Content(b"Hi\r\n") in server_events


# --- commands the protocol answers itself ------------------------------------------------

def test_noop_vrfy_help_rset_and_unknown_commands():
    proto = greeted()
    _, got = converse(proto, b"NOOP\r\nnoop whatever\r\nVRFY bob\r\nVRFY\r\nHELP\r\nRSET\r\nRSET x\r\n"
                             b"EXPN list\r\nFROB\r\n\r\n")
    assert codes(got) == ["250 2.0.0", "250 2.0.0", "252 2.5.0", "501 5.5.4", "214 2.0.0", "250 2.0.0",
                          "501 5.5.4", "502 5.5.1", "500 5.5.2", "500 5.5.2"]


def test_commands_out_of_sequence_get_503():
    proto = server()
    _, got = converse(proto, b"MAIL FROM:<a@b.test>\r\nRCPT TO:<b@c.test>\r\nDATA\r\nEHLO c\r\n"
                             b"RCPT TO:<b@c.test>\r\nDATA\r\nMAIL FROM:<a@b.test>\r\nMAIL FROM:<a@b.test>\r\nDATA\r\n")
    assert codes(got[1:]) == ["503 5.5.1", "503 5.5.1", "503 5.5.1", "250",
                              "503 5.5.1", "503 5.5.1", "250 2.1.0", "503 5.5.1", "554 5.5.1"]


def test_mail_from_syntax_and_parameters():
    proto = greeted()
    lines = [b"MAIL FROM:a@b.test", b"MAIL TO:<a@b.test>", b"MAIL FROM:<a b@c.test>", b"MAIL FROM:<not-an-address>",
             b"MAIL FROM:<a@b.test> SIZE=big", b"MAIL FROM:<a@b.test> SIZE=10001", b"MAIL FROM:<\xc3\xa9@b.test>"]
    _, got = converse(proto, b"".join(line + b"\r\n" for line in lines))
    assert codes(got) == ["501 5.5.4", "501 5.5.4", "553 5.1.7", "553 5.1.7", "501 5.5.4", "552 5.3.4", "553 5.6.7"]
    proto = greeted()
    lines = [b"MAIL FROM:<a@b.test> RET=FULL", b"MAIL FROM:<a@b.test> BODY=BINARYMIME",
             b"MAIL FROM:<a@b.test> SMTPUTF8=yes", b"MAIL FROM:<a@b.test> SIZE", b"MAIL FROM:<a@b.test> SIZE=1 SIZE=2",
             b"MAIL FROM:<a@b.test>\x00 SIZE=1"]
    _, got = converse(proto, b"".join(line + b"\r\n" for line in lines))
    assert codes(got) == ["555 5.5.4", "555 5.5.4", "501 5.5.4", "501 5.5.4", "501 5.5.4", "501 5.5.2"]
    events, got = converse(proto, "MAIL FROM:<é@b.test> SMTPUTF8 AUTH=<>\r\n".encode())
    assert events == [Mail("é@b.test", {"SMTPUTF8": None, "AUTH": "<>"})] and codes(got) == ["250 2.1.0"]


def test_the_null_sender_and_a_source_route():
    proto = greeted()
    events, _ = converse(proto, b"MAIL FROM:<>\r\nRCPT TO:<@relay.test,@other.test:b@serve.test>\r\n")
    assert events == [Mail("", {}), Rcpt("b@serve.test")]


def test_rcpt_syntax_postmaster_and_parameters():
    proto = in_transaction()
    events, got = converse(proto, b"RCPT TO:<>\r\nRCPT TO:<nobody>\r\nRCPT TO:<b@serve.test> NOTIFY=NEVER\r\n"
                                  b"RCPT TO:<Postmaster>\r\nRCPT TO:b@serve.test\r\n")
    assert events == [Rcpt("Postmaster")]
    assert codes(got) == ["501 5.1.3", "553 5.1.3", "555 5.5.4", "250 2.1.5", "501 5.5.4"]


def test_recipients_are_capped():
    proto = greeted(max_recipients=2)
    rcpts = b"".join(b"RCPT TO:<r%d@serve.test>\r\n" % n for n in range(4))
    events, got = converse(proto, b"MAIL FROM:<a@b.test>\r\n" + rcpts)
    assert sum(isinstance(e, Rcpt) for e in events) == 2
    assert codes(got) == ["250 2.1.0", "250 2.1.5", "250 2.1.5", "452 4.5.3", "452 4.5.3"]


def test_refused_recipients_do_not_count_toward_the_cap_and_data_needs_one_accepted():
    proto = greeted(max_recipients=1)
    _, got = converse(proto, b"MAIL FROM:<a@b.test>\r\nRCPT TO:<x@refused.test>\r\nDATA\r\n"
                             b"RCPT TO:<b@serve.test>\r\nDATA\r\n")
    assert codes(got) == ["250 2.1.0", "550 5.1.1", "554 5.5.1", "250 2.1.5", "354"]


def test_every_final_reply_carries_an_enhanced_code():
    """RFC 2034 §3: all but the greeting and the EHLO/HELO reply (and the 334/354 go-aheads)."""
    proto = server(starttls=True, auth=True, allow_insecure_auth=True)
    _, got = converse(proto, b"EHLO c\r\nHELP\r\nVRFY x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<b@c.test>\r\nRSET\r\n"
                             b"AUTH PLAIN\r\n*\r\nSTARTTLS x\r\nBDAT x\r\nFOO\r\nQUIT\r\n")
    assert all(r.enhanced for r in got[2:] if r.code not in (334, 354)), codes(got)


def test_control_characters_in_a_command_are_refused():
    proto = greeted()
    _, got = converse(proto, b"NOOP a\x1bb\r\nRCPT\x00 TO:<a@b.test>\r\nVRFY \xff\r\n")
    assert codes(got) == ["501 5.5.2", "500 5.5.2", "500 5.5.2"]


# --- DATA ------------------------------------------------------------------------------------

def test_data_is_unstuffed_and_streamed_as_it_arrives():
    proto = in_transaction()
    converse(proto, b"DATA\r\n")
    events, got = converse(proto, b"line one\r\n..two\r\n")
    assert events == [Content(b"line one\r\n.two")] and got == []   # a CRLF may start the end: held
    events, got = converse(proto, b".\r")
    assert events == []
    events, got = converse(proto, b"\nNOOP\r\n")
    assert events == [Content(b"\r\n"), ContentEnd(True, 16)]
    assert codes(got) == ["250 2.0.0", "250 2.0.0"]


def test_an_empty_message_and_a_bare_lf_dot_that_does_not_end_the_data():
    proto = in_transaction()
    events, _ = converse(proto, b"DATA\r\n.\r\n")
    assert events == [DataStart(), ContentEnd(True, 0)]
    proto = in_transaction()
    # SMTP smuggling: only CRLF "." CRLF ends the data; "\n.\n" and "\r\n.\n" are content
    content = b"a\n.\nMAIL FROM:<x@y.test>\r\n.\nb\r\n"
    events, _ = converse(proto, b"DATA\r\n" + content + b".\r\n")
    assert events == [DataStart(), Content(content), ContentEnd(True, len(content))]


def test_a_refused_data_leaves_the_transaction_open():
    proto = in_transaction()
    _, got = converse(proto, b"DATA\r\nDATA\r\n", decider=lambda p, e: p.refuse(452, "4.3.1", "full"))
    assert codes(got) == ["452 4.3.1", "452 4.3.1"]


def test_content_past_the_size_limit_is_dropped_and_refused_at_the_end():
    proto = in_transaction(max_size=100)
    converse(proto, b"DATA\r\n")
    events, got = converse(proto, b"x" * 60 + b"\r\n", b"y" * 60 + b"\r\n", b"z" * 10_000 + b"\r\n")
    assert events == [ContentTooLarge(100)] and got == []
    events, got = converse(proto, b".\r\nMAIL FROM:<a@b.test>\r\n")
    assert events == [Mail("a@b.test", {})]
    assert codes(got) == ["552 5.3.4", "250 2.1.0"]


def test_the_client_closing_mid_data_is_reported():
    proto = in_transaction()
    events, _ = converse(proto, b"DATA\r\npart of a message\r\n", b"")
    assert events[-1] == ConnectionClosed(True)


# --- BDAT (CHUNKING) -----------------------------------------------------------------------

def test_bdat_chunks_carry_their_bytes_as_they_are():
    proto = in_transaction()
    events, got = converse(proto, b"BDAT 6\r\na\r\n.\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
    assert events == [Bdat(6, False), Content(b"a\r\n.\r\n"), ContentEnd(False, 6),
                      Bdat(6, True), Content(b"QUIT\r\n"), ContentEnd(True, 12)]
    assert codes(got) == ["250 2.0.0", "250 2.0.0", "250 2.0.0"]
    assert got[1].lines == ("Ok: queued as Q1",)


def test_bdat_zero_last_ends_the_message():
    proto = in_transaction()
    events, _ = converse(proto, b"BDAT 3\r\nabcBDAT 0 LAST\r\n")
    assert events == [Bdat(3, False), Content(b"abc"), ContentEnd(False, 3), Bdat(0, True), ContentEnd(True, 3)]


def test_bdat_out_of_a_transaction_drops_its_chunk_unread():
    proto = greeted()
    events, got = converse(proto, b"BDAT 6\r\nQUIT\r\nNOOP\r\nBDAT x\r\n")
    assert events == [] and codes(got) == ["503 5.5.1", "250 2.0.0", "501 5.5.4"]


def test_a_refused_chunk_ends_the_transaction_and_the_pipelined_ones_are_dropped():
    proto = in_transaction()
    refuse_chunks = lambda p, e: p.refuse(452, "4.3.1", "full") if isinstance(e, ContentEnd) else p.accept()
    events, got = converse(proto, b"BDAT 4\r\nabcdBDAT 4 LAST\r\nefgh", decider=refuse_chunks)
    assert events == [Bdat(4, False), Content(b"abcd"), ContentEnd(False, 4)]
    assert codes(got) == ["452 4.3.1", "503 5.5.1"]


def test_chunks_pipelined_behind_a_refused_one_are_no_client_errors():
    """RFC 3030 §4.2: a refused chunk ends the transaction, and the client has already sent
    the next ones: each gets 503, but the session goes on (no 421 for too many errors)."""
    proto = in_transaction()
    refuse_chunks = lambda p, e: p.refuse(552, "5.3.4", "too big") if isinstance(e, ContentEnd) else p.accept()
    chunks = b"BDAT 2\r\nab" * (MAX_ERRORS + 2) + b"BDAT 2 LAST\r\nyz"
    events, got = converse(proto, chunks + b"MAIL FROM:<a@client.test>\r\n", decider=refuse_chunks)
    assert codes(got) == ["552 5.3.4"] + ["503 5.5.1"] * (MAX_ERRORS + 2) + ["250 2.1.0"]
    assert proto.errors == 0


def test_bdat_past_the_size_limit():
    proto = in_transaction(max_size=5)
    events, got = converse(proto, b"BDAT 4\r\nabcdBDAT 4\r\nefghBDAT 1 LAST\r\niRSET\r\n")
    assert events == [Bdat(4, False), Content(b"abcd"), ContentEnd(False, 4), Bdat(4, False), ContentTooLarge(5)]
    assert codes(got) == ["250 2.0.0", "552 5.3.4", "503 5.5.1", "250 2.0.0"]


# --- limits and garbage ------------------------------------------------------------------

def test_a_10_mb_line_is_refused_once_and_never_buffered():
    proto = greeted()
    chunk = 256 * 1024                   # what a session reads at once
    for _ in range(40):                  # 10 MiB without a line end
        proto.receive_data(b"A" * chunk)
        assert len(proto._buffer) <= MAX_COMMAND_LINE + chunk
        assert proto.next_event() is NEED_DATA
        assert len(proto._buffer) <= MAX_COMMAND_LINE
    events, got = converse(proto, b"AAAA\r\nNOOP\r\n")
    assert events == []
    assert codes(got) == ["500 5.5.2", "250 2.0.0"]
    assert got[0].lines == ("Line too long",)


def test_a_line_at_the_limit_is_read_and_one_byte_more_is_not():
    proto = greeted()
    fits = b"NOOP " + b"x" * (MAX_COMMAND_LINE - 7) + b"\r\n"
    assert len(fits) == MAX_COMMAND_LINE
    _, got = converse(proto, fits, b"NOOP " + b"x" * (MAX_COMMAND_LINE - 6) + b"\r\n")
    assert codes(got) == ["250 2.0.0", "500 5.5.2"]


def test_endless_garbage_ends_the_session_after_ten_errors():
    proto = greeted()
    events, got = converse(proto, b"GET / HTTP/1.1\r\nHost: x\r\n" * 20)
    assert events == [ServiceClosing("too many errors")]
    assert codes(got) == ["500 5.5.2"] * MAX_ERRORS + ["421 4.7.0"]
    proto.receive_data(b"\x00" * 1_000_000)
    assert proto.next_event() is NEED_DATA and len(proto._buffer) == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_get_replies_and_never_an_exception(garbage):
    proto = greeted(starttls=True, auth=True)
    events, got = converse(proto, garbage, b"")
    assert isinstance(events[-1], ConnectionClosed)
    assert len(proto._buffer) < MAX_COMMAND_LINE


# --- STARTTLS ------------------------------------------------------------------------------

def test_starttls_then_the_session_starts_over():
    proto = greeted(starttls=True, auth=True)
    events, got = converse(proto, b"STARTTLS\r\n", handshake=False)
    assert events == [StartTLS()] and codes(got) == ["220 2.0.0"]
    with pytest.raises(SMTPStateError):
        proto.next_event()      # the handshake comes first
    proto.tls_started()
    _, got = converse(proto, b"MAIL FROM:<a@b.test>\r\nEHLO c\r\nSTARTTLS\r\n")
    assert codes(got[:1]) == ["503 5.5.1"]
    caps = Capabilities.from_ehlo(got[1])
    assert "STARTTLS" not in caps and caps.auth == {"PLAIN", "LOGIN"}
    assert codes(got[2:]) == ["503 5.5.1"]


def test_commands_pipelined_after_starttls_are_never_read():
    """CVE-2011-0411: a man in the middle appends commands to the client's STARTTLS."""
    proto = greeted(starttls=True)
    events, got = converse(proto, b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n")
    assert events == [ServiceClosing("commands pipelined after STARTTLS")]
    assert codes(got) == ["421 4.7.0"]


def test_starttls_when_not_offered_or_in_a_transaction():
    _, got = converse(greeted(), b"STARTTLS\r\n")
    assert codes(got) == ["502 5.5.1"]
    _, got = converse(in_transaction(starttls=True), b"STARTTLS\r\n")
    assert codes(got) == ["503 5.5.1"]
    _, got = converse(server(starttls=True), b"STARTTLS\r\n")
    assert codes(got[1:]) == ["503 5.5.1"]


# --- AUTH ----------------------------------------------------------------------------------

def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_auth_plain_with_an_initial_response():
    proto = greeted(auth=True, tls=True)
    events, got = converse(proto, b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n")
    assert events == [Credentials("PLAIN", "alice", PASSWORD)] and codes(got) == ["235 2.7.0"]
    assert proto.authenticated_user == "alice"
    _, got = converse(proto, b"AUTH PLAIN\r\nEHLO c\r\n")
    assert codes(got[:1]) == ["503 5.5.1"] and not Capabilities.from_ehlo(got[1]).auth


def test_auth_plain_after_a_challenge_and_auth_login():
    proto = greeted(auth=True, tls=True)
    events, got = converse(proto, b"AUTH PLAIN\r\n", b64(b"alice\0alice\0wrong") + b"\r\n")
    assert events == [Credentials("PLAIN", "alice", "wrong")]
    assert codes(got) == ["334", "535 5.7.8"] and got[0].lines == ("",)
    assert proto.authenticated_user is None
    events, got = converse(proto, b"AUTH LOGIN\r\n" + b64(b"bob") + b"\r\n" + b64(PASSWORD.encode()) + b"\r\n")
    assert events == [Credentials("LOGIN", "bob", PASSWORD)]
    assert [r.lines for r in got[:2]] == [("VXNlcm5hbWU6",), ("UGFzc3dvcmQ6",)] and codes(got[2:]) == ["235 2.7.0"]


def test_auth_login_with_the_user_in_the_command():
    proto = greeted(auth=True, tls=True)
    events, got = converse(proto, b"AUTH LOGIN " + b64(b"bob") + b"\r\n" + b64(PASSWORD.encode()) + b"\r\n")
    assert events == [Credentials("LOGIN", "bob", PASSWORD)] and codes(got) == ["334", "235 2.7.0"]


def test_auth_refusals():
    proto = greeted(auth=True, tls=True)
    script = [b"AUTH CRAM-MD5", b"AUTH PLAIN", b"*", b"AUTH PLAIN not-base64!", b"AUTH PLAIN " + b64(b"no-nul"),
              b"AUTH PLAIN " + b64(b"mallory\0alice\0" + PASSWORD.encode()), b"AUTH LOGIN", b64(b"\xff"), b64(b"x")]
    events, got = converse(proto, b"".join(line + b"\r\n" for line in script))
    assert events == []
    assert codes(got) == ["504 5.5.4", "334", "501 5.7.0", "501 5.5.2", "501 5.5.2", "535 5.7.8", "334", "334",
                          "501 5.5.2"]
    _, got = converse(in_transaction(auth=True, tls=True), b"AUTH PLAIN " + b64(b"\0a\0b") + b"\r\n")
    assert codes(got) == ["503 5.5.1"]


def test_auth_needs_tls_and_a_users_file():
    _, got = converse(greeted(auth=True), b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n")
    assert codes(got) == ["538 5.7.11"]
    _, got = converse(greeted(tls=True), b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n")
    assert codes(got) == ["502 5.5.1"]
    events, got = converse(greeted(auth=True, allow_insecure_auth=True),
                           b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n")
    assert codes(got) == ["235 2.7.0"]


def test_starttls_forgets_a_login_made_in_plain_text():
    proto = greeted(starttls=True, auth=True, allow_insecure_auth=True)
    converse(proto, b"AUTH PLAIN " + b64(b"\0alice\0" + PASSWORD.encode()) + b"\r\n")
    assert proto.authenticated_user == "alice"
    converse(proto, b"STARTTLS\r\n")
    assert proto.authenticated_user is None and proto.helo is None


# --- the session's calls -------------------------------------------------------------------

def test_decisions_are_answered_once_and_in_turn():
    proto = greeted()
    with pytest.raises(SMTPStateError):
        proto.accept()
    proto.receive_data(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<b@c.test>\r\nNOOP\r\n")
    assert isinstance(proto.next_event(), Mail) and isinstance(proto.next_event(), Rcpt)
    with pytest.raises(SMTPStateError):
        proto.next_event()      # RCPT is not answered yet: NOOP must wait
    with pytest.raises(SMTPStateError):
        proto.refuse(250, "2.0.0", "not a refusal")
    proto.refuse(550, "5.1.1", "no such user here")
    assert proto.next_event() is NEED_DATA
    assert codes(replies(proto)) == ["250 2.1.0", "550 5.1.1", "250 2.0.0"]


def test_close_service_says_421_and_reads_nothing_more():
    proto = greeted()
    proto.close_service("timeout")
    assert [str(r) for r in replies(proto)] == [f"421 4.3.2 {HOST} timeout; closing connection"]
    proto = greeted()
    proto.close_service("timed out", "4.4.2")
    assert [str(r) for r in replies(proto)] == [f"421 4.4.2 {HOST} timed out; closing connection"]
    events, got = converse(proto, b"NOOP\r\n")
    assert events == [] and got == []


# --- any split of the client's bytes -------------------------------------------------------

SCRIPT = (b"EHLO client.test\r\nMAIL FROM:<a@client.test> SIZE=100\r\nRCPT TO:<b@serve.test>\r\n"
          b"RCPT TO:<x@refused.test>\r\nDATA\r\n"
          b"Subject: split\r\n\r\n..dot\r\n.\r\r\n\n.x\r\n.\r\n"
          b"MAIL FROM:<a@client.test>\r\nRCPT TO:<c@serve.test>\r\nBDAT 5\r\n\r\n.\r\nBDAT 2 LAST\r\nyz"
          b"NOOP\r\n" + b"L" * (MAX_COMMAND_LINE + 10) + b"\r\nFROB\r\nAUTH PLAIN\r\n" + b64(b"\0u\0" + PASSWORD.encode())
          + b"\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<d@serve.test>\r\nDATA\r\n" + b"w" * 200 + b"\r\n.\r\n"
          b"RSET\r\nQUIT\r\n")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_split_of_the_client_bytes_gives_the_same_events_and_replies(data):
    whole = converse(server(max_size=150, auth=True, allow_insecure_auth=True), SCRIPT, b"")
    pieces = [piece for piece in data.draw(chunkings(SCRIPT)) if piece]   # b"" would be the end of stream
    assert converse(server(max_size=150, auth=True, allow_insecure_auth=True), *pieces, b"") == whole


def test_the_script_does_what_it_says():
    events, got = converse(server(max_size=150, auth=True, allow_insecure_auth=True), SCRIPT)
    contents = [e.data for e in events if isinstance(e, Content)]
    assert contents == [b"Subject: split\r\n\r\n.dot\r\n.\r\r\n\n.x\r\n", b"\r\n.\r\n", b"yz"]
    assert ContentTooLarge(150) in events and Credentials("PLAIN", "u", PASSWORD) in events
    assert codes(got)[-6:] == ["250 2.1.0", "250 2.1.5", "354", "552 5.3.4", "250 2.0.0", "221 2.0.0"]


def test_a_too_long_auth_response_ends_the_exchange():
    """The 500 for an over-long line ends the AUTH exchange: a client that read it sends a
    command next, which must be read as one, not as the SASL response still awaited."""
    proto = greeted(auth=True, tls=True)
    events, got = converse(proto, b"AUTH LOGIN\r\n" + b"A" * (MAX_COMMAND_LINE + 10) + b"\r\nNOOP\r\n")
    assert events == [] and codes(got) == ["334", "500 5.5.2", "250 2.0.0"]
