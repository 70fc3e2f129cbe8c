"""The peer-side Handler actor, driven over a real pipe by scripted fake chaincodes.

Each test plays the chaincode by hand: it sends REGISTER, reads what the peer sends, answers
shim requests message by message and checks the bytes that come back. Nothing here runs a
real shim, so every field the peer puts on the wire is asserted directly.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any

import msgpack
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import Message

from actors.config import ChaincodeDefinition, Config
from actors.errors import (
    ChaincodeError,
    ChaincodeStreamTerminated,
    DuplicateTransaction,
    ExecuteTimeout,
    InvalidRequest,
    TransactionFailed,
)
from actors.handler import Describe
from actors.ledger import ValidationCode
from actors.support import ChaincodeSupport
from actors.transports.base import ConnectionClosed
from actors.transports.pipe import PipeStream, encode, encode_batch
from actors.txcontexts import (
    ContextsStarted,
    CountContexts,
    ExecuteResult,
    TXContext,
    TXContextRegistry,
)
from protos.common import common_pb2
from protos.ledger.queryresult import kv_query_result_pb2 as queryresult
from protos.ledger.rwset.kvrwset import kv_rwset_pb2
from protos.msp.identities_pb2 import SerializedIdentity
from protos.peer import chaincode_shim_pb2 as shim
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.chaincode_pb2 import (
    ChaincodeAdditionalParams,
    ChaincodeID,
    ChaincodeInput,
    ChaincodeInvocationSpec,
    ChaincodeSpec,
)
from protos.peer.proposal_pb2 import (
    ChaincodeHeaderExtension,
    ChaincodeProposalPayload,
    Proposal,
    SignedProposal,
)
from protos.peer.proposal_response_pb2 import Response
from tests.helpers import wait_for

pytestmark = pytest.mark.timeout(60)

CM = shim.ChaincodeMessage
TYPE_NAMES = {v.number: v.name for v in CM.Type.DESCRIPTOR.values}
WAIT = 5.0  # seconds; only ever reached when something is broken
CHANNEL = "ch"


# ------------------------------------------------------------------------------- harness


def failure(future: Future[Any], timeout: float = WAIT) -> BaseException:
    """The exception a future ends with (fails the test if it succeeds or hangs)."""
    exc = future.exception(timeout)
    assert exc is not None, f"expected a failure, got {future.result()!r}"
    return exc


class FakeChaincode:
    """The chaincode end of a pipe whose other end is served by a Handler."""

    def __init__(self, support: ChaincodeSupport, name: str) -> None:
        peer_conn, self.conn = multiprocessing.Pipe()
        self.stream = PipeStream(self.conn)
        self.handler = support.serve_stream(
            PipeStream(peer_conn, max_frame=support.config.max_message_size)
        )
        self.name = name

    # -- raw traffic --------------------------------------------------------------------

    def send(
        self,
        mtype: int,
        payload: bytes | Message = b"",
        *,
        txid: str = "",
        channel_id: str = "",
        event: ChaincodeEvent | None = None,
    ) -> None:
        if isinstance(payload, Message):
            payload = payload.SerializeToString()
        msg = CM(type=mtype, payload=payload, txid=txid, channel_id=channel_id)
        if event is not None:
            msg.chaincode_event.CopyFrom(event)
        self.stream.send(msg)

    def waiting(self, timeout: float) -> bool:
        """A message is there to read (the rest of a batch frame, or a new frame)."""
        return self.stream.buffered() or self.conn.poll(timeout)

    def recv(self, timeout: float = WAIT) -> CM:
        if not self.waiting(timeout):
            raise AssertionError(f"{self.name}: nothing received within {timeout}s")
        return self.stream.recv()

    def expect_nothing(self, timeout: float = 0.3) -> None:
        if self.waiting(timeout):
            raise AssertionError(f"{self.name}: unexpected message {self.stream.recv()}")

    def expect_closed(self, timeout: float = WAIT) -> list[CM]:
        """Wait until the peer closes the stream; returns whatever arrived before."""
        deadline = time.monotonic() + timeout
        received = []
        while True:
            if not self.waiting(max(0.0, deadline - time.monotonic())):
                raise AssertionError(f"{self.name}: stream still open; received {received}")
            try:
                received.append(self.stream.recv())
            except ConnectionClosed:
                return received

    # -- protocol steps -----------------------------------------------------------------

    def register(self) -> FakeChaincode:
        self.send(CM.REGISTER, ChaincodeID(name=self.name))
        registered = self.recv()
        assert registered.type == CM.REGISTERED, registered
        ready = self.recv()
        assert ready.type == CM.READY, ready
        return self


class Tx:
    """One transaction as the fake chaincode sees it: the INIT/TRANSACTION and the future."""

    def __init__(self, cc: FakeChaincode, msg: CM, future: Future[ExecuteResult]) -> None:
        self.cc = cc
        self.msg = msg
        self.future = future
        self.txid = msg.txid
        self.channel = msg.channel_id

    def send(self, mtype: int, payload: bytes | Message = b"", **kw: Any) -> None:
        self.cc.send(mtype, payload, txid=self.txid, channel_id=self.channel, **kw)

    def request(self, mtype: int, payload: bytes | Message = b"") -> CM:
        self.send(mtype, payload)
        reply = self.cc.recv()
        # Shims route replies by channel_id + txid: both must be echoed.
        assert (reply.txid, reply.channel_id) == (self.txid, self.channel), reply
        return reply

    def ok(self, mtype: int, payload: bytes | Message = b"") -> bytes:
        reply = self.request(mtype, payload)
        assert reply.type == CM.RESPONSE, reply.payload.decode("utf-8", "replace")
        return reply.payload

    def fail(self, mtype: int, payload: bytes | Message = b"") -> str:
        reply = self.request(mtype, payload)
        assert reply.type == CM.ERROR, reply
        text = reply.payload.decode()
        prefix = f"{TYPE_NAMES[mtype]} failed: transaction ID: {self.txid}: "
        assert text.startswith(prefix), text
        return text[len(prefix) :]

    def complete(
        self, status: int = 200, payload: bytes = b"", event: ChaincodeEvent | None = None
    ) -> ExecuteResult:
        self.send(CM.COMPLETED, Response(status=status, payload=payload), event=event)
        return self.future.result(WAIT)


class Peer:
    """A ChaincodeSupport plus the fake chaincodes connected to it."""

    def __init__(self, **config: Any) -> None:
        config.setdefault("mode", "dev")
        config.setdefault("channels", (CHANNEL, "ch2"))
        # The fakes stay silent through timeouts on purpose; liveness has its own tests.
        config.setdefault("hung_after", 0)
        self.support = ChaincodeSupport(Config(**config))
        self.fakes: list[FakeChaincode] = []

    def connect(self, name: str = "fake", *, register: bool = True) -> FakeChaincode:
        cc = FakeChaincode(self.support, name)
        self.fakes.append(cc)
        return cc.register() if register else cc

    def start(
        self,
        cc: FakeChaincode,
        txid: str | None = None,
        args: Iterable[bytes | str] = ("invoke",),
        channel: str = CHANNEL,
        **kw: Any,
    ) -> Tx:
        txid = txid or uuid.uuid4().hex
        future = self.support.execute_async(channel, txid, cc.name, list(args), **kw)
        msg = cc.recv()
        assert msg.type in (CM.TRANSACTION, CM.INIT), msg
        assert (msg.txid, msg.channel_id) == (txid, channel)
        return Tx(cc, msg, future)

    def commit(
        self,
        namespace: str,
        writes: Mapping[str, bytes | None],
        channel: str = CHANNEL,
        timestamp: float | None = None,
    ) -> str:
        """Commit writes straight into the ledger (setup, bypassing chaincode)."""
        ledger = self.support.ledgers.get(channel)
        txid = uuid.uuid4().hex
        with ledger.new_simulator(txid) as sim:
            for key, value in writes.items():
                if value is None:
                    sim.delete_state(namespace, key)
                else:
                    sim.put_state(namespace, key, value)
            results = sim.get_results()
        assert ledger.commit(txid, results, timestamp) is ValidationCode.VALID
        return txid

    def metric(self, name: str, **labels: str) -> float:
        return self.support.metrics.registry.get_sample_value(name, labels) or 0.0

    def close(self) -> None:
        self.support.shutdown()
        for cc in self.fakes:
            cc.stream.close()


@pytest.fixture
def make_peer() -> Iterable[Callable[..., Peer]]:
    peers: list[Peer] = []

    def make(**config: Any) -> Peer:
        peer = Peer(**config)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


@pytest.fixture
def peer(make_peer: Callable[..., Peer]) -> Peer:
    return make_peer()


def assert_works(peer: Peer, cc: FakeChaincode) -> None:
    """A full round trip on ``cc``: transaction, one shim request, completion."""
    tx = peer.start(cc)
    assert tx.ok(CM.GET_STATE, shim.GetState(key="probe")) == b""
    assert tx.complete(payload=b"alive").response.payload == b"alive"


def query(payload: bytes) -> shim.QueryResponse:
    return shim.QueryResponse.FromString(payload)


def kvs(response: shim.QueryResponse) -> list[queryresult.KV]:
    return [queryresult.KV.FromString(r.resultBytes) for r in response.results]


# ----------------------------------------------------------------------------- handshake


def test_register_gets_registered_then_ready(peer: Peer) -> None:
    cc = peer.connect(register=False)
    cc.send(CM.REGISTER, ChaincodeID(name="fake"))
    first, second = cc.recv(), cc.recv()
    assert first.type == CM.REGISTERED
    assert second.type == CM.READY
    assert first.payload == b""
    # READY announces chaincode.runtimeParams, as Fabric 3.x's sendReady does.
    params = ChaincodeAdditionalParams.FromString(second.payload)
    assert (params.use_write_batch, params.max_size_write_batch) == (True, 1000)
    assert (params.use_get_multiple_keys, params.max_size_get_multiple_keys) == (True, 1000)
    for msg in (first, second):
        assert (msg.txid, msg.channel_id) == ("", "")
        assert not msg.HasField("proposal")
    cc.expect_nothing()
    assert cc.handler.ask(Describe(), timeout=WAIT).state == "ready"
    wait_for(lambda: peer.support.status().get("fake") == "ready", what="fake ready")
    assert_works(peer, cc)


def test_register_with_empty_name_is_refused(peer: Peer) -> None:
    cc = peer.connect(register=False)
    cc.send(CM.REGISTER, ChaincodeID(name=""))
    received = cc.expect_closed()
    assert [m.type for m in received] == [CM.ERROR]
    assert "chaincode name is empty" in received[0].payload.decode()


def test_register_with_undecodable_payload_closes_the_stream(peer: Peer) -> None:
    cc = peer.connect(register=False)
    cc.send(CM.REGISTER, b"\xff\x00garbage")
    assert all(m.type == CM.ERROR for m in cc.expect_closed())  # never REGISTERED
    wait_for(lambda: not cc.handler.is_alive(), what="handler stop")
    assert_works(peer, peer.connect("other"))


def test_net_mode_refuses_unsolicited_register(make_peer: Callable[..., Peer]) -> None:
    peer = make_peer(mode="net")
    cc = peer.connect(register=False)
    cc.send(CM.REGISTER, ChaincodeID(name="intruder"))
    received = cc.expect_closed()
    assert [m.type for m in received] == [CM.ERROR]
    text = received[0].payload.decode()
    assert "peer will not accept external chaincode connection" in text
    assert "intruder" in text
    assert "intruder" not in peer.support.status()


def test_second_connection_with_the_same_name_is_a_duplicate(peer: Peer) -> None:
    first = peer.connect("fake")
    second = peer.connect("fake", register=False)
    second.send(CM.REGISTER, ChaincodeID(name="fake"))
    received = second.expect_closed()
    assert [m.type for m in received] == [CM.ERROR]
    assert "duplicate chaincodeID: fake" in received[0].payload.decode()
    assert_works(peer, first)  # the live registration is untouched


def test_name_can_register_again_after_its_connection_ends(peer: Peer) -> None:
    first = peer.connect("fake")
    first.stream.close()
    wait_for(lambda: not first.handler.is_alive(), what="first handler stop")
    assert_works(peer, peer.connect("fake"))


# --------------------------------------------------------------------- INIT / TRANSACTION


def test_transaction_message_carries_input_ids_and_a_wellformed_proposal(peer: Peer) -> None:
    cc = peer.connect()
    before = time.time()
    tx = peer.start(cc, "tx-1", [b"fn", b"a", b"\x00\xff"], transient={"secret": b"s3cret"})
    msg = tx.msg
    assert msg.type == CM.TRANSACTION
    assert (msg.txid, msg.channel_id) == ("tx-1", CHANNEL)
    ccinput = ChaincodeInput.FromString(msg.payload)
    assert list(ccinput.args) == [b"fn", b"a", b"\x00\xff"]
    assert ccinput.is_init is False

    signed = msg.proposal
    proposal = Proposal.FromString(signed.proposal_bytes)
    assert proposal.header and proposal.payload  # Node shims reject either being empty
    header = common_pb2.Header.FromString(proposal.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    assert channel_header.type == common_pb2.ENDORSER_TRANSACTION == 3
    assert channel_header.channel_id == CHANNEL
    assert channel_header.tx_id == "tx-1"
    stamp = channel_header.timestamp.seconds + channel_header.timestamp.nanos / 1e9
    assert before - 1 <= stamp <= time.time() + 1
    extension = ChaincodeHeaderExtension.FromString(channel_header.extension)
    assert extension.chaincode_id.name == "fake"

    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    assert signature_header.nonce
    creator = SerializedIdentity.FromString(signature_header.creator)
    assert creator.mspid == peer.support.config.msp_id == "SampleOrg"
    assert creator.id_bytes.startswith(b"-----BEGIN CERTIFICATE-----")
    cert = x509.load_pem_x509_certificate(creator.id_bytes)
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signed.signature, signed.proposal_bytes, ec.ECDSA(hashes.SHA256()))

    payload = ChaincodeProposalPayload.FromString(proposal.payload)
    assert dict(payload.TransientMap) == {"secret": b"s3cret"}
    spec = ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    assert spec.chaincode_id.name == "fake"
    assert list(spec.input.args) == [b"fn", b"a", b"\x00\xff"]
    tx.complete()


def test_init_message_sets_is_init(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc, "init-1", ["init", "x"], is_init=True)
    assert tx.msg.type == CM.INIT
    ccinput = ChaincodeInput.FromString(tx.msg.payload)
    assert ccinput.is_init is True
    assert list(ccinput.args) == [b"init", b"x"]
    proposal = Proposal.FromString(tx.msg.proposal.proposal_bytes)
    payload = ChaincodeProposalPayload.FromString(proposal.payload)
    spec = ChaincodeInvocationSpec.FromString(payload.input).chaincode_spec
    assert spec.input.is_init is True
    assert tx.complete(payload=b"inited").response.payload == b"inited"


def test_callers_signed_proposal_is_passed_through_unchanged(peer: Peer) -> None:
    cc = peer.connect()
    own = SignedProposal(proposal_bytes=b"\x0a\x03abc", signature=b"sig")
    tx = peer.start(cc, "tx-own", ["f"], proposal=own)
    assert tx.msg.proposal == own
    tx.complete()


def test_txid_is_made_the_fabric_way_or_taken_from_the_proposal(peer: Peer) -> None:
    cc = peer.connect()
    future = peer.support.execute_async(CHANNEL, None, cc.name, ["f"])
    msg = cc.recv()
    header = common_pb2.Header.FromString(Proposal.FromString(msg.proposal.proposal_bytes).header)
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    expected = hashlib.sha256(signature_header.nonce + signature_header.creator).hexdigest()
    assert msg.txid == expected  # Fabric's ComputeTxID: hex(SHA-256(nonce || creator))
    Tx(cc, msg, future).complete()
    assert future.result(WAIT).txid == expected

    # A caller's proposal names the txid in its ChannelHeader.
    header.channel_header = common_pb2.ChannelHeader(
        type=3, channel_id=CHANNEL, tx_id="from-proposal"
    ).SerializeToString()
    own = SignedProposal(
        proposal_bytes=Proposal(header=header.SerializeToString(), payload=b"p").SerializeToString()
    )
    future = peer.support.execute_async(CHANNEL, None, cc.name, ["f"], proposal=own)
    msg = cc.recv()
    assert msg.txid == "from-proposal"
    Tx(cc, msg, future).complete()
    with pytest.raises(InvalidRequest, match="no tx_id"):
        peer.support.execute_async(CHANNEL, None, cc.name, ["f"], proposal=SignedProposal())


# ------------------------------------------------------------------------ shim requests


def test_get_state_reads_committed_state_only(peer: Peer) -> None:
    peer.commit("fake", {"k": b"committed"})
    peer.commit("other", {"k": b"other-namespace"})
    cc = peer.connect()
    tx = peer.start(cc)
    assert tx.ok(CM.GET_STATE, shim.GetState(key="missing")) == b""
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b"committed"
    assert tx.ok(CM.PUT_STATE, shim.PutState(key="k", value=b"mine")) == b""
    assert tx.ok(CM.PUT_STATE, shim.PutState(key="new", value=b"fresh")) == b""
    # A transaction does not see its own writes.
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b"committed"
    assert tx.ok(CM.GET_STATE, shim.GetState(key="new")) == b""
    results = tx.complete().results
    assert results is not None
    assert results.writes("fake") == {"k": b"mine", "new": b"fresh"}
    reads = results.reads("fake")
    assert reads["missing"] is None
    assert reads["k"] == peer.support.ledgers.get(CHANNEL).get_version("fake", "k")
    assert results.namespaces == ["fake"]


def test_put_state_with_empty_value_is_a_delete(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    assert tx.ok(CM.PUT_STATE, shim.PutState(key="k", value=b"")) == b""
    results = tx.complete().results
    assert results is not None
    assert results.writes("fake") == {"k": None}
    kvrwset = results.to_proto().ns_rwset[0]
    assert kvrwset.namespace == "fake"
    (write,) = kv_rwset_pb2.KVRWSet.FromString(kvrwset.rwset).writes
    assert (write.key, write.is_delete, write.value) == ("k", True, b"")


def test_del_state_and_commit(peer: Peer) -> None:
    peer.commit("fake", {"doomed": b"v", "kept": b"w"})
    cc = peer.connect()
    tx = peer.start(cc)
    assert tx.ok(CM.DEL_STATE, shim.DelState(key="doomed")) == b""
    result = tx.complete()
    assert result.results is not None
    assert result.results.writes("fake") == {"doomed": None}
    assert peer.support.commit(CHANNEL, result) is ValidationCode.VALID
    ledger = peer.support.ledgers.get(CHANNEL)
    assert ledger.get_state("fake", "doomed") is None
    assert ledger.get_state("fake", "kept") == b"w"


def test_get_state_multiple(peer: Peer) -> None:
    peer.commit("fake", {"a": b"1", "b": b"2"})
    cc = peer.connect()
    tx = peer.start(cc)
    payload = tx.ok(CM.GET_STATE_MULTIPLE, shim.GetStateMultiple(keys=["a", "missing", "b", "a"]))
    assert list(shim.GetStateMultipleResult.FromString(payload).values) == [b"1", b"", b"2", b"1"]
    tx.complete()


def batch_of(*records: shim.WriteRecord) -> CM:
    return CM(
        type=CM.WRITE_BATCH_STATE, payload=shim.WriteBatchState(rec=records).SerializeToString()
    )


def put(key: str, value: bytes, collection: str = "") -> shim.WriteRecord:
    return shim.WriteRecord(
        key=key, value=value, collection=collection, type=shim.WriteRecord.PUT_STATE
    )


def batch_and_completed(tx: Tx, *records: shim.WriteRecord, together: bool = True) -> None:
    """What our shim sends at the end of a transaction over a pipe: its last batch and the
    COMPLETED in one frame (``together``), or in two frames."""
    batch = batch_of(*records)
    completed = CM(
        type=CM.COMPLETED, payload=Response(status=200, payload=b"ok").SerializeToString()
    )
    for msg in (batch, completed):
        msg.txid, msg.channel_id = tx.txid, tx.channel
    if together:
        tx.cc.stream.send_together([batch, completed])
    else:
        tx.cc.stream.send(batch)
        tx.cc.stream.send(completed)


def test_a_batch_with_its_completed_in_one_frame_gets_no_response(peer: Peer) -> None:
    peer.commit("fake", {"a": b"old"})
    cc = peer.connect()
    tx = peer.start(cc)
    assert tx.ok(CM.GET_STATE, shim.GetState(key="a")) == b"old"
    batch_and_completed(tx, put("a", b"new"), put("b", b"2"))
    result = tx.future.result(WAIT)
    assert result.response.payload == b"ok"
    assert result.results is not None
    assert result.results.writes("fake") == {"a": b"new", "b": b"2"}
    assert list(result.results.reads("fake")) == ["a"]
    cc.expect_nothing()  # the shim did not wait: a RESPONSE would be a stray reply to it
    labels = {"type": "WRITE_BATCH_STATE", "channel": CHANNEL, "chaincode": "fake"}
    assert peer.metric("chaincode_shim_requests_completed_total", success="true", **labels) == 1
    assert_works(peer, cc)


@pytest.mark.parametrize(
    "record, cause",
    [
        (shim.WriteRecord(key="", type=shim.WriteRecord.DEL_STATE), "key must not be an empty"),
        (put("k", b"v", collection="nowhere"), "collection ch/fake/nowhere could not be found"),
        (shim.WriteRecord(key="k", value=b"v"), "unknown operation type"),
    ],
    ids=["empty-key", "unknown-collection", "no-type"],
)
def test_a_failed_batch_with_its_completed_fails_the_transaction(
    peer: Peer, record: shim.WriteRecord, cause: str
) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    batch_and_completed(tx, put("fine", b"1"), record)
    exc = failure(tx.future)
    assert isinstance(exc, TransactionFailed)
    # Worded as Fabric's Go shim turns a failed batch into its ERROR, which the peer prefixes.
    prefix = (
        "transaction returned with failure: failed send batch: failed send batch: "
        f"WRITE_BATCH_STATE failed: transaction ID: {tx.txid}: "
    )
    assert str(exc).startswith(prefix) and cause in str(exc), str(exc)
    cc.expect_nothing()
    assert cc.handler.ask(Describe(), timeout=WAIT).in_flight == 0
    assert_works(peer, cc)


def test_a_batch_and_its_completed_in_two_frames_are_served_as_fabric_serves_them(
    peer: Peer,
) -> None:
    """A shim that waits (Fabric's Go shim) is answered; if it did not wait after all, the
    RESPONSE it gets is its own business, and the writes still land."""
    cc = peer.connect()
    tx = peer.start(cc)
    batch_and_completed(tx, put("a", b"1"), together=False)
    reply = cc.recv()
    assert (reply.type, reply.txid) == (CM.RESPONSE, tx.txid)
    result = tx.future.result(WAIT)
    assert result.results is not None and result.results.writes("fake") == {"a": b"1"}


def test_a_batch_followed_by_another_transactions_completed_is_answered(peer: Peer) -> None:
    cc = peer.connect()
    first, second = peer.start(cc), peer.start(cc)
    batch = batch_of(put("a", b"1"))
    batch.txid, batch.channel_id = first.txid, first.channel
    completed = CM(
        type=CM.COMPLETED,
        payload=Response(status=200).SerializeToString(),
        txid=second.txid,
        channel_id=second.channel,
    )
    cc.stream.send_together([batch, completed])
    reply = cc.recv()
    assert (reply.type, reply.txid) == (CM.RESPONSE, first.txid)
    assert second.future.result(WAIT).results.writes("fake") == {}  # type: ignore[union-attr]
    assert first.complete().results.writes("fake") == {"a": b"1"}  # type: ignore[union-attr]


def test_a_batch_with_its_completed_after_a_timeout_is_dropped(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc, timeout=0.2)
    assert isinstance(failure(tx.future), ExecuteTimeout)
    wait_for(lambda: cc.handler.ask(Describe(), timeout=WAIT).in_flight == 0, what="forgotten")
    batch_and_completed(tx, put("a", b"1"))
    cc.expect_nothing()  # neither an ERROR for the batch nor anything else
    assert_works(peer, cc)


def test_write_batch_state(peer: Peer) -> None:
    peer.commit("fake", {"gone": b"x", "a": b"old"})
    cc = peer.connect()
    tx = peer.start(cc)
    batch = shim.WriteBatchState(
        rec=[
            shim.WriteRecord(key="a", value=b"1", type=shim.WriteRecord.PUT_STATE),
            shim.WriteRecord(key="b", value=b"2", type=shim.WriteRecord.PUT_STATE),
            shim.WriteRecord(key="gone", type=shim.WriteRecord.DEL_STATE),
            shim.WriteRecord(
                key="a",
                metadata=shim.StateMetadata(metakey="VALIDATION_PARAMETER", value=b"ep"),
                type=shim.WriteRecord.PUT_STATE_METADATA,
            ),
        ]
    )
    assert tx.ok(CM.WRITE_BATCH_STATE, batch) == b""
    bad = shim.WriteBatchState(rec=[shim.WriteRecord(key="c", value=b"3")])  # type UNDEFINED
    assert "unknown operation type" in tx.fail(CM.WRITE_BATCH_STATE, bad)
    result = tx.complete()
    assert result.results is not None
    assert result.results.writes("fake") == {"a": b"1", "b": b"2", "gone": None}
    assert result.results.metadata_writes("fake") == {"a": {"VALIDATION_PARAMETER": b"ep"}}
    assert peer.support.commit(CHANNEL, result) is ValidationCode.VALID
    ledger = peer.support.ledgers.get(CHANNEL)
    assert ledger.get_state("fake", "a") == b"1"
    assert ledger.get_state_metadata("fake", "a") == {"VALIDATION_PARAMETER": b"ep"}


def test_range_query_batches_of_100_with_query_state_next(peer: Peer) -> None:
    keys = [f"k{i:03d}" for i in range(250)]
    peer.commit("fake", {key: f"v{key}".encode() for key in keys})
    peer.commit("other", {"k100": b"not mine"})
    cc = peer.connect()
    tx = peer.start(cc)

    first = query(tx.ok(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="k", endKey="l")))
    assert len(first.results) == 100 and first.has_more and first.id
    second = query(tx.ok(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)))
    assert len(second.results) == 100 and second.has_more and second.id == first.id
    third = query(tx.ok(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)))
    assert len(third.results) == 50 and not third.has_more and third.id == first.id

    got = kvs(first) + kvs(second) + kvs(third)
    assert [kv.key for kv in got] == keys
    assert {kv.namespace for kv in got} == {"fake"}
    assert all(kv.value == f"v{kv.key}".encode() for kv in got)

    # Exhausted: the peer has forgotten the iterator, but closing it still succeeds.
    assert "query iterator not found" in tx.fail(
        CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)
    )
    closed = query(tx.ok(CM.QUERY_STATE_CLOSE, shim.QueryStateClose(id=first.id)))
    assert (closed.has_more, closed.id, list(closed.results)) == (False, first.id, [])

    results = tx.complete().results
    assert results is not None
    (rq,) = results.range_queries("fake")
    assert (rq.start_key, rq.end_key, rq.itr_exhausted, len(rq.reads)) == ("k", "l", True, 250)


def test_range_query_capped_by_total_query_limit(make_peer: Callable[..., Peer]) -> None:
    peer = make_peer(total_query_limit=150)
    peer.commit("fake", {f"k{i:03d}": b"v" for i in range(250)})
    cc = peer.connect()
    tx = peer.start(cc)
    first = query(tx.ok(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="", endKey="")))
    assert (len(first.results), first.has_more) == (100, True)
    rest = query(tx.ok(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)))
    assert (len(rest.results), rest.has_more) == (50, False)
    tx.complete()


def test_query_state_close_of_an_open_iterator(peer: Peer) -> None:
    peer.commit("fake", {f"k{i:03d}": b"v" for i in range(150)})
    cc = peer.connect()
    tx = peer.start(cc)
    first = query(tx.ok(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="k", endKey="")))
    assert first.has_more
    closed = query(tx.ok(CM.QUERY_STATE_CLOSE, shim.QueryStateClose(id=first.id)))
    assert (closed.has_more, closed.id) == (False, first.id)
    assert "query iterator not found" in tx.fail(
        CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)
    )
    tx.complete()


def test_range_query_pagination_with_bookmarks(peer: Peer) -> None:
    keys = [f"k{i:03d}" for i in range(70)]
    peer.commit("fake", {key: b"v" for key in keys})
    cc = peer.connect()
    tx = peer.start(cc)

    def page(bookmark: str) -> tuple[list[str], shim.QueryResponseMetadata]:
        request = shim.GetStateByRange(
            startKey="k",
            endKey="l",
            metadata=shim.QueryMetadata(pageSize=30, bookmark=bookmark).SerializeToString(),
        )
        response = query(tx.ok(CM.GET_STATE_BY_RANGE, request))
        assert response.has_more is False  # a page comes whole
        meta = shim.QueryResponseMetadata.FromString(response.metadata)
        assert meta.fetched_records_count == len(response.results)
        assert {kv.namespace for kv in kvs(response)} <= {"fake"}
        return [kv.key for kv in kvs(response)], meta

    got, meta = page("")
    assert got == keys[:30] and meta.bookmark == "k030"
    got, meta = page(meta.bookmark)
    assert got == keys[30:60] and meta.bookmark == "k060"
    got, meta = page(meta.bookmark)
    assert got == keys[60:] and meta.bookmark == ""
    # Paginated queries make the transaction read-only, as in Fabric.
    assert "Writes are not allowed" in tx.fail(CM.PUT_STATE, shim.PutState(key="x", value=b"1"))
    tx.complete()


def test_paginated_query_after_a_write_is_refused(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    tx.ok(CM.PUT_STATE, shim.PutState(key="x", value=b"1"))
    request = shim.GetStateByRange(
        startKey="", endKey="", metadata=shim.QueryMetadata(pageSize=5).SerializeToString()
    )
    assert "only in a read-only transaction" in tx.fail(CM.GET_STATE_BY_RANGE, request)
    tx.complete()


def test_query_state_next_and_close_with_unknown_id(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    cause = tx.fail(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id="no-such-id"))
    assert "query iterator not found" in cause
    closed = query(tx.ok(CM.QUERY_STATE_CLOSE, shim.QueryStateClose(id="no-such-id")))
    assert closed.has_more is False
    assert closed.id == "no-such-id"
    assert list(closed.results) == []
    tx.complete()


def test_get_history_for_key(peer: Peer) -> None:
    t1 = peer.commit("fake", {"k": b"v1"}, timestamp=1_700_000_000.25)
    t2 = peer.commit("fake", {"k": b"v2"}, timestamp=1_700_000_100.5)
    t3 = peer.commit("fake", {"k": None}, timestamp=1_700_000_200.0)
    peer.commit("other", {"k": b"elsewhere"})
    cc = peer.connect()
    tx = peer.start(cc)
    response = query(tx.ok(CM.GET_HISTORY_FOR_KEY, shim.GetHistoryForKey(key="k")))
    assert response.has_more is False
    mods = [queryresult.KeyModification.FromString(r.resultBytes) for r in response.results]
    assert [(m.tx_id, m.value, m.is_delete) for m in mods] == [
        (t3, b"", True),
        (t2, b"v2", False),
        (t1, b"v1", False),
    ]
    for mod in mods:
        assert mod.HasField("timestamp")  # the Node shim throws on an unset timestamp
    assert [(m.timestamp.seconds, m.timestamp.nanos) for m in mods] == [
        (1_700_000_200, 0),
        (1_700_000_100, 500_000_000),
        (1_700_000_000, 250_000_000),
    ]
    empty = query(tx.ok(CM.GET_HISTORY_FOR_KEY, shim.GetHistoryForKey(key="never")))
    assert (list(empty.results), empty.has_more) == ([], False)
    tx.complete()


def test_history_disabled_gives_an_error(make_peer: Callable[..., Peer]) -> None:
    peer = make_peer(history=False)
    cc = peer.connect()
    tx = peer.start(cc)
    cause = tx.fail(CM.GET_HISTORY_FOR_KEY, shim.GetHistoryForKey(key="k"))
    assert "history database is not enabled" in cause
    tx.complete()


def test_state_metadata_round_trip_through_a_commit(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    tx.ok(CM.PUT_STATE, shim.PutState(key="k", value=b"v"))
    put = shim.PutStateMetadata(
        key="k", metadata=shim.StateMetadata(metakey="VALIDATION_PARAMETER", value=b"policy")
    )
    assert tx.ok(CM.PUT_STATE_METADATA, put) == b""
    assert "metadata key is empty" in tx.fail(CM.PUT_STATE_METADATA, shim.PutStateMetadata(key="k"))
    # Not visible before commit.
    before = tx.ok(CM.GET_STATE_METADATA, shim.GetStateMetadata(key="k"))
    assert list(shim.StateMetadataResult.FromString(before).entries) == []
    result = tx.complete()
    assert peer.support.commit(CHANNEL, result) is ValidationCode.VALID

    tx2 = peer.start(cc)
    payload = tx2.ok(CM.GET_STATE_METADATA, shim.GetStateMetadata(key="k"))
    entries = shim.StateMetadataResult.FromString(payload).entries
    assert [(e.metakey, e.value) for e in entries] == [("VALIDATION_PARAMETER", b"policy")]
    assert tx2.ok(CM.GET_STATE, shim.GetState(key="k")) == b"v"
    tx2.complete()


def test_get_query_result_batches_pages_and_errors(peer: Peer) -> None:
    docs = {f"d{i:03d}": json.dumps({"n": i % 5}).encode() for i in range(150)}
    peer.commit("fake", {**docs, "raw": b"\x00 not JSON"})
    cc = peer.connect()
    tx = peer.start(cc)
    selector = '{"selector": {"n": {"$gte": 1}}}'
    first = query(tx.ok(CM.GET_QUERY_RESULT, shim.GetQueryResult(query=selector)))
    assert len(first.results) == 100 and first.has_more
    second = query(tx.ok(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)))
    assert len(second.results) == 20 and not second.has_more
    assert [kv.key for kv in kvs(first) + kvs(second)] == [k for k in docs if int(k[1:]) % 5]

    paged = shim.QueryMetadata(pageSize=7).SerializeToString()
    request = shim.GetQueryResult(query=selector, metadata=paged)
    page = query(tx.ok(CM.GET_QUERY_RESULT, request))
    meta = shim.QueryResponseMetadata.FromString(page.metadata)
    assert (len(page.results), page.has_more, meta.fetched_records_count) == (7, False, 7)
    again = shim.QueryMetadata(pageSize=7, bookmark=meta.bookmark).SerializeToString()
    following = query(
        tx.ok(CM.GET_QUERY_RESULT, shim.GetQueryResult(query=selector, metadata=again))
    )
    assert kvs(following)[0].key == "d009"  # d001..d008 without d005 were the first page

    cause = tx.fail(CM.GET_QUERY_RESULT, shim.GetQueryResult(query='{"selector": {"$x": 1}}'))
    assert "Error:invalid_operator,  Status Code:400,  Reason:Invalid operator: $x" in cause
    results = tx.complete().results
    assert results is not None and len(results.reads("fake")) == 120  # each returned key, once


PRIVATE_REQUESTS: list[tuple[int, Message]] = [
    (CM.GET_STATE, shim.GetState(key="k", collection="coll")),
    (CM.PUT_STATE, shim.PutState(key="k", value=b"v", collection="coll")),
    (CM.DEL_STATE, shim.DelState(key="k", collection="coll")),
    (CM.GET_STATE_MULTIPLE, shim.GetStateMultiple(keys=["k"], collection="coll")),
    (CM.GET_STATE_METADATA, shim.GetStateMetadata(key="k", collection="coll")),
    (CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="a", collection="coll")),
    (CM.GET_PRIVATE_DATA_HASH, shim.GetState(key="k", collection="coll")),
    (CM.PURGE_PRIVATE_DATA, shim.DelState(key="k", collection="coll")),
    (
        CM.WRITE_BATCH_STATE,
        shim.WriteBatchState(
            rec=[
                shim.WriteRecord(
                    key="k", value=b"v", collection="coll", type=shim.WriteRecord.PUT_STATE
                )
            ]
        ),
    ),
]


@pytest.mark.parametrize(
    ("mtype", "payload"), PRIVATE_REQUESTS, ids=[TYPE_NAMES[t] for t, _ in PRIVATE_REQUESTS]
)
def test_an_unknown_collection_is_refused_with_fabrics_error(
    peer: Peer, mtype: int, payload: Message
) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    cause = tx.fail(mtype, payload)
    if mtype == CM.GET_PRIVATE_DATA_HASH:  # no access check: the ledger's name check
        assert "collection [coll] not defined in the collection config for chaincode" in cause
    else:
        assert "collection ch/fake/coll could not be found" in cause
    result = tx.complete()
    assert result.results is not None and not result.results.has_writes()


def test_private_data_through_the_handler_in_an_implicit_collection(peer: Peer) -> None:
    coll = "_implicit_org_SampleOrg"
    cc = peer.connect()
    tx = peer.start(cc)
    tx.ok(CM.PUT_STATE, shim.PutState(key="k", value=b"secret", collection=coll))
    results = tx.complete().results
    assert results is not None and b"secret" not in results.to_bytes()
    ledger = peer.support.ledgers.get(CHANNEL)
    assert ledger.commit("tx-pvt", results).name == "VALID"
    tx = peer.start(cc)
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k", collection=coll)) == b"secret"
    digest = tx.ok(CM.GET_PRIVATE_DATA_HASH, shim.GetState(key="k", collection=coll))
    assert digest == hashlib.sha256(b"secret").digest()
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b""  # not in public state
    cause = tx.fail(CM.GET_STATE, shim.GetState(key="k", collection="_implicit_org_Nobody"))
    assert "collection [_implicit_org_Nobody] not defined" in cause
    tx.complete()


def test_purge_needs_a_collection(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    assert "only applicable for private data" in tx.fail(
        CM.PURGE_PRIVATE_DATA, shim.DelState(key="k")
    )
    # Fabric's quirk: a hash request without a collection passes its name check, finds nothing
    assert tx.ok(CM.GET_PRIVATE_DATA_HASH, shim.GetState(key="k")) == b""
    tx.complete()


def test_keepalive_from_chaincode_is_ignored(peer: Peer) -> None:
    cc = peer.connect(register=False)
    cc.send(CM.KEEPALIVE)  # ignored in created state too
    cc.expect_nothing()
    cc.register()
    cc.send(CM.KEEPALIVE)
    cc.expect_nothing()
    tx = peer.start(cc)
    tx.send(CM.KEEPALIVE)  # with a txid too
    cc.expect_nothing()
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b""
    tx.complete()


def test_error_text_format(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc, "tx-fmt")
    reply = tx.request(CM.GET_QUERY_RESULT, shim.GetQueryResult(query="q"))
    assert reply.type == CM.ERROR
    assert reply.payload.decode().startswith("GET_QUERY_RESULT failed: transaction ID: tx-fmt: ")
    tx.complete()


# ------------------------------------------------------------------ chaincode to chaincode


def invoke_spec(target: str, *args: bytes) -> ChaincodeSpec:
    return ChaincodeSpec(chaincode_id=ChaincodeID(name=target), input=ChaincodeInput(args=args))


def test_invoke_chaincode_same_channel_shares_the_rwset(peer: Peer) -> None:
    peer.commit("callee", {"seen": b"committed"})
    caller, callee = peer.connect("caller"), peer.connect("callee")
    tx = peer.start(caller, "cc2cc-1", ["outer"])
    tx.ok(CM.PUT_STATE, shim.PutState(key="mine", value=b"caller-value"))
    tx.send(CM.INVOKE_CHAINCODE, invoke_spec("callee:1.0", b"inner", b"x"))

    sub = callee.recv()
    assert sub.type == CM.TRANSACTION
    assert (sub.txid, sub.channel_id) == ("cc2cc-1", CHANNEL)
    assert list(ChaincodeInput.FromString(sub.payload).args) == [b"inner", b"x"]
    assert sub.proposal == tx.msg.proposal  # same SignedProposal as the caller's
    subtx = Tx(callee, sub, Future())
    assert subtx.ok(CM.GET_STATE, shim.GetState(key="seen")) == b"committed"
    subtx.ok(CM.PUT_STATE, shim.PutState(key="theirs", value=b"callee-value"))
    subtx.send(CM.COMPLETED, Response(status=201, message="fine", payload=b"sub-result"))

    reply = caller.recv()
    assert reply.type == CM.RESPONSE
    assert (reply.txid, reply.channel_id) == ("cc2cc-1", CHANNEL)
    inner = CM.FromString(reply.payload)
    assert inner.type == CM.COMPLETED
    assert (inner.txid, inner.channel_id) == ("cc2cc-1", CHANNEL)
    assert Response.FromString(inner.payload) == Response(
        status=201, message="fine", payload=b"sub-result"
    )

    result = tx.complete(payload=b"outer-result")
    assert result.response.payload == b"outer-result"
    assert result.results is not None
    assert result.results.writes("caller") == {"mine": b"caller-value"}
    assert result.results.writes("callee") == {"theirs": b"callee-value"}
    assert "seen" in result.results.reads("callee")
    assert peer.support.commit(CHANNEL, result) is ValidationCode.VALID
    ledger = peer.support.ledgers.get(CHANNEL)
    assert ledger.get_state("callee", "theirs") == b"callee-value"
    assert ledger.get_state("caller", "mine") == b"caller-value"


def test_invoke_chaincode_callee_error_is_wrapped(peer: Peer) -> None:
    caller, callee = peer.connect("caller"), peer.connect("callee")
    tx = peer.start(caller, "cc2cc-err")
    tx.send(CM.INVOKE_CHAINCODE, invoke_spec("callee", b"boom"))
    sub = callee.recv()
    callee.send(CM.ERROR, b"callee exploded", txid=sub.txid, channel_id=sub.channel_id)
    reply = caller.recv()
    assert reply.type == CM.RESPONSE
    assert (reply.txid, reply.channel_id) == ("cc2cc-err", CHANNEL)
    inner = CM.FromString(reply.payload)
    assert inner.type == CM.ERROR
    assert inner.payload == b"callee exploded"
    assert (inner.txid, inner.channel_id) == ("cc2cc-err", CHANNEL)
    # The caller carries on and can still use its context.
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b""
    assert tx.complete().response.status == 200


def test_invoke_chaincode_on_another_channel_is_read_only(peer: Peer) -> None:
    peer.commit("callee", {"k": b"on-ch2"}, channel="ch2")
    caller, callee = peer.connect("caller"), peer.connect("callee")
    tx = peer.start(caller, "cc2cc-x")
    tx.send(CM.INVOKE_CHAINCODE, invoke_spec("callee/ch2", b"read"))
    sub = callee.recv()
    assert (sub.type, sub.txid, sub.channel_id) == (CM.TRANSACTION, "cc2cc-x", "ch2")
    subtx = Tx(callee, sub, Future())
    assert subtx.ok(CM.GET_STATE, shim.GetState(key="k")) == b"on-ch2"
    subtx.ok(CM.PUT_STATE, shim.PutState(key="k", value=b"discarded"))
    subtx.send(CM.COMPLETED, Response(status=200, payload=b"read it"))
    inner = CM.FromString(caller.recv().payload)
    assert (inner.type, Response.FromString(inner.payload).payload) == (CM.COMPLETED, b"read it")
    result = tx.complete()
    assert result.results is not None
    assert result.results.writes("callee") == {}  # other-channel writes never reach the caller


def test_invoke_chaincode_unknown_channel(peer: Peer) -> None:
    caller = peer.connect("caller")
    peer.connect("callee")
    tx = peer.start(caller)
    cause = tx.fail(CM.INVOKE_CHAINCODE, invoke_spec("callee/nosuchchannel", b"f"))
    assert "failed to find ledger for channel: nosuchchannel" in cause
    tx.complete()


def test_invoke_chaincode_unknown_chaincode(peer: Peer) -> None:
    caller = peer.connect("caller")
    tx = peer.start(caller)
    cause = tx.fail(CM.INVOKE_CHAINCODE, invoke_spec("ghost", b"f"))
    assert "ghost" in cause and "not found" in cause
    tx.complete()


def test_chaincode_invoking_itself_is_a_duplicate_context(peer: Peer) -> None:
    caller = peer.connect("caller")
    tx = peer.start(caller, "self-call")
    cause = tx.fail(CM.INVOKE_CHAINCODE, invoke_spec("caller", b"again"))
    assert f"txid: self-call({CHANNEL}) exists" in cause
    caller.expect_nothing()  # no second TRANSACTION reached the chaincode
    assert tx.complete().response.status == 200


def test_second_request_while_invoke_is_pending_is_an_error(peer: Peer) -> None:
    caller, callee = peer.connect("caller"), peer.connect("callee")
    tx = peer.start(caller, "pending")
    tx.send(CM.INVOKE_CHAINCODE, invoke_spec("callee", b"slow"))
    sub = callee.recv()
    assert "another request is pending" in tx.fail(CM.GET_STATE, shim.GetState(key="k"))
    callee.send(
        CM.COMPLETED,
        Response(status=200, payload=b"late"),
        txid=sub.txid,
        channel_id=sub.channel_id,
    )
    reply = caller.recv()
    assert reply.type == CM.RESPONSE
    assert Response.FromString(CM.FromString(reply.payload).payload).payload == b"late"
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b""  # free again
    tx.complete()


# --------------------------------------------------------------------- COMPLETED / ERROR


def test_completed_with_event(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc, "evt-tx")
    event = ChaincodeEvent(event_name="Transfer", payload=b"\x01\x02")
    result = tx.complete(status=200, payload=b"done", event=event)
    assert result.txid == "evt-tx"
    assert result.response == Response(status=200, payload=b"done")
    assert result.event is not None
    assert result.event.chaincode_id == "fake"
    assert result.event.tx_id == "evt-tx"
    assert (result.event.event_name, result.event.payload) == ("Transfer", b"\x01\x02")


def test_completed_without_event(peer: Peer) -> None:
    cc = peer.connect()
    result = peer.start(cc).complete(status=500, payload=b"")
    assert result.event is None
    assert result.response.status == 500  # the status is the endorser's business


def test_error_from_chaincode_fails_the_transaction(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    tx.send(CM.ERROR, b"chaincode said no")
    exc = failure(tx.future)
    assert isinstance(exc, TransactionFailed)
    assert str(exc) == "transaction returned with failure: chaincode said no"
    assert_works(peer, cc)


def test_completed_with_undecodable_response(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    tx.send(CM.COMPLETED, b"\xff\x00garbage")
    exc = failure(tx.future)
    assert isinstance(exc, TransactionFailed)
    assert "unmarshal response" in str(exc)
    assert_works(peer, cc)


def test_completed_for_unknown_txid_is_ignored(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc, "real")
    cc.send(CM.COMPLETED, Response(status=200), txid="nobody", channel_id=CHANNEL)
    cc.send(CM.ERROR, b"x", txid="nobody", channel_id=CHANNEL)
    cc.send(CM.COMPLETED, Response(status=200), txid="real", channel_id="wrong-channel")
    cc.expect_nothing()
    assert not tx.future.done()
    assert tx.complete(payload=b"still fine").response.payload == b"still fine"


# ------------------------------------------------------------------------- tx contexts


def test_requests_without_a_live_context_get_no_ledger_context(peer: Peer) -> None:
    cc = peer.connect()
    ghost = Tx(cc, CM(txid="no-such-tx", channel_id=CHANNEL), Future())
    assert ghost.fail(CM.GET_STATE, shim.GetState(key="k")) == "no ledger context"
    assert ghost.fail(CM.PUT_STATE, shim.PutState(key="k", value=b"v")) == "no ledger context"
    assert (
        ghost.fail(CM.INVOKE_CHAINCODE, invoke_spec("fake", b"f"))
        == "could not get valid transaction"
    )

    tx = peer.start(cc, "live")
    wrong_channel = Tx(cc, CM(txid="live", channel_id="elsewhere"), Future())
    assert wrong_channel.fail(CM.GET_STATE, shim.GetState(key="k")) == "no ledger context"
    tx.complete()
    assert tx.fail(CM.GET_STATE, shim.GetState(key="k")) == "no ledger context"
    assert_works(peer, cc)


# ------------------------------------------------------------------------ FSM violations


@pytest.mark.parametrize(
    ("mtype", "payload"),
    [
        (CM.TRANSACTION, ChaincodeInput(args=[b"f"])),
        (CM.GET_STATE, shim.GetState(key="k")),
        (CM.COMPLETED, Response(status=200)),
    ],
    ids=["TRANSACTION", "GET_STATE", "COMPLETED"],
)
def test_message_before_register_closes_the_stream(
    peer: Peer, mtype: int, payload: Message
) -> None:
    other = peer.connect("other")
    cc = peer.connect("fake", register=False)
    cc.send(mtype, payload, txid="t1", channel_id=CHANNEL)
    assert cc.expect_closed() == []
    with pytest.raises(ConnectionClosed):
        cc.stream.recv()
    wait_for(lambda: not cc.handler.is_alive(), what="handler stop")
    assert_works(peer, other)


@pytest.mark.parametrize(
    "mtype",
    [CM.REGISTER, 99, CM.UNDEFINED, CM.RESPONSE, CM.READY, CM.TRANSACTION],
    ids=["REGISTER", "type99", "UNDEFINED", "RESPONSE", "READY", "TRANSACTION"],
)
def test_unexpected_message_in_ready_closes_and_fails_inflight(peer: Peer, mtype: int) -> None:
    other = peer.connect("other")
    cc = peer.connect("fake")
    tx1, tx2 = peer.start(cc, "a"), peer.start(cc, "b")
    payload = ChaincodeID(name="fake") if mtype == CM.REGISTER else b""
    started = time.monotonic()
    cc.send(mtype, payload, txid="a", channel_id=CHANNEL)
    assert cc.expect_closed() == []
    for tx in (tx1, tx2):
        assert isinstance(failure(tx.future), ChaincodeStreamTerminated)
    assert time.monotonic() - started < 2.0
    assert_works(peer, other)


# ------------------------------------------------------------------------------ bad input


def test_garbage_frame_closes_only_that_connection(peer: Peer) -> None:
    other = peer.connect("other")
    cc = peer.connect("fake")
    tx = peer.start(cc)
    other_tx = peer.start(other)
    started = time.monotonic()
    cc.stream.send_frame(b"\xff\x00garbage")
    assert cc.expect_closed() == []
    exc = failure(tx.future)
    assert isinstance(exc, ChaincodeStreamTerminated)
    assert "malformed" in str(exc)
    assert time.monotonic() - started < 2.0
    assert not other_tx.future.done()
    assert other_tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b""
    other_tx.complete()
    assert_works(peer, other)


def test_a_frame_of_requests_is_served_in_one_pass_and_answered_in_one_frame(
    peer: Peer,
) -> None:
    peer.commit("fake", {"k": b"v"})
    cc = peer.connect()
    txs = [peer.start(cc) for _ in range(3)]
    cc.stream.cork()
    for tx in txs:
        tx.send(CM.GET_STATE, shim.GetState(key="k"))
    cc.stream.uncork()
    assert cc.waiting(WAIT)
    replies = cc.stream.recv_batch()  # one frame
    assert [(r.type, r.txid, r.payload) for r in replies] == [
        (CM.RESPONSE, tx.txid, b"v") for tx in txs
    ]
    cc.stream.cork()
    for tx in txs:
        tx.send(CM.COMPLETED, Response(status=200, payload=tx.txid.encode()))
    cc.stream.uncork()
    for tx in txs:
        assert tx.future.result(WAIT).response.payload == tx.txid.encode()


def test_a_frame_with_one_bad_message_applies_none_of_it(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    completed = CM(
        type=CM.COMPLETED,
        payload=Response(status=200).SerializeToString(),
        txid=tx.txid,
        channel_id=tx.channel,
    )
    bad = msgpack.packb([CM.GET_STATE, 5, "c", b"", None, None])  # txid must be a str
    cc.stream.send_frame(encode_batch([encode(completed), bad]))
    exc = failure(tx.future)  # not completed: the frame counts as a whole or not at all
    assert isinstance(exc, ChaincodeStreamTerminated)
    assert "malformed" in str(exc)
    assert cc.expect_closed() == []


def test_frame_over_the_size_limit_closes_the_connection(make_peer: Callable[..., Peer]) -> None:
    peer = make_peer(max_message_size=4096)
    other = peer.connect("other")
    cc = peer.connect("fake")
    tx = peer.start(cc)
    assert tx.ok(CM.PUT_STATE, shim.PutState(key="small", value=b"x" * 1000)) == b""
    tx.send(CM.PUT_STATE, shim.PutState(key="big", value=b"x" * 10_000))
    assert cc.expect_closed() == []
    assert isinstance(failure(tx.future), ChaincodeStreamTerminated)
    assert_works(peer, other)


def test_malformed_request_payload_is_an_error_reply(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    for mtype in (CM.GET_STATE, CM.PUT_STATE, CM.GET_STATE_BY_RANGE, CM.INVOKE_CHAINCODE):
        cause = tx.fail(mtype, b"\xff\x00garbage")
        assert "Error parsing message" in cause
    # Bad metadata bytes inside a well-formed range request.
    bad_meta = shim.GetStateByRange(startKey="a", metadata=b"\xff\x00")
    assert "Error parsing message" in tx.fail(CM.GET_STATE_BY_RANGE, bad_meta)
    assert tx.ok(CM.GET_STATE, shim.GetState(key="k")) == b""
    assert tx.complete(payload=b"ok").response.payload == b"ok"


# ---------------------------------------------------------------------------- duplicates


def test_duplicate_txid_is_rejected(peer: Peer) -> None:
    cc, other = peer.connect("fake"), peer.connect("other")
    tx = peer.start(cc, "dup")
    second = peer.support.execute_async(CHANNEL, "dup", "fake", ["again"])
    exc = failure(second)
    assert isinstance(exc, DuplicateTransaction)
    assert str(exc) == f"txid: dup({CHANNEL}) exists"
    cc.expect_nothing()  # rejected before anything was sent

    # Same txid on another chaincode or another channel is a different context.
    on_other = peer.start(other, "dup")
    other_channel = peer.start(cc, "dup", channel="ch2")
    assert on_other.complete(payload=b"o").response.payload == b"o"
    assert other_channel.complete(payload=b"c").response.payload == b"c"
    assert tx.complete(payload=b"first").response.payload == b"first"


def test_txid_reusable_right_after_completion(peer: Peer) -> None:
    cc = peer.connect()
    for i in range(50):
        tx = peer.start(cc, "reused")
        assert tx.complete(payload=str(i).encode()).response.payload == str(i).encode()


def test_txid_reusable_right_after_chaincode_error(peer: Peer) -> None:
    cc = peer.connect()
    for _ in range(20):
        tx = peer.start(cc, "reused")
        tx.send(CM.ERROR, b"no")
        assert isinstance(failure(tx.future), TransactionFailed)


# ------------------------------------------------------------------------------- timeouts


def test_execute_timeout(peer: Peer) -> None:
    cc = peer.connect()
    labels = {"chaincode": "fake"}
    assert peer.metric("chaincode_execute_timeouts_total", **labels) == 0
    started = time.monotonic()
    tx = peer.start(cc, "slow", timeout=0.3)
    exc = failure(tx.future)
    elapsed = time.monotonic() - started
    assert isinstance(exc, ExecuteTimeout)
    assert str(exc) == "timeout expired while executing transaction"
    assert 0.25 <= elapsed < 2.0, elapsed
    wait_for(lambda: peer.metric("chaincode_execute_timeouts_total", **labels) == 1, what="metric")

    # The context is gone: requests for it fail, a late COMPLETED is ignored.
    assert tx.fail(CM.GET_STATE, shim.GetState(key="k")) == "no ledger context"
    tx.send(CM.COMPLETED, Response(status=200, payload=b"late"))
    probe = Tx(cc, CM(txid="probe", channel_id=CHANNEL), Future())
    probe.fail(CM.GET_STATE, shim.GetState(key="k"))  # processed after the late COMPLETED
    assert cc.handler.ask(Describe(), timeout=WAIT).in_flight == 0

    # The txid can be used again.
    again = peer.start(cc, "slow")
    assert again.complete(payload=b"second").response.payload == b"second"
    assert peer.metric("chaincode_execute_timeouts_total", **labels) == 1


def _registry_count(peer: Peer) -> int:
    return peer.support.registry.ask(CountContexts(), timeout=WAIT)


def _registry_indexed(peer: Peer) -> int:
    gc.collect()
    return peer.support.registry.actor_ref.proxy().indexed().get(timeout=WAIT)


def test_registry_learns_what_stays_in_flight_and_forgets_what_ends(peer: Peer) -> None:
    """The Handler tells the registry what is still in flight a batch later or at its tick;
    the registry holds contexts weakly, so an ended one does not outlive its transaction."""
    cc = peer.connect()
    live = peer.start(cc, "kept-open")
    others = [peer.start(cc) for _ in range(20)]
    wait_for(lambda: _registry_count(peer) == 21, what="21 live contexts in the registry")
    for tx in others:
        tx.complete()
    for _ in range(200):  # these end before the registry would hear of them
        peer.start(cc).complete()
    wait_for(lambda: _registry_indexed(peer) == 1, what="only the live context indexed")
    assert _registry_count(peer) == 1
    with pytest.raises(DuplicateTransaction):  # the open one is still known to its Handler
        peer.support.execute_async(CHANNEL, "kept-open", cc.name, ["x"]).result(WAIT)
    assert live.complete(payload=b"late").response.payload == b"late"
    assert _registry_count(peer) == 0


def test_a_lone_transaction_reaches_the_registry_at_the_tick(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc, "alone")  # no later batch records it: the tick does
    wait_for(lambda: _registry_count(peer) == 1, timeout=5, what="the tick's record")
    assert tx.complete().response.status == 200
    assert _registry_count(peer) == 0


def test_transactions_do_not_wait_for_the_registry(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry is beside the pipeline: with its thread held, transactions still reach
    the chaincode and end, and the registry catches up afterwards."""
    release, held = threading.Event(), threading.Event()
    original = TXContextRegistry.on_receive

    def holding(self: TXContextRegistry, message: Any) -> Any:
        if type(message) is not CountContexts:
            held.set()
            release.wait(WAIT)
        return original(self, message)

    monkeypatch.setattr(TXContextRegistry, "on_receive", holding)
    cc = peer.connect()
    try:
        txs = [peer.start(cc) for _ in range(5)]  # each TRANSACTION reached the chaincode
        assert held.wait(WAIT)  # ...while the registry's thread was held
        for tx in txs:
            assert tx.complete(payload=b"done").response.payload == b"done"
    finally:
        release.set()
    assert _registry_count(peer) == 0


def test_registry_indexes_only_contexts_still_in_flight() -> None:
    """A context that ended (COMPLETED before the Handler's record arrived) is not indexed."""
    registry = TXContextRegistry.start()
    try:
        ended = TXContext("cc", CHANNEL, "ended", FakeSimulator(), owns_simulator=False)
        live = TXContext("cc", CHANNEL, "live", FakeSimulator(), owns_simulator=False)
        assert ended.end("result")
        registry.tell(ContextsStarted((ended, live)))
        assert registry.ask(CountContexts(), timeout=WAIT) == 1
        assert registry.ask(CountContexts("other"), timeout=WAIT) == 0
        assert registry.proxy().indexed().get(timeout=WAIT) == 1
        assert live.end("result")
        assert registry.ask(CountContexts(), timeout=WAIT) == 0
    finally:
        registry.stop()


class FakeSimulator:
    lock = threading.Lock()


def test_txid_reusable_right_after_timeout(peer: Peer) -> None:
    cc = peer.connect()
    for _ in range(10):
        tx = peer.start(cc, "reused", timeout=0.05)
        assert isinstance(failure(tx.future), ExecuteTimeout)
    tx = peer.start(cc, "reused")
    assert tx.complete(payload=b"ok").response.payload == b"ok"


def test_execute_timeout_closes_open_iterators(peer: Peer) -> None:
    peer.commit("fake", {f"k{i:03d}": b"v" for i in range(150)})
    cc = peer.connect()
    tx = peer.start(cc, "iter", timeout=0.3)
    first = query(tx.ok(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="", endKey="")))
    assert first.has_more
    assert isinstance(failure(tx.future), ExecuteTimeout)
    assert tx.fail(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)) == "no ledger context"


