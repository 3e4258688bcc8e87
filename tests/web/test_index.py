"""The header index on real stores: Maildirs written as a server writes them, an mbox and a
directory of files, read back through HeaderIndex as the web interface reads them."""

import hashlib
import os
import sqlite3
import sys

import pytest

import web_messages as messages
from mimekit.stores.maildir import Maildir
from mimekit.stores.mbox import Mbox
from mimekit.web.folders import discover_folders
from mimekit.web import index as index_module
from mimekit.web.index import SCHEMA_VERSION, HeaderIndex
from mimekit.web.model import Query

DAY = 86_400
JAN_1_2024 = 1_704_067_200


def store(maildir: str, message: bytes, seconds: int, number: int, flags: str | None = None) -> str:
    """A message in the Maildir under a unique name that says it arrived at `seconds`:
    in new/ without flags (as delivered), in cur/ with them. Its key."""
    Maildir(maildir)                               # new/, cur/, tmp/
    key = f"{seconds}.M0P{number}Q0.test"
    name = f"new/{key}" if flags is None else f"cur/{key}:2,{flags}"
    with open(os.path.join(maildir, name), "wb") as file:
        file.write(message)
    return key


@pytest.fixture
def index(tmp_path):
    opened = HeaderIndex(str(tmp_path / "index.sqlite"))
    yield opened
    opened.close()


@pytest.fixture
def inbox(tmp_path):
    """Five messages a day apart, oldest first: a plain one, a non-ASCII one (read), the HTML
    one with an attachment, two more plain ones from other senders."""
    root = str(tmp_path / "Mail")
    store(root, messages.plain(subject="Monday plans", body="The budget meeting moves.\n"), JAN_1_2024, 1)
    store(root, messages.non_ascii(), JAN_1_2024 + DAY, 2, flags="S")
    store(root, messages.html_with_image_and_attachment(), JAN_1_2024 + 2 * DAY, 3)
    store(root, messages.plain(subject="Lunch?", sender="Dave <dave@example.test>", to="erin@example.test",
                               body="Pizza or ramen\n"), JAN_1_2024 + 3 * DAY, 4, flags="")
    store(root, messages.plain(subject="Re: Monday plans", sender="Bob <bob@example.test>",
                               to="Alice <alice@example.test>", body="Fine by me.\n"), JAN_1_2024 + 4 * DAY, 5)
    return root


def folder_of(source: str):
    return discover_folders((source,))[0]


def read(email) -> bytes:
    with email.ref.open() as stream:
        return stream.read()


def subjects(index: HeaderIndex, folder, q: str = "", position: int = 0, limit: int = 50) -> list[str]:
    return [email.subject for email in index.search(folder.id, Query.parse(q), position, limit).emails]


def test_a_maildir_is_listed_newest_first_with_its_headers_decoded(index, inbox):
    folder = folder_of(f"maildir:{inbox}")
    assert index.refresh(folder) is True
    page = index.search(folder.id, Query(), 0, 50)
    assert page.total == 5 and page.position == 0
    assert [email.subject for email in page.emails] == [
        "Re: Monday plans", "Lunch?", "Quarterly report with picture", "Grüße aus Köln — 東京", "Monday plans"]
    assert [email.received_at for email in page.emails] == [JAN_1_2024 + n * DAY for n in (4, 3, 2, 1, 0)]
    german = page.emails[3]
    assert german.from_[0].name == "Jürgen Müller" and german.from_[0].email == "juergen@example.test"
    assert german.flags == "S" and not german.unread
    assert german.preview.startswith("Schöne Grüße, Zoë")
    report = page.emails[2]
    assert report.has_attachment and not page.emails[0].has_attachment
    assert report.size == os.path.getsize(report.ref.path)
    assert b"\nFrom: Carol <carol@example.test>" in read(report)
    assert page.emails[1].to[0].email == "erin@example.test"
    assert index.counts(folder.id) == (5, 4)


