"""Prometheus metrics read from the layers' plain stats at scrape time.

The layers keep ordinary counters (``ami.stats``, ``hub.stats()``, the streams'
``stats()``, ``sync.last_rebuild``) and know nothing of Prometheus; this collector
turns them into metric families when ``/metrics`` is scraped. Only action latency
needs observing as it happens, through the AMI client's action listener into a
:class:`~prometheus_client.Histogram`. Each app gets its own
:class:`~prometheus_client.CollectorRegistry`, so tests never share global state.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .ami.factory import OTHER_EVENTS
from .tracker.filters import EVENT_NAMES

__all__ = [
    "KNOWN_EVENTS",
    "AmiTotals",
    "PbxCollector",
    "PbxisCollector",
    "RedisCollector",
    "build_registry",
    "pbx_registry",
]

KNOWN_EVENTS: frozenset[str] = frozenset(
    (
        *EVENT_NAMES,
        # Answers to the rebuild's list actions, and the events an unfiltered Asterisk 20
        # or 22 sends most (captures under shared/ami/).
        "QueueParams", "QueueMember", "QueueEntry", "QueueStatusComplete",
        "CoreShowChannel", "CoreShowChannelsComplete", "ExtensionStateListComplete",
        "Status", "StatusComplete", "VarSet", "Newchannel", "Newstate", "Newexten",
        "NewCallerid", "NewConnectedLine", "DeviceStateChange", "DialState", "HangupRequest",
        "SoftHangupRequest", "BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy",
        "LocalBridge", "BlindTransfer", "Cdr", "Cel", "MixMonitorStart", "MixMonitorStop",
        "QueueCallerAbandon", "QueueSummary", "QueueSummaryComplete", "UserEvent",
        "PeerStatus", "ContactStatus", "PeerEntry", "PeerlistComplete", "EndpointList",
        "EndpointListComplete", "DeviceStateListComplete", "RTCPSent", "RTCPReceived",
        "Reload", "SuccessfulAuth", "ChallengeSent", "Hold", "Unhold", "MusicOnHoldStart",
        "MusicOnHoldStop", "DTMFBegin", "DTMFEnd", "AgentRingNoAnswer", "AgentDump",
        "Registry", "VarSet",
    )
)  # fmt: skip
"""Event names that get their own ``pbxis_ami_events_total`` series; any other name an
AMI peer sends is counted under ``type="other"``, so no peer can make ``/metrics``
grow with names it invents."""

ACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _AMI(Protocol):
    @property
    def stats(self) -> Any: ...

    @property
    def connected(self) -> bool: ...

    def add_action_listener(self, listener: Callable[[str, float, str], None]) -> None: ...


class _StatsSource(Protocol):
    def stats(self) -> Mapping[str, Any]: ...


class PbxisCollector(Collector):
    """Reads the stats objects on every scrape; holds no counts of its own.

    Expected shapes (missing keys read as zero, so a layer can grow its stats freely):

    * ``ami.stats``: ``connects``, ``logins``, ``reconnects``, ``events_in``
      (event name -> count); ``ami.connected``;
    * ``hub.stats()``: ``{"agents": int, "clients": {transport: int}, ...}``;
    * ``streams.stats()``: ``{"events_out": {transport: int}, "clients": {transport: int}}``;
    * ``sync.last_rebuild``: ``None`` or an object with ``duration`` (seconds),
      ``actions`` and ``messages``.
    """

    def __init__(self, *, ami: _AMI, hub: _StatsSource, streams: _StatsSource | None, sync: Any) -> None:
        self._ami = ami
        self._hub = hub
        self._streams = streams
        self._sync = sync

    def collect(self) -> Iterator[Metric]:
        stats = self._ami.stats
        for name, attr, doc in (
            ("pbxis_ami_connects", "connects", "TCP connections made to Asterisk."),
            ("pbxis_ami_logins", "logins", "Successful AMI logins."),
            ("pbxis_ami_reconnects", "reconnects", "Connections made after losing a link."),
        ):
            yield CounterMetricFamily(name, doc, value=getattr(stats, attr, 0))

        events_in = CounterMetricFamily(
            "pbxis_ami_events", "AMI events received, by event name.", labels=["type"]
        )
        bounded: dict[str, int] = {}
        for event, count in dict(getattr(stats, "events_in", {})).items():
            label = event if event in KNOWN_EVENTS else OTHER_EVENTS
            bounded[label] = bounded.get(label, 0) + count
        for event, count in sorted(bounded.items()):
            events_in.add_metric([event], count)
        yield events_in

        yield GaugeMetricFamily(
            "pbxis_ami_up", "1 while the AMI link is up and logged in.", value=int(self._ami.connected)
        )

        hub = self._hub.stats()
        yield GaugeMetricFamily("pbxis_agents", "Registered agents.", value=hub.get("agents", 0))

        streams = self._streams.stats() if self._streams is not None else {}
        clients = GaugeMetricFamily(
            "pbxis_clients", "Connected stream clients, by transport.", labels=["transport"]
        )
        # The streams report every transport, zeros included; the hub only those in use.
        by_transport = streams.get("clients") or hub.get("clients", {})
        for transport, count in sorted(by_transport.items()):
            clients.add_metric([transport], count)
        yield clients
        events_out = CounterMetricFamily(
            "pbxis_events_out", "Events delivered to clients, by transport.", labels=["transport"]
        )
        for transport, count in sorted(streams.get("events_out", {}).items()):
            events_out.add_metric([transport], count)
        yield events_out

        rebuild = getattr(self._sync, "last_rebuild", None)
        if rebuild is not None:
            yield GaugeMetricFamily(
                "pbxis_rebuild_duration_seconds",
                "How long the last state rebuild after an AMI login took.",
                value=rebuild.duration,
            )
            yield GaugeMetricFamily(
                "pbxis_rebuild_actions", "AMI actions sent by the last rebuild.", value=rebuild.actions
            )
            yield GaugeMetricFamily(
                "pbxis_rebuild_messages",
                "AMI messages received for the last rebuild.",
                value=rebuild.messages,
            )


class RedisCollector(Collector):
    """The shared store's figures, read on every scrape (duck-typed: this module does not
    import the Redis client, which is an optional dependency).

    * ``link``: ``connected``, ``sent_commands``, ``sent_bytes``, ``failed_commands``
      (:class:`pbxis.store.redis_link.RedisLink`);
    * ``store.health()``: ``pendingEvents`` and ``status`` (``ok``, ``buffering``,
      ``degraded``); ``store.writes`` (:class:`pbxis.store.redis_store.RedisStore`);
    * ``node.stats()`` (:class:`pbxis.store.redis_node.RedisNode`): the read loop and
      the commands forwarded to, or executed for, other nodes.
    """

    STATES = ("ok", "buffering", "degraded")

    def __init__(
        self, link: Any = None, store: Any = None, node: Any = None, *,
        current: Callable[[], tuple[Any, Any, Any]] | None = None,
    ) -> None:  # fmt: skip
        #: ``current()``: the ``(link, store, node)`` of now, read at each scrape (a
        #: collector renews a PBX's Redis side when it hands that PBX over)
        self._current = current if current is not None else (lambda: (link, store, node))

    def collect(self) -> Iterator[Metric]:
        link, store, node = self._current()
        health = store.health() if store is not None else {}
        stats = node.stats() if node is not None else {}
        gauge, counter = GaugeMetricFamily, CounterMetricFamily
        yield gauge(
            "pbxis_redis_up", "1 while the Redis command connection is up.", value=int(link.connected)
        )
        yield counter(
            "pbxis_redis_commands_sent", "Commands sent on the command connection.", value=link.sent_commands
        )
        yield counter(
            "pbxis_redis_command_failures",
            "Commands refused (no connection) or unanswered in time.",
            value=link.failed_commands,
        )
        yield counter("pbxis_redis_pipeline_bytes", "Bytes of pipelined writes sent.", value=link.sent_bytes)
        yield counter(
            "pbxis_redis_writes",
            "Write pipelines Redis acknowledged.",
            value=getattr(store, "writes", 0),
        )
        yield gauge(
            "pbxis_redis_pending_events",
            "Events logged, not yet acknowledged by Redis (buffered).",
            value=health.get("pendingEvents", 0),
        )
        state = gauge("pbxis_redis_state", "The store's state: 1 for the current one.", labels=["state"])
        for name in self.STATES:
            state.add_metric([name], int(health.get("status") == name))
        yield state
        yield gauge(
            "pbxis_redis_reader_up",
            "1 while the read loop's connection is up.",
            value=int(bool(stats.get("reader_connected"))),
        )
        yield counter("pbxis_redis_reads", "Blocking reads (XREAD) answered.", value=stats.get("reads", 0))
        yield gauge(
            "pbxis_redis_streams_followed", "Streams the read loop follows.", value=stats.get("following", 0)
        )
        forwarded = counter(
            "pbxis_redis_commands_forwarded",
            "Commands sent to the collector, and those that failed (no collector, timeout).",
            labels=["outcome"],
        )
        for outcome, key in (
            ("sent", "forwarded"),
            ("no_collector", "no_collector"),
            ("timeout", "timed_out"),
        ):
            forwarded.add_metric([outcome], stats.get(key, 0))
        yield forwarded
        yield counter(
            "pbxis_redis_commands_executed",
            "Commands from other nodes run here.",
            value=stats.get("executed", 0),
        )
        yield gauge(
            "pbxis_redis_collector_lease",
            "1 while this node holds the collector lease.",
            value=int(bool(stats.get("holds_lease"))),
        )
        yield counter(
            "pbxis_redis_lease_takeovers",
            "Times this node took the AMI lease (standby to holder).",
            value=stats.get("takeovers", 0),
        )
        holder = gauge(
            "pbxis_redis_lease_holder",
            "1 for the node holding the AMI lease, as this node last saw it.",
            labels=["node"],
        )
        if stats.get("holder"):
            holder.add_metric([str(stats["holder"])], 1)
        yield holder
        yield gauge(
            "pbxis_redis_command_lag_seconds",
            "From the last command's arrival in Redis to its reading.",
            value=stats.get("command_lag", 0.0),
        )


class LeaseCollector(Collector):
    """Each PBX's AMI lease (``[redis]``), labelled ``pbx``: held here, taken over by
    this node, and its holder as this node last saw it (on a web node: as the holder
    published it). ``leases()`` gives ``(pbx, {"held", "takeovers", "holder"})``."""

    def __init__(self, leases: Callable[[], Sequence[tuple[str, dict[str, Any]]]]) -> None:
        self._leases = leases

    def collect(self) -> Iterator[Metric]:
        held = GaugeMetricFamily(
            "pbxis_pbx_lease_held", "1 while this node holds the PBX's AMI lease.", labels=["pbx"]
        )
        takeovers = CounterMetricFamily(
            "pbxis_pbx_lease_takeovers", "Times this node took the PBX's AMI lease.", labels=["pbx"]
        )
        holder = GaugeMetricFamily(
            "pbxis_pbx_lease_holder",
            "1 for the node holding the PBX's AMI lease, as this node last saw it.",
            labels=["pbx", "node"],
        )
        for pbx, lease in self._leases():
            held.add_metric([pbx], int(bool(lease.get("held"))))
            takeovers.add_metric([pbx], int(lease.get("takeovers", 0)))
            if lease.get("holder"):
                holder.add_metric([pbx, str(lease["holder"])], 1)
        yield from (held, takeovers, holder)


def build_registry(
    *, ami: _AMI, hub: _StatsSource, streams: _StatsSource | None, sync: Any
) -> CollectorRegistry:
    """A private registry with the collector and the action-latency histogram wired in."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PbxisCollector(ami=ami, hub=hub, streams=streams, sync=sync))
    latency = Histogram(
        "pbxis_ami_action_seconds",
        "Time from sending an AMI action to its answer, by action and outcome.",
        ["action", "outcome"],
        buckets=ACTION_BUCKETS,
        registry=registry,
    )

    def observe(name: str, seconds: float, outcome: str) -> None:
        latency.labels(name, outcome).observe(seconds)

    ami.add_action_listener(observe)
    return registry


