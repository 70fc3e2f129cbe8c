"""Per-service concurrency limits of the peer's gRPC services: Fabric's
``peer.limits.concurrency.{gatewayService,endorserService,deliverService}``
(internal/peer/node/grpc_limiters.go, a semaphore per service name, refused with
ResourceExhausted "too many requests for /SERVICE, exceeding concurrency limit (N)").

grpcio's synchronous server holds one thread per call in flight (a thread per call that ends
with it: ``actors.transports.grpc.ThreadPerCall``), so the server admits the sum of the limits:
a service at its limit refuses more of its own calls and never takes the room another service
needs (a Submit is admitted while the CommitStatus waits of earlier submits fill the Gateway's
share).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True)
class ConcurrencyLimits:
    """Calls in flight per service. Fabric's defaults are 500, 2500 and 2500; ours keep the
    Endorser and Deliver lower because each call here is a thread, not a goroutine."""

    gateway: int = 500
    endorser: int = 500
    deliver: int = 100

    @property
    def workers(self) -> int:
        """Calls the whole server admits at once: Deliver's share twice, for its admitted
        streams and for as many opened ones waiting for their first request
        (``actors.gateway.deliver``)."""
        return self.gateway + self.endorser + 2 * self.deliver


class ServiceLimiter(grpc.ServerInterceptor):
    """Admits a call of a limited service only while fewer than its limit are in flight."""

    def __init__(self, limits: dict[str, int]) -> None:
        self._limits = {
            service: (limit, threading.BoundedSemaphore(limit)) for service, limit in limits.items()
        }

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        handler = continuation(handler_call_details)
        method = handler_call_details.method  # "/gateway.Gateway/Evaluate"
        service = method.rsplit("/", 1)[0]
        if handler is None or service not in self._limits:
            return handler
        limit, slots = self._limits[service]
        refusal = f"too many requests for {service}, exceeding concurrency limit ({limit})"
        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                if not slots.acquire(blocking=False):
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
                try:
                    yield from behavior(request, context)
                finally:
                    slots.release()

            make = (
                grpc.unary_stream_rpc_method_handler
                if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler
            )
            wrapped = streaming
        else:
            behavior = handler.unary_unary or handler.stream_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                if not slots.acquire(blocking=False):
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
                try:
                    return behavior(request, context)
                finally:
                    slots.release()

            make = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            wrapped = unary
        return make(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


DEFAULT_LIMITS = ConcurrencyLimits()
