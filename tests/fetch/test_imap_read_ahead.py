"""How far ahead the IMAP client asks for bodies (mimekit.transport.imap.client._ahead):
two batches to start with, then as many as make IMAP_AHEAD_BYTES of the messages seen so
far, so that a distant server streams small messages without a round trip per batch,
while what a stopped run still has to read stays bounded. Checked against the real
Dovecot of tests/servers.py, counting the UID FETCH commands outstanding at each write."""

import pytest

from mimekit.fetch.run import FetchOptions, fetch
from mimekit.fetch.sinks import open_sink
from mimekit.transport.imap import client as imap_client
from mimekit.transport.urls import parse_url

USER = "alice"


def small(n: int) -> bytes:
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: ahead {n}\r\n"
            f"Message-ID: <ahead-{n}@example.test>\r\n\r\nbody {n}\r\n").encode()


@pytest.mark.parametrize("received, received_bytes, expected", [
    (0, 0, 2),                              # nothing seen yet: two, as before any size is known
    (100, 100 * 2_000, 10),                 # 2 KB messages: 200 KB a batch, capped at ten
    (100, 100 * 20_000, 4),                 # 20 KB: 2 MB a batch, four make 8 MiB
    (100, 100 * 1_000_000, 2),              # 1 MB: never fewer than two
    (5, 0, 10),                             # sizes the server did not send count as nothing
])
def test_the_window_follows_the_size_of_the_messages_seen(received, received_bytes, expected):
    assert imap_client._ahead(received, received_bytes) == expected


def outstanding_fetches(monkeypatch) -> list[int]:
    """The number of UID FETCH commands sent and not yet completed, at each write."""
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
    out = tmp_path / "out"
    report = fetch(url, open_sink(f"maildir:{out}"), FetchOptions(), password=lambda: servers.users[USER],
                   cafile=str(servers.ca_file))
    uids = [f.id for f in report.fetched]
    assert uids == sorted(uids)
    return [open(f.path, "rb").read() for f in report.fetched]


@pytest.mark.servers
def test_small_messages_are_asked_for_up_to_the_cap_and_all_arrive(servers, tmp_path, monkeypatch):
    monkeypatch.setattr(imap_client, "IMAP_BATCH", 10)
    messages = [small(n) for n in range(150)]
    for data in messages:
        servers.deliver_directly(USER, data)
    seen = outstanding_fetches(monkeypatch)
    assert sorted(fetch_all(servers, tmp_path)) == sorted(m.replace(b"\r\n", b"\n") for m in messages)
    first = next(count for count in seen if count)
    assert first == 2 and max(seen) == imap_client.IMAP_MAX_AHEAD


@pytest.mark.servers
def test_large_messages_keep_two_batches_in_flight(servers, tmp_path, monkeypatch):
    monkeypatch.setattr(imap_client, "IMAP_BATCH", 10)
    monkeypatch.setattr(imap_client, "IMAP_AHEAD_BYTES", 10 * 1000)   # 1 KB a message fills a batch's share
    messages = [small(n) + b"x" * 1000 + b"\r\n" for n in range(60)]
    for data in messages:
        servers.deliver_directly(USER, data)
    seen = outstanding_fetches(monkeypatch)
    assert sorted(fetch_all(servers, tmp_path)) == sorted(m.replace(b"\r\n", b"\n") for m in messages)
    assert max(seen) == 2