def indexed_ids(path: str, folder) -> list[str]:
    """Index `folder` into a new index at `path`, closed after; the ids it gave, newest first."""
    index = HeaderIndex(path)
    index.refresh(folder)
    ids = [email.id for email in index.search(folder.id, Query(), 0, 50).emails]
    index.close()
    return ids


def test_ids_are_the_hash_of_the_folder_source_and_key_and_survive_a_rebuild(tmp_path, inbox):
    folder = folder_of(f"maildir:{inbox}")
    path = str(tmp_path / "index.sqlite")
    ids = indexed_ids(path, folder)
    key = f"{JAN_1_2024 + 4 * DAY}.M0P5Q0.test"
    assert ids[0] == hashlib.sha256(f"{folder.source}\0{key}".encode()).hexdigest()[:24]
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    again = HeaderIndex(path)
    again.refresh(folder)
    assert [email.id for email in again.search(folder.id, Query(), 0, 50).emails] == ids
    assert again.get(ids[2]).subject == "Quarterly report with picture"
    assert again.get("0" * 24) is None and again.get("not an id'; DROP TABLE emails; --") is None
    again.close()


def test_pages_count_every_match(index, tmp_path):
    root = str(tmp_path / "Many")
    for number in range(7):
        store(root, messages.plain(subject=f"Number {number}"), JAN_1_2024 + number, number)
    folder = folder_of(f"maildir:{root}")
    index.refresh(folder)
    page = index.search(folder.id, Query(), 3, 3)
    assert (page.total, page.position) == (7, 3)
    assert [email.subject for email in page.emails] == ["Number 3", "Number 2", "Number 1"]
    last = index.search(folder.id, Query(), 6, 3)
    assert last.total == 7 and [email.subject for email in last.emails] == ["Number 0"]
    assert index.search(folder.id, Query(), 50, 3).emails == []


@pytest.mark.parametrize("q, expected", [
    ("from:dave", ["Lunch?"]),
    ("from:JÜRGEN", ["Grüße aus Köln — 東京"]),                      # the decoded name, any case
    ("from:carol@example", ["Quarterly report with picture"]),
    ("to:erin", ["Lunch?"]),
    ("to:alice@", ["Re: Monday plans"]),
    ("subject:monday", ["Re: Monday plans", "Monday plans"]),
    ('subject:"re: mon"', ["Re: Monday plans"]),
    ("subject:köln", ["Grüße aus Köln — 東京"]),
    ("ramen", ["Lunch?"]),                                          # a word of the text body only
    ("budget meeting", ["Monday plans"]),                           # every word must match
    ("budget ramen", []),
    ("pizz", ["Lunch?"]),                                           # words match as prefixes
    ("naïve", ["Grüße aus Köln — 東京"]),                           # non-ASCII words of the body
    ("naive cafe", ["Grüße aus Köln — 東京"]),                      # diacritics folded
    ("東京", ["Grüße aus Köln — 東京"]),
    ("juergen", ["Grüße aus Köln — 東京"]),                         # the sender's address
    ("chart", ["Quarterly report with picture"]),
    ("after:2024-01-04", ["Re: Monday plans", "Lunch?"]),
    ("before:2024-01-02", ["Monday plans"]),
    ("after:2024-01-02 before:2024-01-04", ["Quarterly report with picture", "Grüße aus Köln — 東京"]),
    ("has:attachment", ["Quarterly report with picture"]),
    ("has:noattachment from:alice", ["Monday plans"]),
    ("is:read", ["Grüße aus Köln — 東京"]),
    ("is:unread subject:monday", ["Re: Monday plans", "Monday plans"]),
    ("from:bob plans", ["Re: Monday plans"]),
    ("nothing-like-this", []),
])
def test_each_search_operator(index, inbox, q, expected):
    folder = folder_of(f"maildir:{inbox}")
    index.refresh(folder)
    assert subjects(index, folder, q) == expected
    assert index.search(folder.id, Query.parse(q), 0, 50).total == len(expected)


