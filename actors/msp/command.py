"""``ccactors crypto``: its options and what it prints (the generator is
:mod:`actors.msp.cryptogen`, imported only when the command runs: ``cryptography.x509`` takes a
few hundred milliseconds to import, which every other command would pay)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--orgs", required=True, help="comma-separated MSP ids, e.g. Org1MSP,Org2MSP"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--peers", type=int, default=1, help="peers per organisation")
    parser.add_argument("--users", type=int, default=1, help="client users per organisation")
    parser.add_argument("--json", action="store_true", help="print the paths as JSON")


def run(args: argparse.Namespace) -> int:
    """0 written, 1 the files could not be written, 2 bad arguments."""
    from actors.msp.cryptogen import CryptoError, generate_org

    orgs = [o.strip() for o in args.orgs.split(",") if o.strip()]
    if not orgs or len(set(orgs)) != len(orgs):
        print(
            "ccactors: error: --orgs: give distinct MSP ids, e.g. Org1MSP,Org2MSP", file=sys.stderr
        )
        return 2
    try:
        result = [generate_org(Path(args.out), o, peers=args.peers, users=args.users) for o in orgs]
    except CryptoError as exc:
        print(f"ccactors: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ccactors: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for org in result:
            print(f"{org['msp_id']}: {org['msp_dir']}")
    return 0
