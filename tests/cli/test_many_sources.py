"""Reading commands over many sources: every kind (file, directory, -r, Maildir, mbox, "-",
"mbox:-"), several in one run in order, a missing one an error record in its place; decode
gives the same files and manifest with one job or two; a 1 GB mbox in bounded memory."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_bounded

from mimekit.stores.mbox import Mbox, mbox_entry

CLI = [sys.executable, "-m", "mimekit_cli"]


def mime(name: str, attachment: bytes | None = None, eol: bytes = b"\r\n", body: bytes = b"") -> bytes:
    """A well-formed message (check finds nothing), with one attachment when given."""
    head = [b"From: a@example.test", b"To: b@example.test", b"Subject: " + name.encode(),
            b"Date: Mon, 1 Jan 2024 00:00:00 +0000", b"Message-ID: <%s@example.test>" % name.encode(),
            b"MIME-Version: 1.0"]
    text = body or b"text of " + name.encode() + eol + b"From the body" + eol
    if attachment is None:
        lines = head + [b"Content-Type: text/plain; charset=us-ascii", b"", text]
    else:
        encoded = base64.encodebytes(attachment).replace(b"\n", eol)
        lines = head + [b'Content-Type: multipart/mixed; boundary="b"', b"", b"--b",
                        b"Content-Type: text/plain; charset=us-ascii", b"", text + b"--b",
                        b"Content-Type: application/octet-stream", b"Content-Transfer-Encoding: base64",
                        b'Content-Disposition: attachment; filename="%s.bin"' % name.encode(), b"",
                        encoded + b"--b--", b""]
    return eol.join(lines)


def run(args, cwd, input: bytes | None = None) -> tuple[int, list[dict], str]:
    result = subprocess.run([*CLI, *args], cwd=cwd, input=input, capture_output=True, timeout=120)
    stdout = result.stdout.decode()
    if stdout.startswith("{\n"):            # one message, or a usage error: one JSON document
        return result.returncode, [json.loads(stdout)], result.stderr.decode()
    records = [json.loads(line) for line in stdout.splitlines()]
    return result.returncode, records, result.stderr.decode()


@pytest.fixture
def tree(tmp_path) -> Path:
    """one.eml; box.mbox (3 messages); md/ (Maildir, 2); dir/ (a.eml, b.eml, sub/c.eml,
    sub/md2/ a Maildir, sub/inner.mbox). All with relative references from tmp_path."""
    (tmp_path / "one.eml").write_bytes(mime("one", b"\x00one"))
    box = Mbox(str(tmp_path / "box.mbox"))
    for name, flags in (("m1", ""), ("m2", "S"), ("m3", "FR")):
        box.add([mime(name, name.encode() * 3)], flags=flags)
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "md" / sub).mkdir(parents=True)
        (tmp_path / "dir" / "sub" / "md2" / sub).mkdir(parents=True)
    (tmp_path / "md" / "new" / "1700000001.M1.host").write_bytes(mime("d1", eol=b"\n"))
    (tmp_path / "md" / "cur" / "1700000002.M2.host:2,S").write_bytes(mime("d2", b"d2", eol=b"\n"))
    (tmp_path / "md" / "cur" / ".hidden").write_bytes(b"not mail")
    (tmp_path / "dir" / "a.eml").write_bytes(mime("a"))
    (tmp_path / "dir" / "b.eml").write_bytes(mime("b", b"bbb"))
    (tmp_path / "dir" / "sub" / "c.eml").write_bytes(mime("c"))
    (tmp_path / "dir" / "sub" / "md2" / "cur" / "1700000003.M3.host:2,FS").write_bytes(mime("e", eol=b"\n"))
    Mbox(str(tmp_path / "dir" / "sub" / "inner.mbox")).add([mime("i")])
    return tmp_path


def mbox_keys(path: Path) -> list[str]:
    return [f"{path.name}:{key}" for key in Mbox(str(path), create=False).keys()]


EXPECTED = {
    "one.eml": ["one.eml"],
    "dir": ["dir/a.eml", "dir/b.eml"],
    "maildir:md": ["md:1700000001.M1.host", "md:1700000002.M2.host"],
    "md": ["md:1700000001.M1.host", "md:1700000002.M2.host"],
}


def expected_sources(tree: Path, source: str, recursive: bool = False) -> list[str]:
    if source in ("box.mbox", "mbox:box.mbox"):
        return mbox_keys(tree / "box.mbox")
    if recursive:
        inner = [f"dir/sub/{key}" for key in mbox_keys(tree / "dir" / "sub" / "inner.mbox")]
        return ["dir/a.eml", "dir/b.eml", "dir/sub/c.eml", *inner, "dir/sub/md2:1700000003.M3.host"]
    return EXPECTED[source]


@pytest.mark.parametrize("source", ["one.eml", "dir", "maildir:md", "md", "mbox:box.mbox", "box.mbox"])
def test_check_json_reads_every_kind_of_source(tree, source):
    code, records, stderr = run(["check", "--json", "-j", "2", source], tree)
    assert code == 0, stderr
    assert [record["source"] for record in records] == expected_sources(tree, source)
    assert all(record["ok"] and record["violations"] == [] for record in records), records


def test_check_json_recursive_reads_nested_directories_maildirs_and_mbox_files(tree):
    code, records, stderr = run(["check", "--json", "-r", "dir"], tree)
    assert code == 0, stderr
    assert [record["source"] for record in records] == expected_sources(tree, "dir", recursive=True)


@pytest.mark.parametrize("source", ["one.eml", "dir", "maildir:md", "md", "mbox:box.mbox", "box.mbox"])
def test_decode_json_writes_each_message_of_every_kind_of_source(tree, source):
    code, records, stderr = run(["decode", "-o", "out", "--json", "-q", source], tree)
    assert code == 0, stderr
    if source == "one.eml":      # one message: straight into the directory, as before
        assert [part["written_name"] for part in records[0]["parts"]] == ["part-1.txt", "one.bin"]
        assert (tree / "out" / "one.bin").read_bytes() == b"\x00one"
        return
    assert [record["source"] for record in records] == expected_sources(tree, source)
    for record in records:
        folder = tree / record["directory"]
        assert folder.parent == tree / "out"
        for part in record["parts"]:
            written = (folder / part["written_name"]).read_bytes()
            assert hashlib.sha256(written).hexdigest() == part["sha256"] and len(written) == part["size"]
    attachments = {(tree / r["directory"] / p["written_name"]).read_bytes()
                   for r in records for p in r["parts"] if p["written_name"].endswith(".bin")}
    assert attachments == {"dir": {b"bbb"}, "maildir:md": {b"d2"}, "md": {b"d2"}}.get(source, {b"m1m1m1", b"m2m2m2",
                                                                                             b"m3m3m3"})


def test_stdin_as_one_message_and_as_an_mbox(tree):
    code, records, stderr = run(["check", "--json", "-"], tree, input=mime("stdin"))
    assert (code, [r["source"] for r in records], records[0]["ok"]) == (0, ["-"], True), stderr
    code, [record], stderr = run(["decode", "-o", "out-stdin", "--json", "-"], tree, input=mime("stdin", b"\x01"))
    assert code == 0, stderr
    assert (tree / "out-stdin" / "stdin.bin").read_bytes() == b"\x01" and record["directory"] == "out-stdin"
    data = (tree / "box.mbox").read_bytes()
    code, records, stderr = run(["check", "--json", "mbox:-"], tree, input=data)
    assert code == 0, stderr
    assert [r["source"] for r in records] == [key.replace("box.mbox", "-") for key in mbox_keys(tree / "box.mbox")]
    assert all(r["ok"] for r in records)
    code, records, stderr = run(["decode", "-o", "out", "--json", "-q", "mbox:-"], tree, input=data)
    assert code == 0, stderr
    assert [r["source"] for r in records] == [key.replace("box.mbox", "-") for key in mbox_keys(tree / "box.mbox")]
    bins = [(tree / r["directory"] / p["written_name"]).read_bytes() for r in records for p in r["parts"]
            if p["written_name"].endswith(".bin")]
    assert bins == [b"m1m1m1", b"m2m2m2", b"m3m3m3"]


def test_stdin_cannot_be_read_twice(tree):
    code, [record], stderr = run(["check", "--json", "-", "mbox:-"], tree, input=b"")
    assert code == 64 and "standard input can be read only once" in record["error"]["message"]


def test_mixed_sources_in_one_run_keep_their_order_and_a_missing_one_is_a_record_in_its_place(tree):
    sources = ["box.mbox", "missing.eml", "md", "one.eml", "-", "mbox:nothere", "dir"]
    for jobs in ("1", "2"):
        code, records, stderr = run(["check", "--json", "-j", jobs, *sources], tree, input=mime("stdin"))
        expected = [*mbox_keys(tree / "box.mbox"), "missing.eml", *EXPECTED["md"], "one.eml", "-", "mbox:nothere",
                    *EXPECTED["dir"]]
        assert [r["source"] for r in records] == expected, jobs
        errors = {r["source"]: r["error"] for r in records if "error" in r}
        assert set(errors) == {"missing.eml", "mbox:nothere"}
        assert all(error["code"] == 66 and error["kind"] == "no-input" for error in errors.values())
        assert "missing.eml" in errors["missing.eml"]["message"]
        assert all(r["ok"] for r in records if "error" not in r)
        assert code == 66, stderr


def test_a_missing_source_in_text_mode_is_named_and_the_others_are_checked(tree):
    code, stdout_records, stderr = run(["check", "one.eml", "missing.eml", "box.mbox"], tree)
    assert code == 66
    assert "mimekit check: missing.eml: no such file, directory or mailbox" in stderr
    assert "1 of 5 source(s) or message(s) could not be read" in stderr


def test_a_file_that_cannot_be_read_is_a_record_in_its_place_and_its_directory_goes_on(tree):
    (tree / "dir" / "a2.eml").symlink_to("/proc/self/mem")     # EIO at offset 0, even for root
    code, records, stderr = run(["check", "--json", "dir", "one.eml"], tree)
    assert [r["source"] for r in records] == ["dir/a.eml", "dir/a2.eml", "dir/b.eml", "one.eml"]
    assert records[1]["error"]["code"] == 74 and "Input/output error" in records[1]["error"]["message"]
    assert code == 74


def references_given_back(tree: Path) -> list[str]:
    _, records, _ = run(["check", "--json", "box.mbox", "md", "one.eml"], tree)
    return [record["source"] for record in records]


def test_references_printed_by_one_run_are_sources_of_the_next(tree):
    references = references_given_back(tree)
    code, records, stderr = run(["check", "--json", *reversed(references)], tree)
    assert code == 0, stderr
    assert [r["source"] for r in records] == list(reversed(references))
    code, records, stderr = run(["decode", "-o", "out", "--json", references[1]], tree)
    assert code == 0, stderr
    assert (tree / records[0]["directory"] / "m2.bin").read_bytes() == b"m2m2m2"


def tree_of(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file()}


def test_decode_with_one_job_and_two_writes_the_same_files_and_manifest(tree):
    for n in range(40):
        (tree / "dir" / f"m{n:02d}.eml").write_bytes(mime(f"m{n}", os.urandom(n * 97)))
    box = Mbox(str(tree / "big.mbox"))
    for n in range(40):
        box.add([mime(f"x{n}", os.urandom(n * 131), body=b"From quoted\n>From x\n")])
    sources = ["dir", "big.mbox", "md", "one.eml", "-r", "--json"]
    runs = {}
    for jobs in ("1", "2"):
        code, records, stderr = run(["decode", "-o", f"out{jobs}", "-j", jobs, "-q", *sources], tree)
        assert code == 0, stderr
        runs[jobs] = [json.dumps(r).replace(f'"out{jobs}/', '"OUT/') for r in records]
    assert len(runs["1"]) == 42 + 3 + 40 + 2 + 1
    assert runs["1"] == runs["2"]
    assert tree_of(tree / "out1") == tree_of(tree / "out2")
    assert len(tree_of(tree / "out1")) > 89


# --- a 1 GB mbox -----------------------------------------------------------------------------

GIGABYTE_MESSAGES = 1000
ATTACHMENT = 768 * 1024     # 1 MiB once in base64


def write_gigabyte_mbox(path: Path) -> None:
    """1,000 messages of a 1 MiB base64 attachment each, written as it goes (never whole)."""
    payload = os.urandom(ATTACHMENT)
    with open(path, "wb", buffering=1 << 20) as mbox:
        for n in range(GIGABYTE_MESSAGES):
            for chunk in mbox_entry([mime(f"g{n}", payload, eol=b"\n")], flags="S" if n % 2 else ""):
                mbox.write(chunk)


@pytest.mark.resources
def test_a_gigabyte_mbox_is_read_in_bounded_memory(tmp_path):
    if shutil.disk_usage(tmp_path).free < 3 * 1024 ** 3:
        pytest.skip("less than 3 GB free for a 1 GB mbox")
    path = tmp_path / "big.mbox"
    write_gigabyte_mbox(path)
    assert path.stat().st_size > 10 ** 9
    result = run_bounded(["check", "--json", "-j", "1", f"mbox:{path}"], timeout=900)
    assert result.returncode == 0, result.stderr[-500:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == GIGABYTE_MESSAGES and all(record["ok"] for record in records)
    assert records[-1]["source"].startswith(f"{path}:")
    result = run_bounded(["scan", "--json", "-j", "1", f"mbox:{path}"], timeout=900)
    assert result.returncode == 0, result.stderr[-500:]
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == GIGABYTE_MESSAGES
    assert [record["attachments"] for record in records] == [1] * GIGABYTE_MESSAGES
    assert [record["flags"] for record in records[:4]] == ["", "S", "", "S"]


def test_decode_gives_different_messages_different_folders(tmp_path):
    """Folder names are made from references without clashes: a/b.eml and a_b.eml, an mbox
    message box.mbox:0 and a file named box.mbox@0, each get their own folder, so no file
    lands beside another message's and the result does not depend on which job came first."""
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "a" / "b.eml").write_bytes(mime("ab-slash"))
    (tmp_path / "d" / "a_b.eml").write_bytes(mime("ab-underscore"))
    (tmp_path / "d" / "box.mbox@0").write_bytes(mime("at-file"))
    (tmp_path / "d" / "box.mbox").write_bytes(b"From x Thu Jan  1 00:00:00 2026\n" + mime("in-mbox", eol=b"\n"))
    for jobs in ("1", "2"):
        code, records, stderr = run(["decode", "-r", "-j", jobs, "--json", "d", "-o", f"out{jobs}"], tmp_path)
        assert code == 0, stderr
        folders = [record["directory"] for record in records]
        assert len(records) == 4 and len(set(folders)) == 4
        assert all(len(os.listdir(tmp_path / folder)) == 1 for folder in folders)
    assert tree_of(tmp_path / "out1") == tree_of(tmp_path / "out2")


