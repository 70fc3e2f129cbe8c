"""What putting chaincode containers on a bridge network costs at launch (issue 14).

Launch to READY of the kv example in a hardened container, host network against the default
bridge, interleaved so that noise hits both alike; and, as the raw primitive measured in the
same run, ``docker create`` + ``start`` + wait of a container that exits at once on each
network. Medians over ``--runs``.

    .venv/bin/python -m bench.docker_network [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from actors.config import ChaincodeDefinition, Config
from actors.images import BASE_IMAGE, docker_client
from actors.packaging import create_package
from actors.peer import PeerAddress
from actors.runtimes.docker import PEER_LABEL, DockerRuntime
from actors.support import ChaincodeSupport
from actors.tls import ChaincodeTLS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _peer(network_mode: str, package: str) -> ChaincodeSupport:
    """A peer with the defaults' mutual TLS whose one chaincode runs on ``network_mode``."""
    address = PeerAddress()
    tls = ChaincodeTLS()
    runtime = DockerRuntime(
        address,
        network_mode=network_mode,
        peer_id=f"bench-{network_mode}-{os.getpid()}",
        network_id="bench",
        tls=tls.client_for,
    )
    definition = ChaincodeDefinition("kv", runtime="docker", package=package)
    support = ChaincodeSupport(
        Config(chaincodes=(definition,), startup_timeout=60),
        runtimes={"docker": runtime},
        peer_address=address,
        tls=tls,
    )
    support.listen("0.0.0.0:0")
    support.launch("kv", timeout=120)  # builds the image once
    return support


def _raw_container(client: object, network_mode: str) -> float:
    api = client.api  # type: ignore[attr-defined]
    started = time.perf_counter()
    container = api.create_container(
        BASE_IMAGE,
        command=["true"],
        host_config=api.create_host_config(network_mode=network_mode),
    )["Id"]
    api.start(container)
    api.wait(container)
    elapsed = time.perf_counter() - started
    api.remove_container(container, force=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        package = str(Path(tmp, "kv.tar.gz"))
        create_package(EXAMPLES, "benchkv", target="examples.kv:KVChaincode", out=package)
        peers = {mode: _peer(mode, package) for mode in ("host", "bridge")}
        client = docker_client()
        launches: dict[str, list[float]] = {mode: [] for mode in peers}
        raw: dict[str, list[float]] = {mode: [] for mode in peers}
        try:
            for _ in range(args.runs):
                for mode, support in peers.items():
                    support.stop("kv")
                    started = time.perf_counter()
                    support.launch("kv", timeout=60)
                    launches[mode].append(time.perf_counter() - started)
                    raw[mode].append(_raw_container(client, mode))
        finally:
            for support in peers.values():
                support.shutdown()
            for mode in peers:  # the chaincode images this run built
                label = f"{PEER_LABEL}=bench-{mode}-{os.getpid()}"
                for image in client.images.list(filters={"label": label}):
                    client.images.remove(image.id, force=True)
            client.close()
    affinity = sorted(os.sched_getaffinity(0))
    print(f"docker launch cost by network, {args.runs} runs each, CPUs {affinity}")
    print(f"{'network':<8} {'launch to READY':>16} {'raw create+start+exit':>22}  (medians, ms)")
    for mode in peers:
        print(
            f"{mode:<8} {statistics.median(launches[mode]) * 1000:>16.0f}"
            f" {statistics.median(raw[mode]) * 1000:>22.0f}"
        )
    ratio = statistics.median(launches["bridge"]) / statistics.median(launches["host"])
    print(f"bridge / host launch: {ratio:.2f}x")


if __name__ == "__main__":
    main()
