"""Representative Fabric messages, built the same way from either set of generated modules.

This module imports no generated code itself: ``load_modules(prefix)`` imports ``protos.*``
(ours, protobuf 7) or ``fabric_protos.*`` (PyPI ``hyperledger-fabric-protos``, protobuf < 6),
and ``build_cases(mods)`` builds every case with the classes it is given. The two sets cannot
live in one process (they register the same full names in the default descriptor pool), so
``fabric_side.py`` runs this with the fabric virtualenv and the unit tests run it with ours; the
bytes must agree.

Every case sets every field of its message to a non-default value (proto3 enums whose only value
is 0 excepted), nested messages are serialized deterministically, and all values are fixed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

# generated module of each proto file, relative to the ``protos`` / ``fabric_protos`` package
MODULES = {
    "shim": "peer.chaincode_shim_pb2",
    "chaincode": "peer.chaincode_pb2",
    "event": "peer.chaincode_event_pb2",
    "proposal": "peer.proposal_pb2",
    "response": "peer.proposal_response_pb2",
    "common": "common.common_pb2",
    "msp": "msp.identities_pb2",
    "principal": "msp.msp_principal_pb2",
    "policies": "common.policies_pb2",
    "peerpolicy": "peer.policy_pb2",
    "transaction": "peer.transaction_pb2",
    "peer": "peer.peer_pb2",
    "ab": "orderer.ab_pb2",
    "gateway": "gateway.gateway_pb2",
    "collection": "peer.collection_pb2",
    "qr": "ledger.queryresult.kv_query_result_pb2",
    "rwset": "ledger.rwset.rwset_pb2",
    "kvrwset": "ledger.rwset.kvrwset.kv_rwset_pb2",
    "events": "peer.events_pb2",
}

# ChaincodeMessage.Type names as in the reference (§2.1); 12 is unused.
CHAINCODE_MESSAGE_TYPES = [
    "UNDEFINED",
    "REGISTER",
    "REGISTERED",
    "INIT",
    "READY",
    "TRANSACTION",
    "COMPLETED",
    "ERROR",
    "GET_STATE",
    "PUT_STATE",
    "DEL_STATE",
    "INVOKE_CHAINCODE",
    "RESPONSE",
    "GET_STATE_BY_RANGE",
    "GET_QUERY_RESULT",
    "QUERY_STATE_NEXT",
    "QUERY_STATE_CLOSE",
    "KEEPALIVE",
    "GET_HISTORY_FOR_KEY",
    "GET_STATE_METADATA",
    "PUT_STATE_METADATA",
    "GET_PRIVATE_DATA_HASH",
    "PURGE_PRIVATE_DATA",
    "WRITE_BATCH_STATE",
    "GET_STATE_MULTIPLE",
]

TXID = "9f2c6e0b4d1a8e7f3c5b2a6d9e8f1c0b7a6d5e4f3c2b1a0918273645abcdef01"
CHANNEL = "mychannel"
CC_NAME = "basic"
CC_VERSION = "1.0"
CC_PATH = "github.com/hyperledger/fabric-samples/asset-transfer-basic"
TS_SECONDS = 1_700_000_000
TS_NANOS = 123_456_789
NONCE = bytes(range(24))
SIGNATURE = bytes.fromhex("3045022100") + bytes(range(200, 232)) + bytes.fromhex("0220") + NONCE[:8]
# > 127 bytes, so every message carrying it needs a multi-byte length prefix
CERT_PEM = (
    b"-----BEGIN CERTIFICATE-----\n"
    + b"MIICGjCCAcCgAwIBAgIRAIQkbh9nsGnLmDalAVlj8sUwCgYIKoZIzj0EAwIwczEL\n" * 3
    + b"-----END CERTIFICATE-----\n"
)
# common.SignaturePolicyEnvelope{version 1, rule n_out_of{n 2, [signed_by 0, signed_by 1]},
# identities [MSPPrincipal{IDENTITY, SerializedIdentity{Org1MSP, CERT_PEM}},
# MSPPrincipal{ROLE, MSPRole{Org2MSP, PEER}}]}; fabric_side.py checks it against fabric_protos.
# Not valid UTF-8 (long length prefixes), so it cannot travel in a proto3 `string` field.
KEY_POLICY = bytes.fromhex(
    "0801120c120a080212020800120208011a8a0208021285020a074f7267314d535012f9012d2d2d2d2d42"
    "4547494e2043455254494649434154452d2d2d2d2d0a4d494943476a43434163436741774942416749"
    "524149516b6268396e73476e4c6d44616c41566c6a38735577436759494b6f5a497a6a304541774977"
    "637a454c0a4d494943476a43434163436741774942416749524149516b6268396e73476e4c6d44616c"
    "41566c6a38735577436759494b6f5a497a6a304541774977637a454c0a4d494943476a434341634367"
    "41774942416749524149516b6268396e73476e4c6d44616c41566c6a38735577436759494b6f5a497a"
    "6a304541774977637a454c0a2d2d2d2d2d454e442043455254494649434154452d2d2d2d2d0a1a0d12"
    "0b0a074f7267324d53501003"
)


def load_modules(prefix: str) -> SimpleNamespace:
    """Import the generated modules under package ``prefix`` (``protos`` or ``fabric_protos``)."""
    return SimpleNamespace(
        **{k: importlib.import_module(f"{prefix}.{v}") for k, v in MODULES.items()}
    )


def ser(msg: Any) -> bytes:
    return msg.SerializeToString(deterministic=True)


def _ts(ts: Any, seconds: int = TS_SECONDS, nanos: int = TS_NANOS) -> Any:
    ts.seconds = seconds
    ts.nanos = nanos
    return ts


# --- builders: one function per case, each returns an unserialized message ---------------------


def _identity(m: SimpleNamespace) -> Any:
    return m.msp.SerializedIdentity(mspid="Org1MSP", id_bytes=CERT_PEM)


def _chaincode_id(m: SimpleNamespace) -> Any:
    return m.chaincode.ChaincodeID(path=CC_PATH, name=CC_NAME, version=CC_VERSION)


def _chaincode_input(m: SimpleNamespace) -> Any:
    ci = m.chaincode.ChaincodeInput(args=[b"CreateAsset", b"asset1", b"\x00\xff\x10"], is_init=True)
    ci.decorations["decoration-a"] = b"\x01\x02"
    ci.decorations["b-decoration"] = b"value-b"
    return ci


def _chaincode_spec(m: SimpleNamespace) -> Any:
    spec = m.chaincode.ChaincodeSpec(type=m.chaincode.ChaincodeSpec.NODE, timeout=30_000)
    spec.chaincode_id.CopyFrom(_chaincode_id(m))
    spec.input.CopyFrom(_chaincode_input(m))
    return spec


def _deployment_spec(m: SimpleNamespace) -> Any:
    cds = m.chaincode.ChaincodeDeploymentSpec(code_package=b"\x1f\x8b\x08\x00tar.gz-bytes")
    cds.chaincode_spec.CopyFrom(_chaincode_spec(m))
    return cds


def _invocation_spec(m: SimpleNamespace) -> Any:
    cis = m.chaincode.ChaincodeInvocationSpec()
    cis.chaincode_spec.CopyFrom(_chaincode_spec(m))
    return cis


def _additional_params(m: SimpleNamespace) -> Any:
    return m.chaincode.ChaincodeAdditionalParams(
        use_write_batch=True,
        max_size_write_batch=1000,
        use_get_multiple_keys=True,
        max_size_get_multiple_keys=200,
    )


def _event(m: SimpleNamespace) -> Any:
    return m.event.ChaincodeEvent(
        chaincode_id=CC_NAME, tx_id=TXID, event_name="AssetCreated", payload=b'{"ID":"asset1"}'
    )


def _response(m: SimpleNamespace) -> Any:
    return m.response.Response(status=200, message="OK", payload=b'{"ID":"asset1","Size":5}')


def _response_negative(m: SimpleNamespace) -> Any:
    # int32 negative values take 10 bytes on the wire (not zigzag)
    return m.response.Response(status=-1, message="negative", payload=b"\x00")


def _signature_header(m: SimpleNamespace) -> Any:
    return m.common.SignatureHeader(creator=ser(_identity(m)), nonce=NONCE)


def _header_extension(m: SimpleNamespace) -> Any:
    ext = m.proposal.ChaincodeHeaderExtension()
    ext.chaincode_id.CopyFrom(_chaincode_id(m))
    return ext


def _channel_header(m: SimpleNamespace) -> Any:
    ch = m.common.ChannelHeader(
        type=m.common.ENDORSER_TRANSACTION,
        version=2,
        channel_id=CHANNEL,
        tx_id=TXID,
        epoch=(1 << 40) + 7,
        extension=ser(_header_extension(m)),
        tls_cert_hash=bytes(range(32)),
    )
    _ts(ch.timestamp)
    return ch


def _header(m: SimpleNamespace) -> Any:
    return m.common.Header(
        channel_header=ser(_channel_header(m)), signature_header=ser(_signature_header(m))
    )


def _payload(m: SimpleNamespace) -> Any:
    p = m.common.Payload(data=b"payload-data")
    p.header.CopyFrom(_header(m))
    return p


def _envelope(m: SimpleNamespace) -> Any:
    return m.common.Envelope(payload=ser(_payload(m)), signature=SIGNATURE)


def _proposal_payload(m: SimpleNamespace) -> Any:
    pp = m.proposal.ChaincodeProposalPayload(input=ser(_invocation_spec(m)))
    pp.TransientMap["asset_properties"] = b'{"objectType":"asset_properties","assetID":"asset1"}'
    pp.TransientMap["a-secret"] = b"\x00\x01\xfe\xff"
    return pp


def _kvrwset(m: SimpleNamespace) -> Any:
    kv = m.kvrwset
    rw = kv.KVRWSet()
    r = rw.reads.add(key="asset1")
    r.version.block_num = 12
    r.version.tx_num = 3
    rw.reads.add(key="asset2")  # read of a missing key: no version
    rq = rw.range_queries_info.add(start_key="asset0", end_key="asset9", itr_exhausted=True)
    rr = rq.raw_reads.kv_reads.add(key="asset5")
    rr.version.block_num = 1 << 33
    rr.version.tx_num = 0
    rw.writes.add(key="asset1", is_delete=False, value=b'{"Size":6}')
    rw.writes.add(key="asset3", is_delete=True)
    mw = rw.metadata_writes.add(key="asset1")
    mw.entries.add(name="VALIDATION_PARAMETER", value=b"\x0a\x02ep")
    return rw


def _range_query_merkle(m: SimpleNamespace) -> Any:
    rq = m.kvrwset.RangeQueryInfo(start_key="a", end_key="z", itr_exhausted=False)
    rq.reads_merkle_hashes.max_degree = 50
    rq.reads_merkle_hashes.max_level = 2
    rq.reads_merkle_hashes.max_level_hashes.extend([bytes(32), bytes(range(32))])
    return rq


def _collection_hashed(m: SimpleNamespace) -> Any:
    return m.rwset.CollectionHashedReadWriteSet(
        collection_name="privateCollection",
        hashed_rwset=b"\x0a\x20" + bytes(32),
        pvt_rwset_hash=NONCE,
    )


def _ns_rwset(m: SimpleNamespace) -> Any:
    ns = m.rwset.NsReadWriteSet(namespace=CC_NAME, rwset=ser(_kvrwset(m)))
    ns.collection_hashed_rwset.add().CopyFrom(_collection_hashed(m))
    return ns


def _tx_rwset(m: SimpleNamespace) -> Any:
    # data_model has the single value KV = 0, so it cannot be set to a non-default value
    tx = m.rwset.TxReadWriteSet(data_model=m.rwset.TxReadWriteSet.KV)
    tx.ns_rwset.add().CopyFrom(_ns_rwset(m))
    tx.ns_rwset.add(namespace="_lifecycle", rwset=b"")
    return tx


def _chaincode_action(m: SimpleNamespace) -> Any:
    ca = m.proposal.ChaincodeAction(results=ser(_tx_rwset(m)), events=ser(_event(m)))
    ca.response.CopyFrom(_response(m))
    ca.chaincode_id.CopyFrom(_chaincode_id(m))
    return ca


def _proposal(m: SimpleNamespace) -> Any:
    return m.proposal.Proposal(
        header=ser(_header(m)),
        payload=ser(_proposal_payload(m)),
        extension=ser(_chaincode_action(m)),
    )


def _signed_proposal(m: SimpleNamespace) -> Any:
    return m.proposal.SignedProposal(proposal_bytes=ser(_proposal(m)), signature=SIGNATURE)


def _chaincode_call(m: SimpleNamespace, with_key_policies: bool) -> Any:
    call = m.response.ChaincodeCall(
        name=CC_NAME,
        collection_names=["privateCollection", "org1Collection"],
        no_private_reads=True,
        no_public_writes=True,
        disregard_namespace_policy=True,
    )
    if with_key_policies:
        field = call.DESCRIPTOR.fields_by_name["key_policies"]
        if field.message_type is not None:  # Fabric: repeated common.SignaturePolicyEnvelope
            call.key_policies.add().MergeFromString(KEY_POLICY)
        else:  # bytes is wire-compatible; a `string` field rejects KEY_POLICY (not UTF-8)
            call.key_policies.append(KEY_POLICY)
    return call


def _hashed_rwset(m: SimpleNamespace) -> Any:
    hashed = m.kvrwset.HashedRWSet()
    read = hashed.hashed_reads.add(key_hash=bytes(range(32)))
    read.version.block_num, read.version.tx_num = 4, 2
    hashed.hashed_writes.add(key_hash=bytes(range(32)), value_hash=bytes(range(1, 33)))
    hashed.hashed_writes.add(key_hash=bytes(range(2, 34)), is_delete=True, is_purge=True)
    meta = hashed.metadata_writes.add(key_hash=bytes(range(32)))
    meta.entries.add(name="VALIDATION_PARAMETER", value=KEY_POLICY)
    return hashed


def _pvt_rwset(m: SimpleNamespace) -> Any:
    pvt = m.rwset.TxPvtReadWriteSet()
    ns = pvt.ns_pvt_rwset.add(namespace=CC_NAME)
    ns.collection_pvt_rwset.add(collection_name="assetCollection", rwset=ser(_kvrwset(m)))
    return pvt


def _seek_info(m: SimpleNamespace) -> Any:
    info = m.ab.SeekInfo(
        behavior=m.ab.SeekInfo.FAIL_IF_NOT_READY,
        error_response=m.ab.SeekInfo.BEST_EFFORT,
        content_type=m.ab.SeekInfo.HEADER_WITH_SIG,
    )
    info.start.specified.number = 7
    info.stop.specified.number = 2**40 + 3
    return info


def _filtered_block(m: SimpleNamespace) -> Any:
    block = m.events.FilteredBlock(channel_id=CHANNEL, number=12)
    tx = block.filtered_transactions.add(
        txid=TXID,
        type=m.common.ENDORSER_TRANSACTION,
        tx_validation_code=m.transaction.MVCC_READ_CONFLICT,
    )
    event = m.event.ChaincodeEvent(chaincode_id=CC_NAME, tx_id=TXID, event_name="created")
    tx.transaction_actions.chaincode_actions.add(chaincode_event=event)
    return block


def _block_and_private_data(m: SimpleNamespace) -> Any:
    both = m.events.BlockAndPrivateData(block=_block(m))
    both.private_data_map[1].CopyFrom(_pvt_rwset(m))
    both.private_data_map[2**33].CopyFrom(_pvt_rwset(m))
    return both


def _collections(m: SimpleNamespace) -> Any:
    package = m.collection.CollectionConfigPackage()
    static = package.config.add().static_collection_config
    static.name = "assetCollection"
    static.member_orgs_policy.signature_policy.CopyFrom(_policy_envelope(m))
    static.required_peer_count = 1
    static.maximum_peer_count = 3
    static.block_to_live = 1_000_000
    static.member_only_read = True
    static.member_only_write = True
    static.endorsement_policy.channel_config_policy_reference = "/Channel/Application/Endorsement"
    return package


def _transaction(m: SimpleNamespace) -> Any:
    endorsed = m.transaction.ChaincodeEndorsedAction(
        proposal_response_payload=ser(_proposal_response_payload(m)),
        endorsements=[m.response.Endorsement(endorser=ser(_identity(m)), signature=SIGNATURE)],
    )
    cap = m.transaction.ChaincodeActionPayload(
        chaincode_proposal_payload=ser(_proposal_payload(m)), action=endorsed
    )
    action = m.transaction.TransactionAction(header=ser(_signature_header(m)), payload=ser(cap))
    return m.transaction.Transaction(actions=[action])


def _signatures_metadata(m: SimpleNamespace) -> Any:
    obm = m.common.OrdererBlockMetadata(
        last_config=m.common.LastConfig(index=0), consenter_metadata=ser(m.common.Metadata())
    )
    signature = m.common.MetadataSignature(
        signature_header=ser(_signature_header(m)), signature=SIGNATURE
    )
    return m.common.Metadata(value=ser(obm), signatures=[signature])


def _block(m: SimpleNamespace) -> Any:
    block = m.common.Block()
    block.header.number = 3
    block.header.previous_hash = bytes(range(32))
    block.header.data_hash = bytes(range(32, 64))
    block.data.data.extend([ser(_envelope(m)), ser(_envelope(m))])
    last_config = m.common.Metadata(value=ser(m.common.LastConfig(index=0)))
    block.metadata.metadata.extend(
        [ser(_signatures_metadata(m)), ser(last_config), bytes([0, 11]), b"", b""]
    )
    return block


def _events_request(m: SimpleNamespace) -> Any:
    request = m.gateway.ChaincodeEventsRequest(
        channel_id=CHANNEL, chaincode_id=CC_NAME, identity=ser(_identity(m))
    )
    request.start_position.specified.number = 5
    request.after_transaction_id = TXID
    return request


def _policy_envelope(m: SimpleNamespace) -> Any:
    """KEY_POLICY's envelope with a nested OutOf, built field by field."""
    env = m.policies.SignaturePolicyEnvelope(version=0)
    env.rule.n_out_of.n = 1
    env.rule.n_out_of.rules.add().signed_by = 1
    inner = env.rule.n_out_of.rules.add().n_out_of
    inner.n = 2
    inner.rules.add().signed_by = 0
    inner.rules.add().signed_by = 2
    role = m.principal.MSPPrincipal.ROLE
    for msp_id, r in (("Org1MSP", 3), ("Org2MSP", 0), ("Org3MSP", 1)):
        msp_role = m.principal.MSPRole(msp_identifier=msp_id, role=r)
        env.identities.add(principal_classification=role, principal=ser(msp_role))
    return env