def test_one_saved_message_that_starts_with_a_from_line_is_one_message(tmp_path):
    """Mail clients save a message with its "From " line: an mbox of one message. Named
    alone, it reads as one message (decode --text, decode -o straight into DIR), without
    its From line. A message on a pipe (<(cat x.eml)) is one message too."""
    (tmp_path / "saved.eml").write_bytes(b"From a@example.test Mon Jan  1 00:00:00 2024\n" + mime("saved", eol=b"\n"))
    text = subprocess.run([*CLI, "decode", "--text", "saved.eml"], cwd=tmp_path, capture_output=True, timeout=60)
    assert text.returncode == 0 and text.stdout.startswith(b"text of saved\n") and not text.stderr, text.stderr
    code, records, stderr = run(["decode", "saved.eml", "-o", "out", "--json"], tmp_path)
    assert code == 0 and records[0]["directory"] == "out"
    assert sorted(os.listdir(tmp_path / "out")) == [records[0]["parts"][0]["written_name"]], stderr
    (tmp_path / "plain.eml").write_bytes(mime("plain"))
    piped = subprocess.run(["bash", "-c", f"{sys.executable} -m mimekit_cli decode --text <(cat plain.eml)"],
                           cwd=tmp_path, capture_output=True, timeout=60)
    assert piped.returncode == 0 and piped.stdout.startswith(b"text of plain"), piped.stderr


