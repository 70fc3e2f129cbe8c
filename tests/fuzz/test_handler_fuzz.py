"""Property-based fuzzing of the peer-side Handler over both transports (pipe and gRPC).

One long-lived dev-mode ChaincodeSupport per module, with a healthy fake chaincode registered
that answers its transactions correctly. Each hypothesis example opens a fresh connection,
maybe registers it, maybe starts a real transaction on it, then sends a generated sequence of
ChaincodeMessages (any type number, live or random txids and channels, valid shim payloads or
random bytes, optional proposal/event) and raw frames (random bytes, mutated valid frames).
After every example:

* every message that must be answered is answered (a reply with its txid and channel_id, or
  REGISTERED/READY) or ends the connection, within seconds: nothing hangs;
* the fuzz connection is either still usable (a fresh transaction completes) or closed, and
  once closed its in-flight transaction has failed and its Handler actor has stopped;
* the healthy chaincode still completes a put/get round trip through execute and commit, and
  ``support.status()`` still answers: only the offending connection is affected;
* no exception escaped into a thread, and no actor crashed (no ERROR log records).

Examples are random locally and derandomized when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import grpc
import msgpack
import pykka
import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from actors.config import Config
from actors.errors import ChaincodeError
from actors.ledger import ValidationCode
from actors.support import ChaincodeSupport
from actors.transports import ConnectionClosed, MalformedMessage
from actors.transports.grpc import GrpcStream, client_options
from actors.transports.pipe import PipeStream, encode
from protos.peer import chaincode_shim_pb2 as shim
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.chaincode_pb2 import ChaincodeID, ChaincodeInput, ChaincodeSpec
from protos.peer.proposal_pb2 import SignedProposal
from protos.peer.proposal_response_pb2 import Response
from tests.helpers import recv_within, wait_for

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

CM = shim.ChaincodeMessage
WAIT = 5.0  # seconds; only ever reached when something is broken
CHANNEL = "ch"
OTHER_CHANNEL = "ch2"  # joined, so cross-channel INVOKE_CHAINCODE gets past the ledger lookup
HEALTHY = "healthy"
MAX_MESSAGE = 32 * 1024
SEEDED_KEYS = ("a", "b", "c", "d", "e", "f", "g", "\x00obj\x00x\x00")

# Placeholders resolved when an item is sent (a value only known at run time).
LIVE = "<live-txid>"  # the txid of the real transaction in flight on the fuzz connection
SELF = "<self>"  # the fuzz connection's own chaincode name
QUERY = "<query-id>"  # the id of the last query the peer opened for the fuzz connection

CI = bool(os.environ.get("CI"))
SETTINGS: dict[str, Any] = {
    "deadline": None,
    "derandomize": CI,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
if CI:
    SETTINGS["database"] = None

# Requests the peer serves in READY (a reply carrying the request's txid and channel_id).
SERVED = frozenset(
    {
        CM.GET_STATE,
        CM.PUT_STATE,
        CM.DEL_STATE,
        CM.INVOKE_CHAINCODE,
        CM.GET_STATE_BY_RANGE,
        CM.GET_QUERY_RESULT,
        CM.QUERY_STATE_NEXT,
        CM.QUERY_STATE_CLOSE,
        CM.GET_HISTORY_FOR_KEY,
        CM.GET_STATE_METADATA,
        CM.PUT_STATE_METADATA,
        CM.GET_PRIVATE_DATA_HASH,
        CM.PURGE_PRIVATE_DATA,
        CM.WRITE_BATCH_STATE,
        CM.GET_STATE_MULTIPLE,
    }
)
# Never answered: KEEPALIVE is ignored; COMPLETED/ERROR end a transaction (or are ignored).
# Anything else must be answered or close the connection.
UNANSWERED = frozenset({CM.KEEPALIVE, CM.COMPLETED, CM.ERROR})
QUERIES = frozenset({CM.GET_STATE_BY_RANGE, CM.GET_HISTORY_FOR_KEY, CM.QUERY_STATE_NEXT})


# ------------------------------------------------------------------------------- harness


class HealthyChaincode:
    """A well-behaved chaincode on a pipe, answering on its own thread.

    ``put k v`` writes through PUT_STATE, ``get k`` reads through GET_STATE and returns the
    value; anything else (e.g. a fuzzed INVOKE_CHAINCODE landing here) completes at once.
    """

    def __init__(self, support: ChaincodeSupport) -> None:
        peer_end, mine = multiprocessing.Pipe()
        self.stream = PipeStream(mine)
        self.handler = support.serve_stream(PipeStream(peer_end, max_frame=MAX_MESSAGE))
        self.stream.send(
            CM(type=CM.REGISTER, payload=ChaincodeID(name=HEALTHY).SerializeToString())
        )
        assert recv_within(self.stream, WAIT).type == CM.REGISTERED
        assert recv_within(self.stream, WAIT).type == CM.READY
        self.unexpected: list[CM] = []
        self._pending: dict[tuple[str, str], bytes] = {}
        self._thread = threading.Thread(target=self._serve, name="healthy-cc", daemon=True)
        self._thread.start()

    def _send(self, mtype: int, key: tuple[str, str], payload: bytes | Message = b"") -> None:
        if isinstance(payload, Message):
            payload = payload.SerializeToString()
        self.stream.send(CM(type=mtype, payload=payload, channel_id=key[0], txid=key[1]))

    def _complete(self, key: tuple[str, str], status: int, payload: bytes = b"") -> None:
        self._send(CM.COMPLETED, key, Response(status=status, payload=payload))

    def _serve(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                msg = self.stream.recv()
                key = (msg.channel_id, msg.txid)
                if msg.type in (CM.TRANSACTION, CM.INIT):
                    try:
                        args = list(ChaincodeInput.FromString(msg.payload).args)
                    except DecodeError:
                        args = []
                    if len(args) == 3 and args[0] == b"put":
                        self._pending[key] = b"put"
                        self._send(
                            CM.PUT_STATE, key, shim.PutState(key=args[1].decode(), value=args[2])
                        )
                    elif len(args) == 2 and args[0] == b"get":
                        self._pending[key] = b"get"
                        self._send(CM.GET_STATE, key, shim.GetState(key=args[1].decode()))
                    else:
                        self._complete(key, 200, b"echo")
                elif msg.type in (CM.RESPONSE, CM.ERROR) and key in self._pending:
                    kind = self._pending.pop(key)
                    if msg.type == CM.ERROR:
                        self._complete(key, 500, msg.payload)
                    else:
                        self._complete(key, 200, msg.payload if kind == b"get" else b"")
                elif msg.type != CM.KEEPALIVE:
                    self.unexpected.append(msg)

    def close(self) -> None:
        self.stream.close()


@dataclass
class Peer:
    support: ChaincodeSupport
    healthy: HealthyChaincode
    address: str
    thread_errors: list[threading.ExceptHookArgs]
    error_logs: list[logging.LogRecord]
    baseline_actors: int
    baseline_threads: int
    names: Iterator[int] = field(default_factory=itertools.count)


class _ErrorLogs(logging.Handler):
    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        # grpc logs the server's failure to deserialize garbage; that is the expected outcome.
        if not record.name.startswith("grpc"):
            self.sink.append(record)


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    thread_errors: list[threading.ExceptHookArgs] = []
    error_logs: list[logging.LogRecord] = []
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        thread_errors.append(args)
        previous_hook(args)

    threading.excepthook = hook
    log_handler = _ErrorLogs(error_logs)
    logging.getLogger().addHandler(log_handler)
    config = Config(
        mode="dev",
        channels=(CHANNEL, OTHER_CHANNEL),
        execute_timeout=20.0,
        max_message_size=MAX_MESSAGE,
        query_batch_size=3,
        total_query_limit=7,
    )
    support = ChaincodeSupport(config)
    healthy = None
    try:
        listener = support.listen("127.0.0.1:0")
        healthy = HealthyChaincode(support)
        wait_for(lambda: support.status().get(HEALTHY) == "ready", what="healthy chaincode ready")
        yield Peer(
            support,
            healthy,
            listener.dial_address(),
            thread_errors,
            error_logs,
            len(pykka.ActorRegistry.get_all()),
            threading.active_count(),
        )
    finally:
        support.shutdown()
        if healthy is not None:
            healthy.close()
        logging.getLogger().removeHandler(log_handler)
        threading.excepthook = previous_hook


class FuzzConn:
    """The chaincode end of one fuzz connection; a thread collects what the peer sends."""

    def __init__(
        self,
        recv: Callable[[], CM],
        send_frame: Callable[[bytes], None],
        serialize: Callable[[CM], bytes],
        close: Callable[[], None],
    ) -> None:
        self._recv = recv
        self._send_frame = send_frame
        self.serialize = serialize
        self._close = close
        self.received: list[CM] = []
        self.ended = False
        self.end_error: BaseException | None = None
        self._cond = threading.Condition()
        threading.Thread(target=self._drain, name="fuzz-drain", daemon=True).start()

    def _drain(self) -> None:
        try:
            while True:
                msg = self._recv()
                with self._cond:
                    self.received.append(msg)
                    self._cond.notify_all()
        except (ConnectionClosed, MalformedMessage):
            pass
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.end_error = exc
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def send(self, frame: bytes) -> bool:
        """False once the stream is closed."""
        try:
            self._send_frame(frame)
            return True
        except ConnectionClosed:
            return False

    def await_(self, predicate: Callable[[list[CM]], Any], what: str) -> Any:
        """predicate(received) once true; None if the connection ended first; fails on a hang."""
        with self._cond:
            settled = self._cond.wait_for(lambda: predicate(self.received) or self.ended, WAIT)
            assert settled, f"neither {what} nor a closed connection within {WAIT}s"
            return predicate(self.received) or None

    def close(self) -> None:
        self._close()


def open_pipe(peer: Peer) -> tuple[FuzzConn, pykka.ActorRef[Any]]:
    peer_end, mine = multiprocessing.Pipe()
    stream = PipeStream(mine)
    ref = peer.support.serve_stream(PipeStream(peer_end, max_frame=MAX_MESSAGE))
    return FuzzConn(stream.recv, stream.send_frame, encode, stream.close), ref


def open_grpc(peer: Peer) -> FuzzConn:
    channel = grpc.insecure_channel(peer.address, options=client_options())
    grpc.channel_ready_future(channel).result(timeout=WAIT)
    raw = channel.stream_stream(
        "/protos.ChaincodeSupport/Register",
        request_serializer=lambda frame: frame,
        response_deserializer=CM.FromString,
    )
    stream = GrpcStream(peer.address)
    call = raw(stream.outgoing())
    stream.attach(call, call)

    def close() -> None:
        stream.close()
        channel.close()

    return FuzzConn(stream.recv, stream.send, CM.SerializeToString, close)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class Msg:
    """A ChaincodeMessage to send; its payload is serialized when sent (placeholders)."""

    type: int
    txid: str = ""
    channel_id: str = ""
    payload: Message | bytes = b""
    proposal: SignedProposal | None = None
    event: ChaincodeEvent | None = None

    def __repr__(self) -> str:
        name = {v.number: v.name for v in CM.Type.DESCRIPTOR.values}.get(self.type, self.type)
        payload = self.payload
        if isinstance(payload, Message):
            payload = f"{type(payload).__name__}({str(payload).strip()!r})"
        extra = ""
        if self.proposal is not None:
            extra += f", proposal={self.proposal.SerializeToString()!r}"
        if self.event is not None:
            extra += f", event={self.event.SerializeToString()!r}"
        return f"Msg({name}, {self.txid!r}, {self.channel_id!r}, {payload!r}{extra})"


@dataclass(frozen=True)
class Raw:
    """Bytes sent as one frame (pipe) or one gRPC message, as they are."""

    frame: bytes


Item = Msg | Raw


@dataclass(frozen=True)
class Scenario:
    items: tuple[Item, ...]  # the first is usually a REGISTER
    live: tuple[bytes, ...] | None  # args of a real transaction started once registered


short_text = st.text(max_size=6)
keys = st.one_of(st.sampled_from(SEEDED_KEYS), short_text)
collections = st.one_of(st.just(""), st.just(""), st.just("coll"), short_text)
values = st.binary(max_size=8)
txids = st.one_of(st.just(LIVE), st.just(LIVE), st.just(""), st.just("other-tx"), short_text)
channels = st.one_of(
    st.just(CHANNEL), st.just(CHANNEL), st.just(""), st.just(OTHER_CHANNEL), short_text
)
query_ids = st.one_of(st.just(QUERY), st.just(QUERY), st.just(""), short_text)
args = st.lists(st.one_of(st.sampled_from([b"put", b"get", b"x"]), values), max_size=4)
cc_names = st.one_of(
    st.sampled_from(
        [HEALTHY, SELF, f"{HEALTHY}/{OTHER_CHANNEL}", f"{SELF}/{OTHER_CHANNEL}", "nobody", ""]
    ),
    st.text(max_size=10),
)
state_metadata = st.builds(shim.StateMetadata, metakey=short_text, value=values)


def _query_metadata() -> st.SearchStrategy[bytes]:
    meta = st.builds(
        shim.QueryMetadata,
        pageSize=st.integers(-2, 10),
        bookmark=st.one_of(st.just(""), keys),
    )
    return st.one_of(st.just(b""), meta.map(lambda m: m.SerializeToString()), st.binary(max_size=6))


PAYLOADS: dict[int, st.SearchStrategy[Message]] = {
    CM.REGISTER: st.builds(
        ChaincodeID, name=st.one_of(st.sampled_from([SELF, HEALTHY, ""]), short_text)
    ),
    CM.COMPLETED: st.builds(Response, status=st.sampled_from([200, 400, 500]), payload=values),
    CM.GET_STATE: st.builds(shim.GetState, key=keys, collection=collections),
    CM.GET_PRIVATE_DATA_HASH: st.builds(shim.GetState, key=keys, collection=collections),
    CM.PUT_STATE: st.builds(shim.PutState, key=keys, value=values, collection=collections),
    CM.DEL_STATE: st.builds(shim.DelState, key=keys, collection=collections),
    CM.PURGE_PRIVATE_DATA: st.builds(shim.DelState, key=keys, collection=collections),
    CM.GET_STATE_MULTIPLE: st.builds(
        shim.GetStateMultiple, keys=st.lists(keys, max_size=4), collection=collections
    ),
    CM.WRITE_BATCH_STATE: st.builds(
        shim.WriteBatchState,
        rec=st.lists(
            st.builds(
                shim.WriteRecord,
                key=keys,
                value=values,
                collection=collections,
                metadata=state_metadata,
                type=st.sampled_from([0, 9, 10, 21, 23, 7]),
            ),
            max_size=3,
        ),
    ),
    CM.GET_STATE_BY_RANGE: st.builds(
        shim.GetStateByRange,
        startKey=keys,
        endKey=st.one_of(st.just(""), keys),
        collection=collections,
        metadata=_query_metadata(),
    ),
    CM.GET_QUERY_RESULT: st.builds(
        shim.GetQueryResult, query=short_text, collection=collections, metadata=_query_metadata()
    ),
    CM.QUERY_STATE_NEXT: st.builds(shim.QueryStateNext, id=query_ids),
    CM.QUERY_STATE_CLOSE: st.builds(shim.QueryStateClose, id=query_ids),
    CM.GET_HISTORY_FOR_KEY: st.builds(shim.GetHistoryForKey, key=keys),
    CM.GET_STATE_METADATA: st.builds(shim.GetStateMetadata, key=keys, collection=collections),
    CM.PUT_STATE_METADATA: st.builds(
        shim.PutStateMetadata,
        key=keys,
        collection=collections,
        metadata=st.one_of(st.none(), state_metadata),
    ),
    CM.INVOKE_CHAINCODE: st.builds(
        lambda name, args: ChaincodeSpec(chaincode_id=ChaincodeID(name=name), input={"args": args}),
        cc_names,
        args,
    ),
}
KNOWN_TYPES = sorted(v.number for v in CM.Type.DESCRIPTOR.values)


def _weighted(draw: st.DrawFn, *choices: tuple[int, st.SearchStrategy[Any]]) -> Any:
    """Draw from one of ``choices`` (weight, strategy); shrinks towards the first."""
    roll = draw(st.integers(0, sum(weight for weight, _ in choices) - 1))
    for weight, strategy in choices:
        if roll < weight:
            return draw(strategy)
        roll -= weight
    raise AssertionError("unreachable")


@st.composite
def messages(draw: st.DrawFn, mtype: int | None = None) -> Msg:
    if mtype is None:
        # Mostly requests the peer serves (they reach the deepest code); some other known
        # types, protocol violations in most states; some unknown type numbers.
        mtype = _weighted(
            draw,
            (7, st.sampled_from(sorted(SERVED))),
            (2, st.sampled_from(KNOWN_TYPES)),
            (1, st.integers(0, 2**31 - 1)),
        )
    payload: Message | bytes
    if mtype == CM.ERROR:
        payload = draw(st.text(max_size=10)).encode()
    elif mtype in PAYLOADS:
        payload = _weighted(draw, (9, PAYLOADS[mtype]), (1, st.binary(max_size=12)))
    else:
        payload = draw(st.binary(max_size=12))
    proposal = draw(
        st.one_of(
            st.none(),
            st.builds(SignedProposal, proposal_bytes=values, signature=values),
        )
    )
    event = draw(
        st.one_of(st.none(), st.builds(ChaincodeEvent, event_name=short_text, payload=values))
    )
    # Usually the live transaction's (txid, channel_id), so requests reach its context.
    txid, channel_id = _weighted(
        draw, (3, st.just((LIVE, CHANNEL))), (1, st.tuples(txids, channels))
    )
    return Msg(mtype, txid, channel_id, payload, proposal, event)


def _mutate(frame: bytes, draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "append"]))
    if not frame:
        return draw(st.binary(min_size=1, max_size=8))
    at = draw(st.integers(0, len(frame) - 1))
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return frame[:at] + bytes([frame[at] ^ (1 << bit)]) + frame[at + 1 :]
    if kind == "truncate":
        return frame[:at]
    if kind == "insert":
        return frame[:at] + draw(st.binary(min_size=1, max_size=4)) + frame[at:]
    return frame + draw(st.binary(min_size=1, max_size=4))


def _static(msg: Msg) -> CM:
    """A Msg as a ChaincodeMessage with its placeholders left in (for mutation only)."""
    return render(msg, SELF, LIVE, QUERY)


msgpack_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        short_text,
        values,
    ),
    lambda children: st.lists(children, max_size=7),
    max_leaves=10,
)


@st.composite
def raw_frames(draw: st.DrawFn, transport: str) -> Raw:
    kind = draw(st.sampled_from(["random", "mutated", "structured", "oversized"]))
    if kind == "random":
        return Raw(draw(st.binary(max_size=32)))
    if kind == "oversized":
        return Raw(b"\x00" * (MAX_MESSAGE + draw(st.integers(1, 64))))
    if kind == "structured" and transport == "pipe":
        # Valid msgpack, wrong shape or types: the envelope decoder must refuse it cleanly.
        value = draw(st.one_of(st.lists(msgpack_values, max_size=8), msgpack_values))
        return Raw(msgpack.packb(value, use_bin_type=True))
    msg = _static(draw(messages()))
    frame = encode(msg) if transport == "pipe" else msg.SerializeToString()
    return Raw(_mutate(frame, draw))


@st.composite
def scenarios(draw: st.DrawFn, transport: str) -> Scenario:
    items: list[Item] = []
    start = draw(st.sampled_from(["self"] * 6 + ["fuzzed", "none"]))
    if start == "self":
        items.append(Msg(CM.REGISTER, payload=ChaincodeID(name=SELF)))
    elif start == "fuzzed":
        items.append(draw(messages(CM.REGISTER)))
    live_args = st.lists(st.sampled_from([b"put", b"k", b"v"]), max_size=3)
    live = _weighted(draw, (3, live_args), (1, st.none()))
    count = draw(st.integers(0, 20))
    for _ in range(count):
        items.append(_weighted(draw, (12, messages()), (1, raw_frames(transport))))
    return Scenario(tuple(items), None if live is None else tuple(live))


# -------------------------------------------------------------------------------- driver


def render(msg: Msg, name: str, live_txid: str, query_id: str) -> CM:
    payload = msg.payload
    if isinstance(payload, Message):
        payload = type(payload).FromString(payload.SerializeToString())
        if isinstance(payload, ChaincodeID) and payload.name == SELF:
            payload.name = name
        elif isinstance(payload, ChaincodeSpec) and payload.chaincode_id.name.startswith(SELF):
            payload.chaincode_id.name = name + payload.chaincode_id.name[len(SELF) :]
        elif isinstance(payload, shim.QueryStateNext | shim.QueryStateClose) and (
            payload.id == QUERY
        ):
            payload.id = query_id
        payload = payload.SerializeToString()
    out = CM(
        type=msg.type,
        txid=live_txid if msg.txid == LIVE else msg.txid,
        channel_id=msg.channel_id,
        payload=payload,
    )
    if msg.proposal is not None:
        out.proposal.CopyFrom(msg.proposal)
    if msg.event is not None:
        out.chaincode_event.CopyFrom(msg.event)
    return out


def seed_namespace(support: ChaincodeSupport, namespace: str) -> None:
    """Committed keys in the fuzz chaincode's namespace, so range queries span batches."""
    ledger = support.ledgers.get(CHANNEL)
    txid = uuid.uuid4().hex
    with ledger.new_simulator(txid) as sim:
        for i, key in enumerate(SEEDED_KEYS):
            sim.put_state(namespace, key, b"%d" % i)
        results = sim.get_results()
    assert ledger.commit(txid, results) is ValidationCode.VALID


