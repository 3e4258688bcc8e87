"""Sources: every kind a reading command takes (file, directory, Maildir, mbox, a stream),
sniffed or named, in order; each message a picklable MessageRef whose reference, given back
as a source, is that one message again."""

import base64
import io
import os
import pickle
import threading
from pathlib import Path

import pytest
from helpers import time_limit

from mimekit.errors import NoInputError
from mimekit.read import tree
from mimekit.stores import sources
from mimekit.stores.mbox import Mbox
from mimekit.stores.sources import MessageRef, StreamSource, mbox_messages, messages, messages_of


def message(n: int | str) -> bytes:
    return b"From: a@example.test\nSubject: %s\n\nbody %s\nFrom the body\n>From quoted\n" % (
        str(n).encode(), str(n).encode())


def attached(data: bytes) -> bytes:
    """A text and `data` as a base64 attachment named a.bin."""
    return (b"From: a@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: text/plain\r\n\r\ntext\r\n--b\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=a.bin\r\n\r\n" + base64.encodebytes(data) + b"--b--\r\n")


def read(ref: MessageRef) -> bytes:
    with ref.open() as stream:
        return stream.read()


def listed(*source, recursive: bool = False) -> list[tuple[str, bytes]]:
    return [(str(ref), read(ref)) for ref in messages(source, recursive)]


def make_mbox(path: Path, names, flags: str = "") -> list[str]:
    box = Mbox(str(path))
    return [f"{path}:{box.add([message(name)], flags=flags)}" for name in names]


def make_maildir(path: Path, entries: list[tuple[str, str, bytes]], tmp: bool = True) -> None:
    """entries: (sub, file name, bytes)."""
    for sub in ("cur", "new") + (("tmp",) if tmp else ()):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for sub, name, data in entries:
        (path / sub / name).write_bytes(data)


MAILDIR_ENTRIES = [("new", "1700000001.M1P1.host", message("new")),
                   ("cur", "1700000002.M2P1.host:2,FRS", message("cur")),
                   ("cur", ".1700000003.hidden:2,S", message("hidden")),
                   ("new", "1700000000.M0P1.host", message("first"))]


# --- each kind ------------------------------------------------------------------------------

def test_a_message_file(tmp_path):
    (tmp_path / "a.eml").write_bytes(message(1))
    assert listed(str(tmp_path / "a.eml")) == [(str(tmp_path / "a.eml"), message(1))]
    [ref] = messages([str(tmp_path / "a.eml")])
    assert ref.kind == "file" and ref.flags == "" and ref.size is None


def test_a_directory_lists_its_files_by_name_and_skips_hidden_ones_and_subdirectories(tmp_path):
    for name in ("b.eml", "a.eml", ".hidden.eml", "c"):
        (tmp_path / name).write_bytes(message(name))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.eml").write_bytes(message("d"))
    assert listed(str(tmp_path)) == [(str(tmp_path / name), message(name)) for name in ("a.eml", "b.eml", "c")]


def test_a_recursive_directory_reads_nested_directories_mbox_files_and_maildirs(tmp_path):
    (tmp_path / "a.eml").write_bytes(message("a"))
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "deep.eml").write_bytes(message("deep"))
    mbox_refs = make_mbox(tmp_path / "x" / "box", ["m1", "m2"])
    make_maildir(tmp_path / "x" / "mail", MAILDIR_ENTRIES)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_bytes(b"ref: refs/heads/main\n")
    got = listed(str(tmp_path), recursive=True)
    maildir = tmp_path / "x" / "mail"
    assert got == [(str(tmp_path / "a.eml"), message("a")),
                   (mbox_refs[0], message("m1")), (mbox_refs[1], message("m2")),
                   (f"{maildir}:1700000000.M0P1.host", message("first")),
                   (f"{maildir}:1700000001.M1P1.host", message("new")),
                   (f"{maildir}:1700000002.M2P1.host", message("cur")),
                   (str(tmp_path / "x" / "y" / "deep.eml"), message("deep"))]


def test_a_maildir_named_or_sniffed_lists_new_and_cur_in_delivery_order_with_flags(tmp_path):
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES)
    path = str(tmp_path / "md")
    for source in (path, f"maildir:{path}"):
        refs = list(messages([source]))
        assert [(str(ref), ref.flags, read(ref)) for ref in refs] == [
            (f"{path}:1700000000.M0P1.host", "", message("first")),
            (f"{path}:1700000001.M1P1.host", "", message("new")),
            (f"{path}:1700000002.M2P1.host", "FRS", message("cur"))]
        assert all(ref.kind == "maildir" and ref.stored for ref in refs)


