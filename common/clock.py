"""The clocks a role reads, passed in so tests can pin them (docs/ARCHITECTURE.md:
time is never read from globals below the command line)."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Clock:
    # Seconds since the epoch: thisUpdate, producedAt, validity windows, ages.
    wall: Callable[[], float] = time.time
    # Deadlines and intervals, immune to the wall clock being set.
    monotonic: Callable[[], float] = time.monotonic
    # Latency measurements.
    perf: Callable[[], float] = time.perf_counter


SYSTEM = Clock()


def fixed(epoch: float) -> Clock:
    """A clock standing still at ``epoch`` on every face (tests)."""
    return Clock(wall=lambda: epoch, monotonic=lambda: epoch, perf=lambda: epoch)


def iso8601(value: float | datetime | None) -> str | None:
    """How Revoca writes a time for people and scripts alike: UTC, to the
    second, ``2026-12-03T18:00:00Z`` (ISO 8601 / RFC 3339). Epoch seconds or
    an aware datetime; None stays None."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
