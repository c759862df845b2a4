"""Call-control actions: BlindTransfer, Atxfer, CancelAtxfer, MixMonitorMute.

Texts are Asterisk 20's: main/manager.c ``action_blind_transfer`` (``No channel
specified``, ``No extension specified``, ``Channel specified does not exist``, the
``ast_bridge_transfer_blind`` results ``Transfer invalid`` / ``Transfer not permitted``
/ ``Transfer failed`` / ``Transfer succeeded``), ``action_atxfer`` (``Atxfer
successfully queued``), ``action_cancel_atxfer`` (``CancelAtxfer successfully
queued``), apps/app_mixmonitor.c ``manager_mute_mixmonitor`` (``No direction
specified. Must be read, write or both``, ``No state specified``, ``No such channel``,
``Cannot set mute flag``, a bare ``Response: Success``) followed, since 16.17/18.3, by
a ``MixMonitorMute`` event (channel header, ``Direction``, ``State``: reference §2.1
lists it in class call). Channels are looked up by name or Uniqueid, as
``ast_channel_get_by_name`` does.

The simulated PBX transfers queue calls (:mod:`.transfer`); an attended transfer is
answered like Asterisk answers it but consults no target here: :func:`atxfer` answers
``Atxfer successfully queued`` and dials the target through a Local channel that the
dialplan's busy or no-answer ends (the case pbxis reports), while an answered one
stays a consultation until ``CancelAtxfer``.
"""

from __future__ import annotations

from ..ami.message import Message
from . import codes
from .context import ActionContext, Handler, SessionState
from .customer import CustomerCall
from .flow import Timers, dial_event
from .model import Channel
from .replies import Reply, error, success
from .transfer import TRANSFER_DIAL_TIMEOUT, TransferredCall, blind_transfer

__all__ = ["ACTIONS"]


def _channel(sim: ActionContext, msg: Message) -> Channel | Reply:
    name = msg.get("Channel")
    if not name:
        return error(msg, "No channel specified")
    ch = sim.pbx.find_channel(name)
    if ch is None:
        return error(msg, "Channel specified does not exist")
    return ch


