"""One thread reading every pipe connection of the peer.

Fabric counterpart: none; Fabric's Handler runs one receive goroutine per stream, which costs
little in Go. Here a reader thread per connection costs a thread wake per message: with many
chaincodes each carrying little traffic, nothing batches and the peer pays one wake (tens of
microseconds on a small VM) per message and connection. One ``selectors`` loop over all pipes
lets a wake serve whatever every ready connection holds.

A connection is read without blocking (:meth:`PipeStream.poll_frames`), so a chaincode that
sends half a frame holds up nobody. Whoever adds a stream gives a ``reader``: it is called on
this thread with each wake's messages, and once with the exception that ended the stream; it
must not block (the peer's Handler serves requests inline, as its reader thread would). gRPC
streams keep their own threads.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
from collections import deque
from collections.abc import Callable

from actors.transports.base import ConnectionClosed, MalformedMessage
from actors.transports.pipe import PipeStream
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage

log = logging.getLogger(__name__)

Reader = Callable[[list[ChaincodeMessage] | ConnectionClosed | MalformedMessage], bool]
"""Serve a wake's messages (False: stop reading this stream) or the stream's end."""


class PipePoller:
    """Reads the pipe streams added to it on one thread (started with the first stream)."""

    def __init__(self, name: str = "ccactors-pipe-poller") -> None:
        self._name = name
        self._selector = selectors.DefaultSelector()
        # Streams are added from other threads; the loop registers them (a selector is not
        # to be changed under a running select).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._added: deque[tuple[PipeStream, Reader]] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(self, stream: PipeStream, reader: Reader) -> None:
        """Read ``stream`` here from now on (see the module doc)."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("pipe poller stopped")
            self._added.append((stream, reader))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._wake()

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop; streams still added end as closed. Idempotent."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        selector = self._selector
        try:
            while not self._stopped:
                for key, _ in selector.select():
                    if key.data is None:
                        self._register_added()
                        continue
                    stream, reader = key.data
                    msgs, end = stream.poll_frames()
                    try:
                        if msgs and not reader(msgs):
                            self._drop(stream)
                            continue
                        if end is not None:
                            self._drop(stream)
                            reader(end)
                    except Exception:  # a reader must not raise; keep serving the others
                        log.exception("pipe poller: reader failed; dropping its stream")
                        self._drop(stream)
                        stream.close()
        finally:
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    stream, reader = key.data
                    self._drop(stream)
                    with contextlib.suppress(Exception):
                        reader(ConnectionClosed("peer shutting down"))

    def _register_added(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass
        while self._added:
            stream, reader = self._added.popleft()
            sock = stream.start_polling()
            if sock is None:  # closed already
                reader(ConnectionClosed("pipe closed"))
                continue
            self._selector.register(sock, selectors.EVENT_READ, (stream, reader))

    def _drop(self, stream: PipeStream) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(stream.polled_socket())
        stream.stop_polling()
