"""The one scratch file: anonymous from the start, in memory only when a budget is given."""

import os

from mimekit.streams.files import temporary_file


def test_a_scratch_file_has_no_name_to_leave_behind():
    with temporary_file() as spool:
        spool.write(b"message")
        assert os.fstat(spool.fileno()).st_nlink == 0
        spool.seek(0)
        assert spool.read() == b"message"


def test_a_memory_budget_keeps_small_copies_off_the_disk_and_moves_big_ones():
    with temporary_file(memory_limit=8) as spool:
        spool.write(b"small")
        assert not spool._rolled
        spool.write(b" and then bigger")
        assert os.fstat(spool.fileno()).st_nlink == 0
        spool.seek(0)
        assert spool.read() == b"small and then bigger"
