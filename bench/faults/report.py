"""The report of a fault run: what the load saw, the faults and their recoveries, the ledger
check; as JSON (``--json``) or as the table ``ccactors faults`` prints.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .accounting import Accounting
from .config import FaultsConfig, recovers_by_event
from .ledger import LedgerCheck
from .recovery import FaultRecord, FaultSummary, Restarts


@dataclass(frozen=True)
class FaultReport:
    config: FaultsConfig
    seconds: float  # the load's actual length
    accounting: Accounting
    restarts: Restarts
    records: tuple[FaultRecord, ...]
    summaries: tuple[FaultSummary, ...]
    ledger: LedgerCheck
    events: Mapping[str, int]  # lifecycle events by kind
    findings: tuple[str, ...] = ()  # anomalies that are not counters (say what was seen)
    stuck_threads: tuple[str, ...] = ()  # stacks of client threads that never finished
    shutdown_s: float | None = None  # None: shutdown did not finish within its bound
    duplicate_log: tuple[str, ...] = ()

    @property
    def hung(self) -> int:
        return self.accounting.hung + sum(1 for r in self.records if r.injection.hung_probe)

    @property
    def ok(self) -> bool:
        a = self.accounting
        return (
            a.lost == 0
            and a.duplicated == 0
            and self.hung == 0
            and a.mismatched == 0
            and a.unfinished == 0
            and self.ledger.consistent
        )

    def to_json(self) -> dict[str, Any]:
        a, c = self.accounting, self.config
        faults = {}
        for s in self.summaries:
            by_event = recovers_by_event(s.kind)
            faults[s.kind] = {
                "injected": s.injected,
                "skipped": s.skipped,
                "recovered": s.recovered if by_event else None,
                "unexpected": s.unexpected,
                "recovery_s": _timing(s.recovery_s) if by_event else None,
                "death_to_ready_s": _timing(s.death_to_ready_s) if by_event else None,
                "probe_s": _timing(s.probe_s) if s.probe_s else None,
            }
        return {
            "ok": self.ok,
            "runtime": c.runtime,
            "clients": c.clients,
            "chaincodes": list(c.chaincode_names),
            "duration_s": c.duration,
            "fault_every_s": c.fault_every,
            "faults_selected": list(c.faults),
            "seed": c.seed,
            "execute_timeout_s": c.execute_timeout,
            "startup_timeout_s": c.startup_timeout,
            "hung_bound_s": c.wait_bound,
            "seconds": round(self.seconds, 3),
            "submitted": a.submitted,
            "succeeded": a.succeeded,
            "failed": a.failed,
            "failures": dict(a.failures),
            "lost": a.lost,
            "duplicated": a.duplicated,
            "hung": self.hung,
            "hung_probes": self.hung - a.hung,
            "late": a.late,
            "mismatched": a.mismatched,
            "unfinished": a.unfinished,
            "restarts": self.restarts.total,
            "chaincode_restarts": self.restarts.chaincode,
            "actor_restarts": dict(self.restarts.actors),
            "gave_up": self.restarts.gave_up,
            "faults": faults,
            "injections": [
                {
                    "at_s": round(r.injection.at, 3),
                    "kind": r.injection.kind,
                    "target": r.injection.target,
                    "injected": r.injection.injected,
                    "detail": r.injection.detail,
                    "probe": r.injection.probe or None,
                    "probe_s": _rounded(r.injection.probe_s),
                    "expected": r.injection.expected,
                    "detected_s": _rounded(r.detected_s),
                    "recovery_s": _rounded(r.recovery_s),
                    "events": list(r.events),
                }
                for r in self.records
            ],
            "ledger": {
                "consistent": self.ledger.consistent,
                "checked": self.ledger.checked,
                "committed": self.ledger.committed,
                "problems": self.ledger.counts(),
                "examples": [
                    {
                        "kind": p.kind,
                        "chaincode": p.chaincode,
                        "key": p.key,
                        "txid": p.txid,
                        "detail": p.detail,
                    }
                    for p in self.ledger.problems[:10]
                ],
            },
            "events": dict(self.events),
            "transactions": {
                name: [
                    {
                        "txid": t.txid,
                        "chaincode": t.chaincode,
                        "key": t.key,
                        "submitted_at_s": round(t.submitted_at, 3),
                        "outcome": t.outcome,
                        "resolved_at_s": _rounded(t.resolved_at),
                    }
                    for t in items
                ]
                for name, items in a.examples.items()
                if items
            },
            "findings": list(self.findings),
            "stuck_threads": list(self.stuck_threads),
            "duplicate_log": list(self.duplicate_log),
            "shutdown_s": _rounded(self.shutdown_s),
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def _timing(values: Sequence[float]) -> dict[str, Any]:
    """min / median / max (when there are values) and the values, to the millisecond."""
    spread = {}
    if values:
        low, median, high = _spread(values)
        spread = {"min": round(low, 3), "median": round(median, 3), "max": round(high, 3)}
    return {**spread, "values": [round(v, 3) for v in values]}


def _stats_text(values: Sequence[float]) -> str:
    if not values:
        return "-"
    low, median, high = _spread(values)
    return f"{low:.3f} / {median:.3f} / {high:.3f}  (n={len(values)})"


def render_table(report: FaultReport) -> str:
    """The report as the readable table ``ccactors faults`` prints."""
    a, c = report.accounting, report.config
    lines = [
        f"ccactors faults: {c.runtime} runtime, {c.clients} clients over {c.chaincodes} "
        f"chaincode(s) for {report.seconds:.1f} s, a fault every {c.fault_every:g} s "
        f"(seed {c.seed})",
        f"  submitted    {a.submitted:8d}",
        f"  succeeded    {a.succeeded:8d}",
        f"  failed       {a.failed:8d}",
    ]
    for reason, count in a.failures.items():
        lines.append(f"    {count:8d}  {reason}")
    lines += [
        f"  lost         {a.lost:8d}",
        f"  duplicated   {a.duplicated:8d}",
        f"  hung         {report.hung:8d}   (no outcome within {c.wait_bound:g} s; "
        f"{a.late} answered later)",
    ]
    if a.mismatched or a.unfinished:
        lines.append(f"  mismatched   {a.mismatched:8d}   unfinished {a.unfinished}")
    actors = ", ".join(f"{k} {v}" for k, v in report.restarts.actors.items()) or "none"
    lines.append(
        f"  restarts     {report.restarts.total:8d}   (chaincode {report.restarts.chaincode}; "
        f"peer actors: {actors}; gave up {report.restarts.gave_up})"
    )
    lines.append(
        f"  {'fault':<18} {'injected':>8} {'skipped':>7} {'recovered':>9}  "
        "recovery s: min / median / max"
    )
    for s in report.summaries:
        if recovers_by_event(s.kind):
            recovered, timing = f"{s.recovered:9d}", _stats_text(s.recovery_s)
        else:
            recovered = f"{'n/a':>9}"
            timing = f"probe answered in {_stats_text(s.probe_s)}"
        if s.unexpected:
            timing += f"  UNEXPECTED x{s.unexpected}"
        lines.append(f"  {s.kind:<18} {s.injected:8d} {s.skipped:7d} {recovered}  {timing}")
    ledger = report.ledger
    if ledger.consistent:
        lines.append(
            f"  ledger       consistent ({ledger.checked} transactions checked, "
            f"{ledger.committed} writes committed)"
        )
    else:
        counts = ", ".join(f"{k} {v}" for k, v in ledger.counts().items())
        lines.append(f"  ledger       INCONSISTENT: {counts}")
        for problem in ledger.problems[:5]:
            lines.append(
                f"    {problem.kind} {problem.chaincode}/{problem.key} {problem.txid} "
                f"{problem.detail}"
            )
    for name, items in a.examples.items():
        for tx in items[:3]:
            lines.append(
                f"  {name} tx {tx.txid} on {tx.chaincode} submitted at {tx.submitted_at:.2f} s: "
                f"{tx.outcome or 'no outcome'}"
            )
    for finding in report.findings:
        lines.append(f"  finding: {finding}")
    if report.stuck_threads:
        lines.append(f"  stuck client threads: {len(report.stuck_threads)} (stacks in --json)")
    shutdown = "did not finish" if report.shutdown_s is None else f"{report.shutdown_s:.2f} s"
    lines.append(f"  shutdown     {shutdown}")
    lines.append(f"  result       {'OK' if report.ok else 'FAILED'}")
    return "\n".join(lines)
