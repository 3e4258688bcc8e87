"""FetchState with an output that syncs a batch at a time (a Maildir sink): a "seen" line
is written only after the output's sync, and until then the message stays pending, so a
killed run leaves the whole unsynced batch for the next run to adopt."""

import json
import subprocess
import sys
import textwrap

import pytest

from mimekit.errors import IOFailure
from mimekit.fetch.state import FetchState

OUTPUT = """
class Output:
    def __init__(self, batch, events, fail=False):
        self.sync_batch, self.events, self.fail = batch, events, fail

    def sync(self):
        self.events.append("sync")
        if self.fail:
            raise IOFailure("disk gone")
"""
exec(OUTPUT)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state" / "acct.json")


def killed_after(path: str, code: str) -> None:
    """Run `code` on a FetchState (`state`, an `Output` class at hand) in another process
    that dies without closing it, as SIGKILL would."""
    script = "import os\nfrom mimekit.errors import IOFailure\nfrom mimekit.fetch.state import FetchState\n" + \
        OUTPUT + f"state = FetchState({path!r})\n" + textwrap.dedent(code) + "\nos._exit(0)\n"
    subprocess.run([sys.executable, "-c", script], check=True)


def test_seen_lines_wait_for_the_output_sync_of_their_batch(path):
    killed_after(path, """
        output = Output(3, [])
        for n in range(5):
            state.begin(str(n), {"n": n})
            state.record(str(n), f"k{n}", output=output)
            assert str(n) in state, "known as saved to the run at once"
        assert output.events == ["sync"]
    """)
    with FetchState(path) as state:
        assert state.ids() == {"0", "1", "2"}, "the first batch, synced; the rest was not"
        assert [(p.id, p.mark) for p in state.all_pending()] == [("3", {"n": 3}), ("4", {"n": 4})]
        assert state.pending.id == "3"


def test_sync_syncs_the_output_before_the_journal(path, monkeypatch):
    events = []
    with FetchState(path) as state:
        monkeypatch.setattr("os.fsync", lambda fd: events.append("journal fsync"))
        output = Output(64, events)
        state.begin("1", {})
        state.record("1", "k1", output=output)
        state.sync()
        assert events == ["sync", "journal fsync"]
        state.sync()
        assert events == ["sync", "journal fsync", "journal fsync"], "nothing left to sync in the output"


def test_close_syncs_the_output_before_the_snapshot(path):
    events = []
    with FetchState(path) as state:
        state.begin("1", {})
        state.record("1", "k1", output=Output(64, events))
    assert events == ["sync"]
    with FetchState(path) as state:
        assert state.ids() == {"1"} and state.pending is None


def test_a_failed_output_sync_records_nothing_of_its_batch(path):
    state = FetchState(path)
    state.begin("1", {})
    with pytest.raises(IOFailure):
        state.record("1", "k1", output=Output(1, [], fail=True))
    state.close()
    with FetchState(path) as state:
        assert "1" not in state and state.pending.id == "1", "left for the next run to adopt"


def test_an_output_without_batch_records_at_once(path):
    killed_after(path, 'state.begin("1", {}); state.record("1", "k1", output=Output(0, []))')
    with FetchState(path) as state:
        assert state.ids() == {"1"} and state.pending is None


def test_a_snapshot_keeps_several_pending_and_reads_one_as_earlier_versions_wrote_it(path):
    killed_after(path, 'state.begin("1", {"a": 1}); state.begin("2", {"a": 2})')
    with FetchState(path):
        pass                                    # compacts: the pending pair goes into the snapshot
    with FetchState(path) as state:
        assert [p.id for p in state.all_pending()] == ["1", "2"]
        state.abandon_pending()
    with open(path) as f:
        snapshot = json.load(f)
    snapshot["pending"] = {"id": "7", "mark": {"pid": 1}}
    with open(path, "w") as f:
        json.dump(snapshot, f)
    with FetchState(path) as state:
        assert [(p.id, p.mark) for p in state.all_pending()] == [("7", {"pid": 1})]


def test_a_cursor_is_written_after_the_records_it_sums_up(path):
    killed_after(path, """
        from mimekit.fetch.state import Cursor
        output = Output(64, [])
        state.begin("5", {})
        state.record("5", "k5", output=output)
        state.set_cursor(Cursor(1, 6, None))
        assert output.events == ["sync"]
    """)
    with FetchState(path) as state:
        assert state.cursor.uidnext == 6 and state.ids() == {"5"} and state.pending is None


def test_abandoning_pending_messages_keeps_those_waiting_for_the_output(path):
    killed_after(path, """
        state.begin("1", {})
        state.record("1", "k1", output=Output(64, []))
        state.abandon_pending()
    """)
    with FetchState(path) as state:
        assert state.ids() == {"1"}
