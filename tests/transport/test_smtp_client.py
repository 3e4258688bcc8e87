"""The SMTP driver on its own, in-process, against a scripted fake server.

The CLI's view of the same faults is in test_send_faults.py, and Postfix's in
test_send_postfix.py; here the results and errors are the library's own objects, so a
test can look at reply codes and at what went over the wire.
"""

import time

import pytest
from scripted_servers import MESSAGE, ScriptedSMTPServer, scripted

from mimekit.errors import AuthError, TempFailure, UnavailableError
from mimekit.transport.smtp.client import OutgoingMessage, SMTPClient
from mimekit.transport.smtp.data import scan_message
from mimekit.transport.urls import parse_url


@pytest.fixture(params=["DATA", "BDAT"])
def transfer(request):
    """Each case once with DATA and once with CHUNKING."""
    return {"extensions": ScriptedSMTPServer.extensions + (("CHUNKING",) if request.param == "BDAT" else ())}


def outgoing(*recipients: str, body: bytes = MESSAGE, source: str = "m1") -> OutgoingMessage:
    return OutgoingMessage(source, "alice@example.test", recipients, scan_message([body]), lambda: [body])


def client_for(server: ScriptedSMTPServer, timeout: float = 10) -> SMTPClient:
    return SMTPClient(parse_url(server.url, {"smtps"}), cafile=str(server.ca_file), timeout=timeout)


def refuse_carol(self, address, count):
    return "550 5.1.1 <carol@example.test>: unknown user" if address.startswith("carol") else "250 2.1.5 Ok"


def test_one_refused_recipient_leaves_the_others_and_carries_its_code(tmp_path, transfer):
    server = scripted(ScriptedSMTPServer, tmp_path, rcpt=refuse_carol, **transfer)
    with client_for(server) as client:
        [result] = client.send_messages([outgoing("bob@example.test", "carol@example.test")])
    bob, carol = result.recipients
    assert bob.accepted and bob.error is None
    assert (carol.accepted, carol.code, carol.enhanced) == (False, 550, "5.1.1")
    assert isinstance(carol.error, UnavailableError) and carol.error.reply_code == 550
    assert result.queue_id == "FAKE1" and server.messages == [MESSAGE]
    verbs = [command.split()[0] for command in server.commands]
    assert verbs[:4] == ["EHLO", "MAIL", "RCPT", "RCPT"] and verbs[-1] == "QUIT"
    assert server.commands[1:4] == server.batched[:3]   # MAIL and both RCPT in one write


def test_a_recipient_refused_for_now_is_a_temporary_failure(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, rcpt=lambda self, address, count: "450 4.2.1 busy")
    with client_for(server) as client:
        [result] = client.send_messages([outgoing("bob@example.test")])
    [bob] = result.recipients
    assert isinstance(bob.error, TempFailure) and bob.error.reply_code == 450
    assert server.messages == [] and "RSET" in server.commands


def test_without_pipelining_each_command_waits_for_its_reply(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, extensions=("8BITMIME",), rcpt=refuse_carol)
    with client_for(server) as client:
        results = list(client.send_messages([outgoing("bob@example.test", "carol@example.test"),
                                             outgoing("dave@example.test", source="m2")]))
    assert [r.queue_id for r in results] == ["FAKE1", "FAKE2"]
    assert not server.pipelined_without_offer


def test_pipelined_messages_each_get_their_own_result(tmp_path, transfer):
    server = scripted(ScriptedSMTPServer, tmp_path, **transfer)
    messages = [outgoing("bob@example.test", source=f"m{n}") for n in range(5)]
    with client_for(server) as client:
        results = list(client.send_messages(messages))
    assert [(r.source, r.queue_id) for r in results] == [(f"m{n}", f"FAKE{n + 1}") for n in range(5)]
    assert server.messages == [MESSAGE] * 5


def test_a_connection_dropped_mid_data_raises_and_reports_nothing_sent(tmp_path, transfer):
    server = scripted(ScriptedSMTPServer, tmp_path, drop_during_data=lambda self, count: True, **transfer)
    results = []
    with pytest.raises(TempFailure, match="closed the connection"):
        with client_for(server) as client:
            results.extend(client.send_messages([outgoing("bob@example.test")]))
    assert results == [] and server.messages == []


def test_421_mid_session_raises_a_temporary_failure(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, mail=lambda self, sender, count: "421 4.3.2 shutting down")
    with pytest.raises(TempFailure, match="closing the connection"):
        with client_for(server) as client:
            list(client.send_messages([outgoing("bob@example.test")]))


def test_a_refused_greeting_carries_its_code(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, greeting=lambda self: "554 5.3.2 not now, not ever")
    with pytest.raises(UnavailableError, match="refused the session") as raised:
        with client_for(server):
            pass
    assert raised.value.reply_code == 554


def test_a_refused_login_carries_its_code(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, extensions=ScriptedSMTPServer.extensions + ("AUTH PLAIN",),
                      authenticate=lambda self, mechanism, response, challenge: False)
    with client_for(server) as client:
        with pytest.raises(AuthError, match="authentication as bob failed") as raised:
            client.login("bob", "pw")
    assert raised.value.reply_code == 535


def test_a_silent_server_costs_one_timeout(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, greeting=lambda self: time.sleep(5))
    started = time.monotonic()
    with pytest.raises(TempFailure, match="no reply within 1s"):
        with client_for(server, timeout=1):
            pass
    assert time.monotonic() - started < 3
