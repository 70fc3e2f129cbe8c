"""Real fabric-chaincode-python (PyPI 2.5.4) chaincode as a service, dialled by our peer.

``tests/interop/python_cc/asset_cc.py`` is a chaincode written against the library's own API,
started by ``serve.py`` with the library's ``start()`` in ``.venv-fabric-cc`` (the library pins
protobuf<6 through hyperledger-fabric-protos; ``tools/ensure_python_interop.sh`` makes the
venv). Our ExternalRuntime dials it exactly as a Fabric peer dials the address in a
``connection.json``.

The library is young and deviates from Fabric's protocol in places. Tests marked DEVIATION pin
its actual behaviour against a correct peer, so that a fixed release shows up here:

* ``set_event`` events are kept on the stub and never put into COMPLETED.
* INVOKE_CHAINCODE sends a ``ChaincodeInput`` (the peer expects a ``ChaincodeSpec``) and drops
  the callee's name; the reply is parsed as a ``Response`` (it is a ``ChaincodeMessage``).
* An ERROR reply to a request is never checked: ``get_state`` returns the error text as the
  value; iterators fail to decode it.
* An exception in ``invoke`` (or in the library) sends nothing back: the transaction hangs until
  the peer's execute timeout.
* Concurrent transactions write to the grpc.aio stream without serialising: a write that
  overlaps another fails (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS) and its transaction is lost.
* KEEPALIVE messages are ignored (not echoed): harmless, a peer does not expect an echo.
* Its grpc.aio server has grpcio's defaults: 4 MiB receive limit (a bigger TRANSACTION kills
  the whole connection) and HTTP/2 pings allowed only every 5 minutes (Fabric's 60 s client
  keepalive gets GOAWAY "too_many_pings" after a few idle minutes).
* ``start()`` never reads the TLS variables it documents (CORE_TLS_CLIENT_KEY_PATH, ...).
* Pagination metadata (bookmark, fetched count) is not exposed by its iterators.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import ChaincodeStreamTerminated, ExecuteTimeout, LaunchError
from actors.ledger import ValidationCode
from actors.runtimes.external import ExternalRuntime
from actors.support import ChaincodeSupport
from actors.tls import CertificateAuthority
from actors.txcontexts import CountContexts, ExecuteResult
from tests.helpers import EventLog, ServiceProcess, free_port, wait_for

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-fabric-cc"
PYTHON = VENV / "bin" / "python"
SERVE = Path(__file__).resolve().parent / "python_cc" / "serve.py"
ENSURE = "tools/ensure_python_interop.sh"
VERSION = "2.5.4"
NAME = "asset"
MSP_ID = "Org1MSP"
WAIT = 30.0
TOO_MANY = "GRPC_CALL_ERROR_TOO_MANY_OPERATIONS"


# -- prerequisites -----------------------------------------------------------------------------


def venv_problem() -> str | None:
    """Why the real fabric-chaincode-python cannot run here, or None."""
    if not PYTHON.exists():
        return f"{VENV.name} is missing"
    probe = subprocess.run(
        [
            str(PYTHON),
            "-c",
            "import importlib.metadata as m, fabric_chaincode_python.fabric_shim.server; "
            "print(m.version('fabric-chaincode-python'))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        return f"fabric-chaincode-python does not import in {VENV.name}: {probe.stderr[-300:]}"
    if probe.stdout.strip() != VERSION:
        return f"{VENV.name} has fabric-chaincode-python {probe.stdout.strip()}, need {VERSION}"
    return None


@pytest.fixture(scope="module")
def pycc_ready(skip_or_fail: Callable[[str], NoReturn]) -> None:
    problem = venv_problem()
    if problem is not None:
        skip_or_fail(f"fabric-chaincode-python interop: {problem}; run {ENSURE}")


# -- the service and the peer ------------------------------------------------------------------


class PyService(ServiceProcess):
    """asset_cc served by the real library in its own venv; can be killed and restarted."""

    def __init__(self, chaincode_id: str = NAME, **env: str) -> None:
        super().__init__()
        self.chaincode_id = chaincode_id
        self.address = f"127.0.0.1:{free_port()}"
        self.env = env

    def start(self, timeout: float = 30.0) -> PyService:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRPC_", "PYTHON"))}
        env.update(CHAINCODE_ID=self.chaincode_id, CHAINCODE_SERVER_ADDRESS=self.address)
        env.update(self.env)
        # Logged by the library between binding the port and starting the server; the peer's
        # dial waits out the rest. Output is always drained: the library logs tracebacks.
        self.launch(
            [str(PYTHON), str(SERVE)],
            lambda line: re.search(r"Server is listening at port :\d+", line) is not None,
            what="fabric-chaincode-python",
            timeout=timeout,
            cwd=ROOT,
            env=env,
        )
        return self

    def logged(self, text: str) -> bool:
        return self.count(text) > 0

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.output))


# The channels of the tests that make a peer of their own.
OWN_CHANNELS = ("ka", "big", "ping", "crash", "tls", "plain")


def make_peer(
    address: str, *, runtime: ExternalRuntime | None = None, **changes: Any
) -> ChaincodeSupport:
    connection = {"address": address, "dial_timeout": "5s", **changes.pop("connection", {})}
    values: dict[str, Any] = {
        "startup_timeout": 20.0,
        "execute_timeout": 20.0,
        "msp_id": MSP_ID,
        "chaincodes": (ChaincodeDefinition(NAME, runtime="external", connection=connection),),
        "channels": OWN_CHANNELS,
    }
    values.update(changes)
    config = Config(**values)
    runtime = runtime or ExternalRuntime(max_message_size=config.max_message_size)
    return ChaincodeSupport(config, runtimes={"external": runtime})


@pytest.fixture(scope="module")
def service(pycc_ready: None) -> Iterator[PyService]:
    svc = PyService().start()
    yield svc
    svc.kill()


@pytest.fixture(scope="module")
def peer(service: PyService) -> Iterator[ChaincodeSupport]:
    support = make_peer(service.address)
    yield support
    support.shutdown()


@pytest.fixture
def channel(request: pytest.FixtureRequest, peer: ChaincodeSupport) -> str:
    """A channel (and so a ledger) of the test's own, joined by the module's peer."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    peer.lifecycle.join(name)
    return name


