"""The daemon side of benches 3 and 4: pbxis in demo mode, registrations, the load driver.

The daemon is exactly what ``twistd pbxis`` runs in demo mode (``PbxisService`` with its
embedded simulated Asterisk), in this process, on 127.0.0.1. Agents are registered through
the API (``PUT /agents/{agent}``). Stream clients live in another process
(``load_client.py``), driven through :class:`LoadClient`.

Agents come in teams of 25 sharing one queue, as dynamic members logged in before the
measurements start; load is QueueMemberPause events whose reason carries
``time.monotonic_ns()`` (see ``load_client.py``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import treq
from common import raise_fd_limit
from twisted.internet import defer, protocol, task
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.web.client import HTTPConnectionPool

from pbxis.config import parse_config
from pbxis.service import PbxisService
from pbxis.simulator import MemberConfig, PhoneConfig, QueueConfig, Simulator, SimulatorConfig
from pbxis.tracker.filters import passes

__all__ = ["TEAM", "Daemon", "LoadClient", "PauseDriver", "start_daemon"]

TEAM = 25
FIRST = 100000  # agent names are FIRST + index
SECRET = "bench-secret-0123456789"
HERE = Path(__file__).resolve().parent


def agent_names(n: int) -> list[str]:
    return [str(FIRST + i) for i in range(n)]


def team_queue(index: int) -> str:
    return f"team{index // TEAM}"


class Daemon:
    def __init__(
        self, reactor: Any, service: PbxisService, simulator: Any, port: Any, agents: list[str]
    ) -> None:
        self.reactor = reactor
        self.service = service
        self.simulator = simulator
        self.ami_port = port
        self.agents = agents
        self.streams: dict[str, dict[str, str]] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    async def register(self, agents: Sequence[str], concurrency: int = 16) -> None:
        """``PUT /agents/{agent}`` for each, ``concurrency`` requests in flight."""
        pool = HTTPConnectionPool(self.reactor, persistent=True)
        pool.maxPersistentPerHost = concurrency
        todo = list(reversed(agents))

        async def worker() -> None:
            while todo:
                agent = todo.pop()
                body = {"queues": [team_queue(int(agent) - FIRST)], "name": f"Agent {agent}"}
                resp = await treq.put(f"{self.base_url}/agents/{agent}", json=body, pool=pool)
                data = await treq.json_content(resp)
                if resp.code != 200:
                    raise RuntimeError(f"PUT /agents/{agent}: {resp.code} {data}")
                self.streams[agent] = {kind: self._bound(url) for kind, url in data["streams"].items()}

        try:
            await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(concurrency)])
        finally:
            await pool.closeCachedConnections()

    def _bound(self, url: str) -> str:
        """The stream URL on the port really bound (``tcp:0`` leaves the advertised one at 0)."""
        parts = urlsplit(url)
        return parts._replace(netloc=f"127.0.0.1:{self.service.http_port}").geturl()

    async def settle(self, timeout: float = 120.0) -> None:
        """Wait until the rebuilds the registrations caused are done."""
        sync = self.service.sync
        deadline = time.monotonic() + timeout
        while not (sync.ready and not getattr(sync, "_busy", False) and not getattr(sync, "_pending", None)):
            if time.monotonic() > deadline:
                raise TimeoutError("pbxis did not finish loading the registered agents")
            await task.deferLater(self.reactor, 0.01, lambda: None)

    async def stop(self) -> None:
        await defer.maybeDeferred(self.service.stopService)
        await defer.maybeDeferred(self.ami_port.stopListening)
        self.simulator.shutdown()
        await task.deferLater(self.reactor, 0.05, lambda: None)


def call_center(agents: list[str]) -> SimulatorConfig:
    """Phones for ``agents``; team ``t`` (25 agents) logged in to queue ``team<t>`` at boot."""
    queues = sorted({team_queue(i) for i in range(len(agents))}, key=lambda q: int(q[4:]))
    phones = tuple(PhoneConfig(a, f"Agent {a}") for a in agents)
    persisted = tuple(
        (team_queue(i), MemberConfig(f"SIP/{a}", f"Agent {a}", f"SIP/{a}")) for i, a in enumerate(agents)
    )
    return SimulatorConfig(
        phones=phones, queues=tuple(QueueConfig(q) for q in queues), persisted=persisted, boot_time=0.0
    )


async def start_daemon(reactor: Any, n_agents: int) -> Daemon:
    """A simulated Asterisk with ``n_agents`` agents, and pbxis connected to it.

    The daemon is configured as for a real Asterisk (not the demo mode, whose simulator
    puts every agent in every queue); the simulator shares this process.
    """
    raise_fd_limit()
    agents = agent_names(n_agents)
    simulator = Simulator(call_center(agents), clock=reactor, seed=1, username="pbxis", secret=SECRET)
    ami_port = reactor.listenTCP(0, simulator.factory, backlog=50, interface="127.0.0.1")
    config = parse_config(
        {
            "ami": {
                "host": "127.0.0.1",
                "port": ami_port.getHost().port,
                "username": "pbxis",
                "secret": SECRET,
                "keepalive_interval": 30.0,
            },
            "http": {"listen": "tcp:0:interface=127.0.0.1:backlog=4096"},
            "agents": {"grace_period": 300.0},
        }
    )
    service = PbxisService(config, reactor)
    service.startService()
    daemon = Daemon(reactor, service, simulator, ami_port, agents)
    deadline = time.monotonic() + 60
    while not (service.ami.connected and service.sync.ready):
        if time.monotonic() > deadline:
            raise TimeoutError("pbxis did not log in to its simulator")
        await task.deferLater(reactor, 0.01, lambda: None)
    # The simulator writes each event as it happens, in its own small write; with Nagle's
    # algorithm on its socket, events wait for the ACK of the previous one (delayed ACK:
    # up to 40 ms) and the bench would measure that instead of pbxis.
    for session in simulator.sessions:
        session.transport.setTcpNoDelay(True)
    return daemon


class PauseDriver:
    """QueueMemberPause at a steady rate, each reason carrying its send time.

    Reasons alternate between two values per agent so every call changes the member
    (Asterisk and the tracker both drop a pause that changes nothing).
    """

    TICK = 0.002

    def __init__(self, daemon: Daemon, rate: float, agents: Sequence[str] | None = None) -> None:
        self.sim = daemon.simulator
        self.agents = list(agents or daemon.agents)
        self.per_call = self._calibrate()
        self.calls_per_tick = rate * self.TICK / self.per_call
        self._credit = 0.0
        self._next = 0
        self.sent = 0
        self._loop = LoopingCall.withCount(self._tick)
        self._loop.clock = daemon.reactor

    def _calibrate(self) -> float:
        """AMI events pbxis receives per pause (the filtered share of what the PBX emits)."""
        history = self.sim.history
        history.clear()
        probes = self.agents[: min(10, len(self.agents))]
        for agent in probes:
            self.sim.queue_pause(f"SIP/{agent}", True, reason="calibrate")
        events = sum(1 for m in history if passes(m))
        return max(1.0, events / len(probes))

    def start(self) -> None:
        self._loop.start(self.TICK, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def _tick(self, count: int) -> None:
        self._credit += self.calls_per_tick * count
        agents = self.agents
        while self._credit >= 1:
            self._credit -= 1
            agent = agents[self._next % len(agents)]
            self._next += 1
            self.sim.queue_pause(f"SIP/{agent}", True, reason=f"b{time.monotonic_ns()}")
            self.sent += 1

    @property
    def events(self) -> float:
        return self.sent * self.per_call


class _Pipe(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.waiting: list[Deferred[str]] = []
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if self.waiting:
                self.waiting.pop(0).callback(line.decode())

    def errReceived(self, data: bytes) -> None:
        sys.stderr.write(data.decode(errors="replace"))

    def processEnded(self, reason: Any) -> None:
        for d in self.waiting:
            d.errback(RuntimeError("load client ended"))
        self.waiting = []
        self.ended.callback(None)


class LoadClient:
    """``load_client.py`` in its own process; one method per command."""

    def __init__(self, reactor: Any, concurrency: int = 64) -> None:
        self.pipe = _Pipe()
        self.reactor = reactor
        script = str(HERE / "load_client.py")
        reactor.spawnProcess(
            self.pipe,
            sys.executable,
            [sys.executable, script, str(concurrency)],
            env=dict(os.environ),
            childFDs={0: "w", 1: "r", 2: "r"},
        )

    def _ask(self, line: str) -> Deferred[str]:
        d: Deferred[str] = Deferred()
        self.pipe.waiting.append(d)
        self.pipe.transport.write(line.encode() + b"\n")  # type: ignore[union-attr]
        return d

    async def connect(self, entries: list[tuple[str, str]]) -> tuple[int, int]:
        """Open ``(kind, url)`` streams; returns (open, failed) so far."""
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
            f.write("".join(f"{kind} {url}\n" for kind, url in entries))
        try:
            words = (await self._ask(f"connect {f.name}")).split()
        finally:
            Path(f.name).unlink()
        return int(words[1]), int(words[2])

    async def report(self, start_ns: int, end_ns: int) -> dict[str, float]:
        return json.loads(await self._ask(f"report {start_ns} {end_ns}"))

    async def close(self) -> None:
        """Close every stream (the process stays, for the next measurement)."""
        await self._ask("close")

    async def quit(self) -> None:
        await self._ask("quit")
        await self.pipe.ended
