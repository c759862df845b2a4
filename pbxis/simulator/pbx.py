"""The simulated PBX's state and the events every change of it produces.

:class:`PBX` owns the channels, bridges, devices and queues, hands out Asterisk-shaped
identifiers (``SIP/1001-0000000a``, uniqueids ``<epoch>.<n>``), and turns state changes
into events through one ``emit(name, pairs)`` callback. It knows nothing about
sockets: the simulator fans ``emit`` out to the AMI sessions.

Device state is cached like Asterisk's: a DeviceStateChange (and the ExtensionStatus /
QueueMemberStatus it causes) goes out only when the aggregate state really changes.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator

from twisted.internet.interfaces import IReactorTime

from . import codes
from .config import Behaviour, PhoneConfig, SimulatorConfig
from .headers import Pairs, bridge_header, channel_header, member_fields
from .model import Bridge, Channel, Member, QueueState

__all__ = ["PBX", "EmitFn", "MemberError"]

EmitFn = Callable[[str, Pairs], None]
_TEST_EPOCH = 1_795_693_400  # a task.Clock starts at 0; uniqueids still look like epochs


class MemberError(Exception):
    """A queue member operation Asterisk refuses; ``str()`` is Asterisk's message."""


class PBX:
    def __init__(
        self, config: SimulatorConfig, clock: IReactorTime, rng: random.Random, emit: EmitFn
    ) -> None:
        self.config = config
        self.clock = clock
        self.rng = rng
        self.emit = emit
        self._epoch_offset = _TEST_EPOCH if clock.seconds() < 1e9 else 0
        self.behaviour: dict[str, Behaviour] = {p.exten: p.behaviour for p in config.phones}
        self.ring_delay: dict[str, float] = {p.exten: p.ring_delay for p in config.phones}
        self.number_behaviour: dict[str, Behaviour] = dict(config.number_behaviour)
        self.personality = config.personality
        #: the race of ``captures-pjsip22/inbound_call``: the caller's channel is gone when
        #: app_queue reports, so AgentComplete carries no Channel/Uniqueid/CallerID*
        self.late_agent_complete = False
        self.queues: dict[str, QueueState] = {}
        self.boot(
            [
                Member(q, m.interface, m.name, m.state_interface or m.interface, penalty=m.penalty)
                for q, m in config.persisted
            ]
        )

    # -- lifecycle ---------------------------------------------------------------
    def boot(self, kept: list[Member] | None = None) -> None:
        """(Re)start: fresh counters, static members from config, kept dynamic ones."""
        self.started = self.clock.seconds()
        self._chan_seq: dict[str, int] = {}
        self.hints: dict[str, int] = {}
        self._uid_seq = 0
        self.channels: dict[str, Channel] = {}
        self.bridges: dict[str, Bridge] = {}
        self.devices: dict[str, int] = {}
        self.member_states: dict[str, int] = {}  # device -> state app_queue last reported
        self.calls: list[object] = []
        login = self.epoch()
        self.queues = {}
        for qc in self.config.queues:
            q = QueueState(qc.name, qc.strategy, qc.timeout, qc.retry)
            for mc in qc.members:
                q.members[mc.interface] = Member(
                    q.name,
                    mc.interface,
                    mc.name,
                    mc.state_interface or mc.interface,
                    membership="static",
                    penalty=mc.penalty,
                    login_time=login,
                )
            self.queues[q.name] = q
        for m in kept or ():
            home = self.queues.get(m.queue)
            if home is not None and m.interface not in home.members:
                m.calls_taken = m.last_call = 0
                m.in_call = False
                m.login_time = login
                home.members[m.interface] = m
        for phone in self.config.phones:
            self.devices[phone.device] = self.member_states[phone.device] = self._phone_state(phone.device)
        for q in self.queues.values():
            self.devices[f"Queue:{q.name}"] = codes.NOT_INUSE
            self.devices[f"Queue:{q.name}_avail"] = self._avail(q)
            for m in q.members.values():
                self.devices[self._pause_device(m)] = codes.INUSE if m.paused else codes.NOT_INUSE
        self.devices[self.config.trunk] = codes.NOT_INUSE

    def dynamic_members(self) -> list[Member]:
        return [m for q in self.queues.values() for m in q.members.values() if m.membership == "dynamic"]

    # -- time and identifiers --------------------------------------------------------
    def now(self) -> float:
        return self.clock.seconds()

    def epoch(self) -> int:
        return int(self.clock.seconds() + self._epoch_offset)

    def uptime(self) -> int:
        return int(self.clock.seconds() - self.started)

    def _uniqueid(self) -> str:
        uid = f"{self.epoch()}.{self._uid_seq}"
        self._uid_seq += 1
        return uid

    def _next_suffix(self, tech: str) -> str:
        """Each channel driver numbers its channels on its own (``SIP/...-00000003``)."""
        seq = self._chan_seq.get(tech, 0)
        self._chan_seq[tech] = seq + 1
        return f"{seq:08x}"

    def new_channel(self, base: str, linkedid: str | None = None, **fields: object) -> Channel:
        """A channel named ``<base>-<8 hex>``."""
        name = f"{base}-{self._next_suffix(base.split('/', 1)[0])}"
        return self._add(name, linkedid, fields)

    def new_local_pair(self, exten: str, context: str) -> tuple[Channel, Channel]:
        base = f"Local/{exten}@{context}-{self._next_suffix('Local')}"
        one = self._add(base + ";1", None, {"context": context, "exten": exten})
        two = self._add(base + ";2", one.uniqueid, {"context": context, "exten": exten, "state": codes.RING})
        return one, two

    def _add(self, name: str, linkedid: str | None, fields: dict[str, object]) -> Channel:
        uid = self._uniqueid()
        ch = Channel(name=name, uniqueid=uid, linkedid=linkedid or uid, created=self.now())
        for key, value in fields.items():
            setattr(ch, key, value)
        self.channels[name] = ch
        return ch

    def find_channel(self, key: str) -> Channel | None:
        ch = self.channels.get(key)
        if ch is not None:
            return ch
        return next((c for c in self.channels.values() if c.uniqueid == key), None)

    def new_bridge(self) -> Bridge:
        bridge = Bridge(str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
        self.bridges[bridge.uniqueid] = bridge
        return bridge

    # -- events ------------------------------------------------------------------------
    def channel_event(self, name: str, ch: Channel, *extra: tuple[str, str]) -> None:
        self.emit(name, [*channel_header(ch), *extra])

    def drop(self, ch: Channel) -> None:
        """Forget a channel before its Hangup is published (device state goes first)."""
        self.channels.pop(ch.name, None)

    def hangup(self, ch: Channel, cause: int) -> None:
        self.channels.pop(ch.name, None)
        self.channel_event(
            "Hangup",
            ch,
            ("Cause", str(cause)),
            ("Cause-txt", codes.CAUSES.get(cause, "Unknown")),
            *self._tech_cause(ch, cause),
        )

    def hangup_request(self, ch: Channel, cause: int) -> None:
        """The channel driver asks for a hangup (PJSIP on a 486: before the originate gives up)."""
        self.channel_event("HangupRequest", ch, ("Cause", str(cause)), *self._tech_cause(ch, cause))

    def _tech_cause(self, ch: Channel, cause: int) -> Pairs:
        """PJSIP reports the SIP response behind a cause (486 busy, 480 no answer)."""
        if not self.personality.tech_cause or ch.tech != "PJSIP" or cause not in codes.SIP_RESPONSES:
            return []
        return [("TechCause", codes.SIP_RESPONSES[cause])]

    def bridge_event(self, name: str, bridge: Bridge, ch: Channel | None = None) -> None:
        pairs = bridge_header(bridge)
        if ch is not None:
            pairs += channel_header(ch)
        self.emit(name, pairs)

    # -- devices -----------------------------------------------------------------------
    def phone(self, device: str) -> PhoneConfig | None:
        tech, _, exten = device.partition("/")
        phone = self.config.phone(exten)
        return phone if phone is not None and phone.tech == tech else None

    def _phone_state(self, device: str) -> int:
        phone = self.phone(device)
        if phone is None:
            return codes.NOT_INUSE if device == self.config.trunk else codes.INVALID
        chans = [c for c in self.channels.values() if c.device == device]
        if not chans:
            return codes.UNAVAILABLE if self.behaviour[phone.exten] == "unavailable" else codes.NOT_INUSE
        up = [c for c in chans if c.state == codes.UP]
        ringing = any(c.state != codes.UP for c in chans)
        if up and ringing:
            return codes.RINGINUSE
        if up:
            return codes.ONHOLD if all(c.on_hold for c in up) else codes.INUSE
        return codes.RINGING

    def device_state(self, device: str) -> int:
        if device in self.devices:
            return self.devices[device]
        return self._phone_state(device)

    def update_hint(self, device: str, state: int | None = None) -> None:
        """Publish ExtensionStatus for a phone's hint if its extension state changed.

        chan_sip updates the hint a little before the device state settles (the
        captures show ExtensionStatus first at hangup), hence a separate step.
        """
        phone = self.phone(device)
        if phone is None:
            return
        if state is None:
            state = self._phone_state(device)
        status, text = codes.EXTENSION_STATES[state]
        if self.hints.get(phone.exten, 0) == status:
            return
        self.hints[phone.exten] = status
        self.emit(
            "ExtensionStatus",
            [
                ("Exten", phone.exten),
                ("Context", self.config.hint_context),
                ("Hint", phone.device),
                ("Status", str(status)),
                ("StatusText", text),
            ],
        )

    def refresh_device(self, device: str, *, hint: bool = True, announce: bool = True) -> None:
        """Recompute a phone's state; on change emit ExtensionStatus, QMS, DSC.

        ``hint=False`` leaves the ExtensionStatus for a later :meth:`update_hint`,
        ``announce=False`` the DeviceStateChange for a later :meth:`republish_device`.
        """
        state = self._phone_state(device)
        if self.devices.get(device) == state:
            if self.member_states.get(device, state) != state:  # settle() left app_queue behind
                self._members_see(device, state)
            return
        self.devices[device] = state
        if hint:
            self.update_hint(device, state)
        # The manager and app_queue subscribe to device state separately and race; the
        # captures show app_queue's QueueMemberStatus first only when a call is answered.
        if announce and state != codes.INUSE:
            self._publish_device(device, state)
        self._members_see(device, state)
        if announce and state == codes.INUSE:
            self._publish_device(device, state)

    def _members_see(self, device: str, state: int) -> None:
        self.member_states[device] = state
        for q in self.queues.values():
            for m in q.members.values():
                if m.state_interface == device:
                    self.emit("QueueMemberStatus", member_fields(m, state))
                    self.update_avail(q)

    def settle(self, device: str, *steps: str) -> None:
        """A phone's new state reaches its subscribers one by one, in ``steps`` order.

        Asterisk 22's captures show the device-state fan-out as separate steps that
        interleave with the channel events: ``hint`` (ExtensionStatus), ``dsc``
        (DeviceStateChange) and ``qms`` (app_queue's QueueMemberStatus). Each step
        reports only a change since it last reported, so a flow can settle the hint
        now and the members later.
        """
        state = self._phone_state(device)
        for step in steps:
            if step == "hint":
                self.update_hint(device, state)
            elif step == "dsc" and self.devices.get(device) != state:
                self.devices[device] = state
                self._publish_device(device, state)
            elif step == "qms" and self.member_states.get(device, self.devices.get(device)) != state:
                self._members_see(device, state)

    def republish_device(self, device: str) -> None:
        """chan_sip publishes RINGING again once the phone reports 180 (see captures)."""
        self._publish_device(device, self.devices.get(device, codes.NOT_INUSE))

    def _publish_device(self, device: str, state: int) -> None:
        self.emit("DeviceStateChange", [("Device", device), ("State", codes.DEVICE_TOKENS[state])])

    def set_device(self, device: str, state: int) -> None:
        """Publish a non-phone device state (queues, pause devices) if it changed."""
        if self.devices.get(device) == state:
            return
        self.devices[device] = state
        self._publish_device(device, state)

    def local_device(self, ch: Channel, state: int | None = None) -> None:
        """Local devices are not cached: each half's change publishes the aggregate state."""
        if state is None:
            busy = any(c.device == ch.device for c in self.channels.values())
            state = codes.INUSE if busy else codes.NOT_INUSE
        self._publish_device(ch.device, state)

    # -- queues ----------------------------------------------------------------------------
    def member_status(self, m: Member) -> int:
        return self.device_state(m.state_interface)

    def member_available(self, m: Member) -> bool:
        return not m.paused and self.member_status(m) in (codes.NOT_INUSE, codes.UNKNOWN)

    def _avail(self, q: QueueState) -> int:
        ok = any(self.member_available(m) for m in q.members.values())
        return codes.NOT_INUSE if ok else codes.INUSE

    def update_avail(self, q: QueueState) -> None:
        self.set_device(f"Queue:{q.name}_avail", self._avail(q))

    @staticmethod
    def _pause_device(m: Member) -> str:
        return f"Queue:{m.queue}_pause_{m.interface}"

    def members_of(self, interface: str, queue: str | None = None) -> Iterator[Member]:
        for q in self.queues.values():
            if queue is not None and q.name.lower() != queue.lower():
                continue
            m = q.members.get(interface)
            if m is not None:
                yield m

    def add_member(
        self,
        queue: str,
        interface: str,
        *,
        name: str | None = None,
        state_interface: str | None = None,
        penalty: int = 0,
        paused: bool = False,
        reason: str = "",
        wrapuptime: int = 0,
    ) -> Member:
        q = self._queue(queue, "Unable to add interface to queue: No such queue")
        if interface in q.members:
            raise MemberError("Unable to add interface: Already there")
        now = self.epoch()
        m = Member(
            q.name,
            interface,
            name or interface,
            state_interface or interface,
            penalty=penalty,
            login_time=now,
            paused=paused,
            paused_reason=reason if paused else "",
            last_pause=now if paused else 0,
            wrapuptime=wrapuptime,
        )
        for other in self.members_of(interface):  # shared_lastcall
            m.calls_taken, m.last_call = other.calls_taken, other.last_call
        q.members[interface] = m
        self.set_device(self._pause_device(m), codes.INUSE if paused else codes.NOT_INUSE)
        self.emit("QueueMemberAdded", member_fields(m, self.member_status(m)))
        self.update_avail(q)
        return m

    def remove_member(self, queue: str, interface: str) -> Member:
        q = self._queue(queue, "Unable to remove interface from queue: No such queue")
        m = q.members.get(interface)
        if m is None:
            raise MemberError("Unable to remove interface: Not there")
        if m.membership != "dynamic":
            raise MemberError("Member not dynamic")
        del q.members[interface]
        self.emit("QueueMemberRemoved", member_fields(m, self.member_status(m)))
        self.update_avail(q)
        self.set_device(self._pause_device(m), codes.NOT_INUSE)
        return m

    def pause_member(self, interface: str, paused: bool, queue: str | None, reason: str) -> None:
        members = list(self.members_of(interface, queue))
        if not members:
            raise MemberError("Interface not found")
        for m in members:
            m.paused = paused
            m.paused_reason = reason
            if paused:
                m.last_pause = self.epoch()
            self.set_device(self._pause_device(m), codes.INUSE if paused else codes.NOT_INUSE)
            self.update_avail(self.queues[m.queue])
            self.emit("QueueMemberPause", member_fields(m, self.member_status(m)))

    def _queue(self, name: str, error: str) -> QueueState:
        for q in self.queues.values():
            if q.name.lower() == name.lower():
                return q
        raise MemberError(error)

    def queue(self, name: str) -> QueueState | None:
        return next((q for q in self.queues.values() if q.name.lower() == name.lower()), None)

    def complete_member_call(self, interface: str) -> None:
        """After a queue call: CallsTaken/LastCall in every queue (shared_lastcall)."""
        now = self.epoch()
        for m in self.members_of(interface):
            m.calls_taken += 1
            m.last_call = now
            m.in_call = False
