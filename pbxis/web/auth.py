"""Who is calling: the CRM (an API key) or one agent's browser (its stream token).

Both arrive as ``Authorization: Bearer <secret>``. API keys are compared with
:func:`hmac.compare_digest` against every configured key, so neither the match nor
its position leaks through timing; stream tokens are looked up by the hub in
constant time. No secret is ever logged or echoed in an error.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.web.iweb import IRequest

from .errors import ApiError

__all__ = ["Authenticator", "Principal"]


class TokenLookup(Protocol):
    def by_token(self, token: str) -> Any | None:
        """The registration (with ``.agent``) owning ``token``, or ``None``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``agent`` is ``None`` for the CRM (API key or open API)."""

    agent: str | None = None

    @property
    def is_crm(self) -> bool:
        return self.agent is None

    def may_act_for(self, agent: str) -> bool:
        return self.agent is None or self.agent == agent


_CRM = Principal()


def _unauthorized(message: str, *, invalid: bool) -> ApiError:
    challenge = 'Bearer realm="pbxis"'
    if invalid:
        challenge += ', error="invalid_token"'
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})


class Authenticator:
    """Turns a request's ``Authorization`` header into a :class:`Principal`.

    With no API keys configured the API is open: every caller is the CRM (the
    service warns about it at start).
    """

    def __init__(self, api_keys: Sequence[str], tokens: TokenLookup) -> None:
        self._keys = [key.encode("utf-8") for key in api_keys if key]
        self._tokens = tokens

    @property
    def open(self) -> bool:
        return not self._keys

    def authenticate(self, request: IRequest) -> Principal:
        """The caller, or :class:`ApiError` 401 for missing or unknown credentials."""
        if self.open:
            return _CRM
        secret = _bearer(request)
        if secret is None:
            raise _unauthorized(
                "send Authorization: Bearer <api key> (or the agent's stream token)",
                invalid=False,
            )
        if self._is_api_key(secret):
            return _CRM
        registration = self._tokens.by_token(secret)
        if registration is not None:
            return Principal(agent=registration.agent)
        raise _unauthorized("the bearer credential is not a valid API key or stream token", invalid=True)

    def require_crm(self, request: IRequest) -> Principal:
        """Only an API key will do (registering agents, every queue, metrics)."""
        principal = self.authenticate(request)
        if not principal.is_crm:
            raise ApiError(403, "forbidden", "a stream token cannot do this; use an API key")
        return principal

    def require_agent(self, request: IRequest, agent: str) -> Principal:
        """An API key, or the stream token of ``agent`` itself."""
        principal = self.authenticate(request)
        if not principal.may_act_for(agent):
            raise ApiError(
                403, "forbidden", "this stream token belongs to another agent; use that agent's token"
            )
        return principal

    def _is_api_key(self, secret: str) -> bool:
        candidate = secret.encode("utf-8")
        found = False
        for key in self._keys:
            # No early exit: the time taken does not depend on which key matched.
            found |= hmac.compare_digest(candidate, key)
        return found


def _bearer(request: IRequest) -> str | None:
    raw = request.getHeader(b"authorization")
    if raw is None:
        return None
    value = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    scheme, _, secret = value.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return None
    return secret