@pytest.fixture
def own() -> Iterator[list[Any]]:
    """Services and peers a test makes for itself; stopped afterwards."""
    made: list[Any] = []
    yield made
    for item in reversed(made):
        if isinstance(item, PyService):
            item.kill()
        else:
            item.shutdown()


def run(support: ChaincodeSupport, channel: str, *args: str, **kwargs: Any) -> ExecuteResult:
    return support.execute_async(channel, None, NAME, list(args), **kwargs).result(WAIT)


def submit(support: ChaincodeSupport, channel: str, *args: str) -> ExecuteResult:
    result = run(support, channel, *args)
    assert result.response.status == 200, result.response
    assert support.commit(channel, result) is ValidationCode.VALID
    return result


def completed(support: ChaincodeSupport, kind: str, channel: str, success: bool) -> float:
    value = support.metrics.registry.get_sample_value(
        "chaincode_shim_requests_completed_total",
        {"type": kind, "channel": channel, "chaincode": NAME, "success": str(success).lower()},
    )
    return value or 0.0


# -- what it implements ------------------------------------------------------------------------


def test_registers_and_launches(service: PyService, peer: ChaincodeSupport) -> None:
    peer.launch(NAME)
    assert peer.status() == {NAME: "ready"}
    assert peer.instances() == {NAME: f"chaincode service at {service.address}"}
    times = []
    for _ in range(10):
        peer.stop(NAME)
        started = time.monotonic()
        peer.launch(NAME)
        times.append(time.monotonic() - started)
    median = statistics.median(times)
    print(f"fabric-chaincode-python launch (dial -> READY) median {median * 1000:.1f} ms")
    assert median < 2.0, times
    assert service.alive()


def test_init_and_state_round_trip(peer: ChaincodeSupport, channel: str) -> None:
    init = run(peer, channel, "init", is_init=True)
    assert (init.response.status, init.response.payload) == (200, b"asset_cc initialised")
    assert peer.commit(channel, init) is ValidationCode.VALID
    submit(peer, channel, "put", "car1", "blue")
    assert run(peer, channel, "get", "car1").response.payload == b"blue"
    missing = run(peer, channel, "get", "car9").response
    assert (missing.status, missing.message) == (404, "asset car9 not found")
    previous = submit(peer, channel, "getput", "car1", "red")
    assert previous.response.payload == b"blue"
    submit(peer, channel, "del", "car1")
    ledger = peer.ledgers.get(channel)
    assert ledger.get_state(NAME, "initialised") == b"yes"
    assert ledger.get_state(NAME, "car1") is None


