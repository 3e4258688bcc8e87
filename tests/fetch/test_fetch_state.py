"""--new state: durable after each message, survives a crash at any line, never double-counts."""

import glob
import os
import subprocess
import sys
import textwrap

import pytest

from mimekit.errors import CantCreateError, TempFailure
from mimekit.fetch.state import FetchState, state_directory, state_path


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state" / "acct.json")


def crash_after(path: str, code: str) -> None:
    """Run `code` on a FetchState in another process that dies without closing it."""
    script = textwrap.dedent(f"""
        import os
        from mimekit.fetch.state import FetchState
        state = FetchState({path!r})
    """) + textwrap.dedent(code) + "\nos._exit(0)\n"
    subprocess.run([sys.executable, "-c", script], check=True)


def test_records_survive_reopening(path):
    with FetchState(path) as state:
        state.record("1", "key-1", header_id="<a@x>", size=10)
        state.record("2", "key-2")
    with FetchState(path) as state:
        assert "1" in state and "2" in state and "3" not in state
        assert state.get("1").message_id == "<a@x>" and state.keys() == {"key-1", "key-2"}


def test_records_survive_a_crash_without_close(path):
    crash_after(path, 'state.record("1", "k1"); state.record("2", "k2")')
    with FetchState(path) as state:
        assert state.ids() == {"1", "2"}


def test_a_torn_last_journal_line_is_ignored(path):
    crash_after(path, 'state.record("1", "k1")')
    [journal] = glob.glob(path[:-5] + ".*.journal")
    with open(journal, "ab") as f:
        f.write(b'{"seen": "2", "key"')
    with FetchState(path) as state:
        assert state.ids() == {"1"}


def test_only_the_current_journal_remains_after_reopening(path):
    for n in range(3):
        with FetchState(path) as state:
            state.record(str(n), None)
    assert len(glob.glob(path[:-5] + ".*.journal")) == 1


def test_a_second_user_of_the_same_state_is_refused(path):
    with FetchState(path):
        with pytest.raises(TempFailure, match="another mimekit fetch"):
            FetchState(path)


def test_an_unreadable_snapshot_is_reported_not_overwritten(path):
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(CantCreateError, match="unreadable"):
        FetchState(path)
    assert open(path).read() == "{not json"


def test_pending_names_the_message_in_flight_until_it_is_recorded(path):
    crash_after(path, 'state.begin("7", {"pid": 42, "time": 1})')
    with FetchState(path) as state:
        assert (state.pending.id, state.pending.mark) == ("7", {"pid": 42, "time": 1})
        state.record("7", "k7")
        assert state.pending is None
    crash_after(path, 'state.begin("8", {})')
    with FetchState(path) as state:
        state.abandon_pending()
    with FetchState(path) as state:
        assert state.pending is None and "8" not in state


def test_uidvalidity_change_turns_records_into_stale_pairs(path):
    with FetchState(path) as state:
        assert state.set_validity(100) is False          # first sight is no change
        state.record("1", "k1", header_id="<a@x>", size=10)
        state.record("2", "k2", header_id="<a@x>", size=10)    # the same message delivered twice
        state.record("3", "k3", header_id=None, size=5)
        assert state.set_validity(100) is False
        assert state.set_validity(200) is True
        assert len(state) == 0 and state.stale_count == 3
        assert state.adopt_stale("11", "<a@x>", 10)
        assert state.adopt_stale("12", "<a@x>", 10)
        assert not state.adopt_stale("13", "<a@x>", 10), "each stale record matches one message only"
        assert not state.adopt_stale("14", "<a@x>", 11), "a different size is a different message"
        assert not state.adopt_stale("15", None, 5), "no Message-ID: fetch again rather than guess"
        assert state.ids() == {"11", "12"}


def test_stale_pairs_are_used_up_exactly_once_across_crashes(path):
    crash_after(path, """
        state.set_validity(1)
        state.record("1", "k1", header_id="<a@x>", size=10)
        state.set_validity(2)
        state.adopt_stale("9", "<a@x>", 10)
    """)
    with FetchState(path) as state:
        assert state.validity == 2 and "9" in state and state.stale_count == 0


def test_drop_stale_forgets_unmatched_old_records(path):
    with FetchState(path) as state:
        state.set_validity(1)
        state.record("1", "k1", header_id="<a@x>", size=10)
        state.set_validity(2)
        state.drop_stale()
    with FetchState(path) as state:
        assert state.stale_count == 0


def test_retain_forgets_messages_gone_from_the_source(path):
    with FetchState(path) as state:
        for uidl in ("a", "b", "c"):
            state.record(uidl, None)
        state.retain({"b", "c", "d"})
    with FetchState(path) as state:
        assert state.ids() == {"b", "c"}


def test_state_location_follows_xdg_and_separates_outputs_and_modes(tmp_path):
    assert state_directory({"XDG_STATE_HOME": str(tmp_path)}) == str(tmp_path / "mimekit" / "fetch")
    base = state_path("imap://alice@host/INBOX", "maildir:/a", False, str(tmp_path))
    assert os.path.basename(base).startswith("imap_alice@host_INBOX-")
    assert base != state_path("imap://alice@host/INBOX", "maildir:/b", False, str(tmp_path))
    assert base != state_path("imap://alice@host/INBOX", "maildir:/a", True, str(tmp_path))
    assert base == state_path("imap://alice@host/INBOX", "maildir:/a", False, str(tmp_path))


# -- the IMAP cursor (incremental --new; tests/fetch/test_incremental.py uses it against Dovecot)

def test_the_cursor_survives_a_crash_and_a_compaction(path):
    crash_after(path, "from mimekit.fetch.state import Cursor; state.set_cursor(Cursor(7, 42, 9001))")
    with FetchState(path) as state:
        assert (state.cursor.validity, state.cursor.uidnext, state.cursor.modseq) == (7, 42, 9001)
    with FetchState(path) as state:
        assert state.cursor.uidnext == 42


def test_a_state_written_before_the_cursor_and_one_from_a_later_version_are_read(path):
    """Old snapshots have no "cursor" key (the full listing then); keys a later version
    adds beside the cursor's are ignored, as its journal lines are by older code."""
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as snapshot:
        snapshot.write('{"version": 1, "generation": 3, "validity": 7, "seen": {"5": ["k", null, 10]}}')
    with FetchState(path) as state:
        assert state.cursor is None and "5" in state
    with open(path) as snapshot:
        text = snapshot.read()
    with open(path, "w") as snapshot:
        snapshot.write(text.replace('"cursor": null', '"cursor": {"validity": 7, "uidnext": 6, "modseq": null, '
                                                      '"vanished_since": 4}'))
    with FetchState(path) as state:
        assert (state.cursor.uidnext, state.cursor.modseq) == (6, None) and "5" in state


def test_a_run_that_changes_nothing_writes_nothing(path):
    """An unchanged folder's --new run opens and closes the state: the snapshot is not
    rewritten, and what a later run appends still survives a crash."""
    with FetchState(path) as state:
        state.record("1", "k1")
    before = os.stat(path)
    with FetchState(path):
        pass
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    crash_after(path, 'state.record("2", "k2")')
    with FetchState(path) as state:
        assert "1" in state and "2" in state
    assert len(glob.glob(path[:-len(".json")] + ".*.journal")) == 1
