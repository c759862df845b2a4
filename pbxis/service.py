"""The daemon: a CallCenter, its web site and (demo) the simulator, as one :class:`MultiService`.

The twistd plugin only calls :func:`make_service`. Order matters at start: the web site
listens before the AMI link is up (``/health`` answers 503 until it is), and in demo
mode the simulated Asterisk listens before the AMI client connects to the port it got.
At stop the call center goes first: streams end with the documented "server shutdown"
(clients resume later), then the AMI link is logged off, then the port closes.
"""

from __future__ import annotations

import gc
import json
import secrets
from collections.abc import Callable
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Site
from zope.interface import implementer

from .ami.client import AMIClientFactory
from .config import DEFAULT_PBX, Config, ConfigError, PbxConfig
from .engine import CallCenter
from .gcpolicy import start_collector_policy
from .hub import Hub
from .sync import StateSync
from .tracker import Tracker
from .web.app import build_app
from .web.site import build_site

__all__ = ["PbxisService", "check_supported", "make_service"]

log = Logger(namespace="pbxis")


class _SimulatorService(Service):
    """The embedded simulated Asterisk of the demo, listening before pbxis connects."""

    def __init__(self, reactor: Any, config: Config) -> None:
        from .simulator import Simulator, SimulatorConfig
        from .simulator.personality import personality

        sim = config.simulator
        self.simulator = Simulator(
            SimulatorConfig.demo(
                agents=list(sim.agents),
                queues=list(sim.queues),
                logged_in=sim.logged_in,
                personality=personality(sim.asterisk, sim.tech or None),
            ),
            clock=reactor,
            seed=sim.seed if sim.seed is not None else secrets.randbits(63),  # a different day each time
            username=config.ami.username,
            secret=config.ami.secret,
        )
        self._reactor = reactor
        self._listen = sim.listen
        self._rate = sim.calls_per_minute
        self._talk = sim.talk_time
        self.port: IListeningPort | None = None
        self.ready: defer.Deferred[IListeningPort] = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        d = serverFromString(self._reactor, self._listen).listen(self.simulator.factory)

        def listening(port: IListeningPort) -> IListeningPort:
            self.port = port
            host = _address(port)
            log.info("demo: simulated Asterisk listening on {host}:{port}", host=host.host, port=host.port)
            if self._rate > 0:
                self.simulator.start_load(rate_per_minute=self._rate, talk_time=self._talk)
            self.ready.callback(port)
            return port

        d.addCallback(listening)
        d.addErrback(self.ready.errback)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.simulator.stop_load()
        return _stop_listening(self.port)


class _CallCenterService(Service):
    """Starts the call center's AMI link with the daemon; at stop ends streams, logs off."""

    def __init__(
        self, center: CallCenter, endpoint: Callable[[], IStreamClientEndpoint | None] | None
    ) -> None:
        self.center = center
        self._endpoint = endpoint

    def startService(self) -> None:
        super().startService()
        if self._endpoint is not None:  # None: a web node, no AMI link
            self.center.start(self._endpoint())

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.center.disconnect()


class _WebService(Service):
    """Listens for HTTP on start; a port that cannot be bound stops the start, loudly.

    (Twisted's ``StreamServerEndpointService`` would do, but only its private
    ``_raiseSynchronously`` makes a bind failure an error of ``startService``, and only
    its private ``_waitingForPort`` tells the port.)
    """

    def __init__(self, endpoint: IStreamServerEndpoint, site: Site) -> None:
        self._endpoint = endpoint
        self._site = site
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        failures: list[Failure] = []
        d = self._endpoint.listen(self._site)
        d.addCallbacks(self._listening, failures.append)
        if failures:  # a plain TCP endpoint binds at once: report it as the start's error
            super().stopService()
            failures[0].raiseException()

    def _listening(self, port: IListeningPort) -> None:
        self.port = port

    def stopService(self) -> Deferred[None]:
        super().stopService()
        port, self.port = self.port, None
        return _stop_listening(port)


