"""Many messages, across cores: a per-message function mapped over references, in order.

Every reading command runs its per-message work (`scan_message`, `summarise`, `check`,
`extract`) through `map_messages`. With one job it runs here; with more, references go
to a process pool in small batches (a few hundred microseconds of work each would
otherwise be lost to inter-process overhead), at most a few batches ahead of the
output, so memory stays flat however many messages there are, and the results come
back in input order. A message read from a stream cannot be opened by another process:
it runs here, after the results before it.

A failure on one message is that message's result (a MimekitError), never the end of
the run.
"""

import itertools
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from mimekit.errors import IOFailure, MimekitError
from mimekit.stores.sources import MessageRef

if TYPE_CHECKING:
    from concurrent.futures import Future

BATCH_SIZE = 256         # references per task sent to a worker (16: 1.58 s, 256: 1.35 s for 5,000 messages, 2 jobs)
BATCHES_AHEAD = 4        # tasks in flight per worker


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


def map_messages(function: Callable[[MessageRef], Any], refs: Iterable[MessageRef],
                 jobs: int = 1) -> Iterator[tuple[MessageRef, Any]]:
    """(ref, function(ref) or its MimekitError) for every reference, in order.

    `function` must be picklable (a module-level function, or functools.partial of one)
    when `jobs` > 1. When the references end within the first batch, they are done here:
    starting the pool would cost more than they do (the one message of `scan FILE`). Only
    references that are listed at once are looked ahead at (a stream's are done as they come)."""
    refs = iter(refs)
    first: list[MessageRef] = []
    for ref in refs:
        first.append(ref)
        if len(first) == BATCH_SIZE or not ref.reopenable:
            break
    else:
        jobs = 1
    if jobs <= 1:
        for ref in itertools.chain(first, refs):
            yield ref, apply(function, ref)
        return
    yield from _in_pool(function, itertools.chain(first, refs), jobs)


def _in_pool(function: Callable[[MessageRef], Any], refs: Iterable[MessageRef],
             jobs: int) -> Iterator[tuple[MessageRef, Any]]:
    pool = _Pool(jobs)
    try:
        in_flight: deque = deque()   # (batch of refs, Future of its results)
        batch: list[MessageRef] = []

        def finished() -> Iterator[tuple[MessageRef, Any]]:
            batch_refs, future = in_flight.popleft()
            yield from zip(batch_refs, pool.results(future, function, batch_refs))

        for ref in refs:
            if not ref.reopenable:      # read (or reported) here, in its place in the order
                if batch:
                    in_flight.append((batch, pool.submit(function, batch)))
                    batch = []
                while in_flight:
                    yield from finished()
                yield ref, apply(function, ref)
                continue
            batch.append(ref)
            if len(batch) == BATCH_SIZE:
                in_flight.append((batch, pool.submit(function, batch)))
                batch = []
                while len(in_flight) > jobs * BATCHES_AHEAD or (in_flight and in_flight[0][1].done()):
                    yield from finished()
        if batch:
            in_flight.append((batch, pool.submit(function, batch)))
        while in_flight:
            yield from finished()
    finally:
        pool.shutdown()


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
