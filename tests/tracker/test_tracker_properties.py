"""Property tests: the tracker never raises, and a rebuild equals having seen everything."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxis.ami.message import Message
from pbxis.tracker import Tracker

AGENTS = ("1001", "1002", "1003")
QUEUES = ("sales", "support")
NAMES = (
    "QueueMemberStatus", "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause",
    "QueueMemberPaused", "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon",
    "AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "DialBegin",
    "DialEnd", "Hangup", "VarSet", "ExtensionStatus", "OriginateResponse", "Join", "Leave",
    "QueueMember", "QueueParams", "Rename", "Newchannel",
)  # fmt: skip
KEYS = (
    "Queue", "Interface", "Location", "Status", "Paused", "PausedReason", "Count",
    "Channel", "DestChannel", "Uniqueid", "DestUniqueid", "CallerIDNum", "CallerIDName",
    "Exten", "Context", "DialStatus", "Variable", "Value", "TalkTime", "HoldTime",
    "Reason", "ActionID", "Response", "InCall", "ChanVariable",
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        ["sales", "support", "SIP/1001", "SIP/1002-0000000a", "Local/1001@agents-00000001;1",
         "1001", "agents", "1", "0", "-1", "6", "BUSY", "ANSWER", "x.1", "x.2", "Success",
         "Failure", "MIXMONITOR_FILENAME", "MIXMONITOR_FILENAME=/r.wav", "<unknown>",
         "a\\'b", "", "c2c", "99999999999999999999"]
    ),
    st.text(max_size=8),
)  # fmt: skip

message = st.builds(
    lambda name, pairs: Message([("Event", name), *pairs]),
    st.sampled_from(NAMES),
    st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=10),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(message, max_size=40), st.booleans())
def test_any_event_sequence_never_raises(msgs, rebuild_midway):
    tracker = Tracker()
    tracker.register("1001", QUEUES, 0)
    tracker.register("1002", ["sales"], 0)
    tracker.note_originate("c2c", "1001", "0911234567")
    for i, m in enumerate(msgs):
        if rebuild_midway and i == len(msgs) // 2:
            tracker.begin_rebuild()
        tracker.handle(m, i)
        tracker.snapshot("1001", i)
    tracker.finish_rebuild(99)
    tracker.agent_state("1001")
    tracker.queues_state()


# -- cut the stream anywhere, rebuild from a state dump ---------------------------------
@dataclass
class Pbx:
    """A tiny model of the lab PBX: membership, pause, device and extension states."""

    members: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    callers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(QUEUES, 0))
    ext: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AGENTS, 0))

    def step(self, op: tuple) -> list[Message]:
        kind, agent, queue, value = op
        key = (agent, queue)
        if kind == "add" and key not in self.members:
            self.members[key] = {"Status": "1", "Paused": "0", "PausedReason": ""}
            return [self._member("QueueMemberAdded", agent, queue)]
        if kind == "remove" and key in self.members:
            msg = self._member("QueueMemberRemoved", agent, queue)
            del self.members[key]
            return [msg]
        if kind == "pause" and key in self.members:
            self.members[key].update(Paused=str(value % 2), PausedReason=f"r{value}")
            return [self._member("QueueMemberPause", agent, queue)]
        if kind == "device":
            out = []
            for q in QUEUES:  # one QueueMemberStatus per queue the member is in
                if (agent, q) in self.members:
                    self.members[(agent, q)]["Status"] = str(value % 9)
                    out.append(self._member("QueueMemberStatus", agent, q))
            return out
        if kind == "ext":
            self.ext[agent] = (0, 1, 2, 4, 8, 9, 16)[value % 7]
            return [Message([("Event", "ExtensionStatus"), ("Exten", agent), ("Context", "agents"),
                             ("Status", str(self.ext[agent]))])]  # fmt: skip
        if kind == "join":
            self.callers[queue] += 1
            return [Message([("Event", "QueueCallerJoin"), ("Queue", queue), ("Uniqueid", f"u{value}"),
                             ("Count", str(self.callers[queue]))])]  # fmt: skip
        if kind == "leave" and self.callers[queue]:
            self.callers[queue] -= 1
            return [Message([("Event", "QueueCallerLeave"), ("Queue", queue),
                             ("Count", str(self.callers[queue]))])]  # fmt: skip
        return []

    def _member(self, name: str, agent: str, queue: str) -> Message:
        state = self.members[(agent, queue)]
        return Message([("Event", name), ("Queue", queue), ("Interface", f"SIP/{agent}"),
                        ("Membership", "dynamic"), *state.items()])  # fmt: skip

    def answer(self, action: str, headers: dict[str, str]):
        """What Asterisk would answer to one rebuild action."""
        from types import SimpleNamespace

        if action == "QueueStatus":
            queue, member = headers["Queue"], headers.get("Member")
            items = [Message([("Event", "QueueParams"), ("Queue", queue),
                              ("Calls", str(self.callers[queue]))])]  # fmt: skip
            for (agent, q), state in self.members.items():
                if q == queue and member in (None, f"SIP/{agent}"):
                    items.append(Message([("Event", "QueueMember"), ("Queue", q), ("Name", agent),
                                          ("Location", f"SIP/{agent}"), ("Membership", "dynamic"),
                                          *state.items()]))  # fmt: skip
            return SimpleNamespace(response=Message([("Response", "Success")]), events=items)
        if action == "ExtensionState":
            agent = headers["Exten"]
            response = Message([("Response", "Success"), ("Exten", agent), ("Context", "agents"),
                                ("Status", str(self.ext[agent]))])  # fmt: skip
            return SimpleNamespace(response=response, events=[])
        return SimpleNamespace(response=Message([("Response", "Success")]), events=[])


op = st.tuples(
    st.sampled_from(["add", "remove", "pause", "device", "ext", "join", "leave"]),
    st.sampled_from(AGENTS),
    st.sampled_from(QUEUES),
    st.integers(0, 20),
)


def rebuild(tracker: Tracker, pbx: Pbx, now: int) -> list:
    tracker.begin_rebuild()
    for planned in tracker.plan_rebuild():
        tracker.apply_result(planned, pbx.answer(planned.name, dict(planned.headers)))
    return tracker.finish_rebuild(now)


@settings(max_examples=100, deadline=None)
@given(st.lists(op, max_size=40), st.integers(0, 40))
def test_cut_anywhere_then_rebuild_equals_seeing_everything(ops, cut):
    pbx = Pbx()
    full, cutoff = Tracker(), Tracker()
    seen_by_client: dict[str, dict] = {}
    for tracker in (full, cutoff):
        for agent in AGENTS:
            tracker.register(agent, QUEUES, 0)
        rebuild(tracker, Pbx(), 0)
    for agent in AGENTS:  # what a client of the cut tracker has been shown
        seen_by_client[agent] = {(e.type, e.data.get("queue")): e.data for e in cutoff.snapshot(agent, 0)}
    for i, o in enumerate(ops):
        for m in pbx.step(o):
            full.handle(m, i)
            if i < cut:
                for e in cutoff.handle(m, i):
                    seen_by_client[e.agent][(e.type, e.data.get("queue"))] = e.data
    events = cutoff.link_down(100) + rebuild(cutoff, pbx, 101)
    for e in events:
        seen_by_client[e.agent][(e.type, e.data.get("queue"))] = e.data
    for agent in AGENTS:
        assert seen_by_client[agent].pop(("pbxStatus", None)) == {"connected": True}
        assert cutoff.agent_state(agent) == full.agent_state(agent)
        # the client's picture, built only from events, equals the full tracker's state
        expected = {(e.type, e.data.get("queue")): e.data for e in full.snapshot(agent, 0)}
        assert seen_by_client[agent] == expected
    # nothing twice: every state event of the rebuild is a real change (pbxStatus aside)
    kinds = [(e.agent, e.type, e.data.get("queue")) for e in events if e.type != "pbxStatus"]
    assert len(kinds) == len(set(kinds))
