"""A chaincode written against the real PyPI ``fabric-chaincode-python`` 2.5.4 shim.

It runs only in ``.venv-fabric-cc`` (made by ``tools/ensure_python_interop.sh``), started by
``serve.py`` as a chaincode-as-a-service, and ``tests/interop/test_python_ccaas.py`` drives it
through our peer's ExternalRuntime. The library's API is async: ``init``/``invoke`` are
coroutines and every stub call that talks to the peer is awaited.

Functions (args after the function name):
  put KEY VALUE            write                   get KEY        read (status 404 if missing)
  del KEY                  delete                  range START END  JSON {key: value}
  fill PREFIX N            write N keys PREFIX0000.. (one transaction)
  page START END SIZE      one page (pagination)   history KEY    JSON [{txid, value, delete}]
  composite TYPE A B VALUE write a composite key   partial TYPE A   JSON of keys under TYPE/A
  getput KEY VALUE         read then write         sleep SECONDS VALUE  wait, then put sleep-VALUE
  event NAME PAYLOAD       set_event               txinfo         JSON of channel, txid, creator
  fail MESSAGE             error response          raise MESSAGE  raise an exception
  raw TYPE ...             the bare reply of a peer request the library does not check
  call CHAINCODE ARG...    invoke_chaincode        size N         return N bytes
  query QUERY              get_query_result        nostatus       a Response without status
"""

from __future__ import annotations

import asyncio
import json

from fabric_chaincode_python.fabric_shim.interfaces import Chaincode
from fabric_chaincode_python.fabric_shim.response import error, success
from fabric_protos.peer.proposal_response_pb2 import Response


async def collect(iterator, key=lambda kv: kv.key):
    out = {}
    async for kv in iterator:
        out[key(kv)] = kv.value.decode()
    return out


class AssetChaincode(Chaincode):
    async def init(self, stub):
        await stub.put_state("initialised", b"yes")
        return success("asset_cc initialised")

    async def invoke(self, stub):
        function, params = stub.get_function_and_parameters()
        handler = getattr(self, f"fn_{function}", None)
        if handler is None:
            return error(f"unknown function {function!r}")
        return await handler(stub, *params)

    async def fn_put(self, stub, key, value):
        await stub.put_state(key, value.encode())
        return success(b"")

    async def fn_get(self, stub, key):
        value = await stub.get_state(key)
        if not value:
            response = error(f"asset {key} not found")
            response.status = 404
            return response
        return success(value)

    async def fn_del(self, stub, key):
        await stub.delete_state(key)
        return success(b"")

    async def fn_fill(self, stub, prefix, count):
        for i in range(int(count)):
            await stub.put_state(f"{prefix}{i:04d}", str(i).encode())
        return success(count)

    async def fn_getput(self, stub, key, value):
        previous = await stub.get_state(key)
        await stub.put_state(key, value.encode())
        return success(previous)

    async def fn_range(self, stub, start, end):
        iterator = await stub.get_state_by_range(start, end)
        return success(json.dumps(await collect(iterator)))

    async def fn_page(self, stub, start, end, size):
        iterator = await stub.get_state_by_range_with_pagination(start, end, int(size))
        return success(json.dumps(await collect(iterator)))

    async def fn_history(self, stub, key):
        iterator = await stub.get_history_for_key(key)
        items = []
        async for mod in iterator:
            items.append(
                {
                    "txid": mod.tx_id,
                    "value": mod.value.decode(),
                    "delete": mod.is_delete,
                    "seconds": mod.timestamp.seconds,
                }
            )
        return success(json.dumps(items))

    async def fn_composite(self, stub, object_type, a, b, value):
        key = stub.create_composite_key(object_type, [a, b])
        await stub.put_state(key, value.encode())
        return success(key.encode())

    async def fn_partial(self, stub, object_type, a):
        iterator = await stub.get_state_by_partial_composite_key(object_type, [a])
        found = await collect(
            iterator, key=lambda kv: "/".join(stub.split_composite_key(kv.key)[1])
        )
        return success(json.dumps(found))

    async def fn_sleep(self, stub, seconds, value):
        await asyncio.sleep(float(seconds))
        await stub.put_state(f"sleep-{value}", value.encode())
        return success(value.encode())

    async def fn_event(self, stub, name, payload):
        stub.set_event(name, payload.encode())
        await stub.put_state(f"event-{name}", payload.encode())
        return success(json.dumps([e.event_name for e in stub.get_events()]))

    async def fn_txinfo(self, stub):
        creator = stub.get_creator()
        stamp = stub.get_tx_timestamp()
        return success(
            json.dumps(
                {
                    "channel": stub.get_channel_id(),
                    "txid": stub.get_txid(),
                    "mspid": creator.get("mspid"),
                    "cert": creator.get("idBytes", b"").decode()[:27],
                    "seconds": stamp.seconds if stamp is not None else None,
                }
            )
        )

    async def fn_fail(self, stub, message):
        return error(message)

    async def fn_raise(self, stub, message):
        raise RuntimeError(message)

    async def fn_raw(self, stub, kind, *args):
        """What the library hands back for a request the peer answers with ERROR: it never
        looks at the reply's type, so the ERROR text arrives as if it were the value."""
        if kind == "query":
            reply = await stub.client.handle_get_query_result(
                "", args[0], stub.channel_id, stub.tx_id
            )
        elif kind == "private":  # handle_get_state hands back only the reply's payload
            value = await stub.client.handle_get_state(
                args[0], args[1], stub.channel_id, stub.tx_id
            )
            return success(json.dumps({"value": value.decode()}))
        else:
            return error(f"unknown raw request {kind!r}")
        return success(json.dumps({"type": reply.type, "payload": reply.payload.decode()}))

    async def fn_call(self, stub, chaincode, *args):
        response = await stub.invoke_chaincode(chaincode, list(args))
        return success(json.dumps({"status": response.status, "message": response.message}))

    async def fn_query(self, stub, query):
        iterator = await stub.get_query_result(query)
        return success(json.dumps(await collect(iterator)))

    async def fn_nostatus(self, stub):
        return Response(payload=b"no status set")

    async def fn_size(self, stub, count):
        return success(b"x" * int(count))
