"""The one way a benchmark states a goal: one line with mimekit's figure, the peer's and
the ratio, and an exit status that says whether every goal held.

Each benchmark calls `goal(...)` once per goal it checks and ends with `sys.exit(verdict())`,
so a closing note can quote the lines as they are and a script can tell a missed goal by
the exit status. Figures come from one run: only ratios measured together mean anything.
"""

_missed: list[str] = []


def goal(name: str, mimekit: float, peer_name: str, peer: float, unit: str,
         at_most: float | None = None, at_least: float | None = None) -> bool:
    """Print `GOAL name: mimekit X unit, peer Y unit, ratio R (goal <= G) ok|MISSED`.

    The ratio is mimekit / peer: for times a goal is `at_most`, for rates `at_least`.
    Returns whether the goal held (a goal with neither bound is only reported).
    """
    ratio = mimekit / peer if peer else float("inf")
    if at_most is not None:
        held, bound = ratio <= at_most, f"goal <= {at_most:g}"
    elif at_least is not None:
        held, bound = ratio >= at_least, f"goal >= {at_least:g}"
    else:
        held, bound = True, "reported"
    print(f"GOAL {name}: mimekit {mimekit:.4g} {unit}, {peer_name} {peer:.4g} {unit}, "
          f"ratio {ratio:.2f} ({bound}) {'ok' if held else 'MISSED'}", flush=True)
    if not held:
        _missed.append(name)
    return held


def limit(name: str, value: float, unit: str, at_most: float) -> bool:
    """A goal on an absolute figure (peak memory): `GOAL name: mimekit X unit (goal <= G) ok|MISSED`."""
    held = value <= at_most
    print(f"GOAL {name}: mimekit {value:.4g} {unit} (goal <= {at_most:g} {unit}) {'ok' if held else 'MISSED'}",
          flush=True)
    if not held:
        _missed.append(name)
    return held


def verdict() -> int:
    """The exit status: 0 when every goal held, 1 (naming the missed ones) otherwise."""
    if _missed:
        print(f"missed {len(_missed)} goal(s): {', '.join(_missed)}", flush=True)
        return 1
    return 0
