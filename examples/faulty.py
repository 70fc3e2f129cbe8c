"""The chaincode ``ccactors faults`` drives: plain writes, plus ways to misbehave on request.

Functions (args after the function name):
  put KEY VALUE      write a key (the fault runner's load: one unique key per transaction)
  get KEY            read a key (404 if missing)
  pid                the process id serving this chaincode
  sleep SECONDS      hang for a while
  garbage [SIZE]     write SIZE bytes that are not a frame on this chaincode's own pipe (system
                     runtime only: over gRPC the shim has no raw access; answered with 400)
"""

from __future__ import annotations

import os
import time

from actors.shim import ChaincodeStub, Contract, Response, error, success

MSGPACK_NEVER_USED = b"\xc1"  # the one byte msgpack never emits: no frame starts with it


class Faulty(Contract):
    def fn_put(self, stub: ChaincodeStub, key: str, value: str) -> Response:
        stub.put_state(key, value.encode())
        return success()

    def fn_get(self, stub: ChaincodeStub, key: str) -> Response:
        value = stub.get_state(key)
        return success(value) if value else error(f"key {key!r} not found", status=404)

    def fn_pid(self, stub: ChaincodeStub) -> Response:
        return success(str(os.getpid()))

    def fn_sleep(self, stub: ChaincodeStub, seconds: str) -> Response:
        time.sleep(float(seconds))
        return success()

    def fn_garbage(self, stub: ChaincodeStub, size: str = "64") -> Response:
        stream = stub._handler._stream
        send_frame = getattr(stream, "send_frame", None)
        if send_frame is None:
            return error(f"garbage needs a pipe, not {type(stream).__name__}", status=400)
        send_frame(MSGPACK_NEVER_USED + os.urandom(max(0, int(size) - 1)))
        # The peer closes the connection when it reads that frame, so this reply is
        # normally never delivered.
        return success(b"garbage sent")
