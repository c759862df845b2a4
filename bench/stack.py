"""The daemon side of benches 3 and 4: pbxis, its simulated Asterisk, registrations, load.

The daemon is what ``twistd pbxis`` runs (``PbxisService``), in this process, on
127.0.0.1, connected over AMI to a simulated Asterisk, configured as for a real one.
The simulator and the load driver run in a process of their own (this script, run as
``stack.py simulate <agents>``), like a real PBX on its own machine: its cost grows with
the size of the call center and is not pbxis's, so it must not share pbxis's CPU or its
garbage collector. Agents are registered through the API (``PUT /agents/{agent}``).
Stream clients live in other processes (``load_client.py``), driven through
:class:`LoadClient`.

Agents come in teams of 25 sharing one queue, as dynamic members logged in before the
measurements start; load is QueueMemberPause events whose reason carries
``time.monotonic_ns()`` (see ``load_client.py``; the monotonic clock is the machine's,
the same in every process).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import treq
from common import percentile, raise_fd_limit
from twisted.internet import defer, protocol, stdio, task
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.protocols.basic import LineReceiver
from twisted.web.client import HTTPConnectionPool

from pbxis.config import parse_config
from pbxis.service import PbxisService
from pbxis.simulator import MemberConfig, PhoneConfig, QueueConfig, Simulator, SimulatorConfig
from pbxis.tracker.filters import passes

__all__ = [
    "TEAM",
    "Daemon",
    "LoadClient",
    "Monitor",
    "PauseDriver",
    "collect_after_connecting",
    "start_daemon",
]

TEAM = 25
FIRST = 100000  # agent names are FIRST + index
SECRET = "bench-secret-0123456789"
HERE = Path(__file__).resolve().parent


def agent_names(n: int) -> list[str]:
    return [str(FIRST + i) for i in range(n)]


def team_queue(index: int) -> str:
    return f"team{index // TEAM}"


class _Pipe(protocol.ProcessProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
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
            d.errback(RuntimeError(f"{self.name} ended"))
        self.waiting = []
        self.ended.callback(None)


class _Child:
    """A helper process driven by lines on its stdin, answering each with one line."""

    def __init__(self, reactor: Any, script: str, *args: str) -> None:
        self.pipe = _Pipe(script)
        argv = [sys.executable, str(HERE / script), *args]
        reactor.spawnProcess(
            self.pipe, sys.executable, argv, env=dict(os.environ), childFDs={0: "w", 1: "r", 2: "r"}
        )

    def expect(self) -> Deferred[str]:
        """The next line the process prints."""
        d: Deferred[str] = Deferred()
        self.pipe.waiting.append(d)
        return d

    def ask(self, line: str) -> Deferred[str]:
        d = self.expect()
        self.pipe.transport.write(line.encode() + b"\n")  # type: ignore[union-attr]
        return d


def _agents_file(agents: Sequence[str]) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("".join(f"{a}\n" for a in agents))
    return f.name


class Daemon:
    def __init__(self, reactor: Any, service: PbxisService, simulator: _Child, agents: list[str]) -> None:
        self.reactor = reactor
        self.service = service
        self.simulator = simulator
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
        await self.simulator.ask("quit")
        await self.simulator.pipe.ended


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


async def start_daemon(reactor: Any, n_agents: int, *, redis_url: str = "", key_prefix: str = "") -> Daemon:
    """A simulated Asterisk with ``n_agents`` agents (its own process), and pbxis connected to it.

    The daemon is configured as for a real Asterisk (not the demo mode, whose simulator
    puts every agent in every queue).
    """
    raise_fd_limit()
    simulator = _Child(reactor, "stack.py", "simulate", str(n_agents))
    port = int((await simulator.expect()).split()[1])
    config = parse_config(
        {
            "ami": {
                "host": "127.0.0.1",
                "port": port,
                "username": "pbxis",
                "secret": SECRET,
                "keepalive_interval": 30.0,
            },
            "http": {"listen": "tcp:0:interface=127.0.0.1:backlog=4096"},
            "agents": {"grace_period": 300.0},
            # with a redis_url, the daemon keeps its store in Redis (issue #15)
            **({"redis": {"url": redis_url, "key_prefix": key_prefix or "bench:"}} if redis_url else {}),
        }
    )
    service = PbxisService(config, reactor, freeze_gc=True)  # as twistd pbxis runs it
    service.startService()
    if service.redis is not None:
        await service.redis.loaded
    daemon = Daemon(reactor, service, simulator, agent_names(n_agents))
    deadline = time.monotonic() + 60
    while not (service.ami.connected and service.sync.ready):
        if time.monotonic() > deadline:
            raise TimeoutError("pbxis did not log in to its simulator")
        await task.deferLater(reactor, 0.01, lambda: None)
    await simulator.ask("nodelay")
    return daemon


class PauseDriver:
    """QueueMemberPause of ``agents`` at ``rate`` AMI events/s, in the simulator's process."""

    def __init__(self, daemon: Daemon, rate: float, agents: Sequence[str] | None = None) -> None:
        self._sim = daemon.simulator
        self.rate = rate
        self.agents = list(agents or daemon.agents)
        self.per_call = 1.0  # AMI events pbxis receives per pause, measured at start

    async def start(self) -> None:
        name = _agents_file(self.agents)
        try:
            self.per_call = float((await self._sim.ask(f"drive {self.rate} {name}")).split()[1])
        finally:
            Path(name).unlink()

    async def sent(self) -> tuple[int, float]:
        """Pauses sent so far, and CPU seconds the simulator's process used so far."""
        words = (await self._sim.ask("count")).split()
        return int(words[1]), float(words[2])

    async def stop(self) -> None:
        await self._sim.ask("stop")


