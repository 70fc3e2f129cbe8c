"""The ``gateway`` section: signed proposals from N clients through the Gateway service, next to
a bare ceiling that does the same gRPC and signature work, with the share of the CPU that
signing and verifying take.

Rows:

* ``evaluate``: ``Gateway/Evaluate`` of the kv chaincode's ``get`` (client: build and sign a
  proposal; peer: unpack, validate the creator (chain check + signature), simulate).
* ``submit``: ``contract.submit`` as a client does it: Endorse, sign the envelope, Submit, wait
  for CommitStatus (peer: the above, plus the endorsement signature, the orderer's Writers
  check, a signed block, the committer's creator and endorsement checks and the state commit).
* ``bare``: a gRPC unary call whose request the client signs and the server verifies (one
  ECDSA sign + one verify, about the proposal's size) — the floor for ``evaluate``.

Signing and verification costs are measured alone in the same run (median µs of a P-256
sign, a low-S verify and an MSP chain validation), and reported as a share of each row's CPU
per transaction: evaluate does one sign and two verifies (the signature and the certificate
chain), submit four signs and about eight verifies.
"""

from __future__ import annotations

import concurrent.futures
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

EVALUATE_CRYPTO = (1, 2)  # (signs, verifies) per evaluate
SUBMIT_CRYPTO = (4, 8)  # proposal, endorsement, envelope, block; creator x3, chain x3, endorser...


def _identity_tree(out: Path) -> tuple[Path, Path]:
    """Crypto for one org; (peer0's MSP folder, User1's MSP folder)."""
    from actors.msp.cryptogen import generate_org

    generate_org(out, "Org1MSP")
    org = out / "peerOrganizations" / "org1.example.com"
    return (
        org / "peers" / "peer0.org1.example.com" / "msp",
        org / "users" / "User1@org1.example.com" / "msp",
    )


def crypto_costs(user_msp: Path, repeats: int = 300) -> dict[str, float]:
    """Median µs of one sign, one verify and one MSP chain validation, alone."""
    from actors.msp.msp import MSP, load_signing_identity

    user = load_signing_identity(user_msp, "Org1MSP")
    msp = MSP.from_dir(user_msp, "Org1MSP")
    message = os.urandom(600)

    def median_us(fn: Callable[[], Any]) -> float:
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1e6)
        return statistics.median(samples)

    signature = user.sign(message)
    return {
        "sign_us": median_us(lambda: user.sign(message)),
        "verify_us": median_us(lambda: user.verify(message, signature)),
        "validate_us": median_us(lambda: msp.validate(user)),
    }


class _BareServer:
    """The ceiling: a gRPC unary method that verifies the client's signature and answers."""

    def __init__(self, user_msp: Path) -> None:
        from actors.msp.msp import load_signing_identity

        self.identity = load_signing_identity(user_msp, "Org1MSP")
        identity = self.identity

        def handle(request: bytes, context: Any) -> bytes:
            # The signature's length travels in the last byte: a DER signature may itself
            # end in a zero byte, so padding cannot simply be stripped.
            size = request[-1]
            payload, signature = request[:-73], request[-73:-1][:size]
            identity.verify(payload, signature)
            return b"ok"

        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(32))
        self.server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "bench.Bare",
                    {"Call": grpc.unary_unary_rpc_method_handler(handle)},
                )
            ]
        )
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.call = self.channel.unary_unary("/bench.Bare/Call")

    def issue(self, _: int) -> Any:
        payload = os.urandom(600)  # about a signed proposal's size
        signature = self.identity.sign(payload)
        request = payload + signature.ljust(72, b"\0") + bytes([len(signature)])
        return self.call.future(request)

    def close(self) -> None:
        self.channel.close()
        self.server.stop(0)


