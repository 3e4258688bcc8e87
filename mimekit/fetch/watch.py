"""`fetch --watch`: fetch, then stay and fetch new mail as it arrives, until told to stop.

Each pass is a fetch run (mimekit.fetch.run's session and `fetch_pass`, with their durability
contract); the first takes the caller's options, every later one only what is new to the
output (new=True, no limit). Between passes:
  - IMAP with IDLE (RFC 2177): the session stays open in IDLE, and a pass runs as soon
    as the server reports anything about the mailbox, or after IDLE_REISSUE seconds of
    silence (the RFC asks to re-issue IDLE within the servers' 30-minute autologout);
  - IMAP without IDLE: the session stays open and a pass runs every `interval` seconds;
  - IMAP, either way: a NOOP before each later pass (Dovecot shows a delivery to an open
    session's search only once a NOOP or IDLE has reported it);
  - POP3 and local stores: a new session every `interval` seconds (a POP3 server shows
    new mail only to a new session; a store reopened is read afresh).
A dropped connection or any TempFailure (and, once a pass has succeeded, an unreachable
server) is retried after BACKOFF_FIRST seconds, doubling to BACKOFF_MAX; anything else
(a refused login, a usage or configuration error, a server's NO such as a --move-to
folder that is gone) ends the watch by raising, since retrying cannot cure it.
`Stop.request` (the CLI's SIGTERM and SIGINT handler) ends the watch after the message
being saved: the pass's server actions (flags, move, delete) apply to what it saved (see
run.fetch_pass), the session logs out and `watch` returns.
"""

import dataclasses
import os
import subprocess
import time
from typing import Callable

from mimekit.errors import MimekitError, TempFailure, UsageError
from mimekit.fetch.run import FetchOptions, FetchReport, Fetched, check_options, fetch_pass, open_session, source_name
from mimekit.fetch.sinks import Sink
from mimekit.transport.connection import DEFAULT_TIMEOUT, Unreachable
from mimekit.transport.imap.client import IMAPClient
from mimekit.transport.secrets import ENV_VARIABLE as PASSWORD_VARIABLE
from mimekit.transport.urls import ServerURL

IDLE_REISSUE = 29 * 60     # seconds in one IDLE command (RFC 2177 §3); tests shorten it
BACKOFF_FIRST = 1.0        # seconds before the first reconnection, doubled after each failure
BACKOFF_MAX = 300.0
DEFAULT_INTERVAL = 60.0    # seconds between polls where there is no IDLE
STOP_WAKE = 0.25           # seconds between looks at the stop request while sleeping


class Stop:
    """A stop request, set from a signal handler and looked at between messages and
    while waiting; `sleep` waits for it or for `seconds`, whichever comes first."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, *_signal) -> None:
        self.requested = True

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, STOP_WAKE))


def watch(source_url: ServerURL, sink: Sink, options: FetchOptions, stop: Stop, *,
          password: Callable[[], str] | None = None, token: Callable[[], str] | None = None,
          cafile: str | None = None, timeout: float = DEFAULT_TIMEOUT, state_directory: str | None = None,
          interval: float = DEFAULT_INTERVAL,
          on_progress: Callable[[int, int], None] | None = None,
          on_saved: Callable[[Fetched], None] | None = None,
          on_pass: Callable[[FetchReport], None] | None = None,
          on_retry: Callable[[MimekitError, float], None] | None = None) -> None:
    """Fetch from `source_url` into `sink` as fetch() does, then keep fetching what arrives
    until `stop` is requested (see the module docstring). `on_pass` gets the report of
    every pass that ended, also one cut short by an error, `on_retry` each error that a
    reconnection after the given number of seconds will retry."""
    if not sink.durable:
        raise UsageError("watch is refused when the output is standard output: later passes fetch what "
                         "is new, and no state is kept of what it was given")
    if interval <= 0:
        raise UsageError("interval must be more than 0 seconds")
    criteria = check_options(source_url, options, sink.durable)
    later = dataclasses.replace(options, new=True, limit=None)
    pass_options, delay, succeeded = options, BACKOFF_FIRST, False
    while not stop.requested:
        try:
            with open_session(source_url, sink, pass_options, password=password, token=token, cafile=cafile,
                              timeout=timeout, state_directory=state_directory) as (source, state):
                while not stop.requested:
                    report = FetchReport(source=source_name(source_url))
                    try:
                        fetch_pass(source, sink, pass_options, criteria, state, report, on_progress, on_saved,
                                   stopping=lambda: stop.requested)
                    except BaseException:
                        if on_pass and report.fetched:
                            on_pass(report)   # what was saved before the error is reported too
                        raise
                    if on_pass:
                        on_pass(report)
                    pass_options, delay, succeeded = later, BACKOFF_FIRST, True
                    if stop.requested or not _wait_for_mail(source, interval, stop):
                        break
        except (TempFailure, Unreachable) as exc:
            if isinstance(exc, Unreachable) and not succeeded:
                raise             # never worked: a wrong host or port, not an outage
            if on_retry:
                on_retry(exc, delay)
            stop.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)


def _wait_for_mail(source, interval: float, stop: Stop) -> bool:
    """Wait until a pass is worth running; True to run it in this session, False to
    run it in a new one (POP3, local stores)."""
    if not isinstance(source, IMAPClient):
        stop.sleep(interval)
        return False
    if source.can_idle:
        source.idle(IDLE_REISSUE, lambda: stop.requested)
    else:
        stop.sleep(interval)
    # A NOOP before every pass in this session: Dovecot shows a delivery to an open
    # session's search only once a NOOP or IDLE has reported it, and a silent IDLE that
    # ends (a notification the server lost) must still look afresh.
    if not stop.requested:
        source.noop()
    return True


class ExecHook:
    """`fetch --exec CMD`: CMD run through /bin/sh for each message saved, the message's
    reference in $MIMEKIT_MESSAGE (a file's path, or MBOX:OFFSET in an mbox output) and the
    source in $MIMEKIT_SOURCE, never in CMD's text (no quoting to get wrong, nothing to
    inject). CMD's environment is ours without MIMEKIT_PASSWORD: a hook needs no secret.
    Its stdin is /dev/null; stdout and stderr are the caller's. It runs in a session of its
    own, so Ctrl-C at a terminal (SIGINT to the foreground process group) stops a watch
    after the message, whose CMD finishes, rather than killing CMD half way: a message is
    recorded however its CMD ended, and CMD would not run for it again. `runs` counts the
    runs (a message a killed run saved gets one too, when adopted), `failures` those that
    did not exit 0; `on_failure` hears of each."""

    def __init__(self, command: str, source_url: ServerURL,
                 on_failure: Callable[[Fetched, int], None] | None = None):
        self.command = command
        self.source = source_name(source_url)
        self.on_failure = on_failure
        self.runs = self.failures = 0

    def __call__(self, fetched: Fetched) -> None:
        environment = dict(os.environ, MIMEKIT_MESSAGE=fetched.path, MIMEKIT_SOURCE=self.source)
        environment.pop(PASSWORD_VARIABLE, None)
        self.runs += 1
        status = subprocess.run(self.command, shell=True, env=environment,    # /bin/sh -c CMD
                                stdin=subprocess.DEVNULL, start_new_session=True).returncode
        if status != 0:
            self.failures += 1
            if self.on_failure:
                self.on_failure(fetched, status)
