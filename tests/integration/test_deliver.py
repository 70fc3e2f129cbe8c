"""The peer's Deliver service over gRPC: seek semantics, the three block kinds, refusals with
Fabric's statuses, and the bound on concurrent streams."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from actors.gateway.client import GatewayClient
from actors.msp.msp import SigningIdentity
from protos.common.common_pb2 import (
    BAD_REQUEST,
    DELIVER_SEEK_INFO,
    ENDORSER_TRANSACTION,
    FORBIDDEN,
    NOT_FOUND,
    SUCCESS,
    Block,
    ChannelHeader,
    Envelope,
    Header,
    Payload,
    SignatureHeader,
)
from protos.orderer.ab_pb2 import SeekInfo
from protos.peer import events_pb2_grpc
from protos.peer.events_pb2 import DeliverResponse
from protos.peer.transaction_pb2 import VALID
from tests.gateway_peer import CHANNEL, GatewayPeer, ident, make_crypto, member_dir
from tests.unit.test_msp import issue, org_ca, pem

MAX = 2**63  # a stop no test reaches: the stream follows new commits
IDLE = 3.0  # seconds the peer gives a new stream to send its first request


@pytest.fixture(scope="module")
def crypto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_crypto(tmp_path_factory.mktemp("crypto"))


@pytest.fixture(scope="module")
def peer(crypto: Path) -> Iterator[GatewayPeer]:
    p = GatewayPeer(crypto, deliver_concurrency=8, first_request_timeout=IDLE)
    yield p
    p.close()


@pytest.fixture(scope="module")
def user(crypto: Path) -> SigningIdentity:
    return ident(crypto, 1, "User1@")


@pytest.fixture(scope="module")
def committed(peer: GatewayPeer, user: SigningIdentity) -> list[Any]:
    """Four committed transactions, the third with a chaincode event."""
    with GatewayClient(peer.address, user) as client:
        return [
            client.submit(CHANNEL, "kv", [b"put", b"d1", b"v"]),
            client.submit(CHANNEL, "asset", [b"create", b"D1", b"alice", b"10"]),
            client.submit(CHANNEL, "asset", [b"transfer", b"D1", b"bob"]),  # an event
            client.submit(CHANNEL, "kv", [b"put", b"d2", b"v"]),
        ]


@pytest.fixture(scope="module")
def stub(peer: GatewayPeer) -> Iterator[events_pb2_grpc.DeliverStub]:
    with grpc.insecure_channel(peer.address) as channel:
        yield events_pb2_grpc.DeliverStub(channel)


def position(spec: Any) -> dict[str, Any]:
    if spec in ("oldest", "newest", "next_commit"):
        return {spec: {}}
    return {"specified": {"number": spec}}


def seek(start: Any, stop: Any, **fields: Any) -> SeekInfo:
    return SeekInfo(start=position(start), stop=position(stop), **fields)


def envelope(
    signer: SigningIdentity,
    info: SeekInfo | bytes,
    *,
    channel: str = CHANNEL,
    when: dt.datetime | None = None,
    stamp: bool = True,
    resign: bool = True,
    tls_cert_hash: bytes = b"",
) -> Envelope:
    """A signed seek request as Fabric's clients build it (``protoutil.CreateSignedEnvelope``)."""
    header = ChannelHeader(type=DELIVER_SEEK_INFO, channel_id=channel, tls_cert_hash=tls_cert_hash)
    if stamp:
        header.timestamp.FromDatetime(when or dt.datetime.now(dt.UTC))
    payload = Payload(
        header=Header(
            channel_header=header.SerializeToString(),
            signature_header=SignatureHeader(
                creator=signer.serialized, nonce=os.urandom(24)
            ).SerializeToString(),
        ),
        data=info if isinstance(info, bytes) else info.SerializeToString(),
    ).SerializeToString()
    return Envelope(payload=payload, signature=signer.sign(payload) if resign else b"\x30\x00")


def ask(method: Any, *requests: Envelope, timeout: float = 30) -> list[DeliverResponse]:
    """Send the requests on one stream (then close it) and collect every response."""
    return list(method(iter(requests), timeout=timeout))


def numbers(responses: list[DeliverResponse]) -> list[int]:
    return [r.block.header.number for r in responses if r.WhichOneof("Type") == "block"]


def status(responses: list[DeliverResponse]) -> int:
    assert responses[-1].WhichOneof("Type") == "status"
    return responses[-1].status


