# ruff: noqa
# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class MarkDeployRequest(_message.Message):
    __slots__ = ("service", "version", "environment", "time_unix_nano", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    service: str
    version: str
    environment: str
    time_unix_nano: int
    attributes: _containers.ScalarMap[str, str]
    def __init__(
        self,
        service: _Optional[str] = ...,
        version: _Optional[str] = ...,
        environment: _Optional[str] = ...,
        time_unix_nano: _Optional[int] = ...,
        attributes: _Optional[_Mapping[str, str]] = ...,
    ) -> None: ...

class MarkDeployResponse(_message.Message):
    __slots__ = ("time_unix_nano", "recorded_at_unix_nano")
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    time_unix_nano: int
    recorded_at_unix_nano: int
    def __init__(
        self, time_unix_nano: _Optional[int] = ..., recorded_at_unix_nano: _Optional[int] = ...
    ) -> None: ...
