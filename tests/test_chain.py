"""The whole chain, the way a message really travels, as the user runs it:

    mimekit encode -> mimekit send (Postfix submission: STARTTLS + AUTH, test CA)
    -> Dovecot mailbox -> mimekit fetch (IMAP, and separately POP3) -> mimekit decode

must give back the same bytes, file names and text that went in. And the same with no
server at all: send --server maildir:X, then fetch maildir:X.
"""

import json
import os
from pathlib import Path

import pytest
from chain import check_decoded, compose, mimekit


@pytest.fixture
def composed(tmp_path):
    return compose(tmp_path)


@pytest.mark.servers
def test_encode_send_fetch_decode_through_postfix_and_dovecot(mail_servers, composed, tmp_path):
    servers = mail_servers
    inputs, message = composed
    servers.clear_mailbox("alice")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    mimekit("send", "--server", f"smtp://{servers.host}:{servers.submission}", "--user", "bob",
            "--cafile", str(servers.ca_file), "-t", str(message),
            env={**env, "MIMEKIT_PASSWORD": servers.users["bob"]})
    servers.wait_for_messages("alice", 1)
    fetch_env = {**env, "MIMEKIT_PASSWORD": servers.users["alice"]}

    over_imap = mimekit("fetch", f"imap://alice@{servers.host}:{servers.imap}/INBOX", "--cafile",
                        str(servers.ca_file), "-o", "-", "--limit", "1", "-q", env=fetch_env).stdout
    (tmp_path / "imap").mkdir()
    check_decoded(over_imap, inputs, tmp_path / "imap", fetch_env)

    report = json.loads(mimekit("fetch", f"pop3://alice@{servers.host}:{servers.pop3}", "--cafile",
                                str(servers.ca_file), "-o", f"maildir:{tmp_path / 'pop3-box'}", "--json",
                                env=fetch_env).stdout)
    [fetched] = report["fetched"]
    over_pop3 = Path(fetched["path"]).read_bytes()
    assert over_pop3 == over_imap.replace(b"\r\n", b"\n"), "both protocols deliver the same message"
    (tmp_path / "pop3").mkdir()
    check_decoded(over_pop3, inputs, tmp_path / "pop3", fetch_env)


def test_encode_send_fetch_decode_with_no_server(composed, tmp_path):
    inputs, message = composed
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    box = f"maildir:{tmp_path / 'box'}"
    mimekit("send", "--server", box, "-t", str(message), env=env)
    fetched = mimekit("fetch", box, "-o", "-", "--limit", "1", "-q", env=env).stdout
    assert fetched == message.read_bytes(), "stdout gives the message back in its network form, byte for byte"
    check_decoded(fetched, inputs, tmp_path, env)
