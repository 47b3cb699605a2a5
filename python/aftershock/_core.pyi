from typing import Any, final

__all__ = [
    "LAKE_TABLES",
    "ROLLUP_SQL_MACROS",
    "TABLES",
    "RawLake",
    "compact_data_files",
    "decode_logs",
    "decode_logs_json",
    "decode_traces",
    "decode_traces_json",
    "plain_columns",
    "table_schema",
]

TABLES: tuple[str, ...]
LAKE_TABLES: list[str]
ROLLUP_SQL_MACROS: str

def decode_traces(
    data: bytes, /, max_depth: int = 64, max_value_bytes: int = 8192
) -> tuple[Any, dict[str, str | None]]: ...
def decode_logs(
    data: bytes, /, max_depth: int = 64, max_value_bytes: int = 8192
) -> tuple[Any, dict[str, str | None]]: ...
def decode_traces_json(
    data: bytes, /, max_depth: int = 64, max_value_bytes: int = 8192
) -> tuple[Any, dict[str, str | None]]: ...
def decode_logs_json(
    data: bytes, /, max_depth: int = 64, max_value_bytes: int = 8192
) -> tuple[Any, dict[str, str | None]]: ...
def table_schema(name: str) -> Any: ...
def plain_columns(name: str) -> list[tuple[str, str]]: ...
def compact_data_files(
    table_dir: str,
    table: str,
    day: str,
    paths: list[str],
    *,
    copy_row_group_rows: int | None = None,
) -> dict[str, Any] | None: ...

@final
class RawLake:
    @staticmethod
    def open(
        data_dir: str,
        tables_dir: str,
        durability: str,
        max_buffer_bytes: int,
        committed: dict[str, int],
    ) -> tuple[RawLake, dict[str, int]]: ...
    def ingest_traces(self, data: bytes) -> tuple[int, int, str | None, dict[str, int]]: ...
    def ingest_logs(self, data: bytes) -> tuple[int, int, str | None, dict[str, int]]: ...
    def ingest_traces_json(self, data: bytes) -> tuple[int, int, str | None, dict[str, int]]: ...
    def ingest_logs_json(self, data: bytes) -> tuple[int, int, str | None, dict[str, int]]: ...
    def flush(self) -> list[dict[str, Any]]: ...
    def committed(self, table: str, seq: int) -> None: ...
    def buffered_bytes(self) -> int: ...
    def buffered_age(self) -> float: ...
    def wal_bytes(self) -> int: ...
    def close(self) -> None: ...
