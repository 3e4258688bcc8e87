"""Incremental `fetch --new` from IMAP (the state's cursor: UIDVALIDITY, UIDNEXT and, with
CONDSTORE, HIGHESTMODSEQ) against the real Dovecot of tests/servers.py.

What the client sends is counted by wrapping IMAPProtocol._command (every command goes
through it). Dovecot offers CONDSTORE; the path of a server without it is taken by
keeping the client from asking for it (SELECT without the CONDSTORE parameter, so Dovecot
sends no HIGHESTMODSEQ), still against the real server.
"""

import imaplib
import ssl
import uuid
from pathlib import Path

import pytest

from mimekit.fetch.run import FetchOptions, FetchReport, fetch, fetch_pass
from mimekit.fetch.sinks import open_sink
from mimekit.fetch.state import FetchState, state_path
from mimekit.transport.imap import protocol as imap
from mimekit.transport.imap.client import IMAPClient
from mimekit.transport.urls import parse_url

pytestmark = pytest.mark.servers
USER = "alice"


def message(subject: str) -> bytes:
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\n\r\nhello\r\n").encode()


@pytest.fixture
def commands(monkeypatch) -> list[str]:
    """Every IMAP command the client sends from now on, as "NAME ARGS" text (a login's
    arguments left out: they hold the password)."""
    sent: list[str] = []
    original = imap.IMAPProtocol._command

    def counting(self, name, *args):
        shown = [] if name in ("AUTHENTICATE", "LOGIN") else \
            [a.decode("ascii", "replace") for a in args if isinstance(a, bytes)]
        sent.append(" ".join([name, *shown]))
        return original(self, name, *args)

    monkeypatch.setattr(imap.IMAPProtocol, "_command", counting)
    return sent


class Mailbox:
    """alice's INBOX fetched into one Maildir output, with one state directory."""

    def __init__(self, servers, tmp_path: Path):
        self.servers = servers
        self.url = parse_url(f"imaps://{USER}@{servers.host}:{servers.imaps}/", {"imaps"})
        self.output = tmp_path / "out"
        self.state_directory = str(tmp_path / "state")

    def deliver(self, count: int = 1) -> None:
        for n in range(count):
            self.servers.deliver_directly(USER, message(f"message {n}"))

    def fetch(self, **options) -> FetchReport:
        return fetch(self.url, open_sink(f"maildir:{self.output}"), FetchOptions(new=True, **options),
                     password=lambda: self.servers.users[USER], cafile=str(self.servers.ca_file),
                     state_directory=self.state_directory)

    def saved(self) -> list[bytes]:
        return [p.read_bytes() for sub in ("new", "cur") if (self.output / sub).is_dir()
                for p in (self.output / sub).iterdir()]

    def imaplib(self) -> imaplib.IMAP4_SSL:
        """A second client that changes the mailbox behind fetch's back."""
        client = imaplib.IMAP4_SSL(self.servers.host, self.servers.imaps,
                                   ssl_context=ssl.create_default_context(cafile=str(self.servers.ca_file)))
        client.login(USER, self.servers.users[USER])
        client.select("INBOX")
        return client


@pytest.fixture
def inbox(servers, tmp_path) -> Mailbox:
    return Mailbox(servers, tmp_path)


def searches(commands: list[str]) -> list[str]:
    return [c for c in commands if c.startswith("UID SEARCH")]


def test_unchanged_folder_costs_no_command_after_select(inbox, commands):
    inbox.deliver(3)
    assert len(inbox.fetch().fetched) == 3
    assert searches(commands) == ["UID SEARCH ALL"]
    assert any(c.startswith("EXAMINE INBOX (CONDSTORE)") for c in commands)
    commands.clear()
    report = inbox.fetch()
    assert report.fetched == [] and report.skipped == 3
    assert commands == ["AUTHENTICATE", "EXAMINE INBOX (CONDSTORE)", "LOGOUT"]


def test_one_new_message_costs_one_search_of_the_new_uids(inbox, commands):
    inbox.deliver(3)
    inbox.fetch()
    inbox.deliver(1)
    commands.clear()
    report = inbox.fetch()
    assert len(report.fetched) == 1 and report.skipped == 3
    [search] = searches(commands)
    assert search == f"UID SEARCH UID {report.fetched[0].id}:*"
    assert len(inbox.saved()) == 4


