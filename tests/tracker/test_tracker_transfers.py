"""phoneNumber follows the call through attended and blind transfers.

These sequences are built from the Asterisk documentation (docs.asterisk.org, AMI events
AttendedTransfer, BlindTransfer, DialBegin; the AMI text of main/stasis_bridges.c) because
the shared captures hold no transfer. Headers are in the order and spelling Asterisk 20
sends: a channel snapshot is ``<prefix>Channel``, ``ChannelState``, ``ChannelStateDesc``,
``CallerIDNum``, ``CallerIDName``, ``ConnectedLineNum``, ``ConnectedLineName``,
``Language``, ``AccountCode``, ``Context``, ``Exten``, ``Priority``, ``Uniqueid``,
``Linkedid``; AttendedTransfer lists OrigTransferer, Orig bridge, SecondTransferer,
Second bridge, Transferee, TransferTarget, IsExternal, DestType and its details.
"""

from __future__ import annotations

from pbxis.ami.message import Message
from pbxis.tracker.filters import advanced_filters, legacy_passes, manager_conf_lines, passes
from tests.tracker.replay import compact, lab_tracker, replay

CUSTOMER = "385917654321"
TRUNK = "SIP/carrier-0000000a"  # the customer's channel: no registered agent's device
C = "1795700000.10"  # its Uniqueid (QueueCallerJoin, AgentCalled: the caller)
A1 = ("SIP/1001-0000000b", "1795700000.11")  # agent 1001 answering the queue call
A2 = ("SIP/1001-0000000c", "1795700000.12")  # agent 1001 consulting the target
B1 = ("SIP/1002-0000000d", "1795700000.13")  # the target agent 1002's phone
NAMES = {"1001": "Agent 1001", "1002": "Agent 1002", "1009": "Agent 1009", CUSTOMER: "Customer"}


def snapshot(prefix: str, channel: str, uid: str, number: str, **fields: str) -> list[tuple[str, str]]:
    """One channel snapshot (reference §3.1) under ``prefix``."""
    values = {
        "Channel": channel,
        "ChannelState": "6",
        "ChannelStateDesc": "Up",
        "CallerIDNum": number,
        "CallerIDName": NAMES.get(number, "<unknown>"),
        "ConnectedLineNum": "<unknown>",
        "ConnectedLineName": "<unknown>",
        "Language": "en",
        "AccountCode": "",
        "Context": "agents",
        "Exten": "",
        "Priority": "1",
        "Uniqueid": uid,
        "Linkedid": C,
    }
    values.update(fields)
    return [(prefix + key, value) for key, value in values.items()]


def bridge(prefix: str, uid: str) -> list[tuple[str, str]]:
    values = {
        "BridgeUniqueid": uid,
        "BridgeType": "basic",
        "BridgeTechnology": "simple_bridge",
        "BridgeCreator": "<unknown>",
        "BridgeName": "<unknown>",
        "BridgeNumChannels": "2",
        "BridgeVideoSourceMode": "none",
    }
    return [(prefix + key, value) for key, value in values.items()]


def event(name: str, *parts: list[tuple[str, str]], **extra: str) -> Message:
    headers = [("Event", name), ("Privilege", "call,all")]
    for part in parts:
        headers.extend(part)
    headers.extend(extra.items())
    return Message(headers)


def caller() -> list[tuple[str, str]]:
    return snapshot("", TRUNK, C, CUSTOMER, ChannelState="4", ChannelStateDesc="Ring", Context="callers")


def member(agent: str, leg: tuple[str, str]) -> list[tuple[str, str]]:
    return [
        *snapshot("Dest", leg[0], leg[1], agent, ConnectedLineNum=CUSTOMER, ConnectedLineName="Customer"),
        ("Queue", "sales"),
        ("Interface", f"SIP/{agent}"),
        ("MemberName", NAMES[agent]),
    ]


def queue_call_to_1001() -> list[Message]:
    """The customer waits in sales; agent 1001 answers on A1."""
    return [
        event("QueueCallerJoin", caller(), Queue="sales", Position="1", Count="1"),
        event("AgentCalled", caller(), member("1001", A1)),
        event(
            "DialBegin",
            caller(),
            snapshot("Dest", *A1, "1001", ChannelState="0", ChannelStateDesc="Down"),
            DialString="SIP/1001",
        ),
        event("QueueCallerLeave", caller(), Queue="sales", Position="1", Count="0"),
        event("AgentConnect", caller(), member("1001", A1), HoldTime="2", RingTime="1"),
    ]


