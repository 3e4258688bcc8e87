"""POP3 clients nobody here wrote, retrieving from `mimekit serve`: Python's poplib (STLS),
fetchmail (STLS, certificate checked), getmail6 (plain POP3: it has no STLS) and mimekit's own
fetch. Each gets the stored messages back byte for byte (CRLF on the wire), leaves them with
keep, removes them with DELE applied at QUIT, and a second run finds nothing."""

import json
import poplib
import ssl
import subprocess

import pytest
from served import USERS, place_message, require_tool, run_mimekit, sample_message, strip_trace, tls_options
from servers import HOST, SERVE_DOMAIN


def maildrop_with_mail(serve, certificates, users_file, *options: str):
    """serve (one domain, the users file, a certificate, OPTIONS) with two messages placed in
    alice's Maildir by another delivery agent; returns it and {unique name: stored bytes (LF)}."""
    served = serve("--domain", SERVE_DOMAIN, "--users", str(users_file), *tls_options(certificates), *options)
    stored = {}
    for number in range(2):
        data = sample_message(f"alice@{SERVE_DOMAIN}", f"pop3-{number}").replace(b"\r\n", b"\n")
        stored[place_message(served.maildir("alice"), data)] = data
    return served, stored


def wire(stored: bytes) -> bytes:
    return stored.replace(b"\n", b"\r\n")


def stls_login(served, certificates, password: str = USERS["alice"]) -> poplib.POP3:
    pop = poplib.POP3(HOST, served.pop3, timeout=30)
    pop.stls(ssl.create_default_context(cafile=str(certificates.ca)))
    pop.user("alice")
    pop.pass_(password)
    return pop


def test_poplib_stls_retrieve_then_delete_at_quit(serve, certificates, users_file):
    served, stored = maildrop_with_mail(serve, certificates, users_file)
    pop = poplib.POP3(HOST, served.pop3, timeout=30)
    capabilities = pop.capa()
    for capability in ("STLS", "UIDL", "TOP", "PIPELINING", "RESP-CODES"):
        assert capability in capabilities, capability
    with pytest.raises(poplib.error_proto):
        pop.user("alice")   # no login in the clear
    pop.stls(ssl.create_default_context(cafile=str(certificates.ca)))
    pop.user("alice")
    pop.pass_(USERS["alice"])

    assert pop.stat() == (2, sum(len(wire(data)) for data in stored.values())), "sizes count CRLF line ends"
    numbers = {name.decode(): int(number) for number, name in (line.split() for line in pop.uidl()[1])}
    assert set(numbers) == set(stored), "UIDL is the Maildir unique name"
    sizes = dict(map(int, line.split()) for line in pop.list()[1])
    for name, number in numbers.items():
        expected = wire(stored[name])
        assert sizes[number] == len(expected)
        _, lines, _ = pop.retr(number)
        assert b"\r\n".join(lines) + b"\r\n" == expected, "RETR gives the message byte for byte"
        _, lines, _ = pop.top(number, 0)
        assert b"\r\n".join(lines) + b"\r\n" == expected[:expected.index(b"\r\n\r\n") + 4]

    pop.dele(1)
    pop.rset()   # undoes the DELE
    for number in numbers.values():
        pop.dele(number)
    assert len(served.messages("alice")) == 2, "DELE only marks; QUIT applies it"
    assert pop.quit().startswith(b"+OK")
    assert served.messages("alice") == []

    pop = stls_login(served, certificates)
    assert pop.stat() == (0, 0)
    pop.quit()


def test_poplib_wrong_password(serve, certificates, users_file):
    served, _ = maildrop_with_mail(serve, certificates, users_file)
    with pytest.raises(poplib.error_proto) as refused:
        stls_login(served, certificates, password="wrong")
    assert refused.value.args[0].startswith(b"-ERR")
    pop = stls_login(served, certificates)   # the failure locked nothing
    assert pop.stat()[0] == 2
    pop.quit()


def test_poplib_plain_with_insecure_plaintext_auth(serve, certificates, users_file):
    served, stored = maildrop_with_mail(serve, certificates, users_file, "--insecure-plaintext-auth")
    pop = poplib.POP3(HOST, served.pop3, timeout=30)
    pop.user("alice")
    pop.pass_(USERS["alice"])
    retrieved = {b"\r\n".join(pop.retr(number)[1]) + b"\r\n" for number in (1, 2)}
    assert retrieved == {wire(data) for data in stored.values()}
    pop.quit()
    assert len(served.messages("alice")) == 2, "nothing deleted without DELE"


