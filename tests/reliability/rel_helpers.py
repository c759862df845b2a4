"""What the reliability tests share: the truth, a client's picture, stream clients, probes.

*Truth* is the simulator's model (who is a member of which queue, paused why, device
states, callers waiting), spelled in the contract's vocabulary so it compares directly
with ``tracker.agent_state``. A client's *picture* is the state it can build from the
events it received; it must equal the picture of a fresh snapshot. Clients record every
event so a test can check ids, ``pbxStatus`` order and "only changes" afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import treq
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from pbxis.simulator import codes as sim_codes
from pbxis.tracker.codes import extension_status, member_status
from tests.support.stack import Stack
from tests.support.streams import DEADLINE, SSEClient, StreamRecorder, WSClient, connect_ws

# -- truth ---------------------------------------------------------------------------------


def truth(stack: Stack, agent: str) -> dict[str, Any]:
    """What ``GET /agents/{agent}`` must say, read from the simulator's model."""
    pbx = stack.simulator.pbx
    registration = stack.service.hub.get(agent)
    assert registration is not None, agent
    device = f"SIP/{agent}"
    queues: dict[str, Any] = {}
    for name in registration.queues:
        queue = pbx.queue(name)
        member = queue.members.get(device) if queue is not None else None
        queues[name] = {
            "membership": member.membership if member else None,
            "loggedIn": member is not None,
            "status": member_status(pbx.member_status(member)) if member else "unknown",
            "paused": member.paused if member else False,
            "reason": member.paused_reason if member and member.paused else "",
            "count": len(queue.callers) if queue is not None else 0,
        }
    return {
        "agent": agent,
        "extension": extension_status(sim_codes.EXTENSION_STATES[pbx.device_state(device)][0]),
        "queues": queues,
        "call": None,
        "pbxConnected": True,
    }


def tracked(stack: Stack, agent: str) -> dict[str, Any]:
    """``tracker.agent_state`` with the pause reason read only while paused (as truth)."""
    state = stack.service.tracker.agent_state(agent)
    assert state is not None, agent
    for queue in state["queues"].values():
        if not queue["paused"]:
            queue["reason"] = ""
    return state


def queue_truth(stack: Stack) -> dict[str, Any]:
    """``GET /queues`` members of registered agents, from the simulator."""
    pbx = stack.simulator.pbx
    agents = {a: stack.service.hub.get(a) for a in stack.service.tracker.agents}
    out: dict[str, Any] = {}
    for name in stack.service.tracker.queues_state()["queues"]:
        queue = pbx.queue(name)
        members = {}
        for agent, registration in agents.items():
            member = queue.members.get(f"SIP/{agent}") if queue else None
            if registration and name in registration.queues and member is not None:
                members[agent] = (member_status(pbx.member_status(member)), member.paused)
        out[name] = {"count": len(queue.callers) if queue else 0, "members": members}
    return out


def queues_tracked(stack: Stack) -> dict[str, Any]:
    state = stack.service.tracker.queues_state()["queues"]
    return {
        name: {
            "count": q["count"],
            "members": {m["agent"]: (m["status"], m["paused"]) for m in q["members"]},
        }
        for name, q in state.items()
    }


# -- a client's picture ----------------------------------------------------------------------

STATE_TYPES = ("extensionStatus", "queueMemberStatus", "queueCount", "phoneNumber", "pbxStatus")


def _key(event: dict[str, Any]) -> tuple[str, ...] | None:
    kind = event["type"]
    if kind in ("queueMemberStatus", "queueCount"):
        return (kind, event["queue"])
    if kind in STATE_TYPES:
        return (kind,)
    return None


def _value(event: dict[str, Any]) -> Any:
    data = {k: v for k, v in event.items() if k not in ("id", "type", "agent", "pbx", "time")}
    if event["type"] == "phoneNumber" and data.get("number") is None:
        return None
    return data


@dataclass
class Picture:
    """The state one client built from its events; ``apply`` says whether it changed."""

    state: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def apply(self, event: dict[str, Any]) -> bool:
        key = _key(event)
        if key is None:
            return True
        value = _value(event)
        changed = self.state.get(key) != value
        self.state[key] = value
        return changed

    def without_link(self) -> dict[tuple[str, ...], Any]:
        return {k: v for k, v in self.state.items() if k[0] != "pbxStatus" and v is not None}


