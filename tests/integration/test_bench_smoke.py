"""``ccactors bench --quick``: it runs, reports every section with sane fields (not speed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import SCHEMA, report
from bench.driver import percentile
from bench.procinfo import describe_cpus

RUNTIMES = ("system", "system-greenlets", "process")
LAUNCHED = ("system", "process")  # --quick measures these launches
WORKLOADS = ("read", "readwrite", "range", "richquery", "private", "cc2cc")
CLIENTS = (1, 8)  # --quick


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "actors.cli", "bench", "--quick", "--json", "--results", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "[" in proc.stderr, "progress lines go to stderr"
    return json.loads(proc.stdout), out


def _positive(row: dict[str, Any], *keys: str) -> None:
    for key in keys:
        assert isinstance(row[key], int | float) and row[key] > 0, (key, row)


def _placement(row: dict[str, Any]) -> None:
    where = row["placement"]
    assert where["pinned"] is False
    assert where["peer_cpus"], row


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_quick_run_reports_every_section(run: tuple[dict[str, Any], Path]) -> None:
    results, out = run
    assert results["schema"] == SCHEMA
    assert results["failures"] == []
    machine = results["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"] and machine["usable_cpus"]
    assert {"scope", "signing", "driver", "statistics", "cpu", "ceilings"} <= set(results["method"])
    assert "execute only" in results["method"]["scope"]

    names = [p["name"] for p in results["primitives"]]
    assert len(names) == 3 and any("pykka" in n for n in names) and any("gRPC" in n for n in names)
    for prim in results["primitives"]:
        _positive(prim, "p50_us", "p99_us", "ops_per_s")
        _placement(prim)

    ceilings = {
        (c["transport"], c["rounds"], c["records"], c["clients"]): c for c in results["ceilings"]
    }
    # read; readwrite and private; range; richquery; cc2cc
    shapes = ((1, 0), (2, 0), (2, 100), (2, 10), (3, 0))
    assert len(ceilings) == 2 * len(shapes) * len(CLIENTS)
    for transport in ("pipe", "grpc"):
        for rounds, records in shapes:
            for clients in CLIENTS:
                row = ceilings[(transport, rounds, records, clients)]
                _positive(row, "tps", "p50_ms", "total_cpu_us")
                assert row["errors"] == 0
                assert (row["record_bytes"] > 0) == (records > 0) and row["result_bytes"] > 0

    cells = {
        (t["runtime"], t["workload"], t["clients"], t["signed"]): t for t in results["transactions"]
    }
    for runtime in RUNTIMES:
        for workload in WORKLOADS:
            for clients in CLIENTS:
                row = cells[(runtime, workload, clients, False)]
                _positive(row, "tps", "p50_ms", "peer_cpu_us", "completed")
                assert row["p99_ms"] >= row["p95_ms"] >= row["p50_ms"]
                assert row["chaincode_cpu_us"] >= 0
                assert row["errors"] == 0, row["error_kinds"]
                carried = (row["ceiling"]["rounds"], row["ceiling"]["records"])
                assert carried == {"range": (2, 100), "richquery": (2, 10)}.get(
                    workload, (3 if workload == "cc2cc" else 1 if workload == "read" else 2, 0)
                )
                _positive(row["ratio"], "tps", "p50", "cpu")
                _placement(row)
                assert row["placement"]["chaincode_pids"]
    assert cells[("system", "readwrite", 1, True)]["errors"] == 0  # the signed-proposal row

    assert {m["chaincode"] for m in results["memory_after_load"]} >= {"bench-system"}
    launch = {(r["runtime"], r["kind"]): r for r in results["launch"]}
    for runtime in LAUNCHED:
        for kind in ("cold", "warm"):
            row = launch[(runtime, kind)]
            assert row["failures"] == 0
            _positive(row, "p50_ms", "rss_mb")

    scaling = results["scaling"]
    assert [r["live"] for r in scaling] == [1, 3]
    for row in scaling:
        assert row["launch_failures"] == 0 and row["errors"] == 0
        _positive(row, "tps", "total_cpu_us", "pss_mb_total")

    gateway = {r["row"]: r for r in results["gateway"]}
    assert set(gateway) == {"bare", "evaluate", "submit"}
    for row in gateway.values():
        _positive(row, "tps", "p50_ms", "cpu_us_per_tx")
        assert 0 < row["crypto_share"] < 1
    assert gateway["evaluate"]["throughput_vs_bare"] > 0
    assert all(results["gateway_crypto"][k] > 0 for k in ("sign_us", "verify_us", "validate_us"))

    targets = results["targets"]
    assert len(targets) == 12
    assert {t["status"] for t in targets} <= {"PASS", "MISS", "SKIP"}
    # --quick has no 64-client cells: those targets say so instead of guessing.
    assert targets[0]["status"] == "SKIP"
    launch_target = next(t for t in targets if "system chaincode" in t["name"])
    assert launch_target["status"] in ("PASS", "MISS") and launch_target["ratio"] > 0

    # The files `make bench` publishes, with the same figures as stdout.
    assert json.loads((out / "results.json").read_text()) == results
    readme = (out / "README.md").read_text()
    assert "## Machine" in readme and "## Targets" in readme and machine["cpu_model"] in readme


def test_text_and_markdown_render_every_section(run: tuple[dict[str, Any], Path]) -> None:
    results, _ = run
    text = report.text(results)
    for title in (
        "Raw primitives",
        "Ceilings",
        "Transactions",
        "Launch",
        "Scaling",
        "Gateway",
        "Targets",
    ):
        assert title in text
    assert "PASS" in text or "MISS" in text
    assert re.search(r"\| status +\| target +\| goal +\| measured +\|", report.markdown(results))


def test_plot(run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    import matplotlib  # noqa: F401  (the plot needs it; installed by the test extra)

    results, out = run
    assert (out / "bench.png").stat().st_size > 0
    path = report.plot(results, tmp_path / "again.png")
    assert path is not None and Path(path).stat().st_size > 0
    # Lines that can be told apart: one legend for the figure, each runtime and each bare
    # invoke once in it, and a panel only where there are figures.
    fig = report.figure(results)
    (legend,) = fig.legends
    labels = [text.get_text() for text in legend.get_texts()]
    bare = {c["name"] for c in results["ceilings"]}
    assert sorted(labels) == sorted({*RUNTIMES, *bare})
    assert len(fig.axes) == 3 * len(WORKLOADS)
    for ax in fig.axes:
        assert ax.get_legend() is None
        assert any(len(line.get_xdata()) == len(CLIENTS) for line in ax.get_lines()), ax.title
    assert [ax.get_yscale() for ax in fig.axes[: len(WORKLOADS)]] == ["log"] * len(WORKLOADS)


def test_render_again_from_results_json(run: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    """``ccactors bench --render`` makes the same page from the saved results, running nothing."""
    _, out = run
    again = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "-m", "actors.cli", "bench", "--render", str(out / "results.json"),
         "--results", str(again)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Verdict: ") and proc.stderr == ""
    assert (again / "README.md").read_text() == (out / "README.md").read_text()
    assert (again / "bench.png").stat().st_size > 0
    assert not (again / "results.json").exists()  # rendered from, not written
    bad = subprocess.run(
        [sys.executable, "-m", "actors.cli", "bench", "--render", str(tmp_path / "none.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1
    missing = tmp_path / "none.json"
    assert bad.stderr.strip() == (
        f"ccactors bench: --render: cannot read {missing}: No such file or directory"
    )


def test_column_names_keep_one_meaning(run: tuple[dict[str, Any], Path]) -> None:
    results, out = run
    readme = (out / "README.md").read_text()
    assert readme.splitlines()[2] == f"**{report.verdict(results)}.**"
    for markdown in (False, True):
        for title, table in report.sections(results, markdown):
            header = next(line for line in table if "|" in line or line.startswith("  "))
            names = [
                n.strip()
                for n in header.strip().strip("|").split("|" if markdown else "  ")
                if n.strip()
            ]
            assert "ratio" not in names and len(names) == len(set(names)), (title, names)
    # every row here ran in one placement: it is said once per table, in words
    assert "Placement of every row: not pinned: peer on CPU" in readme
    assert "free p" not in readme


def test_helpers() -> None:
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    assert describe_cpus([0, 1, 2, 5]) == "0-2,5"
    assert describe_cpus([]) == "-"
