"""Misbehaving chaincodes for the integration tests of the system runtime.

Each runs in a child process forked by the runtime's fork server, so it is referenced by an
importable target such as ``tests.integration.chaincodes:NeverRegisters``.
"""

from __future__ import annotations

import json
import os
import signal
import time

from actors.shim import Chaincode, ChaincodeStub, Contract, Response, error, success


class NeverRegisters(Chaincode):
    """Hangs in its constructor, so the shim never sends REGISTER (startup timeout)."""

    def __init__(self) -> None:
        while True:
            time.sleep(3600)


class BrokenConstructor(Chaincode):
    """Cannot be instantiated: the child exits with code 3 before registering."""

    def __init__(self) -> None:
        raise RuntimeError("BrokenConstructor refuses to start")


class Crashy(Chaincode):
    """Serves ``ok``, ``put`` and ``sleep``; dies in the middle of ``exit CODE`` and ``kill``.

    Both fatal functions read a key first, so the peer has served a request of the
    transaction before the process disappears.
    """

    def invoke(self, stub: ChaincodeStub) -> Response:
        function, params = stub.get_function_and_parameters()
        if function == "ok":
            return success(f"pid {os.getpid()}".encode())
        if function == "put":
            stub.put_state(params[0], params[1].encode())
            return success()
        if function == "sleep":
            time.sleep(float(params[0]))
            return success()
        if function == "exit":
            stub.get_state("before-exit")
            os._exit(int(params[0]))
        if function == "kill":
            stub.get_state("before-kill")
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(60)  # never reached: SIGKILL cannot be caught
        return error(f"unknown function {function!r}", status=400)


class Copier(Chaincode):
    """``seed KEY SIZE`` writes SIZE bytes; ``copy SRC DST`` reads SRC and writes it to DST.

    Many concurrent copies of a large value fill the pipe both ways at once.
    """

    def invoke(self, stub: ChaincodeStub) -> Response:
        function, params = stub.get_function_and_parameters()
        if function == "seed":
            stub.put_state(params[0], b"x" * int(params[1]))
            return success()
        if function == "copy":
            value = stub.get_state(params[0])
            stub.put_state(params[1], value)
            return success(str(len(value)).encode())
        return error(f"unknown function {function!r}", status=400)


class GreenletCopier(Copier):
    concurrency = "greenlets"


class Batcher(Contract):
    """Writes in every way the stub can; the peer offers write batches, so they all go as one
    WRITE_BATCH_STATE with the COMPLETED (see actors.shim.stub)."""

    def fn_write(self, stub: ChaincodeStub, *pairs: str) -> Response:
        for key, value in zip(pairs[::2], pairs[1::2], strict=True):
            stub.put_state(key, value.encode())
        return success()

    def fn_readwrite(self, stub: ChaincodeStub, key: str, value: str) -> Response:
        before = stub.get_state(key)
        stub.put_state(key, value.encode())
        stub.set_state_validation_parameter(key, b"policy")
        after = stub.get_state(key)  # never the transaction's own write, as in Fabric
        return success(json.dumps([before.decode(), after.decode()]).encode())

    def fn_delete(self, stub: ChaincodeStub, key: str) -> Response:
        stub.put_state("side", b"effect")  # lost if the batch fails
        stub.del_state(key)
        return success()

    def fn_private(self, stub: ChaincodeStub, collection: str, key: str, value: str) -> Response:
        stub.put_private_data(collection, key, value.encode())
        return success()

    def fn_call(self, stub: ChaincodeStub, chaincode: str, *args: str) -> Response:
        stub.put_state("caller", b"before the call")
        response = stub.invoke_chaincode(chaincode, list(args))
        stub.put_state("caller-after", str(response.status).encode())
        return success(json.dumps([response.status, response.message]).encode())


class UnbatchedBatcher(Batcher):
    write_batch = False