class PbxSource(Protocol):
    """What :class:`PbxCollector` reads of one PBX (a :class:`~pbxis.engine.unit.PbxUnit`)."""

    name: str
    ami: Any
    hub: Any
    sync: Any


class PbxCollector(Collector):
    """The per-PBX series, labelled ``pbx``: link up, logins, reconnects, AMI events,
    agents and the last rebuild. ``pbxes`` is read at scrape time (a tenant's key is
    shown only its own)."""

    def __init__(self, pbxes: Callable[[], Sequence[PbxSource]]) -> None:
        self._pbxes = pbxes

    def collect(self) -> Iterator[Metric]:
        pbxes = self._pbxes()
        up = GaugeMetricFamily(
            "pbxis_pbx_up", "1 while the PBX's AMI link is up and logged in.", labels=["pbx"]
        )
        logins = CounterMetricFamily("pbxis_pbx_logins", "Successful AMI logins to the PBX.", labels=["pbx"])
        reconnects = CounterMetricFamily(
            "pbxis_pbx_reconnects", "Connections made to the PBX after losing its link.", labels=["pbx"]
        )
        events = CounterMetricFamily(
            "pbxis_pbx_ami_events", "AMI events received from the PBX.", labels=["pbx"]
        )
        agents = GaugeMetricFamily(
            "pbxis_pbx_agents", "Registered agents and supervisors of the PBX.", labels=["pbx"]
        )
        actions = GaugeMetricFamily(
            "pbxis_pbx_rebuild_actions", "AMI actions sent by the PBX's last rebuild.", labels=["pbx"]
        )
        duration = GaugeMetricFamily(
            "pbxis_pbx_rebuild_duration_seconds",
            "How long the PBX's last state rebuild took.",
            labels=["pbx"],
        )
        for pbx in pbxes:
            stats = pbx.ami.stats
            up.add_metric([pbx.name], int(bool(pbx.ami.connected)))
            logins.add_metric([pbx.name], getattr(stats, "logins", 0))
            reconnects.add_metric([pbx.name], getattr(stats, "reconnects", 0))
            events.add_metric([pbx.name], sum(dict(getattr(stats, "events_in", {})).values()))
            agents.add_metric([pbx.name], pbx.hub.stats().get("agents", 0))
            rebuild = getattr(pbx.sync, "last_rebuild", None)
            if rebuild is not None:
                actions.add_metric([pbx.name], rebuild.actions)
                duration.add_metric([pbx.name], rebuild.duration)
        yield from (up, logins, reconnects, events, agents, actions, duration)


