"""The gRPC chaincode listener and the process runtime, including clients that misbehave:
garbage on the stream, registering twice or under another id, other chaincodes' txids, floods.
Each gets a clear error and only its own stream closed."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator

import grpc
import pytest

from actors.config import ChaincodeDefinition, Config
from actors.errors import ChaincodeStreamTerminated, LaunchError
from actors.support import ChaincodeSupport
from actors.transports import ConnectionClosed
from actors.transports.grpc import GrpcStream, dial
from protos.peer.chaincode_pb2 import ChaincodeID
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM
from protos.peer.chaincode_shim_pb2 import GetState
from protos.peer.proposal_response_pb2 import Response
from tests.helpers import EventLog, recv_within, wait_for

KV = "examples.kv:KVChaincode"


def _connect(support: ChaincodeSupport, name: str) -> tuple[GrpcStream, grpc.Channel]:
    address = support.peer_address()
    assert address is not None
    stream, channel = dial(address)
    stream.send(CM(type=CM.REGISTER, payload=ChaincodeID(name=name).SerializeToString()))
    return stream, channel


def _registered(support: ChaincodeSupport, name: str) -> tuple[GrpcStream, grpc.Channel]:
    stream, channel = _connect(support, name)
    assert recv_within(stream).type == CM.REGISTERED
    assert recv_within(stream).type == CM.READY
    return stream, channel


@pytest.fixture
def dev_peer() -> Iterator[ChaincodeSupport]:
    config = Config(
        mode="dev",
        channels=("ch",),
        max_inbound_rate=1000,
        chaincodes=(ChaincodeDefinition("kvp", runtime="process", target=KV),),
    )
    with ChaincodeSupport(config) as support:
        support.listen("127.0.0.1:0")
        yield support


@pytest.fixture
def net_peer() -> Iterator[ChaincodeSupport]:
    exits = (
        ChaincodeDefinition(
            "exits",
            runtime="process",
            command=(sys.executable, "-c", "import sys; print('bye from exits'); sys.exit(5)"),
        ),
    )
    crashy = ChaincodeDefinition(
        "crashy", runtime="process", target="tests.integration.chaincodes:Crashy"
    )
    broken = ChaincodeDefinition(
        "broken", runtime="process", target="tests.integration.chaincodes:BrokenConstructor"
    )
    # Plaintext (--insecure): these tests dial the listener as raw clients would.
    config = Config(
        tls_enabled=False,
        channels=("ch",),
        chaincodes=(
            ChaincodeDefinition("kvp", runtime="process", target=KV),
            crashy,
            broken,
            *exits,
        ),
    )
    with ChaincodeSupport(config) as support:
        support.listen("127.0.0.1:0")
        yield support


def test_process_chaincode_end_to_end(net_peer: ChaincodeSupport) -> None:
    started = time.perf_counter()
    net_peer.launch("kvp")
    print(f"process chaincode launch to READY: {(time.perf_counter() - started) * 1000:.0f} ms")
    assert net_peer.invoke("ch", None, "kvp", ["put", "a", "1"]).committed
    assert net_peer.execute("ch", None, "kvp", ["get", "a"]).response.payload == b"1"
    assert net_peer.instances()["kvp"].startswith("process pid")


def test_process_exit_code_and_output_are_reported(net_peer: ChaincodeSupport) -> None:
    started = time.monotonic()
    with pytest.raises(LaunchError, match="exited with code 5"):
        net_peer.launch("exits")
    assert time.monotonic() - started < 10  # not the 60 s startup timeout
    with pytest.raises(LaunchError):  # and again on the next attempt
        net_peer.execute("ch", None, "exits", ["x"])


@pytest.mark.parametrize(
    ("chaincode", "cause"),
    [
        ("exits", "bye from exits"),
        ("broken", "RuntimeError: BrokenConstructor refuses to start"),
    ],
)
def test_a_failed_launch_names_its_cause(
    net_peer: ChaincodeSupport, chaincode: str, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The chaincode's last lines reach the caller, the events and the log at WARNING (issue 14:
    they were only in the logger at INFO, shown with -v)."""
    events = EventLog(net_peer)
    with pytest.raises(LaunchError) as failure:
        net_peer.launch(chaincode)
    assert "last log lines:" in str(failure.value) and cause in str(failure.value)
    assert any(cause in detail for detail in events.details("launch_failed", chaincode))
    assert wait_for(lambda: events.count("exited", chaincode) == 1, timeout=10)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(cause in text and f"chaincode {chaincode}" in text for text in warned), warned


def test_logs_are_captured_per_chaincode(net_peer: ChaincodeSupport) -> None:
    net_peer.launch("kvp")
    net_peer.execute("ch", None, "kvp", ["get", "nothing"])
    # The shim logs its connection at INFO; the runtime keeps the chaincode's output.
    expected = f"chaincode kvp connected to peer at {net_peer.peer_address()}"
    deadline = time.monotonic() + 5
    while not any(expected in line for line in net_peer.logs("kvp")):
        assert time.monotonic() < deadline, net_peer.logs("kvp")
        time.sleep(0.05)
    assert net_peer.logs("unknown") == []


