"""The clocks a role reads, passed in so tests can pin them (docs/ARCHITECTURE.md:
time is never read from globals below the command line)."""

import time
from collections.abc import Callable
from dataclasses import dataclass


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
