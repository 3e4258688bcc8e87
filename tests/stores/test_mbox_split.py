"""The streaming mbox splitter: where messages start and end (mboxrd quoting, an unquoted
"From " in a body, mboxcl2's Content-Length, CRLF, truncation), the flags of Status lines,
and byte-range splitting, which must give what splitting the whole file gives."""

import io
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mimekit.errors import DataError
from mimekit.stores import mbox_split
from mimekit.stores.mbox import Mbox, mbox_entry
from mimekit.stores.mbox_split import split_mbox, unquoted_range
from helpers import time_limit

FROM_LINE = b"From sender@example.test Mon Jan  1 00:00:00 2024\n"


def spans(data: bytes, offset: int = 0, stop: int | None = None) -> list[tuple[int, int, int, str]]:
    return [(s.offset, s.start, s.end, s.flags) for s in split_mbox(io.BytesIO(data), offset, stop)]


def read_back(path, data: bytes | None = None) -> list[bytes]:
    """Every message of the mbox at `path` (written from `data` first), un-quoted."""
    if data is not None:
        path.write_bytes(data)
    with open(path, "rb") as mbox:
        found = list(split_mbox(mbox))
    out = []
    for span in found:
        with unquoted_range(str(path), span.start, span.end) as message:
            out.append(message.read())
    return out


# --- where messages start and end ----------------------------------------------------------

def test_quoted_from_lines_come_back_unquoted_byte_for_byte(tmp_path):
    body = b"Subject: q\n\nFrom the start\n>From once\n>>From twice\n>>>From x\n>From\nFrom\n"
    box = Mbox(str(tmp_path / "box"))
    box.add([body])
    box.add([b"Subject: second\n\nbody\n"])
    assert b"\n>From the start\n>>From once\n>>>From twice\n>>>>From x\n" in (tmp_path / "box").read_bytes()
    assert read_back(tmp_path / "box") == [body, b"Subject: second\n\nbody\n"]


def test_an_unquoted_from_line_not_after_an_empty_line_splits_nothing(tmp_path):
    first = b"Subject: 1\n\nline\nFrom here on, an mboxo writer left it as it was\n"
    data = FROM_LINE + first + b"\n" + FROM_LINE + b"Subject: 2\n\nx\n"
    assert read_back(tmp_path / "box", data) == [first, b"Subject: 2\n\nx\n"]


def test_an_unquoted_from_line_after_an_empty_line_without_content_length_starts_a_message(tmp_path):
    """Without a Content-Length nothing tells it from a message start: mutt splits there too."""
    data = FROM_LINE + b"Subject: 1\n\npara\n\nFrom me, hello\n"
    assert read_back(tmp_path / "box", data) == [b"Subject: 1\n\npara\n", b""]


def mboxcl2(body: bytes, length: int | None = None) -> bytes:
    length = len(body) if length is None else length
    return FROM_LINE + b"Subject: 1\nContent-Length: %d\n\n" % length + body


CL_BODY = b"para\n\nFrom inside the body, unquoted\nend\n"
SECOND = b"Subject: 2\n\nsecond\n"


def test_content_length_keeps_an_unquoted_from_line_after_an_empty_line_inside(tmp_path):
    data = mboxcl2(CL_BODY) + b"\n" + FROM_LINE + SECOND
    first = b"Subject: 1\nContent-Length: %d\n\n" % len(CL_BODY) + CL_BODY
    assert read_back(tmp_path / "box", data) == [first, SECOND]
    # the last message of the file: its Content-Length ends at the file's end
    assert read_back(tmp_path / "last", mboxcl2(CL_BODY)) == [first]


def test_content_length_that_ends_right_before_a_from_line_without_a_blank_line_does_not_fit(tmp_path):
    """Everywhere else a message starts at a "From " line after an empty line, and a byte
    range listed alone can only find such a start: a length that ends at a "From " line
    with no empty line before it is ignored, so every way of listing agrees."""
    data = mboxcl2(CL_BODY) + FROM_LINE + SECOND
    messages = read_back(tmp_path / "box", data)
    assert messages[-1].endswith(b"\n" + FROM_LINE + SECOND) and SECOND not in messages


def test_a_content_length_that_does_not_fit_is_ignored(tmp_path):
    """Too short, too long (past the end of the file), or ending in the middle of a line that
    happens to hold "From ": each is ignored, and the "From " lines split as without it."""
    for length in (3, len(CL_BODY) - 1, len(CL_BODY) + 2, 10_000):
        data = mboxcl2(CL_BODY, length) + b"\n" + FROM_LINE + SECOND
        messages = read_back(tmp_path / "box", data)
        assert len(messages) == 3, length
        assert messages[1:] == [b"end\n", SECOND], length
    body = b"text\nabcFrom y\n\nmore\n"
    data = mboxcl2(body, body.index(b"From y")) + b"\n" + FROM_LINE + SECOND
    assert read_back(tmp_path / "box", data)[1:] == [SECOND]


