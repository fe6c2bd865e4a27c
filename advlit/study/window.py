"""Max and median accuracy of each test set over an epoch window."""

import statistics


def window_stats(history: dict[int, dict[str, float]], start: int, end: int) -> dict[str, dict[str, float]]:
    """``{"max": {set: acc}, "median": {set: acc}}`` over epochs ``start..end`` (1-based, inclusive).

    ``history`` maps an epoch number to its accuracy per test set; epochs outside the window are
    ignored and a window with no epoch gives no statistics.
    """
    epochs = [e for e in sorted(history) if start <= e <= end]
    names = sorted({name for e in epochs for name in history[e]})
    out: dict[str, dict[str, float]] = {"max": {}, "median": {}}
    for name in names:
        values = [history[e][name] for e in epochs if name in history[e]]
        out["max"][name] = max(values)
        out["median"][name] = statistics.median(values)
    return out
