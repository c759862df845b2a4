"""The :class:`Simulator` façade: one PBX, its AMI sessions, faults and demo load."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, MutableMapping
from typing import cast

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from ..ami.message import Message
from . import call_control, codes
from .actions import actions_for
from .center import CallCenter
from .config import BEHAVIOURS, Behaviour, SimulatorConfig
from .context import EventSink, Handler
from .customer import CustomerCall
from .headers import Pairs
from .load import Load
from .pbx import PBX
from .session import AMIServerFactory, AMISession

__all__ = ["Simulator"]

log = Logger()


class Simulator:
    """A simulated Asterisk 20 (chan_sip) or 22 (PJSIP) call center speaking AMI.

    Deterministic for a given ``seed`` and ``clock`` (use ``task.Clock`` in tests and
    advance it); give it the reactor for live use (``seed=None``: a different run each
    time, as the demo's ``[simulator] seed`` left out). ``history`` keeps the last events
    published (before any session's filter), handy in tests.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: IReactorTime | None = None,
        seed: int | None = 0,
        username: str = "pbxis",
        secret: str = "pbxis-secret",
        history: int = 10_000,
    ) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        assert clock is not None
        self.config = config or SimulatorConfig.lab()
        self.clock = clock
        self.rng = random.Random(seed)
        self.username, self.secret = username, secret
        self.sessions: list[AMISession] = []
        self.actions: MutableMapping[str, Handler] = actions_for(
            self.config.personality, call_control.ACTIONS
        )
        self.history: deque[Message] = deque(maxlen=history)
        self.stalled = False
        self.shutting_down = False
        self.booted = True
        self._boot_call: IDelayedCall | None = None
        self.pbx = PBX(self.config, clock, self.rng, self.publish)
        self.center = CallCenter(self.pbx)
        self.factory = AMIServerFactory(self)
        self.load = Load(self)

    # -- sessions (the SessionHost seam) ---------------------------------------------------------
    def attach(self, session: EventSink) -> None:
        """A session connected: it gets events from now on."""
        if not isinstance(session, AMISession):
            raise TypeError(f"not an AMI session: {session!r}")
        self.sessions.append(session)

    def detach(self, session: EventSink) -> None:
        if session in self.sessions:
            self.sessions.remove(session)

    # -- events -------------------------------------------------------------------------------------
    def publish(self, name: str, pairs: Pairs) -> None:
        """Send one asynchronous event to every session whose mask and filters allow it."""
        event_class = codes.event_class(name)
        message = Message([("Event", name), ("Privilege", f"{event_class},all"), *pairs])
        self.history.append(message)
        if not self.sessions:
            return
        text = message.to_bytes().decode("utf-8")
        for session in list(self.sessions):
            session.deliver(message, event_class, text)

    # -- driving calls ------------------------------------------------------------------------------
    def customer_call(
        self,
        queue: str,
        number: str = "385911234567",
        name: str = "Customer",
        talk_time: float = 3.0,
        max_wait: float = 60.0,
        *,
        hangup_after: float | None = None,
    ) -> str:
        """A customer enters ``queue``; returns the caller's Uniqueid (the ``;2`` channel).

        ``max_wait`` is the Queue() timeout; ``hangup_after`` makes the customer give up
        (abandon) earlier. Raises ``KeyError`` for an unknown queue.
        """
        q = self.pbx.queue(queue)
        if q is None:
            raise KeyError(f"no such queue: {queue}")
        call = CustomerCall(self.center, q, number, name, talk_time, max_wait, hangup_after=hangup_after)
        call.start()
        return call.uniqueid

    def set_phone(self, agent: str, behaviour: Behaviour, ring_delay: float | None = None) -> None:
        """How ``agent``'s phone reacts to calls: answer, busy, no_answer, unavailable."""
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour must be one of {BEHAVIOURS}")
        phone = self.config.phone(agent)
        if phone is None:
            raise KeyError(f"no such phone: {agent}")
        self.pbx.behaviour[agent] = behaviour
        if ring_delay is not None:
            self.pbx.ring_delay[agent] = ring_delay
        self.pbx.refresh_device(phone.device)
        self.center.dispatch_all()

    def set_number(self, number: str, behaviour: Behaviour) -> None:
        """How an outside number dialled through the trunk reacts (default: answer)."""
        self.pbx.number_behaviour[number] = behaviour

    def hold(self, agent: str) -> None:
        self.center.hold(agent, True)

    def unhold(self, agent: str) -> None:
        self.center.hold(agent, False)

    def hangup_agent(self, agent: str) -> None:
        """The agent hangs up (or rejects a ringing call). ``LookupError`` if idle."""
        ch = self.center.agent_channel(agent)
        if ch is None:
            raise LookupError(f"agent {agent} has no call")
        self.center.hangup(ch)

    def queue_add(
        self,
        queue: str,
        interface: str,
        *,
        name: str | None = None,
        state_interface: str | None = None,
        penalty: int = 0,
        paused: bool = False,
        reason: str = "",
    ) -> None:
        """Like the QueueAdd action; raises ``pbx.MemberError`` with Asterisk's text."""
        self.pbx.add_member(
            queue,
            interface,
            name=name,
            state_interface=state_interface,
            penalty=penalty,
            paused=paused,
            reason=reason,
        )
        self.center.dispatch_all()

    def queue_remove(self, queue: str, interface: str) -> None:
        self.pbx.remove_member(queue, interface)

    def queue_pause(
        self, interface: str, paused: bool = True, queue: str | None = None, reason: str = ""
    ) -> None:
        self.pbx.pause_member(interface, paused, queue, reason)
        self.center.dispatch_all()

    def user_event(self, name: str, **fields: str) -> None:
        self.pbx.emit("UserEvent", [("UserEvent", name), *fields.items()])

    # -- faults -------------------------------------------------------------------------------------
    def drop_connections(self, mid_message: bool = False) -> None:
        """Close every AMI session abruptly (optionally after half an event)."""
        for session in list(self.sessions):
            if mid_message:
                # Half an event, then the close (flushed: abort would discard the half).
                tech = self.config.personality.tech.encode()
                session.write_raw(b"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: " + tech + b"/10")
                session.close()
            else:
                session.abort()

    def stall(self, on: bool = True) -> None:
        """Stop reading and writing on every session (and new ones) until ``stall(False)``."""
        self.stalled = on
        for session in list(self.sessions):
            session.stall(on)

    def send_garbage(self, data: bytes = b"\x00\xff garbage \r\n\r\n") -> None:
        for session in list(self.sessions):
            session.write_raw(data)

    def restart(self, clean: bool = True, keep_dynamic_members: bool = True) -> None:
        """Restart Asterisk: Shutdown (if clean), close sessions, boot again.

        Calls in progress vanish. Dynamic members survive as with
        ``persistentmembers=yes`` unless ``keep_dynamic_members`` is false. For
        ``config.boot_time`` seconds new logins get no FullyBooted; then the boot
        events (global VarSet, hints, FullyBooted) are published.
        """
        if clean:
            uncleanly = bool(self.pbx.channels)
            self.publish(
                "Shutdown",
                [("Shutdown", "Uncleanly" if uncleanly else "Cleanly"), ("Restart", "False")],
            )
            for session in list(self.sessions):
                session.close()
        else:
            for session in list(self.sessions):
                session.abort()
        self.load.pause()
        self.center.reset()
        kept = self.pbx.dynamic_members() if keep_dynamic_members and self.config.persistent_members else []
        self.pbx.boot(kept)
        self.booted = False
        if self._boot_call is not None and self._boot_call.active():
            self._boot_call.cancel()
        self._boot_call = self.clock.callLater(self.config.boot_time, self._fully_booted)

    def _fully_booted(self) -> None:
        self._boot_call = None
        self.booted = True
        self.pbx.started = self.clock.seconds()  # Asterisk counts uptime from full boot
        up = str(self.pbx.uptime())
        if not self.config.personality.boot_hint_status:
            # Asterisk 22 (restart_reconnect): no globals' VarSet, no empty-Hint
            # ExtensionStatus; FullyBooted laid out as at login.
            self.publish("FullyBooted", [("Uptime", up), ("LastReload", up), ("Status", "Fully Booted")])
            self.load.resume()
            return
        self.publish(
            "VarSet",
            [("Channel", "none"), ("Uniqueid", "none"), ("Variable", "TRUNK"), ("Value", self.config.trunk)],
        )
        for phone in self.config.phones:
            self.publish(
                "ExtensionStatus",
                [
                    ("Exten", phone.exten),
                    ("Context", self.config.hint_context),
                    ("Hint", ""),
                    ("Status", "0"),
                    ("StatusText", "Idle"),
                ],
            )
        self.publish("FullyBooted", [("Status", "Fully Booted"), ("Uptime", up), ("LastReload", up)])
        self.load.resume()

    # -- demo load ----------------------------------------------------------------------------------
    def start_load(
        self,
        rate_per_minute: float = 6.0,
        talk_time: tuple[float, float] = (20.0, 60.0),
        *,
        pause_every: float | None = 90.0,
    ) -> None:
        """Customers arrive at random (Poisson) into random queues; agents pause now and then."""
        self.load.start(rate_per_minute, talk_time, pause_every=pause_every)

    def stop_load(self) -> None:
        self.load.stop()

    def login_agents(self, agents: Iterable[str] | None = None) -> None:
        """Add every phone (or ``agents``) as a dynamic member of every queue."""
        for exten in agents or [p.exten for p in self.config.phones]:
            phone = self.config.phone(exten)
            if phone is None or self.pbx.behaviour.get(exten) == "busy":
                continue
            for q in self.pbx.queues.values():
                if phone.device not in q.members:
                    self.queue_add(q.name, phone.device, name=phone.name, state_interface=phone.device)

    def shutdown(self) -> None:
        """Stop timers and close sessions without events (for test clean-up)."""
        self.load.stop()
        self.center.reset()
        if self._boot_call is not None and self._boot_call.active():
            self._boot_call.cancel()
        for session in list(self.sessions):
            session.abort()
