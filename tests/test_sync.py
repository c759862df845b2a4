"""StateSync against a fake AMI client (same interface as AMIClientFactory) and a Clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from pbxis.ami.errors import ActionFailed, ConnectionLost
from pbxis.ami.message import Message
from pbxis.events import AgentEvent
from pbxis.sync import StateSync
from pbxis.tracker import Tracker
from pbxis.tracker.filters import advanced_filters
from tests.support.override import Override


@dataclass
class Result:
    response: Message
    events: list[Message] = field(default_factory=list)


class FakeAMI:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str], Deferred]] = []

    def send_action(self, name, headers=None, *, timeout=None) -> Deferred:
        d: Deferred = Deferred()
        self.sent.append((name, dict(headers or []), d))
        return d

    def pending(self, name: str | None = None) -> list[tuple[str, dict[str, str], Deferred]]:
        return [s for s in self.sent if not s[2].called and (name is None or s[0] == name)]

    def answer_all(self, name: str, make=None) -> None:
        for _action, headers, d in self.pending(name):
            d.callback(make(headers) if make else Result(Message([("Response", "Success")])))


def ok(**fields: str) -> Message:
    return Message([("Response", "Success"), *fields.items()])


def booted() -> Message:
    return Message([("Event", "FullyBooted"), ("Status", "Fully Booted")])


def queue_status(headers: dict[str, str]) -> Result:
    queue = headers["Queue"]
    items = [Message([("Event", "QueueParams"), ("Queue", queue), ("Calls", "2"), ("ActionID", "x")])]
    if queue == "sales":
        items.append(
            Message(
                [
                    ("Event", "QueueMember"),
                    ("Queue", "sales"),
                    ("Location", "SIP/1001"),
                    ("Status", "1"),
                    ("Paused", "1"),
                    ("PausedReason", "Lunch"),
                    ("ActionID", "x"),
                ]
            )
        )
    return Result(ok(), items)


def ext_state(headers: dict[str, str]) -> Result:
    return Result(ok(Exten=headers["Exten"], Context="agents", Status="0"))


def make(clock: Clock | None = None):
    ami, tracker, published = FakeAMI(), Tracker(), []
    tracker.register("1001", ["sales", "support"], 0)
    sync = StateSync(ami, tracker, published.extend, clock=clock or Clock())
    return ami, tracker, sync, published


def compact(events: list[AgentEvent]) -> list[tuple]:
    return [(e.agent, e.type, dict(e.data)) for e in events]


def test_login_sets_advanced_filter_waits_boot_rebuilds_and_publishes_differences():
    ami, _, sync, published = make()
    sync.ami_logged_in(object())
    assert [s[0] for s in ami.sent] == ["Filter"]  # the probe only
    ami.answer_all("Filter")
    filters = ami.pending("Filter")
    assert len(filters) == len(advanced_filters()) and all("MatchCriteria" in h for _, h, _ in filters)
    ami.answer_all("Filter")
    assert sync.filter_mode == "advanced"
    assert ami.pending() == []  # waiting for FullyBooted
    sync.ami_event(booted())
    assert sorted(s[0] for s in ami.pending()) == ["ExtensionState", "QueueStatus", "QueueStatus"]
    assert {h.get("Member") for _, h, _ in ami.pending("QueueStatus")} == {"SIP/1001"}
    ami.answer_all("QueueStatus", queue_status)
    assert published == [] and not sync.ready
    ami.answer_all("ExtensionState", ext_state)
    assert sync.ready
    assert compact(published) == [
        ("1001", "pbxStatus", {"connected": True}),
        ("1001", "extensionStatus", {"status": "not_inuse"}),
        ("1001", "queueMemberStatus", {"queue": "sales", "loggedIn": True, "status": "not_inuse",
                                       "paused": True, "pausedReason": "Lunch"}),
        ("1001", "queueCount", {"queue": "sales", "count": 2}),
        ("1001", "queueCount", {"queue": "support", "count": 2}),
    ]  # fmt: skip
    assert sync.last_rebuild is not None
    assert (sync.last_rebuild.actions, sync.last_rebuild.messages) == (3, 6)


def test_old_asterisk_gets_legacy_filters():
    ami, _, sync, _ = make()
    sync.ami_logged_in(object())
    ami.sent[0][2].errback(ActionFailed("Filter", "Filter did not compile.  Check the syntax"))
    legacy = ami.pending("Filter")
    assert [list(h) for _, h, _ in legacy] == [["Operation", "Filter"]] * 2
    assert legacy[0][1]["Filter"].startswith("^Event: (QueueMemberStatus|")
    assert sync.filter_mode == "legacy"


def test_permission_denied_runs_unfiltered_and_no_boot_event_times_out():
    clock = Clock()
    ami, _, sync, published = make(clock)
    sync.ami_logged_in(object())
    ami.sent[0][2].errback(ActionFailed("Filter", "Permission denied"))
    assert sync.filter_mode is None and ami.pending() == []
    clock.advance(9.9)
    assert ami.pending() == []
    clock.advance(0.2)  # no FullyBooted (no 'system' read class): rebuild anyway
    ami.answer_all("QueueStatus", queue_status)
    ami.answer_all("ExtensionState", ext_state)
    assert sync.ready and published[0].type == "pbxStatus"


def test_live_events_during_rebuild_are_held_and_not_lost():
    ami, _, sync, published = make()
    sync.ami_event(booted())
    sync.ami_logged_in(object())
    sync.ami_event(booted())
    ami.answer_all("Filter")
    ami.answer_all("Filter")
    done = Message(
        [("Event", "AgentComplete"), ("Queue", "sales"), ("Interface", "SIP/1001"),
         ("Uniqueid", "c.1"), ("DestUniqueid", "a.1"), ("TalkTime", "5"), ("HoldTime", "2")]
    )  # fmt: skip
    sync.ami_event(done)
    assert published == []
    ami.answer_all("QueueStatus", queue_status)
    ami.answer_all("ExtensionState", ext_state)
    types = [e.type for e in published]
    assert types[0] == "pbxStatus" and types[-1] == "agentComplete"


def test_new_agent_loads_only_its_state_and_lost_link_reports_once():
    ami, tracker, sync, published = make()
    sync.ami_logged_in(object())
    sync.ami_event(booted())
    ami.answer_all("Filter")
    ami.answer_all("Filter")
    ami.answer_all("QueueStatus", queue_status)
    ami.answer_all("ExtensionState", ext_state)
    published.clear()
    tracker.register("1002", ["support"], 1)
    loaded = sync.agent_registered("1002")
    assert [(n, h) for n, h, _ in ami.pending()] == [  # pipelined, just this agent
        ("QueueStatus", {"Queue": "support", "Member": "SIP/1002"}),
        ("ExtensionState", {"Exten": "1002", "Context": "agents"}),
    ]
    ami.answer_all("QueueStatus", queue_status)
    assert not loaded.called
    ami.answer_all("ExtensionState", ext_state)
    assert loaded.called
    assert {e.agent for e in published} == {"1002"}
    # the link drops in the middle of the next load: pbxStatus false, once, no crash
    tracker.register("1003", ["sales"], 2)
    sync.agent_registered("1003")
    published.clear()
    for _, _, d in ami.pending():
        d.errback(ConnectionLost())
    sync.ami_lost(None)
    sync.ami_lost(None)
    assert sorted((e.agent, e.type, e.data["connected"]) for e in published) == [
        ("1001", "pbxStatus", False),
        ("1002", "pbxStatus", False),
        ("1003", "pbxStatus", False),
    ]
    assert not sync.ready
    assert sync.agent_registered("1003").called  # nothing to do without a link


def pause(interface: str, paused: str) -> Message:
    return Message(
        [("Event", "QueueMemberPause"), ("Queue", "sales"), ("Interface", interface),
         ("MemberName", "Agent"), ("Status", "1"), ("Paused", paused), ("PausedReason", "")]
    )  # fmt: skip


def ready_sync():
    ami, tracker, sync, published = make()
    calls: list[int] = []
    sync._publish_cb = lambda events: (calls.append(len(events)), published.extend(events))
    sync.ami_logged_in(object())
    sync.ami_event(booted())
    ami.answer_all("Filter")
    ami.answer_all("Filter")
    ami.answer_all("QueueStatus", queue_status)
    ami.answer_all("ExtensionState", ext_state)
    assert sync.ready
    published.clear()
    calls.clear()
    return ami, tracker, sync, published, calls


def test_a_batch_of_events_is_digested_in_order_and_published_once():
    """Issue #20: one read's events reach the hub as one batch, in wire order."""
    _, _, sync, published, calls = ready_sync()
    sync.ami_events([pause("SIP/1001", "0"), pause("SIP/1001", "1"), pause("SIP/1001", "0")])
    assert calls == [len(published)] and len(published) == 3
    assert [e.data["paused"] for e in published] == [False, True, False]