def consult(target: str, leg: tuple[str, str]) -> list[Message]:
    """Agent 1001 puts the customer on hold and calls ``target`` from a second line."""
    return [
        event(
            "DialBegin",
            snapshot("", *A2, "1001", ChannelState="4", ChannelStateDesc="Ring", Exten=target),
            snapshot(
                "Dest", *leg, target, ChannelState="0", ChannelStateDesc="Down", ConnectedLineNum="1001"
            ),
            DialString=target,
        ),
        event(
            "DialEnd",
            snapshot("", *A2, "1001", Exten=target),
            snapshot("Dest", *leg, target, ConnectedLineNum="1001"),
            DialStatus="ANSWER",
        ),
    ]


def attended(target: str, leg: tuple[str, str], result: str = "Success", **dest: str) -> Message:
    """AttendedTransfer in the order main/stasis_bridges.c writes it (attended_transfer_to_ami)."""
    tail = list((dest or {"DestType": "Bridge", "DestBridgeUniqueid": "b-queue"}).items())
    return event(
        "AttendedTransfer",
        [("Result", result)],
        snapshot("OrigTransferer", *A1, "1001", ConnectedLineNum=CUSTOMER, Exten="sales"),
        bridge("Orig", "b-queue"),
        snapshot("SecondTransferer", *A2, "1001", ConnectedLineNum=target, Exten=target),
        bridge("Second", "b-consult"),
        snapshot("Transferee", TRUNK, C, CUSTOMER, ConnectedLineNum="1001", Context="callers"),
        snapshot("TransferTarget", *leg, target, ConnectedLineNum="1001"),
        [("IsExternal", "Yes")],
        tail,
    )


def agent_complete(reason: str) -> Message:
    return event("AgentComplete", caller(), member("1001", A1), HoldTime="2", TalkTime="30", Reason=reason)


def hangup(channel: str, uid: str, number: str) -> Message:
    return event("Hangup", snapshot("", channel, uid, number), Cause="16", **{"Cause-txt": "Normal Clearing"})


def attended_to(target: str, leg: tuple[str, str]) -> list[Message]:
    """The whole attended transfer: queue call, consultation, transfer, transferer hangs up."""
    return [
        *queue_call_to_1001(),
        *consult(target, leg),
        attended(target, leg),
        agent_complete("transfer"),
        hangup(*A1, "1001"),
        hangup(*A2, "1001"),
    ]


def phone(events, agent: str) -> list[tuple]:
    return [e for e in compact(events, agent) if e[1] == "phoneNumber"]


# -- attended transfer ---------------------------------------------------------------------
def test_attended_transfer_of_a_queue_call_moves_the_customer_to_the_target():
    tracker = lab_tracker()
    events = replay(tracker, [*attended_to("1002", B1), hangup(TRUNK, C, CUSTOMER), hangup(*B1, "1002")])
    done = {
        "uniqueId": C,
        "queue": "sales",
        "talkTime": 30,
        "holdTime": 2,
        "recording": None,
        "reason": "transfer",
    }
    assert compact(events, "1001") == [
        ("1001", "queueCount", "sales", 1),
        ("1001", "phoneNumber", CUSTOMER, "in", C, "sales"),  # AgentCalled
        ("1001", "queueCount", "sales", 0),
        ("1001", "phoneNumber", "1002", "out", A2[1], None),  # DialBegin A2 -> B1
        ("1001", "phoneNumber", None, "out", A2[1], None),  # AttendedTransfer: both legs leave
        ("1001", "agentComplete", done),
    ]
    assert compact(events, "1002") == [
        ("1002", "queueCount", "sales", 1),
        ("1002", "queueCount", "sales", 0),
        ("1002", "phoneNumber", "1001", "in", A2[1], None),  # DialBegin A2 -> B1
        ("1002", "phoneNumber", CUSTOMER, "in", C, "sales"),  # AttendedTransfer
        ("1002", "phoneNumber", None, "in", C, "sales"),  # Hangup B1
    ]
    names = [e.data["name"] for e in events if e.type == "phoneNumber" and e.agent == "1002"]
    assert names == ["Agent 1001", "Customer", None]
    # 1003 is a sales member nobody called: the waiting count only; nobody else is told.
    assert compact(events, "1003") == [("1003", "queueCount", "sales", 1), ("1003", "queueCount", "sales", 0)]
    assert {e.agent for e in events} == {"1001", "1002", "1003"}
    assert tracker.agent_state("1002")["call"] is None


