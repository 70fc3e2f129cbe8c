"""The runtimes the bench drives (one :class:`RuntimeSpec` entry each) and its workloads.

Adding a runtime is one entry in :data:`RUNTIMES`: how to make the
:class:`~actors.runtimes.Runtime`, how a chaincode is defined for it, whether it needs the gRPC
chaincode listener, which bare transport (:data:`bench.ceilings.BARE_INVOKES`) is its ceiling,
how to find the process of an instance, and whether it can run on this machine.
"""

from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.config import ChaincodeDefinition, Config
from actors.peer import PeerAddress
from actors.runtimes import Runtime
from actors.support import ChaincodeSupport
from actors.vmcontroller import GetInstance
from bench.ceilings import Record, Shape
from bench.procinfo import descendants

KV_TARGET = "examples.kv:KVChaincode"
GREENLET_KV_TARGET = "examples.kv:GreenletKVChaincode"
THREAD_KV_TARGET = "examples.kv:ThreadKVChaincode"
CHANNEL = "bench-channel"
READ_KEYS = 256  # one per client at the largest default client count
RANGE_KEYS = 100
JSON_DOCS = 1000  # JSON documents for the rich-query workload
OWNERS = 100  # ... owned by this many owners: a query by owner returns JSON_DOCS / OWNERS
EXECUTE_TIMEOUT = 10.0
MSP_ID = "SampleOrg"  # the bench peer's org (peer.localMspId's default)
COLLECTION = f"_implicit_org_{MSP_ID}"  # private data: the org's implicit collection


def _system(peer_address: PeerAddress) -> Runtime:
    from actors.runtimes.system import SystemRuntime

    return SystemRuntime()


def _process(peer_address: PeerAddress) -> Runtime:
    from actors.runtimes.process import ProcessRuntime

    return ProcessRuntime(peer_address)


def _docker(peer_address: PeerAddress) -> Runtime:
    from actors.runtimes.docker import DockerRuntime

    # Host network, as the published figures were measured (the default is now the bridge;
    # bench.docker_network measures what that costs); the container dials 127.0.0.1:port.
    return DockerRuntime(peer_address, network_mode="host")


@functools.cache
def _kv_package() -> str:
    """A Fabric package of examples/ running the kv chaincode (built once per run)."""
    from actors.packaging import create_package

    out = Path(tempfile.mkdtemp(prefix="ccactors-bench-")) / "kvbench.tar.gz"
    examples = Path(__file__).resolve().parents[1] / "examples"
    create_package(examples, "kvbench", target=KV_TARGET, out=out)
    return str(out)


def _docker_available() -> str | None:
    from actors.images import BASE_IMAGE, DockerUnavailable, docker_client, find_image

    try:
        client = docker_client(timeout=10)
    except DockerUnavailable as exc:
        return str(exc)
    try:
        if find_image(client, BASE_IMAGE) is None:
            return f"base image {BASE_IMAGE} missing (ccactors images build)"
    finally:
        client.close()
    return None


def _docker_cleanup() -> None:
    """Remove the image built from this run's package (its id changes with every package)."""
    if not _kv_package.cache_info().currsize:
        return
    import shutil

    from actors.images import docker_client
    from actors.packaging import read_package
    from actors.runtimes.docker import image_name

    path = Path(_kv_package())
    with contextlib.suppress(Exception):
        client = docker_client(timeout=30)
        try:
            client.images.remove(image_name(read_package(path).id), force=True)
        finally:
            client.close()
    shutil.rmtree(path.parent, ignore_errors=True)
    _kv_package.cache_clear()


def _container_pid(instance: Any) -> int | None:
    return instance.inspect()["State"]["Pid"] or None


@dataclass(frozen=True)
class RuntimeSpec:
    name: str  # the ChaincodeDefinition.runtime it serves
    transport: str  # key of bench.ceilings.BARE_INVOKES: the ceiling it is divided by
    description: str
    make: Callable[[PeerAddress], Runtime]
    define: Callable[[str], ChaincodeDefinition]
    listener: bool = False  # chaincode dials the peer's gRPC listener
    available: Callable[[], str | None] = lambda: None  # None, or why it cannot run here
    pid: Callable[[Any], int | None] = lambda instance: getattr(instance, "pid", None)
    cleanup: Callable[[], None] = lambda: None  # at the end of a run: what it left behind


