"""A run that keeps no state (a POP3 server without UIDL) still makes a batching output
durable before the server deletes anything: the Maildir sink leaves its names to one
directory fsync per batch (MaildirSink.sync_batch), and with no state there is no
"seen" line to wait for it, so fetch must sync the output itself.

The source here is a small in-memory stand-in: a real POP3 server without UIDL is not
at hand (Dovecot always has it), and what is checked is only the order of fetch's calls.
"""

from mimekit.fetch.message import ListedMessage
from mimekit.fetch.run import FetchOptions, FetchReport, fetch_pass
from mimekit.fetch.sinks import MaildirSink
from mimekit.fetch.state import FetchState
from mimekit.stores.maildir import Maildir


class NumbersOnlySource:
    """POP3 without UIDL: ids are message numbers, meaningless in a later session."""

    id_kind = "number"
    stable_ids = False
    lists_everything = True
    validity = None
    account = "pop3://alice@127.0.0.1"

    def __init__(self, messages: list[bytes], calls: list[str]):
        self.messages, self.calls = messages, calls

    def list(self, criteria):
        return [str(n) for n in range(1, len(self.messages) + 1)]

    def describe(self, ids, with_message_id):
        return [ListedMessage(i, int(i), len(self.messages[int(i) - 1])) for i in ids]

    def retrieve(self, messages, headers_only):
        for message in messages:
            yield message, iter([self.messages[message.number - 1]])

    def delete(self, ids):
        self.calls.append("delete")
        return len(ids)

    def public_id(self, message):
        return message.number


class WatchedMaildirSink(MaildirSink):
    def __init__(self, store, calls):
        super().__init__(store)
        self.calls = calls

    def add(self, message, chunks, flags, keywords=()):
        self.calls.append("add")
        return super().add(message, chunks, flags, keywords)

    def sync(self):
        self.calls.append("sync")
        super().sync()


def test_stateless_delete_syncs_the_output_first(tmp_path):
    calls: list[str] = []
    messages = [b"Subject: %d\n\nbody %d\n" % (n, n) for n in range(3)]
    sink = WatchedMaildirSink(Maildir(str(tmp_path / "out"), create=True), calls)
    state = FetchState(str(tmp_path / "state.json"), description="test")
    try:
        fetch_pass(NumbersOnlySource(messages, calls), sink, FetchOptions(delete=True), None, state,
                   FetchReport(), None)
    finally:
        state.close()
    last_add = max(i for i, call in enumerate(calls) if call == "add")
    assert calls.count("add") == 3 and calls.count("delete") == 1
    assert "sync" in calls[last_add:calls.index("delete")]


class StableIdsSource(NumbersOnlySource):
    id_kind = "uidl"
    stable_ids = True


def test_exec_hook_runs_on_a_message_saved_then_it_is_recorded(tmp_path):
    """fetch --exec (on_saved) acts on a message whose name is durable (not left for the end
    of the Maildir's batch) and that is not recorded yet: a run killed before CMD returned
    leaves it pending, for the next run to adopt and run CMD for (test_fetch_exec_kill.py).
    Its record is written right after CMD, not left for the batch either."""
    calls: list[str] = []
    messages = [b"Subject: %d\n\nbody %d\n" % (n, n) for n in range(3)]
    sink = WatchedMaildirSink(Maildir(str(tmp_path / "out"), create=True), calls)
    state = FetchState(str(tmp_path / "state.json"), description="test")

    def journal() -> bytes:
        return b"".join(path.read_bytes() for path in tmp_path.iterdir() if path.is_file())

    def on_saved(fetched):
        recorded = [b'"seen": "%d"' % n in journal() for n in range(1, 4)]
        calls.append("exec" if recorded == [n < fetched.id for n in range(1, 4)] else f"exec with {recorded}")

    try:
        fetch_pass(StableIdsSource(messages, calls), sink, FetchOptions(), None, state, FetchReport(), None,
                   on_saved=on_saved)
    finally:
        state.close()
    assert calls[:9] == ["add", "sync", "exec"] * 3


def test_exec_hook_costs_one_directory_fsync_a_message(tmp_path, monkeypatch):
    """Syncing per message for --exec fsyncs the directory the message was named into, not
    both new/ and cur/ (both only the first time: a killed run may have left names in either)."""
    import mimekit.stores.maildir as maildir_module
    messages = [b"Subject: %d\n\nbody %d\n" % (n, n) for n in range(3)]
    sink = WatchedMaildirSink(Maildir(str(tmp_path / "out"), create=True), [])
    synced: list[str] = []
    real_fsync_directory = maildir_module._fsync_directory
    monkeypatch.setattr(maildir_module, "_fsync_directory",
                        lambda path: (synced.append(path.rsplit("/", 1)[-1]), real_fsync_directory(path)))
    state = FetchState(str(tmp_path / "state.json"), description="test")
    try:
        fetch_pass(StableIdsSource(messages, []), sink, FetchOptions(), None, state, FetchReport(), None,
                   on_saved=lambda fetched: None)
    finally:
        state.close()
    assert synced == ["cur", "new", "new", "new"]
