"""Queue actions (app_queue): QueueAdd/Remove/Pause, QueueStatus, QueueSummary."""

from __future__ import annotations

from ..ami.message import Message
from . import codes
from .context import ActionContext, Handler, SessionState
from .headers import queue_member_item
from .model import QueueState
from .pbx import MemberError
from .replies import Reply, error, event_list, list_item, success, truthy

__all__ = ["ACTIONS", "queue_add", "queue_pause", "queue_remove", "queue_status", "queue_summary"]


def queue_add(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    queue, interface = msg.get("Queue"), msg.get("Interface")
    if not queue:
        return error(msg, "'Queue' not specified.")
    if not interface:
        return error(msg, "'Interface' not specified.")
    try:
        penalty = int(msg.get("Penalty") or 0)
        wrapup = int(msg.get("Wrapuptime") or 0)
    except ValueError:
        penalty, wrapup = 0, 0
    reply = success(msg, "Added interface to queue")
    try:
        sim.pbx.add_member(
            queue,
            interface,
            name=msg.get("MemberName") or None,
            state_interface=msg.get("StateInterface") or None,
            penalty=max(penalty, 0),
            paused=truthy(msg.get("Paused")),
            reason=msg.get("Reason") or "",
            wrapuptime=wrapup,
        )
    except MemberError as exc:
        return error(msg, str(exc))
    sim.center.dispatch_all()
    return reply


def queue_remove(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    queue, interface = msg.get("Queue"), msg.get("Interface")
    if not queue or not interface:
        return error(msg, "Need 'Queue' and 'Interface' parameters.")
    try:
        sim.pbx.remove_member(queue, interface)
    except MemberError as exc:
        return error(msg, str(exc))
    return success(msg, "Removed interface from queue")


def queue_pause(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    interface, paused = msg.get("Interface"), msg.get("Paused")
    if not interface or not paused:
        return error(msg, "Need 'Interface' and 'Paused' parameters.")
    on = truthy(paused)
    try:
        sim.pbx.pause_member(interface, on, msg.get("Queue") or None, msg.get("Reason") or "")
    except MemberError as exc:
        return error(msg, str(exc))
    sim.center.dispatch_all()
    return success(msg, f"Interface {'paused' if on else 'unpaused'} successfully")


def _perf(q: QueueState) -> str:
    """ServicelevelPerf: share of completed calls answered within ServiceLevel (20 s)."""
    return f"{100.0 * q.within_sl / q.completed:.1f}" if q.completed else "0.0"


def _perf2(q: QueueState) -> str:
    """ServicelevelPerf2 (16+): abandons within the service level count as met, so the
    share is over answered and abandoned calls (app_queue's ``sl2``)."""
    total = q.completed + q.abandoned
    return f"{100.0 * (q.within_sl + q.abandoned_within_sl) / total:.1f}" if total else "0.0"


def queue_status(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    pbx = sim.pbx
    want_q, want_m = msg.get("Queue") or None, msg.get("Member") or None
    items: list[Message] = []
    for q in pbx.queues.values():
        if want_q is not None and q.name.lower() != want_q.lower():
            continue
        items.append(
            list_item(
                msg,
                "QueueParams",
                [
                    ("Queue", q.name),
                    ("Max", "0"),
                    ("Strategy", q.strategy),
                    ("Calls", str(len(q.callers))),
                    ("Holdtime", str(q.holdtime)),
                    ("TalkTime", str(q.talktime)),
                    ("Completed", str(q.completed)),
                    ("Abandoned", str(q.abandoned)),
                    ("ServiceLevel", str(q.service_level)),
                    ("ServicelevelPerf", _perf(q)),
                    ("ServicelevelPerf2", _perf2(q)),
                    ("Weight", "0"),
                ],
            )
        )
        for m in sorted(q.members.values(), key=lambda m: m.interface):
            if want_m is not None and want_m not in (m.interface, m.name):
                continue
            items.append(list_item(msg, "QueueMember", queue_member_item(m, pbx.member_status(m))))
        for pos, entry in enumerate(q.callers, 1):
            ch = entry.channel
            items.append(
                list_item(
                    msg,
                    "QueueEntry",
                    [
                        ("Queue", q.name),
                        ("Position", str(pos)),
                        ("Channel", ch.name),
                        ("Uniqueid", ch.uniqueid),
                        ("CallerIDNum", _plain(ch.cid_num)),
                        ("CallerIDName", _plain(ch.cid_name)),
                        ("ConnectedLineNum", _plain(ch.conn_num)),
                        ("ConnectedLineName", _plain(ch.conn_name)),
                        ("Wait", str(int(pbx.now() - entry.joined))),
                        ("Priority", "0"),
                    ],
                )
            )
    return event_list(msg, "Queue status will follow", "QueueStatusComplete", items)


def _plain(value: str) -> str:
    """QueueEntry prints unknown caller ID as ``unknown``, channel headers as ``<unknown>``."""
    return "unknown" if value == "<unknown>" else value


def queue_summary(sim: ActionContext, session: SessionState, msg: Message) -> Reply:
    pbx = sim.pbx
    want = msg.get("Queue") or None
    items: list[Message] = []
    for q in pbx.queues.values():
        if want is not None and q.name.lower() != want.lower():
            continue
        statuses = [(m, pbx.member_status(m)) for m in q.members.values()]
        logged_in = sum(1 for _, s in statuses if s not in (codes.UNAVAILABLE, codes.INVALID))
        available = sum(1 for m, s in statuses if not m.paused and s in (codes.NOT_INUSE, codes.UNKNOWN))
        longest = max((int(pbx.now() - e.joined) for e in q.callers), default=0)
        items.append(
            list_item(
                msg,
                "QueueSummary",
                [
                    ("Queue", q.name),
                    ("LoggedIn", str(logged_in)),
                    ("Available", str(available)),
                    ("Callers", str(len(q.callers))),
                    ("HoldTime", str(q.holdtime)),
                    ("TalkTime", str(q.talktime)),
                    ("LongestHoldTime", str(longest)),
                ],
            )
        )
    return event_list(msg, "Queue summary will follow", "QueueSummaryComplete", items)


ACTIONS: dict[str, Handler] = {
    "queueadd": queue_add,
    "queueremove": queue_remove,
    "queuepause": queue_pause,
    "queuestatus": queue_status,
    "queuesummary": queue_summary,
}