RUNTIMES: dict[str, RuntimeSpec] = {
    "system": RuntimeSpec(
        "system",
        "pipe",
        "system chaincode: fork-server child process, Pipe + msgpack frames; concurrency "
        "'auto' (the default: greenlets, a new reading thread when one blocks)",
        make=_system,
        define=lambda name: ChaincodeDefinition(name, runtime="system", target=KV_TARGET),
    ),
    "system-greenlets": RuntimeSpec(
        "system",
        "pipe",
        "system chaincode as above, concurrency='greenlets': its transactions on one thread",
        make=_system,
        define=lambda name: ChaincodeDefinition(name, runtime="system", target=GREENLET_KV_TARGET),
    ),
    "system-threads": RuntimeSpec(
        "system",
        "pipe",
        "system chaincode as above, concurrency='threads': its transactions on pool threads",
        make=_system,
        define=lambda name: ChaincodeDefinition(name, runtime="system", target=THREAD_KV_TARGET),
    ),
    "process": RuntimeSpec(
        "process",
        "grpc",
        "python -m actors.shim process dialling the peer's gRPC listener",
        make=_process,
        define=lambda name: ChaincodeDefinition(name, runtime="process", target=KV_TARGET),
        listener=True,
    ),
    "docker": RuntimeSpec(
        "docker",
        "grpc",
        "Docker container (host network, hardened) dialling the peer's gRPC listener",
        make=_docker,
        define=lambda name: ChaincodeDefinition(name, runtime="docker", package=_kv_package()),
        listener=True,
        available=_docker_available,
        pid=_container_pid,
        cleanup=_docker_cleanup,
    ),
}
DEFAULT_RUNTIMES = ("system", "system-greenlets", "process")
"""What the transaction matrix runs by default (docker: add it with --runtimes)."""
LAUNCH_RUNTIMES = ("system", "process", "docker")
"""Whose launch latency is measured by default (system-greenlets launches like system)."""


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    bare: Shape  # what the bare invoke this workload is divided by carries
    args: Callable[[int, str], list[str]]  # (client, callee chaincode) -> invoke arguments


def key(client: int) -> str:
    return f"key{client % READ_KEYS:04d}"


# The data Peer.preload writes, per namespace: the range workload reads all of range_records,
# the rich query workload the json_docs of one owner.
def range_records(ns: str) -> list[Record]:
    return [(ns, f"r{i:03d}", f"range-{i:03d}".encode()) for i in range(RANGE_KEYS)]


def json_docs(ns: str) -> list[Record]:
    return [
        (
            ns,
            f"asset{i:04d}",
            f'{{"docType": "asset", "owner": "o{i % OWNERS}", "size": {i}}}'.encode(),
        )
        for i in range(JSON_DOCS)
    ]


# The namespace the bare records name: the system runtime's chaincode (the runner names them
# bench-<runtime>); the others differ by a few bytes per record.
BARE_NAMESPACE = "bench-system"
_RANGE = range_records(BARE_NAMESPACE)
_MATCHES = [doc for doc in json_docs(BARE_NAMESPACE) if b'"owner": "o0",' in doc[2]]