def blind_transfer_action(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    if not msg.get("Channel"):
        return error(msg, "No channel specified")
    exten = msg.get("Exten")
    if not exten:
        return error(msg, "No extension specified")
    found = _channel(sim, msg)
    if isinstance(found, Reply):
        return found
    ch = found
    context = msg.get("Context") or ch.context
    flow = sim.center.owner.get(ch.name)
    if not ch.bridge or not isinstance(flow, CustomerCall) or flow.agent is None:
        return error(msg, "Transfer invalid")  # not bridged: nothing to transfer
    if flow.agent.channel is not ch:
        return error(msg, "Transfer not permitted")
    if context != sim.config.hint_context or not exten.isdigit():
        return error(msg, "Transfer invalid")  # no such extension in that context
    reply = success(msg, "Transfer succeeded")
    blind_transfer(flow, ch, exten, context)
    return reply


def atxfer(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    if not msg.get("Channel"):
        return error(msg, "No channel specified")
    exten = msg.get("Exten")
    if not exten:
        return error(msg, "No extension specified")
    found = _channel(sim, msg)
    if isinstance(found, Reply):
        return found
    ch = found
    context = msg.get("Context") or ch.context
    reply = success(msg, "Atxfer successfully queued")
    _consult(sim, ch, exten, context)
    return reply


def _consult(sim: ActionContext, transferer: Channel, exten: str, context: str) -> None:
    """The transferer's consultation call: ``Local/<exten>@<context>`` dials the target."""
    pbx = sim.pbx
    one, two = pbx.new_local_pair(exten, context)
    one.cid_num, one.cid_name = transferer.cid_num, transferer.cid_name
    two.cid_num, two.cid_name = transferer.cid_num, transferer.cid_name
    pbx.channel_event("Newchannel", one)
    pbx.channel_event("Newchannel", two)
    phone = pbx.config.phone(exten)
    if phone is None:
        pbx.hangup(two, codes.NORMAL_CLEARING)
        pbx.hangup(one, codes.NORMAL_CLEARING)
        return
    target = pbx.new_channel(
        phone.device, linkedid=one.uniqueid, cid_num=phone.exten, cid_name=phone.name, context=context
    )
    pbx.channel_event("Newchannel", target)
    dial_event(pbx, "DialBegin", two, target, ("DialString", exten))
    behaviour = pbx.behaviour.get(exten, "answer")
    consult = _Consultation(sim, transferer, one, two, target)
    if behaviour == "busy":
        consult.fail("BUSY", codes.USER_BUSY)
        return
    pbx.refresh_device(target.device)
    target.state = codes.RINGING_STATE
    pbx.channel_event("Newstate", target)
    sim.center.own(consult, one, two, target)
    consult.timers.later(TRANSFER_DIAL_TIMEOUT, consult.fail, "NOANSWER", codes.NORMAL_CLEARING)


class _Consultation:
    """An attended transfer's consultation leg while it rings (or was answered)."""

    def __init__(
        self, sim: ActionContext, transferer: Channel, one: Channel, two: Channel, target: Channel
    ) -> None:
        self.sim, self.transferer = sim, transferer
        self.one, self.two, self.target = one, two, target
        self.timers = Timers(sim.pbx)
        self.done = False

    def fail(self, status: str, cause: int) -> None:
        """Busy, no answer or cancelled: the consultation ends; the transferer is back."""
        if self.done:
            return
        self.done = True
        self.timers.cancel()
        pbx = self.sim.pbx
        dial_event(pbx, "DialEnd", self.two, self.target, ("DialStatus", status))
        pbx.hangup(self.target, cause)
        pbx.refresh_device(self.target.device)
        pbx.hangup(self.two, cause)
        pbx.hangup(self.one, cause)
        self.sim.center.finished(self)

    def hangup_channel(self, ch: Channel, cause: int) -> None:
        self.fail("CANCEL", codes.NORMAL_CLEARING)

    def hold(self, ch: Channel, on: bool) -> None:
        """Nobody to hold in a consultation that only rings."""


def cancel_atxfer(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    found = _channel(sim, msg)
    if isinstance(found, Reply):
        return found
    reply = success(msg, "CancelAtxfer successfully queued")
    for flow in list(sim.center.flows):
        if isinstance(flow, _Consultation) and flow.transferer is found:
            flow.fail("CANCEL", codes.NORMAL_CLEARING)
    return reply


def mix_monitor_mute(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    direction = (msg.get("Direction") or "").lower()
    if not direction:
        return error(msg, "No direction specified. Must be read, write or both")
    if direction not in ("read", "write", "both"):
        return error(msg, "Invalid direction specified. Must be read, write or both")
    name = msg.get("Channel")
    if not name:
        return error(msg, "No channel specified")
    state = msg.get("State")
    if not state:
        return error(msg, "No state specified")
    ch = sim.pbx.find_channel(name)
    if ch is None:
        return error(msg, "No such channel")
    flow = sim.center.owner.get(ch.name)
    recording = (isinstance(flow, CustomerCall) and flow.agent is not None) or isinstance(
        flow, TransferredCall
    )
    if not recording or ch is not getattr(flow, "two", None):
        return error(msg, "Cannot set mute flag")  # no MixMonitor on that channel
    muted = "0" if state.strip().lower() in ("0", "no", "false", "off", "n", "f") else "1"
    reply = success(msg)
    sim.pbx.channel_event("MixMonitorMute", ch, ("Direction", direction), ("State", muted))
    return reply


ACTIONS: dict[str, Handler] = {
    "blindtransfer": blind_transfer_action,
    "atxfer": atxfer,
    "cancelatxfer": cancel_atxfer,
    "mixmonitormute": mix_monitor_mute,
}
