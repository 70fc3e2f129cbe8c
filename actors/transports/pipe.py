"""ChaincodeMessages over a ``multiprocessing`` Pipe, in msgpack frames of one or more messages.

This replaces Fabric 1.x's in-process channels (``inproccontroller``) and 2.x's in-memory
stream for system chaincodes: the chaincode runs in its own OS process. A message is the msgpack
array ``[type, txid, channel_id, payload, proposal, event]`` where ``payload`` is the same
protobuf-encoded bytes gRPC would carry and ``proposal``/``event`` are the serialized
``SignedProposal``/``ChaincodeEvent`` or nil. So the shim payloads are byte-for-byte Fabric's;
only the outer envelope differs. A frame is one message, or an array of two or more (a batch).

Batching, without timers: a side that knows more messages are coming at once (a reader handling
the messages of one frame, a Handler with more transactions in its mailbox) *corks* the stream;
sends then queue, and the last ``uncork`` sends them as one frame. Every wake of a sleeping
process or thread costs tens of microseconds on a small VM; under load a batch makes one wake
carry many messages, while a lone message (one client) goes out at once as before.
:meth:`PipeStream.send_together` sends messages that must arrive in one frame (the shim's last
WRITE_BATCH_STATE and its COMPLETED: see :mod:`actors.handler`); corked, they stay one unit
that the frame limit never splits. A frame is
decoded whole before any of its messages is handed on, so a torn or garbled frame delivers
none of them. A reader takes whatever has arrived with one read into a reusable buffer and
decodes the whole frames in it, blocking (:meth:`PipeStream.recv_batch`) or not (a
:class:`~actors.transports.poller.PipePoller`'s :meth:`PipeStream.poll_frames`).

Sending never blocks. A frame goes out with one non-blocking ``sendmsg`` in
``multiprocessing.Connection``'s framing (the other end may read with ``recv_bytes``); when the
socket buffer is full, the rest is queued and a writer thread, started for the occasion,
blocks on it in order. The peer's reader thread answers requests itself, and the chaincode
side may write while the peer writes: blocking sends on both reading sides would deadlock once
both buffers fill.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import msgpack

from actors.transports.base import ConnectionClosed, MalformedMessage
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

DEFAULT_MAX_FRAME = 100 * 1024 * 1024  # Fabric's default gRPC message limit
_READ = 64 * 1024  # bytes one read takes at most (a PipePoller's per wake and connection)


def _header(size: int) -> bytes:
    """``Connection.send_bytes``'s length prefix."""
    return struct.pack("!i", size) if size <= 0x7FFFFFFF else struct.pack("!iQ", -1, size)


_packb = msgpack.Packer(use_bin_type=True).pack


def encode(msg: ChaincodeMessage) -> bytes:
    """Encode one ChaincodeMessage as a msgpack frame."""
    return _packb(
        [
            msg.type,
            msg.txid,
            msg.channel_id,
            msg.payload,
            msg.proposal.SerializeToString() if msg.HasField("proposal") else None,
            msg.chaincode_event.SerializeToString() if msg.HasField("chaincode_event") else None,
        ]
    )


