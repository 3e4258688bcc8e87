"""The users file of `mimekit serve`: who may log in (SMTP AUTH, POP3), and in a
domain's mode which local parts have a mailbox. Password hashes only, never a password.

The format, one user a line:

    NAME:$scrypt$ln=15,r=8,p=1$SALT$HASH

NAME is a local part or an address (printable ASCII without ":", "/" or white space, not
starting with ".", kept in lower case): it names the user's mailbox directory under the
root, so it can neither leave the root nor hide there. The hash says how it was made: hashlib.scrypt with N = 2**ln, r and p, a
16-byte random SALT, a 32-byte HASH, both base64 without padding. The parameters live in
each line, so new hashes can be made stronger later and old lines still verify. Empty
lines and lines starting with "#" are ignored, and kept when the file is rewritten.

The file is rewritten whole (add_user, remove_user) under a temporary name, fsync'd and
renamed into place (mimekit.streams.files.atomic_output), mode 0600, while an exclusive
flock on it keeps two writers from losing each other's change. A file that group or others
can read is still accepted (it holds hashes, not passwords): `readable_by_others` tells the
caller, which may warn.
"""

import base64
import fcntl
import hashlib
import hmac
import os
import re
import secrets
import stat
from dataclasses import dataclass, replace
from operator import attrgetter

from mimekit.errors import ConfigError, NoInputError, NoUserError, UsageError
from mimekit.streams.files import atomic_output

SCHEME = "scrypt"
DEFAULT_LOG2_N = 15          # N = 32768, r = 8: 32 MiB and about 0.1 s a hash on a 2020s core
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MAX_MEMORY = 2**30           # scrypt's 128 * N * r bytes: a hand-edited line may not ask for more
MAX_P = 16
MAX_NAME_LENGTH = 254        # the longest address RFC 5321 lets through a path

_NAME = re.compile(r"(?!\.)[!-.0-9;-~]{1,%d}" % MAX_NAME_LENGTH)   # printable ASCII but ":" and "/"; no space
_HASH = re.compile(r"\$scrypt\$ln=(?P<ln>[0-9]{1,2}),r=(?P<r>[0-9]{1,3}),p=(?P<p>[0-9]{1,2})"
                   r"\$(?P<salt>[A-Za-z0-9+/]{11,})\$(?P<hash>[A-Za-z0-9+/]{22,})")


