"""mimekit.dask on a real distributed.LocalCluster (two worker processes): the bag of
references and the results of a cluster run equal the local run's, byte for byte through
the CLI, whatever the mbox byte ranges cut."""

import base64
import functools
import hashlib
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("dask.bag")
distributed = pytest.importorskip("distributed")
pyarrow_parquet = pytest.importorskip("pyarrow.parquet")

from mimekit.dask import map_on_cluster, messages as cluster_messages, write_parquet  # noqa: E402
from mimekit.errors import MimekitError  # noqa: E402
from mimekit.read.batch import apply  # noqa: E402
from mimekit.read.summary import scan_message  # noqa: E402
from mimekit.stores.maildir import Maildir  # noqa: E402
from mimekit.stores.mbox import mbox_entry  # noqa: E402
from mimekit.stores.sources import messages, messages_of  # noqa: E402

FILLER = b"A body line that makes the message longer than a range or two.\n" * 4


def plain(subject: str, body: bytes = FILLER) -> bytes:
    return f"From: Sender <s@example.org>\nSubject: {subject}\nDate: Thu, 1 Jan 2026 10:00:00 +0000\n\n".encode() + body


def with_attachment(subject: str) -> bytes:
    data = base64.encodebytes(hashlib.sha256(subject.encode()).digest() * 8)
    return (f"From: s@example.org\nSubject: {subject}\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nHi.\n--B\n"
            f"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename={subject}.bin\n"
            "Content-Transfer-Encoding: base64\n\n").encode() + data + b"--B--\n"


def content_length_entry(subject: str) -> bytes:
    """An mboxcl2 message whose body has an unquoted "From " line after an empty line, far
    enough in that a range starting in the body resynchronises onto it."""
    body = FILLER * 3 + b"\nFrom here on, this line is body text.\n" + FILLER
    return (b"From sender@example.org Thu Jan  1 00:00:00 2026\n" + plain(subject, b"").rstrip(b"\n")
            + b"\nContent-Length: %d\n\n" % len(body) + body + b"\n")


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A Maildir, an mbox of 120 messages (one with Content-Length) and a directory of .eml files."""
    root = tmp_path_factory.mktemp("dask-sources")
    maildir = Maildir(str(root / "Maildir"))
    for n in range(12):
        maildir.add([plain(f"maildir {n}")], flags="S" if n % 3 else "")
    mbox = root / "archive.mbox"
    with open(mbox, "wb") as file:
        for n in range(120):
            if n == 60:
                file.write(content_length_entry("counted"))
            message = with_attachment(f"mbox-{n}") if n % 7 == 0 else plain(f"mbox {n}", FILLER * (n % 4))
            file.write(b"".join(mbox_entry([message], flags="S" if n % 2 else "")))
    directory = root / "eml"
    directory.mkdir()
    for n in range(5):
        (directory / f"{n:02}.eml").write_bytes(plain(f"file {n}").replace(b"\n", b"\r\n"))
    return [str(root / "Maildir"), str(mbox), str(directory)]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as cluster_client:
        yield cluster_client


@pytest.mark.parametrize("partition_bytes", [97, 1000, 64 * 1024 * 1024])
def test_bag_lists_exactly_what_a_local_listing_does(sources, client, partition_bytes):
    bag = cluster_messages(sources, partition_bytes=partition_bytes)
    local = list(messages(sources))
    assert bag.compute() == local
    assert len(local) == 12 + 121 + 5
    mbox_size = os.path.getsize(sources[1])
    assert bag.npartitions >= -(-mbox_size // partition_bytes)


def test_a_range_starting_in_a_content_length_body_lists_no_message_there(sources, client):
    with open(sources[1], "rb") as mbox:
        inside = mbox.read().index(b"\n\nFrom here on") + 2
    local = list(messages([sources[1]]))
    assert any(ref.start < inside < ref.end for ref in local)
    listed = cluster_messages([sources[1]], partition_bytes=len(FILLER)).compute()
    assert listed == local


def test_map_on_cluster_gives_the_local_results_and_errors_in_order(sources, cluster):
    function = functools.partial(scan_message, fields=("source", "flags", "subject", "size", "attachments"))
    named = [sources[0], "missing-mailbox", sources[1], "mbox:" + sources[2], sources[2]]
    expected = []
    for source in named:
        try:
            expected += [("message", str(ref), apply(function, ref)) for ref in messages_of(source)]
        except MimekitError as exc:
            expected.append(("error", source, str(exc)))
    seen = []
    results = map_on_cluster(cluster.scheduler_address, function, named, partition_bytes=300,
                             on_source_error=lambda where, exc: seen.append(("error", where, str(exc))))
    for ref, result in results:
        seen.append(("message", str(ref), result))
    assert seen == expected
    assert [kind for kind, *_ in seen].count("error") == 2


def test_write_parquet_in_row_groups(tmp_path):
    records = [{"source": f"m:{n}", "size": n, "subject": None if n < 5 else f"s{n}"} for n in range(25)]
    path = str(tmp_path / "scan.parquet")
    assert write_parquet(iter(records), path, rows_per_group=10) == 25
    parquet = pyarrow_parquet.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 3
    assert parquet.read().to_pylist() == records


def run_cli(*args, cwd=None):
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", *args], capture_output=True, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_scan_on_the_cluster_prints_what_local_runs_print(sources, cluster):
    on_cluster = run_cli("scan", "--json", "--dask", cluster.scheduler_address, *sources)
    assert on_cluster == run_cli("scan", "--json", "--jobs", "1", *sources)
    assert on_cluster == run_cli("scan", "--json", "--jobs", "2", *sources)
    assert on_cluster.count(b"\n") == 12 + 121 + 5


def test_scan_parquet_on_the_cluster_holds_the_local_records(sources, cluster, tmp_path):
    path = str(tmp_path / "scan.parquet")
    assert run_cli("scan", "--parquet", path, "--dask", cluster.scheduler_address, *sources) == b""
    local = [json.loads(line) for line in run_cli("scan", "--json", "--jobs", "1", *sources).splitlines()]
    assert [{"schema": "mimekit.scan/1", **row} for row in pyarrow_parquet.read_table(path).to_pylist()] == local


def test_no_scheduler_at_the_address_is_unavailable_not_a_traceback(sources):
    result = subprocess.run([sys.executable, "-m", "mimekit_cli", "scan", "--dask", "tcp://127.0.0.1:9", *sources],
                            capture_output=True, env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"})
    assert (result.returncode, result.stdout) == (69, b"")
    assert result.stderr.startswith(b"mimekit scan: tcp://127.0.0.1:9: no Dask scheduler answers")


def tree(directory) -> dict:
    return {os.path.relpath(os.path.join(folder, name), directory): open(os.path.join(folder, name), "rb").read()
            for folder, _, names in os.walk(directory) for name in names}


def test_decode_on_the_cluster_writes_what_local_runs_write(sources, cluster, tmp_path):
    outputs = {}
    for name, how in [("dask", ["--dask", cluster.scheduler_address]), ("one", ["--jobs", "1"]),
                      ("two", ["--jobs", "2"])]:
        directory = tmp_path / name
        printed = run_cli("decode", "-o", str(directory), "--json", *how, *sources)
        outputs[name] = (printed.replace(str(directory).encode(), b"DIR"), tree(directory))
    assert outputs["dask"] == outputs["one"] == outputs["two"]
    assert len(outputs["dask"][1]) >= 12 + 121 + 5
