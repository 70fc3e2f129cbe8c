"""Node packages and Node chaincode services: real fabric-shim 2.5.8 chaincode, run by our peer.

* A ``node`` package (``metadata.json`` type ``node``, ``code.tar.gz`` holding ``src/`` with
  ``package.json``) is built into an image as Fabric's node platform does — ``npm ci
  --omit=dev`` of the package in a build container (or with the host's npm), the result in
  ``/usr/local/src`` of an image FROM our Node base image — and started with ``npm start --
  --peer.address ADDR``; the fabric-shim inside dials the peer and registers as the package id.
* A ``ccaas`` package names a ``fabric-chaincode-node server`` the test starts; the peer dials it.

Both go Fabric's way through the peer's defaults: install (the package id), a definition on
the channel naming it, invoke by the chaincode's name; once through ``ccactors serve``.

Prerequisites: a Docker engine (``tools/ensure_docker.sh``), the npm registry reachable (from
the build container, with the host's CA bundle), and ``tools/ensure_node_interop.sh`` for the
ccaas service. Without them these tests skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import docker.errors
import pytest

from actors.config import Config
from actors.lifecycle.builders import ccaas_package_bytes
from actors.lifecycle.definitions import Definition
from actors.runtimes.docker import PEER_LABEL, DockerRuntime
from actors.support import ChaincodeSupport
from tests.helpers import ServiceProcess, docker_engine, free_port

pytestmark = pytest.mark.timeout(400)

NODE_DIR = Path(__file__).resolve().parent / "node"
CHANNEL = "nodepkg"
TAG = f"{os.getpid()}"  # in package labels, so image names are this run's
WAIT = 60.0


def tar_gz(entries: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def node_package(out: Path, label: str, *, contract: bool) -> Path:
    """What ``peer lifecycle chaincode package --lang node --path tests/interop/node`` makes:
    ``src/`` without node_modules. ``contract``: package.json as it is (``npm start`` runs
    ``fabric-chaincode-node start``, the contract API); otherwise ``npm start`` runs the
    low-level chaincode (``shim.start``)."""
    manifest = json.loads((NODE_DIR / "package.json").read_text())
    if not contract:
        manifest["scripts"] = {"start": "node lowlevel.js"}
    files = [
        ("src/package.json", json.dumps(manifest, indent=2).encode()),
        ("src/package-lock.json", (NODE_DIR / "package-lock.json").read_bytes()),
    ] + [(f"src/{source.name}", source.read_bytes()) for source in sorted(NODE_DIR.glob("*.js"))]
    metadata = json.dumps({"path": str(NODE_DIR), "type": "node", "label": label}).encode()
    out.write_bytes(tar_gz([("metadata.json", metadata), ("code.tar.gz", tar_gz(files))]))
    return out


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    client = docker_engine()
    yield client
    # the peer's defaults name images dev-peer0-<label>-<hash>-...: this run's labels end in TAG
    for image in client.images.list(filters={"label": f"{PEER_LABEL}=peer0"}):
        if any(f"{TAG}-" in tag for tag in image.tags):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)
    client.close()


@pytest.fixture
def supports() -> Iterator[list[ChaincodeSupport]]:
    made: list[ChaincodeSupport] = []
    yield made
    for support in made:
        support.shutdown()


def installed_peer(tmp_path: Path, **settings: Any) -> ChaincodeSupport:
    """A peer with its defaults (net mode: mutual TLS; containers on the bridge)."""
    config = Config(
        channels=(CHANNEL,),
        file_system_path=str(tmp_path / "peer"),
        startup_timeout=60,
        **settings,
    )
    support = ChaincodeSupport(config)
    support.listen("0.0.0.0:0")
    return support


def install_and_define(support: ChaincodeSupport, package: bytes, name: str) -> str:
    """Fabric's lifecycle: install (the package id), then a definition naming it. Returns
    the package id (what runs); transactions address the definition's name."""
    package_id = support.install(package).package_id
    support.lifecycle.define(CHANNEL, Definition(name, "1.0", 1, package_id=package_id))
    return package_id


def put_get(support: ChaincodeSupport, name: str) -> None:
    put = support.invoke(CHANNEL, None, name, ["put", "colour", "blue"])
    assert put.response.status == 200, put.response
    assert put.committed
    got = support.execute(CHANNEL, None, name, ["get", "colour"])
    assert (got.response.status, got.response.payload) == (200, b"blue")


def create_read(support: ChaincodeSupport, name: str) -> None:
    created = support.invoke(CHANNEL, None, name, ["create", "a1", "alice", "10"])
    assert created.response.status == 200, created.response
    assert created.committed
    read = support.execute(CHANNEL, None, name, ["read", "a1"])
    assert json.loads(read.response.payload) == {"id": "a1", "owner": "alice", "value": 10}


