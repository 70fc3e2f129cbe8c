"""Raw ceilings: the same paths as ours with the minimum of code, measured in the same run.

* ``pykka ask``: round trip of an ask to an actor that returns its message.
* ``pipe ping-pong``: one msgpack frame shaped like ours (``[type, txid, channel, payload,
  None, None]``) to a child process over a ``multiprocessing`` Pipe and back.
* :class:`BarePipeInvoke`: a pykka actor sends a transaction frame to a child process over a
  Pipe; a reader thread hands the child's frames to the actor; the child (one thread, a state
  machine keyed by txid) answers with ``rounds`` request frames, each answered by the actor,
  then a completion frame, which resolves the caller's future. Ours adds the TX context
  registry, the FSM, protobuf payloads, the ledger simulator, the shim's concurrency and the
  stub API on top of exactly this.
* ``gRPC ping-pong``: a bytes message over a bidi stream to a child process and back.
* :class:`BareGrpcInvoke`: the same transaction shape as :class:`BarePipeInvoke` over a gRPC
  bidi stream: this process serves ``protos.ChaincodeSupport/Register`` (as our chaincode
  listener does) and the child dials it (as our shim does). Messages are Fabric's
  ``ChaincodeMessage`` protobuf, the wire format any chaincode connection must use, with
  raw bytes as payloads; one reader thread replies directly, no actor.

What a bare invoke carries is a :class:`Shape`, one per workload: its number of state round
trips, and for a workload whose first request returns query results (a range or rich query),
as many key/value records of the same sizes in the first response, packed by the peer side and
decoded by the child with msgpack, and a completion payload as long as the chaincode's result.
Same transport, same round trips, same bytes, minimal code.

Children are started with the ``spawn`` method: a fresh interpreter, independent of the fork
server the system runtime uses (and of its preload list).
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import multiprocessing.connection
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import msgpack
import pykka

TX, REQ, RESP, DONE = 0, 1, 2, 3
CHANNEL = "bench-channel"
_ctx = multiprocessing.get_context("spawn")


Record = tuple[str, str, bytes]
"""One query result's fields, as in ``queryresult.KV``: namespace, key, value."""


@dataclass(frozen=True)
class Shape:
    """What one bare transaction carries: ``rounds`` request/response pairs, the first
    response holding ``records`` when there are any, and a completion payload of ``result``
    bytes."""

    rounds: int
    records: tuple[Record, ...] = ()
    result: int = 2

    @property
    def record_bytes(self) -> int:
        """The records' namespace, key and value bytes (before any framing)."""
        return sum(
            len(ns.encode()) + len(key.encode()) + len(value) for ns, key, value in self.records
        )

    @property
    def label(self) -> str:
        text = f"{self.rounds} round trip{'s' if self.rounds != 1 else ''}"
        if self.records:
            text += (
                f", {len(self.records)} records ({self.record_bytes} B) in the first response, "
                f"{self.result} B result"
            )
        return text


def _txids() -> Any:
    counter = itertools.count(1)
    return lambda: f"{next(counter):032x}"  # as long as our uuid4().hex txids


# -- pykka ask --------------------------------------------------------------------------------


class _Echo(pykka.ThreadingActor):
    use_daemon_thread = True

    def on_receive(self, message: Any) -> Any:
        return message


