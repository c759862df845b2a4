"""The same scenarios recorded on Asterisk 22.10.1 with PJSIP phones give the same agent events.

``shared/ami/captures-pjsip22`` replays the lab of ``shared/ami/captures`` (same agents,
queues and dialplan, ``PJSIP/`` interfaces). Asterisk's threads interleave a call's
events differently from one version to the other, so events of *different* topics
(a phone number and an extension status, say) may swap places; within one topic of
one agent (its extension status, its phone number, its membership of one queue, the
waiting count of one queue, its agentComplete and originateFailed) the sequences must
be equal. What really differs is written down in :data:`REAL_DIFFERENCES`.
"""

from __future__ import annotations

import re

import pytest

from pbxis.ami.message import Message
from tests.tracker.replay import CAPTURE_SETS, TECH, compact, lab_tracker, messages, replay

CUSTOMER = "385911234567"
IN_CALL = "1796307368.1"  # Local/sales@callers-00000000;2 on Asterisk 22
REC = f"/var/spool/asterisk/monitor/{IN_CALL}.wav"
ORIGINATES = (
    ("click2call-0001", "1001", "0911234567"),
    ("fail-busy", "1009", "0911234567"),
    ("fail-noanswer", "1002", "0911234567"),
    ("fail-notech", "1001", "0911234567"),
)
SCENARIOS = sorted(p.name for p in CAPTURE_SETS["chan_sip20"].glob("*.ami"))

#: (scenario, agent, topic) -> (chan_sip on 20, PJSIP on 22): what truly differs.
REAL_DIFFERENCES: dict[tuple[str, str, str], tuple[list[str], list[str]]] = {
    # SIPp's 1009 answers 486 at once. chan_sip still sets the device RINGING while the
    # INVITE is out (twice: the Async and the sync attempt); PJSIP goes from NOT_INUSE
    # to NOT_INUSE: the phone never rang, so no ExtensionStatus at all.
    **{
        (scenario, "1009", "extensionStatus"): (["ringing", "not_inuse", "ringing", "not_inuse"], [])
        for scenario in ("originate_fail.ami", "originate_fail.client.ami")
    },
    # After a restart Asterisk 20 sends ExtensionStatus with an empty Hint for each
    # hint while the dialplan loads (Status 0: not_inuse); Asterisk 22 sends none, so
    # the agents' extension state comes only from the rebuild's ExtensionState.
    **{
        ("restart_reconnect.client.ami", agent, "extensionStatus"): (["not_inuse"], [])
        for agent in ("1001", "1002", "1003", "1009")
    },
}


#: scenarios that start where another left off (the lab ran them one after the other)
STARTS_AFTER = {"logoff.ami": "login.ami", "logoff.client.ami": "login.client.ami"}
#: scenarios in which no registered agent sees anything (filters that let no agent event
#: through, a restart without reconnect)
QUIET = {
    "filter_adv_header_starts_with.client.ami", "filter_events_bogus.client.ami",
    "filter_events_off.client.ami", "restart.ami", "restart.client.ami", "restart_kill.ami",
}  # fmt: skip


def run(scenario: str, capture_set: str) -> list[tuple]:
    tracker = lab_tracker("1009", tech=TECH[capture_set])
    for originate in ORIGINATES:
        tracker.note_originate(*originate)
    before = STARTS_AFTER.get(scenario)
    msgs = [*(messages(before, capture_set) if before else []), *messages(scenario, capture_set)]
    return compact(replay(tracker, msgs))


