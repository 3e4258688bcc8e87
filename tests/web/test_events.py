"""Live updates: the Watcher finds new mail and tells its subscribers; GET /api/events streams
that to a client over a real server (uvicorn on 127.0.0.1, as serve --http runs it), and the
server's stop ends the streams."""

import asyncio
import contextlib
import json
import logging
import threading
import time

import httpx
import pytest

from mimekit.web.app import create_app
from mimekit.web.events import TooManySubscribers, Watcher
from mimekit.web.mail import WebMail
from mimekit.web.server import serve_http
from conftest import web_config
import web_messages as messages


async def next_event(stream, timeout: float = 3.0):
    return await asyncio.wait_for(anext(stream), timeout)


async def subscribed(watcher: Watcher, idle: float | None = None):
    """A subscription, once it is one (its first item, None, says so)."""
    stream = watcher.subscribe(idle)
    assert await next_event(stream) is None
    return stream


def test_a_delivered_message_is_an_event_with_the_folders_counts(tmp_path, maildir):
    mail = WebMail(web_config(tmp_path, [f"maildir:{maildir}"]))
    inbox = mail.folders[0]

    async def run():
        watcher = Watcher(mail, interval=0.05)
        await watcher.start()
        try:
            stream = await subscribed(watcher)
            waiting = asyncio.create_task(next_event(stream))
            await asyncio.sleep(0.1)           # subscribed, and nothing changed meanwhile
            assert not waiting.done()
            started = time.monotonic()
            messages.deliver(str(maildir), messages.plain(subject="new"))
            event = await waiting
            return event, time.monotonic() - started
        finally:
            await watcher.stop()

    event, delay = asyncio.run(run())
    mail.close()
    assert event == {"mailboxId": inbox.id, "total": 4, "unread": 3}
    assert delay < 2


def test_a_failing_look_is_logged_and_the_watch_goes_on(tmp_path, maildir, caplog):
    mail = WebMail(web_config(tmp_path, [f"maildir:{maildir}"]))
    real_refresh = mail.refresh
    failures = []

    def refresh():
        if not failures:
            failures.append(1)
            raise OSError("disk on fire")
        return real_refresh()
    mail.refresh = refresh

    async def run():
        watcher = Watcher(mail, interval=0.05)
        await watcher.start()                  # its first look fails
        stream = await subscribed(watcher)
        messages.deliver(str(maildir), messages.plain(subject="after the failure"))
        try:
            return await next_event(stream)
        finally:
            await watcher.stop()

    with caplog.at_level(logging.ERROR, logger="mimekit.web"):
        event = asyncio.run(run())
    mail.close()
    assert event["total"] == 4
    assert "looking for new mail: OSError: disk on fire" in caplog.text


def test_stop_ends_every_stream_and_idle_streams_get_a_tick(tmp_path, maildir):
    mail = WebMail(web_config(tmp_path, [f"maildir:{maildir}"]))

    async def run():
        watcher = Watcher(mail, interval=10)
        await watcher.start()
        idle = await subscribed(watcher, idle=0.05)
        assert await next_event(idle) is None  # nothing happened: a keepalive tick
        quiet = await subscribed(watcher)
        reading = asyncio.create_task(anext(quiet, "ended"))
        await asyncio.sleep(0.05)
        await watcher.stop()
        return await asyncio.wait_for(reading, 2), [item async for item in idle]

    assert asyncio.run(run()) == ("ended", [])
    mail.close()


def test_subscribers_are_capped(tmp_path, maildir):
    mail = WebMail(web_config(tmp_path, [f"maildir:{maildir}"]))

    async def run():
        watcher = Watcher(mail, interval=10, max_subscribers=1)
        await watcher.start()
        first = await subscribed(watcher)              # it holds the one slot
        with pytest.raises(TooManySubscribers):
            watcher.subscribe()
        await first.aclose()                            # its slot is free again
        await subscribed(watcher)
        await watcher.stop()

    asyncio.run(run())
    mail.close()


# -- over HTTP, through a real server --------------------------------------------------------

@contextlib.contextmanager
def serving(app):
    """The app served by web.server on 127.0.0.1 in a thread; its base URL."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    bound = []
    started = threading.Event()

    def ready(address):
        bound.append(address)
        started.set()

    def run():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve_http(app, ("127.0.0.1", 0), ready=ready, stop=stop))
        finally:
            started.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10) and bound, "the server did not start"
    try:
        yield f"http://127.0.0.1:{bound[0][1]}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        assert not thread.is_alive(), "the server did not stop"
        loop.close()


def read_events(lines, count: int) -> list[tuple[str, str]]:
    """The first `count` (field, value) lines of an event stream, blank lines left out."""
    found = []
    for line in lines:
        if line:
            field, _, value = line.partition(":")
            found.append((field, value.strip()))
            if len(found) == count:
                break
    return found


def test_the_event_stream_over_http(tmp_path, maildir):
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"], poll_interval=0.05))
    inbox = app.state.mail.folders[0]
    with serving(app) as base:
        with httpx.stream("GET", f"{base}/api/events", timeout=5) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            lines = response.iter_lines()
            assert read_events(lines, 1) == [("retry", "2000")]
            messages.deliver(str(maildir), messages.plain(subject="live"))
            (event_field, name), (data_field, data) = read_events(lines, 2)
            assert (event_field, name, data_field) == ("event", "mailbox", "data")
            assert json.loads(data) == {"mailboxId": inbox.id, "total": 4, "unread": 3}


def test_a_stream_past_the_cap_is_503(tmp_path, maildir):
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"]))
    app.state.watcher.max_subscribers = 1
    with serving(app) as base:
        with httpx.stream("GET", f"{base}/api/events", timeout=5) as first:
            lines = first.iter_lines()              # kept: a closed line iterator closes the connection
            assert read_events(lines, 1) == [("retry", "2000")]
            second = httpx.get(f"{base}/api/events", timeout=5)
            assert second.status_code == 503
            assert "too many" in second.json()["error"]


def test_the_server_stops_with_a_stream_open(tmp_path, maildir):
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"]))
    with httpx.Client(timeout=5) as client:
        with serving(app) as base:
            response = client.send(client.build_request("GET", f"{base}/api/events"), stream=True)
            lines = response.iter_lines()
            assert read_events(lines, 1) == [("retry", "2000")]
        # serving() asserted the server thread ended: the open stream did not keep it running
        assert [line for line in lines if line] == []
        response.close()


def test_connections_past_the_limit_are_answered_503_and_served_again_once_freed(tmp_path, maildir, monkeypatch):
    """Clients that hold connections open (slow senders, idle sockets) take at most
    MAX_CONCURRENCY of them; the next request hears 503 rather than waiting, and once they
    go the server answers again."""
    import socket
    import urllib.error
    import urllib.request

    from mimekit.web import server

    monkeypatch.setattr(server, "MAX_CONCURRENCY", 4)
    app = create_app(web_config(tmp_path, [f"maildir:{maildir}"]))
    with serving(app) as base:
        host, port = base.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(4)]
        try:
            time.sleep(0.2)                         # accepted by the server's loop
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{base}/api/session", timeout=5)
            assert refused.value.code == 503
        finally:
            for connection in idle:
                connection.close()
        time.sleep(0.2)
        assert urllib.request.urlopen(f"{base}/api/session", timeout=5).status == 200
