"""Faults on demand, seen by a real TCP client: drops, restarts, stalls, garbage."""

from __future__ import annotations

import pytest_twisted

from tests.simulator.sim_helpers import event, response_to


@pytest_twisted.inlineCallbacks
def test_drop_connections(loopback):
    client = yield loopback.connect()
    loopback.sim.drop_connections()
    yield client.lost
    assert loopback.sim.sessions == []


@pytest_twisted.inlineCallbacks
def test_drop_in_the_middle_of_a_message(loopback):
    client = yield loopback.connect()
    loopback.sim.drop_connections(mid_message=True)
    yield client.lost
    assert client.raw.endswith(b"Channel: SIP/10")
    assert client.parser.buffered > 0  # an incomplete message was left behind


@pytest_twisted.inlineCallbacks
def test_clean_restart_keeps_dynamic_members_and_boots_again(loopback):
    sim, clock = loopback.sim, loopback.clock
    sim.queue_add("support", "SIP/1002", name="Agent 1002", paused=True, reason="Coaching")
    client = yield loopback.connect()
    sim.restart()
    shutdown = yield client.wait_for(event("Shutdown"))
    assert (shutdown["Shutdown"], shutdown["Restart"]) == ("Cleanly", "False")
    yield client.lost

    again = yield loopback.connect()  # logged in while still booting: no FullyBooted yet
    assert not [m for m in again.messages if m.event == "FullyBooted"]
    clock.advance(sim.config.boot_time)
    booted = yield again.wait_for(event("FullyBooted"))
    assert booted.keys() == ["Event", "Privilege", "Status", "Uptime", "LastReload"]
    assert booted["Uptime"] == "0"
    hints = [m for m in again.messages if m.event == "ExtensionStatus"]
    assert [h["Exten"] for h in hints] == ["1001", "1002", "1003", "1009"]
    assert {h["Hint"] for h in hints} == {""}

    again.action("QueueStatus", ActionID="qs", Queue="support")
    yield again.wait_for(event("QueueStatusComplete", ActionID="qs"))
    member = next(m for m in again.messages if m.event == "QueueMember")
    assert (member["Location"], member["Paused"], member["PausedReason"]) == ("SIP/1002", "1", "Coaching")


@pytest_twisted.inlineCallbacks
def test_unclean_restart_without_members(loopback):
    sim = loopback.sim
    sim.queue_add("support", "SIP/1002", name="Agent 1002")
    client = yield loopback.connect()
    sim.restart(clean=False, keep_dynamic_members=False)
    yield client.lost
    assert not [m for m in client.messages if m.event == "Shutdown"]
    assert sim.pbx.queues["support"].members == {}
    assert list(sim.pbx.queues["sales"].members) == ["SIP/1003"]  # static, from config


@pytest_twisted.inlineCallbacks
def test_stall_holds_output_until_released(loopback):
    sim = loopback.sim
    client = yield loopback.connect()
    sim.stall(True)
    sim.queue_pause("SIP/1003", True, reason="Stalled")
    (session,) = sim.sessions
    assert session._held  # written nowhere while stalled
    client.action("Ping", ActionID="p")
    sim.stall(False)
    yield client.wait_for(response_to("p"))
    pause = yield client.wait_for(event("QueueMemberPause"))
    assert pause["PausedReason"] == "Stalled"


@pytest_twisted.inlineCallbacks
def test_send_garbage(loopback):
    client = yield loopback.connect()
    loopback.sim.send_garbage(b"\x00\xffnot AMI at all\r\n\r\n")
    client.action("Ping", ActionID="after")
    yield client.wait_for(response_to("after"))
    assert b"\x00\xffnot AMI at all" in client.raw
