"""Scripted fake mail servers on 127.0.0.1, for faults a real server will not produce on demand.

A scripted server is not a mail server: it is a few lines of Python that answer from a
script, so a test can make one say 421 in mid-session, drop the connection, go silent,
drip one byte a second, or send numbers and streams no real server sends. Each speaks
implicit TLS with a throw-away CA (`ca_file`, for --cafile), so the client under test runs
exactly as it does against a real server (no insecure flags). Whatever a real Postfix or
Dovecot can do itself is tested against them (tests/servers.py).

A test scripts a fault by overriding methods: `scripted(ScriptedIMAPServer, tmp_path,
search=lambda self, tag: ...)`.
"""

import base64
import json
import re
import select
import socket
import ssl
import threading
import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

import trustme

from mimekit.transport.smtp.data import unstuff

MESSAGE = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: fault test\r\n\r\nbody\r\n"


class ScriptedServer:
    """One TLS session at a time on a free port of 127.0.0.1; `session()` is the script."""

    scheme = ""

    def __init__(self, tmp_path: Path):
        ca = trustme.CA()
        self.ca_file = tmp_path / "fake-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()

    def session(self, conn: ssl.SSLSocket) -> None:
        raise NotImplementedError

    def authenticate(self, mechanism: str, response: bytes | None, challenge: Callable[[bytes], bytes | None]) -> bool:
        """The script of a SASL exchange (SMTP AUTH, IMAP AUTHENTICATE, POP3 AUTH): `response`
        is the client's initial response (decoded; None when it sent none), `challenge(data)`
        sends the protocol's continuation carrying `data` and returns the client's decoded
        answer (None for a cancel). True logs the client in. This default takes anyone."""
        return True

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as conn:
                    self.session(conn)
            except (OSError, ssl.SSLError):
                pass   # the client hung up, as a client under test may


def scripted(server_class: type, tmp_path: Path, **overrides) -> ScriptedServer:
    """A `server_class` whose named script methods (or attributes) are replaced by `overrides`."""
    return type("Scripted", (server_class,), overrides)(tmp_path)


def send_all(conn: ssl.SSLSocket, replies: Iterable[bytes]) -> None:
    """Send each piece as it comes: a generator may pause between pieces, or never end."""
    for piece in replies:
        conn.sendall(piece)


def drip(data: bytes, interval: float = 1.0) -> Iterable[bytes]:
    """`data` one byte at a time, `interval` seconds apart: a peer that is never silent for
    long and never done."""
    for index in range(len(data)):
        yield data[index:index + 1]
        time.sleep(interval)


def silence() -> Iterable[bytes]:
    """Nothing, for as long as the client waits."""
    while True:
        time.sleep(1)
        yield b""