def test_replay_between_specified_blocks_is_the_ledgers_blocks(
    peer: GatewayPeer, stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    first, last = committed[0].block, committed[-1].block
    got = ask(stub.Deliver, envelope(user, seek(first, last)))
    assert status(got) == SUCCESS
    store = peer.stack.store(CHANNEL)
    assert [r.block for r in got[:-1]] == [store.block(n) for n in range(first, last + 1)]


def test_oldest_newest_and_next_commit_positions(
    peer: GatewayPeer, stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    height = peer.stack.store(CHANNEL).height
    assert numbers(ask(stub.Deliver, envelope(user, seek("oldest", "oldest")))) == [0]
    assert numbers(ask(stub.Deliver, envelope(user, seek("newest", "newest")))) == [height - 1]
    both = ask(stub.Deliver, envelope(user, seek("oldest", "newest")))
    assert (numbers(both), status(both)) == (list(range(height)), SUCCESS)
    # a specified stop before the start is refused; FAIL_IF_NOT_READY shows the next_commit
    # start is past the last block
    ahead = ask(
        stub.Deliver,
        envelope(user, seek("next_commit", 0, behavior=SeekInfo.FAIL_IF_NOT_READY)),
    )
    assert (numbers(ahead), status(ahead)) == ([], BAD_REQUEST)  # stop 0 < start: refused
    waiting = ask(
        stub.Deliver,
        envelope(user, seek("next_commit", MAX, behavior=SeekInfo.FAIL_IF_NOT_READY)),
    )
    assert (numbers(waiting), status(waiting)) == ([], NOT_FOUND)


def test_fail_if_not_ready_sends_what_exists_then_not_found(
    peer: GatewayPeer, stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    height = peer.stack.store(CHANNEL).height
    got = ask(
        stub.Deliver,
        envelope(user, seek(height - 2, height + 5, behavior=SeekInfo.FAIL_IF_NOT_READY)),
    )
    assert (numbers(got), status(got)) == ([height - 2, height - 1], NOT_FOUND)


def test_block_until_ready_streams_new_commits(
    peer: GatewayPeer, stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    start = peer.stack.store(CHANNEL).height
    call = stub.Deliver(iter([envelope(user, seek("next_commit", MAX))]), timeout=30)
    got: queue.Queue[DeliverResponse] = queue.Queue()
    reader = threading.Thread(target=lambda: [got.put(r) for r in _until_cancelled(call)])
    reader.start()
    with GatewayClient(peer.address, user) as client:
        done = [client.submit(CHANNEL, "kv", [b"put", f"live{i}".encode(), b"v"]) for i in (1, 2)]
    first, second = got.get(timeout=30), got.get(timeout=30)
    call.cancel()
    reader.join(30)
    assert [first.block.header.number, second.block.header.number] == [start, start + 1]
    assert [d.block for d in done] == [start, start + 1]


def _until_cancelled(call: Any) -> Iterator[DeliverResponse]:
    try:
        yield from call
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.CANCELLED


def test_several_seeks_on_one_stream(
    stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    got = ask(stub.Deliver, envelope(user, seek(0, 0)), envelope(user, seek(1, 2)))
    kinds = [r.WhichOneof("Type") for r in got]
    assert kinds == ["block", "status", "block", "block", "status"]
    assert numbers(got) == [0, 1, 2]


def test_filtered_blocks_carry_ids_codes_and_events_without_payload(
    stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    moved = committed[2]
    got = ask(stub.DeliverFiltered, envelope(user, seek(moved.block, moved.block)))
    assert status(got) == SUCCESS
    block = got[0].filtered_block
    assert (block.channel_id, block.number) == (CHANNEL, moved.block)
    [tx] = [t for t in block.filtered_transactions if t.txid == moved.txid]
    assert (tx.type, tx.tx_validation_code) == (ENDORSER_TRANSACTION, VALID)
    [action] = tx.transaction_actions.chaincode_actions
    event = action.chaincode_event
    assert (event.chaincode_id, event.tx_id, event.event_name) == ("asset", moved.txid, "Transfer")
    assert event.payload == b""  # the full block has it
    full = ask(stub.Deliver, envelope(user, seek(moved.block, moved.block)))[0].block
    assert b'{"id": "D1", "from": "alice", "to": "bob"}' in b"".join(full.data.data)


def test_blocks_with_private_data_and_headers_only(
    stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    number = committed[0].block
    got = ask(stub.DeliverWithPrivateData, envelope(user, seek(number, number)))
    assert status(got) == SUCCESS
    both = got[0].block_and_private_data
    assert both.block.header.number == number and len(both.block.data.data) > 0
    assert dict(both.private_data_map) == {}  # no private data store by block (see deliver.py)
    info = seek(number, number, content_type=SeekInfo.HEADER_WITH_SIG)
    header_only = ask(stub.Deliver, envelope(user, info))[0].block
    assert header_only.header.number == number
    assert len(header_only.data.data) == 0 and len(header_only.metadata.metadata) == 5


def test_refusals_get_fabrics_statuses(
    crypto: Path, stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    def one(request: Envelope) -> int:
        got = ask(stub.Deliver, request, envelope(user, seek(0, 0)))
        assert len(got) == 1  # a refusal ends the stream: the second seek is never read
        return status(got)

    assert one(envelope(user, seek(0, 0), channel="nosuchchannel")) == NOT_FOUND
    assert one(envelope(user, seek(10**6, MAX))) == NOT_FOUND  # beyond the chain's height
    assert one(envelope(user, seek(2, 1))) == BAD_REQUEST  # stop before start
    assert one(envelope(user, SeekInfo(start=position(0)))) == BAD_REQUEST  # no stop
    assert one(envelope(user, b"\xff\xff")) == BAD_REQUEST  # not a SeekInfo
    assert one(Envelope(payload=b"\x0a\x03abc", signature=b"")) == BAD_REQUEST  # no payload
    assert one(envelope(user, seek(0, 0), stamp=False)) == BAD_REQUEST  # no timestamp
    stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)  # outside the 15 min window
    assert one(envelope(user, seek(0, 0), when=stale)) == BAD_REQUEST
    assert one(envelope(user, seek(0, 0), resign=False)) == FORBIDDEN  # a bad signature
    outsider = ident(make_crypto(crypto.parent / "outsider", "Org9MSP"), 9, "User1@")
    assert one(envelope(outsider, seek(0, 0))) == FORBIDDEN  # not a member of the channel
    ca_cert, ca_key = org_ca(crypto, 1)
    now = dt.datetime.now(dt.UTC)
    cert, key = issue(
        ca_cert, ca_key, not_before=now - dt.timedelta(minutes=2), not_after=now
    )  # a client of Org1, expired
    expired = SigningIdentity("Org1MSP", cert, pem(cert), key)
    assert one(envelope(expired, seek(0, 0))) == FORBIDDEN


def test_concurrent_streams_are_bounded(
    peer: GatewayPeer, stub: Any, user: SigningIdentity, committed: list[Any]
) -> None:
    limit = peer.support.config.deliver_concurrency
    waiting = [
        stub.Deliver(iter([envelope(user, seek("next_commit", MAX))]), timeout=30)
        for _ in range(limit)
    ]
    try:
        # each waiting stream has been admitted once its initial metadata arrives...
        for call in waiting:
            assert call.initial_metadata() is not None
        with pytest.raises(grpc.RpcError) as refused:
            ask(stub.Deliver, envelope(user, seek(0, 0)))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"exceeding concurrency limit ({limit})" in refused.value.details()
    finally:
        for call in waiting:
            call.cancel()
    # ...and the slots come back once the server has seen the cancellations (asynchronously)
    for _ in range(300):
        try:
            got = ask(stub.Deliver, envelope(user, seek(0, 0)))
            break
        except grpc.RpcError as error:
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            threading.Event().wait(0.1)
    assert status(got) == SUCCESS


def idle_stream(method: Any, hang_up: threading.Event) -> Any:
    """A stream that sends nothing until ``hang_up``."""

    def nothing() -> Iterator[Envelope]:
        hang_up.wait(60)
        yield from ()

    return method(nothing(), timeout=60)


def gateway_threads() -> int:
    return sum(t.name == "gateway" for t in threading.enumerate())


def test_idle_streams_do_not_starve_a_reader(crypto: Path, user: SigningIdentity) -> None:
    # a peer of its own whose idle streams outlive the test however loaded the machine is
    own = GatewayPeer(crypto, deliver_concurrency=4, first_request_timeout=120.0)
    hang_up = threading.Event()
    try:
        with GatewayClient(own.address, user) as client:
            client.submit(CHANNEL, "kv", [b"put", b"d1", b"v"])
        with grpc.insecure_channel(own.address) as channel:
            stub = events_pb2_grpc.DeliverStub(channel)
            # one reader following the chain holds a reader's slot...
            follower = stub.Deliver(iter([envelope(user, seek(0, MAX))]), timeout=60)
            assert next(follower).block.header.number == 0
            before = gateway_threads()
            # ...and three idle streams wait for their first request: were they to take a
            # reader's slot each, the four would leave none for another reader
            idle = [idle_stream(stub.Deliver, hang_up) for _ in range(3)]
            for _ in range(300):
                if gateway_threads() >= before + 3:  # a server thread per call
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("the idle streams never reached the server")
            got = ask(stub.Deliver, envelope(user, seek(0, 0)))
            assert status(got) == SUCCESS
            assert all(call.running() for call in idle)
            follower.cancel()
    finally:
        hang_up.set()
        own.close()


def test_idle_streams_do_not_starve_the_gateway(crypto: Path, user: SigningIdentity) -> None:
    """Streams that send nothing have a bound of their own, so the threads of the Gateway and
    Endorser services stay theirs (before it, idle streams took every thread of the server)."""
    own = GatewayPeer(
        crypto,
        deliver_concurrency=2,
        gateway_concurrency=1,
        endorser_concurrency=1,
        first_request_timeout=120.0,
    )
    hang_up = threading.Event()
    try:
        with grpc.insecure_channel(own.address) as channel:
            stub = events_pb2_grpc.DeliverStub(channel)
            idle = [idle_stream(stub.Deliver, hang_up) for _ in range(8)]
            # The streams reach the server in any order: whichever 6 come last are refused.
            for _ in range(600):
                if sum(call.done() for call in idle) >= 6:
                    break
                threading.Event().wait(0.05)
            else:
                pytest.fail("no stream beyond the bound was refused")
            refused = [(call.code(), call.details()) for call in idle if call.done()]
            assert (
                refused
                == [
                    (
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "too many requests for /protos.Deliver/Deliver, exceeding concurrency "
                        "limit (2)",
                    )
                ]
                * 6
            )
            assert sum(call.running() for call in idle) == 2
            with GatewayClient(own.address, user) as client:
                client.submit(CHANNEL, "kv", [b"put", b"g", b"v"])
                assert client.evaluate(CHANNEL, "kv", [b"get", b"g"]) == b"v"
    finally:
        hang_up.set()
        own.close()


def test_a_stream_without_a_request_is_ended(stub: Any) -> None:
    hang_up = threading.Event()
    call = idle_stream(stub.DeliverFiltered, hang_up)
    try:
        with pytest.raises(grpc.RpcError) as ended:
            list(call)
        assert ended.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert ended.value.details() == f"no deliver request within {IDLE:g}s of opening the stream"
    finally:
        hang_up.set()


def test_a_block_decodes_as_fabrics(stub: Any, user: SigningIdentity, committed: list[Any]) -> None:
    got = ask(stub.Deliver, envelope(user, seek(committed[0].block, committed[0].block)))
    block = Block.FromString(got[0].block.SerializeToString())
    payload = Payload.FromString(Envelope.FromString(block.data.data[0]).payload)
    assert ChannelHeader.FromString(payload.header.channel_header).tx_id == committed[0].txid


def test_with_mutual_tls_the_request_is_bound_to_the_client_certificate(
    crypto: Path, user: SigningIdentity
) -> None:
    tls = member_dir(crypto, 1, "User1@") / "tls"
    cert = (tls / "client.crt").read_bytes()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(member_dir(crypto, 1, "peer0") / "tls" / "ca.crt").read_bytes(),
        private_key=(tls / "client.key").read_bytes(),
        certificate_chain=cert,
    )
    der = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
    bound = hashlib.sha256(der).digest()
    secured = GatewayPeer(crypto, tls=True, client_auth=True)
    options = [("grpc.ssl_target_name_override", "peer0.org1.example.com")]
    try:
        with grpc.secure_channel(secured.address, credentials, options) as channel:
            stub = events_pb2_grpc.DeliverStub(channel)
            with GatewayClient(
                secured.address, user, credentials=credentials, options=options
            ) as c:
                c.submit(CHANNEL, "kv", [b"put", b"m", b"v"])
            good = ask(stub.Deliver, envelope(user, seek(0, 0), tls_cert_hash=bound))
            assert (numbers(good), status(good)) == ([0], SUCCESS)
            for claimed in (b"", hashlib.sha256(b"another certificate").digest()):
                bad = ask(stub.Deliver, envelope(user, seek(0, 0), tls_cert_hash=claimed))
                assert (numbers(bad), status(bad)) == ([], BAD_REQUEST)
    finally:
        secured.close()