def test_net_mode_refuses_unsolicited_registration(net_peer: ChaincodeSupport) -> None:
    stream, channel = _connect(net_peer, "intruder")
    try:
        refusal = recv_within(stream)
        assert refusal.type == CM.ERROR
        assert refusal.payload == (
            b"peer will not accept external chaincode connection intruder (except in dev mode)"
        )
        with pytest.raises(ConnectionClosed):
            recv_within(stream)
    finally:
        channel.close()
    assert net_peer.invoke("ch", None, "kvp", ["put", "b", "2"]).committed


def test_dev_mode_accepts_registration_and_serves(dev_peer: ChaincodeSupport) -> None:
    stream, channel = _registered(dev_peer, "devcc")
    try:
        future = dev_peer.execute_async("ch", "t1", "devcc", ["fn"])
        tx = recv_within(stream)
        assert (tx.type, tx.txid, tx.channel_id) == (CM.TRANSACTION, "t1", "ch")
        stream.send(
            CM(
                type=CM.COMPLETED,
                payload=Response(status=200, payload=b"hi").SerializeToString(),
                txid="t1",
                channel_id="ch",
            )
        )
        assert future.result(10).response.payload == b"hi"
    finally:
        stream.close()
        channel.close()


def test_garbage_on_the_stream_closes_only_that_stream(dev_peer: ChaincodeSupport) -> None:
    good, good_channel = _registered(dev_peer, "good")
    address = dev_peer.peer_address()
    assert address is not None
    channel = grpc.insecure_channel(address)
    raw = channel.stream_stream(
        "/protos.ChaincodeSupport/Register",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as failure:
        list(raw(iter([b"\xff\xff\xff not a ChaincodeMessage"]), timeout=10))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a ChaincodeMessage" in failure.value.details()
    channel.close()
    try:
        future = dev_peer.execute_async("ch", "t2", "good", ["fn"])
        assert recv_within(good).txid == "t2"
        good.send(
            CM(
                type=CM.COMPLETED,
                payload=Response(status=200).SerializeToString(),
                txid="t2",
                channel_id="ch",
            )
        )
        assert future.result(10).response.status == 200
    finally:
        good.close()
        good_channel.close()


def test_registering_twice_is_refused(dev_peer: ChaincodeSupport) -> None:
    first, first_channel = _registered(dev_peer, "twice")
    second, second_channel = _connect(dev_peer, "twice")
    try:
        refusal = recv_within(second)
        assert refusal.type == CM.ERROR
        assert refusal.payload == b"duplicate chaincodeID: twice"
        # A second REGISTER on a ready stream is a protocol violation: that stream ends.
        first.send(CM(type=CM.REGISTER, payload=ChaincodeID(name="twice").SerializeToString()))
        with pytest.raises(ConnectionClosed):
            recv_within(first)
    finally:
        for stream, channel in ((first, first_channel), (second, second_channel)):
            stream.close()
            channel.close()


def test_requests_for_another_chaincodes_txid_fail(dev_peer: ChaincodeSupport) -> None:
    victim, victim_channel = _registered(dev_peer, "victim")
    thief, thief_channel = _registered(dev_peer, "thief")
    try:
        future = dev_peer.execute_async("ch", "secret-tx", "victim", ["fn"])
        assert recv_within(victim).txid == "secret-tx"
        thief.send(
            CM(
                type=CM.GET_STATE,
                payload=GetState(key="k").SerializeToString(),
                txid="secret-tx",
                channel_id="ch",
            )
        )
        reply = recv_within(thief)
        assert reply.type == CM.ERROR
        assert reply.payload == b"GET_STATE failed: transaction ID: secret-tx: no ledger context"
        victim.send(
            CM(
                type=CM.COMPLETED,
                payload=Response(status=200).SerializeToString(),
                txid="secret-tx",
                channel_id="ch",
            )
        )
        assert future.result(10).response.status == 200
    finally:
        for stream, channel in ((victim, victim_channel), (thief, thief_channel)):
            stream.close()
            channel.close()


def test_a_flood_closes_the_flooding_stream(
    dev_peer: ChaincodeSupport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="actors.handler")
    flooder, flooder_channel = _registered(dev_peer, "flooder")
    request = CM(
        type=CM.GET_STATE, payload=GetState(key="k").SerializeToString(), txid="x", channel_id="c"
    )
    try:
        for _ in range(20000):
            flooder.send(request)
        with pytest.raises(ConnectionClosed):
            while True:  # ERROR replies until the peer hangs up
                recv_within(flooder)
    finally:
        flooder.close()
        flooder_channel.close()
    assert any("flooded" in record.getMessage() for record in caplog.records)
    # Everything else is unaffected.
    assert dev_peer.invoke("ch", None, "kvp", ["put", "after", "flood"]).committed


def test_a_dying_process_fails_in_flight_work_naming_its_exit_and_output(
    net_peer: ChaincodeSupport,
) -> None:
    net_peer.launch("crashy")
    started = time.monotonic()
    with pytest.raises(ChaincodeStreamTerminated) as failure:
        net_peer.execute("ch", None, "crashy", ["exit", "9"], timeout=20)
    assert time.monotonic() - started < 5  # at once, not at the execute timeout
    message = str(failure.value)
    assert "chaincode crashy exited with code 9" in message
    assert "last log lines:" in message and "chaincode crashy connected to peer" in message
    # The next transaction relaunches it.
    assert net_peer.execute("ch", None, "crashy", ["ok"]).response.status == 200
