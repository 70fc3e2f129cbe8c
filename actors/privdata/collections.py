"""Private data collections: the definition's collections config, validated, and who may
read and write them.

Fabric counterparts: ``internal/peer/chaincode/common.go`` (the collections config JSON as
``peer lifecycle chaincode ... --collections-config`` reads it),
``core/chaincode/lifecycle`` collection validation (names, counts, OR-only member policies,
channel members, no removal and no BlockToLive change), ``core/common/privdata``
(``_implicit_org_<MSPID>`` collections, member orgs, the client's read/write access) and the
``memberOnlyRead``/``memberOnlyWrite`` rules of ``core/chaincode/handler.go``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from actors.msp.msp import MSPManager
from actors.msp.policies import PolicyError, SignedData, evaluate, from_string, to_string
from protos.common.policies_pb2 import SignaturePolicy
from protos.msp.identities_pb2 import SerializedIdentity
from protos.msp.msp_principal_pb2 import MSPPrincipal, MSPRole, OrganizationUnit
from protos.peer.collection_pb2 import CollectionConfigPackage, StaticCollectionConfig

IMPLICIT_PREFIX = "_implicit_org_"
_NAME = re.compile(r"^[A-Za-z0-9-]+([A-Za-z0-9_-]+)*$")
MAX_CONFIG_BYTES = 1024 * 1024
MAX_COLLECTIONS = 1000
_INT32 = 2**31 - 1
_UINT64 = 2**64 - 1


class CollectionError(ValueError):
    """A collections config that Fabric would refuse; ``str()`` is Fabric's text."""


# --- the JSON file ------------------------------------------------------------------------


