"""Mailboxes on a Dask cluster: the optional extra (`pip install 'mimekit[dask]'`).

`messages(sources)` is a dask.bag of MessageRefs; `map_on_cluster` runs a per-message
function (scan_message, extract...) over them on a cluster and yields the results in the
order a local run gives them; `write_parquet` writes records as a Parquet file.

Listing is split where it is cheap to split: Maildirs and directories are listed here
(one scandir per folder), but an mbox file is only measured here (stat) and cut into byte
ranges of about `partition_bytes`; each range is listed by a worker (`split_mbox` from
the range's start, resynchronised to the next message, to the first "From " line at or
after its stop), so one big mbox becomes many tasks and this process never reads it.
Every worker must see the sources under the same paths (a shared file system).

A worker that starts inside the body of a message whose Content-Length lets a "From "
line stand unquoted after an empty line takes that line for a message start, where the
sequential split does not. Each range's listing is therefore stitched to the one before:
a message that starts before the end of the last message kept so far is dropped (`_kept`).
"""

import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from mimekit.errors import IOFailure, MimekitError, NoInputError, UnavailableError, UsageError

try:
    import dask
    import dask.bag
    import distributed
except ImportError as missing:
    raise UnavailableError(f"the Dask integration needs the dask extra (pip install 'mimekit[dask]'): {missing}") \
        from missing

from mimekit.read.batch import apply
from mimekit.stores.sources import MessageRef, Source, StreamSource, mbox_messages, messages_of
from mimekit.streams.files import atomic_output

PARTITION_BYTES = 64 * 1024 * 1024   # an mbox range listed by one task
REFS_PER_TASK = 256                  # Maildir or directory messages handed to one task
TASKS_AHEAD = 4                      # tasks in flight per worker thread: the cluster stays busy,
                                     # results waiting for the output stay few
ROWS_PER_GROUP = 10_000              # Parquet rows written at once


@dataclass(frozen=True)
class MboxRange:
    """The messages of the mbox at `path` whose "From " line is in bytes [start, stop)."""

    path: str
    start: int
    stop: int

    def refs(self) -> list[MessageRef]:
        return list(mbox_messages(self.path, self.start, self.stop))


Unit = list[MessageRef] | MboxRange   # what one task lists and reads


def messages(sources: Iterable[Source], recursive: bool = False,
             partition_bytes: int = PARTITION_BYTES) -> dask.bag.Bag:
    """Every message of every source, in order, as a dask.bag of MessageRefs (one partition
    per mbox range, or per REFS_PER_TASK messages listed here). A source that cannot be
    listed here raises now; an mbox range that cannot be read, when the bag is computed."""
    partitions = []
    carried = None          # end of the last message kept in the mbox being listed
    for unit in _units(sources, recursive, partition_bytes):
        if isinstance(unit, MboxRange):
            listed = dask.delayed(MboxRange.refs)(unit)
            kept = dask.delayed(_kept)(listed, 0 if unit.start == 0 else carried)
            carried = dask.delayed(_carried)(kept, 0 if unit.start == 0 else carried)
            partitions.append(kept)
        else:
            partitions.append(dask.delayed(unit, traverse=False))
    return dask.bag.from_delayed(partitions) if partitions else dask.bag.from_sequence([], npartitions=1)


def map_on_cluster(address: str, function: Callable[[MessageRef], Any], sources: Iterable[Source],
                   recursive: bool = False, on_source_error: Callable[[str, MimekitError], None] | None = None,
                   partition_bytes: int = PARTITION_BYTES) -> Iterator[tuple[MessageRef, Any]]:
    """(ref, `function(ref)` or its MimekitError) for every message, in the order of a local
    run, computed on the Dask cluster whose scheduler is at `address`.

    Results stream back a task at a time, TASKS_AHEAD tasks per worker thread in flight.
    A source that cannot be listed is passed to `on_source_error(source, error)` in its
    place (here, or by a worker for an mbox range; the rest of that source is skipped),
    or raised when there is no `on_source_error`. `function` must be picklable.
    """
    with _connected(address) as client:
        ahead = TASKS_AHEAD * max(1, sum(client.nthreads().values()))
        in_flight: deque[tuple[int, str, Unit | MimekitError, Any]] = deque()
        failed_sources: set[int] = set()
        carried = 0

        def finished() -> Iterator[tuple[MessageRef, Any]]:
            nonlocal carried
            index, where, unit, outcome = in_flight.popleft()
            if index in failed_sources:
                return
            if isinstance(outcome, distributed.Future):
                outcome = outcome.result()
            if isinstance(outcome, MimekitError):
                failed_sources.add(index)
                if on_source_error is None:
                    raise outcome
                on_source_error(where, outcome)
                return
            if isinstance(unit, MboxRange):
                if unit.start == 0:
                    carried = 0
                outcome = [(ref, result) for ref, result in outcome if _follows(ref, carried)]
                carried = _carried([ref for ref, _ in outcome], carried)
            yield from outcome

        for index, where, unit in _source_units(sources, recursive, partition_bytes):
            outcome = unit if isinstance(unit, MimekitError) else client.submit(_run, function, unit, pure=False)
            in_flight.append((index, where, unit, outcome))
            while len(in_flight) > ahead or (in_flight and _ready(in_flight[0][3])):
                yield from finished()
        while in_flight:
            yield from finished()


