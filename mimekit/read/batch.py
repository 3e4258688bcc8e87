"""Many messages, across cores: a per-message function mapped over references, in order.

Every reading command runs its per-message work (`scan_message`, `summarise`, `check`,
`extract`) through `map_messages`. With one job it runs here; with more, references go
to a process pool in small batches (a few hundred microseconds of work each would
otherwise be lost to inter-process overhead), at most a few batches ahead of the
output, so memory stays flat however many messages there are, and the results come
back in input order. A message of a stream held with its reference (an mbox on stdin:
MessageRef.content) goes to the pool too, its bytes counted against BATCH_BYTES and
HELD_PER_JOB; one that cannot be opened by another process (a large one, a message on
stdin) runs here, after the results before it. A stream's references are listed by a
thread (_Listing), so that when its producer pauses, what has arrived is done at once
rather than held for a batch: `... | scan --json mbox:-` keeps up with its input.

A failure on one message is that message's result (a MimekitError), never the end of
the run.
"""

import os
import queue
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from mimekit.errors import IOFailure, MimekitError
from mimekit.stores.sources import MessageRef

if TYPE_CHECKING:
    from concurrent.futures import Future

BATCH_SIZE = 256         # references per task sent to a worker (16: 1.58 s, 256: 1.35 s for 5,000 messages, 2 jobs)
BATCHES_AHEAD = 4        # tasks in flight per worker
# Messages of a stream travel with their references (MessageRef.content): a task carries
# about this many of their bytes at most, and the tasks in flight HELD_PER_JOB a job.
BATCH_BYTES = 512 * 1024
HELD_PER_JOB = 2 * 1024 * 1024
LISTED_AHEAD = 16        # references listed and not yet taken (_Listing), at most
PAUSE = 0.05             # seconds without a new reference that count as a pause in the input


class InternalError(MimekitError):
    """A bug met while reading one message (the CLI's exit 70); carries only text, so it
    crosses process boundaries whatever the original exception was."""

    kind = "software"


class Unreadable:
    """Stands in the stream of references for a source that could not be listed, so its
    error is reported in its place in the order."""

    reopenable = False

    def __init__(self, where: str, error: MimekitError):
        self.where = where
        self.error = error

    def __str__(self) -> str:
        return self.where


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                 # not on Linux
        return os.cpu_count() or 1


def apply(function: Callable[[MessageRef], Any], ref: MessageRef | Unreadable) -> Any:
    """`function(ref)`, or the MimekitError it met as the result."""
    if isinstance(ref, Unreadable):
        return ref.error
    try:
        return function(ref)
    except MimekitError as exc:
        return exc
    except OSError as exc:
        return IOFailure(f"{ref}: {exc.strerror or exc}")
    except RecursionError as exc:
        return InternalError(f"{ref}: internal error: {type(exc).__name__}")
    except Exception as exc:   # a bug on one message must not end a run over millions
        return InternalError(f"{ref}: internal error: {type(exc).__name__}: {exc}")


def _apply_batch(function: Callable[[MessageRef], Any], refs: list[MessageRef]) -> list[Any]:
    return [apply(function, ref) for ref in refs]


def _held(ref: "MessageRef | Unreadable") -> int:
    """The message bytes that travel with the reference (a stream's message)."""
    return len(getattr(ref, "content", None) or b"")


def map_messages(function: Callable[[MessageRef], Any], refs: Iterable[MessageRef],
                 jobs: int = 1) -> Iterator[tuple[MessageRef, Any]]:
    """(ref, function(ref) or its MimekitError) for every reference, in order.

    `function` must be picklable (a module-level function, or functools.partial of one)
    when `jobs` > 1. The pool starts with the first batch sent: references that end (or
    pause) before a batch is full are done here, as starting the pool would cost more
    than they do (the one message of `scan FILE`)."""
    if jobs <= 1:
        for ref in refs:
            yield ref, apply(function, ref)
        return
    listing = _Listing(refs)
    try:
        yield from _in_pool(function, listing, jobs)
    finally:
        listing.close()