def write_fetchmailrc(path, served, certificates, delivered_dir) -> None:
    """A poll entry as fetchmail users write one: STLS required (sslproto) with the
    certificate checked against the CA (by name: fetchmail ignores IP addresses in it, hence
    localhost), the message untouched (no Received, no address rewriting), handed to an MDA
    that writes one file per message."""
    path.write_text(f"""\
set no syslog
set no bouncemail
set invisible
poll localhost service {served.pop3} protocol pop3 uidl
    user "alice" there with password "{USERS['alice']}" is "alice" here
    sslproto "tls1.2+" sslcertck sslcertfile "{certificates.ca}"
    no rewrite
    mda "cat > {delivered_dir}/message-$$"
""")
    path.chmod(0o600)


def test_fetchmail_stls_keep_then_delete(serve, certificates, users_file, tmp_path, env):
    fetchmail = require_tool("fetchmail")
    served, stored = maildrop_with_mail(serve, certificates, users_file)
    rc = tmp_path / "fetchmailrc"

    def run(delivered_dir, *flags):
        delivered_dir.mkdir()
        write_fetchmailrc(rc, served, certificates, delivered_dir)
        result = subprocess.run([fetchmail, "--fetchmailrc", str(rc), "--idfile", str(tmp_path / "fetchids"),
                                 "--pidfile", str(tmp_path / "fetchmail.pid"), "--fetchall", *flags],
                                env=env, capture_output=True, timeout=120)
        return result, {path.read_bytes() for path in delivered_dir.iterdir()}

    result, delivered = run(tmp_path / "kept", "--keep")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert delivered == set(stored.values())
    assert len(served.messages("alice")) == 2, "--keep leaves them on the server"

    result, delivered = run(tmp_path / "deleted", "--nokeep")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert delivered == set(stored.values())
    assert served.messages("alice") == []

    result, delivered = run(tmp_path / "again")
    assert result.returncode == 1, result.stderr.decode(errors="replace")   # 1: no mail
    assert delivered == set()


def write_getmailrc(path, served, password_file, destination, delete: bool) -> None:
    """getmail6's SimplePOP3Retriever: getmail has no STLS (only implicit TLS, which serve
    does not offer), so this is plain POP3 against serve --insecure-plaintext-auth. No
    Delivered-To or Received added: the files are the messages as retrieved, written by an
    external MDA (getmail's own Maildir writer refuses to run as root, as the tests may), with
    the Return-Path getmail puts on a message without one."""
    path.write_text(f"""\
[retriever]
type = SimplePOP3Retriever
server = {HOST}
port = {served.pop3}
username = alice
password_command = ("/bin/cat", "{password_file}")

[destination]
type = MDA_external
path = /bin/sh
arguments = ("-c", "cat > {destination}/message-$$")
allow_root_commands = true

[options]
read_all = true
delete = {str(delete).lower()}
delivered_to = false
received = false
verbose = 0
""")


def test_getmail_plain_keep_then_delete(serve, certificates, users_file, tmp_path, env):
    getmail = require_tool("getmail")
    served, stored = maildrop_with_mail(serve, certificates, users_file, "--insecure-plaintext-auth")
    password_file = tmp_path / "password"
    password_file.write_text(USERS["alice"] + "\n")
    (tmp_path / "getmail").mkdir()

    def run(name, delete):
        destination = tmp_path / name
        destination.mkdir()
        rc = tmp_path / "getmail" / f"getmailrc-{name}"
        write_getmailrc(rc, served, password_file, destination, delete)
        result = subprocess.run([getmail, "--getmaildir", str(tmp_path / "getmail"), "--rcfile", str(rc)],
                                env=env, capture_output=True, timeout=120)
        assert result.returncode == 0, (result.stdout + result.stderr).decode(errors="replace")
        retrieved = [strip_trace(path.read_bytes()) for path in destination.iterdir()]
        assert all(trace == [b"Return-Path: <unknown>"] for trace, _ in retrieved), retrieved
        return {message for _, message in retrieved}

    assert run("kept", delete=False) == set(stored.values())
    assert len(served.messages("alice")) == 2
    assert run("deleted", delete=True) == set(stored.values())
    assert served.messages("alice") == []
    assert run("again", delete=True) == set()


def test_mimekit_fetch_pop3(serve, certificates, users_file, tmp_path, env):
    """mimekit's own client: pop3:// means STLS, verified with --cafile; --delete removes
    only what was saved."""
    served, stored = maildrop_with_mail(serve, certificates, users_file)
    password_file = tmp_path / "password"
    password_file.write_text(USERS["alice"] + "\n")

    def fetch(output, *flags):
        report = run_mimekit("fetch", f"pop3://alice@{HOST}:{served.pop3}", "--cafile", str(certificates.ca),
                             "--password-command", f"cat {password_file}", "-o", f"maildir:{tmp_path / output}",
                             "--json", *flags, env=env).stdout
        return {open(entry["path"], "rb").read() for entry in json.loads(report)["fetched"]}

    assert fetch("kept") == set(stored.values())
    assert len(served.messages("alice")) == 2
    assert fetch("deleted", "--delete") == set(stored.values())
    assert served.messages("alice") == []
    assert fetch("again") == set()
