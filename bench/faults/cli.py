"""``ccactors faults``: its options and its run. The ``ccactors`` command finds this module
through the ``ccactors.commands`` entry point (setup.cfg), so the peer never imports it; it
uses the command's conventions (error prefix, exit codes, duration flags) from :mod:`actors.cli`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from actors.cli import EXIT_FAILED, EXIT_OK, UsageError, _error, _seconds

HELP = "an invoke load with faults injected"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runtime", choices=("system", "process", "docker"), default="system")
    parser.add_argument("--clients", type=int, default=64, help="parallel client threads")
    parser.add_argument("--duration", type=_seconds, default=60.0, help="seconds of load")
    parser.add_argument("--fault-every", type=_seconds, default=2.0, help="seconds between faults")
    parser.add_argument(
        "--faults",
        default="",
        help="comma list of fault kinds (default: all that apply to the runtime)",
    )
    parser.add_argument("--chaincodes", type=int, default=2, help="chaincodes the load spans")
    parser.add_argument("--seed", type=int, help="schedule seed (default: random, reported)")
    parser.add_argument("--execute-timeout", type=_seconds, default=3.0, help="seconds")
    parser.add_argument("--startup-timeout", type=_seconds, default=10.0, help="seconds")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    """A load with faults injected on a schedule (see :mod:`bench.faults`)."""
    from bench.faults import (
        FaultsConfig,
        FaultsConfigError,
        FaultsUnavailable,
        parse_fault_list,
        render_table,
    )
    from bench.faults import run as run_fault_load

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
        raise UsageError(f"faults: {exc}") from None
    try:
        report = run_fault_load(config, progress=sys.stderr)
    except FaultsUnavailable as exc:
        _error(f"faults: {exc}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_table(report))
    code = EXIT_OK if report.ok else EXIT_FAILED
    if report.shutdown_s is None:  # the peer did not shut down: its threads would keep us here
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
