"""The message tree: part numbering, header accessors, bodies read back from the
input (file or spool), streamed decoding with its defects placed in the message."""

import base64
import io
import os
import tracemalloc

from hypothesis import given, strategies as st

from mimekit.defects import MAX_DEFECTS_PER_KIND, DefectKind
from mimekit.read.events import PartKind
from mimekit.limits import Limits
from mimekit.read.tree import SPOOL_MEMORY, parse_message
from strategies import mime_messages

NESTED = (
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from\r\n  far\r\n"
    b"Content-Type: multipart/mixed; boundary=outer\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=ISO-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=E9\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"\r\n"
    b"plain\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/pdf; name=\"fallback.pdf\"\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)


def parse_bytes(data: bytes, **kwargs):
    return parse_message(io.BytesIO(data), **kwargs)


def test_part_ids_follow_imap_sections_with_the_encapsulated_message_as_its_own_part():
    with parse_bytes(NESTED) as message:
        assert [(part.id, part.content_type, part.kind) for part in message.walk()] == [
            ("", "multipart/mixed", PartKind.MULTIPART),
            ("1", "text/plain", PartKind.LEAF),
            ("2", "message/rfc822", PartKind.MESSAGE),
            ("2.1", "multipart/alternative", PartKind.MULTIPART),
            ("2.1.1", "text/plain", PartKind.LEAF),
            ("2.1.2", "text/html", PartKind.LEAF),
            ("3", "application/pdf", PartKind.LEAF),
        ]
        assert [part.id for part in message.leaves()] == ["1", "2.1.1", "2.1.2", "3"]
        inner = message.part("2.1")
        assert inner.parent is message.part("2") and inner.depth == 2
        assert message.part("2").children == [inner] and message.part("2").is_message
        assert message.root.is_multipart and message.defects == []


def test_header_accessors_raw_and_decoded():
    with parse_bytes(NESTED) as message:
        root = message.root
        assert root.header("subject") == "Grüße from  far"   # unfolding removes the line break only
        assert root.raw_header("Subject") == b" =?utf-8?q?Gr=C3=BC=C3=9Fe?= from\r\n  far"
        assert root.header("X-Missing") is None and root.raw_header("X-Missing") is None
        assert [field.name for field in root.headers] == ["Subject", "Content-Type"]
        assert message.part("2.1").header("Subject") == "inner"


def test_header_all_returns_every_field_of_a_name():
    with parse_bytes(b"Received: a\r\nReceived: b\r\nreceived: c\r\n\r\n") as message:
        assert message.root.header_all("RECEIVED") == ["a", "b", "c"]
        assert len(message.root.header_fields("received")) == 3


def test_content_attributes_and_their_defaults():
    with parse_bytes(NESTED) as message:
        text, html, pdf = message.part("1"), message.part("2.1.2"), message.part("3")
        assert (text.charset, text.transfer_encoding) == ("iso-8859-1", "quoted-printable")
        assert (html.charset, html.transfer_encoding, html.disposition) == ("us-ascii", "7bit", None)
        assert pdf.charset is None and pdf.disposition == "attachment"
        assert pdf.filename == "résumé.pdf"            # filename* wins over name
        assert pdf.params == {"name": "fallback.pdf"}
        assert message.part("2.1.1").content_type == "text/plain"


def test_filename_falls_back_to_content_type_name():
    data = b'Content-Type: image/png; name="=?utf-8?b?w6kucG5n?="\r\n\r\n'
    with parse_bytes(data) as message:
        assert message.root.filename == "é.png"


def test_raw_bodies_preamble_epilogue_and_whole_entity():
    with parse_bytes(NESTED) as message:
        assert message.part("1").open_raw().read() == b"caf=E9"
        assert message.part("3").open_raw().read() == b"JVBERi0xLjQK"
        assert message.root.open_preamble().read() == b"preamble"
        assert message.root.open_epilogue().read() == b"epilogue\r\n"
        assert message.part("2.1").open_epilogue().read() == b""
        entity = message.part("2.1").open_entity().read()
        # the epilogue is empty: the line break after "--inner--" is the outer delimiter's
        assert entity.startswith(b"Subject: inner\r\n") and entity.endswith(b"--inner--")
        assert message.part("1").size == len(b"caf=E9")


def test_raw_body_reader_seeks_within_the_body_only():
    with parse_bytes(NESTED) as message:
        reader = message.part("3").open_raw()
        reader.seek(4)
        assert reader.read(3) == b"Ri0" and reader.tell() == 7
        reader.seek(-2, io.SEEK_END)
        assert reader.read() == b"QK"


def test_decoded_bodies_stream_through_the_transfer_decoder():
    with parse_bytes(NESTED) as message:
        assert message.part("1").read_decoded() == b"caf\xe9"
        assert message.part("3").read_decoded() == b"%PDF-1.4\n"
        assert b"".join(message.part("3").iter_decoded(chunk_size=1)) == b"%PDF-1.4\n"


def test_decoder_defects_are_placed_in_the_message_once():
    data = b"Content-Transfer-Encoding: base64\r\n\r\nQUJD!!RA==\r\n"
    with parse_bytes(data) as message:
        root = message.root
        assert root.read_decoded() == b"ABCD"
        root.read_decoded()
        junk = [d for d in message.defects if d.kind is DefectKind.BASE64_JUNK]
        assert len(junk) == 1 and junk[0].offset == data.index(b"!!") and junk[0].part == ""
        assert junk[0] in root.defects


def test_parse_defects_go_to_their_part_and_message_defects_are_sorted():
    data = (b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed\n\nx\n"
            b"--b \n\ny\n")
    with parse_bytes(data) as message:
        kinds = [(d.kind, d.part) for d in message.defects]
        assert kinds == [(DefectKind.BARE_LINE_ENDING, ""), (DefectKind.MISSING_BOUNDARY_PARAMETER, "1"),
                         (DefectKind.BOUNDARY_TRAILING_WHITESPACE, ""), (DefectKind.MISSING_FINAL_BOUNDARY, "")]
        assert [d.kind for d in message.part("1").defects] == [DefectKind.MISSING_BOUNDARY_PARAMETER]
        assert [d.offset for d in message.defects] == sorted(d.offset for d in message.defects)


def test_defects_of_a_kind_beyond_the_cap_are_counted_in_one_summary_across_parts():
    """Issue 8: every junk byte of a 50 MB base64 body was a Defect kept in the tree."""
    junk_part = b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\n" + (b"A!" * 30 + b"\r\n") * 2   # 60 runs
    data = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + junk_part * 3 + b"--b--\r\n"
    with parse_bytes(data) as message:
        for part in message.leaves():
            part.read_decoded()
        junk = [d for d in message.defects if d.kind is DefectKind.BASE64_JUNK]
        listed, summaries = [d for d in junk if not d.more], [d for d in junk if d.more]
        assert len(listed) == MAX_DEFECTS_PER_KIND and len(summaries) == 1
        assert len(listed) + summaries[0].more == 3 * 60   # the true number
        assert summaries[0].offset == listed[-1].offset + 2 and summaries[0].part == "2"
        assert [len(message.part(n).defects) for n in "123"] == [60, 40, 0]   # listed ones, in their part


def test_parts_past_the_header_budget_keep_their_type_and_encoding():
    data = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            + b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD\r\n" * 3
            + b"--b--\r\n")
    with parse_bytes(data, limits=Limits(max_header_total_count=3)) as message:
        assert [len(part.headers) for part in message.walk()] == [1, 2, 0, 0]
        assert [(p.content_type, p.charset, p.transfer_encoding, p.read_decoded()) for p in message.leaves()] == [
            ("text/plain", "utf-8", "base64", b"ABC")] * 3
        assert [d.kind for d in message.defects] == [DefectKind.LIMIT_HEADER_TOTAL]


