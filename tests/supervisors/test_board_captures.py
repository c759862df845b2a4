"""The supervisor board replaying what a real Asterisk 20 sent (shared captures)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser
from pbxis.events import AgentEvent
from pbxis.supervisors import NO_MEMBER, QueueBoard, supervisor_key
from pbxis.tracker import PlannedAction
from tests.support.shared import captures_dir

BOSS = supervisor_key("boss")
STEP_MS = 100  # replay time: message index * 100 ms


def messages(name: str) -> list[Message]:
    parser = AMIParser()
    parser.receive_data((captures_dir() / name).read_bytes())
    return [m for m in parser.messages() if isinstance(m, Message)]


def lab_agent(interface: str) -> str | None:
    return interface[4:] if interface.startswith("SIP/") else None


@dataclass
class Replay:
    events: list[tuple[int, AgentEvent]] = field(default_factory=list)
    refreshes: list[tuple[int, PlannedAction]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict]:
        return [dict(e.data) for _, e in self.events if e.type == kind]


def replay(board: QueueBoard, msgs: list[Message]) -> Replay:
    out = Replay()
    for index, message in enumerate(msgs):
        now = index * STEP_MS
        out.events.extend((now, e) for e in board.flush(now))
        out.events.extend((now, e) for e in board.handle(message, now))
        out.refreshes.extend((index, p) for p in board.take_refreshes())
    return out


def boss_board(*queues: str) -> QueueBoard:
    board = QueueBoard(lab_agent)
    assert board.register(BOSS, queues or ("support",), 0) == []
    for planned in board.plan_load():  # as after a login: each queue read once (empty here)
        board.apply_result(planned, [], 0)
    assert board.unloaded() == []
    board.link_up(0)
    return board


def test_queue_waiting_two_callers_one_abandon_one_answered():
    msgs = messages("queue_waiting.client.ami")
    result = replay(boss_board(), msgs)
    callers = [
        [(c["number"], c["name"], c["position"]) for c in e["callers"]] for e in result.of("queueCallers")
    ]
    assert callers == [
        [("385911111111", "Customer A", 1)],
        [("385911111111", "Customer A", 1), ("385912222222", "Customer B", 2)],
        [("385912222222", "Customer B", 1)],  # A abandoned
        [],  # B answered by 1001
    ]
    # A caller's wait starts when it joined, and keeps that start when others leave.
    b_since = [e["callers"][-1]["since"] for e in result.of("queueCallers") if e["callers"]][1:]
    assert len(set(b_since)) == 1
    # Counters are read from Asterisk after the abandon and after the completed call,
    # once each, with the QueueStatus that returns no member.
    kinds = [msgs[i].event for i, _ in result.refreshes]
    assert kinds == ["QueueCallerAbandon", "AgentComplete"]
    assert {p.headers for _, p in result.refreshes} == {(("Queue", "support"), ("Member", NO_MEMBER))}


def test_queue_waiting_members_status_and_since():
    result = replay(boss_board(), messages("queue_waiting.client.ami"))
    members = [(m["agent"], m["status"], m["paused"], m["pausedReason"]) for m in result.of("queueMember")]
    assert members == [
        ("1001", "not_inuse", True, "Meeting"),
        ("1002", "not_inuse", True, "Meeting"),
        ("1001", "not_inuse", False, ""),
        ("1001", "ringing", False, ""),
        ("1001", "inuse", False, ""),
        ("1001", "not_inuse", False, ""),
        ("1002", "not_inuse", False, ""),
    ]
    last_1001 = [m for m in result.of("queueMember") if m["agent"] == "1001"][-1]
    assert last_1001["callsTaken"] == 2  # Asterisk's own count, after the answered call
    assert last_1001["lastCall"] == 1795693459000
    times = [(t, e.data["since"]) for t, e in result.events if e.type == "queueMember"]
    assert all(t == since for t, since in times)  # each status began when its event came


def test_queue_stats_throttled_one_per_second_and_coalesced():
    board = boss_board()
    result = replay(board, messages("queue_waiting.client.ami"))
    stamps = [t for t, e in result.events if e.type == "queueStats"]
    assert all(b - a >= 1000 for a, b in itertools.pairwise(stamps))
    # What was held back is not lost: the last state is emitted once the second is over.
    due = board.next_flush_ms()
    tail = board.flush(due) if due is not None else []
    final = ([dict(e.data) for e in tail] or result.of("queueStats"))[-1]
    assert final["waiting"] == 0
    assert final["members"] == {
        "loggedIn": 2,
        "available": 2,
        "ringing": 0,
        "inCall": 0,
        "paused": 0,
        "unavailable": 0,
    }
    assert board.next_flush_ms() is None


def test_counters_are_asterisks_queueparams():
    """The counters of the state dump's QueueStatus answer, as ``queue show`` has them."""
    board = boss_board("support", "sales")
    dump = messages("state_dump.client.ami")
    first = next(m for m in dump if m.event == "QueueParams")
    action = first.action_id
    items = [
        m for m in dump if m.action_id == action and m.event in ("QueueParams", "QueueMember", "QueueEntry")
    ]
    events = board.apply_result(PlannedAction("QueueStatus", (("Queue", "support"),)), items, 50_000)
    stats = [dict(e.data) for e in events if e.type == "queueStats"][-1]
    params = next(m for m in items if m.event == "QueueParams" and m.get("Queue") == "support")
    assert stats["completed"] == int(params["Completed"]) == 1
    assert stats["abandoned"] == int(params["Abandoned"]) == 1
    assert stats["serviceLevel"] == int(params["ServiceLevel"])
    assert stats["serviceLevelPerf"] == float(params["ServicelevelPerf"])
    assert stats["holdTime"] == int(params["Holdtime"])
    assert stats["talkTime"] == int(params["TalkTime"])
    entries = [m for m in items if m.event == "QueueEntry" and m.get("Queue") == "support"]
    assert stats["waiting"] == len(entries)
    callers = [dict(e.data) for e in events if e.type == "queueCallers"][-1]["callers"]
    assert [c["since"] for c in callers] == [50_000 - 1000 * int(e["Wait"]) for e in entries]
    members = {m["agent"] for m in (dict(e.data) for e in events if e.type == "queueMember")}
    assert members == {
        lab_agent(m["Location"]) for m in items if m.event == "QueueMember" and m["Queue"] == "support"
    }
    # The same answer again changes nothing: nothing is emitted.
    assert board.apply_result(PlannedAction("QueueStatus", (("Queue", "support"),)), items, 51_000) == []


