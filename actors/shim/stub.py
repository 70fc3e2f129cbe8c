"""The per-transaction API user chaincode calls: arguments, proposal data, state, queries.

Fabric counterpart: fabric-chaincode-go ``shim/stub.go`` (``ChaincodeStub``), with Go's
``GetState`` etc. spelled ``get_state``. Go's ``(value, error)`` returns become a value or a
raised exception: :class:`ChaincodeRequestError` when the peer refuses a request or is gone,
``ValueError`` for arguments the Go shim rejects before sending anything.

Every request carries the transaction's ``txid`` and ``channel_id``; the handler allows one
outstanding request per transaction, matching the peer (which drops overlapping requests).

Write batches (Fabric 3.x, ``StartWriteBatch``/``FinishWriteBatch`` in Go): when the peer
offers them in READY and the chaincode's ``write_batch`` is on (the default; Go's shim only
after ``StartWriteBatch()``), writes are kept here, keyed as Go keys them (collection, key,
data or metadata: a later write of a key replaces the earlier one), and sent as
WRITE_BATCH_STATE when the transaction ends (:class:`~actors.shim.handler.ShimHandler`) or at
:meth:`ChaincodeStub.finish_write_batch`. Reads are not affected: the peer never shows a
transaction its own writes, and a chaincode it calls writes only in its own namespace, so
when the caller's writes arrive changes nothing but when a refused one is reported.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import DecodeError, Message
from google.protobuf.timestamp_pb2 import Timestamp

from actors.shim.chaincode import ERROR, ChaincodeRequestError
from actors.shim.iterators import (
    HistoryQueryIterator,
    StateQueryIterator,
    parse_query_response,
)
from protos.common import common_pb2
from protos.common.common_pb2 import ChannelHeader, Header, SignatureHeader
from protos.peer.chaincode_event_pb2 import ChaincodeEvent
from protos.peer.chaincode_pb2 import ChaincodeID, ChaincodeInput, ChaincodeSpec
from protos.peer.chaincode_shim_pb2 import (
    ChaincodeMessage,
    DelState,
    GetHistoryForKey,
    GetQueryResult,
    GetState,
    GetStateByRange,
    GetStateMetadata,
    GetStateMultiple,
    GetStateMultipleResult,
    PutState,
    PutStateMetadata,
    QueryMetadata,
    QueryResponse,
    QueryResponseMetadata,
    StateMetadata,
    StateMetadataResult,
    WriteRecord,
)
from protos.peer.proposal_pb2 import ChaincodeProposalPayload, Proposal, SignedProposal
from protos.peer.proposal_response_pb2 import Response

if TYPE_CHECKING:
    from actors.shim.handler import ShimHandler

MIN_UNICODE_RUNE = "\x00"
MAX_UNICODE_RUNE = "\U0010ffff"
COMPOSITE_KEY_NAMESPACE = "\x00"
EMPTY_KEY_SUBSTITUTE = "\x01"
"""Sent instead of an empty range start: the peer's ledger treats "" specially, and "\\x01"
is the smallest key a simple key may be (Go and Node shims do the same)."""
VALIDATION_PARAMETER = "VALIDATION_PARAMETER"
"""Metakey of key-level endorsement policies (``peer.MetaDataKeys_VALIDATION_PARAMETER``)."""

_VALID_HEADER_TYPES = (common_pb2.ENDORSER_TRANSACTION, common_pb2.CONFIG)
_DATA, _METADATA = 0, 1  # the two kinds of write a batch keeps per key (Go's batchRecordType)

Value = bytes | bytearray | memoryview | str


def _as_bytes(value: Value) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _require_collection(collection: str) -> None:
    if not collection:
        raise ValueError("collection must not be an empty string")


def validate_simple_keys(*keys: str) -> None:
    """Reject range bounds inside the composite-key namespace (a leading U+0000)."""
    for key in keys:
        if key and key[0] == COMPOSITE_KEY_NAMESPACE:
            raise ValueError(
                f"first character of the key [{key!r}] contains a null character "
                "which is not allowed"
            )


def validate_composite_key_attribute(attr: str) -> None:
    """Composite-key parts must be valid UTF-8 without the U+0000/U+10FFFF delimiters."""
    try:
        attr.encode()
    except UnicodeEncodeError as exc:  # lone surrogates: not representable as UTF-8
        raise ValueError(f"not a valid utf8 string: [{attr!r}]") from exc
    for index, ch in enumerate(attr):
        if ch in (MIN_UNICODE_RUNE, MAX_UNICODE_RUNE):
            raise ValueError(
                f"input contains unicode U+{ord(ch):04X} starting at position [{index}]. "
                "U+0000 and U+10FFFF are not allowed in the input attribute of a composite key"
            )


def create_composite_key(object_type: str, attributes: Iterable[str]) -> str:
    """``"\\x00" + object_type + "\\x00" + attr1 + "\\x00" + ...`` (each part terminated)."""
    validate_composite_key_attribute(object_type)
    parts = [COMPOSITE_KEY_NAMESPACE, object_type, MIN_UNICODE_RUNE]
    for attr in attributes:
        validate_composite_key_attribute(attr)
        parts += (attr, MIN_UNICODE_RUNE)
    return "".join(parts)


def split_composite_key(composite_key: str) -> tuple[str, list[str]]:
    """Inverse of :func:`create_composite_key`: ``(object_type, attributes)``."""
    if not composite_key.startswith(COMPOSITE_KEY_NAMESPACE) or len(composite_key) < 2:
        raise ValueError(f"not a composite key: {composite_key!r}")
    components = composite_key[1:].split(MIN_UNICODE_RUNE)
    # Every component is terminated, so the split leaves one empty string at the end.
    if components[-1] == "":
        components.pop()
    return components[0], components[1:]


M = TypeVar("M", bound=Message)


def _parse(cls: type[M], data: bytes, what: str) -> M:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise ValueError(f"failed to extract {what}: {exc}") from exc
    return msg


def _query_metadata(page_size: int, bookmark: str) -> bytes:
    return QueryMetadata(pageSize=page_size, bookmark=bookmark).SerializeToString()


class ChaincodeStub:
    """One transaction's view of the peer. Created by the handler for each INIT/TRANSACTION.

    Construction checks the SignedProposal's headers as the Go shim does and raises
    ``ValueError`` if they are malformed (the handler then answers ERROR without running user
    code). What only some chaincode asks for is read on first use: the signature header
    (creator, binding) and the proposal payload (transient data), about half the cost of
    reading a proposal. A peer validates both before it sends a proposal; if one is malformed
    anyway, the getter that needs it raises ``ValueError``.
    """

    def __init__(
        self,
        handler: ShimHandler,
        channel_id: str,
        txid: str,
        chaincode_input: ChaincodeInput,
        signed_proposal: SignedProposal | None,
    ) -> None:
        self._handler = handler
        self._channel_id = channel_id
        self._txid = txid
        self._args: list[bytes] = list(chaincode_input.args)
        self._decorations: dict[str, bytes] = dict(chaincode_input.decorations)
        self._signed_proposal = signed_proposal
        self._event: ChaincodeEvent | None = None
        self._proposal: Proposal | None = None
        self._header: Header | None = None
        self._channel_header: ChannelHeader | None = None
        self._signature_header: SignatureHeader | None = None
        self._transient: dict[str, bytes] | None = None
        # Writes kept for one WRITE_BATCH_STATE (module doc); None: each write is a request.
        self._batch: dict[tuple[str, str, int], WriteRecord] | None = (
            {} if handler.batch_writes else None
        )
        if signed_proposal is not None:
            self._check_proposal(signed_proposal)

    def _check_proposal(self, signed_proposal: SignedProposal) -> None:
        proposal = _parse(Proposal, signed_proposal.proposal_bytes, "Proposal from SignedProposal")
        if not proposal.header:
            raise ValueError("failed to extract Proposal fields: proposal header is nil")
        header = _parse(Header, proposal.header, "proposal header")
        chdr = _parse(ChannelHeader, header.channel_header, "channel header")
        if chdr.type not in _VALID_HEADER_TYPES:
            raise ValueError(
                "invalid channel header type. Expected ENDORSER_TRANSACTION or CONFIG, "
                f"received {chdr.type}"
            )
        self._proposal = proposal
        self._header = header
        self._channel_header = chdr

    def _signature(self) -> SignatureHeader | None:
        """The proposal's signature header (parsed on first use); None without a proposal."""
        if self._signature_header is None and self._header is not None:
            self._signature_header = _parse(
                SignatureHeader, self._header.signature_header, "signature header"
            )
        return self._signature_header

    # ------------------------------------------------------------------ requests

    def _request(self, msg_type: int, payload: Message) -> bytes:
        msg = ChaincodeMessage(
            type=msg_type,
            payload=payload.SerializeToString(),
            txid=self._txid,
            channel_id=self._channel_id,
        )
        return self._handler.request(msg)

    def _query(self, msg_type: int, payload: Message) -> QueryResponse:
        return parse_query_response(self._request(msg_type, payload))

    # ------------------------------------------------------------------ invocation data

    def get_args(self) -> list[bytes]:
        return list(self._args)

    def get_string_args(self) -> list[str]:
        """Arguments as text; bytes that are not UTF-8 survive as surrogate escapes (Go's
        ``string(b)`` is lossless too)."""
        return [arg.decode("utf-8", "surrogateescape") for arg in self._args]

    def get_function_and_parameters(self) -> tuple[str, list[str]]:
        args = self.get_string_args()
        if not args:
            return "", []
        return args[0], args[1:]

    def get_args_slice(self) -> bytes:
        return b"".join(self._args)

    def get_txid(self) -> str:
        return self._txid

    def get_channel_id(self) -> str:
        return self._channel_id

    def get_decorations(self) -> dict[str, bytes]:
        return dict(self._decorations)

    def get_creator(self) -> bytes:
        """Serialized ``msp.SerializedIdentity`` of the submitter; b"" without a proposal."""
        shdr = self._signature()
        return b"" if shdr is None else shdr.creator

    def get_transient(self) -> dict[str, bytes]:
        if self._transient is None:
            if self._proposal is None:
                return {}
            payload = _parse(ChaincodeProposalPayload, self._proposal.payload, "proposal payload")
            self._transient = dict(payload.TransientMap)
        return dict(self._transient)

    def get_binding(self) -> bytes:
        """SHA-256(nonce || creator || epoch as 8-byte little-endian); b"" without a proposal."""
        shdr = self._signature()
        if shdr is None or self._channel_header is None:
            return b""
        epoch = struct.pack("<Q", self._channel_header.epoch)
        return hashlib.sha256(shdr.nonce + shdr.creator + epoch).digest()

    def get_signed_proposal(self) -> SignedProposal | None:
        return self._signed_proposal

    def get_tx_timestamp(self) -> Timestamp:
        """The client's timestamp from the proposal's ChannelHeader."""
        if self._channel_header is None:
            raise ValueError(
                f"transaction {self._txid} carries no signed proposal, so it has no timestamp"
            )
        ts = Timestamp()
        ts.CopyFrom(self._channel_header.timestamp)
        return ts

    def get_mspid(self) -> str:
        """The peer's local MSP id (``CORE_PEER_LOCALMSPID``, set by the launcher)."""
        mspid = os.environ.get("CORE_PEER_LOCALMSPID", "")
        if not mspid:
            raise ValueError("'CORE_PEER_LOCALMSPID' is not set")
        return mspid

    # ------------------------------------------------------------------ public state

    def get_state(self, key: str) -> bytes:
        """The committed value of ``key``; b"" if it does not exist."""
        return self._request(ChaincodeMessage.GET_STATE, GetState(key=key))

    def get_state_multiple(self, keys: Sequence[str]) -> list[bytes]:
        """Values for several keys (b"" for missing ones): GET_STATE_MULTIPLE requests of at
        most the size the peer announced in READY, else one GET_STATE each (as Go's shim)."""
        size = self._handler.get_multiple_size
        if not size:
            return [self.get_state(key) for key in keys]
        keys = list(keys)
        values: list[bytes] = []
        for start in range(0, len(keys), size):
            payload = self._request(
                ChaincodeMessage.GET_STATE_MULTIPLE,
                GetStateMultiple(keys=keys[start : start + size]),
            )
            result = GetStateMultipleResult()
            try:
                result.ParseFromString(payload)
            except DecodeError as exc:
                raise ChaincodeRequestError(
                    f"could not unmarshal get state multiple keys response: {exc}"
                ) from exc
            if len(result.values) != min(size, len(keys) - start):
                raise ChaincodeRequestError(
                    f"the peer answered {len(result.values)} values for "
                    f"{min(size, len(keys) - start)} keys"
                )
            values.extend(result.values)
        return values

    def put_state(self, key: str, value: Value) -> None:
        """Write ``key``; an empty value is recorded by the peer as a delete. Composite keys
        (leading U+0000) are allowed here, as in Go."""
        if not key:
            raise ValueError("key must not be an empty string")
        value = _as_bytes(value)
        if not self._keep("", key, _DATA, WriteRecord.PUT_STATE, value=value):
            self._request(ChaincodeMessage.PUT_STATE, PutState(key=key, value=value))

    def del_state(self, key: str) -> None:
        if not self._keep("", key, _DATA, WriteRecord.DEL_STATE):
            self._request(ChaincodeMessage.DEL_STATE, DelState(key=key))

    def set_state_validation_parameter(self, key: str, ep: bytes) -> None:
        """Set the key-level endorsement policy (serialized) of ``key``."""
        self._put_metadata("", key, ep)

    def get_state_validation_parameter(self, key: str) -> bytes:
        """The key-level endorsement policy of ``key``; b"" if none."""
        return self._get_metadata("", key).get(VALIDATION_PARAMETER, b"")

    def _put_metadata(self, collection: str, key: str, ep: bytes) -> None:
        metadata = StateMetadata(metakey=VALIDATION_PARAMETER, value=ep)
        if self._keep(
            collection, key, _METADATA, WriteRecord.PUT_STATE_METADATA, metadata=metadata
        ):
            return
        self._request(
            ChaincodeMessage.PUT_STATE_METADATA,
            PutStateMetadata(key=key, collection=collection, metadata=metadata),
        )

    def _get_metadata(self, collection: str, key: str) -> dict[str, bytes]:
        payload = self._request(
            ChaincodeMessage.GET_STATE_METADATA, GetStateMetadata(key=key, collection=collection)
        )
        result = StateMetadataResult()
        try:
            result.ParseFromString(payload)
        except DecodeError as exc:
            raise ChaincodeRequestError(f"could not unmarshal metadata response: {exc}") from exc
        return {entry.metakey: entry.value for entry in result.entries}

    # ------------------------------------------------------------------ queries

    def _range(
        self, collection: str, start: str, end: str, metadata: bytes = b""
    ) -> tuple[StateQueryIterator, QueryResponseMetadata]:
        request = GetStateByRange(
            startKey=start, endKey=end, collection=collection, metadata=metadata
        )
        response = self._query(ChaincodeMessage.GET_STATE_BY_RANGE, request)
        return StateQueryIterator(self._request, response), self._response_metadata(response)

    def _rich_query(
        self, collection: str, query: str, metadata: bytes = b""
    ) -> tuple[StateQueryIterator, QueryResponseMetadata]:
        request = GetQueryResult(query=query, collection=collection, metadata=metadata)
        response = self._query(ChaincodeMessage.GET_QUERY_RESULT, request)
        return StateQueryIterator(self._request, response), self._response_metadata(response)

    def _response_metadata(self, response: QueryResponse) -> QueryResponseMetadata:
        metadata = QueryResponseMetadata()
        try:
            metadata.ParseFromString(response.metadata)
        except DecodeError as exc:
            raise ChaincodeRequestError(f"malformed QueryResponseMetadata: {exc}") from exc
        return metadata

    @staticmethod
    def _simple_range(start: str, end: str) -> tuple[str, str]:
        start = start or EMPTY_KEY_SUBSTITUTE
        validate_simple_keys(start, end)
        return start, end

    @staticmethod
    def _partial_key_range(object_type: str, attributes: Iterable[str]) -> tuple[str, str]:
        start = create_composite_key(object_type, attributes)
        return start, start + MAX_UNICODE_RUNE

    def get_state_by_range(self, start_key: str, end_key: str) -> StateQueryIterator:
        """Keys in ``[start_key, end_key)``; "" means unbounded on either side."""
        return self._range("", *self._simple_range(start_key, end_key))[0]

    def get_state_by_range_with_pagination(
        self, start_key: str, end_key: str, page_size: int, bookmark: str = ""
    ) -> tuple[StateQueryIterator, QueryResponseMetadata]:
        """One page; the metadata holds ``fetched_records_count`` and the next ``bookmark``."""
        start, end = self._simple_range(start_key, end_key)
        return self._range("", start, end, _query_metadata(page_size, bookmark))

    def create_composite_key(self, object_type: str, attributes: Iterable[str]) -> str:
        return create_composite_key(object_type, attributes)

    def split_composite_key(self, composite_key: str) -> tuple[str, list[str]]:
        return split_composite_key(composite_key)

    def get_state_by_partial_composite_key(
        self, object_type: str, attributes: Iterable[str]
    ) -> StateQueryIterator:
        return self._range("", *self._partial_key_range(object_type, attributes))[0]

    def get_state_by_partial_composite_key_with_pagination(
        self, object_type: str, attributes: Iterable[str], page_size: int, bookmark: str = ""
    ) -> tuple[StateQueryIterator, QueryResponseMetadata]:
        start, end = self._partial_key_range(object_type, attributes)
        return self._range("", start, end, _query_metadata(page_size, bookmark))

    def get_query_result(self, query: str) -> StateQueryIterator:
        """A rich query in CouchDB's Mango language (JSON values only; a bad query raises)."""
        return self._rich_query("", query)[0]

    def get_query_result_with_pagination(
        self, query: str, page_size: int, bookmark: str = ""
    ) -> tuple[StateQueryIterator, QueryResponseMetadata]:
        return self._rich_query("", query, _query_metadata(page_size, bookmark))

    def get_history_for_key(self, key: str) -> HistoryQueryIterator:
        response = self._query(ChaincodeMessage.GET_HISTORY_FOR_KEY, GetHistoryForKey(key=key))
        return HistoryQueryIterator(self._request, response)

    # ------------------------------------------------------------------ private data

    def get_private_data(self, collection: str, key: str) -> bytes:
        _require_collection(collection)
        return self._request(ChaincodeMessage.GET_STATE, GetState(key=key, collection=collection))

    def get_private_data_hash(self, collection: str, key: str) -> bytes:
        _require_collection(collection)
        return self._request(
            ChaincodeMessage.GET_PRIVATE_DATA_HASH, GetState(key=key, collection=collection)
        )

    def put_private_data(self, collection: str, key: str, value: Value) -> None:
        _require_collection(collection)
        if not key:
            raise ValueError("key must not be an empty string")
        value = _as_bytes(value)
        if not self._keep(collection, key, _DATA, WriteRecord.PUT_STATE, value=value):
            self._request(
                ChaincodeMessage.PUT_STATE,
                PutState(key=key, value=value, collection=collection),
            )

    def del_private_data(self, collection: str, key: str) -> None:
        _require_collection(collection)
        if not self._keep(collection, key, _DATA, WriteRecord.DEL_STATE):
            self._request(ChaincodeMessage.DEL_STATE, DelState(key=key, collection=collection))

    def purge_private_data(self, collection: str, key: str) -> None:
        _require_collection(collection)
        if self._keep(collection, key, _DATA, WriteRecord.PURGE_PRIVATE_DATA):
            return
        # PurgePrivateState is wire-identical to DelState, which is what the peer parses.
        self._request(ChaincodeMessage.PURGE_PRIVATE_DATA, DelState(key=key, collection=collection))

    def get_private_data_by_range(
        self, collection: str, start_key: str, end_key: str
    ) -> StateQueryIterator:
        _require_collection(collection)
        return self._range(collection, *self._simple_range(start_key, end_key))[0]

    def get_private_data_by_partial_composite_key(
        self, collection: str, object_type: str, attributes: Iterable[str]
    ) -> StateQueryIterator:
        _require_collection(collection)
        return self._range(collection, *self._partial_key_range(object_type, attributes))[0]

    def get_private_data_query_result(self, collection: str, query: str) -> StateQueryIterator:
        _require_collection(collection)
        return self._rich_query(collection, query)[0]

    def set_private_data_validation_parameter(self, collection: str, key: str, ep: bytes) -> None:
        self._put_metadata(collection, key, ep)

    def get_private_data_validation_parameter(self, collection: str, key: str) -> bytes:
        return self._get_metadata(collection, key).get(VALIDATION_PARAMETER, b"")

    # ------------------------------------------------------------------ cc2cc and events

    def invoke_chaincode(
        self, chaincode_name: str, args: Sequence[Value], channel: str = ""
    ) -> Response:
        """Call another chaincode within this transaction and return its Response.

        Anything the peer answers comes back as a Response: the callee's own, or status 500
        with the error text in ``message`` (and its raw bytes in ``payload``) when the callee
        failed or the peer refused the call. Only a lost connection or an overlapping request
        raises :class:`ChaincodeRequestError`.
        """
        target = f"{chaincode_name}/{channel}" if channel else chaincode_name
        spec = ChaincodeSpec(
            chaincode_id=ChaincodeID(name=target),
            input=ChaincodeInput(args=[_as_bytes(a) for a in args]),
        )
        msg = ChaincodeMessage(
            type=ChaincodeMessage.INVOKE_CHAINCODE,
            payload=spec.SerializeToString(),
            txid=self._txid,
            channel_id=self._channel_id,
        )
        reply = self._handler.exchange(msg)
        if reply.type == ChaincodeMessage.ERROR:
            return _error_response(reply.payload)
        inner = ChaincodeMessage()
        try:
            inner.ParseFromString(reply.payload)
        except DecodeError as exc:
            return _error_response(f"malformed reply to INVOKE_CHAINCODE: {exc}".encode())
        if inner.type != ChaincodeMessage.COMPLETED:
            return _error_response(inner.payload)
        response = Response()
        try:
            response.ParseFromString(inner.payload)
        except DecodeError as exc:
            return _error_response(f"malformed Response from {target}: {exc}".encode())
        return response

    # ------------------------------------------------------------------ write batches

    def _keep(
        self,
        collection: str,
        key: str,
        kind: int,
        record_type: WriteRecord.Type.ValueType,
        *,
        value: bytes = b"",
        metadata: StateMetadata | None = None,
    ) -> bool:
        """Keep a write for the batch; False when not batching (send it now)."""
        batch = self._batch
        if batch is None:
            return False
        batch[(collection, key, kind)] = WriteRecord(
            key=key, value=value, collection=collection, type=record_type, metadata=metadata
        )
        return True

    def start_write_batch(self) -> None:
        """Keep this transaction's writes for one WRITE_BATCH_STATE from now on (Go's
        ``StartWriteBatch``); no effect when the peer does not offer batches or when this
        transaction batches already (``Chaincode.write_batch``)."""
        if self._batch is None and self._handler.write_batch_size:
            self._batch = {}

    def finish_write_batch(self) -> None:
        """Send the writes kept so far and wait for the peer (Go's ``FinishWriteBatch``);
        later writes are sent one by one until :meth:`start_write_batch`. Raises
        :class:`ChaincodeRequestError` if the peer refuses one of them; no effect when not
        batching."""
        records = self.take_write_batch()
        if records:
            self._handler.send_write_batch(self._channel_id, self._txid, records)

    def take_write_batch(self) -> list[WriteRecord]:
        """The kept writes, and stop batching (for the handler, at the transaction's end)."""
        batch, self._batch = self._batch, None
        return list(batch.values()) if batch else []

    def set_event(self, name: str, payload: Value = b"") -> None:
        """Attach an event to this transaction's COMPLETED; the last call wins."""
        if not name:
            raise ValueError("event name can not be empty string")
        self._event = ChaincodeEvent(event_name=name, payload=_as_bytes(payload))

    @property
    def chaincode_event(self) -> ChaincodeEvent | None:
        """The event set with :meth:`set_event`, if any (read by the handler)."""
        return self._event


def _error_response(text: bytes) -> Response:
    return Response(status=ERROR, message=text.decode("utf-8", "replace"), payload=text)
