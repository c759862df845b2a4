"""AMI actions: routing, plus the connection-level ones (Login, Filter, Events...).

Each handler takes the simulator, the session and the action and returns a
:class:`~.replies.Reply`: the response (plus list items, contiguous as Asterisk
writes them), and whether the session must close. Events the action causes are
emitted while the handler runs; the session holds them back until the response is
written, which is the order a real Asterisk session thread produces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..ami.message import Message
from . import channel_actions as ch
from . import queue_actions as qa
from .filters import FilterError, parse_filter, parse_mask
from .originate import originate
from .replies import Reply, error, response, success

if TYPE_CHECKING:
    from .session import AMISession
    from .simulator import Simulator

__all__ = ["HANDLERS", "Reply", "dispatch"]

Handler = Callable[["Simulator", "AMISession", Message], Reply]


def login(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    if session.authenticated:
        return success(msg, "Already authenticated")
    username = msg.get("Username", "")
    if msg.get("AuthType", "").lower() == "md5":
        expected = hashlib.md5(((session.challenge or "") + sim.secret).encode()).hexdigest()
        ok = session.challenge is not None and (msg.get("Key") or "").lower() == expected
    else:
        ok = msg.get("Secret") == sim.secret
    if username != sim.username or not ok:
        return Reply([response(msg, "Error", ("Message", "Authentication failed"))], close=True, delay=1.0)
    mask = msg.get("Events")
    if mask is not None:
        parsed = parse_mask(mask)
        session.mask = parsed if parsed is not None else frozenset()
    session.authenticated = True
    session.username = username
    reply = success(msg, "Authentication accepted")
    if sim.booted and "system" in session.mask:
        up = str(sim.pbx.uptime())
        reply.direct.append(
            Message(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", up),
                    ("LastReload", up),
                    ("Status", "Fully Booted"),
                ]
            )
        )
    return reply


def challenge(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    if msg.get("AuthType", "").lower() != "md5":
        return error(msg, "Must specify AuthType")
    if session.challenge is None:
        session.challenge = str(sim.rng.randrange(1, 2**31))
    return Reply([response(msg, "Success", ("Challenge", session.challenge))])


def logoff(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    return Reply([response(msg, "Goodbye", ("Message", "Thanks for all the fish."))], close=True)


def ping(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    stamp = f"{sim.pbx.epoch() + sim.pbx.now() % 1:.6f}"
    return Reply([response(msg, "Success", ("Ping", "Pong"), ("Timestamp", stamp))])


def events(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    mask = parse_mask(msg.get("EventMask", ""))
    if mask is None:
        return error(msg, "Invalid event mask")
    session.mask = mask
    return Reply([response(msg, "Success", ("Events", "On" if mask else "Off"))])


def filter_(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    if (msg.get("Operation") or "").lower() != "add":
        return error(msg, "Unknown operation")
    try:
        session.filters.append(parse_filter(msg.get("Filter"), msg.get("MatchCriteria")))
    except FilterError as exc:
        return error(msg, str(exc))
    return success(msg, "Success")


def user_event(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    name = msg.get("UserEvent")
    if not name:
        return error(msg, "UserEvent header missing")
    rest = [(k, v) for k, v in msg.headers if k.lower() not in ("action", "userevent")]
    sim.pbx.emit("UserEvent", [("UserEvent", name), *rest])
    return success(msg, "Event Sent")


HANDLERS: dict[str, Handler] = {
    "login": login,
    "challenge": challenge,
    "logoff": logoff,
    "ping": ping,
    "events": events,
    "filter": filter_,
    "userevent": user_event,
    "queueadd": qa.queue_add,
    "queueremove": qa.queue_remove,
    "queuepause": qa.queue_pause,
    "queuestatus": qa.queue_status,
    "queuesummary": qa.queue_summary,
    "extensionstate": ch.extension_state,
    "extensionstatelist": ch.extension_state_list,
    "devicestatelist": ch.device_state_list,
    "coreshowchannels": ch.core_show_channels,
    "status": ch.status,
    "hangup": ch.hangup,
    "originate": originate,
    "sippeers": ch.sip_peers,
    "corestatus": ch.core_status,
    "coresettings": ch.core_settings,
}
_BEFORE_LOGIN = frozenset({"login", "challenge", "logoff"})


def dispatch(sim: Simulator, session: AMISession, msg: Message) -> Reply:
    """Route one action; never raises for bad input (Asterisk answers an error)."""
    action = msg.action
    if not action:
        return error(msg, "Missing action in request")
    name = action.strip().lower()
    if not session.authenticated and name not in _BEFORE_LOGIN:
        return error(msg, "Permission denied")
    if sim.shutting_down and name != "logoff":
        return error(msg, "Asterisk is shutting down")
    handler = HANDLERS.get(name)
    if handler is None:
        return error(
            msg, f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
        )
    return handler(sim, session, msg)