def _proposal_response_payload(m: SimpleNamespace) -> Any:
    return m.response.ProposalResponsePayload(
        proposal_hash=bytes(range(32)), extension=ser(_chaincode_action(m))
    )


def _proposal_response(m: SimpleNamespace) -> Any:
    pr = m.response.ProposalResponse(version=1, payload=ser(_proposal_response_payload(m)))
    _ts(pr.timestamp)
    pr.response.CopyFrom(_response(m))
    pr.endorsement.endorser = ser(_identity(m))
    pr.endorsement.signature = SIGNATURE
    pr.interest.chaincodes.add().CopyFrom(_chaincode_call(m, with_key_policies=False))
    pr.interest.chaincodes.add(name="other", no_private_reads=True)
    return pr


def _query_metadata(m: SimpleNamespace) -> Any:
    return m.shim.QueryMetadata(
        pageSize=25, bookmark="g1AAAABIeJzLYWBgYMpgSmHgKy5JLCrJTq2MT8lPzkzJBQBsqAbn"
    )


def _kv(m: SimpleNamespace) -> Any:
    return m.qr.KV(namespace=CC_NAME, key="asset1", value=b'{"ID":"asset1","Size":5}')


def _key_modification(m: SimpleNamespace) -> Any:
    km = m.qr.KeyModification(tx_id=TXID, value=b'{"Size":6}', is_delete=True)
    _ts(km.timestamp, 1_600_000_000, 999_999_999)
    return km


