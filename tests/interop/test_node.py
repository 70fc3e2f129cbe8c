"""Real, unmodified Fabric Node chaincode against our peer.

The chaincode in ``tests/interop/node`` uses the npm packages ``fabric-contract-api`` and
``fabric-shim`` 2.5.8 as published: ``contract.js`` is a contract (started by the shim's own
``fabric-chaincode-node start`` CLI) and ``lowlevel.js`` a plain ``Init``/``Invoke`` chaincode
(``shim.start``). Both run as processes of our process runtime and dial our gRPC chaincode
listener, exactly as they would dial a Fabric peer.

Prerequisites: ``node``/``npm`` and ``tools/ensure_node_interop.sh`` (``npm ci`` there). Without
them these tests skip, except in CI (``CI=true``), where they fail.

Every test uses its own channel, so the module shares one peer and one process per chaincode
without the tests seeing each other's state.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from actors.config import ChaincodeDefinition, Config
from actors.ledger import ValidationCode
from actors.peer import PeerAddress
from actors.runtimes import Connect, Runtime
from actors.runtimes.process import ProcessInstance, ProcessRuntime
from actors.runtimes.system import SystemRuntime
from actors.support import ChaincodeSupport, InvokeResult
from actors.tls import ChaincodeTLS
from actors.txcontexts import ExecuteResult

pytestmark = pytest.mark.timeout(120)

NODE_DIR = Path(__file__).resolve().parent / "node"
ENSURE = "tools/ensure_node_interop.sh"
PINNED = {"fabric-shim": "2.5.8", "fabric-contract-api": "2.5.8", "class-transformer": "0.4.0"}

CONTRACT = "nodecc"  # contract.js through the fabric-chaincode-node CLI
LOWLEVEL = "nodelow"  # lowlevel.js with shim.start, id from CORE_CHAINCODE_ID_NAME
KV = "kv"  # our Python kv chaincode, a cc2cc target in another runtime
MSP_ID = "Org1MSP"
WAIT = 60.0  # the longest any single future may take
HAVE_PROC = Path("/proc/self/stat").exists()  # Linux: process tree checks


def contract_definition(name: str = CONTRACT) -> ChaincodeDefinition:
    return ChaincodeDefinition(
        name,
        runtime="process",
        command=("node", "node_modules/fabric-shim/cli.js", "start", "--chaincode-id-name", name),
        workdir=str(NODE_DIR),
    )


def lowlevel_definition(name: str = LOWLEVEL) -> ChaincodeDefinition:
    return ChaincodeDefinition(
        name, runtime="process", command=("node", "lowlevel.js"), workdir=str(NODE_DIR)
    )


DEFINITIONS = (
    contract_definition(),
    lowlevel_definition(),
    ChaincodeDefinition(KV, target="examples.kv:KVChaincode"),
)


# -- prerequisites -----------------------------------------------------------------------------


def node_problem() -> str | None:
    """Why the Node interop tests cannot run here, or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Node.js >= 18 is needed)"
    modules = NODE_DIR / "node_modules"
    for package, version in PINNED.items():
        manifest = modules / package / "package.json"
        if not manifest.is_file():
            return f"{manifest.relative_to(NODE_DIR.parent)} is missing"
        found = json.loads(manifest.read_text()).get("version")
        if found != version:
            return f"npm package {package} is {found}, expected {version}"
    return None


@pytest.fixture(scope="module")
def node_ready(skip_or_fail: Callable[[str], NoReturn]) -> None:
    problem = node_problem()
    if problem is not None:
        skip_or_fail(f"Node interop: {problem}; run {ENSURE}")


# -- peer --------------------------------------------------------------------------------------


class RecordingProcessRuntime(ProcessRuntime):
    """Our real process runtime, remembering the instances it started (for their log tail and
    pids)."""

    def __init__(self, peer_address: Callable[[], str | None], **kwargs: Any) -> None:
        super().__init__(peer_address, **kwargs)
        self.started: list[ProcessInstance] = []
        self._lock = threading.Lock()

    def start(self, definition: ChaincodeDefinition, connect: Connect) -> ProcessInstance:
        instance = super().start(definition, connect)
        with self._lock:
            self.started.append(instance)
        return instance

    def latest(self, chaincode: str) -> ProcessInstance:
        with self._lock:
            return [i for i in self.started if i.chaincode == chaincode][-1]