class ScriptedSMTPServer(ScriptedServer):
    """A scripted fake SMTP server; override a method to script a fault.

    Records the commands it saw (`commands`), those that arrived with more behind them in
    the same read (`batched`: pipelined), and the messages it accepted (`messages`).
    """

    scheme = "smtps"
    extensions = ("PIPELINING", "8BITMIME", "SIZE 0", "ENHANCEDSTATUSCODES")   # + CHUNKING: see test_send_faults

    def __init__(self, tmp_path: Path):
        self.commands: list[str] = []
        self.batched: list[str] = []
        self.messages: list[bytes] = []
        self.pipelined_without_offer = False
        super().__init__(tmp_path)

    # the script: each returns the reply line(s), or None to drop the connection ------------

    def greeting(self) -> str | None:
        return "220 fake.example.test ESMTP scripted fake"

    def mail(self, sender: str, count: int) -> str | None:
        return "250 2.1.0 Ok"

    def rcpt(self, address: str, count: int) -> str | None:
        return "250 2.1.5 Ok"

    def data_received(self, message: bytes, count: int) -> str | None:
        return f"250 2.0.0 Ok: queued as FAKE{count}"

    def drop_during_data(self, count: int) -> bool:
        return False

    # the machinery ------------------------------------------------------------------------

    def session(self, conn: ssl.SSLSocket) -> None:
        reader = LineReader(conn)

        def say(reply: str | None) -> bool:
            if reply is None:
                return False
            conn.sendall(reply.encode() + b"\r\n")
            return not reply.startswith("421")

        if not say(self.greeting()):
            return
        mails = rcpts = datas = 0
        mail_ok, rcpt_ok, bdat = False, 0, bytearray()   # the transaction, as a real server keeps it
        while line := reader.readline():
            command = line.decode().rstrip("\r\n")
            self.commands.append(command)
            if reader.buffer:
                self.batched.append(command)
            if "PIPELINING" not in self.extensions and reader.more_waiting():
                self.pipelined_without_offer = True
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                lines = ["fake.example.test", *self.extensions]
                reply = "\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{text}" for i, text in enumerate(lines))
            elif verb == "MAIL":
                mails += 1
                reply = self.mail(command[10:].split(">")[0].lstrip("<"), mails)
                mail_ok = bool(reply) and reply.startswith("250")
            elif verb == "RCPT":
                rcpts += 1
                reply = self.rcpt(command[8:].split(">")[0].lstrip("<"), rcpts) if mail_ok \
                    else "503 5.5.1 Error: need MAIL command"
                rcpt_ok += bool(reply) and reply.startswith("250")
            elif verb == "DATA" and not rcpt_ok:
                reply = "554 5.5.1 Error: no valid recipients"
            elif verb == "DATA":
                datas += 1
                mail_ok, rcpt_ok = False, 0
                if not say("354 End data with <CR><LF>.<CR><LF>"):
                    return
                if self.drop_during_data(datas):
                    reader.readline()   # some of the message has arrived: now vanish
                    return
                data = b""
                while not (data == b".\r\n" or data.endswith(b"\r\n.\r\n")):
                    chunk = reader.readline()
                    if not chunk:
                        return
                    data += chunk
                reply = self.data_received(unstuff(data), datas)
                if reply and reply.startswith("250"):
                    self.messages.append(unstuff(data))
            elif verb == "BDAT":
                size, last = int(command.split()[1]), command.upper().endswith(" LAST")
                if self.drop_during_data(datas + 1):
                    reader.read(min(size, 10))   # some of the message has arrived: now vanish
                    return
                chunk = reader.read(size)
                if not rcpt_ok:
                    reply = "554 5.5.1 Error: no valid recipients"
                else:
                    bdat += chunk
                    reply = f"250 2.0.0 Ok: {size} bytes"
                if last and rcpt_ok:
                    datas += 1
                    reply = self.data_received(bytes(bdat), datas)
                    if reply and reply.startswith("250"):
                        self.messages.append(bytes(bdat))
                if last:
                    mail_ok, rcpt_ok, bdat = False, 0, bytearray()
            elif verb == "RSET":
                mail_ok, rcpt_ok, bdat = False, 0, bytearray()
                reply = "250 2.0.0 Ok"
            elif verb == "AUTH":
                words = command.split()
                reply = ("235 2.7.0 Authentication successful"
                         if self.authenticate(words[1].upper(), _sasl_initial(words[2:]),
                                              partial(_sasl_challenge, conn, reader, b"334 "))
                         else "535 5.7.8 Error: authentication failed")
            elif verb == "QUIT":
                say("221 2.0.0 Bye")
                return
            else:
                reply = "502 5.5.2 Error: command not recognized"
            if not say(reply):
                return


