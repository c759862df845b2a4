"""What call control needs of the tracker: the current call's channels, the recording's
channel, and transferFailed for the transfers pbxis started (pure: no reactor)."""

from __future__ import annotations

from pbxis.ami.message import Message
from pbxis.tracker import Tracker
from tests.tracker.replay import lab_tracker, messages, replay

CALLER = ("Local/sales@callers-00000000;2", "1795693438.1")  # inbound_call.ami
LEG = ("SIP/1001-00000001", "1795693438.3")
PATH = "/var/spool/asterisk/monitor/1795693438.1.wav"


def until(msgs: list[Message], name: str) -> list[Message]:
    index = next(i for i, m in enumerate(msgs) if m.event == name)
    return msgs[: index + 1]


def test_the_answered_queue_call_names_both_channels_and_the_recording() -> None:
    tracker = lab_tracker()
    msgs = messages("inbound_call.ami")
    replay(tracker, until(msgs, "AgentConnect"))
    call = tracker.current_call("1001")
    assert call is not None
    assert (call.channel, call.peer, call.peer_id) == (LEG[0], CALLER[0], CALLER[1])
    assert call.unique_id == CALLER[1]
    assert (call.recording, call.recorded_channel, call.recording_paused) == (PATH, CALLER[1], False)
    assert tracker.current_call("1002") is None
    events = tracker.recording_paused("1001", True, 5)
    assert [(e.type, dict(e.data)) for e in events] == [
        ("recordingStatus", {"uniqueId": CALLER[1], "recording": PATH, "paused": True})
    ]
    assert tracker.current_call("1001").recording_paused is True  # type: ignore[union-attr]
    replay(tracker, msgs)
    assert tracker.current_call("1001") is None
    assert tracker.recording_paused("1001", False, 6) == []


def ev(name: str, **headers: str) -> Message:
    return Message([("Event", name), ("Privilege", "call,all"), *headers.items()])


def dial(event: str, channel: str, uid: str, dest: str, dest_uid: str, **extra: str) -> Message:
    return ev(
        event,
        Channel=channel,
        CallerIDNum="1001",
        CallerIDName="Agent 1001",
        Uniqueid=uid,
        Linkedid=uid,
        DestChannel=dest,
        DestCallerIDNum="1002",
        DestUniqueid=dest_uid,
        **extra,
    )


def connected(tracker: Tracker) -> None:
    replay(tracker, until(messages("inbound_call.ami"), "AgentConnect"))


def test_a_blind_transfer_that_finds_the_target_busy_is_reported_to_the_transferer() -> None:
    tracker = lab_tracker()
    connected(tracker)
    tracker.note_transfer("transfer-1", "1001", "1002", transferee=CALLER[1])
    ring = dial("DialBegin", CALLER[0], CALLER[1], "SIP/1002-00000005", "1795693438.9", DialString="1002")
    assert [e.agent for e in tracker.handle(ring, 10)] == ["1002"]
    busy = dial("DialEnd", CALLER[0], CALLER[1], "SIP/1002-00000005", "1795693438.9", DialStatus="BUSY")
    events = [e for e in tracker.handle(busy, 11) if e.type == "transferFailed"]
    assert [(e.agent, dict(e.data)) for e in events] == [
        ("1001", {"actionId": "transfer-1", "to": "1002", "reason": "busy"})
    ]
    assert tracker.handle(busy, 12) == []  # reported once


def test_an_answered_transfer_is_forgotten_not_reported() -> None:
    tracker = lab_tracker()
    connected(tracker)
    tracker.note_transfer("transfer-2", "1001", "1002", transferee=CALLER[1])
    ok = dial("DialEnd", CALLER[0], CALLER[1], "SIP/1002-00000005", "1795693438.9", DialStatus="ANSWER")
    assert not [e for e in tracker.handle(ok, 10) if e.type == "transferFailed"]
    late = dial("DialEnd", CALLER[0], CALLER[1], "SIP/1002-00000005", "1795693438.9", DialStatus="BUSY")
    assert not [e for e in tracker.handle(late, 11) if e.type == "transferFailed"]


LOCAL = "Local/1002@agents-00000004"
TARGET = ("SIP/1002-00000006", "1795693438.12")


def test_atxfer_through_a_local_channel_gives_the_target_the_caller() -> None:
    """Atxfer dials ``Local/<to>@<context>``; AttendedTransfer names the ;1 half as target."""
    tracker = lab_tracker()
    connected(tracker)
    tracker.note_transfer("transfer-3", "1001", "1002", consult="Local/1002@agents-")
    ring = dial("DialBegin", LOCAL + ";2", "1795693438.11", *TARGET, DialString="1002")
    consult = [e for e in tracker.handle(ring, 10) if e.agent == "1002"]
    assert consult[0].data["number"] == "1001"
    answer = dial("DialEnd", LOCAL + ";2", "1795693438.11", *TARGET, DialStatus="ANSWER")
    tracker.handle(answer, 11)
    done = ev(
        "AttendedTransfer",
        Result="Success",
        OrigTransfererChannel=LEG[0],
        OrigTransfererUniqueid=LEG[1],
        SecondTransfererChannel=LEG[0],
        SecondTransfererUniqueid=LEG[1],
        TransfereeChannel=CALLER[0],
        TransfereeCallerIDNum="0911234567",
        TransfereeCallerIDName="Customer",
        TransfereeUniqueid=CALLER[1],
        TransferTargetChannel=LOCAL + ";1",
        TransferTargetCallerIDNum="1001",
        TransferTargetUniqueid="1795693438.10",
        DestType="Bridge",
    )
    events = {e.agent: dict(e.data) for e in tracker.handle(done, 12)}
    assert events["1002"]["number"] == "0911234567" and events["1002"]["uniqueId"] == CALLER[1]
    assert events["1002"]["queue"] == "sales"
    assert events["1001"]["number"] is None
    target = tracker.current_call("1002")
    assert target is not None and target.peer == CALLER[0] and target.recording == PATH


def test_an_attended_transfer_nobody_answers_is_reported_and_a_cancel_too() -> None:
    tracker = lab_tracker()
    connected(tracker)
    tracker.note_transfer("transfer-4", "1001", "1002", consult="Local/1002@agents-")
    tracker.handle(dial("DialBegin", LOCAL + ";2", "1795693438.11", *TARGET, DialString="1002"), 10)
    nobody = dial("DialEnd", LOCAL + ";2", "1795693438.11", *TARGET, DialStatus="NOANSWER")
    failed = [dict(e.data) for e in tracker.handle(nobody, 11) if e.type == "transferFailed"]
    assert failed == [{"actionId": "transfer-4", "to": "1002", "reason": "no_answer"}]
    tracker.note_transfer("transfer-5", "1001", "1002", consult="Local/1002@agents-")
    (cancelled,) = tracker.transfer_cancelled("1001", "transfer-5", "1002", 12)
    assert (cancelled.type, cancelled.data["reason"]) == ("transferFailed", "cancelled")
    # Cancelled: its consultation's own DialEnd no longer reports anything.
    assert not [e for e in tracker.handle(nobody, 13) if e.type == "transferFailed"]
