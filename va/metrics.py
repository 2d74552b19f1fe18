"""What one VA worker counts, and its /metrics page (Prometheus text)."""

from bisect import bisect_left
from collections.abc import Callable

from common import prometheus

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
# Counted by the HTTP front (va/http.py) when a limit acts.
CONNECTION_EVENTS = (
    "connection_refused",
    "request_timeout",
    "idle_timeout",
    "header_too_large",
    "bad_request",  # not HTTP/1.x: closed with 400
)
# Floats: an age (a float) is compared with each, and float-to-int
# comparisons cost twice as much.
AGE_BUCKETS = tuple(
    float(seconds) for seconds in (60, 600, 3600, 4 * 3600, 12 * 3600, 86400, 4 * 86400, 864000)
)
OUTCOMES = ("presigned", "signed", "error", "malformed", "try_later", "internal_error")


class Metrics:
    def __init__(self):
        # A plain dict (a Counter's item access is three times slower).
        self.requests: dict[str, int] = dict.fromkeys((*OUTCOMES, *CONNECTION_EVENTS), 0)
        self.latency = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.ages = [0] * (len(AGE_BUCKETS) + 1)
        self.connections = 0
        # Read when the page is rendered (set by the worker).
        self.fresh_signing: Callable[[], int] = lambda: 0
        self.fast_lane: Callable[[], int] = lambda: 0

    def count(self, kind: str) -> None:
        self.requests[kind] += 1

    def served(self, kind: str, seconds: float, age: float) -> None:
        """One answer of ``kind`` (one of OUTCOMES), ``seconds`` after its
        request was read, ``age`` after the response's thisUpdate."""
        self.requests[kind] += 1
        self.latency[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        if kind != "error":
            self.ages[bisect_left(AGE_BUCKETS, age)] += 1

    def render(self) -> str:
        requests = self.requests
        return prometheus.render(
            [
                prometheus.family(
                    "revoca_ocsp_requests_total",
                    "counter",
                    "OCSP requests by outcome.",
                    [({"outcome": kind}, requests[kind]) for kind in OUTCOMES],
                ),
                prometheus.histogram(
                    "revoca_ocsp_latency_seconds",
                    "Time to produce an OCSP answer.",
                    BUCKETS,
                    self.latency,
                    self.latency_sum,
                ),
                prometheus.histogram(
                    "revoca_ocsp_response_age_seconds",
                    "Age of served responses (now - thisUpdate).",
                    AGE_BUCKETS,
                    self.ages,
                ),
                prometheus.gauge(
                    "revoca_ocsp_fresh_signing_in_flight",
                    "Fresh signatures being computed.",
                    self.fresh_signing(),
                ),
                prometheus.counter(
                    "revoca_http_fast_lane_requests_total",
                    "Requests recognised whole and plain (va/fastlane.py), answered without"
                    " the general HTTP parser.",
                    self.fast_lane(),
                ),
                prometheus.gauge(
                    "revoca_http_connections", "Open HTTP connections.", self.connections
                ),
                prometheus.family(
                    "revoca_http_connection_events_total",
                    "counter",
                    "Connections refused or closed by a limit.",
                    [({"event": event}, requests[event]) for event in CONNECTION_EVENTS],
                ),
            ]
        )
