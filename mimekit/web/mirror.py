"""IMAP sources of `mimekit web`, read through a local mirror.

The page lists and searches through the header index, which reads Maildirs; an IMAP
account is therefore mirrored, every folder of it, into a Maildir++ tree in a cache
directory, by mimekit's own fetch (mimekit.fetch.run): folders opened with EXAMINE, never
a flag or a deletion sent upstream, and incremental, as `fetch --new` is, through the
fetch state kept beside the tree. The web then reads `maildir:TREE` like any other source,
and `Mirror.sync()`, called every few seconds, brings new mail in so that live updates
show it.

Layout: CACHE_ROOT/<sha256 of the URL>/USER@HOST/ is the Maildir (INBOX), each other
folder a Maildir++ subfolder ("Archive/2024" -> .Archive.2024), and
CACHE_ROOT/<sha256>/state holds the fetch state. A URL that names a folder mirrors that
folder alone, into the top Maildir.

What the mirror does not follow: flags changed upstream after a message was fetched, and
messages deleted upstream (the mirror keeps them); folders created upstream appear in the
tree at the next sync, in the page once `mimekit web` is started again.
"""

import functools
import hashlib
import os
import re
import threading
from dataclasses import dataclass, replace
from typing import Callable

from mimekit.errors import MimekitError
from mimekit.fetch.run import FetchOptions, fetch
from mimekit.fetch.sinks import MaildirSink
from mimekit.read.safe_names import sanitize_filename
from mimekit.stores.maildir import Maildir
from mimekit.transport.connection import DEFAULT_TIMEOUT
from mimekit.transport.imap.client import list_folders
from mimekit.transport.secrets import resolve_password, resolve_token
from mimekit.transport.urls import ServerURL, parse_url

IMAP_SCHEMES = {"imap", "imaps", "imap+plain"}
INBOX = "INBOX"
UNSELECTABLE = {"\\noselect", "\\nonexistent"}   # LIST flags of a name that holds no messages (RFC 3501, 5258)
_UNSAFE_IN_SEGMENT = re.compile(r"[./\x00-\x1f\x7f]")   # "." is Maildir++'s separator, "/" the file system's


@dataclass(frozen=True)
class MirroredAccount:
    url: ServerURL
    maildir: str          # the top of its Maildir++ tree
    state_directory: str  # the fetch state of its folders


class Mirror:
    """The mirrors of a run's IMAP sources. `sync()` may be called from any thread; one
    sync at a time."""

    def __init__(self, accounts: list[MirroredAccount], password: Callable[[ServerURL], Callable[[], str]],
                 token: Callable[[], str] | None, cafile: str | None, timeout: float):
        self.accounts = accounts
        self._password = password
        self._token = token
        self._cafile = cafile
        self._timeout = timeout
        self._syncing = threading.Lock()

    def sync(self) -> int:
        """Fetch what is new in every folder of every account; the number of messages
        fetched. Every account is tried; then the first failure (connection, login) is
        raised."""
        fetched, failures = 0, []
        with self._syncing:
            for account in self.accounts:
                try:
                    fetched += self._sync_account(account)
                except MimekitError as exc:
                    failures.append(exc)
        if failures:
            raise failures[0]
        return fetched

    def _sync_account(self, account: MirroredAccount) -> int:
        password = self._password(account.url)
        fetched = 0
        for folder, maildir in self._folders(account, password):
            report = fetch(replace(account.url, path=folder), MaildirSink(Maildir(maildir)),
                           FetchOptions(new=True), password=password, token=self._token, cafile=self._cafile,
                           timeout=self._timeout, state_directory=account.state_directory)
            fetched += len(report.fetched)
        return fetched

    def _folders(self, account: MirroredAccount, password: Callable[[], str]) -> list[tuple[str, str]]:
        """(IMAP folder, its Maildir) of each folder to mirror: the URL's, else all that
        can hold messages."""
        if account.url.path:
            return [(account.url.path, account.maildir)]
        entries = list_folders(account.url, password, self._cafile, self._timeout, self._token)
        found = []
        for entry in entries:
            if not UNSELECTABLE & {flag.lower() for flag in entry.flags}:
                subfolder = maildir_folder(entry.name, entry.delimiter)
                found.append((entry.name, os.path.join(account.maildir, subfolder) if subfolder else account.maildir))
        return found


def mirror_sources(sources: tuple[str, ...], cache_root: str, *, password_command: str | None = None,
                   token_command: str | None = None, cafile: str | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> tuple[tuple[str, ...], Mirror | None]:
    """`sources` with each imap://, imaps:// or imap+plain:// URL replaced by the Maildir
    that mirrors it, brought up to date first; and the Mirror that syncs them again (None
    when there is no IMAP source). The password is looked up as fetch looks it up
    (password_command, MIMEKIT_PASSWORD, ~/.netrc, the config file), once TLS is up, and
    kept for the next syncs; `token_command` logs in with OAuth2 instead."""
    replaced, accounts = [], []
    for source in sources:
        if source.partition(":")[0].lower() not in IMAP_SCHEMES:
            replaced.append(source)
            continue
        account = mirrored_account(parse_url(source, IMAP_SCHEMES), cache_root)
        accounts.append(account)
        replaced.append(f"maildir:{account.maildir}")
    if not accounts:
        return tuple(sources), None
    token = functools.partial(resolve_token, token_command) if token_command else None
    mirror = Mirror(accounts, _password_lookup(password_command), token, cafile, timeout)
    mirror.sync()
    return tuple(replaced), mirror


def mirrored_account(url: ServerURL, cache_root: str) -> MirroredAccount:
    """Where `url` is mirrored: a directory named by the hash of the URL (which never holds
    a password: parse_url refuses one), the Maildir in it named USER@HOST for the page."""
    identity = f"{url.scheme}://{url.user or ''}@{url.host}:{url.port}/{url.path}"
    directory = os.path.join(cache_root, hashlib.sha256(identity.encode("utf-8")).hexdigest())
    label = f"{url.user}@{url.host}" if url.user else url.host
    name = sanitize_filename(f"{label} {url.path}" if url.path else label)[0] or "mail"
    return MirroredAccount(url, os.path.join(directory, name), os.path.join(directory, "state"))


def _password_lookup(password_command: str | None) -> Callable[[ServerURL], Callable[[], str]]:
    """For each URL, the look-up fetch calls once TLS is up; a password found is kept, so
    that a sync every few seconds does not run the password command every time."""
    @functools.cache
    def password(user: str, host: str) -> str:
        return resolve_password(user, host, password_command)
    return lambda url: functools.partial(password, url.user, url.host)


def maildir_folder(name: str, delimiter: str | None) -> str:
    """The Maildir++ subfolder of IMAP folder `name`: "" for INBOX, else "." and the name's
    levels joined by "." ("Archive/2024" -> ".Archive.2024"), each level without a "." or
    "/" of its own (made "_"), so that no two folders share a directory."""
    if name.upper() == INBOX:
        return ""
    levels = name.split(delimiter) if delimiter else [name]
    return "." + ".".join(_UNSAFE_IN_SEGMENT.sub("_", level) or "_" for level in levels)
