"""The POP3 server role as a pure state machine: bytes in, replies and events out."""

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.streams.dot_stuffing import DotUnstuffer
from mimekit.transport.pop3.server import (MAX_COMMAND_LINE, MAX_ERRORS, OUTPUT_HIGH_WATER, Closing,
                                           ConnectionClosed, Login, POP3ServerProtocol, Quit,
                                           Retrieve, StartTLS, State, TopLimiter, unique_id)
from mimekit.transport.sansio import NEED_DATA
from strategies import chunkings

MESSAGES = [("1700000000.M1P1Q0R00.host", 120), ("1700000001.M1P1Q1R00.host", 30), ("1700000002.M1P1Q2R00.host", 7)]


def run(proto: POP3ServerProtocol, data: bytes = b"") -> tuple[list, bytes]:
    """Feed `data`; every event up to NEED_DATA (or the end) and everything queued to send."""
    if data:
        proto.receive_data(data)
    events = []
    while (event := proto.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, (Login, Retrieve, Quit, Closing, ConnectionClosed)):
            break
    return events, bytes(proto.data_to_send())


def fresh(**options) -> POP3ServerProtocol:
    proto = POP3ServerProtocol("mx.test", **options)
    assert proto.data_to_send() == b"+OK mx.test POP3 server ready\r\n"
    return proto


def logged_in(messages=MESSAGES) -> POP3ServerProtocol:
    proto = fresh(insecure_plaintext_auth=True)
    events, _ = run(proto, b"USER alice\r\nPASS secret\r\n")
    assert events == [Login("alice", "secret", "USER")]
    proto.open_maildrop("alice", list(messages))
    assert proto.state is State.TRANSACTION
    proto.data_to_send()
    return proto


def reply(proto, line: bytes) -> bytes:
    events, out = run(proto, line)
    assert events == []
    return out


def retrieve(proto, stored: bytes, chunks=None) -> bytes:
    """Answer a Retrieve with `stored` (in `chunks`), as a session does."""
    proto.message_follows()
    for chunk in chunks if chunks is not None else [stored]:
        if not proto.message_data(chunk):
            break
    proto.message_end()
    return bytes(proto.data_to_send())


# ------------------------------------------------------------ AUTHORIZATION

def test_capa_before_login_offers_stls_and_no_login_in_the_clear():
    out = reply(fresh(tls_available=True), b"CAPA\r\n")
    assert out.split(b"\r\n") == [b"+OK capability list follows", b"TOP", b"UIDL", b"RESP-CODES", b"PIPELINING",
                                  b"AUTH-RESP-CODE", b"STLS", b"IMPLEMENTATION mimekit", b".", b""]


def test_capa_offers_user_and_sasl_plain_once_login_is_allowed():
    out = reply(fresh(insecure_plaintext_auth=True), b"capa\r\n")
    assert b"\r\nUSER\r\nSASL PLAIN\r\n" in out and b"STLS" not in out


@pytest.mark.parametrize("line", [b"USER alice\r\n", b"PASS x\r\n", b"AUTH PLAIN AGFsaWNlAHg=\r\n"])
def test_logins_in_the_clear_are_refused_with_auth_code(line):
    assert reply(fresh(tls_available=True), line) == \
        b"-ERR [AUTH] plaintext authentication is disallowed without TLS: use STLS first\r\n"


def test_stls_then_login_is_allowed():
    proto = fresh(tls_available=True)
    events, out = run(proto, b"STLS\r\n")
    assert events == [StartTLS()] and out == b"+OK begin TLS negotiation\r\n"
    assert proto.secure
    assert b"STLS" not in reply(proto, b"CAPA\r\n")
    assert reply(proto, b"STLS\r\n") == b"-ERR TLS is already active\r\n"
    assert run(proto, b"USER bob\r\nPASS pw\r\n")[0] == [Login("bob", "pw", "USER")]


