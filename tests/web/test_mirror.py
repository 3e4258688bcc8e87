"""IMAP sources mirrored for the web (mimekit.web.mirror) against the real Dovecot of
tests/servers.py: every folder lands in a Maildir++ tree, a sync brings new mail, and the
server is left exactly as it was (no flag, no deletion)."""

import imaplib
import ssl
import uuid
from pathlib import Path

import pytest

from mimekit.errors import UsageError
from mimekit.web.folders import discover_folders
from mimekit.web.mirror import maildir_folder, mirror_sources

pytestmark = pytest.mark.servers
USER = "alice"


def message(subject: str) -> bytes:
    return (f"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@example.test>\r\nDate: Mon, 1 Jul 2024 10:00:00 +0000\r\n\r\n"
            f"body of {subject}\r\n").encode()


class Upstream:
    """Python's imaplib as a second client: puts mail on the server and looks at it."""

    def __init__(self, servers):
        self.client = imaplib.IMAP4_SSL(servers.host, servers.imaps,
                                        ssl_context=ssl.create_default_context(cafile=str(servers.ca_file)))
        self.client.login(USER, servers.users[USER])

    def append(self, folder: str, data: bytes, flags: str | None = None) -> None:
        status, _ = self.client.append(_quoted(folder), flags, None, data)
        assert status == "OK"

    def state(self, folder: str) -> list[tuple[bytes, bytes]]:
        """(UID, FLAGS) of every message, read with EXAMINE (changes nothing)."""
        status, _ = self.client.select(_quoted(folder), readonly=True)
        assert status == "OK"
        status, data = self.client.uid("FETCH", "1:*", "(FLAGS)")
        return sorted(line for line in data if line)

    def close(self) -> None:
        self.client.logout()


def _quoted(folder: str) -> str:
    return f'"{folder}"'


@pytest.fixture
def upstream(mail_servers):
    mail_servers.clear_mailbox(USER)
    client = Upstream(mail_servers)
    yield client
    client.close()


@pytest.fixture
def password(mail_servers, monkeypatch):
    monkeypatch.setenv("MIMEKIT_PASSWORD", mail_servers.users[USER])


def maildir_messages(path: Path) -> list[Path]:
    return sorted(p for sub in ("new", "cur") for p in (path / sub).iterdir())


def test_every_folder_is_mirrored_and_synced_and_the_server_is_left_alone(mail_servers, upstream, password, tmp_path):
    work = f"Work{uuid.uuid4().hex[:8]}"
    upstream.client.create(_quoted(work))
    upstream.client.create(_quoted(f"{work}.Sub"))
    upstream.append("INBOX", message("inbox one"))
    upstream.append("INBOX", message("inbox two"))
    upstream.append(work, message("work read"), r"(\Seen)")
    upstream.append(f"{work}.Sub", message("deep"))
    before = {folder: upstream.state(folder) for folder in ("INBOX", work)}
    url = f"imaps://{USER}@{mail_servers.host}:{mail_servers.imaps}"
    cache = tmp_path / "cache"

    sources, mirror = mirror_sources((url, f"maildir:{tmp_path / 'local'}"), str(cache),
                                     cafile=str(mail_servers.ca_file))

    assert sources[1] == f"maildir:{tmp_path / 'local'}"             # not IMAP: as given
    assert sources[0].startswith(f"maildir:{cache}/")
    top = Path(sources[0].removeprefix("maildir:"))
    assert top.name == f"{USER}@{mail_servers.host}"
    assert [b"inbox one" in p.read_bytes() or b"inbox two" in p.read_bytes()
            for p in maildir_messages(top)] == [True, True]
    [read] = maildir_messages(top / f".{work}")
    assert b"work read" in read.read_bytes() and read.name.endswith(":2,S")   # the server's \Seen
    [deep] = maildir_messages(top / f".{work}.Sub")
    assert b"body of deep" in deep.read_bytes()
    names = [folder.name for folder in discover_folders((sources[0],))]
    assert names[0] == "INBOX" and work in names and f"{work}/Sub" in names

    upstream.append(work, message("arrived later"))
    assert mirror.sync() == 1
    assert sorted(b"arrived later" in p.read_bytes() for p in maildir_messages(top / f".{work}")) == [False, True]
    assert mirror.sync() == 0                                         # incremental: nothing twice

    after = {folder: upstream.state(folder) for folder in ("INBOX", work)}
    assert after["INBOX"] == before["INBOX"]                          # no \Seen set, nothing expunged
    assert after[work][:1] == before[work] and len(after[work]) == 2
    assert b"\\Seen" not in after[work][1]


def test_a_new_run_on_the_same_cache_fetches_nothing_again(mail_servers, upstream, password, tmp_path):
    upstream.append("INBOX", message("once"))
    url = f"imaps://{USER}@{mail_servers.host}:{mail_servers.imaps}/INBOX"
    first, _ = mirror_sources((url,), str(tmp_path / "cache"), cafile=str(mail_servers.ca_file))
    again, mirror = mirror_sources((url,), str(tmp_path / "cache"), cafile=str(mail_servers.ca_file))
    assert first == again
    top = Path(first[0].removeprefix("maildir:"))
    assert len(maildir_messages(top)) == 1                            # a folder in the URL: that one alone
    assert not [p for p in top.iterdir() if p.name.startswith(".")]
    assert mirror.sync() == 0


def test_the_password_command_runs_once_for_many_syncs(mail_servers, upstream, tmp_path, monkeypatch):
    monkeypatch.delenv("MIMEKIT_PASSWORD", raising=False)
    runs = tmp_path / "runs"
    command = f"echo run >> {runs}; printf '%s\\n' '{mail_servers.users[USER]}'"
    url = f"imaps://{USER}@{mail_servers.host}:{mail_servers.imaps}/INBOX"
    _, mirror = mirror_sources((url,), str(tmp_path / "cache"), password_command=command,
                               cafile=str(mail_servers.ca_file))
    mirror.sync()
    mirror.sync()
    assert runs.read_text() == "run\n"


def test_sources_without_imap_need_no_mirror(tmp_path):
    sources = (f"maildir:{tmp_path}", str(tmp_path / "box.mbox"))
    assert mirror_sources(sources, str(tmp_path / "cache")) == (sources, None)


def test_a_password_in_the_url_is_refused(tmp_path):
    with pytest.raises(UsageError, match="never taken from the command line"):
        mirror_sources(("imaps://alice:secret@127.0.0.1/",), str(tmp_path / "cache"))


@pytest.mark.parametrize("name, delimiter, folder", [
    ("INBOX", "/", ""), ("inbox", ".", ""), ("Sent", "/", ".Sent"), ("Archive/2024", "/", ".Archive.2024"),
    ("Archive.2024", ".", ".Archive.2024"), ("v1.2/notes", "/", ".v1_2.notes"), ("a/b", ".", ".a_b"),
    ("Entwürfe", None, ".Entwürfe"), ("..", "/", ".__")])
def test_folder_names_map_to_maildir_plus_plus(name, delimiter, folder):
    assert maildir_folder(name, delimiter) == folder
