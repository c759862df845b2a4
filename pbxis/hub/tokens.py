"""Stream tokens: minted with 256 random bits, found without a timing oracle.

A plain ``dict[token]`` look-up compares the candidate with stored keys byte by byte,
so response times would reveal how much of a guess is right. We index by the SHA-256
of the token instead (timing then depends on the hash, which says nothing useful about
the token) and confirm the hit with :func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Generic, TypeVar

__all__ = ["TokenIndex", "new_token"]

T = TypeVar("T")


def new_token() -> str:
    """An opaque URL-safe token carrying 256 random bits."""
    return secrets.token_urlsafe(32)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenIndex(Generic[T]):
    """Maps tokens to values; :meth:`get` runs in time independent of the token's bytes."""

    def __init__(self) -> None:
        self._by_digest: dict[bytes, tuple[bytes, T]] = {}

    def __len__(self) -> int:
        return len(self._by_digest)

    def add(self, token: str, value: T) -> None:
        self._by_digest[_digest(token)] = (token.encode("utf-8", "surrogatepass"), value)

    def remove(self, token: str) -> None:
        self._by_digest.pop(_digest(token), None)

    def get(self, token: str) -> T | None:
        hit = self._by_digest.get(_digest(token))
        if hit is None:
            return None
        stored, value = hit
        if not hmac.compare_digest(stored, token.encode("utf-8", "surrogatepass")):
            return None
        return value