class _RedisService(Service):
    """The Redis link and store: connects and loads on start (``loaded`` fires), writes
    what is pending on stop (a few seconds at most), then closes the link."""

    def __init__(self, config: Config, reactor: Any, pbx: str = DEFAULT_PBX, spread: Any = None) -> None:
        from .store.redis_keys import pbx_keys
        from .store.redis_lease import Lease
        from .store.redis_link import RedisLink
        from .store.redis_node import RedisNode
        from .store.redis_store import COLLECTOR_FLUSH_DELAY, FLUSH_DELAY, RedisStore

        assert config.redis is not None
        #: the PBX this service holds or stands by for (each has its own keys and lease)
        self.pbx = pbx
        self._label = "" if len(config.pbxes) == 1 else f" (PBX {pbx})"
        self._keys = keys = pbx_keys(config.redis.key_prefix, pbx)
        self.link = RedisLink(config.redis, reactor, name=f"commands{self._label}")
        #: the read loop and the commands this node runs or sends (pbxis.store.redis_node)
        self.node = RedisNode(config, self.link, reactor, keys, self._label)
        agents = _pbx_config(config, pbx).agents
        self.store = RedisStore(
            self.link,
            keys,
            reactor,
            max_log=agents.max_log,
            max_log_bytes=agents.max_log_bytes,
            keep_closed_ms=int(agents.grace_period * 1000),
            grace_ms=int(agents.grace_period * 1000),
            outage_seconds=config.redis.outage_buffer_seconds,
            outage_events=config.redis.outage_buffer_events,
            flush_delay=COLLECTOR_FLUSH_DELAY if config.node.role == "collector" else FLUSH_DELAY,
        )
        self.store.node = self.node
        self.loaded: Deferred[int] = Deferred()
        self._reactor = reactor
        self._config = config
        #: how this PBX's lease spreads with the others' over the nodes (several PBXes)
        self.spread = spread
        #: the AMI lease (pbxis.store.redis_lease): this node loads, writes, connects to
        #: Asterisk and runs commands only while it holds it; until then it stands by
        self.lease = Lease(
            self.link, keys.collector, self.node.name, reactor, config.node.lease_time,
            on_won=self._won, on_lost=self._lost,
            may_take=self._may_take,
        )  # fmt: skip
        #: the holder's view of this PBX's link, as published in Redis (pbxis.store.redis_status)
        from .store.redis_status import StatusReader

        self.status = StatusReader(self.link, keys, reactor, config.node.lease_time / 3)
        self.status_writer: Any = None
        #: pbxStatus false to this PBX's agents when nobody held it for lease_time
        self.vacancy = _vacancy(config, self.link, keys, reactor, pbx)
        self.store.writable = self.lease.valid
        #: called with the reason when the lease is lost (the daemon drops its AMI link)
        self.on_lost: list[Callable[[str], object]] = []
        #: webhook endpoints' outboxes (pbxis.webhooks.redis_outbox), loaded with the store
        self.outboxes: list[Any] = []
        self.on_stop: list[Callable[[], object]] = []

    def _may_take(self, free_ticks: int) -> bool:
        return self.spread is None or bool(self.spread.may_take(self.pbx, free_ticks))

    def outbox(self, webhook: Any) -> Any:
        """The engine's webhook outbox factory: durable in Redis, loaded on start."""
        from .webhooks.redis_outbox import RedisOutbox

        box = RedisOutbox(self.link, self._keys, webhook.name, self._reactor)
        self.outboxes.append(box)
        return box

    def startService(self) -> None:
        super().startService()
        self.link.start()
        self.node.connect()
        log.info(
            "Redis: connecting to {url}; node {node} stands by for the AMI lease{pbx}",
            url=self.link.config.safe_url, node=self.node.name, pbx=self._label,
        )  # fmt: skip
        self.lease.start()
        self.status.start()
        self.vacancy.start()

    def _won(self) -> None:
        """The lease is this node's: claim the logs, load the state, then (the daemon)
        connect to Asterisk and rebuild, emitting only real changes."""
        if self.spread is not None:
            self.spread.won(self.pbx)
        log.info(
            "Redis: node {node} holds the AMI lease{pbx}; taking over", node=self.node.name, pbx=self._label
        )
        defer.ensureDeferred(self._load()).addCallbacks(self.loaded.callback, self._failed)

    def _lost(self, reason: str) -> None:
        """Step down: no write, no AMI socket, no command from now on; the process ends
        (its supervisor starts it again, as a standby: README, "Standby and takeover")."""
        log.error(
            "Redis: node {node} lost the AMI lease{pbx} ({reason}); dropping the AMI link, writing "
            "nothing more and stepping down", node=self.node.name, reason=reason, pbx=self._label,
        )  # fmt: skip
        for hook in self.on_lost:
            try:
                hook(reason)
            except Exception:
                log.failure("stepping down")

    def standby(self) -> dict[str, Any] | None:
        """``/health``'s body while this node stands by (``None`` once it serves)."""
        if self.loaded.called and self.lease.lost is None:
            return None
        lost = self.lease.lost
        return {
            "status": "standby" if lost is None else "stepped_down",
            "node": self.node.name,
            "lease": self.lease_view(),
            "redis": {"connected": self.link.connected, "url": self.link.config.safe_url},
        }

    def lease_view(self) -> dict[str, Any]:
        """This PBX's lease as ``/health`` shows it: who holds it, whether this node does."""
        return {"holder": self.lease.holder, "held": self.lease.valid(), "lost": self.lease.lost}

    def health_view(self, local: dict[str, Any]) -> dict[str, Any]:
        """A PBX's health on a node that may not hold it (PbxUnit.health_view): the local
        link while this node holds it, else the holder's published view."""
        from .store.redis_status import remote_health

        lease = self.lease_view()
        if lease["held"]:
            return {**local, "holder": self.node.name, "lease": lease}
        return {**local, **remote_health(self.status), "lease": lease}

    async def _load(self) -> int:
        while True:
            if self.lease.lost is not None:
                raise RuntimeError(f"the AMI lease was lost while loading: {self.lease.lost}")
            await self.link.when_connected()
            try:
                loaded = await self.store.load()
                for box in self.outboxes:  # pending deliveries go before any new one
                    if not box.loaded:
                        await box.load()
                await self.node.start()  # commands: run them (the lease) or send them
                return loaded
            except Exception as e:  # Redis went away mid-load: wait for it again
                log.warn("Redis: loading the stored state failed ({e}); retrying", e=e)
                from twisted.internet.task import deferLater

                await deferLater(self._reactor, 1.0, lambda: None)

    def _failed(self, failure: Failure) -> None:
        if self.lease.lost is None:
            log.failure("Redis: cannot load the stored state", failure)
        self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        for stop in self.on_stop:
            stop()
        self.status.stop()
        self.vacancy.stop()
        if self.status_writer is not None:
            self.status_writer.stop()
        if self.lease.lost is not None or not self.loaded.called:
            # never held (a standby) or stepped down: nothing of this node may be written
            d0: Deferred[Any] = defer.ensureDeferred(self.node.stop())
            d0.addCallback(lambda _: self.lease.stop())
            d0.addCallback(lambda _: self.link.stop())
            return d0.addCallback(lambda _: None)
        drains = [self.store.drain(timeout=3.0), *(box.drain(timeout=3.0) for box in self.outboxes)]
        d: Deferred[Any] = defer.gatherResults(drains)
        d.addCallback(lambda _: defer.ensureDeferred(self.node.stop()))
        d.addCallback(lambda _: self.link.stop())
        return d.addCallback(lambda _: None)

    def share(self, center: CallCenter) -> Deferred[None]:
        """Once loaded: what makes this node the writer for the others (issue #15) —
        registrations made on web nodes, their questions, grace periods in Redis."""
        from .store.redis_feed import RegistrationFeed
        from .store.redis_grace import Liveness
        from .store.redis_queries import QueryServer
        from .store.redis_status import StatusWriter
        from .store.redis_vacancy import rebuilt

        pbx = self.pbx
        unit = center.unit(pbx)

        def after_rebuild(full: bool) -> None:
            # this PBX has a holder again, rebuilt: the next vacancy may say so once more
            if full and self.lease.valid():
                rebuilt(self.link, self._keys, self.node.name).addErrback(lambda f: None)

        unit.sync.add_rebuild_listener(after_rebuild)
        hub, store = unit.hub, self.store
        self.status_writer = StatusWriter(
            self.link, self._keys, self.node.name, self._reactor, self._config.node.lease_time,
            health=unit.health, holds=lambda: self.lease.valid() and unit.started,
        )  # fmt: skip

        def current(agent: str) -> tuple[str, Any, Any] | None:
            registration = hub.get(agent)
            if registration is None:
                return None
            # a supervisor's queues are its board's (kept by the store, RedisStore.watch)
            return registration.token, store.watched(agent) or registration.queues, registration.name

        reader = self.node.reader
        self.feed = RegistrationFeed(
            self.link, reader, self._keys, self._reactor,
            current=current, load=store._load_agent,
            register=lambda agent, queues, name: _register_any(center, agent, queues, name, pbx),
            unregister=lambda agent: _unregister_any(center, agent, pbx),
            serving=self.lease.valid,
        )  # fmt: skip
        # a node past its lease (paused, resuming) answers no question, ends no registration
        self.queries = QueryServer(
            self.link, reader, self._keys, lambda k, a: _answer(center, k, a, pbx), serving=self.lease.valid
        )
        self.liveness = Liveness(
            self.link, self._keys, self._reactor,
            grace_ms=store.grace_ms, listening=hub.listening, expire=hub.expire, serving=self.lease.valid,
        )  # fmt: skip
        self.on_stop.append(self.liveness.stop)

        async def start() -> None:
            await self.feed.start()
            await self.queries.start()
            self.liveness.start()
            self.status_writer.start()

        return defer.ensureDeferred(start())