def test_content_length_is_not_used_on_a_stream_that_cannot_seek():
    class Unseekable(io.BytesIO):
        def seekable(self):
            return False
    data = mboxcl2(CL_BODY) + b"\n" + FROM_LINE + SECOND
    assert len(list(split_mbox(Unseekable(data)))) == 3


def test_crlf_mbox(tmp_path):
    data = (b"From a Mon Jan  1 00:00:00 2024\r\nSubject: 1\r\n\r\n>From quoted\r\nline\r\n\r\n"
            b"From b Mon Jan  1 00:00:00 2024\r\nSubject: 2\r\n\r\nbody\r\n\r\n")
    assert read_back(tmp_path / "box", data) == [b"Subject: 1\r\n\r\nFrom quoted\r\nline\r\n",
                                                 b"Subject: 2\r\n\r\nbody\r\n"]
    assert [offset for offset, *_ in spans(data)] == [0, data.index(b"From b")]


def test_empty_file_and_a_file_without_a_from_line_hold_no_message():
    assert spans(b"") == []
    assert spans(b"\n\n") == []


def test_a_file_that_does_not_start_with_a_from_line_is_no_mbox(tmp_path):
    """Read as an mbox, it would lose what comes before its first "From " line without a word."""
    for data in (b"junk\n\n" + FROM_LINE + SECOND, SECOND):
        with pytest.raises(DataError, match="not an mbox"):
            read_back(tmp_path / "box", data)
    assert read_back(tmp_path / "box", b"\n\n" + FROM_LINE + SECOND) == [SECOND]   # empty lines first are fine


# --- truncated files -----------------------------------------------------------------------

MESSAGES = [b"Subject: one\n\nFrom body\n>From quoted\n", b"Subject: two\nX-Long: " + b"y" * 200 + b"\n\nbody two\n",
            b"Subject: three\n\nlast\n"]


def written(tmp_path) -> bytes:
    box = Mbox(str(tmp_path / "whole"))
    for message in MESSAGES:
        box.add([message])
    return (tmp_path / "whole").read_bytes()


def test_truncated_mbox_gives_the_messages_before_and_the_partial_one(tmp_path):
    data = written(tmp_path)
    third = data.rindex(b"\nFrom ") + 1
    cuts = {"mid-message": data.index(b"body two") + 4, "mid-header": data.index(b"X-Long") + 50,
            "in the From line": third + 12}
    for where, cut in cuts.items():
        got = read_back(tmp_path / "cut", data[:cut])
        expected_partial = {"mid-message": MESSAGES[1][:MESSAGES[1].index(b"body two") + 4],
                            "mid-header": MESSAGES[1][:MESSAGES[1].index(b"X-Long") + 50],
                            "in the From line": b""}[where]
        whole = 2 if where == "in the From line" else 1
        assert got == MESSAGES[:whole] + [expected_partial], where


def test_every_cut_of_an_mbox_reads_without_error_and_keeps_the_messages_before_it(tmp_path):
    """The last message found is the partial one, read up to its last complete line; a cut in
    the first five bytes of a "From " line leaves that stub to the message before."""
    data = written(tmp_path)
    starts = [i + 1 for i in range(len(data)) if data.startswith(b"\nFrom ", i)]
    for cut in range(len(data) + 1):
        got = read_back(tmp_path / "cut", data[:cut])
        assert len(got) == (0 if cut < 5 else 1 + sum(start + 5 <= cut for start in starts)), cut
        if not got:
            continue
        assert got[:-1] == MESSAGES[:len(got) - 1], cut
        if not any(start - 1 < cut < start + 5 for start in starts):
            last = got[-1]
            assert MESSAGES[len(got) - 1].startswith(last[:last.rfind(b"\n") + 1]), cut


# --- flags ---------------------------------------------------------------------------------

def test_status_lines_give_maildir_flags():
    for header, flags in [(b"Status: RO\n", "S"), (b"Status: O\n", ""), (b"Status: RO\nX-Status: A\n", "RS"),
                          (b"X-Status: F\n", "F"), (b"X-Status: D\n", "T"), (b"Status: R\nX-Status: AFD\n", "FRST"),
                          (b"", "")]:
        data = FROM_LINE + header + b"Subject: s\n\nStatus: RO\nX-Status: AFD\n"
        assert spans(data)[0][3] == flags, header