def healthy_round_trip(support: ChaincodeSupport) -> None:
    """The healthy chaincode writes through execute + commit and reads the value back."""
    key, value = f"k-{uuid.uuid4().hex[:12]}", uuid.uuid4().bytes
    put = support.execute_async(CHANNEL, None, HEALTHY, [b"put", key.encode(), value])
    result = put.result(WAIT)
    assert result.response.status == 200, result.response
    assert support.commit(CHANNEL, result) is ValidationCode.VALID
    got = support.execute_async(CHANNEL, None, HEALTHY, [b"get", key.encode()]).result(WAIT)
    assert got.response.payload == value


def _reply_to(msg: CM) -> Callable[[CM], bool]:
    ids = (msg.txid, msg.channel_id)
    return lambda m: m.type in (CM.RESPONSE, CM.ERROR) and (m.txid, m.channel_id) == ids


def run_scenario(peer: Peer, conn: FuzzConn, scenario: Scenario) -> None:
    support = peer.support
    name = f"fuzz-{next(peer.names)}"
    live_txid = f"live-{uuid.uuid4().hex[:12]}"
    seed_namespace(support, name)
    registered: str | None = None
    live: Future[Any] | None = None
    query_id = "no-query-yet"
    thread_errors, error_logs = len(peer.thread_errors), len(peer.error_logs)

    for index, item in enumerate(scenario.items):
        if conn.ended:
            break
        start = len(conn.received)
        if isinstance(item, Raw):
            if not conn.send(item.frame):
                break
            continue
        msg = render(item, name, live_txid, query_id)
        if not conn.send(conn.serialize(msg)):
            break
        if msg.type == CM.REGISTER:
            reply = conn.await_(
                lambda r, s=start: next(
                    (m for m in r[s:] if m.type in (CM.REGISTERED, CM.ERROR)), None
                ),
                "an answer to REGISTER",
            )
            if reply is not None and reply.type == CM.REGISTERED:
                assert registered is None, "registered twice on one stream"
                registered = ChaincodeID.FromString(msg.payload).name
                assert conn.await_(
                    lambda r, s=start: any(m.type == CM.READY for m in r[s:]), "READY"
                ), "REGISTERED without READY"
                if index == 0 and scenario.live is not None:
                    live = support.execute_async(CHANNEL, live_txid, registered, scenario.live)
                    sent = conn.await_(
                        lambda r: any(m.txid == live_txid for m in r), "the live TRANSACTION"
                    )
                    assert sent or live.exception(WAIT) is not None
        elif msg.type in SERVED:
            is_reply = _reply_to(msg)
            reply = conn.await_(
                lambda r, s=start, is_reply=is_reply: next(
                    (m for m in r[s:] if is_reply(m) or m.type in (CM.TRANSACTION, CM.INIT)),
                    None,
                ),
                f"an answer to {CM.Type.Name(msg.type)}",
            )
            if (
                reply is not None
                and reply.type == CM.RESPONSE
                and msg.type in QUERIES
                and is_reply(reply)
            ):
                with contextlib.suppress(DecodeError):
                    query_id = shim.QueryResponse.FromString(reply.payload).id or query_id
        elif msg.type not in UNANSWERED:
            # Not a request the peer serves: a protocol violation, which ends the connection.
            conn.await_(lambda r: False, f"the close after {msg.type}")

    # The healthy chaincode is unaffected, whatever state the fuzz connection is in.
    healthy_round_trip(support)
    assert support.status().get(HEALTHY) == "ready"
    assert peer.healthy.handler.is_alive()

    # The fuzz connection is either usable or closed. A GET_STATE outside any transaction gets
    # "no ledger context" on a READY stream and closes any other.
    if not conn.ended:
        start = len(conn.received)
        barrier = CM(type=CM.GET_STATE, txid="barrier", channel_id=CHANNEL)
        barrier.payload = shim.GetState(key="k").SerializeToString()
        if conn.send(conn.serialize(barrier)):
            is_reply = _reply_to(barrier)
            reply = conn.await_(
                lambda r: next((m for m in r[start:] if is_reply(m)), None), "the barrier reply"
            )
            if reply is not None:
                assert reply.type == CM.ERROR and reply.payload.endswith(b"no ledger context")
                assert any(m.type == CM.REGISTERED for m in conn.received), (
                    "a stream served requests without registering"
                )
            if reply is not None and registered is not None:
                # (A mutated raw frame may have registered it under a name we do not know.)
                txid = f"ping-{uuid.uuid4().hex[:12]}"
                ping = support.execute_async(CHANNEL, txid, registered, [b"ping"])
                tx = conn.await_(lambda r: next((m for m in r if m.txid == txid), None), "the ping")
                if tx is not None:
                    assert tx.type == CM.TRANSACTION
                    done = CM(type=CM.COMPLETED, txid=txid, channel_id=CHANNEL)
                    done.payload = Response(status=200, payload=b"pong").SerializeToString()
                    if conn.send(conn.serialize(done)):
                        assert ping.result(WAIT).response.payload == b"pong"
                # Whatever happened, the ping ends (result, or failure with the stream).
                with contextlib.suppress(ChaincodeError):
                    ping.result(WAIT)

    if conn.ended and live is not None:
        # The peer closed the stream: its in-flight transaction has already failed or ended.
        wait_for(live.done, what="the live transaction to end after the stream closed")

    event(f"registered: {registered is not None}; live: {live is not None}")
    event(f"closed by the peer: {conn.ended}")
    for m in conn.received:
        if m.type in (CM.RESPONSE, CM.ERROR):
            event(f"replies: {CM.Type.Name(m.type)}")
    conn.close()
    wait_for(lambda: conn.ended, what="our end of the fuzz stream to close")
    assert conn.end_error is None, repr(conn.end_error)
    if live is not None:
        exc = live.exception(WAIT)  # raises TimeoutError on a hang
        assert exc is None or isinstance(exc, ChaincodeError), repr(exc)
    # The fuzz connection's Handler stops: actors do not pile up across examples.
    wait_for(
        lambda: len(pykka.ActorRegistry.get_all()) <= peer.baseline_actors,
        what="the fuzz connection's Handler to stop",
    )
    wait_for(
        lambda: threading.active_count() <= peer.baseline_threads + 40,
        what="threads of closed connections to end",
    )
    assert peer.healthy.unexpected == []
    assert len(peer.thread_errors) == thread_errors, [a.exc_value for a in peer.thread_errors]
    assert len(peer.error_logs) == error_logs, [r.getMessage() for r in peer.error_logs]


# --------------------------------------------------------------------------------- tests


@settings(max_examples=100, **SETTINGS)
@given(scenario=scenarios("pipe"))
def test_fuzzed_pipe_connection_harms_only_itself(peer: Peer, scenario: Scenario) -> None:
    conn, ref = open_pipe(peer)
    try:
        run_scenario(peer, conn, scenario)
        wait_for(lambda: not ref.is_alive(), what="the Handler to stop")
    finally:
        conn.close()


@settings(max_examples=50, **SETTINGS)
@given(scenario=scenarios("grpc"))
def test_fuzzed_grpc_connection_harms_only_itself(peer: Peer, scenario: Scenario) -> None:
    conn = open_grpc(peer)
    try:
        run_scenario(peer, conn, scenario)
    finally:
        conn.close()


def test_healthy_chaincode_survives_the_module(peer: Peer) -> None:
    healthy_round_trip(peer.support)
    assert peer.thread_errors == []
    assert [r.getMessage() for r in peer.error_logs] == []
