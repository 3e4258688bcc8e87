"""Maildir.begin: the incremental delivery that add() and the SMTP server share (issue 13).

One write path: bytes in any pieces and line endings, stored with LF, invisible until the
commit, gone after an abort or a failure; add_link gives one stored file a second name in
another Maildir."""

import os
from pathlib import Path

import pytest
from helpers import mounted_tmpfs
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import IOFailure
from mimekit.stores import Maildir
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


def test_add_link_delivers_the_same_file_again_under_a_new_name(tmp_path):
    first, second = Maildir(str(tmp_path / "one")), Maildir(str(tmp_path / "two"))
    path = first.add([MESSAGE])
    linked = second.add_link(path)
    [key] = second.keys()
    assert os.path.dirname(linked) == str(tmp_path / "two" / "new") and key != first.keys()[0]
    assert os.path.samefile(path, linked)
    second.remove(key)
    assert Path(path).read_bytes() == b"".join(as_stored([MESSAGE]))


def test_a_maildir_created_now_is_complete_and_one_that_exists_is_left_alone(tmp_path):
    Maildir(str(tmp_path / "a" / "b"))
    assert names(tmp_path / "a" / "b") == ["cur", "new", "tmp"]
    os.rmdir(tmp_path / "a" / "b" / "tmp")
    Maildir(str(tmp_path / "a" / "b"))             # an archive without tmp/ gets it back
    assert names(tmp_path / "a" / "b") == ["cur", "new", "tmp"]


def test_add_link_copies_into_a_maildir_on_another_file_system(tmp_path):
    with mounted_tmpfs(tmp_path / "other-disk", "1m") as mount_point:
        here, there = Maildir(str(tmp_path / "here")), Maildir(str(mount_point / "there"))
        path = here.add([MESSAGE])
        copied = there.add_link(path)
        assert os.stat(copied).st_dev != os.stat(path).st_dev
        assert Path(copied).read_bytes() == Path(path).read_bytes() and names(mount_point / "there" / "tmp") == []
