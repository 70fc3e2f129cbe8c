"""The Fabric 2.x lifecycle through ``ccactors serve`` and its verbs, as a user drives it: a
chaincode-as-a-service package installed, defined and invoked by name on two channels, the init
rules, unknown channels, bad definitions, a restart on the sqlite ledger; and dev mode with a
chaincode started by hand."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.admin import AdminClient
from actors.errors import UnknownChannel
from protos.ledger.rwset import rwset_pb2
from tests import readme
from tests.helpers import ServiceProcess, cli, free_port, tar_gz, wait_for

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[2]
KV = "examples.kv:KVChaincode"


def ok(*args: str) -> Any:
    """Run a verb with --json; it must succeed; its JSON output."""
    done = cli(*args, "--json")
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def fails(*args: str) -> dict[str, Any]:
    """Run a verb with --json; it must fail (exit 1) and say why in JSON."""
    done = cli(*args, "--json")
    assert done.returncode == 1, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def ccaas_package(path: Path, label: str, address: str) -> None:
    """A chaincode-as-a-service package as Fabric's docs make it: connection.json at the root
    of code.tar.gz, metadata.json of type ccaas."""
    connection = json.dumps({"address": address, "dial_timeout": "10s", "tls_required": False})
    code = tar_gz({"connection.json": connection.encode()})
    meta = json.dumps({"type": "ccaas", "label": label}).encode()
    path.write_bytes(tar_gz({"metadata.json": meta, "code.tar.gz": code}))


class Serve(ServiceProcess):
    def __init__(self, *args: str) -> None:
        super().__init__()
        self.admin = f"127.0.0.1:{free_port()}"
        self.args = args
        self.ready: dict[str, Any] = {}

    def start(self) -> Serve:
        command = [sys.executable, "-m", "actors.cli", "serve", "--json", "--listen", "127.0.0.1:0"]
        self.launch(
            [*command, "--peer", self.admin, *self.args],
            lambda line: line.startswith('{"ready"'),
            what="peer",
            timeout=60,
            cwd=ROOT,
        )
        self.ready = json.loads(next(line for line in self.output if line.startswith('{"ready"')))
        return self

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


class Service(ServiceProcess):
    """Our shim as a chaincode service, started as Fabric's docs start one: CHAINCODE_ID is the
    package id."""

    def __init__(self, address: str, package_id: str) -> None:
        super().__init__()
        self.address, self.package_id = address, package_id

    def start(self) -> Service:
        self.launch(
            [
                sys.executable,
                "-m",
                "actors.shim",
                "server",
                "--chaincode-address",
                self.address,
                KV,
            ],
            lambda line: "serving on" in line,
            what="service",
            timeout=30,
            cwd=ROOT,
            env={**os.environ, "CHAINCODE_ID": self.package_id},
        )
        return self


class HandStarted(ServiceProcess):
    """A chaincode started by hand, as in Fabric's dev-mode docs: it dials the peer and
    registers as NAME:VERSION."""

    def __init__(self, peer_address: str, chaincode_id: str) -> None:
        super().__init__()
        self.command = [
            *(sys.executable, "-m", "actors.shim", "--peer.address", peer_address),
            *("--chaincode-id-name", chaincode_id, KV),
        ]

    def start(self) -> HandStarted:
        self.launch(
            self.command, lambda line: "connected to peer" in line, what="chaincode", timeout=30
        )
        return self


@pytest.fixture
def started() -> Iterator[Callable[[Any], Any]]:
    processes: list[ServiceProcess] = []

    def start(process: Any) -> Any:
        processes.append(process)
        return process.start()

    yield start
    for process in processes:
        process.kill()


def namespaces(reply: Any) -> list[str]:
    rwset = rwset_pb2.TxReadWriteSet.FromString(reply.rwset)
    return sorted(ns.namespace for ns in rwset.ns_rwset)


def test_install_define_invoke_across_channels_and_a_restart(
    tmp_path: Path, started: Callable[[Any], Any]
) -> None:
    data = tmp_path / "data"
    peer = started(Serve("--data-dir", str(data), "--channel", "ch1", "--channel", "ch2"))
    assert peer.ready["channels"] == ["ch1", "ch2"]
    p = ("--peer", peer.admin)

    address = f"127.0.0.1:{free_port()}"
    package = tmp_path / "basic.tar.gz"
    ccaas_package(package, "basic_1.0", address)
    package_id = ok("calculatepackageid", str(package))["package_id"]
    assert package_id.startswith("basic_1.0:")
    started(Service(address, package_id))

    # install prints the id; a second install says it is there already.
    done = cli("install", *p, str(package))
    assert (done.returncode, done.stdout) == (0, package_id + "\n"), done.stderr
    again = fails("install", *p, str(package))
    assert "chaincode already successfully installed" in again["message"]
    installed = ok("queryinstalled", *p)
    assert installed == {"installed_chaincodes": [{"package_id": package_id, "label": "basic_1.0"}]}

    # Not defined yet: Fabric's endorser's text. Bad definitions change nothing.
    undefined = fails("query", *p, "-C", "ch1", "basic", "get", "k")
    assert undefined["message"].startswith(
        "make sure the chaincode basic has been successfully defined on channel ch1"
    )
    define = ("define", *p, "-n", "basic", "-v", "1.0")
    for flags, message in [
        (("--sequence", "1", "--package-id", "basic_1.0:" + "0" * 64), "could not find chaincode"),
        (("--sequence", "2", "--package-id", package_id), "requested sequence 2 is larger"),
        (("--sequence", "1", "--signature-policy", "AND("), "invalid signature policy"),
    ]:
        assert message in fails(*define, "-C", "ch1", *flags)["message"]
    collections = tmp_path / "collections.json"
    collections.write_text('[{"name": "c", "policy": "OR(", "requiredPeerCount": 0}]')
    bad = fails(*define, "-C", "ch1", "--sequence", "1", "--collections-config", str(collections))
    assert bad["error"] == "LifecycleError"
    assert ok("querycommitted", *p, "-C", "ch1") == {"chaincode_definitions": []}

    policy = "OR('SampleOrg.member')"
    defined = ok(
        *define, "-C", "ch1", "--sequence", "1", "--package-id", package_id, "--init-required",
        "--signature-policy", policy,
    )  # fmt: skip
    assert (defined["sequence"], defined["init_required"]) == (1, True)
    assert defined["validation_parameter"] == policy
    ok(*define, "-C", "ch2", "--sequence", "1", "--package-id", package_id)
    backwards = fails(*define, "-C", "ch2", "--sequence", "0", "--package-id", package_id)
    assert (
        backwards["message"] == "currently defined sequence 1 is larger than requested sequence 0"
    )

    # init_required: Fabric's three texts.
    put = ("invoke", *p, "-C", "ch1", "-n", "basic", "-c", '{"Args":["put","k","v1"]}')
    assert (
        "has not been initialized for this version, must call as init first"
        in (fails(*put)["message"])
    )
    init = ("invoke", *p, "-n", "basic", "--isInit", "-c", '{"Args":["init"]}')
    done = ok(*init, "-C", "ch1")
    assert done["validation"] == "VALID" and done["message"] == "kv initialised"
    assert "is already initialized but called as init" in fails(*init, "-C", "ch1")["message"]
    assert (
        "does not require initialization but called as init"
        in (fails(*init, "-C", "ch2")["message"])
    )
    assert ok(*put)["validation"] == "VALID"

    # The namespace is the name; both channels share the one instance of the package.
    client = AdminClient(peer.admin)
    reply = client.invoke("ch2", "basic:any-version", [b"put", b"k", b"v2"])
    assert reply.validation == "VALID" and namespaces(reply) == ["_lifecycle", "basic"]
    assert ok("query", *p, "-C", "ch1", "basic", "get", "k")["payload"] == "v1"
    assert ok("query", *p, "-C", "ch2", "basic", "get", "k")["payload"] == "v2"
    assert [c.name for c in client.list().chaincodes if c.status == "ready"] == [package_id]

    # Unknown channels are refused and create nothing.
    unknown = fails("query", *p, "-C", "nope", "basic", "get", "k")
    assert unknown == {"error": "UnknownChannel", "message": "channel 'nope' not found"}
    before = sorted(os.listdir(data / "ledgersData"))
    for i in range(300):
        with pytest.raises(UnknownChannel):
            client.invoke(f"made-up-{i}", "basic", [b"get", b"k"], commit=False)
    assert sorted(os.listdir(data / "ledgersData")) == before

    committed = ok("querycommitted", *p, "-C", "ch1")["chaincode_definitions"]
    assert [(d["name"], d["sequence"], d["package_id"]) for d in committed] == [
        ("basic", 1, package_id)
    ]
    assert ok("channel", "list", *p) == {"channels": ["ch1", "ch2"]}
    assert ok("channel", "join", *p, "ch3") == {"channel": "ch3", "joined": True}
    assert peer.terminate() == 0

    # A restart keeps the channels (from their ledgers), installs and definitions, and the
    # committed init marker: no second Init.
    peer = started(Serve("--data-dir", str(data)))
    p = ("--peer", peer.admin)
    assert peer.ready["channels"] == ["ch1", "ch2", "ch3"]
    assert ok("queryinstalled", *p)["installed_chaincodes"][0]["references"] == {
        "ch1": {"chaincodes": [{"name": "basic", "version": "1.0"}]},
        "ch2": {"chaincodes": [{"name": "basic", "version": "1.0"}]},
    }
    assert ok("querycommitted", *p, "-C", "ch1", "-n", "basic")["init_required"] is True
    assert ok("query", *p, "-C", "ch1", "basic", "get", "k")["payload"] == "v1"
    define = ("define", *p, "-n", "basic", "-v", "1.0")
    seq = fails(*define, "-C", "ch1", "--sequence", "3", "--package-id", package_id)
    assert seq["message"] == (
        "requested sequence 3 is larger than the next available sequence number 2"
    )


def test_dev_mode_serves_a_hand_started_chaincode_by_name(
    started: Callable[[Any], Any],
) -> None:
    peer = started(Serve("--ephemeral", "--mode", "dev", "--channel", "ch1", "--channel", "ch2"))
    p = ("--peer", peer.admin)
    started(HandStarted(peer.ready["listener"], "mycc:1.0"))
    client = AdminClient(peer.admin)
    assert wait_for(
        lambda: any(c.name == "mycc:1.0" and c.status == "ready" for c in client.list().chaincodes),
        timeout=30,
    ), client.list()
    # No definition: an implicit one on every channel; NAME and NAME:VERSION both reach it.
    put = ok("invoke", *p, "-C", "ch1", "mycc", "put", "k", "v")
    assert put["validation"] == "VALID"
    assert ok("query", *p, "-C", "ch1", "mycc:1.0", "get", "k")["payload"] == "v"
    # cc2cc by name to the other channel (a chaincode cannot call itself on its own channel).
    assert ok("query", *p, "-C", "ch2", "mycc", "call", "mycc:1.0/ch1", "get", "k")["payload"] == (
        "v"
    )
    # With a definition whose package id is NAME:VERSION (Fabric's dev-mode docs), it serves it.
    ok(
        "define", *p, "-C", "ch1", "-n", "mycc", "-v", "1.0", "--sequence", "1",
        "--package-id", "mycc:1.0", "--init-required",
    )  # fmt: skip
    assert (
        "must call as init first" in fails("query", *p, "-C", "ch1", "mycc", "get", "k")["message"]
    )
    init = ok("invoke", *p, "-C", "ch1", "-n", "mycc", "--isInit", "-c", '{"Args":["init"]}')
    assert init["validation"] == "VALID"
    assert ok("query", *p, "-C", "ch1", "mycc", "get", "k")["payload"] == "v"


def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    anchor = "A worked example (run as written by `tests/integration/test_lifecycle_serve.py`)"
    done = readme.run(readme.block(anchor), tmp_path, ports=(7052, 9443, 9999), default_peer=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation: VALID" in done.stdout
    assert "payload: blue" in done.stdout
    assert "Package ID: basic_1.0:" in done.stdout
    assert (tmp_path / "data" / "ledgersData" / "mychannel.sqlite").exists()
