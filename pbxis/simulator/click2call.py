"""Click-to-call: ``Originate Channel: SIP/<agent>``, then the dialplan dials out.

Event order follows the ``originate_out`` and ``originate_fail`` captures: the agent's
phone rings first; busy gives Reason 5, no answer Reason 3; on answer Reason 4 and
the ``_X.`` dialplan dials ``<trunk>/<number>``, which talks ``TALK`` seconds.

On Asterisk 22 with PJSIP (``captures-pjsip22``) the channel keeps ``Exten: s``, a
busy phone never rings and fails the originate with Reason 0 after a HangupRequest
(``TechCause: 486``), the trunk is dialled ``<number>@<trunk>``, the agent's
ConnectedLine becomes the dialled number, and device state settles step by step.
"""

from __future__ import annotations

from . import codes
from .config import PhoneConfig
from .flow import CID_PRES, FlowHost, Origin, Timers, dial_event, hold
from .model import Bridge, Channel

__all__ = ["AgentCall"]


class AgentCall:
    """Click-to-call: ``Originate Channel: SIP/<agent>``, then the dialplan dials out.

    The agent's phone rings first; when it answers, OriginateResponse (Reason 4) and
    the ``_X.`` dialplan dials ``<trunk>/<number>``, which talks ``TALK`` seconds.
    """

    def __init__(
        self,
        center: FlowHost,
        phone: PhoneConfig,
        origin: Origin,
        timeout: float,
        talk_time: float,
    ) -> None:
        self.center = center
        self.pbx = center.pbx
        self.phone = phone
        self.origin = origin
        self.timeout = timeout
        self.talk_time = talk_time
        self.timers = Timers(self.pbx)
        self.peer: Channel | None = None
        self.bridge: Bridge | None = None
        self.answered = False
        self.done = False

    def start(self) -> None:
        pbx, phone, origin = self.pbx, self.phone, self.origin
        behaviour = pbx.behaviour.get(phone.exten, "answer")
        if behaviour == "unavailable":
            self.done = True
            origin.response(pbx, codes.REASON_FAILURE, None)
            return
        ch = self.ch = pbx.new_channel(
            phone.device,
            cid_num=phone.exten,
            cid_name=phone.name,
            context=pbx.config.hint_context,
            exten="s",
            application="AppDial2",
            app_data="(Outgoing Line)",
        )
        self.center.own(self, ch)
        pbx.channel_event("Newchannel", ch)
        if not pbx.personality.originate_exten_s:
            ch.exten = ""
        if origin.cid_num != "<unknown>":
            ch.conn_num, ch.conn_name = origin.cid_num, origin.cid_name
            pbx.channel_event("NewConnectedLine", ch)
        if pbx.personality.stepwise_device_state:
            self._start_stepwise(ch, behaviour)
            return
        if behaviour == "busy":
            pbx.refresh_device(ch.device)
            dial_event(pbx, "DialBegin", None, ch, ("DialString", phone.exten))
            dial_event(pbx, "DialEnd", None, ch, ("DialStatus", "BUSY"))
            self._finish(ch, codes.USER_BUSY, codes.REASON_BUSY)
            return
        dial_event(pbx, "DialBegin", None, ch, ("DialString", phone.exten))
        pbx.refresh_device(ch.device, hint=False)
        ch.state = codes.RINGING_STATE
        pbx.channel_event("Newstate", ch)
        pbx.update_hint(ch.device)
        pbx.republish_device(ch.device)
        delay = pbx.ring_delay.get(phone.exten, 1.0)
        if behaviour == "answer" and delay < self.timeout:
            self.timers.later(delay, self._answered)
        self.timers.later(self.timeout, self._no_answer)

    def _start_stepwise(self, ch: Channel, behaviour: str) -> None:
        """Asterisk 22: DialBegin, then the phone's answer drives each step."""
        pbx, phone = self.pbx, self.phone
        dial_event(pbx, "DialBegin", None, ch, ("DialString", phone.exten))
        if behaviour == "busy":  # 486 at once: never RINGING, Reason 0, busy in DialEnd/Hangup
            self.done = True
            pbx.hangup_request(ch, codes.USER_BUSY)
            self.origin.response(pbx, pbx.personality.originate_busy_reason, None)
            dial_event(pbx, "DialEnd", None, ch, ("DialStatus", "BUSY"))
            pbx.hangup(ch, codes.USER_BUSY)
            self.center.finished(self)
            return
        ch.state = codes.RINGING_STATE
        pbx.channel_event("Newstate", ch)
        pbx.settle(ch.device, "hint", "dsc", "qms")
        delay = pbx.ring_delay.get(phone.exten, 1.0)
        if behaviour == "answer" and delay < self.timeout:
            self.timers.later(delay, self._answered)
        self.timers.later(self.timeout, self._no_answer)

    def _finish(self, ch: Channel, cause: int, reason: int) -> None:
        """The phone never answered: device back to idle, OriginateResponse, Hangup."""
        self.done = True
        self.timers.cancel()
        pbx = self.pbx
        pbx.channels.pop(ch.name, None)
        if pbx.personality.stepwise_device_state:
            self.origin.response(pbx, reason, None)
            pbx.settle(ch.device, "hint")
            pbx.hangup(ch, cause)
            pbx.settle(ch.device, "dsc", "qms")
            self.center.finished(self)
            return
        pbx.refresh_device(ch.device)
        if reason == codes.REASON_BUSY:
            pbx.hangup(ch, cause)
            self.origin.response(pbx, reason, None)
        else:
            self.origin.response(pbx, reason, None)
            pbx.hangup(ch, cause)
        self.center.finished(self)

    def _no_answer(self) -> None:
        if not self.done and not self.answered:
            self._finish(self.ch, codes.NO_ANSWER, codes.REASON_NO_ANSWER)

    def _answered(self) -> None:
        if self.done:
            return
        self.answered = True
        self.timers.cancel()
        pbx, ch = self.pbx, self.ch
        ch.state = codes.UP
        if pbx.personality.stepwise_device_state:
            pbx.channel_event("Newstate", ch)
            dial_event(pbx, "DialEnd", None, ch, ("DialStatus", "ANSWER"))
            self.origin.response(pbx, codes.REASON_ANSWERED, ch)
            pbx.settle(ch.device, "hint", "dsc", "qms")
            self._after_answer()
            return
        pbx.refresh_device(ch.device, announce=False)
        pbx.channel_event("Newstate", ch)
        pbx.republish_device(ch.device)
        self.origin.response(pbx, codes.REASON_ANSWERED, ch)
        dial_event(pbx, "DialEnd", None, ch, ("DialStatus", "ANSWER"))
        self._after_answer()

    def _after_answer(self) -> None:
        ch = self.ch
        if self.origin.application:
            ch.application, ch.app_data = self.origin.application, self.origin.data
            self.timers.later(_seconds(self.origin.data), self._hangup_agent_only)
        else:
            self._dial_out(self.origin.exten)

    def _hangup_agent_only(self) -> None:
        self.done = True
        self.pbx.hangup(self.ch, codes.NORMAL_CLEARING)
        self.pbx.refresh_device(self.ch.device)
        self.center.finished(self)

    def _dial_out(self, number: str) -> None:
        pbx, ch = self.pbx, self.ch
        trunk = pbx.config.trunk
        tech, _, trunk_name = trunk.partition("/")
        # chan_sip: Dial(SIP/pstn/<number>); PJSIP: Dial(PJSIP/<number>@pstn)
        dial_string = f"{number}@{trunk_name}" if pbx.personality.trunk_at else f"{trunk_name}/{number}"
        ch.exten, ch.priority = number, 3
        ch.application, ch.app_data = "Dial", f"{tech}/{dial_string},30,S({int(self.talk_time)})"
        peer = self.peer = pbx.new_channel(
            trunk, linkedid=ch.uniqueid, context="incoming", exten="s", application="AppDial"
        )
        peer.app_data = "(Outgoing Line)"
        self.center.own(self, peer)
        pbx.channel_event("Newchannel", peer)
        peer.cid_num, peer.cid_name, peer.exten = number, ch.cid_name, number
        peer.conn_num, peer.conn_name = ch.cid_num, ch.cid_name
        pbx.channel_event("NewCallerid", peer, CID_PRES)
        pbx.channel_event("NewConnectedLine", peer)
        dial_event(pbx, "DialBegin", ch, peer, ("DialString", dial_string))
        if pbx.personality.connected_line_to_dialled:
            ch.conn_num = number
            pbx.channel_event("NewConnectedLine", ch)
        behaviour = pbx.number_behaviour.get(number, "answer")
        if behaviour in ("busy", "unavailable"):
            dial_event(pbx, "DialEnd", ch, peer, ("DialStatus", "BUSY"))
            pbx.hangup(peer, codes.USER_BUSY)
            self._end_agent(codes.USER_BUSY)
            return
        peer.state = codes.RINGING_STATE
        pbx.channel_event("Newstate", peer)
        pbx.set_device(trunk, codes.RINGING)
        if not pbx.personality.stepwise_device_state:
            pbx.republish_device(trunk)
        if behaviour == "answer":
            self.timers.later(pbx.config.trunk_answer_delay, self._far_answer)
        self.timers.later(pbx.config.dial_timeout, self._far_no_answer)

    def _far_no_answer(self) -> None:
        pbx, peer = self.pbx, self.peer
        assert peer is not None
        self.timers.cancel()
        dial_event(pbx, "DialEnd", self.ch, peer, ("DialStatus", "NOANSWER"))
        pbx.hangup(peer, codes.NORMAL_CLEARING)
        pbx.set_device(pbx.config.trunk, codes.NOT_INUSE)
        self._end_agent(codes.NO_ANSWER)

    def _end_agent(self, cause: int) -> None:
        self.done = True
        self.timers.cancel()
        self.pbx.hangup(self.ch, cause)
        self.pbx.refresh_device(self.ch.device)
        self.center.finished(self)

    def _far_answer(self) -> None:
        pbx, ch, peer = self.pbx, self.ch, self.peer
        assert peer is not None
        self.timers.cancel()
        stepwise = pbx.personality.stepwise_device_state
        if not stepwise:
            pbx.set_device(pbx.config.trunk, codes.INUSE)
        peer.state = codes.UP
        pbx.channel_event("Newstate", peer)
        peer.exten = ""
        dial_event(pbx, "DialEnd", ch, peer, ("DialStatus", "ANSWER"))
        bridge = self.bridge = pbx.new_bridge()
        pbx.bridge_event("BridgeCreate", bridge)
        if stepwise:
            pbx.set_device(pbx.config.trunk, codes.INUSE)
        for c in (peer, ch):
            bridge.channels.append(c)
            c.bridge = bridge.uniqueid
            pbx.bridge_event("BridgeEnter", bridge, c)
        bridge.technology = "native_rtp"  # two SIP phones: media goes direct once both are in
        self.timers.later(self.talk_time, self.end, False)

    def end(self, agent_first: bool) -> None:
        """The call is over: the far end (after TALK) or the agent hung up."""
        if self.done or self.bridge is None or self.peer is None:
            return
        self.done = True
        self.timers.cancel()
        pbx, ch, peer, bridge = self.pbx, self.ch, self.peer, self.bridge
        order = (ch, peer) if agent_first else (peer, ch)
        if pbx.personality.stepwise_device_state:
            for c in order:
                bridge.channels.remove(c)
                c.bridge = ""
                pbx.bridge_event("BridgeLeave", bridge, c)
            pbx.bridges.pop(bridge.uniqueid, None)
            pbx.bridge_event("BridgeDestroy", bridge)
            for c in order:
                pbx.hangup(c, codes.NORMAL_CLEARING)
            pbx.set_device(pbx.config.trunk, codes.NOT_INUSE)
            pbx.settle(ch.device, "dsc", "hint", "qms")
            self.center.finished(self)
            return
        for c in order:
            bridge.channels.remove(c)
            c.bridge = ""
            pbx.bridge_event("BridgeLeave", bridge, c)
            if c is peer:
                pbx.update_hint(ch.device, codes.NOT_INUSE)
                pbx.set_device(pbx.config.trunk, codes.NOT_INUSE)
        pbx.bridges.pop(bridge.uniqueid, None)
        pbx.bridge_event("BridgeDestroy", bridge)
        for c in order:
            pbx.hangup(c, codes.NORMAL_CLEARING)
        pbx.refresh_device(ch.device)
        self.center.finished(self)

    def hangup_channel(self, ch: Channel, cause: int) -> None:
        if self.done:
            return
        if self.bridge is not None:
            self.end(agent_first=ch is self.ch)
        elif not self.answered:
            self._finish(self.ch, cause or codes.NORMAL_CLEARING, codes.REASON_FAILURE)
        elif self.peer is not None:
            self.timers.cancel()
            dial_event(self.pbx, "DialEnd", self.ch, self.peer, ("DialStatus", "CANCEL"))
            self.pbx.hangup(self.peer, codes.NORMAL_CLEARING)
            self.pbx.set_device(self.pbx.config.trunk, codes.NOT_INUSE)
            self._end_agent(codes.NORMAL_CLEARING)
        else:
            self._hangup_agent_only()

    def hold(self, ch: Channel, on: bool) -> None:
        hold(self.pbx, ch, on)


def _seconds(text: str) -> float:
    try:
        return max(float(text), 0.0)
    except ValueError:
        return 0.0
