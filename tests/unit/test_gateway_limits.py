"""ServiceLimiter: Fabric's per-service concurrency limits on a real gRPC server."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from actors.gateway.limits import ConcurrencyLimits, ServiceLimiter

WAIT = 10.0


@pytest.fixture
def server() -> Iterator[tuple[grpc.Channel, threading.Event, threading.Semaphore]]:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def hold(request: bytes, context: Any) -> bytes:
        entered.release()
        release.wait(WAIT)
        return b"held"

    def stream(request: bytes, context: Any) -> Iterator[bytes]:
        entered.release()
        yield b"first"
        release.wait(WAIT)

    def echo(request: bytes, context: Any) -> bytes:
        return request

    limits = ConcurrencyLimits(gateway=2, endorser=1, deliver=1)
    server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(limits.workers),
        interceptors=[ServiceLimiter({"/test.Limited": 2})],
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "test.Limited",
                {
                    "Hold": grpc.unary_unary_rpc_method_handler(hold),
                    "Stream": grpc.unary_stream_rpc_method_handler(stream),
                },
            ),
            grpc.method_handlers_generic_handler(
                "test.Free", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
            ),
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, release, entered
    finally:
        release.set()
        channel.close()
        server.stop(0)


def test_a_service_at_its_limit_refuses_its_own_calls_only(server: Any) -> None:
    channel, release, entered = server
    hold = channel.unary_unary("/test.Limited/Hold")
    stream = channel.unary_stream("/test.Limited/Stream")
    held = hold.future(b"", timeout=WAIT)
    streaming = stream(b"", timeout=WAIT)
    assert next(streaming) == b"first"  # a stream holds its slot until it ends
    assert entered.acquire(timeout=WAIT) and entered.acquire(timeout=WAIT)

    with pytest.raises(grpc.RpcError) as refused:
        hold(b"", timeout=WAIT)
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused.value.details() == (
        "too many requests for /test.Limited, exceeding concurrency limit (2)"
    )
    # another service is not limited by this one's share
    assert channel.unary_unary("/test.Free/Echo")(b"hi", timeout=WAIT) == b"hi"

    release.set()
    assert held.result(WAIT) == b"held"
    assert list(streaming) == []
    # the slots came back: two more calls are admitted
    assert hold(b"", timeout=WAIT) == b"held"
    assert [hold.future(b"", timeout=WAIT).result(WAIT) for _ in range(2)] == [b"held"] * 2


def test_the_pool_holds_every_share() -> None:
    assert ConcurrencyLimits(gateway=3, endorser=4, deliver=5).workers == 17
    assert ConcurrencyLimits().gateway == 500  # Fabric's gatewayService default