def test_stls_forgets_a_user_given_in_the_clear():
    """RFC 2595 §4: what the client said before TLS is discarded; a USER sent in the clear
    (a man in the middle may have written it) must not pair with a PASS sent over TLS."""
    proto = fresh(tls_available=True, insecure_plaintext_auth=True)
    assert reply(proto, b"USER mallory\r\n") == b"+OK send the password\r\n"
    assert run(proto, b"STLS\r\n")[0] == [StartTLS()]
    assert reply(proto, b"PASS secret\r\n") == b"-ERR give USER first\r\n"


def test_stls_without_a_certificate_is_refused():
    assert reply(fresh(), b"STLS\r\n") == b"-ERR STLS is not offered: the server has no certificate\r\n"


def test_commands_pipelined_behind_stls_end_the_session():
    """They would otherwise be taken as sent over TLS (CVE-2011-0411)."""
    proto = fresh(tls_available=True)
    events, out = run(proto, b"STLS\r\nUSER mallory\r\n")
    assert events == [Closing("commands pipelined after STLS")]
    assert out == b"-ERR commands pipelined after STLS\r\n" and not proto.secure


def test_password_is_the_rest_of_the_line():
    proto = fresh(insecure_plaintext_auth=True)
    assert run(proto, b"USER alice\r\nPASS  two words \r\n")[0] == [Login("alice", " two words ", "USER")]


def test_pass_needs_user_first_and_user_a_name():
    proto = fresh(insecure_plaintext_auth=True)
    assert reply(proto, b"PASS x\r\n") == b"-ERR give USER first\r\n"
    assert reply(proto, b"USER\r\n") == b"-ERR USER needs a user name\r\n"


def test_login_failures_answer_auth_and_the_third_ends_the_session():
    proto = fresh(insecure_plaintext_auth=True)
    for attempt in range(3):
        events, out = run(proto, b"USER alice\r\nPASS wrong\r\n")
        assert out == b"+OK send the password\r\n" and events == [Login("alice", "wrong", "USER")]
        proto.login_failed()
        events, out = run(proto)
        assert out == b"-ERR [AUTH] authentication failed\r\n"
    assert events == [Closing("too many failed logins")] and proto.state is State.CLOSED


def test_a_failed_pass_needs_user_again():
    proto = fresh(insecure_plaintext_auth=True)
    run(proto, b"USER alice\r\nPASS wrong\r\n")
    proto.login_failed()
    assert run(proto, b"PASS again\r\n")[1] == b"-ERR [AUTH] authentication failed\r\n-ERR give USER first\r\n"


def test_maildrop_in_use():
    proto = fresh(insecure_plaintext_auth=True)
    run(proto, b"USER alice\r\nPASS right\r\n")
    proto.login_refused("IN-USE", "maildrop is locked by another session")
    assert run(proto)[1] == b"-ERR [IN-USE] maildrop is locked by another session\r\n"
    assert proto.state is State.AUTHORIZATION


def plain(*parts: bytes) -> bytes:
    return base64.b64encode(b"\0".join(parts))


def test_auth_plain_with_an_initial_response():
    proto = fresh(insecure_plaintext_auth=True)
    assert run(proto, b"AUTH PLAIN " + plain(b"", b"alice", b"pw") + b"\r\n")[0] == [Login("alice", "pw", "PLAIN")]


def test_auth_plain_with_a_continuation_and_the_same_authzid():
    proto = fresh(insecure_plaintext_auth=True)
    events, out = run(proto, b"AUTH plain\r\n")
    assert (events, out) == ([], b"+ \r\n")
    assert run(proto, plain(b"alice", b"alice", b"pw") + b"\r\n")[0] == [Login("alice", "pw", "PLAIN")]


@pytest.mark.parametrize("response, text", [
    (b"*", b"-ERR [AUTH] authentication cancelled"),
    (b"not base64!", b"-ERR [AUTH] malformed AUTH PLAIN response"),
    (b"=", b"-ERR [AUTH] malformed AUTH PLAIN response"),
    (plain(b"alice", b"pw"), b"-ERR [AUTH] malformed AUTH PLAIN response"),
    (plain(b"", b"alice", b"\xff"), b"-ERR [AUTH] malformed AUTH PLAIN response"),
    (plain(b"root", b"alice", b"pw"), b"-ERR [AUTH] logging in as another user is not supported"),
])
def test_auth_plain_refusals(response, text):
    proto = fresh(insecure_plaintext_auth=True)
    run(proto, b"AUTH PLAIN\r\n")
    assert reply(proto, response + b"\r\n") == text + b"\r\n"
    assert proto.state is State.AUTHORIZATION