def test_definition_execute_timeout_overrides_config(peer: Peer) -> None:
    peer.support.define(
        ChaincodeDefinition(name="fake", target="examples.none:Nothing", execute_timeout=0.3)
    )
    assert peer.support.config.execute_timeout == 30
    cc = peer.connect()
    started = time.monotonic()
    tx = peer.start(cc, "def-timeout")
    assert isinstance(failure(tx.future), ExecuteTimeout)
    assert 0.25 <= time.monotonic() - started < 2.0
    # An explicit timeout wins over the definition.
    tx = peer.start(cc, "explicit", timeout=10)
    time.sleep(0.5)
    assert not tx.future.done()
    tx.complete()


# ------------------------------------------------------------------------ connection loss


def test_connection_lost_fails_inflight_at_once(peer: Peer) -> None:
    other = peer.connect("other")
    cc = peer.connect()
    txs = [peer.start(cc, f"lost-{i}", timeout=30) for i in range(3)]
    txs[0].ok(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="", endKey=""))
    started = time.monotonic()
    cc.stream.close()
    for tx in txs:
        exc = failure(tx.future)
        assert isinstance(exc, ChaincodeStreamTerminated)
        assert str(exc).startswith("chaincode stream terminated")
    assert time.monotonic() - started < 2.0
    wait_for(lambda: not cc.handler.is_alive(), what="handler stop")
    # A new transaction for the vanished chaincode fails fast instead of hanging.
    late = peer.support.execute_async(CHANNEL, "after", "fake", ["f"], timeout=30)
    assert isinstance(failure(late), ChaincodeError)
    assert_works(peer, other)


