"""Scale: an event or a registration costs the agents it concerns, never all of them.

Counted, not timed: the tracker's registry of agents is swapped for one that fails on
any walk over it and counts the agent records fetched from it, and the view
computations are counted. A tracker that scanned every agent per event (or per
registration) fails these tests at any machine speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

import pbxis.tracker.tracker as tracker_module
from pbxis.ami.message import Message
from pbxis.tracker import PlannedAction, Tracker

AGENTS = 5_000
PER_QUEUE = 20
QUEUES = AGENTS // PER_QUEUE


class _NoWalk(dict[str, Any]):
    """The agent registry, refusing to be walked and counting records fetched."""

    fetched = 0

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("walked every registered agent")

    def keys(self) -> Any:
        raise AssertionError("walked every registered agent")

    def values(self) -> Any:
        raise AssertionError("walked every registered agent")

    def items(self) -> Any:
        raise AssertionError("walked every registered agent")

    def __getitem__(self, agent: str) -> Any:
        self.fetched += 1
        return super().__getitem__(agent)

    def get(self, agent: str, default: Any = None) -> Any:
        self.fetched += 1
        return super().get(agent, default)


def _queues(i: int) -> list[str]:
    """Agent ``i`` sits in queues ``i // 20`` and the next one: 40 agents per queue."""
    return [f"q{i // PER_QUEUE}", f"q{(i // PER_QUEUE + 1) % QUEUES}"]


def _big_tracker() -> Tracker:
    tracker = Tracker()
    for i in range(AGENTS):
        tracker.register(str(10000 + i), _queues(i), 0)
    tracker.begin_rebuild()
    tracker.finish_rebuild(0)
    return tracker


@pytest.fixture(scope="module")
def unchanged_big() -> Tracker:
    """One tracker for the tests whose events change nothing an agent sees."""
    return _big_tracker()


@pytest.fixture
def big() -> Tracker:
    return _big_tracker()


def _spied_on() -> None:
    """The spies below replace module functions and dict methods; compiled by mypyc
    (tests/test_mypyc.py), the tracker calls its functions and dicts directly, so they
    would see nothing and their tests pass vacuously: those run on the pure build."""
    if not tracker_module.__file__ or not tracker_module.__file__.endswith(".py"):
        pytest.skip("compiled tracker: cannot be spied on (the pure build runs this test)")


def _guard(tracker: Tracker, monkeypatch: pytest.MonkeyPatch) -> _NoWalk:
    _spied_on()
    guarded = _NoWalk(tracker._state.agents)
    monkeypatch.setattr(tracker._state, "agents", guarded)
    return guarded


@pytest.fixture
def registry(big: Tracker, monkeypatch: pytest.MonkeyPatch) -> _NoWalk:
    return _guard(big, monkeypatch)


