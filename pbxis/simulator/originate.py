"""The Originate action: validation texts, sync vs Async, and which flow it starts."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from ..ami.message import Message
from . import codes
from .click2call import AgentCall
from .context import ActionContext, SessionState
from .customer import CustomerCall
from .flow import Origin
from .replies import Reply, error, response, success, truthy
from .spy import SPY_CONTEXT, SPY_EXTENS, SpyCall

__all__ = ["originate"]


def _caller_id(value: str | None) -> tuple[str, str]:
    """``Name <num>`` / ``"Name" <num>`` / ``num`` -> (num, name)."""
    if not value:
        return "<unknown>", "<unknown>"
    text = value.strip()
    if "<" in text and text.endswith(">"):
        name, _, num = text[:-1].rpartition("<")
        name = name.strip().strip('"').strip()
        return num.strip() or "<unknown>", name or "<unknown>"
    return (text, "<unknown>") if text.replace("+", "").isdigit() else ("<unknown>", text)


def _variables(msg: Message) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in msg.get_all("Variable"):
        for part in value.split(","):
            key, sep, val = part.partition("=")
            if sep:
                out[key.strip()] = val
    return out


def _exten_exists(sim: ActionContext, context: str, exten: str) -> bool:
    if context == SPY_CONTEXT:
        return exten in SPY_EXTENS
    if context == sim.config.hint_context:
        return exten.isdigit()
    if context in ("customer-talk", "default"):
        return exten.isdigit()
    if context == "callers":
        return exten[:1].isalpha() and exten.islower()
    return context == "incoming"


def originate(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    channel = msg.get("Channel")
    if not channel:
        return error(msg, "Channel not specified")
    if "/" not in channel:
        return error(msg, "Invalid channel")
    asynchronous = truthy(msg.get("Async"))
    app, data = msg.get("Application") or "", msg.get("Data") or ""
    context, exten = msg.get("Context") or "", msg.get("Exten") or ""
    priority = msg.get("Priority") or ""
    if not asynchronous and not app and (not context or not priority):
        return error(msg, "Originate with 'Exten' requires 'Context' and 'Priority'")
    if priority and not priority.isdigit():
        return error(msg, "Invalid priority")
    try:
        timeout = int(msg.get("Timeout") or 30000) / 1000.0
    except ValueError:
        return error(msg, "Invalid timeout")
    if timeout <= 0:
        return error(msg, "Invalid timeout")
    if not app and exten and context and not _exten_exists(sim, context, exten):
        return error(msg, "Extension does not exist.")
    if app.lower() in ("system", "exec", "agi", "mixmonitor"):
        return error(msg, "Originate Access Forbidden: app or data blacklisted")
    cid_num, cid_name = _caller_id(msg.get("CallerID"))
    origin = Origin(
        msg.action_id,
        channel,
        context=context,
        exten=exten,
        application=app,
        data=data,
        cid_num=cid_num,
        cid_name=cid_name,
        asynchronous=asynchronous,
    )
    reply = success(msg, "Originate successfully queued")
    if not asynchronous:
        d: Deferred[list[Message]] = Deferred()
        ok_msg, failed = reply.messages, [response(msg, "Error", ("Message", "Originate failed"))]

        def decided(ok: bool) -> None:
            if not d.called:
                d.callback(ok_msg if ok else failed)

        origin.on_result = decided
        reply = Reply(deferred=d)
    _start_originate(sim, origin, timeout, _variables(msg))
    return reply


def _start_originate(sim: ActionContext, origin: Origin, timeout: float, variables: dict[str, str]) -> None:
    tech, _, resource = origin.channel.partition("/")
    pbx = sim.pbx
    talk = _talk_from(origin, variables, sim.config.default_talk)
    if tech == sim.config.personality.tech:
        phone = sim.config.phone(resource)
        if phone is not None and origin.context == SPY_CONTEXT:
            SpyCall(sim.center, phone, origin, timeout, variables.get("PBXIS_SPY", "")).start()
            return
        if phone is not None:
            AgentCall(sim.center, phone, origin, timeout, talk).start()
            return
    elif tech == "Local":
        exten, _, context = resource.partition("@")
        context = context.split("/", 1)[0]
        queue = pbx.queue(exten) if context == "callers" else None
        if queue is not None:
            max_wait = _seconds(variables.get("QWAIT"), 60.0)
            call = CustomerCall(
                sim.center,
                queue,
                origin.cid_num if origin.cid_num != "<unknown>" else "385911234567",
                origin.cid_name,
                talk,
                max_wait,
                origin=origin,
                originate_timeout=timeout,
            )
            call.start()
            return
        _local_failure(sim, origin, exten, context)
        return
    origin.response(pbx, codes.REASON_FAILURE, None)


def _talk_from(origin: Origin, variables: dict[str, str], default: float) -> float:
    if origin.context == "customer-talk" and not origin.application:
        return _seconds(origin.exten, default)
    if origin.application.lower() == "wait":
        return _seconds(origin.data, default)
    return _seconds(variables.get("TALK"), default)


def _seconds(value: str | None, default: float) -> float:
    try:
        return max(float(value), 0.0) if value else default
    except ValueError:
        return default


def _local_failure(sim: ActionContext, origin: Origin, exten: str, context: str) -> None:
    """``Local/x@nosuchcontext``: both halves appear and die with cause 0 (capture).

    Asterisk 22 fails the originate as soon as ``;1`` exists, before ``;2`` appears.
    """
    pbx = sim.pbx
    one, two = pbx.new_local_pair(exten, context)
    pbx.channel_event("Newchannel", one)
    if pbx.personality.stepwise_device_state:
        origin.response(pbx, codes.REASON_FAILURE, None)
        pbx.channel_event("Newchannel", two)
        pbx.hangup(two, 0)
    else:
        pbx.channel_event("Newchannel", two)
        pbx.hangup(two, 0)
        origin.response(pbx, codes.REASON_FAILURE, None)
    pbx.hangup(one, 0)
    pbx.local_device(one, codes.INVALID)
    pbx.local_device(one, codes.INVALID)
