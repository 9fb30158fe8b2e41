"""Clock skew between this process and a shared store, read once at start-up.

Schedule fires, finish and retry times are written by different machines' clocks, so their
clocks should agree (NTP). Leases and rescues are judged by the store's clock (`now=None`).
"""

from __future__ import annotations

__all__ = ("SKEW_TOLERANCE", "clock_skew_warning")

#: Seconds of disagreement that are worth a warning (NTP keeps clocks within milliseconds).
SKEW_TOLERANCE = 1.0


def clock_skew_warning(
    store: str, store_time: float, before: float, after: float, *, tolerance: float = SKEW_TOLERANCE
) -> str | None:
    """A warning when the store's clock (`store_time`, Unix seconds, read between the local
    readings `before` and `after`) differs from this process's by more than `tolerance`
    plus the uncertainty of the round trip; None otherwise."""
    skew = store_time - (before + after) / 2
    if abs(skew) <= tolerance + (after - before) / 2:
        return None
    direction = "ahead of" if skew > 0 else "behind"
    return (
        f"{store}'s clock is {abs(skew):.1f}s {direction} this machine's: schedules and job "
        "times compare times from both, so keep the clocks in sync (NTP)"
    )
