"""Rebuilding state after a (re)connect with the fewest AMI actions.

Plan. Traffic must grow with what pbxis watches, not with the PBX:

* ``QueueStatus`` per tracked queue, narrowed by ``Member`` when at most
  :data:`MEMBER_FILTER_MAX` registered agents sit in it (one ``QueueParams`` + their
  ``QueueMember`` lines), else for the whole queue (one action instead of many). Never
  without ``Queue``: that prints every queue of the PBX.
* ``ExtensionState`` per agent, or ``ExtensionStateList`` (every hint of the PBX, one
  action) when it costs no more: while the PBX has at most :data:`LIST_BREAK_EVEN` hints
  per agent in scope (``bench/bench_rebuild.py`` measures the bytes: ~224 per agent one
  by one, ~122 per hint listed, so 1.8). The hint count is learnt from a list's answer;
  before any, a rebuild of at least :data:`LIST_PROBE_AGENTS` agents lists once to learn
  it (a center that large has its agents' hints; a PBX with far more hints than that is
  then asked one by one again), a smaller one asks each agent.
* ``CoreShowChannels`` (every channel of the PBX) only as a follow-up, when an agent's
  extension or membership says a call may be in progress.

Results are applied with replace semantics for the agents in scope: a member missing
from a QueueStatus answer is logged out, an agent missing from CoreShowChannels has no
call. Live events keep flowing into the state meanwhile, in wire order, so an event
that arrived before an answer is overwritten by it and one that arrived after wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from ..ami.message import Message
from .channels import unescape
from .codes import to_int
from .digest import State
from .model import Call

__all__ = [
    "LIST_BREAK_EVEN",
    "LIST_PROBE_AGENTS",
    "MEMBER_FILTER_MAX",
    "ActionResultLike",
    "PlannedAction",
    "apply_result",
    "plan_actions",
    "plan_followup",
]

MEMBER_FILTER_MAX: Final = 2
LIST_BREAK_EVEN: Final = 1.8
"""Hints per agent below which one ExtensionStateList moves fewer bytes than one
ExtensionState per agent (measured by ``bench/bench_rebuild.py``: 1.81-1.84)."""
LIST_PROBE_AGENTS: Final = 1000
"""Agents in scope from which a rebuild with the hint count unknown lists all hints to
learn it: at most one dump of the PBX's hints, where asking one by one costs 1,000+ actions."""
_BUSY_EXTENSION_BITS: Final = 1 | 2 | 8 | 16  # in use, busy, ringing, on hold
_BUSY_DEVICE_STATES: Final = frozenset({0, 2, 3, 6, 7, 8})  # unknown counts: we cannot tell


class ActionResultLike(Protocol):
    response: Message
    events: list[Message]


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """One AMI action of a rebuild: ``name`` and its headers (without ActionID)."""

    name: str
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, key: str) -> str | None:
        return next((v for k, v in self.headers if k == key), None)


def plan_actions(state: State, agents: Sequence[str], known_hints: int | None) -> list[PlannedAction]:
    """The first round of a rebuild for ``agents`` (the member and extension state)."""
    plan: list[PlannedAction] = []
    queues: dict[str, list[str]] = {}
    for agent in agents:
        for queue in state.agents[agent].queues:
            queues.setdefault(queue, []).append(agent)
    for queue, members in queues.items():
        if len(members) <= MEMBER_FILTER_MAX:
            for agent in members:
                member = state.directory.interface_of(agent)
                plan.append(PlannedAction("QueueStatus", (("Queue", queue), ("Member", member))))
        else:
            plan.append(PlannedAction("QueueStatus", (("Queue", queue),)))
    if agents and _list_is_cheaper(len(agents), known_hints):
        plan.append(PlannedAction("ExtensionStateList"))
    else:
        context = state.hint_context
        plan.extend(
            PlannedAction("ExtensionState", (("Exten", agent), ("Context", context))) for agent in agents
        )
    return plan


def _list_is_cheaper(agents: int, known_hints: int | None) -> bool:
    if known_hints is None:
        # Unknown, the PBX may hold thousands of hints (every phone, not only agents'):
        # only a large rebuild risks one list to learn how many.
        return agents >= LIST_PROBE_AGENTS
    return known_hints <= agents * LIST_BREAK_EVEN


def plan_followup(state: State, agents: Iterable[str]) -> list[PlannedAction]:
    """``CoreShowChannels`` if any agent in scope may be on a call, else nothing."""
    for agent in agents:
        record = state.agents.get(agent)
        if record is None:
            continue
        if record.extension is not None and record.extension >= 0:
            if record.extension & _BUSY_EXTENSION_BITS:
                return [PlannedAction("CoreShowChannels")]
            continue
        # No usable hint: fall back on queue membership, then on what we knew before.
        found = (state.queues[name].members.get(agent) for name in record.queues)
        members = [m for m in found if m is not None]
        if any(m.in_call or m.status in _BUSY_DEVICE_STATES for m in members) or (
            not members and record.calls
        ):
            return [PlannedAction("CoreShowChannels")]
    return []