# ---------------------------------------------------------------------------- concurrency


def test_many_concurrent_transactions_on_one_connection(peer: Peer) -> None:
    cc = peer.connect()
    count = 100
    futures = {
        f"c{i:03d}": peer.support.execute_async(CHANNEL, f"c{i:03d}", "fake", ["f", str(i)])
        for i in range(count)
    }
    received = [cc.recv() for _ in range(count)]
    assert sorted(m.txid for m in received) == sorted(futures)
    for msg in reversed(received):
        tx = Tx(cc, msg, futures[msg.txid])
        tx.ok(CM.PUT_STATE, shim.PutState(key=msg.txid, value=msg.txid.encode()))
        tx.send(CM.COMPLETED, Response(status=200, payload=msg.txid.encode()))
    for txid, future in futures.items():
        result = future.result(WAIT)
        assert result.txid == txid
        assert result.response.payload == txid.encode()
        assert result.results is not None
        assert result.results.writes("fake") == {txid: txid.encode()}


def test_concurrent_requests_of_different_transactions_interleave(peer: Peer) -> None:
    peer.commit("fake", {"k": b"v"})
    cc = peer.connect()
    txs = [peer.start(cc, f"i{i}") for i in range(5)]
    for tx in txs:  # all requests first, then all replies: no reply waits for a tx to end
        tx.send(CM.GET_STATE, shim.GetState(key="k"))
    replies = [cc.recv() for _ in txs]
    assert [(r.type, r.txid, r.payload) for r in replies] == [
        (CM.RESPONSE, tx.txid, b"v") for tx in txs
    ]
    for tx in txs:
        tx.complete()