@pytest.mark.parametrize("q", ['"', '""', "AND OR", "*", "NEAR(", "NEAR(a b", "a OR", "^x", "col:umn", "-", "'",
                               "subject:'", "(((", "x*y", '" OR 1=1 --', "\\", "a AND NOT", "\x00"])
def test_hostile_full_text_queries_never_raise(index, inbox, q):
    folder = folder_of(f"maildir:{inbox}")
    index.refresh(folder)
    page = index.search(folder.id, Query(text=q), 0, 50)
    assert 0 <= page.total <= 5 and len(page.emails) == page.total


def test_operators_are_text_not_syntax(index, inbox):
    """"OR" is a word to look for, not FTS5's OR: "ramen OR budget" needs all three words."""
    folder = folder_of(f"maildir:{inbox}")
    index.refresh(folder)
    assert subjects(index, folder, "ramen OR budget") == []
    assert subjects(index, folder, "Pizza or") == ["Lunch?"]


def test_refresh_picks_up_new_gone_and_reflagged_messages_and_says_when_nothing_changed(index, inbox):
    folder = folder_of(f"maildir:{inbox}")
    assert index.refresh(folder) is True
    assert index.refresh(folder) is False

    new_path = messages.deliver(inbox, messages.plain(subject="Just arrived"))
    assert index.refresh(folder) is True
    assert subjects(index, folder)[0] == "Just arrived"
    assert index.refresh(folder) is False

    maildir = Maildir(inbox, create=False)
    lunch = next(email for email in index.search(folder.id, Query(), 0, 50).emails if email.subject == "Lunch?")
    maildir.set_flags(lunch.ref.key, "S")                 # another mail reader marks it read
    assert index.refresh(folder) is True
    reflagged = index.get(lunch.id)
    assert reflagged.flags == "S" and not reflagged.unread and reflagged.ref.path.endswith(":2,S")
    assert b"\nFrom: Dave" in read(reflagged)
    assert index.counts(folder.id) == (6, 4)              # "Just arrived" unread, "Lunch?" now read

    os.unlink(new_path)                                    # and another deletes one
    assert index.refresh(folder) is True
    assert "Just arrived" not in subjects(index, folder)
    assert subjects(index, folder, "arrived") == []        # gone from the full text too
    assert index.counts(folder.id) == (5, 3)
    assert index.refresh(folder) is False


def settle(root: str) -> None:
    """Give new/ and cur/ a time long past, as a Maildir left alone has: the index trusts
    such a time, so a refresh after it lists nothing that did not change again."""
    for part in ("new", "cur"):
        os.utime(os.path.join(root, part), ns=(JAN_1_2024 * 10**9, JAN_1_2024 * 10**9))


class Listings:
    """The directories the index lists (new, cur), in order. `during[part]` runs once,
    right after that directory's next listing (another program at work meanwhile);
    `hiding[part]`: names left out of its next listing (a name renamed during a listing
    may be returned under neither name)."""

    def __init__(self):
        self.listed, self.during, self.hiding = [], {}, {}

    def taken(self) -> list[str]:
        """The directories listed since the last call."""
        taken, self.listed = self.listed, []
        return taken


@pytest.fixture
def listings(monkeypatch):
    seen, real_listdir = Listings(), os.listdir

    def recording(path="."):
        names = real_listdir(path)
        part = os.path.basename(path)
        seen.listed.append(part)
        hidden = seen.hiding.pop(part, ())
        if part in seen.during:
            seen.during.pop(part)()
        return [name for name in names if name not in hidden]

    monkeypatch.setattr(os, "listdir", recording)
    return seen


def settled_refresh(index, folder, root) -> None:
    settle(root)
    index.refresh(folder)            # lists again what settle() touched: the times moved


