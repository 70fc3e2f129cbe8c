import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProposalResponse(_message.Message):
    __slots__ = ("version", "timestamp", "response", "payload", "endorsement", "interest")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ENDORSEMENT_FIELD_NUMBER: _ClassVar[int]
    INTEREST_FIELD_NUMBER: _ClassVar[int]
    version: int
    timestamp: _timestamp_pb2.Timestamp
    response: Response
    payload: bytes
    endorsement: Endorsement
    interest: ChaincodeInterest
    def __init__(self, version: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., response: _Optional[_Union[Response, _Mapping]] = ..., payload: _Optional[bytes] = ..., endorsement: _Optional[_Union[Endorsement, _Mapping]] = ..., interest: _Optional[_Union[ChaincodeInterest, _Mapping]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("status", "message", "payload")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    status: int
    message: str
    payload: bytes
    def __init__(self, status: _Optional[int] = ..., message: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class ProposalResponsePayload(_message.Message):
    __slots__ = ("proposal_hash", "extension")
    PROPOSAL_HASH_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_FIELD_NUMBER: _ClassVar[int]
    proposal_hash: bytes
    extension: bytes
    def __init__(self, proposal_hash: _Optional[bytes] = ..., extension: _Optional[bytes] = ...) -> None: ...

class Endorsement(_message.Message):
    __slots__ = ("endorser", "signature")
    ENDORSER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    endorser: bytes
    signature: bytes
    def __init__(self, endorser: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class ChaincodeInterest(_message.Message):
    __slots__ = ("chaincodes",)
    CHAINCODES_FIELD_NUMBER: _ClassVar[int]
    chaincodes: _containers.RepeatedCompositeFieldContainer[ChaincodeCall]
    def __init__(self, chaincodes: _Optional[_Iterable[_Union[ChaincodeCall, _Mapping]]] = ...) -> None: ...

class ChaincodeCall(_message.Message):
    __slots__ = ("name", "collection_names", "no_private_reads", "no_public_writes", "key_policies", "disregard_namespace_policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_NAMES_FIELD_NUMBER: _ClassVar[int]
    NO_PRIVATE_READS_FIELD_NUMBER: _ClassVar[int]
    NO_PUBLIC_WRITES_FIELD_NUMBER: _ClassVar[int]
    KEY_POLICIES_FIELD_NUMBER: _ClassVar[int]
    DISREGARD_NAMESPACE_POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    collection_names: _containers.RepeatedScalarFieldContainer[str]
    no_private_reads: bool
    no_public_writes: bool
    key_policies: _containers.RepeatedScalarFieldContainer[bytes]
    disregard_namespace_policy: bool
    def __init__(self, name: _Optional[str] = ..., collection_names: _Optional[_Iterable[str]] = ..., no_private_reads: _Optional[bool] = ..., no_public_writes: _Optional[bool] = ..., key_policies: _Optional[_Iterable[bytes]] = ..., disregard_namespace_policy: _Optional[bool] = ...) -> None: ...
