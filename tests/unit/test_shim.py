"""actors.shim driven over a multiprocessing Pipe by a scripted fake peer running in a thread."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import multiprocessing
import queue
import random
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf.message import Message

from actors.shim import (
    Chaincode,
    ChaincodeRequestError,
    ChaincodeStub,
    HistoryQueryIterator,
    ShimHandler,
    StateQueryIterator,
    error,
    success,
)
from actors.shim.stub import create_composite_key, split_composite_key
from actors.transports.base import ConnectionClosed, MalformedMessage
from actors.transports.pipe import PipeStream
from protos.common import common_pb2
from protos.ledger.queryresult.kv_query_result_pb2 import KV, KeyModification
from protos.msp.identities_pb2 import SerializedIdentity
from protos.peer import chaincode_shim_pb2 as shim_pb
from protos.peer.chaincode_pb2 import (
    ChaincodeAdditionalParams,
    ChaincodeID,
    ChaincodeInput,
    ChaincodeSpec,
)
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage
from protos.peer.proposal_pb2 import ChaincodeProposalPayload, Proposal, SignedProposal
from protos.peer.proposal_response_pb2 import Response

pytestmark = pytest.mark.timeout(60)

M = ChaincodeMessage
WAIT = 10.0  # seconds; generous, only reached when something is broken
CHANNEL = "ch1"


def parse(cls: type[Message], data: bytes) -> Any:
    msg = cls()
    msg.ParseFromString(data)
    return msg


# ---------------------------------------------------------------------------- fake peer


class FakePeer:
    """The peer end of the pipe: handshake, a dict-backed ledger, and a record of traffic.

    ``handshake``: "full" (REGISTERED+READY), "batch" (as full, READY offering write batches
    and GET_STATE_MULTIPLE, sizes 1: the shim raises them to 100), "registered" (REGISTERED
    only) or "none". A WRITE_BATCH_STATE followed in one frame by its COMPLETED is applied
    without a reply, as the peer does (actors.handler); its failure goes to ``batch_errors``.
    ``shuffle``: answer requests from a responder thread in random order instead of inline.
    """

    def __init__(self, stream: PipeStream, handshake: str = "full", shuffle: bool = False):
        self.stream = stream
        self.handshake = handshake
        self.shuffle = shuffle
        self.state: dict[str, bytes] = {}
        self.private: dict[tuple[str, str], bytes] = {}
        self.metadata: dict[str, dict[str, bytes]] = {}
        self.history: dict[str, list[KeyModification]] = {}
        self.iterators: dict[str, list[bytes]] = {}
        self.received: list[ChaincodeMessage] = []
        self.frames: list[int] = []  # messages per frame received
        self.results: dict[tuple[str, str], queue.Queue[ChaincodeMessage]] = {}
        self.unsolicited: queue.Queue[ChaincodeMessage] = queue.Queue()
        self.hold: dict[str, threading.Event] = {}  # GET_STATE of these keys waits for the event
        self.held: queue.Queue[ChaincodeMessage] = queue.Queue()
        self.fail_keys: set[str] = set()
        self.batch_errors: dict[str, str] = {}  # txid -> why its unanswered batch failed
        self.invoke_replies: dict[str, ChaincodeMessage] = {}  # by target name
        self.closed = threading.Event()
        self._pending: list[ChaincodeMessage] = []
        self._pending_cv = threading.Condition()
        self._lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if shuffle:
            threading.Thread(target=self._respond_shuffled, daemon=True).start()

    # -- plumbing

    def send(self, msg: ChaincodeMessage) -> None:
        self.stream.send(msg)

    def _read(self) -> None:
        try:
            while True:
                msgs = self.stream.recv_batch()
                with self._lock:
                    self.received.extend(msgs)
                    self.frames.append(len(msgs))
                for index, msg in enumerate(msgs):
                    after = msgs[index + 1] if index + 1 < len(msgs) else None
                    if (
                        msg.type == M.WRITE_BATCH_STATE
                        and after is not None
                        and after.type == M.COMPLETED
                        and (after.txid, after.channel_id) == (msg.txid, msg.channel_id)
                        and msgs.same_frame(index, index + 1)  # type: ignore[attr-defined]
                    ):
                        reply = self.answer(msg)  # applied; the reply is not sent
                        if reply.type == M.ERROR:
                            self.batch_errors[msg.txid] = reply.payload.decode()
                        continue
                    self._dispatch(msg)
        except (ConnectionClosed, MalformedMessage):  # a reset pipe may surface as either
            pass
        finally:
            self.closed.set()

    def _dispatch(self, msg: ChaincodeMessage) -> None:
        if msg.type == M.REGISTER:
            if self.handshake in ("full", "batch", "registered"):
                self.send(M(type=M.REGISTERED))
            if self.handshake == "full":
                self.send(M(type=M.READY))
            elif self.handshake == "batch":
                params = ChaincodeAdditionalParams(
                    use_write_batch=True,
                    max_size_write_batch=1,
                    use_get_multiple_keys=True,
                    max_size_get_multiple_keys=1,
                )
                self.send(M(type=M.READY, payload=params.SerializeToString()))
        elif msg.type in (M.COMPLETED, M.ERROR) and msg.txid:
            self._result_queue(msg.channel_id, msg.txid).put(msg)
        elif msg.type in (M.COMPLETED, M.ERROR, M.KEEPALIVE):
            self.unsolicited.put(msg)
        elif msg.type == M.GET_STATE and parse(shim_pb.GetState, msg.payload).key in self.hold:
            key = parse(shim_pb.GetState, msg.payload).key
            self.held.put(msg)
            threading.Thread(target=self._answer_when, args=(msg, self.hold[key])).start()
        elif self.shuffle:
            with self._pending_cv:
                self._pending.append(msg)
                self._pending_cv.notify()
        else:
            self.send(self.answer(msg))

    def _answer_when(self, msg: ChaincodeMessage, event: threading.Event) -> None:
        event.wait(WAIT)
        with contextlib.suppress(ConnectionClosed):
            self.send(self.answer(msg))

    def _respond_shuffled(self) -> None:
        rng = random.Random(7)
        while not self.closed.is_set():
            with self._pending_cv:
                self._pending_cv.wait(0.05)
                # Let a few requests pile up so the order really gets mixed.
                self._pending_cv.wait_for(lambda: len(self._pending) >= 8, timeout=0.005)
                batch, self._pending = self._pending, []
            rng.shuffle(batch)
            self.stream.cork()  # the replies go out as one frame, as the peer's reader sends
            try:
                for msg in batch:
                    self.send(self.answer(msg))
                self.stream.uncork()
            except ConnectionClosed:
                return

    def _result_queue(self, channel_id: str, txid: str) -> queue.Queue[ChaincodeMessage]:
        with self._lock:
            return self.results.setdefault((channel_id, txid), queue.Queue())

    def requests(self, txid: str | None = None) -> list[ChaincodeMessage]:
        with self._lock:
            return [
                m
                for m in self.received
                if m.type not in (M.REGISTER, M.COMPLETED, M.ERROR, M.KEEPALIVE)
                and (txid is None or m.txid == txid)
            ]

    # -- driving transactions

    def execute(
        self,
        args: list[bytes | str],
        txid: str | None = None,
        msg_type: int = M.TRANSACTION,
        proposal: SignedProposal | None = None,
        channel: str = CHANNEL,
        payload: bytes | None = None,
    ) -> ChaincodeMessage:
        txid = txid or uuid.uuid4().hex
        self.start(args, txid, msg_type, proposal, channel, payload)
        return self.result(txid, channel)

    def start(
        self,
        args: list[bytes | str],
        txid: str,
        msg_type: int = M.TRANSACTION,
        proposal: SignedProposal | None = None,
        channel: str = CHANNEL,
        payload: bytes | None = None,
    ) -> None:
        if payload is None:
            cc_input = ChaincodeInput(args=[a.encode() if isinstance(a, str) else a for a in args])
            payload = cc_input.SerializeToString()
        msg = M(type=msg_type, payload=payload, txid=txid, channel_id=channel)
        if proposal is not None:
            msg.proposal.CopyFrom(proposal)
        self.send(msg)

    def result(self, txid: str, channel: str = CHANNEL) -> ChaincodeMessage:
        return self._result_queue(channel, txid).get(timeout=WAIT)

    # -- the ledger

    def answer(self, msg: ChaincodeMessage) -> ChaincodeMessage:
        reply = M(type=M.RESPONSE, txid=msg.txid, channel_id=msg.channel_id)
        try:
            reply.payload = self._serve(msg)
        except KeyError as exc:
            reply.type = M.ERROR
            reply.payload = f"{M.Type.Name(msg.type)} failed: {exc.args[0]}".encode()
        return reply

    def _serve(self, msg: ChaincodeMessage) -> bytes:
        t = msg.type
        if t in (M.GET_STATE, M.GET_PRIVATE_DATA_HASH):
            req = parse(shim_pb.GetState, msg.payload)
            if req.key in self.fail_keys:
                raise KeyError(f"transaction ID: {msg.txid}: no ledger context")
            if req.collection:
                value = self.private.get((req.collection, req.key), b"")
                if t == M.GET_PRIVATE_DATA_HASH and value:
                    return hashlib.sha256(value).digest()
                return value
            return self.state.get(req.key, b"")
        if t == M.GET_STATE_MULTIPLE:
            req = parse(shim_pb.GetStateMultiple, msg.payload)
            values = [self.state.get(key, b"") for key in req.keys]
            return shim_pb.GetStateMultipleResult(values=values).SerializeToString()
        if t == M.WRITE_BATCH_STATE:
            batch = parse(shim_pb.WriteBatchState, msg.payload)
            for rec in batch.rec:
                if rec.key in self.fail_keys:
                    raise KeyError(f"transaction ID: {msg.txid}: refused {rec.key}")
            for rec in batch.rec:
                where = self.private if rec.collection else self.state
                key: Any = (rec.collection, rec.key) if rec.collection else rec.key
                if rec.type == shim_pb.WriteRecord.PUT_STATE:
                    where[key] = rec.value
                elif rec.type == shim_pb.WriteRecord.PUT_STATE_METADATA:
                    self.metadata.setdefault(rec.key, {})[rec.metadata.metakey] = rec.metadata.value
                else:
                    where.pop(key, None)
            return b""
        if t == M.PUT_STATE:
            req = parse(shim_pb.PutState, msg.payload)
            if req.collection:
                self.private[(req.collection, req.key)] = req.value
            else:
                self.state[req.key] = req.value
            return b""
        if t in (M.DEL_STATE, M.PURGE_PRIVATE_DATA):
            req = parse(shim_pb.DelState, msg.payload)
            if req.collection:
                self.private.pop((req.collection, req.key), None)
            else:
                self.state.pop(req.key, None)
            return b""
        if t == M.GET_STATE_BY_RANGE:
            req = parse(shim_pb.GetStateByRange, msg.payload)
            meta = parse(shim_pb.QueryMetadata, req.metadata)
            start = meta.bookmark or req.startKey
            keys = sorted(self.state)
            lo = bisect.bisect_left(keys, start)
            hi = bisect.bisect_left(keys, req.endKey) if req.endKey else len(keys)
            selected = keys[lo:hi]
            kvs = [
                KV(namespace="cc", key=k, value=self.state[k]).SerializeToString() for k in selected
            ]
            if meta.pageSize > 0:
                page, rest = kvs[: meta.pageSize], selected[meta.pageSize :]
                resp = shim_pb.QueryResponse(id=uuid.uuid4().hex, has_more=False)
                resp.results.extend(shim_pb.QueryResultBytes(resultBytes=r) for r in page)
                resp.metadata = shim_pb.QueryResponseMetadata(
                    fetched_records_count=len(page), bookmark=rest[0] if rest else ""
                ).SerializeToString()
                return resp.SerializeToString()
            return self._first_batch(kvs)
        if t == M.GET_QUERY_RESULT:
            req = parse(shim_pb.GetQueryResult, msg.payload)
            if req.query != "{}":
                raise KeyError("rich queries are not supported by LevelDB")
            kvs = [KV(key=k, value=v).SerializeToString() for k, v in sorted(self.state.items())]
            return self._first_batch(kvs)
        if t == M.GET_HISTORY_FOR_KEY:
            req = parse(shim_pb.GetHistoryForKey, msg.payload)
            mods = [m.SerializeToString() for m in self.history.get(req.key, [])]
            return self._first_batch(mods)
        if t == M.QUERY_STATE_NEXT:
            req = parse(shim_pb.QueryStateNext, msg.payload)
            if req.id not in self.iterators:
                raise KeyError("query iterator not found")
            return self._batch(req.id)
        if t == M.QUERY_STATE_CLOSE:
            req = parse(shim_pb.QueryStateClose, msg.payload)
            self.iterators.pop(req.id, None)
            return shim_pb.QueryResponse(id=req.id, has_more=False).SerializeToString()
        if t == M.GET_STATE_METADATA:
            req = parse(shim_pb.GetStateMetadata, msg.payload)
            result = shim_pb.StateMetadataResult()
            for metakey, value in sorted(self.metadata.get(req.key, {}).items()):
                result.entries.add(metakey=metakey, value=value)
            return result.SerializeToString()
        if t == M.PUT_STATE_METADATA:
            req = parse(shim_pb.PutStateMetadata, msg.payload)
            self.metadata.setdefault(req.key, {})[req.metadata.metakey] = req.metadata.value
            return b""
        if t == M.INVOKE_CHAINCODE:
            spec = parse(ChaincodeSpec, msg.payload)
            name = spec.chaincode_id.name
            if name not in self.invoke_replies:
                raise KeyError(f"chaincode {name} not found")
            return self.invoke_replies[name].SerializeToString()
        raise KeyError(f"unexpected message type {t}")

    def _first_batch(self, results: list[bytes]) -> bytes:
        iterator_id = uuid.uuid4().hex
        self.iterators[iterator_id] = results
        return self._batch(iterator_id)

    def _batch(self, iterator_id: str) -> bytes:
        results = self.iterators[iterator_id]
        batch, rest = results[:100], results[100:]
        resp = shim_pb.QueryResponse(id=iterator_id, has_more=bool(rest))
        resp.results.extend(shim_pb.QueryResultBytes(resultBytes=r) for r in batch)
        if rest:
            self.iterators[iterator_id] = rest
        else:
            del self.iterators[iterator_id]  # like the peer: exhausted iterators are forgotten
        return resp.SerializeToString()


class WaitingStream(PipeStream):
    """A pipe without ``send_together``: the shim then waits for every batch's RESPONSE, as
    over gRPC."""

    send_together = None  # type: ignore[assignment]


class Harness:
    def __init__(
        self, chaincode: Chaincode, stream_class: type[PipeStream] = PipeStream, **peer_kwargs: Any
    ):
        a, b = multiprocessing.Pipe()
        self.peer_stream, self.cc_stream = PipeStream(a), stream_class(b)
        self.handler = ShimHandler(self.cc_stream, chaincode, "mycc:1.0", max_workers=64)
        self.run_error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.peer = FakePeer(self.peer_stream, **peer_kwargs)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.handler.run()
        except BaseException as exc:  # run() must never raise; surface it in the test
            self.run_error.append(exc)

    def wait_state(self, state: str) -> None:
        for _ in range(2000):
            if self.handler.state == state:
                return
            threading.Event().wait(0.005)
        raise AssertionError(f"handler stuck in {self.handler.state}, expected {state}")

    def wait_ready(self) -> None:
        self.wait_state("ready")

    def join(self) -> None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "ShimHandler.run() did not return"
        assert not self.run_error

    def close(self) -> None:
        self.peer_stream.close()
        self.join()


@pytest.fixture(params=["threads", "greenlets", "auto"])
def make(request: pytest.FixtureRequest) -> Any:
    """Harness factory; every test runs once per ``Chaincode.concurrency``."""
    harnesses: list[Harness] = []

    def factory(chaincode: Chaincode, **kwargs: Any) -> Harness:
        chaincode.concurrency = request.param
        h = Harness(chaincode, **kwargs)
        harnesses.append(h)
        if kwargs.get("handshake", "full") in ("full", "batch"):
            h.wait_ready()
        return h

    yield factory
    for h in harnesses:
        h.peer_stream.close()
        h.thread.join(WAIT)


threads_only = pytest.mark.parametrize("make", ["threads"], indirect=True)

# ---------------------------------------------------------------------------- chaincodes


class FnChaincode(Chaincode):
    """Invoke dispatches to ``fn(stub, *params)`` from a dict; results are JSON-encoded."""

    def __init__(self, fns: dict[str, Callable[..., Any]], init: Callable[..., Any] | None = None):
        self.fns = fns
        self._init = init

    def init(self, stub: ChaincodeStub) -> Response:
        if self._init is None:
            return success(b"init-ok")
        return self._init(stub)

    def invoke(self, stub: ChaincodeStub) -> Response:
        fn, params = stub.get_function_and_parameters()
        result = self.fns[fn](stub, *params)
        if isinstance(result, Response):
            return result
        return success(json.dumps(result))


def payload_of(reply: ChaincodeMessage) -> Any:
    assert reply.type == M.COMPLETED, reply.payload
    resp = parse(Response, reply.payload)
    assert resp.status == 200, resp
    return json.loads(resp.payload)


def make_proposal(
    creator: bytes = b"", nonce: bytes = b"n0nce", epoch: int = 0, header_type: int = 3
) -> SignedProposal:
    chdr = common_pb2.ChannelHeader(type=header_type, channel_id=CHANNEL, tx_id="t", epoch=epoch)
    chdr.timestamp.seconds = 1_700_000_000
    chdr.timestamp.nanos = 42
    shdr = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    header = common_pb2.Header(
        channel_header=chdr.SerializeToString(), signature_header=shdr.SerializeToString()
    )
    payload = ChaincodeProposalPayload(input=b"x", TransientMap={"secret": b"s3"})
    prop = Proposal(header=header.SerializeToString(), payload=payload.SerializeToString())
    return SignedProposal(proposal_bytes=prop.SerializeToString(), signature=b"sig")


# ---------------------------------------------------------------------------- handshake / FSM


def test_handshake_order_and_states(make: Any) -> None:
    h = make(FnChaincode({"ping": lambda stub: "pong"}), handshake="none")
    # REGISTER is the first thing on the wire, with ChaincodeID{name} and nothing else.
    for _ in range(1000):
        if h.peer.received:
            break
        threading.Event().wait(0.005)
    register = h.peer.received[0]
    assert register.type == M.REGISTER
    assert parse(ChaincodeID, register.payload).name == "mycc:1.0"
    assert register.txid == "" and register.channel_id == ""
    assert h.handler.state == "created"
    h.peer.send(M(type=M.REGISTERED))
    h.peer.send(M(type=M.KEEPALIVE))  # a round trip proves REGISTERED was processed
    assert h.peer.unsolicited.get(timeout=WAIT).type == M.KEEPALIVE
    assert h.handler.state == "established"
    h.peer.send(M(type=M.READY, payload=b"\xff\xff not a proto"))  # READY payload is tolerated
    h.wait_ready()
    assert payload_of(h.peer.execute(["ping"])) == "pong"
    h.close()
    assert h.handler.error is None


def test_ready_payload_additional_params_parsed(make: Any) -> None:
    h = make(FnChaincode({}), handshake="registered")
    h.wait_state("established")
    h.peer.send(
        M(type=M.READY, payload=ChaincodeAdditionalParams(use_write_batch=True).SerializeToString())
    )
    h.wait_ready()
    assert h.handler.ready_params is not None and h.handler.ready_params.use_write_batch


def test_keepalive_echoed_in_every_state(make: Any) -> None:
    h = make(FnChaincode({}), handshake="none")
    h.peer.send(M(type=M.KEEPALIVE, txid="k1"))
    echoed = h.peer.unsolicited.get(timeout=WAIT)
    assert (echoed.type, echoed.txid) == (M.KEEPALIVE, "k1")
    h.peer.send(M(type=M.REGISTERED))
    h.peer.send(M(type=M.READY))
    h.wait_ready()
    h.peer.send(M(type=M.KEEPALIVE, txid="k2"))
    echoed = h.peer.unsolicited.get(timeout=WAIT)
    assert (echoed.type, echoed.txid) == (M.KEEPALIVE, "k2")
    assert h.handler.state == "ready"


@pytest.mark.parametrize(
    ("handshake", "bad"),
    [
        ("none", M(type=M.INIT, txid="tx-early", channel_id=CHANNEL)),
        ("registered", M(type=M.TRANSACTION, txid="tx-early", channel_id=CHANNEL)),
        ("full", M(type=M.REGISTERED, txid="tx-dup")),
        ("full", M(type=M.GET_STATE, txid="tx-odd")),
    ],
)
def test_out_of_state_message_sends_error_and_ends_stream(
    make: Any, handshake: str, bad: ChaincodeMessage
) -> None:
    h = make(FnChaincode({}), handshake=handshake)
    h.wait_state({"none": "created", "registered": "established", "full": "ready"}[handshake])
    h.peer.send(bad)
    err = h.peer.result(bad.txid, channel="")  # Go's ERROR here carries the txid, no channel
    assert err.type == M.ERROR
    assert M.Type.Name(bad.type) in err.payload.decode()
    assert h.handler.state in err.payload.decode()
    assert h.peer.closed.wait(WAIT), "the shim did not end the stream"
    h.join()
    assert h.handler.error is not None


def test_stray_response_is_a_protocol_error(make: Any) -> None:
    h = make(FnChaincode({}))
    h.wait_ready()
    h.peer.send(M(type=M.RESPONSE, txid="nobody", channel_id=CHANNEL))
    assert h.peer.result("nobody", channel="").type == M.ERROR
    assert h.peer.closed.wait(WAIT)
    h.join()


def test_malformed_frame_ends_run(make: Any) -> None:
    h = make(FnChaincode({}))
    h.wait_ready()
    h.peer_stream.send_frame(b"\xc1 definitely not msgpack")
    assert h.peer.closed.wait(WAIT)
    h.join()
    assert "malformed" in (h.handler.error or "")


def test_stop_makes_run_return(make: Any) -> None:
    h = make(FnChaincode({}))
    h.wait_ready()
    h.handler.stop()
    h.join()
    assert h.peer.closed.wait(WAIT)


# ---------------------------------------------------------------------------- INIT / TRANSACTION


def test_init_and_invoke_replies(make: Any) -> None:
    h = make(
        FnChaincode(
            {"fail": lambda stub: error("nope", status=500, payload=b"p")},
            init=lambda stub: error("init failed") if stub.get_args() else success(b"fine"),
        )
    )
    ok = h.peer.execute([], msg_type=M.INIT, txid="i1")
    assert (ok.type, ok.txid, ok.channel_id) == (M.COMPLETED, "i1", CHANNEL)
    assert parse(Response, ok.payload).payload == b"fine"
    # Go shim: Init with status >= 500 becomes ERROR carrying the message...
    bad = h.peer.execute(["x"], msg_type=M.INIT, txid="i2")
    assert (bad.type, bad.payload, bad.channel_id) == (M.ERROR, b"init failed", CHANNEL)
    # ... while Invoke always answers COMPLETED and lets the endorser read the status.
    fail = h.peer.execute(["fail"], txid="t1")
    assert fail.type == M.COMPLETED
    assert parse(Response, fail.payload) == Response(status=500, message="nope", payload=b"p")
    assert not fail.HasField("chaincode_event")


def test_exception_in_chaincode_is_error_and_handler_survives(make: Any) -> None:
    def boom(stub: ChaincodeStub) -> None:
        raise KeyError("missing thing")

    h = make(FnChaincode({"boom": boom, "ok": lambda stub: "fine"}))
    reply = h.peer.execute(["boom"], txid="b1")
    assert reply.type == M.ERROR
    assert reply.payload.decode() == "KeyError: 'missing thing'"
    assert (reply.txid, reply.channel_id) == ("b1", CHANNEL)
    assert payload_of(h.peer.execute(["ok"])) == "fine"
    # The default Chaincode.invoke raises NotImplementedError, which is reported the same way.
    h2 = make(Chaincode())
    reply = h2.peer.execute(["anything"])
    assert reply.type == M.ERROR and reply.payload.startswith(b"NotImplementedError: ")
    assert parse(Response, h2.peer.execute([], msg_type=M.INIT).payload).status == 200


def test_non_response_return_is_error(make: Any) -> None:
    class Bad(Chaincode):
        def invoke(self, stub: ChaincodeStub) -> Any:
            return "not a response"

    h = make(Bad())
    reply = h.peer.execute(["x"])
    assert reply.type == M.ERROR
    assert b"returned str, not a Response" in reply.payload


def test_undecodable_input_is_error(make: Any) -> None:
    h = make(FnChaincode({}))
    reply = h.peer.execute([], txid="u1", payload=b"\xff\xff\xff")
    assert reply.type == M.ERROR and reply.payload.startswith(b"failed to unmarshal input")
    assert reply.channel_id == CHANNEL


def test_set_event_reaches_completed(make: Any) -> None:
    def emit(stub: ChaincodeStub) -> str:
        with pytest.raises(ValueError):
            stub.set_event("", b"x")
        stub.set_event("first", b"1")
        stub.set_event("second", "two")  # last one wins
        return "ok"

    h = make(FnChaincode({"emit": emit}))
    reply = h.peer.execute(["emit"])
    assert reply.type == M.COMPLETED
    assert reply.chaincode_event.event_name == "second"
    assert reply.chaincode_event.payload == b"two"


# ---------------------------------------------------------------------------- stub API


def test_args_and_proposal_accessors(make: Any) -> None:
    creator = SerializedIdentity(
        mspid="Org1MSP", id_bytes=b"-----BEGIN CERT-----"
    ).SerializeToString()
    seen: dict[str, Any] = {}

    def inspect(stub: ChaincodeStub, *params: str) -> str:
        seen["args"] = stub.get_args()
        seen["strings"] = stub.get_string_args()
        seen["fp"] = stub.get_function_and_parameters()
        seen["txid"], seen["channel"] = stub.get_txid(), stub.get_channel_id()
        seen["creator"], seen["transient"] = stub.get_creator(), stub.get_transient()
        seen["binding"], seen["ts"] = stub.get_binding(), stub.get_tx_timestamp()
        seen["sp"], seen["decorations"] = stub.get_signed_proposal(), stub.get_decorations()
        return "ok"

    def no_proposal(stub: ChaincodeStub) -> str:
        assert stub.get_creator() == b"" and stub.get_binding() == b""
        assert stub.get_transient() == {} and stub.get_signed_proposal() is None
        with pytest.raises(ValueError, match="no signed proposal"):
            stub.get_tx_timestamp()
        return "ok"

    h = make(FnChaincode({"inspect": inspect, "none": no_proposal}))
    prop = make_proposal(creator=creator, nonce=b"abc", epoch=7)
    payload = ChaincodeInput(args=[b"inspect", b"a", b"\xff"], decorations={"d": b"v"})
    reply = h.peer.execute([], txid="tx-a", proposal=prop, payload=payload.SerializeToString())
    assert payload_of(reply) == "ok"
    assert seen["args"] == [b"inspect", b"a", b"\xff"]
    assert seen["strings"][:2] == ["inspect", "a"]
    assert seen["strings"][2].encode("utf-8", "surrogateescape") == b"\xff"
    assert seen["fp"] == ("inspect", ["a", seen["strings"][2]])
    assert (seen["txid"], seen["channel"]) == ("tx-a", CHANNEL)
    assert seen["creator"] == creator
    assert seen["transient"] == {"secret": b"s3"}
    assert seen["binding"] == hashlib.sha256(b"abc" + creator + struct.pack("<Q", 7)).digest()
    assert (seen["ts"].seconds, seen["ts"].nanos) == (1_700_000_000, 42)
    assert seen["sp"] == prop
    assert seen["decorations"] == {"d": b"v"}
    assert payload_of(h.peer.execute(["none"])) == "ok"


def test_bad_proposal_is_error_before_user_code(make: Any) -> None:
    ran = threading.Event()
    h = make(FnChaincode({"x": lambda stub: ran.set()}))
    bad_type = h.peer.execute(["x"], proposal=make_proposal(header_type=0))
    assert bad_type.type == M.ERROR and b"invalid channel header type" in bad_type.payload
    empty = h.peer.execute(["x"], proposal=SignedProposal(signature=b"s"))
    assert empty.type == M.ERROR and b"proposal header is nil" in empty.payload
    assert not ran.is_set()


def test_signature_header_and_payload_are_read_when_first_asked_for(make: Any) -> None:
    """Only the headers are checked before user code; a signature header or payload that does
    not parse fails the getter that needs it (a peer never sends one: it validates both)."""
    good = Proposal.FromString(make_proposal().proposal_bytes)
    header = common_pb2.Header.FromString(good.header)
    header.signature_header = b"\xff\xff"
    broken = Proposal(header=header.SerializeToString(), payload=b"\xff\xff")
    seen: dict[str, str] = {}

    def lazy(stub: ChaincodeStub) -> str:
        seen["fn"] = stub.get_function_and_parameters()[0]
        for getter in (stub.get_creator, stub.get_binding, stub.get_transient):
            with pytest.raises(ValueError, match="failed to extract") as info:
                getter()
            seen[getter.__name__] = str(info.value)
        return "ok"

    h = make(FnChaincode({"lazy": lazy}))
    proposal = SignedProposal(proposal_bytes=broken.SerializeToString())
    assert payload_of(h.peer.execute(["lazy"], proposal=proposal)) == "ok"
    assert seen["fn"] == "lazy"
    assert "signature header" in seen["get_creator"] and "signature header" in seen["get_binding"]
    assert "proposal payload" in seen["get_transient"]


def test_state_requests_carry_txid_and_channel(make: Any) -> None:
    def rw(stub: ChaincodeStub) -> dict[str, Any]:
        stub.put_state("a", b"1")
        stub.put_state("b", "two")
        out = {"a": stub.get_state("a").decode(), "missing": stub.get_state("nope").decode()}
        out["multi"] = [v.decode() for v in stub.get_state_multiple(["a", "b", "zz"])]
        stub.del_state("a")
        out["after_del"] = stub.get_state("a").decode()
        with pytest.raises(ValueError, match="empty"):
            stub.put_state("", b"x")
        return out

    h = make(FnChaincode({"rw": rw}))
    result = payload_of(h.peer.execute(["rw"], txid="tx-rw", channel="other"))
    assert result == {"a": "1", "missing": "", "multi": ["1", "two", ""], "after_del": ""}
    reqs = h.peer.requests("tx-rw")
    assert [M.Type.Name(r.type) for r in reqs] == [
        "PUT_STATE", "PUT_STATE", "GET_STATE", "GET_STATE",
        "GET_STATE", "GET_STATE", "GET_STATE", "DEL_STATE", "GET_STATE",
    ]  # fmt: skip
    assert all((r.txid, r.channel_id) == ("tx-rw", "other") for r in reqs)
    put = parse(shim_pb.PutState, reqs[1].payload)
    assert (put.key, put.value, put.collection) == ("b", b"two", "")
    assert parse(shim_pb.DelState, reqs[7].payload).key == "a"


def test_private_data(make: Any) -> None:
    def pdc(stub: ChaincodeStub) -> dict[str, Any]:
        stub.put_private_data("col", "k", b"secret")
        out = {
            "value": stub.get_private_data("col", "k").decode(),
            "hash": stub.get_private_data_hash("col", "k").hex(),
        }
        stub.del_private_data("col", "k")
        out["after_del"] = stub.get_private_data("col", "k").decode()
        stub.purge_private_data("col", "k")
        for call in (
            lambda: stub.get_private_data("", "k"),
            lambda: stub.put_private_data("", "k", b"v"),
            lambda: stub.del_private_data("", "k"),
            lambda: stub.get_private_data_hash("", "k"),
            lambda: stub.purge_private_data("", "k"),
            lambda: stub.get_private_data_by_range("", "a", "b"),
        ):
            with pytest.raises(ValueError, match="collection"):
                call()
        return out

    h = make(FnChaincode({"pdc": pdc}))
    out = payload_of(h.peer.execute(["pdc"], txid="tx-p"))
    assert out == {
        "value": "secret",
        "hash": hashlib.sha256(b"secret").hexdigest(),
        "after_del": "",
    }
    reqs = h.peer.requests("tx-p")
    assert [M.Type.Name(r.type) for r in reqs] == [
        "PUT_STATE", "GET_STATE", "GET_PRIVATE_DATA_HASH", "DEL_STATE", "GET_STATE",
        "PURGE_PRIVATE_DATA",
    ]  # fmt: skip
    assert parse(shim_pb.PutState, reqs[0].payload).collection == "col"
    assert parse(shim_pb.DelState, reqs[5].payload) == shim_pb.DelState(key="k", collection="col")


def test_validation_parameter(make: Any) -> None:
    def kle(stub: ChaincodeStub) -> list[str]:
        before = stub.get_state_validation_parameter("k")
        stub.set_state_validation_parameter("k", b"policy")
        return [before.decode(), stub.get_state_validation_parameter("k").decode()]

    h = make(FnChaincode({"kle": kle}))
    assert payload_of(h.peer.execute(["kle"], txid="tx-m")) == ["", "policy"]
    put = next(r for r in h.peer.requests("tx-m") if r.type == M.PUT_STATE_METADATA)
    req = parse(shim_pb.PutStateMetadata, put.payload)
    assert (req.key, req.metadata.metakey, req.metadata.value) == (
        "k",
        "VALIDATION_PARAMETER",
        b"policy",
    )


def test_range_over_many_keys_batches_and_close(make: Any) -> None:
    def scan(stub: ChaincodeStub, start: str, end: str) -> list[str]:
        it = stub.get_state_by_range(start, end)
        assert isinstance(it, StateQueryIterator)
        with it:
            keys = [kv.key for kv in it]
            assert not it.has_next()
        it.close()  # idempotent: no second CLOSE
        return keys

    h = make(FnChaincode({"scan": scan}))
    h.peer.state = {f"key{i:04d}": str(i).encode() for i in range(250)}
    keys = payload_of(h.peer.execute(["scan", "", ""], txid="tx-r"))
    assert keys == sorted(h.peer.state)
    reqs = h.peer.requests("tx-r")
    assert [M.Type.Name(r.type) for r in reqs] == [
        "GET_STATE_BY_RANGE", "QUERY_STATE_NEXT", "QUERY_STATE_NEXT", "QUERY_STATE_CLOSE",
    ]  # fmt: skip
    rng = parse(shim_pb.GetStateByRange, reqs[0].payload)
    assert (rng.startKey, rng.endKey, rng.metadata) == ("\x01", "", b"")  # "" start -> "\x01"
    ids = {parse(shim_pb.QueryStateNext, r.payload).id for r in reqs[1:3]}
    assert ids == {parse(shim_pb.QueryStateClose, reqs[3].payload).id}
    window = payload_of(h.peer.execute(["scan", "key0100", "key0103"]))
    assert window == ["key0100", "key0101", "key0102"]


def test_range_rejects_composite_namespace(make: Any) -> None:
    def bad(stub: ChaincodeStub) -> str:
        for start, end in (("\x00a", "b"), ("a", "\x00b")):
            with pytest.raises(ValueError, match="null character"):
                stub.get_state_by_range(start, end)
        return "ok"

    h = make(FnChaincode({"bad": bad}))
    assert payload_of(h.peer.execute(["bad"], txid="tx-bad")) == "ok"
    assert h.peer.requests("tx-bad") == []


def test_pagination_metadata(make: Any) -> None:
    def page(stub: ChaincodeStub, size: str, bookmark: str) -> dict[str, Any]:
        it, meta = stub.get_state_by_range_with_pagination("", "", int(size), bookmark)
        with it:
            keys = [kv.key for kv in it]
        return {"keys": keys, "count": meta.fetched_records_count, "bookmark": meta.bookmark}

    h = make(FnChaincode({"page": page}))
    h.peer.state = {f"k{i}": b"v" for i in range(7)}
    first = payload_of(h.peer.execute(["page", "3", ""], txid="tx-pg"))
    assert first == {"keys": ["k0", "k1", "k2"], "count": 3, "bookmark": "k3"}
    req = parse(shim_pb.GetStateByRange, h.peer.requests("tx-pg")[0].payload)
    assert parse(shim_pb.QueryMetadata, req.metadata) == shim_pb.QueryMetadata(pageSize=3)
    last = payload_of(h.peer.execute(["page", "5", "k3"]))
    assert last == {"keys": ["k3", "k4", "k5", "k6"], "count": 4, "bookmark": ""}


def test_composite_keys_round_trip_and_partial_range(make: Any) -> None:
    key = create_composite_key("color~name", ["blue", "marble1"])
    assert key == "\x00color~name\x00blue\x00marble1\x00"
    assert split_composite_key(key) == ("color~name", ["blue", "marble1"])
    assert split_composite_key(create_composite_key("t", [])) == ("t", [])
    for bad in ("a\x00b", "a\U0010ffffb", "\ud800"):
        with pytest.raises(ValueError):
            create_composite_key("t", [bad])

    def by_color(stub: ChaincodeStub, color: str) -> list[list[Any]]:
        for name, c in (("m1", "blue"), ("m2", "red"), ("m3", "blue")):
            stub.put_state(stub.create_composite_key("color~name", [c, name]), b"x")
        with stub.get_state_by_partial_composite_key("color~name", [color]) as it:
            return [list(stub.split_composite_key(kv.key)) for kv in it]

    h = make(FnChaincode({"by_color": by_color}))
    got = payload_of(h.peer.execute(["by_color", "blue"], txid="tx-c"))
    assert got == [["color~name", ["blue", "m1"]], ["color~name", ["blue", "m3"]]]
    rng = next(r for r in h.peer.requests("tx-c") if r.type == M.GET_STATE_BY_RANGE)
    req = parse(shim_pb.GetStateByRange, rng.payload)
    assert req.startKey == "\x00color~name\x00blue\x00"
    assert req.endKey == "\x00color~name\x00blue\x00\U0010ffff"

    def paged(stub: ChaincodeStub) -> list[Any]:
        it, meta = stub.get_state_by_partial_composite_key_with_pagination("color~name", [], 1, "")
        with it:
            return [[kv.key for kv in it], meta.bookmark]

    h2 = make(FnChaincode({"paged": paged}))
    h2.peer.state = dict.fromkeys(
        (create_composite_key("color~name", [c, n]) for c, n in (("blue", "m1"), ("red", "m2"))),
        b"x",
    )
    keys, bookmark = payload_of(h2.peer.execute(["paged"]))
    assert keys == ["\x00color~name\x00blue\x00m1\x00"]
    assert bookmark == "\x00color~name\x00red\x00m2\x00"


def test_history(make: Any) -> None:
    def hist(stub: ChaincodeStub, key: str) -> list[Any]:
        it = stub.get_history_for_key(key)
        assert isinstance(it, HistoryQueryIterator)
        with it:
            return [[m.tx_id, m.value.decode(), m.is_delete, m.timestamp.seconds] for m in it]

    h = make(FnChaincode({"hist": hist}))
    mods = []
    for i in range(120):
        m = KeyModification(tx_id=f"t{i}", value=str(i).encode(), is_delete=(i == 119))
        m.timestamp.seconds = 1000 + i
        mods.append(m)
    h.peer.history["k"] = mods
    got = payload_of(h.peer.execute(["hist", "k"], txid="tx-h"))
    assert len(got) == 120
    assert got[0] == ["t0", "0", False, 1000] and got[-1] == ["t119", "119", True, 1119]
    reqs = h.peer.requests("tx-h")
    assert [M.Type.Name(r.type) for r in reqs] == [
        "GET_HISTORY_FOR_KEY", "QUERY_STATE_NEXT", "QUERY_STATE_CLOSE",
    ]  # fmt: skip
    assert parse(shim_pb.GetHistoryForKey, reqs[0].payload).key == "k"


def test_query_result_and_peer_error(make: Any) -> None:
    def rich(stub: ChaincodeStub, query: str) -> Any:
        try:
            with stub.get_query_result(query) as it:
                return [kv.key for kv in it]
        except ChaincodeRequestError as exc:
            return {"error": str(exc)}

    h = make(FnChaincode({"rich": rich}))
    h.peer.state = {"a": b"1", "b": b"2"}
    assert payload_of(h.peer.execute(["rich", "{}"], txid="tx-q")) == ["a", "b"]
    assert parse(shim_pb.GetQueryResult, h.peer.requests("tx-q")[0].payload).query == "{}"
    got = payload_of(h.peer.execute(["rich", '{"selector":{}}']))
    assert got == {"error": "GET_QUERY_RESULT failed: rich queries are not supported by LevelDB"}


def test_peer_error_reply_raises_and_tx_continues(make: Any) -> None:
    def guarded(stub: ChaincodeStub) -> Any:
        with pytest.raises(ChaincodeRequestError, match="no ledger context"):
            stub.get_state("poison")
        return stub.get_state("fine").decode()  # the reply slot was freed

    h = make(FnChaincode({"guarded": guarded, "raw": lambda stub: stub.get_state("poison")}))
    h.peer.fail_keys.add("poison")
    h.peer.state["fine"] = b"yes"
    assert payload_of(h.peer.execute(["guarded"])) == "yes"
    # Uncaught, it fails the transaction with the peer's text.
    reply = h.peer.execute(["raw"])
    assert reply.type == M.ERROR
    assert reply.payload.decode().startswith("ChaincodeRequestError: GET_STATE failed")


def test_invoke_chaincode(make: Any) -> None:
    def call(stub: ChaincodeStub, name: str, channel: str) -> list[Any]:
        resp = stub.invoke_chaincode(name, ["fn", b"\x01arg"], channel)
        return [resp.status, resp.message, resp.payload.decode("latin-1")]

    h = make(FnChaincode({"call": call}))
    inner_ok = M(
        type=M.COMPLETED,
        payload=Response(status=200, payload=b"callee says hi").SerializeToString(),
        txid="tx-i",
        channel_id=CHANNEL,
    )
    h.peer.invoke_replies["good"] = inner_ok
    h.peer.invoke_replies["bad/ch2"] = M(type=M.ERROR, payload=b"callee exploded")
    assert payload_of(h.peer.execute(["call", "good", ""], txid="tx-i")) == [
        200,
        "",
        "callee says hi",
    ]
    spec = parse(ChaincodeSpec, h.peer.requests("tx-i")[0].payload)
    assert spec.chaincode_id.name == "good"
    assert list(spec.input.args) == [b"fn", b"\x01arg"]
    assert spec.type == 0 and not spec.input.is_init
    assert payload_of(h.peer.execute(["call", "bad", "ch2"], txid="tx-j")) == [
        500,
        "callee exploded",
        "callee exploded",
    ]
    assert parse(ChaincodeSpec, h.peer.requests("tx-j")[0].payload).chaincode_id.name == "bad/ch2"
    # The peer refusing the call (outer ERROR) is a 500 Response too, as in Go.
    status, message, _ = payload_of(h.peer.execute(["call", "ghost", ""]))
    assert status == 500 and "chaincode ghost not found" in message


# ---------------------------------------------------------------------------- write batches


def kinds(msgs: list[ChaincodeMessage]) -> list[str]:
    return [M.Type.Name(m.type) for m in msgs]


def records(msg: ChaincodeMessage) -> list[tuple[str, str, str, bytes]]:
    batch = parse(shim_pb.WriteBatchState, msg.payload)
    return [
        (
            shim_pb.WriteRecord.Type.Name(r.type),
            r.collection,
            r.key,
            r.metadata.value if r.HasField("metadata") else r.value,
        )
        for r in batch.rec
    ]


def writer(stub: ChaincodeStub) -> list[str]:
    before = stub.get_state("a")
    stub.put_state("a", "1")
    stub.put_state("b", "x")
    stub.put_state("b", "2")  # replaces the first write of b in the batch, as in Go
    stub.del_state("c")
    stub.put_private_data("col", "p", b"secret")
    stub.purge_private_data("col", "q")
    stub.set_state_validation_parameter("a", b"policy")
    # The transaction never reads its own writes (Fabric's simulator does not either).
    return [before.decode(), stub.get_state("a").decode()]


WRITER_RECORDS = [
    ("PUT_STATE", "", "a", b"1"),
    ("PUT_STATE", "", "b", b"2"),
    ("DEL_STATE", "", "c", b""),
    ("PUT_STATE", "col", "p", b"secret"),
    ("PURGE_PRIVATE_DATA", "col", "q", b""),
    ("PUT_STATE_METADATA", "", "a", b"policy"),
]


def test_write_batch_goes_with_completed_in_one_frame(make: Any) -> None:
    h = make(FnChaincode({"w": writer, "read": lambda stub: "r"}), handshake="batch")
    assert (h.handler.write_batch_size, h.handler.get_multiple_size) == (100, 100)
    h.peer.state.update(a=b"0", c=b"gone")
    # No RESPONSE comes for the batch: a shim that waited for one would hang here.
    assert payload_of(h.peer.execute(["w"], txid="tx-w")) == ["0", "0"]
    reqs = h.peer.requests("tx-w")
    assert kinds(reqs) == ["GET_STATE", "GET_STATE", "WRITE_BATCH_STATE"]
    assert records(reqs[-1]) == WRITER_RECORDS
    assert h.peer.frames[-1] == 2  # the batch and the COMPLETED, one frame
    assert kinds(h.peer.received[-2:]) == ["WRITE_BATCH_STATE", "COMPLETED"]
    assert h.peer.state == {"a": b"1", "b": b"2"}
    assert h.peer.private == {("col", "p"): b"secret"}
    assert h.peer.metadata == {"a": {"VALIDATION_PARAMETER": b"policy"}}
    # No write, no batch; a failed batch is the peer's to report (the COMPLETED still goes).
    assert payload_of(h.peer.execute(["read"], txid="tx-r")) == "r"
    assert h.peer.requests("tx-r") == []
    h.peer.fail_keys.add("b")
    assert payload_of(h.peer.execute(["w"], txid="tx-f")) == ["1", "1"]
    assert h.peer.batch_errors == {
        "tx-f": "WRITE_BATCH_STATE failed: transaction ID: tx-f: refused b"
    }


def test_write_batch_is_waited_for_without_send_together(make: Any) -> None:
    h = make(FnChaincode({"w": writer}), stream_class=WaitingStream, handshake="batch")
    assert payload_of(h.peer.execute(["w"], txid="tx-w")) == ["", ""]
    assert kinds(h.peer.requests("tx-w")) == ["GET_STATE", "GET_STATE", "WRITE_BATCH_STATE"]
    assert records(h.peer.requests("tx-w")[-1]) == WRITER_RECORDS
    assert h.peer.frames[-1] == 1  # the COMPLETED came after the RESPONSE, alone
    h.peer.fail_keys.add("c")
    reply = h.peer.execute(["w"], txid="tx-f")
    assert reply.type == M.ERROR
    # Go's shim words it so: sendBatch and handleTransaction each add a prefix.
    assert reply.payload.decode() == (
        "failed send batch: failed send batch: "
        "WRITE_BATCH_STATE failed: transaction ID: tx-f: refused c"
    )


@pytest.mark.parametrize("stream_class", [PipeStream, WaitingStream])
def test_a_large_batch_is_split_at_the_announced_size(make: Any, stream_class: type) -> None:
    def many(stub: ChaincodeStub, count: str) -> int:
        for i in range(int(count)):
            stub.put_state(f"k{i:03d}", "v")
        return int(count)

    h = make(FnChaincode({"many": many}), stream_class=stream_class, handshake="batch")
    assert payload_of(h.peer.execute(["many", "250"], txid="tx-m")) == 250
    batches = h.peer.requests("tx-m")
    assert [len(records(b)) for b in batches] == [100, 100, 50]
    assert len(h.peer.state) == 250
    assert h.peer.frames[-1] == (2 if stream_class is PipeStream else 1)


class SmallFrames(PipeStream):
    def __init__(self, conn: Any) -> None:
        super().__init__(conn, max_frame=4096)


def test_a_batch_too_big_to_share_a_frame_with_the_completed_is_waited_for(make: Any) -> None:
    def big(stub: ChaincodeStub) -> Response:
        stub.put_state("k", b"v" * 3000)
        return success(b"r" * 1500)

    h = make(FnChaincode({"big": big}), stream_class=SmallFrames, handshake="batch")
    reply = h.peer.execute(["big"], txid="tx-b")
    assert parse(Response, reply.payload).payload == b"r" * 1500
    assert kinds(h.peer.requests("tx-b")) == ["WRITE_BATCH_STATE"]
    assert h.peer.frames[-1] == 1 and h.peer.state == {"k": b"v" * 3000}


def test_no_batch_for_a_failed_init_or_a_raising_invoke(make: Any) -> None:
    def boom(stub: ChaincodeStub) -> None:
        stub.put_state("k", "v")
        raise RuntimeError("boom")

    def bad_init(stub: ChaincodeStub) -> Response:
        stub.put_state("k", "v")
        return error("init refused")

    h = make(FnChaincode({"boom": boom}, init=bad_init), handshake="batch")
    assert h.peer.execute(["boom"], txid="tx-b").type == M.ERROR
    reply = h.peer.execute([], txid="tx-i", msg_type=M.INIT)
    assert (reply.type, reply.payload) == (M.ERROR, b"init refused")
    assert h.peer.requests() == [] and h.peer.state == {}


class Unbatched(FnChaincode):
    write_batch = False


def test_write_batch_off_start_and_finish(make: Any) -> None:
    def steps(stub: ChaincodeStub) -> str:
        stub.put_state("one", "1")  # its own request: this chaincode does not batch
        stub.start_write_batch()
        stub.put_state("two", "2")
        stub.del_state("one")
        stub.finish_write_batch()  # sent and waited for here
        stub.put_state("three", "3")  # batching is over: its own request again
        stub.start_write_batch()
        stub.put_state("four", "4")  # goes with the COMPLETED
        return "done"

    h = make(Unbatched({"steps": steps}), handshake="batch")
    assert payload_of(h.peer.execute(["steps"], txid="tx-s")) == "done"
    reqs = h.peer.requests("tx-s")
    assert kinds(reqs) == ["PUT_STATE", "WRITE_BATCH_STATE", "PUT_STATE", "WRITE_BATCH_STATE"]
    assert [r[2] for r in records(reqs[1])] == ["two", "one"]
    assert h.peer.state == {"two": b"2", "three": b"3", "four": b"4"}

    def refused(stub: ChaincodeStub) -> str:
        stub.start_write_batch()
        stub.put_state("two", "2")
        with pytest.raises(ChaincodeRequestError, match=r"^failed send batch: WRITE_BATCH_STATE"):
            stub.finish_write_batch()
        return "caught"

    h2 = make(Unbatched({"refused": refused}), handshake="batch")
    h2.peer.fail_keys.add("two")
    assert payload_of(h2.peer.execute(["refused"])) == "caught"


def test_writes_wait_for_the_end_across_a_chaincode_call(make: Any) -> None:
    def call(stub: ChaincodeStub) -> int:
        stub.put_state("before", "1")
        status = stub.invoke_chaincode("other", ["f"]).status
        stub.put_state("after", "2")
        return status

    h = make(FnChaincode({"call": call}), handshake="batch")
    h.peer.invoke_replies["other"] = M(
        type=M.COMPLETED, payload=Response(status=200).SerializeToString()
    )
    assert payload_of(h.peer.execute(["call"], txid="tx-c")) == 200
    reqs = h.peer.requests("tx-c")
    assert kinds(reqs) == ["INVOKE_CHAINCODE", "WRITE_BATCH_STATE"]  # as Go's shim does
    assert [r[2] for r in records(reqs[1])] == ["before", "after"]


def test_get_state_multiple_uses_the_announced_request(make: Any) -> None:
    keys = [f"k{i:03d}" for i in range(150)]

    def multi(stub: ChaincodeStub) -> list[str]:
        return [v.decode() for v in stub.get_state_multiple(keys)]

    h = make(FnChaincode({"multi": multi}), handshake="batch")
    h.peer.state.update({"k000": b"zero", "k149": b"last"})
    values = payload_of(h.peer.execute(["multi"], txid="tx-g"))
    assert values == ["zero"] + [""] * 148 + ["last"]
    reqs = h.peer.requests("tx-g")
    assert kinds(reqs) == ["GET_STATE_MULTIPLE", "GET_STATE_MULTIPLE"]
    assert [len(parse(shim_pb.GetStateMultiple, r.payload).keys) for r in reqs] == [100, 50]
    plain = make(FnChaincode({"multi": multi}))  # READY offers nothing: one GET_STATE a key
    assert payload_of(plain.peer.execute(["multi"], txid="tx-p"))[0] == ""
    assert set(kinds(plain.peer.requests("tx-p"))) == {"GET_STATE"}


# ---------------------------------------------------------------------------- concurrency


@threads_only  # user code blocks on another thread
def test_many_concurrent_transactions_get_their_own_replies(make: Any) -> None:
    barrier = threading.Barrier(50, timeout=WAIT)

    def work(stub: ChaincodeStub, i: str) -> list[str]:
        barrier.wait()  # all 50 are in flight before any request goes out
        first = stub.get_state(f"k{i}").decode()
        stub.put_state(f"out{i}", f"{first}-{stub.get_txid()}")
        second = stub.get_state(f"k{i}").decode()
        return [first, second]

    h = make(FnChaincode({"work": work}), shuffle=True)
    h.peer.state = {f"k{i}": f"value{i}".encode() for i in range(50)}
    for i in range(50):
        h.peer.start(["work", str(i)], txid=f"tx{i:02d}")
    for i in range(50):
        assert payload_of(h.peer.result(f"tx{i:02d}")) == [f"value{i}", f"value{i}"]
        assert h.peer.state[f"out{i}"] == f"value{i}-tx{i:02d}".encode()
        reqs = h.peer.requests(f"tx{i:02d}")
        assert len(reqs) == 3 and all(r.channel_id == CHANNEL for r in reqs)
    # Replies really were out of order relative to the requests.
    order = [r.txid for r in h.peer.requests()]
    assert order != sorted(order)


def test_a_frame_of_transactions_is_served_and_its_replies_batched(make: Any) -> None:
    def work(stub: ChaincodeStub, i: str) -> str:
        value = stub.get_state(f"k{i}").decode()
        stub.put_state(f"out{i}", value.encode())
        return value

    h = make(FnChaincode({"work": work}), shuffle=True)
    h.peer.state = {f"k{i}": f"value{i}".encode() for i in range(30)}
    h.peer_stream.cork()  # all 30 TRANSACTIONs in one frame
    for i in range(30):
        h.peer.start(["work", str(i)], txid=f"tx{i:02d}")
    h.peer_stream.uncork()
    for i in range(30):
        assert payload_of(h.peer.result(f"tx{i:02d}")) == f"value{i}"
        assert h.peer.state[f"out{i}"] == f"value{i}".encode()
        assert [r.type for r in h.peer.requests(f"tx{i:02d}")] == [M.GET_STATE, M.PUT_STATE]
    if h.handler._chaincode.concurrency == "greenlets":
        # What the transactions of one frame send goes back as one frame.
        assert max(h.peer.frames) > 1


def test_same_txid_on_two_channels_is_two_transactions(make: Any) -> None:
    h = make(FnChaincode({"get": lambda stub, k: stub.get_state(k).decode()}), shuffle=True)
    h.peer.state = {"a": b"A", "b": b"B"}
    h.peer.start(["get", "a"], txid="same", channel="c1")
    h.peer.start(["get", "b"], txid="same", channel="c2")
    assert payload_of(h.peer.result("same", "c1")) == "A"
    assert payload_of(h.peer.result("same", "c2")) == "B"


@threads_only  # user code blocks on another thread
def test_overlapping_requests_from_one_transaction_fail(make: Any) -> None:
    def overlap(stub: ChaincodeStub) -> str:
        first: list[bytes] = []
        t = threading.Thread(target=lambda: first.append(stub.get_state("slow")))
        t.start()
        h.peer.held.get(timeout=WAIT)  # the first request is at the peer, unanswered
        try:
            with pytest.raises(ChaincodeRequestError, match="still waiting"):
                stub.get_state("other")
        finally:
            release.set()
        t.join(WAIT)
        return first[0].decode()

    release = threading.Event()
    h = make(FnChaincode({"overlap": overlap}))
    h.peer.hold["slow"] = release
    h.peer.state["slow"] = b"eventually"
    assert payload_of(h.peer.execute(["overlap"], txid="tx-o")) == "eventually"
    assert [parse(shim_pb.GetState, r.payload).key for r in h.peer.requests("tx-o")] == ["slow"]


def test_peer_closing_stream_fails_waiting_calls_and_run_returns(make: Any) -> None:
    outcome: queue.Queue[BaseException | bytes] = queue.Queue()

    def waits(stub: ChaincodeStub) -> str:
        try:
            outcome.put(stub.get_state("slow"))
        except ChaincodeRequestError as exc:
            outcome.put(exc)
            try:
                stub.get_state("again")  # later calls fail immediately too
            except ChaincodeRequestError as exc2:
                outcome.put(exc2)
        return "done"

    release = threading.Event()
    h = make(FnChaincode({"waits": waits}))
    h.peer.hold["slow"] = release
    h.peer.start(["waits"], txid="tx-w")
    h.peer.held.get(timeout=WAIT)
    h.peer_stream.close()
    first, second = outcome.get(timeout=WAIT), outcome.get(timeout=WAIT)
    assert isinstance(first, ChaincodeRequestError) and str(first) == "connection to peer lost"
    assert isinstance(second, ChaincodeRequestError)
    h.join()
    release.set()
    assert h.handler.error is None


@threads_only  # user code blocks on another thread
def test_reading_continues_while_the_only_transaction_is_busy_in_user_code(make: Any) -> None:
    # Leader/follower reading: a transaction busy in user code holds no read token, and the
    # token it left parked must still be picked up, or neither the KEEPALIVE nor the second
    # transaction (which the first waits for) would ever be read.
    second_done = threading.Event()

    def first(stub: ChaincodeStub) -> str:
        stub.get_state("a")  # a worker reads its own reply, then parks the token
        assert second_done.wait(WAIT), "nobody read the second transaction"
        return "first"

    def second(stub: ChaincodeStub) -> str:
        value = stub.get_state("b").decode()
        second_done.set()
        return value

    h = make(FnChaincode({"first": first, "second": second}))
    h.peer.state = {"a": b"A", "b": b"B"}
    h.peer.start(["first"], txid="tx-1")
    while not h.peer.requests("tx-1"):
        threading.Event().wait(0.001)
    h.peer.send(M(type=M.KEEPALIVE, txid="k"))
    assert h.peer.unsolicited.get(timeout=WAIT).type == M.KEEPALIVE
    h.peer.start(["second"], txid="tx-2")
    assert payload_of(h.peer.result("tx-2")) == "B"
    assert payload_of(h.peer.result("tx-1")) == "first"


def test_replies_in_reverse_order_reach_every_waiter(make: Any) -> None:
    # All 20 requests are outstanding before the peer answers any, newest first: whichever
    # worker holds the read token must deliver the others' replies, and pass the token on
    # when its own arrives, until every waiter has its reply.
    n = 20
    held = {f"k{i}": threading.Event() for i in range(n)}

    def get(stub: ChaincodeStub, key: str) -> str:
        return stub.get_state(key).decode()

    h = make(FnChaincode({"get": get}))
    h.peer.state = {k: k.upper().encode() for k in held}
    h.peer.hold.update(held)
    for i in range(n):
        h.peer.start(["get", f"k{i}"], txid=f"tx{i:02d}")
    got = [parse(shim_pb.GetState, h.peer.held.get(timeout=WAIT).payload).key for _ in range(n)]
    for key in reversed(sorted(got, key=lambda k: int(k[1:]))):
        held[key].set()
        threading.Event().wait(0.002)  # let the answer go out before the next one
    for i in range(n):
        assert payload_of(h.peer.result(f"tx{i:02d}")) == f"K{i}"


def test_closing_stream_fails_every_waiter_whoever_reads(make: Any) -> None:
    n = 12
    outcome: queue.Queue[BaseException | bytes] = queue.Queue()

    def waits(stub: ChaincodeStub) -> str:
        try:
            outcome.put(stub.get_state("slow"))
        except ChaincodeRequestError as exc:
            outcome.put(exc)
        return "done"

    release = threading.Event()
    h = make(FnChaincode({"waits": waits}))
    h.peer.hold["slow"] = release
    for i in range(n):
        h.peer.start(["waits"], txid=f"tx-{i}")
    for _ in range(n):
        h.peer.held.get(timeout=WAIT)
    h.peer_stream.close()
    for _ in range(n):
        exc = outcome.get(timeout=WAIT)
        assert isinstance(exc, ChaincodeRequestError) and str(exc) == "connection to peer lost"
    h.join()
    release.set()
    assert h.handler.error is None


# ---------------------------------------------------------------------------- greenlets

greenlets_only = pytest.mark.parametrize("make", ["greenlets"], indirect=True)


@greenlets_only
def test_greenlets_run_every_transaction_on_one_thread_each_with_its_own_replies(
    make: Any,
) -> None:
    n = 40
    held = {f"k{i}": threading.Event() for i in range(n)}
    threads: set[int] = set()

    def work(stub: ChaincodeStub, i: str) -> list[str]:
        threads.add(threading.get_ident())
        first = stub.get_state(f"k{i}").decode()
        stub.put_state(f"out{i}", f"{first}-{stub.get_txid()}")
        threads.add(threading.get_ident())
        return [first, stub.get_txid()]

    h = make(FnChaincode({"work": work}))
    h.peer.state = {k: k.upper().encode() for k in held}
    h.peer.hold.update(held)
    for i in range(n):
        h.peer.start(["work", str(i)], txid=f"tx{i:02d}")
    # Every transaction is suspended in its GET_STATE before the peer answers any.
    got = [parse(shim_pb.GetState, h.peer.held.get(timeout=WAIT).payload).key for _ in range(n)]
    assert sorted(got) == sorted(held)
    for key in random.Random(7).sample(got, n):
        held[key].set()
    for i in range(n):
        assert payload_of(h.peer.result(f"tx{i:02d}")) == [f"K{i}", f"tx{i:02d}"]
        assert h.peer.state[f"out{i}"] == f"K{i}-tx{i:02d}".encode()
    assert threads == {h.thread.ident}


@greenlets_only
def test_greenlets_stub_used_from_another_thread_is_refused(make: Any) -> None:
    def elsewhere(stub: ChaincodeStub) -> str:
        outcome: list[BaseException] = []

        def call() -> None:
            try:
                stub.get_state("a")
            except ChaincodeRequestError as exc:
                outcome.append(exc)

        t = threading.Thread(target=call)
        t.start()
        t.join(WAIT)
        assert outcome, "the call from another thread was not refused"
        return str(outcome[0])

    h = make(FnChaincode({"elsewhere": elsewhere}))
    assert "only on the transaction's own greenlet" in payload_of(h.peer.execute(["elsewhere"]))
    assert h.peer.requests() == []  # nothing was sent


auto_only = pytest.mark.parametrize("make", ["auto"], indirect=True)


@auto_only
def test_auto_a_blocking_transaction_does_not_stall_the_next_ones(make: Any) -> None:
    """Two transactions in turn block their thread (not just their greenlet) until a third
    releases them: each time a new thread must take over reading, or the next transaction
    is never read (with pure greenlets this test hangs). Their replies then reach them on
    threads that no longer read."""
    released = threading.Event()
    blocked = [threading.Event(), threading.Event()]
    threads: dict[str, int] = {}

    def block(stub: ChaincodeStub, i: str) -> list[str]:
        before = stub.get_state(f"k{i}").decode()
        blocked[int(i)].set()
        released.wait(WAIT)
        threads[i] = threading.get_ident()
        stub.put_state(f"out{i}", before)
        return [before, stub.get_state(f"k{i}").decode()]

    def release(stub: ChaincodeStub) -> str:
        released.set()
        threads["release"] = threading.get_ident()
        return stub.get_state("k0").decode()

    h = make(FnChaincode({"block": block, "release": release}))
    h.peer.state = {"k0": b"v0", "k1": b"v1"}
    for i in range(2):
        h.peer.start(["block", str(i)], txid=f"tx{i}")
        assert blocked[i].wait(WAIT), f"transaction {i} was not started"
    assert payload_of(h.peer.execute(["release"], txid="tx-release")) == "v0"
    for i in range(2):
        assert payload_of(h.peer.result(f"tx{i}")) == [f"v{i}", f"v{i}"]
        assert h.peer.state[f"out{i}"] == f"v{i}".encode()
    assert len(set(threads.values())) == 3  # each ran on a thread of its own
    assert payload_of(h.peer.execute(["release"], txid="tx-after")) == "v0"


@auto_only
def test_auto_after_a_block_every_transaction_has_a_thread_of_its_own(make: Any) -> None:
    """Once a transaction has blocked, a later one that blocks must not hold up one that is
    waiting for the peer meanwhile: each now runs on a thread of its own."""
    release = [threading.Event(), threading.Event()]
    blocked = [threading.Event(), threading.Event()]

    def block(stub: ChaincodeStub, i: str) -> str:
        blocked[int(i)].set()
        release[int(i)].wait(WAIT)
        return stub.get_state("k").decode()

    def read(stub: ChaincodeStub) -> str:
        return stub.get_state("held").decode()

    h = make(FnChaincode({"block": block, "read": read}))
    h.peer.state = {"k": b"v", "held": b"h"}
    h.peer.start(["block", "0"], txid="tx0")  # the first block: threads from now on
    assert blocked[0].wait(WAIT)
    held = threading.Event()
    h.peer.hold["held"] = held
    h.peer.start(["read"], txid="tx-read")
    h.peer.held.get(timeout=WAIT)  # tx-read waits for the peer's answer
    h.peer.start(["block", "1"], txid="tx1")
    assert blocked[1].wait(WAIT)
    held.set()  # answered while tx1 still blocks
    assert payload_of(h.peer.result("tx-read")) == "h"
    for i in range(2):
        release[i].set()
        assert payload_of(h.peer.result(f"tx{i}")) == "v"


@auto_only
def test_auto_stub_used_from_another_thread_waits_there(make: Any) -> None:
    def elsewhere(stub: ChaincodeStub) -> str:
        got: list[bytes] = []
        t = threading.Thread(target=lambda: got.append(stub.get_state("a")))
        t.start()
        t.join(WAIT)
        return got[0].decode() + stub.get_state("a").decode()

    h = make(FnChaincode({"elsewhere": elsewhere}))
    h.peer.state["a"] = b"A"
    assert payload_of(h.peer.execute(["elsewhere"])) == "AA"


class FakeProbe:
    """A :data:`~actors.shim.handler.ThreadProbe` that reports what the test scripts."""

    def __init__(self, state: str = "R", cpu_per_look: float = 0.0) -> None:
        self.state, self.cpu_per_look, self.cpu = state, cpu_per_look, 0.0
        self.looks = 0

    def __call__(self, native_id: int, cpu_clock: int) -> tuple[str, float]:
        self.looks += 1
        self.cpu += self.cpu_per_look
        return self.state, self.cpu


def watchdog_engine(probe: Any) -> Any:
    """An auto engine (not run) and a lane for its :meth:`_stalled` to judge."""
    from actors.shim import handler as shim_handler

    a, _ = multiprocessing.Pipe()
    handler = ShimHandler(PipeStream(a), FnChaincode({}), "cc")
    engine = shim_handler._AutoEngine(handler, handler._engine._greenlet, 4, probe=probe)
    lane = shim_handler._Lane()
    lane.native_id = threading.get_native_id()
    return engine, lane


def test_auto_watchdog_waits_for_a_descheduled_reader() -> None:
    """Runnable without CPU progress (state R): not stalled for _PATIENCE looks, then it is."""
    from actors.shim.handler import _PATIENCE, _STALL

    probe = FakeProbe("R", cpu_per_look=_STALL / 10)
    engine, lane = watchdog_engine(probe)
    assert not engine._stalled(lane, same=False)  # a new dispatch: the baseline
    verdicts = [bool(engine._stalled(lane, same=True)) for _ in range(_PATIENCE + 1)]
    assert verdicts == [False] * _PATIENCE + [True]  # (d): the bound still hands over
    assert probe.looks == _PATIENCE + 2
    assert not engine._stalled(lane, same=False)  # the next dispatch starts afresh
    assert not engine._stalled(lane, same=True)


@pytest.mark.parametrize("state", ["S", "D"])
def test_auto_watchdog_hands_over_from_a_sleeping_reader(state: str) -> None:
    engine, lane = watchdog_engine(FakeProbe(state))
    assert not engine._stalled(lane, same=False)
    assert engine._stalled(lane, same=True) == f"state {state}, 0.0 ms CPU since the last look"


def test_auto_watchdog_hands_over_from_a_computing_reader() -> None:
    from actors.shim.handler import _STALL

    engine, lane = watchdog_engine(FakeProbe("R", cpu_per_look=_STALL / 2))
    assert not engine._stalled(lane, same=False)
    assert engine._stalled(lane, same=True) == (
        f"state R, {_STALL / 2 * 1e3:.1f} ms CPU since the last look"
    )


def test_auto_watchdog_without_a_probe_hands_over_at_the_second_look() -> None:
    """Where the OS cannot tell (no probe, or it fails): the rule before probes."""

    def failing(native_id: int, cpu_clock: int) -> tuple[str, float]:
        raise OSError("no /proc here")

    for probe in (None, failing):
        engine, lane = watchdog_engine(probe)
        assert not engine._stalled(lane, same=False)
        assert engine._stalled(lane, same=True)


def test_auto_watchdog_default_probe_tells_sleeping_from_computing() -> None:
    """The /proc + CPU clock probe on real threads: one asleep in an Event's wait shows S and
    no CPU used, one spinning in Python shows R and CPU used."""
    from actors.shim.handler import _DEFAULT_PROBE

    if _DEFAULT_PROBE is None:
        assert not sys.platform.startswith("linux"), "Linux must have the default probe"
        return
    stop, started = threading.Event(), threading.Event()
    ids: dict[str, tuple[int, int]] = {}

    def run(name: str, spin: bool) -> None:
        ids[name] = threading.get_native_id(), time.pthread_getcpuclockid(threading.get_ident())
        started.set()
        while spin and not stop.is_set():
            pass
        stop.wait()

    threads = [threading.Thread(target=run, args=("sleeper", False), daemon=True)]
    threads[0].start()
    try:
        assert started.wait(WAIT)
        # Bounded by the pytest timeout: the sleeper soon sleeps in stop.wait() for good
        # (it may show S for a moment before, while it waits for the GIL).
        before = None
        while (sample := _DEFAULT_PROBE(*ids["sleeper"])) != before or sample[0] != "S":
            before = sample
            stop.wait(0.01)
        started.clear()
        threads.append(threading.Thread(target=run, args=("spinner", True), daemon=True))
        threads[1].start()
        assert started.wait(WAIT)
        first = _DEFAULT_PROBE(*ids["spinner"])
        # Bounded by the pytest timeout, as the sleeper's loop.
        while (sample := _DEFAULT_PROBE(*ids["spinner"]))[1] == first[1] or sample[0] != "R":
            stop.wait(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(WAIT)


@auto_only
def test_auto_a_reader_that_never_seems_to_progress_still_hands_over(make: Any) -> None:
    """(d) end to end: a probe that always reports a descheduled reader (R, no CPU) must not
    let a blocking transaction stall the chaincode for good."""
    released = threading.Event()
    probe = FakeProbe("R")

    def block(stub: ChaincodeStub) -> str:
        released.wait(WAIT)
        return stub.get_state("a").decode()

    def release(stub: ChaincodeStub) -> str:
        released.set()
        return "released"

    h = make(FnChaincode({"block": block, "release": release}))
    h.handler._engine._probe = probe
    h.peer.state["a"] = b"A"
    h.peer.start(["block"], txid="tx-block")
    assert payload_of(h.peer.execute(["release"], txid="tx-release")) == "released"
    assert payload_of(h.peer.result("tx-block")) == "A"
    assert probe.looks > 0  # the watchdog asked the probe


def test_auto_runs_as_threads_without_greenlet_or_a_batching_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from actors.shim import handler as shim_handler

    chaincode = FnChaincode({})
    assert chaincode.concurrency == "auto"  # the default
    a, _ = multiprocessing.Pipe()
    assert isinstance(ShimHandler(PipeStream(a), chaincode, "cc")._engine, shim_handler._AutoEngine)

    class PlainStream:  # what a gRPC stream offers: no frames of several messages
        def send(self, msg: ChaincodeMessage) -> None: ...
        def recv(self) -> ChaincodeMessage: ...
        def close(self) -> None: ...

    plain = ShimHandler(PlainStream(), chaincode, "cc")  # type: ignore[arg-type]
    assert isinstance(plain._engine, shim_handler._ThreadEngine)
    monkeypatch.setitem(sys.modules, "greenlet", None)  # import greenlet raises ImportError
    fallback = ShimHandler(PipeStream(a), chaincode, "cc")
    assert isinstance(fallback._engine, shim_handler._ThreadEngine)
    chaincode.concurrency = "greenlets"
    with pytest.raises(ValueError, match="needs the greenlet package"):
        ShimHandler(PipeStream(a), chaincode, "cc")


def test_unknown_concurrency_is_refused() -> None:
    chaincode = FnChaincode({})
    chaincode.concurrency = "processes"
    a, _ = multiprocessing.Pipe()
    with pytest.raises(ValueError, match="concurrency must be one of"):
        ShimHandler(PipeStream(a), chaincode, "mycc")


@greenlets_only
def test_greenlets_are_reused_between_transactions_and_ended_at_close(make: Any) -> None:
    import greenlet

    seen: list[Any] = []

    def where(stub: ChaincodeStub) -> str:
        seen.append(greenlet.getcurrent())
        return stub.get_state("k").decode()

    h = make(FnChaincode({"where": where}))
    h.peer.state["k"] = b"v"
    for i in range(3):
        assert payload_of(h.peer.execute(["where"], txid=f"tx{i}")) == "v"
    assert len({id(g) for g in seen}) == 1  # one worker, parked between transactions
    h.close()
    assert seen[0].dead
