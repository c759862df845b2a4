"""SupervisorSync on a fake AMI link and a task.Clock: what it sends, when, how often."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from pbxis.ami.message import Message
from pbxis.events import AgentEvent
from pbxis.supervisors import NO_MEMBER, QueueBoard, supervisor_key
from pbxis.supervisors.sync import SupervisorSync

BOSS = supervisor_key("boss")


@dataclass
class Result:
    response: Message
    events: list[Message]


@dataclass
class FakeAMI:
    sent: list[tuple[str, list[tuple[str, str]], Deferred[Any]]] = field(default_factory=list)

    def send_action(self, name: str, headers: Any = None, *, timeout: float | None = None) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.sent.append((name, list(headers or []), d))
        return d

    def answer(self, index: int, *items: Message) -> None:
        self.sent[index][2].callback(Result(Message({"Response": "Success"}), list(items)))


@dataclass
class FakeAgentSync:
    filter_mode: str | None = "advanced"
    ready: bool = True
    listeners: list[Callable[[bool], None]] = field(default_factory=list)

    def add_rebuild_listener(self, listener: Callable[[bool], None]) -> None:
        self.listeners.append(listener)


def params(queue: str, completed: int) -> Message:
    return Message({"Event": "QueueParams", "Queue": queue, "Completed": str(completed), "ActionID": "x"})


def started(queues: tuple[str, ...] = ("sales",)) -> tuple[SupervisorSync, FakeAMI, Clock, list[AgentEvent]]:
    clock = Clock()
    clock.advance(1_000)
    ami, agents, published = FakeAMI(), FakeAgentSync(), []
    sync = SupervisorSync(ami, QueueBoard(lambda i: None), published.extend, agents, clock=clock)
    sync.supervisor_registered(BOSS, queues)  # before the login: nothing sent
    assert ami.sent == []
    sync.ami_logged_in(object())
    for listener in agents.listeners:
        listener(True)  # the agents' rebuild after the login is done
    return sync, ami, clock, published


def test_after_login_one_filter_and_one_queue_status_per_queue_then_pbx_status():
    _sync, ami, _clock, published = started(("sales", "support"))
    assert [(n, h) for n, h, _ in ami.sent] == [
        (
            "Filter",
            [
                ("Operation", "Add"),
                ("MatchCriteria", "action(include),name(QueueCallerAbandon),header(Queue),method(exact)"),
                ("Filter", "sales"),
            ],
        ),
        (
            "Filter",
            [
                ("Operation", "Add"),
                ("MatchCriteria", "action(include),name(QueueCallerAbandon),header(Queue),method(exact)"),
                ("Filter", "support"),
            ],
        ),
    ]
    ami.answer(0)
    ami.answer(1)
    assert [(n, h) for n, h, _ in ami.sent[2:]] == [
        ("QueueStatus", [("Queue", "sales")]),
        ("QueueStatus", [("Queue", "support")]),
    ]
    ami.answer(2, params("sales", 3))
    assert not [e for e in published if e.type == "pbxStatus"]  # support is not loaded yet
    ami.answer(3, params("support", 1))
    assert [e.data for e in published if e.type == "pbxStatus"] == [{"connected": True}]
    assert [e.data["completed"] for e in published if e.type == "queueStats"] == [3, 1]


def test_a_burst_of_finished_calls_costs_two_counter_reads_not_one_each():
    sync, ami, clock, published = started()
    ami.answer(0)
    ami.answer(1, params("sales", 0))
    base = len(ami.sent)
    complete = Message({"Event": "AgentComplete", "Queue": "sales", "Interface": "SIP/1"})
    for _ in range(5):
        sync.ami_event(complete)
    assert [(n, h) for n, h, _ in ami.sent[base:]] == [
        ("QueueStatus", [("Queue", "sales"), ("Member", NO_MEMBER)])
    ]
    ami.answer(base, params("sales", 1))
    assert len(ami.sent) == base + 2  # the calls that ended meanwhile: one more read
    ami.answer(base + 1, params("sales", 5))
    assert len(ami.sent) == base + 2
    clock.advance(1.0)  # the throttle's timer lets the coalesced queueStats out
    assert [e.data["completed"] for e in published if e.type == "queueStats"][-1] == 5


def test_throttled_queue_stats_go_out_on_the_timer_and_nothing_after():
    sync, ami, clock, published = started()
    ami.answer(0)
    ami.answer(1, params("sales", 0))
    join = {"Event": "QueueCallerJoin", "Queue": "sales", "Position": "1"}
    sync.ami_event(Message({**join, "Uniqueid": "u1"}))
    sync.ami_event(Message({**join, "Uniqueid": "u2", "Position": "2"}))
    stats = [e for e in published if e.type == "queueStats"]
    assert [e.data["waiting"] for e in stats] == [0]  # the load's; the joins are held back
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(1.0)
    assert [e.data["waiting"] for e in published if e.type == "queueStats"] == [0, 2]
    assert clock.getDelayedCalls() == []  # no timer left when nothing is due


def test_link_lost_pbx_status_false_and_no_reads_until_the_next_login():
    sync, ami, _clock, published = started()
    ami.answer(0)
    ami.answer(1, params("sales", 0))
    sync.ami_lost()
    assert [e.data for e in published if e.type == "pbxStatus"] == [{"connected": True}, {"connected": False}]
    base = len(ami.sent)
    sync.ami_event(Message({"Event": "AgentComplete", "Queue": "sales"}))
    assert len(ami.sent) == base