def test_a_tracker_error_in_a_batch_loses_only_that_event(monkeypatch):
    _, tracker, sync, published, _ = ready_sync()
    real = tracker.handle

    def handle(message: Message, now_ms: int):
        if message.get("Paused") == "1":
            raise RuntimeError("tracker bug")
        return real(message, now_ms)

    monkeypatch.setattr(sync, "_tracker", Override(tracker, handle=handle))
    sync.ami_events([pause("SIP/1001", "1"), pause("SIP/1001", "0"), pause("SIP/9999", "0")])
    assert [(e.agent, e.type) for e in published] == [("1001", "queueMemberStatus")]


def test_fully_booted_inside_a_batch_is_handled_at_its_place(monkeypatch):
    """What came before FullyBooted is digested and handed on before the rebuild it
    releases starts; what came after, after."""
    ami, tracker, sync, _, _ = ready_sync()
    sync.ami_lost()
    sync.ami_logged_in(object())
    ami.answer_all("Filter")
    ami.answer_all("Filter")
    order: list[str] = []
    real_handle, real_plan = tracker.handle, tracker.plan_rebuild

    def handle(message: Message, now_ms: int):
        order.append(f"handle {message.event} {message.get('Paused')}")
        return real_handle(message, now_ms)

    def plan(agents=None):
        order.append("plan")
        return real_plan(agents)

    sync._publish_cb = lambda events: order.append(f"publish {len(events)}")
    monkeypatch.setattr(sync, "_tracker", Override(tracker, handle=handle, plan_rebuild=plan))
    sync.ami_events([pause("SIP/1001", "1"), booted(), pause("SIP/1001", "0")])
    assert order[0] == "handle QueueMemberPause 1"
    at = order.index
    assert at("plan") < at("handle FullyBooted None") < at("handle QueueMemberPause 0")
    assert sorted(a[0] for a in ami.pending()) == ["ExtensionState", "QueueStatus", "QueueStatus"]
