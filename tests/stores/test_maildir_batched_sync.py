"""Maildir.add(sync_directory=False) and sync_directories(): the batch API fetch uses,
beside the single-message one (bytes fsync'd before the name, the names fsync'd once)."""

import os

from mimekit.stores import Maildir


def count_fsyncs(monkeypatch) -> list[int]:
    """The file descriptors os.fsync is called on, as they come."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd):
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_add_without_directory_sync_fsyncs_the_file_only(tmp_path, monkeypatch):
    maildir = Maildir(str(tmp_path / "box"))
    calls = count_fsyncs(monkeypatch)
    paths = [maildir.add([b"Subject: %d\r\n\r\nbody\r\n" % n], flags="S" if n % 2 else "", sync_directory=False)
             for n in range(4)]
    assert len(calls) == 4, "one fsync per message: its bytes, before its name exists"
    assert [open(path, "rb").read() for path in paths] == [b"Subject: %d\n\nbody\n" % n for n in range(4)]
    assert sorted(maildir.keys()) == sorted(os.path.basename(p).split(":")[0] for p in paths)
    maildir.sync_directories()
    assert len(calls) == 6, "then new/ and cur/ once each"


def test_add_keeps_its_directory_fsync(tmp_path, monkeypatch):
    maildir = Maildir(str(tmp_path / "box"))
    calls = count_fsyncs(monkeypatch)
    maildir.add([b"Subject: x\r\n\r\n"])
    assert len(calls) == 2
