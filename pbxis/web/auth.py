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
    def pbx_of_token(self, token: str) -> tuple[str, Any] | None:
        """The PBX and registration (with ``.agent``) owning ``token``, or ``None``."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``agent`` is ``None`` for the CRM (API key or open API);
    an agent's token has its ``pbx``. ``pbxes``: the PBXes a tenant's key may see
    (``None``: every one)."""

    agent: str | None = None
    pbx: str | None = None
    pbxes: frozenset[str] | None = None

    @property
    def is_crm(self) -> bool:
        return self.agent is None

    @property
    def limited(self) -> bool:
        """Whether some PBX may be hidden from this caller (a tenant's key or a token)."""
        return self.pbxes is not None or self.agent is not None

    def sees(self, pbx: str) -> bool:
        """Whether ``pbx`` exists for this caller (any other answers as unknown: 404)."""
        if self.agent is not None:
            return pbx == self.pbx
        return self.pbxes is None or pbx in self.pbxes

    def may_act_for(self, agent: str, pbx: str | None = None) -> bool:
        if self.agent is None:
            return True
        return self.agent == agent and (pbx is None or pbx == self.pbx)


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

    def __init__(
        self,
        api_keys: Sequence[str],
        tokens: TokenLookup,
        *,
        tenants: Sequence[tuple[Sequence[str], Sequence[str]]] = (),
    ) -> None:
        """``tenants``: ``(api keys, PBX names)`` pairs, keys that see those PBXes only."""
        self._keys: list[tuple[bytes, Principal]] = [(key.encode("utf-8"), _CRM) for key in api_keys if key]
        for keys, pbxes in tenants:
            scoped = Principal(pbxes=frozenset(pbxes))
            self._keys.extend((key.encode("utf-8"), scoped) for key in keys if key)
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
        principal = self._api_key(secret)
        if principal is not None:
            return principal
        found = self._tokens.pbx_of_token(secret)
        if found is not None:
            pbx, registration = found
            return Principal(agent=registration.agent, pbx=pbx)
        raise _unauthorized("the bearer credential is not a valid API key or stream token", invalid=True)

    def optional(self, request: IRequest) -> Principal | None:
        """The caller if it sent credentials that are valid, else ``None`` (public routes
        that show more to whom they know: ``/health``)."""
        if self.open:
            return _CRM
        if _bearer(request) is None:
            return None
        try:
            return self.authenticate(request)
        except ApiError:
            return None

    def require_crm(self, request: IRequest) -> Principal:
        """Only an API key will do (registering agents, every queue, metrics)."""
        principal = self.authenticate(request)
        if not principal.is_crm:
            raise ApiError(403, "forbidden", "a stream token cannot do this; use an API key")
        return principal

    def require_agent(self, request: IRequest, agent: str, pbx: str | None = None) -> Principal:
        """An API key, or the stream token of ``agent`` itself (of PBX ``pbx``)."""
        principal = self.authenticate(request)
        if not principal.may_act_for(agent, pbx):
            raise ApiError(
                403, "forbidden", "this stream token belongs to another agent; use that agent's token"
            )
        return principal

    def _api_key(self, secret: str) -> Principal | None:
        candidate = secret.encode("utf-8")
        found: Principal | None = None
        for key, principal in self._keys:
            # No early exit: the time taken does not depend on which key matched.
            if hmac.compare_digest(candidate, key):
                found = principal
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
