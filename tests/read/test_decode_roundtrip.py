"""Round trip with the composer: whatever mimekit encodes, mimekit decode gives back —
attachment bytes, attachment names, subject and body text."""

import io
import json
import os
import subprocess
import sys
import tempfile

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mimekit.write.composer import MessageBuilder
from mimekit.read.extract import best_text, extract_all
from mimekit.read.safe_names import RenameReason, safe_name
from mimekit.read.tree import parse_message
from mimekit.write.writer import message_bytes
from strategies import file_names, header_text, payloads

body_texts = st.text(st.characters(blacklist_categories=("Cs", "Co", "Cn")), min_size=1, max_size=500)


def unix_text(text: str) -> str:
    """Text as `decode --text` gives it: any line break is "\\n"."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@given(body=body_texts, subject=header_text,
       attachments=st.lists(st.tuples(file_names, payloads), min_size=1, max_size=4))
@example(body="0", subject="0", attachments=[("0", b"From:")])   # not a message, though libmagic says so
@example(body="0", subject="0", attachments=[("a.eml", b"X: 1\r\nFrom: a@example.org\r\n")])
def test_composed_messages_decode_back(body, subject, attachments):
    builder = MessageBuilder()
    builder.add_header("From", "someone@example.org")
    builder.add_header("Subject", subject)
    builder.set_body(body.encode("utf-8"))
    for name, data in attachments:
        builder.attach(data, filename=name)
    raw = message_bytes(builder.build())

    with parse_message(io.BytesIO(raw)) as message, tempfile.TemporaryDirectory() as directory:
        assert message.root.header("subject") == subject
        assert best_text(message) == unix_text(body)
        entries = extract_all(message, directory).entries[1:]   # the first is the text body
        assert message.defects == []
        assert [(entry.original_name, entry.size) for entry in entries] == \
               [(name, len(data)) for name, data in attachments]
        for entry, (name, data) in zip(entries, attachments):
            with open(f"{directory}/{entry.written_name}", "rb") as written:
                assert written.read() == data
            safe, _ = safe_name(name, entry.id, entry.content_type)
            assert entry.written_name == safe or RenameReason.CLASH in entry.reasons


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True)


creatable_names = file_names.filter(lambda name: len(name.encode()) < 200 and name not in (".", ".."))


@settings(max_examples=5)
@given(body=body_texts, attachments=st.dictionaries(creatable_names, payloads, min_size=1, max_size=3))
def test_encode_then_decode_through_the_cli(body, attachments):
    with tempfile.TemporaryDirectory() as inputs, tempfile.TemporaryDirectory() as outputs:
        with open(f"{inputs}/body.txt", "w", encoding="utf-8", newline="") as text:
            text.write(body)
        attach_args = []
        for index, (name, data) in enumerate(attachments.items()):
            path = os.path.join(inputs, str(index), name)   # a directory each: a name may be "body.txt"
            os.mkdir(os.path.dirname(path))
            with open(path, "wb") as out:
                out.write(data)
            attach_args += ["--attach", path]
        encoded = run_cli("encode", "--from", "someone@example.org", "--subject", "round trip",
                          "--body", f"{inputs}/body.txt", *attach_args, "-o", f"{inputs}/message.eml")
        assert encoded.returncode == 0, encoded.stderr

        decoded = run_cli("decode", f"{inputs}/message.eml", "-o", outputs, "--json")
        assert decoded.returncode == 0 and decoded.stderr == b""
        entries = json.loads(decoded.stdout)["parts"][1:]
        assert [entry["original_name"] for entry in entries] == list(attachments)
        for entry, data in zip(entries, attachments.values()):
            with open(f"{outputs}/{entry['written_name']}", "rb") as written:
                assert written.read() == data

        text = run_cli("decode", f"{inputs}/message.eml", "--text")
        assert (text.returncode, text.stdout.decode("utf-8")) == (0, unix_text(body))