def test_a_delivery_lists_new_alone_and_a_flag_change_or_removal_the_directory_it_touched(index, inbox, listings):
    folder = folder_of(f"maildir:{inbox}")
    maildir = Maildir(inbox, create=False)
    index.refresh(folder)
    settled_refresh(index, folder, inbox)
    listings.taken()
    assert index.refresh(folder) is False and listings.taken() == []     # nothing changed: two stats, no listing

    messages.deliver(inbox, messages.plain(subject="Just arrived"))
    assert index.refresh(folder) is True and listings.taken() == ["new"]
    arrived = index.search(folder.id, Query.parse("subject:arrived"), 0, 1).emails[0]
    assert arrived.unread and "/new/" in arrived.ref.path

    settled_refresh(index, folder, inbox)
    listings.taken()
    lunch = index.search(folder.id, Query.parse("subject:lunch"), 0, 1).emails[0]       # in cur/, no flags
    maildir.set_flags(lunch.ref.key, "F")                                                # a rename within cur/
    assert index.refresh(folder) is True and listings.taken() == ["cur"]
    assert index.get(lunch.id).flags == "F" and index.get(lunch.id).ref.path.endswith(":2,F")

    settled_refresh(index, folder, inbox)
    listings.taken()
    maildir.set_flags(arrived.ref.key, "S")                                              # read: new/ -> cur/
    assert index.refresh(folder) is True and listings.taken() == ["new", "cur"]
    read_now = index.get(arrived.id)
    assert not read_now.unread and read_now.ref.path == os.path.join(inbox, "cur", f"{arrived.ref.key}:2,S")
    assert b"Subject: Just arrived" in read(read_now)

    settled_refresh(index, folder, inbox)
    listings.taken()
    maildir.remove(lunch.ref.key)
    assert index.refresh(folder) is True and listings.taken() == ["cur"]
    assert index.get(lunch.id) is None and subjects(index, folder, "ramen") == []
    assert index.counts(folder.id) == (5, 3)


def test_a_directory_changed_within_the_last_second_is_listed_again(index, inbox, listings, monkeypatch):
    """A delivery in the same timestamp tick as the last listing leaves new/'s time as it
    was: a time that recent is not trusted, and new/ is listed again next time."""
    folder = folder_of(f"maildir:{inbox}")
    index.refresh(folder)
    settled_refresh(index, folder, inbox)
    new = os.path.join(inbox, "new")
    monkeypatch.setattr(index_module, "RECENT_NS", 3600 * 10**9)     # however slow the machine running this
    messages.deliver(inbox, messages.plain(subject="First"))
    tick = os.stat(new).st_mtime_ns
    listings.taken()
    assert index.refresh(folder) is True and listings.taken() == ["new"]
    messages.deliver(inbox, messages.plain(subject="Second, same tick"))
    os.utime(new, ns=(tick, tick))                                    # the time did not move
    assert index.refresh(folder) is True and listings.taken() == ["new"]
    assert subjects(index, folder)[:2] == ["Second, same tick", "First"]
    assert index.refresh(folder) is False and listings.taken() == ["new"]   # still recent: looked at again
    monkeypatch.setattr(index_module, "RECENT_NS", 0)
    index.refresh(folder)
    assert index.refresh(folder) is False and listings.taken() == ["new"]   # trusted now: the stats alone


def test_a_message_moved_from_new_to_cur_between_the_two_listings_stays(index, inbox, listings):
    folder = folder_of(f"maildir:{inbox}")
    index.refresh(folder)
    settled_refresh(index, folder, inbox)
    path = messages.deliver(inbox, messages.plain(subject="Moving"))
    key = os.path.basename(path)
    moved = os.path.join(inbox, "cur", f"{key}:2,S")

    def read_by_another_reader():    # once new/ is listed and its time looked at again: its time as it was
        times = os.stat(os.path.dirname(path))
        os.rename(path, moved)
        os.utime(os.path.dirname(path), ns=(times.st_atime_ns, times.st_mtime_ns))
    listings.during["new"] = read_by_another_reader
    listings.taken()
    assert index.refresh(folder) is True
    assert listings.taken() == ["new", "cur"]
    [email] = index.search(folder.id, Query.parse("subject:moving"), 0, 5).emails
    assert email.ref.path == moved and not email.unread
    index.refresh(folder)
    assert index.get(email.id).ref.path == moved