def _query_response_metadata(m: SimpleNamespace) -> Any:
    return m.shim.QueryResponseMetadata(fetched_records_count=2, bookmark="asset3")


def _query_response(m: SimpleNamespace) -> Any:
    qr = m.shim.QueryResponse(
        has_more=True, id="iterator-0001", metadata=ser(_query_response_metadata(m))
    )
    qr.results.add(resultBytes=ser(_kv(m)))
    qr.results.add(resultBytes=ser(_key_modification(m)))
    return qr


def _state_metadata(m: SimpleNamespace) -> Any:
    return m.shim.StateMetadata(metakey="VALIDATION_PARAMETER", value=b"\x0a\x02ep")


def _write_batch(m: SimpleNamespace) -> Any:
    s = m.shim
    wb = s.WriteBatchState()
    wb.rec.add(key="k1", value=b"v1", collection="c1", type=s.WriteRecord.PUT_STATE)
    wb.rec.add(key="k2", collection="c2", type=s.WriteRecord.DEL_STATE)
    rec = wb.rec.add(key="k3", value=b"v3", collection="c3", type=s.WriteRecord.PUT_STATE_METADATA)
    rec.metadata.CopyFrom(_state_metadata(m))
    wb.rec.add(key="k4", collection="c4", type=s.WriteRecord.PURGE_PRIVATE_DATA)
    return wb


