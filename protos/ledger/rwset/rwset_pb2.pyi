from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TxReadWriteSet(_message.Message):
    __slots__ = ("data_model", "ns_rwset")
    class DataModel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KV: _ClassVar[TxReadWriteSet.DataModel]
    KV: TxReadWriteSet.DataModel
    DATA_MODEL_FIELD_NUMBER: _ClassVar[int]
    NS_RWSET_FIELD_NUMBER: _ClassVar[int]
    data_model: TxReadWriteSet.DataModel
    ns_rwset: _containers.RepeatedCompositeFieldContainer[NsReadWriteSet]
    def __init__(self, data_model: _Optional[_Union[TxReadWriteSet.DataModel, str]] = ..., ns_rwset: _Optional[_Iterable[_Union[NsReadWriteSet, _Mapping]]] = ...) -> None: ...

class NsReadWriteSet(_message.Message):
    __slots__ = ("namespace", "rwset", "collection_hashed_rwset")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    RWSET_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_HASHED_RWSET_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    rwset: bytes
    collection_hashed_rwset: _containers.RepeatedCompositeFieldContainer[CollectionHashedReadWriteSet]
    def __init__(self, namespace: _Optional[str] = ..., rwset: _Optional[bytes] = ..., collection_hashed_rwset: _Optional[_Iterable[_Union[CollectionHashedReadWriteSet, _Mapping]]] = ...) -> None: ...

class CollectionHashedReadWriteSet(_message.Message):
    __slots__ = ("collection_name", "hashed_rwset", "pvt_rwset_hash")
    COLLECTION_NAME_FIELD_NUMBER: _ClassVar[int]
    HASHED_RWSET_FIELD_NUMBER: _ClassVar[int]
    PVT_RWSET_HASH_FIELD_NUMBER: _ClassVar[int]
    collection_name: str
    hashed_rwset: bytes
    pvt_rwset_hash: bytes
    def __init__(self, collection_name: _Optional[str] = ..., hashed_rwset: _Optional[bytes] = ..., pvt_rwset_hash: _Optional[bytes] = ...) -> None: ...

class TxPvtReadWriteSet(_message.Message):
    __slots__ = ("data_model", "ns_pvt_rwset")
    DATA_MODEL_FIELD_NUMBER: _ClassVar[int]
    NS_PVT_RWSET_FIELD_NUMBER: _ClassVar[int]
    data_model: TxReadWriteSet.DataModel
    ns_pvt_rwset: _containers.RepeatedCompositeFieldContainer[NsPvtReadWriteSet]
    def __init__(self, data_model: _Optional[_Union[TxReadWriteSet.DataModel, str]] = ..., ns_pvt_rwset: _Optional[_Iterable[_Union[NsPvtReadWriteSet, _Mapping]]] = ...) -> None: ...

class NsPvtReadWriteSet(_message.Message):
    __slots__ = ("namespace", "collection_pvt_rwset")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_PVT_RWSET_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    collection_pvt_rwset: _containers.RepeatedCompositeFieldContainer[CollectionPvtReadWriteSet]
    def __init__(self, namespace: _Optional[str] = ..., collection_pvt_rwset: _Optional[_Iterable[_Union[CollectionPvtReadWriteSet, _Mapping]]] = ...) -> None: ...

class CollectionPvtReadWriteSet(_message.Message):
    __slots__ = ("collection_name", "rwset")
    COLLECTION_NAME_FIELD_NUMBER: _ClassVar[int]
    RWSET_FIELD_NUMBER: _ClassVar[int]
    collection_name: str
    rwset: bytes
    def __init__(self, collection_name: _Optional[str] = ..., rwset: _Optional[bytes] = ...) -> None: ...