def test_unsupervised_queue_is_ignored_and_costs_nothing():
    board = QueueBoard(lab_agent)
    assert replay(board, messages("queue_waiting.client.ami")).events == []
    board.register(BOSS, ["sales"], 0)
    events = [e for _, e in replay(board, messages("queue_waiting.client.ami")).events]
    # The callers waited in support; of sales only 1001's device state (one event per queue).
    assert {e.data["queue"] for e in events} == {"sales"}
    assert {e.type for e in events} == {"queueMember", "queueStats"}
    assert {e.data["agent"] for e in events if e.type == "queueMember"} == {"1001"}


def test_waiting_callers_are_bounded_and_a_counter_read_corrects_drift():
    board = QueueBoard(lab_agent, max_callers=50)
    board.register(BOSS, ["support"], 0)
    for i in range(55):  # joins whose leaving never came
        join = {"Event": "QueueCallerJoin", "Queue": "support", "Uniqueid": f"u{i}", "Position": str(i + 1)}
        board.handle(Message(join), i)
    assert board.state(BOSS, 0)["queues"]["support"]["stats"]["waiting"] == 50
    entry = Message(
        {"Event": "QueueEntry", "Queue": "support", "Uniqueid": "u3", "Position": "1", "Wait": "7"}
    )
    read = PlannedAction("QueueStatus", (("Queue", "support"), ("Member", NO_MEMBER)))
    events = board.apply_result(read, [entry], 20_000)
    callers = [e.data["callers"] for e in events if e.type == "queueCallers"][-1]
    assert callers == [{"position": 1, "number": None, "name": None, "since": 3}]  # u3 keeps its join time


def test_a_queue_not_loaded_yet_asks_for_no_counter_read():
    board = QueueBoard(lab_agent)
    board.register(BOSS, ["support"], 0)
    abandon = Message({"Event": "QueueCallerAbandon", "Queue": "support", "Uniqueid": "u1"})
    board.handle(abandon, 0)
    assert board.take_refreshes() == []  # its load, still to come, reads the counters anyway
    assert board.plan_load() == [PlannedAction("QueueStatus", (("Queue", "support"),))]
    board.apply_result(board.plan_load()[0], [], 0)
    board.handle(abandon, 1)
    assert board.take_refreshes() == [
        PlannedAction("QueueStatus", (("Queue", "support"), ("Member", NO_MEMBER)))
    ]
    assert board.take_refreshes() == []  # asked once
