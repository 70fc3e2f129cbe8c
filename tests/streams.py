"""Test helper: receive from a MessageStream without risking a hang."""

from __future__ import annotations

import threading

from actors.transports import MessageStream
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage


def recv_within(stream: MessageStream, timeout: float = 10.0) -> ChaincodeMessage:
    """The next message, or the stream's own exception; fails the test after ``timeout``."""
    box: list[ChaincodeMessage | Exception] = []

    def read() -> None:
        try:
            box.append(stream.recv())
        except Exception as exc:
            box.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, "no message within the timeout"
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]
