"""Wire the layers into one :class:`MultiService`; the twistd plugin only calls :func:`make_service`.

Order matters at start: the web site listens before the AMI link is up (``/health``
answers 503 until it is), and in demo mode the simulated Asterisk listens before the
AMI client connects to the port it got. At stop the streams are closed first (clients
get the documented "server shutdown" ending), then the AMI link is logged off.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger

from .ami.client import AMIClientFactory
from .config import Config
from .hub import Hub
from .sync import StateSync
from .tracker import Tracker
from .web.app import WebSettings, build_app
from .web.client import add_client_routes
from .web.site import build_site
from .web.streams import add_stream_routes

__all__ = ["PbxisService", "make_service"]

log = Logger(namespace="pbxis")


def _wall_ms() -> int:
    return int(time.time() * 1000)


class _AMILinkService(Service):
    """Keeps the one AMI connection: connects on start, logs off on stop."""

    def __init__(self, factory: AMIClientFactory, endpoint: Callable[[], Any]) -> None:
        self.factory = factory
        self._endpoint = endpoint

    def startService(self) -> None:
        super().startService()
        self.factory.connect(self._endpoint())

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        return self.factory.stop()


class _SimulatorService(Service):
    """The embedded simulated Asterisk of the demo, listening before pbxis connects."""

    def __init__(self, reactor: Any, config: Config) -> None:
        from .simulator import Simulator, SimulatorConfig

        sim = config.simulator
        self.simulator = Simulator(
            SimulatorConfig.demo(agents=list(sim.agents), queues=list(sim.queues), logged_in=sim.logged_in),
            clock=reactor,
            seed=sim.seed,
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
            host = port.getHost()
            log.info("demo: simulated Asterisk listening on {host}:{port}", host=host.host, port=host.port)
            if self._rate > 0:
                self.simulator.start_load(rate_per_minute=self._rate, talk_time=self._talk)
            self.ready.callback(port)
            return port

        d.addCallback(listening)
        d.addErrback(self.ready.errback)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        self.simulator.stop_load()
        if self.port is not None:
            return defer.maybeDeferred(self.port.stopListening)
        return None


class PbxisService(MultiService):
    """The running daemon. Attributes give tests and the demo access to each layer."""

    def __init__(self, config: Config, reactor: Any, *, now_ms: Callable[[], int] = _wall_ms) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.now_ms = now_ms
        agents = config.agents
        # queue_events: a queue's caller count is one event, not one per watching agent
        self.tracker = Tracker(
            interface_template=agents.interface, hint_context=agents.hint_context, queue_events=True
        )
        self.hub = Hub(
            reactor,
            grace_period=agents.grace_period,
            snapshot=lambda agent: self.tracker.snapshot(agent, self.now_ms()),
            max_log=agents.max_log,
            max_log_bytes=agents.max_log_bytes,
            max_clients=agents.max_clients,
            snapshot_window=agents.snapshot_window,
            queue_tick=agents.queue_tick,
            now_ms=now_ms,
        )
        self.hub.on_expired = self._registration_expired
        ami = config.ami
        self.ami = AMIClientFactory(
            ami.username,
            ami.secret,
            auth=ami.auth,
            events=ami.events,
            action_timeout=ami.action_timeout,
            keepalive_interval=ami.keepalive_interval,
            keepalive_timeout=ami.keepalive_timeout,
            min_delay=ami.reconnect_min_delay,
            max_delay=ami.reconnect_max_delay,
            clock=reactor,
        )
        self.sync = StateSync(self.ami, self.tracker, self.hub.publish, clock=reactor, now_ms=now_ms)
        self.ami.add_observer(self.sync)

        self.simulator_service: _SimulatorService | None = None
        if config.demo:
            self.simulator_service = _SimulatorService(reactor, config)
            self.simulator_service.setServiceParent(self)

        http = config.http
        settings = WebSettings(
            public_base_url=http.public_url.rstrip("/"),
            api_keys=http.api_keys,
            allowed_origins=http.allowed_origins,
            metrics_public=http.metrics_public,
            interface_template=agents.interface,
            originate_context=agents.originate_context,
            originate_timeout=agents.originate_timeout,
            grace_period=agents.grace_period,
            caller_id_template=agents.caller_id or None,
        )
        self.app = build_app(
            settings=settings,
            hub=self.hub,
            tracker=self.tracker,
            ami=self.ami,
            sync=self.sync,
            streams_installer=functools.partial(
                add_stream_routes, hub=self.hub, allowed_origins=http.allowed_origins, clock=reactor
            ),
            client_installer=add_client_routes,
            clock=reactor,
            now_ms=now_ms,
        )
        self.site = build_site(self.app, http.allowed_origins)
        self.web = StreamServerEndpointService(serverFromString(reactor, http.listen), self.site)
        self.web._raiseSynchronously = True
        self.web.setServiceParent(self)

        self.ami_link = _AMILinkService(self.ami, self._ami_endpoint)
        self.ami_link.setServiceParent(self)

    # -- wiring ----------------------------------------------------------------------
    def _ami_endpoint(self) -> Any:
        if self.simulator_service is not None:
            # The simulator may still be binding; connect once it listens.
            return _DeferredEndpoint(self.reactor, self.simulator_service.ready)
        return clientFromString(self.reactor, self.config.ami.client_endpoint)

    def _registration_expired(self, agent: str) -> None:
        log.info("agent {agent}: no client for the grace period; registration ended", agent=agent)
        self.tracker.unregister(agent)

    def startService(self) -> None:
        if not self.config.http.api_keys:
            log.warn("no [http].api_keys configured: the command API is open to anyone who can reach it")
        super().startService()
        # Everything built so far (modules, the app, the simulator's model) lives as long
        # as the daemon: move it out of the collector's reach, so a full collection walks
        # only what connections and calls create (measured: 200+ ms pauses without it).
        gc.freeze()

    @property
    def http_port(self) -> int:
        """The bound HTTP port (useful with ``tcp:0``)."""
        port = getattr(self.web, "_waitingForPort", None)
        result = getattr(port, "result", None)
        return int(result.getHost().port) if result is not None else 0

    def stopService(self) -> defer.Deferred[None]:
        self.hub.close_all("shutdown")
        return defer.maybeDeferred(super().stopService)


class _DeferredEndpoint:
    """A client endpoint for the demo simulator, whose port is known only once it listens."""

    def __init__(self, reactor: IReactorTime, ready: defer.Deferred[IListeningPort]) -> None:
        self._reactor = reactor
        self._port: IListeningPort | None = None
        ready.addCallback(self._listening)

    def __repr__(self) -> str:
        where = self._port.getHost() if self._port is not None else None
        return f"<embedded simulator at {where.host}:{where.port}>" if where else "<embedded simulator>"

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self._port = port
        return port

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        from twisted.internet.endpoints import TCP4ClientEndpoint

        if self._port is None:
            return defer.fail(ConnectionRefusedError("the demo simulator is not listening yet"))
        host = self._port.getHost()
        return TCP4ClientEndpoint(self._reactor, host.host, host.port).connect(factory)


def make_service(config: Config, reactor: Any = None) -> PbxisService:
    """Build the daemon for ``config`` (the reactor defaults to the global one)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    return PbxisService(config, reactor)