@dataclass(frozen=True)
class PasswordHash:
    log2_n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def make(cls, password: str, log2_n: int = DEFAULT_LOG2_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> "PasswordHash":
        salt = secrets.token_bytes(SALT_BYTES)
        return cls(log2_n, r, p, salt, _scrypt(password, salt, log2_n, r, p, HASH_BYTES))

    @classmethod
    def parse(cls, text: str) -> "PasswordHash | None":
        """The hash `text` writes down, or None when it is not one we can check."""
        match = _HASH.fullmatch(text)
        if not match:
            return None
        log2_n, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
        if not (1 <= log2_n and 1 <= r and 1 <= p <= MAX_P and _memory(log2_n, r) <= MAX_MEMORY):
            return None
        try:
            salt, digest = _unpadded_b64decode(match["salt"]), _unpadded_b64decode(match["hash"])
        except ValueError:
            return None
        return cls(log2_n, r, p, salt, digest)

    def __str__(self) -> str:
        return (f"${SCHEME}$ln={self.log2_n},r={self.r},p={self.p}"
                f"${_unpadded_b64encode(self.salt)}${_unpadded_b64encode(self.digest)}")

    def matches(self, password: str) -> bool:
        computed = _scrypt(password, self.salt, self.log2_n, self.r, self.p, len(self.digest))
        return hmac.compare_digest(computed, self.digest)

    @property
    def cost(self) -> int:
        return _memory(self.log2_n, self.r) * self.p


_DEFAULT_PARAMETERS = PasswordHash(DEFAULT_LOG2_N, DEFAULT_R, DEFAULT_P, b"", b"")


class Users:
    """The users of one file, as loaded: `name in users`, `users.names()`, and
    `users.verify(name, password)`, which is slow on purpose (scrypt): an asyncio caller
    runs it in a thread."""

    def __init__(self, hashes: dict[str, PasswordHash], readable_by_others: bool = False):
        self._hashes = hashes
        self.readable_by_others = readable_by_others
        # An unknown name is checked against this, so that it costs what a known one does:
        # the time of a refusal does not tell which names exist.
        strongest = max(hashes.values(), key=attrgetter("cost"), default=_DEFAULT_PARAMETERS)
        self._dummy = replace(strongest, salt=bytes(SALT_BYTES), digest=bytes(HASH_BYTES))

    @classmethod
    def load(cls, path: str) -> "Users":
        """NoInputError when the file cannot be read, ConfigError (naming the line) when a
        line is not NAME:HASH."""
        try:
            with open(path, "rb") as file:
                mode = os.fstat(file.fileno()).st_mode
                data = file.read()
        except OSError as exc:
            raise NoInputError(f"{path}: {exc.strerror or exc}") from exc
        return cls(_parse(path, data), readable_by_others=bool(mode & (stat.S_IRGRP | stat.S_IROTH)))

    def __contains__(self, name: str) -> bool:
        return _key(name) in self._hashes

    def __len__(self) -> int:
        return len(self._hashes)

    def names(self) -> list[str]:
        return list(self._hashes)

    def verify(self, name: str, password: str) -> bool:
        """True when `password` is `name`'s (compared in constant time); an unknown name
        takes as long as a known one and is False."""
        known = self._hashes.get(_key(name))
        matched = (known or self._dummy).matches(password)
        return matched and known is not None


def check_name(name: str) -> str:
    """`name` in the form the file keeps (lower case); UsageError when it cannot be one."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"{name!r}: a user name is printable ASCII without ':', '/' or white space, "
                         f"not starting with '.' (it names a mailbox directory), 1 to {MAX_NAME_LENGTH} characters")
    return name.lower()


def add_user(path: str, name: str, password: str) -> bool:
    """Add `name` with a new hash of `password`, or replace its hash; True when it replaced
    one. The file is created (mode 0600) when missing."""
    name = check_name(name)
    if not password:
        raise UsageError("an empty password is refused")
    entry = f"{name}:{PasswordHash.make(password)}"
    with _locked(path) as lines:
        replaced = [i for i, line in enumerate(lines) if _name_of(line) == name]
        for index in reversed(replaced):
            del lines[index]
        lines.insert(replaced[0] if replaced else len(lines), entry)
    return bool(replaced)


def remove_user(path: str, name: str) -> None:
    """Remove `name`; NoUserError when the file has no such user."""
    name = check_name(name)
    with _locked(path, create=False) as lines:
        kept = [line for line in lines if _name_of(line) != name]
        if len(kept) == len(lines):
            raise NoUserError(f"{path}: no user {name!r}")
        lines[:] = kept


class _locked:
    """The file's lines, to change in place, written back (atomically, mode 0600) at the end
    of the block unless it raised; an exclusive flock held meanwhile. The lock is on the
    file itself: a writer that got it on a file since replaced by another writer's rename
    opens the new one and waits again, so no change is ever made to a stale copy."""

    def __init__(self, path: str, create: bool = True):
        self.path = path
        self.flags = os.O_RDONLY | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        self.fd = -1

    def __enter__(self) -> list[str]:
        while True:
            try:
                self.fd = os.open(self.path, self.flags, 0o600)
            except OSError as exc:
                raise NoInputError(f"{self.path}: {exc.strerror or exc}") from exc
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(current, os.fstat(self.fd)):
                break
            os.close(self.fd)
        with os.fdopen(os.dup(self.fd), "rb") as file:
            data = file.read()
        _parse(self.path, data)   # a damaged file is reported, not rewritten
        self.lines = [raw.rstrip(b"\r").decode("utf-8", "surrogateescape") for raw in data.split(b"\n")]
        if self.lines[-1] == "":
            self.lines.pop()   # the end of the last line
        return self.lines

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            if exc_type is None:
                with atomic_output(self.path) as output:
                    os.fchmod(output.fileno(), 0o600)
                    output.write("".join(f"{line}\n" for line in self.lines).encode("utf-8", "surrogateescape"))
        finally:
            os.close(self.fd)


def _parse(path: str, data: bytes) -> dict[str, PasswordHash]:
    hashes: dict[str, PasswordHash] = {}
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r")
        if not line.strip() or line.startswith(b"#"):
            continue
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}:{number}: not ASCII (expected NAME:$scrypt$...)") from None
        name, colon, written = text.partition(":")
        password_hash = PasswordHash.parse(written)
        if not colon or not _NAME.fullmatch(name) or password_hash is None:
            raise ConfigError(f"{path}:{number}: expected NAME:$scrypt$ln=N,r=N,p=N$SALT$HASH "
                              "(`mimekit users add` writes such lines)")
        if name.lower() in hashes:
            raise ConfigError(f"{path}:{number}: user {name.lower()!r} is listed twice")
        hashes[name.lower()] = password_hash
    return hashes


def _key(name: str) -> str | None:
    """The file's form of a name a client gave. Names are ASCII: a non-ASCII one is nobody,
    even when str.lower() makes it ASCII (KELVIN SIGN lower-cases to "k")."""
    return name.lower() if name.isascii() else None


def _name_of(line: str) -> str | None:
    if not line.strip() or line.startswith("#"):
        return None
    return line.partition(":")[0].lower()


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int, length: int) -> bytes:
    # OpenSSL refuses more than 32 MiB unless told: the default N = 2**15, r = 8 needs just that
    return hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=salt, n=2**log2_n, r=r, p=p,
                          maxmem=2 * _memory(log2_n, r) + 2**20, dklen=length)


def _memory(log2_n: int, r: int) -> int:
    return 128 * r * 2**log2_n


def _unpadded_b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unpadded_b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
