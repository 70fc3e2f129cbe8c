"""The peer's pipe poller: one thread reads many pipes, never blocked by one of them."""

from __future__ import annotations

import multiprocessing
import queue
import struct
from typing import Any

import pytest

from actors.transports import ConnectionClosed, MalformedMessage
from actors.transports.pipe import PipeStream, encode
from actors.transports.poller import PipePoller
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM

pytestmark = pytest.mark.timeout(30)
WAIT = 10.0


class Pipe:
    """A polled peer end and the chaincode end that writes to it."""

    def __init__(self, poller: PipePoller, max_frame: int = 1 << 20, keep: bool = True) -> None:
        a, b = multiprocessing.Pipe()
        self.peer, self.cc = PipeStream(a, max_frame), PipeStream(b)
        self.got: queue.Queue[Any] = queue.Queue()
        self.keep = keep
        poller.add(self.peer, self._feed)

    def _feed(self, got: Any) -> bool:
        self.got.put(got)
        return self.keep

    def next(self) -> Any:
        return self.got.get(timeout=WAIT)


@pytest.fixture
def poller() -> Any:
    p = PipePoller()
    yield p
    p.stop()


def test_half_a_frame_on_one_pipe_holds_up_no_other(poller: PipePoller) -> None:
    slow, fast = Pipe(poller), Pipe(poller)
    frame = encode(CM(type=CM.GET_STATE, txid="slow", payload=b"x" * 100))
    slow.cc.send_frame(frame)  # whole, then cut: send the header and half by hand below
    assert slow.next() == [CM(type=CM.GET_STATE, txid="slow", payload=b"x" * 100)]
    raw = struct.pack("!i", len(frame)) + frame
    slow.cc._sock.sendall(raw[:50])
    fast.cc.send(CM(type=CM.PUT_STATE, txid="fast"))
    assert fast.next() == [CM(type=CM.PUT_STATE, txid="fast")]
    assert slow.got.empty()
    slow.cc._sock.sendall(raw[50:])
    assert slow.next() == [CM(type=CM.GET_STATE, txid="slow", payload=b"x" * 100)]


def test_frames_larger_than_one_read_arrive_whole(poller: PipePoller) -> None:
    pipe = Pipe(poller, max_frame=4 << 20)
    sent = [CM(type=CM.RESPONSE, txid=f"t{i}", payload=bytes([i]) * 700_000) for i in range(3)]
    for msg in sent:
        pipe.cc.send(msg)  # more than the socket buffer: a writer thread sends the rest
    got: list[CM] = []
    while len(got) < len(sent):
        got.extend(pipe.next())
    assert got == sent


def test_messages_before_the_end_are_served_then_the_end_once(poller: PipePoller) -> None:
    pipe = Pipe(poller)
    sent = [CM(type=CM.COMPLETED, txid=f"t{i}") for i in range(3)]
    for msg in sent:
        pipe.cc.send(msg)
    pipe.cc.close()
    got: list[CM] = []
    while len(got) < 3:
        got.extend(pipe.next())
    assert got == sent
    assert isinstance(pipe.next(), ConnectionClosed)
    assert pipe.got.empty()
    pipe.peer.close()


@pytest.mark.parametrize("frame", [b"\xc1", b"x" * 2048])
def test_a_bad_or_oversized_frame_ends_that_stream(poller: PipePoller, frame: bytes) -> None:
    bad, good = Pipe(poller, max_frame=1024), Pipe(poller)
    bad.cc.send_frame(frame)
    assert isinstance(bad.next(), MalformedMessage)
    good.cc.send(CM(type=CM.KEEPALIVE))
    assert good.next() == [CM(type=CM.KEEPALIVE)]


def test_a_reader_that_stops_is_read_no_more_and_its_stream_closes(poller: PipePoller) -> None:
    pipe = Pipe(poller, keep=False)
    pipe.cc.send(CM(type=CM.KEEPALIVE))
    assert pipe.next() == [CM(type=CM.KEEPALIVE)]
    pipe.cc.send(CM(type=CM.KEEPALIVE))
    with pytest.raises(queue.Empty):
        pipe.got.get(timeout=0.2)
    pipe.peer.close()
    assert pipe.peer._conn.closed  # released: the poller no longer holds its fd


def test_stop_ends_the_streams_still_read(poller: PipePoller) -> None:
    pipe = Pipe(poller)
    pipe.cc.send(CM(type=CM.KEEPALIVE))
    assert pipe.next() == [CM(type=CM.KEEPALIVE)]
    poller.stop()
    assert isinstance(pipe.next(), ConnectionClosed)
    with pytest.raises(RuntimeError, match="stopped"):
        Pipe(poller)
