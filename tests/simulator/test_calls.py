"""Call flows on a task.Clock: what a customer, an agent and app_queue do, as events."""

from __future__ import annotations

import pytest

from pbxis.simulator import MemberError, Simulator, SimulatorConfig


def events(sim: Simulator, *names: str):
    return [m for m in sim.history if not names or m.event in names]


def names(sim: Simulator):
    return [m.event for m in sim.history]


def run(clock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def test_ringall_call_is_answered_talked_and_completed(sim, clock):
    sim.queue_add("sales", "SIP/1001", name="Agent 1001")
    sim.history.clear()
    uid = sim.customer_call("sales", number="385911234567", name="Customer", talk_time=3.0)
    called = events(sim, "AgentCalled")
    assert {m["Interface"] for m in called} == {"SIP/1001", "SIP/1003"}  # ringall
    run(clock, 1.0)  # 1001 answers after 0.5 s, 1003 is still ringing
    connect = events(sim, "AgentConnect")[0]
    assert (connect["Uniqueid"], connect["Interface"], connect["Queue"]) == (uid, "SIP/1001", "sales")
    cancel = [m for m in events(sim, "DialEnd") if m.get("DialStatus") == "CANCEL"]
    assert cancel and cancel[0]["DestChannel"].startswith("SIP/1003-")
    var = events(sim, "VarSet")[0]
    assert (var["Variable"], var["Value"]) == (
        "MIXMONITOR_FILENAME",
        f"/var/spool/asterisk/monitor/{uid}.wav",
    )
    order = names(sim)
    assert order.index("QueueCallerLeave") < order.index("AgentConnect") < order.index("BridgeEnter")
    run(clock, 3.0)
    complete = events(sim, "AgentComplete")[0]
    assert (complete["Reason"], complete["TalkTime"]) == ("caller", "3")
    assert not sim.pbx.channels
    member = sim.pbx.queues["sales"].members["SIP/1001"]
    assert (member.calls_taken, member.in_call) == (1, False)
    assert sim.pbx.queues["support"].members == {}  # not a member there


def test_channel_names_and_uniqueids_look_like_asterisk(sim):
    uid = sim.customer_call("sales")
    newchan = [m["Channel"] for m in events(sim, "Newchannel")]
    assert newchan[:2] == ["Local/sales@callers-00000000;1", "Local/sales@callers-00000000;2"]
    assert newchan[2] == "SIP/1003-00000000"
    epoch, _, seq = uid.partition(".")
    assert epoch.isdigit() and len(epoch) == 10 and seq == "1"


def test_rrmemory_rotates_and_retries_after_no_answer(sim, clock):
    for agent in ("1001", "1002"):
        sim.queue_add("support", f"SIP/{agent}", name=f"Agent {agent}")
    sim.set_phone("1001", "no_answer")
    sim.history.clear()
    sim.customer_call("support", talk_time=1.0)
    assert [m["Interface"] for m in events(sim, "AgentCalled")] == ["SIP/1001"]
    run(clock, 15.0)  # queue timeout 15 s
    rna = events(sim, "AgentRingNoAnswer")[0]
    assert (rna["Interface"], rna["RingTime"]) == ("SIP/1001", "15000")
    run(clock, 1.2)  # retry 1 s, then the next member
    assert [m["Interface"] for m in events(sim, "AgentCalled")] == ["SIP/1001", "SIP/1002"]
    run(clock, 2.0)
    assert events(sim, "AgentConnect")[0]["Interface"] == "SIP/1002"


def test_busy_member_is_skipped(sim, clock):
    sim.queue_add("support", "SIP/1001", name="Agent 1001")
    sim.set_phone("1001", "busy")
    sim.history.clear()
    sim.customer_call("support", max_wait=3.0)
    end = events(sim, "DialEnd")[-1]
    assert end["DialStatus"] == "BUSY"
    assert events(sim, "Hangup")[0]["Cause"] == "17"
    run(clock, 3.5)
    assert events(sim, "QueueCallerAbandon")  # queue timeout with nobody answering


def test_abandon_while_waiting(sim, clock):
    sim.history.clear()
    uid = sim.customer_call("support", hangup_after=4.0)  # support has no members
    run(clock, 4.0)
    abandon, leave = events(sim, "QueueCallerAbandon")[0], events(sim, "QueueCallerLeave")[0]
    assert abandon["Uniqueid"] == uid and abandon["HoldTime"] == "4"
    assert names(sim).index("QueueCallerAbandon") < names(sim).index("QueueCallerLeave")
    assert leave["Count"] == "0"
    assert sim.pbx.queues["support"].abandoned == 1


def test_hold_unhold_and_agent_hangup(sim, clock):
    sim.queue_add("support", "SIP/1002", name="Agent 1002")
    sim.customer_call("support", talk_time=60.0)
    run(clock, 2.0)
    sim.history.clear()
    sim.hold("1002")
    assert names(sim)[0] == "Hold"
    status = events(sim, "ExtensionStatus")[0]
    assert (status["Status"], status["StatusText"]) == ("16", "Hold")
    assert events(sim, "QueueMemberStatus")[0]["Status"] == "8"
    sim.unhold("1002")
    assert "Unhold" in names(sim)
    sim.hangup_agent("1002")
    assert events(sim, "AgentComplete")[0]["Reason"] == "agent"
    assert not sim.pbx.channels
    with pytest.raises(LookupError):
        sim.hangup_agent("1002")


def test_unpaused_member_gets_the_waiting_caller(sim, clock):
    sim.queue_add("support", "SIP/1001", name="Agent 1001", paused=True, reason="Meeting")
    sim.customer_call("support")
    run(clock, 2.0)
    assert not events(sim, "AgentCalled")
    sim.queue_pause("SIP/1001", False, queue="support")
    assert events(sim, "AgentCalled")


def test_member_errors_use_asterisk_texts(sim):
    sim.queue_add("sales", "SIP/1001")
    with pytest.raises(MemberError, match="Already there"):
        sim.queue_add("sales", "SIP/1001")
    with pytest.raises(MemberError, match="No such queue"):
        sim.queue_add("nosuch", "SIP/1001")
    with pytest.raises(MemberError, match="Member not dynamic"):
        sim.queue_remove("sales", "SIP/1003")
    with pytest.raises(MemberError, match="Interface not found"):
        sim.queue_pause("SIP/4711", True)


def test_same_seed_same_history(clock):
    def story(seed: int):
        from twisted.internet.task import Clock

        c = Clock()
        s = Simulator(SimulatorConfig.demo(), clock=c, seed=seed)
        s.start_load(rate_per_minute=30, talk_time=(5, 20))
        run(c, 300.0, step=1.0)
        s.stop_load()
        return [m.headers for m in s.history]

    first, second = story(3), story(3)
    assert first == second
    assert sum(1 for h in first if h[0] == ("Event", "AgentComplete")) > 5
    assert story(4) != first