class AmiTotals:
    """Several AMI links read as one by :class:`PbxisCollector` (its unlabelled series
    sum every PBX; the ``pbxis_pbx_*`` series split them)."""

    def __init__(self, links: Callable[[], list[Any]]) -> None:
        self._get = links
        #: action listeners, attached to each link once (also to a PBX's new link, after
        #: a collector handed that PBX over and stands by for it again)
        self._listeners: list[Callable[[str, float, str], None]] = []
        # the links themselves, weakly (not their ids: a freed link's id is often the
        # next one's, which would then never get the listeners)
        self._attached: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def _links(self) -> list[Any]:
        links = self._get()
        for link in links:
            if link not in self._attached:
                self._attached.add(link)
                for listener in self._listeners:
                    link.add_action_listener(listener)
        return links

    @property
    def connected(self) -> bool:
        return all(link.connected for link in self._links)

    @property
    def stats(self) -> Any:
        from collections import Counter
        from types import SimpleNamespace

        events: Counter[str] = Counter()
        for link in self._links:
            events.update(dict(getattr(link.stats, "events_in", {})))
        return SimpleNamespace(
            connects=sum(getattr(link.stats, "connects", 0) for link in self._links),
            logins=sum(getattr(link.stats, "logins", 0) for link in self._links),
            reconnects=sum(getattr(link.stats, "reconnects", 0) for link in self._links),
            events_in=events,
        )

    def add_action_listener(self, listener: Callable[[str, float, str], None]) -> None:
        self._listeners.append(listener)
        for link in self._get():
            if link in self._attached:
                link.add_action_listener(listener)
        self._links  # noqa: B018 (attaches it to the links not seen yet)


def pbx_registry(pbxes: Callable[[], Sequence[PbxSource]]) -> CollectorRegistry:
    """A registry of the per-PBX series only: what a key limited to some PBXes is shown."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PbxCollector(pbxes))
    return registry