@pytest.fixture
def views(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every view computation the tracker makes, by kind (entry or whole view)."""
    _spied_on()
    calls: list[str] = []
    entry, count, whole = tracker_module.view_entry, tracker_module.count_entry, tracker_module.agent_view

    def counted_entry(*args: Any) -> Any:
        calls.append("entry")
        return entry(*args)

    def counted_count(*args: Any) -> Any:
        calls.append("entry")
        return count(*args)

    def counted_view(*args: Any) -> Any:
        calls.append("view")
        return whole(*args)

    monkeypatch.setattr(tracker_module, "view_entry", counted_entry)
    monkeypatch.setattr(tracker_module, "count_entry", counted_count)
    monkeypatch.setattr(tracker_module, "agent_view", counted_view)
    return calls


def event(name: str, **headers: str) -> Message:
    return Message([("Event", name), *headers.items()])


# Events about devices, channels and queues that are no registered agent's.
STRANGERS = [
    event("QueueMemberStatus", Queue="q3", Interface="SIP/9999", Status="2", Paused="0"),
    event("QueueMemberPause", Queue="elsewhere", Interface="SIP/10001", Paused="1"),
    event("QueueMemberRemoved", Queue="q3", Interface="PJSIP/10001"),
    event("QueueCallerJoin", Queue="elsewhere", Count="3", Uniqueid="1.1"),
    event("ExtensionStatus", Exten="9999", Context="agents", Status="1"),
    event("ExtensionStatus", Exten="10001", Context="other-hints", Status="1"),
    event(
        "AgentCalled",
        Queue="q3",
        Interface="SIP/9999",
        DestChannel="SIP/9999-00000001",
        DestUniqueid="1.2",
        Uniqueid="1.1",
        CallerIDNum="555",
    ),
    event(
        "DialBegin",
        Channel="SIP/9998-00000002",
        Uniqueid="1.3",
        DestChannel="SIP/9999-00000003",
        DestUniqueid="1.4",
        Exten="9999",
    ),
    event("DialEnd", Channel="SIP/9998-00000002", Uniqueid="1.3", DialStatus="BUSY"),
    event("Hangup", Channel="SIP/9999-00000003", Uniqueid="1.4"),
    event("VarSet", Channel="SIP/9998-00000002", Uniqueid="1.3", Variable="MIXMONITOR_FILENAME", Value="/r"),
    event("OriginateResponse", ActionID="not-ours", Response="Failure", Reason="5"),
    event("Newexten", Channel="SIP/9999-00000003", Uniqueid="1.4"),
    event("QueueMember", Queue="q3", Location="SIP/10060", ActionID="7"),  # a list item
]


@pytest.mark.parametrize("message", STRANGERS, ids=[m.event or "?" for m in STRANGERS])
def test_event_for_nobody_registered_touches_no_agent(
    unchanged_big: Tracker, monkeypatch: pytest.MonkeyPatch, views: list[str], message: Message
) -> None:
    registry = _guard(unchanged_big, monkeypatch)
    assert unchanged_big.handle(message, 1) == []
    assert registry.fetched == 0
    assert views == []


def test_event_for_one_agent_touches_that_agent(big: Tracker, registry: _NoWalk, views: list[str]) -> None:
    # agent 12345 is the 2345th registered, in queues q117 and q118
    events = big.handle(event("QueueMemberAdded", Queue="q117", Interface="SIP/12345", Status="1"), 1)
    assert [(e.agent, e.type, e.data["status"]) for e in events] == [
        ("12345", "queueMemberStatus", "not_inuse")
    ]
    assert views == ["entry"]
    assert registry.fetched <= 2


def test_caller_count_touches_the_queue_watchers_only(
    big: Tracker, registry: _NoWalk, views: list[str]
) -> None:
    events = big.handle(event("QueueCallerJoin", Queue="q200", Count="1", Uniqueid="9.9"), 1)
    # q200 is watched by agents 14000-14019 (first queue) and 13980-13999 (second)
    expected = [str(a) for a in range(13980, 14020)]
    assert [e.agent for e in events] == expected  # in registration order
    assert {(e.type, e.data["count"]) for e in events} == {("queueCount", 1)}
    assert views == ["entry"]  # the same entry for every watcher: computed once
    assert registry.fetched <= 3 * len(expected)


def test_registering_one_more_agent_rebuilds_only_that_agent(
    big: Tracker, registry: _NoWalk, views: list[str]
) -> None:
    assert big.register("20000", ["q5", "new-queue"], 1) == []
    big.begin_rebuild(["20000"])
    plan = big.plan_rebuild(["20000"])
    assert plan == [
        PlannedAction("QueueStatus", (("Queue", "q5"), ("Member", "SIP/20000"))),
        PlannedAction("QueueStatus", (("Queue", "new-queue"), ("Member", "SIP/20000"))),
        PlannedAction("ExtensionState", (("Exten", "20000"), ("Context", "agents"))),
    ]
    member = Message([("Event", "QueueMember"), ("Queue", "q5"), ("Location", "SIP/20000"), ("Status", "1")])
    ok = Message([("Response", "Success")])
    big.apply_result(plan[0], SimpleNamespace(response=ok, events=[member]))
    big.apply_result(plan[1], SimpleNamespace(response=ok, events=[]))
    state = Message([("Response", "Success"), ("Exten", "20000"), ("Context", "agents"), ("Status", "0")])
    big.apply_result(plan[2], SimpleNamespace(response=state, events=[]))
    assert big.plan_followup() == []
    events = big.finish_rebuild(2)
    assert [(e.agent, e.type, e.data.get("queue")) for e in events] == [
        ("20000", "extensionStatus", None),
        ("20000", "queueMemberStatus", "q5"),
    ]
    assert views.count("view") <= 2  # registration and the end of its rebuild
    assert registry.fetched < 50
    big.unregister("20000")
    assert "new-queue" not in big.queues_state()["queues"]


def test_rebuild_lists_hints_only_while_the_list_is_the_cheaper_way(big: Tracker) -> None:
    """5,000 agents: one ExtensionStateList, not 5,000 ExtensionState (issue 20), while
    the PBX has at most LIST_BREAK_EVEN hints per agent; a PBX with far more hints is
    asked agent by agent, so traffic stays proportional to what is registered."""
    from pbxis.tracker.rebuild import LIST_BREAK_EVEN, LIST_PROBE_AGENTS

    def names() -> list[str]:
        return [p.name for p in big.plan_rebuild()]

    def answer_list(hints: int) -> None:
        items = [
            Message({"Event": "ExtensionStatus", "Exten": str(10000 + i), "Context": "agents", "Status": "0"})
            for i in range(hints)
        ]
        ok = Message([("Response", "Success")])
        big.begin_rebuild()
        big.apply_result(PlannedAction("ExtensionStateList"), SimpleNamespace(response=ok, events=items))
        big.finish_rebuild(1)

    # Hint count unknown: a rebuild this large lists once to learn it; a small one asks each.
    assert AGENTS >= LIST_PROBE_AGENTS
    assert names().count("ExtensionStateList") == 1 and "ExtensionState" not in names()
    small = [str(10000 + i) for i in range(LIST_PROBE_AGENTS - 1)]
    assert [p.name for p in big.plan_rebuild(small)].count("ExtensionState") == len(small)
    # The PBX holds far more hints than agents: one by one again.
    answer_list(int(AGENTS * LIST_BREAK_EVEN) + 1)
    assert names().count("ExtensionState") == AGENTS and "ExtensionStateList" not in names()
    # About as many hints as agents: the list.
    answer_list(AGENTS)
    assert names().count("ExtensionStateList") == 1 and "ExtensionState" not in names()
    assert big.agent_state("10000")["extension"] == "not_inuse"
    plan = big.plan_rebuild()
    assert [p.name for p in plan].count("QueueStatus") == QUEUES  # queue-wide: 40 agents each
