"""The daemon: a CallCenter, its web site and (demo) the simulator, as one :class:`MultiService`.

The twistd plugin only calls :func:`make_service`. Order matters at start: the web site
listens before the AMI link is up (``/health`` answers 503 until it is), and in demo
mode the simulated Asterisk listens before the AMI client connects to the port it got.
At stop the call center goes first: streams end with the documented "server shutdown"
(clients resume later), then the AMI link is logged off, then the port closes.
"""

from __future__ import annotations

import gc
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
from twisted.web.server import Site
from zope.interface import implementer

from .config import Config, ConfigError
from .engine import CallCenter
from .gcpolicy import start_collector_policy
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

    def __init__(self, center: CallCenter, endpoint: Callable[[], IStreamClientEndpoint | None]) -> None:
        self.center = center
        self._endpoint = endpoint

    def startService(self) -> None:
        super().startService()
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

    def __init__(self, config: Config, reactor: Any) -> None:
        from .store.redis_keys import Keys
        from .store.redis_link import RedisLink
        from .store.redis_store import RedisStore

        assert config.redis is not None
        self.link = RedisLink(config.redis, reactor)
        agents = config.agents
        self.store = RedisStore(
            self.link,
            Keys(config.redis.key_prefix),
            reactor,
            max_log=agents.max_log,
            max_log_bytes=agents.max_log_bytes,
            keep_closed_ms=int(agents.grace_period * 1000),
            outage_seconds=config.redis.outage_buffer_seconds,
            outage_events=config.redis.outage_buffer_events,
        )
        self.loaded: Deferred[int] = Deferred()
        self._reactor = reactor
        self._keys = Keys(config.redis.key_prefix)
        #: webhook endpoints' outboxes (pbxis.webhooks.redis_outbox), loaded with the store
        self.outboxes: list[Any] = []

    def outbox(self, webhook: Any) -> Any:
        """The engine's webhook outbox factory: durable in Redis, loaded on start."""
        from .webhooks.redis_outbox import RedisOutbox

        box = RedisOutbox(self.link, self._keys, webhook.name, self._reactor)
        self.outboxes.append(box)
        return box

    def startService(self) -> None:
        super().startService()
        self.link.start()
        log.info("Redis: connecting to {url}", url=self.link.config.safe_url)
        defer.ensureDeferred(self._load()).addCallbacks(self.loaded.callback, self._failed)

    async def _load(self) -> int:
        while True:
            await self.link.when_connected()
            try:
                loaded = await self.store.load()
                for box in self.outboxes:  # pending deliveries go before any new one
                    if not box.loaded:
                        await box.load()
                return loaded
            except Exception as e:  # Redis went away mid-load: wait for it again
                log.warn("Redis: loading the stored state failed ({e}); retrying", e=e)
                from twisted.internet.task import deferLater

                await deferLater(self._reactor, 1.0, lambda: None)

    def _failed(self, failure: Failure) -> None:
        log.failure("Redis: cannot load the stored state", failure)
        self._reactor.stop()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        drains = [self.store.drain(timeout=3.0), *(box.drain(timeout=3.0) for box in self.outboxes)]
        d: Deferred[None] = defer.gatherResults(drains).addCallback(lambda _: self.link.stop())
        return d


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
        store = None
        check_supported(config)
        if config.redis is not None:
            self.redis = _RedisService(config, reactor)
            store = self.redis.store
        self.center = CallCenter(
            reactor,
            config,
            now_ms=now_ms,
            store=store,
            outbox=None if self.redis is None else self.redis.outbox,
        )
        self.tracker = self.center.tracker
        self.hub = self.center.hub
        self.ami = self.center.ami
        self.sync = self.center.sync

        if self.redis is not None:
            self.redis.setServiceParent(self)
        self.simulator_service: _SimulatorService | None = None
        if config.demo:
            self.simulator_service = _SimulatorService(reactor, config)
            self.simulator_service.setServiceParent(self)

        http = config.http
        self.app = build_app(self.center, http, clock=reactor)
        self.site = build_site(
            self.app,
            http.allowed_origins,
            allowed_hosts=http.allowed_hosts,
            public_url=http.public_url,
            header_timeout=http.header_timeout,
            body_timeout=http.body_timeout,
            reactor=reactor,
        )
        self.web = _WebService(serverFromString(reactor, http.server_endpoint), self.site)
        self.center_service = _CallCenterService(self.center, self._ami_endpoint)
        if self.redis is None:
            self.web.setServiceParent(self)
            self.center_service.setServiceParent(self)
        else:
            # nothing is served and Asterisk is not asked before the registrations, logs
            # and states are back from Redis (a resume would otherwise be a 404)
            self.redis.loaded.addCallback(self._redis_loaded)

    def _redis_loaded(self, _: object) -> None:
        assert self.redis is not None
        adopted = self.redis.store.adopt(
            lambda agent, queues, name: self.center.register_agent(agent, queues, name=name)
        )
        log.info("Redis: {n} registrations back, with their tokens and logs", n=len(adopted))
        if self.center.webhooks is not None:
            self.center.webhooks.resume()  # deliveries left pending by the previous process
        try:
            self.web.setServiceParent(self)
        except Exception:
            log.failure("cannot listen for HTTP on {listen}", listen=self.config.http.listen)
            self.reactor.stop()
            return
        self.center_service.setServiceParent(self)

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


def check_supported(config: Config) -> None:
    """Refuse, naming the key, what the config language has but this daemon cannot run."""
    if config.redis is not None:
        try:
            import txredisapi  # noqa: F401
        except ImportError:
            raise ConfigError(
                "[redis]: the Redis store needs the txredisapi package: pip install 'pbxis[redis]'"
            ) from None
    if config.node.role != "all":
        raise ConfigError(
            f"[node].role: {config.node.role!r} is not available yet; Redis is the durable store "
            "of one 'all' node for now (README, \"Redis\")"
        )


def make_service(
    config: Config, reactor: Any = None, *, freeze_gc: bool = False, gc_bursts: bool = False
) -> PbxisService:
    """Build the daemon for ``config`` (the reactor defaults to the global one)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    return PbxisService(config, reactor, freeze_gc=freeze_gc, gc_bursts=gc_bursts)
