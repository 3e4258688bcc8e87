"""`mimekit serve` as a command (cli/serve.py, mimekit/serve/server.py): started as its users
start it, a subprocess on 127.0.0.1 port 0 (served.py reads the ports from the ready line);
mail sent with Python's smtplib; stopped with SIGTERM, which must end it with exit 0. What
is checked: the catch-all Maildir, the one log line per session, the connection limit over
both listeners, a clean stop mid-DATA, and the refusals before anything is bound."""

import asyncio
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from mimekit.serve import server
from mimekit.serve.config import ServeConfig
from served import (USERS, assert_delivered_as_sent, mimekit_command, received_with, run_mimekit, sample_message,
                    tls_options)
from servers import HOST


def log_lines(stderr: str, protocol: str, port: int) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"mimekit serve: {protocol} {HOST}:{port}: ")]


def connect(port: int) -> tuple[socket.socket, object]:
    sock = socket.create_connection((HOST, port), timeout=30)
    return sock, sock.makefile("rb")


def tmp_files(root) -> list:
    return list((root / "tmp").iterdir()) if (root / "tmp").is_dir() else []


def test_catch_all_delivers_smtplib_mail_once_and_logs_one_line_per_session(serve):
    served = serve()
    sent = sample_message("anyone@example.org", "catch-all-1")
    with smtplib.SMTP(HOST, served.smtp, timeout=30) as client:
        client_port = client.sock.getsockname()[1]
        refused = client.sendmail("app@example.test", ["anyone@example.org", "else@example.net"], sent)
    assert refused == {}
    path = served.wait_for("catch-all-1")
    assert served.messages() == [path], "one copy in the catch-all, however many recipients"
    stored = path.read_bytes()
    assert stored.startswith(b"Return-Path: <app@example.test>\nReceived: ") and stored.endswith(b"last line\n")
    stderr = served.stop()
    assert len(log_lines(stderr, "smtp", client_port)) == 1, stderr
    assert stderr.splitlines()[0].startswith(f"mimekit serve: listening: smtp {HOST}:{served.smtp}, "
                                             f"pop3 {HOST}:{served.pop3}")
    assert tmp_files(served.root) == []


