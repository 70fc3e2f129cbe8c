"""The real ``ccactors`` command: exit codes, one-line errors, Fabric's core.yaml, and the
launch / logs / stop verbs against a running ``serve``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
FABRIC_CORE_YAML = ROOT / "tests" / "data" / "fabric-2.5-core.yaml"
# The console script installed next to this interpreter (`make venv` installs it).
CCACTORS = str(Path(sys.executable).parent / "ccactors")


def ccactors(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CCACTORS, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_startup_errors_are_one_line_each_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "core.yaml"
    config.write_text(
        FABRIC_CORE_YAML.read_text()
        .replace("executetimeout: 30s", "executetimeout: 30 s")
        .replace("keepalive: 0", "keepalive: inf")
    )
    done = ccactors("serve", "--listen", "7062", "--metrics", "127.0.0.1", "--config", str(config))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "ccactors: error: --listen: expected HOST:PORT, got '7062'",
        "ccactors: error: --metrics: expected HOST:PORT, got '127.0.0.1'",
        "ccactors: error: chaincode.executetimeout: cannot parse duration '30 s' "
        "(use e.g. 30s, 1m30s, 500ms)",
        "ccactors: error: chaincode.keepalive: cannot parse duration 'inf' "
        "(use e.g. 30s, 1m30s, 500ms)",
    ]
    usage = ccactors("query", "--timeout", "1e10", "kv")
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1
    assert ccactors("--version").stdout.startswith("ccactors ")


def test_a_taken_metrics_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        done = ccactors(
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--peer",
            f"127.0.0.1:{free_port()}",
            "--metrics",
            address,
        )
    assert done.returncode == 2
    assert done.stderr == (
        f"ccactors: error: --metrics: cannot listen on {address}: Address already in use\n"
    )


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[str]:
    """``ccactors serve --json`` on Fabric's own core.yaml plus one process chaincode."""
    config = tmp_path / "core.yaml"
    config.write_text(
        FABRIC_CORE_YAML.read_text()
        + "\nchaincodes:\n  - name: kvp\n    runtime: process\n"
        + "    target: examples.kv:KVChaincode\n"
    )
    admin = f"127.0.0.1:{free_port()}"
    argv = ["serve", "--json", "--listen", "127.0.0.1:0", "--peer", admin, "--config", str(config)]
    # The sample's peer.mspConfigPath is "msp" beside it and its peer.listenAddress 7051, as a
    # Fabric peer's: give it an MSP folder there, and move the Gateway to a free port.
    assert (
        ccactors("crypto", "--orgs", "SampleOrg", "--out", str(tmp_path / "crypto")).returncode == 0
    )
    peer0 = (
        tmp_path
        / "crypto/peerOrganizations/sampleorg.example.com/peers/peer0.sampleorg.example.com"
    )
    (peer0 / "msp").rename(tmp_path / "msp")
    env = {
        **os.environ,
        "CORE_PEER_LISTENADDRESS": "127.0.0.1:0",
        # The sample's operations port (9443) may be taken on a shared machine.
        "CORE_OPERATIONS_LISTENADDRESS": "127.0.0.1:0",
    }
    process = subprocess.Popen(
        [CCACTORS, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        ready = json.loads(process.stdout.readline())
        assert ready["ready"] is True and ready["peer"] == admin
        assert ready["gateway"].startswith("127.0.0.1:")
        assert ready["chaincodes"] == [{"name": "kvp", "runtime": "process"}]
        warning = process.stderr.readline()
        assert "WARN" in warning and "ignoring" in warning and "peer.gossip.bootstrap" in warning
        yield admin
    finally:
        process.terminate()
        process.wait(30)


def test_launch_logs_stop_against_serve(peer: str) -> None:
    launched = ccactors("launch", "kvp", "--peer", peer, "--json")
    assert launched.returncode == 0, launched.stderr
    assert json.loads(launched.stdout)["name"] == "kvp"
    logs = ccactors("logs", "kvp", "--peer", peer, "--json")
    assert logs.returncode == 0, logs.stderr
    assert any("kvp" in line for line in json.loads(logs.stdout)["lines"])
    stopped = ccactors("stop", "kvp", "--peer", peer)
    assert (stopped.returncode, stopped.stdout) == (0, "stopped kvp\n")
    listing = json.loads(ccactors("list", "--peer", peer, "--json").stdout)
    assert [row["status"] for row in listing if row["name"] == "kvp"] == ["defined"]
    for verb in ("launch", "logs", "stop"):
        missing = ccactors(verb, "ghost", "--peer", peer)
        assert missing.returncode == 1
        assert missing.stderr == (
            "ccactors: error: UnknownChaincode: chaincode definition for 'ghost' not found\n"
        )
