"""What idle chaincode streams cost the peer: threads and memory before, while and after a
client holds N streams open without registering (or sends one big message first).

    python -m bench.idle_streams 1100            # 1,100 streams that only send KEEPALIVE
    python -m bench.idle_streams 10 --big 99     # 10 streams that send 99 MiB before REGISTER

The peer runs in this process (dev mode, plaintext: what the limits of ``actors.listener``
are for; in net mode TLS stops such a client at the handshake); the client is a child
process, so that its own threads and memory are not counted. Loopback only; it stops by
itself after ``--hold`` seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import threading
import time
from collections.abc import Iterator


def _memory_kib() -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of this process."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line.split(":")[0]] = int(line.split()[1])
    return found


def _client(address: str, streams: int, hold: float, big: int) -> None:
    import grpc

    from actors.transports.grpc import REGISTER, client_options, decode, encode
    from protos.peer.chaincode_shim_pb2 import ChaincodeMessage as CM

    done = threading.Event()
    first = CM(type=CM.REGISTER, payload=b"x" * big) if big else CM(type=CM.KEEPALIVE)

    def requests() -> Iterator[CM]:
        yield first
        done.wait()

    # One connection per stream, as many separate clients would open.
    options = [*client_options(), ("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.insecure_channel(address, options=options) for _ in range(streams)]
    calls = [
        channel.stream_stream(REGISTER, request_serializer=encode, response_deserializer=decode)(
            requests()
        )
        for channel in channels
    ]
    time.sleep(hold)
    done.set()
    for call in calls:
        call.cancel()
    for channel in channels:
        channel.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("streams", type=int)
    parser.add_argument("--big", type=float, default=0, help="MiB sent before REGISTER")
    parser.add_argument("--hold", type=float, default=25.0, help="seconds the client holds")
    args = parser.parse_args(argv)

    from actors.config import Config
    from actors.support import ChaincodeSupport

    with ChaincodeSupport(Config(mode="dev", tls_enabled=False)) as support:
        listener = support.listen("127.0.0.1:0")
        time.sleep(1)
        print(f"before: {threading.active_count()} threads, {_memory_kib()} KiB", flush=True)
        client = multiprocessing.get_context("spawn").Process(
            target=_client,
            args=(listener.dial_address(), args.streams, args.hold, int(args.big * 2**20)),
        )
        client.start()
        most = 0
        while client.is_alive():
            most = max(most, threading.active_count())
            time.sleep(0.5)
        client.join()
        time.sleep(3)
        print(f"while: at most {most} threads", flush=True)
        print(f"after: {threading.active_count()} threads, {_memory_kib()} KiB", flush=True)


if __name__ == "__main__":
    main()
