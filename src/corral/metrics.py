"""Prometheus metrics: counters and histograms that the server's hot paths update in a few
dictionary operations, gauges read from the scheduler when ``GET /metrics`` is scraped, and the
text exposition format (version 0.0.4).

One :class:`Metrics` per scheduler (so per server, and per test server). Label values are the
route's path template and the model's name as the store shows it; requests whose model could not
be resolved carry an empty ``model``, so a client cannot grow the label set without bound.

The request context: :class:`RequestLabels` is set for each HTTP request by the metrics middleware
(:mod:`corral.server.metrics`); the service fills in the model once it has resolved one.
"""

from __future__ import annotations

import bisect
import contextvars
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import corral

Labels = tuple[tuple[str, str], ...]

# Seconds: from a few milliseconds (cached catalog reads, one token) to minutes (long answers).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


@dataclass
class RequestLabels:
    """What one HTTP request is counted under; the service sets ``model``."""

    model: str = ""


_current: contextvars.ContextVar[RequestLabels | None] = contextvars.ContextVar(
    "corral_request_labels", default=None
)


def begin_request() -> RequestLabels:
    labels = RequestLabels()
    _current.set(labels)
    return labels


def note_model(name: str) -> None:
    """The request being served is for model ``name`` (no-op outside a counted request)."""
    labels = _current.get()
    if labels is not None:
        labels.model = name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = labels + extra
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _format_value(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_format_labels(labels)} {_format_value(value)}"


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name, self.help = name, help_text
        self.bounds = tuple(sorted(buckets))
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}  # counts, [sum]

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        series[0][bisect.bisect_left(self.bounds, value)] += 1
        series[1][0] += value

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        for labels, (counts, total) in sorted(self.series.items()):
            running = 0
            for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
                running += n
                le = (("le", _format_value(float(bound))),)
                yield f"{self.name}_bucket{_format_labels(labels, le)} {running}"
            yield f"{self.name}_sum{_format_labels(labels)} {_format_value(total[0])}"
            yield f"{self.name}_count{_format_labels(labels)} {running}"


@dataclass(frozen=True)
class Gauge:
    """A gauge read at scrape time: ``read`` gives ``(labels, value)`` pairs."""

    name: str
    help: str
    read: Callable[[], Iterable[tuple[Labels, float]]]

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in self.read():
            yield f"{self.name}{_format_labels(labels)} {_format_value(value)}"


def model_label(model: str) -> Labels:
    return (("model", model),)


class Metrics:
    """corral's metrics; the server's code calls the ``record_*`` methods."""

    def __init__(self) -> None:
        self.requests = Counter(
            "corral_http_requests_total", "HTTP requests answered, by route, model and status."
        )
        self.duration = Histogram(
            "corral_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer (streams included).",
            LATENCY_BUCKETS,
        )
        self.prompt_tokens = Counter(
            "corral_prompt_tokens_total", "Prompt tokens of generations (cached ones included)."
        )
        self.generated_tokens = Counter("corral_generated_tokens_total", "Tokens generated.")
        self.ttft = Histogram(
            "corral_time_to_first_token_seconds",
            "Time from a generation's start (queueing and loading included) to its first token.",
            LATENCY_BUCKETS,
        )
        self.loads = Counter("corral_model_loads_total", "Runners loaded.")
        self.load_failures = Counter("corral_model_load_failures_total", "Loads that failed.")
        self.evictions = Counter(
            "corral_model_evictions_total",
            "Idle runners unloaded to make room for another model.",
        )
        self.load_seconds = Histogram(
            "corral_model_load_seconds", "Time to load a runner.", LOAD_BUCKETS
        )
        self.gauges: list[Gauge] = [
            Gauge(
                "corral_build_info",
                "corral's version.",
                lambda: [((("version", corral.__version__),), 1.0)],
            )
        ]

    def record_request(self, route: str, model: str, status: int, seconds: float) -> None:
        self.requests.inc((("route", route), ("model", model), ("status", str(status))))
        self.duration.observe((("route", route), ("model", model)), seconds)

    def record_generation(self, model: str, prompt: int, generated: int) -> None:
        self.prompt_tokens.inc(model_label(model), prompt)
        self.generated_tokens.inc(model_label(model), generated)

    def record_first_token(self, model: str, seconds: float) -> None:
        self.ttft.observe(model_label(model), seconds)

    def record_load(self, model: str, seconds: float, ok: bool) -> None:
        if ok:
            self.loads.inc(model_label(model))
            self.load_seconds.observe(model_label(model), seconds)
        else:
            self.load_failures.inc(model_label(model))

    def record_eviction(self, model: str) -> None:
        self.evictions.inc(model_label(model))

    def add_gauge(self, gauge: Gauge) -> None:
        self.gauges.append(gauge)

    def render(self, extra: Sequence[Gauge] = ()) -> str:
        """Every metric in Prometheus' text format (with ``extra`` gauges read by the caller)."""
        lines: list[str] = []
        families: list[Counter | Histogram | Gauge] = [
            self.requests,
            self.duration,
            self.prompt_tokens,
            self.generated_tokens,
            self.ttft,
            self.loads,
            self.load_failures,
            self.evictions,
            self.load_seconds,
            *self.gauges,
            *extra,
        ]
        for family in families:
            lines.extend(family.render())
        return "\n".join(lines) + "\n"
