"""The bench's targets read the issue's ratios from the rows, PASS or MISS at the limits."""

from __future__ import annotations

from typing import Any

from bench.runner import Options, targets


def _row(workload: str, clients: int, *, tps: float, p50: float, cpu: float) -> dict[str, Any]:
    bare = {"tps": 10_000.0, "p50_ms": 0.4, "total_cpu_us": 100.0}
    return {
        "runtime": "system",
        "transport": "pipe",
        "workload": workload,
        "clients": clients,
        "signed": False,
        "tps": tps,
        "p50_ms": p50,
        "total_cpu_us": cpu,
        "placement": {},
        "ceiling": bare,
        "ratio": {
            "tps": tps / bare["tps"],
            "p50": p50 / bare["p50_ms"],
            "cpu": cpu / bare["total_cpu_us"],
        },
    }


def _results(cpu_range: float) -> dict[str, Any]:
    return {
        "transactions": [
            _row("readwrite", 64, tps=7_500, p50=1.0, cpu=150),
            _row("readwrite", 1, tps=2_000, p50=0.5, cpu=300),
            _row("range", 64, tps=2_000, p50=5.0, cpu=cpu_range),
        ],
        "ceilings": [
            {"transport": "pipe", "clients": 64, "rounds": 1, "records": 0, "tps": 15_000.0},
            {"transport": "pipe", "clients": 1, "rounds": 1, "records": 0, "p50_ms": 0.25},
        ],
        "launch": [],
        "scaling": [],
    }


def _by_name(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in targets(results, Options())}


def test_cpu_targets_pass_at_their_limit_and_miss_above_it() -> None:
    met = _by_name(_results(cpu_range=300))
    assert met["system readwrite 64 clients CPU/tx vs bare"]["status"] == "PASS"  # 1.5x <= 2x
    assert met["system range 64 clients CPU/tx vs bare"]["status"] == "PASS"  # 3x <= 3x
    missed = _by_name(_results(cpu_range=301))
    assert missed["system range 64 clients CPU/tx vs bare"]["status"] == "MISS"
    assert missed["system cc2cc 64 clients CPU/tx vs bare"]["status"] == "SKIP"


def test_read_write_rows_also_stand_against_the_one_round_trip_bare() -> None:
    found = _by_name(_results(cpu_range=300))
    throughput = found["system read-write 64 clients vs bare actor+pipe invoke"]
    assert throughput["status"] == "PASS"  # 75 % of the 2-round-trip ceiling
    assert "50% of the 1-round-trip bare" in throughput["measured"]
    p50 = found["system read-write 1 client p50 vs bare"]
    assert "2.00x the 1-round-trip bare" in p50["measured"]
