"""The call center's supervisors: registrations in the hub, a board of their queues.

A supervisor is registered in the hub exactly like an agent, under the key
``supervisor:<name>`` (:func:`pbxis.supervisors.supervisor_key`), so its token, log,
transports, resume, grace period and ``reset`` are the agents' own. Its queues are the
board's, not the hub registration's: the hub fans the agents' ``queueCount`` out to a
registration's queues, which a supervisor's stream does not carry (it has
``queueStats``). :class:`~pbxis.engine.CallCenter` holds one :class:`Supervision` and
exposes it as ``register_supervisor``, ``unregister_supervisor`` and
``supervisor_state``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from pbxis.ami.client import AMIClientFactory
from pbxis.config import Config
from pbxis.errors import InvalidArgument, UnknownSupervisor
from pbxis.events import AgentEvent
from pbxis.hub import Hub, Registration
from pbxis.supervisors import QueueBoard, agents_by_template, supervisor_key
from pbxis.supervisors.sync import SupervisorSync
from pbxis.sync import StateSync

__all__ = ["Supervision", "SupervisorRegistration", "supervisor_queues"]

log = Logger(namespace="pbxis.engine")


@dataclass(frozen=True, slots=True)
class SupervisorRegistration:
    """What :meth:`~pbxis.engine.CallCenter.register_supervisor` returns."""

    supervisor: str
    pbx: str
    queues: tuple[str, ...]
    name: str | None
    token: str = field(repr=False)


class Supervision:
    """Supervisors of one PBX: the board, its sync on the AMI link, the hub keys."""

    def __init__(
        self,
        reactor: IReactorTime,
        config: Config,
        hub: Hub,
        ami: AMIClientFactory,
        agent_sync: StateSync,
        now_ms: Callable[[], int],
        publish: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self.hub = hub
        self.now_ms = now_ms
        #: False on a web node: the node holding the AMI link keeps the board
        self.tracks = config.node.has_ami
        self.board = QueueBoard(agents_by_template(config.agents.interface))
        self.sync = SupervisorSync(
            ami,
            self.board,
            # the unit's publish: with a durable store, a rebuild repeats no state the
            # supervisor had (pbxStatus true after a restart or a takeover)
            hub.publish if publish is None else publish,
            agent_sync,
            clock=reactor,
            now_ms=now_ms,
            action_timeout=config.ami.action_timeout,
        )
        ami.add_observer(self.sync)  # after the agents' sync: it sees each event second

    def register(
        self, name: str, queues: tuple[str, ...], display_name: str | None, pbx: str
    ) -> tuple[SupervisorRegistration, Registration]:
        """Register (again: same token, new queues and name); the board loads new queues."""
        key = supervisor_key(name)
        registration = self.hub.register(key, (), display_name)
        self.hub.store.watch(key, queues)  # kept with the registration (a shared store)
        if self.tracks:
            self.sync.supervisor_registered(key, queues).addErrback(self._load_failed, name)
        log.info("supervisor {name} registered for queues {queues}", name=name, queues=list(queues))
        return self._view(name, registration, pbx, queues), registration

    def unregister(self, name: str) -> None:
        key = supervisor_key(name)
        if not self.hub.unregister(key):
            raise unknown_supervisor(name)
        self.sync.supervisor_unregistered(key)
        log.info("supervisor {name} unregistered", name=name)

    def registration(self, name: str, pbx: str) -> SupervisorRegistration | None:
        registration = self.hub.get(supervisor_key(name))
        return None if registration is None else self._view(name, registration, pbx)

    def state(self, name: str, pbx: str) -> dict[str, Any]:
        key = supervisor_key(name)
        registration = self.hub.get(key)
        state = self.sync.state(key)
        if registration is None or state is None:
            raise unknown_supervisor(name)
        return {"supervisor": name, "pbx": pbx, "name": registration.name, **state}

    @property
    def count(self) -> int:
        """Registered supervisors."""
        return self.board.supervisors

    def snapshot(self, key: str) -> list[AgentEvent]:
        """The hub's snapshot of a supervisor's new client."""
        return self.sync.snapshot(key)

    def expired(self, key: str) -> None:
        """The hub ended the registration (no client for the grace period)."""
        log.info("{key}: no client for the grace period; registration ended", key=key)
        self.sync.supervisor_unregistered(key)

    def stop(self) -> None:
        self.sync.stop()

    def _view(
        self, name: str, registration: Registration, pbx: str, asked: tuple[str, ...] = ()
    ) -> SupervisorRegistration:
        # a web node has no board: the queues asked are the answer (the writer's board loads them)
        queues = self.board.queues_of(registration.agent) or asked
        return SupervisorRegistration(name, pbx, tuple(queues), registration.name, registration.token)

    def _load_failed(self, failure: Failure, name: str) -> None:
        log.failure("loading the queues of supervisor {name} failed", failure, name=name)


def unknown_supervisor(name: str) -> UnknownSupervisor:
    return UnknownSupervisor(f"supervisor {name} is not registered; register it with PUT /supervisors/{name}")


def supervisor_queues(
    queues: Iterable[str], check: Callable[[Iterable[str]], tuple[str, ...]]
) -> tuple[str, ...]:
    """The queues a supervisor watches: at least one (a wallboard of nothing is a mistake)."""
    wanted = check(queues)
    if not wanted:
        raise InvalidArgument('queues: at least one queue, e.g. ["sales"]')
    return wanted
