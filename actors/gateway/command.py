"""``ccactors invoke|query --gateway``: a transaction through a Gateway service, signed with an
MSP identity (ours or any Fabric 2.4+ peer's), as Fabric's clients send it.

``invoke`` is the client's submit (endorse, sign, submit, wait for the commit status);
``query`` its evaluate. The identity is an MSP folder (``signcerts/`` and ``keystore/``) and
its MSP id; with ``--tls-root-cert`` the connection is TLS, as a Fabric peer requires (and with
``--tls-cert``/``--tls-key`` mutual TLS, for ``peer.tls.clientAuthRequired``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import grpc
from google.rpc import status_pb2

from protos.gateway import gateway_pb2


def add_arguments(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("through a Gateway service (instead of the admin API)")
    group.add_argument("--gateway", metavar="HOST:PORT", help="the peer's Gateway address")
    group.add_argument(
        "--msp-dir",
        help="the client's MSP folder (signcerts/, keystore/) (default: $CORE_PEER_MSPCONFIGPATH)",
    )
    group.add_argument("--msp-id", help="its MSP id, e.g. Org1MSP (default: $CORE_PEER_LOCALMSPID)")


def error_details(error: grpc.RpcError) -> list[dict[str, str]]:
    """The gateway.ErrorDetail entries of a Gateway error (address, MSP id, message each)."""
    out = []
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        for packed in status_pb2.Status.FromString(value).details:
            detail = gateway_pb2.ErrorDetail()
            if packed.Unpack(detail):
                out.append(
                    {"address": detail.address, "msp_id": detail.msp_id, "message": detail.message}
                )
    return out


def run(args: argparse.Namespace, *, commit: bool) -> tuple[int, dict[str, Any]]:
    """(exit status, what to print); raises ValueError for bad usage."""
    from actors.gateway.client import GatewayClient
    from actors.msp.msp import MSPError, load_signing_identity
    from actors.tls import client_credentials, explain_unavailable

    if not args.msp_dir or not args.msp_id:
        raise ValueError(
            "--gateway needs --msp-dir and --msp-id (the client's identity; or Fabric's "
            "CORE_PEER_MSPCONFIGPATH and CORE_PEER_LOCALMSPID)"
        )
    try:
        identity = load_signing_identity(Path(args.msp_dir), args.msp_id)
    except MSPError as exc:
        raise ValueError(f"--msp-dir: {exc}") from None
    credentials, options = client_credentials(
        args.tls_root_cert, args.tls_cert, args.tls_key, args.tls_host
    )
    timeout = args.timeout or 60.0
    argv = [a.encode() for a in args.args]
    transient = getattr(args, "transient", None)
    with GatewayClient(args.gateway, identity, credentials=credentials, options=options) as client:
        try:
            if commit:
                done = client.submit(
                    args.channel,
                    args.chaincode,
                    argv,
                    timeout=timeout,
                    commit_timeout=getattr(args, "wait_for_event_timeout", None),
                    transient=transient,
                )
                out: dict[str, Any] = {
                    "txid": done.txid,
                    "validation": done.code_name,
                    "block": done.block,
                }
                payload = done.result
                status = 0 if done.code_name == "VALID" else 1
            else:
                payload = client.evaluate(
                    args.channel, args.chaincode, argv, timeout=timeout, transient=transient
                )
                out, status = {}, 0
        except grpc.RpcError as error:
            message = error.details() or ""
            if error.code() == grpc.StatusCode.UNAVAILABLE and not error_details(error):
                # no endorser named: the Gateway itself did not answer
                message = explain_unavailable(
                    message,
                    address=args.gateway,
                    tls=credentials is not None,
                    root_source=getattr(args, "tls_root_source", "--tls-root-cert"),
                ).message
            return 1, {
                "error": error.code().name,
                "message": message,
                "details": error_details(error),
            }
    try:
        out["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        out["payload_base64"] = base64.b64encode(payload).decode()
    return status, out


def render(out: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(out)
    return "\n".join(f"{k}: {v}" for k, v in out.items())