def test_maildir_flags_are_the_known_letters_of_the_info_sorted(tmp_path):
    make_maildir(tmp_path / "md", [("cur", "1.a.host:2,TSxRa", b"x"), ("cur", "2.b.host:2,", b"y"),
                                   ("cur", "3.c.host:1,S", b"z"), ("cur", "4.d.host:2,DP", b"w")])
    assert [ref.flags for ref in messages([str(tmp_path / "md")])] == ["RST", "", "", "DP"]


def test_a_maildir_without_tmp_is_read(tmp_path):
    """Archives and git checkouts drop empty directories: reading needs only new/ and cur/."""
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES[:2], tmp=False)
    assert [read(ref) for ref in messages([f"maildir:{tmp_path / 'md'}"])] == [message("new"), message("cur")]


def test_a_maildir_message_renamed_after_listing_still_opens(tmp_path):
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES)
    refs = list(messages([str(tmp_path / "md")]))
    new = tmp_path / "md" / "new" / "1700000001.M1P1.host"
    new.rename(tmp_path / "md" / "cur" / "1700000001.M1P1.host:2,S")          # a reader saw it
    cur = tmp_path / "md" / "cur" / "1700000002.M2P1.host:2,FRS"
    cur.rename(tmp_path / "md" / "cur" / "1700000002.M2P1.host:2,FRST")       # a reader trashed it
    assert [read(ref) for ref in refs] == [message("first"), message("new"), message("cur")]
    (tmp_path / "md" / "cur" / "1700000001.M1P1.host:2,S").unlink()
    with pytest.raises(NoInputError, match="1700000001.M1P1.host"):
        read(refs[1])


def test_an_mbox_named_or_sniffed(tmp_path):
    keys = make_mbox(tmp_path / "box", [1, 2, 3], flags="S")
    for source in (str(tmp_path / "box"), f"mbox:{tmp_path / 'box'}"):
        refs = list(messages([source]))
        assert [(str(ref), ref.flags) for ref in refs] == [(key, "S") for key in keys]
        assert [read(ref) for ref in refs] == [b"Status: RO\n" + message(n) for n in (1, 2, 3)]
        assert [ref.size for ref in refs] == [ref.end - ref.start for ref in refs]
        assert all(ref.kind == "mbox" and ref.stored for ref in refs)


