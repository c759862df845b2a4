"""The call center as one object: every domain operation of pbxis lives here.

A :class:`CallCenter` owns the AMI link, the tracker, the state sync, the hub and the
commands, and wires them the one way data flows (AMI bytes -> tracker -> hub ->
listeners and transports; commands back to Asterisk). It is the public library API
(``pbxis.connect``) and the one seam the web layer and the daemon plug into: the web
only validates, calls a method here and renders; the daemon only builds one and
starts it.

Listeners and sinks are hub subscriptions like any browser's, so they get the same
numbered events, snapshot first, exactly once. The dict a listener gets is parsed from
the entry's JSON text only when a listener is there to receive it: with no listener
the hot path (event -> digest -> log -> socket) does no work for this API at all.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from pbxis.ami.client import AMIClientFactory
from pbxis.call_control import SPY_MODES, TRANSFER_MODES, CallControl
from pbxis.commands import Commands
from pbxis.config import DEFAULT_PBX as CONFIG_DEFAULT_PBX
from pbxis.config import Config, ConfigError, load_config, parse_config
from pbxis.errors import (
    CommandError,
    Forbidden,
    InvalidArgument,
    PbxUnavailable,
    UnknownAgent,
    UnknownPbx,
    UnknownSupervisor,
)
from pbxis.hub import Hub, LogEntry, Registration, RegistrationEnded, Subscription
from pbxis.hub.store import HubStore
from pbxis.names import AGENT_HINT, NUMBER_HINT, QUEUE_HINT, is_agent, is_number, is_queue, is_variable
from pbxis.supervisors import supervisor_key
from pbxis.sync import StateSync
from pbxis.tracker import CurrentCall, Tracker
from pbxis.webhooks.config import WebhookConfig
from pbxis.webhooks.delivery import Webhooks, treq_post
from pbxis.webhooks.outbox import Outbox

from .policy import OriginateGuard
from .remote import ORIGINATE, QUEUE, RELAY_MARGIN, CommandRelay, result_of
from .supervision import Supervision, SupervisorRegistration, supervisor_queues
from .unit import PbxUnit

__all__ = [
    "DEFAULT_PBX",
    "AgentRegistration",
    "CallCenter",
    "Caller",
    "EventListener",
    "SinkHandle",
    "SupervisorRegistration",
    "connect",
]

log = Logger(namespace="pbxis.engine")

DEFAULT_PBX: Final = CONFIG_DEFAULT_PBX
"""The name of the PBX of a config with one ``[ami]`` table."""

EventListener = Callable[[dict[str, Any]], object]
"""Called with each event as a dict in the contract's JSON shape (``id``, ``type``...)."""

QUEUE_ACTIONS: Final = {
    "login": frozenset({"penalty", "paused", "member_name"}),
    "logoff": frozenset(),
    "pause": frozenset({"reason"}),
    "unpause": frozenset(),
}

#: The hub counts clients by transport; library listeners and sinks are counted as these.
LISTENER = "listener"
SINK = "sink"


class Caller(enum.Enum):
    """On whose authority a command runs.

    ``CRM`` (an API key, or a library program) has full power; ``AGENT`` (an agent's
    stream token) acts only on its own registered queues, dials within the same
    ``[originate]`` policy and may set no caller id unless config allows it.
    """

    CRM = "crm"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class AgentRegistration:
    """What :meth:`CallCenter.register_agent` returns: the agent as registered now."""

    agent: str
    pbx: str
    queues: tuple[str, ...]
    name: str | None
    token: str = field(repr=False)


class SinkHandle:
    """A listener or sink attached to one agent's events; :meth:`close` detaches it."""

    __slots__ = ("_sub",)

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub

    @property
    def active(self) -> bool:
        """False once closed, or once the registration ended."""
        return bool(self._sub.active)

    @property
    def last_id(self) -> int:
        """The id of the last event handed over: what ``attach_sink(since=)`` resumes from."""
        return int(self._sub.cursor)

    def close(self) -> None:
        """Detach; no more calls. The position is kept for the grace period, as a client's."""
        self._sub.stopProducing()


