"""A short Hyperledger Caliper 0.6 round (npm, unmodified; Fabric connector on the gateway
binding) against our Gateway service over TLS: every submit commits, every evaluate reads."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from tests.gateway_peer import CHANNEL, GatewayPeer, make_crypto, member_dir
from tests.interop import caliper_run

pytestmark = pytest.mark.timeout(300)

TX = 60  # per round: a few seconds


def test_a_caliper_round_of_submits_and_evaluates(
    tmp_path: Path, skip_or_fail: Callable[[str], NoReturn]
) -> None:
    if shutil.which("node") is None:
        skip_or_fail("node is not installed")
    if not (caliper_run.CALIPER_DIR / "node_modules/@hyperledger/caliper-cli").is_dir():
        skip_or_fail("Caliper is not installed; run tools/ensure_node_interop.sh")
    crypto = make_crypto(tmp_path / "crypto")
    peer = GatewayPeer(crypto, tls=True)
    try:
        user = member_dir(crypto, 1, "User1@") / "msp"
        caliper_run.write_workspace(
            tmp_path / "caliper",
            address=peer.address,
            tls_ca=member_dir(crypto, 1, "peer0") / "tls" / "ca.crt",
            host="peer0.org1.example.com",
            msp_id="Org1MSP",
            cert=next((user / "signcerts").iterdir()),
            key=user / "keystore" / "priv_sk",
            channel=CHANNEL,
            tx_number=TX,
            tps=30,
            workers=2,
        )
        rounds, output = caliper_run.run(tmp_path / "caliper", timeout=240)
        (tmp_path / "caliper.log").write_text(output)
        by_name = {r.name: r for r in rounds}
        assert set(by_name) == {"put", "get"}, output[-3000:]
        for r in rounds:
            assert (r.succeeded, r.failed) == (TX, 0), output[-3000:]
            assert r.throughput > 0
        assert (tmp_path / "caliper" / "report.html").is_file()
        # the submits really committed: one worker's first key is on the ledger
        assert peer.support.ledgers.get(CHANNEL).get_state("kv", "w0-1") == b"1"
    finally:
        peer.close()