def test_a_flag_change_searches_the_tail_and_leaves_out_the_highest_uid_below_it(inbox, commands):
    """A STORE by another client moves HIGHESTMODSEQ but not UIDNEXT: the tail search
    `n:*` then answers the highest UID in use, below n (RFC 3501 §6.4.4), which is old."""
    inbox.deliver(2)
    inbox.fetch()
    client = inbox.imaplib()
    client.uid("STORE", "1:*", "+FLAGS", "(\\Flagged)")
    client.logout()
    commands.clear()
    report = inbox.fetch()
    assert len(searches(commands)) == 1
    assert report.fetched == [] and report.skipped == 2 and len(inbox.saved()) == 2


def test_limit_runs_continue_where_they_stopped(inbox, commands):
    inbox.deliver(5)
    counts = [len(inbox.fetch(limit=2).fetched) for _ in range(3)]
    assert counts == [2, 2, 1]
    saved = inbox.saved()
    assert len(saved) == len(set(saved)) == 5
    commands.clear()
    assert inbox.fetch().fetched == [] and searches(commands) == []


def test_a_run_cut_short_leaves_the_cursor_where_it_was(inbox):
    """An error after the first message (here from the progress callback) ends the run
    before the cursor moves: the next run fetches the rest, and nothing twice."""
    inbox.deliver(2)
    inbox.fetch()
    inbox.deliver(3)

    def fail_after_the_first_message(size: int, done: int) -> None:
        if done:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        fetch(inbox.url, open_sink(f"maildir:{inbox.output}"), FetchOptions(new=True),
              password=lambda: inbox.servers.users[USER], cafile=str(inbox.servers.ca_file),
              state_directory=inbox.state_directory, on_progress=fail_after_the_first_message)
    assert len(inbox.saved()) == 3
    report = inbox.fetch()
    assert len(report.fetched) == 2 and report.skipped == 3
    saved = inbox.saved()
    assert len(saved) == len(set(saved)) == 5


def test_mail_after_an_expunge_of_everything_is_fetched(inbox):
    inbox.deliver(3)
    inbox.fetch()
    inbox.servers.clear_mailbox(USER)
    inbox.deliver(1)
    report = inbox.fetch()
    assert len(report.fetched) == 1 and report.skipped == 0 and len(inbox.saved()) == 4


def test_a_later_pass_in_one_session_finds_what_the_server_reported_since(inbox, commands):
    """Passes on one connection (fetch --watch): the news of a delivery comes as an
    EXISTS (here in answer to a NOOP, as IDLE would give it); the next pass searches the
    new UIDs with one command, where the SELECT's UIDNEXT is now the cursor's."""
    inbox.deliver(1)
    sink = open_sink(f"maildir:{inbox.output}")
    source = IMAPClient(inbox.url, str(inbox.servers.ca_file), 30)
    source.open(lambda: inbox.servers.users[USER])
    try:
        with FetchState(state_path(source.account, sink.identity, False, inbox.state_directory)) as state:
            first = FetchReport()
            fetch_pass(source, sink, FetchOptions(new=True), None, state, first, None)
            assert len(first.fetched) == 1 and searches(commands) == ["UID SEARCH ALL"]
            inbox.deliver(1)
            source._expect_ok(source.proto.noop(), "NOOP")
            second = FetchReport()
            fetch_pass(source, sink, FetchOptions(new=True), None, state, second, None)
            assert len(second.fetched) == 1 and len(searches(commands)) == 2
    finally:
        source.close()
    assert len(inbox.saved()) == 2


def test_delete_after_an_earlier_new_run_deletes_what_that_run_saved(inbox, commands):
    """--delete removes every saved message still at the source (run.py), also those an
    earlier run saved: the cursor, which would list only what came after them, is not
    used then, so `fetch --new` followed by `fetch --new --delete` empties the folder."""
    inbox.deliver(2)
    assert len(inbox.fetch().fetched) == 2
    report = inbox.fetch(delete=True)
    assert report.fetched == [] and report.skipped == 2 and report.deleted == 2
    client = inbox.imaplib()
    try:
        assert client.uid("SEARCH", "ALL")[1] == [b""]
    finally:
        client.logout()
    assert len(inbox.saved()) == 2