def test_a_message_delivered_or_renamed_while_a_directory_is_listed_is_not_lost(index, inbox, listings):
    """The directory's time moved during the listing: it is listed again at once (a name
    renamed during a listing may be returned under neither name)."""
    folder = folder_of(f"maildir:{inbox}")
    maildir = Maildir(inbox, create=False)
    index.refresh(folder)
    settled_refresh(index, folder, inbox)
    messages.deliver(inbox, messages.plain(subject="Before"))
    long_ago = JAN_1_2024 * 10**9 - 1     # not the time kept, and not the time the next delivery gives new/
    os.utime(os.path.join(inbox, "new"), ns=(long_ago, long_ago))
    listings.during["new"] = lambda: messages.deliver(inbox, messages.plain(subject="During"))
    listings.taken()
    assert index.refresh(folder) is True and listings.taken() == ["new", "new"]
    assert subjects(index, folder)[:2] == ["During", "Before"]

    settled_refresh(index, folder, inbox)
    lunch = index.search(folder.id, Query.parse("subject:lunch"), 0, 1).emails[0]
    renamed = []
    os.utime(os.path.join(inbox, "cur"), ns=(long_ago, long_ago))   # as if something else changed in cur/
    listings.hiding["cur"] = {os.path.basename(lunch.ref.path)}
    listings.during["cur"] = lambda: renamed.append(maildir.set_flags(lunch.ref.key, "FS"))
    listings.taken()
    assert index.refresh(folder) is True and listings.taken() == ["cur", "cur"]
    assert index.get(lunch.id).ref.path == renamed[0] and index.get(lunch.id).flags == "FS"


def test_another_index_on_the_same_file_is_followed(tmp_path, inbox):
    """Two processes on one index file: each compares a listing with the rows as the other
    left them, not with what it listed itself before."""
    folder = folder_of(f"maildir:{inbox}")
    path = str(tmp_path / "shared.sqlite")
    first, second = HeaderIndex(path), HeaderIndex(path)
    try:
        assert first.refresh(folder) is True
        assert second.refresh(folder) is False                        # the first's rows and times
        gone = messages.deliver(inbox, messages.plain(subject="Seen by the first"))
        assert first.refresh(folder) is True
        os.unlink(gone)
        stays = messages.deliver(inbox, messages.plain(subject="Seen by the second"))
        assert second.refresh(folder) is True
        os.unlink(stays)
        assert first.refresh(folder) is True
        for index in (first, second):
            assert [s for s in subjects(index, folder) if s.startswith("Seen")] == []
            assert index.counts(folder.id) == (5, 4)
    finally:
        first.close()
        second.close()


def test_names_that_are_not_messages_are_not_listed(index, inbox):
    folder = folder_of(f"maildir:{inbox}")
    index.refresh(folder)
    os.mkdir(os.path.join(inbox, "cur", "1704067200.M1P1.directory"))
    with open(os.path.join(inbox, "new", ".hidden"), "wb") as file:
        file.write(messages.plain(subject="hidden"))
    settle(inbox)
    assert index.refresh(folder) is False
    assert index.counts(folder.id) == (5, 4)


