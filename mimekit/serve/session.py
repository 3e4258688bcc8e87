"""The asyncio side of one server connection, the same for the SMTP and POP3 roles.

A session pumps a sans-IO server protocol (transport/sansio.py's base, server role): what
the client sent goes in with `receive_data()`, commands come out of `next_event()`, and
the replies it queued are written before waiting for more. Every wait has a limit: the
role's idle timeout for each read and write, and the session timeout for the whole connection,
so a silent or slow client cannot hold a connection slot for ever.
"""

import asyncio
import ssl
import weakref

from mimekit.serve.config import ServeConfig
from mimekit.serve.users import Users
from mimekit.transport.sansio import NEED_DATA

READ_SIZE = 256 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0
CONCURRENT_LOGIN_CHECKS = 2   # scrypt runs: 32 MiB and a thread of the default pool each
FAILED_LOGIN_DELAY = 1.0      # seconds before a refused login is answered: password guessing gets slow

_login_checks: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


async def verify_login(users: Users, name: str, password: str) -> bool:
    """users.verify in a thread, at most CONCURRENT_LOGIN_CHECKS at a time over all the
    sessions (SMTP AUTH and POP3 alike): a flood of logins waits here rather than filling the
    default thread pool that delivery commits need, and holding 32 MiB a guess."""
    loop = asyncio.get_running_loop()
    checks = _login_checks.get(loop)
    if checks is None:      # one per event loop: an asyncio.Semaphore belongs to the loop it first waits in
        checks = _login_checks[loop] = asyncio.Semaphore(CONCURRENT_LOGIN_CHECKS)
    async with checks:
        return await asyncio.to_thread(users.verify, name, password)


async def finished_in_thread(function, *args) -> tuple[asyncio.Future, bool]:
    """function(*args) in a thread, awaited to its end even when the session is cancelled
    meanwhile (the server stopping): what it did on disk is then known, to be answered or
    undone. The finished future, and whether a cancellation came (the caller re-raises it)."""
    work = asyncio.ensure_future(asyncio.to_thread(function, *args))
    stopping = False
    while not work.done():
        try:
            await asyncio.wait({work})
        except asyncio.CancelledError:
            stopping = True
    return work, stopping


class SessionEnded(Exception):
    """The session cannot go on: the client went away, broke TLS or took too long. The
    text says which, for the session's log line; `timed_out` tells a timeout (SMTP says
    421 4.4.2 for it, RFC 3463's bad connection)."""

    def __init__(self, text: str, timed_out: bool = False):
        super().__init__(text)
        self.timed_out = timed_out


class ServerSession:
    """One client connection: reads with timeouts, writes what the protocol queued, and
    upgrades to TLS. `facts` gathers what the session's log line reports. `idle_timeout`
    is the role's: SMTP and POP3 each set their own minimum."""

    def __init__(self, config: ServeConfig, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proto,
                 idle_timeout: float):
        self.config = config
        self.idle_timeout = idle_timeout
        self.reader = reader
        self.writer = writer
        self.proto = proto
        peer = writer.get_extra_info("peername") or ("unknown", 0)
        self.peer_ip, self.peer_port = str(peer[0]), int(peer[1])
        self.tls = False
        self.facts: list[str] = []
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._deadline = loop.time() + config.session_timeout

    def _timeout(self) -> float:
        left = self._deadline - self._loop.time()
        if left <= 0:
            raise SessionEnded("session time limit reached", timed_out=True)
        return min(self.idle_timeout, left)

    async def receive(self) -> bytes:
        """The client's next bytes; b"" when it closed the connection."""
        try:
            async with asyncio.timeout(self._timeout()):
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise SessionEnded("timed out waiting for the client", timed_out=True) from None
        except (ConnectionError, ssl.SSLError) as exc:
            raise SessionEnded(f"connection lost: {exc}") from None

    async def flush(self) -> None:
        """Write what the protocol has queued."""
        data = self.proto.data_to_send()
        if not data:
            return
        try:
            self.writer.write(data)
            async with asyncio.timeout(self._timeout()):
                await self.writer.drain()
        except TimeoutError:
            raise SessionEnded("timed out writing to the client", timed_out=True) from None
        except (ConnectionError, ssl.SSLError) as exc:
            raise SessionEnded(f"connection lost: {exc}") from None

    async def next_event(self):
        """The protocol's next event; replies it queued go out before waiting for more. A
        protocol that stops parsing while many replies are queued (pipelined commands) gets
        them written and is asked again before anything more is read from the client, so
        what the client sent is worked off at the pace the client reads its replies."""
        while True:
            event = self.proto.next_event()
            if event is not NEED_DATA:
                return event
            if self.proto.bytes_to_send:
                await self.flush()
                continue
            self.proto.receive_data(await self.receive())

    async def start_tls(self) -> None:
        """Flush the go-ahead reply, then hand the connection to TLS (server side). Bytes the
        stream reader already holds came in plain text after the command: were they kept, they
        would be read as if sent over TLS (CVE-2011-0411), so the session ends instead."""
        await self.flush()
        if self.reader._buffer:   # StreamReader has no public look at what it holds
            raise SessionEnded("client sent data between the TLS command and the handshake")
        try:
            await self.writer.start_tls(self.config.tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            raise SessionEnded(f"TLS handshake failed: {exc}") from None
        self.tls = True

    @property
    def tls_description(self) -> str | None:
        """"TLSv1.3 TLS_AES_256_GCM_SHA384" for the Received field, None in the clear."""
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        cipher = ssl_object.cipher()
        return f"{ssl_object.version()} {cipher[0]}" if cipher else ssl_object.version()

    async def close(self) -> None:
        try:
            await self.flush()
        except SessionEnded:
            pass
        self.writer.close()
        try:
            async with asyncio.timeout(5):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError, ssl.SSLError):
            pass
