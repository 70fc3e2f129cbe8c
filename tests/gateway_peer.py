"""A peer with the Gateway service for tests: chaincode support, the gateway stack, cryptogen
identities (used by tests/integration/test_gateway.py and the Node client interop test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from actors.config import ChaincodeDefinition, Config
from actors.gateway.cutter import BatchConfig
from actors.gateway.deliver import FIRST_REQUEST_TIMEOUT
from actors.gateway.limits import ConcurrencyLimits
from actors.gateway.stack import GatewayStack
from actors.gateway.validator import ChaincodeRules
from actors.msp import cryptogen
from actors.msp.msp import MSP, MSPManager, SigningIdentity, load_signing_identity
from actors.msp.policies import from_string
from actors.scheduler import Scheduler
from actors.support import ChaincodeSupport
from protos.peer.policy_pb2 import ApplicationPolicy

CHANNEL = "mychannel"
OURS = (
    ChaincodeDefinition("kv", target="examples.kv:KVChaincode"),
    ChaincodeDefinition("asset", target="examples.asset_transfer:AssetTransfer"),
)


def make_crypto(out: Path, orgs: str = "Org1MSP,Org2MSP") -> Path:
    assert cryptogen.main(["--orgs", orgs, "--out", str(out)]) == 0
    return out


def member_dir(crypto: Path, org: int, name: str) -> Path:
    """``peer0`` -> the peer's folder, ``User1@`` -> the user's folder, of ``org<org>``."""
    domain = f"org{org}.example.com"
    base = crypto / "peerOrganizations" / domain
    return (
        base / "users" / f"{name}{domain}" if "@" in name else base / "peers" / f"{name}.{domain}"
    )


def ident(crypto: Path, org: int, name: str) -> SigningIdentity:
    return load_signing_identity(member_dir(crypto, org, name) / "msp", f"Org{org}MSP")


class GatewayPeer:
    """ChaincodeSupport + GatewayStack on a free port; ``policies`` maps a chaincode to its
    endorsement policy (chaincodes not in it are undefined on the channel)."""

    def __init__(
        self,
        crypto: Path,
        *,
        chaincodes: tuple[ChaincodeDefinition, ...] = OURS,
        data_dir: Path | None = None,
        tls: bool = False,
        client_auth: bool = False,
        first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
        **config: Any,
    ) -> None:
        self.policies = {d.name: "OR('Org1MSP.peer')" for d in chaincodes}
        self.support = ChaincodeSupport(Config(chaincodes=chaincodes, msp_id="Org1MSP", **config))
        if any(d.runtime == "process" for d in chaincodes):
            self.support.listen("127.0.0.1:0")
        self.scheduler = Scheduler("gateway-test")
        members = MSPManager(
            MSP.from_dir(crypto / f"peerOrganizations/org{n}.example.com/msp", f"Org{n}MSP")
            for n in (1, 2)
        )
        self.stack = GatewayStack(
            runner=self.support,
            ledgers=self.support.ledgers.get,
            channels={CHANNEL: members},
            definitions=self.rules,
            signer=ident(crypto, 1, "peer0"),
            collection_policy=self.support.peer.collections.endorsement_policy,
            call_later=self.scheduler.call_later,
            batch=BatchConfig(batch_timeout=0.05),
            data_dir=data_dir,
        )
        credentials = None
        if tls:
            server_tls = member_dir(crypto, 1, "peer0") / "tls"
            credentials = grpc.ssl_server_credentials(
                [
                    (
                        (server_tls / "server.key").read_bytes(),
                        (server_tls / "server.crt").read_bytes(),
                    )
                ],
                # with client_auth: clients of org1's TLS CA, bound to their Deliver requests
                root_certificates=(server_tls / "ca.crt").read_bytes() if client_auth else None,
                require_client_auth=client_auth,
            )
        settings = self.support.config
        self.port = self.stack.serve(
            "127.0.0.1:0",
            credentials=credentials,
            mutual_tls=tls and client_auth,
            first_request_timeout=first_request_timeout,
            limits=ConcurrencyLimits(
                gateway=settings.gateway_concurrency,
                endorser=settings.endorser_concurrency,
                deliver=settings.deliver_concurrency,
            ),
        )
        self.address = f"127.0.0.1:{self.port}"

    def rules(self, channel: str, chaincode: str) -> ChaincodeRules | None:
        policy = self.policies.get(chaincode)
        if channel != CHANNEL or policy is None:
            return None
        app = ApplicationPolicy(signature_policy=from_string(policy))
        return ChaincodeRules("1.0", app.SerializeToString())

    def close(self) -> None:
        self.stack.stop()
        self.scheduler.stop()
        self.support.shutdown()
