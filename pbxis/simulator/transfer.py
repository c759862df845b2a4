"""A queue caller after a blind transfer: it leaves the agent's bridge and dials the target.

What Asterisk 20 does for ``BlindTransfer`` on the agent's channel of a two-party bridge
(main/bridge.c ``ast_bridge_transfer_blind``, main/bridge_basic.c, apps/app_queue.c
``handle_blind_transfer``): ``BlindTransfer`` (Result, the ``Transferer``/``Transferee``
channel snapshots, the bridge, ``IsExternal: Yes`` for AMI, Context, Extension); the
agent's leg is hung up and app_queue reports ``AgentComplete`` with ``Reason: transfer``;
the transferee leaves the bridge, which is destroyed, and runs ``Exten@Context`` of the
dialplan, which dials the target (``exten => _X.,1,Dial(SIP/${EXTEN},20)`` in the lab's
agents context): ``DialBegin`` from the transferee, ring, then answer (a new bridge),
``BUSY``, ``NOANSWER`` or ``CHANUNAVAIL``; when the Dial fails the dialplan ends and the
caller is hung up. MixMonitor stays on the caller, so the same recording goes on.

The event shapes are those of the other flows (:mod:`.customer`, the ``inbound_call``
capture); the order of the transfer itself is Asterisk's publication order as read in
the sources named above, not a capture (the lab captured no transfer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import codes
from .flow import Timers, dial_event, hold
from .headers import bridge_header, channel_header
from .model import Bridge, Channel

if TYPE_CHECKING:
    from .customer import CustomerCall

__all__ = ["Consultation", "TransferredCall", "blind_transfer"]

TRANSFER_DIAL_TIMEOUT = 20.0
_SUBSCRIBER_ABSENT = 20  # include/asterisk/causes.h (reference §4.5)


def blind_transfer(call: CustomerCall, transferer: Channel, exten: str, context: str) -> TransferredCall:
    """Move the connected queue ``call`` away from its agent to ``exten@context``."""
    pbx, q = call.pbx, call.queue
    assert call.agent is not None and call.bridge is not None
    leg, bridge, two = call.agent, call.bridge, call.two
    call.done = True
    call.timers.cancel()
    talk_left = max(call.talk_time - (pbx.now() - call.answered_at), 1.0)
    pbx.emit(
        "BlindTransfer",
        [
            ("Result", "Success"),
            *channel_header(transferer, "Transferer"),
            *channel_header(two, "Transferee"),
            *bridge_header(bridge),
            ("IsExternal", "Yes"),
            ("Context", context),
            ("Extension", exten),
        ],
    )
    m = leg.member
    talk = int(pbx.now() - call.answered_at)
    dial_event(
        pbx,
        "AgentComplete",
        two,
        leg.channel,
        ("Queue", q.name),
        ("Interface", m.interface),
        ("MemberName", m.name),
        ("HoldTime", str(call.hold_time)),
        ("TalkTime", str(talk)),
        ("Reason", "transfer"),
    )
    _leave(call, bridge, leg.channel)
    pbx.hangup(leg.channel, codes.NORMAL_CLEARING)
    pbx.complete_member_call(m.interface)
    q.record_completed(call.hold_time, talk)
    pbx.refresh_device(leg.channel.device)
    _leave(call, bridge, two)
    pbx.bridges.pop(bridge.uniqueid, None)
    pbx.bridge_event("BridgeDestroy", bridge)
    flow = TransferredCall(call, exten, context, talk_left)
    call.center.finished(call)
    call.center.own(flow, call.one, two)
    flow.start()
    return flow


def _leave(call: CustomerCall, bridge: Bridge, ch: Channel) -> None:
    if ch in bridge.channels:
        bridge.channels.remove(ch)
    ch.bridge = ""
    call.pbx.bridge_event("BridgeLeave", bridge, ch)


class TransferredCall:
    """The transferred caller (``two``, with the customer behind ``one``) dialling ``exten``."""

    def __init__(self, call: CustomerCall, exten: str, context: str, talk_time: float) -> None:
        self.center = call.center
        self.pbx = call.pbx
        self.one, self.two = call.one, call.two
        self.exten, self.context = exten, context
        self.talk_time = talk_time
        self.timers = Timers(self.pbx)
        self.target: Channel | None = None
        self.bridge: Bridge | None = None
        self.done = False

    def start(self) -> None:
        pbx, two, exten = self.pbx, self.two, self.exten
        two.context, two.exten, two.priority = self.context, exten, 1
        two.application, two.app_data = "Dial", f"SIP/{exten},{int(TRANSFER_DIAL_TIMEOUT)}"
        phone = pbx.config.phone(exten)
        base = phone.device if phone is not None else pbx.config.trunk
        target = self.target = pbx.new_channel(
            base,
            linkedid=self.one.uniqueid,
            cid_num=phone.exten if phone else exten,
            cid_name=phone.name if phone else "<unknown>",
            context=pbx.config.hint_context if phone else "incoming",
            exten="s",
            application="AppDial",
            app_data="(Outgoing Line)",
        )
        target.conn_num, target.conn_name = two.cid_num, two.cid_name
        self.center.own(self, target)
        pbx.channel_event("Newchannel", target)
        dial_event(pbx, "DialBegin", two, target, ("DialString", exten))
        behaviour = pbx.behaviour.get(exten, "answer") if phone else pbx.number_behaviour.get(exten, "answer")
        if behaviour == "unavailable":
            self._failed("CHANUNAVAIL", _SUBSCRIBER_ABSENT)
            return
        if behaviour == "busy":
            self._failed("BUSY", codes.USER_BUSY)
            return
        if phone is not None:
            pbx.refresh_device(target.device)
        target.state = codes.RINGING_STATE
        pbx.channel_event("Newstate", target)
        delay = pbx.ring_delay.get(exten, 1.0) if phone else pbx.config.trunk_answer_delay
        if behaviour == "answer":
            self.timers.later(delay, self._answered)
        self.timers.later(TRANSFER_DIAL_TIMEOUT, self._failed, "NOANSWER", codes.NORMAL_CLEARING)

    def _failed(self, status: str, cause: int) -> None:
        """The target did not take it: the Dial fails, the dialplan ends, the caller goes."""
        if self.done:
            return
        self.done = True
        self.timers.cancel()
        pbx, target = self.pbx, self.target
        assert target is not None
        dial_event(pbx, "DialEnd", self.two, target, ("DialStatus", status))
        pbx.hangup(target, cause)
        pbx.refresh_device(target.device)
        pbx.hangup(self.two, codes.NORMAL_CLEARING)
        pbx.hangup(self.one, codes.NORMAL_CLEARING)
        pbx.local_device(self.one, codes.NOT_INUSE)
        self.center.finished(self)

    def _answered(self) -> None:
        if self.done:
            return
        self.timers.cancel()
        pbx, two, target = self.pbx, self.two, self.target
        assert target is not None
        target.state = codes.UP
        pbx.refresh_device(target.device)
        pbx.channel_event("Newstate", target)
        dial_event(pbx, "DialEnd", two, target, ("DialStatus", "ANSWER"))
        bridge = self.bridge = pbx.new_bridge()
        pbx.bridge_event("BridgeCreate", bridge)
        for ch in (target, two):
            bridge.channels.append(ch)
            ch.bridge = bridge.uniqueid
            pbx.bridge_event("BridgeEnter", bridge, ch)
        self.timers.later(self.talk_time, self.end)

    def end(self, first: Channel | None = None) -> None:
        """The call is over: the customer (after its talk time) or one side hung up."""
        if self.done:
            return
        self.done = True
        self.timers.cancel()
        pbx, bridge, target = self.pbx, self.bridge, self.target
        assert target is not None
        if bridge is not None:
            order = [target, self.two] if first is target else [self.two, target]
            for ch in order:
                if ch in bridge.channels:
                    bridge.channels.remove(ch)
                ch.bridge = ""
                pbx.bridge_event("BridgeLeave", bridge, ch)
            pbx.bridges.pop(bridge.uniqueid, None)
            pbx.bridge_event("BridgeDestroy", bridge)
        pbx.hangup(self.two, codes.NORMAL_CLEARING)
        pbx.hangup(self.one, codes.NORMAL_CLEARING)
        pbx.local_device(self.one, codes.NOT_INUSE)
        pbx.hangup(target, codes.NORMAL_CLEARING)
        pbx.refresh_device(target.device)
        self.center.finished(self)

    def hangup_channel(self, ch: Channel, cause: int) -> None:
        if self.bridge is None and not self.done:
            # Still ringing: a hangup of the target is a decline, of the caller an abandon.
            if ch is self.target:
                self._failed("BUSY", codes.USER_BUSY)
            else:
                self.timers.cancel()
                self.done = True
                pbx, target = self.pbx, self.target
                assert target is not None
                dial_event(pbx, "DialEnd", self.two, target, ("DialStatus", "CANCEL"))
                pbx.hangup(target, codes.NORMAL_CLEARING)
                pbx.refresh_device(target.device)
                pbx.hangup(self.two, cause)
                pbx.hangup(self.one, cause)
                self.center.finished(self)
            return
        self.end(first=ch)

    def hold(self, ch: Channel, on: bool) -> None:
        hold(self.pbx, ch, on)


def _prefixed(prefix: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A bridge snapshot under a prefix (``OrigBridgeUniqueid``...), as manager_bridges.c builds it."""
    return [(prefix + key, value) for key, value in pairs]