def test_attended_transfer_whatever_order_the_transferer_legs_hang_up():
    # A2 before A1: the first leg must not show the customer again on 1001's phone.
    msgs = attended_to("1002", B1)
    msgs[-2], msgs[-1] = msgs[-1], msgs[-2]
    events = replay(lab_tracker(), msgs)
    assert phone(events, "1001")[-2:] == [
        ("1001", "phoneNumber", "1002", "out", A2[1], None),
        ("1001", "phoneNumber", None, "out", A2[1], None),
    ]
    assert phone(events, "1002")[-1] == ("1002", "phoneNumber", CUSTOMER, "in", C, "sales")


def test_attended_transfer_to_a_phone_that_is_no_registered_agent():
    target = ("SIP/1009-0000000d", B1[1])
    events = replay(lab_tracker(), attended_to("1009", target))
    assert phone(events, "1001") == [
        ("1001", "phoneNumber", CUSTOMER, "in", C, "sales"),
        ("1001", "phoneNumber", "1009", "out", A2[1], None),
        ("1001", "phoneNumber", None, "out", A2[1], None),
    ]
    assert {e.agent for e in events if e.type != "queueCount"} == {"1001"}


def test_failed_attended_transfer_changes_nothing():
    tracker = lab_tracker()
    replay(tracker, [*queue_call_to_1001(), *consult("1002", B1)])
    before = (tracker.agent_state("1001"), tracker.agent_state("1002"))
    assert tracker.handle(attended("1002", B1, "Fail", DestType="Fail"), 99) == []
    assert tracker.handle(attended("1002", B1, "Not Permitted", DestType="Fail"), 99) == []
    assert (tracker.agent_state("1001"), tracker.agent_state("1002")) == before
    assert before[1]["call"]["number"] == "1001"


def test_threeway_keeps_the_surviving_transferer_leg():
    tracker = lab_tracker()
    replay(tracker, [*queue_call_to_1001(), *consult("1002", B1)])
    threeway = attended(
        "1002", B1, DestType="Threeway", DestBridgeUniqueid="b-queue", DestTransfererChannel=A1[0]
    )
    events = replay(tracker, [threeway])
    assert compact(events) == [
        ("1001", "phoneNumber", CUSTOMER, "in", C, "sales"),  # back on A1, with both parties
        ("1002", "phoneNumber", CUSTOMER, "in", C, "sales"),
    ]


