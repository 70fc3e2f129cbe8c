"""The admin service under clients that hold on: event streams are capped below the worker
count (so list and query still answer), a subscriber that does not read is dropped with a
reason instead of growing the peer's memory, and a taken port is refused."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from actors.admin import AdminClient, AdminServicer, serve_admin
from actors.config import ChaincodeDefinition, Config
from actors.events import LifecycleEvent
from actors.support import ChaincodeSupport
from actors.transports.grpc import ListenError
from protos.admin import admin_pb2, admin_pb2_grpc


@pytest.fixture
def support() -> Iterator[ChaincodeSupport]:
    definition = ChaincodeDefinition("kv", target="examples.kv:KVChaincode")
    with ChaincodeSupport(
        Config(channels=("ch",), chaincodes=(definition,), max_event_subscribers=4)
    ) as peer:
        yield peer


def test_event_streams_cannot_take_every_worker(support: ChaincodeSupport) -> None:
    server, address = serve_admin(support, "127.0.0.1:0", max_workers=8)
    channel = grpc.insecure_channel(address)
    stub = admin_pb2_grpc.AdminStub(channel)
    ended: queue.Queue[grpc.StatusCode] = queue.Queue()
    calls = [stub.Events(admin_pb2.EventsRequest()) for _ in range(12)]
    for call in calls:
        call.add_done_callback(lambda c: ended.put(c.code()))
    try:
        # Whichever arrive first take the four places; the other eight are refused at once.
        codes = [ended.get(timeout=10) for _ in range(8)]
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 8
        assert ended.empty()
        refused = [c for c in calls if c.done()]
        assert "4 event streams are open already" in (refused[0].details() or "")
        # The four open streams leave workers for the rest of the service.
        client = AdminClient(address, timeout=10)
        assert [c.name for c in client.list().chaincodes] == ["kv"]
        assert client.invoke("ch", "kv", [b"put", b"k", b"v"]).validation == "VALID"
    finally:
        for call in calls:
            call.cancel()
        channel.close()
        server.stop(0).wait(5)


class _Context:
    """The parts of a gRPC servicer context that Events uses."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.cancelled = False

    def is_active(self) -> bool:
        return True

    def add_callback(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def cancel(self) -> None:
        self.cancelled = True

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise RuntimeError(f"{code.name}: {details}")


def test_a_subscriber_that_does_not_read_is_dropped(support: ChaincodeSupport) -> None:
    servicer = AdminServicer(support, backlog=5)
    context = _Context()
    stream = servicer.Events(admin_pb2.EventsRequest(), context)
    # The stream subscribes when first pulled: publish once it waits.
    first = LifecycleEvent("kv", "launching")
    support.scheduler.call_later(0.2, lambda: support.events.publish(first))
    assert next(stream).kind == "launching"
    for i in range(50):  # and these are not
        support.events.publish(LifecycleEvent("kv", "exited", detail=str(i)))
    with pytest.raises(RuntimeError, match=r"RESOURCE_EXHAUSTED: .*more than 5 events"):
        next(stream)
    assert servicer._subscribers == 0
    # The dropped subscriber no longer receives (or keeps) anything.
    support.events.publish(LifecycleEvent("kv", "ready"))


def test_admin_refuses_a_taken_port(support: ChaincodeSupport) -> None:
    server, address = serve_admin(support, "127.0.0.1:0")
    try:
        with pytest.raises(ListenError, match="already in use"):
            serve_admin(support, address)
        # gRPC would take port 99999 as 34463 (modulo 65536): refused instead.
        with pytest.raises(ListenError, match="expected HOST:PORT"):
            serve_admin(support, "127.0.0.1:99999")
    finally:
        server.stop(0).wait(5)