class Peer:
    """A ChaincodeSupport listening on a free local port, with its process runtime."""

    def __init__(self, *definitions: ChaincodeDefinition, **changes: Any) -> None:
        values: dict[str, Any] = {
            "startup_timeout": 30.0,
            "execute_timeout": 30.0,
            "msp_id": MSP_ID,
            "chaincodes": definitions or DEFINITIONS,
        }
        values.update(changes)
        config = Config(**values)
        address = PeerAddress()
        # As the peer's own process runtime: the chaincode gets TLS files and environment
        # when the listener uses TLS (the default in net mode).
        tls = ChaincodeTLS() if config.tls else None
        self.runtime = RecordingProcessRuntime(address, tls=tls.client_for if tls else None)
        runtimes: dict[str, Runtime] = {"process": self.runtime}
        if any(d.runtime == "system" for d in config.chaincodes):
            # Only where needed: SystemRuntime.close() stops multiprocessing's process-wide
            # fork server, and that blocks for ever while another peer of this process still
            # has system chaincode running (its children hold the fork server's alive pipe).
            runtimes["system"] = SystemRuntime(max_frame=config.max_message_size)
        self.support = ChaincodeSupport(config, runtimes=runtimes, peer_address=address, tls=tls)
        self.support.listen("127.0.0.1:0")

    def invoke(
        self, channel: str, chaincode: str, *args: str, txid: str | None = None, **kwargs: Any
    ) -> InvokeResult:
        return self.support.invoke(channel, txid, chaincode, list(args), **kwargs)

    def call(self, channel: str, *args: str) -> Any:
        """Invoke the contract, expect 200 and a commit, and return the decoded JSON payload."""
        result = self.invoke(channel, CONTRACT, *args)
        assert result.response.status == 200, (args, result.response.message, self.tail())
        assert result.committed, (args, result.validation)
        return json.loads(result.response.payload)

    def tail(self, chaincode: str = CONTRACT, lines: int = 20) -> list[str]:
        try:
            return self.runtime.latest(chaincode).last_lines(lines)
        except IndexError:
            return []

    def shutdown(self) -> None:
        self.support.shutdown()


@pytest.fixture(scope="module")
def peer(node_ready: None) -> Iterator[Peer]:
    peer = Peer()
    try:
        yield peer
    finally:
        peer.shutdown()


