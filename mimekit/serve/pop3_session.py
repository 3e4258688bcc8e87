"""One POP3 connection of `mimekit serve`: the decisions the sans-IO server protocol
(transport/pop3/server.py) leaves to its driver, made against the users and mailboxes.

A login is checked in a thread (scrypt is slow on purpose); a refused one is answered a
second later, so guessing passwords is slow. An accepted one locks the user's maildrop
for the rest of the session (RFC 1939 §8; a second session gets [IN-USE]) and lists it
once: the keys are the Maildir's, and the sizes are counted as the messages are sent,
with CRLF line endings (RFC 1939 §5), by streaming each file, never reading it whole.
A size counted is remembered by the file's identity (path, size, mtime, inode), so the
next login to a large maildrop costs a stat per message, not a read of every byte.
RETR and TOP stream the file in READ_CHUNK pieces, each written and drained before the
next is read, so a message of any size costs bounded memory. Deletions are applied only
at QUIT; a client that goes away without QUIT deletes nothing.
"""

import asyncio
import functools
import os
import time

from mimekit.errors import MimekitError, NoInputError
from mimekit.serve.config import ServeConfig
from mimekit.serve.mailboxes import Mailboxes, MaildropLock
from mimekit.serve.session import FAILED_LOGIN_DELAY, ServerSession, SessionEnded, finished_in_thread, verify_login
from mimekit.stores.maildir import Maildir
from mimekit.streams.line_endings import CRLFNormaliser
from mimekit.transport.pop3.server import (Closing, ConnectionClosed, Login, POP3ServerProtocol, Quit, Retrieve,
                                           StartTLS)

READ_CHUNK = 64 * 1024
SIZE_CHUNK = 1024 * 1024       # counting sizes at login: larger reads, nothing is kept
WIRE_SIZES_KEPT = 100_000      # sizes remembered over all maildrops: about 45 MB when full


