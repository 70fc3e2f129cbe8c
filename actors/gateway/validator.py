"""The committer's transaction validation, before MVCC: Fabric's validation codes.

Fabric counterparts: ``core/common/validation/msgvalidation.go`` (``ValidateTransaction``),
``core/committer/txvalidator/v20`` (the validator and its dispatcher) and
``core/handlers/validation/builtin/v20`` with ``core/common/validation/statebased`` (the default
VSCC: the chaincode's endorsement policy and key-level policies set with
``SetStateValidationParameter``).

:func:`validate_block` gives each envelope of a block its ``TxValidationCode`` in Fabric's order
of checks (header, creator signature, txid, transaction shape, duplicate txid, chaincode
definition, endorsement policies); the ledger then applies MVCC and phantom checks to those
still VALID. The peer's view of the channel comes in through :class:`ChannelView`, a small
consumer-defined interface, so the validator is tested with plain fakes.

Collection (private data) writes are checked against the hashed key's key-level policy, else
the collection's endorsement policy, else the chaincode's. Not yet: config transactions (this
peer has no channel config updates).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import DecodeError

from actors.gateway.endorsement import chaincode_action
from actors.gateway.proposal import compute_txid
from actors.ledger.privdata import hashed_ns
from actors.msp.msp import MSPError, MSPManager
from actors.msp.policies import PolicyError, SignedData, evaluate, from_string
from actors.msp.signatures import SignatureError
from protos.common.common_pb2 import (
    ENDORSER_TRANSACTION,
    ChannelHeader,
    Envelope,
    Payload,
    SignatureHeader,
)
from protos.common.policies_pb2 import SignaturePolicyEnvelope
from protos.ledger.rwset.kvrwset.kv_rwset_pb2 import HashedRWSet, KVRWSet
from protos.ledger.rwset.rwset_pb2 import TxReadWriteSet
from protos.peer import transaction_pb2 as tx_pb
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.policy_pb2 import ApplicationPolicy
from protos.peer.proposal_pb2 import ChaincodeAction, ChaincodeHeaderExtension
from protos.peer.proposal_response_pb2 import ProposalResponsePayload
from protos.peer.transaction_pb2 import (
    ChaincodeActionPayload,
    Transaction,
)

log = logging.getLogger(__name__)

VALIDATION_PARAMETER = "VALIDATION_PARAMETER"  # the metadata entry name of a key-level policy
DEFAULT_ENDORSEMENT_REFERENCE = "/Channel/Application/Endorsement"


class ChannelView(Protocol):
    """What validation needs to know about the channel (consumer-defined, as in Fabric)."""

    channel_id: str
    msps: MSPManager

    def txid_committed(self, txid: str) -> bool: ...

    def definition(self, chaincode: str) -> ChaincodeRules | None: ...

    def key_policy(self, namespace: str, key: str) -> bytes | None:
        """The committed ``VALIDATION_PARAMETER`` metadata of a key, if any."""
        ...

    def collection_policy(self, chaincode: str, collection: str) -> bytes | None:
        """The collection's endorsement policy (``ApplicationPolicy`` bytes), None if it has
        none (the chaincode's applies)."""
        ...


@dataclass(frozen=True)
class ChaincodeRules:
    """A committed definition, as far as validation cares: its version and policy."""

    version: str
    endorsement_policy: bytes  # ApplicationPolicy bytes; empty: the channel's default


@dataclass
class ValidatedTx:
    """One envelope's outcome before MVCC: its code and what the ledger needs."""

    code: int
    txid: str = ""
    timestamp: float | None = None  # the channel header's, for the history database
    chaincode: str = ""
    rwset: TxReadWriteSet | None = None
    event: ChaincodeEvent | None = None
    reason: str = ""


class _Invalid(Exception):
    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _parse(cls: type, data: bytes, code: int):  # type: ignore[no-untyped-def]
    try:
        return cls.FromString(data)
    except DecodeError as exc:
        raise _Invalid(code, f"error unmarshalling {cls.__name__}: {exc}") from None


# --- policies --------------------------------------------------------------------------------


def channel_policy(reference: str, signed: Sequence[SignedData], msps: MSPManager) -> None:
    """The channel policies a single-peer network has, as Fabric's sample configtx defines
    them: ``/Channel/Application/Endorsement`` (and ``LifecycleEndorsement``) = MAJORITY of the
    organisations' ``OR('<mspid>.peer')``; ``Readers`` = ANY of ``OR(admin, peer, client)`` and
    ``Writers`` = ANY of ``OR(admin, client)``, each org's as in the sample configtx.yaml."""
    orgs = [m.msp_id for m in msps]
    if reference.endswith(("/Endorsement", "/LifecycleEndorsement")):
        rule, roles = "MAJORITY", ("peer",)
    elif reference.endswith("/Readers"):
        rule, roles = "ANY", ("admin", "peer", "client")
    elif reference.endswith("/Writers"):
        rule, roles = "ANY", ("admin", "client")
    else:
        raise PolicyError(f"unknown channel policy reference {reference!r}")
    satisfied = 0
    for policy in _org_policies(tuple(orgs), roles):
        try:
            evaluate(policy, signed, msps)
            satisfied += 1
        except PolicyError:
            pass
    needed = (len(orgs) // 2 + 1) if rule == "MAJORITY" else (1 if orgs else 0)
    if satisfied < needed:
        name = reference.rsplit("/", 1)[-1]
        raise PolicyError(
            f"implicit policy evaluation failed - {satisfied} sub-policies were satisfied, but "
            f"this policy requires {needed} of the '{name}' sub-policies to be satisfied"
        )


@functools.lru_cache(maxsize=256)
def _org_policies(
    orgs: tuple[str, ...], roles: tuple[str, ...]
) -> tuple[SignaturePolicyEnvelope, ...]:
    """Each org's ``OR('<org>.<role>', ...)``, parsed once per (org set, roles): the channel
    policies are checked on every proposal, envelope and CommitStatus. Callers only read the
    envelopes."""
    return tuple(
        from_string("OR(" + ", ".join(f"'{org}.{role}'" for role in roles) + ")") for org in orgs
    )


def evaluate_application_policy(
    policy: bytes, signed: Sequence[SignedData], msps: MSPManager
) -> None:
    """An ``ApplicationPolicy`` (empty bytes: the channel's Endorsement policy)."""
    if not policy:
        channel_policy(DEFAULT_ENDORSEMENT_REFERENCE, signed, msps)
        return
    try:
        app = ApplicationPolicy.FromString(policy)
    except DecodeError as exc:
        raise PolicyError(f"could not unmarshal ApplicationPolicy: {exc}") from None
    which = app.WhichOneof("Type")
    if which == "signature_policy":
        evaluate(app.signature_policy, signed, msps)
    elif which == "channel_config_policy_reference":
        channel_policy(app.channel_config_policy_reference, signed, msps)
    else:
        raise PolicyError("unsupported policy type")


def _key_level(policy: bytes, signed: Sequence[SignedData], msps: MSPManager) -> None:
    try:
        envelope = SignaturePolicyEnvelope.FromString(policy)
    except DecodeError as exc:
        raise PolicyError(f"could not unmarshal key-level policy: {exc}") from None
    evaluate(envelope, signed, msps)


# --- one transaction ---------------------------------------------------------------------


@dataclass
class _BlockState:
    """What earlier transactions of the block did that later ones depend on."""

    txids: set[str] = field(default_factory=set)
    metadata_written: set[tuple[str, str]] = field(default_factory=set)


def _check_envelope(
    raw: bytes, view: ChannelView
) -> tuple[Payload, ChannelHeader, SignatureHeader]:
    envelope = _parse(Envelope, raw, tx_pb.INVALID_OTHER_REASON)
    if not envelope.payload:
        raise _Invalid(tx_pb.NIL_ENVELOPE, "nil envelope payload")
    payload = _parse(Payload, envelope.payload, tx_pb.BAD_PAYLOAD)
    if not payload.HasField("header"):
        raise _Invalid(tx_pb.BAD_COMMON_HEADER, "nil header")
    ch = _parse(ChannelHeader, payload.header.channel_header, tx_pb.BAD_COMMON_HEADER)
    sh = _parse(SignatureHeader, payload.header.signature_header, tx_pb.BAD_COMMON_HEADER)
    if ch.type != ENDORSER_TRANSACTION:
        raise _Invalid(tx_pb.UNKNOWN_TX_TYPE, f"unsupported header type {ch.type}")
    if ch.epoch != 0:
        raise _Invalid(tx_pb.BAD_COMMON_HEADER, "epoch is non-zero")
    if not sh.nonce:
        raise _Invalid(tx_pb.BAD_COMMON_HEADER, "nonce is empty")
    if not sh.creator:
        raise _Invalid(tx_pb.BAD_COMMON_HEADER, "creator is empty")
    try:
        identity, msp = view.msps.deserialize(sh.creator)
        msp.validate(identity)
        identity.verify(envelope.payload, envelope.signature)
    except (MSPError, SignatureError) as exc:
        raise _Invalid(tx_pb.BAD_CREATOR_SIGNATURE, str(exc)) from None
    if ch.tx_id != compute_txid(sh.nonce, sh.creator):
        raise _Invalid(tx_pb.BAD_PROPOSAL_TXID, f"incorrectly computed txid '{ch.tx_id}'")
    if ch.channel_id != view.channel_id:
        raise _Invalid(tx_pb.TARGET_CHAIN_NOT_FOUND, f"channel {ch.channel_id!r} not found")
    return payload, ch, sh


def _validate_one(raw: bytes, view: ChannelView, block: _BlockState) -> ValidatedTx:
    payload, ch, _ = _check_envelope(raw, view)
    txid = ch.tx_id
    transaction = _parse(Transaction, payload.data, tx_pb.INVALID_ENDORSER_TRANSACTION)
    if len(transaction.actions) != 1:
        raise _Invalid(
            tx_pb.INVALID_ENDORSER_TRANSACTION,
            f"only one action per transaction is supported, tx contains {len(transaction.actions)}",
        )
    action = transaction.actions[0]
    action_header = _parse(SignatureHeader, action.header, tx_pb.INVALID_ENDORSER_TRANSACTION)
    if not action_header.nonce or not action_header.creator:
        raise _Invalid(tx_pb.INVALID_ENDORSER_TRANSACTION, "invalid action signature header")
    cap = _parse(ChaincodeActionPayload, action.payload, tx_pb.INVALID_ENDORSER_TRANSACTION)
    prp = _parse(
        ProposalResponsePayload,
        cap.action.proposal_response_payload,
        tx_pb.INVALID_ENDORSER_TRANSACTION,
    )
    expected_hash = hashlib.sha256(
        payload.header.channel_header + action.header + cap.chaincode_proposal_payload
    ).digest()
    if prp.proposal_hash != expected_hash:
        raise _Invalid(tx_pb.INVALID_ENDORSER_TRANSACTION, "proposal hash does not match")
    if txid in block.txids or view.txid_committed(txid):
        raise _Invalid(tx_pb.DUPLICATE_TXID, f"duplicate transaction found [{txid}]")
    extension = _parse(ChaincodeHeaderExtension, ch.extension, tx_pb.BAD_HEADER_EXTENSION)
    cc_action = _parse(ChaincodeAction, prp.extension, tx_pb.BAD_RESPONSE_PAYLOAD)
    rwset = _parse(TxReadWriteSet, cc_action.results, tx_pb.BAD_RWSET)
    if not extension.HasField("chaincode_id") or not cc_action.HasField("chaincode_id"):
        raise _Invalid(tx_pb.INVALID_OTHER_REASON, "nil chaincode id")
    name = extension.chaincode_id.name
    if not name or name != cc_action.chaincode_id.name or not cc_action.chaincode_id.version:
        raise _Invalid(tx_pb.INVALID_CHAINCODE, f"invalid chaincode {name!r}")
    event = None
    if cc_action.events:
        event = _parse(ChaincodeEvent, cc_action.events, tx_pb.INVALID_OTHER_REASON)
        if event.chaincode_id != name:
            raise _Invalid(tx_pb.INVALID_OTHER_REASON, "event of another chaincode")
    namespaces = [ns.namespace for ns in rwset.ns_rwset]
    if len(set(namespaces)) != len(namespaces):
        raise _Invalid(tx_pb.ILLEGAL_WRITESET, "a namespace appears twice in the rwset")

    signed = [
        SignedData(cap.action.proposal_response_payload + e.endorser, e.endorser, e.signature)
        for e in cap.action.endorsements
    ]
    written_metadata: list[tuple[str, str]] = []
    for ns in rwset.ns_rwset:
        kv = _parse(KVRWSet, ns.rwset, tx_pb.BAD_RWSET)
        hashed = {
            c.collection_name: _parse(HashedRWSet, c.hashed_rwset, tx_pb.BAD_RWSET)
            for c in ns.collection_hashed_rwset
        }
        if len(hashed) != len(ns.collection_hashed_rwset):
            raise _Invalid(tx_pb.ILLEGAL_WRITESET, "a collection appears twice in the rwset")
        writes_pvt = any(h.hashed_writes or h.metadata_writes for h in hashed.values())
        if ns.namespace != name and not kv.writes and not kv.metadata_writes and not writes_pvt:
            continue
        _vscc(ns.namespace, kv, signed, view, block, hashed)
        written_metadata += [(ns.namespace, m.key) for m in kv.metadata_writes]
        written_metadata += [
            (hashed_ns(ns.namespace, collection), m.key_hash.hex())
            for collection, coll_set in hashed.items()
            for m in coll_set.metadata_writes
        ]
    if name not in namespaces:
        _vscc(name, KVRWSet(), signed, view, block)
    block.metadata_written.update(written_metadata)
    stamp = ch.timestamp.seconds + ch.timestamp.nanos / 1e9 if ch.HasField("timestamp") else None
    return ValidatedTx(tx_pb.VALID, txid, stamp, name, rwset, event)


def _vscc(
    namespace: str,
    kv: KVRWSet,
    signed: Sequence[SignedData],
    view: ChannelView,
    block: _BlockState,
    hashed: Mapping[str, HashedRWSet] | None = None,
) -> None:
    rules = view.definition(namespace)
    if rules is None:
        raise _Invalid(tx_pb.INVALID_CHAINCODE, f"chaincode {namespace} is not defined")
    checked = False
    needs_chaincode_policy = False
    try:
        # Collection writes: the hashed key's key-level policy, else the collection's
        # endorsement policy, else the chaincode's (Fabric's statebased validator).
        for collection, coll_set in (hashed or {}).items():
            key_hashes = [w.key_hash for w in coll_set.hashed_writes]
            key_hashes += [m.key_hash for m in coll_set.metadata_writes]
            if not key_hashes:
                continue
            needs_collection_policy = False
            hashed_namespace = hashed_ns(namespace, collection)
            for key_hash in key_hashes:
                if (hashed_namespace, key_hash.hex()) in block.metadata_written:
                    raise PolicyError(
                        f"validation parameters for key [{key_hash.hex()}] in namespace "
                        f"[{hashed_namespace}] have been changed in an earlier transaction of "
                        "this block"
                    )
                key_policy = view.key_policy(hashed_namespace, key_hash.hex())
                if key_policy:
                    _key_level(key_policy, signed, view.msps)
                else:
                    needs_collection_policy = True
            checked = True
            if needs_collection_policy:
                policy = view.collection_policy(namespace, collection)
                if policy:
                    evaluate_application_policy(policy, signed, view.msps)
                else:
                    needs_chaincode_policy = True
        for key in [w.key for w in kv.writes] + [m.key for m in kv.metadata_writes]:
            if (namespace, key) in block.metadata_written:
                raise PolicyError(
                    f"validation parameters for key [{key}] in namespace [{namespace}] have "
                    "been changed in an earlier transaction of this block"
                )
            key_policy = view.key_policy(namespace, key)
            if key_policy:
                _key_level(key_policy, signed, view.msps)
                checked = True
            else:
                needs_chaincode_policy = True
        if needs_chaincode_policy or not checked:
            evaluate_application_policy(rules.endorsement_policy, signed, view.msps)
    except PolicyError as exc:
        raise _Invalid(
            tx_pb.ENDORSEMENT_POLICY_FAILURE,
            f"validation of endorsement policy for chaincode {namespace} failed: {exc}",
        ) from None


def rwset_of(raw: bytes) -> tuple[str, TxReadWriteSet, float | None]:
    """(txid, read/write set, channel-header time) of an envelope validation accepted."""
    payload = Payload.FromString(Envelope.FromString(raw).payload)
    ch = ChannelHeader.FromString(payload.header.channel_header)
    txid = ch.tx_id
    stamp = ch.timestamp.seconds + ch.timestamp.nanos / 1e9 if ch.HasField("timestamp") else None
    return txid, TxReadWriteSet.FromString(chaincode_action(payload).results), stamp


def _txid_of(raw: bytes) -> str:
    """The txid an invalid envelope claims, so its submitter can learn its code."""
    try:
        payload = Payload.FromString(Envelope.FromString(raw).payload)
        return ChannelHeader.FromString(payload.header.channel_header).tx_id
    except (DecodeError, ValueError):
        return ""


def validate_block(
    envelopes: Sequence[bytes],
    view: ChannelView,
    *,
    on_invalid: Callable[[int, ValidatedTx], None] | None = None,
) -> list[ValidatedTx]:
    """Each envelope's code, in block order. A txid repeated within the block is a
    DUPLICATE_TXID for every copy after the first valid one."""
    state = _BlockState()
    out = []
    for i, raw in enumerate(envelopes):
        try:
            result = _validate_one(raw, view, state)
            state.txids.add(result.txid)
        except _Invalid as invalid:
            result = ValidatedTx(invalid.code, txid=_txid_of(raw), reason=invalid.reason)
        except Exception as exc:  # no envelope may stop the committer: Fabric's catch-all code
            log.warning("transaction %d of a block: validation failed: %r", i, exc)
            result = ValidatedTx(tx_pb.INVALID_OTHER_REASON, txid=_txid_of(raw), reason=repr(exc))
            if on_invalid is not None:
                on_invalid(i, result)
        out.append(result)
    return out
