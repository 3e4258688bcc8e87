"""Where `mimekit serve` puts what it accepts, and how a message becomes durable there.

Routing (`Mailboxes.route`): in catch-all mode (no domains) every recipient's mail goes into
the root Maildir, one copy however many recipients. With domains, a recipient of one of them
has the Maildir root/<name>/, created on first delivery, where <name> is the local part,
lower-cased, or the users-file name it matched (a full address when the file names
addresses); postmaster (RFC 5321 §4.5.1) is always accepted. Mail for other domains is
relayed through the queue when a relay is configured and the client logged in, else refused.

Delivery (`Mailboxes.begin`): the Received field (RFC 5321 §4.4) and then the data are
written into ONE file in the tmp/ of the first recipient's Maildir (Maildir.begin: the one
tmp-write-fsync-rename path of the stores); the commit hard-links that tmp file into every
other recipient's tmp/ (from tmp/, which a POP3 session cannot touch: the first recipient's
new/ copy may be retrieved and deleted the moment it appears), renames each into its new/,
fsyncs each directory, spools the relay copy, and only then returns, so that the 250 reply
comes after the message is on disk. A failure leaves nothing in any new/.

POP3 (`maildrop`, `lock_maildrop`): what a user reads, and an flock that keeps a second
session (of this process or another) out of it while the first may delete.
"""

import errno
import fcntl
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

from mimekit.errors import DataError, IOFailure, MimekitError, TempFailure
from mimekit.headers.addresses import smtp_mailbox_problem
from mimekit.headers.dates import format_date
from mimekit.headers.folding import fold_pieces
from mimekit.queue.store import Queue, default_queue_directory
from mimekit.serve.config import ServeConfig
from mimekit.stores.maildir import Maildir, MaildirDelivery
from mimekit.streams.files import CHUNK_SIZE
from mimekit.transport.smtp.client import OutgoingMessage
from mimekit.transport.smtp.data import scan_message

POSTMASTER = "postmaster"
MAX_LOCAL_PART = 64              # RFC 5321 §4.5.3.1.1
MAX_FILE_NAME = 255              # NAME_MAX: a users-file name that is an address fits
MAX_HELO = 255                   # RFC 5321 §4.5.3.1.2: the longest domain
LOCK_NAME = ".mimekit-pop3.lock"  # a dot file in the Maildir's top: no Maildir reader lists it
INCOMING = "incoming"            # in the queue directory: a Maildir whose tmp/ holds relay-only messages
OPEN_MAILDIRS = 1000             # Maildirs kept open (their tmp/ swept once): with --domain and no users file, any
                                 # local part is a mailbox, so the ones a sender makes up must not pile up here
_HELO_CHARACTERS = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")   # a domain or an address literal
_NO_STORAGE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Refusal:
    """An SMTP reply refusing something: code, enhanced status code (RFC 3463), text."""

    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


INSUFFICIENT_STORAGE = Refusal(452, "4.3.1", "insufficient system storage")
LOCAL_ERROR = Refusal(451, "4.3.0", "local error in processing")
RELAYING_DENIED = Refusal(550, "5.7.1", "relaying denied")
NO_SUCH_USER = Refusal(550, "5.1.1", "no such user here")
BAD_MAILBOX_NAME = Refusal(550, "5.1.3", "no mailbox can have that name here")
BAD_ADDRESS = Refusal(553, "5.1.3", "bad recipient address syntax")


@dataclass(frozen=True)
class Route:
    """Where one accepted recipient's copy goes: a Maildir's path, or the relay."""

    address: str
    maildir: str | None = None
    relay: bool = False


@dataclass(frozen=True)
class Trace:
    """What the Received field says about the session (RFC 5321 §4.4): the client's EHLO
    name, its address, the protocol (RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA) and the
    TLS version and cipher (ServerSession.tls_description). Never the login name: with_protocol
    says a login happened, and the session's log line says who."""

    helo: str
    peer_ip: str
    with_protocol: str = "ESMTP"
    tls: str | None = None


class DeliveryError(TempFailure):
    """A delivery that could not be made durable; `refusal` is the reply the client gets
    (no path or system detail goes to it; the message, for the log, has them)."""

    def __init__(self, refusal: Refusal, detail: str):
        super().__init__(detail)
        self.refusal = refusal
        self.reply_code = refusal.code


def delivery_error(error: BaseException) -> DeliveryError:
    """The DeliveryError for a failed write, rename, link or spool: 452 4.3.1 when the disk
    or the quota is full (the client will retry later), 451 4.3.0 otherwise."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__
    full = isinstance(cause, OSError) and cause.errno in _NO_STORAGE
    return DeliveryError(INSUFFICIENT_STORAGE if full else LOCAL_ERROR, str(error))


def safe_mailbox_name(name: str) -> bool:
    """Whether `name` can be a directory under the root as it is: one path component, not
    hidden (nor . or ..), no NUL, a file name's length at most."""
    return 0 < len(name.encode("utf-8", "surrogateescape")) <= MAX_FILE_NAME and "/" not in name \
        and "\0" not in name and not name.startswith(".")


