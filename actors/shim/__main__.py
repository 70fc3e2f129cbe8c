r"""``python -m actors.shim``: run a Python chaincode against a peer over gRPC.

Like a Fabric chaincode binary it dials the peer (``--peer.address`` or ``CORE_PEER_ADDRESS``)
and registers as ``--chaincode-id-name`` (or ``CORE_CHAINCODE_ID_NAME``)::

    python -m actors.shim --peer.address 127.0.0.1:7052 --chaincode-id-name kv \
        examples.kv:KVChaincode

With ``server`` it is a chaincode-as-a-service instead (Fabric 2.x): it listens on
``--chaincode-address`` (``CHAINCODE_SERVER_ADDRESS``) and the peer dials it::

    python -m actors.shim server --chaincode-address 0.0.0.0:9999 --chaincode-id kv \
        examples.kv:KVChaincode

The chaincode is ``module:Class`` (argument, or ``CORE_CHAINCODE_TARGET``). Exit status: 0 when
the peer closed the stream, 1 when the peer could not be reached or the chaincode failed to
load, 2 for usage errors.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from actors.shim.handler import ShimHandler
from actors.shim.loader import load_chaincode
from actors.transports import ConnectionClosed
from actors.transports.grpc import (
    CONNECT,
    GrpcStream,
    ListenError,
    bind,
    dial,
    server_options,
    stream_handler,
)

log = logging.getLogger("actors.shim")


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def client_credentials() -> grpc.ChannelCredentials | None:
    """TLS from Fabric's environment: CORE_PEER_TLS_ENABLED, CORE_PEER_TLS_ROOTCERT_FILE and
    the client key/cert (raw PEM ``CORE_TLS_CLIENT_*_FILE``, or base64 PEM ``*_PATH``)."""
    if not _env_bool("CORE_PEER_TLS_ENABLED"):
        return None
    import base64

    root = _read(os.environ["CORE_PEER_TLS_ROOTCERT_FILE"])
    key = cert = None
    if os.environ.get("CORE_TLS_CLIENT_KEY_FILE"):
        key = _read(os.environ["CORE_TLS_CLIENT_KEY_FILE"])
        cert = _read(os.environ["CORE_TLS_CLIENT_CERT_FILE"])
    elif os.environ.get("CORE_TLS_CLIENT_KEY_PATH"):
        key = base64.b64decode(_read(os.environ["CORE_TLS_CLIENT_KEY_PATH"]))
        cert = base64.b64decode(_read(os.environ["CORE_TLS_CLIENT_CERT_PATH"]))
    return grpc.ssl_channel_credentials(root, key, cert)


def run_client(address: str, name: str, chaincode: Any, dial_timeout: float = 10.0) -> int:
    """Dial the peer, register, serve until the peer closes the stream."""
    # Like the Node shim's --ssl-target-name-override: the name to expect in the peer's
    # certificate when the address dialled is not in it (a container on a bridge network).
    override = os.environ.get("CORE_PEER_TLS_SERVERHOSTOVERRIDE")
    options = [("grpc.ssl_target_name_override", override)] if override else None
    try:
        stream, channel = dial(
            address, credentials=client_credentials(), timeout=dial_timeout, options=options
        )
    except ConnectionClosed as exc:
        log.error("cannot connect to peer at %s: %s", address, exc)
        return 1
    log.info("chaincode %s connected to peer at %s", name, address)
    handler = ShimHandler(stream, chaincode, name)
    signal.signal(signal.SIGTERM, lambda *_: handler.stop())
    try:
        handler.run()
    finally:
        channel.close()
    if handler.error:
        log.error("chaincode %s stopped: %s", name, handler.error)
    return 0


class _ChaincodeServicer:
    def __init__(self, chaincode: Any, name: str) -> None:
        self.chaincode = chaincode
        self.name = name

    def Connect(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        stream = GrpcStream(context.peer())
        stream.attach(request_iterator)
        context.add_callback(stream.close)
        handler = ShimHandler(stream, self.chaincode, self.name)
        threading.Thread(target=handler.run, name=f"shim-{self.name}", daemon=True).start()
        yield from stream.outgoing()


def run_server(address: str, name: str, chaincode: Any) -> int:
    """Chaincode-as-a-service: serve ``protos.Chaincode/Connect`` until SIGTERM/SIGINT."""
    server = grpc.server(ThreadPoolExecutor(64), options=server_options())
    servicer = _ChaincodeServicer(chaincode, name)
    server.add_generic_rpc_handlers((stream_handler(CONNECT, servicer.Connect),))
    try:
        bound = bind(server, address)
    except ListenError as exc:
        print(f"error: --chaincode-address {address}: {exc.reason}", file=sys.stderr)
        return 2
    server.start()
    print(f"chaincode {name} serving on {bound}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait(5)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    serve = bool(argv) and argv[0] == "server"
    if serve:
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="python -m actors.shim" + (" server" if serve else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Serve a Python chaincode (module:Class) as a chaincode service (Fabric 2.x):\n"
            "listen on --chaincode-address; the peer dials it (an `external` chaincode)."
            if serve
            else "Run a Python chaincode (module:Class) against a Fabric-compatible peer: dial\n"
            "it at --peer.address and register as --chaincode-id-name (a chaincode binary)."
        ),
        epilog=None
        if serve
        else "chaincode as a service instead (the peer dials it):\n"
        "  python -m actors.shim server --chaincode-address HOST:PORT --chaincode-id ID "
        "module:Class\n  (see python -m actors.shim server --help)",
    )
    parser.add_argument("target", nargs="?", default=os.environ.get("CORE_CHAINCODE_TARGET"))
    if serve:
        parser.add_argument(
            "--chaincode-address", default=os.environ.get("CHAINCODE_SERVER_ADDRESS")
        )
        parser.add_argument("--chaincode-id", default=os.environ.get("CHAINCODE_ID"))
    else:
        parser.add_argument(
            "--peer.address",
            "--peer-address",
            dest="peer_address",
            default=os.environ.get("CORE_PEER_ADDRESS"),
        )
        parser.add_argument(
            "--chaincode-id-name", dest="name", default=os.environ.get("CORE_CHAINCODE_ID_NAME")
        )
    parser.add_argument("--dial-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("CORE_CHAINCODE_LOGGING_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.target:
        parser.error("the chaincode (module:Class) is required (argument or CORE_CHAINCODE_TARGET)")
    if serve and not (args.chaincode_address and args.chaincode_id):
        parser.error("--chaincode-address and --chaincode-id are required")
    if not serve and not (args.peer_address and args.name):
        parser.error("--peer.address and --chaincode-id-name are required")
    try:
        chaincode = load_chaincode(args.target, os.getcwd())
    except Exception as exc:
        log.error("cannot load chaincode %s: %s: %s", args.target, type(exc).__name__, exc)
        return 1
    if serve:
        return run_server(args.chaincode_address, args.chaincode_id, chaincode)
    address = args.peer_address.removeprefix("grpc://").removeprefix("grpcs://")
    return run_client(address, args.name, chaincode, args.dial_timeout)


if __name__ == "__main__":
    sys.exit(main())