class _RedisWebService(Service):
    """A web node's Redis side (``[node] role = "web"``): the link, the node's one read
    loop, the follower store (:mod:`pbxis.store.redis_follower`) and its grace refresh.
    ``loaded`` fires once every registration is known (then the node listens)."""

    def __init__(self, config: Config, reactor: Any, pbx: str = DEFAULT_PBX) -> None:
        from .store.redis_follower import FollowerStore
        from .store.redis_keys import pbx_keys
        from .store.redis_link import RedisLink
        from .store.redis_node import RedisNode
        from .store.redis_queries import QueryClient
        from .store.redis_status import StatusReader

        assert config.redis is not None
        self.pbx = pbx
        keys = pbx_keys(config.redis.key_prefix, pbx)
        self.keys = keys
        self._label = "" if len(config.pbxes) == 1 else f" (PBX {pbx})"
        self.link = RedisLink(config.redis, reactor, name=f"commands{self._label}")
        #: the node's one read loop and the commands it sends (pbxis.store.redis_node)
        self.node = RedisNode(config, self.link, reactor, keys, self._label)
        self.relay = self.node.send()
        self.reader = self.node.reader
        self.queries = QueryClient(self.link, self.reader, keys, self.node.name, reactor)
        #: the holder's view of this PBX's link (``/health/pbx/{pbx}`` here)
        self.status = StatusReader(self.link, keys, reactor, config.node.lease_time / 3)
        #: pbxStatus false to this PBX's agents when nobody held it for lease_time (a web
        #: node may be the only one left to notice)
        self.vacancy = _vacancy(config, self.link, keys, reactor, pbx)
        agents = _pbx_config(config, pbx).agents
        self.store = FollowerStore(
            self.link, self.reader, self.queries, keys, reactor,
            grace_ms=int(agents.grace_period * 1000),
            max_log=agents.max_log, max_log_bytes=agents.max_log_bytes,
        )  # fmt: skip
        self.loaded: Deferred[int] = Deferred()
        self.liveness: Any = None
        self._reactor = reactor

    def health_view(self, local: dict[str, Any]) -> dict[str, Any]:
        """This PBX's health here (PbxUnit.health_view): its holder's published view."""
        from .store.redis_status import remote_health

        return {**local, **remote_health(self.status)}

    def attach(self, hub: Any) -> None:
        """The hub this store serves: its calls for what the read loop brings."""
        from .store.redis_grace import Liveness

        self.store.on_registered = lambda agent, queues, name: hub.register(agent, queues, name)
        self.store.on_appended = hub.appended
        self.store.on_ended = hub.ended
        self.liveness = Liveness(
            self.link,
            self.keys,
            self._reactor,
            grace_ms=self.store.grace_ms,
            listening=hub.listening,
            sweep=self.store.sweep,
        )

    def startService(self) -> None:
        super().startService()
        self.link.start()
        self.node.connect()
        url = self.link.config.safe_url
        log.info("Redis (web node {node}): connecting to {url}", node=self.node.name, url=url)
        self.status.start()
        self.vacancy.start()
        defer.ensureDeferred(self._load()).addCallbacks(self.loaded.callback, self.loaded.errback)

    async def _load(self) -> int:
        while True:
            await self.link.when_connected()
            try:
                n = await self.store.load()
                await self.queries.start()
                await self.node.start()  # the replies to the commands it sends
                return n
            except Exception as e:
                log.warn("Redis: loading the registrations failed ({e}); retrying", e=e)
                from twisted.internet.task import deferLater

                await deferLater(self._reactor, 1.0, lambda: None)

    def follow(self) -> int:
        """Registrations into the hub; then the read loop and the grace refresh run."""
        n = self.store.adopt()
        if self.liveness is not None:
            self.liveness.start()
        return n

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.status.stop()
        self.vacancy.stop()
        if self.liveness is not None:
            self.liveness.stop()
        d: Deferred[Any] = defer.ensureDeferred(self.node.stop())
        d.addCallback(lambda _: self.link.stop())
        return d.addCallback(lambda _: None)


