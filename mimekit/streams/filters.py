"""The one contract of every streaming transformation: feed bytes, get bytes; flush at the end.

Transfer encoders and decoders, line-ending normalisers, dot-stuffing, From-quoting and the
7-bit downgrade's stages all take a message in chunks of any size and hold back only the few
bytes a chunk boundary may cut (as MimeKit's IMimeFilter and GMime's stream filters do).
Being one protocol, they compose with `chain` instead of each stage growing its own loop.
"""

from typing import Iterable, Iterator, Protocol, runtime_checkable


@runtime_checkable
class Filter(Protocol):
    """A streaming bytes -> bytes transformation.

    feed(data): the output for `data` so far; may hold back a few bytes for the next feed.
    flush(): what is held back, at the end of the stream; the filter is then reset.
    The output must not depend on how the input was cut into feeds.
    """

    def feed(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...


def chain(chunks: Iterable[bytes], *filters: Filter) -> Iterator[bytes]:
    """Run `chunks` through `filters` in order, yielding non-empty output; at the end the
    filters are flushed in order, each one's tail fed through those after it."""
    for chunk in chunks:
        for stage in filters:
            chunk = stage.feed(chunk)
        if chunk:
            yield chunk
    tail = b""
    for stage in filters:
        tail = (stage.feed(tail) if tail else b"") + stage.flush()
    if tail:
        yield tail
