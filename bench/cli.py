"""``ccactors bench``: its options and its run. The ``ccactors`` command finds this module
through the ``ccactors.commands`` entry point (setup.cfg), so the peer never imports it."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

HELP = "benchmark against raw primitives"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,8,64: {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers: {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Closed-loop transaction load per runtime and workload, printed next to the raw "
        "primitives (bare actor+pipe, bare gRPC) measured in the same run, plus launch "
        "latency, memory, and scaling with live chaincodes. Progress goes to stderr."
    )
    parser.add_argument("--duration", type=float, help="measured seconds per cell (2)")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per cell (0.5)")
    parser.add_argument("--clients", type=_ints, help="closed-loop clients (1,8,64,256)")
    parser.add_argument(
        "--runtimes",
        type=_names,
        help="runtimes (system,system-greenlets,process; also system-threads, and docker when "
        "Docker is usable: its launch is measured by default, its transactions only when listed "
        "here)",
    )
    parser.add_argument(
        "--workloads", type=_names, help="read,readwrite,range,richquery,private,cc2cc"
    )
    parser.add_argument("--repeats", type=int, help="repeats per cell; figures are medians (3)")
    parser.add_argument(
        "--sections", type=_names, help="primitives,transactions,launch,scaling,gateway (all)"
    )
    parser.add_argument("--scaling", type=_ints, help="live chaincode counts (1,10,100)")
    parser.add_argument("--scaling-runtimes", type=_names, help="runtimes to scale (system)")
    parser.add_argument("--driver", choices=("async", "threads"), help="load generator (async)")
    parser.add_argument("--quick", action="store_true", help="a tiny run (seconds) for smoke tests")
    parser.add_argument("--pin", action="store_true", help="pin peer and chaincode to CPUs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG plot (needs matplotlib)")
    parser.add_argument(
        "--results",
        metavar="DIR",
        help=f"write README.md, results.json and bench.png to DIR (make bench: {DEFAULT_RESULTS})",
    )
    parser.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        help="run nothing: print the report of a saved results.json again (with --results DIR "
        "or --plot PATH, write README.md and bench.png again; make bench-report)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on a MISS or any error")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def options_from(args: argparse.Namespace) -> Any:
    from bench.runner import QUICK, SECTIONS, Options

    base = QUICK if args.quick else Options()
    changes: dict[str, Any] = {}
    for name in ("duration", "warmup", "clients", "runtimes", "workloads", "repeats"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    for name, field in (
        ("sections", "sections"),
        ("scaling", "scaling"),
        ("scaling_runtimes", "scaling_runtimes"),
        ("driver", "driver"),
    ):
        if getattr(args, name) is not None:
            changes[field] = getattr(args, name)
    if args.runtimes is not None:
        changes["launch_runtimes"] = args.runtimes
    changes["pin"] = args.pin
    options = base.replace(**changes)
    from bench.workloads import WORKLOADS

    unknown = [w for w in options.workloads if w not in WORKLOADS]
    unknown += [s for s in options.sections if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"ccactors bench: unknown workload or section: {', '.join(unknown)}")
    if options.repeats < 1 or options.duration <= 0 or options.warmup < 0:
        raise SystemExit("ccactors bench: --repeats >= 1, --duration > 0, --warmup >= 0")
    return options


def _load(path: str) -> dict[str, Any]:
    """A results.json written by ``ccactors bench``; anything else is a clear error."""
    from bench import SCHEMA

    try:
        results = json.loads(Path(path).read_text())
    except OSError as exc:
        raise SystemExit(f"ccactors bench: --render: cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise SystemExit(f"ccactors bench: --render: {path} is not JSON: {exc}") from None
    if not isinstance(results, dict) or results.get("schema") != SCHEMA:
        raise SystemExit(f"ccactors bench: --render: {path} is not a {SCHEMA} results file")
    return results


def run(args: argparse.Namespace) -> int:
    from bench import report

    if args.render:
        results = _load(args.render)
    else:
        from bench.runner import Bench, Progress

        bench = Bench(options_from(args), Progress(enabled=not args.quiet))
        results = bench.run()
        results["command"] = "ccactors " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "ccactors"
        # The report shows the figures as results.json keeps them, so --render makes it again.
        results = json.loads(report.to_json(results))
    plot_path = args.plot
    if args.results and not plot_path:
        plot_path = str(Path(args.results) / "bench.png")
    if plot_path:
        written = report.plot(results, plot_path)
        results["plot"] = written
        if written is None:
            print("ccactors bench: no plot (pip install matplotlib)", file=sys.stderr)
    if args.results:
        out = Path(args.results)
        out.mkdir(parents=True, exist_ok=True)
        if not args.render:
            (out / "results.json").write_text(report.to_json(results) + "\n")
        plot_name = None
        if results.get("plot"):
            plot_file = Path(results["plot"]).resolve()
            plot_name = plot_file.name if plot_file.parent == out.resolve() else str(plot_file)
        notes = []
        if (out / "PROFILE.md").exists():
            notes.append("Where the time goes, with proposed fixes: [PROFILE.md](PROFILE.md).")
        if (out / "pinned" / "README.md").exists():
            notes.append(
                "The read-write cells with the peer and the chaincode pinned to different CPUs: "
                "[pinned/README.md](pinned/README.md)."
            )
        (out / "README.md").write_text(report.markdown(results, plot_name, notes))
    if args.json:
        print(report.to_json(results))
    else:
        print(report.text(results))
    if results["failures"]:
        return 1
    if args.strict:
        missed = any(t["status"] == "MISS" for t in results["targets"])
        errors = any(t.get("errors") for t in results["transactions"])
        return 1 if missed or errors else 0
    return 0
