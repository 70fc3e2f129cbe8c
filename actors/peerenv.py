"""Where and how a client verb (``ccactors invoke``, ``install``, ``define``, ...) reaches the
peer: its flags, ours and those of Fabric's ``peer`` CLI, over Fabric's ``CORE_PEER_*``
environment, which fills in only what no flag gives.

Fabric counterpart: ``internal/peer/common`` (``peerclient.go`` reads ``peer.address``,
``peer.tls.enabled``, ``peer.tls.rootcert.file``, the client certificate when
``peer.tls.clientAuthRequired``, ``peer.tls.serverhostoverride``; the MSP from
``peer.mspConfigPath`` and ``peer.localMspId``) and ``internal/peer/chaincode/common.go``
(``validatePeerConnectionParameters``: ``--peerAddresses`` with their ``--tlsRootCertFiles``).
A pasted Fabric command line works: flags that only matter for Fabric's separate orderer are
accepted and named in a one-line note.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from actors.config import Address, ConfigError, Duration

DEFAULT_PEER = "127.0.0.1:7051"

# Go's strconv.ParseBool, what Viper applies to CORE_PEER_TLS_ENABLED
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}

# Fabric's flags for its orderer: this peer orders its own transactions (an embedded orderer
# behind the admin API and the Gateway), so they have nothing to reach.
_ORDERER_FLAGS = (
    ("-o", "--orderer"),
    ("--ordererTLSHostnameOverride",),
    ("--tls",),
    ("--cafile",),
    ("--clientauth",),
    ("--certfile",),
    ("--keyfile",),
)


_IGNORED = "accepted, ignored: the peer orders its own transactions"


def add_arguments(
    sub: argparse.ArgumentParser, *, invoke: bool = False, output: bool = False
) -> None:
    """Fabric's peer-connection and orderer flags on ``sub``; with ``invoke`` its commit-wait
    flags, with ``output`` its ``--output json``."""
    group = sub.add_argument_group("Fabric's peer CLI flags (a pasted `peer ...` line works)")
    group.add_argument(
        "--peerAddresses",
        dest="peer_addresses",
        action="append",
        metavar="HOST:PORT",
        help="the same as --peer (one: this peer is the only one ccactors talks to)",
    )
    group.add_argument(
        "--tlsRootCertFiles",
        dest="tls_root_cert_files",
        action="append",
        metavar="PEM",
        help="the same as --tls-root-cert",
    )
    if output:
        group.add_argument(
            "--output", "-O", action=_JsonOutput, metavar="json", help="the same as --json"
        )
    if invoke:
        group.add_argument(
            "--waitForEvent",
            action="store_true",
            help="accepted: ccactors waits for the commit anyway",
        )
        group.add_argument(
            "--waitForEventTimeout",
            dest="wait_for_event_timeout",
            type=_duration,
            metavar="DURATION",
            help="with --gateway, how long to wait for the commit status (default: --timeout)",
        )
    for names in _ORDERER_FLAGS:
        flag = names[-1]
        if flag in ("--tls", "--clientauth"):
            group.add_argument(*names, dest=_dest(flag), action="store_true", help=_IGNORED)
        else:
            group.add_argument(*names, dest=_dest(flag), metavar="VALUE", help=_IGNORED)


class _JsonOutput(argparse.Action):
    """Fabric's ``--output json`` (``-O json``): our ``--json``; its only other format is the
    default text."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        if values != "json":
            parser.error(f"{option_string}: the only format is json (got {values!r})")
        namespace.json = True