def address_literal(ip: str) -> str:
    """An IP address as RFC 5321 §4.1.3 writes it: [192.0.2.1], [IPv6:2001:db8::1]."""
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


def received_field(trace: Trace, hostname: str, queue_id: str, recipients: list[str],
                   when=None) -> bytes:
    """The Received field (RFC 5321 §4.4), folded under 78 columns, CRLF line endings:
    `from HELO ([ip]) by HOST with PROTO (TLS) id ID for <rcpt>; DATE`. The client's EHLO
    name is its own claim: only the characters of a domain or an address literal are kept
    (others become '?'), so it can neither break the field nor pose as a comment. There is
    no reverse lookup, so the comment holds the address alone. "for" names the recipient
    only when there is one (several would tell each recipient about the others)."""
    peer = address_literal(trace.peer_ip)
    helo = _HELO_CHARACTERS.sub("?", trace.helo[:MAX_HELO]) or peer
    with_clause = f"with {_HELO_CHARACTERS.sub('?', trace.with_protocol)}"
    if trace.tls:
        with_clause += f" ({_printable_comment(trace.tls)})"
    pieces = [f"from {helo} ({peer})", f"by {_HELO_CHARACTERS.sub('?', hostname[:MAX_HELO])}", with_clause,
              f"id {queue_id}"]
    if len(recipients) == 1:
        pieces.append(f"for <{recipients[0]}>")
    pieces[-1] += ";"
    pieces.append(format_date(when))
    return fold_pieces("Received", pieces)


def return_path_field(sender: str) -> bytes:
    """The Return-Path field the final delivery adds (RFC 5321 §4.4): where bounces go,
    `<>` for the null sender. Only stored copies get it; a relayed copy must not carry one."""
    return f"Return-Path: <{sender}>\r\n".encode("utf-8")


def _printable_comment(text: str) -> str:
    """Text that stays inside a comment: printable ASCII without parentheses or backslash."""
    return re.sub(r"[^ -'*-\[\]-~]", "?", text)


def queue_id(unique_name: str) -> str:
    """What the 250 reply and the log call a message: the distinctive middle of its Maildir
    unique name ("M123456P789Q0R1a2b3c4d" of "1700000000.M123456P789Q0R1a2b3c4d.host"),
    short and printable, and found with `ls new/ | grep ID`."""
    parts = unique_name.split(".", 2)
    return parts[1] if len(parts) == 3 else unique_name