class PykkaAsk:
    name = "pykka ask round trip"

    def __init__(self) -> None:
        self.ref = _Echo.start()
        self.pids: list[int] = []  # nothing outside this process

    def op(self) -> Any:
        return self.ref.ask(1)

    def close(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.ref.stop(timeout=5)


# -- pipe ping-pong ---------------------------------------------------------------------------


def _pipe_echo_child(conn: multiprocessing.connection.Connection) -> None:
    packb, unpackb = msgpack.Packer(use_bin_type=True).pack, msgpack.unpackb
    recv, send = conn.recv_bytes, conn.send_bytes
    with contextlib.suppress(EOFError, OSError):
        while True:
            send(packb(unpackb(recv())))


class _Child:
    """A spawned child process and the pipe to it."""

    def __init__(self, target: Any, *args: Any) -> None:
        self.conn, child_conn = _ctx.Pipe(duplex=True)
        self.process = _ctx.Process(target=target, args=(child_conn, *args), daemon=True)
        self.process.start()
        child_conn.close()

    @property
    def pids(self) -> list[int]:
        return [self.process.pid] if self.process.pid else []

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        self.process.join(5)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(5)


class PipePingPong(_Child):
    name = "pipe ping-pong (msgpack frame)"

    def __init__(self) -> None:
        super().__init__(_pipe_echo_child)
        packb, unpackb = msgpack.Packer(use_bin_type=True).pack, msgpack.unpackb
        frame = [TX, "0" * 32, CHANNEL, b"\n\x03get\n\x07key0001", None, None]
        send, recv = self.conn.send_bytes, self.conn.recv_bytes

        def op() -> Any:
            send(packb(frame))
            return unpackb(recv())

        self.op = op


# -- bare actor + pipe + child "invoke" -------------------------------------------------------


def _bare_pipe_child(conn: multiprocessing.connection.Connection) -> None:
    """The chaincode side: one thread, answers TX with ``rounds`` requests, then DONE with a
    result of the size asked (empty if the records expected did not come). Unpacking a frame
    decodes the records a response carries."""
    packb, unpackb = msgpack.Packer(use_bin_type=True).pack, msgpack.unpackb
    recv, send = conn.recv_bytes, conn.send_bytes
    # txid -> (requests left, result size, records the next response carries)
    left: dict[str, tuple[int, int, int]] = {}
    with contextlib.suppress(EOFError, OSError):
        while True:
            mtype, txid, channel, payload = unpackb(recv())
            if mtype == TX:
                rounds, result, records = payload
            elif mtype == RESP:
                rounds, result, records = left.pop(txid)
                if records:
                    result = result if len(payload) == records else 0
                    records = 0
            else:
                continue
            if rounds:
                left[txid] = (rounds - 1, result, records)
                send(packb([REQ, txid, channel, b"key0001"]))
            else:
                send(packb([DONE, txid, channel, b"r" * result]))


class _BareHandler(pykka.ThreadingActor):
    """The peer side: sends transactions, answers requests, resolves futures."""

    use_daemon_thread = True

    def __init__(self, conn: multiprocessing.connection.Connection) -> None:
        super().__init__()
        # txid -> [future, the records the next response carries (the first one only)]
        self.pending: dict[str, list[Any]] = {}
        self.send = conn.send_bytes
        self.packb = msgpack.Packer(use_bin_type=True).pack

    def on_receive(self, message: Any) -> None:
        mtype, txid, channel, payload = message
        if mtype == REQ:
            entry = self.pending[txid]
            records = entry[1]
            if records:
                entry[1] = ()
                self.send(self.packb([RESP, txid, channel, records]))
            else:
                self.send(self.packb([RESP, txid, channel, b"value"]))
        elif mtype == DONE:
            self.pending.pop(txid)[0].set_result(payload)
        elif mtype == TX:
            fut, shape = payload
            records = shape.records
            self.pending[txid] = [fut, records]
            self.send(self.packb([TX, txid, channel, [shape.rounds, shape.result, len(records)]]))


def _bare_reader(conn: multiprocessing.connection.Connection, ref: pykka.ActorRef[Any]) -> None:
    unpackb, recv, tell = msgpack.unpackb, conn.recv_bytes, ref.tell
    with contextlib.suppress(EOFError, OSError, pykka.ActorDeadError):
        while True:
            tell(unpackb(recv()))


class BarePipeInvoke(_Child):
    transport = "pipe"
    name = "bare actor+pipe invoke"

    def __init__(self) -> None:
        super().__init__(_bare_pipe_child)
        self.ref = _BareHandler.start(self.conn)
        self._reader = threading.Thread(
            target=_bare_reader, args=(self.conn, self.ref), name="bench-bare-reader", daemon=True
        )
        self._reader.start()
        self._txid = _txids()

    def issue(self, shape: Shape) -> Future[Any]:
        fut: Future[Any] = Future()
        self.ref.tell((TX, self._txid(), CHANNEL, (fut, shape)))
        return fut

    def close(self) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.ref.stop(timeout=5)
        super().close()
        self._reader.join(5)


# -- gRPC -------------------------------------------------------------------------------------

_PING_METHOD = "/bench.Echo/Chat"
_REGISTER_METHOD = "/protos.ChaincodeSupport/Register"


def _identity(data: bytes) -> bytes:
    return data


def _grpc_echo_child(conn: multiprocessing.connection.Connection) -> None:
    """Serve a bidi echo of raw bytes; tell the parent the port; run until the pipe closes."""
    from concurrent.futures import ThreadPoolExecutor

    import grpc

    def chat(requests: Any, context: Any) -> Any:
        yield from requests

    server = grpc.server(ThreadPoolExecutor(4))
    handler = grpc.stream_stream_rpc_method_handler(
        chat, request_deserializer=_identity, response_serializer=_identity
    )
    service, method = _PING_METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(service, {method: handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    conn.send(port)
    with contextlib.suppress(EOFError, OSError):
        conn.recv()
    server.stop(0)


class GrpcPingPong(_Child):
    name = "gRPC bidi ping-pong"

    def __init__(self) -> None:
        import grpc

        super().__init__(_grpc_echo_child)
        if not self.conn.poll(30):
            raise RuntimeError("gRPC echo child did not start")
        port = self.conn.recv()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = self.channel.stream_stream(
            _PING_METHOD, request_serializer=_identity, response_deserializer=_identity
        )
        self._out: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._responses = call(iter(self._out.get, None))
        put, responses = self._out.put, self._responses
        message = b"x" * 64

        def op() -> Any:
            put(message)
            return next(responses)

        self.op = op

    def close(self) -> None:
        self._out.put(None)
        with contextlib.suppress(Exception):
            self._responses.cancel()
        self.channel.close()
        super().close()


def _bare_grpc_child(conn: multiprocessing.connection.Connection, address: str) -> None:
    """The chaincode side over gRPC: dial, then one thread answers as in the pipe child (the
    records come msgpack-encoded in a response's payload)."""
    import grpc

    from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM

    channel = grpc.insecure_channel(address)
    call = channel.stream_stream(
        _REGISTER_METHOD,
        request_serializer=CM.SerializeToString,
        response_deserializer=CM.FromString,
    )
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    put, unpackb = out.put, msgpack.unpackb
    put(CM(type=CM.REGISTER))
    # txid -> (requests left, result size, records the next response carries)
    left: dict[str, tuple[int, int, int]] = {}
    with contextlib.suppress(grpc.RpcError):
        for msg in call(iter(out.get, None)):
            if msg.type == CM.TRANSACTION:
                rounds, result, records = unpackb(msg.payload)
            elif msg.type == CM.RESPONSE:
                rounds, result, records = left.pop(msg.txid)
                if records:
                    result = result if len(unpackb(msg.payload)) == records else 0
                    records = 0
            else:
                continue
            if rounds:
                left[msg.txid] = (rounds - 1, result, records)
                put(CM(type=CM.GET_STATE, txid=msg.txid, channel_id=msg.channel_id, payload=b"k"))
            else:
                put(
                    CM(
                        type=CM.COMPLETED,
                        txid=msg.txid,
                        channel_id=msg.channel_id,
                        payload=b"r" * result,
                    )
                )
    put(None)
    channel.close()


class BareGrpcInvoke:
    transport = "grpc"
    name = "bare gRPC invoke"

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM

        self._cm = CM
        self._packb = msgpack.Packer(use_bin_type=True).pack
        # txid -> [future, the records the next response carries (the first one only)]
        self.pending: dict[str, list[Any]] = {}
        self._out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._connected = threading.Event()
        self._txid = _txids()
        self.server = grpc.server(ThreadPoolExecutor(8))
        handler = grpc.stream_stream_rpc_method_handler(
            self._register,
            request_deserializer=CM.FromString,
            response_serializer=CM.SerializeToString,
        )
        service, method = _REGISTER_METHOD.strip("/").split("/")
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, {method: handler})]
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.child = _Child(_bare_grpc_child, f"127.0.0.1:{port}")
        if not self._connected.wait(30):
            self.close()
            raise RuntimeError("bare gRPC child did not connect")

    @property
    def pids(self) -> list[int]:
        return self.child.pids

    def _register(self, requests: Any, context: Any) -> Any:
        threading.Thread(
            target=self._read, args=(requests,), name="bench-bare-grpc-reader", daemon=True
        ).start()
        self._connected.set()
        yield from iter(self._out.get, None)

    def _read(self, requests: Any) -> None:
        CM, put, pending, packb = self._cm, self._out.put, self.pending, self._packb
        with contextlib.suppress(Exception):
            for msg in requests:
                if msg.type == CM.GET_STATE:
                    entry = pending[msg.txid]
                    records = entry[1]
                    if records:
                        entry[1] = ()
                        payload = packb(records)
                    else:
                        payload = b"value"
                    put(
                        CM(
                            type=CM.RESPONSE,
                            txid=msg.txid,
                            channel_id=msg.channel_id,
                            payload=payload,
                        )
                    )
                elif msg.type == CM.COMPLETED:
                    pending.pop(msg.txid)[0].set_result(msg.payload)

    def issue(self, shape: Shape) -> Future[Any]:
        fut: Future[Any] = Future()
        txid = self._txid()
        self.pending[txid] = [fut, shape.records]
        payload = self._packb([shape.rounds, shape.result, len(shape.records)])
        self._out.put(
            self._cm(type=self._cm.TRANSACTION, txid=txid, channel_id=CHANNEL, payload=payload)
        )
        return fut

    def close(self) -> None:
        self._out.put(None)
        self.server.stop(1).wait(5)
        self.child.close()


BARE_INVOKES: dict[str, type[BarePipeInvoke] | type[BareGrpcInvoke]] = {
    "pipe": BarePipeInvoke,
    "grpc": BareGrpcInvoke,
}
"""The bare transaction path for each transport a runtime can use."""