WORKLOADS: dict[str, Workload] = {
    "read": Workload("read", "1 GET_STATE", Shape(1), lambda c, callee: ["get", key(c)]),
    "readwrite": Workload(
        "readwrite",
        # Our Python shim sends the write as a WRITE_BATCH_STATE in its COMPLETED's frame:
        # one round trip and the completion, divided by the bare invoke of two (a shim
        # without write batches, e.g. Node's); the targets also give the 1-round-trip ratio.
        "GET_STATE + PUT_STATE (the write batched with COMPLETED by the Python shim)",
        Shape(2),
        lambda c, callee: ["getput", key(c), "v"],
    ),
    "range": Workload(
        "range",
        f"GET_STATE_BY_RANGE over {RANGE_KEYS} keys + QUERY_STATE_CLOSE",
        # examples/kv's "range" returns the results as a JSON object
        Shape(2, tuple(_RANGE), len(json.dumps({k: v.decode() for _, k, v in _RANGE}))),
        lambda c, callee: ["range", "r000", f"r{RANGE_KEYS:03d}"],
    ),
    "richquery": Workload(
        "richquery",
        f"GET_QUERY_RESULT (Mango, owner =) over {JSON_DOCS} JSON docs + QUERY_STATE_CLOSE",
        # the documents of one owner; examples/kv's "query" returns their keys as JSON
        Shape(2, tuple(_MATCHES), len(json.dumps([k for _, k, _ in _MATCHES]))),
        lambda c, callee: ["query", json.dumps({"selector": {"owner": f"o{c % OWNERS}"}})],
    ),
    "private": Workload(
        "private",
        f"GET_STATE + PUT_STATE on collection {COLLECTION} (hashed and private rwsets)",
        Shape(2),
        lambda c, callee: ["pgetput", COLLECTION, key(c), "v"],
    ),
    "cc2cc": Workload(
        "cc2cc",
        "INVOKE_CHAINCODE of a second chaincode that does 1 GET_STATE",
        Shape(3),  # 8 messages, as TX + 3 request/response pairs + COMPLETED
        lambda c, callee: ["call", callee, "get", key(c)],
    ),
}


def check_response(result: Any) -> str | None:
    """A transaction succeeded when the chaincode's status is below 400 (Fabric's rule)."""
    response = result.response
    if response.status >= 400:
        return f"status {response.status}: {response.message[:60]}"
    return None


class Peer:
    """A ChaincodeSupport set up for the bench: the given runtimes, bench chaincodes defined."""

    def __init__(
        self,
        runtimes: Sequence[str],
        chaincodes: Sequence[tuple[str, str]] = (),
        *,
        sign_proposals: bool = False,
    ) -> None:
        self.specs = [RUNTIMES[name] for name in runtimes]
        peer_address = PeerAddress()
        config = Config(
            channels=(CHANNEL,),
            msp_id=MSP_ID,
            sign_proposals=sign_proposals,
            # Plaintext, as the runtimes here are made without TLS material: the figures
            # compare the peer's own cost with raw primitives, not TLS handshakes.
            tls_enabled=False,
            execute_timeout=EXECUTE_TIMEOUT,
            chaincodes=tuple(RUNTIMES[rt].define(name) for name, rt in chaincodes),
        )
        self.support = ChaincodeSupport(
            config,
            runtimes={spec.name: spec.make(peer_address) for spec in self.specs},
            peer_address=peer_address,
        )
        try:
            if any(spec.listener for spec in self.specs):
                self.support.listen("127.0.0.1:0")
        except Exception:
            self.support.shutdown()
            raise

    def define(self, name: str, runtime: str) -> None:
        self.support.define(RUNTIMES[runtime].define(name))

    def pids(self, chaincode: str) -> list[int]:
        """The processes running ``chaincode``: its instance's process and any below it."""
        instance = self.support.vmcontroller.ask(GetInstance(chaincode), timeout=10)
        if instance is None:
            return []
        definition = self.support.definitions[chaincode]
        try:
            pid = RUNTIMES[definition.runtime].pid(instance)
        except Exception:
            return []
        return descendants(pid) if pid else []

    def preload(self, namespaces: Sequence[str]) -> None:
        """Write the keys the workloads read straight into the ledger (one block)."""
        ledger = self.support.ledgers.get(CHANNEL)
        txid = f"bench-preload-{ledger.height}"
        sim = ledger.new_simulator(txid)
        for ns in namespaces:
            for i in range(READ_KEYS):
                sim.put_state(ns, f"key{i:04d}", f"value-{i:04d}".encode())
            for _, k, value in range_records(ns) + json_docs(ns):
                sim.put_state(ns, k, value)
            for i in range(READ_KEYS):
                sim.put_private_data(ns, COLLECTION, f"key{i:04d}", f"secret-{i:04d}".encode())
        ledger.commit(txid, sim.get_results())
        sim.done()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.support.shutdown()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
