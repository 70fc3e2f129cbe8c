"""The ``ccactors`` command line.

``demo`` starts a peer in this process, launches two system chaincodes as OS processes,
drives a parallel invoke workload through them, commits, and reports. ``serve`` runs a
long-lived peer (chaincode listener, admin service, metrics); ``invoke``, ``query``, ``list``
and ``events`` talk to one.
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


def run_serve(args: argparse.Namespace) -> int:
    """``ccactors serve``: a long-lived peer until SIGTERM/SIGINT."""
    import signal

    from prometheus_client import start_http_server

    from actors.admin import serve_admin

    config = Config.load(args.config)
    changes: dict[str, Any] = {}
    if args.mode:
        changes["mode"] = args.mode
    if args.listen:
        changes["listen_address"] = args.listen
    config = config.replace(**changes)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with ChaincodeSupport(config) as support:
        listener = support.listen()
        admin_server, admin_address = serve_admin(support, args.admin)
        lines = [
            f"chaincode listener {listener.address} (mode {config.mode})",
            f"admin {admin_address}",
        ]
        if args.metrics:
            host, _, port = args.metrics.rpartition(":")
            metrics_server, _ = start_http_server(
                int(port), addr=host or "0.0.0.0", registry=support.metrics.registry
            )
            lines.append(f"metrics http://{args.metrics}/metrics")
        else:
            metrics_server = None
        defined = ", ".join(f"{d.name} ({d.runtime})" for d in config.chaincodes) or "none"
        lines.append(f"chaincodes defined: {defined}")
        print("ccactors serve: " + "; ".join(lines), flush=True)
        stop.wait()
        print("ccactors serve: shutting down", flush=True)
        admin_server.stop(1).wait(5)
        if metrics_server is not None:
            metrics_server.shutdown()
    return 0


def _render_payload(payload: bytes) -> dict[str, str]:
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        import base64

        return {"payload_base64": base64.b64encode(payload).decode()}


def run_invoke(args: argparse.Namespace, commit: bool) -> int:
    """``ccactors invoke`` (execute + commit) and ``ccactors query`` (execute only)."""
    from actors.admin import AdminClient

    client = AdminClient(args.peer, timeout=args.timeout + 30 if args.timeout else 120)
    try:
        reply = client.invoke(
            args.channel,
            args.chaincode,
            [a.encode() for a in args.args],
            commit=commit,
            txid=args.txid or "",
            timeout=args.timeout or 0.0,
        )
    except ChaincodeError as exc:
        if args.json:
            print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        else:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    response = reply.response
    ok = response.status < 400 and (not commit or reply.validation == "VALID")
    out: dict[str, Any] = {
        "txid": reply.txid,
        "status": response.status,
        "message": response.message,
        **_render_payload(response.payload),
    }
    if commit:
        out["validation"] = reply.validation
    if reply.HasField("event"):
        out["event"] = {"name": reply.event.event_name, **_render_payload(reply.event.payload)}
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0 if ok else 1


def run_list(args: argparse.Namespace) -> int:
    from actors.admin import AdminClient

    try:
        chaincodes = AdminClient(args.peer).list().chaincodes
    except ChaincodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = [
        {"name": c.name, "runtime": c.runtime, "status": c.status, "instance": c.instance}
        for c in chaincodes
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        for row in rows:
            print(f"{row['name']:<24} {row['runtime']:<9} {row['status']:<10} {row['instance']}")
    return 0


def run_events(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from actors.admin import AdminClient

    try:
        for event in AdminClient(args.peer).events(args.chaincode or ""):
            record = json_format.MessageToDict(event, preserving_proto_field_name=True)
            if args.json:
                print(json.dumps(record), flush=True)
                continue
            extra = [f"{k}={record[k]}" for k in ("instance", "actor", "delay") if k in record]
            print(
                f"{time.strftime('%H:%M:%S', time.localtime(event.timestamp))} "
                f"{event.chaincode or '(peer)'} {event.kind} {event.detail}"
                + (f" [{' '.join(extra)}]" if extra else ""),
                flush=True,
            )
    except ChaincodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def run_package(args: argparse.Namespace) -> int:
    """``ccactors package``: write the package and print its id (Fabric's label:sha256)."""
    from actors.packaging import PackageError, create_package

    try:
        info = create_package(
            args.path, args.label, type=args.type, target=args.target, out=args.output
        )
    except PackageError as exc:
        print(f"ccactors package: {exc}", file=sys.stderr)
        return 1
    print(info.id)
    return 0


def run_images(args: argparse.Namespace) -> int:
    """``ccactors images build | list``: the Docker base images (see actors.images)."""
    from actors.images import DockerUnavailable, ImageBuildError, build_images, list_images

    try:
        if args.images_command == "build":
            built = build_images(
                args.endpoint, tag=args.tag or Config().base_image, force=args.force
            )
            print(f"base images ready in {built.seconds:.1f} s")
            return 0
        rows = list_images(args.endpoint)
    except (DockerUnavailable, ImageBuildError) as exc:
        print(f"ccactors images: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            tags = ", ".join(row["tags"])
            print(f"{row['id']:<20} {row['kind']:<10} {row['size_mb']:>7} MB  {tags}")
    return 0


def run_faults(args: argparse.Namespace) -> int:
    """``ccactors faults``: a load with faults injected on a schedule (see actors.faults)."""
    import os

    from actors.faults import (
        FaultsConfig,
        FaultsConfigError,
        FaultsUnavailable,
        parse_fault_list,
        render_table,
    )
    from actors.faults import run as run_fault_load

    try:
        config = FaultsConfig(
            runtime=args.runtime,
            clients=args.clients,
            duration=args.duration,
            fault_every=args.fault_every,
            faults=parse_fault_list(args.faults),
            chaincodes=args.chaincodes,
            seed=args.seed,
            execute_timeout=args.execute_timeout,
            startup_timeout=args.startup_timeout,
        )
    except FaultsConfigError as exc:
        print(f"ccactors faults: error: {exc}", file=sys.stderr)
        return 2
    try:
        report = run_fault_load(config, progress=sys.stderr)
    except FaultsUnavailable as exc:
        print(f"ccactors faults: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_table(report))
    code = 0 if report.ok else 1
    if report.shutdown_s is None:  # the peer did not shut down: its threads would keep us here
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccactors", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the in-process demo (no Docker needed)")
    demo.add_argument("--clients", type=int, default=16, help="parallel client threads")
    demo.add_argument("--transactions", type=int, default=50, help="invokes per client")
    demo.add_argument("--json", action="store_true", help="print the report as one JSON object")

    serve = commands.add_parser("serve", help="run a long-lived peer with an admin service")
    serve.add_argument("--listen", help="chaincode listener HOST:PORT (default from config)")
    serve.add_argument("--admin", default="127.0.0.1:7051", help="admin service HOST:PORT")
    serve.add_argument("--metrics", help="serve Prometheus /metrics on HOST:PORT")
    serve.add_argument("--mode", choices=("net", "dev"), help="chaincode.mode")
    serve.add_argument("--config", help="configuration file (TOML or JSON, core.yaml keys)")

    for name, help_text in (
        ("invoke", "execute and commit a transaction (Fabric's submit)"),
        ("query", "execute without committing (Fabric's evaluate)"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--peer", default="127.0.0.1:7051", help="admin address of the peer")
        sub.add_argument("--channel", "-C", default="mychannel")
        sub.add_argument("--txid", help="transaction id (default: made by the peer)")
        sub.add_argument("--timeout", type=float, help="execute timeout in seconds")
        sub.add_argument("--json", action="store_true", help="print one JSON object")
        sub.add_argument("chaincode")
        sub.add_argument("args", nargs="*", help="function and arguments")

    listing = commands.add_parser("list", help="list the peer's chaincodes")
    listing.add_argument("--peer", default="127.0.0.1:7051")
    listing.add_argument("--json", action="store_true")

    events = commands.add_parser("events", help="follow chaincode lifecycle events")
    events.add_argument("--peer", default="127.0.0.1:7051")
    events.add_argument("--chaincode", help="only this chaincode")
    events.add_argument("--json", action="store_true")

    package = commands.add_parser("package", help="make a Fabric 2.x chaincode package")
    package.add_argument("--label", "-l", required=True, help="package label (Fabric's rules)")
    package.add_argument("--path", "-p", required=True, help="chaincode source directory")
    package.add_argument("--target", "-t", help="module:Class the shim runs (python type)")
    package.add_argument("--lang", "--type", dest="type", default="python", help="chaincode type")
    package.add_argument("--output", "-o", help="package file (default LABEL.tar.gz)")

    images = commands.add_parser("images", help="build or list the Docker base images")
    images_commands = images.add_subparsers(dest="images_command", required=True)
    images_build = images_commands.add_parser("build", help="build the base images if missing")
    images_build.add_argument("--tag", help="shim base image tag (default Config.base_image)")
    images_build.add_argument("--force", action="store_true", help="rebuild even if present")
    images_build.add_argument("--endpoint", help="Docker endpoint (default DOCKER_HOST)")
    images_list = images_commands.add_parser("list", help="list ccactors images")
    images_list.add_argument("--endpoint", help="Docker endpoint (default DOCKER_HOST)")
    images_list.add_argument("--json", action="store_true")

    faults = commands.add_parser("faults", help="an invoke load with faults injected")
    faults.add_argument("--runtime", choices=("system", "process", "docker"), default="system")
    faults.add_argument("--clients", type=int, default=64, help="parallel client threads")
    faults.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    faults.add_argument("--fault-every", type=float, default=2.0, help="seconds between faults")
    faults.add_argument(
        "--faults",
        default="",
        help="comma list of fault kinds (default: all that apply to the runtime)",
    )
    faults.add_argument("--chaincodes", type=int, default=2, help="chaincodes the load spans")
    faults.add_argument("--seed", type=int, help="schedule seed (default: random, reported)")
    faults.add_argument("--execute-timeout", type=float, default=3.0, help="seconds")
    faults.add_argument("--startup-timeout", type=float, default=10.0, help="seconds")
    faults.add_argument("--json", action="store_true", help="print the report as one JSON object")

    from bench import cli as bench_cli

    bench_cli.add_arguments(commands.add_parser("bench", help="benchmark against raw primitives"))

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
    if args.command == "serve":
        return run_serve(args)
    if args.command in ("invoke", "query"):
        return run_invoke(args, commit=args.command == "invoke")
    if args.command == "list":
        return run_list(args)
    if args.command == "events":
        return run_events(args)
    if args.command == "package":
        return run_package(args)
    if args.command == "images":
        return run_images(args)
    if args.command == "faults":
        return run_faults(args)
    if args.command == "bench":
        return bench_cli.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