def test_a_file_is_sniffed_as_an_mbox_only_when_it_starts_with_a_from_line(tmp_path):
    (tmp_path / "m").write_bytes(b"Subject: x\n\nFrom the start\n\nFrom x Mon Jan  1 00:00:00 2024\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "box").write_bytes(b"From x Mon Jan  1 00:00:00 2024\nSubject: y\n\n")
    assert [ref.kind for ref in messages([str(tmp_path / name) for name in ("m", "empty", "box")])] == \
        ["file", "file", "mbox"]
    assert list(messages([f"mbox:{tmp_path / 'empty'}"])) == []


def test_an_mbox_listed_in_byte_ranges_gives_the_same_references(tmp_path):
    make_mbox(tmp_path / "box", range(20))
    path = str(tmp_path / "box")
    whole = list(mbox_messages(path))
    size = os.path.getsize(path)
    for parts in (2, 3, 7):
        cuts = [size * i // parts for i in range(parts + 1)]
        ranged = [ref for start, stop in zip(cuts, cuts[1:]) for ref in mbox_messages(path, start, stop)]
        assert ranged == whole


def test_messages_from_a_stream_one_message():
    [ref] = messages([StreamSource(io.BytesIO(message(1)), "-")])
    assert str(ref) == "-" and not ref.reopenable and not ref.stored
    assert read(ref) == message(1)


def test_a_regular_file_on_stdin_is_parsed_in_place_from_where_it_stands(tmp_path, monkeypatch):
    """`mimekit decode -o d < big.eml`: no copy of the message to a scratch file (which was
    0.1 s and 137 MB of $TMPDIR for a 100 MB attachment), and a file handed over part-read
    (the shell's `{ read line; mimekit show; } < file`) is the message from that point."""
    from mimekit.read.extract import extract
    (tmp_path / "in").write_bytes(b"not part of the message\n" + attached(b"\x00attached"))

    def no_scratch_file(*args, **kwargs):
        raise AssertionError("the message was copied to a scratch file")

    monkeypatch.setattr(tree, "temporary_file", no_scratch_file)
    with open(tmp_path / "in", "rb") as stdin:
        stdin.readline()
        [ref] = messages([StreamSource(stdin, "-")])
        extraction = extract(ref, str(tmp_path / "out"))
    assert [entry.written_name for entry in extraction.entries] == ["part-1.txt", "a.bin"]
    assert (tmp_path / "out" / "a.bin").read_bytes() == b"\x00attached"


def test_a_stream_whose_descriptor_holds_other_bytes_is_read_as_a_stream(tmp_path):
    """gzip.open's descriptor is the compressed file's: only a plain file is read in place."""
    import gzip
    from mimekit.read.tree import parse_message
    with gzip.open(tmp_path / "m.eml.gz", "wb") as packed:
        packed.write(attached(b"\x00attached"))
    with gzip.open(tmp_path / "m.eml.gz", "rb") as stream:
        [ref] = messages([StreamSource(stream, "-")])
        with ref.open() as opened, parse_message(opened) as message:
            assert [b"".join(leaf.iter_decoded()) for leaf in message.leaves()] == [b"text", b"\x00attached"]


def test_an_mbox_from_a_stream_spools_each_message_and_gives_it_back_unquoted(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "STREAM_SPOOL_IN_MEMORY", 100)     # large messages go to a file
    bodies = [message(1), message("big" * 200), b"Subject: no final newline\n\nx", message(3)]
    box = Mbox(str(tmp_path / "box"))
    keys = [box.add([body], flags=flags) for body, flags in zip(bodies, ["", "S", "", "FR"])]
    data = (tmp_path / "box").read_bytes()
    got = [(str(ref), ref.flags, ref.size, read(ref))
           for ref in messages([StreamSource(io.BufferedReader(io.BytesIO(data)), "-", mbox=True)])]
    files = list(mbox_messages(str(tmp_path / "box")))
    assert got == [(f"-:{key}", file.flags, file.size, read(file)) for key, file in zip(keys, files)]
    assert [flags for _, flags, _, _ in got] == ["", "S", "", "FR"]
    assert got[2][3] == b"Subject: no final newline\n\nx\n"


def test_several_sources_keep_their_order(tmp_path):
    (tmp_path / "z.eml").write_bytes(message("z"))
    keys = make_mbox(tmp_path / "box", ["m"])
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES[:1])
    got = listed(str(tmp_path / "z.eml"), str(tmp_path / "md"), f"mbox:{tmp_path / 'box'}", str(tmp_path / "z.eml"))
    assert got == [(str(tmp_path / "z.eml"), message("z")), (f"{tmp_path / 'md'}:1700000001.M1P1.host", message("new")),
                   (keys[0], message("m")), (str(tmp_path / "z.eml"), message("z"))]


# --- references given back ------------------------------------------------------------------

def test_every_reference_given_back_as_a_source_is_that_one_message(tmp_path):
    (tmp_path / "a.eml").write_bytes(message("a"))
    make_mbox(tmp_path / "box", [1, 2, 3], flags="F")
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES)
    refs = list(messages([str(tmp_path / "a.eml"), str(tmp_path / "box"), str(tmp_path / "md")]))
    assert len(refs) == 7
    for ref in refs:
        [again] = messages([str(ref)])
        assert again == ref and again.flags == ref.flags and read(again) == read(ref)


def test_a_reference_that_names_no_message(tmp_path):
    make_mbox(tmp_path / "box", [1, 2])
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES)
    for source, text in [(f"{tmp_path / 'box'}:1", "no message at offset 1"),
                         (f"{tmp_path / 'box'}:999999", "no message at offset 999999"),
                         (f"{tmp_path / 'md'}:1700000009.none", "no message '1700000009.none'"),
                         (str(tmp_path / "missing"), "no such file, directory or mailbox")]:
        with pytest.raises(NoInputError, match=text):
            list(messages_of(source))


def test_a_named_store_that_is_not_one(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NoInputError, match="not a Maildir"):
        list(messages_of(f"maildir:{tmp_path / 'file'}"))
    with pytest.raises(NoInputError, match="Is a directory|not an mbox file"):
        list(messages_of(f"mbox:{tmp_path}"))
    with pytest.raises(NoInputError):
        list(messages_of(f"mbox:{tmp_path / 'missing'}"))


def test_the_messages_before_a_missing_source_come_before_it_raises(tmp_path):
    (tmp_path / "a.eml").write_bytes(message("a"))
    found = messages([str(tmp_path / "a.eml"), str(tmp_path / "missing"), str(tmp_path / "a.eml")])
    assert read(next(found)) == message("a")
    with pytest.raises(NoInputError):
        next(found)


def test_references_pickle_and_a_stream_reference_refuses_to(tmp_path):
    make_mbox(tmp_path / "box", [1])
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES)
    for ref in messages([str(tmp_path / "box"), str(tmp_path / "md")]):
        again = pickle.loads(pickle.dumps(ref))
        assert again == ref and str(again) == str(ref) and read(again) == read(ref)
    [stream_ref] = messages([StreamSource(io.BytesIO(b"x"), "-")])
    with pytest.raises(TypeError, match="stream"):
        pickle.dumps(stream_ref)