@pytest.fixture
def channel(request: pytest.FixtureRequest, peer: Peer) -> str:
    """A channel of the test's own (a fresh ledger), joined by the module's peer."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    peer.support.lifecycle.join(name)
    return name


def state(peer: Peer, channel: str, namespace: str, key: str) -> bytes | None:
    return peer.support.ledgers.get(channel).get_state(namespace, key)


def descendants_running(program: str) -> list[tuple[int, str]]:
    """Live (not zombie) descendants of this process running ``program`` (argv[0] basename)."""
    parents: dict[int, int] = {}
    info: dict[int, tuple[str, list[str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
        info[int(entry.name)] = (fields[0], argv)
    me = os.getpid()
    found = []
    for pid, (proc_state, argv) in info.items():
        ancestor, hops = parents.get(pid), 0
        while ancestor not in (None, 0, 1, me) and hops < 64:
            ancestor, hops = parents.get(ancestor), hops + 1
        if ancestor == me and proc_state != "Z" and Path(argv[0]).name == program:
            found.append((pid, " ".join(argv)))
    return found


# -- registration ------------------------------------------------------------------------------


def test_node_chaincode_registers_and_is_ready(peer: Peer) -> None:
    for name in (CONTRACT, LOWLEVEL):
        started = time.monotonic()
        peer.support.launch(name, timeout=WAIT)
        elapsed = time.monotonic() - started
        assert peer.support.status().get(name) == "ready", peer.tail(name)
        assert elapsed < peer.support.config.startup_timeout
        instance = peer.runtime.latest(name)
        assert instance.exit_status() is None, instance.last_lines()
        assert f"process pid {instance.pid}" == peer.support.instances()[name]


def test_launch_time_is_reported(node_ready: None) -> None:
    """Median time from launch to READY of the contract chaincode, over fresh processes."""
    times = []
    for i in range(3):
        name = f"launchcc{i}"
        peer = Peer(contract_definition(name))
        try:
            started = time.monotonic()
            peer.support.launch(name, timeout=WAIT)
            times.append(time.monotonic() - started)
        finally:
            peer.shutdown()
    median = statistics.median(times)
    print(f"node contract launch to READY: median {median * 1000:.0f} ms over {times}")
    assert median < 30


# -- the contract API --------------------------------------------------------------------------


def test_create_read_update_delete(peer: Peer, channel: str) -> None:
    created = peer.call(channel, "create", "a1", "alice", "10")
    assert created == {"id": "a1", "owner": "alice", "value": 10}
    stored = state(peer, channel, CONTRACT, "asset-a1")
    assert stored is not None and json.loads(stored) == created

    assert peer.call(channel, "read", "a1") == created
    # "contract:function" addresses the same transaction explicitly.
    assert peer.call(channel, "assets:read", "a1") == created
    assert peer.call(channel, "exists", "a1") is True

    updated = peer.call(channel, "update", "a1", "bob", "20")
    assert updated == {"id": "a1", "owner": "bob", "value": 20}
    assert peer.call(channel, "read", "a1") == updated

    result = peer.invoke(channel, CONTRACT, "remove", "a1")
    assert result.response.status == 200 and result.committed
    assert result.response.payload == b"deleted a1"  # a string is returned as is
    assert state(peer, channel, CONTRACT, "asset-a1") is None
    assert peer.call(channel, "exists", "a1") is False

    missing = peer.invoke(channel, CONTRACT, "read", "a1")
    assert missing.response.status == 500
    assert "asset a1 does not exist" in missing.response.message


def test_returning_objects_needs_class_transformer_pin(peer: Peer, channel: str) -> None:
    """Objects go through class-transformer's classToPlain; 0.4.1 lacks it (500s)."""
    metadata = peer.call(channel, "org.hyperledger.fabric:GetMetadata")
    transactions = {t["name"] for t in metadata["contracts"]["assets"]["transactions"]}
    assert {"create", "read", "update", "remove", "list", "history", "whoami"} <= transactions
    assert metadata["contracts"]["assets"]["contractInstance"]["default"] is True


def test_range_over_more_than_a_batch(peer: Peer, channel: str) -> None:
    """150 keys need two QUERY_STATE_NEXT round trips (our batch size is 100)."""
    count = 150
    assert count > peer.support.config.query_batch_size
    assert peer.call(channel, "createMany", str(count)) == count
    listed = peer.call(channel, "list")
    expected = [f"asset-bulk{i:05d}" for i in range(count)]
    assert [item["key"] for item in listed] == expected
    assert [item["asset"]["value"] for item in listed] == list(range(count))


def test_range_iterator_closed_early(peer: Peer, channel: str) -> None:
    """Breaking out of ``for await`` sends QUERY_STATE_CLOSE; the shim waits for our reply."""
    peer.call(channel, "createMany", "120")
    assert peer.call(channel, "firstKeys", "3") == [
        "asset-bulk00000",
        "asset-bulk00001",
        "asset-bulk00002",
    ]


