"""Chaincode for the end-to-end ledger tests (run by the system runtime's fork server)."""

from __future__ import annotations

from actors.shim import ChaincodeRequestError, ChaincodeStub, Contract, Response, success


class Writer(Contract):
    write_batch = False  # each write its own request: a refused one raises at the call

    def fn_bulk(self, stub: ChaincodeStub, count: str, size: str) -> Response:
        """Write ``count`` values of ``size`` bytes; a refused write fails the chaincode."""
        for n in range(int(count)):
            stub.put_state(f"bulk{n}", b"x" * int(size))
        return success()

    def fn_bulk_ignoring_errors(self, stub: ChaincodeStub, count: str, size: str) -> Response:
        """As ``bulk``, but carries on past refused writes and claims success."""
        refused = []
        for n in range(int(count)):
            try:
                stub.put_state(f"bulk{n}", b"x" * int(size))
            except ChaincodeRequestError as exc:
                refused.append(str(exc))
        return success("\n".join(refused).encode())


class BatchWriter(Writer):
    write_batch = True  # the writes go as one WRITE_BATCH_STATE with the COMPLETED