def topics(events: list[tuple]) -> dict[tuple[str, str], list[str]]:
    """Per (agent, topic): the event values in order, Uniqueids numbered by appearance."""
    ids: dict[str, str] = {}
    out: dict[tuple[str, str], list[str]] = {}
    for event in events:
        agent, kind = event[0], event[1]
        topic = f"{kind} {event[2]}" if kind in ("queueMemberStatus", "queueCount") else kind
        text = repr(event[2:])
        text = re.sub(r"\d{10}\.\d+", lambda m: ids.setdefault(m.group(0), f"uid{len(ids)}"), text)
        out.setdefault((agent, topic), []).append(text)
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_agent_events_on_both_capture_sets(scenario: str) -> None:
    sip, pjsip = topics(run(scenario, "chan_sip20")), topics(run(scenario, "pjsip22"))
    for (name, agent, topic), (on_sip, on_pjsip) in REAL_DIFFERENCES.items():
        if name != scenario:
            continue
        assert [re.sub(r"[^a-z_]", "", v) for v in sip.pop((agent, topic), [])] == on_sip
        assert [re.sub(r"[^a-z_]", "", v) for v in pjsip.pop((agent, topic), [])] == on_pjsip
    assert pjsip == sip


@pytest.mark.parametrize("capture_set", sorted(CAPTURE_SETS))
def test_every_other_scenario_says_something_to_agents(capture_set: str) -> None:
    """So the per-scenario comparison compares something."""
    quiet = {s for s in SCENARIOS if not run(s, capture_set)}
    expected = QUIET | ({"restart_reconnect.client.ami"} if capture_set == "pjsip22" else set())
    assert quiet == expected


def test_the_comparison_sees_a_missing_event() -> None:
    pjsip = run("inbound_call.ami", "pjsip22")
    assert topics([e for e in pjsip if e[1] != "agentComplete"]) != topics(
        run("inbound_call.ami", "chan_sip20")
    )