def write_parquet(records: Iterable[dict], path: str, schema=None, rows_per_group: int = ROWS_PER_GROUP) -> int:
    """Write `records` (flat dicts with the same keys) to the Parquet file `path`, a row group
    of `rows_per_group` at a time, so memory stays flat however many there are; the file
    appears whole or not at all. `schema` (a pyarrow.Schema) defaults to the first group's
    types, a column with no value there being text. Returns the number of rows written."""
    import pyarrow
    import pyarrow.parquet

    rows = 0
    with atomic_output(path) as output:
        writer = None
        try:
            for group in _groups(records, rows_per_group):
                if writer is None:
                    schema = schema or _inferred_schema(pyarrow, group)
                    writer = pyarrow.parquet.ParquetWriter(output, schema)
                writer.write_table(pyarrow.Table.from_pylist(group, schema=schema), row_group_size=rows_per_group)
                rows += len(group)
            if writer is None:
                writer = pyarrow.parquet.ParquetWriter(output, schema or pyarrow.schema([]))
        finally:
            if writer is not None:
                writer.close()
    return rows


def _connected(address: str) -> "distributed.Client":
    """A client of the scheduler at `address`; how long to try is Dask's own setting
    (distributed.comm.timeouts.connect)."""
    try:
        return distributed.Client(address)
    except ValueError as exc:
        raise UsageError(f"{address}: not a Dask scheduler address: {exc}") from exc
    except OSError as exc:
        raise UnavailableError(f"{address}: no Dask scheduler answers: {exc}") from exc


def _source_units(sources: Iterable[Source], recursive: bool,
                  partition_bytes: int) -> Iterator[tuple[int, str, Unit | MimekitError]]:
    """(source index, source, unit) in order; a source that cannot be listed here ends with
    its error as its last unit."""
    for index, source in enumerate(sources):
        where = source.name if isinstance(source, StreamSource) else source
        try:
            for unit in _units([source], recursive, partition_bytes):
                yield index, where, unit
        except MimekitError as exc:
            yield index, where, exc
        except OSError as exc:
            yield index, where, IOFailure(f"{where}: {exc.strerror or exc}")


def _units(sources: Iterable[Source], recursive: bool, partition_bytes: int) -> Iterator[Unit]:
    """The tasks that list (and read) the sources, in order: consecutive messages listed
    here in batches, each mbox file as its byte ranges."""
    batch: list[MessageRef] = []
    for source in sources:
        if isinstance(source, StreamSource):
            raise NoInputError(f"{source.name}: a Dask cluster cannot read a stream")
        for item in messages_of(source, recursive, list_mbox=lambda path: _ranges(path, partition_bytes)):
            if isinstance(item, MboxRange):
                if batch:
                    yield batch
                    batch = []
                yield item
            else:
                batch.append(item)
                if len(batch) == REFS_PER_TASK:
                    yield batch
                    batch = []
    if batch:
        yield batch


def _ranges(path: str, partition_bytes: int) -> list[MboxRange]:
    """The byte ranges of the mbox file at `path`, known from its size alone (it is opened,
    not read, so that what cannot be read fails here as a local listing fails)."""
    try:
        with open(path, "rb") as mbox:
            size = os.fstat(mbox.fileno()).st_size
    except OSError as exc:
        raise NoInputError(f"{path}: {exc.strerror or exc}") from exc
    if not os.path.isfile(path):
        raise NoInputError(f"{path}: not an mbox file")
    count = max(1, -(-size // max(1, partition_bytes)))
    bounds = [size * k // count for k in range(count + 1)]
    return [MboxRange(path, start, stop) for start, stop in zip(bounds, bounds[1:])]


def _run(function: Callable[[MessageRef], Any], unit: Unit) -> list[tuple[MessageRef, Any]] | MimekitError:
    """On a worker: the unit's messages with their results, or the error that stopped the
    listing of its mbox range."""
    if isinstance(unit, MboxRange):
        try:
            unit = unit.refs()
        except MimekitError as exc:
            return exc
        except OSError as exc:
            return IOFailure(f"{unit.path}: {exc.strerror or exc}")
    return [(ref, apply(function, ref)) for ref in unit]


def _follows(ref: MessageRef, carried: int) -> bool:
    """Whether an mbox message starts after the end of the last one kept (module docstring)."""
    return int(ref.key) >= carried


def _kept(refs: list[MessageRef], carried: int) -> list[MessageRef]:
    return [ref for ref in refs if _follows(ref, carried)]


def _carried(kept: list[MessageRef], carried: int) -> int:
    return kept[-1].end if kept else carried


def _ready(outcome: Any) -> bool:
    return not isinstance(outcome, distributed.Future) or outcome.done()


def _groups(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    group: list[dict] = []
    for record in records:
        group.append(record)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _inferred_schema(pyarrow, group: list[dict]):
    inferred = pyarrow.Table.from_pylist(group).schema
    return pyarrow.schema([pyarrow.field(field.name, pyarrow.string()) if pyarrow.types.is_null(field.type) else field
                           for field in inferred])


__all__ = ["messages", "map_on_cluster", "write_parquet", "MboxRange", "PARTITION_BYTES"]