def _shim_cases(m: SimpleNamespace) -> dict[str, Callable[[], Any]]:
    s = m.shim
    return {
        "GetState": lambda: s.GetState(key="asset1", collection="privateCollection"),
        "GetStateMetadata": lambda: s.GetStateMetadata(key="asset1", collection="coll"),
        "GetStateMultiple": lambda: s.GetStateMultiple(keys=["a", "b", "c"], collection="coll"),
        "GetStateMultipleResult": lambda: s.GetStateMultipleResult(values=[b"va", b"", b"vc"]),
        "PutState": lambda: s.PutState(key="asset1", value=b'{"ID":"asset1"}', collection="coll"),
        "PutStateMetadata": lambda: s.PutStateMetadata(
            key="asset1", collection="coll", metadata=_state_metadata(m)
        ),
        "WriteBatchState": lambda: _write_batch(m),
        "WriteRecord": lambda: s.WriteRecord(
            key="k",
            value=b"v",
            collection="c",
            metadata=_state_metadata(m),
            type=s.WriteRecord.PUT_STATE_METADATA,
        ),
        "DelState": lambda: s.DelState(key="asset1", collection="coll"),
        "PurgePrivateState": lambda: s.PurgePrivateState(key="asset1", collection="coll"),
        "GetStateByRange": lambda: s.GetStateByRange(
            startKey="key000",
            endKey="key999",
            collection="coll",
            metadata=ser(_query_metadata(m)),
        ),
        "GetQueryResult": lambda: s.GetQueryResult(
            query='{"selector":{"docType":"asset"}}',
            collection="coll",
            metadata=ser(_query_metadata(m)),
        ),
        "QueryMetadata": lambda: _query_metadata(m),
        "GetHistoryForKey": lambda: s.GetHistoryForKey(key="asset1"),
        "QueryStateNext": lambda: s.QueryStateNext(id="iterator-0001"),
        "QueryStateClose": lambda: s.QueryStateClose(id="iterator-0001"),
        "QueryResultBytes": lambda: s.QueryResultBytes(resultBytes=ser(_kv(m))),
        "QueryResponse": lambda: _query_response(m),
        "QueryResponseMetadata": lambda: _query_response_metadata(m),
        "StateMetadata": lambda: _state_metadata(m),
        "StateMetadataResult": lambda: s.StateMetadataResult(
            entries=[_state_metadata(m), s.StateMetadata(metakey="other", value=b"x")]
        ),
    }


