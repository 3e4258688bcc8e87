"""Live updates: new mail shown without reloading the page, by server-sent events.

One Watcher per application looks at the stores every `interval` seconds (WebMail.refresh,
cheap when nothing changed) and tells every subscriber which folders changed, with their
new counts. GET /api/events streams that to the browser as `text/event-stream`:

    retry: 2000

    event: mailbox
    data: {"mailboxId": "...", "total": 12, "unread": 3}

and a comment line (`: keepalive`) when nothing happened for KEEPALIVE seconds, so that
proxies and the browser keep the connection open. A stream ends when its client goes or
when the watcher stops: the server must stop the watcher before it waits for its open
connections (web.server), or an open stream would keep it running.
"""

import asyncio
import contextlib
import json
import logging
from typing import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from mimekit.errors import MimekitError
from mimekit.web import security
from mimekit.web.mail import WebMail

log = logging.getLogger("mimekit.web")

KEEPALIVE = 15.0            # seconds without an event before a comment line goes out
RECONNECT_MS = 2000         # the browser's wait before it reconnects a dropped stream
MAX_SUBSCRIBERS = 100       # open streams at once; past it: 503
QUEUE_SIZE = 100            # events held for one slow client; past it the oldest goes

_STOP = object()            # put in every queue when the watcher stops: ends each stream


class TooManySubscribers(MimekitError):
    """Every live-update slot is taken (503: try again later)."""


class Watcher:
    """Looks for new mail in a background task and hands each change to every subscriber."""

    def __init__(self, mail: WebMail, interval: float, max_subscribers: int = MAX_SUBSCRIBERS):
        self.mail = mail
        self.interval = interval
        self.max_subscribers = max_subscribers
        self._queues: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._stopped = False

    async def start(self) -> None:
        """Bring the index up to date (before the first request is served), then watch."""
        self._stopped = False
        await self._look()
        self._task = asyncio.create_task(self._run(), name="mimekit.web.Watcher")

    async def stop(self) -> None:
        """Stop watching and end every open stream."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for queue in list(self._queues):
            _offer(queue, _STOP)

    async def refresh(self) -> None:
        """Look at the stores now (a page about to list a folder does), telling subscribers
        what changed: a change found here is found once, so it must be published here too."""
        await self._look()

    async def notify(self, folder_ids: list[str]) -> None:
        """Publish the counts of folders changed through this server (a delete, a flag)."""
        self._publish(await run_in_threadpool(self._counts, folder_ids))

    def subscribe(self, idle: float | None = None) -> AsyncIterator[dict | None]:
        """The changes from now on, one {"mailboxId", "total", "unread"} each; None first, once
        subscribed (every change after it reaches this subscriber), then after `idle` seconds
        without a change. Ends when the watcher stops. TooManySubscribers when every slot is
        taken."""
        if len(self._queues) >= self.max_subscribers:
            raise TooManySubscribers(f"too many live-update streams open (at most {self.max_subscribers})")
        return self._events(idle)

    async def _events(self, idle: float | None) -> AsyncIterator[dict | None]:
        # The queue is registered here, when the stream starts, and so always removed in the
        # finally: a stream whose client left before it started leaves no slot taken.
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        try:
            yield None
            while not self._stopped:
                try:
                    event = await asyncio.wait_for(queue.get(), idle)
                except TimeoutError:
                    yield None
                    continue
                if event is _STOP:
                    return
                yield event
        finally:
            self._queues.discard(queue)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._look()

    async def _look(self) -> None:
        try:
            changes = await run_in_threadpool(self._changes)
        except Exception as exc:    # a store that cannot be read now may be readable next time
            log.error("looking for new mail: %s: %s", type(exc).__name__, exc)
            return
        self._publish(changes)

    def _changes(self) -> list[dict]:
        return self._counts(self.mail.refresh())

    def _counts(self, folder_ids: list[str]) -> list[dict]:
        changes = []
        for folder_id in folder_ids:
            total, unread = self.mail.counts(folder_id)
            changes.append({"mailboxId": folder_id, "total": total, "unread": unread})
        return changes

    def _publish(self, changes: list[dict]) -> None:
        for change in changes:
            for queue in list(self._queues):
                _offer(queue, change)


def _offer(queue: asyncio.Queue, item) -> None:
    """Queue `item`, dropping the oldest event of a client too slow to read them: the
    newest counts are what it needs."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)


async def event_stream(request: Request) -> StreamingResponse:
    """GET /api/events: the changes of the folders this user may read, as server-sent events."""
    watcher: Watcher = request.app.state.watcher
    user = security.user_of(request)
    visible = {folder.id for folder in request.app.state.mail.visible_folders(user)}
    events = watcher.subscribe(idle=KEEPALIVE)

    async def lines() -> AsyncIterator[str]:
        async with contextlib.aclosing(events):
            await anext(events)             # subscribed: the first line tells the client so
            yield f"retry: {RECONNECT_MS}\n\n"
            async for event in events:
                if await request.is_disconnected():
                    return
                if event is None:
                    yield ": keepalive\n\n"
                elif event["mailboxId"] in visible:
                    yield f"event: mailbox\ndata: {json.dumps(event)}\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


routes = [Route("/api/events", event_stream, methods=["GET"])]