def run_gateway(bench: Any) -> None:
    """Fill ``bench.results['gateway']`` (rows) and ``['gateway_crypto']``."""
    from actors.config import ChaincodeDefinition, Config
    from actors.gateway.client import GatewayClient, signed_proposal
    from actors.support import ChaincodeSupport
    from protos.gateway import gateway_pb2, gateway_pb2_grpc

    o = bench.o
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ccactors-bench-gateway-") as tmp:
        peer_msp, user_msp = _identity_tree(Path(tmp) / "crypto")
        costs = crypto_costs(user_msp)
        bench.results["gateway_crypto"] = {k: round(v, 1) for k, v in costs.items()}
        config = Config(
            chaincodes=(ChaincodeDefinition("kv", target="examples.kv:KVChaincode"),),
            msp_id="Org1MSP",
            msp_config_path=str(peer_msp),
            batch_timeout=0.01,
            sign_proposals=False,
        )
        support = ChaincodeSupport(config)
        bare = _BareServer(user_msp)
        try:
            address = support.peer.start_gateway("127.0.0.1:0")
            client = GatewayClient(address, bare.identity)
            client.submit("mychannel", "kv", [b"put", b"k", b"v"])  # launches the chaincode
            stub = gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(address))
            pids = _chaincode_pids(support)

            def evaluate(_: int) -> Any:
                txid, proposal = signed_proposal(bare.identity, "mychannel", "kv", [b"get", b"k"])
                return stub.Evaluate.future(
                    gateway_pb2.EvaluateRequest(
                        transaction_id=txid, channel_id="mychannel", proposed_transaction=proposal
                    )
                )

            def submit(i: int) -> Any:
                done: concurrent.futures.Future[Any] = concurrent.futures.Future()
                try:
                    done.set_result(
                        client.submit("mychannel", "kv", [b"put", f"k{i}".encode(), b"v"])
                    )
                except Exception as exc:
                    done.set_exception(exc)
                return done

            def check_submit(result: Any) -> str | None:
                return None if result.code_name == "VALID" else result.code_name

            for clients in o.gateway_clients:
                for rep in range(o.repeats):
                    for name, issue, check, signs_verifies in (
                        ("bare", bare.issue, lambda r: None, (1, 1)),
                        ("evaluate", evaluate, lambda r: None, EVALUATE_CRYPTO),
                        ("submit", submit, check_submit, SUBMIT_CRYPTO),
                    ):
                        window = bench._window(
                            issue, check, clients, pids if name != "bare" else []
                        )
                        summary = window.summary()
                        cpu_us = (
                            (window.peer_cpu + window.chaincode_cpu) / window.completed * 1e6
                            if window.completed
                            else None
                        )
                        signs, verifies = signs_verifies
                        crypto_us = signs * costs["sign_us"] + verifies * costs["verify_us"]
                        rows.append(
                            {
                                "row": name,
                                "clients": clients,
                                "repeat": rep,
                                **summary,
                                "cpu_us_per_tx": cpu_us,
                                "crypto_share": crypto_us / cpu_us if cpu_us else None,
                            }
                        )
                        bench.progress(
                            f"gateway {name} x{clients}: {summary.get('tps', 0):.0f} tx/s"
                        )
        finally:
            bare.close()
            support.shutdown()
    bench.results["gateway"] = _medians(rows)


def _chaincode_pids(support: Any) -> list[int]:
    instance = support.instance_of("kv")
    pid = getattr(instance, "pid", None)
    return [pid] if pid else []


def _medians(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["row"], r["clients"]) for r in rows}, key=lambda k: (k[1], k[0]))
    for row, clients in keys:
        runs = [r for r in rows if (r["row"], r["clients"]) == (row, clients)]
        merged: dict[str, Any] = {"row": row, "clients": clients}
        for field in ("tps", "p50_ms", "p99_ms", "cpu_us_per_tx", "crypto_share"):
            values = [r[field] for r in runs if r.get(field) is not None]
            merged[field] = statistics.median(values) if values else None
        bare = next((r for r in out if r["row"] == "bare" and r["clients"] == clients), None)
        if bare and bare.get("tps") and merged.get("tps") is not None:
            merged["throughput_vs_bare"] = merged["tps"] / bare["tps"]
        out.append(merged)
    return out


def table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the gateway section for the report."""
    headers = ["row", "clients", "tx/s", "tx/s % of bare", "p50 ms", "CPU us/tx"]
    headers.append("sign+verify share")

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows = [
        [
            r["row"],
            str(r["clients"]),
            fmt(r.get("tps"), ".0f"),
            fmt(r.get("throughput_vs_bare"), ".0%") if r["row"] != "bare" else "",
            fmt(r.get("p50_ms"), ".2f"),
            fmt(r.get("cpu_us_per_tx"), ".0f"),
            fmt(r.get("crypto_share"), ".0%"),
        ]
        for r in results.get("gateway", [])
    ]
    return headers, rows


__all__ = ["crypto_costs", "run_gateway", "table"]
