"""The collection store: which collections a chaincode has on a channel, who may read and
write them, and which of them this peer keeps.

Fabric counterparts: ``core/common/privdata/store.go`` (``SimpleCollectionStore``:
``RetrieveReadWritePermission``, ``NoSuchCollectionError``), ``core/chaincode/lifecycle``'s
``deployedcc_infoprovider.go`` (explicit collections from the definition plus the implicit
``_implicit_org_<MSPID>`` ones), ``txmgr/collection_val.go`` (the collection-name check) and
``core/ledger/pvtdatapolicy`` with the committer's eligibility test (peer's org a member,
blockToLive).

The creator of a transaction is the proposal's, and the member policy is evaluated on it as
Fabric does (``SimpleCollection.AccessFilter``): a creator the channel's MSPs cannot deserialize
or validate, or whose signature does not verify, is no member, whatever MSP id it claims. The
one exception is a proposal the peer built itself (admin API, ``ccactors invoke``, the
embedding API without a proposal): it carries the peer's local identity, which no channel MSP
issued, and acts as a client of the peer's organisation. The store knows that identity because
the peer hands it over (``local_identity``), and takes a proposal as the peer's own only when
its creator is that identity and its signature verifies with the peer's key, which never leaves
the process: a client can copy the certificate, not the signature. Proposals the peer builds
unsigned (``chaincode.signproposals = false``) therefore have no member access.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from google.protobuf.message import DecodeError

from actors.msp.msp import MSPError, MSPManager
from actors.msp.policies import PolicyError, SignedData, evaluate, from_string
from actors.privdata import collections
from actors.proposals import Identity
from protos.common.common_pb2 import Header, SignatureHeader
from protos.peer.collection_pb2 import CollectionConfigPackage, StaticCollectionConfig
from protos.peer.policy_pb2 import ApplicationPolicy
from protos.peer.proposal_pb2 import Proposal, SignedProposal


class CollectionAccessError(Exception):
    """A private data request Fabric refuses; ``str()`` is Fabric's text."""


@lru_cache(maxsize=256)
def _package(text: str) -> CollectionConfigPackage:
    return collections.parse_config(text) if text else CollectionConfigPackage()


def _signed_data(proposal: SignedProposal | None) -> SignedData | None:
    """The proposal's signed data (bytes, creator, signature), None when it has none."""
    if proposal is None:
        return None
    try:
        header = Header.FromString(Proposal.FromString(proposal.proposal_bytes).header)
        creator = SignatureHeader.FromString(header.signature_header).creator
    except DecodeError:
        return None
    return SignedData(proposal.proposal_bytes, creator, proposal.signature)


class CollectionStore:
    """Collections of chaincodes on channels, as the handler and the committer need them.

    ``definition_collections(channel, chaincode)`` gives the definition's collections config
    (Fabric CLI JSON; "" for none) or None when the chaincode has no definition there (then
    only the implicit collections exist); ``channel_orgs(channel)`` the channel's MSP ids;
    ``msps(channel)`` the channel's MSPs when the peer has them; ``local_identity`` the
    identity the peer signs its own proposals with."""

    def __init__(
        self,
        *,
        definition_collections: Callable[[str, str], str | None],
        channel_orgs: Callable[[str], Sequence[str]],
        local_msp_id: str,
        msps: Callable[[str], MSPManager | None] = lambda channel: None,
        local_identity: Identity | None = None,
    ) -> None:
        self._definition_collections = definition_collections
        self._channel_orgs = channel_orgs
        self.local_msp_id = local_msp_id
        self._msps = msps
        self._local = local_identity

    def find(self, channel: str, chaincode: str, name: str) -> StaticCollectionConfig | None:
        """The collection, explicit or implicit (for a channel org); None if it has none."""
        text = self._definition_collections(channel, chaincode) or ""
        return collections.find(
            _package(text),
            name,
            channel_orgs=self._channel_orgs(channel),
            local_msp_id=self.local_msp_id,
        )

    def check_name(self, channel: str, chaincode: str, name: str) -> None:
        """The ledger's collection-name check (``InvalidCollNameError``)."""
        if self.find(channel, chaincode, name) is None:
            raise CollectionAccessError(
                f"collection [{name}] not defined in the collection config for chaincode "
                f"[{chaincode}]"
            )

    def access(
        self, channel: str, chaincode: str, name: str, proposal: SignedProposal | None
    ) -> collections.Access:
        """What the proposal's creator may do (``RetrieveReadWritePermission``)."""
        if name.startswith(collections.IMPLICIT_PREFIX):
            # Fabric's CollectionInfo recognises the prefix for any MSP id; implicit
            # collections are open to every client (memberOnly* false).
            return collections.Access(True, True)
        static = self.find(channel, chaincode, name)
        if static is None:
            raise CollectionAccessError(
                f"collection {channel}/{chaincode}/{name} could not be found"
            )
        if not static.member_only_read and not static.member_only_write:
            return collections.Access(True, True)
        if self._creator_is_member(channel, static, proposal):
            return collections.Access(True, True)
        return collections.Access(not static.member_only_read, not static.member_only_write)

    def _creator_is_member(
        self, channel: str, static: StaticCollectionConfig, proposal: SignedProposal | None
    ) -> bool:
        signed = _signed_data(proposal)
        if signed is None:
            return False
        if self._is_local(signed):
            return self.local_msp_id in collections.member_orgs(static)
        msps = self._msps(channel)
        if msps is None:  # no channel MSPs: nobody's membership can be established
            return False
        try:
            evaluate(static.member_orgs_policy.signature_policy, [signed], msps)
            return True
        except (PolicyError, MSPError):
            return False

    def _is_local(self, signed: SignedData) -> bool:
        """The proposal is one the peer built and signed itself (see the module docstring)."""
        local = self._local
        return (
            local is not None
            and signed.identity == local.serialized
            and local.verify(signed.data, signed.signature)
        )

    def endorsement_policy(self, channel: str, chaincode: str, name: str) -> bytes | None:
        """``ApplicationPolicy`` bytes for the collection's writes at validation: its own
        endorsement policy, for an implicit collection "a member of that org"; None: the
        chaincode's applies."""
        static = self.find(channel, chaincode, name)
        if static is None:
            return None
        if name.startswith(collections.IMPLICIT_PREFIX):
            # Fabric uses /Channel/Application/<Org>/Endorsement when the channel has it; this
            # peer's channels have no per-org policies, so Fabric's fallback applies.
            msp_id = name[len(collections.IMPLICIT_PREFIX) :]
            policy = ApplicationPolicy(signature_policy=from_string(f"OR('{msp_id}.member')"))
            return policy.SerializeToString()
        if static.HasField("endorsement_policy"):
            return static.endorsement_policy.SerializeToString()
        return None

    def rules(self, channel: str) -> Callable[[str, str], tuple[bool, int]]:
        """For the channel's ledger: (this peer keeps the collection's values, blockToLive)."""

        def rules(namespace: str, collection: str) -> tuple[bool, int]:
            static = self.find(channel, namespace, collection)
            if static is None:  # no longer defined: keep the hashes only
                return False, 0
            return collections.peer_is_member(static, self.local_msp_id), static.block_to_live

        return rules


__all__ = ["CollectionAccessError", "CollectionStore"]