class _SpreadService(Service):
    """The collector's heartbeat in the node set, so that several PBXes' leases spread over
    the live collectors (:mod:`pbxis.store.redis_spread`)."""

    def __init__(self, config: Config, reactor: Any) -> None:
        from .store.redis_keys import NodeKeys
        from .store.redis_link import RedisLink
        from .store.redis_node import node_name
        from .store.redis_spread import Spread

        assert config.redis is not None
        # its own connection: every PBX's side (and its link) may be stopped and renewed
        # by a hand-over, while the heartbeat must go on
        self.link = RedisLink(config.redis, reactor, name="collectors")
        self.spread = Spread(
            self.link, NodeKeys(config.redis.key_prefix), node_name(config), reactor,
            config.node.lease_time, [pbx.name for pbx in config.pbxes],
        )  # fmt: skip

    def startService(self) -> None:
        super().startService()
        self.link.start()
        self.spread.start()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        d = defer.maybeDeferred(self.spread.stop)
        d.addBoth(lambda _: self.link.stop())
        return d.addCallback(lambda _: None)


def _executor_for(center: CallCenter, pbx: str) -> Callable[[str, dict[str, Any]], Any]:
    """What runs the commands sent on ``pbx``'s command stream: only that PBX's."""

    async def execute(kind: str, args: dict[str, Any]) -> Any:
        from .errors import InvalidArgument

        if isinstance(args, dict) and str(args.get("pbx", DEFAULT_PBX)) != pbx:
            raise InvalidArgument(f"pbx: this is PBX {pbx!r}'s command stream")
        return await center.execute_remote(kind, args)

    return execute


class _StandbyGate(Resource):
    """In front of the site of an ``all`` or ``collector`` node with ``[redis]``: while
    the node stands by (or stepped down), ``/health`` answers 200 with ``standby`` (a
    stepped-down node 503), ``/metrics`` and ``/health/pbx/{pbx}`` as usual, anything else
    503 with ``Retry-After``."""

    isLeaf = True

    def __init__(self, inner: Any, standby: Callable[[], dict[str, Any] | None]) -> None:
        super().__init__()
        self._inner = inner
        self._standby = standby

    def render(self, request: Any) -> bytes | int:
        body = self._standby()
        first = request.postpath[0] if request.postpath else b""
        # /health/pbx/{pbx} is that PBX's, from its holder's published status (as on a node
        # holding another PBX): the node's standby body would say 200 for a PBX nobody holds
        per_pbx = first == b"health" and request.postpath[1:2] == [b"pbx"]
        if body is None or first == b"metrics" or per_pbx:
            answer: bytes | int = self._inner.render(request)
            return answer
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if first == b"health":
            request.setResponseCode(200 if body["status"] == "standby" else 503)
            return json.dumps(body).encode("utf-8")
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"5")
        from .web.errors import error_body

        return error_body(
            "pbx_unavailable",
            f"this node stands by for the AMI lease ({body['status']}); ask the node holding it",
        )


