"""AMI actions: routing, plus the connection-level ones (Login, Filter, Events...).

Each handler takes an :class:`~.context.ActionContext`, the asking session's
:class:`~.context.SessionState` and the action, and returns a
:class:`~.replies.Reply`: the response (plus list items, contiguous as Asterisk
writes them), and whether the session must close. Events the action causes are
emitted while the handler runs; the session holds them back until the response is
written, which is the order a real Asterisk session thread produces.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ..ami.message import Message
from . import channel_actions as ch
from . import pjsip_actions, sip_actions
from . import queue_actions as qa
from .context import ActionContext, Handler, SessionState
from .filters import FilterError, parse_filter, parse_mask
from .originate import originate
from .personality import Personality
from .replies import Reply, error, response, success

__all__ = ["CONNECTION_ACTIONS", "Handler", "Reply", "action_table", "actions_for", "dispatch"]


def login(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    if session.authenticated:
        return success(msg, "Already authenticated")
    username = msg.get("Username", "")
    if (msg.get("AuthType") or "").lower() == "md5":
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


def challenge(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    if (msg.get("AuthType") or "").lower() != "md5":
        return error(msg, "Must specify AuthType")
    if session.challenge is None:
        session.challenge = str(sim.rng.randrange(1, 2**31))
    return Reply([response(msg, "Success", ("Challenge", session.challenge))])


def logoff(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    return Reply([response(msg, "Goodbye", ("Message", "Thanks for all the fish."))], close=True)


def ping(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    stamp = f"{sim.pbx.epoch() + sim.pbx.now() % 1:.6f}"
    return Reply([response(msg, "Success", ("Ping", "Pong"), ("Timestamp", stamp))])


def events(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    mask = parse_mask(msg.get("EventMask") or "")
    if mask is None:
        return error(msg, "Invalid event mask")
    session.mask = mask
    return Reply([response(msg, "Success", ("Events", "On" if mask else "Off"))])


def filter_(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    if (msg.get("Operation") or "").lower() != "add":
        return error(msg, "Unknown operation")
    try:
        session.filters.append(parse_filter(msg.get("Filter"), msg.get("MatchCriteria")))
    except FilterError as exc:
        return error(msg, str(exc))
    return success(msg, "Success")


def user_event(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    name = msg.get("UserEvent")
    if not name:
        return error(msg, "UserEvent header missing")
    rest = [(k, v) for k, v in msg.headers if k.lower() not in ("action", "userevent")]
    sim.pbx.emit("UserEvent", [("UserEvent", name), *rest])
    return success(msg, "Event Sent")


#: manager.c's own actions (the connection and its events)
CONNECTION_ACTIONS: Mapping[str, Handler] = {
    "login": login,
    "challenge": challenge,
    "logoff": logoff,
    "ping": ping,
    "events": events,
    "filter": filter_,
    "userevent": user_event,
}
_BEFORE_LOGIN = frozenset({"login", "challenge", "logoff"})


def action_table(*extra: Mapping[str, Handler]) -> dict[str, Handler]:
    """The action set of one simulated Asterisk: the core's, then ``extra`` tables.

    Each module of handlers exports an ``ACTIONS`` mapping (lower-case names); a
    later table overrides an earlier one, so a channel driver's module can replace
    what the core answers.
    """
    table: dict[str, Handler] = {
        **CONNECTION_ACTIONS,
        **qa.ACTIONS,
        **ch.ACTIONS,
        "originate": originate,
    }
    for more in extra:
        table.update(more)
    return table


def actions_for(personality: Personality, *extra: Mapping[str, Handler]) -> dict[str, Handler]:
    """The action set of Asterisk ``personality``: the core's, its channel driver's, ``extra``.

    chan_sip's ``SIPpeers`` on 20; PJSIP's ``PJSIPShowEndpoints``/``PJSIPShowContacts``
    on 22, where ``SIPpeers`` is an unknown command (chan_sip is not built). ``extra``
    are further modules' ``ACTIONS`` (features both versions have).
    """
    driver = pjsip_actions.ACTIONS if personality.tech == "PJSIP" else sip_actions.ACTIONS
    return action_table(driver, *extra)


def dispatch(table: Mapping[str, Handler], sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    """Route one action; never raises for bad input (Asterisk answers an error)."""
    action = msg.action
    if not action:
        return error(msg, "Missing action in request")
    name = action.strip().lower()
    if not session.authenticated and name not in _BEFORE_LOGIN:
        return error(msg, "Permission denied")
    if sim.shutting_down and name != "logoff":
        return error(msg, "Asterisk is shutting down")
    handler = table.get(name)
    if handler is None:
        return error(
            msg, f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands."
        )
    return handler(sim, session, msg)
