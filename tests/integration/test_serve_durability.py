"""``ccactors serve`` keeps its ledger: killed with SIGKILL mid-commit, it loses no committed
block and leaves no partial one (a real peer process, loopback only)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.admin import AdminClient
from actors.errors import ChaincodeError, DuplicateTransaction
from actors.ledger import Ledger, ValidationCode
from tests.helpers import free_port

pytestmark = pytest.mark.timeout(180)

CONFIG = """
[[chaincodes]]
name = "kv"
runtime = "system"
target = "examples.kv:KVChaincode"
"""
CHANNEL = "mychannel"
CLIENTS = 4
KILL_AFTER = 60  # acknowledged commits before the kill; clients keep committing meanwhile


class Serve:
    """One ``ccactors serve`` process and what it started (to clean up after a SIGKILL)."""

    def __init__(self, tmp_path: Path, *extra: str) -> None:
        # The user's data directory, as the peer finds it, is inside the test's directory.
        env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}
        config = tmp_path / "peer.toml"
        config.write_text(CONFIG)
        self.admin = f"127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "actors.cli", "serve", "--listen", "127.0.0.1:0"]
        command += ["--admin", self.admin, "--config", str(config), *extra]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline()
        assert "ccactors serve:" in self.banner, self.banner

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(20)


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.kill()


def _commit_loop(admin: str, client: int, acked: list[tuple[str, str, str]]) -> None:
    peer = AdminClient(admin, timeout=30)
    n = 0
    while True:
        key, value = f"c{client}-{n:05d}", f"v{n}"
        try:
            reply = peer.invoke(CHANNEL, "kv", [b"put", key.encode(), value.encode()])
        except ChaincodeError:
            return  # the peer is gone
        if reply.validation == "VALID":
            acked.append((reply.txid, key, value))
        n += 1


def test_sigkill_mid_commit_loses_no_block_and_leaves_no_partial_one(
    tmp_path: Path, serves: list[Serve]
) -> None:
    data = tmp_path / "data"
    serve = Serve(tmp_path, "--data-dir", str(data))
    serves.append(serve)
    ledger_file = data / "ledgersData" / f"{CHANNEL}.sqlite"
    assert str(data / "ledgersData") in serve.banner

    acked: list[tuple[str, str, str]] = []
    clients = [
        threading.Thread(target=_commit_loop, args=(serve.admin, c, acked), daemon=True)
        for c in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    enough = threading.Event()
    while not enough.wait(0.01):
        if len(acked) >= KILL_AFTER or not any(t.is_alive() for t in clients):
            enough.set()
    assert all(t.is_alive() for t in clients)  # each with a transaction in flight
    os.kill(serve.process.pid, signal.SIGKILL)
    serve.kill()
    for thread in clients:
        thread.join(60)
    assert len(acked) >= KILL_AFTER

    # The file as the killed peer left it: every acknowledged block is there, VALID, and
    # each block is whole (one transaction: its txid, its state write and its history entry).
    with Ledger(CHANNEL, path=str(ledger_file)) as ledger:
        for txid, key, value in acked:
            assert ledger.get_tx_validation_code(txid) is ValidationCode.VALID
            assert ledger.get_state("kv", key) == value.encode()
        height = ledger.height
    with sqlite3.connect(ledger_file) as db:
        blocks = db.execute("SELECT COUNT(*), MAX(block_num) FROM txids").fetchone()
        (writes,) = db.execute("SELECT COUNT(*) FROM history").fetchone()
        (keys,) = db.execute("SELECT COUNT(*) FROM state").fetchone()
    assert blocks == (height, height - 1)
    assert writes == keys == height  # every block wrote one new key, no more, no less
    assert height >= len(acked)

    # Restarted on the same directory, the peer carries on from there.
    again = Serve(tmp_path, "--data-dir", str(data))
    serves.append(again)
    peer = AdminClient(again.admin, timeout=30)
    for _txid, key, value in acked[:: max(1, len(acked) // 10)]:
        reply = peer.invoke(CHANNEL, "kv", [b"get", key.encode()], commit=False)
        assert reply.response.payload == value.encode()
    reply = peer.invoke(CHANNEL, "kv", [b"put", b"after", b"restart"])
    assert reply.validation == "VALID"
    # A committed txid is refused at execution, as Fabric's endorser refuses it.
    with pytest.raises(
        DuplicateTransaction, match=rf"duplicate transaction found \[{acked[0][0]}\]"
    ):
        peer.invoke(CHANNEL, "kv", [b"put", b"dup", b"x"], txid=acked[0][0])


def test_default_data_dir_ephemeral_and_one_directory_per_peer(
    tmp_path: Path, serves: list[Serve]
) -> None:
    first = Serve(tmp_path)  # no flag: the user's data directory
    serves.append(first)
    data = tmp_path / "xdg" / "ccactors"
    assert f"ledger {data / 'ledgersData'}" in first.banner
    peer = AdminClient(first.admin, timeout=30)
    assert peer.invoke(CHANNEL, "kv", [b"put", b"k", b"kept"]).validation == "VALID"
    second = subprocess.run(
        [sys.executable, "-m", "actors.cli", "serve", "--listen", "127.0.0.1:0", "--admin",
         f"127.0.0.1:{free_port()}", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert second.returncode == 2
    assert "--data-dir: ledger directory" in second.stderr
    assert "is in use by another process" in second.stderr and "Traceback" not in second.stderr
    # who holds it, and how to choose another
    assert f"(pid {first.process.pid}: " in second.stderr and " serve " in second.stderr
    assert "--data-dir DIR, or --ephemeral" in second.stderr
    assert len(second.stderr.splitlines()) == 1
    first.kill()

    ephemeral = Serve(tmp_path, "--ephemeral")
    serves.append(ephemeral)
    assert "ledger in memory (--ephemeral)" in ephemeral.banner
    peer = AdminClient(ephemeral.admin, timeout=30)
    assert peer.invoke(CHANNEL, "kv", [b"get", b"k"], commit=False).response.status == 404
    assert peer.invoke(CHANNEL, "kv", [b"put", b"k", b"gone"]).validation == "VALID"
    ephemeral.kill()

    again = Serve(tmp_path)
    serves.append(again)
    peer = AdminClient(again.admin, timeout=30)
    assert peer.invoke(CHANNEL, "kv", [b"get", b"k"], commit=False).response.payload == b"kept"
