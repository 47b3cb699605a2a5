from typing import Any

TABLES: tuple[str, ...]

def decode_traces(
    data: bytes, /, max_depth: int = 64, max_value_bytes: int = 8192
) -> tuple[Any, dict[str, str | None]]: ...
def decode_logs(
    data: bytes, /, max_depth: int = 64, max_value_bytes: int = 8192
) -> tuple[Any, dict[str, str | None]]: ...
def table_schema(name: str) -> Any: ...
