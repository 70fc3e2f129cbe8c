"""Presenting a run: the text table, the markdown results file, JSON and the PNG plot."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procinfo import describe_cpus, short_placement

Row = Sequence[str]


def _fmt(value: Any, spec: str = ".1f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:{spec}}{suffix}"


def _pct(value: Any) -> str:
    return _fmt(value * 100 if value is not None else None, ".0f", "%")


def _times(value: Any) -> str:
    return _fmt(value, ".2f", "x")


def _numeric(cell: str) -> bool:
    return cell == "-" or cell[:1].isdigit()


def _table(headers: Row, rows: Sequence[Row], markdown: bool = False) -> list[str]:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return lines + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    numeric = [all(_numeric(r[i]) for r in rows) for i in range(len(headers))]

    def line(cells: Row) -> str:
        out = [
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(cells, widths, numeric, strict=True)
        ]
        return "  " + "  ".join(out).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def _errors(row: dict[str, Any]) -> str:
    errors = row.get("errors", 0) or 0
    outside = row.get("errors_outside_window", 0) or 0
    return str(errors) + (f" (+{outside})" if outside else "")


def sections(results: dict[str, Any], markdown: bool = False) -> list[tuple[str, list[str]]]:
    """[(title, table lines)] for every section that has figures."""
    out: list[tuple[str, list[str]]] = []
    if results.get("gateway"):
        from bench.gateway import table

        headers, rows = table(results)
        costs = results.get("gateway_crypto", {})
        title = (
            "Gateway: signed proposals over gRPC, next to a bare signed gRPC call "
            f"(P-256 sign {costs.get('sign_us', '-')} us, verify {costs.get('verify_us', '-')} "
            f"us, MSP chain check {costs.get('validate_us', '-')} us)"
        )
        out.append((title, _table(headers, rows, markdown)))
    prims = results.get("primitives", [])
    if prims:
        rows = [
            [
                p["name"],
                _fmt(p["p50_us"]),
                _fmt(p["p99_us"]),
                _fmt(p["ops_per_s"], ".0f"),
                _fmt(p["peer_cpu_us"]),
                _fmt(p["chaincode_cpu_us"]),
                short_placement(p["placement"]),
            ]
            for p in prims
        ]
        headers = ["primitive", "p50 us", "p99 us", "ops/s", "this us/op", "child us/op"]
        out.append(
            (
                "Raw primitives (one round trip at a time)",
                _table([*headers, "placement"], rows, markdown),
            )
        )
    ceilings = results.get("ceilings", [])
    if ceilings:
        rows = [
            [
                c["name"],
                str(c["rounds"]),
                str(c["clients"]),
                _fmt(c["tps"], ".0f"),
                _pct(c["spread"]),
                _fmt(c["p50_ms"], ".3f"),
                _fmt(c["p99_ms"], ".3f"),
                _fmt(c["peer_cpu_us"], ".0f"),
                _fmt(c["chaincode_cpu_us"], ".0f"),
                _errors(c),
                short_placement(c["placement"]),
            ]
            for c in sorted(ceilings, key=lambda c: (c["transport"], c["rounds"], c["clients"]))
        ]
        headers = ["bare invoke", "round trips", "clients", "tx/s", "spread", "p50 ms"]
        headers += ["p99 ms", "this us/tx", "child us/tx", "errors", "placement"]
        out.append(("Ceilings: bare invokes, minimal code", _table(headers, rows, markdown)))
    tx = results.get("transactions", [])
    if tx:
        rows = []
        for t in tx:
            ceiling = t.get("ceiling") or {}
            ratio = t.get("ratio") or {}
            rows.append(
                [
                    t["runtime"] + (" signed" if t["signed"] else ""),
                    t["workload"],
                    str(t["clients"]),
                    _fmt(t["tps"], ".0f"),
                    _pct(t["spread"]),
                    _fmt(ceiling.get("tps"), ".0f"),
                    _pct(ratio.get("tps")),
                    _fmt(t["p50_ms"], ".3f"),
                    _fmt(ceiling.get("p50_ms"), ".3f"),
                    _times(ratio.get("p50")),
                    _fmt(t["p95_ms"], ".2f"),
                    _fmt(t["p99_ms"], ".2f"),
                    _fmt(t["peer_cpu_us"], ".0f"),
                    _fmt(t["chaincode_cpu_us"], ".0f"),
                    _fmt(ceiling.get("total_cpu_us"), ".0f"),
                    _times(ratio.get("cpu")),
                    _errors(t),
                    short_placement(t["placement"]),
                ]
            )
        headers = ["runtime", "workload", "clients", "tx/s", "spread", "bare tx/s", "ratio"]
        headers += ["p50 ms", "bare p50", "ratio", "p95 ms", "p99 ms", "peer us/tx"]
        headers += ["cc us/tx", "bare us/tx", "ratio", "errors", "placement"]
        out.append(
            (
                "Transactions: ours next to the bare invoke of the same transport, round trips "
                "and clients (us/tx = CPU per transaction; bare = this + child)",
                _table(headers, rows, markdown),
            )
        )
    memory = results.get("memory_after_load", [])
    if memory:
        rows = [
            [m["chaincode"], str(m["pid"]), _fmt(m["rss_mb"]), _fmt(m["pss_mb"])] for m in memory
        ]
        out.append(
            (
                "Memory after the transaction load",
                _table(["process", "pid", "RSS MB", "PSS MB"], rows, markdown),
            )
        )
    launch = results.get("launch", [])
    if launch:
        rows = [
            [
                row["runtime"],
                row["kind"],
                str(len(row["samples_ms"])),
                _fmt(row["p50_ms"]),
                _fmt(row["min_ms"]),
                _fmt(row["max_ms"]),
                str(row["failures"]),
                _fmt(row["rss_mb"]),
                _fmt(row["pss_mb"]),
                short_placement(row["placement"]),
            ]
            for row in launch
        ]
        headers = ["runtime", "kind", "n", "p50 ms", "min ms", "max ms", "failures"]
        headers += ["RSS MB", "PSS MB", "placement"]
        out.append(
            (
                "Launch -> READY (cold: new peer; warm: running peer) and memory per chaincode "
                "process right after READY",
                _table(headers, rows, markdown),
            )
        )
    scaling = results.get("scaling", [])
    if scaling:
        rows = []
        for row in scaling:
            same = [r for r in scaling if r["runtime"] == row["runtime"]]
            base = min(same, key=lambda r: r["target_live"])
            vs = (
                row["total_cpu_us"] / base["total_cpu_us"]
                if row.get("total_cpu_us") and base.get("total_cpu_us")
                else None
            )
            rows.append(
                [
                    row["runtime"],
                    str(row["live"]),
                    _fmt(row["launch_seconds"], ".2f"),
                    str(row["launch_failures"]),
                    _fmt(row.get("tps"), ".0f"),
                    _fmt(row.get("p50_ms"), ".3f"),
                    _fmt(row.get("p99_ms"), ".2f"),
                    _fmt(row.get("peer_cpu_us"), ".0f"),
                    _fmt(row.get("chaincode_cpu_us"), ".0f"),
                    _fmt(row.get("total_cpu_us"), ".0f"),
                    _times(vs),
                    _fmt(row["rss_mb_per_process"]),
                    _fmt(row["pss_mb_per_process"]),
                    _fmt(row["pss_mb_total"], ".0f"),
                    _errors(row) if "errors" in row else "-",
                    short_placement(row["placement"]),
                ]
            )
        headers = ["runtime", "live", "launch s", "failed", "tx/s", "p50 ms", "p99 ms"]
        headers += ["peer us/tx", "cc us/tx", "total us/tx", "vs fewest", "RSS MB/proc"]
        headers += ["PSS MB/proc", "PSS MB all", "errors", "placement"]
        clients = scaling[0].get("clients")
        out.append(
            (
                f"Scaling with live chaincodes (read-write, {clients} clients spread over all)",
                _table(headers, rows, markdown),
            )
        )
    goals = results.get("targets", [])
    if goals:
        rows = [[t["status"], t["name"], t["goal"], t["measured"]] for t in goals]
        out.append(("Targets", _table(["status", "target", "goal", "measured"], rows, markdown)))
    return out


def header_lines(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    plan = m.get("placement_plan", {})
    end = m.get("loadavg_end")
    lines = [
        f"ccactors bench, {m['date']} on {m['hostname']}: {m['cpu_model']}, "
        f"{m['cpu_count']} CPUs (usable {describe_cpus(m['usable_cpus'])}), "
        f"{m['memory_mb']} MB, Linux {m['kernel']}, Python {m['python']}, git {m['git']}",
        f"placement: {'pinned' if plan.get('pinned') else 'not pinned'} "
        f"(peer CPUs {describe_cpus(plan.get('peer_cpus', []))}, chaincode CPUs "
        f"{describe_cpus(plan.get('chaincode_cpus', []))}); load average at start "
        f"{' '.join(str(x) for x in m['loadavg_start'])}"
        + (f", at end {' '.join(str(x) for x in end)}" if end else ""),
    ]
    for key, text in results["method"].items():
        lines.append(f"{key}: {text}")
    return lines


def text(results: dict[str, Any]) -> str:
    lines = header_lines(results)
    for title, table in sections(results):
        lines += ["", title, *table]
    for skipped in results.get("skipped", []):
        lines.append(f"skipped runtime {skipped['runtime']}: {skipped['reason']}")
    for failure in results.get("launch_errors", []):
        lines.append(f"launch of {failure['chaincode']} failed: {failure['error']}")
    for failure in results.get("failures", []):
        lines.append(f"section {failure['section']} FAILED: {failure['error']}")
    if "seconds" in results:
        lines.append(f"\nran for {results['seconds']:.0f} s")
    return "\n".join(lines)


def markdown(results: dict[str, Any], plot: str | None = None, notes: Sequence[str] = ()) -> str:
    m = results["machine"]
    lines = [
        "# ccactors benchmark results",
        "",
        f"Generated by `{results.get('command', 'ccactors bench')}` in {results['seconds']:.0f} s"
        f" on {m['date']}. Regenerate with `make bench`.",
        "",
        "The machine is shared and noisy: read the ratios (ours / bare primitive measured in the "
        "same run, a moment apart) rather than the absolute figures, and compare CPU per "
        "transaction, which noise disturbs least.",
        *(f"\n{note}" for note in notes),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    plan = m.get("placement_plan", {})
    for key, value in (
        ("host", m["hostname"]),
        ("CPU", f"{m['cpu_model']}, {m['cpu_count']} CPUs"),
        ("memory", f"{m['memory_mb']} MB"),
        ("OS", m["os"]),
        ("Python", f"{m['implementation']} {m['python']}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)),
        ("git", m["git"]),
        (
            "placement",
            f"{'pinned' if plan.get('pinned') else 'not pinned'}: peer CPUs "
            f"{describe_cpus(plan.get('peer_cpus', []))}, chaincode CPUs "
            f"{describe_cpus(plan.get('chaincode_cpus', []))}",
        ),
        (
            "load average",
            f"start {m['loadavg_start']}, end {m.get('loadavg_end')}",
        ),
    ):
        lines.append(f"| {key} | {value} |")
    lines += ["", "## Method", ""]
    lines += [f"- **{key}**: {value}" for key, value in results["method"].items()]
    if plot:
        lines += ["", f"![throughput and latency]({plot})"]
    for title, table in sections(results, markdown=True):
        lines += ["", f"## {title}", "", *table]
    for skipped in results.get("skipped", []):
        lines.append(f"\nSkipped runtime {skipped['runtime']}: {skipped['reason']}")
    for failure in results.get("failures", []):
        lines.append(f"\nSection {failure['section']} FAILED: {failure['error']}")
    return "\n".join(lines) + "\n"


def to_json(results: dict[str, Any]) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 4)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(results), indent=2)


def plot(
    results: dict[str, Any], samples: dict[tuple[Any, ...], list[float]], path: str | Path
) -> str | None:
    """Throughput vs clients per workload (ours solid, bare ceiling dashed) and latency
    distributions (read-write at the fewest and most clients). None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tx = [t for t in results.get("transactions", []) if not t["signed"]]
    if not tx:
        return None
    workloads = list(dict.fromkeys(t["workload"] for t in tx))
    runtimes = list(dict.fromkeys(t["runtime"] for t in tx))
    clients = sorted({t["clients"] for t in tx})
    colours = {rt: f"C{i}" for i, rt in enumerate(runtimes)}
    fig = plt.figure(figsize=(4 * max(len(workloads), 2), 8.5))
    grid = fig.add_gridspec(2, max(len(workloads), 2))
    for i, wl in enumerate(workloads):
        ax = fig.add_subplot(grid[0, i])
        for rt in runtimes:
            rows = sorted(
                (t for t in tx if t["runtime"] == rt and t["workload"] == wl),
                key=lambda t: t["clients"],
            )
            xs = [t["clients"] for t in rows]
            ax.plot(xs, [t["tps"] for t in rows], "o-", color=colours[rt], label=rt)
            bare = [(t["clients"], t["ceiling"]["tps"]) for t in rows if t.get("ceiling")]
            if bare:
                name = rows[0]["ceiling"]["name"]
                ax.plot(*zip(*bare, strict=True), "s--", color=colours[rt], alpha=0.6, label=name)
        ax.set_xscale("log", base=2)
        ax.set_xticks(clients, [str(c) for c in clients])
        ax.set_title(wl)
        ax.set_xlabel("clients (closed loop)")
        ax.set_ylabel("tx/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for j, count in enumerate(sorted({clients[0], clients[-1]})):
        ax = fig.add_subplot(grid[1, j])
        for rt in runtimes:
            transport = next(t["transport"] for t in tx if t["runtime"] == rt)
            for key, style, label in (
                (("ours", rt, "readwrite", count, False), "-", rt),
                (("bare", transport, 2, count), "--", f"bare {transport}"),
            ):
                values = sorted(samples.get(key, []))
                if not values:
                    continue
                ys = [(k + 1) / len(values) for k in range(len(values))]
                ax.plot([v * 1e3 for v in values], ys, style, color=colours[rt], label=label)
        ax.set_xscale("log")
        ax.set_title(f"read-write latency, {count} client(s)")
        ax.set_xlabel("latency ms (log)")
        ax.set_ylabel("fraction of transactions")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    m = results["machine"]
    fig.suptitle(
        f"ccactors bench {m['date']} - {m['cpu_model']}, {m['cpu_count']} CPUs, "
        f"{'pinned' if m.get('placement_plan', {}).get('pinned') else 'not pinned'}",
        fontsize=10,
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return str(out)