def _register_any(
    center: CallCenter, key: str, queues: Any, name: str | None, pbx: str = DEFAULT_PBX
) -> None:
    """A registration found in Redis (made on another node, or before a restart), into
    this (the writer's) engine. One that cannot be taken is logged, never fatal."""
    from .errors import CommandError
    from .supervisors import is_supervisor_key

    try:
        if not is_supervisor_key(key):
            center.register_agent(key, queues, name=name, pbx=pbx)
        elif queues:
            center.register_supervisor(key.split(":", 1)[1], queues, name=name, pbx=pbx)
        else:
            # the hub keeps a supervisor with no queues of its own (they are the board's):
            # its token and log go on; its board is loaded when the CRM registers it again
            center.unit(pbx).hub.register(key, (), name)
            log.warn("Redis: supervisor {key} is back without its queues; register it again", key=key)
    except CommandError as e:
        log.error("Redis: registration {key} from Redis not taken: {e}", key=key, e=e)


def _unregister_any(center: CallCenter, key: str, pbx: str = DEFAULT_PBX) -> None:
    from .errors import CommandError
    from .supervisors import is_supervisor_key

    try:
        if is_supervisor_key(key):
            center.unregister_supervisor(key.split(":", 1)[1], pbx=pbx)
        else:
            center.unregister_agent(key, pbx=pbx)
    except CommandError:
        pass  # ended meanwhile


def _answer(center: CallCenter, kind: str, args: dict[str, Any], pbx: str = DEFAULT_PBX) -> Any:
    """The writer's answer to a web node's question (:mod:`pbxis.store.redis_queries`)
    about PBX ``pbx`` (each PBX's questions come on its own stream)."""
    if kind == "snapshot":
        span = center.unit(pbx).hub.snapshot_span(str(args["agent"]), bool(args.get("reset")))
        return None if span is None else [span.first, span.last, span.reset]
    if kind == "agent":
        return center.agent_state(str(args["agent"]), pbx=pbx)
    if kind == "queues":
        return center.queues(pbx=pbx)
    if kind == "supervisor":
        return center.supervisor_state(str(args["agent"]), pbx=pbx)
    raise ValueError(f"unknown question {kind!r}")