class CallCenter:
    """One call center: its PBX link, tracked state, registrations and commands.

    Build it with :func:`connect` (a library program) or construct it and :meth:`start`
    it (the daemon, which listens for HTTP before the link is up). ``link`` replaces the
    AMI client (tests); ``now_ms`` stamps events (Unix epoch milliseconds). ``relay``:
    a node without an AMI link (``[node] role = "web"``) sends originate and queue
    actions there (:mod:`pbxis.engine.remote`); the node with the link runs them with
    :meth:`execute_remote`. With several PBXes ``store`` and ``relay`` are mappings from
    PBX name to that PBX's (each PBX has its own keys and its own holder in Redis).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        *,
        link: AMIClientFactory | None = None,
        now_ms: Callable[[], int] | None = None,
        store: HubStore | Mapping[str, HubStore] | None = None,
        outbox: Callable[[WebhookConfig], Outbox] | None = None,
        relay: CommandRelay | Mapping[str, CommandRelay] | None = None,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.now_ms: Callable[[], int] = now_ms or _wall_ms
        pbxes = config.pbxes
        names = [pbx.name for pbx in pbxes]
        if (link is not None or (store is not None and not isinstance(store, Mapping))) and len(pbxes) > 1:
            raise ConfigError("[[pbx]]: a test link or a shared store serves one PBX only")
        stores = _per_pbx(store, names, "store")
        #: where each PBX's commands go when its AMI link is another node's (a web node)
        self.relays: dict[str, CommandRelay] = _per_pbx(relay, names, "relay")
        #: one unit per configured PBX, in config order (pbxis.engine.unit)
        self.units: dict[str, PbxUnit] = {
            pbx.name: PbxUnit(reactor, config, pbx, self.now_ms, link=link, store=stores.get(pbx.name))
            for pbx in pbxes
        }
        # Webhooks read every agent's log as the hub writes it (``[[webhooks]]``); with
        # none configured nothing is built and the hub has no observer.
        # Only a node that ingests the AMI stream delivers them: a web node's hub replays
        # what another node logged, and would deliver it a second time.
        self.webhooks: Webhooks | None = None
        if config.webhooks and config.node.has_ami:
            # ``outbox``: where pending deliveries are kept (memory unless the daemon has
            # [redis]: pbxis.webhooks.redis_outbox)
            self.webhooks = Webhooks(
                config.webhooks, reactor, treq_post(reactor), wall=time.time, outbox=outbox
            )
            for unit in self.units.values():
                unit.hub.observers.append(self.webhooks.hub_observer(unit.name))
        self._started = False

    # -- the parts of the first PBX (the only one of a config with one [ami] table) -------
    @property
    def primary(self) -> PbxUnit:
        """The PBX ``default`` if configured, else the first ``[[pbx]]``."""
        return self.units.get(DEFAULT_PBX) or next(iter(self.units.values()))

    @property
    def tracker(self) -> Tracker:
        return self.primary.tracker

    @property
    def hub(self) -> Hub:
        return self.primary.hub

    @property
    def ami(self) -> AMIClientFactory:
        return self.primary.ami

    @property
    def sync(self) -> StateSync:
        return self.primary.sync

    @property
    def supervision(self) -> Supervision:
        return self.primary.supervision

    @property
    def commands(self) -> Commands:
        return self.primary.commands

    @property
    def guard(self) -> OriginateGuard:
        return self.primary.guard

    @property
    def call_control(self) -> CallControl:
        return self.primary.call_control

    @property
    def publish(self) -> Callable[[list[Any]], None]:
        return self.primary.publish

    def unit(self, pbx: str) -> PbxUnit:
        """The unit of PBX ``pbx``; :class:`~pbxis.errors.UnknownPbx` if none is configured."""
        unit = self.units.get(pbx) if isinstance(pbx, str) else None
        if unit is None:
            raise UnknownPbx(
                f"no PBX named {str(pbx)[:40]!r} is configured (known: {', '.join(self.units)}); "
                "address another one as /pbx/{pbx}/..."
            )
        return unit

    # -- life cycle ----------------------------------------------------------------------
    @property
    def pbxes(self) -> tuple[str, ...]:
        """The configured PBXes by name, in config order."""
        return tuple(self.units)

    @property
    def grace_period(self) -> float:
        return self.primary.config.agents.grace_period

    def grace_period_of(self, pbx: str) -> float:
        return self.unit(pbx).config.agents.grace_period

    @property
    def connected(self) -> bool:
        """True while every PBX's AMI link is up and logged in."""
        return all(unit.connected for unit in self.units.values())

    @property
    def ready(self) -> bool:
        """True once every PBX is logged in and its state rebuilt after that login."""
        return all(unit.ready for unit in self.units.values())

    def start(
        self,
        endpoint: IStreamClientEndpoint | None = None,
        *,
        endpoints: Mapping[str, IStreamClientEndpoint] | None = None,
    ) -> None:
        """Connect every PBX (its ``[ami]``/``[[pbx]]`` keys, or ``endpoints[name]``;
        ``endpoint``: the one PBX's) and keep reconnecting until :meth:`disconnect`."""
        chosen = dict(endpoints or {})
        if endpoint is not None:
            chosen.setdefault(self.primary.name, endpoint)
        for name in chosen:
            self.unit(name)
        self._started = True
        for unit in self.units.values():
            unit.start(chosen.get(unit.name))

    def renew_unit(self, pbx: str, store: HubStore | None = None) -> PbxUnit:
        """A fresh unit for ``pbx`` in place of the current one, which must be stopped:
        a collector that handed the PBX over stands by for it again with nothing of its
        old state (when it takes the lease back it loads everything from the store)."""
        old = self.unit(pbx)
        if old.started:
            raise RuntimeError(f"PBX {pbx}: stop its link before renewing it")
        config = next(p for p in self.config.pbxes if p.name == pbx)
        unit = PbxUnit(self.reactor, self.config, config, self.now_ms, store=store)
        if self.webhooks is not None:
            unit.hub.observers.append(self.webhooks.hub_observer(pbx))
        unit.health_view = old.health_view
        old.close("handed over")  # its hub's timers and supervisors' go with it
        self.units[pbx] = unit
        return unit

    def start_pbx(self, pbx: str, endpoint: IStreamClientEndpoint | None = None) -> None:
        """Connect one PBX (a collector that has just taken its lease); the others wait."""
        unit = self.unit(pbx)
        self._started = True
        if not unit.started:
            unit.start(endpoint)

    def when_ready(self) -> Deferred[CallCenter]:
        """Fires with this call center once every PBX link is logged in and rebuilt."""
        waits = [unit.sync.when_ready() for unit in self.units.values()]
        if len(waits) == 1:
            return waits[0].addCallback(lambda _: self)
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: self)

    def disconnect(self) -> Deferred[None]:
        """End every stream, listener and sink (``shutdown``) and log off from Asterisk.

        No listener or sink is called after this fires; no timer of the hub is left.
        """
        for unit in self.units.values():
            unit.close("shutdown")
        if self.webhooks is not None:
            self.webhooks.stop()  # what is pending stays in the outbox (kept in Redis if durable)
        if not self._started:
            return defer.succeed(None)
        self._started = False
        stops = [d for d in (unit.stop() for unit in self.units.values()) if d is not None]
        return defer.gatherResults(stops, consumeErrors=True).addCallback(lambda _: None)

    # -- registrations -------------------------------------------------------------------
    def register_agent(
        self,
        agent: str,
        queues: Iterable[str],
        *,
        name: str | None = None,
        pbx: str = DEFAULT_PBX,
        listeners: Sequence[EventListener] = (),
    ) -> AgentRegistration:
        """Register ``agent`` for ``queues`` (again: same token, new queues and name).

        Returns at once. Asterisk may know of calls or queues not tracked yet; they are
        fetched in the background and arrive as events. Each of ``listeners`` is called
        with every event of the agent from now on, snapshot first, until
        :meth:`unregister_agent` (which they hear as ``closed``) or :meth:`disconnect`.
        """
        unit = self.unit(pbx)
        _check_agent(agent)
        wanted = _check_queues(queues)
        if name is not None and not isinstance(name, str):
            raise InvalidArgument("name: must be a string or None")
        registration = unit.hub.register(agent, wanted, name)
        if self.config.node.has_ami:  # a web node tracks nothing: the writer's tracker does
            unit.publish(unit.tracker.register(agent, list(registration.queues), self.now_ms()))
            unit.sync.agent_registered(agent).addErrback(self._sync_failed, agent)
        if listeners:
            self._subscribe(unit, registration, None, LISTENER, tuple(listeners))
        log.info(
            "agent {agent} of PBX {pbx} registered for queues {queues}",
            agent=agent,
            pbx=pbx,
            queues=list(wanted),
        )
        return self._view(registration, pbx)

    def register_agent_async(
        self, agent: str, queues: Iterable[str], *, name: str | None = None, pbx: str = DEFAULT_PBX
    ) -> Deferred[AgentRegistration]:
        """:meth:`register_agent` for the HTTP API: with a shared store the registration
        is written there first (``prepare_register``), so that the token is the one every
        node gives for the agent, also when another node registered it a moment ago."""
        try:
            self._pbx(pbx)
            _check_agent(agent)
            wanted = _check_queues(queues)
            if name is not None and not isinstance(name, str):
                raise InvalidArgument("name: must be a string or None")
        except CommandError as e:
            return defer.fail(e)
        prepare = getattr(self.unit(pbx).hub.store, "prepare_register", None)
        if prepare is None:
            return defer.maybeDeferred(self.register_agent, agent, wanted, name=name, pbx=pbx)
        d = defer.ensureDeferred(_shared_store_call(prepare(agent, wanted, name)))
        d.addCallback(lambda _: self.register_agent(agent, wanted, name=name, pbx=pbx))
        return d

    def register_supervisor_async(
        self, supervisor: str, queues: Iterable[str], *, name: str | None = None, pbx: str = DEFAULT_PBX
    ) -> Deferred[SupervisorRegistration]:
        """:meth:`register_supervisor` for the HTTP API (see :meth:`register_agent_async`)."""
        try:
            self._pbx(pbx)
            _check_agent(supervisor, "supervisor")
            wanted = supervisor_queues(queues, _check_queues)
            if name is not None and not isinstance(name, str):
                raise InvalidArgument("name: must be a string or None")
        except CommandError as e:
            return defer.fail(e)
        prepare = getattr(self.unit(pbx).hub.store, "prepare_register", None)
        if prepare is None:
            return defer.maybeDeferred(self.register_supervisor, supervisor, wanted, name=name, pbx=pbx)
        d = defer.ensureDeferred(_shared_store_call(prepare(supervisor_key(supervisor), wanted, name)))
        d.addCallback(lambda _: self.register_supervisor(supervisor, wanted, name=name, pbx=pbx))
        return d

    def unregister_agent(self, agent: str, *, pbx: str = DEFAULT_PBX) -> None:
        """End the registration: clients, listeners and sinks get ``closed``, then nothing.

        Raises :class:`~pbxis.errors.UnknownAgent` when it is not registered.
        """
        unit = self.unit(pbx)
        if not unit.hub.unregister(agent):
            raise _unknown_agent(agent, pbx)
        unit.tracker.unregister(agent)
        unit.guard.forget(agent)
        log.info("agent {agent} of PBX {pbx} unregistered", agent=agent, pbx=pbx)

    def registration(self, agent: str, *, pbx: str = DEFAULT_PBX) -> AgentRegistration | None:
        registration = self.unit(pbx).hub.get(agent)
        return None if registration is None else self._view(registration, pbx)

    def register_supervisor(
        self,
        supervisor: str,
        queues: Iterable[str],
        *,
        name: str | None = None,
        pbx: str = DEFAULT_PBX,
        listeners: Sequence[EventListener] = (),
    ) -> SupervisorRegistration:
        """Register a supervisor of whole ``queues`` (again: same token, new queues).

        Its stream has an agent stream's semantics and carries ``queueStats``,
        ``queueMember`` and ``queueCallers`` per queue (:mod:`pbxis.supervisors`);
        ``listeners`` get every event, snapshot first, as an agent's do.
        """
        unit = self.unit(pbx)
        _check_agent(supervisor, "supervisor")
        wanted = supervisor_queues(queues, _check_queues)
        if name is not None and not isinstance(name, str):
            raise InvalidArgument("name: must be a string or None")
        view, registration = unit.supervision.register(supervisor, wanted, name, pbx)
        if listeners:
            self._subscribe(unit, registration, None, LISTENER, tuple(listeners))
        return view

    def unregister_supervisor(self, supervisor: str, *, pbx: str = DEFAULT_PBX) -> None:
        """As :meth:`unregister_agent`; :class:`~pbxis.errors.UnknownSupervisor` if unknown."""
        self.unit(pbx).supervision.unregister(supervisor)

    def supervisor_state(self, supervisor: str, *, pbx: str = DEFAULT_PBX) -> dict[str, Any]:
        """``GET /supervisors/{name}``: stats, waiting callers and members per queue."""
        return self.unit(pbx).supervision.state(supervisor, pbx)

    def by_token(self, token: str) -> Registration | None:
        """The live registration a stream token belongs to (constant time per PBX), else ``None``."""
        for unit in self.units.values():
            registration = unit.hub.by_token(token)
            if registration is not None:
                return registration
        return None

    def pbx_of_token(self, token: str) -> tuple[str, Registration] | None:
        """The PBX and live registration of a stream token, else ``None``: a token
        resolves to its own PBX's registration only (1001 on east is not 1001 on west)."""
        for unit in self.units.values():
            registration = unit.hub.by_token(token)
            if registration is not None:
                return unit.name, registration
        return None

    def attach_sink(
        self,
        agent: str,
        sink: EventListener,
        *,
        since: int | None = None,
        pbx: str = DEFAULT_PBX,
    ) -> SinkHandle:
        """``sink(event)`` for every event after ``since`` (the snapshot first when ``None``).

        The semantics of a stream client: a ``since`` the log cannot serve gives
        ``reset`` and a fresh snapshot, never a silent gap.
        """
        unit = self.unit(pbx)
        registration = unit.hub.get(agent)
        if registration is None:
            raise _unknown_agent(agent, pbx)
        if since is not None and (not isinstance(since, int) or isinstance(since, bool) or since < 0):
            raise InvalidArgument("since: the id of the last event seen (0 or more), or None")
        return self._subscribe(unit, registration, since, SINK, (sink,))

    def _subscribe(
        self,
        unit: PbxUnit,
        registration: Registration,
        since: int | None,
        transport: str,
        listeners: tuple[EventListener, ...],
    ) -> SinkHandle:
        agent = registration.agent

        def deliver(entries: list[LogEntry]) -> None:
            for entry in entries:
                for listener in listeners:
                    try:
                        listener(entry.json)  # a dict of its own for each listener
                    except Exception:
                        log.failure(
                            "listener {listener!r} of agent {agent} failed", listener=listener, agent=agent
                        )

        def end(reason: str) -> None:
            pass  # ``closed`` was delivered first when the registration ended

        try:
            # in-process code, not a remote token holder: not held to [agents] max_clients
            sub = unit.hub.subscribe(registration, since, transport, deliver, end, counted=False)
        except RegistrationEnded:
            raise _unknown_agent(agent, unit.name) from None
        sub.resumeProducing()
        return SinkHandle(sub)

    # -- commands ------------------------------------------------------------------------
    def originate(
        self,
        agent: str,
        number: str,
        *,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        pbx: str = DEFAULT_PBX,
        caller: Caller = Caller.CRM,
    ) -> Deferred[str]:
        """Ring the agent's phone, then dial ``number``; fires with the ActionID once queued.

        The agent must be registered: a failure arrives later on its stream as
        ``originateFailed``. ``[originate]`` decides which numbers and how often.
        """
        return defer.ensureDeferred(self._originate(agent, number, caller_id, variables, pbx, caller))

    async def _originate(
        self,
        agent: str,
        number: str,
        caller_id: str | None,
        variables: Mapping[str, str] | None,
        pbx: str,
        caller: Caller,
    ) -> str:
        unit = self.unit(pbx)
        _check_agent(agent)
        if not is_number(number):
            raise InvalidArgument(f"number: use {NUMBER_HINT}")
        for key, value in (variables or {}).items():
            if not is_variable(key) or not isinstance(value, str):
                raise InvalidArgument(
                    f"variables: {str(key)[:40]!r}: a name of 1 to 64 of A-Za-z0-9_, not starting "
                    "with a digit, and a string value"
                )
        if pbx in self.relays:
            # the node with the AMI link checks the registration and applies [originate]
            # (one rate limit for every web node)
            args = {"agent": agent, "number": number, "callerId": caller_id,
                    "variables": dict(variables or {}), "pbx": pbx, "caller": caller.value}  # fmt: skip
            return str(await self._relayed(ORIGINATE, args))
        registration = unit.hub.get(agent)
        if registration is None:
            # The failure of a click-to-call arrives on the agent's stream; without a
            # registration nobody would ever hear of it.
            raise _unknown_agent(agent, pbx)
        if (
            caller_id is not None
            and caller is Caller.AGENT
            and not self.config.originate.agents_may_set_caller_id
        ):
            raise Forbidden(
                "callerId: only the CRM's API key may set it "
                "([originate].agents_may_set_caller_id = true lets agents)"
            )
        unit.guard.admit(agent, number)
        action_id = await unit.commands.originate(
            agent, number, caller_id=caller_id, variables=variables, name=registration.name
        )
        log.info("agent {agent}: originate {action_id} queued", agent=agent, action_id=action_id)
        return action_id

    def queue_action(
        self,
        agent: str,
        queue: str,
        action: str,
        *,
        pbx: str = DEFAULT_PBX,
        caller: Caller = Caller.CRM,
        **params: Any,
    ) -> Deferred[None]:
        """``login`` (``penalty``, ``paused``, ``member_name``), ``logoff``, ``pause``
        (``reason``) or ``unpause`` ``agent`` in ``queue``.

        Fails with :class:`~pbxis.errors.AlreadyLoggedIn`, ``NotLoggedIn``,
        ``UnknownQueue``, ``PbxUnavailable``, ``PbxTimeout``... An agent's own token
        (``caller=Caller.AGENT``) may act only on the queues it is registered for.
        """
        return defer.ensureDeferred(self._queue_action(agent, queue, action, pbx, caller, params))

    async def _queue_action(
        self, agent: str, queue: str, action: str, pbx: str, caller: Caller, params: dict[str, Any]
    ) -> None:
        unit = self.unit(pbx)
        _check_agent(agent)
        if not is_queue(queue):
            raise InvalidArgument(f"queue: use {QUEUE_HINT}")
        allowed = QUEUE_ACTIONS.get(action)
        if allowed is None:
            raise InvalidArgument(f"action: one of {', '.join(QUEUE_ACTIONS)}, not {action!r}")
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise InvalidArgument(
                f"{action} takes no parameter {unknown[0]!r} (only: {', '.join(sorted(allowed)) or 'none'})"
            )
        if pbx in self.relays:
            args = {"agent": agent, "queue": queue, "action": action, "pbx": pbx,
                    "caller": caller.value, "params": params}  # fmt: skip
            await self._relayed(QUEUE, args)
            return
        registration = unit.hub.get(agent)
        if caller is Caller.AGENT and (registration is None or queue not in registration.queues):
            raise Forbidden(
                f"agent {agent} is not registered for queue {queue}: its token acts on its "
                "registered queues only (the CRM registers it for more with PUT /agents/{agent})"
            )
        commands = unit.commands
        if action == "login":
            penalty = params.get("penalty", 0)
            if not isinstance(penalty, int) or isinstance(penalty, bool) or not 0 <= penalty < 2**31:
                raise InvalidArgument("penalty: an integer from 0 to 2147483647")
            if not isinstance(params.get("paused", False), bool):
                raise InvalidArgument("paused: True or False")
            member_name = params.get("member_name")
            if member_name is None and registration is not None:
                member_name = registration.name
            await commands.queue_login(
                agent,
                queue,
                penalty=penalty,
                paused=bool(params.get("paused", False)),
                member_name=member_name,
            )
        elif action == "logoff":
            await commands.queue_logoff(agent, queue)
        else:
            await commands.queue_pause(agent, queue, paused=action == "pause", reason=params.get("reason"))

    # -- commands from another node -------------------------------------------------------
    async def _relayed(self, kind: str, args: dict[str, Any]) -> Any:
        pbx = str(args["pbx"])
        timeout = self.unit(pbx).config.ami.action_timeout + RELAY_MARGIN
        return result_of(await self.relays[pbx].send(kind, args, timeout))

    async def execute_remote(self, kind: str, args: dict[str, Any]) -> Any:
        """Run a command a node without an AMI link sent (:mod:`pbxis.engine.remote`):
        the same checks, policy and answers as when it is called here."""
        if not isinstance(args, dict):
            raise InvalidArgument("command: its arguments must be an object")
        try:
            caller = Caller(args.get("caller", Caller.CRM.value))
        except ValueError:
            raise InvalidArgument(f"caller: one of crm, agent, not {args.get('caller')!r}") from None
        pbx = str(args.get("pbx", DEFAULT_PBX))
        if kind == ORIGINATE:
            variables = args.get("variables") or {}
            if not isinstance(variables, dict):
                raise InvalidArgument("variables: an object of names to strings")
            caller_id = args.get("callerId")
            if caller_id is not None and not isinstance(caller_id, str):
                raise InvalidArgument("callerId: a string")
            return await self.originate(
                str(args.get("agent", "")),
                str(args.get("number", "")),
                caller_id=caller_id,
                variables=variables,
                pbx=pbx,
                caller=caller,
            )
        if kind == QUEUE:
            params = args.get("params") or {}
            if not isinstance(params, dict):
                raise InvalidArgument("params: an object")
            await self.queue_action(
                str(args.get("agent", "")),
                str(args.get("queue", "")),
                str(args.get("action", "")),
                pbx=pbx,
                caller=caller,
                **{str(k): v for k, v in params.items()},
            )
            return None
        raise InvalidArgument(f"command: {kind!r} is not one another node may send ({ORIGINATE}, {QUEUE})")

    # -- call control --------------------------------------------------------------------
    # Each acts on the agent's current call as the tracker knows it; no call: Conflict
    # ``no_call``. See :mod:`pbxis.call_control` for the actions and Asterisk's answers.
    def hangup(self, agent: str, *, pbx: str = DEFAULT_PBX) -> Deferred[None]:
        """Hang up the agent's current call (its own leg)."""
        return defer.ensureDeferred(self._control(agent, pbx, lambda c: c.hangup(agent)))

    def transfer(self, agent: str, to: str, *, mode: str = "blind", pbx: str = DEFAULT_PBX) -> Deferred[str]:
        """Transfer the agent's caller to ``to`` (``blind`` or ``attended``); fires with the
        ActionID. A target that is busy or does not answer arrives as ``transferFailed``."""
        if not is_number(to):
            return defer.fail(InvalidArgument(f"to: use {NUMBER_HINT}"))
        if mode not in TRANSFER_MODES:
            return defer.fail(InvalidArgument(f"mode: one of {', '.join(TRANSFER_MODES)}, not {mode!r}"))
        try:
            # the transfer dials ``to`` on the PBX's bill, as an originate does
            self.unit(pbx).guard.numbers.check(to)
        except CommandError as e:
            return defer.fail(e)
        return defer.ensureDeferred(self._control(agent, pbx, lambda c: c.transfer(agent, to, mode)))

    def cancel_transfer(self, agent: str, *, pbx: str = DEFAULT_PBX) -> Deferred[str]:
        """Abandon the agent's attended transfer (``transferFailed`` ``cancelled``)."""
        return defer.ensureDeferred(self._control(agent, pbx, lambda c: c.cancel_transfer(agent)))

    def pause_recording(self, agent: str, *, pbx: str = DEFAULT_PBX) -> Deferred[CurrentCall]:
        """Stop writing the current call's recording (``recordingStatus`` follows)."""
        return defer.ensureDeferred(self._control(agent, pbx, lambda c: c.recording(agent, paused=True)))

    def resume_recording(self, agent: str, *, pbx: str = DEFAULT_PBX) -> Deferred[CurrentCall]:
        """Write the current call's recording again (``recordingStatus`` follows)."""
        return defer.ensureDeferred(self._control(agent, pbx, lambda c: c.recording(agent, paused=False)))

    def spy(
        self, agent: str, supervisor: str, *, mode: str = "listen", pbx: str = DEFAULT_PBX
    ) -> Deferred[str]:
        """Ring ``supervisor``'s phone and join it to the agent's call (``listen``,
        ``whisper`` or ``barge``) through ``[agents].spy_context``; fires with the ActionID."""
        if not is_agent(supervisor):
            return defer.fail(InvalidArgument(f"supervisor: use {AGENT_HINT}"))
        if mode not in SPY_MODES:
            return defer.fail(InvalidArgument(f"mode: one of {', '.join(SPY_MODES)}, not {mode!r}"))
        return defer.ensureDeferred(self._control(agent, pbx, lambda c: c.spy(agent, supervisor, mode)))

    async def _control(self, agent: str, pbx: str, command: Callable[[CallControl], Any]) -> Any:
        unit = self.unit(pbx)
        _check_agent(agent)
        if unit.hub.get(agent) is None:
            raise _unknown_agent(agent, pbx)
        return await command(unit.call_control)

    # -- state documents -----------------------------------------------------------------
    def agent_state(self, agent: str, *, pbx: str = DEFAULT_PBX) -> dict[str, Any]:
        """``GET /agents/{agent}``: the state the agent has been shown, as one document."""
        state = self.unit(pbx).tracker.agent_state(agent)
        if state is None:
            raise _unknown_agent(agent, pbx)
        return state

    def queues(self, *, pbx: str = DEFAULT_PBX) -> dict[str, Any]:
        """``GET /queues``: every tracked queue, its waiting callers and members."""
        return self.unit(pbx).tracker.queues_state()

    def agent_state_async(self, agent: str, *, pbx: str = DEFAULT_PBX) -> Deferred[dict[str, Any]]:
        """:meth:`agent_state` for the HTTP API: on a node that tracks nothing (a web
        node), the document of the node that holds the AMI link, asked through the store."""
        return self._document("agent", self.agent_state, agent, pbx=pbx)

    def supervisor_state_async(self, supervisor: str, *, pbx: str = DEFAULT_PBX) -> Deferred[dict[str, Any]]:
        """:meth:`supervisor_state` for the HTTP API (see :meth:`agent_state_async`)."""
        return self._document("supervisor", self.supervisor_state, supervisor, pbx=pbx)

    def queues_async(self, *, pbx: str = DEFAULT_PBX) -> Deferred[dict[str, Any]]:
        """:meth:`queues` for the HTTP API (see :meth:`agent_state_async`)."""
        return self._document("queues", self.queues, pbx=pbx)

    def _document(
        self, kind: str, local: Callable[..., dict[str, Any]], *args: Any, pbx: str
    ) -> Deferred[Any]:
        try:
            unit = self.unit(pbx)
        except CommandError as e:
            return defer.fail(e)
        ask = getattr(unit.hub.store, "ask", None)
        if ask is None or self.config.node.has_ami:
            return defer.maybeDeferred(local, *args, pbx=pbx)
        try:
            if args:
                _check_agent(args[0], "supervisor" if kind == "supervisor" else "agent")
        except CommandError as e:
            return defer.fail(e)

        async def asked() -> dict[str, Any]:
            answer = await _shared_store_call(ask(kind, {"agent": args[0]} if args else {}))
            if "ok" in answer:
                return dict(answer["ok"])
            if answer.get("error") == "UnknownAgent":
                raise UnknownAgent(str(answer.get("message", "")))
            if answer.get("error") == "UnknownSupervisor":
                raise UnknownSupervisor(str(answer.get("message", "")))
            raise PbxUnavailable(f"the node holding the AMI link failed: {answer.get('message', '')}")

        return defer.ensureDeferred(asked())

    def health(self, pbxes: Iterable[str] | None = None) -> dict[str, Any]:
        """``/health``'s body over ``pbxes`` (default: all; a tenant's key: its own).

        ``ami`` and ``synced`` sum up those PBXes (connected: every one of them);
        ``pbx`` has each one's link state, last event age, agents and clients. A web node
        (no AMI link) is healthy when its shared store is reachable.
        """
        shown = [self.units[p] for p in (self.pbxes if pbxes is None else pbxes) if p in self.units]
        per_pbx = {unit.name: unit.health() for unit in shown}
        connected = all(h["connected"] for h in per_pbx.values())
        ok = connected or (
            not self.config.node.has_ami and bool(self._store_health(shown).get("redis", {}).get("connected"))
        )
        clients: dict[str, int] = {}
        for h in per_pbx.values():
            for transport, count in h["clients"].items():
                clients[transport] = clients.get(transport, 0) + count
        ages = [h["lastEventAge"] for h in per_pbx.values() if h["lastEventAge"] is not None]
        states = {h["state"] for h in per_pbx.values()}
        return {
            "status": "ok" if ok else "unavailable",
            "ami": {
                "connected": connected,
                "state": states.pop() if len(states) == 1 else "mixed",
                "lastEventAge": max(ages) if ages else None,
                "reconnects": sum(h["reconnects"] for h in per_pbx.values()),
            },
            "synced": all(h["synced"] for h in per_pbx.values()),
            "agents": sum(h["agents"] for h in per_pbx.values()),
            "supervisors": sum(h["supervisors"] for h in per_pbx.values()),
            "clients": clients,
            "pbx": per_pbx,
            **self._store_health(shown),
        }

    def pbx_health(self, pbx: str) -> dict[str, Any]:
        """``/health/pbx/{pbx}``'s body: that PBX's link; ``status`` ok once logged in."""
        health = self.unit(pbx).health()
        if not health["connected"]:
            status = "no_holder" if health["state"] == "no_holder" else "unavailable"
        elif health.get("lease", {}).get("held") is False:
            status = "standby"  # a collector: another node holds this PBX, which is up
        else:
            status = "ok"
        return {"pbx": pbx, "status": status, **health}

    # -- internals -----------------------------------------------------------------------
    def _store_health(self, shown: Sequence[PbxUnit]) -> dict[str, Any]:
        """A shared store reports itself (``redis``: connected, pending, buffering...);
        with several PBXes, each PBX's store under ``redis.pbx``: only those ``shown`` (a
        tenant's key sees nothing of another PBX's store)."""
        reports = {}
        for unit in shown:
            health = getattr(unit.hub.store, "health", None)
            if health is not None:
                reports[unit.name] = health()
        if not reports:
            return {}
        if len(self.units) == 1:
            return {"redis": next(iter(reports.values()))}
        first = next(iter(reports.values()))
        return {"redis": {**first, "pbx": reports}}

    def _pbx(self, pbx: str) -> None:
        self.unit(pbx)  # UnknownPbx unless configured

    def _view(self, registration: Registration, pbx: str) -> AgentRegistration:
        return AgentRegistration(
            registration.agent, pbx, tuple(registration.queues), registration.name, registration.token
        )

    def _sync_failed(self, failure: Failure, agent: str) -> None:
        log.failure("state sync for newly registered agent {agent} failed", failure, agent=agent)


