"""The bench report's verdict line and placement words, from the results alone."""

from __future__ import annotations

from typing import Any

from bench import report
from bench.procinfo import short_placement


def _results(*statuses: str, failures: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "targets": [{"name": f"target {i}", "status": s} for i, s in enumerate(statuses)],
        "failures": [{"section": name, "error": "boom"} for name in failures],
    }


def test_the_verdict_counts_met_and_missed_targets() -> None:
    assert report.verdict(_results("PASS", "PASS")) == "Verdict: all 2 measured targets met"
    assert report.verdict(_results("PASS", "MISS", "SKIP", "MISS")) == (
        "Verdict: 1 of 3 measured targets met, 2 missed (target 1; target 3); 1 not measured"
    )
    assert report.verdict(_results("PASS", failures=("launch",))) == (
        "Verdict: all 1 measured targets met; 1 section(s) FAILED: launch"
    )
    assert report.verdict(_results()) == "Verdict: no targets measured"


def test_placement_in_words() -> None:
    assert short_placement({"pinned": True, "peer_cpus": [0], "chaincode_cpus": [1, 2, 3]}) == (
        "pinned: peer on CPU 0, chaincode on CPUs 1-3"
    )
    assert short_placement({"pinned": False, "peer_cpus": [0, 1], "chaincode_cpus": []}) == (
        "not pinned: peer on CPUs 0-1"
    )
