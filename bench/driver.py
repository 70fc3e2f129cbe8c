"""Closed-loop load generation: N clients, each starting its next transaction when its previous
one ends, for a warm-up and then a measured window.

Two drivers, chosen with ``--driver``:

* ``async`` (default): one load-generator thread keeps N transactions in flight through
  ``execute_async`` futures. A future's done-callback only puts a tuple on a queue (it runs on
  whichever thread resolved the future, an actor thread for us), and the driver thread starts
  that client's next transaction. No thread per client, so 256 clients cost what 1 does.
* ``threads``: one thread per client blocking on ``future.result()``, as a thread-per-request
  server would. 256 Python threads contend for the GIL, which the figures then include.

The measured window is fixed in time ([start + warmup, start + warmup + duration)): a
transaction counts if it completes inside it, and CPU counters are read at its edges.
Throughput counts successful transactions only; failures are counted by kind.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

Issue = Callable[[int], "Future[Any]"]
"""Start one transaction for client ``i``; returns its future."""
Check = Callable[[Any], str | None]
"""Inspect a result: None when it is a success, else a short description of the failure."""
CpuProbe = Callable[[], tuple[float, float]]
"""(peer CPU seconds, chaincode CPU seconds), cumulative."""

STALL_SECONDS = 30.0
DRIVERS = ("async", "threads")


@dataclass
class Window:
    """What one measured window gave."""

    clients: int
    seconds: float
    completed: int
    latencies: list[float]  # seconds, successful transactions completing in the window
    errors: Counter[str] = field(default_factory=Counter)
    errors_outside: int = 0  # failures during warm-up or drain (reported, not in the rates)
    peer_cpu: float = 0.0
    chaincode_cpu: float = 0.0

    @property
    def tps(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        n = self.completed
        return {
            "tps": self.tps,
            "completed": n,
            "seconds": self.seconds,
            "p50_ms": percentile(lat, 0.50) * 1e3,
            "p95_ms": percentile(lat, 0.95) * 1e3,
            "p99_ms": percentile(lat, 0.99) * 1e3,
            "peer_cpu_us": self.peer_cpu / n * 1e6 if n else None,
            "chaincode_cpu_us": self.chaincode_cpu / n * 1e6 if n else None,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "errors_outside_window": self.errors_outside,
        }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def describe_error(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:70]}" if text else type(exc).__name__


def run(
    issue: Issue,
    check: Check,
    clients: int,
    warmup: float,
    duration: float,
    cpu: CpuProbe,
    driver: str = "async",
) -> Window:
    if clients < 1:
        raise ValueError("clients must be at least 1")
    if driver == "async":
        return _run_async(issue, check, clients, warmup, duration, cpu)
    if driver == "threads":
        return _run_threads(issue, check, clients, warmup, duration, cpu)
    raise ValueError(f"unknown driver {driver!r} (one of {DRIVERS})")


def _outcome(check: Check, fut: Future[Any] | None, exc: BaseException | None) -> str | None:
    if exc is None and fut is not None:
        exc = fut.exception()
        if exc is None:
            return check(fut.result())
    assert exc is not None
    return describe_error(exc)


def _run_async(
    issue: Issue, check: Check, clients: int, warmup: float, duration: float, cpu: CpuProbe
) -> Window:
    done: queue.SimpleQueue[tuple[int, float, float, Any, Any]] = queue.SimpleQueue()
    put = done.put
    perf = time.perf_counter

    def start(client: int) -> None:
        began = perf()
        try:
            fut = issue(client)
        except Exception as exc:
            put((client, began, perf(), None, exc))
            return
        fut.add_done_callback(lambda f: put((client, began, perf(), f, None)))

    window = Window(clients, duration, 0, [])
    latencies = window.latencies
    errors = window.errors
    first = perf()
    opens, closes = first + warmup, first + warmup + duration
    cpu_open = cpu_close = None
    in_flight = clients
    for client in range(clients):
        start(client)
    while in_flight:
        try:
            client, began, ended, fut, exc = done.get(timeout=STALL_SECONDS)
        except queue.Empty:
            errors[f"stalled: no completion for {STALL_SECONDS:g} s"] += in_flight
            break
        in_flight -= 1
        if cpu_open is None and ended >= opens:
            cpu_open = cpu()
        if cpu_close is None and ended >= closes:
            cpu_close = cpu()
        failure = _outcome(check, fut, exc)
        if opens <= ended < closes:
            if failure is None:
                window.completed += 1
                latencies.append(ended - began)
            else:
                errors[failure] += 1
        elif failure is not None:
            window.errors_outside += 1
        if ended < closes:
            start(client)
            in_flight += 1
    if cpu_open is None:
        cpu_open = cpu()
    if cpu_close is None:
        cpu_close = cpu()
    window.peer_cpu = cpu_close[0] - cpu_open[0]
    window.chaincode_cpu = cpu_close[1] - cpu_open[1]
    return window


def _run_threads(
    issue: Issue, check: Check, clients: int, warmup: float, duration: float, cpu: CpuProbe
) -> Window:
    perf = time.perf_counter
    window = Window(clients, duration, 0, [])
    lock = threading.Lock()
    go = threading.Event()
    first = perf() + 0.05 * clients / 64 + 0.01  # every thread started before the clock runs
    opens, closes = first + warmup, first + warmup + duration

    def client_loop(client: int) -> None:
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        outside = 0
        go.wait()
        while True:
            began = perf()
            try:
                failure = check(issue(client).result(STALL_SECONDS))
            except Exception as exc:
                failure = describe_error(exc)
            ended = perf()
            if opens <= ended < closes:
                if failure is None:
                    latencies.append(ended - began)
                else:
                    errors[failure] += 1
            elif failure is not None:
                outside += 1
            if ended >= closes:
                break
        with lock:
            window.latencies.extend(latencies)
            window.completed += len(latencies)
            window.errors.update(errors)
            window.errors_outside += outside

    threads = [
        threading.Thread(target=client_loop, args=(c,), name=f"bench-client-{c}", daemon=True)
        for c in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, first - perf()))
    go.set()
    time.sleep(max(0.0, opens - perf()))
    cpu_open = cpu()
    time.sleep(max(0.0, closes - perf()))
    cpu_close = cpu()
    for thread in threads:
        thread.join(STALL_SECONDS + 5)
    window.peer_cpu = cpu_close[0] - cpu_open[0]
    window.chaincode_cpu = cpu_close[1] - cpu_open[1]
    return window


def ping_pong(
    op: Callable[[], Any], duration: float, cpu: CpuProbe, warmup: float = 0.2
) -> dict[str, Any]:
    """Round trips of a synchronous operation, back to back on this thread."""
    perf = time.perf_counter
    end_warmup = perf() + warmup
    while perf() < end_warmup:
        op()
    samples: list[float] = []
    append = samples.append
    cpu_open = cpu()
    began = perf()
    end = began + duration
    now = began
    while now < end:
        t = now
        op()
        now = perf()
        append(now - t)
    cpu_close = cpu()
    elapsed = now - began
    samples.sort()
    count = len(samples)
    return {
        "ops_per_s": count / elapsed if elapsed > 0 else 0.0,
        "p50_us": percentile(samples, 0.5) * 1e6,
        "p99_us": percentile(samples, 0.99) * 1e6,
        "count": count,
        "peer_cpu_us": (cpu_close[0] - cpu_open[0]) / count * 1e6 if count else None,
        "chaincode_cpu_us": (cpu_close[1] - cpu_open[1]) / count * 1e6 if count else None,
    }