def test_auth_lists_mechanisms_and_refuses_others():
    proto = fresh(insecure_plaintext_auth=True)
    assert reply(proto, b"AUTH\r\n") == b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"
    assert reply(proto, b"AUTH CRAM-MD5\r\n") == b"-ERR unsupported SASL mechanism; PLAIN is offered\r\n"


@pytest.mark.parametrize("command", [b"STAT", b"LIST", b"UIDL", b"RETR 1", b"TOP 1 0", b"DELE 1", b"RSET", b"NOOP"])
def test_transaction_commands_before_login(command):
    assert reply(fresh(), command + b"\r\n") == \
        f"-ERR {command.split()[0].decode()} is not allowed before login\r\n".encode()


def test_quit_before_login():
    proto = fresh()
    events, out = run(proto, b"QUIT\r\nSTAT\r\n")
    assert events == [Closing("quit")] and out == b"+OK mx.test POP3 server signing off\r\n"
    assert run(proto) == ([], b"")


def test_unknown_commands_and_too_many_errors():
    proto = fresh()
    assert reply(proto, b"APOP alice 0123\r\n") == b"-ERR unknown command\r\n"
    events, out = run(proto, b"XYZZY\r\n" * (MAX_ERRORS + 5))
    assert events == [Closing("too many errors")]
    assert out == b"-ERR unknown command\r\n" * (MAX_ERRORS - 1) + b"-ERR too many errors, closing the connection\r\n"


def test_bare_lf_ends_a_command_too():
    assert reply(fresh(), b"NOOP\n") == b"-ERR NOOP is not allowed before login\r\n"


def test_client_closing_the_connection():
    proto = fresh()
    proto.receive_data(b"NOO")
    proto.receive_data(b"")
    assert proto.next_event() == ConnectionClosed()


# ---------------------------------------------------------------- long lines

def test_a_long_line_is_refused_and_discarded_without_buffering():
    proto = fresh()
    events, out = run(proto, b"USER " + b"x" * MAX_COMMAND_LINE)
    assert out == b"-ERR line too long\r\n"
    for _ in range(100):                      # 10 MB more of the same line
        assert run(proto, b"y" * 100_000) == ([], b"")
        assert len(proto._buffer) == 0
    assert reply(proto, b"yyy\r\nNOOP\r\n") == b"-ERR NOOP is not allowed before login\r\n"


def test_a_long_line_arriving_whole_is_refused():
    events, out = run(fresh(), b"X" * (MAX_COMMAND_LINE + 1) + b"\r\nQUIT\r\n")
    assert events == [Closing("quit")] and out == b"-ERR line too long\r\n+OK mx.test POP3 server signing off\r\n"


def test_a_long_line_inside_auth_ends_the_exchange():
    """The -ERR ends AUTH for the client, so the server must not read its next command as
    the SASL response."""
    proto = fresh(insecure_plaintext_auth=True)
    assert run(proto, b"AUTH PLAIN\r\n")[1] == b"+ \r\n"
    assert reply(proto, b"x" * (MAX_COMMAND_LINE + 1) + b"\r\n") == b"-ERR line too long\r\n"
    assert reply(proto, b"CAPA\r\n").startswith(b"+OK capability list follows\r\n")


def test_a_long_line_arriving_in_pieces_inside_auth_ends_the_exchange():
    proto = fresh(insecure_plaintext_auth=True)
    run(proto, b"AUTH PLAIN\r\n")
    assert reply(proto, b"x" * (MAX_COMMAND_LINE + 1)) == b"-ERR line too long\r\n"
    assert reply(proto, b"xx\r\nCAPA\r\n").startswith(b"+OK capability list follows\r\n")


