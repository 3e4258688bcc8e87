"""The IMAP client as a pure state machine: server bytes in, events out, command bytes out.

Every odd server reply is a one-line test here; no socket is opened (the real server
is checked in test_fetch_dovecot.py).
"""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import ProtocolError, TempFailure, UsageError
from mimekit.transport.imap.protocol import (Capability, Completion, ConnectionClosed, Continuation, Exists,
                                   Expunge, Fetch, FetchBodyChunk, FetchBodyEnd, FetchBodyStart, Greeting,
                                   IMAPProtocol, ListEntry, Search, StatusResponse, decode_mailbox_name,
                                   encode_mailbox_name, search_criteria, uid_set)
from helpers import protocol_events
from strategies import chunkings

GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] ready\r\n"


def events(proto, data=b""):
    return protocol_events(proto, data, closed=ConnectionClosed)


def greeted(greeting=GREETING) -> IMAPProtocol:
    proto = IMAPProtocol()
    events(proto, greeting)
    return proto


def body_of(evs) -> bytes:
    return b"".join(e.data for e in evs if isinstance(e, FetchBodyChunk))


# ------------------------------------------------------------------ greeting, state

def test_greeting_capability_code_sets_capabilities():
    proto = IMAPProtocol()
    [greeting] = events(proto, GREETING)
    assert greeting == Greeting("OK", greeting.code, "ready")
    assert proto.capabilities == {"IMAP4REV1", "STARTTLS", "AUTH=PLAIN"}


def test_preauth_and_bye_greetings_are_reported_as_such():
    assert events(IMAPProtocol(), b"* PREAUTH logged in already\r\n")[0].status == "PREAUTH"
    assert events(IMAPProtocol(), b"* BYE too busy\r\n")[0].status == "BYE"


def test_data_before_greeting_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        events(IMAPProtocol(), b"* 3 EXISTS\r\n")


def test_greeting_split_byte_by_byte():
    proto = IMAPProtocol()
    got = []
    for i in range(len(GREETING)):
        got += events(proto, GREETING[i:i + 1])
    assert [type(e) for e in got] == [Greeting]


def test_capability_response_replaces_capabilities():
    proto = greeted()
    tag = proto.capability()
    assert proto.data_to_send() == f"{tag} CAPABILITY\r\n".encode()
    evs = events(proto, b"* CAPABILITY IMAP4rev1 UIDPLUS LITERAL+\r\n" + tag.encode() + b" OK done\r\n")
    assert isinstance(evs[0], Capability) and evs[1] == Completion(tag, "CAPABILITY", "OK", None, "done")
    assert proto.capabilities == {"IMAP4REV1", "UIDPLUS", "LITERAL+"}


def test_untagged_status_and_bye_after_greeting():
    proto = greeted()
    evs = events(proto, b"* OK [ALERT] disk nearly full\r\n* BYE shutting down\r\n")
    assert [(e.status, e.code and e.code.name) for e in evs] == [("OK", "ALERT"), ("BYE", None)]
    assert all(isinstance(e, StatusResponse) for e in evs)


def test_completion_for_a_tag_never_sent_is_a_protocol_error():
    with pytest.raises(ProtocolError):
        events(greeted(), b"X9 OK what\r\n")


def test_pipelined_commands_complete_in_any_order():
    proto = greeted()
    first, second = proto.noop(), proto.noop()
    assert proto.pending_commands() == ["NOOP", "NOOP"]
    evs = events(proto, f"{second} OK b\r\n{first} NO a\r\n".encode())
    assert [(e.tag, e.ok) for e in evs] == [(second, True), (first, False)]


def test_starttls_ok_clears_capabilities():
    proto = greeted()
    tag = proto.starttls()
    events(proto, f"{tag} OK begin TLS\r\n".encode())
    assert proto.capabilities == frozenset()


def test_data_after_starttls_ok_is_refused_as_injection():
    proto = greeted()
    tag = proto.starttls()
    with pytest.raises(ProtocolError, match="STARTTLS"):
        events(proto, f"{tag} OK begin TLS\r\n* OK injected\r\n".encode())


def test_eof_between_responses_is_connection_closed():
    proto = greeted()
    proto.receive_data(b"")
    assert events(proto) == [ConnectionClosed()]