def test_update_flags_and_forget_change_the_rows_at_once(index, inbox):
    folder = folder_of(f"maildir:{inbox}")
    index.refresh(folder)
    newest = index.search(folder.id, Query(), 0, 1).emails[0]
    index.update_flags(newest.id, "FS")
    assert index.get(newest.id).flags == "FS" and subjects(index, folder, "is:read")[0] == newest.subject
    index.forget(newest.id)
    assert index.get(newest.id) is None
    assert index.counts(folder.id) == (4, 3)
    assert subjects(index, folder, "fine") == []


def test_another_schema_version_is_rebuilt(tmp_path, inbox):
    folder = folder_of(f"maildir:{inbox}")
    path = str(tmp_path / "index.sqlite")
    ids = indexed_ids(path, folder)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.execute("CREATE TABLE leftover (x)")
    again = HeaderIndex(path)
    assert again.search(folder.id, Query(), 0, 50).total == 0      # nothing kept from the other version
    assert again.refresh(folder) is True
    assert [email.id for email in again.search(folder.id, Query(), 0, 50).emails] == ids
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'leftover'").fetchone() == (0,)


@pytest.mark.parametrize("garbage", [b"not a database at all\n" * 200, b"SQLite format 3\x00" + os.urandom(4000), b""])
def test_a_corrupt_file_is_rebuilt(tmp_path, inbox, garbage):
    path = tmp_path / "index.sqlite"
    path.write_bytes(garbage)
    index = HeaderIndex(str(path))
    folder = folder_of(f"maildir:{inbox}")
    assert index.refresh(folder) is True
    assert index.search(folder.id, Query(), 0, 50).total == 5
    index.close()


def test_a_file_corrupt_past_its_first_page_is_rebuilt(tmp_path, inbox):
    """The header says SQLite, the schema version is right, the pages are garbage."""
    folder = folder_of(f"maildir:{inbox}")
    path = str(tmp_path / "index.sqlite")
    ids = indexed_ids(path, folder)
    with open(path, "r+b") as file:
        file.seek(4096)
        file.write(b"\xa5" * (os.path.getsize(path) - 4096))
    index = HeaderIndex(path)
    assert index.search(folder.id, Query(), 0, 50).total in (0, 5)     # found corrupt here or on opening
    index.refresh(folder)
    assert [email.id for email in index.search(folder.id, Query(), 0, 50).emails] == ids
    assert subjects(index, folder, "ramen") == ["Lunch?"]
    index.close()


def test_an_mbox_folder_is_ordered_by_its_from_lines(index, tmp_path):
    path = tmp_path / "box.mbox"
    entries = [  # (From-line date, Date field): the From line says when it arrived
        ("Mon Jan  1 10:00:00 2024", "Fri, 05 Jan 2024 10:00:00 +0000", "first"),
        ("Wed Jan  3 10:00:00 2024", "Mon, 01 Jan 2024 10:00:00 +0000", "third"),
        ("Tue Jan  2 10:00:00 2024", "Wed, 03 Jan 2024 10:00:00 +0000", "second"),
    ]
    path.write_bytes(b"".join(
        f"From sender@example.test {when}\n".encode() + messages.plain(subject=subject, date=date).replace(b"\r\n", b"\n")
        + b"\n" for when, date, subject in entries))
    folder = folder_of(f"mbox:{path}")
    assert folder.kind == "mbox"
    assert index.refresh(folder) is True
    page = index.search(folder.id, Query(), 0, 50)
    assert [email.subject for email in page.emails] == ["third", "second", "first"]
    assert page.emails[0].received_at == JAN_1_2024 + 2 * DAY + 10 * 3600
    assert page.emails[0].sent_at == JAN_1_2024 + 10 * 3600
    assert page.emails[2].ref.key == "0" and page.emails[2].size == page.emails[2].ref.size
    assert b"\nSubject: second" in read(page.emails[1])
    assert index.refresh(folder) is False

    Mbox(str(path)).add([messages.plain(subject="appended")])        # appended: the others keep their keys
    ids = {email.id for email in page.emails}
    assert index.refresh(folder) is True
    assert subjects(index, folder)[0] == "appended"
    assert ids <= {email.id for email in index.search(folder.id, Query(), 0, 50).emails}

    Mbox(str(path)).remove(page.emails[2].ref.key)                   # rewritten: keys renumbered
    assert index.refresh(folder) is True
    assert subjects(index, folder) == ["appended", "third", "second"]
    for email in index.search(folder.id, Query(), 0, 50).emails:
        assert f"\nSubject: {email.subject}".encode() in read(email)


