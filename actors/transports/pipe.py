"""ChaincodeMessages over a ``multiprocessing`` Pipe, one msgpack frame per message.

This replaces Fabric 1.x's in-process channels (``inproccontroller``) and 2.x's in-memory
stream for system chaincodes: the chaincode runs in its own OS process. A frame is the msgpack
array ``[type, txid, channel_id, payload, proposal, event]`` where ``payload`` is the same
protobuf-encoded bytes gRPC would carry and ``proposal``/``event`` are the serialized
``SignedProposal``/``ChaincodeEvent`` or nil. So the shim payloads are byte-for-byte Fabric's;
only the outer envelope differs.

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

import msgpack

from actors.transports.base import ConnectionClosed, MalformedMessage
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

DEFAULT_MAX_FRAME = 100 * 1024 * 1024  # Fabric's default gRPC message limit


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


def decode(frame: bytes) -> ChaincodeMessage:
    """Decode one msgpack frame; raises :class:`MalformedMessage` on anything unexpected."""
    try:
        fields = msgpack.unpackb(frame, raw=False, use_list=False)
        mtype, txid, channel_id, payload, proposal, event = fields
        msg = ChaincodeMessage(type=mtype, txid=txid, channel_id=channel_id, payload=payload)
        if proposal is not None:
            msg.proposal.ParseFromString(proposal)
        if event is not None:
            msg.chaincode_event.ParseFromString(event)
    except Exception as exc:  # msgpack, unpacking, protobuf and type errors alike
        raise MalformedMessage(f"malformed frame ({len(frame)} bytes): {exc}") from exc
    return msg


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

    def send(self, msg: ChaincodeMessage) -> None:
        frame = encode(msg)
        if len(frame) > self._max_frame:
            raise MalformedMessage(
                f"message of {len(frame)} bytes exceeds the limit of {self._max_frame}"
            )
        self.send_frame(frame)

    def send_frame(self, frame: bytes) -> None:
        """Send an already-encoded frame (tests and fault injection send garbage this way)."""
        parts = [_header(len(frame)), frame]
        with self._send_lock:
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
        with self._state_lock:
            if self._closed:
                raise ConnectionClosed("pipe closed")
            self._receiving = True
        try:
            frame = self._conn.recv_bytes(self._max_frame)
        except EOFError as exc:
            raise ConnectionClosed("pipe closed by the other side") from exc
        except ConnectionError as exc:  # reset: the other side closed with our data unread
            raise ConnectionClosed(f"pipe closed by the other side: {exc}") from exc
        except OSError as exc:
            if self._closed:
                raise ConnectionClosed("pipe closed") from exc
            # recv_bytes raises OSError for a frame over maxlength; the pipe is then unusable.
            raise MalformedMessage(f"bad frame: {exc}") from exc
        finally:
            with self._state_lock:
                self._receiving = False
                if self._closed:
                    self._release()
        return decode(frame)

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