class _Driver:
    """The simulator's side of :class:`PauseDriver`: pauses at a steady rate.

    Reasons alternate between two values per agent so every call changes the member
    (Asterisk and the tracker both drop a pause that changes nothing).
    """

    TICK = 0.002

    def __init__(self, reactor: Any, sim: Simulator, rate: float, agents: list[str]) -> None:
        self.sim = sim
        self.agents = agents
        self.per_call = self._calibrate()
        self.calls_per_tick = rate * self.TICK / self.per_call
        self._credit = 0.0
        self._next = 0
        self.sent = 0
        self._loop = LoopingCall.withCount(self._tick)
        self._loop.clock = reactor

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


class _SimulatorControl(LineReceiver):
    """``stack.py simulate <agents>``: the commands of :class:`Daemon` and :class:`PauseDriver`."""

    delimiter = b"\n"

    def __init__(self, reactor: Any, sim: Simulator, port: Any) -> None:
        self.reactor = reactor
        self.sim = sim
        self.port = port
        self.driver: _Driver | None = None

    def connectionMade(self) -> None:
        self.sendLine(b"port %d" % self.port.getHost().port)

    def lineReceived(self, line: bytes) -> None:
        words = line.decode().split()
        if words[0] == "nodelay":
            # The simulator writes each event as it happens, in its own small write; with
            # Nagle's algorithm on, events wait for the ACK of the previous one (delayed
            # ACK: up to 40 ms) and the bench would measure that instead of pbxis.
            for session in self.sim.sessions:
                session.transport.setTcpNoDelay(True)
            self.sendLine(b"ok %d" % len(self.sim.sessions))
        elif words[0] == "drive":
            with open(words[2]) as f:
                agents = f.read().split()
            self.driver = _Driver(self.reactor, self.sim, float(words[1]), agents)
            self.driver.start()
            self.sendLine(f"driving {self.driver.per_call}".encode())
        elif words[0] == "count":
            sent = self.driver.sent if self.driver else 0
            self.sendLine(f"count {sent} {time.process_time()}".encode())
        elif words[0] == "stop":
            if self.driver is not None:
                self.driver.stop()
            self.sendLine(b"stopped")
        elif words[0] == "quit":
            self.sim.shutdown()
            self.port.stopListening()
            self.sendLine(b"bye")
            self.reactor.callLater(0.05, self.reactor.stop)

    def connectionLost(self, reason: object = None) -> None:
        if self.reactor.running:
            self.reactor.stop()


def simulate(n_agents: int) -> None:
    """The simulator process: a call center of ``n_agents`` on 127.0.0.1, driven on stdin."""
    from twisted.internet import reactor

    raise_fd_limit()
    sim = Simulator(
        call_center(agent_names(n_agents)), clock=reactor, seed=1, username="pbxis", secret=SECRET
    )
    port = reactor.listenTCP(0, sim.factory, backlog=50, interface="127.0.0.1")  # type: ignore[attr-defined]
    stdio.StandardIO(_SimulatorControl(reactor, sim, port))
    reactor.run()  # type: ignore[attr-defined]


