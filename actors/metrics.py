"""Prometheus metrics with Fabric's chaincode metric names (``core/chaincode/metrics.go``,
``core/container/dockercontroller/metrics.go``).

Each :class:`~actors.support.ChaincodeSupport` gets its own registry, so several peers (or
tests) in one process do not collide. :meth:`Metrics.exposition` writes the text format as
Fabric's peer (Go's Prometheus client) does: counters under their own names, without the
``_total`` and ``_created`` series prometheus_client adds, and numbers as Go prints them.

Label values come from outside (a chaincode picks the channel id of its requests, a client
the chaincode name it asks for), so ``channel`` and ``chaincode`` are bounded: a value the
peer does not know is counted under ``unknown``, and at most ``label_limit`` distinct values
of each are ever kept. Otherwise made-up ids would grow the registry without end.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from functools import partial
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

UNKNOWN = "unknown"
BOUNDED_LABELS = ("channel", "chaincode")


class _Bounded:
    """A labelled metric whose ``channel``/``chaincode`` values pass :meth:`Metrics.bound`."""

    def __init__(self, metric: Any, names: tuple[str, ...], bound: Callable[[str, str], str]):
        self.metric = metric
        self._positions = [(i, n) for i, n in enumerate(names) if n in BOUNDED_LABELS]
        self._bound = bound

    def labels(self, *values: str) -> Any:
        checked = list(values)
        for i, name in self._positions:
            checked[i] = self._bound(name, checked[i])
        return self.metric.labels(*checked)


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        known: Mapping[str, Callable[[str], bool]] | None = None,
        label_limit: int = 1000,
    ) -> None:
        """``known``: for ``channel`` and ``chaincode``, whether the peer knows a value."""
        self.registry = reg = registry or CollectorRegistry()
        self._known = dict(known or {})
        self._label_limit = label_limit
        self._admitted: dict[str, set[str]] = {name: set() for name in BOUNDED_LABELS}
        self._lock = threading.Lock()

        def metric(kind: Any, name: str, help_text: str, labels: tuple[str, ...]) -> _Bounded:
            return _Bounded(kind(name, help_text, labels, registry=reg), labels, self.bound)

        self.launch_duration = metric(
            Histogram,
            "chaincode_launch_duration",
            "The time to launch a chaincode.",
            ("chaincode", "success"),
        )
        self.launch_failures = metric(
            Counter,
            "chaincode_launch_failures",
            "The number of chaincode launches that have failed.",
            ("chaincode",),
        )
        self.launch_timeouts = metric(
            Counter,
            "chaincode_launch_timeouts",
            "The number of chaincode launches that have timed out.",
            ("chaincode",),
        )
        self.shim_requests = ShimRequests(self.bound)
        reg.register(self.shim_requests)
        self.execute_timeouts = metric(
            Counter,
            "chaincode_execute_timeouts",
            "The number of chaincode executions (Init or Invoke) that have timed out.",
            ("chaincode",),
        )
        self.container_build_duration = metric(
            Histogram,
            "dockercontroller_chaincode_container_build_duration",
            "The time to build a chaincode image in seconds.",
            ("chaincode", "success"),
        )

    def bound(self, label: str, value: str) -> str:
        """``value`` if the peer knows it (and the label has room), else ``unknown``."""
        admitted = self._admitted[label]
        if value in admitted:
            return value
        check = self._known.get(label)
        if check is not None and not check(value):
            return UNKNOWN
        with self._lock:
            if len(admitted) >= self._label_limit:
                return UNKNOWN
            admitted.add(value)
        return value

    def shim_request(
        self, type_name: str, channel: str, chaincode: str
    ) -> Callable[[bool, float], None]:
        """Count a received shim request; returns ``done(success, seconds)`` to complete it."""
        return self.shim_requests.received(type_name, channel, chaincode)

    def observe_container_build(self, chaincode: str, success: bool, seconds: float) -> None:
        """Fabric's ``dockercontroller_chaincode_container_build_duration``: one image build."""
        self.container_build_duration.labels(chaincode, "true" if success else "false").observe(
            seconds
        )

    def exposition(self) -> bytes:
        """The Prometheus text format as Fabric's peer writes it (see the module doc)."""
        lines: list[str] = []
        for family in self.registry.collect():
            samples = [s for s in family.samples if not s.name.endswith("_created")]
            if not samples:  # Go's client leaves out a vector with no series yet
                continue
            name = family.name
            help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {family.type}")
            for sample in samples:
                sample_name = name if sample.name == name + "_total" else sample.name
                labels = sorted((k, v) for k, v in sample.labels.items() if k != "le")
                if "le" in sample.labels:
                    labels.append(("le", go_float(float(sample.labels["le"]))))
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{sample_name}{{{text}}} {go_float(sample.value)}")
        return ("\n".join(lines) + "\n").encode() if lines else b""


