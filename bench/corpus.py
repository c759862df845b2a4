"""Realistic AMI traffic for the benches, built from the real Asterisk 20 captures.

Plan. The passive captures (``<scenario>.ami``: what an unfiltered session received while
a call-center scenario ran) are parsed once into events. From them we build:

* the *unfiltered* stream: banner, login response, then the scenarios' events over and
  over, byte for byte as Asterisk writes them;
* the *filtered* stream: the same, keeping only what the server-side filter lets through
  (``pbxis.tracker.filters`` when it exists, else an approximation: the event types the
  tracker needs);
* *fleet* traffic for N agents: the filtered scenarios replayed with the agents
  (1001-1003) and the queues (``sales``, ``support``) renamed per replay, so each replay
  is the call of other agents.

Rewriting works on the serialized bytes, so building a few hundred thousand events
costs about a second.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser

__all__ = [
    "BANNER",
    "SCENARIOS",
    "Fleet",
    "captures_dir",
    "chunks",
    "event_stream",
    "filter_name",
    "fleet",
    "scenario_events",
    "server_filter",
]

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
LOGIN_OK = b"Response: Success\r\nActionID: login\r\nMessage: Authentication accepted\r\n\r\n"

# Passive captures of call-center work; the restart ones are left out (a Shutdown in the
# middle of a stream is not traffic, it is the end of it).
SCENARIOS = (
    "inbound_call",
    "queue_waiting",
    "originate_out",
    "originate_fail",
    "pause",
    "login",
    "logoff",
    "state_dump",
)

# What the tracker needs (architecture.rst, reference.md): the approximation used until
# pbxis.tracker.filters defines the real server-side filter.
_TRACKER_EVENTS = frozenset(
    {
        "FullyBooted",
        "Shutdown",
        "QueueMemberStatus",
        "QueueMemberAdded",
        "QueueMemberRemoved",
        "QueueMemberPause",
        "QueueMemberPenalty",
        "QueueCallerJoin",
        "QueueCallerLeave",
        "QueueCallerAbandon",
        "ExtensionStatus",
        "AgentCalled",
        "AgentConnect",
        "AgentComplete",
        "AgentRingNoAnswer",
        "AgentDump",
        "OriginateResponse",
        "DialBegin",
        "DialEnd",
        "Hangup",
    }
)


def captures_dir() -> Path:
    """``../shared/ami/captures`` from the project root, or ``$PBXIS_CAPTURES``."""
    env = os.environ.get("PBXIS_CAPTURES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "ami" / "captures"


@cache
def scenario_events(name: str) -> tuple[Message, ...]:
    """The events of one passive capture (banner and login response dropped)."""
    parser = AMIParser()
    parser.receive_data((captures_dir() / f"{name}.ami").read_bytes())
    return tuple(m for m in parser.messages() if isinstance(m, Message) and m.is_event)


def _approximate_filter(message: Message) -> bool:
    name = message.event
    if name == "VarSet":
        return message.get("Variable") == "MIXMONITOR_FILENAME"
    return name in _TRACKER_EVENTS


@cache
def server_filter() -> Callable[[Message], bool]:
    """A predicate keeping what Asterisk would pass through pbxis's server-side filter:
    ``pbxis.tracker.filters.passes`` (the filter's own model of Asterisk's rules), or the
    approximation above while that module does not exist."""
    try:
        from pbxis.tracker.filters import passes
    except ImportError:
        return _approximate_filter
    return passes


def filter_name() -> str:
    """Which filter the filtered figures used, for the bench's commentary."""
    if server_filter() is _approximate_filter:
        return "approximate (pbxis.tracker.filters missing)"
    return "pbxis.tracker.filters.passes"


def _events(filtered: bool) -> list[Message]:
    keep = server_filter() if filtered else None
    out: list[Message] = []
    for name in SCENARIOS:
        out.extend(m for m in scenario_events(name) if keep is None or keep(m))
    return out


def event_stream(target_bytes: int, *, filtered: bool) -> tuple[bytes, int]:
    """Banner, login response, then the scenarios' events repeated up to ``target_bytes``.

    Returns the bytes and the number of messages in them (banner excluded).
    """
    body = b"".join(m.to_bytes() for m in _events(filtered))
    per_round = len(_events(filtered))
    rounds = max(1, target_bytes // len(body))
    return BANNER + LOGIN_OK + body * rounds, 1 + per_round * rounds


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut as a socket would hand it over (``size`` bytes at a time)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- many agents ----------------------------------------------------------------------
_AGENTS = (b"1001", b"1002", b"1003")
_QUEUES = (b"sales", b"support")


@dataclass(frozen=True)
class Fleet:
    """Traffic for ``agents`` registered agents: who is in which queue, and the bytes."""

    agents: dict[str, list[str]]  # agent -> queues
    stream: bytes
    events: int


def _rewrite(body: bytes, agents: tuple[str, ...], queues: tuple[str, ...]) -> bytes:
    """The captures' agents and queues renamed.

    Plain ``bytes.replace`` (ten times faster than a regex): in the filtered captures these
    five tokens never occur inside another word (checked by ``tests/test_bench_smoke.py``).
    Unique ids and channel names are kept: replays run one after the other and every
    captured call ends, so no two live calls share an id.
    """
    for old, new in zip(_AGENTS + _QUEUES, agents + queues, strict=True):
        body = body.replace(old, new.encode())
    return body


def fleet(n_agents: int, n_events: int, *, agents_per_queue: int = 20) -> Fleet:
    """Filtered traffic of ``n_agents`` agents, about ``n_events`` events long.

    Agents come in crews of three (the captures' 1001-1003); crew ``c`` replays the
    scenarios with its own agent numbers (from 2000) and two queues shared with other
    crews, about ``agents_per_queue`` members per queue. Replays go round-robin over crews,
    so every registered agent gets traffic.
    """
    crews = max(1, -(-n_agents // 3))
    n_queues = max(2, n_agents // agents_per_queue)
    keep = server_filter()
    bodies = []
    for name in SCENARIOS:
        events = [m for m in scenario_events(name) if keep(m) and m.event != "FullyBooted"]
        if events:
            bodies.append((b"".join(m.to_bytes() for m in events), len(events)))
    membership: dict[str, list[str]] = {}
    crew_names = []
    for c in range(crews):
        agents = tuple(str(2000 + 3 * c + i) for i in range(3))
        queues = (f"q{(2 * c) % n_queues}", f"q{(2 * c + 1) % n_queues}")
        crew_names.append((agents, queues))
        for agent in agents:
            if len(membership) < n_agents:
                membership[agent] = list(queues)
    parts = [BANNER, LOGIN_OK]
    total = 0
    for run in itertools.count():
        if total >= n_events:
            break
        # Each sweep over the crews shifts the scenario by one: every crew gets every scenario.
        body, count = bodies[(run + run // crews) % len(bodies)]
        agents, queues = crew_names[run % crews]
        parts.append(_rewrite(body, agents, queues))
        total += count
    return Fleet(membership, b"".join(parts), total)


def messages(data: Iterable[bytes]) -> Iterator[Message]:
    """Parse chunks with pbxis's parser (for building traffic, not for timing)."""
    parser = AMIParser()
    for chunk in data:
        parser.receive_data(chunk)
        for item in parser.messages():
            if isinstance(item, Message):
                yield item