def test_history_has_timestamps(peer: Peer, channel: str) -> None:
    before = time.time()
    txids = [
        peer.invoke(channel, CONTRACT, "create", "h1", "alice", "1").result.txid,
        peer.invoke(channel, CONTRACT, "update", "h1", "bob", "2").result.txid,
        peer.invoke(channel, CONTRACT, "remove", "h1").result.txid,
    ]
    after = time.time()
    history = peer.call(channel, "history", "h1")
    # Fabric returns the newest modification first.
    assert [entry["txId"] for entry in history] == txids[::-1]
    assert [entry["isDelete"] for entry in history] == [True, False, False]
    assert json.loads(history[1]["value"])["owner"] == "bob"
    assert json.loads(history[2]["value"])["owner"] == "alice"

    ledger = peer.support.ledgers.get(channel).get_history_for_key(CONTRACT, "asset-h1")
    by_txid = {m.tx_id: m.timestamp for m in ledger}
    for entry in history:
        stamp = entry["timestamp"]
        assert set(stamp) == {"seconds", "nanos"}, stamp
        seconds = int(stamp["seconds"]) + int(stamp["nanos"]) / 1e9
        assert before - 1 <= seconds <= after + 1
        assert abs(seconds - by_txid[entry["txId"]]) < 1e-3
    stamps = [int(e["timestamp"]["seconds"]) + int(e["timestamp"]["nanos"]) / 1e9 for e in history]
    assert stamps == sorted(stamps, reverse=True)


def test_event_on_execute_result(peer: Peer, channel: str) -> None:
    result = peer.invoke(channel, CONTRACT, "create", "e1", "carol", "7")
    assert result.response.status == 200
    event = result.result.event
    assert event is not None
    assert event.event_name == "AssetCreated"
    assert json.loads(event.payload) == {"id": "e1", "owner": "carol", "value": 7}
    assert event.chaincode_id == CONTRACT
    assert event.tx_id == result.result.txid
    # A transaction that sets no event has none.
    assert peer.invoke(channel, CONTRACT, "read", "e1").result.event is None


def test_cc2cc_node_to_node_shares_the_rwset(peer: Peer, channel: str) -> None:
    out = peer.call(
        channel, "createAndCall", "c1", "dave", "3", LOWLEVEL, json.dumps(["put", "k1", "v1"])
    )
    assert out["called"]["status"] == 200
    result = peer.invoke(
        channel, CONTRACT, "createAndCall", "c2", "erin", "4", LOWLEVEL, '["put","k2","v2"]'
    )
    results = result.result.results
    assert results is not None
    assert set(results.namespaces) == {CONTRACT, LOWLEVEL}
    assert results.writes(LOWLEVEL) == {"k2": b"v2"}
    assert set(results.writes(CONTRACT)) == {"asset-c2"}
    assert state(peer, channel, LOWLEVEL, "k1") == b"v1"
    assert state(peer, channel, LOWLEVEL, "k2") == b"v2"
    # The callee's answer comes back to the caller, payload included.
    got = peer.call(channel, "callOther", LOWLEVEL, '["get","k1"]')
    assert got == {"status": 200, "message": "", "payload": "v1"}


def test_cc2cc_node_to_python(peer: Peer, channel: str) -> None:
    result = peer.invoke(
        channel, CONTRACT, "createAndCall", "p1", "frank", "5", KV, '["put","py","yes"]'
    )
    assert result.response.status == 200, result.response.message
    assert result.committed
    results = result.result.results
    assert results is not None and results.writes(KV) == {"py": b"yes"}
    assert state(peer, channel, KV, "py") == b"yes"
    assert state(peer, channel, CONTRACT, "asset-p1") is not None


def test_cc2cc_errors_reach_the_caller(peer: Peer, channel: str) -> None:
    # A callee answering 500 is a Response the caller sees, not an exception.
    got = peer.call(channel, "callOther", LOWLEVEL, '["fail","nope"]')
    assert got == {"status": 500, "message": "nope", "payload": ""}
    # The caller turning that into an error: nothing of the transaction is committed.
    result = peer.invoke(
        channel, CONTRACT, "createAndCall", "x1", "gina", "6", KV, '["fail","kv says no"]'
    )
    assert result.response.status == 500
    assert "kv says no" in result.response.message
    assert not result.committed and result.validation is None
    assert state(peer, channel, CONTRACT, "asset-x1") is None
    # An unknown callee: the peer answers INVOKE_CHAINCODE with ERROR and the shim throws.
    result = peer.invoke(channel, CONTRACT, "callOther", "no-such-cc", '["x"]')
    assert result.response.status == 500
    assert "no-such-cc" in result.response.message


