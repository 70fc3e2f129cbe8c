"""``ccactors faults`` for real: a load against a supervised peer while faults are injected.

The system run injects every fault kind (twice, mostly) into a short load and asserts what the
issue's done-when asks of the long one: nothing lost, duplicated or hung, a consistent ledger,
and a recovery time for every fault that kills something. The Docker run needs an engine and
the base image; without them it skips and says why, except in CI (``CI=true``), where it
fails: CI must run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actors.cli import main
from bench.faults import (
    ACTOR_FAULTS,
    CHAINCODE_FAULTS,
    FAULT_KINDS,
    FaultReport,
    FaultsConfig,
    recovers_by_event,
    render_table,
    run,
)
from tests.helpers import docker_engine

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]


def explain(report: FaultReport) -> str:
    return render_table(report) + "\n" + json.dumps(report.to_json()["injections"], indent=1)


def assert_survived(report: FaultReport) -> None:
    """The done-when of the issue, on any run."""
    a = report.accounting
    why = explain(report)
    assert a.lost == 0, why
    assert a.duplicated == 0, why
    assert report.hung == 0, why
    assert a.mismatched == 0 and a.unfinished == 0, why
    assert report.ledger.consistent, why
    assert report.ok, why
    assert a.succeeded > 0, why
    assert report.ledger.committed == a.succeeded, why
    assert a.succeeded + a.failed + a.hung + a.unfinished == a.submitted, why
    assert report.restarts.total >= 1, why
    assert report.shutdown_s is not None, why


def assert_recovered(report: FaultReport, kinds: tuple[str, ...]) -> None:
    """Every kind was injected, and every injected fault that kills something has a recovery
    time (death -> READY, or the actor's RESTARTED)."""
    why = explain(report)
    by_kind = {s.kind: s for s in report.summaries}
    assert set(by_kind) == set(kinds), why
    for kind in kinds:
        summary = by_kind[kind]
        assert summary.injected >= 1, f"{kind} never injected\n{why}"
        if recovers_by_event(kind):
            assert summary.recovered == summary.injected, f"{kind} did not recover\n{why}"
            assert len(summary.recovery_s) == summary.injected, why
            assert all(0 <= v < 30 for v in summary.recovery_s), why
        else:
            assert summary.probe_s, f"{kind}: the probe got no answer\n{why}"
    data = report.to_json()
    for kind in kinds:
        listed = data["faults"][kind]
        if recovers_by_event(kind):
            assert listed["recovery_s"]["values"], why
            assert {"min", "median", "max"} <= set(listed["recovery_s"]), why


def test_system_runtime_survives_every_fault_kind() -> None:
    config = FaultsConfig(
        runtime="system",
        clients=8,
        duration=10,
        fault_every=0.5,  # 19 faults: every kind twice, one three times
        # This seed puts both hangs early (0.5 and 5.5 s). The peer notices a frozen chaincode
        # only when a transaction sent *after* the freeze times out, so a hang in the last
        # second of the load may get no such transaction and stay unrecovered (the runner
        # reports that as a finding; it is not what this test is about).
        seed=20240611,
        execute_timeout=3,
        startup_timeout=5,
    )
    assert config.faults == FAULT_KINDS
    report = run(config)
    assert_survived(report)
    assert_recovered(report, FAULT_KINDS)
    # The faults that kill a chaincode show up as chaincode restarts, actor faults as
    # replaced actors.
    kinds = {r.injection.kind for r in report.records if r.injection.injected}
    if kinds & CHAINCODE_FAULTS:
        assert report.restarts.chaincode >= 1, explain(report)
    for kind, actor in ACTOR_FAULTS.items():
        if kind in kinds:
            assert report.restarts.actors.get(actor, 0) >= 1, explain(report)
    # A chaincode that never registers fails its caller: a startup timeout, not a hang.
    never = [r for r in report.records if r.injection.kind == "never_registers"]
    assert all(not r.injection.hung_probe for r in never), explain(report)
    assert all(r.injection.probe_s is not None for r in never), explain(report)


def test_cli_prints_one_json_object() -> None:
    command = [
        sys.executable,
        "-m",
        "actors.cli",
        "faults",
        "--duration",
        "4",
        "--clients",
        "4",
        "--fault-every",
        "1",
        "--json",
    ]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )
    report = json.loads(done.stdout)  # the whole of stdout is one object
    assert isinstance(report, dict)
    assert done.returncode == (0 if report["ok"] else 1), done.stderr[-3000:]
    assert done.returncode == 0, json.dumps(report, indent=1)
    for key in (
        "submitted",
        "succeeded",
        "failed",
        "failures",
        "lost",
        "duplicated",
        "hung",
        "restarts",
        "faults",
        "ledger",
    ):
        assert key in report, key
    assert report["lost"] == report["duplicated"] == report["hung"] == 0
    assert report["ledger"]["consistent"] is True
    assert len(report["injections"]) == 3  # at 1, 2 and 3 s
    assert "submitted" in done.stderr  # progress lines go to stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clients", "0"], "--clients must be at least 1"),
        (["--faults", "kill,explode"], "unknown fault kind(s) explode"),
        (["--runtime", "docker", "--faults", "pipe_garbage"], "cannot be injected on the docker"),
        (["--startup-timeout", "1"], "--startup-timeout must be at least 5"),
    ],
)
def test_cli_bad_flags_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["faults", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_unknown_runtime_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["faults", "--runtime", "external"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# -- Docker ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_ready() -> None:
    """A Docker engine and the base image, as tests/integration/test_docker.py asks for them:
    skip (fail in CI) saying what is missing."""
    docker_engine().close()


DOCKER_FAULTS = ("kill", "hang", "handler_exception", "stop_vmcontroller", "grpc_garbage")


def test_docker_runtime_survives_container_faults(docker_ready: None) -> None:
    config = FaultsConfig(
        runtime="docker",
        clients=4,
        duration=9,
        fault_every=1.5,  # 5 faults: each kind once
        faults=DOCKER_FAULTS,
        seed=7,
        execute_timeout=3,
        startup_timeout=10,
    )
    report = run(config)
    assert_survived(report)
    assert_recovered(report, DOCKER_FAULTS)
    details = " ".join(r.injection.detail for r in report.records)
    assert "docker kill" in details and "docker pause" in details, explain(report)