def _chaincode_message(m: SimpleNamespace, type_name: str) -> Any:
    cm = m.shim.ChaincodeMessage(
        type=m.shim.ChaincodeMessage.Type.Value(type_name),
        payload=f"payload:{type_name}".encode(),
        txid=TXID,
        channel_id=CHANNEL,
    )
    _ts(cm.timestamp)
    return cm


def _chaincode_message_full(m: SimpleNamespace) -> Any:
    cm = m.shim.ChaincodeMessage(
        type=m.shim.ChaincodeMessage.TRANSACTION,
        payload=ser(_chaincode_input(m)),
        txid=TXID,
        channel_id=CHANNEL,
    )
    _ts(cm.timestamp)
    cm.proposal.CopyFrom(_signed_proposal(m))
    cm.chaincode_event.CopyFrom(_event(m))
    return cm


def case_builders(m: SimpleNamespace) -> dict[str, Callable[[], Any]]:
    """name -> zero-argument builder, in a fixed order."""
    cases: dict[str, Callable[[], Any]] = {}
    for t in CHAINCODE_MESSAGE_TYPES:
        cases[f"ChaincodeMessage.{t}"] = lambda t=t: _chaincode_message(m, t)
    cases["ChaincodeMessage.full"] = lambda: _chaincode_message_full(m)
    cases.update(_shim_cases(m))
    cases.update(
        {
            "ChaincodeID": lambda: _chaincode_id(m),
            "ChaincodeInput": lambda: _chaincode_input(m),
            "ChaincodeSpec": lambda: _chaincode_spec(m),
            "ChaincodeDeploymentSpec": lambda: _deployment_spec(m),
            "ChaincodeInvocationSpec": lambda: _invocation_spec(m),
            "ChaincodeAdditionalParams": lambda: _additional_params(m),
            "ChaincodeEvent": lambda: _event(m),
            "SignedProposal": lambda: _signed_proposal(m),
            "Proposal": lambda: _proposal(m),
            "ChaincodeHeaderExtension": lambda: _header_extension(m),
            "ChaincodeProposalPayload": lambda: _proposal_payload(m),
            "ChaincodeAction": lambda: _chaincode_action(m),
            "Response": lambda: _response(m),
            "Response.negative_status": lambda: _response_negative(m),
            "ProposalResponse": lambda: _proposal_response(m),
            "ProposalResponsePayload": lambda: _proposal_response_payload(m),
            "Endorsement": lambda: m.response.Endorsement(
                endorser=ser(_identity(m)), signature=SIGNATURE
            ),
            "ChaincodeInterest": lambda: m.response.ChaincodeInterest(
                chaincodes=[_chaincode_call(m, with_key_policies=False)]
            ),
            "ChaincodeCall": lambda: _chaincode_call(m, with_key_policies=False),
            "ChaincodeCall.key_policies": lambda: _chaincode_call(m, with_key_policies=True),
            "common.Header": lambda: _header(m),
            "common.ChannelHeader": lambda: _channel_header(m),
            "common.SignatureHeader": lambda: _signature_header(m),
            "common.Payload": lambda: _payload(m),
            "common.Envelope": lambda: _envelope(m),
            "msp.SerializedIdentity": lambda: _identity(m),
            "queryresult.KV": lambda: _kv(m),
            "queryresult.KeyModification": lambda: _key_modification(m),
            "rwset.TxReadWriteSet": lambda: _tx_rwset(m),
            "rwset.NsReadWriteSet": lambda: _ns_rwset(m),
            "rwset.CollectionHashedReadWriteSet": lambda: _collection_hashed(m),
            "kvrwset.KVRWSet": lambda: _kvrwset(m),
            "kvrwset.RangeQueryInfo.merkle": lambda: _range_query_merkle(m),
            "common.SignaturePolicyEnvelope": lambda: _policy_envelope(m),
            "common.MSPRole": lambda: m.principal.MSPRole(
                msp_identifier="Org2MSP", role=m.principal.MSPRole.ORDERER
            ),
            "common.OrganizationUnit": lambda: m.principal.OrganizationUnit(
                msp_identifier="Org1MSP",
                organizational_unit_identifier="peer",
                certifiers_identifier=bytes(range(32)),
            ),
            "common.ImplicitMetaPolicy": lambda: m.policies.ImplicitMetaPolicy(
                sub_policy="Endorsement", rule=m.policies.ImplicitMetaPolicy.MAJORITY
            ),
            "protos.ApplicationPolicy.signature": lambda: m.peerpolicy.ApplicationPolicy(
                signature_policy=_policy_envelope(m)
            ),
            "protos.ApplicationPolicy.reference": lambda: m.peerpolicy.ApplicationPolicy(
                channel_config_policy_reference="/Channel/Application/Endorsement"
            ),
            "protos.Transaction": lambda: _transaction(m),
            "protos.ProcessedTransaction": lambda: m.transaction.ProcessedTransaction(
                transactionEnvelope=_envelope(m),
                validationCode=m.transaction.MVCC_READ_CONFLICT,
            ),
            "common.Block": lambda: _block(m),
            "common.Metadata": lambda: _signatures_metadata(m),
            "gateway.EndorseRequest": lambda: m.gateway.EndorseRequest(
                transaction_id=TXID,
                channel_id=CHANNEL,
                proposed_transaction=_signed_proposal(m),
                endorsing_organizations=["Org1MSP", "Org2MSP"],
            ),
            "gateway.EndorseResponse": lambda: m.gateway.EndorseResponse(
                prepared_transaction=_envelope(m)
            ),
            "gateway.SubmitRequest": lambda: m.gateway.SubmitRequest(
                transaction_id=TXID, channel_id=CHANNEL, prepared_transaction=_envelope(m)
            ),
            "gateway.CommitStatusRequest": lambda: m.gateway.CommitStatusRequest(
                transaction_id=TXID, channel_id=CHANNEL, identity=ser(_identity(m))
            ),
            "gateway.SignedCommitStatusRequest": lambda: m.gateway.SignedCommitStatusRequest(
                request=b"\x0a\x01x", signature=SIGNATURE
            ),
            "gateway.CommitStatusResponse": lambda: m.gateway.CommitStatusResponse(
                result=m.transaction.ENDORSEMENT_POLICY_FAILURE, block_number=2**40 + 7
            ),
            "gateway.EvaluateResponse": lambda: m.gateway.EvaluateResponse(result=_response(m)),
            "gateway.ChaincodeEventsRequest": lambda: _events_request(m),
            "gateway.ChaincodeEventsResponse": lambda: m.gateway.ChaincodeEventsResponse(
                events=[_event(m), _event(m)], block_number=12
            ),
            "gateway.ErrorDetail": lambda: m.gateway.ErrorDetail(
                address="peer0.org1.example.com:7051", msp_id="Org1MSP", message="chaincode failed"
            ),
            "orderer.BroadcastResponse": lambda: m.ab.BroadcastResponse(
                status=m.common.BAD_REQUEST, info="message payload is too large"
            ),
            "kvrwset.HashedRWSet": lambda: _hashed_rwset(m),
            "rwset.TxPvtReadWriteSet": lambda: _pvt_rwset(m),
            "protos.CollectionConfigPackage": lambda: _collections(m),
            "orderer.SeekPosition.next_commit": lambda: m.ab.SeekPosition(
                next_commit=m.ab.SeekNextCommit()
            ),
            "orderer.SeekInfo": lambda: _seek_info(m),
            "protos.FilteredBlock": lambda: _filtered_block(m),
            "protos.BlockAndPrivateData": lambda: _block_and_private_data(m),
            "protos.DeliverResponse.status": lambda: m.events.DeliverResponse(
                status=m.common.FORBIDDEN
            ),
            "protos.DeliverResponse.block": lambda: m.events.DeliverResponse(block=_block(m)),
            "protos.DeliverResponse.filtered_block": lambda: m.events.DeliverResponse(
                filtered_block=_filtered_block(m)
            ),
            "protos.DeliverResponse.block_and_private_data": lambda: m.events.DeliverResponse(
                block_and_private_data=_block_and_private_data(m)
            ),
        }
    )
    return cases


