"""Queued mail logs in with OAuth2 when its account (or queue run) says so.

Against a SCRIPTED FAKE SMTP server (tests/scripted_servers.py): real Postfix does not do
OAUTHBEARER or XOAUTH2 without an identity provider; the SASL exchange itself is tested in
tests/transport/test_oauth2.py, this only proves the queue hands the token look-up to it.
"""

import functools

from scripted_servers import MESSAGE, IdentityProvider, ScriptedSMTPServer, Tokens, scripted

from mimekit.queue import Queue, deliver_queue
from mimekit.transport.smtp.envelope import prepare_message
from mimekit.transport.urls import parse_url

USER = "alice@example.test"


def queued(tmp_path, server) -> Queue:
    message = tmp_path / "m.eml"
    message.write_bytes(MESSAGE)
    queue = Queue(str(tmp_path / "queue"))
    queue.spool(prepare_message(str(message), extract=True), parse_url(server.url, {"smtps"}), user=USER,
                cafile=str(server.ca_file), timeout=10)
    return queue


def test_a_queued_entry_logs_in_with_the_token_and_is_delivered(tmp_path):
    provider = IdentityProvider(valid={"fresh"})
    server = scripted(ScriptedSMTPServer, tmp_path, extensions=ScriptedSMTPServer.extensions + ("AUTH OAUTHBEARER",),
                      authenticate=provider.authenticate)
    tokens = Tokens("expired", "fresh")
    looked_up = []

    def token(user, host, account, command):
        looked_up.append((user, host, account, command))
        return tokens

    def no_password(*args):
        raise AssertionError("a password was asked for")

    with queued(tmp_path, server) as queue:
        report = deliver_queue(queue, token=token, password=no_password)
        assert not queue.ids()
    assert looked_up == [(USER, "127.0.0.1", None, None)]
    assert provider.tokens == ["expired", "fresh"] and tokens.calls == 2   # the one retry with a fresh token
    assert len(server.messages) == 1 and report.outcomes


def test_without_a_token_look_up_the_entry_logs_in_with_a_password(tmp_path):
    server = scripted(ScriptedSMTPServer, tmp_path, extensions=ScriptedSMTPServer.extensions + ("AUTH PLAIN",))
    asked = []
    with queued(tmp_path, server) as queue:
        deliver_queue(queue, token=lambda *args: None,
                      password=functools.partial(lambda asked, *args: asked.append(args) or "secret", asked))
    assert asked == [(USER, "127.0.0.1", None, None)] and len(server.messages) == 1


def test_a_password_command_given_at_queue_time_is_run_by_a_later_queue_run(tmp_path):
    """send --queue --password-command: the command (never its output) is in the entry, so a
    run from cron, without the flag, logs in with it."""
    import subprocess
    import sys
    seen = []

    def authenticate(self, mechanism, response, challenge):
        seen.append((mechanism, response))
        return response == b"\0" + USER.encode() + b"\0s3cret"

    server = scripted(ScriptedSMTPServer, tmp_path, extensions=ScriptedSMTPServer.extensions + ("AUTH PLAIN",),
                      authenticate=authenticate)
    message, secret = tmp_path / "m.eml", tmp_path / "secret"
    message.write_bytes(MESSAGE)
    secret.write_text("s3cret\n")
    with Queue(str(tmp_path / "queue")) as queue:
        queue.spool(prepare_message(str(message), extract=True), parse_url(server.url, {"smtps"}), user=USER,
                    cafile=str(server.ca_file), timeout=10, password_command=f"cat {secret}")
        assert "s3cret" not in (tmp_path / "queue" / "queue").joinpath(queue.ids()[0] + ".json").read_text()
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "queue", "run", str(tmp_path / "queue")],
                            capture_output=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert seen == [("PLAIN", b"\0" + USER.encode() + b"\0s3cret")] and len(server.messages) == 1