class PbxisService(MultiService):
    """The running daemon: a :class:`~pbxis.engine.CallCenter`, its web site and, in
    demo mode, the simulated Asterisk it talks to.

    ``freeze_gc`` (start-up objects frozen) and ``gc_bursts`` (also freeze what bursts of
    connections leave, :mod:`pbxis.gcpolicy`) are the daemon's process-wide policies
    (``twistd pbxis`` sets the first, ``--gc-bursts`` the second); an embedding program
    keeps its collector to itself. Attributes give tests and the demo
    access to each layer.
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        *,
        now_ms: Callable[[], int] | None = None,
        freeze_gc: bool = False,
        gc_bursts: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.freeze_gc = freeze_gc
        self.gc_bursts = gc_bursts
        self.redis: _RedisService | None = None
        self.redis_web: _RedisWebService | None = None
        #: how the process ends when it steps down (lost its AMI lease); an embedding
        #: program or a test may do otherwise
        self.exit: Callable[[], object] = reactor.stop
        check_supported(config)
        names = [pbx.name for pbx in config.pbxes]
        #: one Redis side per PBX, each with its keys (and, on a collector, its lease);
        #: ``redis`` / ``redis_web`` is the first PBX's (a lone PBX's: the only one)
        self.redis_pbx: dict[str, _RedisService] = {}
        self.redis_web_pbx: dict[str, _RedisWebService] = {}
        self.spread: _SpreadService | None = None
        store: Any = None
        relay: Any = None
        if config.redis is not None and config.node.role == "web":
            self.redis_web_pbx = {name: _RedisWebService(config, reactor, name) for name in names}
            self.redis_web = self.redis_web_pbx[names[0]]
            store = {name: side.store for name, side in self.redis_web_pbx.items()}
            relay = {name: side.relay for name, side in self.redis_web_pbx.items()}  # to each holder
        elif config.redis is not None:
            self.redis_pbx = {name: _RedisService(config, reactor, name) for name in names}
            self.redis = self.redis_pbx[names[0]]
            store = {name: side.store for name, side in self.redis_pbx.items()}
            if len(names) > 1:
                self.spread = _SpreadService(config, reactor)
                for side in self.redis_pbx.values():
                    side.spread = self.spread.spread
        self.center = CallCenter(
            reactor,
            config,
            now_ms=now_ms,
            store=store,
            outbox=None if self.redis is None else self.redis.outbox,
            relay=relay,
        )
        for side in self.redis_pbx.values():
            self._wire(side)
        if self.spread is not None:
            self.spread.spread.on_surplus = self._hand_over
        for name, web_side in self.redis_web_pbx.items():
            self.center.unit(name).health_view = web_side.health_view

        if self.spread is not None:
            self.spread.setServiceParent(self)  # the loads are known before any lease is tried
        for side in self.redis_pbx.values():
            side.setServiceParent(self)
        for name, web_side in self.redis_web_pbx.items():
            web_side.attach(self.center.unit(name).hub)
            web_side.setServiceParent(self)
        self.simulator_service: _SimulatorService | None = None
        if config.demo and config.node.has_ami:
            self.simulator_service = _SimulatorService(reactor, config)
            self.simulator_service.setServiceParent(self)

        http = config.http
        collectors: list[Any] = []
        redis_side = self.redis or self.redis_web
        if redis_side is not None:
            from .metrics import LeaseCollector, RedisCollector

            def current_side() -> tuple[Any, Any, Any]:
                side: Any = self.redis or self.redis_web  # the first PBX's, renewed at a hand-over
                return side.link, side.store, side.node

            collectors.append(RedisCollector(current=current_side))
            collectors.append(LeaseCollector(self._leases))
        # a collector listens for /health and /metrics only (README, "Several nodes")
        self.app = build_app(
            self.center, http, clock=reactor, api=config.node.has_http_api, collectors=collectors
        )
        self.site = build_site(
            self.app,
            http.allowed_origins,
            allowed_hosts=http.allowed_hosts,
            public_url=http.public_url,
            header_timeout=http.header_timeout,
            body_timeout=http.body_timeout,
            reactor=reactor,
        )
        if self.redis is not None:
            # a standby answers /health (200, "standby") and /metrics; the rest once it serves
            self.site.resource = _StandbyGate(self.site.resource, self._standby)
        self.web = _WebService(serverFromString(reactor, http.server_endpoint), self.site)
        # several PBXes on Redis: each PBX's link starts when its lease is won (_redis_loaded)
        per_pbx = len(self.redis_pbx) > 1
        self.center_service = _CallCenterService(
            self.center, self._ami_endpoint if config.node.has_ami and not per_pbx else None
        )
        self._webhooks_resumed = False
        self._exiting = False
        #: takeovers of each PBX's lease by the sides this node renewed (a counter goes on)
        self._past_takeovers: dict[str, int] = {}
        if self.redis_web_pbx:
            # a web node: serves once every PBX's registrations are known; no AMI link
            loads = [side.loaded for side in self.redis_web_pbx.values()]
            defer.gatherResults(loads, consumeErrors=True).addCallbacks(self._web_loaded, self._web_failed)
        elif self.redis is None:
            self.web.setServiceParent(self)
            self.center_service.setServiceParent(self)
        else:
            # Nothing but /health and /metrics is served, and Asterisk is not asked, before
            # this node holds the AMI lease and the registrations, logs and states are back
            # from Redis (a resume would otherwise be a 404).
            self.web.setServiceParent(self)
            if per_pbx:
                self.center_service.setServiceParent(self)  # its stop ends streams, logs off
            for side in self.redis_pbx.values():
                side.loaded.addCallback(self._redis_loaded, side)

    # the first PBX's parts, read from the call center each time: a collector renews a
    # PBX's unit when it hands that PBX over (attributes would keep the old one's)
    @property
    def tracker(self) -> Tracker:
        return self.center.tracker

    @property
    def hub(self) -> Hub:
        return self.center.hub

    @property
    def ami(self) -> AMIClientFactory:
        return self.center.ami

    @property
    def sync(self) -> StateSync:
        return self.center.sync

    def _wire(self, side: _RedisService) -> None:
        """One PBX's Redis side into the engine: its commands, its health, its step-down."""
        if self.config.node.has_ami:
            # a 'collector' (or 'all') node runs what web nodes send, as a local command,
            # while it holds that PBX's lease: commands follow the AMI link
            side.node.execute(_executor_for(self.center, side.pbx), lease=side.lease)
        side.on_lost.append(self._step_down)
        self.center.unit(side.pbx).health_view = side.health_view

    def _hand_over(self, pbx: str) -> None:
        """This node holds two PBXes more than another live collector (pbxis.store.redis_spread):
        let ``pbx`` go to it, then stand by for ``pbx`` again with a fresh unit."""
        assert self.spread is not None
        side = self.redis_pbx.get(pbx)
        unit = self.center.unit(pbx)
        ready = side is not None and side.loaded.called and side.lease.valid() and unit.ready
        # and what it logged is in Redis: the release does not wait for a store behind Redis
        # (its drain gives up after a few seconds; the rest would be lost)
        ready = ready and side is not None and side.store.health().get("status") == "ok"
        if side is None or not ready or not self.running:
            self.spread.spread.kept(pbx)  # not now: the next heartbeat asks again
            return
        defer.ensureDeferred(self._handing_over(side)).addErrback(
            lambda f: log.failure("Redis: handing PBX {pbx} over failed", f, pbx=pbx)
        )

    async def _handing_over(self, side: _RedisService) -> None:
        assert self.spread is not None
        pbx, unit = side.pbx, self.center.unit(side.pbx)
        log.info(
            "Redis: node {node} holds more PBXes than another collector; handing PBX {pbx} over",
            node=side.node.name, pbx=pbx,
        )  # fmt: skip
        # The tracker and the boards hear nothing more (not even the link's end, which would
        # log pbxStatus false to every agent and supervisor: the next holder's rebuild
        # covers the gap), the AMI link
        # goes, what is logged is written, and only then is the lease let go.
        unit.ami.remove_observer(unit.sync)
        unit.ami.remove_observer(unit.supervision.sync)  # nor do the supervisors' boards
        unit.supervision.stop()
        link = unit.ami.protocol_instance
        stopped = unit.stop()
        if stopped is not None:
            # a close the peer never completes (an Asterisk that stopped reading) must not
            # hold the lease here with no link behind it: the socket is aborted after a while
            abort = self.reactor.callLater(HAND_OVER_CLOSE, _abort_link, link)
            try:
                await stopped
            except Exception:
                log.failure("Redis: logging off from PBX {pbx}", pbx=pbx)
            finally:
                if abort.active():
                    abort.cancel()
        try:
            await defer.maybeDeferred(side.disownServiceParent)  # drains, then lets the lease go
        except Exception:
            # whatever failed there, nothing of that side may go on: its lease goes (else it
            # is renewed with no AMI link behind it) and this node stands by again
            log.failure("Redis: stopping PBX {pbx}'s side for the hand-over", pbx=pbx)
            await defer.maybeDeferred(side.lease.stop)
            await defer.maybeDeferred(side.link.stop)
        self.spread.spread.released(pbx)
        self._past_takeovers[pbx] = self._past_takeovers.get(pbx, 0) + side.lease.takeovers
        fresh = _RedisService(self.config, self.reactor, pbx, self.spread.spread)
        self.redis_pbx[pbx] = fresh
        if self.redis is side:
            self.redis = fresh
        self.center.renew_unit(pbx, fresh.store)
        self._wire(fresh)
        fresh.loaded.addCallback(self._redis_loaded, fresh)
        if self.running:
            fresh.setServiceParent(self)

    def _redis_loaded(self, _: object, side: _RedisService) -> None:
        """``side``'s state is back from Redis (a Deferred's callback: its result unused)."""
        pbx = side.pbx
        adopted = side.store.adopt(
            lambda agent, queues, name: _register_any(self.center, agent, queues, name, pbx)
        )
        log.info(
            "Redis: {n} registrations back{pbx}, with their tokens and logs", n=len(adopted), pbx=side._label
        )
        side.share(self.center).addErrback(
            lambda f: log.failure("Redis: following the other nodes failed", f)
        )
        if self.center.webhooks is not None and not self._webhooks_resumed:
            self._webhooks_resumed = True
            self.center.webhooks.resume()  # deliveries left pending by the previous process
        if not side.lease.valid():
            return
        if len(self.redis_pbx) == 1:
            self.center_service.setServiceParent(self)
        else:
            self.center.start_pbx(pbx)
        self.reactor.callLater(self.config.node.lease_time, self._not_logged_in, side)

    def _not_logged_in(self, side: _RedisService) -> None:
        """``lease_time`` after this node took ``side``'s PBX (and loaded it): not logged in
        to that Asterisk (unreachable from here, for now), its agents and supervisors are
        told so once, as a link lost would (``pbxStatus`` false; the login's rebuild says
        true). Nobody else would: the vacancy watch sees a holder, and the tracker's records
        loaded before any login are down without a word."""
        from .events import PBX_STATUS, AgentEvent

        unit = self.center.units.get(side.pbx)
        if unit is None or self.redis_pbx.get(side.pbx) is not side or not side.lease.valid():
            return
        if unit.connected or not unit.started:
            return
        log.warn(
            "Redis: node {node} holds PBX {pbx}'s AMI lease but is not logged in to it after "
            "{lease_time:g} s; its agents get pbxStatus false", node=side.node.name, pbx=side.pbx,
            lease_time=self.config.node.lease_time,
        )  # fmt: skip
        now = self.center.now_ms()
        keys = list(unit.hub.stats()["log_sizes"])  # every registration: agents and supervisors
        unit.publish([AgentEvent(key, PBX_STATUS, now, {"connected": False}) for key in keys])

    def _standby(self) -> dict[str, Any] | None:
        """``/health`` while this node serves no PBX (standby, or stepped down); ``None``
        once it holds one. With several PBXes each one's lease is shown."""
        sides = list(self.redis_pbx.values())
        if len(sides) == 1:
            return sides[0].standby()
        bodies = [side.standby() for side in sides]
        if any(body is None for body in bodies):
            return None
        lost = any(side.lease.lost is not None for side in sides)
        first = sides[0]
        body: dict[str, Any] = {
            "status": "stepped_down" if lost else "standby",
            "node": first.node.name,
            "redis": {"connected": first.link.connected, "url": first.link.config.safe_url},
        }
        if not self.config.tenants:
            # the gate asks no key: with [[tenants]] the PBXes' names are not for everyone
            body["lease"] = {side.pbx: side.lease_view() for side in sides}
        return body

    def _leases(self) -> list[tuple[str, dict[str, Any]]]:
        """Each PBX's lease as ``/metrics`` shows it (pbxis.metrics.LeaseCollector)."""
        out = []
        for name, side in self.redis_pbx.items():
            lease = side.lease
            takeovers = lease.takeovers + self._past_takeovers.get(name, 0)
            out.append((name, {"held": lease.valid(), "takeovers": takeovers, "holder": lease.holder}))
        for name, web_side in self.redis_web_pbx.items():
            status = web_side.status.status or {}
            out.append((name, {"held": False, "takeovers": 0, "holder": status.get("holder")}))
        return out

    def _step_down(self, reason: str) -> None:
        """The lease is lost: the AMI sockets go at once (not a polite logoff: another node
        may be logged in already), then the process stops."""
        for unit in self.center.units.values():
            link = unit.ami.protocol_instance
            unit.ami.stop()
            if link is not None and link.transport is not None:
                getattr(link.transport, "abortConnection", link.transport.loseConnection)()
        if self.running and not self._exiting:
            # once: with several PBXes each lease lost (a pause loses them all) steps down
            # again, and a second reactor.stop() raises
            self._exiting = True
            self.reactor.callLater(0, self.exit)

    def _web_loaded(self, _: object) -> None:
        assert self.redis_web is not None
        n = sum(side.follow() for side in self.redis_web_pbx.values())
        log.info("Redis: web node {node} serves {n} registrations", node=self.redis_web.node.name, n=n)
        try:
            self.web.setServiceParent(self)
        except Exception:
            log.failure("cannot listen for HTTP on {listen}", listen=self.config.http.listen)
            self.reactor.stop()
            return
        self.center_service.setServiceParent(self)  # its stop ends the streams

    def _web_failed(self, failure: Failure) -> None:
        log.failure("Redis: cannot load the registrations", failure)
        self.reactor.stop()

    def _ami_endpoint(self) -> IStreamClientEndpoint | None:
        """The demo's simulator; ``None``: each PBX's own ``[ami]``/``[[pbx]]`` endpoint."""
        if self.simulator_service is not None:
            # The simulator may still be binding; connect once it listens.
            return _DeferredEndpoint(self.reactor, self.simulator_service.ready)
        return None

    def startService(self) -> None:
        if not self.config.http.api_keys and not self.config.tenants:
            log.warn("no [http].api_keys configured: the command API is open to anyone who can reach it")
        super().startService()
        if self.freeze_gc:
            # Start-up's objects live as long as the daemon: frozen out of the collector's
            # reach, a full pass walks only what connections and calls create.
            gc.freeze()
            if self.gc_bursts:
                # Also freeze what bursts of connections leave behind (pbxis.gcpolicy). Its
                # thaw walks everything once per doubling of the heap: a 100-150 ms stall
                # of every stream at 1,000 WebSocket clients (bench/bench_e2e.py), so it is
                # for centres whose reconnect storms cost more than that.
                self.gc_policy = start_collector_policy(self.reactor)

    @property
    def http_port(self) -> int:
        """The bound HTTP port (useful with ``tcp:0``); 0 before it listens."""
        port = self.web.port
        return 0 if port is None else _address(port).port


