"""The outgoing queue: send that never loses mail when the server is away (issue 12).

store.py keeps entries durably on disk (a message file and a state file each, locked while
in use); run.py delivers them, retrying with backoff. docs/queue.md describes both.

    with Queue(default_queue_directory()) as queue:
        queue.spool(prepare_message("mail.eml"), parse_url("smtps://mail.example", {"smtps"}))
        report = deliver_queue(queue)
"""

from mimekit.queue.run import (DEFAULT_MAX_AGE, EntryOutcome, RunReport, backoff, deliver_queue, next_due,
                               watch_queue)
from mimekit.queue.store import (DONE, FAILED, PENDING, Entry, LockedEntry, Queue, RecipientState,
                                 default_queue_directory)

__all__ = ["DEFAULT_MAX_AGE", "DONE", "FAILED", "PENDING", "Entry", "EntryOutcome", "LockedEntry", "Queue",
           "RecipientState", "RunReport", "backoff", "default_queue_directory", "deliver_queue", "next_due",
           "watch_queue"]
