"""`send` reads every envelope address exactly or refuses it (issue 8, items 14 and 15).

The server is a SCRIPTED FAKE SMTP server (tests/scripted_servers.py): the tests must see
the exact MAIL FROM and RCPT TO lines the client writes, which a real server only logs
after its own parsing. Local stores (maildir:, mbox:) need no server. That Postfix
delivers no Resent-Bcc is in test_send_postfix.py.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from scripted_servers import MESSAGE, ScriptedSMTPServer, scripted

from mimekit.stores import Maildir, Mbox

REPO = Path(__file__).resolve().parents[2]

# Each was sent to x@y.test, or as MAIL FROM:<evil>, with exit 0 before: the lenient
# reading of address headers guessed an address and dropped its defects.
HOSTILE_OPTIONS = [
    ("--to", "bob@example.test <x@y.test>"),
    ("--to", "a@b>\r\nRCPT TO:<x@y.test"),
    ("--from", "a@b> SIZE=1 AUTH=<evil>"),
    ("--to", "bob@example.test, x@y.test"),
    ("--to", "Team: x@y.test;"),
    ("--to", '"a>b"@example.test'),
    ("--to", "x@y.test SIZE=1"),
    ("--from", "alice@example.test\x1b]0;owned\x07"),
    ("--to", ""),
]

RESENT = (b"Resent-From: Resender <resender@example.test>\r\n"
          b"Resent-Date: Fri, 02 Jan 2026 10:00:00 +0000\r\n"
          b"Resent-To: new@example.test\r\n"
          b"Resent-Bcc: hidden@example.test\r\n")


def run_send(*args, input=MESSAGE):
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "send", *args], input=input,
                            capture_output=True, timeout=60, cwd=REPO)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


@pytest.fixture
def server(tmp_path):
    fake = scripted(ScriptedSMTPServer, tmp_path)
    yield fake
    fake.close()


def send_to(server, *args, input=MESSAGE):
    return run_send("--server", server.url, "--cafile", str(server.ca_file), "--timeout", "10", *args, input=input)


def envelope_lines(server) -> list[str]:
    return [command for command in server.commands if command.startswith(("MAIL", "RCPT"))]


# --- --to and --from --------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", HOSTILE_OPTIONS)
def test_a_hostile_address_option_is_refused_before_the_server_hears_anything(server, option, value):
    code, stdout, stderr = send_to(server, "--to", "bob@example.test", option, value)
    assert code == 65 and stdout == ""
    [line] = stderr.splitlines()
    # the engine names the parameter (to, sender), never the flag; the value is named, escaped
    assert line.startswith("mimekit send: ") and f" {value!r}: " in line   # no CR, LF or ESC
    assert line.isprintable()
    assert server.commands == []


def test_a_hostile_address_option_is_a_json_error_too(server):
    code, stdout, _ = send_to(server, "--json", "--to", "bob@example.test <x@y.test>")
    assert code == 65
    error = json.loads(stdout)["error"]
    assert error["code"] == 65 and error["kind"] == "data" and "'@' in a display name" in error["message"]


def test_an_address_or_one_mailbox_reaches_the_server_as_exactly_its_addr_spec(server):
    code, _, stderr = send_to(server, "--from", "Alice <alice@example.test>", "--to", "Bob <bob@example.test>",
                              "--to", "<carol@example.test>", "--to", '"dave@example.test" <x@y.test>',
                              "--to", "erin@example.test (Erin)")
    assert code == 0, stderr
    assert envelope_lines(server) == [f"MAIL FROM:<alice@example.test> SIZE={len(MESSAGE)}",
                                      "RCPT TO:<bob@example.test>", "RCPT TO:<carol@example.test>",
                                      "RCPT TO:<x@y.test>",   # a quoted display name is only a name
                                      "RCPT TO:<erin@example.test>"]


def test_the_null_sender_may_be_given_as_empty_or_angle_brackets(server):
    for null in ("", "<>"):
        code, _, stderr = send_to(server, "--from", null, "--to", "bob@example.test")
        assert code == 0, stderr
    assert [line for line in envelope_lines(server) if line.startswith("MAIL")] == [
        f"MAIL FROM:<> SIZE={len(MESSAGE)}"] * 2


# --- addresses read from the message ----------------------------------------------------------

@pytest.mark.parametrize("field", [b"To: a@b>\r\n RCPT TO:<x@y.test>", b"To: bob@example.test <x@y.test>",
                                   b'Cc: "a b"@example.test', b"Bcc: x@y.test SIZE=1"])
def test_with_t_a_hostile_header_refuses_its_message_and_the_next_one_goes(server, tmp_path, field):
    hostile, fine = tmp_path / "hostile.eml", tmp_path / "fine.eml"
    hostile.write_bytes(MESSAGE.replace(b"To: bob@example.test", field))
    fine.write_bytes(MESSAGE)
    code, stdout, _ = send_to(server, "--json", "-t", str(hostile), str(fine))
    assert code == 65
    refused, sent = json.loads(stdout)["messages"]
    name = field.split(b":")[0].decode()
    assert refused["queue_id"] is None and f"header {name}:" in refused["error"]["message"]
    assert sent["queue_id"] == "FAKE1"
    assert envelope_lines(server) == [f"MAIL FROM:<alice@example.test> SIZE={len(MESSAGE)}",
                                      "RCPT TO:<bob@example.test>"]


def test_a_hostile_from_header_is_never_the_envelope_sender(server):
    message = MESSAGE.replace(b"From: alice@example.test", b"From: a@b> SIZE=1 AUTH=<evil>")
    code, _, stderr = send_to(server, "--to", "bob@example.test", input=message)
    assert code == 65 and "header From:" in stderr
    assert envelope_lines(server) == []


def test_a_resent_message_goes_to_the_resent_recipients_without_resent_bcc(server):
    code, _, stderr = send_to(server, "-t", input=RESENT + MESSAGE)
    assert code == 0, stderr
    [received] = server.messages
    assert envelope_lines(server) == [f"MAIL FROM:<resender@example.test> SIZE={len(received)}",
                                      "RCPT TO:<new@example.test>", "RCPT TO:<hidden@example.test>"]
    assert received == RESENT.replace(b"Resent-Bcc: hidden@example.test\r\n", b"") + MESSAGE


# --- local stores -----------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["maildir", "mbox"])
@pytest.mark.parametrize("option, value", HOSTILE_OPTIONS[:3])
def test_a_local_store_refuses_a_hostile_option_and_stores_nothing(tmp_path, scheme, option, value):
    code, _, stderr = run_send("--server", f"{scheme}:{tmp_path}/store", "--to", "bob@example.test", option, value)
    assert code == 65 and f" {value!r}" in stderr
    assert not (tmp_path / "store").exists()


def test_a_local_store_stores_the_fine_message_and_refuses_the_hostile_one(tmp_path):
    hostile, fine = tmp_path / "hostile.eml", tmp_path / "fine.eml"
    hostile.write_bytes(MESSAGE.replace(b"To: bob@example.test", b"To: bob@example.test <x@y.test>"))
    fine.write_bytes(RESENT + MESSAGE)
    code, stdout, _ = run_send("--server", f"mbox:{tmp_path}/mbox", "--json", "-t", str(hostile), str(fine))
    assert code == 65
    refused, stored = json.loads(stdout)["messages"]
    assert "header To:" in refused["error"]["message"]
    assert [r["address"] for r in stored["recipients"]] == ["new@example.test", "hidden@example.test"]
    box = Mbox(str(tmp_path / "mbox"), create=False)
    [key] = box.keys()
    assert box.open(key).read() == (RESENT + MESSAGE).replace(b"Resent-Bcc: hidden@example.test\r\n", b"") \
        .replace(b"\r\n", b"\n")
    assert (tmp_path / "mbox").read_bytes().startswith(b"From resender@example.test ")


def test_maildir_delivery_drops_resent_bcc(tmp_path):
    code, _, stderr = run_send("--server", f"maildir:{tmp_path}/box", "-t", input=RESENT + MESSAGE)
    assert code == 0, stderr
    box = Maildir(str(tmp_path / "box"), create=False)
    [key] = box.keys()
    assert b"hidden@" not in box.open(key).read()
