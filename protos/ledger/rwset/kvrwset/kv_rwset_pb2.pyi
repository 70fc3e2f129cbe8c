from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class KVRWSet(_message.Message):
    __slots__ = ("reads", "range_queries_info", "writes", "metadata_writes")
    READS_FIELD_NUMBER: _ClassVar[int]
    RANGE_QUERIES_INFO_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    METADATA_WRITES_FIELD_NUMBER: _ClassVar[int]
    reads: _containers.RepeatedCompositeFieldContainer[KVRead]
    range_queries_info: _containers.RepeatedCompositeFieldContainer[RangeQueryInfo]
    writes: _containers.RepeatedCompositeFieldContainer[KVWrite]
    metadata_writes: _containers.RepeatedCompositeFieldContainer[KVMetadataWrite]
    def __init__(self, reads: _Optional[_Iterable[_Union[KVRead, _Mapping]]] = ..., range_queries_info: _Optional[_Iterable[_Union[RangeQueryInfo, _Mapping]]] = ..., writes: _Optional[_Iterable[_Union[KVWrite, _Mapping]]] = ..., metadata_writes: _Optional[_Iterable[_Union[KVMetadataWrite, _Mapping]]] = ...) -> None: ...

class HashedRWSet(_message.Message):
    __slots__ = ("hashed_reads", "hashed_writes", "metadata_writes")
    HASHED_READS_FIELD_NUMBER: _ClassVar[int]
    HASHED_WRITES_FIELD_NUMBER: _ClassVar[int]
    METADATA_WRITES_FIELD_NUMBER: _ClassVar[int]
    hashed_reads: _containers.RepeatedCompositeFieldContainer[KVReadHash]
    hashed_writes: _containers.RepeatedCompositeFieldContainer[KVWriteHash]
    metadata_writes: _containers.RepeatedCompositeFieldContainer[KVMetadataWriteHash]
    def __init__(self, hashed_reads: _Optional[_Iterable[_Union[KVReadHash, _Mapping]]] = ..., hashed_writes: _Optional[_Iterable[_Union[KVWriteHash, _Mapping]]] = ..., metadata_writes: _Optional[_Iterable[_Union[KVMetadataWriteHash, _Mapping]]] = ...) -> None: ...

class KVRead(_message.Message):
    __slots__ = ("key", "version")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key: str
    version: Version
    def __init__(self, key: _Optional[str] = ..., version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class KVWrite(_message.Message):
    __slots__ = ("key", "is_delete", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    IS_DELETE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    is_delete: bool
    value: bytes
    def __init__(self, key: _Optional[str] = ..., is_delete: _Optional[bool] = ..., value: _Optional[bytes] = ...) -> None: ...

class KVMetadataWrite(_message.Message):
    __slots__ = ("key", "entries")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    key: str
    entries: _containers.RepeatedCompositeFieldContainer[KVMetadataEntry]
    def __init__(self, key: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[KVMetadataEntry, _Mapping]]] = ...) -> None: ...

class KVReadHash(_message.Message):
    __slots__ = ("key_hash", "version")
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    key_hash: bytes
    version: Version
    def __init__(self, key_hash: _Optional[bytes] = ..., version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class KVWriteHash(_message.Message):
    __slots__ = ("key_hash", "is_delete", "value_hash", "is_purge")
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    IS_DELETE_FIELD_NUMBER: _ClassVar[int]
    VALUE_HASH_FIELD_NUMBER: _ClassVar[int]
    IS_PURGE_FIELD_NUMBER: _ClassVar[int]
    key_hash: bytes
    is_delete: bool
    value_hash: bytes
    is_purge: bool
    def __init__(self, key_hash: _Optional[bytes] = ..., is_delete: _Optional[bool] = ..., value_hash: _Optional[bytes] = ..., is_purge: _Optional[bool] = ...) -> None: ...

class KVMetadataWriteHash(_message.Message):
    __slots__ = ("key_hash", "entries")
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    key_hash: bytes
    entries: _containers.RepeatedCompositeFieldContainer[KVMetadataEntry]
    def __init__(self, key_hash: _Optional[bytes] = ..., entries: _Optional[_Iterable[_Union[KVMetadataEntry, _Mapping]]] = ...) -> None: ...

class KVMetadataEntry(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: bytes
    def __init__(self, name: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("block_num", "tx_num")
    BLOCK_NUM_FIELD_NUMBER: _ClassVar[int]
    TX_NUM_FIELD_NUMBER: _ClassVar[int]
    block_num: int
    tx_num: int
    def __init__(self, block_num: _Optional[int] = ..., tx_num: _Optional[int] = ...) -> None: ...

class RangeQueryInfo(_message.Message):
    __slots__ = ("start_key", "end_key", "itr_exhausted", "raw_reads", "reads_merkle_hashes")
    START_KEY_FIELD_NUMBER: _ClassVar[int]
    END_KEY_FIELD_NUMBER: _ClassVar[int]
    ITR_EXHAUSTED_FIELD_NUMBER: _ClassVar[int]
    RAW_READS_FIELD_NUMBER: _ClassVar[int]
    READS_MERKLE_HASHES_FIELD_NUMBER: _ClassVar[int]
    start_key: str
    end_key: str
    itr_exhausted: bool
    raw_reads: QueryReads
    reads_merkle_hashes: QueryReadsMerkleSummary
    def __init__(self, start_key: _Optional[str] = ..., end_key: _Optional[str] = ..., itr_exhausted: _Optional[bool] = ..., raw_reads: _Optional[_Union[QueryReads, _Mapping]] = ..., reads_merkle_hashes: _Optional[_Union[QueryReadsMerkleSummary, _Mapping]] = ...) -> None: ...

class QueryReads(_message.Message):
    __slots__ = ("kv_reads",)
    KV_READS_FIELD_NUMBER: _ClassVar[int]
    kv_reads: _containers.RepeatedCompositeFieldContainer[KVRead]
    def __init__(self, kv_reads: _Optional[_Iterable[_Union[KVRead, _Mapping]]] = ...) -> None: ...

class QueryReadsMerkleSummary(_message.Message):
    __slots__ = ("max_degree", "max_level", "max_level_hashes")
    MAX_DEGREE_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MAX_LEVEL_HASHES_FIELD_NUMBER: _ClassVar[int]
    max_degree: int
    max_level: int
    max_level_hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, max_degree: _Optional[int] = ..., max_level: _Optional[int] = ..., max_level_hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...