def test_eof_in_the_middle_of_a_response_is_a_temporary_failure():
    proto = greeted()
    proto.uid_fetch("1", "(BODY.PEEK[])")
    events(proto, b"* 1 FETCH (UID 1 BODY[] {10}\r\nabc")
    proto.receive_data(b"")
    with pytest.raises(TempFailure):
        events(proto)


def test_overlong_line_is_a_protocol_error():
    proto = IMAPProtocol(max_line=100)
    with pytest.raises(ProtocolError, match="longer"):
        events(proto, b"* OK " + b"x" * 200)


# ----------------------------------------------------------------- argument quoting

@pytest.mark.parametrize("password, wire", [
    ("simple", b"simple"),
    ("with space", b'"with space"'),
    ('quo"te\\', b'"quo\\"te\\\\"'),
    ("", b'""'),
])
def test_login_quotes_only_when_needed(password, wire):
    proto = greeted()
    tag = proto.login("alice", password)
    assert proto.data_to_send() == f"{tag} LOGIN alice ".encode() + wire + b"\r\n"


def test_login_with_non_ascii_password_waits_for_the_continuation():
    proto = greeted()
    tag = proto.login("alice", "pässword")
    assert proto.data_to_send() == f"{tag} LOGIN alice {{9}}\r\n".encode()
    assert events(proto, b"+ go ahead\r\n") == []
    assert proto.data_to_send() == "pässword\r\n".encode()


def test_login_literal_is_non_synchronising_with_literal_plus():
    proto = greeted(b"* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n")
    tag = proto.login("alice", "pässword")
    assert proto.data_to_send() == f"{tag} LOGIN alice {{9+}}\r\n".encode() + "pässword\r\n".encode()


def test_commands_queued_behind_a_literal_wait_for_it():
    proto = greeted()
    proto.login("alice", "pässword")
    noop = proto.noop()
    proto.data_to_send()
    events(proto, b"+ ok\r\n")
    assert proto.data_to_send() == "pässword\r\n".encode() + f"{noop} NOOP\r\n".encode()


def test_refused_literal_drops_the_rest_and_releases_the_queue():
    proto = greeted()
    login = proto.login("alice", "pässword")
    noop = proto.noop()
    proto.data_to_send()
    [completion] = events(proto, f"{login} NO no literals here\r\n".encode())
    assert not completion.ok
    assert proto.data_to_send() == f"{noop} NOOP\r\n".encode()


def test_authenticate_plain_uses_sasl_ir_when_offered():
    proto = greeted(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] hi\r\n")
    tag = proto.authenticate_plain("alice", "secret")
    assert proto.data_to_send() == f"{tag} AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n".encode()


def test_authenticate_plain_without_sasl_ir_answers_the_continuation():
    proto = greeted()
    tag = proto.authenticate_plain("alice", "secret")
    assert proto.data_to_send() == f"{tag} AUTHENTICATE PLAIN\r\n".encode()
    events(proto, b"+ \r\n")
    assert proto.data_to_send() == b"AGFsaWNlAHNlY3JldA==\r\n"


def test_unexpected_continuation_is_an_event():
    assert events(greeted(), b"+ idling\r\n") == [Continuation("idling")]


def test_search_criteria_must_be_one_ascii_line():
    with pytest.raises(UsageError):
        search_criteria(raw="SUBJECT \"Grüße\"")
    with pytest.raises(UsageError):
        search_criteria(raw="ALL\r\nX LOGOUT")


def test_search_criteria_are_anded():
    assert search_criteria() is None
    assert search_criteria(since=date(2024, 3, 5)) == "SINCE 5-Mar-2024"
    assert search_criteria(date(2024, 12, 31), True, "FROM bob") == "SINCE 31-Dec-2024 UNSEEN (FROM bob)"
    assert search_criteria(raw="FROM bob") == "FROM bob"


def test_uid_set_compresses_ranges():
    assert uid_set([7, 1, 2, 3, 9, 10, 3]) == "1:3,7,9:10"
    with pytest.raises(ValueError):
        uid_set([])


# --------------------------------------------------------------- select, list, search

def test_examine_collects_uidvalidity_uidnext_exists_and_read_only():
    proto = greeted()
    tag = proto.select("INBOX", read_only=True)
    assert proto.data_to_send() == f"{tag} EXAMINE INBOX\r\n".encode()
    events(proto, b"* FLAGS (\\Seen \\Deleted)\r\n* 17 EXISTS\r\n* 2 RECENT\r\n"
                  b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n* OK [UIDNEXT 4392] next\r\n"
                  + tag.encode() + b" OK [READ-ONLY] EXAMINE completed\r\n")
    box = proto.mailbox
    assert (box.exists, box.uidvalidity, box.uidnext, box.read_only) == (17, 3857529045, 4392, True)


