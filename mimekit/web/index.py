"""The header index: what the message list and the search read, kept in SQLite so that a
folder of 100,000 messages lists its first page in milliseconds.

The index is a cache. The stores (Maildir, mbox, directories of files) stay the truth:
`refresh` brings a folder's rows in line with its store, and a file that is missing, from
another schema version or corrupt is deleted and rebuilt from the stores, never an error.

Refreshing is cheap when nothing changed: a Maildir is looked at through the times of its
new/ and cur/ directories (a delivery, a removal or a flag change renames a file in one of
them), an mbox through its inode, size and time, a directory of files through its time.
When something did change, only what changed is listed again: of a Maildir, the one of
new/ and cur/ whose time moved (a delivery lists new/ alone, which a reader keeps small),
its names compared as sets with the names kept in memory from the last listing (no stat
per file, no query per row); an mbox or a directory of files is listed whole and compared
with its rows by key. Only new messages are read (across every core, through
mimekit.read.batch, for many), gone ones dropped, and a Maildir message whose flags
changed updated in place.

A message is read with mimekit's own parser (read.tree.parse_message): the addresses, the
subject and dates of its header, whether any part is an attachment (read.summary.
is_attachment, as `scan` and `show` count them) and the start of its text body (the part
read.summary.body_part picks), which feeds a full-text table (FTS5). A message that cannot
be read is still listed, with an empty subject and the reason kept in its row.
"""

import functools
import hashlib
import itertools
import json
import os
import re
import sqlite3
import threading
import time
from calendar import timegm
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, NamedTuple

from mimekit.errors import MimekitError
from mimekit.headers.addresses import Address, parse_address_list
from mimekit.headers.dates import parse_date
from mimekit.limits import parse_decimal
from mimekit.read.batch import default_jobs, map_messages
from mimekit.read.extract import iter_text
from mimekit.read.summary import body_part, is_attachment
from mimekit.read.tree import parse_message
from mimekit.stores.maildir import flags_of, message_key
from mimekit.stores.sources import MessageRef, mbox_messages, messages_of, opened
from mimekit.web.model import EmailAddress, Folder, IndexedEmail, Page, Query

SCHEMA_VERSION = 1             # PRAGMA user_version; another version: the file is rebuilt
INDEXED_TEXT = 64 * 1024       # characters of a message's text body the full-text search sees
PREVIEW = 256                  # characters of the text body a list row shows
WRITE_BATCH = 1000             # rows written per transaction while a folder is indexed
RECENT_NS = 1_000_000_000      # a directory changed this recently may change again within the
                               # same timestamp tick: its time is not trusted until next refresh
MAILDIR_PARTS = ("new", "cur")  # listed in this order (see HeaderIndex._refresh_maildir)
LISTING_ATTEMPTS = 3           # listings of a directory that changes while it is listed

_SCHEMA = """
CREATE TABLE folders (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    stamp TEXT NOT NULL,             -- JSON of what `refresh` compares (directory times, ...)
    trusted INTEGER NOT NULL         -- 0: the stamp was too recent to be sure of: list again next time
);
CREATE TABLE emails (
    row INTEGER PRIMARY KEY,         -- the full-text table's rowid
    id TEXT NOT NULL UNIQUE,
    folder_id TEXT NOT NULL,
    key TEXT NOT NULL,               -- the message's key in its folder (unique name, offset, path)
    signature TEXT NOT NULL,         -- what changes with the message as listed (its path, span, file time)
    kind TEXT NOT NULL, path TEXT NOT NULL, mailbox TEXT NOT NULL, ref_key TEXT NOT NULL,
    start_offset INTEGER NOT NULL, end_offset INTEGER NOT NULL,
    flags TEXT NOT NULL,
    unread INTEGER NOT NULL,
    received_at REAL NOT NULL,
    sent_at REAL,
    from_json TEXT NOT NULL, to_json TEXT NOT NULL, cc_json TEXT NOT NULL,
    from_text TEXT NOT NULL,         -- lowercase "name <address>, ..." for from: searches
    to_text TEXT NOT NULL,           -- the same of To and Cc, for to: searches
    subject TEXT NOT NULL,
    subject_text TEXT NOT NULL,      -- lowercase, for subject: searches
    size INTEGER NOT NULL,
    has_attachment INTEGER NOT NULL,
    preview TEXT NOT NULL,
    message_id TEXT,
    problem TEXT                     -- why the message could not be read, when it could not
);
CREATE INDEX emails_newest ON emails (folder_id, received_at);
CREATE INDEX emails_unread ON emails (folder_id, unread, received_at);
CREATE VIRTUAL TABLE emails_text USING fts5 (subject, sender, recipients, body,
                                             tokenize = "unicode61 remove_diacritics 2");
"""

