"""Which folders the web interface shows: a Maildir and its Maildir++ subfolders (".Sent",
".Archive.2024" as Dovecot and Courier keep them, shown "Sent", "Archive/2024"), an mbox
file, a directory of message files. Each folder's id is a hash of what it reads, so ids,
and with them the messages' ids, stay the same from one run to the next."""

import hashlib
import os

from mimekit.errors import NoInputError, UsageError
from mimekit.stores.sources import is_maildir
from mimekit.web.model import Folder

INBOX = "INBOX"


def folder_id(source: str) -> str:
    return hashlib.sha256(os.fsencode(source)).hexdigest()[:12]


def discover_folders(sources: tuple[str, ...], writable: bool = False,
                     owners: dict[str, str] | None = None) -> list[Folder]:
    """The folders of every source, in order: a Maildir first, then its subfolders by name.
    `owners` maps a Maildir path to the user it belongs to (serve --domain). NoInputError
    when a source does not exist; UsageError for a scheme this cannot read."""
    owners = owners or {}
    folders: list[Folder] = []
    single = len(sources) == 1
    for source in sources:
        scheme, colon, rest = source.partition(":")
        kind = scheme.lower() if colon and scheme.lower() in ("maildir", "mbox") else None
        path = os.path.abspath(rest if kind else source)
        try:
            os.stat(path)
        except OSError as exc:      # missing, a symlink loop, a directory on the way not searchable
            raise NoInputError(f"{source}: {_why(exc)}") from None
        if kind is None:
            kind = "maildir" if is_maildir(path) else "files" if os.path.isdir(path) else "mbox"
        if kind == "maildir":
            try:
                folders += _maildir_folders(path, writable, owners.get(path), single)
            except OSError as exc:
                raise NoInputError(f"{source}: cannot list its folders: {_why(exc)}") from None
        elif kind == "mbox":
            if not os.path.isfile(path):
                raise UsageError(f"{source}: not an mbox file")
            folders.append(Folder(folder_id(f"mbox:{path}"), _base_name(path), f"mbox:{path}", "mbox"))
        else:
            folders.append(Folder(folder_id(path), _base_name(path), path, "files"))
    return folders


def _maildir_folders(path: str, writable: bool, owner: str | None, single: bool) -> list[Folder]:
    top = INBOX if single and owner is None else owner or _base_name(path)
    found = [Folder(folder_id(f"maildir:{path}"), top, f"maildir:{path}", "maildir", writable, owner)]
    for entry in sorted(os.scandir(path), key=lambda entry: entry.name):
        if entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir(follow_symlinks=False) \
                and is_maildir(entry.path):
            name = entry.name[1:].replace(".", "/")
            label = name if top == INBOX else f"{top}/{name}"
            found.append(Folder(folder_id(f"maildir:{entry.path}"), label, f"maildir:{entry.path}", "maildir",
                                writable, owner))
    return found


def _why(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _base_name(path: str) -> str:
    return os.path.basename(path.rstrip(os.sep)) or path