def test_failed_select_forgets_the_mailbox():
    proto = greeted()
    tag = proto.select("Nope", read_only=False)
    events(proto, f"{tag} NO no such mailbox\r\n".encode())
    assert proto.mailbox is None


def test_select_encodes_non_ascii_folder_names():
    proto = greeted()
    tag = proto.select("Entwürfe", read_only=False)
    assert proto.data_to_send() == f"{tag} SELECT Entw&APw-rfe\r\n".encode()


def test_list_entries_decode_modified_utf7_and_nil_delimiter():
    proto = greeted()
    tag = proto.list()
    assert proto.data_to_send() == f'{tag} LIST "" *\r\n'.encode()
    evs = events(proto, b'* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"\r\n'
                        b'* LIST (\\Noselect) NIL INBOX\r\n'
                        b'* LIST () "." {11}\r\nwith "quote\r\n' + tag.encode() + b" OK\r\n")
    assert evs[:3] == [ListEntry(("\\HasNoChildren",), "/", "Entwürfe", b"Entw&APw-rfe"),
                       ListEntry(("\\Noselect",), None, "INBOX", b"INBOX"),
                       ListEntry((), ".", 'with "quote', b'with "quote')]


def test_search_results_and_empty_search():
    proto = greeted()
    tag = proto.uid_search("UNSEEN")
    assert proto.data_to_send() == f"{tag} UID SEARCH UNSEEN\r\n".encode()
    assert events(proto, b"* SEARCH 4 9 12\r\n* SEARCH\r\n")[:2] == [Search((4, 9, 12)), Search(())]


def test_exists_and_expunge_updates():
    assert events(greeted(), b"* 5 EXISTS\r\n* 3 EXPUNGE\r\n") == [Exists(5), Expunge(3)]