_COLUMNS = ("id", "folder_id", "key", "signature", "kind", "path", "mailbox", "ref_key", "start_offset",
            "end_offset", "flags", "unread", "received_at", "sent_at", "from_json", "to_json", "cc_json",
            "from_text", "to_text", "subject", "subject_text", "size", "has_attachment", "preview",
            "message_id", "problem")
_INSERT = f"INSERT OR IGNORE INTO emails ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM emails"


def email_id(folder: Folder, key: str) -> str:
    """Stable across rebuilds: the same folder source and key give the same id."""
    return hashlib.sha256(os.fsencode(folder.source + "\0" + key)).hexdigest()[:24]


def _rebuilt_when_corrupt(method):
    """A file found corrupt while in use is rebuilt empty (each folder's next refresh fills
    it again) and the work done again on it: a broken cache is never an error."""
    @functools.wraps(method)
    def guarded(self, *args):
        try:
            return method(self, *args)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:    # OperationalError (locked, busy) and the like
                raise
            with self._lock:
                self._db.close()
                self._db = self._opened(fresh=True)
                self._views.clear()
            return method(self, *args)
    return guarded


class HeaderIndex:
    """The index file at `path`; one connection, shared by every thread under one lock."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._db = self._opened()
        self._refreshing = threading.Lock()                 # one refresh at a time: they share _views
        self._views: dict[str, _MaildirView] = {}          # folder id -> its Maildir as last listed

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- the file -----------------------------------------------------------------------

    def _opened(self, fresh: bool = False) -> sqlite3.Connection:
        """The index, rebuilt empty when `fresh` or when the file is from another version
        or not a database: it is a cache of the stores."""
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if not fresh:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                if db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                    db.execute("SELECT count(*) FROM folders").fetchone()
                    return self._configured(db)
            except sqlite3.DatabaseError:
                pass
            db.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(self.path + suffix)
            except FileNotFoundError:
                pass
        db = self._configured(sqlite3.connect(self.path, check_same_thread=False, isolation_level=None))
        db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        return db

    @staticmethod
    def _configured(db: sqlite3.Connection) -> sqlite3.Connection:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")     # a cache: losing the last commits costs a re-read
        return db

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction, under the lock (the connection is in autocommit mode otherwise)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- refresh --------------------------------------------------------------------------

    @_rebuilt_when_corrupt
    def refresh(self, folder: Folder) -> bool:
        """Bring the folder's rows in line with its store; whether any row changed. When
        the store's stamp is the one kept, that is all it costs (two or three stats)."""
        with self._refreshing:
            with self._lock:
                kept = self._db.execute("SELECT stamp, trusted FROM folders WHERE id = ?", (folder.id,)).fetchone()
            kept_stamp = json.loads(kept[0]) if kept else None
            if folder.kind == "maildir":
                return self._refresh_maildir(folder, kept_stamp or {}, bool(kept and kept[1]))
            stamp = _stamp(folder)
            if kept and kept[1] and kept_stamp == stamp:
                return False
            changed = False
            if folder.kind == "mbox" and kept_stamp is not None and kept_stamp["inode"] != stamp["inode"]:
                self._drop_folder(folder.id)        # rewritten (a removal): every offset, every key moved
                changed = True
            changed = self._update(folder, _listing(folder)) or changed
            self._keep_stamp(folder, stamp, trusted=not _recent(stamp))
            return changed

    def _refresh_maildir(self, folder: Folder, kept: dict, trusted: bool) -> bool:
        """List again those of new/ and cur/ whose time moved, or was too recent to trust,
        and compare their names with the folder's view (loaded from the rows the first time).

        Each directory's time is taken before it is listed, so a change made during the
        listing moves it past the time kept and is seen next time. new/ is listed before
        cur/'s time is taken: a message moved from new/ to cur/ after new/ was listed has
        moved cur/'s time, so cur/ is listed too and the message is in one of the two."""
        path = _store_path(folder)
        recent = set(kept.get("recent", () if trusted else MAILDIR_PARTS))
        stamp = {part: kept.get(part) for part in MAILDIR_PARTS}
        listings = {}
        for part in MAILDIR_PARTS:
            directory = os.path.join(path, part)
            mtime = _mtime_ns(directory)
            if part in kept and mtime == kept[part] and part not in recent:
                continue
            stamp[part], listings[part] = _listed_again(directory, mtime)
            recent.discard(part)
            if _is_recent(stamp[part]):
                recent.add(part)
        if not listings:
            return False
        stamp["recent"] = sorted(recent)
        view = self._views.get(folder.id)
        if view is None or view.stamp != kept:      # first look in this process, or another wrote the rows
            view = self._views[folder.id] = self._loaded_view(folder, path, kept)
        try:
            gone, renamed, new = view.relisted(listings)
            changed = self._apply(folder, [email_id(folder, key) for key in gone], renamed, new)
            self._keep_stamp(folder, stamp, trusted=not recent)
        except BaseException:
            del self._views[folder.id]              # ahead of the rows: loaded again next time
            raise
        view.stamp = stamp
        return changed

    def _loaded_view(self, folder: Folder, path: str, stamp: dict) -> "_MaildirView":
        """The view the folder's rows describe. "+folder_id": read the table through, not
        through an index on folder_id and a row lookup for each of its entries (about 25 %
        faster for a folder that holds most of the rows)."""
        with self._lock:
            paths = self._db.execute("SELECT path FROM emails WHERE +folder_id = ?", (folder.id,)).fetchall()
        return _MaildirView.of_paths(path, stamp, paths)

    def _keep_stamp(self, folder: Folder, stamp: dict, trusted: bool) -> None:
        with self._writing():
            self._db.execute("INSERT OR REPLACE INTO folders (id, source, stamp, trusted) VALUES (?, ?, ?, ?)",
                             (folder.id, folder.source, json.dumps(stamp), trusted))

    def _update(self, folder: Folder, listing: list["_Listed"]) -> bool:
        """Compare a whole listing (an mbox, a directory of files) with the folder's rows."""
        with self._lock:
            indexed = dict(self._db.execute("SELECT key, signature FROM emails WHERE folder_id = ?", (folder.id,)))
        listed_keys = {listed.key for listed in listing}
        gone = [email_id(folder, key) for key in indexed if key not in listed_keys]
        new = []
        for listed in listing:
            signature = indexed.get(listed.key)
            if signature != listed.signature:
                if signature is not None:
                    gone.append(email_id(folder, listed.key))   # an mbox span or a file changed: read again
                new.append(listed)
        return self._apply(folder, gone, [], new)

    def _apply(self, folder: Folder, gone: list[str], renamed: list["_Listed"], new: list["_Listed"]) -> bool:
        """Drop the rows of `gone` (ids), move those `renamed` (a Maildir flag change: same
        bytes, another name) and read and add the `new`; whether any row changed."""
        changed = self._delete(gone) if gone else False
        if renamed:
            with self._writing():
                cursor = self._db.executemany(
                    "UPDATE emails SET signature = ?, path = ?, flags = ?, unread = ? WHERE id = ?",
                    [(listed.signature, listed.path, listed.flags, "S" not in listed.flags,
                      email_id(folder, listed.key)) for listed in renamed])
                changed = changed or cursor.rowcount > 0
        for batch in _batches(_read_all(folder, new), WRITE_BATCH):
            self._insert(batch)
        return changed or bool(new)

    def _insert(self, rows: list[tuple[dict, str]]) -> None:
        with self._writing():
            for row, body in rows:
                cursor = self._db.execute(_INSERT, [row[column] for column in _COLUMNS])
                if cursor.rowcount:
                    self._db.execute("INSERT INTO emails_text (rowid, subject, sender, recipients, body) "
                                     "VALUES (?, ?, ?, ?, ?)",
                                     (cursor.lastrowid, row["subject"], row["from_text"], row["to_text"], body))

    def _delete(self, ids: list[str]) -> bool:
        """Drop these rows; whether there was any (forget() may have dropped them first)."""
        deleted = 0
        with self._writing():
            for chunk in _batches(ids, 500):
                marks = ", ".join("?" * len(chunk))
                self._db.execute(f"DELETE FROM emails_text WHERE rowid IN (SELECT row FROM emails WHERE id IN ({marks}))",
                                 chunk)
                deleted += self._db.execute(f"DELETE FROM emails WHERE id IN ({marks})", chunk).rowcount
        return deleted > 0

    def _drop_folder(self, folder_id: str) -> None:
        with self._writing():
            self._db.execute("DELETE FROM emails_text WHERE rowid IN (SELECT row FROM emails WHERE folder_id = ?)",
                             (folder_id,))
            self._db.execute("DELETE FROM emails WHERE folder_id = ?", (folder_id,))

    # -- reading ----------------------------------------------------------------------------

    @_rebuilt_when_corrupt
    def search(self, folder_id: str, query: Query, position: int, limit: int) -> Page:
        """The messages of the folder that match, newest first (by received_at), from
        `position`, at most `limit`; Page.total counts every match."""
        where, parameters = _conditions(folder_id, query)
        with self._lock:
            total = self._db.execute(f"SELECT count(*) FROM emails WHERE {where}", parameters).fetchone()[0]
            rows = self._db.execute(f"{_SELECT} WHERE {where} ORDER BY received_at DESC, row DESC LIMIT ? OFFSET ?",
                                    parameters + [limit, position]).fetchall()
        return Page(total, position, [_email(row) for row in rows])

    @_rebuilt_when_corrupt
    def get(self, email_id: str) -> IndexedEmail | None:
        with self._lock:
            row = self._db.execute(f"{_SELECT} WHERE id = ?", (email_id,)).fetchone()
        return _email(row) if row else None

    @_rebuilt_when_corrupt
    def counts(self, folder_id: str) -> tuple[int, int]:
        """(messages, unread) of the folder."""
        with self._lock:
            total = self._db.execute("SELECT count(*) FROM emails WHERE folder_id = ?", (folder_id,)).fetchone()[0]
            unread = self._db.execute("SELECT count(*) FROM emails WHERE folder_id = ? AND unread = 1",
                                      (folder_id,)).fetchone()[0]
        return total, unread

    @_rebuilt_when_corrupt
    def update_flags(self, email_id: str, flags: str) -> None:
        """The flags the store now has (after Maildir.set_flags); the file's new path is
        found by the next refresh, and opening by key finds it meanwhile."""
        with self._writing():
            self._db.execute("UPDATE emails SET flags = ?, unread = ? WHERE id = ?", (flags, "S" not in flags, email_id))

    @_rebuilt_when_corrupt
    def forget(self, email_id: str) -> None:
        """Drop a message removed from its store."""
        self._delete([email_id])