def test_range_over_several_batches(peer: ChaincodeSupport, channel: str) -> None:
    submit(peer, channel, "fill", "key", "250")
    found = json.loads(run(peer, channel, "range", "key", "kez").response.payload)
    assert len(found) == 250
    assert list(found) == sorted(found)
    assert found["key0249"] == "249"
    # 100 per batch: the library pages with QUERY_STATE_NEXT and closes at the end
    assert completed(peer, "QUERY_STATE_NEXT", channel, True) == 2
    assert completed(peer, "QUERY_STATE_CLOSE", channel, True) == 1
    bounded = json.loads(run(peer, channel, "range", "key0100", "key0103").response.payload)
    assert bounded == {"key0100": "100", "key0101": "101", "key0102": "102"}


def test_pagination_returns_one_page(peer: ChaincodeSupport, channel: str) -> None:
    submit(peer, channel, "fill", "p", "50")
    page = json.loads(run(peer, channel, "page", "p", "q", "20").response.payload)
    assert list(page) == [f"p{i:04d}" for i in range(20)]
    # DEVIATION: the peer sends QueryResponseMetadata (bookmark "p0020"); the library's
    # iterator drops it, so a chaincode cannot ask for the next page.


def test_history_and_composite_keys(peer: ChaincodeSupport, channel: str) -> None:
    first = submit(peer, channel, "put", "h", "1").txid
    second = submit(peer, channel, "put", "h", "2").txid
    third = submit(peer, channel, "del", "h").txid
    history = json.loads(run(peer, channel, "history", "h").response.payload)
    assert [(m["txid"], m["value"], m["delete"]) for m in history] == [
        (third, "", True),
        (second, "2", False),
        (first, "1", False),
    ]
    assert all(m["seconds"] > 1_600_000_000 for m in history)

    submit(peer, channel, "composite", "color", "red", "car1", "a")
    submit(peer, channel, "composite", "color", "red", "car2", "b")
    submit(peer, channel, "composite", "color", "blue", "car3", "c")
    red = json.loads(run(peer, channel, "partial", "color", "red").response.payload)
    assert red == {"red/car1": "a", "red/car2": "b"}


def test_proposal_fields(peer: ChaincodeSupport, channel: str) -> None:
    result = run(peer, channel, "txinfo")
    info = json.loads(result.response.payload)
    assert info["channel"] == channel
    assert info["txid"] == result.txid
    assert info["mspid"] == MSP_ID
    assert info["cert"] == "-----BEGIN CERTIFICATE-----"
    assert abs(info["seconds"] - time.time()) < 60


def test_error_response_is_not_committed(peer: ChaincodeSupport, channel: str) -> None:
    result = peer.invoke(channel, None, NAME, ["fail", "no such asset"])
    assert (result.response.status, result.response.message) == (500, "no such asset")
    assert result.validation is None
    unknown = run(peer, channel, "fly")
    assert (unknown.response.status, unknown.response.message) == (
        500,
        "unknown function 'fly'",
    )


def test_sixteen_concurrent_transactions(
    service: PyService, peer: ChaincodeSupport, channel: str
) -> None:
    """The library runs transactions as concurrent asyncio tasks, but every task writes to the
    grpc.aio stream directly. DEVIATION: two writes at once make grpc.aio refuse one
    (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS); the request or COMPLETED it carried is lost and that
    transaction never finishes (the peer's execute timeout ends it). How many are lost varies
    from run to run (often none or a few of 16): each one is accounted for in its log, and no
    transaction ever gets a wrong answer."""
    peer.launch(NAME)
    before = service.count(TOO_MANY)
    started = time.monotonic()

    def one(i: int) -> tuple[ExecuteResult | ExecuteTimeout, float]:
        try:
            result: ExecuteResult | ExecuteTimeout = run(
                peer, channel, "sleep", "0.5", str(i), timeout=3.0
            )
        except ExecuteTimeout as exc:
            result = exc
        return result, time.monotonic() - started

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(one, range(16)))
    done = [(i, o, t) for i, (o, t) in enumerate(outcomes) if isinstance(o, ExecuteResult)]
    lost = [i for i, (o, _) in enumerate(outcomes) if isinstance(o, ExecuteTimeout)]
    assert len(done) + len(lost) == 16
    for i, result, seconds in done:
        assert result.response.payload == str(i).encode()
        assert seconds < 4.0, seconds  # concurrent: sixteen half-second sleeps in one go
        assert peer.commit(channel, result) is ValidationCode.VALID
    assert wait_for(lambda: service.count(TOO_MANY) - before == len(lost)), (
        lost,
        service.count(TOO_MANY) - before,
    )
    # The peer is unharmed: nothing leaked, and the next transactions all succeed.
    assert peer.registry.ask(CountContexts(NAME), timeout=10) == 0
    for i in range(8):
        assert run(peer, channel, "size", str(i)).response.payload == b"x" * i


