"""Presenting a run: the text table, the markdown results file, JSON and the PNG plot.

Everything here reads only the results dictionary (what ``results.json`` holds), so a report
and its plot can be rendered again from a saved file (``ccactors bench --render FILE``).

Column names keep one meaning each: ``tx/s % of bare`` is a throughput ratio (ours / the bare
invoke, higher is better), ``p50 x bare`` a latency multiple and ``CPU x bare`` a CPU multiple
(lower is better); ``us/tx`` is always CPU microseconds per transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.procinfo import describe_cpus, short_placement

Row = Sequence[str]
PLACEMENT = "placement"


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
    align = [
        "right" if rows and all(_numeric(r[i]) for r in rows) else "left"
        for i in range(len(headers))
    ]
    text = tabulate(
        rows,
        headers,
        tablefmt="github" if markdown else "simple",
        colalign=align,
        disable_numparse=True,
    )
    lines = text.splitlines()
    return lines if markdown else ["  " + line.rstrip() for line in lines]


def _section(
    title: str, headers: Row, rows: Sequence[Row], markdown: bool
) -> tuple[str, list[str]]:
    """A titled table. Its last column is the placement, in words: when every row shares
    one, it is said once under the title instead of on every row."""
    lines: list[str] = []
    if headers and headers[-1] == PLACEMENT and rows:
        places = {r[-1] for r in rows}
        if len(places) == 1:
            lines.append(f"Placement of every row: {places.pop()}.")
            if markdown:
                lines.append("")
            headers, rows = headers[:-1], [r[:-1] for r in rows]
    return title, lines + _table(headers, rows, markdown)


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
        out.append(_section(title, headers, rows, markdown))
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
            _section(
                "Raw primitives (one round trip at a time; us/op = CPU microseconds per round "
                "trip in this process and in the child)",
                [*headers, PLACEMENT],
                rows,
                markdown,
            )
        )
    ceilings = results.get("ceilings", [])
    if ceilings:
        rows = [
            [
                c["name"],
                c.get("carries") or f"{c['rounds']} round trips",
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
            for c in sorted(
                ceilings,
                key=lambda c: (c["transport"], c["rounds"], c.get("records", 0), c["clients"]),
            )
        ]
        headers = ["bare invoke", "carries", "clients", "tx/s", "spread", "p50 ms"]
        headers += ["p99 ms", "this us/tx", "child us/tx", "errors", PLACEMENT]
        out.append(
            _section(
                "Ceilings: bare invokes, minimal code (spread: max-min of the repeats / median)",
                headers,
                rows,
                markdown,
            )
        )
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
        headers = ["runtime", "workload", "clients", "tx/s", "spread", "bare tx/s"]
        headers += ["tx/s % of bare", "p50 ms", "bare p50 ms", "p50 x bare", "p95 ms"]
        headers += ["p99 ms", "peer us/tx", "cc us/tx", "bare us/tx", "CPU x bare", "errors"]
        out.append(
            _section(
                "Transactions: ours next to the bare invoke of the same transport, round trips, "
                "query results and clients (tx/s % of bare: throughput, higher is better; "
                "p50 x bare and CPU x bare: multiples, lower is better; us/tx: CPU "
                "microseconds per transaction, bare = this + child)",
                [*headers, PLACEMENT],
                rows,
                markdown,
            )
        )
    memory = results.get("memory_after_load", [])
    if memory:
        rows = [
            [m["chaincode"], str(m["pid"]), _fmt(m["rss_mb"]), _fmt(m["pss_mb"])] for m in memory
        ]
        out.append(
            _section(
                "Memory after the transaction load",
                ["process", "pid", "RSS MB", "PSS MB"],
                rows,
                markdown,
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
        headers += ["RSS MB", "PSS MB", PLACEMENT]
        out.append(
            _section(
                "Launch -> READY (cold: new peer; warm: running peer) and memory per chaincode "
                "process right after READY",
                headers,
                rows,
                markdown,
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
        headers += ["peer us/tx", "cc us/tx", "total us/tx", "CPU x fewest", "RSS MB/proc"]
        headers += ["PSS MB/proc", "PSS MB all", "errors", PLACEMENT]
        clients = scaling[0].get("clients")
        out.append(
            _section(
                f"Scaling with live chaincodes (read-write, {clients} clients spread over all; "
                "CPU x fewest: total us/tx over that of the fewest live chaincodes)",
                headers,
                rows,
                markdown,
            )
        )
    goals = results.get("targets", [])
    if goals:
        rows = [[t["status"], t["name"], t["goal"], t["measured"]] for t in goals]
        out.append(_section("Targets", ["status", "target", "goal", "measured"], rows, markdown))
    return out


def verdict(results: dict[str, Any]) -> str:
    """One line: how many targets were met and missed, which were missed, what failed."""
    goals = results.get("targets", [])
    met = [t for t in goals if t["status"] == "PASS"]
    missed = [t for t in goals if t["status"] == "MISS"]
    skipped = [t for t in goals if t["status"] not in ("PASS", "MISS")]
    if not goals:
        line = "no targets measured"
    elif not missed:
        line = f"all {len(met)} measured targets met"
    else:
        line = f"{len(met)} of {len(met) + len(missed)} measured targets met, {len(missed)} missed"
        line += " (" + "; ".join(t["name"] for t in missed) + ")"
    if skipped:
        line += f"; {len(skipped)} not measured"
    failures = results.get("failures", [])
    if failures:
        line += f"; {len(failures)} section(s) FAILED: " + ", ".join(f["section"] for f in failures)
    return "Verdict: " + line


def _placement_plan(m: dict[str, Any]) -> str:
    plan = m.get("placement_plan", {})
    return short_placement(
        {
            "pinned": plan.get("pinned"),
            "peer_cpus": plan.get("peer_cpus", []),
            "chaincode_cpus": plan.get("chaincode_cpus", []),
        }
    )


def header_lines(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    end = m.get("loadavg_end")
    lines = [
        verdict(results),
        f"ccactors bench, {m['date']} on {m['hostname']}: {m['cpu_model']}, "
        f"{m['cpu_count']} CPUs (usable {describe_cpus(m['usable_cpus'])}), "
        f"{m['memory_mb']} MB, Linux {m['kernel']}, Python {m['python']}, git {m['git']}",
        f"placement: {_placement_plan(m)}; load average at start "
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
        f"**{verdict(results)}.**",
        "",
        f"Generated by `{results.get('command', 'ccactors bench')}` in {results['seconds']:.0f} s"
        f" on {m['date']}. Regenerate with `make bench`; render this page and the plot again "
        "from results.json with `make bench-report`.",
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
    for key, value in (
        ("host", m["hostname"]),
        ("CPU", f"{m['cpu_model']}, {m['cpu_count']} CPUs"),
        ("memory", f"{m['memory_mb']} MB"),
        ("OS", m["os"]),
        ("Python", f"{m['implementation']} {m['python']}"),
        ("packages", ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)),
        ("git", m["git"]),
        ("placement", _placement_plan(m)),
        (
            "load average",
            f"start {m['loadavg_start']}, end {m.get('loadavg_end')}",
        ),
    ):
        lines.append(f"| {key} | {value} |")
    lines += ["", "## Method", ""]
    lines += [f"- **{key}**: {value}" for key, value in results["method"].items()]
    if plot:
        lines += [
            "",
            f"![throughput, throughput as a share of the bare invoke, and p50 latency as a "
            f"multiple of the bare invoke's, per workload]({plot})",
        ]
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


def figure(results: dict[str, Any]) -> Any:
    """The plot as a matplotlib Figure (None without transactions): per workload, throughput
    against clients (log scale: ours solid per runtime, each bare invoke once, dashed grey),
    throughput as a share of the bare invoke, and p50 latency as a multiple of the bare's.
    One legend for the figure; only workloads that have figures get panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    tx = [t for t in results.get("transactions", []) if not t["signed"] and t.get("tps")]
    if not tx:
        return None
    workloads = list(dict.fromkeys(t["workload"] for t in tx))
    runtimes = list(dict.fromkeys(t["runtime"] for t in tx))
    clients = sorted({t["clients"] for t in tx})
    colours = {rt: f"C{i}" for i, rt in enumerate(runtimes)}
    bare_names = list(dict.fromkeys(t["ceiling"]["name"] for t in tx if t.get("ceiling")))
    bare_styles = {
        name: (shade, marker)
        for name, shade, marker in zip(
            bare_names, ("0.2", "0.55", "0.35", "0.7"), ("s", "D", "^", "v"), strict=False
        )
    }
    rows = (
        ("tx/s (log)", lambda t: t["tps"], "log"),
        ("tx/s % of bare", lambda t: 100 * (t.get("ratio") or {}).get("tps", math.nan), "linear"),
        ("p50 x bare (log)", lambda t: (t.get("ratio") or {}).get("p50", math.nan), "log"),
    )
    fig, axes = plt.subplots(
        len(rows), len(workloads), figsize=(3.6 * len(workloads) + 1, 9.5), squeeze=False
    )
    handles: dict[str, Any] = {}
    for column, wl in enumerate(workloads):
        cells = [t for t in tx if t["workload"] == wl]
        for row, (label, value, scale) in enumerate(rows):
            ax = axes[row][column]
            for rt in runtimes:
                mine = sorted((t for t in cells if t["runtime"] == rt), key=lambda t: t["clients"])
                if not mine:
                    continue
                (line,) = ax.plot(
                    [t["clients"] for t in mine],
                    [value(t) for t in mine],
                    "o-",
                    color=colours[rt],
                    label=rt,
                )
                handles.setdefault(rt, line)
            if row == 0:  # each bare invoke once, whichever runtimes it is the ceiling of
                for name in bare_names:
                    points = sorted(
                        {
                            (t["clients"], t["ceiling"]["tps"])
                            for t in cells
                            if t.get("ceiling") and t["ceiling"]["name"] == name
                        }
                    )
                    if points:
                        shade, marker = bare_styles[name]
                        (line,) = ax.plot(
                            *zip(*points, strict=True), marker=marker, linestyle="--",
                            color=shade, label=name,
                        )  # fmt: skip
                        handles.setdefault(name, line)
            else:
                ax.axhline(100 if row == 1 else 1, color="0.5", linewidth=0.8, linestyle=":")
            ax.set_xscale("log", base=2)
            ax.set_xticks(clients, [str(c) for c in clients])
            ax.set_yscale(scale)
            if row == 2:  # plain multiples (2, 3, 4), not 2x10^0
                plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
                ax.yaxis.set_major_formatter(plain)
                ax.yaxis.set_minor_formatter(plain)
            if row == 1:
                ax.set_ylim(bottom=0)
            if row == 0:
                ax.set_title(wl)
            if row == len(rows) - 1:
                ax.set_xlabel("clients (closed loop)")
            if column == 0:
                ax.set_ylabel(label)
            ax.grid(alpha=0.3, which="both")
    fig.legend(
        list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 6),
        fontsize=8, frameon=False,
    )  # fmt: skip
    m = results["machine"]
    fig.suptitle(
        f"ccactors bench {m['date']} - {m['cpu_model']}, {m['cpu_count']} CPUs, "
        f"{_placement_plan(m)}",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot(results: dict[str, Any], path: str | Path) -> str | None:
    """Write :func:`figure` as a PNG; None if matplotlib is missing or nothing to plot."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = figure(results)
    if fig is None:
        return None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return str(out)
