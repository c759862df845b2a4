"""One PBX of a call center: its AMI link, tracker, sync, hub, supervisors and commands.

A :class:`~pbxis.engine.CallCenter` holds one :class:`PbxUnit` per configured PBX
(``[[pbx]]`` tables, or the lone ``[ami]`` named ``default``) and routes every call to
the unit its ``pbx`` names. Nothing is shared between two units but the reactor, the
``[originate]`` policy text and the webhooks: registrations, tokens, logs and their byte
budget, tracked state and the originate guard's counters are each PBX's own, so agent
1001 on ``east`` and 1001 on ``west`` are two agents that never see each other's
events, and one PBX's outage or flood touches no other's streams.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger

from pbxis.ami.client import AMIClientFactory, link_from_config
from pbxis.call_control import CallControl
from pbxis.commands import Commands
from pbxis.config import Config, PbxConfig
from pbxis.events import AgentEvent
from pbxis.hub import Hub
from pbxis.hub.store import HubStore
from pbxis.supervisors import is_supervisor_key
from pbxis.sync import StateSync
from pbxis.tracker import Tracker

from .policy import OriginateGuard
from .supervision import Supervision

__all__ = ["PbxUnit"]

log = Logger(namespace="pbxis.engine")


class PbxUnit:
    """Everything of one PBX. ``config`` is the call center's with ``ami`` and ``agents``
    replaced by this PBX's, so the parts below read their settings as they always did."""

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        pbx: PbxConfig,
        now_ms: Callable[[], int],
        *,
        link: AMIClientFactory | None = None,
        store: HubStore | None = None,
    ) -> None:
        self.name = pbx.name
        self.reactor = reactor
        self.config = config = dataclasses.replace(config, ami=pbx.ami, agents=pbx.agents)
        self.now_ms = now_ms
        agents = pbx.agents
        # queue_events: a queue's caller count is one event, not one per watching agent
        self.tracker = Tracker(
            interface_template=agents.interface, hint_context=agents.hint_context, queue_events=True
        )
        self.hub = Hub(
            reactor,
            grace_period=agents.grace_period,
            snapshot=self._snapshot,
            max_log=agents.max_log,
            max_log_bytes=agents.max_log_bytes,
            max_clients=agents.max_clients,
            snapshot_window=agents.snapshot_window,
            queue_tick=agents.queue_tick,
            store=store,
            now_ms=now_ms,
            pbx=pbx.name,
        )
        self.hub.on_expired = self._expired
        # A durable store knows the last published state: after a restart the tracker's
        # rebuild then publishes only what really changed (pbxis.store.redis_store).
        only_changes = getattr(store, "only_changes", None)
        self.publish: Callable[[list[Any]], None] = (
            self.hub.publish
            if only_changes is None
            else (lambda events: self.hub.publish(only_changes(events)))
        )
        self.ami = link if link is not None else link_from_config(pbx.ami, clock=reactor)
        self.sync = StateSync(self.ami, self.tracker, self.publish, clock=reactor, now_ms=now_ms)
        self.ami.add_observer(self.sync)
        self.supervision = Supervision(reactor, config, self.hub, self.ami, self.sync, now_ms, self.publish)
        self.commands = Commands(self.ami, self.tracker, agents)
        self.guard = OriginateGuard(reactor, config.originate)
        self.call_control = CallControl(
            self.commands,
            self.tracker,
            self.hub.publish,
            now_ms,
            transfer_context=agents.transfer_context or agents.originate_context,
            spy_context=agents.spy_context,
        )
        self.started = False
        #: with a shared store (Redis): this PBX's health as this node should report it
        #: (its holder's view when another node holds the link, with who holds it); set by
        #: the daemon, ``None`` in one process
        self.health_view: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"<PbxUnit {self.name}>"

    @property
    def connected(self) -> bool:
        """True while this PBX's AMI link is up and logged in."""
        return bool(self.ami.connected)

    @property
    def ready(self) -> bool:
        """Logged in, and the state rebuilt after that login."""
        return self.connected and bool(self.sync.ready)

    def start(self, endpoint: IStreamClientEndpoint | None) -> None:
        """Connect (to this PBX's ``[ami]`` unless ``endpoint``), reconnecting until stopped."""
        if endpoint is None:
            from twisted.internet.endpoints import clientFromString

            endpoint = clientFromString(self.reactor, self.config.ami.client_endpoint)
        self.started = True
        self.ami.connect(endpoint)

    def close(self, reason: str) -> None:
        """End every stream of this PBX and stop the supervisors' timers."""
        self.hub.close_all(reason)
        self.supervision.stop()

    def stop(self) -> Deferred[None] | None:
        """Log off from this PBX (``None`` if it was never started)."""
        if not self.started:
            return None
        self.started = False
        return self.ami.stop()

    def health(self) -> dict[str, Any]:
        """This PBX's part of ``/health``: link, last event age, sync, registrations."""
        stats = self.ami.stats
        last_event = stats.last_event_time
        hub_stats = self.hub.stats()
        local = {
            "connected": self.connected,
            "state": str(stats.state),
            "lastEventAge": None
            if last_event is None
            else round(max(0.0, self.reactor.seconds() - last_event), 3),
            "reconnects": stats.reconnects,
            "synced": bool(self.sync.ready),
            "agents": hub_stats.get("agents", 0) - self.supervision.count,
            "supervisors": self.supervision.count,
            "clients": dict(hub_stats.get("clients", {})),
        }
        return local if self.health_view is None else self.health_view(local)

    def _snapshot(self, key: str) -> list[AgentEvent]:
        if is_supervisor_key(key):
            return self.supervision.snapshot(key)
        return self.tracker.snapshot(key, self.now_ms())

    def _expired(self, agent: str) -> None:
        if is_supervisor_key(agent):
            self.supervision.expired(agent)
            return
        log.info(
            "agent {agent} of PBX {pbx}: no client for the grace period; registration ended",
            agent=agent,
            pbx=self.name,
        )
        self.tracker.unregister(agent)
        self.guard.forget(agent)
