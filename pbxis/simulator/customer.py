"""A customer calling into a queue, as the lab's ``Local/<queue>@callers`` pair.

Event order follows the ``inbound_call`` and ``queue_waiting`` captures: join, ring
members, answer (MixMonitor, AgentConnect, bridge), talk, hang up; or leave
unanswered (queue timeout, originate timeout, abandon).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from twisted.internet.interfaces import IDelayedCall

from . import codes
from .config import PhoneConfig
from .flow import CID_PRES, FlowHost, Origin, Timers, dial_event, hold
from .model import Bridge, Channel, Member, QueueCaller, QueueState

__all__ = ["CustomerCall"]


@dataclass
class _Leg:
    member: Member
    channel: Channel
    started: float
    timers: list[IDelayedCall] = field(default_factory=list)


class CustomerCall:
    """A customer calling into a queue: the lab's ``Local/<queue>@callers`` pair.

    ``;2`` runs ``Queue()`` (the caller the agents see), ``;1`` is the customer's side
    that is answered when an agent answers, then talks ``talk_time`` seconds.
    """

    def __init__(
        self,
        center: FlowHost,
        queue: QueueState,
        number: str,
        name: str,
        talk_time: float,
        max_wait: float,
        *,
        origin: Origin | None = None,
        originate_timeout: float | None = None,
        hangup_after: float | None = None,
    ) -> None:
        self.center = center
        self.pbx = center.pbx
        self.queue = queue
        self.number, self.name = number, name
        self.talk_time, self.max_wait = talk_time, max_wait
        self.origin = origin
        self.originate_timeout = originate_timeout
        self.hangup_after = hangup_after
        self.timers = Timers(self.pbx)
        self.legs: list[_Leg] = []
        self.entry: QueueCaller | None = None
        self.agent: _Leg | None = None
        self.bridge: Bridge | None = None
        self.answered_at = 0.0
        self.done = False

    @property
    def uniqueid(self) -> str:
        return self.two.uniqueid

    def start(self) -> None:
        pbx, q = self.pbx, self.queue
        one, two = pbx.new_local_pair(q.name, "callers")
        self.one, self.two = one, two
        self.center.own(self, one, two)
        pbx.channel_event("Newchannel", one)
        pbx.channel_event("Newchannel", two)
        one.cid_num, one.cid_name = self.number, self.name
        pbx.channel_event("NewCallerid", one, CID_PRES)
        one.conn_num, one.conn_name = self.number, self.name
        pbx.channel_event("NewConnectedLine", one)
        two.cid_num, two.cid_name = self.number, self.name
        two.conn_num, two.conn_name = self.number, self.name
        pbx.channel_event("NewCallerid", two, CID_PRES)
        pbx.channel_event("NewConnectedLine", two)
        dial_event(pbx, "DialBegin", None, one, ("DialString", f"{q.name}@callers"))
        one.application, one.app_data = "AppDial2", "(Outgoing Line)"
        two.priority = 4
        two.application, two.app_data = "Queue", f"{q.name},r,,,{int(self.max_wait)}"
        self.entry = QueueCaller(two, pbx.now(), len(q.callers) + 1, self)
        q.callers.append(self.entry)
        pbx.set_device(f"Queue:{q.name}", codes.RINGING)
        pbx.channel_event(
            "QueueCallerJoin",
            two,
            ("Queue", q.name),
            ("Position", str(len(q.callers))),
            ("Count", str(len(q.callers))),
        )
        one.state = codes.RINGING_STATE
        pbx.channel_event("Newstate", one)
        pbx.local_device(one)
        self.timers.later(self.max_wait, self._leave_unanswered, "timeout")
        if self.originate_timeout is not None:
            self.timers.later(self.originate_timeout, self._leave_unanswered, "originate")
        if self.hangup_after is not None:
            self.timers.later(self.hangup_after, self._leave_unanswered, "abandon")
        self.center.dispatch(q)

    # -- ringing members -----------------------------------------------------------------
    @property
    def ringing(self) -> bool:
        return bool(self.legs)

    def ring(self, m: Member, phone: PhoneConfig, *, more: bool = False) -> None:
        """Call one member; ``more``: app_queue goes straight on to ring another one.

        The device state thread usually publishes the phone's RINGING before app_queue
        gets to AgentCalled/DialBegin, except while app_queue hurries on to the next
        member of a ringall (the order the captures show).
        """
        pbx, q, two = self.pbx, self.queue, self.two
        busy = pbx.behaviour.get(phone.exten) == "busy"
        ch = pbx.new_channel(
            m.interface,
            linkedid=self.one.uniqueid,
            cid_num=phone.exten,
            cid_name=phone.name,
            context=pbx.config.hint_context,
            exten="s",
            application="AppQueue",
            app_data="(Outgoing Line)",
        )
        self.center.own(self, ch)
        pbx.channel_event("Newchannel", ch)
        stepwise = pbx.personality.stepwise_device_state
        if not (busy or more or stepwise):
            pbx.refresh_device(ch.device)
        ch.exten = q.name
        ch.conn_num, ch.conn_name = self.number, self.name
        member = (("Queue", q.name), ("Interface", m.interface), ("MemberName", m.name))
        dial_event(pbx, "AgentCalled", two, ch, *member)
        # The dial snapshot predates app_queue's connected-line update (see captures).
        before = replace(ch, exten="", conn_num="<unknown>", conn_name="<unknown>")
        dial_event(pbx, "DialBegin", two, before, ("DialString", m.interface))
        if q.strategy != "ringall":  # one callee: app_queue passes its line on at once
            self._connect_caller(ch)
        leg = _Leg(m, ch, pbx.now())
        if busy:
            if stepwise:  # PJSIP: a 486 before any 180, the phone never rang
                pbx.hangup_request(ch, codes.USER_BUSY)
            dial_event(pbx, "DialEnd", two, ch, ("DialStatus", "BUSY"))
            pbx.hangup(ch, codes.USER_BUSY)
            self._no_answer_event(leg)
            self.timers.later(q.retry, self.center.dispatch, q)
            return
        self.legs.append(leg)
        if stepwise:
            ch.state = codes.RINGING_STATE
            pbx.channel_event("Newstate", ch)
            pbx.channel_event("NewConnectedLine", ch)
            pbx.settle(ch.device, "hint", "dsc", "qms")
            self._plan_answer(leg, phone)
            return
        if more:
            pbx.refresh_device(ch.device)
        ch.state = codes.RINGING_STATE
        pbx.channel_event("Newstate", ch)
        pbx.channel_event("NewConnectedLine", ch)
        pbx.republish_device(ch.device)
        self._plan_answer(leg, phone)

    def _plan_answer(self, leg: _Leg, phone: PhoneConfig) -> None:
        pbx = self.pbx
        if pbx.behaviour.get(phone.exten) == "answer":
            leg.timers.append(self.timers.later(pbx.ring_delay.get(phone.exten, 1.0), self.agent_answer, leg))
        leg.timers.append(self.timers.later(self.queue.timeout, self._ring_timeout, leg))

    def _connect_caller(self, ch: Channel) -> None:
        """The caller's connected line becomes the agent's phone."""
        phone = self.pbx.phone(ch.device)
        two = self.two
        two.conn_num = phone.exten if phone else ch.cid_num
        two.conn_name = phone.name if phone else ch.cid_name
        self.pbx.channel_event("NewConnectedLine", two)

    def _no_answer_event(self, leg: _Leg) -> None:
        ring_ms = int((self.pbx.now() - leg.started) * 1000)
        m = leg.member
        dial_event(
            self.pbx,
            "AgentRingNoAnswer",
            self.two,
            leg.channel,
            ("Queue", self.queue.name),
            ("Interface", m.interface),
            ("MemberName", m.name),
            ("RingTime", str(ring_ms)),
        )

    def _cancel_leg(self, leg: _Leg, status: str = "CANCEL") -> None:
        """Stop ringing one member: DialEnd now; Hangup and device state are the caller's."""
        for call in leg.timers:
            if call.active():
                call.cancel()
        self.legs.remove(leg)
        dial_event(self.pbx, "DialEnd", self.two, leg.channel, ("DialStatus", status))
        self.pbx.drop(leg.channel)

    def _drop_leg(self, leg: _Leg, status: str, cause: int) -> None:
        self._cancel_leg(leg, status)
        self.pbx.hangup(leg.channel, cause)
        self.pbx.refresh_device(leg.channel.device)

    def _ring_timeout(self, leg: _Leg) -> None:
        if leg not in self.legs:
            return
        self._drop_leg(leg, "NOANSWER", codes.NORMAL_CLEARING)
        self._no_answer_event(leg)
        if not self.legs:
            self.timers.later(self.queue.retry, self.center.dispatch, self.queue)

    def reject(self, leg_channel: Channel) -> None:
        """The agent declined the ringing call: app_queue treats it as no answer."""
        leg = next((x for x in self.legs if x.channel is leg_channel), None)
        if leg is not None:
            self._drop_leg(leg, "BUSY", codes.USER_BUSY)
            self._no_answer_event(leg)
            if not self.legs:
                self.timers.later(self.queue.retry, self.center.dispatch, self.queue)

    # -- answer and talk ---------------------------------------------------------------
    def agent_answer(self, leg: _Leg) -> None:
        if leg not in self.legs or self.done:
            return
        pbx, q, one, two, ch, m = self.pbx, self.queue, self.one, self.two, leg.channel, leg.member
        for call in leg.timers:
            if call.active():
                call.cancel()
        self.legs.remove(leg)
        self.agent = leg
        ch.state = codes.UP
        if pbx.personality.stepwise_device_state:
            self._answer_stepwise(leg)
            return
        pbx.refresh_device(ch.device)
        pbx.channel_event("Newstate", ch)
        dial_event(pbx, "DialEnd", two, ch, ("DialStatus", "ANSWER"))
        cancelled = list(self.legs)
        for other in cancelled:
            self._cancel_leg(other)
        if q.strategy == "ringall":  # held back while several phones rang
            self._connect_caller(ch)
        for other in cancelled:  # app_queue and the dial API both report the cancel
            dial_event(pbx, "DialEnd", two, other.channel, ("DialStatus", "CANCEL"))
            pbx.hangup(other.channel, codes.ANSWERED_ELSEWHERE)
        path = f"{pbx.config.monitor_dir}/{two.uniqueid}.{pbx.config.monitor_format}"
        pbx.channel_event("VarSet", two, ("Variable", "MIXMONITOR_FILENAME"), ("Value", path))
        pbx.channel_event("MixMonitorStart", two)
        position = self._leave_queue()
        hold = int(pbx.now() - self.entry.joined) if self.entry else 0
        self.hold_time = hold
        q.record_connected(hold)
        pbx.channel_event(
            "QueueCallerLeave",
            two,
            ("Queue", q.name),
            ("Position", str(position)),
            ("Count", str(len(q.callers))),
        )
        m.in_call = True
        member = (("Queue", q.name), ("Interface", m.interface), ("MemberName", m.name))
        ring = int(pbx.now() - leg.started)
        dial_event(pbx, "AgentConnect", two, ch, *member, ("HoldTime", str(hold)), ("RingTime", str(ring)))
        two.state = codes.UP
        pbx.channel_event("Newstate", two)
        bridge = self.bridge = pbx.new_bridge()
        pbx.bridge_event("BridgeCreate", bridge)
        self._enter(bridge, ch)
        one.state = codes.UP
        one.cid_num, one.cid_name = two.conn_num, two.conn_name
        pbx.channel_event("Newstate", one)
        pbx.channel_event("NewCallerid", one, CID_PRES)
        for other in cancelled:
            pbx.refresh_device(other.channel.device)
        dial_event(pbx, "DialEnd", None, one, ("DialStatus", "ANSWER"))
        pbx.local_device(two)
        pbx.local_device(one)
        one.context, one.exten, one.priority = "customer-talk", _talk_exten(self.talk_time), 3
        one.application, one.app_data = "Wait", one.exten
        if self.origin is not None:
            self.origin.response(pbx, codes.REASON_ANSWERED, one)
        self._enter(bridge, two)
        self.answered_at = pbx.now()
        self.timers.later(self.talk_time, self.end, "caller")

    def _answer_stepwise(self, leg: _Leg) -> None:
        """Asterisk 22's answer (captures-pjsip22 ``queue_waiting``, ``inbound_call``)."""
        pbx, q, one, two, ch, m = self.pbx, self.queue, self.one, self.two, leg.channel, leg.member
        pbx.channel_event("Newstate", ch)
        dial_event(pbx, "DialEnd", two, ch, ("DialStatus", "ANSWER"))
        cancelled = list(self.legs)
        for other in cancelled:
            self._cancel_leg(other)
        if q.strategy == "ringall":
            self._connect_caller(ch)
        for other in cancelled:
            dial_event(pbx, "DialEnd", two, other.channel, ("DialStatus", "CANCEL"))
        path = f"{pbx.config.monitor_dir}/{two.uniqueid}.{pbx.config.monitor_format}"
        pbx.channel_event("VarSet", two, ("Variable", "MIXMONITOR_FILENAME"), ("Value", path))
        pbx.settle(ch.device, "hint", "dsc")
        for other in cancelled:
            pbx.settle(other.channel.device, "hint")
        pbx.channel_event("MixMonitorStart", two)
        for other in cancelled:
            pbx.hangup(other.channel, codes.ANSWERED_ELSEWHERE)
            pbx.settle(other.channel.device, "dsc")
        pbx.settle(ch.device, "qms")
        position = self._leave_queue()
        self.hold_time = int(pbx.now() - self.entry.joined) if self.entry else 0
        pbx.channel_event(
            "QueueCallerLeave",
            two,
            ("Queue", q.name),
            ("Position", str(position)),
            ("Count", str(len(q.callers))),
        )
        for other in cancelled:
            pbx.settle(other.channel.device, "qms")
        m.in_call = True
        member = (("Queue", q.name), ("Interface", m.interface), ("MemberName", m.name))
        ring = int(pbx.now() - leg.started)
        dial_event(pbx, "AgentConnect", two, ch, *member, ("HoldTime", str(self.hold_time)),
                   ("RingTime", str(ring)))  # fmt: skip
        two.state = codes.UP
        pbx.channel_event("Newstate", two)
        one.state = codes.UP
        one.cid_num, one.cid_name = two.conn_num, two.conn_name
        pbx.channel_event("Newstate", one)
        pbx.channel_event("NewCallerid", one, CID_PRES)
        pbx.local_device(two)
        dial_event(pbx, "DialEnd", None, one, ("DialStatus", "ANSWER"))
        pbx.local_device(one)
        one.context, one.exten, one.priority = "customer-talk", _talk_exten(self.talk_time), 3
        one.application, one.app_data = "Wait", one.exten
        bridge = self.bridge = pbx.new_bridge()
        pbx.bridge_event("BridgeCreate", bridge)
        self._enter(bridge, ch)
        self._enter(bridge, two)
        if self.origin is not None:
            self.origin.response(pbx, codes.REASON_ANSWERED, one)
        self.answered_at = pbx.now()
        self.timers.later(self.talk_time, self.end, "caller")

    def _end_stepwise(self, leg: _Leg, bridge: Bridge, talk: int) -> None:
        """Asterisk 22's hang-up by the caller; with ``pbx.late_agent_complete`` the race
        of ``captures-pjsip22/inbound_call``: AgentComplete after the caller's channel is
        gone, without its Channel, Uniqueid and CallerID*."""
        pbx, q, one, two = self.pbx, self.queue, self.one, self.two
        ch, m = leg.channel, leg.member
        complete = (
            ("Queue", q.name),
            ("Interface", m.interface),
            ("MemberName", m.name),
            ("HoldTime", str(self.hold_time)),
            ("TalkTime", str(talk)),
            ("Reason", "caller"),
        )
        one.priority = 5
        pbx.hangup(one, codes.NORMAL_CLEARING)
        late = pbx.late_agent_complete
        if late:
            self._leave(bridge, two)
            pbx.local_device(one, codes.NOT_INUSE)
            pbx.hangup(two, codes.NORMAL_CLEARING)
            pbx.local_device(two, codes.NOT_INUSE)
            dial_event(pbx, "AgentComplete", None, ch, *complete)
        else:
            dial_event(pbx, "AgentComplete", two, ch, *complete)
            self._leave(bridge, two)
        self._leave(bridge, ch)
        pbx.bridges.pop(bridge.uniqueid, None)
        pbx.bridge_event("BridgeDestroy", bridge)
        if not late:
            pbx.hangup(two, codes.NORMAL_CLEARING)
            pbx.local_device(one, codes.NOT_INUSE)
            pbx.local_device(two, codes.NOT_INUSE)
        pbx.complete_member_call(m.interface)
        q.record_completed(self.hold_time, talk)
        if late:
            pbx.update_hint(ch.device, codes.NOT_INUSE)
        pbx.hangup(ch, codes.NORMAL_CLEARING)
        pbx.settle(ch.device, "hint", "dsc", "qms")
        self.center.finished(self)

    def _enter(self, bridge: Bridge, ch: Channel) -> None:
        bridge.channels.append(ch)
        ch.bridge = bridge.uniqueid
        self.pbx.bridge_event("BridgeEnter", bridge, ch)

    def _leave(self, bridge: Bridge, ch: Channel) -> None:
        if ch in bridge.channels:
            bridge.channels.remove(ch)
        ch.bridge = ""
        self.pbx.bridge_event("BridgeLeave", bridge, ch)

    def _leave_queue(self) -> int:
        q = self.queue
        position = q.callers.index(self.entry) + 1 if self.entry in q.callers else 1
        if self.entry in q.callers:
            q.callers.remove(self.entry)
        if not q.callers:
            self.pbx.set_device(f"Queue:{q.name}", codes.NOT_INUSE)
        return position

    def end(self, reason: str) -> None:
        """Hang up a connected call; ``reason`` is AgentComplete's (caller/agent)."""
        if self.done or self.agent is None or self.bridge is None:
            return
        self.done = True
        self.timers.cancel()
        pbx, q, one, two, bridge = self.pbx, self.queue, self.one, self.two, self.bridge
        leg = self.agent
        ch, m = leg.channel, leg.member
        talk = int(pbx.now() - self.answered_at)
        if reason == "caller" and pbx.personality.stepwise_device_state:
            self._end_stepwise(leg, bridge, talk)
            return
        pbx.update_hint(ch.device, codes.NOT_INUSE)
        dial_event(
            pbx,
            "AgentComplete",
            two,
            ch,
            ("Queue", q.name),
            ("Interface", m.interface),
            ("MemberName", m.name),
            ("HoldTime", str(self.hold_time)),
            ("TalkTime", str(talk)),
            ("Reason", reason),
        )
        if reason == "caller":
            # The agent's leg goes down with the bridge; the queue's ;2 half hangs up
            # last, once app_queue has updated its members (the captures' order).
            self._leave(bridge, two)
            one.priority = 5
            pbx.hangup(one, codes.NORMAL_CLEARING)
            self._leave(bridge, ch)
            pbx.hangup(ch, codes.NORMAL_CLEARING)
            pbx.bridges.pop(bridge.uniqueid, None)
            pbx.bridge_event("BridgeDestroy", bridge)
            pbx.complete_member_call(m.interface)
            q.record_completed(self.hold_time, talk)
            pbx.refresh_device(ch.device)
            pbx.local_device(one, codes.NOT_INUSE)
            pbx.hangup(two, codes.NORMAL_CLEARING)
            pbx.local_device(two, codes.NOT_INUSE)
            self.center.finished(self)
            return
        self._leave(bridge, ch)
        pbx.drop(ch)
        self._leave(bridge, two)
        pbx.bridges.pop(bridge.uniqueid, None)
        pbx.bridge_event("BridgeDestroy", bridge)
        pbx.hangup(two, codes.NORMAL_CLEARING)
        pbx.hangup(one, codes.NORMAL_CLEARING)
        pbx.local_device(one)
        pbx.local_device(two)
        pbx.drop(ch)
        pbx.complete_member_call(m.interface)
        q.record_completed(self.hold_time, talk)
        pbx.refresh_device(ch.device)
        pbx.hangup(ch, codes.NORMAL_CLEARING)
        self.center.finished(self)

    # -- leaving unanswered ------------------------------------------------------------------
    def _leave_unanswered(self, why: str) -> None:
        """Queue timeout, originate timeout, or the customer hanging up while waiting."""
        if self.done or self.agent is not None:
            return
        self.done = True
        self.timers.cancel()
        pbx, q, one, two = self.pbx, self.queue, self.one, self.two
        for leg in list(self.legs):
            self._drop_leg(leg, "CANCEL", codes.NORMAL_CLEARING)
        if why == "originate" and self.origin is not None:
            self.origin.response(pbx, codes.REASON_NO_ANSWER, None)
        original = self.entry.original_position if self.entry else 1
        waited = int(pbx.now() - self.entry.joined) if self.entry else 0
        position = self._leave_queue()
        pbx.channel_event(
            "QueueCallerAbandon",
            two,
            ("Queue", q.name),
            ("Position", str(position)),
            ("OriginalPosition", str(original)),
            ("HoldTime", str(waited)),
        )
        pbx.channel_event(
            "QueueCallerLeave",
            two,
            ("Queue", q.name),
            ("Position", str(position)),
            ("Count", str(len(q.callers))),
        )
        q.record_abandoned(waited)
        if why == "originate":
            pbx.hangup(two, codes.NO_ANSWER)
            pbx.hangup(one, codes.NO_ANSWER)
        elif why == "timeout" and self.origin is not None:
            dial_event(pbx, "DialEnd", None, one, ("DialStatus", "NOANSWER"))
            self.origin.response(pbx, codes.REASON_FAILURE, None)
            pbx.hangup(one, codes.NORMAL_CLEARING)
            pbx.hangup(two, codes.NORMAL_CLEARING)
        else:
            pbx.hangup(two, codes.NORMAL_CLEARING)
            pbx.hangup(one, codes.NORMAL_CLEARING)
        pbx.local_device(one)
        pbx.local_device(two)
        self.center.finished(self)

    def hangup_channel(self, ch: Channel, cause: int) -> None:
        if self.agent is not None and not self.done:
            self.end("agent" if ch is self.agent.channel else "caller")
        elif any(leg.channel is ch for leg in self.legs):
            self.reject(ch)
        elif not self.done:
            self._leave_unanswered("abandon")

    def hold(self, ch: Channel, on: bool) -> None:
        hold(self.pbx, ch, on)


def _talk_exten(talk: float) -> str:
    return str(int(talk)) if float(talk).is_integer() else str(talk)
