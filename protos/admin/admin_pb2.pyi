from protos.peer import chaincode_event_pb2 as _chaincode_event_pb2
from protos.peer import proposal_response_pb2 as _proposal_response_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InstallRequest(_message.Message):
    __slots__ = ("package",)
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    package: bytes
    def __init__(self, package: _Optional[bytes] = ...) -> None: ...

class ChaincodeNameVersion(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ChaincodeReferences(_message.Message):
    __slots__ = ("chaincodes",)
    CHAINCODES_FIELD_NUMBER: _ClassVar[int]
    chaincodes: _containers.RepeatedCompositeFieldContainer[ChaincodeNameVersion]
    def __init__(self, chaincodes: _Optional[_Iterable[_Union[ChaincodeNameVersion, _Mapping]]] = ...) -> None: ...

class InstalledChaincode(_message.Message):
    __slots__ = ("package_id", "label", "type", "references")
    class ReferencesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ChaincodeReferences
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ChaincodeReferences, _Mapping]] = ...) -> None: ...
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    package_id: str
    label: str
    type: str
    references: _containers.MessageMap[str, ChaincodeReferences]
    def __init__(self, package_id: _Optional[str] = ..., label: _Optional[str] = ..., type: _Optional[str] = ..., references: _Optional[_Mapping[str, ChaincodeReferences]] = ...) -> None: ...

class QueryInstalledRequest(_message.Message):
    __slots__ = ("package_id",)
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    package_id: str
    def __init__(self, package_id: _Optional[str] = ...) -> None: ...

class InstalledChaincodes(_message.Message):
    __slots__ = ("installed_chaincodes",)
    INSTALLED_CHAINCODES_FIELD_NUMBER: _ClassVar[int]
    installed_chaincodes: _containers.RepeatedCompositeFieldContainer[InstalledChaincode]
    def __init__(self, installed_chaincodes: _Optional[_Iterable[_Union[InstalledChaincode, _Mapping]]] = ...) -> None: ...

class ChaincodeDefinition(_message.Message):
    __slots__ = ("channel", "name", "version", "sequence", "package_id", "init_required", "endorsement_plugin", "validation_plugin", "signature_policy", "channel_config_policy", "collections")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    INIT_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ENDORSEMENT_PLUGIN_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_PLUGIN_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_POLICY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_CONFIG_POLICY_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    name: str
    version: str
    sequence: int
    package_id: str
    init_required: bool
    endorsement_plugin: str
    validation_plugin: str
    signature_policy: str
    channel_config_policy: str
    collections: str
    def __init__(self, channel: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., sequence: _Optional[int] = ..., package_id: _Optional[str] = ..., init_required: _Optional[bool] = ..., endorsement_plugin: _Optional[str] = ..., validation_plugin: _Optional[str] = ..., signature_policy: _Optional[str] = ..., channel_config_policy: _Optional[str] = ..., collections: _Optional[str] = ...) -> None: ...

class QueryCommittedRequest(_message.Message):
    __slots__ = ("channel", "name")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    channel: str
    name: str
    def __init__(self, channel: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ChaincodeDefinitions(_message.Message):
    __slots__ = ("chaincode_definitions",)
    CHAINCODE_DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    chaincode_definitions: _containers.RepeatedCompositeFieldContainer[ChaincodeDefinition]
    def __init__(self, chaincode_definitions: _Optional[_Iterable[_Union[ChaincodeDefinition, _Mapping]]] = ...) -> None: ...

class ChannelRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class JoinReply(_message.Message):
    __slots__ = ("joined",)
    JOINED_FIELD_NUMBER: _ClassVar[int]
    joined: bool
    def __init__(self, joined: _Optional[bool] = ...) -> None: ...

class ChannelList(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, channels: _Optional[_Iterable[str]] = ...) -> None: ...

class InvokeRequest(_message.Message):
    __slots__ = ("channel", "chaincode", "args", "txid", "timeout", "transient", "is_init")
    class TransientEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CHAINCODE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    TXID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TRANSIENT_FIELD_NUMBER: _ClassVar[int]
    IS_INIT_FIELD_NUMBER: _ClassVar[int]
    channel: str
    chaincode: str
    args: _containers.RepeatedScalarFieldContainer[bytes]
    txid: str
    timeout: float
    transient: _containers.ScalarMap[str, bytes]
    is_init: bool
    def __init__(self, channel: _Optional[str] = ..., chaincode: _Optional[str] = ..., args: _Optional[_Iterable[bytes]] = ..., txid: _Optional[str] = ..., timeout: _Optional[float] = ..., transient: _Optional[_Mapping[str, bytes]] = ..., is_init: _Optional[bool] = ...) -> None: ...

class InvokeReply(_message.Message):
    __slots__ = ("txid", "response", "validation", "event", "rwset")
    TXID_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    RWSET_FIELD_NUMBER: _ClassVar[int]
    txid: str
    response: _proposal_response_pb2.Response
    validation: str
    event: _chaincode_event_pb2.ChaincodeEvent
    rwset: bytes
    def __init__(self, txid: _Optional[str] = ..., response: _Optional[_Union[_proposal_response_pb2.Response, _Mapping]] = ..., validation: _Optional[str] = ..., event: _Optional[_Union[_chaincode_event_pb2.ChaincodeEvent, _Mapping]] = ..., rwset: _Optional[bytes] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChaincodeInfo(_message.Message):
    __slots__ = ("name", "runtime", "status", "instance")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    runtime: str
    status: str
    instance: str
    def __init__(self, name: _Optional[str] = ..., runtime: _Optional[str] = ..., status: _Optional[str] = ..., instance: _Optional[str] = ...) -> None: ...

class ChaincodeList(_message.Message):
    __slots__ = ("chaincodes",)
    CHAINCODES_FIELD_NUMBER: _ClassVar[int]
    chaincodes: _containers.RepeatedCompositeFieldContainer[ChaincodeInfo]
    def __init__(self, chaincodes: _Optional[_Iterable[_Union[ChaincodeInfo, _Mapping]]] = ...) -> None: ...

class ChaincodeRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LaunchReply(_message.Message):
    __slots__ = ("seconds",)
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    seconds: float
    def __init__(self, seconds: _Optional[float] = ...) -> None: ...

class StopReply(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("name", "lines")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    name: str
    lines: int
    def __init__(self, name: _Optional[str] = ..., lines: _Optional[int] = ...) -> None: ...

class LogsReply(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, lines: _Optional[_Iterable[str]] = ...) -> None: ...

class EventsRequest(_message.Message):
    __slots__ = ("chaincode",)
    CHAINCODE_FIELD_NUMBER: _ClassVar[int]
    chaincode: str
    def __init__(self, chaincode: _Optional[str] = ...) -> None: ...

class LifecycleEvent(_message.Message):
    __slots__ = ("chaincode", "kind", "detail", "timestamp", "instance", "exit_code", "signal", "delay", "last_lines", "actor")
    CHAINCODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    LAST_LINES_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    chaincode: str
    kind: str
    detail: str
    timestamp: float
    instance: str
    exit_code: int
    signal: int
    delay: float
    last_lines: _containers.RepeatedScalarFieldContainer[str]
    actor: str
    def __init__(self, chaincode: _Optional[str] = ..., kind: _Optional[str] = ..., detail: _Optional[str] = ..., timestamp: _Optional[float] = ..., instance: _Optional[str] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., delay: _Optional[float] = ..., last_lines: _Optional[_Iterable[str]] = ..., actor: _Optional[str] = ...) -> None: ...
