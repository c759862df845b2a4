"""Replay the lab's Asterisk 20 captures; expectations written from reading each capture."""

from __future__ import annotations

from tests.tracker.replay import compact, lab_tracker, messages, replay

CUSTOMER = "385911234567"
IN_CALL = "1795693438.1"  # Uniqueid of the caller channel Local/sales@callers-00000000;2
REC = "/var/spool/asterisk/monitor/1795693438.1.wav"


def test_inbound_call_agent_1001():
    events = replay(lab_tracker(), messages("inbound_call.ami"))
    assert compact(events, "1001") == [
        ("1001", "queueCount", "sales", 1),  # QueueCallerJoin Count 1
        ("1001", "extensionStatus", "ringing"),  # ExtensionStatus 1001 Status 8
        ("1001", "queueMemberStatus", "support", True, "ringing", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "ringing", False, ""),
        ("1001", "phoneNumber", CUSTOMER, "in", IN_CALL, "sales"),  # AgentCalled SIP/1001
        ("1001", "extensionStatus", "inuse"),
        ("1001", "queueMemberStatus", "support", True, "inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "inuse", False, ""),
        ("1001", "queueCount", "sales", 0),  # QueueCallerLeave Count 0
        ("1001", "extensionStatus", "not_inuse"),
        (
            "1001",
            "agentComplete",
            {
                "uniqueId": IN_CALL,
                "queue": "sales",
                "talkTime": 3,
                "holdTime": 1,
                "recording": REC,
                "reason": "caller",
            },
        ),
        ("1001", "queueMemberStatus", "support", True, "not_inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
        ("1001", "phoneNumber", None, "in", IN_CALL, "sales"),  # Hangup SIP/1001-00000001
    ]


def test_inbound_call_ringall_loser_1003_and_bystander_1002():
    events = replay(lab_tracker(), messages("inbound_call.ami"))
    assert compact(events, "1003") == [
        ("1003", "queueCount", "sales", 1),
        ("1003", "phoneNumber", CUSTOMER, "in", IN_CALL, "sales"),  # AgentCalled SIP/1003
        ("1003", "extensionStatus", "ringing"),
        ("1003", "queueMemberStatus", "sales", True, "ringing", False, ""),
        ("1003", "phoneNumber", None, "in", IN_CALL, "sales"),  # Hangup: answered elsewhere
        ("1003", "queueCount", "sales", 0),
        ("1003", "extensionStatus", "not_inuse"),
        ("1003", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
    ]
    # 1002 is in no queue of this call: only the waiting count of its registered queue.
    assert compact(events, "1002") == [
        ("1002", "queueCount", "sales", 1),
        ("1002", "queueCount", "sales", 0),
    ]


def test_inbound_call_events_carry_caller_name():
    events = replay(lab_tracker(), messages("inbound_call.ami"))
    ring = next(e for e in events if e.type == "phoneNumber" and e.agent == "1001")
    assert ring.data["name"] == "Customer"


def test_recording_from_chanvariable_when_channelvars_set():
    from pbxis.ami.message import Message

    tracker = lab_tracker()
    msgs = [m for m in messages("inbound_call.ami") if m.get("Variable") != "MIXMONITOR_FILENAME"]
    patched = []
    for m in msgs:
        if m.event == "AgentComplete":
            m = Message([*m.headers, ("ChanVariable", "MIXMONITOR_FILENAME=/rec/a\\'b.wav")])
        patched.append(m)
    done = [e for e in replay(tracker, patched) if e.type == "agentComplete"]
    assert [e.data["recording"] for e in done] == ["/rec/a'b.wav"]


def test_originate_out_shows_dialled_number_when_phone_rings():
    tracker = lab_tracker()
    tracker.note_originate("click2call-0001", "1001", "0911234567")
    events = replay(tracker, messages("originate_out.ami"))
    assert compact(events, "1001") == [
        ("1001", "phoneNumber", "0911234567", "out", "1795693461.9", None),  # DialBegin
        ("1001", "queueMemberStatus", "support", True, "ringing", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "ringing", False, ""),
        ("1001", "extensionStatus", "ringing"),
        ("1001", "extensionStatus", "inuse"),
        ("1001", "queueMemberStatus", "support", True, "inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "inuse", False, ""),
        ("1001", "extensionStatus", "not_inuse"),
        ("1001", "phoneNumber", None, "out", "1795693461.9", None),
        ("1001", "queueMemberStatus", "support", True, "not_inuse", False, ""),
        ("1001", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
    ]
    assert not [e for e in events if e.agent != "1001"]


def test_originate_failures():
    tracker = lab_tracker("1009")
    tracker.note_originate("fail-busy", "1009", "0911234567")
    tracker.note_originate("fail-noanswer", "1002", "0911234567")
    tracker.note_originate("fail-notech", "1001", "0911234567")
    events = replay(tracker, messages("originate_fail.client.ami"))
    failed = [(e.agent, e.data["actionId"], e.data["reason"]) for e in events if e.type == "originateFailed"]
    assert failed == [
        ("1009", "fail-busy", "busy"),  # Reason 5
        ("1002", "fail-noanswer", "no_answer"),  # Reason 3
        ("1001", "fail-notech", "failed"),  # Reason 0
    ]
    assert compact(events, "1002") == [
        ("1002", "extensionStatus", "ringing"),
        ("1002", "phoneNumber", "0911234567", "out", "1795693468.12", None),
        ("1002", "queueMemberStatus", "support", True, "ringing", False, ""),
        ("1002", "extensionStatus", "not_inuse"),
        (
            "1002",
            "originateFailed",
            {"actionId": "fail-noanswer", "number": "0911234567", "reason": "no_answer"},
        ),
        ("1002", "phoneNumber", None, "out", "1795693468.12", None),
        ("1002", "queueMemberStatus", "support", True, "not_inuse", False, ""),
    ]


def test_outgoing_leg_busy_after_agent_answered_is_reported_once():
    from pbxis.ami.message import Message

    tracker = lab_tracker()
    tracker.note_originate("c2c", "1001", "0911234567")
    msgs = messages("originate_out.ami")
    busy = []
    for m in msgs:
        if m.event == "DialEnd" and m.get("Channel") == "SIP/1001-00000003":
            m = m.replace(DialStatus="BUSY")
            busy.extend([m, m])  # Asterisk repeats DialEnd
            continue
        busy.append(m)
    events = replay(tracker, busy)
    failed = [dict(e.data) for e in events if e.type == "originateFailed"]
    assert failed == [{"actionId": "c2c", "number": "0911234567", "reason": "busy"}]
    assert Message  # imported for the replace() helper's type


def test_queue_waiting_pause_and_counts():
    events = replay(lab_tracker(), messages("queue_waiting.client.ami"))
    assert compact(events, "1002") == [
        ("1002", "queueMemberStatus", "support", True, "not_inuse", True, "Meeting"),
        ("1002", "queueCount", "support", 1),
        ("1002", "queueCount", "support", 2),
        ("1002", "queueCount", "support", 1),  # caller A abandoned (timeout)
        ("1002", "queueCount", "support", 0),  # caller B answered by 1001
        ("1002", "queueMemberStatus", "support", True, "not_inuse", False, ""),
    ]
    calls = [c for c in compact(events, "1001") if c[1] in ("phoneNumber", "agentComplete")]
    assert calls[0] == ("1001", "phoneNumber", "385912222222", "in", "1795693446.7", "support")
    assert calls[1][2]["recording"] == "/var/spool/asterisk/monitor/1795693446.7.wav"
    assert calls[2] == ("1001", "phoneNumber", None, "in", "1795693446.7", "support")


def test_pause_repeats_are_not_duplicated_and_unpause_reason_shown():
    events = replay(lab_tracker(), messages("pause.ami"))
    assert compact(events) == [
        ("1001", "queueMemberStatus", "support", True, "not_inuse", True, "Lunch break"),
        ("1001", "queueMemberStatus", "sales", True, "not_inuse", True, "Lunch break"),
        ("1001", "queueMemberStatus", "support", True, "not_inuse", False, "Back for support"),
        ("1001", "queueMemberStatus", "support", True, "not_inuse", False, ""),
        # the second QueueMemberPause of support (no change) is not repeated
        ("1001", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
        ("1002", "queueMemberStatus", "support", True, "not_inuse", False, "Ready"),
    ]


def test_login_and_logoff():
    tracker = lab_tracker()
    events = replay(tracker, messages("login.ami"))
    assert compact(events) == [
        ("1001", "queueMemberStatus", "sales", True, "not_inuse", False, ""),
        ("1001", "queueMemberStatus", "support", True, "not_inuse", False, ""),
        ("1002", "queueMemberStatus", "support", True, "not_inuse", True, "Login paused"),
    ]
    events = replay(tracker, messages("logoff.ami"))
    assert compact(events) == [
        ("1001", "queueMemberStatus", "sales", False, "unknown", False, ""),
        ("1001", "queueMemberStatus", "support", False, "unknown", False, ""),
        ("1002", "queueMemberStatus", "support", False, "unknown", False, ""),
    ]


def test_unregistered_queue_and_agent_are_ignored():
    from pbxis.tracker import Tracker

    tracker = Tracker()
    tracker.register("1001", ["support"], 0)
    events = replay(tracker, messages("inbound_call.ami"))
    assert {e.data.get("queue") for e in events if e.type.startswith("queue")} == {"support"}
    assert not [e for e in events if e.agent != "1001"]


def test_interface_template_is_exact_not_digit_guessing():
    from pbxis.tracker import Tracker

    tracker = Tracker(interface_template="PJSIP/{agent}")
    tracker.register("1001", ["sales", "support"], 0)
    # The lab uses SIP/1001: nothing of it belongs to PJSIP/1001.
    events = replay(tracker, messages("inbound_call.ami"))
    assert {e.type for e in events} <= {"queueCount", "extensionStatus"}