class LineReader:
    """Lines from a socket, keeping what arrived beyond them (to notice pipelining)."""

    def __init__(self, conn: ssl.SSLSocket):
        self.conn = conn
        self.buffer = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buffer and self._more():
            pass
        line, newline, self.buffer = self.buffer.partition(b"\n")
        return line + newline

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size and self._more():
            pass
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _more(self) -> bool:
        data = self.conn.recv(65536)
        self.buffer += data
        return bool(data)

    def more_waiting(self) -> bool:
        """Did the client send more before our reply? Waits a moment to let it arrive."""
        time.sleep(0.02)
        return bool(self.buffer) or self.conn.pending() > 0 or bool(select.select([self.conn], [], [], 0)[0])


class ScriptedIMAPServer(ScriptedServer):
    """A scripted fake IMAP server: one folder, INBOX, holding MESSAGE as UID 1. Each
    script method returns the bytes to send for one command (any iterable: a generator
    may drip, flood or never end). `commands` records what the client sent."""

    scheme = "imaps"
    capabilities = b"IMAP4rev1 AUTH=PLAIN SASL-IR"

    def __init__(self, tmp_path: Path):
        self.commands: list[bytes] = []
        super().__init__(tmp_path)

    def greeting(self) -> Iterable[bytes]:
        return [b"* OK [CAPABILITY " + self.capabilities + b"] scripted fake\r\n"]

    def select(self, tag: bytes) -> Iterable[bytes]:
        return [b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n", tag + b" OK [READ-ONLY] done\r\n"]

    def search(self, tag: bytes) -> Iterable[bytes]:
        return [b"* SEARCH 1\r\n", tag + b" OK done\r\n"]

    def fetch(self, tag: bytes) -> Iterable[bytes]:
        size = len(MESSAGE)
        return [b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE %d BODY[] {%d}\r\n" % (size, size), MESSAGE,
                b")\r\n", tag + b" OK done\r\n"]

    def list(self, tag: bytes) -> Iterable[bytes]:
        return [b'* LIST () "/" INBOX\r\n', tag + b" OK done\r\n"]

    def other(self, tag: bytes, command: bytes) -> Iterable[bytes]:
        """Any other command (STORE, COPY, MOVE, EXPUNGE...), `command` as sent after the tag."""
        return [tag + b" BAD not in the script\r\n"]

    def session(self, conn: ssl.SSLSocket) -> None:
        send_all(conn, self.greeting())
        reader = LineReader(conn)
        while line := reader.readline():
            self.commands.append(line)
            tag, _, command = line.rstrip(b"\r\n").partition(b" ")
            words = command.upper().split()
            verb = words[1] if words[:1] == [b"UID"] and len(words) > 1 else (words or [b""])[0]
            if verb == b"AUTHENTICATE" and not self.authenticate(words[1].decode(), _sasl_initial(command.split()[2:]),
                                                                 partial(_sasl_challenge, conn, reader, b"+ ")):
                replies = [tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"]
            elif verb in (b"AUTHENTICATE", b"LOGIN"):
                replies = [tag + b" OK [CAPABILITY " + self.capabilities + b"] logged in\r\n"]
            elif verb in (b"SELECT", b"EXAMINE"):
                replies = self.select(tag)
            elif verb == b"SEARCH":
                replies = self.search(tag)
            elif verb == b"FETCH":
                replies = self.fetch(tag)
            elif verb == b"LIST":
                replies = self.list(tag)
            elif verb == b"NOOP":          # what every server answers (fetch --watch polls with it)
                replies = [tag + b" OK done\r\n"]
            elif verb == b"LOGOUT":
                send_all(conn, [b"* BYE scripted fake\r\n", tag + b" OK bye\r\n"])
                return
            else:
                replies = self.other(tag, command)
            send_all(conn, replies)


class ScriptedPOP3Server(ScriptedServer):
    """A scripted fake POP3 server: USER/PASS, one message (MESSAGE). `listing()` is the
    LIST reply, the place a test scripts odd numbers into."""

    scheme = "pop3s"
    sasl = ""   # the SASL mechanisms CAPA lists, if any

    def listing(self) -> bytes:
        return b"+OK\r\n1 %d\r\n.\r\n" % len(MESSAGE)

    def session(self, conn: ssl.SSLSocket) -> None:
        conn.sendall(b"+OK scripted fake\r\n")
        reader = LineReader(conn)
        while line := reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"CAPA":
                sasl = f"SASL {self.sasl}\r\n".encode() if self.sasl else b""
                reply = b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n" + sasl + b".\r\n"
            elif verb == b"AUTH":
                words = line.split()
                reply = (b"+OK logged in\r\n"
                         if self.authenticate(words[1].decode().upper(), _sasl_initial(words[2:]),
                                              partial(_sasl_challenge, conn, reader, b"+ "))
                         else b"-ERR [AUTH] Authentication failed.\r\n")
            elif verb in (b"USER", b"PASS", b"DELE"):
                reply = b"+OK\r\n"
            elif verb == b"UIDL":
                reply = b"+OK\r\n1 one\r\n.\r\n"
            elif verb == b"LIST":
                reply = self.listing()
            elif verb == b"RETR":
                reply = b"+OK\r\n" + MESSAGE + b".\r\n"
            elif verb == b"QUIT":
                conn.sendall(b"+OK bye\r\n")
                return
            else:
                reply = b"-ERR not in the script\r\n"
            conn.sendall(reply)


def _sasl_initial(words: list) -> bytes | None:
    """The initial response of an AUTH/AUTHENTICATE line's remaining words, decoded ("=" is empty)."""
    if not words:
        return None
    word = words[0] if isinstance(words[0], str) else words[0].decode()
    return b"" if word == "=" else base64.b64decode(word)


def _sasl_challenge(conn: ssl.SSLSocket, reader: "LineReader", prefix: bytes, data: bytes) -> bytes | None:
    """Send `prefix` + base64(`data`) as a continuation; the client's answer, decoded (None: "*")."""
    conn.sendall(prefix + base64.b64encode(data) + b"\r\n")
    answer = reader.readline().rstrip(b"\r\n")
    return None if answer == b"*" else base64.b64decode(answer)


# -- OAuth2: the identity provider's side, scripted -----------------------------------------

_XOAUTH2 = re.compile(rb"user=([^\x01]*)\x01auth=Bearer ([^\x01]*)\x01\x01\Z")
_OAUTHBEARER = re.compile(rb"n,a=([^,]*),\x01host=([^\x01]*)\x01port=([0-9]+)\x01auth=Bearer ([^\x01]*)\x01\x01\Z")


class IdentityProvider:
    """The server's check of a token, scripted: tokens in `valid` log in, any other gets the
    error challenge with `status` and the client's answer to it is recorded."""

    def __init__(self, valid=(), status="401"):
        self.valid, self.status = set(valid), status
        self.logins: list[tuple[str, bytes]] = []      # (mechanism, the client's response)
        self.error_answers: list[bytes | None] = []

    def authenticate(self, mechanism, response, challenge) -> bool:
        if response is None:
            response = challenge(b"")   # no initial response: the empty go-ahead first
        self.logins.append((mechanism, response))
        if self.token(mechanism, response) in self.valid:
            return True
        error = {"status": self.status, "schemes": "bearer", "scope": "https://mail.example.test/"}
        self.error_answers.append(challenge(json.dumps(error).encode()))
        return False

    @staticmethod
    def token(mechanism: str, response: bytes) -> str:
        match = (_OAUTHBEARER if mechanism == "OAUTHBEARER" else _XOAUTH2).match(response)
        assert match, f"malformed {mechanism} response {response!r}"
        return match.groups()[-1].decode()

    @property
    def tokens(self) -> list[str]:
        return [self.token(mechanism, response) for mechanism, response in self.logins]


class Tokens:
    """A token source that hands out the next token at each call, as a refreshing token command does."""

    def __init__(self, *tokens):
        self.left = list(tokens)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return self.left.pop(0)