def _address(port: IListeningPort) -> IPv4Address:
    """Where a TCP port listens (``IListeningPort.getHost`` is typed as any address)."""
    return cast(IPv4Address, port.getHost())


def _stop_listening(port: IListeningPort | None) -> Deferred[None]:
    if port is None:
        return defer.succeed(None)
    return defer.maybeDeferred(port.stopListening).addCallback(lambda _: None)


@implementer(IStreamClientEndpoint)
class _DeferredEndpoint:
    """A client endpoint for the demo simulator, whose port is known only once it listens."""

    def __init__(self, reactor: IReactorTime, ready: defer.Deferred[IListeningPort]) -> None:
        self._reactor = reactor
        self._port: IListeningPort | None = None
        ready.addCallback(self._listening)

    def __repr__(self) -> str:
        where = _address(self._port) if self._port is not None else None
        return f"<embedded simulator at {where.host}:{where.port}>" if where else "<embedded simulator>"

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self._port = port
        return port

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        from twisted.internet.endpoints import TCP4ClientEndpoint

        if self._port is None:
            return defer.fail(ConnectionRefusedError("the demo simulator is not listening yet"))
        host = _address(self._port)
        return TCP4ClientEndpoint(self._reactor, host.host, host.port).connect(factory)


#: seconds a hand-over waits for the AMI socket's close before it aborts it
HAND_OVER_CLOSE = 5.0