def test_error_path_is_500_and_not_committed(peer: Peer, channel: str) -> None:
    result = peer.invoke(channel, CONTRACT, "fail", "out of coffee")
    assert result.response.status == 500
    assert "deliberate failure: out of coffee" in result.response.message
    assert not result.committed and result.validation is None
    assert state(peer, channel, CONTRACT, "failed-write") is None
    # The contract API's own errors come back the same way.
    wrong = peer.invoke(channel, CONTRACT, "read")
    assert wrong.response.status == 500
    assert "Expected 1 parameters, but 0 have been supplied" in wrong.response.message
    unknown = peer.invoke(channel, CONTRACT, "noSuchFunction")
    assert unknown.response.status == 500
    assert "noSuchFunction" in unknown.response.message


def test_whoami_uses_the_proposal_creator(peer: Peer, channel: str) -> None:
    cert = x509.load_pem_x509_certificate(peer.support.identity.cert_pem)
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    before = time.time()
    result = peer.invoke(channel, CONTRACT, "whoami", txid="whoami-txid-1")
    assert result.response.status == 200, result.response.message
    who = json.loads(result.response.payload)
    assert who["mspid"] == peer.support.config.msp_id == MSP_ID
    assert who["id"].startswith("x509::/")
    assert f"CN={common_name}" in who["id"]
    assert who["txid"] == "whoami-txid-1"
    assert who["channel"] == channel
    # getTxTimestamp comes from the proposal's channel header.
    stamp = dt.datetime.fromisoformat(who["txTime"].replace("Z", "+00:00")).timestamp()
    assert before - 60 <= stamp <= time.time() + 60


def test_concurrent_transactions(peer: Peer, channel: str) -> None:
    count = 32
    barrier = threading.Barrier(count)

    def submit(i: int) -> Any:
        barrier.wait(WAIT)
        return peer.support.execute_async(
            channel, None, CONTRACT, ["create", f"par{i:02d}", f"owner{i}", str(i)]
        )

    with ThreadPoolExecutor(count) as pool:
        futures = list(pool.map(submit, range(count)))
    results: list[ExecuteResult] = [f.result(WAIT) for f in futures]
    assert [r.response.status for r in results] == [200] * count
    assert len({r.txid for r in results}) == count
    for i, r in enumerate(results):
        assert json.loads(r.response.payload)["id"] == f"par{i:02d}"
        assert r.event is not None and r.event.tx_id == r.txid
        assert peer.support.commit(channel, r) is ValidationCode.VALID
    listed = peer.call(channel, "list")
    assert [item["key"] for item in listed] == [f"asset-par{i:02d}" for i in range(count)]


# -- the low-level shim ------------------------------------------------------------------------


def test_lowlevel_put_get_del_range(peer: Peer, channel: str) -> None:
    for key, value in (("b", "2"), ("a", "1"), ("c", "3")):
        result = peer.invoke(channel, LOWLEVEL, "put", key, value)
        assert result.response.status == 200 and result.committed
        event = result.result.event
        assert event is not None
        assert (event.event_name, event.payload, event.chaincode_id) == (
            "put",
            key.encode(),
            LOWLEVEL,
        )
    assert peer.invoke(channel, LOWLEVEL, "get", "a").response.payload == b"1"
    ranged = peer.invoke(channel, LOWLEVEL, "range", "a", "c").response
    assert json.loads(ranged.payload) == {"a": "1", "b": "2"}  # end key excluded
    assert peer.invoke(channel, LOWLEVEL, "del", "b").committed
    assert state(peer, channel, LOWLEVEL, "b") is None
    ranged = peer.invoke(channel, LOWLEVEL, "range", "", "").response
    assert json.loads(ranged.payload) == {"a": "1", "c": "3"}
    missing = peer.invoke(channel, LOWLEVEL, "get", "b").response
    assert (missing.status, missing.message) == (404, "key b not found")
    # The proposal we build reaches the low-level stub too.
    assert peer.invoke(channel, LOWLEVEL, "creator").response.payload == MSP_ID.encode()


