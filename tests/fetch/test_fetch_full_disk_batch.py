"""`fetch --new --delete` into a Maildir on a full disk, with the directory fsync'd once per
batch and messages committed on the sink's threads: the run fails with EX_IOERR, nothing is
deleted at the source, the batch of the failure is left pending (a message whose commit
failed after `add` returned must never be recorded), and once there is room the next run
adopts what was saved, byte for byte, and fetches the rest, each message in the Maildir
once."""

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from helpers import mounted_tmpfs

from mimekit.stores import Maildir


def messages(count: int) -> list[bytes]:
    return [b"Subject: %d\nMessage-ID: <%d.full@example.test>\n\n" % (n, n)
            + random.Random(n).randbytes(45_000).hex().encode() + b"\n" for n in range(count)]


def stored(out) -> Counter:
    return Counter(p.read_bytes() for sub in ("new", "cur") for p in (out / sub).iterdir())


# About 11 messages fit on the small disk. With 20 the failure is first told at the end
# of the pass (sync); with 40, by an add(), once MaildirSink.MAX_COMMITTING are queued.
@pytest.mark.parametrize("count", [20, 40])
def test_a_full_disk_deletes_nothing_and_the_next_run_adopts_what_was_saved(tmp_path, count):
    sent = messages(count)
    source = Maildir(str(tmp_path / "source"))
    for data in sent:
        source.add([data])
    with mounted_tmpfs(tmp_path / "small", "1m") as disk:
        out = disk / "out"
        args = [sys.executable, "-m", "mimekit_cli", "fetch", f"maildir:{tmp_path / 'source'}", "--new", "--delete",
                "-o", f"maildir:{out}", "--json"]
        env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
        first = subprocess.run(args, env=env, capture_output=True, timeout=120)
        assert first.returncode == 74, first.stderr.decode()
        saved = stored(out)
        reported = json.loads(first.stdout)["fetched"]
        assert len(reported) == sum(saved.values()), "the report names what was saved, no more"
        assert all(os.path.exists(fetched["path"]) for fetched in reported)
        assert 0 < sum(saved.values()) < count and set(saved) <= set(sent) and max(saved.values()) == 1
        assert len(source.keys()) == count, "nothing deleted after a failure"
        assert os.listdir(out / "tmp") == [], "no partial message left"

        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        second = subprocess.run(args, env=env, capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        report = json.loads(second.stdout)
        assert report["skipped"] == report["recovered"] == sum(saved.values()), "left pending, then adopted"
        assert stored(out) == Counter(sent) and source.keys() == []