def test_large_response(peer: ChaincodeSupport, channel: str) -> None:
    result = run(peer, channel, "size", str(6 * 1024 * 1024))
    assert len(result.response.payload) == 6 * 1024 * 1024


# -- its deviations ----------------------------------------------------------------------------


def test_deviation_set_event_is_never_sent(peer: ChaincodeSupport, channel: str) -> None:
    result = submit(peer, channel, "event", "AssetCreated", "car1")
    assert json.loads(result.response.payload) == ["AssetCreated"]  # kept on the stub...
    assert result.event is None  # ...and never put into COMPLETED


def test_deviation_exception_gets_no_reply(
    service: PyService, peer: ChaincodeSupport, channel: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ExecuteTimeout):
        run(peer, channel, "raise", "kaboom", timeout=1.0)
    assert time.monotonic() - started >= 0.9
    assert wait_for(lambda: service.logged("RuntimeError: kaboom"))
    # The connection survives; the next transaction is fine.
    assert run(peer, channel, "size", "3").response.payload == b"xxx"


def test_deviation_response_without_status(peer: ChaincodeSupport, channel: str) -> None:
    response = run(peer, channel, "nostatus").response
    assert response.status == 500
    assert response.message.endswith("Calling chaincode Invoke() has not called success or error.")


def test_deviation_error_replies_are_taken_as_values(peer: ChaincodeSupport, channel: str) -> None:
    # Private data from a collection the definition does not have: the peer answers ERROR
    # with Fabric's text; get_state hands the error text back as the value.
    result = run(peer, channel, "raw", "private", "secrets", "k")
    value = json.loads(result.response.payload)["value"]
    assert value.startswith("GET_STATE failed: transaction ID: ")
    assert value.endswith(f"collection {channel}/asset/secrets could not be found"), value
    # A rich query the peer serves works; a bad one is answered ERROR, which the library
    # tries to decode as a QueryResponse, raises on, and never answers.
    found = run(peer, channel, "query", '{"selector": {"nosuchfield": 1}}').response
    assert (found.status, json.loads(found.payload)) == (200, {})
    with pytest.raises(ExecuteTimeout):
        run(peer, channel, "query", '{"selector": {"size": {"$bad": 1}}}', timeout=1.0)
    raw = json.loads(run(peer, channel, "raw", "query", "{}").response.payload)
    assert raw["type"] == 7  # ERROR
    assert "Missing required key: selector" in raw["payload"]


def test_deviation_invoke_chaincode_is_broken(peer: ChaincodeSupport, channel: str) -> None:
    # The library sends ChaincodeInput(args) without the callee's name; read as the
    # ChaincodeSpec the protocol requires it names no chaincode, so the peer answers ERROR;
    # the library then fails to parse that and sends nothing back.
    with pytest.raises(ExecuteTimeout):
        run(peer, channel, "call", NAME, "get", "k", timeout=1.0)
    assert completed(peer, "INVOKE_CHAINCODE", channel, False) == 1


def test_deviation_keepalive_messages_ignored(service: PyService, own: list[Any]) -> None:
    support = make_peer(service.address, keepalive=0.2)
    own.append(support)
    support.launch(NAME)
    time.sleep(1.0)  # five KEEPALIVEs, no echo expected and none sent
    assert support.execute("ka", None, NAME, ["size", "2"]).response.payload == b"xx"


def test_deviation_message_limit_kills_the_connection(service: PyService, own: list[Any]) -> None:
    support = make_peer(service.address)
    own.append(support)
    events = EventLog(support)
    # grpc.aio's default 4 MiB receive limit: a TRANSACTION above it (the argument travels in
    # the ChaincodeInput and again in the proposal) ends the whole stream.
    with pytest.raises(ChaincodeStreamTerminated, match="RESOURCE_EXHAUSTED"):
        support.execute("big", None, NAME, ["put", "big", "x" * (3 * 1024 * 1024)])
    assert wait_for(lambda: bool(events.details("exited")))
    assert support.execute("big", None, NAME, ["size", "1"]).response.payload == b"x"
    assert len(events.details("ready")) == 2