def test_lowlevel_shim_error(peer: Peer, channel: str) -> None:
    result = peer.invoke(channel, LOWLEVEL, "fail", "broken on purpose")
    assert result.response.status == 500
    assert result.response.message == "broken on purpose"
    assert not result.committed


# -- processes ---------------------------------------------------------------------------------


def test_log_tail_and_logger(peer: Peer, channel: str) -> None:
    peer.invoke(channel, LOWLEVEL, "put", "logged", "1")
    instance = peer.runtime.latest(LOWLEVEL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = "\n".join(instance.log_tail)
        if "registered" in text.lower() and "Invoke() succeeded" in text:
            break
        time.sleep(0.05)
    text = "\n".join(instance.log_tail)
    assert "registered" in text.lower(), text
    assert "Invoke() succeeded" in text, text


def test_output_goes_to_the_chaincode_logger(node_ready: None) -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger(f"peer.chaincode.{LOWLEVEL}")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    peer = Peer(lowlevel_definition())
    try:
        peer.support.launch(LOWLEVEL, timeout=WAIT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("registered" in x.lower() for x in lines):
            time.sleep(0.05)
        assert any("registered" in x.lower() for x in lines), lines
    finally:
        peer.shutdown()
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_shutdown_stops_node_processes(node_ready: None) -> None:
    others = {pid for pid, _ in descendants_running("node")} if HAVE_PROC else set()
    peer = Peer(contract_definition(), lowlevel_definition(), channels=("shutdown-ch",))
    try:
        for name in (CONTRACT, LOWLEVEL):
            peer.support.launch(name, timeout=WAIT)
        assert peer.call("shutdown-ch", "create", "s1", "x", "1")["id"] == "s1"
        instances = list(peer.runtime.started)
        assert {i.chaincode for i in instances} == {CONTRACT, LOWLEVEL}
        assert all(i.exit_status() is None for i in instances)
        if HAVE_PROC:
            running = {pid for pid, _ in descendants_running("node")}
            assert {i.pid for i in instances} <= running
    finally:
        peer.shutdown()
    for instance in instances:
        assert instance.exit_status(timeout=10) is not None, instance.describe()
    if HAVE_PROC:
        assert [p for p in descendants_running("node") if p[0] not in others] == []


# -- KEEPALIVE ---------------------------------------------------------------------------------


def test_keepalive_is_off_by_default_and_node_survives_idle(node_ready: None) -> None:
    """fabric-shim 2.5.8 calls process.exit(1) on a KEEPALIVE, so ours is off by default."""
    assert Config().keepalive == 0
    peer = Peer(lowlevel_definition(), channels=("idle-ch",))
    try:
        assert peer.support.config.keepalive == 0
        peer.support.launch(LOWLEVEL, timeout=WAIT)
        instance = peer.runtime.latest(LOWLEVEL)
        assert instance.exit_status(timeout=3.0) is None, instance.last_lines()  # idle, alive
        result = peer.invoke("idle-ch", LOWLEVEL, "put", "still", "here")
        assert result.response.status == 200
    finally:
        peer.shutdown()


def test_keepalive_makes_node_2_5_8_exit(node_ready: None) -> None:
    """Why the default is off: with chaincode.keepalive set, the Node shim exits on the first
    KEEPALIVE. If this starts failing, a newer fabric-shim tolerates KEEPALIVE."""
    peer = Peer(lowlevel_definition(), keepalive=0.5)
    try:
        peer.support.launch(LOWLEVEL, timeout=WAIT)
        instance = peer.runtime.latest(LOWLEVEL)
        assert instance.exit_status(timeout=15) is not None, instance.last_lines()
        status = instance.wait()  # also drains the output pump
        assert status.code == 1, (status, instance.last_lines())
        assert any("Received unknown message from the peer" in x for x in instance.log_tail)
    finally:
        peer.shutdown()