def test_decode_prints_outside_names_printably(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "evil\x1b]0;PWNED\x07.eml").write_bytes(mime("evil"))
    (tmp_path / "d" / "plain.eml").write_bytes(mime("plain"))
    result = subprocess.run([*CLI, "decode", "d", "-o", "out"], cwd=tmp_path, capture_output=True, timeout=60)
    assert result.returncode == 0 and b"\x1b" not in result.stdout and b"\\x1b]0;PWNED\\x07" in result.stdout


def test_a_cluster_is_given_absolute_paths_only(tmp_path):
    """Each Dask worker has its own working directory: a relative SOURCE or -o DIR would
    name other files there (refused before any connection is tried)."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.eml").write_bytes(mime("a"))
    for args in (["scan", "--dask", "tcp://127.0.0.1:9", "d"],
                 ["decode", "--dask", "tcp://127.0.0.1:9", str(tmp_path / "d"), "-o", "out"]):
        result = subprocess.run([*CLI, *args], cwd=tmp_path, capture_output=True, timeout=60)
        assert result.returncode == 64 and b"absolute paths" in result.stderr, result.stderr


def test_decode_never_writes_through_a_link_planted_where_a_message_folder_goes(tmp_path):
    """Files are written only inside -o DIR: a link at DIR/box.mbox@0 pointing elsewhere
    makes that message an error (73), the others are written, nothing lands outside."""
    (tmp_path / "box.mbox").write_bytes(b"From x Thu Jan  1 00:00:00 2026\n" + mime("one", attachment=b"1", eol=b"\n")
                                        + b"\nFrom x Thu Jan  1 00:00:00 2026\n" + mime("two", eol=b"\n"))
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "box.mbox@0").symlink_to(tmp_path / "elsewhere")
    code, records, stderr = run(["decode", "box.mbox", "-o", "out", "--json"], tmp_path)
    assert code == 73 and not os.listdir(tmp_path / "elsewhere")
    assert [("error" in record) for record in records] == [True, False] and "link" in records[0]["error"]["message"]
    assert sorted(os.listdir(tmp_path / "out")) == ["box.mbox@0", os.path.basename(records[1]["directory"])]