async def handle_pop3(config: ServeConfig, mailboxes: Mailboxes, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> str:
    """Serve one POP3 client until it quits, goes away or runs out of time; the text of its
    log line. Client behaviour never raises; cancellation (the server stopping) does."""
    proto = POP3ServerProtocol(config.hostname, tls_available=config.tls is not None,
                               insecure_plaintext_auth=config.insecure_plaintext_auth)
    return await _POP3Session(ServerSession(config, reader, writer, proto, config.pop3_idle_timeout), mailboxes).run()


def wire_size(path: str) -> int:
    """The octets of the stored message at `path` as RETR sends them: with CRLF line
    endings, before dot-stuffing (the size LIST and STAT report)."""
    normaliser, size = CRLFNormaliser(), 0
    with open(path, "rb") as file:
        while chunk := file.read(SIZE_CHUNK):
            size += len(normaliser.feed(chunk))
    return size + len(normaliser.flush())


@functools.lru_cache(maxsize=WIRE_SIZES_KEPT)
def _remembered_wire_size(path: str, size: int, mtime_ns: int, inode: int) -> int:
    """wire_size(path), counted once for each identity of the file (a file replaced or
    rewritten is another key)."""
    return wire_size(path)


def maildrop_listing(maildrop: Maildir) -> list[tuple[str, int]]:
    """(key, size as sent) of the maildrop's messages in delivery order; a message removed
    meanwhile by someone else is left out."""
    listing = []
    for key, path, _ in maildrop.listing():
        try:
            stat = os.stat(path)
            listing.append((key, _remembered_wire_size(path, stat.st_size, stat.st_mtime_ns, stat.st_ino)))
        except FileNotFoundError:
            pass
    return listing


def remove_messages(maildrop: Maildir, keys: tuple[str, ...]) -> None:
    """Remove the messages; one already gone (removed by hand meanwhile) is gone as wanted."""
    try:
        maildrop.remove(*keys)
    except NoInputError:        # remove() looks every key up first: remove the others one by one
        for key in keys:
            try:
                maildrop.remove(key)
            except NoInputError:
                pass


class _POP3Session:
    def __init__(self, session: ServerSession, mailboxes: Mailboxes):
        self.session = session
        self.proto: POP3ServerProtocol = session.proto
        self.mailboxes = mailboxes
        self.users = session.config.users
        self.maildrop: Maildir | None = None
        self.lock: MaildropLock | None = None
        self.retrieved = self.deleted = 0

    async def run(self) -> str:
        started = time.monotonic()
        ending = "closed"
        try:
            while True:
                event = await self.session.next_event()
                if isinstance(event, Closing):
                    ending = event.reason
                    break
                if isinstance(event, ConnectionClosed):
                    ending = "client went away" + (" without QUIT" if self.maildrop is not None else "")
                    break
                if isinstance(event, Quit):
                    await self._update(event.deleted)
                    ending = "quit"
                    break
                await self._handle(event)
        except SessionEnded as exc:
            ending = str(exc)
        finally:
            try:
                await self.session.close()
            finally:
                if self.lock is not None:
                    self.lock.release()
        return self._log_text(ending, time.monotonic() - started)

    def _log_text(self, ending: str, seconds: float) -> str:
        proto = self.proto
        facts = [f"user={proto.user or '-'}", f"tls={'yes' if self.session.tls else 'no'}"]
        counts = (f"{self.retrieved} retrieved, {self.deleted} deleted, {proto.octets_sent} bytes, "
                  f"{seconds:.2f} s")
        if proto.login_failures:
            counts += f", {proto.login_failures} failed logins"
        return "; ".join([" ".join(facts), counts, *self.session.facts, ending])

    async def _handle(self, event) -> None:
        match event:
            case Login():
                await self._login(event)
            case StartTLS():
                await self.session.start_tls()
            case Retrieve():
                await self._retrieve(event)

    async def _login(self, login: Login) -> None:
        proto = self.proto
        if self.users is None or not await verify_login(self.users, login.user, login.password):
            await asyncio.sleep(FAILED_LOGIN_DELAY)
            proto.login_failed()
            return
        # In a thread: the first lock of a maildrop makes its directories, with fsyncs that
        # would stall every other session on the event loop. Awaited to its end, so that a
        # lock taken as the server stops is released, not left open in the thread's result.
        locking, stopping = await finished_in_thread(self.mailboxes.lock_maildrop, login.user)
        error = locking.exception()
        if stopping:
            if error is None and locking.result() is not None:
                locking.result().release()
            raise asyncio.CancelledError
        if isinstance(error, MimekitError):
            self.session.facts.append(str(error))
            proto.login_refused("SYS/TEMP", "the maildrop cannot be opened now")
            return
        if error is not None:
            raise error
        lock = locking.result()
        if lock is None:
            proto.login_refused("IN-USE", "the maildrop is in use by another session")
            return
        self.lock = lock        # run() releases it on every path, a cancellation while listing included
        try:
            maildrop = self.mailboxes.maildrop(login.user)
            listing = await asyncio.to_thread(maildrop_listing, maildrop)
        except (MimekitError, OSError) as exc:
            self.lock = None
            lock.release()
            self.session.facts.append(f"cannot list the maildrop: {exc}")
            proto.login_refused("SYS/TEMP", "the maildrop cannot be read now")
            return
        self.maildrop = maildrop
        proto.open_maildrop(login.user.lower(), listing)

    async def _retrieve(self, retrieve: Retrieve) -> None:
        """Stream the message: each chunk is sent (and drained) before the next is read."""
        try:
            file = self.maildrop.open(retrieve.key)
        except (MimekitError, OSError) as exc:
            self.session.facts.append(f"message {retrieve.number}: {exc}")
            self.proto.message_unavailable(f"message {retrieve.number} cannot be read now")
            return
        with file:
            self.proto.message_follows()
            wanted = True
            while wanted:
                try:
                    chunk = await asyncio.to_thread(file.read, READ_CHUNK)
                except OSError as exc:   # the reply has begun: only closing tells the client
                    raise SessionEnded(f"message {retrieve.number} became unreadable: {exc}") from None
                if not chunk:
                    break
                wanted = self.proto.message_data(chunk)
                await self.session.flush()
            self.proto.message_end()
        if retrieve.lines is None:
            self.retrieved += 1

    async def _update(self, keys: tuple[str, ...]) -> None:
        """QUIT in the TRANSACTION state: remove what DELE marked (RFC 1939 §6). A server
        stopping meanwhile waits for the removals: the client still gets its answer (run()
        flushes it on the way out), and the lock is not given back while files are unlinked."""
        removal, stopping = await finished_in_thread(remove_messages, self.maildrop, keys)
        failure, error = None, removal.exception()
        if error is None:
            self.deleted = len(keys)
        elif isinstance(error, MimekitError):
            self.session.facts.append(str(error))
            failure = "the maildrop could not be updated"
        else:
            raise error
        self.proto.updated(failure)
        if stopping:
            raise asyncio.CancelledError