class Mailboxes:
    """The server's mail store: routing, delivery, POP3 maildrops. Built once per server."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self._maildirs: OrderedDict[str, Maildir] = OrderedDict()   # the OPEN_MAILDIRS used last
        self._maildirs_lock = threading.Lock()   # begin() runs in the sessions' threads

    # routing ------------------------------------------------------------------------------

    def route(self, address: str, authenticated_user: str | None = None) -> Route | Refusal:
        """Where mail for `address` (a RCPT TO addr-spec) goes, or why it is refused."""
        local, at, domain = address.rpartition("@")
        if not at:
            # RFC 5321 §4.1.1.3: RCPT TO:<Postmaster> without a domain must be accepted
            return self._local(address, POSTMASTER) if address.lower() == POSTMASTER else BAD_ADDRESS
        if smtp_mailbox_problem(address):
            return BAD_ADDRESS
        if self.config.catch_all:
            return Route(address, self.config.root)
        domain = domain.lower()
        if domain not in self.config.domains:
            if self.config.relay is not None and authenticated_user:
                return Route(address, relay=True)
            return RELAYING_DENIED
        local = local.lower()
        if local == POSTMASTER:
            return self._local(address, POSTMASTER)
        if len(local.encode("utf-8")) > MAX_LOCAL_PART or not safe_mailbox_name(local):
            return BAD_MAILBOX_NAME
        users = self.config.users
        if users is None:
            return self._local(address, local)
        for name in (local, f"{local}@{domain}"):
            if name in users:
                return self._local(address, name) if safe_mailbox_name(name) else BAD_MAILBOX_NAME
        return NO_SUCH_USER

    def _local(self, address: str, name: str) -> Route:
        root = self.config.root
        return Route(address, root if self.config.catch_all else os.path.join(root, name))

    # delivery -----------------------------------------------------------------------------

    def begin(self, sender: str, routes: list[Route], trace: Trace) -> "Delivery":
        """Start delivering one message to `routes` (what route() accepted): the Received
        field is written, the session write()s the data, then commit()s or abort()s.
        DeliveryError when even that cannot be done (a full disk)."""
        if not routes:
            raise DataError("a delivery needs at least one recipient")
        paths = list(dict.fromkeys(route.maildir for route in routes if route.maildir))
        relayed = list(dict.fromkeys(route.address for route in routes if route.relay))
        try:
            maildirs = [self._maildir(path) for path in paths]
            if relayed:
                queue_dir = self.config.queue_dir or default_queue_directory()
                first = (maildirs[0] if maildirs else self._maildir(os.path.join(queue_dir, INCOMING))).begin()
            else:
                queue_dir, first = None, maildirs[0].begin()
        except MimekitError as exc:
            raise delivery_error(exc) from exc
        return_path = return_path_field(sender) if maildirs else b""
        delivery = Delivery(first, maildirs[1:], bool(maildirs), sender, relayed, queue_dir, self.config,
                            relay_from=len(return_path) - 1 if return_path else 0)   # stored with LF alone
        try:
            delivery.write(return_path + received_field(trace, self.config.hostname, delivery.id,
                                                        list(dict.fromkeys(route.address for route in routes))))
        except BaseException:
            delivery.abort()
            raise
        return delivery

    def _maildir(self, path: str) -> Maildir:
        with self._maildirs_lock:
            maildir = self._maildirs.pop(path, None)
        if maildir is None or not os.path.isdir(os.path.join(path, "tmp")):   # removed by hand meanwhile
            maildir = Maildir(path)
        with self._maildirs_lock:
            self._maildirs[path] = maildir
            while len(self._maildirs) > OPEN_MAILDIRS:
                self._maildirs.popitem(last=False)
        return maildir

    # POP3 ---------------------------------------------------------------------------------

    def maildrop(self, user: str) -> Maildir:
        """The Maildir the POP3 user `user` (a users-file name) reads: the root in catch-all
        mode, else root/<user, lower-cased> (created empty if no mail came yet)."""
        if self.config.catch_all:
            return Maildir(self.config.root)
        name = user.lower()
        if not safe_mailbox_name(name):
            raise DataError(f"{user!r} cannot name a mailbox directory")
        return Maildir(os.path.join(self.config.root, name))

    def lock_maildrop(self, user: str) -> "MaildropLock | None":
        """Hold `user`'s maildrop for one POP3 session (RFC 1939 §8: the maildrop is locked
        from PASS to QUIT); None when another session, of this process or another, holds it.
        An flock, released by the kernel when the holder dies."""
        path = os.path.join(self.maildrop(user).path, LOCK_NAME)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise IOFailure(f"{path}: cannot open the lock: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return MaildropLock(fd)


class MaildropLock:
    """A held maildrop lock: release() (or leave the with block) gives it back."""

    def __init__(self, fd: int):
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "MaildropLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


class Delivery:
    """One message on its way to its recipients (see Mailboxes.begin). write() takes the data
    as it arrives (CRLF, unstuffed); commit() blocks on the disk (run it in a thread);
    abort() is safe at any time, twice, or after a failed commit."""

    def __init__(self, file: MaildirDelivery, other_maildirs: list[Maildir], local: bool, sender: str,
                 relayed: list[str], queue_dir: str | None, config: ServeConfig, relay_from: int = 0):
        self._file = file
        self._relay_from = relay_from  # the relay copy starts after the Return-Path line
        self._other_maildirs = other_maildirs
        self._local = local            # False: `file` is a relay-only message in the queue's incoming/tmp
        self._sender = sender
        self._relayed = relayed
        self._queue_dir = queue_dir
        self._config = config
        self.id = queue_id(file.name)
        self.paths: list[str] = []     # where commit() put the local copies

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except MimekitError as exc:
            raise delivery_error(exc) from exc

    def commit(self) -> None:
        """Durable in every recipient's Maildir and in the queue for the relayed ones, or
        DeliveryError. Returns only when all of it is on disk."""
        try:
            if self._local:
                self.paths = self._file.commit_with_copies(self._other_maildirs)
            else:
                self._file.finish()
            if self._relayed:
                self._spool()
        except MimekitError as exc:
            raise delivery_error(exc) from exc
        finally:
            self._file.close()

    def _spool(self) -> None:
        """The relay copy into the queue, read from the file written (through its open
        descriptor: a POP3 client may already have taken the local copy's name away)."""
        fd = self._file.file.fileno()

        def chunks() -> Iterator[bytes]:
            offset = self._relay_from
            while data := os.pread(fd, CHUNK_SIZE, offset):
                offset += len(data)
                yield data

        message = OutgoingMessage(f"smtp {self.id}", self._sender, tuple(self._relayed), scan_message(chunks()),
                                  chunks)
        with Queue(self._queue_dir) as queue:
            queue.spool(message, self._config.relay)

    def abort(self) -> None:
        self._file.abort()