@pytest.mark.parametrize("raw, text", [
    (b"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),   # RFC 3501 §5.1.3
    (b"A&-B", "A&B"),
    (b"broken&AB", "broken&AB"),          # no closing "-": shown as sent
    (b"bad&!!!-", "bad&!!!-"),            # not base64: shown as sent
])
def test_mailbox_name_decoding(raw, text):
    assert decode_mailbox_name(raw) == text


@given(st.text())
def test_mailbox_names_round_trip(name):
    encoded = encode_mailbox_name(name)
    assert all(0x20 <= b < 0x7f for b in encoded)
    assert decode_mailbox_name(encoded) == name


# ------------------------------------------------------------------------------ FETCH

def fetching():
    proto = greeted()
    tag = proto.uid_fetch("1:*", "(UID FLAGS BODY.PEEK[])")
    assert proto.data_to_send() == f"{tag} UID FETCH 1:* (UID FLAGS BODY.PEEK[])\r\n".encode()
    return proto, tag


def test_fetch_body_literal_is_streamed_with_items_before_it():
    proto, tag = fetching()
    evs = events(proto, b"* 1 FETCH (UID 7 FLAGS (\\Seen $Junk) BODY[] {10}\r\nhello\r\nbye RFC822.SIZE 10)\r\n")
    assert evs[0] == FetchBodyStart(1, "BODY[]", 10, {"UID": 7, "FLAGS": ("\\Seen", "$Junk")})
    assert body_of(evs) == b"hello\r\nbye"
    assert isinstance(evs[-2], FetchBodyEnd)
    assert evs[-1] == Fetch(1, {"UID": 7, "FLAGS": ("\\Seen", "$Junk"), "RFC822.SIZE": 10})


def test_items_after_the_body_arrive_with_the_fetch_end():
    proto, _ = fetching()
    evs = events(proto, b"* 2 FETCH (BODY[] {3}\r\nabc FLAGS (\\Answered) UID 9)\r\n")
    assert evs[0].items == {}
    assert evs[-1].items == {"FLAGS": ("\\Answered",), "UID": 9}


def test_empty_quoted_and_nil_bodies_are_streamed_too():
    proto, _ = fetching()
    evs = events(proto, b'* 1 FETCH (UID 1 BODY[] {0}\r\n)\r\n* 2 FETCH (UID 2 BODY[] "hi")\r\n'
                        b"* 3 FETCH (UID 3 BODY[] NIL)\r\n")
    kinds = [type(e).__name__ for e in evs]
    assert kinds == ["FetchBodyStart", "FetchBodyEnd", "Fetch",
                     "FetchBodyStart", "FetchBodyChunk", "FetchBodyEnd", "Fetch",
                     "FetchBodyStart", "FetchBodyEnd", "Fetch"]
    assert body_of(evs) == b"hi"


def test_header_fields_section_with_a_list_inside_its_name():
    proto, _ = fetching()
    evs = events(proto, b"* 1 FETCH (UID 3 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\n"
                        b"Message-ID: <a@b>\r\n\r\n)\r\n")
    assert evs[0].section == "BODY[HEADER.FIELDS (MESSAGE-ID)]"
    assert body_of(evs) == b"Message-ID: <a@b>\r\n\r\n"


def test_unsolicited_flags_fetch_has_no_body():
    proto, _ = fetching()
    assert events(proto, b"* 4 FETCH (FLAGS (\\Deleted))\r\n") == [Fetch(4, {"FLAGS": ("\\Deleted",)})]


def test_a_literal_that_is_not_a_body_is_buffered_within_the_limit():
    proto = IMAPProtocol(max_literal=10)
    events(proto, GREETING)
    proto.uid_fetch("1", "(UID ENVELOPE)")
    evs = events(proto, b"* 1 FETCH (UID 1 ENVELOPE ({5}\r\nhello NIL))\r\n")
    assert evs == [Fetch(1, {"UID": 1, "ENVELOPE": [b"hello", None]})]
    with pytest.raises(ProtocolError, match="literal"):
        events(proto, b"* 2 FETCH (UID 2 ENVELOPE ({50}\r\n")


def test_malformed_fetch_responses_are_protocol_errors():
    for bad in (b"* 1 FETCH UID 1\r\n", b"* 1 FETCH (UID x)\r\n", b"* 1 FETCH (UID 1))\r\n",
                b"* 1 FETCH (UID 1\r\n", b"* 1 FETCH (FLAGS \\Seen)\r\n"):
        proto, _ = fetching()
        with pytest.raises(ProtocolError):
            events(proto, bad)


def test_quoted_strings_unescape():
    proto, _ = fetching()
    [fetch] = events(proto, b'* 1 FETCH (UID 1 X-NOTE "a \\"b\\" \\\\c")\r\n')
    assert fetch.items["X-NOTE"] == b'a "b" \\c'


RESPONSES = (b"* 1 FETCH (UID 5 RFC822.SIZE 24 BODY[] {24}\r\nSubject: x\r\n\r\n{3}\r\n) *\r\n"
             b" FLAGS (\\Seen))\r\n* 2 FETCH (UID 6 BODY[] {4}\r\n\r\n\r\n)\r\nM1 OK done\r\n")


@given(chunkings(RESPONSES))
def test_any_chunking_gives_the_same_events(pieces):
    """Literal boundaries, CRLFs and "{n}" split anywhere must not change what comes out."""
    proto, _ = fetching()
    got = []
    for piece in pieces:
        got += events(proto, piece)
    bodies, current = [], None
    for event in got:
        if isinstance(event, FetchBodyStart):
            current = bytearray()
        elif isinstance(event, FetchBodyChunk):
            current += event.data
        elif isinstance(event, FetchBodyEnd):
            bodies.append(bytes(current))
    assert bodies == [b"Subject: x\r\n\r\n{3}\r\n) *\r\n", b"\r\n\r\n"]
    fetches = [e for e in got if isinstance(e, Fetch)]
    assert [f.items for f in fetches] == [{"UID": 5, "RFC822.SIZE": 24, "FLAGS": ("\\Seen",)}, {"UID": 6}]
    assert isinstance(got[-1], Completion) and got[-1].ok


def test_a_large_literal_is_never_buffered_whole():
    proto, _ = fetching()
    size, piece = 20 * 1024 * 1024, b"x" * 65536
    events(proto, b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % size)
    received, largest = 0, 0
    while received < size:
        for event in events(proto, piece):
            if isinstance(event, FetchBodyChunk):
                received += len(event.data)
                largest = max(largest, len(event.data))
    assert received == size and largest <= len(piece)
    assert events(proto, b")\r\n")[-1] == Fetch(1, {"UID": 1})


# ------------------------------------------------- hostile numbers and endless streams

HUGE = b"9" * 5000       # more digits than int() takes (CPython's int_max_str_digits is 4300)


@pytest.mark.parametrize("response", [
    b"* 1 FETCH (UID 1 BODY[] {" + HUGE + b"}\r\n",                 # the fast path's body size
    b"* 1 FETCH (UID 1 X-NOTE {" + HUGE + b"}\r\n",                 # any other literal
    b"* 1 FETCH (UID " + HUGE + b" BODY[] {3}\r\nabc)\r\n",           # a UID (fast path)
    b"* 1 FETCH (UID " + HUGE + b")\r\n",                             # a UID (tokenizer)
    b"* " + HUGE + b" FETCH (FLAGS ())\r\n",                          # a sequence number
    b"* " + HUGE + b" EXISTS\r\n",
    b"* SEARCH 1 " + HUGE + b"\r\n",
    "* SEARCH 1 ²\r\n".encode(),                                      # str.isdigit() says yes
    "* 1 FETCH (UID ² FLAGS ())\r\n".encode(),
    b"* OK [UIDVALIDITY " + HUGE + b"] ok\r\n",
    "* OK [UIDVALIDITY ²] ok\r\n".encode(),
], ids=["body-size", "literal-size", "fast-uid", "uid", "sequence", "exists", "search", "search-superscript",
        "uid-superscript", "uidvalidity", "uidvalidity-superscript"])
def test_numbers_that_are_not_1_to_20_ascii_digits_are_protocol_errors(response):
    proto, _ = fetching()
    proto.select("INBOX")
    with pytest.raises(ProtocolError, match="where .* belongs|malformed SEARCH"):
        events(proto, response)


def test_search_results_with_a_modseq_and_malformed_ones():
    proto = greeted()
    proto.uid_search("MODSEQ 5")
    assert events(proto, b"* SEARCH 2 5 6 (MODSEQ 917162500)\r\n") == [Search((2, 5, 6))]
    with pytest.raises(ProtocolError, match="SEARCH"):
        events(proto, b"* SEARCH 2 (5)\r\n")


def test_after_a_protocol_error_every_event_is_the_same_error():
    """The stream is out of step: a polite LOGOUT must not wait for an answer it cannot read."""
    proto = greeted()
    proto.logout()
    with pytest.raises(ProtocolError, match="where"):
        events(proto, b"* " + HUGE + b" EXISTS\r\n")
    with pytest.raises(ProtocolError, match="where"):
        events(proto, b"* BYE\r\nM1 OK bye\r\n")


def test_untagged_responses_to_one_command_are_counted():
    proto = IMAPProtocol(max_untagged=5)
    events(proto, GREETING)
    tag = proto.select("INBOX")
    events(proto, b"* OK fine\r\n" * 4 + tag.encode() + b" OK done\r\n")   # the count starts again
    proto.select("INBOX")
    events(proto, b"* OK fine\r\n" * 5)
    with pytest.raises(ProtocolError, match="more than 5 untagged responses"):
        events(proto, b"* 3 RECENT\r\n")


def test_fetch_and_expunge_answers_are_not_counted():
    """One per message: the driver keeps none of them whole."""
    proto = IMAPProtocol(max_untagged=5)
    events(proto, GREETING)
    proto.uid_fetch("1:*", "(UID FLAGS)")
    proto.expunge()
    answers = b"".join(b"* %d FETCH (UID %d FLAGS ())\r\n* 1 EXPUNGE\r\n" % (n, n) for n in range(1, 20))
    assert len(events(proto, answers)) == 38
    with pytest.raises(ProtocolError, match="untagged responses"):
        events(proto, b"* OK fine\r\n" * 6)


def test_untagged_bytes_to_one_command_are_bounded_before_they_are_read():
    proto = IMAPProtocol(max_untagged_bytes=1000)
    events(proto, GREETING)
    proto.list()
    events(proto, b'* LIST () "/" {500}\r\n' + b"x" * 500 + b"\r\n")
    with pytest.raises(ProtocolError, match="more than 1000 bytes"):
        events(proto, b'* LIST () "/" {500}\r\n')     # refused at its size, before its bytes


def test_one_response_of_endless_literals_is_bounded():
    proto = IMAPProtocol(max_untagged_bytes=10_000)
    events(proto, GREETING)
    proto.noop()
    with pytest.raises(ProtocolError, match="bytes of untagged"):
        events(proto, b"* X-ODD {100}\r\n" + (b"x" * 100 + b" {100}\r\n") * 200)
