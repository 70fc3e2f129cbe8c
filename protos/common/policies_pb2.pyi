from protos.msp import msp_principal_pb2 as _msp_principal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Policy(_message.Message):
    __slots__ = ("type", "value")
    class PolicyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[Policy.PolicyType]
        SIGNATURE: _ClassVar[Policy.PolicyType]
        MSP: _ClassVar[Policy.PolicyType]
        IMPLICIT_META: _ClassVar[Policy.PolicyType]
    UNKNOWN: Policy.PolicyType
    SIGNATURE: Policy.PolicyType
    MSP: Policy.PolicyType
    IMPLICIT_META: Policy.PolicyType
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: int
    value: bytes
    def __init__(self, type: _Optional[int] = ..., value: _Optional[bytes] = ...) -> None: ...

class SignaturePolicyEnvelope(_message.Message):
    __slots__ = ("version", "rule", "identities")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    IDENTITIES_FIELD_NUMBER: _ClassVar[int]
    version: int
    rule: SignaturePolicy
    identities: _containers.RepeatedCompositeFieldContainer[_msp_principal_pb2.MSPPrincipal]
    def __init__(self, version: _Optional[int] = ..., rule: _Optional[_Union[SignaturePolicy, _Mapping]] = ..., identities: _Optional[_Iterable[_Union[_msp_principal_pb2.MSPPrincipal, _Mapping]]] = ...) -> None: ...

class SignaturePolicy(_message.Message):
    __slots__ = ("signed_by", "n_out_of")
    class NOutOf(_message.Message):
        __slots__ = ("n", "rules")
        N_FIELD_NUMBER: _ClassVar[int]
        RULES_FIELD_NUMBER: _ClassVar[int]
        n: int
        rules: _containers.RepeatedCompositeFieldContainer[SignaturePolicy]
        def __init__(self, n: _Optional[int] = ..., rules: _Optional[_Iterable[_Union[SignaturePolicy, _Mapping]]] = ...) -> None: ...
    SIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    N_OUT_OF_FIELD_NUMBER: _ClassVar[int]
    signed_by: int
    n_out_of: SignaturePolicy.NOutOf
    def __init__(self, signed_by: _Optional[int] = ..., n_out_of: _Optional[_Union[SignaturePolicy.NOutOf, _Mapping]] = ...) -> None: ...

class ImplicitMetaPolicy(_message.Message):
    __slots__ = ("sub_policy", "rule")
    class Rule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ANY: _ClassVar[ImplicitMetaPolicy.Rule]
        ALL: _ClassVar[ImplicitMetaPolicy.Rule]
        MAJORITY: _ClassVar[ImplicitMetaPolicy.Rule]
    ANY: ImplicitMetaPolicy.Rule
    ALL: ImplicitMetaPolicy.Rule
    MAJORITY: ImplicitMetaPolicy.Rule
    SUB_POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    sub_policy: str
    rule: ImplicitMetaPolicy.Rule
    def __init__(self, sub_policy: _Optional[str] = ..., rule: _Optional[_Union[ImplicitMetaPolicy.Rule, str]] = ...) -> None: ...

class ApplicationPolicy(_message.Message):
    __slots__ = ("signature_policy", "channel_config_policy_reference")
    SIGNATURE_POLICY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_CONFIG_POLICY_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    signature_policy: SignaturePolicyEnvelope
    channel_config_policy_reference: str
    def __init__(self, signature_policy: _Optional[_Union[SignaturePolicyEnvelope, _Mapping]] = ..., channel_config_policy_reference: _Optional[str] = ...) -> None: ...