class Consultation:
    """An attended transfer (``Atxfer`` on the agent's leg of a connected queue call).

    Asterisk 20 (main/bridge_basic.c, the attended transfer state machine): the
    transferer leaves the caller's bridge, which plays the caller music on hold; it is
    put in a consultation bridge, and ``Local/<exten>@<context>`` dials the target. The
    target answers: the ``;1`` half joins the consultation bridge. The transferer hangs
    up: ``AttendedTransfer`` (Transferee = the caller, TransferTarget = the ``;1`` half,
    both transferer legs the agent's channel, ``DestType: Bridge``), app_queue's
    ``AgentComplete`` (Reason ``transfer``), the ``;1`` half moves into the caller's bridge
    and the Local pair optimises away, leaving the caller bridged with the target. Busy,
    no answer or ``CancelAtxfer``: the consultation ends and the transferer returns.
    """

    def __init__(self, call: CustomerCall, transferer: Channel, exten: str, context: str) -> None:
        self.call = call
        self.center, self.pbx = call.center, call.pbx
        self.transferer, self.exten, self.context = transferer, exten, context
        self.timers = Timers(self.pbx)
        self.done = False
        self.answered = False
        self.target: Channel | None = None
        self.target_bridge: Bridge | None = None

    def start(self) -> None:
        pbx, call, ch = self.pbx, self.call, self.transferer
        assert call.bridge is not None
        _leave(call, call.bridge, ch)
        pbx.channel_event("MusicOnHoldStart", call.two, ("Class", "default"))
        self.consult_bridge = pbx.new_bridge()
        pbx.bridge_event("BridgeCreate", self.consult_bridge)
        self.consult_bridge.channels.append(ch)
        ch.bridge = self.consult_bridge.uniqueid
        pbx.bridge_event("BridgeEnter", self.consult_bridge, ch)
        one, two = self.one, self.two = pbx.new_local_pair(self.exten, self.context)
        for half in (one, two):
            half.cid_num, half.cid_name = ch.cid_num, ch.cid_name
            pbx.channel_event("Newchannel", half)
        self.center.own(self, ch, one, two)
        phone = pbx.config.phone(self.exten)
        if phone is None:  # the context has no such extension: the Local channel dies at once
            self._back("", 0)
            return
        target = self.target = pbx.new_channel(
            phone.device,
            linkedid=one.uniqueid,
            cid_num=phone.exten,
            cid_name=phone.name,
            context=self.context,
        )
        target.conn_num, target.conn_name = ch.cid_num, ch.cid_name
        self.center.own(self, target)
        pbx.channel_event("Newchannel", target)
        dial_event(pbx, "DialBegin", two, target, ("DialString", self.exten))
        behaviour = pbx.behaviour.get(self.exten, "answer")
        if behaviour == "busy":
            self._back("BUSY", codes.USER_BUSY)
            return
        if behaviour == "unavailable":
            self._back("CHANUNAVAIL", _SUBSCRIBER_ABSENT)
            return
        pbx.refresh_device(target.device)
        target.state = codes.RINGING_STATE
        pbx.channel_event("Newstate", target)
        if behaviour == "answer":
            self.timers.later(pbx.ring_delay.get(self.exten, 1.0), self._answered)
        self.timers.later(TRANSFER_DIAL_TIMEOUT, self._back, "NOANSWER", codes.NORMAL_CLEARING)

    def _answered(self) -> None:
        if self.done:
            return
        self.timers.cancel()
        self.answered = True
        pbx, target, one, two = self.pbx, self.target, self.one, self.two
        assert target is not None
        target.state = codes.UP
        pbx.refresh_device(target.device)
        pbx.channel_event("Newstate", target)
        dial_event(pbx, "DialEnd", two, target, ("DialStatus", "ANSWER"))
        bridge = self.target_bridge = pbx.new_bridge()
        pbx.bridge_event("BridgeCreate", bridge)
        for ch in (target, two):
            bridge.channels.append(ch)
            ch.bridge = bridge.uniqueid
            pbx.bridge_event("BridgeEnter", bridge, ch)
        one.state = two.state = codes.UP
        pbx.channel_event("Newstate", one)
        self.consult_bridge.channels.append(one)
        one.bridge = self.consult_bridge.uniqueid
        pbx.bridge_event("BridgeEnter", self.consult_bridge, one)

    def cancel(self) -> None:
        """``CancelAtxfer`` (or the target hung up): back to the caller."""
        self._back("" if self.answered else "CANCEL", codes.NORMAL_CLEARING)

    def _back(self, status: str, cause: int) -> None:
        """The consultation ends without a transfer; the transferer returns to the caller."""
        if self.done:
            return
        self.done = True
        self.timers.cancel()
        pbx, call, ch, target = self.pbx, self.call, self.transferer, self.target
        if target is not None:
            if status:
                dial_event(pbx, "DialEnd", self.two, target, ("DialStatus", status))
            if self.target_bridge is not None:
                for leg in (target, self.two):
                    _leave(call, self.target_bridge, leg)
                pbx.bridges.pop(self.target_bridge.uniqueid, None)
                pbx.bridge_event("BridgeDestroy", self.target_bridge)
            pbx.hangup(target, cause)
            pbx.refresh_device(target.device)
        if self.one.bridge:
            _leave(call, self.consult_bridge, self.one)
        pbx.hangup(self.two, cause)
        pbx.hangup(self.one, cause)
        _leave(call, self.consult_bridge, ch)
        pbx.bridges.pop(self.consult_bridge.uniqueid, None)
        pbx.bridge_event("BridgeDestroy", self.consult_bridge)
        pbx.channel_event("MusicOnHoldStop", call.two)
        assert call.bridge is not None
        call.bridge.channels.append(ch)
        ch.bridge = call.bridge.uniqueid
        pbx.bridge_event("BridgeEnter", call.bridge, ch)
        self.center.finished(self)
        self.center.own(call, ch)

    def complete(self) -> None:
        """The transferer hung up with the target on the line: the caller gets the target."""
        self.done = True
        self.timers.cancel()
        pbx, call, ch, target = self.pbx, self.call, self.transferer, self.target
        assert target is not None and self.target_bridge is not None and call.bridge is not None
        assert call.agent is not None
        caller_bridge, q, m = call.bridge, call.queue, call.agent.member
        pbx.emit(
            "AttendedTransfer",
            [
                ("Result", "Success"),
                *channel_header(ch, "OrigTransferer"),
                *_prefixed("Orig", bridge_header(caller_bridge)),
                *channel_header(ch, "SecondTransferer"),
                *_prefixed("Second", bridge_header(self.consult_bridge)),
                *channel_header(call.two, "Transferee"),
                *channel_header(self.one, "TransferTarget"),
                ("IsExternal", "No"),
                ("DestType", "Bridge"),
                ("DestBridgeUniqueid", caller_bridge.uniqueid),
            ],
        )
        talk = int(pbx.now() - call.answered_at)
        dial_event(
            pbx,
            "AgentComplete",
            call.two,
            ch,
            ("Queue", q.name),
            ("Interface", m.interface),
            ("MemberName", m.name),
            ("HoldTime", str(call.hold_time)),
            ("TalkTime", str(talk)),
            ("Reason", "transfer"),
        )
        call.done = True
        call.timers.cancel()
        _leave(call, self.consult_bridge, ch)
        pbx.hangup(ch, codes.NORMAL_CLEARING)
        pbx.complete_member_call(m.interface)
        q.record_completed(call.hold_time, talk)
        pbx.refresh_device(ch.device)
        pbx.channel_event("MusicOnHoldStop", call.two)
        _leave(call, self.consult_bridge, self.one)
        pbx.bridges.pop(self.consult_bridge.uniqueid, None)
        pbx.bridge_event("BridgeDestroy", self.consult_bridge)
        caller_bridge.channels.append(self.one)
        self.one.bridge = caller_bridge.uniqueid
        pbx.bridge_event("BridgeEnter", caller_bridge, self.one)
        # The Local pair optimises away: the target takes the ;1 half's place.
        pbx.channel_event("LocalOptimizationBegin", self.one, ("Id", "1"))
        _leave(call, self.target_bridge, target)
        caller_bridge.channels.append(target)
        target.bridge = caller_bridge.uniqueid
        pbx.bridge_event("BridgeEnter", caller_bridge, target)
        _leave(call, caller_bridge, self.one)
        _leave(call, self.target_bridge, self.two)
        pbx.channel_event("LocalOptimizationEnd", self.one, ("Success", "Yes"), ("Id", "1"))
        pbx.bridges.pop(self.target_bridge.uniqueid, None)
        pbx.bridge_event("BridgeDestroy", self.target_bridge)
        pbx.hangup(self.one, codes.NORMAL_CLEARING)
        pbx.hangup(self.two, codes.NORMAL_CLEARING)
        talk_left = max(call.talk_time - (pbx.now() - call.answered_at), 1.0)
        self.center.finished(self)
        call.center.finished(call)
        flow = TransferredCall(call, self.exten, self.context, talk_left)
        flow.target, flow.bridge = target, caller_bridge
        self.center.own(flow, call.one, call.two, target)
        flow.timers.later(talk_left, flow.end)

    def hangup_channel(self, ch: Channel, cause: int) -> None:
        if self.done:
            return
        if ch is self.transferer:
            if self.answered:
                self.complete()
            else:  # gave up while it rang: the consultation goes, then the agent's call
                self._back("CANCEL", codes.NORMAL_CLEARING)
                self.call.hangup_channel(ch, cause)
        else:  # the target (or the Local channel) hung up: back to the caller
            self._back("" if self.answered else "CANCEL", cause)

    def hold(self, ch: Channel, on: bool) -> None:
        hold(self.pbx, ch, on)