def test_a_directory_of_message_files(index, tmp_path):
    directory = tmp_path / "saved"
    directory.mkdir()
    for number, subject in enumerate(["older", "newer"]):
        message = directory / f"{subject}.eml"
        message.write_bytes(messages.plain(subject=subject))
        os.utime(message, (JAN_1_2024 + number * DAY, JAN_1_2024 + number * DAY))
    folder = folder_of(str(directory))
    assert folder.kind == "files"
    assert index.refresh(folder) is True
    page = index.search(folder.id, Query(), 0, 50)
    assert [email.subject for email in page.emails] == ["newer", "older"]
    assert page.emails[0].received_at == JAN_1_2024 + DAY
    assert page.emails[0].ref.path == str(directory / "newer.eml")
    assert page.emails[0].id == hashlib.sha256(f"{folder.source}\0{directory / 'newer.eml'}".encode()).hexdigest()[:24]

    (directory / "older.eml").unlink()
    (directory / "newest.eml").write_bytes(messages.plain(subject="newest"))
    assert index.refresh(folder) is True
    assert subjects(index, folder) == ["newest", "newer"]


def test_a_message_that_cannot_be_parsed_is_still_listed(index, tmp_path):
    root = str(tmp_path / "Mail")
    store(root, os.urandom(3000), JAN_1_2024, 1)                                  # not mail at all
    store(root, b"\xff\xfe: \x00\x01\n\n" + b"\x80" * 100, JAN_1_2024 + 1, 2)      # a header of nonsense
    store(root, b"", JAN_1_2024 + 2, 3)                                           # empty
    store(root, messages.plain(subject="fine"), JAN_1_2024 + 3, 4)
    folder = folder_of(f"maildir:{root}")
    assert index.refresh(folder) is True
    page = index.search(folder.id, Query(), 0, 50)
    assert page.total == 4 and page.emails[0].subject == "fine"
    assert page.emails[3].size == 3000


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem is Linux's")
def test_a_message_that_cannot_be_read_is_listed_with_why(index, tmp_path):
    """A file that opens but fails to read (EIO: /proc/self/mem at offset 0)."""
    root = str(tmp_path / "Mail")
    store(root, messages.plain(subject="fine"), JAN_1_2024 + 1, 1)
    key = f"{JAN_1_2024}.M0P2Q0.test"
    os.symlink("/proc/self/mem", os.path.join(root, "new", key))
    folder = folder_of(f"maildir:{root}")
    index.refresh(folder)
    page = index.search(folder.id, Query(), 0, 50)
    assert [email.subject for email in page.emails] == ["fine", ""]
    assert page.emails[1].ref.key == key and page.emails[1].received_at == JAN_1_2024
    with sqlite3.connect(index.path) as db:
        (problem,) = db.execute("SELECT problem FROM emails WHERE key = ?", (key,)).fetchone()
    assert key in problem


def test_folders_are_kept_apart(index, tmp_path):
    root = tmp_path / "Mail"
    messages.deliver(str(root), messages.plain(subject="in the inbox"))
    messages.deliver(str(root / ".Archive"), messages.plain(subject="archived"))
    inbox, archive = discover_folders((f"maildir:{root}",))
    assert index.refresh(inbox) and index.refresh(archive)
    assert subjects(index, inbox) == ["in the inbox"] and subjects(index, archive) == ["archived"]
    assert subjects(index, inbox, "archived") == []
    assert index.counts(archive.id) == (1, 1)
