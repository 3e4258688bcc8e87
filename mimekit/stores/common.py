"""What both stores share: how a message is kept on disk (LF line endings), the flag
letters they understand (Maildir's, which an mbox keeps as Status lines), and the host
name that Maildir unique names and mbox dotlocks carry, and how the PATH of a
"maildir:PATH" or "mbox:PATH" is read."""

import os
import re
from typing import Iterable, Iterator

from mimekit.errors import UsageError
from mimekit.streams.filters import chain
from mimekit.streams.line_endings import LFNormaliser

MAILDIR_FLAGS = set("DFPRST")  # draft, flagged, passed, replied, seen, trashed


def as_stored(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A message's bytes as both stores keep them (and give them back from `open`): LF
    line endings. What a caller compares a stored message with."""
    return chain(chunks, LFNormaliser())


def host_name() -> str:
    """This host's name as Maildir unique names and our dotlocks carry it."""
    import socket   # here, not at the top: reading a store never needs it, and it is slow to import
    return socket.gethostname().replace("/", r"\057").replace(":", r"\072")


def normalised_flags(flags: str) -> str:
    """`flags` sorted and deduplicated; UsageError for a letter neither store knows."""
    unknown = set(flags) - MAILDIR_FLAGS
    if unknown:
        raise UsageError(f"unknown message flags {''.join(sorted(unknown))!r}; "
                         f"known: {''.join(sorted(MAILDIR_FLAGS))}")
    return "".join(sorted(set(flags)))


# $NAME and ${NAME}, as os.path.expandvars finds them (posixpath's pattern)
_VARIABLE = re.compile(r"\$(\w+|\{([^}]*)\})", re.ASCII)


def expand_store_path(spec: str, path: str) -> str:
    """The PATH of a "maildir:PATH" or "mbox:PATH" `spec` with a leading `~`, then `$NAME`
    and `${NAME}`, expanded as a shell would, since none does after the prefix
    (`-o maildir:~/Mail` made a folder named "~"). An unset variable is a UsageError naming
    it, where os.path.expandvars would keep "$NAME" and make a folder of that name. Every
    parser of these specs calls this; a bare path is the caller's and is opened as given."""
    def value(match: re.Match) -> str:
        name = match[2] if match[2] is not None else match[1]
        if name not in os.environ:
            raise UsageError(f"{spec}: ${name} is not set (in a maildir: or mbox: path, ~ and $NAME are expanded)")
        return os.environ[name]
    return _VARIABLE.sub(value, os.path.expanduser(path))
