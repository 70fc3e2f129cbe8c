from protos.common import policies_pb2 as _policies_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplicationPolicy(_message.Message):
    __slots__ = ("signature_policy", "channel_config_policy_reference")
    SIGNATURE_POLICY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_CONFIG_POLICY_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    signature_policy: _policies_pb2.SignaturePolicyEnvelope
    channel_config_policy_reference: str
    def __init__(self, signature_policy: _Optional[_Union[_policies_pb2.SignaturePolicyEnvelope, _Mapping]] = ..., channel_config_policy_reference: _Optional[str] = ...) -> None: ...
