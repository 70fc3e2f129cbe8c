"""The pipe transport: msgpack frames carry ChaincodeMessages exactly; bad frames are refused."""

from __future__ import annotations

import multiprocessing
import threading

import msgpack
import pytest

from actors.transports import ConnectionClosed, MalformedMessage
from actors.transports.pipe import PipeStream, decode, decode_frame, encode, encode_batch
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM


def _pair(max_frame: int | None = None) -> tuple[PipeStream, PipeStream]:
    a, b = multiprocessing.Pipe()
    if max_frame is None:
        return PipeStream(a), PipeStream(b)
    return PipeStream(a, max_frame), PipeStream(b, max_frame)


def test_round_trip_keeps_every_field() -> None:
    msg = CM(type=CM.COMPLETED, payload=b"\x00\x01", txid="tx", channel_id="ch")
    msg.proposal.proposal_bytes = b"proposal"
    msg.proposal.signature = b"sig"
    msg.chaincode_event.event_name = "E"
    msg.chaincode_event.payload = b"p"
    assert decode(encode(msg)) == msg
    bare = CM(type=CM.REGISTERED)
    assert not decode(encode(bare)).HasField("proposal")


def test_frame_is_a_msgpack_array_of_fabric_fields() -> None:
    msg = CM(type=CM.GET_STATE, payload=b"pl", txid="t", channel_id="c")
    assert msgpack.unpackb(encode(msg)) == [CM.GET_STATE, "t", "c", b"pl", None, None]


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\x00garbage",
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"type": 1}),
        msgpack.packb([1, 5, "c", b"", None, None]),  # txid must be a str
        msgpack.packb([1, "t", "c", b"", b"\xff\xff not a proposal", None]),
    ],
)
def test_malformed_frames_raise(frame: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(frame)


def test_streams_send_and_receive_and_refuse_garbage() -> None:
    left, right = _pair()
    left.send(CM(type=CM.REGISTER, payload=b"x"))
    assert right.recv().type == CM.REGISTER
    left.send_frame(b"\xc1")  # 0xc1 is never valid msgpack
    with pytest.raises(MalformedMessage):
        right.recv()


def test_oversized_frames_are_refused_on_both_sides() -> None:
    left, right = _pair(max_frame=1024)
    with pytest.raises(MalformedMessage, match="exceeds the limit"):
        left.send(CM(type=CM.PUT_STATE, payload=b"x" * 2048))
    unlimited_sender = PipeStream(left._conn)  # bypass the sender's own check
    unlimited_sender.send(CM(type=CM.PUT_STATE, payload=b"x" * 2048))
    with pytest.raises(MalformedMessage):
        right.recv()


def test_close_wakes_a_blocked_reader_and_signals_the_other_side() -> None:
    left, right = _pair()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            right.recv()
        except ConnectionClosed as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    right.close()
    reader.join(2)
    assert not reader.is_alive()
    assert len(errors) == 1
    with pytest.raises(ConnectionClosed):
        left.recv()
    with pytest.raises(ConnectionClosed):
        right.send(CM(type=CM.KEEPALIVE))
    right.close()  # idempotent


def test_sends_never_block_and_queued_frames_arrive_in_order() -> None:
    # Nobody reads while 8 MB go out: far more than the socket buffer holds. Sending must
    # return at once (the rest waits for a writer thread), and the frames arrive whole and in
    # order once the other side reads, small ones sent after the backlog included.
    left, right = _pair()
    sent = [CM(type=CM.RESPONSE, txid=f"tx{i}", payload=bytes([i]) * 1_000_000) for i in range(8)]
    sent.append(CM(type=CM.KEEPALIVE, txid="last"))
    done = threading.Event()

    def send_all() -> None:
        for msg in sent:
            left.send(msg)
        done.set()

    threading.Thread(target=send_all, daemon=True).start()
    assert done.wait(5), "send blocked on a full socket buffer"
    assert left._writer
    assert [right.recv() for _ in sent] == sent


def test_close_with_a_backlog_stops_the_writer() -> None:
    left, right = _pair()
    for i in range(4):
        left.send(CM(type=CM.RESPONSE, txid=f"tx{i}", payload=b"x" * 2_000_000))
    assert left._writer
    right.close()  # the writer's blocked sendall fails; it must end, not hang
    deadline = threading.Event()
    for _ in range(200):
        if not left._writer:
            break
        deadline.wait(0.01)
    assert not left._writer
    with pytest.raises(ConnectionClosed):
        left.send(CM(type=CM.KEEPALIVE))


def test_corked_sends_go_out_as_one_frame_in_order() -> None:
    left, right = _pair()
    sent = [CM(type=CM.GET_STATE, txid=f"tx{i}", channel_id="ch", payload=b"k") for i in range(20)]
    left.cork()
    left.cork()  # corks nest: only the last uncork sends
    for msg in sent:
        left.send(msg)
    left.uncork()
    assert not right._conn.poll(0.05), "sent before the last uncork"
    left.uncork()
    assert right._conn.poll(1)
    frame = right._conn.recv_bytes()
    assert len(msgpack.unpackb(frame)) == 20  # one frame, an array of the 20 messages
    left.cork()
    for msg in sent:
        left.send(msg)
    left.uncork()
    assert right.recv_batch() == sent
    left.cork()
    for msg in sent[:3]:
        left.send(msg)
    left.uncork()
    left.send(sent[3])  # not corked: its own frame
    assert [right.recv() for _ in range(4)] == sent[:4]  # recv hands a batch out one by one
    assert not right.buffered()


def test_a_single_corked_message_is_a_plain_frame() -> None:
    left, right = _pair()
    msg = CM(type=CM.COMPLETED, txid="t", channel_id="c", payload=b"r")
    left.cork()
    left.send(msg)
    left.uncork()
    assert right._conn.recv_bytes() == encode(msg)


def test_a_batch_is_split_at_the_frame_limit() -> None:
    left, right = _pair(max_frame=1024)
    sent = [CM(type=CM.PUT_STATE, txid=f"t{i}", payload=b"x" * 300) for i in range(7)]
    left.cork()
    for msg in sent:
        left.send(msg)
    left.uncork()
    frames = []
    while sum(map(len, frames)) < len(sent):
        frame = right._conn.recv_bytes()
        assert len(frame) <= 1024
        frames.append(decode_frame(frame))
    assert len(frames) > 1 and [m for f in frames for m in f] == sent


def test_messages_sent_together_share_one_frame_even_when_corked() -> None:
    left, right = _pair(max_frame=1024)
    pair = [
        CM(type=CM.WRITE_BATCH_STATE, txid="t", payload=b"w" * 200),
        CM(type=CM.COMPLETED, txid="t", payload=b"c" * 200),
    ]
    left.send_together(pair)  # not corked: one frame of the two
    assert decode_frame(right._conn.recv_bytes()) == pair
    # Corked behind other messages, the frame limit splits between units, never inside one.
    filler = CM(type=CM.PUT_STATE, txid="f", payload=b"x" * 300)
    left.cork()
    left.send(filler)
    left.send_together(pair)
    left.send(filler)
    left.uncork()
    frames = []
    while sum(map(len, frames)) < 4:
        frame = right._conn.recv_bytes()
        assert len(frame) <= 1024
        frames.append(decode_frame(frame))
    assert [m for f in frames for m in f] == [filler, *pair, filler]
    assert pair in [f[i : i + 2] for f in frames for i in range(len(f) - 1)]
    with pytest.raises(MalformedMessage, match="exceed the frame limit"):
        left.send_together([pair[0], filler, filler, filler])
    assert not right._conn.poll(0.05)  # nothing of it was sent


def test_a_read_says_which_messages_shared_a_frame() -> None:
    left, right = _pair()
    one, two, three, four = (CM(type=CM.PUT_STATE, txid=f"t{i}") for i in range(4))
    left.send(one)
    left.send_together([two, three])
    left.send(four)
    frames = right.recv_batch()  # all of it is waiting in the socket: one read takes it
    assert frames == [one, two, three, four]
    assert [frames.same_frame(i, i + 1) for i in range(3)] == [False, True, False]


def test_a_batch_with_one_bad_message_delivers_none() -> None:
    good = encode(CM(type=CM.RESPONSE, txid="t1", payload=b"ok"))
    bad = msgpack.packb([CM.RESPONSE, 5, "c", b"", None, None])  # txid must be a str
    left, right = _pair()
    left.send_frame(encode_batch([good, bad, good]))
    with pytest.raises(MalformedMessage):
        right.recv_batch()
    assert not right.buffered()
    with pytest.raises(MalformedMessage, match="expected one message"):
        decode(encode_batch([good, good]))


def test_a_send_queued_behind_a_cork_fails_once_closed() -> None:
    left, _right = _pair()
    left.cork()
    left.send(CM(type=CM.KEEPALIVE))
    left.close()
    with pytest.raises(ConnectionClosed):
        left.send(CM(type=CM.KEEPALIVE))
    with pytest.raises(ConnectionClosed):
        left.uncork()


def test_frames_already_waiting_come_in_one_batch_and_a_bad_one_after_them() -> None:
    left, right = _pair()
    sent = [CM(type=CM.RESPONSE, txid=f"t{i}", payload=b"x") for i in range(5)]
    for msg in sent:
        left.send(msg)
    left.send_frame(b"\xc1")
    assert right._conn.poll(1)
    assert right.recv_batch() == sent  # the whole frames before the bad one count
    with pytest.raises(MalformedMessage):
        right.recv_batch()