def _duration(text: str) -> float:
    try:
        return Duration(positive=True)(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _dest(flag: str) -> str:
    return "fabric_" + flag.lstrip("-").lower()


@dataclass(frozen=True)
class Connection:
    """What a client verb uses: the peer's address, TLS files (None: plaintext), the client's
    MSP folder and id (for --gateway), and notes to print (flags accepted but ignored)."""

    peer: str
    tls_root_cert: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_host: str | None = None
    tls_root_source: str = "--tls-root-cert"  # the flag or variable that gave tls_root_cert
    msp_dir: str | None = None
    msp_id: str | None = None
    notes: tuple[str, ...] = ()


def resolve(
    args: argparse.Namespace, env: Mapping[str, str] | None = None, *, admin: bool = True
) -> Connection:
    """The connection ``args`` (a client verb's parsed flags) and ``env`` ask for. ``admin``:
    through the admin API, which authenticates an admin by the TLS client certificate, so over
    TLS without one the MSP folder's signing certificate and key are presented (the identity
    Fabric's CLI would sign with). Raises ConfigError listing every problem, each naming the
    flag or variable at fault."""
    env = os.environ if env is None else env
    problems: list[str] = []

    def var(name: str) -> str | None:
        value = env.get(name)
        return value if value else None  # empty means unset, as in Viper

    def boolean(name: str) -> bool:
        value = var(name)
        if value is None or value in _FALSE:
            return False
        if value in _TRUE:
            return True
        problems.append(f"{name}: expected true or false, got {value!r}")
        return False

    def one(flag: str, ours: str | None, fabric_flag: str, fabric: list[str] | None) -> str | None:
        """Our flag or Fabric's list form of it, which may name one value only."""
        values = list(dict.fromkeys(fabric or ()))
        if len(values) > 1:
            problems.append(
                f"{fabric_flag}: ccactors talks to one peer, this one, which endorses and "
                f"commits alone: give one (got {', '.join(values)})"
            )
            return None
        if ours is not None and values and values[0] != ours:
            problems.append(
                f"{flag} {ours} and {fabric_flag} {values[0]} contradict each other: give one"
            )
            return None
        return ours if ours is not None else (values[0] if values else None)

    def address(source: str, value: str) -> str:
        try:
            return Address()(value)
        except ConfigError as exc:
            problems.append(f"{source}: {exc}")
            return value

    def readable(source: str, path: str) -> str:
        if not os.path.isfile(path):
            problems.append(f"{source}: no such file {path}")
        return path

    # The peer's address: --peer or --peerAddresses, else CORE_PEER_ADDRESS.
    peer = one("--peer", args.peer, "--peerAddresses", getattr(args, "peer_addresses", None))
    if peer is not None:
        peer = address("--peer", peer)
    elif var("CORE_PEER_ADDRESS"):
        peer = address("CORE_PEER_ADDRESS", var("CORE_PEER_ADDRESS") or "")
    else:
        peer = DEFAULT_PEER

    # TLS: a root CA given by flag means TLS; else CORE_PEER_TLS_ENABLED decides and
    # CORE_PEER_TLS_ROOTCERT_FILE is the root (ignored when it is off, as in Fabric).
    root = one(
        "--tls-root-cert",
        args.tls_root_cert,
        "--tlsRootCertFiles",
        getattr(args, "tls_root_cert_files", None),
    )
    root_source = "--tls-root-cert" if args.tls_root_cert else "--tlsRootCertFiles"
    if root is not None:
        root = readable(root_source, root)
    elif boolean("CORE_PEER_TLS_ENABLED"):
        root_source = "CORE_PEER_TLS_ROOTCERT_FILE"
        root = var("CORE_PEER_TLS_ROOTCERT_FILE")
        if root is None:
            problems.append(
                "CORE_PEER_TLS_ENABLED is true but CORE_PEER_TLS_ROOTCERT_FILE is not set: set it "
                "to the peer's TLS CA certificate (or give --tls-root-cert)"
            )
        else:
            root = readable("CORE_PEER_TLS_ROOTCERT_FILE", root)
    host = args.tls_host or (var("CORE_PEER_TLS_SERVERHOSTOVERRIDE") if root else None)

    msp_dir = getattr(args, "msp_dir", None)
    msp_source = "--msp-dir"
    if msp_dir is None and var("CORE_PEER_MSPCONFIGPATH"):
        msp_dir, msp_source = var("CORE_PEER_MSPCONFIGPATH"), "CORE_PEER_MSPCONFIGPATH"
    msp_id = getattr(args, "msp_id", None) or var("CORE_PEER_LOCALMSPID")

    # The client's TLS certificate: the flags; else, with peer.tls.clientAuthRequired, Fabric's
    # client certificate variables; else (admin API over TLS) the MSP's signing identity.
    cert, key = args.tls_cert, args.tls_key
    if root is not None and cert is None and key is None:
        if boolean("CORE_PEER_TLS_CLIENTAUTHREQUIRED"):
            cert, key = var("CORE_PEER_TLS_CLIENTCERT_FILE"), var("CORE_PEER_TLS_CLIENTKEY_FILE")
            for name, path in (
                ("CORE_PEER_TLS_CLIENTCERT_FILE", cert),
                ("CORE_PEER_TLS_CLIENTKEY_FILE", key),
            ):
                if path is None:
                    problems.append(
                        f"CORE_PEER_TLS_CLIENTAUTHREQUIRED is true but {name} is not set"
                    )
                else:
                    readable(name, path)
        elif admin and msp_dir is not None:
            cert, key = _signing_files(msp_source, msp_dir, problems)
    if not admin and msp_source == "CORE_PEER_MSPCONFIGPATH" and not os.path.isdir(msp_dir or ""):
        problems.append(f"CORE_PEER_MSPCONFIGPATH: no such directory {msp_dir}")

    notes = []
    ignored = [
        names[-1]
        for names in _ORDERER_FLAGS
        if getattr(args, _dest(names[-1]), None) not in (None, False)
    ]
    if ignored:
        notes.append(
            f"{', '.join(ignored)} ignored: this peer orders its own transactions (an embedded "
            "orderer), there is no orderer to reach"
        )
    if admin and getattr(args, "wait_for_event_timeout", None):
        notes.append(
            "--waitForEventTimeout ignored: through the admin API the commit is part of the "
            "call (--timeout bounds its execution; --gateway waits for a commit status)"
        )
    if problems:
        raise ConfigError(*problems)
    return Connection(
        peer=peer,
        tls_root_cert=root,
        tls_cert=cert,
        tls_key=key,
        tls_host=host,
        tls_root_source=root_source,
        msp_dir=msp_dir,
        msp_id=msp_id,
        notes=tuple(notes),
    )


def _signing_files(source: str, msp_dir: str, problems: list[str]) -> tuple[str | None, str | None]:
    """An MSP folder's signing certificate and key (``signcerts/``, ``keystore/``, one each)."""
    found: dict[str, str | None] = {}
    for folder in ("signcerts", "keystore"):
        try:
            files = sorted(p for p in (Path(msp_dir) / folder).iterdir() if p.is_file())
        except OSError as exc:
            problems.append(f"{source}: cannot read {folder}/ of {msp_dir}: {exc.strerror or exc}")
            files = []
        else:
            if len(files) != 1:
                problems.append(
                    f"{source}: {msp_dir}/{folder} holds {len(files)} files, expected one "
                    "(or give --tls-cert and --tls-key)"
                )
        found[folder] = str(files[0]) if len(files) == 1 else None
    return found["signcerts"], found["keystore"]


def apply(args: argparse.Namespace, connection: Connection) -> None:
    """Write ``connection`` back into ``args`` (the fields the clients read)."""
    args.peer = connection.peer
    args.tls_root_cert = connection.tls_root_cert
    args.tls_cert = connection.tls_cert
    args.tls_key = connection.tls_key
    args.tls_host = connection.tls_host
    args.tls_root_source = connection.tls_root_source
    if hasattr(args, "msp_dir"):
        args.msp_dir = connection.msp_dir
        args.msp_id = connection.msp_id