# --- helpers shared by both sides --------------------------------------------------------------


def unknown_field_paths(msg: Any, path: str = "") -> list[str]:
    """Paths of fields the parsing schema did not know (a wrong field number shows up here)."""
    from google.protobuf.unknown_fields import UnknownFieldSet

    name = path or msg.DESCRIPTOR.full_name
    out = [f"{name}#{f.field_number}" for f in UnknownFieldSet(msg)]
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        sub = f"{name}.{field.name}"
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for k, v in value.items():
                    out += unknown_field_paths(v, f"{sub}[{k!r}]")
        elif _is_repeated(field):
            for i, v in enumerate(value):
                out += unknown_field_paths(v, f"{sub}[{i}]")
        else:
            out += unknown_field_paths(value, sub)
    return out


def _is_repeated(field: Any) -> bool:
    rep = getattr(field, "is_repeated", None)  # protobuf >= 6; `label` is gone in 7
    return bool(rep) if rep is not None else field.label == field.LABEL_REPEATED


def describe(mods: SimpleNamespace) -> dict[str, Any]:
    """Wire-relevant schema of every message, enum and service in the given modules."""
    out: dict[str, Any] = {}

    def enum(e: Any) -> None:
        out[e.full_name] = {"enum": sorted([v.number, v.name] for v in e.values)}

    def message(d: Any) -> None:
        fields = []
        for f in sorted(d.fields, key=lambda f: f.number):
            fields.append(
                {
                    "number": f.number,
                    "name": f.name,
                    "type": f.type,
                    "repeated": _is_repeated(f),
                    "presence": bool(f.has_presence),
                    "ref": (f.message_type or f.enum_type).full_name
                    if (f.message_type or f.enum_type)
                    else "",
                    "oneof": f.containing_oneof.name if f.containing_oneof else "",
                }
            )
        out[d.full_name] = {"fields": fields}
        for n in d.nested_types:
            message(n)
        for e in d.enum_types:
            enum(e)

    for mod in vars(mods).values():
        fd = mod.DESCRIPTOR
        for d in fd.message_types_by_name.values():
            message(d)
        for e in fd.enum_types_by_name.values():
            enum(e)
        for s in fd.services_by_name.values():
            out[s.full_name] = {
                "methods": sorted(
                    [
                        f"/{s.full_name}/{mm.name}",
                        mm.input_type.full_name,
                        mm.output_type.full_name,
                        bool(mm.client_streaming),
                        bool(mm.server_streaming),
                    ]
                    for mm in s.methods
                )
            }
    return out
