"""What a client that never registers can make the chaincode listener hold: idle streams are
bounded in number (in all and per address), closed when they do not REGISTER in time, may
not send a big message first, and leave no thread behind; a real chaincode still launches."""

from __future__ import annotations

import queue
import resource
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from actors.config import ChaincodeDefinition, Config
from actors.support import ChaincodeSupport
from actors.transports.grpc import REGISTER, client_options, decode, dial, encode
from protos.peer.chaincode_pb2 import ChaincodeID
from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM
from tests.helpers import recv_within

KV = "examples.kv:KVChaincode"
LIMITS: dict[str, Any] = {
    "registration_timeout": 2.0,
    "max_unregistered_streams": 12,
    "max_unregistered_per_host": 8,
    "unregistered_message_size": 4096,
}


class IdleStream:
    """A raw client stream that sends ``first`` (a KEEPALIVE by default) and then nothing."""

    def __init__(self, address: str, first: CM | bytes | None = None) -> None:
        self.channel = grpc.insecure_channel(address, options=client_options())
        self._done = threading.Event()
        first = CM(type=CM.KEEPALIVE) if first is None else first

        def requests() -> Iterator[Any]:
            yield first
            self._done.wait()

        serializer = (lambda b: b) if isinstance(first, bytes) else encode
        self.call = self.channel.stream_stream(
            REGISTER, request_serializer=serializer, response_deserializer=decode
        )(requests())

    def outcome(self, timeout: float = 15.0) -> grpc.StatusCode:
        """How the peer ended the stream (waits for it)."""
        box: list[grpc.StatusCode] = []
        reader = threading.Thread(target=lambda: box.append(self._end()), daemon=True)
        reader.start()
        reader.join(timeout)
        assert box, "the peer kept the stream open"
        return box[0]

    def _end(self) -> grpc.StatusCode:
        try:
            for _ in self.call:
                pass
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def close(self) -> None:
        self._done.set()
        self.call.cancel()
        self.channel.close()


def _server_threads() -> int:
    return sum(t.name.startswith("ccactors-grpc") for t in threading.enumerate())


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.fixture
def dev_peer() -> Iterator[ChaincodeSupport]:
    with ChaincodeSupport(Config(mode="dev", **LIMITS)) as support:
        support.listen("127.0.0.1:0")
        yield support


def test_idle_streams_are_bounded_timed_out_and_leave_no_thread(
    dev_peer: ChaincodeSupport, caplog: pytest.LogCaptureFixture
) -> None:
    address = dev_peer.peer_address()
    assert address is not None and dev_peer.peer.listener is not None
    listener = dev_peer.peer.listener
    threads_before = _server_threads()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ended: queue.Queue[grpc.StatusCode] = queue.Queue()
    streams = [IdleStream(address) for _ in range(40)]
    for stream in streams:
        stream.call.add_done_callback(lambda call: ended.put(call.code()))
    try:
        # Whichever arrive first take the 8 places of this address; the other 32 are
        # refused at once, not queued.
        codes = [ended.get(timeout=10) for _ in range(32)]
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 32
        _wait_for(lambda: listener.unregistered == 8)
        # One thread per admitted stream (a refused one's thread ends just after it).
        _wait_for(lambda: _server_threads() - threads_before == 8)
        # Those admitted are closed when they do not REGISTER in time (the peer can only
        # cancel a stream whose reader is waiting: the reason is in its log).
        codes = [ended.get(timeout=15) for _ in range(8)]
        assert codes == [grpc.StatusCode.CANCELLED] * 8
        assert "no REGISTER within 2s" in caplog.text
        _wait_for(lambda: listener.unregistered == 0)
        _wait_for(lambda: _server_threads() == threads_before)
    finally:
        for stream in streams:
            stream.close()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"server threads {threads_before} -> {_server_threads()}; max RSS {rss_before} -> "
        f"{rss_after} KiB"
    )
    # The peer serves a chaincode that does register, as before.
    registered = IdleStream(
        address, CM(type=CM.REGISTER, payload=ChaincodeID(name="cc").SerializeToString())
    )
    try:
        replies = iter(registered.call)
        assert next(replies).type == CM.REGISTERED
        assert next(replies).type == CM.READY
    finally:
        registered.close()


def test_a_big_message_before_register_is_refused_unread(dev_peer: ChaincodeSupport) -> None:
    address = dev_peer.peer_address()
    assert address is not None
    big = CM(type=CM.REGISTER, payload=b"x" * 100_000)
    stream = IdleStream(address, big)
    try:
        assert stream.outcome() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at most 4096 bytes are accepted" in (stream.call.details() or "")
    finally:
        stream.close()


def test_idle_plaintext_streams_do_not_stop_a_tls_launch() -> None:
    """net mode: TLS on by default; anonymous streams never reach the chaincode's turn."""
    definition = ChaincodeDefinition("kvp", runtime="process", target=KV)
    with ChaincodeSupport(Config(channels=("ch",), chaincodes=(definition,), **LIMITS)) as support:
        support.listen("127.0.0.1:0")
        assert support.tls is not None
        address = support.peer_address()
        assert address is not None
        streams = [IdleStream(address) for _ in range(30)]
        try:
            support.launch("kvp")
            assert support.invoke("ch", None, "kvp", ["put", "k", "v"]).committed
        finally:
            for stream in streams:
                stream.close()


def test_certificate_bound_streams_skip_the_anonymous_queue() -> None:
    """With TLS, streams whose certificate the peer issued are not anonymous: the limits on
    anonymous streams waiting to register do not apply to them."""
    limits = dict(LIMITS, max_unregistered_streams=1, max_unregistered_per_host=1)
    with ChaincodeSupport(Config(mode="dev", tls_enabled=True, **limits)) as support:
        support.listen("127.0.0.1:0")
        address = support.peer_address()
        assert address is not None and support.tls is not None
        client = support.client_tls("kv")
        assert client is not None
        credentials = grpc.ssl_channel_credentials(
            client.root_pem, client.pair.key_pem, client.pair.cert_pem
        )
        holders = []
        for _ in range(3):
            stream, channel = dial(address, credentials=credentials)
            holders.append((stream, channel))
        try:
            last, _ = holders[-1]
            last.send(CM(type=CM.REGISTER, payload=ChaincodeID(name="kv").SerializeToString()))
            assert recv_within(last).type == CM.REGISTERED
        finally:
            for stream, channel in holders:
                stream.close()
                channel.close()
