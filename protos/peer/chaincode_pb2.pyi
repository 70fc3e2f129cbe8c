from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChaincodeID(_message.Message):
    __slots__ = ("path", "name", "version")
    PATH_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    path: str
    name: str
    version: str
    def __init__(self, path: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ChaincodeInput(_message.Message):
    __slots__ = ("args", "decorations", "is_init")
    class DecorationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    ARGS_FIELD_NUMBER: _ClassVar[int]
    DECORATIONS_FIELD_NUMBER: _ClassVar[int]
    IS_INIT_FIELD_NUMBER: _ClassVar[int]
    args: _containers.RepeatedScalarFieldContainer[bytes]
    decorations: _containers.ScalarMap[str, bytes]
    is_init: bool
    def __init__(self, args: _Optional[_Iterable[bytes]] = ..., decorations: _Optional[_Mapping[str, bytes]] = ..., is_init: _Optional[bool] = ...) -> None: ...

class ChaincodeSpec(_message.Message):
    __slots__ = ("type", "chaincode_id", "input", "timeout")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNDEFINED: _ClassVar[ChaincodeSpec.Type]
        GOLANG: _ClassVar[ChaincodeSpec.Type]
        NODE: _ClassVar[ChaincodeSpec.Type]
        CAR: _ClassVar[ChaincodeSpec.Type]
        JAVA: _ClassVar[ChaincodeSpec.Type]
    UNDEFINED: ChaincodeSpec.Type
    GOLANG: ChaincodeSpec.Type
    NODE: ChaincodeSpec.Type
    CAR: ChaincodeSpec.Type
    JAVA: ChaincodeSpec.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CHAINCODE_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    type: ChaincodeSpec.Type
    chaincode_id: ChaincodeID
    input: ChaincodeInput
    timeout: int
    def __init__(self, type: _Optional[_Union[ChaincodeSpec.Type, str]] = ..., chaincode_id: _Optional[_Union[ChaincodeID, _Mapping]] = ..., input: _Optional[_Union[ChaincodeInput, _Mapping]] = ..., timeout: _Optional[int] = ...) -> None: ...

class ChaincodeDeploymentSpec(_message.Message):
    __slots__ = ("chaincode_spec", "code_package")
    CHAINCODE_SPEC_FIELD_NUMBER: _ClassVar[int]
    CODE_PACKAGE_FIELD_NUMBER: _ClassVar[int]
    chaincode_spec: ChaincodeSpec
    code_package: bytes
    def __init__(self, chaincode_spec: _Optional[_Union[ChaincodeSpec, _Mapping]] = ..., code_package: _Optional[bytes] = ...) -> None: ...

class ChaincodeInvocationSpec(_message.Message):
    __slots__ = ("chaincode_spec",)
    CHAINCODE_SPEC_FIELD_NUMBER: _ClassVar[int]
    chaincode_spec: ChaincodeSpec
    def __init__(self, chaincode_spec: _Optional[_Union[ChaincodeSpec, _Mapping]] = ...) -> None: ...

class ChaincodeAdditionalParams(_message.Message):
    __slots__ = ("use_write_batch", "max_size_write_batch", "use_get_multiple_keys", "max_size_get_multiple_keys")
    USE_WRITE_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_WRITE_BATCH_FIELD_NUMBER: _ClassVar[int]
    USE_GET_MULTIPLE_KEYS_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_GET_MULTIPLE_KEYS_FIELD_NUMBER: _ClassVar[int]
    use_write_batch: bool
    max_size_write_batch: int
    use_get_multiple_keys: bool
    max_size_get_multiple_keys: int
    def __init__(self, use_write_batch: _Optional[bool] = ..., max_size_write_batch: _Optional[int] = ..., use_get_multiple_keys: _Optional[bool] = ..., max_size_get_multiple_keys: _Optional[int] = ...) -> None: ...