def test_sigterm_mid_data_exits_0_and_delivers_nothing(serve):
    """The client has sent half a message when the server is told to stop: it never got a
    250, so nothing may be delivered, and no file may stay behind in tmp/."""
    served = serve()
    sock, replies = connect(served.smtp)
    assert replies.readline().startswith(b"220 ")
    sock.sendall(b"EHLO client.test\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
    while not replies.readline().startswith(b"354 "):
        pass
    sock.sendall(b"Subject: half\r\n\r\n" + b"x" * 100_000 + b"\r\n")
    time.sleep(0.3)   # the server has written part of it into tmp/
    idle, _ = connect(served.smtp)   # a session waiting for its client must not hold up the stop
    stderr = served.stop()
    assert served.messages() == []
    assert tmp_files(served.root) == []
    assert len(log_lines(stderr, "smtp", sock.getsockname()[1])) == 1, stderr
    sock.close()
    idle.close()


def test_the_101st_connection_hears_421_and_is_closed(serve):
    served = serve()
    held = [connect(served.smtp) for _ in range(100)]
    for _, replies in held:
        assert replies.readline().startswith(b"220 ")
    sock, replies = connect(served.smtp)
    assert re.fullmatch(rb"421 4\.7\.0 \S+ too many connections, try again later\r\n", replies.readline())
    assert replies.read() == b"", "closed after the busy reply"
    for held_sock, _ in held:
        held_sock.close()
    stderr = served.stop()
    assert log_lines(stderr, "smtp", sock.getsockname()[1]) == [
        f"mimekit serve: smtp {HOST}:{sock.getsockname()[1]}: refused: 100 connections already"]


def test_the_connection_limit_counts_smtp_and_pop3_together(serve):
    served = serve("--max-connections", "2")
    smtp_session = smtplib.SMTP(HOST, served.smtp, timeout=30)
    pop3_sock, pop3_replies = connect(served.pop3)
    assert pop3_replies.readline().startswith(b"+OK")
    for port, busy in ((served.smtp, rb"421 4\.7\.0 "), (served.pop3, rb"-ERR \[SYS/TEMP\] ")):
        _, replies = connect(port)
        assert re.match(busy, replies.readline())
        assert replies.read() == b""
    smtp_session.quit()
    deadline = time.monotonic() + 30   # the slot is free once the server has seen the QUIT through
    while True:
        sock, replies = connect(served.smtp)
        if replies.readline().startswith(b"220 "):
            break
        assert time.monotonic() < deadline, served.stderr()
        time.sleep(0.05)
    sock.close()
    pop3_sock.close()
    served.stop()


def test_max_size_is_what_the_server_enforces(serve):
    served = serve("--max-size", "1K")
    with smtplib.SMTP(HOST, served.smtp, timeout=30) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == "1024"
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:   # smtplib says SIZE=4116 in MAIL
            client.sendmail("a@example.test", ["b@example.test"], b"Subject: big\r\n\r\n" + b"x" * 4096 + b"\r\n")
    assert refused.value.smtp_code == 552
    assert served.messages() == []
    served.stop()


def test_a_port_in_use_is_one_line_and_exit_74(serve, tmp_path, env):
    served = serve()
    result = run_mimekit("serve", f"maildir:{tmp_path / 'other'}", "--smtp", f"{HOST}:{served.smtp}",
                         "--pop3", f"{HOST}:0", env=env, expect=74)
    assert result.stderr.decode().splitlines() == [
        f"mimekit serve: cannot listen on {HOST}:{served.smtp} (smtp): Address already in use"]
    served.stop()


@pytest.mark.parametrize("address", ["0.0.0.0:0", "[::]:0", "192.0.2.1:0", "mail.example.test:0"])
def test_a_non_loopback_address_needs_listen_publicly(tmp_path, env, address):
    result = run_mimekit("serve", f"maildir:{tmp_path / 'mail'}", "--smtp", address, "--pop3", f"{HOST}:0",
                         env=env, expect=64)
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("mimekit serve: --smtp ") and "--listen-publicly" in line
    assert not (tmp_path / "mail").exists(), "refused before anything is made or bound"


@pytest.mark.parametrize("options, expected", [
    (("--http", "0.0.0.0:0"), "mimekit serve: --http 0.0.0.0:0: not a loopback address; add --listen-publicly "
                              "to accept connections from other machines"),
    (("--http", "0.0.0.0:0", "--listen-publicly"), "mimekit serve: --http 0.0.0.0:0 needs --users FILE: without "
                                                   "logins anyone who reaches it could read the mail"),
    (("--smtp", "off", "--pop3", "off"), "mimekit serve: --smtp off and --pop3 off, and no --http: nothing to serve"),
    (("--tls-cert", "cert.pem"), "mimekit serve: --tls-cert and --tls-key go together: give both or neither"),
    (("--relay", "smtps://smtp.example.test"),
     "mimekit serve: --relay needs --users FILE: only a logged-in client may relay (never an open relay)"),
])
def test_usage_errors_are_one_line_and_exit_64(tmp_path, env, options, expected):
    result = run_mimekit("serve", f"maildir:{tmp_path / 'mail'}", "--smtp", f"{HOST}:0", "--pop3", f"{HOST}:0",
                         *options, env=env, expect=64)
    assert result.stderr.decode().splitlines() == [expected]


@pytest.mark.parametrize("size", ["999999999999999G", "1025G", str(2**40 + 1)])
def test_a_max_size_past_one_tebibyte_is_a_usage_error(tmp_path, env, size):
    """SIZE advertises it and the count of a message is checked against it: a number no
    message can reach is a typo, not a setting."""
    result = run_mimekit("serve", f"maildir:{tmp_path / 'mail'}", "--smtp", f"{HOST}:0", "--pop3", f"{HOST}:0",
                         "--max-size", size, env=env, expect=64)
    assert f"'{size}': at most 1024G (1 TiB)" in result.stderr.decode()
    assert not (tmp_path / "mail").exists()


def test_a_queue_directory_that_cannot_be_made_is_exit_73_at_start(tmp_path, env, users_file):
    """Not a server that runs with its relay stopped, answering 451 to every relayed message."""
    (tmp_path / "file").write_text("")
    result = run_mimekit("serve", f"maildir:{tmp_path / 'mail'}", "--smtp", f"{HOST}:0", "--pop3", f"{HOST}:0",
                         "--users", str(users_file), "--relay", "smtps://smtp.example.test",
                         "--queue-dir", str(tmp_path / "file" / "queue"), env=env, expect=73)
    assert result.stderr.decode().splitlines() == [
        f"mimekit serve: {tmp_path / 'file' / 'queue'}: cannot create the queue: Not a directory"]


def test_a_bad_certificate_or_key_is_one_line_and_exit_78(tmp_path, env, certificates):
    other = trustme.CA().issue_cert("localhost")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cases = {
        "the key does not belong to the certificate": (certificates.cert, tmp_path / "other.key"),
        "not a PEM certificate chain and its private key": (tmp_path / "junk.pem", certificates.key),
        "No such file or directory": (tmp_path / "missing.pem", certificates.key),
    }
    for reason, (cert, key) in cases.items():
        result = run_mimekit("serve", f"maildir:{tmp_path / 'mail'}", "--smtp", f"{HOST}:0", "--pop3", f"{HOST}:0",
                             "--tls-cert", str(cert), "--tls-key", str(key), env=env, expect=78)
        assert result.stderr.decode().splitlines() == [
            f"mimekit serve: cannot use the certificate '{cert}' with the key '{key}': {reason}"]


def test_with_a_certificate_smtp_offers_starttls(serve, certificates):
    served = serve(*tls_options(certificates))
    with smtplib.SMTP(HOST, served.smtp, timeout=30) as client:
        client.ehlo()
        assert client.has_extn("starttls")
    served.stop()


def test_sigint_stops_it_too(tmp_path, env):
    with open(tmp_path / "log", "wb") as log:
        process = subprocess.Popen(mimekit_command("serve", f"maildir:{tmp_path / 'mail'}", "--smtp", f"{HOST}:0",
                                                   "--pop3", "off"), stderr=log, env=env)
    deadline = time.monotonic() + 30
    while b"listening: smtp" not in (tmp_path / "log").read_bytes():
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "log").read_text()
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0, (tmp_path / "log").read_text()


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_serve_example() -> list[str]:
    """The commands of the README's `mimekit serve` example, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", text[text.index("### A local mail server\n"):], re.S)[1]
    return block.replace("\\\n", " ").splitlines()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def test_the_readme_example_runs_as_written(tmp_path, env):
    """The README's lines, run by bash with `mimekit` on PATH; only the ports are changed (to
    free ones, as tests never take fixed ports), its stderr kept, and a wait for the ready
    line put after the `&`, where a person would glance at the terminal."""
    serve_line, *commands, stop_line = readme_serve_example()
    assert re.match(r"mimekit serve maildir:\./testmail --smtp 127\.0\.0\.1:2525 --pop3 127\.0\.0\.1:1110 &\s+#",
                    serve_line) and stop_line.startswith("kill %1 ")
    ports = {"2525": str(free_port()), "1110": str(free_port())}
    script = "\n".join([
        serve_line.replace("&", "2>serve.log &", 1),
        "for _ in $(seq 600); do grep -q 'listening:' serve.log && break; sleep 0.05; done",
        *commands, stop_line, 'wait %1; echo "serve exited $?"'])
    script = re.sub(r"\b(2525|1110)\b", lambda match: ports[match[1]], script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mimekit").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mimekit_cli "$@"\n')
    (bin_dir / "mimekit").chmod(0o755)
    (tmp_path / "notes.txt").write_text("Welcome aboard.\n")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, timeout=120,
                            env={**env, "PATH": f"{bin_dir}:{env['PATH']}"})
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert result.stdout.decode().splitlines()[-1] == "serve exited 0", (result.stderr.decode(), log)
    assert "Welcome" in result.stdout.decode(), "scan lists the message"
    [message] = list((tmp_path / "testmail" / "new").iterdir())
    assert message.read_bytes().startswith(b"Return-Path: <app@example.test>\nReceived: ")
    assert re.search(rf"^mimekit serve: smtp {HOST}:\d+: ", log, re.M), log


def test_relay_sends_logged_in_users_mail_on_through_the_queue_while_it_runs(serve, users_file, tmp_path):
    """Two servers on loopback: mail a logged-in user gives the first for another domain is
    queued, and the first's relay runner delivers it to the second (smtp+plain://, loopback),
    its outcome in the first's log. A client that has not logged in cannot relay."""
    downstream = serve()
    upstream = serve("--domain", "example.test", "--users", str(users_file), "--insecure-plaintext-auth",
                     "--relay", f"smtp+plain://{HOST}:{downstream.smtp}", "--queue-dir", str(tmp_path / "queue"))
    sent = sample_message("far@elsewhere.test", "relayed-1")
    with smtplib.SMTP(HOST, upstream.smtp, timeout=30) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("alice@example.test", ["far@elsewhere.test"], sent)
        client.login("alice", USERS["alice"])
        assert client.sendmail("alice@example.test", ["far@elsewhere.test"], sent) == {}
    relayed = downstream.wait_for("relayed-1")
    deadline = time.monotonic() + 30
    while "far@elsewhere.test delivered: 250" not in upstream.stderr():
        assert time.monotonic() < deadline, upstream.stderr()
        time.sleep(0.05)
    assert upstream.messages() == [], "relayed, not delivered locally"
    # one Return-Path, the downstream's: the relayed copy left upstream with its Received alone
    downstream_received, upstream_received = assert_delivered_as_sent(relayed, sent, "alice@example.test")
    assert (received_with(downstream_received), received_with(upstream_received)) == (b"ESMTP", b"ESMTPA")
    upstream.stop()


def test_a_session_that_fails_inside_mimekit_is_one_log_line_and_the_server_goes_on(tmp_path, monkeypatch):
    """A bug in a session handler: no real client produces one on demand, so the SMTP handler
    is replaced by one that raises. Each such session is one log line naming the exception
    (no traceback), and the server keeps accepting until it is told to stop."""
    async def failing_handler(config, mailboxes, reader, writer):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(server.HANDLERS, "smtp", failing_handler)
    lines, bound, client_ports = [], [], []

    async def run() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve(ServeConfig(root=str(tmp_path / "mail")), (HOST, 0), None,
                                                   ready=bound.extend, log=lines.append, stop=stop))
        while not bound:
            await asyncio.sleep(0.01)
        for _ in range(2):
            reader, writer = await asyncio.open_connection(HOST, bound[0][1][1])
            client_ports.append(writer.get_extra_info("sockname")[1])
            assert await reader.read() == b"", "the failed session is closed"
            writer.close()
        stop.set()
        await serving

    asyncio.run(run())
    assert lines == [f"smtp {HOST}:{port}: internal error: ZeroDivisionError: division by zero" for port in client_ports]
