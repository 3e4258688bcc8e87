"""Byte counts as people read them: the command line's columns and progress lines and the
web page's message list say sizes the same way."""


def human_size(n: float | None, short: bool = False) -> str:
    """A byte count for people: "12.3 KiB", or with `short` as a narrow column has room
    for it ("12K", as ls -s and mscan print sizes); "" for a size not known (None)."""
    if n is None:
        return ""
    units = ("", "K", "M", "G", "T") if short else ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while n >= (1000 if short else 1024) and index < len(units) - 1:
        n /= 1024
        index += 1
    if short:
        return f"{n:.0f}{units[index]}"
    return f"{n:.0f} {units[index]}" if index == 0 else f"{n:.1f} {units[index]}"
