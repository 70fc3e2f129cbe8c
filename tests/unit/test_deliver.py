"""The Deliver service's pure parts: Fabric's seek semantics and filtered blocks."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from actors.gateway.blocks import new_block
from actors.gateway.deliver import (
    DeliverService,
    FilterError,
    SeekRange,
    _Refused,
    filtered_block,
    seek_range,
)
from protos.common.common_pb2 import (
    BAD_REQUEST,
    CONFIG,
    ENDORSER_TRANSACTION,
    TRANSACTIONS_FILTER,
    ChannelHeader,
    Envelope,
    Header,
    Payload,
)
from protos.orderer.ab_pb2 import SeekInfo
from protos.peer import events_pb2_grpc
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.proposal_pb2 import ChaincodeAction
from protos.peer.proposal_response_pb2 import ProposalResponsePayload
from protos.peer.transaction_pb2 import (
    MVCC_READ_CONFLICT,
    NOT_VALIDATED,
    VALID,
    ChaincodeActionPayload,
    Transaction,
)


def pos(spec: Any) -> dict[str, Any]:
    if spec in ("oldest", "newest", "next_commit", "none"):
        return {} if spec == "none" else {spec: {}}
    return {"specified": {"number": spec}}


def info(start: Any, stop: Any) -> SeekInfo:
    return SeekInfo(start=pos(start), stop=pos(stop))


@pytest.mark.parametrize(
    ("start", "stop", "height", "expected"),
    [
        ("oldest", "oldest", 5, SeekRange(0, 0)),
        ("oldest", "newest", 5, SeekRange(0, 4)),
        ("newest", "newest", 5, SeekRange(4, 4)),  # one block, whatever commits meanwhile
        ("newest", 10, 5, SeekRange(4, 10)),
        (2, 3, 5, SeekRange(2, 3)),
        (5, 2**53, 5, SeekRange(5, 2**53)),  # the next block: waits for it
        (6, 9, 5, SeekRange(0, 9, found=False)),  # beyond the height: NOT_FOUND on the first read
        (6, 2, 5, SeekRange(0, 2, found=False)),  # Fabric compares the stop with 0 then
        ("next_commit", 2**53, 5, SeekRange(5, 2**53)),
        ("next_commit", "newest", 5, SeekRange(5, 4)),  # stop below start: never reached
        ("oldest", "newest", 0, SeekRange(0, -1)),
        ("newest", "newest", 0, SeekRange(0, 0)),
        ("none", 3, 5, SeekRange(0, 3, found=False)),  # a start with no type
        (1, "none", 5, SeekRange(1, 0)),  # a stop with no type is Go's zero
        (3, "oldest", 5, SeekRange(3, 3)),
    ],
)
def test_seek_ranges_as_fabric(start: Any, stop: Any, height: int, expected: SeekRange) -> None:
    assert seek_range(info(start, stop), height) == expected


def test_a_specified_stop_before_the_start_is_a_bad_request() -> None:
    with pytest.raises(_Refused) as refused:
        seek_range(info(3, 2), 5)
    assert refused.value.status == BAD_REQUEST
    with pytest.raises(_Refused):
        seek_range(info("next_commit", 4), 5)


def envelope(txid: str, kind: int, data: bytes = b"") -> bytes:
    header = ChannelHeader(type=kind, channel_id="ch", tx_id=txid).SerializeToString()
    payload = Payload(header=Header(channel_header=header), data=data).SerializeToString()
    return Envelope(payload=payload).SerializeToString()


def transaction(*events: ChaincodeEvent | None) -> bytes:
    tx = Transaction()
    for event in events:
        action = ChaincodeAction(events=b"" if event is None else event.SerializeToString())
        prp = ProposalResponsePayload(extension=action.SerializeToString())
        cap = ChaincodeActionPayload()
        cap.action.proposal_response_payload = prp.SerializeToString()
        tx.actions.add(payload=cap.SerializeToString())
    return tx.SerializeToString()


def test_filtered_block_keeps_ids_codes_and_events_without_payloads() -> None:
    event = ChaincodeEvent(chaincode_id="cc", tx_id="t1", event_name="E", payload=b"secret")
    block = new_block(
        7,
        b"",
        [
            envelope("t1", ENDORSER_TRANSACTION, transaction(event, None)),
            envelope("t2", ENDORSER_TRANSACTION, transaction()),
            b"",  # nothing there: skipped
            b"\xff",  # not an envelope: skipped, as Fabric logs and skips it
            envelope("c1", CONFIG, b"anything"),
            envelope("t3", ENDORSER_TRANSACTION, transaction()),
        ],
    )
    block.metadata.metadata[TRANSACTIONS_FILTER] = bytes([VALID, MVCC_READ_CONFLICT, 0, 0, 0])
    out = filtered_block(block)
    assert (out.channel_id, out.number) == ("ch", 7)
    got = [(t.txid, t.type, t.tx_validation_code) for t in out.filtered_transactions]
    assert got == [
        ("t1", ENDORSER_TRANSACTION, VALID),
        ("t2", ENDORSER_TRANSACTION, MVCC_READ_CONFLICT),
        ("c1", CONFIG, VALID),
        ("t3", ENDORSER_TRANSACTION, NOT_VALIDATED),  # no code for it in the filter
    ]
    first = out.filtered_transactions[0]
    [action] = first.transaction_actions.chaincode_actions  # the action without an event: none
    assert action.chaincode_event == ChaincodeEvent(chaincode_id="cc", tx_id="t1", event_name="E")
    assert out.filtered_transactions[1].WhichOneof("Data") == "transaction_actions"
    assert out.filtered_transactions[2].WhichOneof("Data") is None  # not an endorser tx


def test_a_transaction_that_cannot_be_read_fails_the_filtered_block() -> None:
    block = new_block(0, b"", [envelope("t", ENDORSER_TRANSACTION, b"\xff")])
    with pytest.raises(FilterError, match="error unmarshal transaction payload"):
        filtered_block(block)


def test_a_stream_opened_while_the_peer_stops_is_unavailable() -> None:
    """The scheduler that times first requests is stopped: the stream ends UNAVAILABLE (not
    UNKNOWN with a traceback) and gives back its place among the opening streams."""

    def stopped(delay: float, action: Callable[[], None]) -> Any:
        raise RuntimeError("scheduler stopped")

    service = DeliverService(
        msps=lambda _: None, stores=lambda _: None, max_streams=1, call_later=stopped
    )
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
    events_pb2_grpc.add_DeliverServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = events_pb2_grpc.DeliverStub(channel)
            for _ in range(3):  # more than max_streams: each gave its place back
                with pytest.raises(grpc.RpcError) as ended:
                    list(stub.DeliverFiltered(iter([]), timeout=10))
                assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
                assert ended.value.details() == "the peer is stopping"
    finally:
        server.stop(None)