class LoadClient:
    """``load_client.py`` in ``processes`` processes of its own; one method per command.

    Streams are dealt to the processes in turn, so that with thousands of clients (or a
    high fan-out) the clients' Python is not what the bench measures. Latency samples
    are merged before the percentiles are taken.
    """

    def __init__(self, reactor: Any, concurrency: int = 64, processes: int = 1) -> None:
        self.reactor = reactor
        per_process = str(max(1, concurrency // max(1, processes)))
        self._procs = [_Child(reactor, "load_client.py", per_process) for _ in range(max(1, processes))]

    async def _all(self, line: Callable[[int], str]) -> list[str]:
        return list(await defer.gatherResults([p.ask(line(i)) for i, p in enumerate(self._procs)]))

    async def connect(self, entries: list[tuple[str, str]]) -> tuple[int, int]:
        """Open ``(kind, url)`` streams; returns (open, failed) so far, over all processes."""
        files = []
        for i in range(len(self._procs)):
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
                f.write("".join(f"{kind} {url}\n" for kind, url in entries[i :: len(self._procs)]))
            files.append(f.name)
        try:
            answers = await self._all(lambda i: f"connect {files[i]}")
        finally:
            for name in files:
                Path(name).unlink()
        words = [a.split() for a in answers]
        return sum(int(w[1]) for w in words), sum(int(w[2]) for w in words)

    async def report(self, start_ns: int, end_ns: int) -> dict[str, float]:
        """Latency percentiles (ms) of the frames sent in ``[start_ns, end_ns)``, all processes."""
        answers = [json.loads(a) for a in await self._all(lambda i: f"report {start_ns} {end_ns}")]
        latencies = sorted(lat for a in answers for lat in a["latencies_us"])
        return {
            "n": len(latencies),
            "p50_ms": percentile(latencies, 0.50) / 1000,
            "p99_ms": percentile(latencies, 0.99) / 1000,
            "max_ms": latencies[-1] / 1000 if latencies else float("nan"),
            "open": sum(a["open"] for a in answers),
            "lost": sum(a["lost"] for a in answers),
        }

    async def close(self) -> None:
        """Close every stream (the processes stay, for the next measurement)."""
        await self._all(lambda i: "close")

    async def quit(self) -> None:
        await self._all(lambda i: "quit")
        await defer.gatherResults([p.pipe.ended for p in self._procs])


def collect_after_connecting() -> str:
    """Run the full collection a burst of new connections makes due, and say what it cost.

    Thousands of connections opened at once leave as many new long-lived objects, and
    the collector's next full pass (which walks every object of every client) comes
    a few seconds later, into the measurement. Run it now: the figures then describe
    the steady state, and this note says what the burst costs once.
    """
    objects = len(gc.get_objects())
    started = time.perf_counter()
    gc.collect()
    ms = (time.perf_counter() - started) * 1000
    return f"full collection after connecting: {ms:.0f} ms, {objects} objects"


class Monitor:
    """What else happened in the daemon's process during a measurement window.

    Latency tails come from stalls more than from average cost: the collector (a full
    collection walks every tracked object, dozens per connection) and CPU saturation of
    this process. ``note()`` summarises both, with the machine's load average (other
    processes on the cores delay pbxis as surely as its own work).
    """

    def __init__(self) -> None:
        self._gc_start = 0.0
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._cpu = self._wall = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._gc_start))

    def start(self) -> None:
        self.pauses = []
        gc.callbacks.append(self._on_gc)
        self._cpu, self._wall = time.process_time(), time.monotonic()

    def stop(self) -> None:
        self._cpu, self._wall = time.process_time() - self._cpu, time.monotonic() - self._wall
        gc.callbacks.remove(self._on_gc)

    def note(self) -> str:
        full = [s for gen, s in self.pauses if gen == 2]
        longest = max((s for _gen, s in self.pauses), default=0.0)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        return (
            f"daemon CPU {100 * self._cpu / self._wall:.0f}% of a core; "
            f"gc: {len(self.pauses)} collections ({len(full)} full), longest {longest * 1000:.1f} ms; "
            f"load average {load}"
        )


if __name__ == "__main__" and sys.argv[1:2] == ["simulate"]:
    simulate(int(sys.argv[2]))
