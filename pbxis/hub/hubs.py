"""Several hubs (one per PBX) as one token space, for the stream transports.

Each PBX has its own :class:`~pbxis.hub.hub.Hub`; a stream URL names only a token. A
:class:`HubSet` finds the hub that issued it (each lookup is constant time; one per PBX)
and subscribes there, so a token can only ever read its own PBX's registration. With
one PBX the transports take that hub itself and this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .hub import DeliverFn, EndFn, Hub, RegistrationEnded, Subscription
from .registration import Registration

__all__ = ["HubSet"]


class HubSet:
    """The hubs of several PBXes, answering what the transports ask of one hub."""

    def __init__(self, hubs: Sequence[Hub] | Callable[[], Sequence[Hub]]) -> None:
        # a callable is read at each use: a collector renews a PBX's unit (and hub) when
        # it hands that PBX over (pbxis.service)
        self._hubs = hubs

    @property
    def hubs(self) -> Sequence[Hub]:
        return self._hubs() if callable(self._hubs) else self._hubs

    def by_token(self, token: str) -> Registration | None:
        for hub in self.hubs:
            registration = hub.by_token(token)
            if registration is not None:
                return registration
        return None

    def subscribe(
        self,
        registration: Registration,
        since: int | None,
        transport: str,
        deliver: DeliverFn,
        end: EndFn,
        **options: Any,
    ) -> Subscription:
        """The owning hub's subscribe; :class:`RegistrationEnded` when no hub holds it."""
        for hub in self.hubs:
            if hub.get(registration.agent) is registration:
                return hub.subscribe(registration, since, transport, deliver, end, **options)
        raise RegistrationEnded(registration.agent)

    def prepare(self, registration: Registration, since: int | None) -> Any:
        """The owning hub's :meth:`~pbxis.hub.hub.Hub.prepare` (in memory: at once)."""
        for hub in self.hubs:
            if hub.get(registration.agent) is registration:
                return hub.prepare(registration, since)
        from twisted.internet import defer

        return defer.succeed(None)  # ended meanwhile: subscribe() says so

    def lookup(self, token: str) -> Any:
        """A Deferred :meth:`by_token`. In memory every hub answers at once; a follower
        store (a web node) that does not know the token yet asks the shared store, and
        then every PBX's hub asks its own (the token does not say its PBX)."""
        from twisted.internet import defer

        registration = self.by_token(token)
        if registration is not None:
            return defer.succeed(registration)
        shared = [hub for hub in self.hubs if getattr(hub.store, "find_token", None) is not None]
        asking = [hub.lookup(token) for hub in shared]
        if not asking:
            return defer.succeed(None)
        d = defer.gatherResults(asking, consumeErrors=True)
        d.addCallback(lambda found: next((r for r in found if r is not None), None))
        d.addErrback(lambda f: f.value.subFailure if isinstance(f.value, defer.FirstError) else f)
        return d

    def stats(self) -> dict[str, Any]:
        """Agents and clients by transport, summed over the hubs."""
        agents = 0
        clients: dict[str, int] = {}
        for hub in self.hubs:
            stats = hub.stats()
            agents += stats.get("agents", 0)
            for transport, count in stats.get("clients", {}).items():
                clients[transport] = clients.get(transport, 0) + count
        return {"agents": agents, "clients": clients}
