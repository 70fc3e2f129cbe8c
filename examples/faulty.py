"""The chaincode ``ccactors faults`` drives: the kv chaincode (its ``put`` is the fault runner's
load, one unique key per transaction), plus ways to misbehave on request.

Functions added to kv's (args after the function name):
  pid                the process id serving this chaincode
  garbage [SIZE]     write SIZE bytes that are not a frame on this chaincode's own pipe (system
                     runtime only: over gRPC the shim has no raw access; answered with 400)
"""

from __future__ import annotations

import os

from actors.shim import ChaincodeStub, Response, error, success
from examples.kv import KVChaincode

MSGPACK_NEVER_USED = b"\xc1"  # the one byte msgpack never emits: no frame starts with it


class Faulty(KVChaincode):
    def fn_pid(self, stub: ChaincodeStub) -> Response:
        return success(str(os.getpid()))

    def fn_garbage(self, stub: ChaincodeStub, size: str = "64") -> Response:
        stream = stub._handler._stream
        send_frame = getattr(stream, "send_frame", None)
        if send_frame is None:
            return error(f"garbage needs a pipe, not {type(stream).__name__}", status=400)
        send_frame(MSGPACK_NEVER_USED + os.urandom(max(0, int(size) - 1)))
        # The peer closes the connection when it reads that frame, so this reply is
        # normally never delivered.
        return success(b"garbage sent")
