"""Which PBX a request addresses, and whether its caller may see it.

Every agent, queue and supervisor route exists twice (:func:`pbx_route`): as in the
contract (the PBX named ``default``) and under ``/pbx/{pbx}``. :meth:`Scope.pbx` turns
the path's PBX into a configured name the caller may see; a PBX that is not configured
and one hidden from the caller (a tenant's key, an agent's token of another PBX) are
the same 404, so a key cannot even learn which other PBXes exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from klein import Klein
from twisted.web.iweb import IRequest

from ..engine import DEFAULT_PBX, CallCenter
from .auth import Authenticator, Principal
from .errors import ApiError

__all__ = ["PBX_PREFIX", "Scope", "pbx_route"]

PBX_PREFIX = "/pbx/<pbx>"

F = TypeVar("F", bound=Callable[..., Any])


def pbx_route(app: Klein, path: str, methods: list[str]) -> Callable[[F], F]:
    """Route ``path`` (``pbx`` not given: ``None``) and ``/pbx/<pbx>`` + ``path`` to one handler."""

    def decorate(handler: F) -> F:
        app.route(path, methods=methods)(handler)
        app.route(PBX_PREFIX + path, methods=methods, endpoint=f"{handler.__name__}_pbx")(handler)
        return handler

    return decorate


class Scope:
    """The PBXes of a call center as callers see them."""

    def __init__(self, center: CallCenter, auth: Authenticator) -> None:
        self._center = center
        self._auth = auth

    def crm(self, request: IRequest, pbx: str | None) -> str:
        """An API key that sees the PBX: its name (else 401, 403 or 404)."""
        return self.pbx(self._auth.require_crm(request), pbx)

    def agent(self, request: IRequest, agent: str, pbx: str | None) -> tuple[Principal, str]:
        """An API key that sees the PBX, or the token of ``agent`` on that PBX."""
        principal = self._auth.require_agent(request, agent)
        where = self.pbx(principal, pbx)
        if not principal.may_act_for(agent, where):
            raise ApiError(
                403, "forbidden", "this stream token belongs to another agent; use that agent's token"
            )
        return principal, where

    def pbx(self, principal: Principal, pbx: str | None) -> str:
        """The PBX a route addresses (``None``: unprefixed, ``default``), or a 404."""
        known = self._center.pbxes
        if pbx is None:
            if DEFAULT_PBX not in known or not principal.sees(DEFAULT_PBX):
                raise ApiError(
                    404,
                    "unknown_pbx",
                    "no PBX named default: address the PBX in the path, /pbx/{pbx}/agents/... "
                    "(the names are in [[pbx]] of the config)",
                )
            return DEFAULT_PBX
        if pbx not in known or not principal.sees(pbx):
            raise ApiError(
                404, "unknown_pbx", f"no PBX named {pbx[:40]!r}; use a name of [[pbx]] in the config"
            )
        return pbx

    def visible(self, principal: Principal | None) -> list[str]:
        """The PBXes ``principal`` sees (``None``, an anonymous caller: every PBX unless
        some are hidden from someone, i.e. ``[[tenants]]`` exist: then none)."""
        pbxes = self._center.pbxes
        if principal is None:
            return [] if self._center.config.tenants else list(pbxes)
        return [p for p in pbxes if principal.sees(p)]
