#!/usr/bin/env python3
"""`fetch --new` on a large IMAP folder: the state's cursor (UIDNEXT, HIGHESTMODSEQ) against
listing the whole folder with UID SEARCH ALL, as --new did before.

    python3 bench/bench_fetch_incremental.py [--messages 10000] [--runs 5]

Starts the test Postfix/Dovecot of tests/servers.py (needs root, like the tests), puts
--messages small messages straight into alice's Maildir, fetches them all once with --new
into a Maildir (which sets the cursor), then times --new runs over implicit TLS, each a
whole session (connect, TLS, login, EXAMINE, listing, LOGOUT):
  nothing new   the folder as the last run left it
  one new       one message delivered before the run
for the cursor path and for the old one (the cursor ignored: UID SEARCH ALL, then the
state's lookup of every UID). Commands sent and bytes received are counted in the
protocol; "listing" is the time from the EXAMINE's answer to the list of UIDs to look at.
A session's fixed costs (TCP, TLS, login, EXAMINE) dominate on a local server; the
listing is what grows with the folder. Figures are medians of --runs; only the ratios
from one run mean anything.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from mimekit.fetch import run as fetch_run  # noqa: E402
from mimekit.fetch.run import FetchOptions, fetch  # noqa: E402
from mimekit.fetch.sinks import open_sink  # noqa: E402
from mimekit.transport.imap import protocol as imap  # noqa: E402
from mimekit.transport.urls import parse_url  # noqa: E402
from servers import ServerInstance, servers_available  # noqa: E402

USER = "alice"


def small_message(n: int) -> bytes:
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: bench {n}\r\n"
            f"Message-ID: <incremental-{n}@example.test>\r\n\r\nA short body line.\r\n").encode()


class Traffic:
    """Commands sent and bytes received by every IMAPProtocol, from install() on, and the
    seconds spent deciding what to look at (run._list: the listing round trip, or none)."""

    def __init__(self):
        self.commands: list[str] = []
        self.received = 0
        self.listing = 0.0

    def timed(self, listing):
        def timed_listing(*args):
            started = time.perf_counter()
            try:
                return listing(*args)
            finally:
                self.listing += time.perf_counter() - started
        return timed_listing

    def install(self) -> None:
        command, receive = imap.IMAPProtocol._command, imap.IMAPProtocol.receive_data
        traffic = self

        def counting_command(proto, name, *args):
            traffic.commands.append(name)
            return command(proto, name, *args)

        def counting_receive(proto, data):
            traffic.received += len(data)
            return receive(proto, data)

        imap.IMAPProtocol._command, imap.IMAPProtocol.receive_data = counting_command, counting_receive


def whole_listing(source, options, criteria, state):
    """--new as it was: every UID of the folder, whatever the cursor says."""
    return source.list(criteria), 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    reason = servers_available()
    if reason:
        sys.exit(f"bench_fetch_incremental: {reason}")
    instance = ServerInstance.start()
    try:
        servers = instance.servers
        servers.clear_mailbox(USER)
        started = time.perf_counter()
        for n in range(args.messages):
            servers.deliver_directly(USER, small_message(n))
        print(f"{args.messages} messages delivered in {time.perf_counter() - started:.1f} s")
        with tempfile.TemporaryDirectory() as work:
            url = parse_url(f"imaps://{USER}@{servers.host}:{servers.imaps}/", {"imaps"})
            output = f"maildir:{work}/out"

            def fetch_new():
                return fetch(url, open_sink(output), FetchOptions(new=True), password=lambda: servers.users[USER],
                             cafile=str(servers.ca_file), state_directory=f"{work}/state")

            started = time.perf_counter()
            first = fetch_new()
            print(f"first --new run: {len(first.fetched)} fetched in {time.perf_counter() - started:.1f} s")
            traffic = Traffic()
            traffic.install()
            cursor_listing = fetch_run._list
            figures = {}
            for round_number in range(args.runs):
                for path, listing in (("cursor", cursor_listing), ("SEARCH ALL", whole_listing)):
                    fetch_run._list = traffic.timed(listing)
                    for case in ("nothing new", "one new"):
                        if case == "one new":
                            servers.deliver_directly(USER, small_message(args.messages + len(figures) * args.runs
                                                                         + round_number))
                        traffic.commands.clear()
                        traffic.received, traffic.listing = 0, 0.0
                        started = time.perf_counter()
                        report = fetch_new()
                        elapsed = time.perf_counter() - started
                        expected = 1 if case == "one new" else 0
                        assert len(report.fetched) == expected, (path, case, report)
                        figures.setdefault((path, case), []).append(
                            (elapsed, traffic.listing, len(traffic.commands), traffic.received,
                             " ".join(traffic.commands)))
            fetch_run._list = cursor_listing
    finally:
        instance.stop()
    print(f"--new on a folder of {args.messages}+ messages, median of {args.runs} sessions:")
    print(f"{'path':<11} {'case':<12} {'session s':>9} {'listing ms':>10} {'commands':>8} {'bytes in':>9}"
          "  commands sent")
    medians = {}
    for (path, case), samples in figures.items():
        seconds, listing, received = (statistics.median(s[i] for s in samples) for i in (0, 1, 3))
        medians[(path, case)] = seconds, listing
        print(f"{path:<11} {case:<12} {seconds:9.3f} {listing * 1000:10.2f} {samples[-1][2]:8d} {received:9.0f}"
              f"  {samples[-1][4]}")
    for case in ("nothing new", "one new"):
        (old, old_listing), (new, new_listing) = medians[("SEARCH ALL", case)], medians[("cursor", case)]
        print(f"{case}: SEARCH ALL / cursor = {old / new:.2f}x per session, "
              f"{old_listing / max(new_listing, 1e-6):.0f}x for the listing")


if __name__ == "__main__":
    main()