# ----------------------------------------------------------- TRANSACTION

def test_login_opens_the_maildrop():
    proto = fresh(insecure_plaintext_auth=True)
    run(proto, b"USER alice\r\nPASS secret\r\n")
    proto.open_maildrop("alice", MESSAGES)
    assert run(proto)[1] == b"+OK maildrop has 3 messages (157 octets)\r\n"
    assert proto.user == "alice"


@pytest.mark.parametrize("command", [b"USER bob", b"PASS x", b"AUTH PLAIN", b"STLS"])
def test_authorization_commands_after_login(command):
    assert reply(logged_in(), command + b"\r\n") == \
        f"-ERR {command.split()[0].decode()} is not allowed after login\r\n".encode()


def test_capa_after_login_offers_no_login():
    out = reply(logged_in(), b"CAPA\r\n")
    assert b"USER" not in out and b"SASL" not in out and b"\r\nTOP\r\n" in out


def test_stat_list_uidl():
    proto = logged_in()
    assert reply(proto, b"STAT\r\n") == b"+OK 3 157\r\n"
    assert reply(proto, b"LIST\r\n") == b"+OK maildrop has 3 messages (157 octets)\r\n1 120\r\n2 30\r\n3 7\r\n.\r\n"
    assert reply(proto, b"LIST 2\r\n") == b"+OK 2 30\r\n"
    assert reply(proto, b"UIDL\r\n") == (b"+OK maildrop has 3 messages (157 octets)\r\n"
                                         b"1 1700000000.M1P1Q0R00.host\r\n2 1700000001.M1P1Q1R00.host\r\n"
                                         b"3 1700000002.M1P1Q2R00.host\r\n.\r\n")
    assert reply(proto, b"uidl 3\r\n") == b"+OK 3 1700000002.M1P1Q2R00.host\r\n"


@pytest.mark.parametrize("argument, text", [
    (b"x", b"-ERR a message number is needed"), (b"-1", b"-ERR a message number is needed"),
    (b"1" * 21, b"-ERR a message number is needed"), (b"0", b"-ERR no message 0"), (b"4", b"-ERR no message 4"),
    (b"99999999999999999999", b"-ERR no message 99999999999999999999"),
])
@pytest.mark.parametrize("command", [b"LIST", b"UIDL", b"RETR", b"DELE"])
def test_bad_message_numbers(command, argument, text):
    assert reply(logged_in(), command + b" " + argument + b"\r\n") == text + b"\r\n"


@pytest.mark.parametrize("command", [b"RETR", b"DELE"])
def test_message_number_missing(command):
    assert reply(logged_in(), command + b"\r\n") == b"-ERR a message number is needed\r\n"


@pytest.mark.parametrize("argument", [b"1", b"1 x", b"1 -2", b"x 1", b""])
def test_top_needs_two_numbers(argument):
    out = reply(logged_in(), b"TOP " + argument + b"\r\n")
    assert out in (b"-ERR TOP needs a message number and a number of lines\r\n", b"-ERR a message number is needed\r\n")


def test_dele_marks_and_rset_unmarks():
    proto = logged_in()
    assert reply(proto, b"DELE 1\r\n") == b"+OK message 1 deleted\r\n"
    assert reply(proto, b"DELE 1\r\n") == b"-ERR message 1 is deleted\r\n"
    assert reply(proto, b"RETR 1\r\n") == b"-ERR message 1 is deleted\r\n"
    assert reply(proto, b"LIST 1\r\n") == b"-ERR message 1 is deleted\r\n"
    assert reply(proto, b"STAT\r\n") == b"+OK 2 37\r\n"
    assert reply(proto, b"LIST\r\n") == b"+OK maildrop has 2 messages (37 octets)\r\n2 30\r\n3 7\r\n.\r\n"
    assert reply(proto, b"RSET\r\n") == b"+OK maildrop has 3 messages (157 octets)\r\n"
    assert reply(proto, b"STAT\r\n") == b"+OK 3 157\r\n"


