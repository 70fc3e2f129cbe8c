"""A private data chaincode (the flows of fabric-samples' asset-transfer-private-data): values
arrive in the transient map, never in the arguments, so they stay out of the transaction.

Functions (args after the function name; COLL is a collection name):
  put COLL KEY          write transient["value"] to KEY       get COLL KEY     read KEY
  hash COLL KEY         hex SHA-256 of KEY's value (works on every peer)
  del COLL KEY          delete KEY                            purge COLL KEY   purge KEY
  range COLL START END  {key: value} of KEY in [START, END)   query COLL MANGO matching keys
  setep COLL KEY POLICY key-level endorsement (VALIDATION_PARAMETER bytes, hex)
  getep COLL KEY        KEY's validation parameter, hex
  putpublic KEY VALUE   a public write (to mix with private reads)
"""

from __future__ import annotations

import json

from actors.shim import ChaincodeStub, Contract, Response, error, success


class PrivateData(Contract):
    def fn_put(self, stub: ChaincodeStub, collection: str, key: str) -> Response:
        value = stub.get_transient().get("value")
        if value is None:
            return error('the value goes in the transient map under "value"', status=400)
        stub.put_private_data(collection, key, value)
        return success()

    def fn_get(self, stub: ChaincodeStub, collection: str, key: str) -> Response:
        value = stub.get_private_data(collection, key)
        return success(value) if value else error(f"key {key!r} not found", status=404)

    def fn_hash(self, stub: ChaincodeStub, collection: str, key: str) -> Response:
        return success(stub.get_private_data_hash(collection, key).hex().encode())

    def fn_del(self, stub: ChaincodeStub, collection: str, key: str) -> Response:
        stub.del_private_data(collection, key)
        return success()

    def fn_purge(self, stub: ChaincodeStub, collection: str, key: str) -> Response:
        stub.purge_private_data(collection, key)
        return success()

    def fn_range(self, stub: ChaincodeStub, collection: str, start: str, end: str) -> Response:
        with stub.get_private_data_by_range(collection, start, end) as results:
            items = {kv.key: kv.value.decode() for kv in results}
        return success(json.dumps(items).encode())

    def fn_query(self, stub: ChaincodeStub, collection: str, query: str) -> Response:
        with stub.get_private_data_query_result(collection, query) as results:
            keys = [kv.key for kv in results]
        return success(json.dumps(keys).encode())

    def fn_setep(self, stub: ChaincodeStub, collection: str, key: str, policy: str) -> Response:
        stub.set_private_data_validation_parameter(collection, key, bytes.fromhex(policy))
        return success()

    def fn_getep(self, stub: ChaincodeStub, collection: str, key: str) -> Response:
        return success(stub.get_private_data_validation_parameter(collection, key).hex().encode())

    def fn_putpublic(self, stub: ChaincodeStub, key: str, value: str) -> Response:
        stub.put_state(key, value.encode())
        return success()