SHIM_LABELS = ("type", "channel", "chaincode")
DURATION_BOUNDS = Histogram.DEFAULT_BUCKETS  # the last is +Inf: every value has a bucket
_LE = tuple(floatToGoString(bound) for bound in DURATION_BOUNDS)


class ShimRequests:
    """Fabric's three shim request metrics (``chaincode_shim_requests_received``,
    ``_completed``, ``chaincode_shim_request_duration``) as one prometheus_client collector.

    Every shim request updates all three, on the thread that serves the chaincode. Through
    prometheus_client's children that costs about 3 us a request (three calls, each with its
    own lock and checks); here it is a dict update or two under one lock, and the registry
    builds the metric families from these counts when it is collected (a scrape)."""

    def __init__(self, bound: Callable[[str, str], str]) -> None:
        self._bound = bound
        self._lock = threading.Lock()
        # Raw labels -> bounded labels, for admitted values only (made-up ones stay out).
        self._labels: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        self._received: dict[tuple[str, str, str], int] = {}
        # labels + (success,) -> [count, sum of seconds, count per bucket (not cumulative)]
        self._completed: dict[tuple[str, ...], list[Any]] = {}

    def received(
        self, type_name: str, channel: str, chaincode: str
    ) -> Callable[[bool, float], None]:
        raw = (type_name, channel, chaincode)
        labels = self._labels.get(raw)
        if labels is None:
            labels = (
                type_name,
                self._bound("channel", channel),
                self._bound("chaincode", chaincode),
            )
            if labels == raw:
                self._labels[raw] = labels
        with self._lock:
            received = self._received
            received[labels] = received.get(labels, 0) + 1
        return partial(self._completed_one, labels)

    def _completed_one(self, labels: tuple[str, str, str], success: bool, seconds: float) -> None:
        key = (*labels, "true" if success else "false")
        bucket = 2 + bisect_left(DURATION_BOUNDS, seconds)
        with self._lock:
            row = self._completed.get(key)
            if row is None:
                row = self._completed[key] = [0, 0.0] + [0] * len(DURATION_BOUNDS)
            row[0] += 1
            row[1] += seconds
            row[bucket] += 1

    def describe(self) -> list[Metric]:
        return list(self._families({}, {}))

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            received = dict(self._received)
            completed = {key: list(row) for key, row in self._completed.items()}
        return self._families(received, completed)

    @staticmethod
    def _families(
        received: dict[tuple[str, str, str], int], completed: dict[tuple[str, ...], list[Any]]
    ) -> Iterator[Metric]:
        counts = CounterMetricFamily(
            "chaincode_shim_requests_received",
            "The number of chaincode shim requests received.",
            labels=SHIM_LABELS,
        )
        for labels, count in received.items():
            counts.add_metric(labels, count)
        yield counts
        done = CounterMetricFamily(
            "chaincode_shim_requests_completed",
            "The number of chaincode shim requests completed.",
            labels=(*SHIM_LABELS, "success"),
        )
        durations = HistogramMetricFamily(
            "chaincode_shim_request_duration",
            "The time to complete chaincode shim requests.",
            labels=(*SHIM_LABELS, "success"),
        )
        for key, row in completed.items():
            done.add_metric(key, row[0])
            durations.add_metric(key, list(zip(_LE, accumulate(row[2:]), strict=True)), row[1])
        yield done
        yield durations


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def go_float(value: float) -> str:
    """``value`` as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` writes it (the Prometheus
    client's format): shortest digits, an exponent below 1e-4 and from 1e6 up."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    point = len(digits) + exponent - 1  # decimal exponent of the first digit
    text = "".join(map(str, digits))
    if point < -4 or point >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        body = f"{mantissa}e{'-' if point < 0 else '+'}{abs(point):02d}"
    elif exponent >= 0:
        body = text + "0" * exponent
    elif point >= 0:
        body = text[: point + 1] + "." + text[point + 1 :]
    else:
        body = "0." + "0" * (-point - 1) + text
    return ("-" if sign else "") + body