def _in_pool(function: Callable[[MessageRef], Any], listing: "_Listing",
             jobs: int) -> Iterator[tuple[MessageRef, Any]]:
    pool: _Pool | None = None
    in_flight: deque = deque()   # (batch of refs, Future of its results, message bytes it carries)
    batch: list[MessageRef] = []
    held = held_in_flight = 0

    def send() -> None:
        nonlocal pool, batch, held, held_in_flight
        pool = pool or _Pool(jobs)
        in_flight.append((batch, pool.submit(function, batch), held))
        held_in_flight += held
        batch, held = [], 0

    def finished() -> Iterator[tuple[MessageRef, Any]]:
        nonlocal held_in_flight
        batch_refs, future, batch_held = in_flight.popleft()
        held_in_flight -= batch_held
        yield from zip(batch_refs, pool.results(future, function, batch_refs))

    try:
        while True:
            ref = listing.next()
            if ref is None or ref is _Listing.END or not ref.reopenable:
                # The input paused or ended, or a reference only this process can read:
                # what is held is done first (here, when no pool is worth starting for it).
                if pool is None:
                    yield from ((queued, apply(function, queued)) for queued in batch)
                    batch, held = [], 0
                elif batch:
                    send()
                while in_flight:
                    yield from finished()
                if ref is _Listing.END:
                    return
                if ref is not None:
                    result = apply(function, ref)
                    listing.done_with(ref)
                    yield ref, result
                continue
            batch.append(ref)
            held += _held(ref)
            if len(batch) == BATCH_SIZE or held >= BATCH_BYTES:
                send()
                while (len(in_flight) > jobs * BATCHES_AHEAD or held_in_flight > HELD_PER_JOB * jobs
                       or (in_flight and in_flight[0][1].done())):
                    yield from finished()
    finally:
        if pool is not None:
            pool.shutdown()


class _Raised:
    """An exception the listing met, handed to the thread that reads the listing."""

    def __init__(self, exception: BaseException):
        self.exception = exception


class _Listing:
    """The references, in order. Those of a stream are listed by a thread of their own up
    to LISTED_AHEAD ahead, so that waiting for the next one can end: `next()` gives None
    after PAUSE seconds without one, when the stream's producer has paused, and the
    references held for a batch are then done instead of waiting with them. Until a
    stream's first reference, they are listed here (a listing of files never pauses, and
    handing each over between threads costs about 4 % of a scan). A reference only this
    process can read (a large message of a stream) is the last listed until
    done_with(ref): listing the next one reuses what holds it. An exception of the
    listing is raised by `next()` in its place."""

    END = object()

    def __init__(self, refs: Iterable[MessageRef]):
        self._refs = iter(refs)
        self._queue: queue.Queue | None = None   # once the thread lists
        self._stream_met = False
        self._in_use: "MessageRef | Unreadable | None" = None   # the thread waits until it is done with
        self._used = threading.Semaphore(0)
        self._closed = threading.Event()

    def next(self) -> "MessageRef | Unreadable | object | None":
        """The next reference, END after the last, or None when none came for PAUSE seconds."""
        if self._queue is None:
            if self._stream_met:              # after the stream's first reference was used
                self._queue = queue.Queue(LISTED_AHEAD)
                threading.Thread(target=self._list, name="mimekit-listing", daemon=True).start()
            else:
                ref = next(self._refs, self.END)
                self._stream_met = getattr(ref, "kind", None) == "stream"
                return ref
        try:
            item = self._queue.get(timeout=PAUSE)
        except queue.Empty:
            return None
        if isinstance(item, _Raised):
            raise item.exception
        return item

    def done_with(self, ref: "MessageRef | Unreadable") -> None:
        if ref is self._in_use:
            self._in_use = None
            self._used.release()

    def close(self) -> None:
        """Stop listing (the thread ends at its next reference; one waiting for input is a
        daemon, which the end of the process stops)."""
        self._closed.set()
        self._used.release()

    def _list(self) -> None:
        try:
            for ref in self._refs:
                if not ref.reopenable:
                    self._in_use = ref
                if not self._put(ref):
                    return
                if not ref.reopenable:
                    self._used.acquire()
            self._put(self.END)
        except BaseException as exc:
            self._put(_Raised(exc))

    def _put(self, item) -> bool:
        """Queue `item`, unless the reader closed the listing (False)."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


class _Pool:
    """A process pool that outlives the death of a worker (the kernel's out-of-memory
    killer, a signal): the batches it was running are done again one message at a time in
    a new pool, so only a message that kills its worker again is lost, as an error."""

    def __init__(self, jobs: int):
        import multiprocessing   # with the pool only: a run in one process does without them
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        self._new = lambda: ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else None))
        self._broken = BrokenProcessPool
        self._executor = self._new()

    def submit(self, function: Callable[[MessageRef], Any], refs: list[MessageRef]) -> "Future":
        try:
            return self._executor.submit(_apply_batch, function, refs)
        except self._broken:
            self._restart()
            return self._executor.submit(_apply_batch, function, refs)

    def results(self, future: "Future", function: Callable[[MessageRef], Any], refs: list[MessageRef]) -> list[Any]:
        try:
            return future.result()
        except self._broken:
            return [self._alone(function, ref) for ref in refs]

    def _alone(self, function: Callable[[MessageRef], Any], ref: MessageRef) -> Any:
        try:
            return self.submit(function, [ref]).result()[0]
        except self._broken:
            self._restart()
            return InternalError(f"{ref}: the worker process reading it died (killed, or out of memory)")

    def _restart(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
