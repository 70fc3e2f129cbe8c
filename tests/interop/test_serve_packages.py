"""Packages run through ``ccactors serve`` in real Docker, as a user drives the peer: a Node
package (the unmodified fabric-contract-api chaincode of ``tests/interop/node``, type ``node``)
and a Python package (``ccactors package``) are installed with ``ccactors install``, defined on a
channel with ``ccactors define`` (the Node one with a collections config), and invoked by name
with ``ccactors invoke|query -n NAME -c JSON``. The Node chaincode's private-data and rich-query
flows (``privdata.js``) run through that same peer: transient input, get, hash, purge, private
rich queries, getQueryResult and getQueryResultWithPagination. A ``ccaas`` package installed the
same way makes the peer dial a ``fabric-chaincode-node server`` the test starts.

One ``ccactors serve`` (its own data directory, free ports, listening on every interface so the
containers on the bridge reach it) serves the module. The Node image is built Fabric's way
(``npm ci`` in a build container, ``chaincode.node.npmInstall = "container"``), so the npm
registry must be reachable from containers; the ccaas service needs
``tools/ensure_node_interop.sh``. Without them these tests skip, except in CI
(``CI=true``), where they fail.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import docker.errors
import pytest

from actors.lifecycle.builders import ccaas_package_bytes
from actors.runtimes.docker import container_name, image_name
from tests import helpers
from tests.helpers import ServiceProcess, docker_engine, free_port
from tests.interop.test_node import node_problem
from tests.interop.test_node_package import NodeService, node_package

pytestmark = pytest.mark.timeout(600)
ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "mychannel"
TAG = f"{os.getpid()}"  # in package labels: container names are locks on a shared engine
NODE = "nodecc"
COLLECTIONS = [
    {"name": "shared", "policy": "OR('Org1MSP.member','Org2MSP.member')"},
    {
        "name": "org1only",
        "policy": "OR('Org1MSP.member')",
        "memberOnlyRead": True,
        "memberOnlyWrite": True,
    },
    {"name": "org2only", "policy": "OR('Org2MSP.member')"},
]
CONFIG = """
[peer]
localMspId = "Org1MSP"

[chaincode.node]
npmInstall = "container"
"""


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return helpers.cli(*args, timeout=timeout)  # image builds take minutes


class Serve(ServiceProcess):
    def __init__(self, data: Path, config: Path) -> None:
        super().__init__()
        self.admin = f"127.0.0.1:{free_port()}"
        self.args = ("--data-dir", str(data), "--config", str(config), "--channel", CHANNEL)
        self.package_ids: list[str] = []  # installed by the tests: cleaned off the engine

    def start(self) -> Serve:
        self.launch(
            [
                *(sys.executable, "-m", "actors.cli", "serve", "--json"),
                *("--listen", "0.0.0.0:0", "--peer", self.admin, *self.args),
            ],
            lambda line: line.startswith('{"ready"'),
            what="peer",
            timeout=60,
            cwd=ROOT,
        )
        return self

    def ok(self, *args: str) -> Any:
        """A verb against this peer with --json; it must succeed; its JSON output."""
        done = cli(*args, "--peer", self.admin, "--json")
        assert done.returncode == 0, (args, done.stdout, done.stderr, self.output[-20:])
        return json.loads(done.stdout)

    def fails(self, *args: str) -> str:
        done = cli(*args, "--peer", self.admin, "--json")
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        return str(json.loads(done.stdout)["message"])

    def install(self, package: Path) -> str:
        done = cli("install", "--peer", self.admin, str(package))
        assert done.returncode == 0, (done.stdout, done.stderr)
        return done.stdout.strip()


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    client = docker_engine()
    yield client
    client.close()


@pytest.fixture(scope="module")
def peer(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("servepkg")
    config = tmp / "peer.toml"
    config.write_text(CONFIG)
    serve = Serve(tmp / "data", config).start()
    try:
        yield serve
    finally:
        serve.kill()
        for package_id in serve.package_ids:  # nothing of this run left on the shared engine
            name = container_name(package_id, "dev", "peer0")
            for leftover in engine.containers.list(all=True, filters={"name": name}):
                leftover.remove(force=True)
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                engine.images.remove(image_name(package_id, "dev", "peer0"), force=True)


@pytest.fixture(scope="module")
def node(peer: Serve, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Node package installed and defined (with the collections) on the channel: its id."""
    tmp = tmp_path_factory.mktemp("nodepkg")
    package = node_package(tmp / "node.tar.gz", f"nodecc-{TAG}", contract=True)
    package_id = peer.install(package)
    assert package_id.startswith(f"nodecc-{TAG}:"), package_id
    peer.package_ids.append(package_id)
    calculated = cli("calculatepackageid", str(package))
    assert calculated.stdout.strip() == package_id, calculated
    collections = tmp / "collections.json"
    collections.write_text(json.dumps(COLLECTIONS))
    defined = peer.ok(
        *("define", "-C", CHANNEL, "-n", NODE, "-v", "1.0", "--sequence", "1"),
        *("--package-id", package_id, "--collections-config", str(collections)),
    )
    assert defined["sequence"] == 1
    return package_id


