"""Standard Webhooks signatures (standardwebhooks.com, spec 1.0.0), symmetric scheme.

A delivery carries three headers: ``webhook-id`` (the same on every retry of one event,
so a receiver can drop duplicates), ``webhook-timestamp`` (Unix seconds of *this*
attempt, so a receiver can refuse replays) and ``webhook-signature``: ``v1,`` followed by
the base64 HMAC-SHA256 of ``{id}.{timestamp}.{body}`` under the endpoint's secret.

Secrets are written as the spec serialises them: ``whsec_`` + base64 of 24 to 64 random
bytes. The HMAC key is the decoded bytes, not the text, which is the mistake most
hand-written receivers make; :func:`generate_secret` prints a fresh one.

The signature is checked against the spec's published vector in
``tests/webhooks/test_signing.py`` (standard-webhooks libraries' ``TestWebhookSign``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Final

__all__ = [
    "SECRET_PREFIX",
    "SignatureError",
    "decode_secret",
    "generate_secret",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX: Final = "whsec_"
MIN_SECRET_BYTES: Final = 24
MAX_SECRET_BYTES: Final = 64
DEFAULT_TOLERANCE: Final = 300.0
"""Seconds a receiver accepts between a timestamp and its own clock (the libraries' 5 min)."""


class SignatureError(ValueError):
    """A secret or a delivery that does not verify; ``str()`` says which part is wrong."""


def decode_secret(text: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret (the prefix is optional, as in the libraries)."""
    body = text.strip()
    if body.startswith(SECRET_PREFIX):
        body = body[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(
            "not a Standard Webhooks secret: expected whsec_ followed by base64 "
            "(generate one with: python -m pbxis.webhooks.signing)"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise SignatureError(
            f"the secret decodes to {len(key)} bytes; Standard Webhooks asks for "
            f"{MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes"
        )
    return key


def generate_secret(size: int = 32) -> str:
    """A fresh ``whsec_`` secret of ``size`` random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    if "." in msg_id:
        # The spec: ids must not contain '.', or two messages could sign alike.
        raise SignatureError(f"webhook id {msg_id!r} contains '.'")
    content = b"%s.%d.%s" % (msg_id.encode("utf-8"), timestamp, body)
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(key: bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }


def verify(
    key: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Raise :class:`SignatureError` unless ``headers`` sign ``body`` under ``key``.

    ``headers`` keys are lower-case. Several space-separated signatures may be sent
    (key rotation); one valid ``v1`` signature suffices.
    """
    try:
        msg_id = headers["webhook-id"]
        stamp = headers["webhook-timestamp"]
        offered = headers["webhook-signature"]
    except KeyError as missing:
        raise SignatureError(f"missing header {missing.args[0]}") from None
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError(f"webhook-timestamp {stamp!r} is not an integer") from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp too far from now (replayed or clock skew)")
    expected = sign(key, msg_id, timestamp, body)
    for candidate in offered.split():
        if hmac.compare_digest(candidate, expected):
            return
    raise SignatureError("no valid v1 signature")


if __name__ == "__main__":  # pragma: no cover - a tool for operators
    print(generate_secret())