def test_transferee_agent_gets_the_target_symmetrically():
    # Agent 1003 called a supervisor (SIP/2000, no agent), who consulted 1002 and joined them.
    sup1, sup2 = ("SIP/2000-00000020", "1795700000.20"), ("SIP/2000-00000022", "1795700000.22")
    mine, target = ("SIP/1003-00000021", "1795700000.21"), ("SIP/1002-00000023", "1795700000.23")
    msgs = [
        event(
            "DialBegin",
            snapshot("", *mine, "1003", Exten="2000", Linkedid=mine[1]),
            snapshot("Dest", *sup1, "2000", Linkedid=mine[1]),
            DialString="2000",
        ),
        event(
            "DialBegin",
            snapshot("", *sup2, "2000", Exten="1002", Linkedid=sup2[1]),
            snapshot("Dest", *target, "1002", Linkedid=sup2[1]),
            DialString="1002",
        ),
        event(
            "AttendedTransfer",
            [("Result", "Success")],
            snapshot("OrigTransferer", *sup1, "2000"),
            bridge("Orig", "b-1"),
            snapshot("SecondTransferer", *sup2, "2000"),
            bridge("Second", "b-2"),
            snapshot("Transferee", *mine, "1003"),
            snapshot("TransferTarget", *target, "1002"),
            [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", "b-1")],
        ),
    ]
    events = replay(lab_tracker(), msgs)
    assert compact(events) == [
        ("1003", "phoneNumber", "2000", "out", mine[1], None),
        ("1002", "phoneNumber", "2000", "in", sup2[1], None),
        ("1002", "phoneNumber", "1003", "in", mine[1], None),
        ("1003", "phoneNumber", "1002", "out", target[1], None),
    ]


def test_transfer_queue_known_from_the_transferer_when_the_caller_map_lost_it():
    tracker = lab_tracker()
    replay(tracker, [*queue_call_to_1001(), *consult("1002", B1)])
    tracker._state.queue_callers.clear()  # bounded map evicted it, or a rebuild never filled it
    events = replay(tracker, [attended("1002", B1)])
    assert phone(events, "1002") == [("1002", "phoneNumber", CUSTOMER, "in", C, "sales")]


def test_garbled_attended_transfers_never_raise_or_emit():
    tracker = lab_tracker()
    replay(tracker, [*queue_call_to_1001(), *consult("1002", B1)])
    for headers in (
        [("Result", "Success")],
        [("Result", "Success"), ("TransfereeChannel", B1[0])],
        [("Result", "Success"), ("TransferTargetChannel", B1[0]), ("TransferTargetUniqueid", B1[1])],
        [("Result", "Success"), ("OrigTransfererChannel", A1[0])],
    ):
        assert tracker.handle(event("AttendedTransfer", headers), 1) == []


# -- blind transfer ------------------------------------------------------------------------
def blind_to_1002() -> list[Message]:
    """1001 blind-transfers the customer to 1002: the customer's channel dials 1002 itself."""
    return [
        *queue_call_to_1001(),
        event(
            "BlindTransfer",
            [("Result", "Success")],
            snapshot("Transferer", *A1, "1001", ConnectedLineNum=CUSTOMER, Exten="sales"),
            snapshot("Transferee", TRUNK, C, CUSTOMER, ConnectedLineNum="1001", Context="callers"),
            bridge("", "b-queue"),
            [("IsExternal", "Yes"), ("Context", "agents"), ("Extension", "1002")],
        ),
        agent_complete("transfer"),
        hangup(*A1, "1001"),
        event(
            "DialBegin",
            snapshot("", TRUNK, C, CUSTOMER, Context="agents", Exten="1002", ConnectedLineNum="1001"),
            snapshot("Dest", *B1, "1002", ChannelState="0", ChannelStateDesc="Down"),
            DialString="SIP/1002",
        ),
    ]


def test_blind_transfer_of_a_queue_call_shows_the_customer_to_the_new_agent():
    events = replay(lab_tracker(), blind_to_1002())
    assert phone(events, "1001") == [
        ("1001", "phoneNumber", CUSTOMER, "in", C, "sales"),
        ("1001", "phoneNumber", None, "in", C, "sales"),  # Hangup A1
    ]
    assert phone(events, "1002") == [("1002", "phoneNumber", CUSTOMER, "in", C, "sales")]  # DialBegin
    ring = next(e for e in events if e.type == "phoneNumber" and e.agent == "1002")
    assert ring.data["name"] == "Customer"


# -- the server-side filter ----------------------------------------------------------------
def test_filter_passes_attended_transfer_not_blind_transfer():
    transfer = attended("1002", B1)
    assert passes(transfer) and legacy_passes(transfer.to_bytes().decode())
    assert (("Operation", "Add"), ("MatchCriteria", "name(AttendedTransfer)")) in advanced_filters()
    assert "eventfilter(name(AttendedTransfer)) =" in manager_conf_lines()
    blind = blind_to_1002()[5]
    assert blind.event == "BlindTransfer"
    assert not passes(blind) and not legacy_passes(blind.to_bytes().decode())


def test_filtered_streams_digest_to_the_same_events():
    def run(msgs):
        return [(e.agent, e.type, dict(e.data)) for e in replay(lab_tracker(), msgs)]

    for msgs in (attended_to("1002", B1), blind_to_1002()):
        assert run([m for m in msgs if passes(m)]) == run(msgs)
