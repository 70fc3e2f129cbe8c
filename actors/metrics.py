"""Prometheus metrics with Fabric's chaincode metric names (``core/chaincode/metrics.go``).

Each :class:`~actors.support.ChaincodeSupport` gets its own registry, so several peers (or
tests) in one process do not collide. prometheus_client appends ``_total`` to counters in the
exposition format; the base names are Fabric's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.launch_duration = Histogram(
            "chaincode_launch_duration",
            "The time to launch a chaincode.",
            ["chaincode", "success"],
            registry=reg,
        )
        self.launch_failures = Counter(
            "chaincode_launch_failures",
            "The number of chaincode launches that have failed.",
            ["chaincode"],
            registry=reg,
        )
        self.launch_timeouts = Counter(
            "chaincode_launch_timeouts",
            "The number of chaincode launches that have timed out.",
            ["chaincode"],
            registry=reg,
        )
        self.shim_requests_received = Counter(
            "chaincode_shim_requests_received",
            "The number of chaincode shim requests received.",
            ["type", "channel", "chaincode"],
            registry=reg,
        )
        self.shim_requests_completed = Counter(
            "chaincode_shim_requests_completed",
            "The number of chaincode shim requests completed.",
            ["type", "channel", "chaincode", "success"],
            registry=reg,
        )
        self.shim_request_duration = Histogram(
            "chaincode_shim_request_duration",
            "The time to complete chaincode shim requests.",
            ["type", "channel", "chaincode", "success"],
            registry=reg,
        )
        self.execute_timeouts = Counter(
            "chaincode_execute_timeouts",
            "The number of chaincode executions (Init or Invoke) that have timed out.",
            ["chaincode"],
            registry=reg,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: the lookup costs more than the increment."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def shim_request(
        self, type_name: str, channel: str, chaincode: str
    ) -> Callable[[bool, float], None]:
        """Count a received shim request; returns ``done(success, seconds)`` to complete it."""
        self.child(self.shim_requests_received, type_name, channel, chaincode).inc()

        def done(success: bool, seconds: float) -> None:
            flag = "true" if success else "false"
            self.child(self.shim_requests_completed, type_name, channel, chaincode, flag).inc()
            self.child(self.shim_request_duration, type_name, channel, chaincode, flag).observe(
                seconds
            )

        return done
