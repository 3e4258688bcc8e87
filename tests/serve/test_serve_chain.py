"""The seed's whole chain with no third-party server, as a user runs it:

    mimekit encode -> mimekit send smtp:// (STARTTLS, AUTH) -> mimekit serve (a certificate,
    a users file) -> mimekit fetch pop3:// (STLS) into a Maildir -> mimekit decode

gives back the same bytes, file names and text; and the testing use: an application sends in
the clear (smtp+plain://, loopback only) to a catch-all serve without a certificate.

(Named test_serve_chain.py: tests/test_chain.py is the same chain through Postfix and Dovecot,
and two test modules may not share a name.)
"""

import json

from chain import check_decoded, compose, mimekit
from served import USERS, received_with, return_path, strip_trace, tls_options
from servers import HOST


def test_encode_send_serve_fetch_decode(serve, certificates, users_file, tmp_path, env):
    inputs, message = compose(tmp_path)
    served = serve("--users", str(users_file), *tls_options(certificates))
    password_file = tmp_path / "password"
    password_file.write_text(USERS["alice"] + "\n")
    login = ("--cafile", str(certificates.ca), "--password-command", f"cat {password_file}")
    mimekit("send", "--server", f"smtp://{HOST}:{served.smtp}", "--user", "alice", *login, "-t", str(message),
            env=env)
    report = json.loads(mimekit("fetch", f"pop3://alice@{HOST}:{served.pop3}", *login,
                                "-o", f"maildir:{tmp_path / 'fetched'}", "--delete", "--json", env=env).stdout)
    [fetched] = report["fetched"]
    trace, as_sent = strip_trace(open(fetched["path"], "rb").read())
    assert len(trace) == 2 and trace[0] == return_path("bob@example.test") and received_with(trace[1]) == b"ESMTPSA"
    assert as_sent == message.read_bytes().replace(b"\r\n", b"\n"), "the message as encode made it"
    check_decoded(as_sent, inputs, tmp_path, env)
    assert served.messages() == [], "fetch --delete removed it from the server"


def test_testing_use_plaintext_to_a_catch_all(serve, tmp_path, env):
    """smtp+plain:// is the explicit opt-in to send without TLS (accepted for loopback only);
    a catch-all serve keeps whatever it is sent."""
    inputs, message = compose(tmp_path)
    served = serve()
    mimekit("send", "--server", f"smtp+plain://{HOST}:{served.smtp}", "-t", str(message), env=env)
    [path] = served.messages()
    trace, as_sent = strip_trace(path.read_bytes())
    assert len(trace) == 2 and trace[0] == return_path("bob@example.test") and received_with(trace[1]) == b"ESMTP"
    assert as_sent == message.read_bytes().replace(b"\r\n", b"\n")
    check_decoded(as_sent, inputs, tmp_path, env)
