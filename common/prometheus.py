"""The Prometheus text exposition format (version 0.0.4), for every server's
/metrics: families written from plain values, so the hot paths only count."""

import math
from collections.abc import Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4"


def _labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_escape(str(value))}"' for name, value in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, float):
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(value)


def family(
    name: str,
    kind: str,
    help_text: str,
    samples: Iterable[tuple[dict[str, str] | None, float]],
) -> list[str]:
    """One counter or gauge family: its HELP and TYPE lines, then a line per
    (labels, value) sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples]
    return lines


def counter(name: str, help_text: str, value: float, labels=None) -> list[str]:
    return family(name, "counter", help_text, [(labels, value)])


def gauge(name: str, help_text: str, value: float, labels=None) -> list[str]:
    return family(name, "gauge", help_text, [(labels, value)])


def histogram(
    name: str,
    help_text: str,
    bounds: Sequence[float],
    counts: Sequence[int],
    total: float | None = None,
) -> list[str]:
    """A histogram from per-bucket counts (``counts`` has one more entry than
    ``bounds``: the observations above the last bound). ``total`` is the sum
    of the observations, when kept."""
    if len(counts) != len(bounds) + 1:
        raise ValueError("a histogram needs one count per bound and one above the last")
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    running = 0
    for bound, count in zip((*bounds, math.inf), counts, strict=True):
        running += count
        label = "+Inf" if bound == math.inf else f"{bound:g}"
        lines.append(f'{name}_bucket{{le="{label}"}} {running}')
    if total is not None:
        lines.append(f"{name}_sum {_number(total)}")
    lines.append(f"{name}_count {running}")
    return lines


def render(families: Iterable[list[str]]) -> str:
    """The exposition: every family's lines, newline-terminated."""
    return "".join(line + "\n" for lines in families for line in lines)
