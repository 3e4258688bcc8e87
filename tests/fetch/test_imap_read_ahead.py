"""How many batches of bodies the IMAP client has asked for and not yet read
(mimekit.transport.imap.client._in_flight): two to start with, then as many as make
IMAP_IN_FLIGHT_BYTES of bodies as large as the largest so far, so that a distant server
streams small messages without a round trip per batch, while what a stopped run still has
to read stays bounded. Checked against the real Dovecot of tests/servers.py, counting the
UID FETCH commands outstanding each time the client writes or waits for a reply."""

import imaplib
from pathlib import Path

import pytest

from mimekit.fetch.run import FetchOptions, fetch
from mimekit.fetch.sinks import open_sink
from mimekit.transport.imap import client as imap_client
from mimekit.transport.tls import client_context
from mimekit.transport.urls import parse_url

USER = "alice"
MiB = 1024 * 1024


def message(n: int, padding: int = 0) -> bytes:
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: in flight {n}\r\n"
            f"Message-ID: <in-flight-{n}@example.test>\r\n\r\nbody {n}\r\n").encode() + b"x" * padding


@pytest.mark.parametrize("largest, expected", [
    (None, 2),              # no body yet: two, as before any size is known
    (2_000, 10),            # 2 KB bodies: 200 KB a batch, capped at ten
    (20_000, 4),            # 20 KB: 2 MB a batch, four make 8 MiB
    (1_000_000, 2),         # 1 MB: never fewer than two
    (0, 10),                # empty bodies cost nothing to read
])
def test_the_window_follows_the_largest_body_so_far(largest, expected):
    assert imap_client.IMAP_IN_FLIGHT_BYTES == 8 * MiB and imap_client.IMAP_BATCH == 100
    assert imap_client._in_flight(largest) == expected


def outstanding_fetches(monkeypatch) -> list[int]:
    """The number of UID FETCH commands sent and not yet completed, each time the client
    writes what it has queued (which it also does before every read)."""
    seen: list[int] = []
    flush = imap_client.IMAPClient._flush

    def counting_flush(self):
        written = flush(self)
        seen.append(self.proto.pending_commands().count("UID FETCH"))
        return written

    monkeypatch.setattr(imap_client.IMAPClient, "_flush", counting_flush)
    return seen


def fetch_all(servers, tmp_path) -> list[bytes]:
    """Every message as saved, in the order fetched, which must be the order of the UIDs."""
    url = parse_url(f"imaps://{USER}@{servers.host}:{servers.imaps}", {"imaps"})
    report = fetch(url, open_sink(f"maildir:{tmp_path / 'out'}"), FetchOptions(), password=lambda: servers.users[USER],
                   cafile=str(servers.ca_file), state_directory=str(tmp_path / "state"))
    uids = [f.id for f in report.fetched]
    assert uids == sorted(uids)
    return [Path(f.path).read_bytes() for f in report.fetched]


def delivered(servers, messages: list[bytes]) -> list[bytes]:
    """`messages` put in the INBOX, as a Maildir output keeps them (LF), in a stable order."""
    for data in messages:
        servers.deliver_directly(USER, data)
    return sorted(m.replace(b"\r\n", b"\n") for m in messages)


@pytest.mark.servers
def test_small_messages_are_asked_for_up_to_the_cap_and_all_arrive(servers, tmp_path, monkeypatch):
    monkeypatch.setattr(imap_client, "IMAP_BATCH", 10)
    expected = delivered(servers, [message(n) for n in range(150)])
    seen = outstanding_fetches(monkeypatch)
    assert sorted(fetch_all(servers, tmp_path)) == expected
    first = next(count for count in seen if count)
    assert first == 2 and max(seen) == imap_client.IMAP_MAX_IN_FLIGHT


@pytest.mark.servers
def test_a_large_message_keeps_the_window_at_two(servers, tmp_path, monkeypatch):
    """A large message first, then small ones: the mean size would soon open the window
    again, the largest keeps it at two. Dovecot numbers the large one first as it sees
    it alone (the names of one second's deliveries do not keep their order)."""
    monkeypatch.setattr(imap_client, "IMAP_BATCH", 10)
    monkeypatch.setattr(imap_client, "IMAP_IN_FLIGHT_BYTES", 100_000)   # a 10 KB body fills a batch's share
    expected = delivered(servers, [message(0, padding=10_000)])
    with imaplib.IMAP4_SSL(servers.host, servers.imaps, ssl_context=client_context(str(servers.ca_file))) as seer:
        seer.login(USER, servers.users[USER])
        assert seer.select("INBOX", readonly=True) == ("OK", [b"1"])
    expected = sorted(expected + delivered(servers, [message(n) for n in range(1, 150)]))
    seen = outstanding_fetches(monkeypatch)
    assert sorted(fetch_all(servers, tmp_path)) == expected
    assert max(seen) == 2
