"""Feeding capture files to a tracker: shared by the tracker tests."""

from __future__ import annotations

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser
from pbxis.events import AgentEvent
from pbxis.tracker import Tracker
from tests.support.shared import captures_dir, captures_pjsip22_dir

CAPTURES = captures_dir()
#: the same scenarios on Asterisk 20 with chan_sip and on Asterisk 22 with PJSIP
CAPTURE_SETS = {"chan_sip20": CAPTURES, "pjsip22": captures_pjsip22_dir()}
TECH = {"chan_sip20": "SIP", "pjsip22": "PJSIP"}
AGENTS = ("1001", "1002", "1003")
QUEUES = ("sales", "support")


def messages(name: str, capture_set: str = "chan_sip20") -> list[Message]:
    parser = AMIParser()
    parser.receive_data((CAPTURE_SETS[capture_set] / name).read_bytes())
    return [m for m in parser.messages() if isinstance(m, Message)]


def lab_tracker(*extra_agents: str, tech: str = "SIP") -> Tracker:
    tracker = Tracker(interface_template=tech + "/{agent}", hint_context="agents")
    for agent in (*AGENTS, *extra_agents):
        assert tracker.register(agent, QUEUES, 0) == []
    return tracker


def replay(tracker: Tracker, msgs: list[Message]) -> list[AgentEvent]:
    out: list[AgentEvent] = []
    for index, message in enumerate(msgs):
        out.extend(tracker.handle(message, index))
    return out


def compact(events: list[AgentEvent], agent: str | None = None) -> list[tuple]:
    """(agent, type, interesting fields) for comparison with hand-written expectations."""
    out = []
    for e in events:
        if agent is not None and e.agent != agent:
            continue
        d = e.data
        if e.type == "queueMemberStatus":
            out.append(
                (e.agent, e.type, d["queue"], d["loggedIn"], d["status"], d["paused"], d["pausedReason"])
            )
        elif e.type == "queueCount":
            out.append((e.agent, e.type, d["queue"], d["count"]))
        elif e.type == "extensionStatus":
            out.append((e.agent, e.type, d["status"]))
        elif e.type == "phoneNumber":
            out.append((e.agent, e.type, d["number"], d["direction"], d["uniqueId"], d["queue"]))
        else:
            out.append((e.agent, e.type, dict(d)))
    return out
