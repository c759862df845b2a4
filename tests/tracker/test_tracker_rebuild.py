"""Rebuild after (re)connect: the fewest actions, replace semantics, only differences."""

from __future__ import annotations

from dataclasses import dataclass, field

from pbxis.ami.message import Message
from pbxis.events import AgentEvent
from pbxis.tracker import PlannedAction, Tracker
from tests.tracker.replay import compact, lab_tracker, messages


@dataclass
class Result:
    response: Message
    events: list[Message] = field(default_factory=list)


def dump_results() -> dict[str, Result]:
    """state_dump.client.ami answers by ActionID (response + list items)."""
    out: dict[str, Result] = {}
    for m in messages("state_dump.client.ami"):
        aid = m.action_id
        if aid is None or m.event == "OriginateResponse":
            continue
        if m.is_response:
            out[aid] = Result(m)
        elif aid in out:
            out[aid].events.append(m)
    return out


def test_plan_is_narrow_and_grows_with_agents_not_pbx():
    tracker = Tracker()
    tracker.register("1001", ["sales", "support"], 0)
    assert tracker.plan_rebuild() == [
        PlannedAction("QueueStatus", (("Queue", "sales"), ("Member", "SIP/1001"))),
        PlannedAction("QueueStatus", (("Queue", "support"), ("Member", "SIP/1001"))),
        PlannedAction("ExtensionState", (("Exten", "1001"), ("Context", "agents"))),
    ]
    for agent in ("1002", "1003"):
        tracker.register(agent, ["sales"], 0)
    plan = tracker.plan_rebuild()
    # three registered agents in sales: one queue-wide QueueStatus instead of three
    assert PlannedAction("QueueStatus", (("Queue", "sales"),)) in plan
    assert all(p.header("Queue") for p in plan if p.name == "QueueStatus")
    assert [p.name for p in tracker.plan_rebuild(["1002"])] == ["QueueStatus", "ExtensionState"]


def test_reconnect_emits_false_true_then_only_differences():
    answers = dump_results()
    tracker = Tracker()
    tracker.register("1001", ["sales", "support"], 0)
    tracker.begin_rebuild()
    assert tracker.finish_rebuild(1) == [AgentEvent("1001", "pbxStatus", 1, {"connected": True})]
    down = tracker.link_down(2)
    assert [(e.type, e.data) for e in down] == [("pbxStatus", {"connected": False})]
    assert tracker.link_down(3) == []  # once
    tracker.begin_rebuild()
    by_plan = {
        ("QueueStatus", "sales"): answers["drv-69"],
        ("QueueStatus", "support"): answers["drv-70"],
        ("ExtensionState", None): answers["drv-74"],
    }
    for planned in tracker.plan_rebuild():
        tracker.apply_result(planned, by_plan[(planned.name, planned.header("Queue"))])
    followup = tracker.plan_followup()
    assert [p.name for p in followup] == ["CoreShowChannels"]  # 1001 is in use
    tracker.apply_result(followup[0], answers["drv-77"])
    events = tracker.finish_rebuild(4)
    assert compact(events) == [
        ("1001", "pbxStatus", {"connected": True}),
        ("1001", "extensionStatus", "inuse"),
        ("1001", "queueMemberStatus", "sales", True, "inuse", False, ""),
        ("1001", "queueMemberStatus", "support", True, "inuse", False, ""),
        ("1001", "queueCount", "support", 1),
        ("1001", "phoneNumber", "385911234567", "in", "1795693472.17", "sales"),
    ]
    # a second identical rebuild changes nothing and says nothing but pbxStatus
    tracker.link_down(5)
    tracker.begin_rebuild()
    for planned in tracker.plan_rebuild():
        tracker.apply_result(planned, by_plan[(planned.name, planned.header("Queue"))])
    tracker.apply_result(PlannedAction("CoreShowChannels"), answers["drv-77"])
    assert compact(tracker.finish_rebuild(6)) == [("1001", "pbxStatus", {"connected": True})]


def test_events_during_rebuild_are_held_then_applied_in_order():
    answers = dump_results()
    tracker = lab_tracker()
    tracker.begin_rebuild()
    tracker.finish_rebuild(0)
    tracker.link_down(1)
    tracker.begin_rebuild()
    # a live event arrives before the answers: pinned, nothing emitted
    pause = next(m for m in messages("pause.ami") if m.event == "QueueMemberPause")
    assert tracker.handle(pause, 2) == []
    plan = tracker.plan_rebuild()
    ext = answers["drv-73"]  # ExtensionStateList
    for planned in plan:
        if planned.name == "QueueStatus":
            tracker.apply_result(planned, answers["drv-68"])
        else:
            tracker.apply_result(planned, Result(answers["drv-74"].response))
    assert ext
    events = tracker.finish_rebuild(3)
    # the dump (newer than the live pause event) wins: 1001 is not paused in support
    states = {(e.agent, e.data["queue"]): e.data for e in events if e.type == "queueMemberStatus"}
    assert states[("1001", "support")]["paused"] is False
    assert states[("1002", "support")]["pausedReason"] == "Coaching"
    assert states[("1003", "sales")]["pausedReason"] == "Break"
    assert [e.type for e in events][:1] == ["pbxStatus"]


def test_agent_complete_during_rebuild_follows_pbx_status():
    tracker = lab_tracker()
    tracker.begin_rebuild()
    tracker.finish_rebuild(0)
    tracker.link_down(1)
    tracker.begin_rebuild()
    done = next(m for m in messages("inbound_call.ami") if m.event == "AgentComplete")
    assert tracker.handle(done, 2) == []
    events = tracker.finish_rebuild(3)
    assert [(e.agent, e.type) for e in events if e.agent == "1001"] == [
        ("1001", "pbxStatus"),
        ("1001", "agentComplete"),
    ]


def test_extension_state_list_chosen_once_hints_are_known():
    answers = dump_results()
    tracker = Tracker()
    for agent in ("1001", "1002", "1003", "1009"):
        tracker.register(agent, ["sales"], 0)
    tracker.begin_rebuild()
    tracker.apply_result(PlannedAction("ExtensionStateList"), answers["drv-73"])
    tracker.finish_rebuild(0)
    assert "ExtensionStateList" in [p.name for p in tracker.plan_rebuild()]
    assert tracker.agent_state("1001")["extension"] == "inuse"


def test_snapshot_and_state_documents():
    tracker = lab_tracker()
    from tests.tracker.replay import replay

    replay(tracker, messages("inbound_call.ami")[:60])
    snap = tracker.snapshot("1001", 99)
    assert [e.type for e in snap] == [
        "extensionStatus",
        "queueMemberStatus",
        "queueMemberStatus",
        "queueCount",
        "queueCount",
        "phoneNumber",
        "pbxStatus",  # never connected in this test: the client must know
    ]
    doc = tracker.agent_state("1001")
    assert doc["queues"]["sales"]["membership"] == "dynamic"
    assert doc["call"]["number"] == "385911234567"
    queues = tracker.queues_state()["queues"]
    assert [m["agent"] for m in queues["sales"]["members"]] == ["1001", "1003"]
    assert tracker.agent_state("nobody") is None


def test_reregistration_emits_only_the_new_queue():
    tracker = Tracker()
    tracker.register("1001", ["sales"], 0)
    events = tracker.register("1001", ["sales", "support"], 1)
    assert compact(events) == [
        ("1001", "queueMemberStatus", "support", False, "unknown", False, ""),
        ("1001", "queueCount", "support", 0),
    ]
    assert tracker.register("1001", ["support"], 2) == []
