"""``Tracker(queue_events=True)``: one QueueEvent per caller-count change (issue #20).

What a client is shown must not depend on the mode: the per-agent tracker and the shared
one, fed the same AMI events (live, cut and rebuilt, re-registered), leave every agent
with the same picture, where a QueueEvent stands for a queueCount to each watcher.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxis.ami.message import Message
from pbxis.events import AgentEvent, QueueEvent
from pbxis.tracker import Tracker
from tests.tracker.test_tracker_properties import AGENTS, QUEUES, Pbx, op, rebuild


def _shown(seen: dict[str, dict[Any, Any]], tracker: Tracker, events: list[Any]) -> None:
    for e in events:
        if isinstance(e, QueueEvent):
            for agent in AGENTS:
                if e.queue in tracker._state.agents[agent].queues:
                    seen[agent][(e.type, e.queue)] = dict(e.data)
        else:
            seen[e.agent][(e.type, e.data.get("queue"))] = dict(e.data)


def _picture(tracker: Tracker, agent: str) -> dict[Any, Any]:
    return {(e.type, e.data.get("queue")): dict(e.data) for e in tracker.snapshot(agent, 0)}


def test_a_caller_joining_a_queue_of_a_thousand_agents_is_one_event() -> None:
    tracker = Tracker(queue_events=True)
    for i in range(1000):
        tracker.register(str(10000 + i), ["sales"], 0)
    tracker.begin_rebuild()
    tracker.finish_rebuild(0)
    join = Message([("Event", "QueueCallerJoin"), ("Queue", "sales"), ("Uniqueid", "1.1"), ("Count", "1")])
    assert tracker.handle(join, 5) == [QueueEvent("sales", "queueCount", 5, {"queue": "sales", "count": 1})]
    assert tracker.handle(join, 6) == []  # no change, nothing
    snap = tracker.snapshot("10007", 7)
    assert [e.type for e in snap] == ["extensionStatus", "queueMemberStatus", "queueCount"]
    assert snap[2] == AgentEvent("10007", "queueCount", 7, {"queue": "sales", "count": 1})
    assert tracker.agent_state("10007")["queues"]["sales"]["count"] == 1  # type: ignore[index]


def test_a_rebuild_holds_the_counts_of_the_queues_it_pins_until_pbx_status() -> None:
    tracker = Tracker(queue_events=True)
    tracker.register("1001", ["sales"], 0)
    tracker.begin_rebuild()
    join = Message([("Event", "QueueCallerJoin"), ("Queue", "sales"), ("Uniqueid", "1.1"), ("Count", "2")])
    assert tracker.handle(join, 1) == []
    events = tracker.finish_rebuild(2)
    assert [type(e).__name__ for e in events] == ["AgentEvent", "QueueEvent"]
    assert events[0].type == "pbxStatus" and events[1].data == {"queue": "sales", "count": 2}


@settings(max_examples=100, deadline=None)
@given(st.lists(op, max_size=40), st.integers(0, 40), st.booleans())
def test_both_modes_show_every_agent_the_same(ops: list[Any], cut: int, move: bool) -> None:
    pbx = Pbx()
    trackers = {False: Tracker(), True: Tracker(queue_events=True)}
    seen: dict[bool, dict[str, dict[Any, Any]]] = {}
    for mode, tracker in trackers.items():
        for agent in AGENTS:
            tracker.register(agent, QUEUES, 0)
        rebuild(tracker, Pbx(), 0)
        seen[mode] = {agent: _picture(tracker, agent) for agent in AGENTS}
    for i, o in enumerate(ops):
        for m in pbx.step(o):
            for mode, tracker in trackers.items():
                if i < cut:
                    _shown(seen[mode], tracker, tracker.handle(m, i))
        if move and i == len(ops) // 2:  # a re-registration into one queue, then back
            for mode, tracker in trackers.items():
                _shown(seen[mode], tracker, tracker.register("1002", ["support"], i))
                _shown(seen[mode], tracker, tracker.register("1002", list(QUEUES), i))
    for mode, tracker in trackers.items():
        _shown(seen[mode], tracker, tracker.link_down(100) + rebuild(tracker, pbx, 101))
    for agent in AGENTS:
        assert seen[True][agent] == seen[False][agent]
        assert _picture(trackers[True], agent) == _picture(trackers[False], agent)
        assert trackers[True].agent_state(agent) == trackers[False].agent_state(agent)