def test_concurrent_callers_from_many_threads(peer: Peer) -> None:
    cc = peer.connect()
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            if cc.waiting(0.05):
                msg = cc.stream.recv()
                cc.send(
                    CM.COMPLETED,
                    Response(status=200, payload=msg.txid.encode()),
                    txid=msg.txid,
                    channel_id=msg.channel_id,
                )

    responder = threading.Thread(target=answer, daemon=True)
    responder.start()
    results: dict[str, bytes] = {}
    lock = threading.Lock()

    def caller(n: int) -> None:
        for i in range(20):
            txid = f"t{n}-{i}"
            result = peer.support.execute(CHANNEL, txid, "fake", ["f"], timeout=WAIT)
            with lock:
                results[txid] = result.response.payload

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    stop.set()
    responder.join(WAIT)
    assert len(results) == 160
    assert all(payload == txid.encode() for txid, payload in results.items())


# -------------------------------------------------------------------------------- metrics


def test_shim_request_metrics(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    tx.ok(CM.GET_STATE, shim.GetState(key="k"))
    tx.ok(CM.GET_STATE, shim.GetState(key="k2"))
    tx.fail(CM.GET_STATE, shim.GetState(key="k", collection="c"))
    tx.ok(CM.PUT_STATE, shim.PutState(key="k", value=b"v"))
    Tx(cc, CM(txid="ghost", channel_id="ch9"), Future()).fail(CM.DEL_STATE, shim.DelState(key="k"))
    tx.complete()

    base = {"channel": CHANNEL, "chaincode": "fake"}
    received = "chaincode_shim_requests_received_total"
    completed = "chaincode_shim_requests_completed_total"
    assert peer.metric(received, type="GET_STATE", **base) == 3
    assert peer.metric(received, type="PUT_STATE", **base) == 1
    # ch9 is no channel of this peer: its requests count under "unknown" (bounded labels)
    assert peer.metric(received, type="DEL_STATE", channel="unknown", chaincode="fake") == 1
    wait_for(
        lambda: (
            (
                peer.metric(completed, type="GET_STATE", success="true", **base),
                peer.metric(completed, type="GET_STATE", success="false", **base),
                peer.metric(completed, type="PUT_STATE", success="true", **base),
                peer.metric(
                    completed,
                    type="DEL_STATE",
                    channel="unknown",
                    chaincode="fake",
                    success="false",
                ),
            )
            == (2, 1, 1, 1)
        ),
        what="completed counters",
    )
    duration = "chaincode_shim_request_duration_count"
    assert peer.metric(duration, type="GET_STATE", success="true", **base) == 2


def test_invoke_chaincode_metric_completes_when_the_callee_ends(peer: Peer) -> None:
    caller, callee = peer.connect("caller"), peer.connect("callee")
    tx = peer.start(caller)
    tx.send(CM.INVOKE_CHAINCODE, invoke_spec("callee", b"f"))
    sub = callee.recv()
    callee.send(CM.COMPLETED, Response(status=200), txid=sub.txid, channel_id=sub.channel_id)
    assert caller.recv().type == CM.RESPONSE
    labels = {"type": "INVOKE_CHAINCODE", "channel": CHANNEL, "chaincode": "caller"}
    assert peer.metric("chaincode_shim_requests_received_total", **labels) == 1
    wait_for(
        lambda: (
            peer.metric("chaincode_shim_requests_completed_total", success="true", **labels) == 1
        ),
        what="INVOKE_CHAINCODE completed",
    )
    tx.complete()


def test_invoke_chaincode_metric_completes_when_the_caller_timed_out(peer: Peer) -> None:
    caller, callee = peer.connect("caller"), peer.connect("callee")
    tx = peer.start(caller, "impatient", timeout=0.3)
    tx.send(CM.INVOKE_CHAINCODE, invoke_spec("callee", b"f"))
    sub = callee.recv()
    assert isinstance(failure(tx.future), ExecuteTimeout)
    callee.send(CM.COMPLETED, Response(status=200), txid=sub.txid, channel_id=sub.channel_id)
    caller.expect_nothing()  # the caller's transaction is gone: no reply
    labels = {"type": "INVOKE_CHAINCODE", "channel": CHANNEL, "chaincode": "caller"}
    completed = "chaincode_shim_requests_completed_total"
    wait_for(
        lambda: (
            (
                peer.metric(completed, success="true", **labels)
                + peer.metric(completed, success="false", **labels)
            )
            == 1
        ),
        what="INVOKE_CHAINCODE completed",
    )


# ------------------------------------------------------------------------------ keepalive


def test_keepalive_sent_when_configured(make_peer: Callable[..., Peer]) -> None:
    peer = make_peer(keepalive=0.2)
    cc = peer.connect()
    first, second = cc.recv(2.0), cc.recv(2.0)
    for msg in (first, second):
        assert msg.type == CM.KEEPALIVE
        assert (msg.payload, msg.txid, msg.channel_id) == (b"", "", "")
    assert_works(peer, cc)


def test_no_keepalive_by_default(peer: Peer) -> None:
    cc = peer.connect()
    cc.expect_nothing(1.0)


# ------------------------------------------------------------------------------- reader thread


def test_reply_too_large_to_send_from_the_reader_ends_the_connection(make_peer: Any) -> None:
    # Requests are served on the stream's reader thread; a send that fails there must still
    # end the connection through the actor, failing what is in flight.
    peer = make_peer(max_message_size=64 * 1024)
    peer.commit("fake", {"big": b"x" * (128 * 1024)})
    cc = peer.connect()
    tx = peer.start(cc)
    tx.send(CM.GET_STATE, shim.GetState(key="big"))
    exc = failure(tx.future)
    assert isinstance(exc, ChaincodeStreamTerminated)
    assert "send failed" in str(exc)
    cc.expect_closed()


def test_a_failure_on_the_reader_thread_crashes_the_handler(peer: Peer) -> None:
    cc = peer.connect()
    tx = peer.start(cc)
    handler = cc.handler._actor_weakref()

    def broken(msg: CM) -> bool:
        raise RuntimeError("boom")

    handler._transaction_message = broken  # what the reader calls for a READY handler
    tx.send(CM.GET_STATE, shim.GetState(key="k"))
    exc = failure(tx.future)
    assert isinstance(exc, ChaincodeStreamTerminated)
    assert "handler crashed: RuntimeError('boom')" in str(exc)
    cc.expect_closed()
    wait_for(lambda: not cc.handler.is_alive(), what="the handler to stop")


def test_hung_counts_only_silent_timeouts_in_a_row(make_peer: Any) -> None:
    # Requests and COMPLETED are handled on the reader thread; hearing them must still break
    # a run of silent timeouts, or a healthy chaincode is killed at its second timeout ever.
    peer = make_peer(hung_after=2)
    cc = peer.connect()
    assert isinstance(failure(peer.start(cc, timeout=0.2).future), ExecuteTimeout)
    tx = peer.start(cc)
    tx.ok(CM.GET_STATE, shim.GetState(key="k"))
    tx.complete()
    assert isinstance(failure(peer.start(cc, timeout=0.2).future), ExecuteTimeout)
    cc.expect_nothing()  # one silent timeout since it last spoke: still connected
    assert cc.handler.is_alive()
    late = peer.start(cc, timeout=0.2)  # the second in a row: hung
    assert isinstance(failure(late.future), ExecuteTimeout)
    cc.expect_closed()
