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

The simulated PBX transfers connected queue calls, blind and attended (:mod:`.transfer`).
"""

from __future__ import annotations

from ..ami.message import Message
from .context import ActionContext, Handler, SessionState
from .customer import CustomerCall
from .model import Channel
from .replies import Reply, error, success
from .transfer import Consultation, TransferredCall, blind_transfer

__all__ = ["ACTIONS"]


def _channel(sim: ActionContext, msg: Message) -> Channel | Reply:
    name = msg.get("Channel")
    if not name:
        return error(msg, "No channel specified")
    ch = sim.pbx.find_channel(name)
    if ch is None:
        return error(msg, "Channel specified does not exist")
    return ch


def _transfer_request(sim: ActionContext, msg: Message) -> tuple[Channel, str, str] | Reply:
    """The channel, extension and context of a BlindTransfer or Atxfer, or Asterisk's error."""
    if not msg.get("Channel"):
        return error(msg, "No channel specified")
    exten = msg.get("Exten")
    if not exten:
        return error(msg, "No extension specified")
    found = _channel(sim, msg)
    if isinstance(found, Reply):
        return found
    return found, exten, msg.get("Context") or found.context


def blind_transfer_action(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    request = _transfer_request(sim, msg)
    if isinstance(request, Reply):
        return request
    ch, exten, context = request
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
    request = _transfer_request(sim, msg)
    if isinstance(request, Reply):
        return request
    ch, exten, context = request
    reply = success(msg, "Atxfer successfully queued")
    flow = sim.center.owner.get(ch.name)
    # The DTMF feature runs only for a bridged channel; the simulated PBX consults for
    # connected queue calls (other calls ignore it, as a channel in no bridge does).
    if isinstance(flow, CustomerCall) and flow.agent is not None and flow.agent.channel is ch and ch.bridge:
        Consultation(flow, ch, exten, context).start()
    return reply


def cancel_atxfer(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    found = _channel(sim, msg)
    if isinstance(found, Reply):
        return found
    reply = success(msg, "CancelAtxfer successfully queued")
    flow = sim.center.owner.get(found.name)
    if isinstance(flow, Consultation):
        flow.cancel()
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
    recorded: Channel | None = getattr(flow, "two", None)  # MixMonitor runs on the caller
    if not recording or recorded is not ch:
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
