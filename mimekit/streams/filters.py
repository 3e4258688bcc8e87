"""The one contract of every streaming transformation: feed bytes, get bytes; flush at the end.

Transfer encoders and decoders, line-ending normalisers, dot-stuffing, From-quoting and the
7-bit downgrade's splicer all take a message in chunks of any size and hold back only the few
bytes a chunk boundary may cut (as MimeKit's IMimeFilter and GMime's stream filters do).
Being one protocol, they compose with `chain` (a stream through filters) and `Chain` (filters
in a row as one filter) instead of each stage growing its own loop.
"""

from typing import Iterable, Iterator, Protocol, runtime_checkable


@runtime_checkable
class Filter(Protocol):
    """A streaming bytes -> bytes transformation.

    feed(data): the output for `data` so far; may hold back a few bytes for the next feed.
    flush(): what is held back, at the end of the stream. A filter serves one stream.
    The output must not depend on how the input was cut into feeds. A filter may record
    what it finds on the side (a decoder's `defects`); what it returns is always bytes.
    """

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


class Chain:
    """Filters in a row, as one filter: each one's output is the next one's input, and at
    the end each is flushed in order, its tail fed through those after it."""

    def __init__(self, *filters: Filter) -> None:
        self.filters = filters

    def feed(self, data: bytes) -> bytes:
        for stage in self.filters:
            data = stage.feed(data)
        return data

    def flush(self) -> bytes:
        tail = b""
        for stage in self.filters:
            tail = (stage.feed(tail) if tail else b"") + stage.flush()
        return tail


def chain(chunks: Iterable[bytes], *filters: Filter) -> Iterator[bytes]:
    """Run `chunks` through `filters` in order (see Chain), yielding non-empty output."""
    pipeline = Chain(*filters)
    for chunk in chunks:
        out = pipeline.feed(chunk)
        if out:
            yield out
    tail = pipeline.flush()
    if tail:
        yield tail
