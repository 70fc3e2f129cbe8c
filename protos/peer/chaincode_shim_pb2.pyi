import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos.peer import chaincode_event_pb2 as _chaincode_event_pb2
from protos.peer import proposal_pb2 as _proposal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChaincodeMessage(_message.Message):
    __slots__ = ("type", "timestamp", "payload", "txid", "proposal", "chaincode_event", "channel_id")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNDEFINED: _ClassVar[ChaincodeMessage.Type]
        REGISTER: _ClassVar[ChaincodeMessage.Type]
        REGISTERED: _ClassVar[ChaincodeMessage.Type]
        INIT: _ClassVar[ChaincodeMessage.Type]
        READY: _ClassVar[ChaincodeMessage.Type]
        TRANSACTION: _ClassVar[ChaincodeMessage.Type]
        COMPLETED: _ClassVar[ChaincodeMessage.Type]
        ERROR: _ClassVar[ChaincodeMessage.Type]
        GET_STATE: _ClassVar[ChaincodeMessage.Type]
        PUT_STATE: _ClassVar[ChaincodeMessage.Type]
        DEL_STATE: _ClassVar[ChaincodeMessage.Type]
        INVOKE_CHAINCODE: _ClassVar[ChaincodeMessage.Type]
        RESPONSE: _ClassVar[ChaincodeMessage.Type]
        GET_STATE_BY_RANGE: _ClassVar[ChaincodeMessage.Type]
        GET_QUERY_RESULT: _ClassVar[ChaincodeMessage.Type]
        QUERY_STATE_NEXT: _ClassVar[ChaincodeMessage.Type]
        QUERY_STATE_CLOSE: _ClassVar[ChaincodeMessage.Type]
        KEEPALIVE: _ClassVar[ChaincodeMessage.Type]
        GET_HISTORY_FOR_KEY: _ClassVar[ChaincodeMessage.Type]
        GET_STATE_METADATA: _ClassVar[ChaincodeMessage.Type]
        PUT_STATE_METADATA: _ClassVar[ChaincodeMessage.Type]
        GET_PRIVATE_DATA_HASH: _ClassVar[ChaincodeMessage.Type]
        PURGE_PRIVATE_DATA: _ClassVar[ChaincodeMessage.Type]
        WRITE_BATCH_STATE: _ClassVar[ChaincodeMessage.Type]
        GET_STATE_MULTIPLE: _ClassVar[ChaincodeMessage.Type]
    UNDEFINED: ChaincodeMessage.Type
    REGISTER: ChaincodeMessage.Type
    REGISTERED: ChaincodeMessage.Type
    INIT: ChaincodeMessage.Type
    READY: ChaincodeMessage.Type
    TRANSACTION: ChaincodeMessage.Type
    COMPLETED: ChaincodeMessage.Type
    ERROR: ChaincodeMessage.Type
    GET_STATE: ChaincodeMessage.Type
    PUT_STATE: ChaincodeMessage.Type
    DEL_STATE: ChaincodeMessage.Type
    INVOKE_CHAINCODE: ChaincodeMessage.Type
    RESPONSE: ChaincodeMessage.Type
    GET_STATE_BY_RANGE: ChaincodeMessage.Type
    GET_QUERY_RESULT: ChaincodeMessage.Type
    QUERY_STATE_NEXT: ChaincodeMessage.Type
    QUERY_STATE_CLOSE: ChaincodeMessage.Type
    KEEPALIVE: ChaincodeMessage.Type
    GET_HISTORY_FOR_KEY: ChaincodeMessage.Type
    GET_STATE_METADATA: ChaincodeMessage.Type
    PUT_STATE_METADATA: ChaincodeMessage.Type
    GET_PRIVATE_DATA_HASH: ChaincodeMessage.Type
    PURGE_PRIVATE_DATA: ChaincodeMessage.Type
    WRITE_BATCH_STATE: ChaincodeMessage.Type
    GET_STATE_MULTIPLE: ChaincodeMessage.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TXID_FIELD_NUMBER: _ClassVar[int]
    PROPOSAL_FIELD_NUMBER: _ClassVar[int]
    CHAINCODE_EVENT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    type: ChaincodeMessage.Type
    timestamp: _timestamp_pb2.Timestamp
    payload: bytes
    txid: str
    proposal: _proposal_pb2.SignedProposal
    chaincode_event: _chaincode_event_pb2.ChaincodeEvent
    channel_id: str
    def __init__(self, type: _Optional[_Union[ChaincodeMessage.Type, str]] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payload: _Optional[bytes] = ..., txid: _Optional[str] = ..., proposal: _Optional[_Union[_proposal_pb2.SignedProposal, _Mapping]] = ..., chaincode_event: _Optional[_Union[_chaincode_event_pb2.ChaincodeEvent, _Mapping]] = ..., channel_id: _Optional[str] = ...) -> None: ...