def fifo_with(path: Path, data: bytes) -> threading.Thread:
    """A named pipe at `path` that a thread fills with `data` (as `<(cat file)` does)."""
    os.mkfifo(path)

    def write():
        with open(path, "wb") as pipe:
            pipe.write(data)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def test_a_pipe_named_as_a_path_is_read_once_as_a_stream(tmp_path):
    """`mimekit scan <(cat x.eml)`: sniffing must not eat the first bytes of what can be read
    only once, nor open it a second time (which waits for a writer that is gone)."""
    writer = fifo_with(tmp_path / "pipe", message(1))
    with time_limit(10):
        found = messages([str(tmp_path / "pipe")])
        ref = next(found)      # read where it is listed: the next one closes it
        assert (str(ref), read(ref), ref.reopenable) == (str(tmp_path / "pipe"), message(1), False)
        assert next(found, None) is None
    writer.join()
    make_mbox(tmp_path / "box", [1, 2], flags="S")
    writer = fifo_with(tmp_path / "mbox-pipe", (tmp_path / "box").read_bytes())
    with time_limit(10):
        got = [(str(ref), ref.flags, read(ref)) for ref in messages([str(tmp_path / "mbox-pipe")])]
    writer.join()
    files = list(mbox_messages(str(tmp_path / "box")))
    assert got == [(f"{tmp_path / 'mbox-pipe'}:{ref.key}", "S", read(ref)) for ref in files]


def test_a_file_of_a_directory_that_cannot_be_read_fails_in_its_place_and_the_listing_goes_on(tmp_path):
    """/proc/self/mem cannot be read at offset 0 (EIO), even by root, who reads any file."""
    (tmp_path / "a.eml").write_bytes(message("a"))
    (tmp_path / "b.eml").symlink_to("/proc/self/mem")
    (tmp_path / "c.eml").write_bytes(message("c"))
    refs = list(messages([str(tmp_path)]))
    assert [str(ref) for ref in refs] == [str(tmp_path / name) for name in ("a.eml", "b.eml", "c.eml")]
    assert read(refs[2]) == message("c")
    with pytest.raises(OSError):
        read(refs[1])


def test_a_recursive_directory_does_not_follow_links_to_directories(tmp_path):
    """As grep -r: a link back up would list the same messages again and again until the
    path is too long to open."""
    (tmp_path / "a.eml").write_bytes(message("a"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..")
    (tmp_path / "sub" / "b.eml").write_bytes(message("b"))
    assert [str(ref) for ref in messages([str(tmp_path)], recursive=True)] == [
        str(tmp_path / "a.eml"), str(tmp_path / "sub" / "b.eml")]


def test_a_subdirectory_that_cannot_be_listed_fails_in_its_place(tmp_path, monkeypatch):
    """-r over a tree where one folder cannot be read (permissions, I/O): that folder is an
    entry that fails when opened, and the folders after it are still listed."""
    for folder, name in (("a_sub", "1.eml"), ("z_sub", "2.eml")):
        (tmp_path / "tree" / folder).mkdir(parents=True)
        (tmp_path / "tree" / folder / name).write_bytes(message(name))
    (tmp_path / "tree" / "b.eml").write_bytes(message("b"))
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("a_sub"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(sources.os, "scandir", scandir)
    found = list(messages([str(tmp_path / "tree")], recursive=True))
    assert [(ref.kind, os.path.relpath(ref.path, tmp_path)) for ref in found] == [
        ("unreadable", "tree/a_sub"), ("file", "tree/b.eml"), ("file", "tree/z_sub/2.eml")]
    with pytest.raises(NoInputError, match="Permission denied"):
        found[0].open()


def test_recursive_reads_the_maildir_plus_plus_folders_of_a_maildir(tmp_path):
    """Dovecot and Courier keep folders inside the Maildir as .Name Maildirs: -r reads them
    after the inbox, in name order; without -r only the inbox is read."""
    make_maildir(tmp_path / "md", MAILDIR_ENTRIES[:1])
    make_maildir(tmp_path / "md" / ".Sent", [("cur", "1700000005.M5P1.host:2,S", message("sent"))])
    make_maildir(tmp_path / "md" / ".Archive.2024", [("new", "1700000004.M4P1.host", message("archived"))])
    (tmp_path / "md" / ".not-a-maildir").mkdir()
    for source in (str(tmp_path / "md"), f"maildir:{tmp_path / 'md'}"):
        found = list(messages([source], recursive=True))
        assert [ref.open().read() for ref in found] == [message("new"), message("archived"), message("sent")]
        assert [ref.flags for ref in found] == ["", "", "S"]
        assert [ref.open().read() for ref in messages([source])] == [message("new")]
