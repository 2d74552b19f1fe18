"""Prometheus text-format metrics for one VA worker."""

import bisect
from bisect import bisect_left
from collections import Counter

BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)
# Counted by the HTTP front (va/http.py, va/server.py) when a limit acts.
CONNECTION_EVENTS = ("connection_refused", "request_timeout", "idle_timeout", "header_too_large")
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
        self.gauges: Counter[str] = Counter()
        self.fresh_signing = lambda: 0
        self.fast_lane = lambda: 0

    def count(self, kind: str) -> None:
        self.requests[kind] = self.requests.get(kind, 0) + 1

    def observe(self, kind: str, seconds: float) -> None:
        self.count(kind)
        self.latency[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def served(self, kind: str, seconds: float, age: float) -> None:
        """One answer: ``observe`` and, unless an error, ``age`` in one call
        (``kind`` one of OUTCOMES)."""
        self.requests[kind] += 1
        self.latency[bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        if kind != "error":
            self.ages[bisect_left(AGE_BUCKETS, age)] += 1

    def age(self, seconds: float) -> None:
        self.ages[bisect.bisect_left(AGE_BUCKETS, seconds)] += 1

    def gauge_add(self, name: str, delta: int) -> None:
        self.gauges[name] += delta

    def render(self) -> str:
        out = [
            "# HELP revoca_ocsp_requests_total OCSP requests by outcome.",
            "# TYPE revoca_ocsp_requests_total counter",
        ]
        for kind in OUTCOMES:
            out.append(f'revoca_ocsp_requests_total{{outcome="{kind}"}} {self.requests[kind]}')
        out += _histogram(
            "revoca_ocsp_latency_seconds",
            "Time to produce an OCSP answer.",
            BUCKETS,
            self.latency,
            self.latency_sum,
        )
        out += _histogram(
            "revoca_ocsp_response_age_seconds",
            "Age of served responses (now - thisUpdate).",
            AGE_BUCKETS,
            self.ages,
        )
        out += [
            "# HELP revoca_ocsp_fresh_signing_in_flight Fresh signatures being computed.",
            "# TYPE revoca_ocsp_fresh_signing_in_flight gauge",
            f"revoca_ocsp_fresh_signing_in_flight {self.fresh_signing()}",
            "# HELP revoca_http_fast_lane_requests_total Requests recognised whole and plain"
            " (va/http.py), answered without the general HTTP parser.",
            "# TYPE revoca_http_fast_lane_requests_total counter",
            f"revoca_http_fast_lane_requests_total {self.fast_lane()}",
            "# HELP revoca_http_connections Open HTTP connections.",
            "# TYPE revoca_http_connections gauge",
            f"revoca_http_connections {self.gauges['connections']}",
            "# HELP revoca_http_connection_events_total Connections refused or closed by a limit.",
            "# TYPE revoca_http_connection_events_total counter",
        ]
        for event in CONNECTION_EVENTS:
            out.append(
                f'revoca_http_connection_events_total{{event="{event}"}} {self.requests[event]}'
            )
        return "\n".join(out) + "\n"


def _histogram(name: str, help_text: str, bounds, counts, total: float | None = None):
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    running = 0
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        running += n
        label = "+Inf" if bound == float("inf") else f"{bound:g}"
        lines.append(f'{name}_bucket{{le="{label}"}} {running}')
    if total is not None:
        lines.append(f"{name}_sum {total}")
    lines.append(f"{name}_count {running}")
    return lines
