"""CORS for the configured CRM origins, shared by every route and the WebSocket check.

Browsers call pbxis from the CRM's origin; only the origins in config may read the
answers. ``"*"`` in the list allows any origin (the demo); an empty list allows none
(same-origin pages, such as pbxis's own client page, need no CORS at all).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from twisted.web.iweb import IRequest

__all__ = ["ALLOWED_HEADERS", "ALLOWED_METHODS", "apply_cors", "origin_allowed", "same_origin"]

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """True when ``origin`` (the Origin header; ``None`` = not a cross-origin call) may use us."""
    if origin is None:
        return True
    return "*" in allowed or origin in allowed


def same_origin(origin: str | None, host: str | None) -> bool:
    """True when ``origin`` names the host the request was sent to (its ``Host`` header).

    Browsers send ``Origin`` on every WebSocket handshake, even from pbxis's own page;
    that page must work without an ``allowed_origins`` entry.
    """
    if not origin or not host:
        return False
    return urlsplit(origin).netloc.lower() == host.strip().lower()


def apply_cors(request: IRequest, allowed: Sequence[str], *, preflight: bool = False) -> bool:
    """Add the CORS answer headers for an allowed Origin; return whether it was allowed.

    Called on every response. A disallowed origin gets no CORS headers, so the browser
    withholds the answer from the calling page; the request itself is not refused here.
    """
    raw = request.getHeader(b"origin")
    request.setHeader(b"vary", b"Origin")
    if raw is None:
        return True
    origin = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    if not origin_allowed(origin, allowed):
        return False
    request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
    request.setHeader(b"access-control-expose-headers", b"Retry-After")
    if preflight:
        request.setHeader(b"access-control-allow-methods", ALLOWED_METHODS.encode())
        request.setHeader(b"access-control-allow-headers", ALLOWED_HEADERS.encode())
        request.setHeader(b"access-control-max-age", b"600")
    return True