async def _shared_store_call(call: Any) -> Any:
    """A shared store's asynchronous call; Redis down or no answer is a 503."""
    from pbxis.store.redis_link import RedisTimeout, RedisUnavailable
    from pbxis.store.redis_queries import QueryTimeout

    try:
        return await call
    except (RedisUnavailable, RedisTimeout, QueryTimeout) as e:
        # the error's own text names the store's address: for the log, not for clients
        log.warn("the shared store did not answer: {e}", e=e)
        raise PbxUnavailable("the shared store did not answer in time: retry in a few seconds") from None


def _per_pbx(value: Any, names: Sequence[str], what: str) -> dict[str, Any]:
    """A store or relay given for the one PBX, or one per PBX (a mapping by name)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        return {names[0]: value}
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ConfigError(f"[[pbx]]: a {what} for PBX {unknown[0]!r}, which is not configured")
    return dict(value)


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _unknown_agent(agent: str, pbx: str = DEFAULT_PBX) -> UnknownAgent:
    where = "" if pbx == DEFAULT_PBX else f"/pbx/{pbx}"
    return UnknownAgent(
        f"agent {agent} is not registered on PBX {pbx}; register it with PUT {where}/agents/{agent}"
    )


def _check_agent(agent: object, what: str = "agent") -> None:
    if not is_agent(agent):
        raise InvalidArgument(f"{what}: use {AGENT_HINT}")


def _check_queues(queues: Iterable[str]) -> tuple[str, ...]:
    if isinstance(queues, str):
        raise InvalidArgument('queues: a list of queue names, e.g. ["sales"], not one string')
    out: dict[str, None] = {}
    for queue in queues:
        if not is_queue(queue):
            raise InvalidArgument(f"queues: {str(queue)[:70]!r} is not a queue name ({QUEUE_HINT})")
        out[queue] = None
    return tuple(out)


ConfigSource = Config | Mapping[str, Any] | str | Path


def as_config(config: ConfigSource) -> Config:
    """A :class:`~pbxis.config.Config` from a path, a parsed TOML dict, or a Config."""
    if isinstance(config, Config):
        return config
    if isinstance(config, (str, Path)):
        return load_config(config)
    if isinstance(config, Mapping):
        return parse_config(config)
    raise ConfigError(f"config: a path, a TOML dict or a pbxis.Config, not {type(config).__name__}")


def connect(reactor: IReactorTime, config: ConfigSource) -> Deferred[CallCenter]:
    """Start a :class:`CallCenter` on ``config``; fires once its PBX link is logged in and
    its state rebuilt.

    ``[ami]`` says where Asterisk is; ``[http]`` and ``[simulator]`` belong to the daemon
    and are ignored; ``[redis]`` is refused (the shared store is the daemon's). Never
    raises: a bad config errbacks with a :class:`~pbxis.config.ConfigError` naming the
    key. The link keeps retrying until it is up; bound the wait with ``addTimeout`` if
    you need to.
    """
    try:
        parsed = as_config(config)
        if parsed.redis is not None:
            # Refused, not ignored: a program that asked for durable, shared state must not
            # run on memory without knowing it.
            raise ConfigError(
                "[redis]: pbxis.connect keeps its state in memory; the shared store runs in "
                "the daemon (twistd pbxis). Remove [redis] from this config, or run the daemon."
            )
        center = CallCenter(reactor, parsed)
        center.start()
    except (ConfigError, CommandError) as e:
        return defer.fail(e)
    return center.when_ready()
