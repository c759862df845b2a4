"""Originate through an in-memory AMI session: reasons, channel events, sync mode."""

from __future__ import annotations

import pytest

from pbxis.ami.message import Message
from tests.simulator.sim_replay import Session


def run(clock, seconds: float, step: float = 0.1) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


@pytest.fixture
def amis(sim):
    session = Session(sim)
    session.send(Message([("Action", "Login"), ("Username", "pbxis"), ("Secret", "pbxis-secret")]))
    return session


def originate(session: Session, action_id: str, **headers: str) -> None:
    session.send(Message([("Action", "Originate"), ("ActionID", action_id), *headers.items()]))


def result(session: Session, action_id: str) -> Message:
    found = [m for m in session.poll() if m.event == "OriginateResponse" and m.action_id == action_id]
    assert len(found) == 1, session.messages
    return found[0]


def test_click_to_call_answered_then_far_end_talks(sim, clock, amis):
    originate(
        amis, "c2c", Channel="SIP/1001", Context="agents", Exten="0911234567", Priority="1",
        CallerID="Agent 1001 <1001>", Async="true", Variable="TALK=4",
    )  # fmt: skip
    run(clock, 2.0)
    ok = result(amis, "c2c")
    assert [k for k, _ in ok.headers] == [
        "Event", "Privilege", "ActionID", "Response", "Channel", "Context", "Exten", "Reason",
        "Uniqueid", "CallerIDNum", "CallerIDName",
    ]  # fmt: skip
    assert (ok["Response"], ok["Reason"], ok["CallerIDNum"]) == ("Success", "4", "1001")
    assert ok["Channel"].startswith("SIP/1001-")
    dial = [m for m in amis.messages if m.event == "DialBegin" and m.get("Channel")]
    assert dial[0]["DestChannel"].startswith("SIP/pstn-") and dial[0]["DialString"] == "pstn/0911234567"
    assert len(sim.pbx.bridges) == 1
    run(clock, 4.0)
    assert not sim.pbx.channels
    hangups = [m["Cause"] for m in amis.poll() if m.event == "Hangup"]
    assert hangups == ["16", "16"]


@pytest.mark.parametrize(
    ("channel", "timeout", "reason"),
    [("SIP/1009", "10000", "5"), ("SIP/1002", "1000", "3"), ("Bogus/1001", "1000", "0")],
)
def test_failures_carry_asterisk_reason_codes(sim, clock, amis, channel, timeout, reason):
    originate(
        amis, "f", Channel=channel, Context="agents", Exten="0911234567", Priority="1",
        Timeout=timeout, Async="true",
    )  # fmt: skip
    run(clock, 2.0)
    failed = result(amis, "f")
    assert (failed["Response"], failed["Reason"], failed["Channel"]) == ("Failure", reason, channel)
    assert failed["Uniqueid"] == "<unknown>"
    assert not sim.pbx.channels


@pytest.mark.parametrize(
    ("behaviour", "status", "cause"), [("busy", "BUSY", "17"), ("no_answer", "NOANSWER", "19")]
)
def test_dialled_number_busy_or_unanswered(sim, clock, amis, behaviour, status, cause):
    sim.set_number("0911234567", behaviour)
    originate(
        amis, "x", Channel="SIP/1001", Context="agents", Exten="0911234567", Priority="1",
        Async="true",
    )  # fmt: skip
    run(clock, 40.0, step=0.5)
    assert result(amis, "x")["Reason"] == "4"  # the agent answered
    ends = [m for m in amis.messages if m.event == "DialEnd" and m.get("Channel")]
    assert ends[-1]["DialStatus"] == status
    agent_hangup = [m for m in amis.messages if m.event == "Hangup" and m["Channel"].startswith("SIP/1001")]
    assert agent_hangup[0]["Cause"] == cause
    assert not sim.pbx.channels


def test_sync_originate_answers_only_when_decided(sim, clock, amis):
    originate(amis, "sync", Channel="SIP/1009", Application="Wait", Data="1", Timeout="5000")
    responses = [m for m in amis.poll() if m.response and m.action_id == "sync"]
    assert [(r.response, r["Message"]) for r in responses] == [("Error", "Originate failed")]
    first = amis.messages.index(responses[0])
    assert all(m.event is None or m.event == "FullyBooted" for m in amis.messages[:first])


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Channel": "SIP/1001"}, "Originate with 'Exten' requires 'Context' and 'Priority'"),
        ({}, "Channel not specified"),
        ({"Channel": "nonsense", "Async": "true"}, "Invalid channel"),
        ({"Channel": "SIP/1001", "Async": "true", "Timeout": "soon"}, "Invalid timeout"),
    ],
)
def test_originate_validation(amis, headers, message):
    originate(amis, "v", **headers)
    response = next(m for m in amis.poll() if m.response and m.action_id == "v")
    assert (response.response, response["Message"]) == ("Error", message)


def test_customer_via_originate_and_agent_hangup_by_action(sim, clock, amis):
    sim.queue_add("support", "SIP/1002", name="Agent 1002")
    originate(
        amis, "cust", Channel="Local/support@callers", Context="customer-talk", Exten="30",
        Priority="1", CallerID="Customer A <385911111111>", Async="true",
    )  # fmt: skip
    run(clock, 2.0)
    assert result(amis, "cust")["Reason"] == "4"
    agent = next(c for c in sim.pbx.channels.values() if c.name.startswith("SIP/1002-"))
    amis.send(Message([("Action", "Hangup"), ("ActionID", "h"), ("Channel", agent.name)]))
    hung = next(m for m in amis.poll() if m.response and m.action_id == "h")
    assert hung["Message"] == "Channel Hungup"
    assert [m["Reason"] for m in amis.messages if m.event == "AgentComplete"] == ["agent"]
    amis.send(Message([("Action", "Hangup"), ("ActionID", "h2"), ("Channel", agent.name)]))
    gone = next(m for m in amis.poll() if m.response and m.action_id == "h2")
    assert gone["Message"] == "No such channel"
