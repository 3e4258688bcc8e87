"""`fetch --new --delete` into a Maildir on a full disk, with the directory fsync'd once per
batch: the messages saved before the disk filled are recorded when the run ends (after the
fsync of their directories), nothing is deleted at the source, and once there is room the
next run fetches the rest, each message in the Maildir once."""

import json
import os
import random
import subprocess
import sys
from collections import Counter

from helpers import mounted_tmpfs

from mimekit.stores import Maildir

COUNT = 20


def messages() -> list[bytes]:
    return [b"Subject: %d\nMessage-ID: <%d.full@example.test>\n\n" % (n, n)
            + random.Random(n).randbytes(45_000).hex().encode() + b"\n" for n in range(COUNT)]


def stored(out) -> Counter:
    return Counter(p.read_bytes() for sub in ("new", "cur") for p in (out / sub).iterdir())


def test_a_full_disk_records_what_was_saved_and_deletes_nothing(tmp_path):
    sent = messages()
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
        assert 0 < sum(saved.values()) < COUNT and set(saved) <= set(sent) and max(saved.values()) == 1
        assert len(source.keys()) == COUNT, "nothing deleted after a failure"
        assert os.listdir(out / "tmp") == [], "no partial message left"

        subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        second = subprocess.run(args, env=env, capture_output=True, timeout=120)
        assert second.returncode == 0, second.stderr.decode()
        report = json.loads(second.stdout)
        assert report["skipped"] == sum(saved.values()) and report["recovered"] == 0, "recorded, not left pending"
        assert stored(out) == Counter(sent) and source.keys() == []