# -- what a folder holds ----------------------------------------------------------------------

def _stamp(folder: Folder) -> dict:
    """What changes whenever the folder's list of messages changes (an mbox, a directory
    of files; a Maildir is looked at directory by directory: _refresh_maildir)."""
    path = _store_path(folder)
    if folder.kind == "mbox":
        try:
            info = os.stat(path)
        except OSError:
            return {"inode": None, "size": None, "mtime": None}
        return {"inode": info.st_ino, "size": info.st_size, "mtime": info.st_mtime_ns}
    return {"directory": _mtime_ns(path)}


def _recent(stamp: dict) -> bool:
    """Whether a time in the stamp is so recent that a change made now could leave it as it is."""
    return any(_is_recent(value) for name, value in stamp.items() if name != "inode")


def _is_recent(mtime_ns: int | None) -> bool:
    return mtime_ns is not None and time.time_ns() - mtime_ns < RECENT_NS


def _mtime_ns(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _store_path(folder: Folder) -> str:
    scheme, colon, rest = folder.source.partition(":")
    return rest if colon and scheme in ("maildir", "mbox") else folder.source


class _Listed(NamedTuple):
    """A message as its store lists it now. `ref()` makes its MessageRef: only the messages
    to read need one (a tuple and no reference each: a folder of 100,000 is listed again
    after every change)."""

    key: str
    signature: str
    path: str
    flags: str
    ref: Callable[[], MessageRef]


def _listing(folder: Folder) -> list[_Listed]:
    """Every message of an mbox or a directory of files now, with its key and signature.
    A folder that is gone (removed meanwhile) lists nothing: its rows go."""
    path = _store_path(folder)
    try:
        if folder.kind == "mbox":
            return [_Listed(ref.key, f"{ref.start}-{ref.end}-{ref.flags}", ref.path, ref.flags, _given(ref))
                    for ref in mbox_messages(path)]
        return [_Listed(str(ref), _file_signature(ref), ref.path, ref.flags, _given(ref)) for ref in messages_of(path)]
    except (MimekitError, OSError):
        return []


def _listed_again(directory: str, mtime_ns: int | None) -> tuple[int | None, list[str]]:
    """Every name in a Maildir's new/ or cur/ (os.listdir: no stat per name) and the
    directory time taken before they were listed, `mtime_ns` at first. Listed again when
    the time moved meanwhile (a name renamed during a listing may be in it under neither
    name), at most LISTING_ATTEMPTS times; the time kept is then older than the directory's,
    so the next refresh lists it again. A directory that is gone lists nothing."""
    attempts = 1
    while True:
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        after = _mtime_ns(directory)
        if after == mtime_ns or attempts == LISTING_ATTEMPTS:
            return mtime_ns, names
        mtime_ns, attempts = after, attempts + 1


class _MaildirPart(NamedTuple):
    """new/ or cur/ as last listed: every name in it (None for a name that is not a message
    file, such as a directory) and the name of each key's file."""

    key_of: dict[str, str | None]
    name_of: dict[str, str]


class _MaildirView:
    """A Maildir folder as the index last listed it, kept in memory so that a listing is
    compared with the last one by set difference: `stamp` is the folder's stamp in the index
    when the view matches its rows."""

    def __init__(self, path: str, stamp: dict, parts: dict[str, _MaildirPart]):
        self.path, self.stamp, self.parts = path, stamp, parts

    @classmethod
    def of_paths(cls, path: str, stamp: dict, rows: Iterable[tuple[str]]) -> "_MaildirView":
        """The view of the folder at `path` whose messages' files are `rows` (1-tuples)."""
        parts = {part: _MaildirPart({}, {}) for part in MAILDIR_PARTS}
        directories = {os.path.join(path, part): parts[part] for part in MAILDIR_PARTS}
        for (file_path,) in rows:
            directory, _, name = file_path.rpartition(os.sep)
            part = directories.get(directory)
            if part is not None:
                key = message_key(name)
                part.key_of[name], part.name_of[key] = key, name
        return cls(path, stamp, parts)

    def located(self, key: str) -> str | None:
        """The path of the key's file: in cur/ when a copy is in both (one moved meanwhile)."""
        for part in ("cur", "new"):
            name = self.parts[part].name_of.get(key)
            if name is not None:
                return os.path.join(self.path, part, name)
        return None

    def relisted(self, listings: dict[str, list[str]]) -> tuple[list[str], list[_Listed], list[_Listed]]:
        """Take in the new listings of some parts: (message keys gone, messages renamed,
        new messages, in key order, which is delivery order), each found from the names that
        came or went, never by looking at every name."""
        came, went = {}, {}     # part -> {name: its key, None when not a message file}, [name]
        for part, names in listings.items():
            known, directory, listed = self.parts[part].key_of, os.path.join(self.path, part), set(names)
            came[part] = {name: _message_key(directory, name) for name in listed.difference(known)}
            stayed = len(listed) - len(came[part])
            went[part] = known.keys() - listed if stayed != len(known) else ()
        touched = {key for part, names in went.items() for name in names
                   if (key := self.parts[part].key_of[name]) is not None}
        touched.update(key for keys in came.values() for key in keys.values() if key is not None)
        before = {key: self.located(key) for key in touched}
        for part in listings:
            known = self.parts[part]
            for name in went[part]:
                key = known.key_of.pop(name)
                if key is not None and known.name_of.get(key) == name:
                    del known.name_of[key]
            for name, key in came[part].items():
                known.key_of[name] = key
                if key is not None:
                    known.name_of[key] = name
        gone, renamed, new = [], [], []
        for key in sorted(touched):
            was, now = before[key], self.located(key)
            if now is None:
                if was is not None:
                    gone.append(key)
            elif now != was:
                flags = flags_of(now)
                listed = _Listed(key, now, now, flags, functools.partial(MessageRef, "maildir", now, self.path, key,
                                                                         flags=flags))
                (new if was is None else renamed).append(listed)
        return gone, renamed, new


def _message_key(directory: str, name: str) -> str | None:
    """The key of a name in new/ or cur/, None when it is no message (a dot file, a
    directory), as Maildir.listing decides."""
    if name.startswith(".") or not os.path.isfile(os.path.join(directory, name)):
        return None
    return message_key(name)


def _given(ref: MessageRef) -> Callable[[], MessageRef]:
    return lambda: ref


def _file_signature(ref: MessageRef) -> str:
    try:
        info = os.stat(ref.path)
    except OSError:
        return "gone"
    return f"{info.st_mtime_ns}-{info.st_size}-{ref.start}-{ref.end}"


# -- reading messages ---------------------------------------------------------------------------

def _read_all(folder: Folder, listed: list[_Listed]) -> Iterator[tuple[dict, str]]:
    """(row, indexed text) of each message, in listing order: many are read across every
    core, a few here (map_messages decides). One that cannot be read gets a row that says why."""
    results = map_messages(read_message, (entry.ref() for entry in listed), default_jobs())
    for entry, (ref, result) in zip(listed, results):
        if isinstance(result, MimekitError):
            result = _unreadable(ref, str(result))
        fields, body = result
        row = {**fields, "id": email_id(folder, entry.key), "folder_id": folder.id, "key": entry.key,
               "signature": entry.signature}
        yield row, body


def read_message(ref: MessageRef) -> tuple[dict, str]:
    """The index's fields of one message (plain values, so a worker process can return
    them) and its text body, cut at INDEXED_TEXT characters."""
    with opened(ref) as stream, parse_message(stream) as message:
        root = message.root
        senders, recipients, copied = (_addresses(root.raw_header(name)) for name in ("from", "to", "cc"))
        subject = root.header("subject") or ""
        date = root.header("date")
        sent = parse_date(date)[0] if date else None
        body = body_part(message)
        has_attachment = any(is_attachment(part, body) for part in message.walk())
        text = _text(body) if body is not None else ""
        size = ref.size if ref.size is not None else message.size
        message_id = root.header("message-id")
    sent_at = sent.timestamp() if sent else None
    fields = {**_ref_fields(ref), "received_at": _received_at(ref, sent_at), "sent_at": sent_at,
              "from_json": json.dumps(senders, ensure_ascii=False), "to_json": json.dumps(recipients, ensure_ascii=False),
              "cc_json": json.dumps(copied, ensure_ascii=False),
              "from_text": _address_text(senders), "to_text": _address_text(recipients + copied),
              "subject": subject, "subject_text": subject.lower(), "size": size,
              "has_attachment": has_attachment, "preview": " ".join(text[:PREVIEW * 4].split())[:PREVIEW],
              "message_id": message_id.strip().removeprefix("<").removesuffix(">") if message_id else None,
              "problem": None}
    return fields, text


def _unreadable(ref: MessageRef, problem: str) -> tuple[dict, str]:
    """The row of a message that could not be read: listed all the same, so that it can
    still be opened raw, deleted, or seen to be there."""
    try:
        size = ref.size if ref.size is not None else os.stat(ref.path).st_size
    except OSError:
        size = 0
    fields = {**_ref_fields(ref), "received_at": _received_at(ref, None), "sent_at": None,
              "from_json": "[]", "to_json": "[]", "cc_json": "[]", "from_text": "", "to_text": "",
              "subject": "", "subject_text": "", "size": size, "has_attachment": False, "preview": "",
              "message_id": None, "problem": problem}
    return fields, ""


def _ref_fields(ref: MessageRef) -> dict:
    return {"kind": ref.kind, "path": ref.path, "mailbox": ref.mailbox, "ref_key": ref.key,
            "start_offset": ref.start, "end_offset": ref.end, "flags": ref.flags, "unread": "S" not in ref.flags}


def _addresses(raw: bytes | None) -> list[list[str]]:
    """[[display name, address], ...] of an address field, a group's members in its place."""
    if raw is None:
        return []
    entries, _ = parse_address_list(raw)
    found = []
    for entry in entries:
        for address in [entry] if isinstance(entry, Address) else entry.members:
            found.append([address.display_name, address.addr_spec])
    return found


def _address_text(addresses: list[list[str]]) -> str:
    return ", ".join(f"{name} <{address}>" if name else address for name, address in addresses).lower()


def _text(body) -> str:
    """The start of the body's text, at most INDEXED_TEXT characters, read no further."""
    pieces, length = [], 0
    chunks = iter_text(body, [])
    try:
        for piece in chunks:
            pieces.append(piece)
            length += len(piece)
            if length >= INDEXED_TEXT:
                break
    finally:
        chunks.close()
    return "".join(pieces)[:INDEXED_TEXT]


_MAILDIR_TIME = re.compile(r"([0-9]+)(?:\.M([0-9]{1,6})(?![0-9]))?")
# The date of an mbox "From " line, as asctime() writes it; a zone or none between time and year.
_FROM_LINE_DATE = re.compile(rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                             rb" +([0-9]{1,2}) +([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?(?: +[A-Za-z+-][A-Za-z0-9]*)?"
                             rb" +([0-9]{4})\s*$")
_MONTHS = {name: number for number, name in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}


def _received_at(ref: MessageRef, sent_at: float | None) -> float:
    """When the message arrived: the time in a Maildir unique name, an mbox "From " line's
    date (else the Date field), else the file's time."""
    if ref.kind == "maildir":
        found = _MAILDIR_TIME.match(ref.key)
        if found:
            return int(found.group(1)) + int(found.group(2) or 0) / 1e6
    elif ref.kind == "mbox":
        when = _from_line_date(ref)
        if when is not None:
            return when
        if sent_at is not None:
            return sent_at
    try:
        return os.stat(ref.path).st_mtime
    except OSError:
        return 0.0


def _from_line_date(ref: MessageRef) -> float | None:
    offset = parse_decimal(ref.key)
    if offset is None or not 0 < ref.start - offset <= 1024:
        return None
    try:
        with open(ref.path, "rb") as mbox:
            mbox.seek(offset)
            line = mbox.read(ref.start - offset)
    except OSError:
        return None
    found = _FROM_LINE_DATE.search(line)
    if found is None:
        return None
    month, day, hour, minute, second, year = found.groups()
    try:
        return float(timegm((int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second or 0))))
    except (ValueError, OverflowError):
        return None