def test_flags_written_by_mbox_add_are_read_back(tmp_path):
    box = Mbox(str(tmp_path / "box"))
    for flags in ("", "S", "SR", "F", "T", "DFPRST"):
        box.add([b"Subject: s\n\nx\n"], flags=flags)
    with open(tmp_path / "box", "rb") as mbox:
        assert [span.flags for span in split_mbox(mbox)] == ["", "S", "RS", "F", "T", "DFRST"]  # passed has no mbox letter


# --- byte ranges ---------------------------------------------------------------------------

body_lines = st.lists(st.one_of(st.sampled_from([b"", b"From ", b"From x", b">From y", b">>From z", b"From",
                                                 b">", b"Status: RO", b"Content-Length: 1", b"x\r"]),
                                st.binary(max_size=120).map(lambda b: b.replace(b"\n", b" "))), max_size=12)
mailboxes = st.lists(st.tuples(body_lines, st.sampled_from(["", "S", "FR", "DT"]),
                               st.sampled_from([b"\n", b"\r\n"])), min_size=1, max_size=6)


@given(mailboxes, st.data())
def test_splitting_byte_ranges_gives_what_splitting_the_whole_file_gives(tmp_path_factory, box, data):
    path = tmp_path_factory.mktemp("ranges") / "box"
    expected = []
    with open(path, "wb") as file:
        for number, (lines, flags, eol) in enumerate(box):
            message = b"Subject: %d" % number + eol + eol + eol.join(lines) + eol
            for chunk in mbox_entry([message], flags=flags):
                file.write(chunk)
            expected.append((message.replace(b"\r\n", b"\n"), "".join(sorted(set(flags) & set("DFRST")))))
    size = path.stat().st_size
    cuts = sorted(data.draw(st.sets(st.integers(1, size - 1), max_size=8)))
    with open(path, "rb") as mbox:
        whole = list(split_mbox(mbox))
    for chunk_size in (mbox_split.CHUNK_SIZE, 16):   # a line, a header block, a "From " cut by reads
        with mock.patch.object(mbox_split, "CHUNK_SIZE", chunk_size):
            with open(path, "rb") as mbox:
                whole_in_pieces = list(split_mbox(mbox))
            ranges = []
            for start, stop in zip([0] + cuts, cuts + [size]):
                with open(path, "rb") as mbox:
                    ranges += split_mbox(mbox, start, stop)
        assert ranges == whole_in_pieces, chunk_size
        assert whole_in_pieces == whole, chunk_size
    got = []
    for span in whole:
        with unquoted_range(str(path), span.start, span.end) as message:
            stored = message.read()
        status, _, _ = stored.partition(b"Subject: ")
        assert all(line.startswith((b"Status: ", b"X-Status: ")) for line in status.splitlines())
        got.append((stored[len(status):], span.flags))
    assert got == expected


def test_a_range_starting_inside_a_long_line_skips_all_of_it():
    """A cut inside a line longer than a read: the rest of that line is no line of its own,
    so an unquoted "From " line after it (mboxo) starts nothing, as in the whole file."""
    data = (FROM_LINE + b"Subject: 1\n\n" + b"x" * 40 + b"\nFrom unquoted, after a long line\n"
            + b"\n" + FROM_LINE + b"Subject: 2\n\n" + b"y" * 33 + b"\n\nFrom after a blank line\n")
    for chunk_size in (mbox_split.CHUNK_SIZE, 16):
        with mock.patch.object(mbox_split, "CHUNK_SIZE", chunk_size):
            whole = spans(data)
            for cut in range(1, len(data)):
                assert spans(data, 0, cut) + spans(data, cut) == whole, (chunk_size, cut)


def test_an_endless_from_line_is_read_in_bounded_time_and_memory(tmp_path):
    """A "From " line of 48 MiB without a line break: the line is cut at the header block
    limit and the rest searched in chunks, not held and copied whole again per read."""
    path = tmp_path / "box"
    with open(path, "wb") as file:
        file.write(b"From ")
        for _ in range(48):
            file.write(b"x" * (1 << 20))
        file.write(b"\n\n" + FROM_LINE + SECOND)
    with time_limit(60), open(path, "rb") as mbox:
        spans = list(split_mbox(mbox))
    assert [span.offset for span in spans] == [0, (48 << 20) + 7]
    assert spans[0].start == mbox_split.HEADER_BLOCK_LIMIT
    with unquoted_range(str(path), spans[1].start, spans[1].end) as message:
        assert message.read() == SECOND
