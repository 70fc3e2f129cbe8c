"""Run a Hyperledger Caliper 0.6 round (npm ``@hyperledger/caliper-cli``, Fabric connector on the
gateway binding ``fabric:2.4``, unmodified) against a gateway address: used by
``tests/interop/test_caliper.py`` (a few seconds) and ``make caliper`` (a real round).

Caliper needs three files in its workspace: the network configuration (identities and the
connection profile of the peer), the benchmark configuration (rounds, rate control, workload
modules) and the workload modules, which live in ``tests/interop/caliper``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CALIPER_DIR = Path(__file__).resolve().parent / "caliper"


@dataclass(frozen=True)
class Round:
    name: str
    succeeded: int
    failed: int
    send_rate: float
    max_latency: float
    min_latency: float
    avg_latency: float
    throughput: float


def write_workspace(
    workspace: Path,
    *,
    address: str,
    tls_ca: Path,
    host: str,
    msp_id: str,
    cert: Path,
    key: Path,
    channel: str,
    tx_number: int,
    tps: int,
    workers: int,
) -> None:
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "connection.json").write_text(
        json.dumps(
            {
                "name": "ccactors",
                "version": "1.0.0",
                "client": {"organization": "Org1"},
                "organizations": {"Org1": {"mspid": msp_id, "peers": [host]}},
                "peers": {
                    host: {
                        "url": f"grpcs://{address}",
                        "tlsCACerts": {"path": str(tls_ca)},
                        "grpcOptions": {"ssl-target-name-override": host},
                    }
                },
            },
            indent=2,
        )
    )
    (workspace / "network.json").write_text(
        json.dumps(
            {
                "name": "ccactors",
                "version": "2.0.0",
                "caliper": {"blockchain": "fabric"},
                "channels": [{"channelName": channel, "contracts": [{"id": "kv"}]}],
                "organizations": [
                    {
                        "mspid": msp_id,
                        "identities": {
                            "certificates": [
                                {
                                    "name": "User1",
                                    "clientPrivateKey": {"path": str(key)},
                                    "clientSignedCert": {"path": str(cert)},
                                }
                            ]
                        },
                        "connectionProfile": {
                            "path": str(workspace / "connection.json"),
                            "discover": False,
                        },
                    }
                ],
            },
            indent=2,
        )
    )
    rounds = [
        {
            "label": name,
            "txNumber": tx_number,
            "rateControl": {"type": "fixed-rate", "opts": {"tps": tps}},
            "workload": {"module": str(CALIPER_DIR / f"{name}.js")},
        }
        for name in ("put", "get")
    ]
    bench = {"test": {"name": "ccactors", "workers": {"number": workers}, "rounds": rounds}}
    (workspace / "bench.json").write_text(json.dumps(bench, indent=2))


_ROW = re.compile(
    r"^\|\s*(put|get)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|"
    r"\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|"
)


def run(workspace: Path, timeout: float = 600) -> tuple[list[Round], str]:
    """Run caliper in ``workspace``; returns the rounds of its summary table and its output."""
    cli = CALIPER_DIR / "node_modules" / "@hyperledger" / "caliper-cli" / "caliper.js"
    done = subprocess.run(
        [
            "node",
            str(cli),
            "launch",
            "manager",
            "--caliper-workspace",
            str(workspace),
            "--caliper-networkconfig",
            "network.json",
            "--caliper-benchconfig",
            "bench.json",
            # no --caliper-bind-sut: that would run npm install at every launch; the binding's
            # packages (fabric-gateway 1.5.0, grpc-js 1.10.3) are in package.json instead
            "--caliper-flow-only-test",
            "--caliper-report-path",
            str(workspace / "report.html"),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=CALIPER_DIR,
    )
    output = done.stdout + done.stderr
    rounds: dict[str, Round] = {}
    for line in output.splitlines():
        match = _ROW.search(line.strip())
        if match:
            g = match.groups()
            rounds[g[0]] = Round(g[0], int(g[1]), int(g[2]), *(float(x) for x in g[3:]))
    return list(rounds.values()), output


def main() -> int:
    """``make caliper``: a real round, against ``--address`` or a peer started here."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", help="a running gateway, HOST:PORT (default: start one)")
    parser.add_argument("--tls-ca", type=Path, help="its TLS root certificate")
    parser.add_argument("--host", default="peer0.org1.example.com")
    parser.add_argument("--msp-id", default="Org1MSP")
    parser.add_argument("--cert", type=Path, help="the client's signing certificate")
    parser.add_argument("--key", type=Path, help="the client's private key")
    parser.add_argument("--channel", default="mychannel")
    parser.add_argument("--tx-number", type=int, default=2000)
    parser.add_argument("--tps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--workspace", type=Path, default=Path("bench/results/caliper"))
    args = parser.parse_args()
    args.workspace = args.workspace.resolve()  # Caliper runs in its own directory
    peer = None
    if args.address is None:
        from tests.gateway_peer import GatewayPeer, make_crypto, member_dir

        crypto = make_crypto(args.workspace / "crypto")
        peer = GatewayPeer(crypto, tls=True)
        user = member_dir(crypto, 1, "User1@") / "msp"
        args.address = peer.address
        args.tls_ca = member_dir(crypto, 1, "peer0") / "tls" / "ca.crt"
        args.cert = next((user / "signcerts").iterdir())
        args.key = user / "keystore" / "priv_sk"
    elif not (args.tls_ca and args.cert and args.key):
        parser.error("--address needs --tls-ca, --cert and --key")
    try:
        write_workspace(
            args.workspace,
            address=args.address,
            tls_ca=args.tls_ca,
            host=args.host,
            msp_id=args.msp_id,
            cert=args.cert,
            key=args.key,
            channel=args.channel,
            tx_number=args.tx_number,
            tps=args.tps,
            workers=args.workers,
        )
        rounds, output = run(args.workspace, timeout=3600)
    finally:
        if peer is not None:
            peer.close()
    (args.workspace / "caliper.log").write_text(output)
    for r in rounds:
        print(json.dumps(r.__dict__))
    print(f"report: {args.workspace / 'report.html'}")
    return 0 if rounds and all(r.failed == 0 for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
