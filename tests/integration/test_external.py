"""Chaincode as a service: our peer's ExternalRuntime dialling our own shim run as a service.

The service is a real process (``python -m actors.shim server ...``) that the test starts,
kills and restarts; the peer only dials it (``protos.Chaincode/Connect``), as Fabric's peer
dials the address in a chaincode's ``connection.json``. Every wait is bounded.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from actors.config import ChaincodeDefinition, Config, ConfigError
from actors.errors import ChaincodeStreamTerminated, LaunchError, StartupTimeout
from actors.ledger import ValidationCode
from actors.runtimes.external import (
    DEFAULT_DIAL_TIMEOUT,
    ExternalRuntime,
    StreamEnded,
    go_duration,
    load_connection_file,
    resolve_connection,
)
from actors.support import ChaincodeSupport
from actors.tls import CertificateAuthority
from actors.txcontexts import ExecuteResult
from tests.helpers import EventLog, ServiceProcess, free_port, wait_for

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
CHANNEL = "extchannel"
NAME = "kvsvc"
WAIT = 30.0


# -- helpers -----------------------------------------------------------------------------------


class Service(ServiceProcess):
    """Our shim as a chaincode service in its own process; can be killed and restarted."""

    def __init__(self, chaincode_id: str = NAME, target: str = "examples.kv:KVChaincode") -> None:
        super().__init__()
        self.chaincode_id = chaincode_id
        self.target = target
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Service:
        self.launch(
            [
                sys.executable, "-m", "actors.shim", "server",
                "--chaincode-address", self.address, "--chaincode-id", self.chaincode_id,
                self.target,
            ],
            lambda line: "serving on" in line,
            what="service",
            timeout=timeout,
            cwd=ROOT,
        )  # fmt: skip
        return self


def definition(address: str, name: str = NAME, **connection: Any) -> ChaincodeDefinition:
    return ChaincodeDefinition(
        name, runtime="external", connection={"address": address, **connection}
    )


def make_support(*definitions: ChaincodeDefinition, **changes: Any) -> ChaincodeSupport:
    values: dict[str, Any] = {"startup_timeout": 10.0, "execute_timeout": 20.0}
    values.update(changes)
    config = Config(channels=(CHANNEL,), chaincodes=definitions, **values)
    runtime = ExternalRuntime(max_message_size=config.max_message_size)
    return ChaincodeSupport(config, runtimes={"external": runtime})


def run(support: ChaincodeSupport, *args: str, name: str = NAME, **kw: Any) -> ExecuteResult:
    return support.execute_async(CHANNEL, None, name, list(args), **kw).result(WAIT)


def submit(support: ChaincodeSupport, *args: str, name: str = NAME) -> None:
    result = run(support, *args, name=name)
    assert result.response.status == 200, result.response
    assert support.commit(CHANNEL, result) is ValidationCode.VALID


@pytest.fixture
def service() -> Iterator[Service]:
    svc = Service().start()
    yield svc
    svc.kill()


@pytest.fixture
def supports() -> Iterator[list[ChaincodeSupport]]:
    made: list[ChaincodeSupport] = []
    yield made
    for support in made:
        support.shutdown()


@pytest.fixture
def support(service: Service, supports: list[ChaincodeSupport]) -> ChaincodeSupport:
    made = make_support(definition(service.address, dial_timeout="1s"))
    supports.append(made)
    return made


# -- connection.json ---------------------------------------------------------------------------


def test_connection_fields_follow_fabric() -> None:
    info = resolve_connection("cc", {"address": "grpc://cc.example:9999"})
    assert info.address == "cc.example:9999"
    assert info.dial_timeout == DEFAULT_DIAL_TIMEOUT == 3.0
    assert info.credentials() is None
    assert resolve_connection("cc", {"address": "h:1", "dial_timeout": "10s"}).dial_timeout == 10
    assert resolve_connection("cc", {"address": "h:1", "dial_timeout": "250ms"}).dial_timeout == (
        0.25
    )
    # Fabric's error texts for incomplete TLS settings
    tls = {"address": "h:1", "tls_required": True}
    with pytest.raises(ConfigError, match="chaincode tls root cert not provided"):
        resolve_connection("cc", tls)
    with pytest.raises(ConfigError, match="chaincode tls key not provided"):
        resolve_connection("cc", {**tls, "client_auth_required": True, "root_cert": "x"})
    with pytest.raises(ConfigError, match="chaincode tls cert not provided"):
        resolve_connection(
            "cc", {**tls, "client_auth_required": True, "root_cert": "x", "client_key": "k"}
        )
    with pytest.raises(ConfigError, match="unknown connection keys"):
        resolve_connection("cc", {"address": "h:1", "adress": "typo"})
    with pytest.raises(ConfigError, match="chaincode address not provided"):
        resolve_connection("cc", {"dial_timeout": "3s"})


def test_connection_json_file(tmp_path: Path) -> None:
    ca = CertificateAuthority("test CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    path = tmp_path / "connection.json"
    path.write_text(
        json.dumps(
            {
                "address": "cc.example:7777",
                "dial_timeout": "5s",
                "tls_required": True,
                "client_auth_required": False,
                "root_cert": "ca.pem",  # a file next to connection.json, or the PEM itself
                "domain": "cc.internal",
            }
        )
    )
    fields = load_connection_file(path)
    assert fields["root_cert"] == ca.cert_pem.decode()
    info = resolve_connection("cc", {"file": str(path)})
    assert (info.address, info.dial_timeout, info.tls_required) == ("cc.example:7777", 5.0, True)
    assert info.root_cert == ca.cert_pem
    assert info.channel_options() == [("grpc.ssl_target_name_override", "cc.internal")]
    # keys next to "file" override the file's
    assert resolve_connection("cc", {"file": str(path), "dial_timeout": "1s"}).dial_timeout == 1
    # the file is Fabric's connection.json: a number is nanoseconds; in the peer's own
    # configuration table a number is seconds, as every duration there
    path.write_text(json.dumps({"address": "cc.example:7777", "dial_timeout": 4_000_000_000}))
    assert resolve_connection("cc", {"file": str(path)}).dial_timeout == 4
    assert load_connection_file(path)["dial_timeout"] == "4s"
    assert resolve_connection("cc", {"address": "h:1", "dial_timeout": 4}).dial_timeout == 4
    with pytest.raises(ConfigError, match="between 0 and 3600s, got 4000000000"):
        resolve_connection("cc", {"address": "h:1", "dial_timeout": 4_000_000_000})
    path.write_text(json.dumps({"address": "cc.example:7777", "dial_timeout": "4"}))
    with pytest.raises(ConfigError, match=r"connection file .*missing unit in duration \"4\""):
        load_connection_file(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot parse chaincode connection file"):
        load_connection_file(path)


def test_keys_next_to_a_connection_file_complete_it(tmp_path: Path) -> None:
    """The file and the keys next to it are merged first and checked once: the keys may fill
    in what the file lacks, not only override it."""
    path = tmp_path / "connection.json"
    path.write_text(json.dumps({"dial_timeout": 2_000_000_000}))  # nanoseconds, as in Fabric
    info = resolve_connection("cc", {"file": str(path), "address": "h:1"})
    assert (info.address, info.dial_timeout) == ("h:1", 2.0)
    # a number next to "file" is seconds, as everywhere in the configuration
    assert resolve_connection("cc", {"file": str(path), "address": "h:1", "dial_timeout": 5}) == (
        dataclasses.replace(info, dial_timeout=5.0)
    )
    path.write_text(json.dumps({"address": "h:1", "tls_required": True}))
    with pytest.raises(ConfigError, match=r"with file .*root cert not provided"):
        resolve_connection("cc", {"file": str(path)})
    assert resolve_connection("cc", {"file": str(path), "root_cert": "PEM"}).root_cert == b"PEM"


def test_durations_count_whole_nanoseconds_as_go_does() -> None:
    assert go_duration("0.5ns") == 0  # Go truncates each term to whole nanoseconds
    assert go_duration("1.5ns") == 1e-9
    assert go_duration("1.0000000005s") == 1.0
    assert go_duration("1m0.25s") == 60.25
    # 0 means Fabric's default, however it is written
    assert resolve_connection("cc", {"address": "h:1", "dial_timeout": "0.5ns"}).dial_timeout == 3


def test_launch_from_connection_file(
    service: Service, supports: list[ChaincodeSupport], tmp_path: Path
) -> None:
    path = tmp_path / "connection.json"
    path.write_text(json.dumps({"address": service.address, "dial_timeout": "2s"}))
    made = make_support(
        ChaincodeDefinition(NAME, runtime="external", connection=load_connection_file(path))
    )
    supports.append(made)
    submit(made, "put", "from-file", "yes")
    by_file = ChaincodeDefinition("byfile", runtime="external", connection={"file": str(path)})
    made.define(by_file)
    # the service registers as kvsvc, so a definition named byfile is refused: the file was read
    with pytest.raises(LaunchError, match="registered as 'kvsvc' but was launched as 'byfile'"):
        made.launch("byfile")


# -- the happy path ----------------------------------------------------------------------------


def test_launch_and_transactions(service: Service, support: ChaincodeSupport) -> None:
    events = EventLog(support)
    started = time.monotonic()
    support.launch(NAME)
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert support.status() == {NAME: "ready"}
    assert support.instances() == {NAME: f"chaincode service at {service.address}"}
    assert events.details("launched") == [f"chaincode service at {service.address}"]

    submit(support, "put", "a", "1")
    submit(support, "put", "b", "2")
    submit(support, "put", "c", "3")
    submit(support, "put", "a", "10")
    submit(support, "del", "b")
    assert run(support, "get", "a").response.payload == b"10"
    assert run(support, "get", "b").response.status == 404
    assert json.loads(run(support, "range", "a", "z").response.payload) == {"a": "10", "c": "3"}
    history = json.loads(run(support, "history", "a").response.payload)
    assert [h["value"] for h in history] == ["10", "1"]
    failed = run(support, "fail", "nope")
    assert (failed.response.status, failed.response.message) == (500, "nope")
    ledger = support.ledgers.get(CHANNEL)
    assert ledger.get_state(NAME, "a") == b"10"
    assert ledger.get_state(NAME, "b") is None
    assert service.alive()


def test_concurrent_first_invokes_dial_once(service: Service, support: ChaincodeSupport) -> None:
    events = EventLog(support)
    futs = [support.execute_async(CHANNEL, None, NAME, ["put", f"k{i}", str(i)]) for i in range(32)]
    for fut in futs:
        assert fut.result(WAIT).response.status == 200
    assert len(events.details("launched")) == 1


def test_launch_time(service: Service, support: ChaincodeSupport) -> None:
    """Dial -> REGISTER -> READY, relaunching ten times; the median is printed for the record."""
    times = []
    for _ in range(10):
        started = time.monotonic()
        support.launch(NAME)
        times.append(time.monotonic() - started)
        support.stop(NAME)
    median = statistics.median(times)
    print(f"external launch (dial -> READY) median {median * 1000:.1f} ms over {len(times)}")
    assert median < 1.0, times
    assert service.alive()  # stopping an external chaincode leaves the service running


# -- failures ----------------------------------------------------------------------------------


def test_service_killed_then_restarted(service: Service, support: ChaincodeSupport) -> None:
    events = EventLog(support)
    submit(support, "put", "before", "crash")
    in_flight = support.execute_async(CHANNEL, None, NAME, ["sleep", "30"])
    time.sleep(0.3)
    service.kill()
    with pytest.raises(ChaincodeStreamTerminated) as info:
        in_flight.result(WAIT)
    text = str(info.value)
    assert f"lost its connection to chaincode service at {service.address}" in text, text
    assert wait_for(lambda: bool(events.details("exited")))
    assert "lost its connection" in events.details("exited")[0]
    assert wait_for(lambda: support.status() == {})

    # While the service is down, a transaction fails after the dial timeout (1 s here), not
    # after the startup timeout (10 s).
    started = time.monotonic()
    with pytest.raises(LaunchError) as down:
        run(support, "get", "before")
    assert not isinstance(down.value, StartupTimeout)
    assert f"cannot reach chaincode service {service.address} within 1s" in str(down.value)
    assert time.monotonic() - started < 5

    service.start()  # same address
    assert run(support, "get", "before").response.payload == b"crash"  # re-dialled
    assert len(events.details("ready")) == 2


def test_service_closing_the_stream_is_reported(supports: list[ChaincodeSupport]) -> None:
    """A service that ends the stream cleanly (gRPC OK): the instance ends with code 0."""
    server, address = _serve_in_process(lambda stream: None)
    try:
        made = make_support(definition(address, name="quits"))
        supports.append(made)
        events = EventLog(made)
        with pytest.raises(LaunchError, match="ended its stream"):
            made.launch("quits")
        assert wait_for(lambda: bool(events.details("exited")))
        assert events.details("exited")[0].startswith("ended its stream")
    finally:
        server.stop(0)


def test_dead_address_fails_fast(supports: list[ChaincodeSupport]) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    made = make_support(definition(address, dial_timeout="500ms"))
    supports.append(made)
    started = time.monotonic()
    with pytest.raises(LaunchError) as info:
        made.launch(NAME)
    elapsed = time.monotonic() - started
    assert not isinstance(info.value, StartupTimeout)
    assert str(info.value).endswith(
        f"cannot reach chaincode service {address} within 0.5s (is the chaincode service "
        f"running at {address}?)"
    )
    assert elapsed < 4, elapsed
    sample = made.metrics.registry.get_sample_value(
        "chaincode_launch_failures_total", {"chaincode": NAME}
    )
    assert sample == 1


def test_wrong_chaincode_id_is_refused(supports: list[ChaincodeSupport]) -> None:
    other = Service(chaincode_id="other").start()
    try:
        made = make_support(definition(other.address))
        supports.append(made)
        with pytest.raises(LaunchError, match="registered as 'other' but was launched as 'kvsvc'"):
            made.launch(NAME)
        assert made.status() == {}
        assert other.alive()
    finally:
        other.kill()


def test_stop_and_shutdown_leave_the_service_running(
    service: Service, support: ChaincodeSupport, supports: list[ChaincodeSupport]
) -> None:
    submit(support, "put", "k", "v")
    support.stop(NAME)
    assert support.instances() == {}
    assert run(support, "get", "k").response.payload == b"v"  # re-dialled
    support.shutdown()
    assert service.alive()
    # a new peer (fresh ledger) dials the same service
    again = make_support(definition(service.address))
    supports.append(again)
    submit(again, "put", "k", "w")
    assert run(again, "get", "k").response.payload == b"w"


def test_instance_status_describes_the_stream() -> None:
    ended = StreamEnded(code=1, reason="lost its connection to chaincode service at h:1 (x)")
    assert ended.describe() == "lost its connection to chaincode service at h:1 (x)"
    assert StreamEnded(code=0).describe() == "exited with code 0"


# -- TLS ---------------------------------------------------------------------------------------


def _serve_in_process(
    behaviour: Callable[[Any], None] | None = None,
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.Server, str]:
    """Our shim's Chaincode servicer (or ``behaviour``) in this process, optionally over TLS."""
    from actors.shim.__main__ import _ChaincodeServicer
    from examples.kv import KVChaincode
    from protos.peer import chaincode_shim_pb2_grpc

    servicer: Any = _ChaincodeServicer(KVChaincode(), NAME)
    if behaviour is not None:

        class Custom(chaincode_shim_pb2_grpc.ChaincodeServicer):
            def Connect(self, request_iterator: Any, context: Any) -> Any:
                behaviour(request_iterator)
                return iter(())

        servicer = Custom()
    server = grpc.server(futures.ThreadPoolExecutor(8))
    chaincode_shim_pb2_grpc.add_ChaincodeServicer_to_server(servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, f"127.0.0.1:{port}"


def test_mutual_tls_with_domain_override(supports: list[ChaincodeSupport]) -> None:
    ca = CertificateAuthority("chaincode CA")
    server_pair = ca.issue("kv service", server=True, hosts=("kv.chaincode.example",))
    client_pair = ca.issue("peer0", server=False)
    credentials = grpc.ssl_server_credentials(
        [(server_pair.key_pem, server_pair.cert_pem)],
        root_certificates=ca.cert_pem,
        require_client_auth=True,
    )
    server, address = _serve_in_process(credentials=credentials)
    try:
        tls = {
            "tls_required": True,
            "client_auth_required": True,
            "root_cert": ca.cert_pem.decode(),
            "client_cert": client_pair.cert_pem.decode(),
            "client_key": client_pair.key_pem.decode(),
            "domain": "kv.chaincode.example",  # the certificate's name, not 127.0.0.1
        }
        good = make_support(definition(address, **tls))
        supports.append(good)
        submit(good, "put", "secret", "s3")
        assert run(good, "get", "secret").response.payload == b"s3"

        # Without a client certificate the handshake fails: a dial failure, named as such.
        no_client = {k: v for k, v in tls.items() if k not in ("client_cert", "client_key")}
        no_client["client_auth_required"] = False
        bad = make_support(definition(address, dial_timeout="500ms", **no_client))
        supports.append(bad)
        with pytest.raises(LaunchError, match=r"cannot reach chaincode service .* over TLS"):
            bad.launch(NAME)

        # A plaintext dial to a TLS service does not get through either.
        plain = make_support(definition(address, dial_timeout="500ms"))
        supports.append(plain)
        with pytest.raises(LaunchError):
            plain.launch(NAME)
    finally:
        server.stop(0)


def test_keepalive_pings_too_often_for_a_default_grpc_server(
    supports: list[ChaincodeSupport],
) -> None:
    """A grpcio server with default settings (fabric-chaincode-python's is one) allows a ping
    on an idle connection only every 5 minutes and answers the third early one with GOAWAY
    "too_many_pings". With the runtime's keepalive at 1 s (60 s is Fabric's default, and our
    service's server accepts that) the idle connection dies within seconds: reported as an
    exit, and the next transaction dials again."""
    server, address = _serve_in_process()
    try:
        config = Config(
            channels=(CHANNEL,), startup_timeout=10.0, chaincodes=(definition(address),)
        )
        made = ChaincodeSupport(config, runtimes={"external": ExternalRuntime(keepalive=1.0)})
        supports.append(made)
        events = EventLog(made)
        submit(made, "put", "k", "v")
        assert wait_for(lambda: bool(events.details("exited")), timeout=20)
        assert "Too many pings" in events.details("exited")[0], events.details("exited")
        assert run(made, "get", "k").response.payload == b"v"
        assert len(events.details("ready")) == 2
    finally:
        server.stop(0)
