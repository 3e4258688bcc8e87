"""Incremental `fetch --new` from an IMAP server without CONDSTORE, and one that tells of
new mail only in answer to a command: a scripted fake peer (tests/scripted_servers.py),
since the test Dovecot offers CONDSTORE, sends HIGHESTMODSEQ once a mailbox has
mod-sequences whatever the client asks, and reports new mail at moments of its own.
The Dovecot side is tests/fetch/test_incremental.py.
"""

import re

import pytest

from mimekit.fetch.run import FetchOptions, FetchReport, fetch, fetch_pass
from mimekit.fetch.sinks import open_sink
from mimekit.fetch.state import FetchState, state_path
from mimekit.transport.imap.client import IMAPClient
from mimekit.transport.urls import parse_url
from scripted_servers import ScriptedIMAPServer


def message(uid: int) -> bytes:
    return f"From: a@example.test\r\nMessage-ID: <{uid}@example.test>\r\nSubject: {uid}\r\n\r\nbody\r\n".encode()


class FolderServer(ScriptedIMAPServer):
    """One folder of messages by UID, UIDNEXT as given (no CONDSTORE). A UID SEARCH
    answers ALL or "UID n:*" as RFC 3501 says (n:* names the highest UID even below n),
    after an EXISTS when messages were added since the last answer."""

    def __init__(self, tmp_path):
        self.uids, self.uidnext, self.told = [1], 2, 1
        super().__init__(tmp_path)

    def add(self, uid: int) -> None:
        self.uids.append(uid)
        self.uidnext = uid + 1

    def select(self, tag):
        self.told = len(self.uids)
        return [b"* %d EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT %d] ok\r\n" % (len(self.uids), self.uidnext),
                tag + b" OK [READ-ONLY] done\r\n"]

    def search(self, tag):
        command = self.commands[-1].decode()
        tail = re.search(r"UID ([0-9]+):\*", command)
        found = [u for u in self.uids if u >= int(tail.group(1))] or self.uids[-1:] if tail else self.uids
        news = b"* %d EXISTS\r\n" % len(self.uids) if len(self.uids) != self.told else b""
        self.told = len(self.uids)
        return [news + b"* SEARCH " + " ".join(map(str, found)).encode() + b"\r\n", tag + b" OK done\r\n"]

    def fetch(self, tag):
        wanted = re.search(r"FETCH ([0-9:,]+)", self.commands[-1].decode()).group(1)
        replies = []
        for uid in self.uids:
            if any(int(r.split(":")[0]) <= uid <= int(r.split(":")[-1]) for r in wanted.split(",")):
                data = message(uid)
                replies += [b"* %d FETCH (UID %d FLAGS () RFC822.SIZE %d BODY[] {%d}\r\n"
                            % (self.uids.index(uid) + 1, uid, len(data), len(data)), data, b")\r\n"]
        return replies + [tag + b" OK done\r\n"]


@pytest.fixture
def server(tmp_path):
    server = FolderServer(tmp_path)
    yield server
    server.close()


def sent(server) -> list[str]:
    """The commands after the login, by name."""
    return [" ".join(line.decode().split()[1:3]) for line in server.commands if b"AUTHENTICATE" not in line]


def fetch_new(server, tmp_path) -> FetchReport:
    server.commands.clear()
    return fetch(parse_url(f"{server.url}/INBOX".replace("://", "://u@"), {"imaps"}),
                 open_sink(f"maildir:{tmp_path / 'out'}"), FetchOptions(new=True), password=lambda: "p",
                 cafile=str(server.ca_file), state_directory=str(tmp_path / "state"))


def test_without_condstore_uidnext_alone_decides(server, tmp_path):
    assert len(fetch_new(server, tmp_path).fetched) == 1
    assert b"CONDSTORE" not in b"".join(server.commands)
    unchanged = fetch_new(server, tmp_path)
    assert unchanged.fetched == [] and unchanged.skipped == 1
    assert sent(server) == ["EXAMINE INBOX", "LOGOUT"]
    server.add(2)
    arrived = fetch_new(server, tmp_path)
    assert [f.id for f in arrived.fetched] == [2] and arrived.skipped == 1
    assert [c for c in sent(server) if c.startswith("UID SEARCH")] == ["UID SEARCH"]
    assert b"UID SEARCH UID 2:*" in b"".join(server.commands)


def test_the_highest_uid_below_the_tail_is_no_new_message(server, tmp_path):
    """UID 2 came and went before the run: UIDNEXT moved, and "UID 2:*" names UID 1."""
    fetch_new(server, tmp_path)
    server.uidnext = 3
    report = fetch_new(server, tmp_path)
    assert report.fetched == [] and report.skipped == 1
    assert not any(c.startswith("UID FETCH") for c in sent(server))


def test_a_later_pass_in_one_session_asks_even_when_nothing_was_reported(server, tmp_path):
    """Without IDLE, a server tells of new mail only in answer to a command: the SELECT's
    UIDNEXT, still the cursor's, must not stand for "nothing new" in a second pass."""
    fetch_new(server, tmp_path)
    sink = open_sink(f"maildir:{tmp_path / 'out'}")
    source = IMAPClient(parse_url(f"{server.url}/INBOX".replace("://", "://u@"), {"imaps"}),
                        str(server.ca_file), 30)
    source.open(lambda: "p")
    try:
        with FetchState(state_path(source.account, sink.identity, False, str(tmp_path / "state"))) as state:
            first = FetchReport()
            fetch_pass(source, sink, FetchOptions(new=True), None, state, first, None)
            server.add(2)
            second = FetchReport()
            fetch_pass(source, sink, FetchOptions(new=True), None, state, second, None)
    finally:
        source.close()
    assert first.fetched == [] and [f.id for f in second.fetched] == [2]