def _field(entry: Mapping[str, Any], name: str) -> Any:
    """Go's encoding/json matches keys case-insensitively (the exact key first)."""
    if name in entry:
        return entry[name]
    lowered = name.lower()
    for key, value in entry.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _int(value: Any, what: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CollectionError(
            f"could not parse the collection configuration: {what} must be an integer in "
            f"[{low}, {high}], got {value!r}"
        )
    return value


def _bool(value: Any, what: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CollectionError(
            f"could not parse the collection configuration: {what} must be true or false, "
            f"got {value!r}"
        )
    return value


def parse_config(data: bytes | str) -> CollectionConfigPackage:
    """The collections config JSON (an array of collections) as Fabric's CLI turns it into a
    ``CollectionConfigPackage``."""
    if len(data) > MAX_CONFIG_BYTES:
        raise CollectionError(
            f"could not parse the collection configuration: larger than {MAX_CONFIG_BYTES} bytes"
        )
    try:
        entries = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CollectionError(f"could not parse the collection configuration: {exc}") from None
    if not isinstance(entries, list):
        raise CollectionError(
            "could not parse the collection configuration: expected a JSON array of collections"
        )
    if len(entries) > MAX_COLLECTIONS:
        raise CollectionError(f"at most {MAX_COLLECTIONS} collections, got {len(entries)}")
    package = CollectionConfigPackage()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise CollectionError(
                f"could not parse the collection configuration: entry {i} is not an object"
            )
        name = _field(entry, "name") or ""
        policy = _field(entry, "policy") or ""
        if not isinstance(name, str) or not isinstance(policy, str):
            raise CollectionError(
                f"could not parse the collection configuration: entry {i}: name and policy "
                "must be strings"
            )
        try:
            member_policy = from_string(policy)
        except PolicyError as exc:
            raise CollectionError(f"invalid policy {policy}: {exc}") from None
        static = StaticCollectionConfig(
            name=name,
            required_peer_count=_int(
                _field(entry, "requiredPeerCount"), "requiredPeerCount", -_INT32 - 1, _INT32, 0
            ),
            maximum_peer_count=_int(
                _field(entry, "maxPeerCount"), "maxPeerCount", -_INT32 - 1, _INT32, 1
            ),
            block_to_live=_int(_field(entry, "blockToLive"), "blockToLive", 0, _UINT64, 0),
            member_only_read=_bool(_field(entry, "memberOnlyRead"), "memberOnlyRead"),
            member_only_write=_bool(_field(entry, "memberOnlyWrite"), "memberOnlyWrite"),
        )
        static.member_orgs_policy.signature_policy.CopyFrom(member_policy)
        endorsement = _field(entry, "endorsementPolicy")
        if endorsement is not None:
            _set_endorsement_policy(static, endorsement)
        package.config.add().static_collection_config.CopyFrom(static)
    return package


def _set_endorsement_policy(static: StaticCollectionConfig, spec: Any) -> None:
    if not isinstance(spec, dict):
        raise CollectionError(
            "could not parse the collection configuration: endorsementPolicy must be an object"
        )
    signature = _field(spec, "signaturePolicy") or ""
    channel = _field(spec, "channelConfigPolicy") or ""
    if not isinstance(signature, str) or not isinstance(channel, str):
        raise CollectionError(
            "could not parse the collection configuration: endorsementPolicy values must be strings"
        )
    if signature and channel:
        raise CollectionError(
            f"invalid endorsement policy [{spec!r}]: cannot specify both "
            '"--signature-policy" and "--channel-config-policy"'
        )
    if signature:
        try:
            static.endorsement_policy.signature_policy.CopyFrom(from_string(signature))
        except PolicyError as exc:
            raise CollectionError(
                f"invalid endorsement policy [{spec!r}]: invalid signature policy: {signature}: "
                f"{exc}"
            ) from None
    elif channel:
        static.endorsement_policy.channel_config_policy_reference = channel


# --- validation at define (lifecycle) -----------------------------------------------------


def _principal_msp(principal: MSPPrincipal) -> str | None:
    try:
        if principal.principal_classification == MSPPrincipal.ROLE:
            return MSPRole.FromString(principal.principal).msp_identifier
        if principal.principal_classification == MSPPrincipal.ORGANIZATION_UNIT:
            return OrganizationUnit.FromString(principal.principal).msp_identifier
        if principal.principal_classification == MSPPrincipal.IDENTITY:
            return SerializedIdentity.FromString(principal.principal).mspid
    except DecodeError:
        return None
    return None


def member_orgs(static: StaticCollectionConfig) -> set[str]:
    """The MSP ids named by a collection's member policy."""
    envelope = static.member_orgs_policy.signature_policy
    return {m for p in envelope.identities if (m := _principal_msp(p))}


def _only_or(rule: SignaturePolicy) -> int | None:
    """The n of the first NOutOf with n != 1, None when every gate is an OR."""
    if rule.WhichOneof("Type") != "n_out_of":
        return None
    if rule.n_out_of.n != 1:
        return rule.n_out_of.n
    for sub in rule.n_out_of.rules:
        if (bad := _only_or(sub)) is not None:
            return bad
    return None


def validate(
    package: CollectionConfigPackage,
    *,
    channel_orgs: Iterable[str],
    previous: CollectionConfigPackage | None = None,
) -> None:
    """Fabric's checks of a definition's collections, in Fabric's order."""
    orgs = set(channel_orgs)
    seen: set[str] = set()
    for config in package.config:
        static = config.static_collection_config
        name = static.name
        if not _NAME.match(name):
            raise CollectionError(
                f"invalid collection name '{name}'. Names can only consist of alphanumerics, "
                "'_', and '-' and cannot begin with '_'"
            )
        if name in seen:
            raise CollectionError(
                f"collection-name: {name} -- found duplicate in collection configuration"
            )
        seen.add(name)
        if static.maximum_peer_count < static.required_peer_count:
            raise CollectionError(
                f"collection-name: {name} -- maximum peer count ({static.maximum_peer_count}) "
                f"cannot be less than the required peer count ({static.required_peer_count})"
            )
        if static.required_peer_count < 0:
            raise CollectionError(
                f"collection-name: {name} -- requiredPeerCount ({static.required_peer_count}) "
                "cannot be less than zero"
            )
        if not static.HasField("member_orgs_policy"):
            raise CollectionError(f"collection member policy is not set for collection '{name}'")
        if not static.member_orgs_policy.HasField("signature_policy"):
            raise CollectionError(f"collection member org policy is empty for collection '{name}'")
        envelope = static.member_orgs_policy.signature_policy
        if (n := _only_or(envelope.rule)) is not None:
            raise CollectionError(
                f"collection-name: {name} -- error in member org policy: signature policy is "
                f"not an OR concatenation, NOutOf {n}"
            )
        for principal in envelope.identities:
            kind = principal.principal_classification
            msp = _principal_msp(principal)
            if kind in (MSPPrincipal.ROLE, MSPPrincipal.ORGANIZATION_UNIT):
                if msp not in orgs:
                    raise CollectionError(
                        f"collection-name: {name} -- collection member '{msp}' is not part of "
                        "the channel"
                    )
            elif kind == MSPPrincipal.IDENTITY:
                if msp not in orgs:
                    raise CollectionError(
                        f"collection-name: {name} -- contains an identity that is not part of "
                        "the channel"
                    )
            else:
                kind_name = MSPPrincipal.Classification.Name(kind)
                raise CollectionError(
                    f"collection-name: {name} -- principal type {kind_name} is not supported"
                )
    if previous is None or not previous.config:
        return
    if not package.config:
        raise CollectionError(
            "the proposed collection config does not contain previously defined collections"
        )
    proposed = {c.static_collection_config.name: c.static_collection_config for c in package.config}
    for old in previous.config:
        static = old.static_collection_config
        new = proposed.get(static.name)
        if new is None:
            raise CollectionError(
                f"existing collection [{static.name}] missing in the proposed collection "
                "configuration"
            )
        if new.block_to_live != static.block_to_live:
            raise CollectionError(
                f"the BlockToLive in an existing collection [{static.name}] modified. Existing "
                f"value [{static.block_to_live}]"
            )


# --- at run time ---------------------------------------------------------------------------


def implicit_collection(msp_id: str, *, local_msp_id: str) -> StaticCollectionConfig:
    """``_implicit_org_<MSPID>``: members are that org; read and write open to any client."""
    static = StaticCollectionConfig(
        name=IMPLICIT_PREFIX + msp_id,
        required_peer_count=0,
        maximum_peer_count=1 if msp_id == local_msp_id else 0,
    )
    static.member_orgs_policy.signature_policy.CopyFrom(from_string(f"OR('{msp_id}.member')"))
    return static


def find(
    package: CollectionConfigPackage | None,
    name: str,
    *,
    channel_orgs: Sequence[str],
    local_msp_id: str,
) -> StaticCollectionConfig | None:
    """The collection ``name`` of a chaincode: explicit, or implicit for a channel org."""
    if name.startswith(IMPLICIT_PREFIX):
        msp_id = name[len(IMPLICIT_PREFIX) :]
        return (
            implicit_collection(msp_id, local_msp_id=local_msp_id)
            if msp_id in channel_orgs
            else None
        )
    for config in package.config if package is not None else ():
        if config.static_collection_config.name == name:
            return config.static_collection_config
    return None


@dataclass(frozen=True)
class Access:
    read: bool
    write: bool


def client_access(static: StaticCollectionConfig, creator: SignedData, msps: MSPManager) -> Access:
    """What the proposal's creator may do (Fabric's client ACL for collections)."""
    if not static.member_only_read and not static.member_only_write:
        return Access(True, True)
    try:
        evaluate(static.member_orgs_policy.signature_policy, [creator], msps)
        return Access(True, True)
    except PolicyError:
        return Access(not static.member_only_read, not static.member_only_write)


def peer_is_member(static: StaticCollectionConfig, local_msp_id: str) -> bool:
    """Whether this peer keeps the collection's private data (its org is a member)."""
    return local_msp_id in member_orgs(static)


def to_json(package: CollectionConfigPackage) -> list[dict[str, Any]]:
    """The package in the CLI's JSON shape (``querycommitted --json``)."""
    out = []
    for config in package.config:
        s = config.static_collection_config
        entry: dict[str, Any] = {
            "name": s.name,
            "policy": to_string(s.member_orgs_policy.signature_policy),
            "requiredPeerCount": s.required_peer_count,
            "maxPeerCount": s.maximum_peer_count,
            "blockToLive": s.block_to_live,
            "memberOnlyRead": s.member_only_read,
            "memberOnlyWrite": s.member_only_write,
        }
        which = s.endorsement_policy.WhichOneof("Type")
        if which == "signature_policy":
            entry["endorsementPolicy"] = {
                "signaturePolicy": to_string(s.endorsement_policy.signature_policy)
            }
        elif which == "channel_config_policy_reference":
            entry["endorsementPolicy"] = {
                "channelConfigPolicy": s.endorsement_policy.channel_config_policy_reference
            }
        out.append(entry)
    return out


__all__ = [
    "IMPLICIT_PREFIX",
    "Access",
    "CollectionError",
    "client_access",
    "find",
    "implicit_collection",
    "member_orgs",
    "parse_config",
    "peer_is_member",
    "to_json",
    "validate",
]
