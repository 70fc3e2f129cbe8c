"""The request servers alone: a message, a transaction context over a real simulator, limits;
no actor, no connection (as Fabric tests its QueryResponseGenerator)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import requests
from actors.errors import ChaincodeStreamTerminated, TransactionFailed
from actors.ledger import LedgerError, LedgerManager
from actors.requests import Limits, RequestError
from actors.txcontexts import ExecuteResult, TXContext
from protos.ledger.queryresult import kv_query_result_pb2 as queryresult
from protos.peer import chaincode_pb2
from protos.peer import chaincode_shim_pb2 as shim
from protos.peer.proposal_pb2 import SignedProposal
from protos.peer.proposal_response_pb2 import Response

CM = shim.ChaincodeMessage
NS = "kv"


@pytest.fixture
def ledgers() -> Iterator[LedgerManager]:
    manager = LedgerManager(None)
    ledger = manager.get("ch")
    sim = ledger.new_simulator("seed")
    for i in range(25):
        sim.put_state(NS, f"k{i:02}", f"v{i}".encode())
    ledger.commit("seed", sim.get_results())
    yield manager
    manager.close()


def context(ledgers: LedgerManager, txid: str = "tx1", **kwargs: Any) -> TXContext:
    simulator = ledgers.get("ch").new_simulator(txid)
    return TXContext(NS, "ch", txid, simulator, SignedProposal(), **kwargs)


def message(kind: int, payload: Any, txid: str = "tx1") -> CM:
    return CM(type=kind, payload=payload.SerializeToString(), txid=txid, channel_id="ch")


DEFAULT_LIMITS = Limits()


def serve(msg: CM, ctx: TXContext, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return requests.SERVERS[msg.type](msg, ctx, limits)


def keys(response: shim.QueryResponse) -> list[str]:
    return [queryresult.KV.FromString(r.resultBytes).key for r in response.results]


def test_reads_see_committed_state_and_writes_go_to_the_read_write_set(
    ledgers: LedgerManager,
) -> None:
    ctx = context(ledgers)
    assert serve(message(CM.GET_STATE, shim.GetState(key="k03")), ctx) == b"v3"
    assert serve(message(CM.GET_STATE, shim.GetState(key="nope")), ctx) == b""
    assert serve(message(CM.PUT_STATE, shim.PutState(key="new", value=b"x")), ctx) == b""
    assert serve(message(CM.DEL_STATE, shim.DelState(key="k04")), ctx) == b""
    multiple = shim.GetStateMultipleResult.FromString(
        serve(message(CM.GET_STATE_MULTIPLE, shim.GetStateMultiple(keys=["k01", "x"])), ctx)
    )
    assert list(multiple.values) == [b"v1", b""]
    (ns,) = ctx.simulator.get_results().ns_results
    assert {w.key: w.value for w in ns.writes} == {"new": b"x", "k04": None}
    assert {r.key for r in ns.reads} == {"k03", "nope", "k01", "x"}


def test_private_data_needs_a_collection_store(ledgers: LedgerManager) -> None:
    ctx = context(ledgers)
    with pytest.raises(RequestError, match="no collection store"):
        serve(message(CM.GET_STATE, shim.GetState(key="k", collection="secret")), ctx)
    with pytest.raises(RequestError, match="only applicable for private data"):
        serve(message(CM.PURGE_PRIVATE_DATA, shim.DelState(key="k")), ctx)


def test_a_range_comes_in_batches_with_has_more_only_when_more_exist(
    ledgers: LedgerManager,
) -> None:
    ctx = context(ledgers)
    limits = Limits(query_batch_size=10, total_query_limit=1000)
    first = shim.QueryResponse.FromString(
        serve(message(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="k00")), ctx, limits)
    )
    assert keys(first) == [f"k{i:02}" for i in range(10)] and first.has_more
    assert list(ctx.iterators) == [first.id]
    pages = [first]
    while pages[-1].has_more:
        pages.append(
            shim.QueryResponse.FromString(
                serve(message(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)), ctx, limits)
            )
        )
    assert [len(p.results) for p in pages] == [10, 10, 5]  # no empty last page
    assert ctx.iterators == {}  # exhausted: forgotten, as Fabric does
    with pytest.raises(RequestError, match="query iterator not found"):
        serve(message(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)), ctx, limits)
    closed = serve(message(CM.QUERY_STATE_CLOSE, shim.QueryStateClose(id=first.id)), ctx)
    assert shim.QueryResponse.FromString(closed).id == first.id  # closing twice succeeds


def test_a_query_given_a_list_moves_on_at_every_batch(ledgers: LedgerManager) -> None:
    """A simulator may return its results as a list: each QUERY_STATE_NEXT continues it."""
    from actors.ledger import KV, KeyModification

    class ListSimulator:
        def get_history_for_key(self, namespace: str, key: str) -> list[KeyModification]:
            return [KeyModification(f"tx{i}", b"v", 1.0, False) for i in range(5)]

    ctx = TXContext(NS, "ch", "tx1", ListSimulator(), SignedProposal())  # type: ignore[arg-type]
    limits = Limits(query_batch_size=2, total_query_limit=1000)
    first = shim.QueryResponse.FromString(
        serve(message(CM.GET_HISTORY_FOR_KEY, shim.GetHistoryForKey(key="k")), ctx, limits)
    )
    seen = [queryresult.KeyModification.FromString(r.resultBytes).tx_id for r in first.results]
    while ctx.iterators:
        more = serve(message(CM.QUERY_STATE_NEXT, shim.QueryStateNext(id=first.id)), ctx, limits)
        for result in shim.QueryResponse.FromString(more).results:
            seen.append(queryresult.KeyModification.FromString(result.resultBytes).tx_id)
        assert len(seen) <= 5
    assert seen == [f"tx{i}" for i in range(5)]
    cursor = requests._kv_cursor(NS, [KV(NS, f"k{i}", b"v") for i in range(3)])
    batches = [cursor.take(1), cursor.take(2)]  # entries of a serialized QueryResponse
    assert [keys(shim.QueryResponse.FromString(b"".join(b))) for b in batches] == [
        ["k0"],
        ["k1", "k2"],
    ]


@settings(max_examples=80, deadline=None)
@given(
    namespace=st.text(min_size=1, max_size=150),
    pairs=st.lists(st.tuples(st.text(max_size=200), st.binary(max_size=300)), max_size=5),
    has_more=st.booleans(),
    metadata=st.binary(max_size=200),
)
def test_query_responses_are_the_bytes_protobuf_writes(
    namespace: str, pairs: list[tuple[str, bytes]], has_more: bool, metadata: bytes
) -> None:
    # The request servers write QueryResponses by hand: they must be protobuf's own bytes.
    results = [
        shim.QueryResultBytes(
            resultBytes=queryresult.KV(namespace=namespace, key=k, value=v).SerializeToString()
        )
        for k, v in pairs
    ]
    expected = shim.QueryResponse(
        results=results, has_more=has_more, id="q1", metadata=metadata
    ).SerializeToString()
    encoded = requests._kv_results(namespace, pairs)
    assert requests._response(encoded, has_more, "q1", metadata) == expected


def test_a_range_response_names_the_chaincode_and_holds_every_value(
    ledgers: LedgerManager,
) -> None:
    ledger = ledgers.get("ch")
    sim = ledger.new_simulator("seed2")
    for key, value in {"long" + "k" * 200: b"v" * 20000, "utf8-\u00e9": b"\x00\x01"}.items():
        sim.put_state(NS, key, value)
    ledger.commit("seed2", sim.get_results())
    out = serve(
        message(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(startKey="l")), context(ledgers)
    )
    response = shim.QueryResponse.FromString(out)
    assert response.SerializeToString() == out
    kvs = [queryresult.KV.FromString(r.resultBytes) for r in response.results]
    assert [(kv.namespace, kv.key, kv.value) for kv in kvs] == [
        (NS, "long" + "k" * 200, b"v" * 20000),
        (NS, "utf8-\u00e9", b"\x00\x01"),
    ]


def test_the_total_query_limit_caps_a_range(ledgers: LedgerManager) -> None:
    ctx = context(ledgers)
    limits = Limits(query_batch_size=100, total_query_limit=7)
    response = shim.QueryResponse.FromString(
        serve(message(CM.GET_STATE_BY_RANGE, shim.GetStateByRange()), ctx, limits)
    )
    assert len(response.results) == 7 and not response.has_more


def test_a_paginated_range_returns_one_page_and_a_bookmark(ledgers: LedgerManager) -> None:
    ctx = context(ledgers)
    meta = shim.QueryMetadata(pageSize=4).SerializeToString()
    response = shim.QueryResponse.FromString(
        serve(message(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(metadata=meta)), ctx)
    )
    assert keys(response) == ["k00", "k01", "k02", "k03"] and not response.has_more
    assert shim.QueryResponseMetadata.FromString(response.metadata).bookmark == "k04"
    assert ctx.iterators == {}
    # a page size of 0 or less means no page limit: everything from the bookmark on
    unbounded = shim.QueryMetadata(pageSize=-1, bookmark="k08").SerializeToString()
    rest = shim.QueryResponse.FromString(
        serve(message(CM.GET_STATE_BY_RANGE, shim.GetStateByRange(metadata=unbounded)), ctx)
    )
    assert keys(rest)[0] == "k08" and len(keys(rest)) == len(set(keys(rest))) > 1


def test_metadata_round_trips_and_an_empty_key_is_refused(ledgers: LedgerManager) -> None:
    ctx = context(ledgers)
    put = shim.PutStateMetadata(key="k01", metadata=shim.StateMetadata(metakey="m", value=b"1"))
    assert serve(message(CM.PUT_STATE_METADATA, put), ctx) == b""
    with pytest.raises(RequestError, match="metadata key is empty"):
        serve(message(CM.PUT_STATE_METADATA, shim.PutStateMetadata(key="k01")), ctx)
    (ns,) = ctx.simulator.get_results().ns_results
    assert [(w.key, dict(w.entries)) for w in ns.metadata_writes] == [("k01", {"m": b"1"})]


def test_ending_the_context_closes_its_open_queries_and_its_simulator(
    ledgers: LedgerManager,
) -> None:
    ctx = context(ledgers)
    serve(message(CM.GET_STATE_BY_RANGE, shim.GetStateByRange()), ctx, Limits(5, 100))
    closed: list[bool] = []

    class Open:
        def __next__(self) -> Any:
            raise StopIteration

        def close(self) -> None:
            closed.append(True)

    ctx.iterators["other"] = requests.Cursor(Open(), lambda n: [])
    assert ctx.end(error=ChaincodeStreamTerminated("gone"))
    assert closed == [True] and ctx.iterators == {}
    with pytest.raises(LedgerError, match=r"after calling Done\(\)"):
        ctx.simulator.get_state(NS, "k01")
    assert not ctx.end(result="late")  # once only
    assert isinstance(ctx.future.exception(), ChaincodeStreamTerminated)


def test_a_callee_sharing_the_simulator_does_not_end_it(ledgers: LedgerManager) -> None:
    caller = context(ledgers)
    callee = TXContext(NS, "ch", "tx1", caller.simulator, owns_simulator=False)
    assert callee.end(result="ok")
    assert caller.simulator.get_state(NS, "k01") == b"v1"


class Invoker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, list[bytes], Any]] = []
        self.future: Future[ExecuteResult] = Future()

    def execute_async(
        self,
        channel: str,
        txid: str | None,
        chaincode: str,
        args: Sequence[bytes | str],
        *,
        proposal: SignedProposal | None = None,
        simulator: Any = None,
    ) -> Future[ExecuteResult]:
        self.calls.append((channel, txid or "", chaincode, list(args), simulator))
        return self.future


def test_invoke_chaincode_shares_the_simulator_on_one_channel(ledgers: LedgerManager) -> None:
    ctx, invoker = context(ledgers), Invoker()
    spec = chaincode_pb2.ChaincodeSpec(
        chaincode_id=chaincode_pb2.ChaincodeID(name="other:1.0"),
        input=chaincode_pb2.ChaincodeInput(args=[b"get", b"k"]),
    )
    msg = message(CM.INVOKE_CHAINCODE, spec)
    assert requests.invoke_chaincode(msg, ctx, invoker, ledgers) is invoker.future
    # The name goes on as written: the execute path resolves it and ignores the version
    # (dev mode waits for a registration as name:version).
    assert invoker.calls == [("ch", "tx1", "other:1.0", [b"get", b"k"], ctx.simulator)]

    invoker.future.set_result(ExecuteResult(Response(status=200, payload=b"v"), None, None, "tx1"))
    payload, error = requests.callee_reply(msg, ctx, invoker.future)
    inner = CM.FromString(payload or b"")
    assert error is None and inner.type == CM.COMPLETED
    assert Response.FromString(inner.payload).payload == b"v"


def test_invoke_chaincode_errors(ledgers: LedgerManager) -> None:
    ctx, invoker = context(ledgers), Invoker()
    nameless = message(CM.INVOKE_CHAINCODE, chaincode_pb2.ChaincodeSpec())
    with pytest.raises(RequestError, match="chaincode name is empty"):
        requests.invoke_chaincode(nameless, ctx, invoker, ledgers)
    other = chaincode_pb2.ChaincodeSpec(chaincode_id=chaincode_pb2.ChaincodeID(name="cc/nochan"))
    with pytest.raises(Exception, match="nochan"):  # the ledger names the missing channel
        requests.invoke_chaincode(message(CM.INVOKE_CHAINCODE, other), ctx, invoker, ledgers)
    assert invoker.calls == []

    failed: Future[ExecuteResult] = Future()
    failed.set_exception(TransactionFailed("transaction returned with failure: boom"))
    payload, error = requests.callee_reply(nameless, ctx, failed)
    inner = CM.FromString(payload or b"")
    assert error is None and inner.type == CM.ERROR and inner.payload == b"boom"
    gone: Future[ExecuteResult] = Future()
    gone.set_exception(ChaincodeStreamTerminated("chaincode stream terminated: x"))
    assert requests.callee_reply(nameless, ctx, gone) == (
        None,
        "execute failed: chaincode stream terminated: x",
    )