def apply_result(
    state: State, scope: frozenset[str], planned: PlannedAction, result: ActionResultLike
) -> int | None:
    """Apply one answer; returns the PBX's hint count for an ExtensionStateList."""
    if planned.name == "QueueStatus":
        _apply_queue_status(state, scope, planned, result.events)
    elif planned.name == "ExtensionState":
        _apply_extension(state, scope, result.response)
    elif planned.name == "ExtensionStateList":
        for agent in scope:
            if agent in state.agents:
                state.agents[agent].extension = None
        for item in result.events:
            if item.event == "ExtensionStatus":
                _apply_extension(state, scope, item)
        return len([e for e in result.events if e.event == "ExtensionStatus"])
    elif planned.name == "CoreShowChannels":
        _apply_channels(state, scope, result.events)
    return None


def _apply_queue_status(
    state: State, scope: frozenset[str], planned: PlannedAction, items: list[Message]
) -> None:
    name = planned.header("Queue")
    queue = state.queues.get(name or "")
    if queue is None or name is None:
        return
    member_filter = planned.header("Member")
    if member_filter is None:
        affected = queue.watchers & scope
    else:
        agent = state.directory.by_interface(member_filter)
        affected = {agent} & queue.watchers & scope if agent else set()
    for agent in affected:
        queue.members.pop(agent, None)
    for item in items:
        if item.get("Queue") != name:
            continue
        if item.event == "QueueParams":
            count = max(0, to_int(item.get("Calls")))
            if count != queue.count:
                queue.count = count
                state.unreported |= queue.watchers - scope
        elif item.event == "QueueMember":
            agent = state.directory.by_interface(item.get("Location") or item.get("Interface"))
            if agent in affected:
                state.set_member(queue, agent, item)


def _apply_extension(state: State, scope: frozenset[str], message: Message) -> None:
    agent = message.get("Exten")
    if agent in scope and agent in state.agents and message.get("Context") == state.hint_context:
        state.agents[agent].extension = to_int(message.get("Status"), -1)


def _apply_channels(state: State, scope: frozenset[str], items: list[Message]) -> None:
    """Recover the calls in progress of the agents in scope from CoreShowChannel items."""
    by_call: dict[str, list[Message]] = {}
    for item in items:
        by_call.setdefault(item.get("Linkedid") or "", []).append(item)
    for item in items:
        agent = state.agent_of_channel(item.get("Channel"))
        key = item.get("Uniqueid")
        if agent not in scope or not key or agent is None:
            continue
        record = state.agents[agent]
        if key in record.calls:
            record.calls[key].stale = False
            continue
        peers = by_call.get(item.get("Linkedid") or "", [])
        call = record.calls[key] = _recovered_call(state, agent, item, peers)
        # Call control acts on these channels: the agent's own, and the one bridged to it.
        call.channel = item.get("Channel")
        bridge = item.get("BridgeId")
        mate = next((p for p in peers if p is not item and bridge and p.get("BridgeId") == bridge), None)
        if mate is not None:
            call.peer, call.peer_id = mate.get("Channel"), mate.get("Uniqueid")
        elif call.unique_id != key:
            call.peer_id = call.unique_id


def _recovered_call(state: State, agent: str, channel: Message, peers: list[Message]) -> Call:
    key = channel["Uniqueid"]
    linkedid = channel.get("Linkedid") or key
    for peer in peers:
        if (peer.get("Application") or "").lower() == "queue" and peer is not channel:
            queue = (peer.get("ApplicationData") or "").split(",")[0] or None
            return Call(
                key,
                _known(peer.get("CallerIDNum")),
                _known(unescape(peer.get("CallerIDName"))),
                "in",
                peer.get("Uniqueid") or linkedid,
                queue=queue,
            )
    if linkedid == key:  # the agent's phone started this call (click-to-call or dialled)
        number = _pending_originate(state, agent) or _dialled(channel.get("Exten"))
        return Call(key, number or _known(channel.get("ConnectedLineNum")), None, "out", key)
    return Call(
        key,
        _known(channel.get("ConnectedLineNum")),
        _known(unescape(channel.get("ConnectedLineName"))),
        "in",
        linkedid,
    )


def _known(value: str | None) -> str | None:
    return None if value in (None, "", "<unknown>") else value


def _dialled(exten: str | None) -> str | None:
    return None if exten in (None, "", "s") else exten


def _pending_originate(state: State, agent: str) -> str | None:
    for who, number in state.originates.values():
        if who == agent:
            return str(number)
    return None