def _abort_link(link: Any) -> None:
    """Drop an AMI link's socket at once (``abortConnection``: no flush, no wait)."""
    transport = None if link is None else link.transport
    if transport is not None:
        log.warn("Redis: the AMI socket did not close in {s:g} s; aborting it", s=HAND_OVER_CLOSE)
        getattr(transport, "abortConnection", transport.loseConnection)()


def _vacancy(config: Config, link: Any, keys: Any, reactor: Any, pbx: str) -> Any:
    """The watch that tells a PBX's agents when nobody holds it (pbxis.store.redis_vacancy)."""
    from .store.redis_vacancy import VacancyWatch

    agents = _pbx_config(config, pbx).agents
    return VacancyWatch(link, keys, reactor, config.node.lease_time, pbx=pbx, max_log=agents.max_log)


def _pbx_config(config: Config, pbx: str) -> PbxConfig:
    """PBX ``pbx``'s table (its ``[ami]`` and ``[agents]``)."""
    return next(p for p in config.pbxes if p.name == pbx)


def check_supported(config: Config) -> None:
    """Refuse, naming the key, what the config language has but this daemon cannot run."""
    if config.redis is not None:
        try:
            import txredisapi  # noqa: F401
        except ImportError:
            raise ConfigError(
                "[redis]: the Redis store needs the txredisapi package: pip install 'pbxis[redis]'"
            ) from None
    if config.node.role == "web" and config.redis is not None:
        return  # a web node: streams and registrations from Redis (README, "Several nodes")
    if config.node.role not in ("all", "collector"):
        raise ConfigError(
            f"[node].role: {config.node.role!r} is not available yet; run 'all' or 'collector' "
            'nodes for now (README, "Several nodes")'
        )


def make_service(
    config: Config, reactor: Any = None, *, freeze_gc: bool = False, gc_bursts: bool = False
) -> PbxisService:
    """Build the daemon for ``config`` (the reactor defaults to the global one)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    return PbxisService(config, reactor, freeze_gc=freeze_gc, gc_bursts=gc_bursts)
