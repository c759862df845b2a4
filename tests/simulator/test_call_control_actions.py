"""The simulator's call-control actions: Asterisk 20's answers and events, on a task.Clock."""

from __future__ import annotations

from typing import Any

from pbxis.ami.message import Message
from pbxis.simulator import Simulator


def events(sim: Simulator, *names: str) -> list[Message]:
    return [m for m in sim.history if not names or m.event in names]


def run(clock: Any, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def act(sim: Simulator, name: str, **headers: str) -> Message:
    """Run one action as a logged-in session would; the (first) response."""
    reply = sim.actions[name.lower()](
        sim, None, Message([("Action", name), ("ActionID", "7"), *headers.items()])
    )  # type: ignore[arg-type]
    return reply.messages[0]


def connected_call(sim: Simulator, clock: Any) -> tuple[str, str]:
    """A queue call answered by 1001: (its channel, the caller's Uniqueid)."""
    sim.queue_add("support", "SIP/1001", name="Agent 1001")
    uid = sim.customer_call("support", talk_time=60.0)
    run(clock, 1.5)
    leg = next(c for c in sim.pbx.channels.values() if c.name.startswith("SIP/1001-"))
    assert leg.bridge
    sim.history.clear()
    return leg.name, uid


def test_blind_transfer_moves_the_caller_to_the_target(sim: Simulator, clock: Any) -> None:
    leg, caller = connected_call(sim, clock)
    ok = act(sim, "BlindTransfer", Channel=leg, Exten="1002", Context="agents")
    assert (ok["Response"], ok["Message"], ok["ActionID"]) == ("Success", "Transfer succeeded", "7")
    (blind,) = events(sim, "BlindTransfer")
    assert (blind["TransfererChannel"], blind["TransfereeUniqueid"], blind["IsExternal"]) == (
        leg,
        caller,
        "Yes",
    )
    assert (blind["Context"], blind["Extension"], blind["Result"]) == ("agents", "1002", "Success")
    assert events(sim, "AgentComplete")[0]["Reason"] == "transfer"
    assert [m["Channel"] for m in events(sim, "Hangup")] == [leg]
    dial = events(sim, "DialBegin")[0]
    assert dial["Uniqueid"] == caller and dial["DestChannel"].startswith("SIP/1002-")
    run(clock, 2.0)
    assert events(sim, "DialEnd")[-1]["DialStatus"] == "ANSWER"
    mute = act(sim, "MixMonitorMute", Channel=caller, Direction="both", State="1")
    assert list(mute.headers) == [("Response", "Success"), ("ActionID", "7")]  # no Message (app_mixmonitor)
    (muted,) = events(sim, "MixMonitorMute")
    assert (muted["Uniqueid"], muted["Direction"], muted["State"]) == (caller, "both", "1")


def test_blind_transfer_errors_are_asterisks(sim: Simulator, clock: Any) -> None:
    assert act(sim, "BlindTransfer", Exten="1002")["Message"] == "No channel specified"
    assert act(sim, "BlindTransfer", Channel="SIP/1001-00000009")["Message"] == "No extension specified"
    assert (
        act(sim, "BlindTransfer", Channel="SIP/9-0", Exten="1")["Message"]
        == "Channel specified does not exist"
    )
    leg, _ = connected_call(sim, clock)
    assert (
        act(sim, "BlindTransfer", Channel=leg, Exten="1002", Context="nowhere")["Message"]
        == "Transfer invalid"
    )


def test_mix_monitor_mute_needs_a_recorded_channel(sim: Simulator, clock: Any) -> None:
    leg, caller = connected_call(sim, clock)
    assert act(sim, "MixMonitorMute", Channel=caller)["Message"].startswith("No direction specified")
    assert act(sim, "MixMonitorMute", Channel=caller, Direction="up", State="1")["Message"].startswith(
        "Invalid"
    )
    assert act(sim, "MixMonitorMute", Channel=caller, Direction="both")["Message"] == "No state specified"
    assert (
        act(sim, "MixMonitorMute", Channel="x", Direction="both", State="1")["Message"] == "No such channel"
    )
    # MixMonitor runs on the caller (app_queue), not on the agent's leg.
    assert (
        act(sim, "MixMonitorMute", Channel=leg, Direction="both", State="1")["Message"]
        == "Cannot set mute flag"
    )


def test_attended_transfer_consults_then_completes_on_the_transferers_hangup(
    sim: Simulator, clock: Any
) -> None:
    leg, caller = connected_call(sim, clock)
    ok = act(sim, "Atxfer", Channel=leg, Exten="1002", Context="agents")
    assert ok["Message"] == "Atxfer successfully queued"
    dial = events(sim, "DialBegin")[0]
    assert dial["Channel"].startswith("Local/1002@agents-") and dial["Channel"].endswith(";2")
    assert events(sim, "MusicOnHoldStart")[0]["Uniqueid"] == caller
    run(clock, 1.5)  # 1002 answers: the agent talks to it
    assert events(sim, "DialEnd")[-1]["DialStatus"] == "ANSWER"
    assert act(sim, "Hangup", Channel=leg)["Message"] == "Channel Hungup"
    (done,) = events(sim, "AttendedTransfer")
    assert (done["OrigTransfererChannel"], done["SecondTransfererChannel"]) == (leg, leg)
    assert done["TransfereeUniqueid"] == caller and done["TransferTargetChannel"].endswith(";1")
    assert done["DestType"] == "Bridge"
    target = next(c for c in sim.pbx.channels.values() if c.name.startswith("SIP/1002-"))
    two = sim.pbx.find_channel(caller)
    assert two is not None and two.bridge and two.bridge == target.bridge
    assert not [c for c in sim.pbx.channels.values() if c.name.startswith("Local/1002@")]


def test_cancel_atxfer_returns_the_transferer_to_the_caller(sim: Simulator, clock: Any) -> None:
    leg, caller = connected_call(sim, clock)
    sim.set_phone("1002", "no_answer")
    act(sim, "Atxfer", Channel=leg, Exten="1002", Context="agents")
    ok = act(sim, "CancelAtxfer", Channel=leg)
    assert ok["Message"] == "CancelAtxfer successfully queued"
    assert events(sim, "DialEnd")[-1]["DialStatus"] == "CANCEL"
    assert events(sim, "MusicOnHoldStop")[0]["Uniqueid"] == caller
    agent = sim.pbx.find_channel(leg)
    two = sim.pbx.find_channel(caller)
    assert agent is not None and two is not None and agent.bridge == two.bridge != ""


def test_spy_originate_runs_chanspy_until_the_agents_call_ends(sim: Simulator, clock: Any) -> None:
    leg, _ = connected_call(sim, clock)
    ok = act(
        sim,
        "Originate",
        Channel="SIP/1003",
        Context="pbxis-spy",
        Exten="barge",
        Priority="1",
        Async="true",
        Variable=f"PBXIS_SPY={leg}",
    )
    assert ok["Message"] == "Originate successfully queued"
    run(clock, 3.0)
    (start,) = events(sim, "ChanSpyStart")
    assert start["SpyeeChannel"] == leg and start["SpyerChannel"].startswith("SIP/1003-")
    spyer = sim.pbx.find_channel(start["SpyerChannel"])
    assert spyer is not None and (spyer.application, spyer.app_data) == ("ChanSpy", f"{leg},qBE")
    act(sim, "Hangup", Channel=leg)
    run(clock, 1.5)
    assert events(sim, "ChanSpyStop") and sim.pbx.find_channel(start["SpyerChannel"]) is None
    bad = act(
        sim, "Originate", Channel="SIP/1003", Context="pbxis-spy", Exten="peek", Priority="1", Async="1"
    )
    assert bad["Message"] == "Extension does not exist."