def test_regular_file_is_read_in_place_even_after_the_caller_closes_it(tmp_path):
    path = tmp_path / "m.eml"
    path.write_bytes(b"junk before" + NESTED)
    with open(path, "rb") as stream:
        stream.seek(len(b"junk before"))
        message = parse_message(stream)
    with message:
        assert message.part("3").read_decoded() == b"%PDF-1.4\n"
        assert message.part("1").body_offset == NESTED.index(b"caf=E9")


def test_pipe_input_is_spooled_to_disk_beyond_the_memory_threshold():
    read_fd, write_fd = os.pipe()
    body = base64.encodebytes(os.urandom(3 * SPOOL_MEMORY // 4 * 2))
    data = b"Content-Transfer-Encoding: base64\r\n\r\n" + body
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        with os.fdopen(write_fd, "wb") as pipe:
            pipe.write(data)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe, parse_message(pipe) as message:
        assert message.root.open_raw().read() == body
        assert message.root.read_decoded() == base64.decodebytes(body)
        assert message._source._spool._rolled
    os.waitpid(pid, 0)


class _Generated(io.RawIOBase):
    """A non-seekable stream producing a large base64 message without holding it."""

    def __init__(self, lines: int) -> None:
        self._pieces = iter([b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"]
                            + [b"QUJD" * 19 + b"\r\n"] * lines)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while len(self._pending) < len(buffer):
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._pending += piece
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def test_memory_stays_flat_for_a_large_body():
    tracemalloc.start()
    try:
        with parse_message(io.BufferedReader(_Generated(lines=200_000), 65536)) as message:
            assert message.root.size == 200_000 * 78
            _, peak = tracemalloc.get_traced_memory()
            total = sum(len(chunk) for chunk in message.root.iter_decoded())
            _, peak_after_decoding = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 200_000 * 57
    assert peak < 4 * SPOOL_MEMORY and peak_after_decoding < 4 * SPOOL_MEMORY


def test_deep_tree_is_built_and_walked_without_recursion():
    depth = 5000
    data = b"Content-Type: message/rfc822\r\n\r\n" * depth + b"body"
    with parse_bytes(data, limits=Limits(max_depth=depth + 1)) as message:
        parts = list(message.walk())
        assert len(parts) == depth + 1 and parts[-1].open_raw().read() == b"body"
        assert parts[-1].id == "1" + ".1" * (depth - 1)


def test_context_manager_releases_the_spool():
    with parse_bytes(NESTED) as message:
        pass
    assert message._source._spool.closed


@given(mime_messages(), st.integers(1, 200))
def test_tree_is_the_same_for_any_read_size(data, chunk_size):
    def shape(message):
        return [(part.id, part.content_type, part.kind, part.open_raw().read(), part.open_preamble().read(),
                 part.open_epilogue().read(), [f.raw_value for f in part.headers]) for part in message.walk()]

    with parse_bytes(data) as whole, parse_bytes(data, chunk_size=chunk_size) as chunked:
        assert shape(chunked) == shape(whole)
        assert chunked.defects == whole.defects
