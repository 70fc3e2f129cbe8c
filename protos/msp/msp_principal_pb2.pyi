from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MSPPrincipal(_message.Message):
    __slots__ = ("principal_classification", "principal")
    class Classification(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ROLE: _ClassVar[MSPPrincipal.Classification]
        ORGANIZATION_UNIT: _ClassVar[MSPPrincipal.Classification]
        IDENTITY: _ClassVar[MSPPrincipal.Classification]
        ANONYMITY: _ClassVar[MSPPrincipal.Classification]
        COMBINED: _ClassVar[MSPPrincipal.Classification]
    ROLE: MSPPrincipal.Classification
    ORGANIZATION_UNIT: MSPPrincipal.Classification
    IDENTITY: MSPPrincipal.Classification
    ANONYMITY: MSPPrincipal.Classification
    COMBINED: MSPPrincipal.Classification
    PRINCIPAL_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    principal_classification: MSPPrincipal.Classification
    principal: bytes
    def __init__(self, principal_classification: _Optional[_Union[MSPPrincipal.Classification, str]] = ..., principal: _Optional[bytes] = ...) -> None: ...

class OrganizationUnit(_message.Message):
    __slots__ = ("msp_identifier", "organizational_unit_identifier", "certifiers_identifier")
    MSP_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATIONAL_UNIT_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    CERTIFIERS_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    msp_identifier: str
    organizational_unit_identifier: str
    certifiers_identifier: bytes
    def __init__(self, msp_identifier: _Optional[str] = ..., organizational_unit_identifier: _Optional[str] = ..., certifiers_identifier: _Optional[bytes] = ...) -> None: ...

class MSPRole(_message.Message):
    __slots__ = ("msp_identifier", "role")
    class MSPRoleType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MEMBER: _ClassVar[MSPRole.MSPRoleType]
        ADMIN: _ClassVar[MSPRole.MSPRoleType]
        CLIENT: _ClassVar[MSPRole.MSPRoleType]
        PEER: _ClassVar[MSPRole.MSPRoleType]
        ORDERER: _ClassVar[MSPRole.MSPRoleType]
    MEMBER: MSPRole.MSPRoleType
    ADMIN: MSPRole.MSPRoleType
    CLIENT: MSPRole.MSPRoleType
    PEER: MSPRole.MSPRoleType
    ORDERER: MSPRole.MSPRoleType
    MSP_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    msp_identifier: str
    role: MSPRole.MSPRoleType
    def __init__(self, msp_identifier: _Optional[str] = ..., role: _Optional[_Union[MSPRole.MSPRoleType, str]] = ...) -> None: ...

class MSPIdentityAnonymity(_message.Message):
    __slots__ = ("anonymity_type",)
    class MSPIdentityAnonymityType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        NOMINAL: _ClassVar[MSPIdentityAnonymity.MSPIdentityAnonymityType]
        ANONYMOUS: _ClassVar[MSPIdentityAnonymity.MSPIdentityAnonymityType]
    NOMINAL: MSPIdentityAnonymity.MSPIdentityAnonymityType
    ANONYMOUS: MSPIdentityAnonymity.MSPIdentityAnonymityType
    ANONYMITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    anonymity_type: MSPIdentityAnonymity.MSPIdentityAnonymityType
    def __init__(self, anonymity_type: _Optional[_Union[MSPIdentityAnonymity.MSPIdentityAnonymityType, str]] = ...) -> None: ...

class CombinedPrincipal(_message.Message):
    __slots__ = ("principals",)
    PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    principals: _containers.RepeatedCompositeFieldContainer[MSPPrincipal]
    def __init__(self, principals: _Optional[_Iterable[_Union[MSPPrincipal, _Mapping]]] = ...) -> None: ...
