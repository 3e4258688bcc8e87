"""`decode --all-readings` recovers every file hidden behind a MIME trick, under the label of the
trick, and adds nothing to well-formed mail (issue 11). The messages: fixtures/evasion.py.

All messages of a kind go through one `mimekit decode DIR -o OUT --json` (a folder and a
JSON line per message), so about 130 messages cost one process, not 130.
"""

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fixtures"))

from evasion import TRICK_CLASSES, EvasionMessage, clean_messages, evasion_messages  # noqa: E402

EVASIONS = evasion_messages()
CLEAN = clean_messages()
DEFAULT_READING = "(default reading: no reading key)"

# Every label of issue 11 but cte-first-header: the default reading takes the first of
# repeated Content-Transfer-Encoding fields, so that reading never recovers anything new
# (cte-repeated-first-wins checks the default does).
LABELS = {
    "cte-last-header", "cte-substring", "cte-cleaned", "cte-misspelt", "cte-uuencode", "cte-gzip64", "cte-yenc",
    "cte-binhex", "uuencode-in-body", "yenc-in-body", "binhex-in-body", "begin-base64", "header-double-colon",
    "header-no-colon-line", "header-bare-cr", "header-in-continuation", "header-after-junk",
    "content-type-last-header", "boundary-last-param", "boundary-param-variant", "boundary-rfc2231",
    "boundary-encoded-word", "multipart-type-variant", "boundary-inferred", "after-close-delimiter",
    "base64-per-line", "base64-stop-at-padding", "base64-line-prefix", "qp-invalid-dropped", "qp-invalid-kept", "tnef",
}


def decoded(messages: list[EvasionMessage], workdir: Path, *options: str) -> dict[str, dict]:
    """Each message's `decode -o --json` record (with "directory", where its files went), by name."""
    source = workdir / "messages"
    source.mkdir(parents=True, exist_ok=True)
    for number, case in enumerate(messages):
        (source / f"{number:04d}.eml").write_bytes(case.message)
    out = workdir / "out"
    process = subprocess.run([sys.executable, "-m", "mimekit_cli", "decode", *options, "--json", "--jobs", "1",
                              "-q", str(source), "-o", str(out)], capture_output=True)
    assert process.returncode == 0, process.stderr.decode(errors="replace")
    records = {Path(record["source"]).name: record for record in map(json.loads, process.stdout.splitlines())}
    return {case.name: records[f"{number:04d}.eml"] for number, case in enumerate(messages)}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def written_files(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `directory`."""
    return {str(path.relative_to(directory)): sha256(path.read_bytes())
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def all_readings(tmp_path_factory) -> dict[str, dict]:
    return decoded(EVASIONS, tmp_path_factory.mktemp("all-readings"), "--all-readings")


def test_every_label_has_three_messages_and_every_class_is_known():
    counts = Counter(case.reading for case in EVASIONS)
    assert {label: counts[label] for label in LABELS if counts[label] < 3} == {}
    assert set(counts) - {None} == LABELS
    assert {case.trick_class for case in EVASIONS} == set(TRICK_CLASSES)
    assert len({case.name for case in EVASIONS + CLEAN}) == len(EVASIONS + CLEAN)
    assert len({sha256(case.payload) for case in EVASIONS}) == len(EVASIONS)


def test_the_default_reading_misses_exactly_the_labelled_payloads(tmp_path):
    """The tricks are real: without --all-readings, a labelled payload is not found (and
    one expected from the default reading is)."""
    records = decoded(EVASIONS, tmp_path)
    wrong = {case.name: ("missed" if case.reading is None else "already found")
             for case in EVASIONS
             if (case.reading is None) != any(entry["sha256"] == sha256(case.payload)
                                              for entry in records[case.name]["parts"])}
    assert wrong == {}


@pytest.mark.parametrize("case", EVASIONS, ids=[case.name for case in EVASIONS])
def test_all_readings_recovers_the_payload_under_its_label(case, all_readings):
    record = all_readings[case.name]
    assert "error" not in record
    entries = [entry for entry in record["parts"] if entry["sha256"] == sha256(case.payload)]
    found = [entry.get("reading", DEFAULT_READING) for entry in entries]
    others = [(entry["id"], entry.get("reading", DEFAULT_READING), entry["content_type"]) for entry in record["parts"]]
    assert found == [case.reading or DEFAULT_READING], f"payload found as {found}; every entry: {others}"
    written = Path(record["directory"]) / entries[0]["written_name"]
    assert written.read_bytes() == case.payload
    assert entries[0]["size"] == len(case.payload)


@pytest.fixture(scope="module")
def clean_outputs(tmp_path_factory) -> tuple[dict[str, dict], dict[str, dict]]:
    return (decoded(CLEAN, tmp_path_factory.mktemp("clean-default")),
            decoded(CLEAN, tmp_path_factory.mktemp("clean-all-readings"), "--all-readings"))


@pytest.mark.parametrize("case", CLEAN, ids=[case.name for case in CLEAN])
def test_all_readings_adds_nothing_to_well_formed_mail(case, clean_outputs):
    default, alternatives = (outputs[case.name] for outputs in clean_outputs)
    default_directory, alternatives_directory = (Path(record.pop("directory")) for record in (default, alternatives))
    assert default.pop("source").endswith(alternatives.pop("source")[-len("0000.eml"):])
    assert alternatives == default
    assert written_files(alternatives_directory) == written_files(default_directory)
    assert not any("reading" in entry for entry in alternatives["parts"])
    if case.payload:
        assert sha256(case.payload) in {entry["sha256"] for entry in default["parts"]}
    assert os.listdir(default_directory)
