"""A key-value chaincode: the smallest useful chaincode, and the benchmark's workload.

Functions (args after the function name):
  put KEY VALUE        write a key              get KEY        read a key (404 if missing)
  del KEY              delete a key             range START END  keys in [START, END) as JSON
  history KEY          the key's history as JSON
  query MANGO          keys matching a rich (Mango) query, as JSON
  querypage MANGO SIZE BOOKMARK   one page of it: {"keys", "count", "bookmark"}
  getput KEY VALUE     read then write (the benchmark's read-write transaction)
  pgetput COLL KEY VALUE  the same on private data collection COLL (the private workload)
  incr KEY             read an integer, write it + 1 (conflicts under MVCC when concurrent)
  call CHAINCODE ARG.. invoke another chaincode and return its payload
  fail MESSAGE         return an error response       raise MESSAGE   raise an exception
  sleep SECONDS        hang for a while (timeout tests)
"""

from __future__ import annotations

import json
import time

from actors.shim import ChaincodeStub, Contract, Response, error, success


class KVChaincode(Contract):
    def init(self, stub: ChaincodeStub) -> Response:
        return success(message="kv initialised")

    def fn_put(self, stub: ChaincodeStub, key: str, value: str) -> Response:
        stub.put_state(key, value.encode())
        return success()

    def fn_get(self, stub: ChaincodeStub, key: str) -> Response:
        value = stub.get_state(key)
        return success(value) if value else error(f"key {key!r} not found", status=404)

    def fn_del(self, stub: ChaincodeStub, key: str) -> Response:
        stub.del_state(key)
        return success()

    def fn_getput(self, stub: ChaincodeStub, key: str, value: str) -> Response:
        previous = stub.get_state(key)
        stub.put_state(key, value.encode())
        return success(previous)

    def fn_pgetput(self, stub: ChaincodeStub, collection: str, key: str, value: str) -> Response:
        previous = stub.get_private_data(collection, key)
        stub.put_private_data(collection, key, value.encode())
        return success(previous)

    def fn_incr(self, stub: ChaincodeStub, key: str) -> Response:
        value = int(stub.get_state(key) or b"0") + 1
        stub.put_state(key, str(value).encode())
        return success(str(value).encode())

    def fn_range(self, stub: ChaincodeStub, start: str, end: str) -> Response:
        with stub.get_state_by_range(start, end) as results:
            items = {kv.key: kv.value.decode() for kv in results}
        return success(json.dumps(items).encode())

    def fn_query(self, stub: ChaincodeStub, query: str) -> Response:
        with stub.get_query_result(query) as results:
            keys = [kv.key for kv in results]
        return success(json.dumps(keys).encode())

    def fn_querypage(
        self, stub: ChaincodeStub, query: str, page_size: str, bookmark: str = ""
    ) -> Response:
        results, meta = stub.get_query_result_with_pagination(query, int(page_size), bookmark)
        with results:
            keys = [kv.key for kv in results]
        page = {"keys": keys, "count": meta.fetched_records_count, "bookmark": meta.bookmark}
        return success(json.dumps(page).encode())

    def fn_history(self, stub: ChaincodeStub, key: str) -> Response:
        with stub.get_history_for_key(key) as results:
            items = [
                {"txid": m.tx_id, "value": m.value.decode(), "delete": m.is_delete} for m in results
            ]
        return success(json.dumps(items).encode())

    def fn_call(self, stub: ChaincodeStub, chaincode: str, *args: str) -> Response:
        return stub.invoke_chaincode(chaincode, list(args))

    def fn_fail(self, stub: ChaincodeStub, message: str) -> Response:
        return error(message)

    def fn_raise(self, stub: ChaincodeStub, message: str) -> Response:
        raise RuntimeError(message)

    def fn_sleep(self, stub: ChaincodeStub, seconds: str) -> Response:
        time.sleep(float(seconds))
        return success()


class GreenletKVChaincode(KVChaincode):
    """The same chaincode with every transaction a greenlet on one thread (``sleep`` then
    stalls the whole chaincode): the benchmark's second system chaincode."""

    concurrency = "greenlets"


class ThreadKVChaincode(KVChaincode):
    """The same chaincode with every transaction on a pool thread (the bench's
    ``system-threads``; the default, ``"auto"``, is greenlets with a thread fallback)."""

    concurrency = "threads"