def test_deviation_http2_keepalive_gets_goaway(service: PyService, own: list[Any]) -> None:
    # Fabric (and our runtime by default) pings idle connections every 60 s; grpcio's default
    # server policy allows one every 5 minutes and sends GOAWAY "too_many_pings" on the third
    # early one. At 1 s the idle connection dies within seconds; the next transaction re-dials.
    support = make_peer(service.address, runtime=ExternalRuntime(keepalive=1.0))
    own.append(support)
    events = EventLog(support)
    support.launch(NAME)
    assert wait_for(lambda: bool(events.details("exited")), timeout=30)
    assert "Too many pings" in events.details("exited")[0], events.details("exited")
    assert support.execute("ping", None, NAME, ["size", "1"]).response.payload == b"x"


# -- failures ----------------------------------------------------------------------------------


def test_wrong_chaincode_id_is_refused(pycc_ready: None, own: list[Any]) -> None:
    other = PyService(chaincode_id="other").start()
    own.append(other)
    support = make_peer(other.address)
    own.append(support)
    with pytest.raises(LaunchError, match="registered as 'other' but was launched as 'asset'"):
        support.launch(NAME)
    assert other.alive()


def test_killed_and_restarted(pycc_ready: None, own: list[Any]) -> None:
    svc = PyService().start()
    own.append(svc)
    support = make_peer(svc.address, connection={"dial_timeout": "1s"})
    own.append(support)
    events = EventLog(support)
    submit(support, "crash", "put", "k", "v")
    in_flight = support.execute_async("crash", None, NAME, ["sleep", "30", "never"])
    time.sleep(0.5)
    svc.kill()
    with pytest.raises(ChaincodeStreamTerminated, match="lost its connection to chaincode service"):
        in_flight.result(WAIT)
    assert wait_for(lambda: bool(events.details("exited")))
    with pytest.raises(LaunchError, match=r"cannot reach chaincode service .* within 1s"):
        support.execute("crash", None, NAME, ["get", "k"])
    svc.start()
    assert support.execute("crash", None, NAME, ["get", "k"]).response.payload == b"v"


def test_mutual_tls(pycc_ready: None, own: list[Any], tmp_path: Path) -> None:
    ca = CertificateAuthority("chaincode CA")
    server = ca.issue("asset service", server=True, hosts=("asset.example",))
    client = ca.issue("peer0", server=False)
    files = {"key": server.key_pem, "cert": server.cert_pem, "ca": ca.cert_pem}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    svc = PyService(
        ASSET_CC_TLS_KEY=str(tmp_path / "key"),
        ASSET_CC_TLS_CERT=str(tmp_path / "cert"),
        ASSET_CC_TLS_CLIENT_CA=str(tmp_path / "ca"),  # makes the library require client certs
    ).start()
    own.append(svc)
    tls = {
        "tls_required": True,
        "client_auth_required": True,
        "root_cert": ca.cert_pem.decode(),
        "client_cert": client.cert_pem.decode(),
        "client_key": client.key_pem.decode(),
        "domain": "asset.example",
    }
    support = make_peer(svc.address, connection=tls)
    own.append(support)
    submit(support, "tls", "put", "k", "over tls")
    assert support.execute("tls", None, NAME, ["get", "k"]).response.payload == b"over tls"

    no_cert = {**tls, "client_auth_required": False, "dial_timeout": "500ms"}
    refused = make_peer(svc.address, connection=no_cert)
    own.append(refused)
    with pytest.raises(LaunchError, match=r"over TLS within 0\.5s"):
        refused.launch(NAME)


def test_deviation_documented_tls_variables_are_not_read(
    pycc_ready: None, own: list[Any], tmp_path: Path
) -> None:
    ca = CertificateAuthority("chaincode CA")
    server = ca.issue("asset service", server=True, hosts=("127.0.0.1",))
    (tmp_path / "key").write_bytes(server.key_pem)
    (tmp_path / "cert").write_bytes(server.cert_pem)
    svc = PyService(
        CORE_TLS_CLIENT_KEY_PATH=str(tmp_path / "key"),
        CORE_TLS_CLIENT_CERT_PATH=str(tmp_path / "cert"),
    ).start()
    own.append(svc)
    support = make_peer(svc.address)  # plaintext
    own.append(support)
    assert support.execute("plain", None, NAME, ["size", "1"]).response.payload == b"x"