class GetState(_message.Message):
    __slots__ = ("key", "collection")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class GetStateMetadata(_message.Message):
    __slots__ = ("key", "collection")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class GetStateMultiple(_message.Message):
    __slots__ = ("keys", "collection")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedScalarFieldContainer[str]
    collection: str
    def __init__(self, keys: _Optional[_Iterable[str]] = ..., collection: _Optional[str] = ...) -> None: ...

class GetStateMultipleResult(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, values: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PutState(_message.Message):
    __slots__ = ("key", "value", "collection")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    collection: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., collection: _Optional[str] = ...) -> None: ...

class PutStateMetadata(_message.Message):
    __slots__ = ("key", "collection", "metadata")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    metadata: StateMetadata
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ..., metadata: _Optional[_Union[StateMetadata, _Mapping]] = ...) -> None: ...

class WriteBatchState(_message.Message):
    __slots__ = ("rec",)
    REC_FIELD_NUMBER: _ClassVar[int]
    rec: _containers.RepeatedCompositeFieldContainer[WriteRecord]
    def __init__(self, rec: _Optional[_Iterable[_Union[WriteRecord, _Mapping]]] = ...) -> None: ...

class WriteRecord(_message.Message):
    __slots__ = ("key", "value", "collection", "metadata", "type")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNDEFINED: _ClassVar[WriteRecord.Type]
        PUT_STATE: _ClassVar[WriteRecord.Type]
        DEL_STATE: _ClassVar[WriteRecord.Type]
        PUT_STATE_METADATA: _ClassVar[WriteRecord.Type]
        PURGE_PRIVATE_DATA: _ClassVar[WriteRecord.Type]
    UNDEFINED: WriteRecord.Type
    PUT_STATE: WriteRecord.Type
    DEL_STATE: WriteRecord.Type
    PUT_STATE_METADATA: WriteRecord.Type
    PURGE_PRIVATE_DATA: WriteRecord.Type
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    collection: str
    metadata: StateMetadata
    type: WriteRecord.Type
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., collection: _Optional[str] = ..., metadata: _Optional[_Union[StateMetadata, _Mapping]] = ..., type: _Optional[_Union[WriteRecord.Type, str]] = ...) -> None: ...

class DelState(_message.Message):
    __slots__ = ("key", "collection")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class PurgePrivateState(_message.Message):
    __slots__ = ("key", "collection")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    key: str
    collection: str
    def __init__(self, key: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class GetStateByRange(_message.Message):
    __slots__ = ("startKey", "endKey", "collection", "metadata")
    STARTKEY_FIELD_NUMBER: _ClassVar[int]
    ENDKEY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    startKey: str
    endKey: str
    collection: str
    metadata: bytes
    def __init__(self, startKey: _Optional[str] = ..., endKey: _Optional[str] = ..., collection: _Optional[str] = ..., metadata: _Optional[bytes] = ...) -> None: ...

class GetQueryResult(_message.Message):
    __slots__ = ("query", "collection", "metadata")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    query: str
    collection: str
    metadata: bytes
    def __init__(self, query: _Optional[str] = ..., collection: _Optional[str] = ..., metadata: _Optional[bytes] = ...) -> None: ...

class QueryMetadata(_message.Message):
    __slots__ = ("pageSize", "bookmark")
    PAGESIZE_FIELD_NUMBER: _ClassVar[int]
    BOOKMARK_FIELD_NUMBER: _ClassVar[int]
    pageSize: int
    bookmark: str
    def __init__(self, pageSize: _Optional[int] = ..., bookmark: _Optional[str] = ...) -> None: ...

class GetHistoryForKey(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class QueryStateNext(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class QueryStateClose(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class QueryResultBytes(_message.Message):
    __slots__ = ("resultBytes",)
    RESULTBYTES_FIELD_NUMBER: _ClassVar[int]
    resultBytes: bytes
    def __init__(self, resultBytes: _Optional[bytes] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("results", "has_more", "id", "metadata")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResultBytes]
    has_more: bool
    id: str
    metadata: bytes
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResultBytes, _Mapping]]] = ..., has_more: _Optional[bool] = ..., id: _Optional[str] = ..., metadata: _Optional[bytes] = ...) -> None: ...

class QueryResponseMetadata(_message.Message):
    __slots__ = ("fetched_records_count", "bookmark")
    FETCHED_RECORDS_COUNT_FIELD_NUMBER: _ClassVar[int]
    BOOKMARK_FIELD_NUMBER: _ClassVar[int]
    fetched_records_count: int
    bookmark: str
    def __init__(self, fetched_records_count: _Optional[int] = ..., bookmark: _Optional[str] = ...) -> None: ...

class StateMetadata(_message.Message):
    __slots__ = ("metakey", "value")
    METAKEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metakey: str
    value: bytes
    def __init__(self, metakey: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class StateMetadataResult(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[StateMetadata]
    def __init__(self, entries: _Optional[_Iterable[_Union[StateMetadata, _Mapping]]] = ...) -> None: ...