def snapshot_picture(stack: Stack, agent: str) -> dict[tuple[str, ...], Any]:
    """The picture a brand-new client would get now (without touching the hub's log)."""
    picture = Picture()
    for event in stack.service.tracker.snapshot(agent, 0):
        picture.apply(event.to_json(0))
    return picture.without_link()


# -- clients ---------------------------------------------------------------------------------


Recorder = StreamRecorder  # one logical client's events across reconnections


async def open_sse(
    base_url: str, token: str, recorder: Recorder, pool: HTTPConnectionPool, since: int | None = None
) -> tuple[int, SSEClient | None]:
    headers = Headers({"Last-Event-ID": [str(since)]} if since else {})
    response = await Agent(reactor, pool=pool).request(
        b"GET", f"{base_url}/stream/{token}/sse".encode(), headers
    )
    if response.code != 200:
        await treq.content(response)
        return response.code, None
    client = SSEClient(recorder)
    response.deliverBody(client)
    return 200, client


@dataclass
class WSConnection:
    protocol: WSClient | None
    closed: Deferred[int | None]

    async def stop(self, timeout: float = DEADLINE) -> int | None:
        """Abort the connection if still open; wait at most ``timeout`` s for it to close."""
        if self.protocol is not None and not self.closed.called:
            self.protocol.dropConnection(abort=True)
        return await self.closed.addTimeout(timeout, reactor)


async def open_ws(
    port: int, token: str, recorder: Recorder, since: int | None = None, origin: str | None = None
) -> WSConnection:
    query = f"?since={since}" if since else ""
    url = f"ws://127.0.0.1:{port}/stream/{token}/ws{query}"
    protocol, closed = await connect_ws(url, port, recorder, origin=origin)
    return WSConnection(protocol, closed.addCallback(lambda result: result[0]))


async def poll_once(
    base_url: str, token: str, since: int | None, timeout: float, pool: HTTPConnectionPool
) -> tuple[int, Any]:
    query = f"since={since}&" if since else ""
    response = await treq.get(f"{base_url}/stream/{token}/poll?{query}timeout={timeout}", pool=pool)
    return response.code, await treq.json_content(response)


# -- probes ----------------------------------------------------------------------------------


@contextmanager
def captured_log() -> Iterator[list[str]]:
    """Every log line (formatted, failures included) emitted inside the block."""
    lines: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        lines.append(text + " " + repr({k: v for k, v in event.items() if not k.startswith("log_")}))

    globalLogPublisher.addObserver(observe)
    try:
        yield lines
    finally:
        globalLogPublisher.removeObserver(observe)


class LagMonitor:
    """How long the reactor was busy between two ticks of a ``LoopingCall`` (seconds).

    A tick that comes late was either held up by code on the reactor thread, which is what we
    measure, or by the kernel giving the CPU to another process, which on a loaded 2-core CI
    machine can alone exceed 50 ms.  Linux counts the second kind per thread (time spent
    waiting on a run queue, ``/proc/thread-self/schedstat``), so it is taken out: ``worst`` is
    lateness minus run-queue wait, and ``worst_wall`` the raw lateness, reported beside it.
    Sleeping or blocking syscalls on the reactor thread still count, as they should.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.worst = 0.0
        self.worst_wall = 0.0
        self._last = 0.0
        self._last_wait = 0.0
        self._loop = task.LoopingCall(self._tick)

    @staticmethod
    def _runqueue_wait() -> float:
        try:
            with open("/proc/thread-self/schedstat", "rb") as f:
                return int(f.read().split()[1]) / 1e9
        except (OSError, IndexError, ValueError):
            return 0.0

    def _tick(self) -> None:
        now = reactor.seconds()
        waited = self._runqueue_wait()
        if self._last:
            late = now - self._last - self.interval
            self.worst_wall = max(self.worst_wall, late)
            self.worst = max(self.worst, late - (waited - self._last_wait))
        self._last = now
        self._last_wait = waited

    def start(self) -> None:
        self._loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def __repr__(self) -> str:
        return f"LagMonitor(worst={self.worst * 1000:.1f} ms, worst_wall={self.worst_wall * 1000:.1f} ms)"


def object_count() -> int:
    gc.collect()
    gc.collect()
    return len(gc.get_objects())


async def settle(seconds: float = 0.02) -> None:
    await task.deferLater(reactor, seconds, lambda: None)
