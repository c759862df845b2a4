"""Hostile AMI bytes into the supervisor board: whatever a peer sends, what reaches a
supervisor's browser is valid JSON and the board's memory stays bounded."""

from __future__ import annotations

import json

import pytest

from pbxis.ami.message import Message
from pbxis.supervisors import QueueBoard, supervisor_key
from pbxis.tracker import PlannedAction

BOSS = supervisor_key("boss")
LOAD = PlannedAction("QueueStatus", (("Queue", "support"),))


def board() -> QueueBoard:
    b = QueueBoard(lambda interface: None)
    b.register(BOSS, ["support"], 0)
    return b


@pytest.mark.parametrize("perf", ["nan", "NaN", "inf", "-inf", "1e999", "-1e999"])
def test_a_non_finite_service_level_is_not_sent_as_invalid_json(perf: str) -> None:
    """``float()`` reads ``nan`` and ``inf``; ``json.dumps`` writes them as ``NaN`` and
    ``Infinity``, which ``JSON.parse`` in every wallboard refuses: one QueueParams item
    would break every supervisor's stream of that queue."""
    b = board()
    params = Message(
        {"Event": "QueueParams", "Queue": "support", "Completed": "3", "ServicelevelPerf": perf}
    )
    events = b.apply_result(LOAD, [params], 1000)
    stats = [e.data for e in events if e.type == "queueStats"][-1]
    assert stats["completed"] == 3
    json.dumps(stats, allow_nan=False)
    json.dumps(b.state(BOSS, 1000), allow_nan=False)


def test_members_per_queue_are_bounded_against_a_stream_of_new_interfaces() -> None:
    """Callers are bounded (``max_callers``); members were not: each QueueMemberStatus
    with an interface never seen added one, for ever (and one ``shown_members`` entry)."""
    b = QueueBoard(lambda interface: None, max_members=50)
    b.register(BOSS, ["support"], 0)
    b.apply_result(LOAD, [], 0)
    for i in range(80):
        b.handle(Message({"Event": "QueueMemberStatus", "Queue": "support", "Interface": f"X/{i}"}), i)
    members = b.state(BOSS, 100)["queues"]["support"]["members"]
    assert len(members) == 50
    # a known member still updates, and a QueueStatus answer is bounded the same way
    events = b.handle(
        Message({"Event": "QueueMemberStatus", "Queue": "support", "Interface": "X/3", "Paused": "1"}), 200
    )
    assert [e.data["paused"] for e in events if e.type == "queueMember"] == [True]
    items = [Message({"Event": "QueueMember", "Queue": "support", "Location": f"Y/{i}"}) for i in range(70)]
    b.apply_result(LOAD, items, 300)
    assert len(b.state(BOSS, 300)["queues"]["support"]["members"]) == 50


def test_a_wall_clock_stepped_back_does_not_hold_queue_stats() -> None:
    """``now_ms`` is the wall clock: stepped back an hour, a change within the throttle
    was due "an hour and a second after the last one", and the wallboard showed stale
    stats as final for that hour."""
    b = board()
    b.apply_result(LOAD, [], 5_000_000)
    b.link_up(5_000_000)
    join = {"Event": "QueueCallerJoin", "Queue": "support", "Uniqueid": "u1", "Position": "1"}
    assert [e.type for e in b.handle(Message(join), 5_002_000)].count("queueStats") == 1
    back = 5_002_100 - 3_600_000  # the clock steps back an hour
    leave = {"Event": "QueueCallerLeave", "Queue": "support", "Uniqueid": "u1"}
    events = b.handle(Message(leave), back)
    due = b.next_flush_ms()
    assert due is None or due <= back + 1000
    events += b.flush(back + 1000)
    assert [e.data["waiting"] for e in events if e.type == "queueStats"] == [0]