def _array_header(count: int) -> bytes:
    """msgpack's array header: a batch frame is this followed by its encoded messages."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return struct.pack("!BH", 0xDC, count)
    return struct.pack("!BI", 0xDD, count)


def encode_batch(encoded: list[bytes]) -> bytes:
    """One frame of already-encoded messages (two or more)."""
    return _array_header(len(encoded)) + b"".join(encoded)


def _message(fields: tuple[Any, ...]) -> ChaincodeMessage:
    mtype, txid, channel_id, payload, proposal, event = fields
    msg = ChaincodeMessage(type=mtype, txid=txid, channel_id=channel_id, payload=payload)
    if proposal is not None:
        msg.proposal.ParseFromString(proposal)
    if event is not None:
        msg.chaincode_event.ParseFromString(event)
    return msg


def decode_frame(frame: bytes) -> list[ChaincodeMessage]:
    """Decode a frame of one message or a batch, whole; raises :class:`MalformedMessage` on
    anything unexpected (then none of its messages counts)."""
    try:
        fields = msgpack.unpackb(frame, raw=False, use_list=False)
        if len(fields) > 1 and type(fields[0]) is tuple:  # a message starts with its type
            return [_message(one) for one in fields]
        return [_message(fields)]
    except Exception as exc:  # msgpack, unpacking, protobuf and type errors alike
        raise MalformedMessage(f"malformed frame ({len(frame)} bytes): {exc}") from exc


class Frames(list[ChaincodeMessage]):
    """The messages of the whole frames one read delivered, in order, and the ``spans``
    (``[start, end)`` indices) of those that came as frames of several: the peer's Handler
    needs to know that two messages shared a frame (see :mod:`actors.handler`)."""

    __slots__ = ("spans",)

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[int, int]] = []

    def same_frame(self, first: int, second: int) -> bool:
        """Messages ``first`` and ``second`` (indices) came in one frame."""
        return any(start <= first and second < end for start, end in self.spans)


def decode(frame: bytes) -> ChaincodeMessage:
    """Decode a frame of exactly one message."""
    msgs = decode_frame(frame)
    if len(msgs) != 1:
        raise MalformedMessage(f"expected one message, the frame holds {len(msgs)}")
    return msgs[0]


class PipeStream:
    """A :class:`~actors.transports.base.MessageStream` over one end of a Pipe."""

    def __init__(self, conn: Connection, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self._conn = conn
        self._max_frame = max_frame
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))  # for non-blocking sends
        self._send_lock = threading.Lock()
        self._backlog: deque[memoryview] = deque()  # what the writer thread still has to send
        self._writer = False  # a writer thread runs: later frames queue behind it
        # The fd is released only when no recv is inside it: closing it under a blocked or
        # about-to-read reader would let the number be reused by a new pipe, whose bytes
        # that stale reader would then steal.
        self._state_lock = threading.Lock()
        self._receiving = False
        self._closed = False
        self._corks = 0  # open cork() calls: while > 0, sends queue in _queued
        self._queued: list[tuple[bytes, int]] = []  # (encoded messages, how many)
        self._received: deque[ChaincodeMessage] = deque()  # the rest of a batch, for recv()
        self._failed: ConnectionClosed | MalformedMessage | None = None  # for the next recv
        self._inbuf = bytearray()  # part of a frame
        # Reads go into one buffer, made at the first read: ``recv(n)`` allocates n bytes per
        # call, which for a large n is an mmap and munmap per read.
        self._readbuf: memoryview | None = None

    def send(self, msg: ChaincodeMessage) -> None:
        frame = encode(msg)
        if len(frame) > self._max_frame:
            raise MalformedMessage(
                f"message of {len(frame)} bytes exceeds the limit of {self._max_frame}"
            )
        if self._corks and self._queue(frame, 1):
            return
        self.send_frame(frame)

    def send_together(self, msgs: list[ChaincodeMessage]) -> None:
        """Send two or more messages in one frame, never split (corked or not): the peer
        relies on it for a WRITE_BATCH_STATE and its transaction's COMPLETED (see
        :mod:`actors.handler`). Raises :class:`MalformedMessage`, sending nothing, when they
        do not fit in one frame."""
        encoded = b"".join(encode(msg) for msg in msgs)
        if len(encoded) + 5 > self._max_frame:
            raise MalformedMessage(
                f"{len(msgs)} messages of {len(encoded)} bytes exceed the frame limit of "
                f"{self._max_frame}"
            )
        if self._corks and self._queue(encoded, len(msgs)):
            return
        self.send_frame(_array_header(len(msgs)) + encoded)

    def _queue(self, encoded: bytes, count: int) -> bool:
        """Corked: queue ``count`` encoded messages as one unit; False if uncorked meanwhile."""
        with self._send_lock:
            if not self._corks:
                return False
            if self._closed:
                raise ConnectionClosed("pipe closed")
            self._queued.append((encoded, count))
            return True

    def cork(self) -> None:
        """Queue sends until the matching :meth:`uncork` (calls nest, from any thread)."""
        with self._send_lock:
            self._corks += 1

    def uncork(self) -> None:
        """End one :meth:`cork`; the last sends what was queued, in as few frames as the frame
        limit allows. Raises :class:`ConnectionClosed` as :meth:`send` does."""
        with self._send_lock:
            self._corks -= 1
            if self._corks or not self._queued:
                return
            queued, self._queued = self._queued, []
            if self._closed:
                raise ConnectionClosed("pipe closed")
            limit = self._max_frame - 5  # room for the array header
            start, size = 0, 0
            for end, (encoded, _) in enumerate(queued):
                if size + len(encoded) > limit and end > start:
                    self._send_locked(self._batch(queued[start:end]))
                    start, size = end, 0
                size += len(encoded)
            self._send_locked(self._batch(queued[start:]))

    @staticmethod
    def _batch(units: list[tuple[bytes, int]]) -> bytes:
        """One frame of queued units (a unit: one message, or messages sent together)."""
        if len(units) == 1 and units[0][1] == 1:
            return units[0][0]
        count = sum(n for _, n in units)
        return _array_header(count) + b"".join(encoded for encoded, _ in units)

    def send_frame(self, frame: bytes) -> None:
        """Send an already-encoded frame (tests and fault injection send garbage this way)."""
        with self._send_lock:
            self._send_locked(frame)

    def _send_locked(self, frame: bytes) -> None:
        parts = [_header(len(frame)), frame]
        if self._closed:
            raise ConnectionClosed("pipe closed")
        sent = 0
        if not self._writer:
            try:
                sent = self._sock.sendmsg(parts, [], socket.MSG_DONTWAIT)
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ConnectionClosed(f"pipe closed: {exc}") from exc
        for part in parts:
            if sent >= len(part):
                sent -= len(part)
                continue
            self._backlog.append(memoryview(part)[sent:])
            sent = 0
        if self._backlog and not self._writer:
            self._writer = True
            writer = threading.Thread(target=self._write_backlog, name="pipe-writer")
            writer.daemon = True
            writer.start()

    def _write_backlog(self) -> None:
        """Writer thread: send the backlog, blocking, until it is empty or the pipe closes."""
        while True:
            with self._send_lock:
                if not self._backlog or self._closed:
                    self._backlog.clear()
                    self._writer = False
                    if self._closed:
                        self._sock.close()
                    return
                chunk = self._backlog.popleft()
            try:
                self._sock.sendall(chunk)
            except OSError:
                self.close()  # the reader then sees the end of the stream

    def recv(self) -> ChaincodeMessage:
        if not self._received:
            self._received.extend(self.recv_batch())
        return self._received.popleft()

    def buffered(self) -> bool:
        """Messages of a batch are waiting: :meth:`recv` returns at once."""
        return bool(self._received)

    def recv_batch(self) -> list[ChaincodeMessage]:
        """Block for the next frame; the messages of it and of every frame already waiting
        behind it, in order (what :meth:`recv` kept of an earlier frame comes first). A frame
        that fails is reported by the next call, after the whole frames before it."""
        if self._received:
            # Left by recv(), which keeps no frame spans, so a plain list: only the shim's
            # side mixes recv() and recv_batch(), and it reads no spans; the peer only calls
            # recv_batch() and poll_frames(), whose Frames it needs (actors.handler: the shim
            # takes a RESPONSE nobody waits for as fatal, so a lost pair would end it).
            msgs = list(self._received)
            self._received.clear()
            return msgs
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        with self._state_lock:
            if self._closed:
                raise ConnectionClosed("pipe closed")
            self._receiving = True
        try:
            # One blocking read takes whatever has arrived: every frame already waiting comes
            # in the same wake (and what answers them can go back as one frame), in one system
            # call where Connection.recv_bytes needs two per frame plus a poll to look ahead.
            msgs, end = self._take_frames()
            while not msgs and end is None:
                end = self._read(0)
                more, failed = self._take_frames()
                msgs, end = more, failed or end
        finally:
            with self._state_lock:
                self._receiving = False
                if self._closed:
                    self._release()
        if end is not None:
            if not msgs:
                raise end
            self._failed = end
        return msgs

    def _read(self, flags: int) -> ConnectionClosed | None:
        """Append what the socket holds (up to ``_READ`` bytes) to the input buffer; blocks
        for at least one byte unless ``flags`` has MSG_DONTWAIT. The end of the stream, if it
        ended."""
        readbuf = self._readbuf
        if readbuf is None:
            readbuf = self._readbuf = memoryview(bytearray(_READ))
        try:
            size = self._sock.recv_into(readbuf, _READ, flags)
        except BlockingIOError:
            return None
        except OSError as exc:
            return ConnectionClosed(f"pipe closed: {exc}")
        if not size:
            return ConnectionClosed(
                "pipe closed" if self._closed else "pipe closed by the other side"
            )
        self._inbuf += readbuf[:size]
        return None

    def _take_frames(self) -> tuple[Frames, MalformedMessage | None]:
        """The messages of the whole frames in the input buffer, and the error that makes the
        stream unusable, if a frame is bad (after the messages of the frames before it). Part
        of a frame stays for the next read."""
        buf = self._inbuf
        msgs = Frames()
        end: MalformedMessage | None = None
        pos, have = 0, len(buf)
        while have - pos >= 4:
            (size,) = struct.unpack_from("!i", buf, pos)
            head = 4
            if size == -1:
                if have - pos < 12:
                    break
                (size,) = struct.unpack_from("!Q", buf, pos + 4)
                head = 12
            if size < 0 or size > self._max_frame:
                end = MalformedMessage(
                    f"bad frame: {size} bytes, over the limit of {self._max_frame}"
                )
                break
            if have - pos < head + size:
                break
            frame = bytes(buf[pos + head : pos + head + size])
            pos += head + size
            try:
                decoded = decode_frame(frame)
            except MalformedMessage as exc:
                end = exc
                break
            if len(decoded) > 1:
                msgs.spans.append((len(msgs), len(msgs) + len(decoded)))
            msgs.extend(decoded)
        del buf[:pos]
        return msgs, end

    # -- read by a PipePoller (actors.transports.poller) instead of recv ----------------

    def start_polling(self) -> socket.socket | None:
        """The socket to watch; None if closed. The fd stays open until :meth:`stop_polling`
        (as for a reader inside ``recv``), so its number cannot be reused under the poller."""
        with self._state_lock:
            if self._closed:
                return None
            self._receiving = True
        return self._sock

    def polled_socket(self) -> socket.socket:
        return self._sock

    def stop_polling(self) -> None:
        with self._state_lock:
            self._receiving = False
            if self._closed:
                self._release()

    def poll_frames(self) -> tuple[Frames, ConnectionClosed | MalformedMessage | None]:
        """Without blocking: the messages of the whole frames that have arrived, and what
        ended the stream, if it ended (after those messages). Part of a frame is kept for
        the next call."""
        closed = self._read(socket.MSG_DONTWAIT)
        msgs, end = self._take_frames()
        return msgs, end or closed

    def close(self) -> None:
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            # A duplex Pipe is a socketpair on POSIX: shutdown wakes a reader blocked in recv
            # (and the peer's reader, with EOF), which closing the fd alone does not do.
            try:
                with socket.socket(fileno=os.dup(self._conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if not self._receiving:  # else the reader releases it on its way out
                self._release()

    def _release(self) -> None:
        with self._send_lock:
            self._conn.close()
            if not self._writer:  # else the writer closes its socket on its way out
                self._sock.close()