def test_inbound_call_on_22_agent_1001_gets_agent_complete() -> None:
    """Here AgentComplete lost the race with the caller's hangup: no Channel, Uniqueid, CallerID*."""
    raw = next(m for m in messages("inbound_call.ami", "pjsip22") if m.event == "AgentComplete")
    assert raw.get("Channel") is None and raw.get("Uniqueid") is None
    tracker = lab_tracker(tech="PJSIP")
    events = replay(tracker, messages("inbound_call.ami", "pjsip22"))
    assert compact(events, "1001") == [
        ("1001", "queueCount", "sales", 1),
        ("1001", "phoneNumber", CUSTOMER, "in", IN_CALL, "sales"),  # AgentCalled PJSIP/1001
        ("1001", "extensionStatus", "ringing"),
        ("1001", "queueMemberStatus", "support", True, "ringing", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "ringing", False, ""),
        ("1001", "extensionStatus", "inuse"),
        ("1001", "queueCount", "sales", 0),
        ("1001", "queueMemberStatus", "support", True, "inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "inuse", False, ""),
        (
            "1001",
            "agentComplete",
            {
                "uniqueId": IN_CALL,  # the caller's, from the call AgentCalled started
                "queue": "sales",
                "talkTime": 3,
                "holdTime": 1,
                "recording": REC,
                "reason": "caller",
            },
        ),
        ("1001", "extensionStatus", "not_inuse"),
        ("1001", "phoneNumber", None, "in", IN_CALL, "sales"),
        ("1001", "queueMemberStatus", "support", True, "not_inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
    ]
    assert compact(events, "1003") == [
        ("1003", "queueCount", "sales", 1),
        ("1003", "phoneNumber", CUSTOMER, "in", IN_CALL, "sales"),
        ("1003", "extensionStatus", "ringing"),
        ("1003", "queueMemberStatus", "sales", True, "ringing", False, ""),
        ("1003", "extensionStatus", "not_inuse"),
        ("1003", "phoneNumber", None, "in", IN_CALL, "sales"),  # answered elsewhere
        ("1003", "queueCount", "sales", 0),
        ("1003", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
    ]


def _late_agent_complete(msgs: list[Message]) -> list[Message]:
    """The race at its worst: AgentComplete after both the caller's and the agent's Hangup."""
    complete = next(m for m in msgs if m.event == "AgentComplete")
    rest = [m for m in msgs if m is not complete]
    bare = Message([(k, v) for k, v in complete.headers if k.startswith(("Dest", "Queue", "Interface",
                    "Member", "HoldTime", "TalkTime", "Reason", "Event", "Privilege"))])  # fmt: skip
    return [*rest, bare]


@pytest.mark.parametrize("capture_set", sorted(CAPTURE_SETS))
def test_agent_complete_after_both_hangups_still_names_the_call(capture_set: str) -> None:
    tracker = lab_tracker(tech=TECH[capture_set])
    msgs = _late_agent_complete(messages("inbound_call.ami", capture_set))
    done = [e for e in replay(tracker, msgs) if e.type == "agentComplete"]
    assert [(e.agent, e.data["queue"], e.data["reason"]) for e in done] == [("1001", "sales", "caller")]
    assert done[0].data["uniqueId"].endswith(".1")  # the caller's ;2 channel, not the agent's leg
    assert done[0].data["recording"].endswith(f"{done[0].data['uniqueId']}.wav")


def test_agent_complete_for_a_call_never_seen_is_dropped() -> None:
    tracker = lab_tracker(tech="PJSIP")
    msgs = _late_agent_complete(messages("inbound_call.ami", "pjsip22"))
    msgs = [m for m in msgs if m.event not in ("AgentCalled", "AgentConnect", "DialBegin")]
    assert [e for e in replay(tracker, msgs) if e.type == "agentComplete"] == []


def test_originate_failures_on_22_busy_from_dial_end_not_reason() -> None:
    """486 from PJSIP/1009: OriginateResponse Reason 0, then DialEnd BUSY and Hangup Cause 17."""
    tracker = lab_tracker("1009", tech="PJSIP")
    for originate in ORIGINATES:
        tracker.note_originate(*originate)
    events = replay(tracker, messages("originate_fail.client.ami", "pjsip22"))
    failed = [(e.agent, e.data["actionId"], e.data["reason"]) for e in events if e.type == "originateFailed"]
    assert failed == [
        ("1009", "fail-busy", "busy"),  # Reason 0 + DialEnd BUSY
        ("1002", "fail-noanswer", "no_answer"),  # Reason 3, as on 20
        ("1001", "fail-notech", "failed"),  # Reason 0, no channel ever existed
    ]
    assert compact(events, "1009") == [
        ("1009", "phoneNumber", "0911234567", "out", "1796307397.11", None),
        ("1009", "originateFailed", {"actionId": "fail-busy", "number": "0911234567", "reason": "busy"}),
        ("1009", "phoneNumber", None, "out", "1796307397.11", None),
    ]


def _busy_attempt(order: str) -> list[Message]:
    """The fail-busy attempt of the 22 capture with its leg's events in another order."""
    msgs = messages("originate_fail.client.ami", "pjsip22")
    leg = "PJSIP/1009-00000005"
    response = next(m for m in msgs if m.event == "OriginateResponse" and m.action_id == "fail-busy")
    dial_end = next(m for m in msgs if m.event == "DialEnd" and m.get("DestChannel") == leg)
    hangup = next(m for m in msgs if m.event == "Hangup" and m.get("Channel") == leg)
    begin = next(m for m in msgs if m.event == "DialBegin" and m.get("DestChannel") == leg)
    by_name = {"response": response, "dialend": dial_end, "hangup": hangup}
    return [begin, *(by_name[step] for step in order.split())]


@pytest.mark.parametrize(
    ("order", "reason"),
    [
        ("response dialend hangup", "busy"),  # the capture's order
        ("dialend response hangup", "busy"),
        ("hangup response", "busy"),  # Hangup Cause 17 alone tells busy
        ("dialend hangup response", "busy"),
        ("response hangup", "busy"),
    ],
)
def test_reason_zero_busy_whatever_the_order(order: str, reason: str) -> None:
    tracker = lab_tracker("1009", tech="PJSIP")
    tracker.note_originate("fail-busy", "1009", "0911234567")
    events = replay(tracker, _busy_attempt(order))
    failed = [e.data for e in events if e.type == "originateFailed"]
    assert failed == [{"actionId": "fail-busy", "number": "0911234567", "reason": reason}]


def test_reason_zero_with_a_normal_hangup_is_failed_once() -> None:
    tracker = lab_tracker("1009", tech="PJSIP")
    tracker.note_originate("fail-busy", "1009", "0911234567")
    msgs = _busy_attempt("response hangup")
    msgs[-1] = msgs[-1].replace(Cause="16", TechCause="")
    events = replay(tracker, [*msgs, msgs[-1]])
    failed = [e.data["reason"] for e in events if e.type == "originateFailed"]
    assert failed == ["failed"]


def test_originate_out_on_22() -> None:
    """``Exten: s`` on the originated channel; ConnectedLine becomes the dialled number."""
    tracker = lab_tracker(tech="PJSIP")
    tracker.note_originate("click2call-0001", "1001", "0911234567")
    events = replay(tracker, messages("originate_out.ami", "pjsip22"))
    assert compact(events, "1001") == [
        ("1001", "phoneNumber", "0911234567", "out", "1796307389.9", None),  # DialBegin, Exten s
        ("1001", "extensionStatus", "ringing"),
        ("1001", "queueMemberStatus", "support", True, "ringing", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "ringing", False, ""),
        ("1001", "extensionStatus", "inuse"),
        ("1001", "queueMemberStatus", "support", True, "inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "inuse", False, ""),
        ("1001", "phoneNumber", None, "out", "1796307389.9", None),
        ("1001", "extensionStatus", "not_inuse"),
        ("1001", "queueMemberStatus", "support", True, "not_inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
    ]
    assert not [e for e in events if e.agent != "1001"]


def test_an_agent_dialling_from_exten_s_shows_the_far_end_not_s() -> None:
    begin = next(
        m
        for m in messages("originate_out.ami", "pjsip22")
        if m.event == "DialBegin" and m.get("Channel") == "PJSIP/1001-00000003"
    )
    tracker = lab_tracker(tech="PJSIP")
    events = replay(tracker, [begin.replace(Exten="s")])
    assert [e.data["number"] for e in events if e.type == "phoneNumber"] == ["0911234567"]


def test_rebuild_from_the_22_state_dump() -> None:
    """The same plan and the same answer layout as on 20: QueueStatus, ExtensionState, CoreShowChannels."""
    answers: dict[str, tuple[Message, list[Message]]] = {}
    for m in messages("state_dump.client.ami", "pjsip22"):
        aid = m.action_id
        if aid is None or m.event == "OriginateResponse":
            continue
        if m.is_response:
            answers[aid] = (m, [])
        elif aid in answers:
            answers[aid][1].append(m)

    class Result:
        def __init__(self, aid: str) -> None:
            self.response, self.events = answers[aid]

    tracker = lab_tracker(tech="PJSIP")
    tracker.unregister("1002")
    tracker.unregister("1003")
    tracker.begin_rebuild()
    by_plan = {("QueueStatus", "sales"): "drv-69", ("QueueStatus", "support"): "drv-70",
               ("ExtensionState", None): "drv-74"}  # fmt: skip
    plan = tracker.plan_rebuild()
    assert ("QueueStatus", (("Queue", "sales"), ("Member", "PJSIP/1001"))) in [
        (p.name, p.headers) for p in plan
    ]
    for planned in plan:
        tracker.apply_result(planned, Result(by_plan[(planned.name, planned.header("Queue"))]))
    followup = tracker.plan_followup()
    assert [p.name for p in followup] == ["CoreShowChannels"]
    tracker.apply_result(followup[0], Result("drv-77"))
    assert compact(tracker.finish_rebuild(4)) == [
        ("1001", "pbxStatus", {"connected": True}),
        ("1001", "extensionStatus", "inuse"),
        ("1001", "queueMemberStatus", "sales", True, "inuse", False, ""),
        ("1001", "queueMemberStatus", "support", True, "inuse", False, ""),
        ("1001", "queueCount", "support", 1),
        ("1001", "phoneNumber", CUSTOMER, "in", "1796307401.17", "sales"),
    ]
