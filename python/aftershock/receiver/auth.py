"""Bearer-token checks shared by the gRPC and HTTP listeners."""

from __future__ import annotations

import hmac
from pathlib import Path


class BearerToken:
    """A token read from a file; compares ``authorization`` values in constant time."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the auth token is empty")
        self._expected = f"Bearer {token}".encode()

    @classmethod
    def from_file(cls, path: str | Path) -> BearerToken:
        """Reads the token from ``path`` (surrounding whitespace ignored)."""
        return cls(Path(path).read_text().strip())

    def allows(self, authorization: str | None) -> bool:
        """True when ``authorization`` is exactly ``Bearer <token>``."""
        given = (authorization or "").strip().encode()
        return hmac.compare_digest(given, self._expected)
