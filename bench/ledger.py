"""Ledger micro-benchmark: what durability and snapshot reads cost.

``python -m bench.ledger`` prints two tables:

* commit throughput of a file-backed ledger per sqlite ``synchronous`` level
  (``ledger.sqlite.synchronous``), one transaction of one write per block, as ``serve`` commits;
* a mixed in-memory load: reader threads simulating (2 GET_STATE + a 100-key range each) while
  one thread commits transfers, in simulations and commits per second and in CPU time per
  simulation and per commit (each thread's own CPU time, so other load on the machine does not
  count). Run it on two checkouts (``cd other/checkout && python -m bench.ledger
  --mixed-only``) to compare.

It uses only the ledger's public API, so the same file runs against older code.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from actors.ledger import Ledger, LedgerManager

NS = "bench"
LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")


def commit_rate(directory: Path, level: str, seconds: float) -> dict[str, Any]:
    """Blocks of one single-write transaction committed per second at ``level``."""
    manager = LedgerManager(str(directory / level), synchronous=level)
    ledger = manager.get("bench")
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        txid = f"t{n}"
        sim = ledger.new_simulator(txid)
        sim.put_state(NS, f"key{n % 1000:04d}", b"x" * 100)
        sim.done()
        ledger.commit(txid, sim.get_results())
        n += 1
    elapsed = time.perf_counter() - started
    manager.close()
    return {"synchronous": level, "blocks": n, "blocks_per_s": n / elapsed}


def mixed(seconds: float, readers: int) -> dict[str, Any]:
    """Simulations/s of ``readers`` threads and commits/s of one committer, sharing a ledger."""
    ledger = Ledger("mixed")
    sim = ledger.new_simulator("init")
    sim.put_state(NS, "A", b"1000000")
    sim.put_state(NS, "B", b"1000000")
    for i in range(100):
        sim.put_state(NS, f"r{i:03d}", b"x" * 100)
    sim.done()
    ledger.commit("init", sim.get_results())
    stop = threading.Event()
    counts = {"simulations": 0, "commits": 0, "simulation_cpu": 0.0, "commit_cpu": 0.0}

    def read(worker: int) -> None:
        n = 0
        cpu = time.thread_time()
        while not stop.is_set():
            sim = ledger.new_simulator(f"q{worker}-{n}")
            sim.get_state(NS, "A")
            sim.get_state(NS, "B")
            with sim.get_state_range_scan_iterator(NS, "r", "s") as results:
                for _ in results:
                    pass
            sim.done()
            n += 1
        counts["simulation_cpu"] += time.thread_time() - cpu
        counts["simulations"] += n

    def commit() -> None:
        n = 0
        cpu = time.thread_time()
        while not stop.is_set():
            sim = ledger.new_simulator(f"x{n}")
            a, b = int(sim.get_state(NS, "A")), int(sim.get_state(NS, "B"))
            sim.put_state(NS, "A", str(a - 1).encode())
            sim.put_state(NS, "B", str(b + 1).encode())
            sim.put_state(NS, f"r{n % 100:03d}", str(n).encode())
            sim.done()
            ledger.commit(f"x{n}", sim.get_results())
            n += 1
        counts["commit_cpu"] += time.thread_time() - cpu
        counts["commits"] += n

    threads = [threading.Thread(target=read, args=(w,)) for w in range(readers)]
    threads.append(threading.Thread(target=commit))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "readers": readers,
        "simulations_per_s": counts["simulations"] / elapsed,
        "commits_per_s": counts["commits"] / elapsed,
        "cpu_us_per_simulation": 1e6 * counts["simulation_cpu"] / max(1, counts["simulations"]),
        "cpu_us_per_commit": 1e6 * counts["commit_cpu"] / max(1, counts["commits"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--readers", type=int, default=4, help="reader threads (mixed load)")
    parser.add_argument("--mixed-only", action="store_true", help="skip the durability table")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if not args.mixed_only:
        with tempfile.TemporaryDirectory(prefix="ccactors-ledger-bench-") as tmp:
            out["durability"] = [commit_rate(Path(tmp), level, args.seconds) for level in LEVELS]
    out["mixed"] = mixed(args.seconds, args.readers)
    if args.json:
        print(json.dumps(out))
        return
    for row in out.get("durability", ()):
        print(f"synchronous={row['synchronous']:<6} {row['blocks_per_s']:8.0f} blocks/s")
    m = out["mixed"]
    print(
        f"mixed ({m['readers']} readers + 1 committer): {m['simulations_per_s']:.0f} "
        f"simulations/s, {m['commits_per_s']:.0f} commits/s; CPU "
        f"{m['cpu_us_per_simulation']:.0f} us/simulation, {m['cpu_us_per_commit']:.0f} us/commit"
    )


if __name__ == "__main__":
    main()