# The contract (fabric-contract-api through `fabric-chaincode-node start`) with Fabric's way of
# installing dependencies, the low-level chaincode with the host's npm.
@pytest.mark.parametrize("npm_install", ["container", "host"])
def test_node_package_is_built_and_run_as_fabrics_node_platform(
    engine: Any,
    tmp_path: Path,
    supports: list[ChaincodeSupport],
    npm_install: str,
    skip_or_fail: Callable[[str], NoReturn],
) -> None:
    if npm_install == "host" and shutil.which("npm") is None:
        skip_or_fail("npm is not installed on this machine")
    contract = npm_install == "container"
    label = f"nodecc-{npm_install}-{TAG}"
    package = node_package(tmp_path / "node.tar.gz", label, contract=contract)
    support = installed_peer(tmp_path, node_install=npm_install, msp_id="Org1MSP")
    supports.append(support)
    ccid = install_and_define(support, package.read_bytes(), "nodecc")

    (create_read if contract else put_get)(support, "nodecc")

    docker_runtime = support.runtimes["docker"]
    assert isinstance(docker_runtime, DockerRuntime)
    instance = docker_runtime.instance(ccid)
    assert instance is not None
    attrs = instance.inspect()
    label_part, digest = ccid.split(":")
    assert attrs["Name"] == f"/dev-peer0-{label_part}-{digest}"  # Fabric's name, from the id
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env["CORE_CHAINCODE_ID_NAME"] == ccid
    assert env["CORE_PEER_LOCALMSPID"] == "Org1MSP"
    assert env["CORE_PEER_TLS_ENABLED"] == "true"  # the defaults: mutual TLS, on the bridge
    assert env["CORE_PEER_ADDRESS"].startswith(docker_runtime.gateway() + ":")
    assert attrs["HostConfig"]["NetworkMode"] == "bridge"
    assert attrs["Config"]["Cmd"][:2] == ["/bin/sh", "-c"]
    assert "npm start -- --peer.address" in attrs["Config"]["Cmd"][2]
    assert attrs["HostConfig"]["ReadonlyRootfs"] is True
    image = engine.images.get(attrs["Config"]["Image"])
    assert image.labels["org.hyperledger.fabric.chaincode.type"] == "NODE"
    # only production dependencies, installed from the package's lock file
    # (read from the image's file system: a short container's output can come back mangled)
    reader = engine.containers.create(image.id, labels={PEER_LABEL: f"nodepkg-{TAG}"})
    try:
        stream, _ = reader.get_archive("/usr/local/src/node_modules/fabric-shim/package.json")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            manifest = tar.extractfile("package.json")
            assert manifest is not None
            assert json.loads(manifest.read())["version"] == "2.5.8"
    finally:
        reader.remove(force=True)
    print(
        f"\nnode image build ({npm_install} npm): {docker_runtime.last_build_seconds[ccid]:.1f} s"
    )


# -- a Node chaincode service (ccaas) ------------------------------------------------------------


class NodeService(ServiceProcess):
    """``fabric-chaincode-node server`` serving the contract in tests/interop/node."""

    def __init__(self, chaincode_id: str, port: int) -> None:
        super().__init__()
        self.chaincode_id = chaincode_id
        self.address = f"127.0.0.1:{port}"

    def start(self) -> NodeService:
        self.launch(
            [
                "node", "node_modules/fabric-shim/cli.js", "server",
                "--chaincode-address", self.address, "--chaincode-id", self.chaincode_id,
                "--module-path", str(NODE_DIR),
            ],
            # printed just before it binds; the peer's dial (dial_timeout) waits for the port
            lambda line: "Bootstrap process completed" in line,
            what="fabric-chaincode-node server",
            timeout=30,
            cwd=NODE_DIR,
        )  # fmt: skip
        return self


def test_ccaas_package_for_a_real_fabric_shim_service(
    tmp_path: Path, supports: list[ChaincodeSupport], skip_or_fail: Callable[[str], NoReturn]
) -> None:
    from tests.interop.test_node import node_problem

    problem = node_problem()
    if problem is not None:
        skip_or_fail(f"Node interop: {problem}; run tools/ensure_node_interop.sh")
    port = free_port()
    package = ccaas_package_bytes(
        "nodesvc", {"address": f"127.0.0.1:{port}", "dial_timeout": "10s"}
    )
    support = installed_peer(tmp_path)
    supports.append(support)
    ccid = install_and_define(support, package, "basic")
    service = NodeService(ccid, port).start()
    try:
        created = support.invoke(CHANNEL, None, "basic", ["create", "a1", "alice", "10"])
        assert created.response.status == 200, (created.response, service.output[-10:])
        assert created.committed
        assert json.loads(created.response.payload) == {"id": "a1", "owner": "alice", "value": 10}
        stored = support.ledgers.get(CHANNEL).get_state("basic", "asset-a1")  # the name's
        assert stored is not None and json.loads(stored)["owner"] == "alice"
        assert support.instances()[ccid] == f"chaincode service at 127.0.0.1:{port}"
    finally:
        service.kill()


def test_installed_ccaas_package_through_ccactors_serve(
    tmp_path: Path, supports: list[ChaincodeSupport], skip_or_fail: Callable[[str], NoReturn]
) -> None:
    """Installed and defined into a data directory, then served by `ccactors serve`, which
    loads the installed package and the definition and dials the fabric-shim service."""
    import subprocess
    import sys

    from actors.admin import AdminClient
    from tests.interop.test_node import node_problem

    problem = node_problem()
    if problem is not None:
        skip_or_fail(f"Node interop: {problem}; run tools/ensure_node_interop.sh")
    port = free_port()
    package = ccaas_package_bytes("servesvc", {"address": f"127.0.0.1:{port}"})
    with ChaincodeSupport(Config(channels=(CHANNEL,), file_system_path=str(tmp_path))) as setup:
        ccid = install_and_define(setup, package, "basic")
    service = NodeService(ccid, port).start()
    admin = f"127.0.0.1:{free_port()}"
    peer = subprocess.Popen(
        [sys.executable, "-m", "actors.cli", "serve", "--listen", "127.0.0.1:0",
         "--peer", admin, "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert peer.stdout is not None
        assert "ccactors serve:" in peer.stdout.readline()
        client = AdminClient(admin)
        created = client.invoke(CHANNEL, "basic", [b"create", b"a1", b"alice", b"10"])
        assert (created.response.status, created.validation) == (200, "VALID"), created
        read = client.invoke(CHANNEL, "basic", [b"read", b"a1"], commit=False)
        assert json.loads(read.response.payload)["owner"] == "alice"
    finally:
        peer.terminate()
        peer.wait(30)
        service.kill()