def call(peer: Serve, verb: str, *args: str, value: bytes | None = None) -> Any:
    """``ccactors invoke|query -n nodecc -c '{"Args":[...]}'``; the JSON result it returns."""
    flags = ["-C", CHANNEL, "-n", NODE, "-c", json.dumps({"Args": list(args)})]
    if value is not None:
        flags += ["--transient", json.dumps({"value": base64.b64encode(value).decode()})]
    out = peer.ok(verb, *flags)
    assert out["status"] == 200, out
    if verb == "invoke":
        assert out["validation"] == "VALID", out
    return json.loads(out["payload"])


def fails(peer: Serve, verb: str, *args: str, value: bytes | None = None) -> str:
    flags = ["-C", CHANNEL, "-n", NODE, "-c", json.dumps({"Args": list(args)})]
    if value is not None:
        flags += ["--transient", json.dumps({"value": base64.b64encode(value).decode()})]
    return peer.fails(verb, *flags)


def test_node_package_installed_defined_and_invoked_in_docker(
    engine: Any, peer: Serve, node: str
) -> None:
    created = call(peer, "invoke", "create", "a1", "alice", "10")
    assert created == {"id": "a1", "owner": "alice", "value": 10}
    assert call(peer, "query", "read", "a1") == created
    assert call(peer, "query", "assets:read", "a1") == created
    # it runs in Docker, in a container named from the package id, built as a NODE image
    (running,) = [c for c in peer.ok("list") if c["name"] == node]
    assert running["instance"].startswith("container "), running  # the installed package's
    (container,) = engine.containers.list(filters={"name": container_name(node, "dev", "peer0")})
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
    assert env["CORE_CHAINCODE_ID_NAME"] == node
    image = engine.images.get(container.attrs["Config"]["Image"])
    assert image.labels["org.hyperledger.fabric.chaincode.type"] == "NODE"
    # the installed package and the definition are what the verbs report
    (installed,) = peer.ok("queryinstalled", "--package-id", node)["installed_chaincodes"]
    assert installed == {
        "package_id": node,
        "label": f"nodecc-{TAG}",
        "references": {CHANNEL: {"chaincodes": [{"name": NODE, "version": "1.0"}]}},
    }
    (definition,) = [
        d for d in peer.ok("querycommitted", "-C", CHANNEL)["chaincode_definitions"]
        if d["name"] == NODE
    ]  # fmt: skip
    assert definition["sequence"] == 1


def test_node_private_data_through_serve(peer: Serve, node: str) -> None:
    assert call(peer, "invoke", "pvt:put", "shared", "k1", value=b"s3cret") == {"written": "k1"}
    assert call(peer, "query", "pvt:get", "shared", "k1") == {"value": "s3cret"}
    digest = hashlib.sha256(b"s3cret").hexdigest()
    assert call(peer, "query", "pvt:hash", "shared", "k1") == {"hash": digest}
    assert call(peer, "query", "pvt:verify", "shared", "k1", value=b"s3cret") == {"matches": True}
    assert call(peer, "query", "pvt:verify", "shared", "k1", value=b"nope") == {"matches": False}
    assert call(peer, "invoke", "pvt:purge", "shared", "k1") == {"purged": "k1"}
    assert call(peer, "query", "pvt:get", "shared", "k1") == {"value": None}
    assert call(peer, "query", "pvt:hash", "shared", "k1") == {"hash": ""}
    # memberOnlyRead/Write: the CLI is a client of the peer's org, a member
    call(peer, "invoke", "pvt:put", "org1only", "m1", value=b"org1 eyes only")
    assert call(peer, "query", "pvt:get", "org1only", "m1") == {"value": "org1 eyes only"}
    # a collection this peer is not a member of: the hash only
    call(peer, "invoke", "pvt:put", "org2only", "o1", value=b"theirs")
    theirs = hashlib.sha256(b"theirs").hexdigest()
    assert call(peer, "query", "pvt:hash", "org2only", "o1") == {"hash": theirs}
    message = fails(peer, "query", "pvt:get", "org2only", "o1")
    assert "private data matching public hash version is not available" in message
    assert f"collection {CHANNEL}/{NODE}/nope could not be found" in fails(
        peer, "invoke", "pvt:put", "nope", "k", value=b"v"
    )