def test_quit_hands_over_the_deletions():
    proto = logged_in()
    events, out = run(proto, b"DELE 2\r\nNOOP\r\nQUIT\r\nSTAT\r\n")
    assert events == [Quit(("1700000001.M1P1Q1R00.host",))] and out == b"+OK message 2 deleted\r\n+OK\r\n"
    assert proto.state is State.UPDATE
    proto.updated()
    assert run(proto) == ([], b"+OK mx.test POP3 server signing off (1 messages deleted)\r\n")
    assert proto.state is State.CLOSED


def test_quit_reports_deletions_that_failed():
    proto = logged_in()
    run(proto, b"DELE 1\r\nQUIT\r\n")
    proto.updated("disk on fire")
    assert run(proto)[1] == b"-ERR [SYS/TEMP] some deleted messages not removed: disk on fire\r\n"


def test_a_dropped_connection_hands_over_no_deletions():
    proto = logged_in()
    events, _ = run(proto, b"DELE 1\r\n")
    proto.receive_data(b"")
    assert proto.next_event() == ConnectionClosed()


def test_asking_for_the_next_event_before_answering_is_a_bug():
    proto = logged_in()
    run(proto, b"RETR 1\r\n")
    with pytest.raises(RuntimeError):
        proto.next_event()


# -------------------------------------------------------------- RETR / TOP

def test_retr_sends_crlf_dot_stuffed_and_terminated():
    proto = logged_in()
    events, out = run(proto, b"RETR 2\r\n")
    assert events == [Retrieve(2, "1700000001.M1P1Q1R00.host", None)] and out == b""
    wire = retrieve(proto, b"Subject: x\n\n.hidden\n..two\nend.\n.\n")
    assert wire == b"+OK 30 octets\r\nSubject: x\r\n\r\n..hidden\r\n...two\r\nend.\r\n..\r\n.\r\n"
    assert proto.octets_sent == len(wire) - len(b"+OK 30 octets\r\n")


def test_retr_of_a_message_without_a_final_newline():
    proto = logged_in()
    run(proto, b"RETR 3\r\n")
    assert retrieve(proto, b"a\n\nbody") == b"+OK 7 octets\r\na\r\n\r\nbody\r\n.\r\n"


def test_retr_of_an_unreadable_message():
    proto = logged_in()
    run(proto, b"RETR 1\r\n")
    proto.message_unavailable("cannot read the message")
    assert run(proto, b"NOOP\r\n") == ([], b"-ERR [SYS/TEMP] cannot read the message\r\n+OK\r\n")


def test_top_sends_the_header_and_n_body_lines():
    proto = logged_in()
    stored = b"A: 1\nB: 2\n\nline 1\n.line 2\nline 3\n"
    assert run(proto, b"TOP 1 2\r\n")[0] == [Retrieve(1, MESSAGES[0][0], 2)]
    assert retrieve(proto, stored) == b"+OK 120 octets\r\nA: 1\r\nB: 2\r\n\r\nline 1\r\n..line 2\r\n.\r\n"
    run(proto, b"TOP 1 0\r\n")
    assert retrieve(proto, stored) == b"+OK 120 octets\r\nA: 1\r\nB: 2\r\n\r\n.\r\n"
    run(proto, b"TOP 1 99\r\n")
    assert retrieve(proto, stored).endswith(b"line 3\r\n.\r\n")


def test_top_stops_asking_for_data_once_it_has_the_lines():
    proto = logged_in()
    run(proto, b"TOP 1 1\r\n")
    proto.message_follows()
    assert proto.message_data(b"A: 1\n")
    assert not proto.message_data(b"\nbody\nmore\n")
    proto.message_end()
    assert proto.data_to_send().endswith(b"A: 1\r\n\r\nbody\r\n.\r\n")


def test_top_of_a_message_with_no_body():
    proto = logged_in()
    run(proto, b"TOP 1 5\r\n")
    assert retrieve(proto, b"A: 1\nB: 2") == b"+OK 120 octets\r\nA: 1\r\nB: 2\r\n.\r\n"