# -- searching ------------------------------------------------------------------------------

def _conditions(folder_id: str, query: Query) -> tuple[str, list]:
    """The WHERE clause and its parameters. Every value from the query is a parameter,
    never SQL."""
    where, parameters = ["folder_id = ?"], [folder_id]
    if query.text:
        match = fts_query(query.text)
        if match is not None:
            where.append("row IN (SELECT rowid FROM emails_text WHERE emails_text MATCH ?)")
            parameters.append(match)
    for column, needle in (("from_text", query.from_), ("to_text", query.to), ("subject_text", query.subject)):
        if needle:
            where.append(f"instr({column}, ?) > 0")
            parameters.append(needle.lower())
    if query.after is not None:
        where.append("received_at >= ?")
        parameters.append(query.after)
    if query.before is not None:
        where.append("received_at < ?")
        parameters.append(query.before)
    if query.has_attachment is not None:
        where.append("has_attachment = ?")
        parameters.append(int(query.has_attachment))
    if query.unread is not None:
        where.append("unread = ?")
        parameters.append(int(query.unread))
    return " AND ".join(where), parameters


def fts_query(text: str) -> str | None:
    """The words of a search as an FTS5 query: each a quoted string (so "AND", "NEAR(",
    "*" and quotes are text, never syntax) matched as a prefix, all of them required.
    None when no word holds a letter or digit (nothing to look for)."""
    words = [word for word in text.split() if any(char.isalnum() for char in word)]
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words)


def _email(row: tuple) -> IndexedEmail:
    values = dict(zip(_COLUMNS, row))
    ref = MessageRef(values["kind"], values["path"], values["mailbox"], values["ref_key"], values["start_offset"],
                     values["end_offset"], values["flags"])
    return IndexedEmail(
        id=values["id"], folder_id=values["folder_id"], ref=ref, flags=values["flags"],
        received_at=values["received_at"], sent_at=values["sent_at"],
        from_=_email_addresses(values["from_json"]), to=_email_addresses(values["to_json"]),
        cc=_email_addresses(values["cc_json"]), subject=values["subject"], size=values["size"],
        has_attachment=bool(values["has_attachment"]), preview=values["preview"], message_id=values["message_id"])


def _email_addresses(stored: str) -> tuple[EmailAddress, ...]:
    return tuple(EmailAddress(name or None, address) for name, address in json.loads(stored))


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
