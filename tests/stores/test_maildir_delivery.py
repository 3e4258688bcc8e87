"""Maildir.begin: the incremental delivery that add() and the SMTP server share (issue 13).

One write path: bytes in any pieces and line endings, stored with LF, invisible until the
commit, gone after an abort or a failure; commit_with_copies gives the same file a name of
its own in other Maildirs."""

import os
from pathlib import Path

import pytest
from helpers import fsynced_paths, mounted_tmpfs
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import CantCreateError, IOFailure
from mimekit.stores import Maildir
from mimekit.stores.maildir import make_directories
from mimekit.stores.common import as_stored

MESSAGE = b"Subject: pieces\r\n\r\nline\r\nbare lf\nlone cr\rend\r\n"


def names(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


@given(cuts=st.lists(st.integers(0, len(MESSAGE)), max_size=8))
def test_pieces_cut_anywhere_are_stored_as_add_stores_them(tmp_path_factory, cuts):
    box = Maildir(str(tmp_path_factory.mktemp("box")))
    delivery = box.begin()
    bounds = [0, *sorted(cuts), len(MESSAGE)]
    for start, end in zip(bounds, bounds[1:]):
        delivery.write(MESSAGE[start:end])
    path = delivery.commit()
    assert Path(path).read_bytes() == b"".join(as_stored([MESSAGE])) == Path(box.add([MESSAGE])).read_bytes()


def test_nothing_is_visible_before_the_commit_and_the_file_stays_readable_after(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    delivery = box.begin()
    delivery.write(MESSAGE)
    assert names(tmp_path / "box" / "tmp") == [delivery.name] and box.keys() == []
    path = delivery.commit()
    assert box.keys() == [delivery.name] and names(tmp_path / "box" / "tmp") == []
    box.remove(delivery.name)                       # a reader took it away meanwhile
    assert os.pread(delivery.file.fileno(), 100, 0).startswith(b"Subject: pieces\n")
    delivery.close()
    assert not os.path.exists(path)


def test_flags_commit_into_cur(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    delivery = box.begin(flags="SR")
    delivery.write(MESSAGE)
    assert delivery.commit().endswith(f"/cur/{delivery.name}:2,RS") and box.flags(delivery.name) == "RS"


def test_abort_removes_the_tmp_file_and_is_idempotent_but_spares_a_committed_message(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    delivery = box.begin()
    delivery.write(MESSAGE)
    delivery.abort()
    delivery.abort()
    assert names(tmp_path / "box" / "tmp") == [] and names(tmp_path / "box" / "new") == []
    with pytest.raises(IOFailure, match="aborted"):
        delivery.write(b"more")

    kept = box.begin()
    kept.write(MESSAGE)
    path = kept.commit()
    kept.abort()
    assert Path(path).exists()


def test_a_failed_commit_removes_the_tmp_file(tmp_path):
    box = Maildir(str(tmp_path / "box"))
    delivery = box.begin()
    delivery.write(MESSAGE)
    os.rmdir(tmp_path / "box" / "new")
    with pytest.raises(IOFailure):
        delivery.commit()
    assert names(tmp_path / "box" / "tmp") == []
    delivery.abort()


def test_commit_with_copies_delivers_the_same_file_under_a_name_in_each_maildir(tmp_path):
    first, second, third = (Maildir(str(tmp_path / name)) for name in ("one", "two", "three"))
    delivery = first.begin()
    delivery.write(MESSAGE)
    paths = delivery.commit_with_copies([second, third])
    delivery.close()
    assert [os.path.dirname(path) for path in paths] == [str(tmp_path / name / "new") for name in ("one", "two", "three")]
    assert len({os.path.basename(path) for path in paths}) == 3 and os.stat(paths[0]).st_nlink == 3
    assert all(names(tmp_path / name / "tmp") == [] for name in ("one", "two", "three"))
    [key] = second.keys()
    second.remove(key)
    assert Path(paths[0]).read_bytes() == Path(paths[2]).read_bytes() == b"".join(as_stored([MESSAGE]))


def test_a_copy_that_cannot_be_made_leaves_no_copy_anywhere(tmp_path):
    first, second = Maildir(str(tmp_path / "one")), Maildir(str(tmp_path / "two"))
    os.rmdir(tmp_path / "two" / "tmp")               # what an administrator's mistake does
    delivery = first.begin()
    delivery.write(MESSAGE)
    with pytest.raises(CantCreateError):
        delivery.commit_with_copies([second])
    assert [names(tmp_path / "one" / sub) for sub in ("tmp", "new")] == [[], []]
    assert names(tmp_path / "two" / "new") == []


def test_a_maildir_created_now_is_complete_and_one_that_exists_is_left_alone(tmp_path):
    Maildir(str(tmp_path / "a" / "b"))
    assert names(tmp_path / "a" / "b") == ["cur", "new", "tmp"]
    os.rmdir(tmp_path / "a" / "b" / "tmp")
    Maildir(str(tmp_path / "a" / "b"))             # an archive without tmp/ gets it back
    assert names(tmp_path / "a" / "b") == ["cur", "new", "tmp"]


def test_directories_made_now_are_fsynced_into_their_parents(tmp_path, monkeypatch):
    fsynced = fsynced_paths(monkeypatch)
    make_directories(str(tmp_path / "a" / "b" / "c"), str(tmp_path / "a" / "d"))
    assert sorted(fsynced) == sorted(str(path) for path in (tmp_path, tmp_path / "a", tmp_path / "a" / "b"))
    fsynced.clear()
    make_directories(str(tmp_path / "a" / "b" / "c"))
    Maildir(str(tmp_path / "box"))
    assert fsynced == [str(tmp_path), str(tmp_path / "box")]
    (tmp_path / "file").write_bytes(b"")
    for not_a_directory in (tmp_path / "file", tmp_path / "file" / "z"):
        with pytest.raises(OSError):
            make_directories(str(not_a_directory))


def test_a_copy_on_another_file_system_has_the_stored_bytes_as_they_are(tmp_path):
    """The copy is of the stored bytes: normalised once more, CR CR LF (stored CR LF)
    would become LF."""
    message = b"Subject: cr cr lf\r\n\r\nend\r\r\n"
    with mounted_tmpfs(tmp_path / "other-disk", "1m") as mount_point:
        here, there = Maildir(str(tmp_path / "here")), Maildir(str(mount_point / "there"))
        delivery = here.begin()
        delivery.write(message)
        path, copied = delivery.commit_with_copies([there])
        delivery.close()
        assert os.stat(copied).st_dev != os.stat(path).st_dev
        assert Path(copied).read_bytes() == Path(path).read_bytes() == b"Subject: cr cr lf\n\nend\r\n"
        assert names(mount_point / "there" / "tmp") == []