def stored_messages():
    line = st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))
    lines = st.lists(st.one_of(line, line.map(lambda b: b"." + b)), max_size=12)
    return st.tuples(lines, lines).map(lambda parts: b"\n".join(parts[0]) + b"\n\n" + b"\n".join(parts[1]) + b"\n")


@given(st.data(), stored_messages())
def test_retr_gives_the_crlf_message_back_for_any_chunking(data, stored):
    proto = logged_in()
    run(proto, b"RETR 1\r\n")
    wire = retrieve(proto, stored, data.draw(chunkings(stored)))
    body, rest = DotUnstuffer().feed(wire.split(b"\r\n", 1)[1])
    assert body == stored.replace(b"\n", b"\r\n") and rest == b""


@given(st.data(), stored_messages(), st.integers(0, 15))
def test_top_gives_the_same_cut_for_any_chunking(data, stored, lines):
    wire = stored.replace(b"\n", b"\r\n")
    whole_lines = [line + b"\r\n" for line in wire.split(b"\r\n")[:-1]]
    blank = whole_lines.index(b"\r\n")
    limiter, out = TopLimiter(lines), b""
    for chunk in data.draw(chunkings(wire)):
        out += limiter.feed(chunk)
    assert out == b"".join(whole_lines[:blank + 1 + lines])


# ------------------------------------------------------------ pipelining

def test_pipelined_commands_are_answered_in_order():
    proto = logged_in()
    events, out = run(proto, b"STAT\r\nLIST 1\r\nRETR 3\r\nDELE 3\r\nUIDL 2\r\n")
    assert out == b"+OK 3 157\r\n+OK 1 120\r\n" and events == [Retrieve(3, MESSAGES[2][0], None)]
    assert retrieve(proto, b"x\n\ny\n") == b"+OK 7 octets\r\nx\r\n\r\ny\r\n.\r\n"
    assert run(proto) == ([], b"+OK message 3 deleted\r\n+OK 2 1700000001.M1P1Q1R00.host\r\n")


@given(st.data())
def test_any_split_of_a_pipeline_gives_the_same_replies(data):
    script = b"CAPA\r\nUSER alice\r\nPASS pw\r\nSTAT\r\nLIST\r\nDELE 1\r\nUIDL 1\r\nRSET\r\nBOGUS\r\nQUIT\r\n"

    def answers(pieces):
        proto = fresh(insecure_plaintext_auth=True)
        for piece in filter(None, pieces):     # b"" would be the end of the stream
            proto.receive_data(piece)
            while (event := proto.next_event()) is not NEED_DATA:
                if isinstance(event, Login):
                    proto.open_maildrop(event.user, MESSAGES)
                elif isinstance(event, Quit):
                    proto.updated()
        return bytes(proto.data_to_send())

    assert answers(data.draw(chunkings(script))) == answers([script])


def test_a_long_pipeline_waits_for_its_replies_to_be_written():
    maildrop = [(f"key{n}", 100) for n in range(5_000)]
    one_listing = len(reply(logged_in(maildrop), b"LIST\r\n"))
    proto = logged_in(maildrop)
    proto.receive_data(b"LIST\r\n" * 10 + b"QUIT\r\n")
    proto.receive_data(b"")                     # the client closed its side after the pipeline
    written = 0
    while (event := proto.next_event()) is NEED_DATA:
        assert OUTPUT_HIGH_WATER <= proto.bytes_to_send < OUTPUT_HIGH_WATER + one_listing
        written += len(proto.data_to_send())
    assert event == Quit(()) and written + proto.bytes_to_send == 10 * one_listing


def test_unique_ids_are_keys_unless_rfc_1939_forbids_them():
    assert unique_id("1700000000.M1P1Q0R00.host,S=123") == "1700000000.M1P1Q0R00.host,S=123"
    long_key = "1700000000.M123456P1234567Q12R01234567." + "h" * 60
    for key in (long_key, "with space"):
        assert unique_id(key) == unique_id(key) and len(unique_id(key)) == 64