def test_node_rich_queries_through_serve(peer: Serve, node: str) -> None:
    for i, colour in enumerate(["red", "blue", "red"]):
        doc = json.dumps({"colour": colour, "n": i}).encode()
        call(peer, "invoke", "pvt:put", "shared", f"doc{i}", value=doc)
    found = call(peer, "query", "pvt:privateQuery", "shared", '{"selector":{"colour":"red"}}')
    assert [r["key"] for r in found] == ["doc0", "doc2"]
    message = fails(peer, "invoke", "pvt:writeThenPrivateQuery", "shared")
    assert "Queries on pvt data is supported only in a read-only transaction" in message

    for i in range(5):
        call(peer, "invoke", "pvt:putPublic", f"pub{i}", json.dumps({"kind": "pub", "i": i}))
    selector = '{"selector":{"kind":"pub"}}'
    everything = call(peer, "query", "pvt:query", selector)
    assert [r["key"] for r in everything] == [f"pub{i}" for i in range(5)]
    page = call(peer, "query", "pvt:queryPage", selector, "2", "")
    keys = [r["key"] for r in page["results"]]
    assert keys == ["pub0", "pub1"] and page["fetched"] == 2
    while page["fetched"] == 2:
        page = call(peer, "query", "pvt:queryPage", selector, "2", page["bookmark"])
        keys += [r["key"] for r in page["results"]]
    assert keys == [f"pub{i}" for i in range(5)]


def test_launch_stop_logs_by_name_on_a_channel(engine: Any, peer: Serve, node: str) -> None:
    """``-C CHANNEL NAME``: the package id the definition names; the package id works too."""
    by_name = ("-C", CHANNEL, NODE)
    assert peer.ok("stop", *by_name) == {"name": node, "stopped": True}
    assert engine.containers.list(filters={"name": container_name(node, "dev", "peer0")}) == []
    assert peer.ok("launch", *by_name)["name"] == node
    (running,) = [c for c in peer.ok("list") if c["name"] == node]
    assert running["status"] == "ready", running
    assert call(peer, "query", "read", "a1")["owner"] == "alice"
    logs = peer.ok("logs", "--tail", "1000", *by_name)
    assert logs["name"] == node and logs == peer.ok("logs", "--tail", "1000", node)
    assert any(node in line for line in logs["lines"]), logs  # the shim logs its id
    for verb in ("launch", "stop", "logs"):
        assert "namespace nope is not defined" in peer.fails(verb, "-C", CHANNEL, "nope")
        assert "channel 'other' not found" in peer.fails(verb, "-C", "other", NODE)


def test_python_package_installed_defined_and_invoked_in_docker(
    engine: Any, peer: Serve, tmp_path: Path
) -> None:
    package = tmp_path / "kv.tar.gz"
    label = f"kvserve-{TAG}"
    made = cli(
        *("package", "--lang", "python", "--label", label, "--path", str(ROOT / "examples")),
        *("--target", "examples.kv:KVChaincode", "--output", str(package)),
    )
    assert made.returncode == 0, (made.stdout, made.stderr)
    package_id = peer.install(package)
    assert package_id.startswith(f"{label}:"), package_id
    peer.package_ids.append(package_id)
    peer.ok(
        *("define", "-C", CHANNEL, "-n", "kv", "-v", "1.0", "--sequence", "1"),
        *("--package-id", package_id),
    )
    put = peer.ok("invoke", "-C", CHANNEL, "-n", "kv", "-c", '{"Args":["put","colour","blue"]}')
    assert (put["status"], put["validation"]) == (200, "VALID"), put
    got = peer.ok("query", "-C", CHANNEL, "-n", "kv", "-c", '{"Args":["get","colour"]}')
    assert got["payload"] == "blue"
    (running,) = [c for c in peer.ok("list") if c["name"] == package_id]
    assert running["instance"].startswith("container "), running
    (container,) = engine.containers.list(
        filters={"name": container_name(package_id, "dev", "peer0")}
    )
    env = dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])
    assert env["CORE_CHAINCODE_ID_NAME"] == package_id


def test_ccaas_package_for_a_fabric_shim_service_through_serve(
    peer: Serve, tmp_path: Path, skip_or_fail: Callable[[str], NoReturn]
) -> None:
    """``ccactors install`` of a ccaas package; the peer dials ``fabric-chaincode-node server``."""
    problem = node_problem()
    if problem is not None:
        skip_or_fail(f"Node interop: {problem}; run tools/ensure_node_interop.sh")
    port = free_port()
    package = tmp_path / "svc.tar.gz"
    package.write_bytes(ccaas_package_bytes(f"nodesvc-{TAG}", {"address": f"127.0.0.1:{port}"}))
    package_id = peer.install(package)
    assert package_id.startswith(f"nodesvc-{TAG}:"), package_id
    peer.ok(
        *("define", "-C", CHANNEL, "-n", "svc", "-v", "1.0", "--sequence", "1"),
        *("--package-id", package_id),
    )
    service = NodeService(package_id, port).start()
    try:
        args = '{"Args":["create","s1","bob","7"]}'
        created = peer.ok("invoke", "-C", CHANNEL, "-n", "svc", "-c", args)
        assert (created["status"], created["validation"]) == (200, "VALID"), created
        read = peer.ok("query", "-C", CHANNEL, "-n", "svc", "-c", '{"Args":["read","s1"]}')
        assert json.loads(read["payload"]) == {"id": "s1", "owner": "bob", "value": 7}
        (running,) = [c for c in peer.ok("list") if c["name"] == package_id]
        assert running["instance"] == f"chaincode service at 127.0.0.1:{port}", running
    finally:
        service.kill()
