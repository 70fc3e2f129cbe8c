"""The ``ccactors`` command line.

``ccactors demo`` starts a peer in this process, launches two system chaincodes as OS
processes, drives a parallel invoke workload through them, commits, and reports.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from actors.config import ChaincodeDefinition, Config
from actors.errors import ChaincodeError
from actors.support import ChaincodeSupport, InvokeResult

CHANNEL = "demo-channel"


def _decode_rwset(invoke: InvokeResult) -> dict[str, Any]:
    results = invoke.result.results
    if results is None:
        return {}
    return {
        ns: {
            "reads": {k: None if v is None else list(v) for k, v in results.reads(ns).items()},
            "writes": {
                k: None if v is None else v.decode("utf-8", "replace")
                for k, v in results.writes(ns).items()
            },
        }
        for ns in results.namespaces
    }


def run_demo(clients: int, transactions: int) -> dict[str, Any]:
    """Run the demo workload and return the report (what ``--json`` prints)."""
    config = Config(
        chaincodes=(
            ChaincodeDefinition("kv", target="examples.kv:KVChaincode"),
            ChaincodeDefinition("asset", target="examples.asset_transfer:AssetTransfer"),
        )
    )
    report: dict[str, Any] = {"clients": clients, "transactions_per_client": transactions}
    with ChaincodeSupport(config) as support:
        launch_ms = {}
        for name in ("kv", "asset"):
            started = time.perf_counter()
            support.launch(name)
            launch_ms[name] = round((time.perf_counter() - started) * 1000, 1)
        report["launch_ms"] = launch_ms
        report["instances"] = support.instances()

        # Each client owns one asset and its own kv keys, so commits do not conflict.
        for client in range(clients):
            created = support.invoke(
                CHANNEL, None, "asset", ["create", f"A{client}", "alice", "100"]
            )
            if not created.committed:
                raise RuntimeError(f"setup failed: {created.response}")

        outcomes: Counter[str] = Counter()
        latencies: list[float] = []
        samples: dict[str, InvokeResult] = {}
        lock = threading.Lock()

        def client_loop(client: int) -> None:
            owners = ("alice", "bob")
            for i in range(transactions):
                if i % 2:
                    args = ["transfer", f"A{client}", owners[(i // 2 + 1) % 2]]
                    chaincode = "asset"
                else:
                    args = ["getput", f"client{client}-key{i % 10}", f"value{i}"]
                    chaincode = "kv"
                started = time.perf_counter()
                try:
                    result = support.invoke(CHANNEL, None, chaincode, args)
                    kind = (
                        "succeeded" if result.committed else f"not committed: {result.validation}"
                    )
                except ChaincodeError as exc:
                    result, kind = None, f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - started
                with lock:
                    outcomes[kind] += 1
                    latencies.append(elapsed)
                    if result is not None and result.committed:
                        samples.setdefault(chaincode, result)

        threads = [threading.Thread(target=client_loop, args=(c,)) for c in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started

        submitted = clients * transactions
        succeeded = outcomes.pop("succeeded", 0)
        latencies.sort()
        report.update(
            submitted=submitted,
            succeeded=succeeded,
            failed=submitted - succeeded,
            failures=dict(outcomes),
            seconds=round(wall, 3),
            throughput_tps=round(submitted / wall, 1),
            latency_ms={
                "p50": round(statistics.median(latencies) * 1000, 2),
                "p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
            },
            ledger_height=support.ledgers.get(CHANNEL).height,
        )
        transfer = samples.get("asset")
        if transfer is not None:
            event = transfer.result.event
            report["sample_transfer"] = {
                "txid": transfer.result.txid,
                "response": transfer.response.payload.decode(),
                "rwset": _decode_rwset(transfer),
                "event": None
                if event is None
                else {
                    "chaincode_id": event.chaincode_id,
                    "tx_id": event.tx_id,
                    "name": event.event_name,
                    "payload": event.payload.decode(),
                },
            }
    return report


def _print_report(report: dict[str, Any]) -> None:
    print("ccactors demo: two system chaincodes, each in its own OS process")
    for name, ms in report["launch_ms"].items():
        print(f"  launched {name:<6} in {ms:7.1f} ms  ({report['instances'].get(name, '?')})")
    print(
        f"  workload: {report['clients']} clients x {report['transactions_per_client']} invokes "
        "(kv getput, asset transfer with a cc2cc call and an event)"
    )
    print(f"  submitted  {report['submitted']}")
    print(f"  succeeded  {report['succeeded']}")
    print(f"  failed     {report['failed']}")
    for reason, count in report["failures"].items():
        print(f"    {count:6d}  {reason}")
    print(
        f"  throughput {report['throughput_tps']} tx/s over {report['seconds']} s; latency p50 "
        f"{report['latency_ms']['p50']} ms, p99 {report['latency_ms']['p99']} ms"
    )
    print(f"  ledger height {report['ledger_height']} blocks")
    sample = report.get("sample_transfer")
    if sample:
        print(f"  sample transfer {sample['txid']}: {sample['response']}")
        for ns, rw in sample["rwset"].items():
            print(f"    rwset {ns}: reads {rw['reads']} writes {rw['writes']}")
        if sample["event"]:
            event = sample["event"]
            print(f"    event {event['name']} from {event['chaincode_id']}: {event['payload']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccactors", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the in-process demo (no Docker needed)")
    demo.add_argument("--clients", type=int, default=16, help="parallel client threads")
    demo.add_argument("--transactions", type=int, default=50, help="invokes per client")
    demo.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        if args.clients < 1 or args.transactions < 1:
            parser.error("--clients and --transactions must be at least 1")
        report = run_demo(args.clients, args.transactions)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            _print_report(report)
        return 0 if report["failed"] == 0 else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
