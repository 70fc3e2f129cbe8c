"""The ``ccactors`` command line.

``demo`` starts a peer in this process, launches two system chaincodes as OS processes,
drives a parallel invoke workload through them, commits, and reports. ``serve`` runs a
long-lived peer (chaincode listener, admin service, metrics); ``invoke``, ``query``, ``list``,
``launch``, ``stop``, ``logs`` and ``events`` talk to one through its admin address (--peer,
else Fabric's CORE_PEER_* environment: ``actors.peerenv``); ``wait`` waits until it answers.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from actors.config import (
    Address,
    ChaincodeDefinition,
    Config,
    ConfigError,
    Duration,
    Integer,
    default_file_system_path,
)
from actors.errors import ChaincodeError
from actors.peerenv import DEFAULT_PEER

if TYPE_CHECKING:
    from actors.support import InvokeResult

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


def demo(clients: int, transactions: int) -> dict[str, Any]:
    """Run the demo workload and return the report (what ``--json`` prints)."""
    from actors.support import ChaincodeSupport

    config = Config(
        channels=(CHANNEL,),
        chaincodes=(
            ChaincodeDefinition("kv", target="examples.kv:KVChaincode"),
            ChaincodeDefinition("asset", target="examples.asset_transfer:AssetTransfer"),
        ),
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


# -- errors and exit codes: 0 ok, 1 the operation failed, 2 bad usage (flags or configuration) --

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad flags or configuration: each problem printed on its own line, exit status 2."""

    def __init__(self, *problems: str) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _error(message: str) -> None:
    print(f"ccactors: error: {message}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"ccactors: warning: {message}", file=sys.stderr, flush=True)


def _loopback(address: str) -> bool:
    """Whether ``address`` (HOST:PORT) listens on the loopback interface only: ``localhost``
    or a loopback IP. Any other name may resolve to a reachable address, so is not."""
    import ipaddress

    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _failed(exc: ChaincodeError, *, as_json: bool = False) -> int:
    """An operation the peer refused or that failed: one line (or one JSON object), exit 1."""
    from actors.errors import PeerUnavailable

    # every connection problem under one name (PeerMismatch only tells `wait` not to wait)
    name = "PeerUnavailable" if isinstance(exc, PeerUnavailable) else type(exc).__name__
    if as_json:
        print(json.dumps({"error": name, "message": str(exc)}))
    else:
        _error(f"{name}: {exc}")
    return EXIT_FAILED


def _address(flag: str, value: str | None, problems: list[str]) -> str | None:
    """``value`` checked as HOST:PORT, or None with the problem noted under ``flag``."""
    if value is None:
        return None
    try:
        return Address()(value)
    except ConfigError as exc:
        problems.append(f"{flag}: {exc}")
        return None


def _seconds(text: str) -> float:
    """A CLI timeout: a positive, finite duration of at most a day (``5``, ``500ms``, ``1m``)."""
    try:
        return Duration(positive=True)(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int64(text: str) -> int:
    try:
        return Integer(-(2**63), 2**63 - 1)(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(high: int) -> Callable[[str], int]:
    """A CLI count: a whole number from 1 to ``high``."""

    def parse(text: str) -> int:
        try:
            return Integer(1, high)(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


# -- serve ---------------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    """``ccactors serve``: a long-lived peer until SIGTERM/SIGINT."""
    import signal

    from actors.admin import serve_admin
    from actors.ledger import LedgerError
    from actors.ledger.errors import LedgerLocked
    from actors.operations import OperationsServer, OperationsTLS, docker_check
    from actors.support import ChaincodeSupport

    problems: list[str] = []
    listen = _address("--listen", args.listen, problems)
    admin = _address("--peer", args.peer, problems)
    operations_flag = "--operations" if args.operations else "--metrics"
    metrics = _address(operations_flag, args.operations or args.metrics, problems)
    gateway_address = _address("--gateway", args.gateway, problems)
    overrides: dict[str, Any] = {}
    if gateway_address:
        overrides["gateway_address"] = gateway_address
    if args.mode:
        overrides["mode"] = args.mode
    if listen:
        overrides["listen_address"] = listen
    if args.insecure:
        overrides["tls_enabled"] = False
    # A peer keeps its ledger: in --data-dir, else peer.fileSystemPath (or ledger.path) from
    # the config, else the user's data directory. --ephemeral keeps it in memory.
    if args.ephemeral:
        overrides.update(file_system_path=None, ledger_path=None)
    elif args.data_dir:
        overrides["file_system_path"] = args.data_dir
    try:
        config = Config.load(args.config, overrides=overrides)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise UsageError(*problems)
    if args.channel:
        from actors.lifecycle.channels import check_channel_name

        try:
            joined = [check_channel_name(name) for name in args.channel]
        except ValueError as exc:
            raise UsageError(f"--channel: {exc}") from None
        config = config.replace(channels=tuple(dict.fromkeys((*config.channels, *joined))))
    if not args.ephemeral and config.ledger_directory is None:
        config = config.replace(file_system_path=default_file_system_path())
    if not metrics and config.operations_address:
        metrics, operations_flag = config.operations_address, "operations.listenAddress"
    assert admin is not None  # it has a default
    from actors.admin import AdminTLS

    admin_tls = AdminTLS.from_config(config)
    if admin_tls is None and not _loopback(admin):
        if not args.insecure_admin:
            raise UsageError(
                f"--peer: the admin API on {admin} would take anyone's commands in plaintext: "
                "off the loopback address it needs TLS (peer.tls.cert.file, peer.tls.key.file, "
                "peer.mspConfigPath), or --insecure-admin"
            )
        _warn(
            f"the admin API on {admin} speaks plaintext and checks no identity "
            "(--insecure-admin): anyone who reaches it can invoke, launch and stop chaincode"
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        support = ChaincodeSupport(config)
    except LedgerLocked as exc:
        raise UsageError(
            f"--data-dir: {exc}: another peer runs on it; give this one its own with "
            "--data-dir DIR, or --ephemeral (a ledger in memory)"
        ) from None
    except LedgerError as exc:
        raise UsageError(f"--data-dir: {exc}") from None
    with support:
        try:
            listener = support.listen()
        except OSError as exc:
            raise UsageError(f"--listen: {exc}") from None
        gateway = None
        if config.gateway_address:
            try:
                gateway = support.peer.start_gateway()
            except OSError as exc:
                raise UsageError(f"--gateway: {exc}") from None
        # The admin API opens after the listener and the Gateway, so that a client that sees it
        # answer (`ccactors wait`) may use them; the operations server (/healthz) opens last.
        try:
            admin_server, admin_address = serve_admin(support, admin, tls=admin_tls)
        except OSError as exc:
            raise UsageError(f"--peer: {exc}") from None
        operations = None
        if metrics:
            try:
                operations = OperationsServer(
                    metrics, metrics=support.metrics, tls=OperationsTLS.from_config(config)
                )
            except OSError as exc:
                raise UsageError(f"{operations_flag}: {exc}") from None
            if any(d.runtime == "docker" for d in config.chaincodes):
                operations.register_checker(
                    "docker", docker_check(config.docker_endpoint, config.docker_tls)
                )
            operations.start()
        ready = {
            "listener": listener.address,
            "gateway": gateway,
            "mode": config.mode,
            "peer": admin_address,
            "admin_tls": admin_tls is not None,
            "ledger": config.ledger_directory,
            "metrics": f"{operations.scheme}://{operations.address}/metrics"
            if operations
            else None,
            "tls": support.peer.tls is not None,
            "channels": list(support.peer.channel_names()),
            "chaincodes": [{"name": d.name, "runtime": d.runtime} for d in config.chaincodes],
        }
        if args.json:
            print(json.dumps({"ready": True, **ready}), flush=True)
        else:
            lines = [
                f"chaincode listener {listener.address} (mode {config.mode}, "
                f"{'TLS' if support.peer.tls is not None else 'no TLS'})",
                f"admin {admin_address} ({'TLS, admins only' if admin_tls else 'no TLS'})",
                f"ledger {config.ledger_directory or 'in memory (--ephemeral)'}",
            ]
            if operations is not None:
                lines.append(
                    f"operations {operations.scheme}://{operations.address} "
                    "(/metrics /healthz /logspec)"
                )
            if gateway:
                lines.append(f"gateway {gateway}")
            defined = ", ".join(f"{d.name} ({d.runtime})" for d in config.chaincodes)
            lines.append(f"chaincodes defined: {defined or 'none'}")
            lines.append(f"channels: {', '.join(support.peer.channel_names())}")
            print("ccactors serve: " + "; ".join(lines), flush=True)
        stop.wait()
        if not args.json:
            print("ccactors serve: shutting down", flush=True)
        admin_server.stop(1).wait(5)
        if operations is not None:
            operations.stop()
    return EXIT_OK


# -- clients of a running peer -------------------------------------------------------------------


def _render_payload(payload: bytes) -> dict[str, str]:
    try:
        return {"payload": payload.decode("utf-8")}
    except UnicodeDecodeError:
        import base64

        return {"payload_base64": base64.b64encode(payload).decode()}


def _client(args: argparse.Namespace, timeout: float = 60.0) -> Any:
    from actors.admin import AdminClient
    from actors.tls import client_credentials

    problems: list[str] = []
    address = _address("--peer", args.peer, problems)
    try:
        credentials, options = client_credentials(
            args.tls_root_cert, args.tls_cert, args.tls_key, args.tls_host
        )
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise UsageError(*problems)
    return AdminClient(
        address,
        timeout=timeout,
        credentials=credentials,
        options=tuple(options),
        client_cert=args.tls_cert is not None,
        root_source=getattr(args, "tls_root_source", "--tls-root-cert"),
    )


def _connect(args: argparse.Namespace) -> None:
    """Settle where and how the verb reaches the peer (``actors.peerenv``): the flags, ours or
    Fabric's, over Fabric's CORE_PEER_* variables; notes about flags accepted and ignored."""
    from actors import peerenv

    connection = peerenv.resolve(args, admin=not getattr(args, "gateway", None))
    peerenv.apply(args, connection)
    for note in connection.notes:
        print(f"ccactors: note: {note}", file=sys.stderr, flush=True)


def _transient(text: str) -> dict[str, bytes]:
    """``--transient``: a JSON object of base64 values, as Fabric's CLI decodes it into a
    ``map[string][]byte``."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise argparse.ArgumentTypeError("expected a JSON object of base64 strings")
    try:
        return {key: base64.b64decode(value, validate=True) for key, value in raw.items()}
    except binascii.Error as exc:
        raise argparse.ArgumentTypeError(f"a value is not base64: {exc}") from None


def run_invoke(args: argparse.Namespace) -> int:
    """``ccactors invoke`` (execute + commit) and ``ccactors query`` (execute only)."""
    commit = args.command == "invoke"
    _invoke_request(args)
    if args.gateway:
        if args.is_init:
            raise UsageError("--isInit goes through the admin API, not --gateway")
        from actors.gateway import command as gateway

        try:
            status, out = gateway.run(args, commit=commit)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if status and not args.json and "error" in out:
            _error(_gateway_error(out, verbose=args.verbose))
        else:
            print(gateway.render(out, args.json))
        return status
    client = _client(args, timeout=args.timeout + 30 if args.timeout else 120)
    try:
        reply = client.invoke(
            args.channel,
            args.chaincode,
            [a.encode() for a in args.args],
            commit=commit,
            txid=args.txid or "",
            timeout=args.timeout or 0.0,
            transient=args.transient,
            is_init=args.is_init,
        )
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
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
    return EXIT_OK if ok else EXIT_FAILED


def _gateway_error(out: dict[str, Any], *, verbose: bool) -> str:
    """A failed Gateway call as one line: its status and message, then what each endorser said
    (``gateway.ErrorDetail``s; with ``verbose``, which endorser: MSP id and address)."""
    message = out["message"]
    if out["details"]:
        # Fabric's summary points at details a terminal does not show: they follow here.
        message = message.removesuffix(", see attached details for more info")
        said = [
            f"{d['msp_id']} at {d['address']}: {d['message']}" if verbose else d["message"]
            for d in out["details"]
        ]
        message += ": " + "; ".join(said)
    return f"{out['error']}: {message}"


def _invoke_request(args: argparse.Namespace) -> None:
    """Fabric's ``-n NAME -c '{"Args":[...]}'`` or ``NAME ARG...``: fills ``args.chaincode``
    and ``args.args``."""
    positional = list(args.args)
    if args.chaincode is not None:
        positional.insert(0, args.chaincode)
    name = args.name
    if name is None:
        if not positional:
            raise UsageError("a chaincode name is needed: NAME ARG... or -n NAME -c JSON")
        name, positional = positional[0], positional[1:]
    if args.ctor is not None:
        if positional:
            raise UsageError("-c: give the arguments either after the name or with -c, not both")
        positional = _parse_ctor(args.ctor)
    elif not positional:  # Fabric's -c defaults to {}, which it refuses
        raise UsageError(f'empty {_CTOR_KEYS} (-c \'{{"Args":["fn","arg"]}}\' or NAME FN ARG...)')
    args.chaincode, args.args = name, positional


# Fabric's checkChaincodeCmdParams (internal/peer/chaincode/common.go) refuses these client-side
_CTOR_KEYS = (
    "JSON chaincode parameters must contain the following keys: 'Args' or 'Function' and 'Args'"
)


def _parse_ctor(text: str) -> list[str]:
    """Fabric's ``-c``: ``{"Args": [...]}``, or ``{"function": f, "Args": [...]}``; keys match
    case-insensitively, as Go's JSON decoding does."""
    if text == "{}":
        raise UsageError(f"-c: empty {_CTOR_KEYS}")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"-c: chaincode argument error: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError('-c: chaincode argument error: expected {"Args": [...]}')
    fields = {key.lower(): item for key, item in value.items()}
    if "args" not in fields or len(value) > 2 or (len(value) == 2 and "function" not in fields):
        raise UsageError(f"-c: non-empty {_CTOR_KEYS}")
    arguments, function = fields["args"], fields.get("function")
    if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
        raise UsageError("-c: chaincode argument error: Args must be a list of strings")
    if function is not None:
        if not isinstance(function, str):
            raise UsageError("-c: chaincode argument error: function must be a string")
        arguments = [function, *arguments]
    if not arguments:  # Fabric would send the chaincode no function name at all
        raise UsageError(
            "-c: chaincode argument error: Args is empty: name the function first, "
            '{"Args":["fn","arg"]}'
        )
    return arguments


def run_wait(args: argparse.Namespace) -> int:
    """``ccactors wait``: until the peer's admin API answers (``serve`` opens it once its
    chaincode listener and Gateway listen), at most ``--timeout``; exit 1 if it never does, or
    at once if it answers with a refusal or speaks otherwise (TLS against plaintext, not an
    admin API): waiting longer would not change that."""
    from actors.errors import PeerMismatch, PeerUnavailable

    deadline = time.monotonic() + args.timeout
    while True:
        left = deadline - time.monotonic()
        try:
            _client(args, timeout=max(0.1, min(5.0, left))).channels()
            break
        except ChaincodeError as exc:
            # a peer that answers otherwise (TLS against plaintext, ...) will not start to
            retry = not isinstance(exc, PeerMismatch) and (
                isinstance(exc, PeerUnavailable) or str(exc).startswith("DEADLINE_EXCEEDED")
            )
            if not retry:
                return _failed(exc, as_json=args.json)
            if left <= 0:
                from actors.config import format_duration

                waited = format_duration(args.timeout)
                return _failed(
                    PeerUnavailable(f"{args.peer} did not answer within {waited}: {exc}"),
                    as_json=args.json,
                )
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    print(json.dumps({"peer": args.peer, "ready": True}) if args.json else f"{args.peer} ready")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    try:
        chaincodes = _client(args).list().chaincodes
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    rows = [
        {"name": c.name, "runtime": c.runtime, "status": c.status, "instance": c.instance}
        for c in chaincodes
    ]
    if args.json:
        print(json.dumps(rows))
    elif not rows:  # silence would read as a hung or broken command
        print("no chaincodes: none is defined, configured or running on this peer")
    else:
        for row in rows:
            print(f"{row['name']:<24} {row['runtime']:<9} {row['status']:<10} {row['instance']}")
    return EXIT_OK


CHANNEL_NAME_HELP = (
    "on this channel, NAME is a chaincode's name: the package id its definition names is used"
)


def _target(client: Any, args: argparse.Namespace) -> str:
    """What ``launch|stop|logs`` act on: NAME itself (a package id, a configured chaincode, a
    dev-mode registration), or with ``-C CHANNEL`` the package id NAME's definition on that
    channel names (what runs it, as an invocation resolves it)."""
    if args.channel is None:
        return str(args.name)
    from actors.errors import UnknownChaincode

    (definition,) = client.query_committed(args.channel, args.name)
    if not definition.package_id:
        raise UnknownChaincode(
            f"the definition of {args.name} on channel {args.channel} names no package id "
            "(dev mode: use the id the chaincode registered as)"
        )
    return str(definition.package_id)


def _known(client: Any, name: str) -> None:
    from actors.errors import UnknownChaincode

    if name not in {c.name for c in client.list().chaincodes}:
        raise UnknownChaincode(f"chaincode definition for '{name}' not found")


def run_launch(args: argparse.Namespace) -> int:
    """``ccactors launch NAME``: start a chaincode now rather than on first use."""
    client = _client(args, timeout=args.timeout)
    try:
        name = _target(client, args)
        seconds = client.launch(name)
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    if args.json:
        print(json.dumps({"name": name, "seconds": round(seconds, 3)}))
    else:
        print(f"launched {name} in {seconds:.2f} s")
    return EXIT_OK


def run_stop(args: argparse.Namespace) -> int:
    """``ccactors stop NAME``: stop its instance; the next request launches it again."""
    client = _client(args)
    try:
        name = _target(client, args)
        _known(client, name)
        client.stop(name)
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    print(json.dumps({"name": name, "stopped": True}) if args.json else f"stopped {name}")
    return EXIT_OK


def run_logs(args: argparse.Namespace) -> int:
    """``ccactors logs NAME``: the last lines its running instance printed."""
    client = _client(args)
    try:
        name = _target(client, args)
        lines = client.logs(name, args.tail)
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    if args.json:
        print(json.dumps({"name": name, "lines": lines}))
    else:
        for line in lines:
            print(line)
    return EXIT_OK


def run_events(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    try:
        for event in _client(args).events(args.chaincode or ""):
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
        return _failed(exc)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# -- the chaincode lifecycle (Fabric's `peer lifecycle chaincode` and `peer channel` verbs) -------


def _read_bounded(path: str, limit: int, *, unreadable: str, too_large: str) -> bytes:
    """At most ``limit`` bytes of a file a user named (never the whole of a huge one); the
    messages are formats of ``path`` (and ``exc``)."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise UsageError(unreadable.format(path=path, exc=exc)) from None
    if len(data) > limit:
        raise UsageError(too_large.format(path=path))
    return data


def _read_package(path: str) -> bytes:
    from actors.packaging import DEFAULT_MAX_BYTES

    return _read_bounded(
        path,
        DEFAULT_MAX_BYTES,
        unreadable="failed to read chaincode package at '{path}': {exc}",
        too_large=f"chaincode package '{{path}}' is larger than {DEFAULT_MAX_BYTES} bytes",
    )


def run_install(args: argparse.Namespace) -> int:
    """``ccactors install PACKAGE``: install on the peer; prints the package id."""
    package = _read_package(args.package)
    try:
        installed = _client(args).install(package)
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    if args.json:
        print(json.dumps({"package_id": installed.package_id, "label": installed.label}))
    else:
        print(installed.package_id)
    return EXIT_OK


def run_calculatepackageid(args: argparse.Namespace) -> int:
    """``ccactors calculatepackageid PACKAGE``: the id, computed here (no peer needed)."""
    from actors.lifecycle.packages import calculate_package_id

    try:
        package_id = calculate_package_id(_read_package(args.package))
    except ChaincodeError as exc:  # computed here: only the file can be wrong
        raise UsageError(f"{args.package}: {exc}") from None
    print(json.dumps({"package_id": package_id}) if args.json else package_id)
    return EXIT_OK


def run_queryinstalled(args: argparse.Namespace) -> int:
    try:
        reply = _client(args).query_installed(args.package_id or "")
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    rows = []
    for entry in reply.installed_chaincodes:
        row: dict[str, Any] = {"package_id": entry.package_id, "label": entry.label}
        if entry.references:
            row["references"] = {
                channel: {
                    "chaincodes": [{"name": c.name, "version": c.version} for c in refs.chaincodes]
                }
                for channel, refs in sorted(entry.references.items())
            }
        rows.append(row)
    if args.json:  # Fabric's --output json: an empty object when nothing is installed
        print(json.dumps({"installed_chaincodes": rows} if rows else {}))
    else:
        print("Installed chaincodes on peer:")
        for row in rows:
            print(f"Package ID: {row['package_id']}, Label: {row['label']}")
    return EXIT_OK


MAX_COLLECTIONS_FILE = 1024 * 1024


def _required(value: Any, name: str, flag: str) -> Any:
    if value in (None, ""):
        raise UsageError(
            f"The required parameter '{name}' is empty. Rerun the command with {flag} flag"
        )
    return value


def run_define(args: argparse.Namespace) -> int:
    """``ccactors define``: approveformyorg + commit of a chaincode definition."""
    from actors.lifecycle.definitions import Definition
    from actors.lifecycle.lifecycle import definition_json

    channel = _required(args.channel, "channelID", "-C")
    _required(args.name, "name", "-n")
    _required(args.version, "version", "-v")
    _required(args.sequence, "sequence", "--sequence")
    collections = ""
    if args.collections_config:
        raw = _read_bounded(
            args.collections_config,
            MAX_COLLECTIONS_FILE,
            unreadable="--collections-config: could not read file '{path}': {exc}",
            too_large="--collections-config: '{path}' is larger than 1 MiB",
        )
        collections = raw.decode("utf-8", "replace")
    definition = Definition(
        name=args.name,
        version=args.version,
        sequence=args.sequence,
        package_id=args.package_id or "",
        init_required=args.init_required,
        signature_policy=args.signature_policy or "",
        channel_config_policy=args.channel_config_policy or "",
        collections=collections,
    )
    try:
        defined = _client(args).define(channel, definition)
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    if args.json:
        print(json.dumps(definition_json(defined)))
    else:
        print(
            f"Committed chaincode definition for chaincode '{defined.name}' on channel "
            f"'{channel}': Version: {defined.version}, Sequence: {defined.sequence}, "
            f"Package ID: {defined.package_id or '(none)'}"
        )
    return EXIT_OK


def run_querycommitted(args: argparse.Namespace) -> int:
    from actors.lifecycle.lifecycle import definition_json

    channel = _required(args.channel, "channelID", "-C")
    try:
        found = _client(args).query_committed(channel, args.name or "")
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    if args.json:
        rows = [definition_json(d) for d in found]
        print(json.dumps(rows[0] if args.name else {"chaincode_definitions": rows}))
        return EXIT_OK
    if args.name:
        (d,) = found
        print(f"Committed chaincode definition for chaincode '{d.name}' on channel '{channel}':")
        print(
            f"Version: {d.version}, Sequence: {d.sequence}, Endorsement Plugin: "
            f"{d.endorsement_plugin}, Validation Plugin: {d.validation_plugin}, Package ID: "
            f"{d.package_id or '(none)'}, Init Required: {str(d.init_required).lower()}"
        )
        return EXIT_OK
    print(f"Committed chaincode definitions on channel '{channel}':")
    for d in found:
        print(
            f"Name: {d.name}, Version: {d.version}, Sequence: {d.sequence}, Endorsement Plugin: "
            f"{d.endorsement_plugin}, Validation Plugin: {d.validation_plugin}"
        )
    return EXIT_OK


def run_channel(args: argparse.Namespace) -> int:
    """``ccactors channel join NAME | list``."""
    try:
        client = _client(args)
        if args.channel_command == "join":
            joined = client.join_channel(args.name)
        else:
            names = client.channels()
    except ChaincodeError as exc:
        return _failed(exc, as_json=args.json)
    if args.channel_command == "join":
        if args.json:
            print(json.dumps({"channel": args.name, "joined": joined}))
        else:
            print(f"joined channel {args.name}" if joined else f"already joined {args.name}")
    elif args.json:
        print(json.dumps({"channels": names}))
    else:
        print("Channels peers has joined: ")  # (sic: Fabric's text)
        for name in names:
            print(name)
    return EXIT_OK


# -- local tools -----------------------------------------------------------------------------------


def run_demo(args: argparse.Namespace) -> int:
    report = demo(args.clients, args.transactions)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return EXIT_OK if report["failed"] == 0 else EXIT_FAILED


def run_package(args: argparse.Namespace) -> int:
    """``ccactors package``: write the package and print its id (Fabric's label:sha256)."""
    from actors.packaging import PackageError, create_package

    if args.file is not None:
        if args.output is not None and args.output != args.file:
            raise UsageError(f"package: give the file once: {args.file} or --output {args.output}")
        args.output = args.file
    try:
        info = create_package(
            args.path, args.label, type=args.type, target=args.target, out=args.output
        )
    except PackageError as exc:  # what was asked for (path, label, target, output) is wrong
        _error(f"package: {exc}")
        return EXIT_USAGE
    if args.json:
        output = args.output or f"{args.label}.tar.gz"
        print(json.dumps({"package_id": info.id, "label": info.label, "file": output}))
    else:
        print(info.id)
    return EXIT_OK


def run_images(args: argparse.Namespace) -> int:
    """``ccactors images build | list``: the Docker base images (see actors.images)."""
    from actors.images import DockerUnavailable, ImageBuildError, build_images, list_images

    try:
        if args.images_command == "build":
            tag = args.tag or Config().base_image
            # With --json, stdout carries only the result: progress goes to stderr.
            built = build_images(
                args.endpoint,
                tag=tag,
                force=args.force,
                progress=lambda line: print(line, file=sys.stderr if args.json else sys.stdout),
            )
            if args.json:
                print(
                    json.dumps({"tag": tag, "id": built.base, "seconds": round(built.seconds, 1)})
                )
            else:
                print(f"base images ready in {built.seconds:.1f} s")
            return EXIT_OK
        rows = list_images(args.endpoint)
    except (DockerUnavailable, ImageBuildError) as exc:
        _error(f"images: {exc}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            tags = ", ".join(row["tags"])
            print(f"{row['id']:<20} {row['kind']:<10} {row['size_mb']:>7} MB  {tags}")
    return EXIT_OK


def add_extra_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Subcommands declared by installed packages in the ``ccactors.commands`` entry point
    group (``bench`` and ``faults``, from bench/): each names a module with ``HELP``,
    ``add_arguments(parser)`` and ``run(args)``, and is added with ``command``. So developer
    tooling plugs in here without the peer importing it."""
    from importlib.metadata import entry_points

    for point in sorted(entry_points(group="ccactors.commands"), key=lambda p: p.name):
        try:
            module = point.load()
            module.add_arguments(command(point.name, module.run, module.HELP))
        except Exception as exc:  # a broken plugin must not take the other commands down
            _error(f"command {point.name} unavailable: {exc}")


# -- the parser ------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line with the common prefix, exit status 2. A subcommand's parser
    refuses what it does not know itself, so the error points to that subcommand's ``--help``;
    one marked ``intermixed`` takes its flags between positionals too (``invoke kv --peer X get
    a``)."""

    intermixed = False
    _parsing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:  # parse_known_intermixed_args calls back here, twice
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            if self.intermixed:
                parsed, extras = self.parse_known_intermixed_args(args, namespace)
            else:
                parsed, extras = super().parse_known_args(args, namespace)
        finally:
            self._parsing = False
        if extras and self.prog != "ccactors":
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        where = self.prog.removeprefix("ccactors").strip()
        self.exit(
            EXIT_USAGE,
            f"ccactors: error: {where + ': ' if where else ''}{message} "
            f"(see `{self.prog} --help`)\n",
        )


class _Help(argparse.RawDescriptionHelpFormatter):
    """Defaults shown in ``--help`` (when there is one to show); descriptions keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in help:
            return help
        return f"{help} (default: %(default)s)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ccactors")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ccactors",
        description="A Fabric 2.x peer's chaincode support: run a peer (serve), drive it "
        "(invoke, query, list, launch, stop, logs, events through its --peer address), make "
        "packages and images, and measure it (demo, bench, faults).",
        formatter_class=_Help,
        epilog="Exit status: 0 ok, 1 the operation failed, 2 bad usage or configuration.",
    )
    parser.add_argument("--version", action="version", version=f"ccactors {_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log at INFO level (after `define`, -v is Fabric's --version: use --verbose there)",
    )
    # Global options are accepted after the subcommand too (`ccactors serve -v`); SUPPRESS keeps
    # the subcommand from resetting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log at INFO level"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )

    def command(
        name: str, run: Callable[[argparse.Namespace], int], help: str, *, verbose: bool = True
    ) -> Any:
        # verbose=False: the command's own -v (Fabric's --version of a definition); -v before
        # the command still means --verbose.
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            parents=[common] if verbose else [],
            formatter_class=_Help,
        )
        sub.set_defaults(run=run)
        return sub

    def peer(
        sub: argparse.ArgumentParser,
        help: str = "the peer's admin API address, not its Gateway's: CORE_PEER_ADDRESS names "
        f"the admin API here (default: $CORE_PEER_ADDRESS, else {DEFAULT_PEER})",
        default: str | None = None,
    ) -> None:
        # A client verb's default comes from Fabric's environment (actors.peerenv), so None here.
        sub.add_argument("--peer", default=default, metavar="HOST:PORT", help=help)
        # Older spelling (serve's) kept working, not shown.
        sub.add_argument("--admin", dest="peer", help=argparse.SUPPRESS)

    def client_tls(
        sub: argparse.ArgumentParser, *, invoke: bool = False, output: bool = False
    ) -> None:
        from actors import peerenv

        peerenv.add_arguments(sub, invoke=invoke, output=output)
        group = sub.add_argument_group(
            "TLS to the peer (its admin API or Gateway)",
            "Without these flags, Fabric's CORE_PEER_TLS_ENABLED and CORE_PEER_TLS_ROOTCERT_FILE\n"
            "apply, and the admin API gets the signcert and key of CORE_PEER_MSPCONFIGPATH.",
        )
        group.add_argument("--tls-root-cert", metavar="PEM", help="the peer's TLS root CA: use TLS")
        group.add_argument(
            "--tls-cert",
            metavar="PEM",
            help="client certificate for mutual TLS (the admin API takes an admin's signcert)",
        )
        group.add_argument("--tls-key", metavar="PEM", help="its private key")
        group.add_argument(
            "--tls-host", metavar="NAME", help="the host name in the peer's TLS certificate"
        )

    def json_flag(sub: argparse.ArgumentParser, what: str = "print one JSON object") -> None:
        sub.add_argument("--json", action="store_true", help=what)

    demo_cmd = command("demo", run_demo, "run the in-process demo (no Docker needed)")
    demo_cmd.add_argument(
        "--clients", type=_count(1024), default=16, help="parallel client threads"
    )
    demo_cmd.add_argument(
        "--transactions", type=_count(10**6), default=50, help="invokes per client"
    )
    json_flag(demo_cmd, "print the report as one JSON object")

    serve = command("serve", run_serve, "run a long-lived peer with an admin service")
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="chaincode listener (default: peer.chaincodeListenAddress, 0.0.0.0:7052)",
    )
    peer(serve, "where the admin service (the address clients use as --peer) listens", DEFAULT_PEER)
    serve.add_argument(
        "--operations",
        metavar="HOST:PORT",
        help="operations server: /metrics, /healthz, /logspec (operations.listenAddress)",
    )
    serve.add_argument("--metrics", metavar="HOST:PORT", help="the same as --operations")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="no TLS on the chaincode listener in net mode (TLS is on by default there)",
    )
    serve.add_argument(
        "--insecure-admin",
        action="store_true",
        help="allow the admin API on a non-loopback --peer address without TLS (a warning)",
    )
    serve.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        help="serve Fabric's Gateway and Endorser services here (peer.listenAddress; needs "
        "peer.mspConfigPath)",
    )
    serve.add_argument("--mode", choices=("net", "dev"), help="chaincode.mode")
    serve.add_argument(
        "--channel",
        action="append",
        metavar="NAME",
        help="join this channel too (repeatable; with none declared anywhere: mychannel)",
    )
    serve.add_argument("--config", metavar="FILE", help="core.yaml-style file: YAML, TOML or JSON")
    storage = serve.add_mutually_exclusive_group()
    storage.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the peer keeps its ledger (peer.fileSystemPath; default "
        "$XDG_DATA_HOME/ccactors, i.e. ~/.local/share/ccactors)",
    )
    storage.add_argument(
        "--ephemeral", action="store_true", help="keep the ledger in memory: lost on exit"
    )
    json_flag(serve, "print the ready line as one JSON object")

    for name, help_text in (
        ("invoke", "execute and commit a transaction (Fabric's submit)"),
        ("query", "execute without committing (Fabric's evaluate)"),
    ):
        sub = command(name, run_invoke, help_text)
        if name == "invoke":
            sub.description = (
                f"{help_text}.\n\n"
                "Through the admin API (the default, --peer) the peer commits the simulation\n"
                "straight to its state database: no ordering, no block, no endorsement-policy\n"
                "check. Use --gateway (with --msp-dir, --msp-id) for Fabric's path:\n"
                "endorsement, ordering into a block, validation as Fabric's committer."
            )
        peer(sub)
        client_tls(sub, invoke=name == "invoke")
        sub.intermixed = True
        sub.add_argument("--channel", "--channelID", "-C", default="mychannel", help="channel")
        sub.add_argument("--txid", help="transaction id (default: made by the peer)")
        sub.add_argument(
            "--timeout", type=_seconds, help="execute timeout (5, 500ms, 1m; default: the peer's)"
        )
        sub.add_argument(
            "--transient",
            type=_transient,
            help="transient map as JSON, values base64 (Fabric's --transient): private data "
            'inputs, e.g. \'{"value":"c2VjcmV0"}\'',
        )
        json_flag(sub)
        sub.add_argument("chaincode", nargs="?", help="chaincode name (or -n NAME)")
        sub.add_argument("args", nargs="*", help="function and arguments (or -c JSON)")
        fabric = sub.add_argument_group("Fabric's chaincode flags")
        fabric.add_argument("-n", "--name", help="chaincode name")
        fabric.add_argument("-c", "--ctor", metavar="JSON", help='arguments: {"Args":["fn","a"]}')
        fabric.add_argument("-I", "--isInit", dest="is_init", action="store_true", help="call Init")
        from actors.gateway import command as gateway

        gateway.add_arguments(sub)

    wait = command(
        "wait",
        run_wait,
        "wait until a peer answers on its admin API (for scripts: after `serve &`)",
    )
    peer(wait)
    client_tls(wait)
    wait.add_argument(
        "--timeout", type=_seconds, default=60.0, help="give up after this long (default: 60s)"
    )
    json_flag(wait)

    listing = command("list", run_list, "list the peer's chaincodes")
    peer(listing)
    client_tls(listing)
    json_flag(listing, "print one JSON array")

    launch = command("launch", run_launch, "launch a chaincode now (otherwise: on first use)")
    peer(launch)
    client_tls(launch)
    launch.add_argument(
        "--timeout",
        type=_seconds,
        default=600.0,
        help="how long to wait for the peer (default: 10m)",
    )
    json_flag(launch)
    launch.add_argument("--channel", "--channelID", "-C", help=CHANNEL_NAME_HELP)
    launch.add_argument("name", help="chaincode (package id or configured name; with -C its name)")

    stop_cmd = command("stop", run_stop, "stop a chaincode's running instance")
    peer(stop_cmd)
    client_tls(stop_cmd)
    json_flag(stop_cmd)
    stop_cmd.add_argument("--channel", "--channelID", "-C", help=CHANNEL_NAME_HELP)
    stop_cmd.add_argument(
        "name", help="chaincode (package id or configured name; with -C its name)"
    )

    logs = command("logs", run_logs, "print the last lines a chaincode's instance printed")
    peer(logs)
    client_tls(logs)
    logs.add_argument("--tail", type=_count(1000), default=20, help="lines (1 to 1000)")
    json_flag(logs)
    logs.add_argument("--channel", "--channelID", "-C", help=CHANNEL_NAME_HELP)
    logs.add_argument("name", help="chaincode (package id or configured name; with -C its name)")

    events = command("events", run_events, "follow chaincode lifecycle events")
    peer(events)
    client_tls(events)
    events.add_argument("--chaincode", help="only this chaincode")
    json_flag(events, "print one JSON object per event")

    install = command("install", run_install, "install a chaincode package; prints its id")
    peer(install)
    client_tls(install)
    json_flag(install)
    install.add_argument("package", help="the package file (tar.gz)")

    calc = command("calculatepackageid", run_calculatepackageid, "a package file's id (local)")
    json_flag(calc)
    calc.add_argument("package", help="the package file (tar.gz)")

    queryinstalled = command("queryinstalled", run_queryinstalled, "list installed packages")
    peer(queryinstalled)
    client_tls(queryinstalled, output=True)
    json_flag(queryinstalled)
    queryinstalled.add_argument("--package-id", help="only this package")

    define = command(
        "define",
        run_define,
        "define a chaincode on a channel (approveformyorg + commit)",
        verbose=False,
    )
    peer(define)
    client_tls(define)
    json_flag(define)
    # Fabric's -v is the version here; --verbose is spelled out (or -v before `define`).
    define.add_argument(
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log at INFO level (-v here is Fabric's --version)",
    )
    # Not argparse's required=True: a missing one gets Fabric's message (run_define).
    needed = define.add_argument_group("required")
    needed.add_argument("--channel", "--channelID", "-C", help="channel (required)")
    needed.add_argument("--name", "-n", help="chaincode name, what invokes address (required)")
    needed.add_argument(
        "--version", "-v", dest="version", help="chaincode version (Fabric's -v) (required)"
    )
    needed.add_argument(
        "--sequence",
        type=_int64,
        help="definition sequence: 1, then one more per change (required)",
    )
    define.add_argument("--package-id", help="the installed package this peer runs it with")
    define.add_argument("--init-required", action="store_true", help="Init must run first")
    define.add_argument("--signature-policy", help="endorsement policy: OR('Org1MSP.member')")
    define.add_argument("--channel-config-policy", help="a channel policy reference instead")
    define.add_argument("--collections-config", metavar="FILE", help="private data collections")

    committed = command(
        "querycommitted", run_querycommitted, "list the chaincode definitions of a channel"
    )
    peer(committed)
    client_tls(committed, output=True)
    json_flag(committed)
    committed.add_argument("--channel", "--channelID", "-C", help="channel")
    committed.add_argument("--name", "-n", help="only this chaincode")

    channel = command("channel", run_channel, "join or list the peer's channels")
    channel_commands = channel.add_subparsers(
        dest="channel_command", required=True, parser_class=_Parser
    )
    for name, help_text in (("join", "join a channel"), ("list", "list the joined channels")):
        sub = channel_commands.add_parser(
            name, help=help_text, parents=[common], formatter_class=_Help
        )
        peer(sub)
        client_tls(sub, output=name == "list")
        json_flag(sub)
        if name == "join":
            sub.add_argument("name", help="channel name")

    package = command("package", run_package, "make a Fabric 2.x chaincode package")
    package.add_argument("--label", "-l", required=True, help="package label (Fabric's rules)")
    package.add_argument("--path", "-p", required=True, help="chaincode source directory")
    package.add_argument("--target", "-t", help="module:Class the shim runs (python type)")
    package.add_argument("--lang", "--type", dest="type", default="python", help="chaincode type")
    package.add_argument("--output", "-o", help="package file (default LABEL.tar.gz)")
    package.add_argument(
        "file", nargs="?", help="package file, as Fabric's `peer lifecycle chaincode package FILE`"
    )
    json_flag(package, "print the package id, label and file as one JSON object")

    images = command("images", run_images, "build or list the Docker base images")
    images_commands = images.add_subparsers(
        dest="images_command", required=True, parser_class=_Parser
    )
    images_build = images_commands.add_parser(
        "build", help="build the base images if missing", parents=[common], formatter_class=_Help
    )
    images_build.add_argument("--tag", help="shim base image tag (default: chaincode.baseimage)")
    images_build.add_argument("--force", action="store_true", help="rebuild even if present")
    images_build.add_argument("--endpoint", help="Docker endpoint (default: DOCKER_HOST)")
    json_flag(images_build, "print the result as one JSON object (progress on stderr)")
    images_list = images_commands.add_parser(
        "list", help="list ccactors images", parents=[common], formatter_class=_Help
    )
    images_list.add_argument("--endpoint", help="Docker endpoint (default: DOCKER_HOST)")
    json_flag(images_list, "print one JSON array")

    from actors.msp import command as crypto

    crypto.add_arguments(
        command("crypto", crypto.run, "make MSP folders in Fabric's layout (like cryptogen)")
    )
    add_extra_commands(command)
    return parser


# The verbs that talk to a running peer as its client (Fabric's `peer` CLI counterparts).
CLIENT_VERBS = frozenset(
    [
        "invoke",
        "query",
        "wait",
        "list",
        "launch",
        "stop",
        "logs",
        "events",
        "install",
        "queryinstalled",
        "define",
        "querycommitted",
        "channel",
    ]
)


# Fabric's two-step definition, which `define` does in one (see run_define).
_TWO_STEP = ("approveformyorg", "commit", "checkcommitreadiness")


def _fabric_verb(argv: list[str]) -> list[str]:
    """A pasted ``peer lifecycle chaincode X ...`` or ``peer chaincode X ...`` line (with its
    ``peer`` replaced by ``ccactors``) is ``ccactors X ...``: the prefix is dropped. Returns the
    arguments without it."""
    at = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    if at is None:
        return argv
    for prefix in (["lifecycle", "chaincode"], ["chaincode"]):
        if argv[at : at + len(prefix)] == prefix:
            return argv[:at] + argv[at + len(prefix) :]
    return argv


def _quiet_grpc(verb: str | None) -> None:
    """A client verb's errors are one line each: gRPC's C core would also log its own view of
    a failed handshake (``I1208 ... ssl_transport_security.cc ...``) on stderr. It reads
    GRPC_VERBOSITY once, when grpc is imported, so this runs first; a value the user set
    stands."""
    if verb in CLIENT_VERBS:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")


def main(argv: Sequence[str] | None = None) -> int:
    argv = _fabric_verb(list(sys.argv[1:] if argv is None else argv))
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb in _TWO_STEP:
        # Not aliases of define: approveformyorg alone would commit, and commit would take a
        # definition Fabric's commit reads from the approvals; one message saves a surprise.
        _error(
            f"{verb}: ccactors has no separate {verb}: `ccactors define` does approveformyorg + "
            "commit in one step (same flags: -C, -n, -v, --sequence, --package-id, ...)"
        )
        return EXIT_USAGE
    _quiet_grpc(verb)
    args = build_parser().parse_args(argv)
    from actors.operations import LogSpecError, configure_logging

    try:
        # FABRIC_LOGGING_SPEC wins over -v; FABRIC_LOGGING_FORMAT picks the line format.
        configure_logging(
            os.environ.get("FABRIC_LOGGING_SPEC") or ("info" if args.verbose else "warning")
        )
    except LogSpecError as exc:
        _error(f"FABRIC_LOGGING_SPEC/FABRIC_LOGGING_FORMAT: {exc}")
        return EXIT_USAGE
    try:
        if hasattr(args, "peer_addresses"):  # a client verb: flags over Fabric's environment
            _connect(args)
        return args.run(args)
    except (UsageError, ConfigError) as exc:
        for problem in exc.problems:
            _error(problem)
        return EXIT_USAGE
    except ChaincodeError as exc:
        return _failed(exc)


if __name__ == "__main__":
    sys.exit(main())
