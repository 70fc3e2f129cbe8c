"""``ccactors serve`` end to end: the CLI against a real peer process, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.admin import AdminClient
from actors.errors import UnknownChaincode
from tests.helpers import cli as _cli
from tests.helpers import free_port

CONFIG = """
[chaincode]
executetimeout = "5s"

[[chaincodes]]
name = "kv"
runtime = "system"
target = "examples.kv:KVChaincode"

[[chaincodes]]
name = "kvp"
runtime = "process"
target = "examples.kv:KVChaincode"
"""


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.add(int(entry.name))
    return found


class Peer:
    def __init__(self, process: subprocess.Popen[str], admin: str, metrics: str) -> None:
        self.process = process
        self.admin = admin
        self.metrics = metrics
        self.banner = ""


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    config = tmp_path / "peer.toml"
    config.write_text(CONFIG)
    admin = f"127.0.0.1:{free_port()}"
    metrics = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actors.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            admin,
            "--metrics",
            metrics,
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Peer(process, admin, metrics)
    assert process.stdout is not None
    server.banner = process.stdout.readline()
    assert "ccactors serve:" in server.banner, server.banner
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_invoke_query_list_and_metrics(peer: Peer) -> None:
    assert "chaincodes defined: kv (system), kvp (process)" in peer.banner

    put = _cli("invoke", "--peer", peer.admin, "--json", "kv", "put", "colour", "blue")
    assert put.returncode == 0, put.stderr
    reply = json.loads(put.stdout)
    assert reply["status"] == 200 and reply["validation"] == "VALID"

    got = _cli("query", "--peer", peer.admin, "--json", "kv", "get", "colour")
    assert got.returncode == 0
    assert json.loads(got.stdout)["payload"] == "blue"

    human = _cli("query", "--peer", peer.admin, "kv", "get", "colour")
    assert "payload: blue" in human.stdout.splitlines()

    missing = _cli("query", "--peer", peer.admin, "--json", "kv", "get", "nothing")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["status"] == 404

    unknown = _cli("invoke", "--peer", peer.admin, "--json", "nope", "get", "x")
    assert unknown.returncode == 1
    assert json.loads(unknown.stdout) == {
        "error": "UnknownChaincode",
        "message": "make sure the chaincode nope has been successfully defined on channel "
        "mychannel and try again: chaincode nope not found",
    }

    # The process runtime dials the peer's gRPC listener.
    proc = _cli("invoke", "--peer", peer.admin, "--json", "kvp", "put", "k", "v")
    assert json.loads(proc.stdout)["validation"] == "VALID"

    listing = json.loads(_cli("list", "--peer", peer.admin, "--json").stdout)
    by_name = {row["name"]: row for row in listing}
    assert by_name["kv"]["status"] == "ready"
    assert by_name["kv"]["instance"].startswith("system process pid")
    assert by_name["kvp"]["instance"].startswith("process pid")

    with urllib.request.urlopen(f"http://{peer.metrics}/metrics", timeout=10) as page:
        text = page.read().decode()
    # Fabric's names and number format: no _total or _created series, 1 not 1.0.
    assert 'chaincode_launch_duration_count{chaincode="kv",success="true"} 1\n' in text
    # kv's put went as a write batch with its COMPLETED (README, "Write batches").
    received = 'chaincode_shim_requests_received{chaincode="kv",channel="mychannel",type="%s"}'
    assert received % "WRITE_BATCH_STATE" + " 1\n" in text
    assert received % "PUT_STATE" not in text
    assert "_total" not in text and "_created" not in text


def test_typed_errors_cross_the_admin_service(peer: Peer) -> None:
    client = AdminClient(peer.admin)
    with pytest.raises(UnknownChaincode, match="the chaincode ghost has been successfully defined"):
        client.invoke("mychannel", "ghost", [b"get", b"x"])
    timed_out = _cli("query", "--peer", peer.admin, "--timeout", "0.5", "kv", "sleep", "3")
    assert timed_out.returncode == 1
    assert "ExecuteTimeout: timeout expired while executing transaction" in timed_out.stderr


def test_events_stream_restart_and_clean_shutdown(peer: Peer) -> None:
    client = AdminClient(peer.admin)
    seen: list[Any] = []  # kvp's events, as the follower got them
    printed: list[dict[str, Any]] = []  # every event `ccactors events --json` printed
    changed = threading.Condition()

    def wait_for(condition: Any, what: str) -> None:
        with changed:
            assert changed.wait_for(condition, 20), (what, [(e.kind, e.detail) for e in seen])

    def printed_count(chaincode: str, kind: str) -> int:
        return sum((e["chaincode"], e["kind"]) == (chaincode, kind) for e in printed)

    def readies() -> int:
        return sum(e.kind == "ready" for e in seen)

    follower_saw_kv = threading.Event()  # proof that the follower's subscription is in place

    def follow() -> None:
        for event in client.events():
            with changed:
                if event.chaincode == "kvp":
                    seen.append(event)
                else:
                    follower_saw_kv.set()
                changed.notify_all()
            if readies() == 2:
                return

    threading.Thread(target=follow, daemon=True).start()
    cli = subprocess.Popen(
        [sys.executable, "-m", "actors.cli", "events", "--peer", peer.admin, "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )

    def read_cli() -> None:
        assert cli.stdout is not None
        for line in cli.stdout:
            with changed:
                printed.append(json.loads(line))
                changed.notify_all()

    threading.Thread(target=read_cli, daemon=True).start()

    # Both subscriptions must reach the peer before kvp launches: relaunch kv until both
    # streams have shown one of its events (no fixed sleep: how long it takes varies).
    def both_saw_kv() -> bool:
        return follower_saw_kv.is_set() and printed_count("kv", "ready") > 0

    deadline = time.monotonic() + 20
    while not both_saw_kv():
        assert time.monotonic() < deadline, "the event streams never saw kv relaunched"
        client.stop("kv")
        client.launch("kv")
        with changed:
            changed.wait_for(both_saw_kv, 0.5)

    assert client.launch("kvp") > 0
    wait_for(lambda: readies() == 1, "kvp ready")
    assert [e.kind for e in seen][:1] == ["launching"]
    (launched,) = [e for e in seen if e.kind == "launched"]
    pid = int(re.search(r"pid (\d+)", launched.instance).group(1))

    # Killed: the stream says how it ended, what the supervisor decided, and that it is back.
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: readies() == 2, "kvp ready again")
    (exited,) = [e for e in seen if e.kind == "exited"]
    assert (exited.exit_code, exited.signal) == (137, signal.SIGKILL)
    assert exited.instance == launched.instance and exited.timestamp > launched.timestamp
    (scheduled,) = [e for e in seen if e.kind == "restart_scheduled"]
    assert scheduled.HasField("delay") and 0 <= scheduled.delay < 1
    assert "SIGKILL" in scheduled.detail
    # `ccactors events --json` printed the same, one JSON object per line.
    wait_for(lambda: printed_count("kvp", "ready") == 2, "the CLI printing kvp ready again")
    cli.terminate()
    cli.wait(10)
    with changed:
        ours = [e for e in printed if e["chaincode"] == "kvp"]
    kinds = [e["kind"] for e in ours]
    assert kinds.count("ready") == 2 and "restart_scheduled" in kinds, kinds
    (killed,) = [e for e in ours if e["kind"] == "exited"]
    assert (killed["exit_code"], killed["signal"]) == (137, 9) and killed["instance"]
    reply = client.invoke("mychannel", "kvp", [b"get", b"nothing"], commit=False)
    assert reply.response.message == "key 'nothing' not found"  # the new instance answers

    pids = _children(peer.process.pid)
    assert pids, "expected chaincode processes under the peer"
    peer.process.send_signal(signal.SIGTERM)
    assert peer.process.wait(30) == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
        time.sleep(0.1)
    leftovers = [p for p in pids if os.path.exists(f"/proc/{p}")]
    # A zombie is not a leftover: it has exited and only awaits its (gone) parent's reaping.
    alive = [p for p in leftovers if "State:\tZ" not in Path(f"/proc/{p}/status").read_text()]
    assert alive == [], f"processes left behind after shutdown: {alive}"


def test_a_failed_launch_tells_the_client_why(tmp_path: Path) -> None:
    """Issue 14: a chaincode whose import fails said only "exited with code 3" to the client;
    the cause was on the peer's stderr. Its module is beside the config file (the default
    workdir), so the config loads; it is its own import that fails."""
    (tmp_path / "bank.py").write_text("import ledgerlib  # not installed\n")
    config = tmp_path / "peer.toml"
    config.write_text('[[chaincodes]]\nname = "bank"\ntarget = "bank:Bank"\n')
    admin = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "actors.cli", "serve", "--listen", "127.0.0.1:0",
         "--admin", admin, "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert "ccactors serve:" in process.stdout.readline()
        failed = _cli("invoke", "--peer", admin, "bank", "open", "alice")
        assert failed.returncode == 1
        assert "LaunchError" in failed.stderr
        assert "No module named 'ledgerlib'" in failed.stderr, failed.stderr
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert re.search(r"WARN(ING)? .*No module named 'ledgerlib'", output), output
