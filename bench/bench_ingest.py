"""Bench: AMI events/s the daemon ingests from a fast AMI peer, with many agents and clients.

Issue 20's daemon-level figure. A peer process (``bench_ingest.py peer``) is a simulated
Asterisk (pbxis's simulator, for the login and the state rebuild) that, on command,
writes the captures' filtered call traffic (:func:`corpus.fleet`: the scenarios replayed
by crews of three agents, all sharing the two queues ``q0`` and ``q1``) into its AMI
session as fast as the socket takes it, in chunks cut at message boundaries. The daemon
(``PbxisService``, what ``twistd pbxis`` runs, in this process over real TCP) has
``--agents`` agents registered through the API on both queues and ``--clients`` SSE
clients connected (``load_client.py``, another process). The figure is the events the
daemon's AMI link counted, over the time from the first to the last, with the RSS of
this process before and after.

The floor: the same bytes, sent by the same peer on another port, read by a plain
read-and-split loop (``bench_ingest.py floor``: split on the blank line, split lines,
partition on ``": "``, fill a dict, read one key), in its own process, in the same run.

``--profile`` runs cProfile (CPU time) over the largest flood and prints its top entries by
own time (cProfile is in the standard library; its overhead slows the flood, so a profiled
run's figures are not the run's figures).
"""

from __future__ import annotations

import gc
import os
import socket
import sys
import time
from typing import Any

import treq
from common import figure, machine, note, parser, ratio, rss_kib
from corpus import BANNER, LOGIN_OK, Fleet, fleet
from stack import SECRET, LoadClient, _Child, raise_fd_limit
from twisted.internet import defer, interfaces, protocol, stdio, task
from twisted.protocols.basic import LineReceiver
from twisted.web.client import HTTPConnectionPool
from zope.interface import implementer

from pbxis.config import parse_config
from pbxis.service import PbxisService

CHUNK = 64 * 1024


def traffic(n_agents: int, n_events: int) -> Fleet:
    """``n_agents`` agents in crews of three, every crew in ``q0`` and ``q1``."""
    return fleet(n_agents, n_events, agents_per_queue=max(n_agents, 2))


def message_chunks(stream: bytes, size: int = CHUNK) -> list[bytes]:
    """``stream`` (banner and login answer cut off) in pieces ending at a message's end,
    so the simulator's own answers (keepalive pings) never land inside a message."""
    body = stream[len(BANNER) + len(LOGIN_OK) :]
    out = []
    start = 0
    while start < len(body):
        end = body.find(b"\r\n\r\n", start + size)
        end = len(body) if end < 0 else end + 4
        out.append(body[start:end])
        start = end
    return out


# -- the peer process ---------------------------------------------------------------------


@implementer(interfaces.IPushProducer)
class _Flood:
    """Writes the chunks into ``transport`` while it takes them (a push producer)."""

    def __init__(self, transport: Any, chunks: list[bytes], done: Any) -> None:
        self.transport = transport
        self.chunks = chunks
        self.next = 0
        self.paused = False
        self.done = done
        transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.next < len(self.chunks):
            self.transport.write(self.chunks[self.next])
            self.next += 1
        if self.next >= len(self.chunks) and self.done is not None:
            done, self.done = self.done, None
            self.transport.unregisterProducer()
            done()

    def stopProducing(self) -> None:
        self.next = len(self.chunks)


class _FloorServer(protocol.Protocol):
    def connectionMade(self) -> None:
        _Flood(self.transport, self.factory.chunks, self.transport.loseConnection)  # type: ignore[attr-defined]


class _PeerControl(LineReceiver):
    delimiter = b"\n"

    def __init__(self, reactor: Any, n_agents: int, n_events: int) -> None:
        from pbxis.simulator import MemberConfig, PhoneConfig, QueueConfig, Simulator, SimulatorConfig

        self.reactor = reactor
        traffic_ = traffic(n_agents, n_events)
        self.events = traffic_.events
        self.chunks = message_chunks(traffic_.stream)
        agents = list(traffic_.agents)
        config = SimulatorConfig(
            phones=tuple(PhoneConfig(a, f"Agent {a}") for a in agents),
            queues=(QueueConfig("q0"), QueueConfig("q1")),
            persisted=tuple(
                (q, MemberConfig(f"SIP/{a}", f"Agent {a}", f"SIP/{a}")) for a in agents for q in ("q0", "q1")
            ),
            boot_time=0.0,
        )
        self.sim = Simulator(config, clock=reactor, seed=1, username="pbxis", secret=SECRET)
        self.port = reactor.listenTCP(0, self.sim.factory, interface="127.0.0.1")
        floor = protocol.Factory.forProtocol(_FloorServer)
        floor.chunks = self.chunks  # type: ignore[attr-defined]
        self.floor_port = reactor.listenTCP(0, floor, interface="127.0.0.1")

    def connectionMade(self) -> None:
        self.sendLine(
            b"ports %d %d %d" % (self.port.getHost().port, self.floor_port.getHost().port, self.events)
        )

    def lineReceived(self, line: bytes) -> None:
        words = line.decode().split()
        if words[0] == "flood":
            session = self.sim.sessions[-1]
            session.transport.setTcpNoDelay(True)
            _Flood(session.transport, self.chunks, lambda: self.sendLine(b"sent"))
        elif words[0] == "quit":
            self.sim.shutdown()
            self.sendLine(b"bye")
            self.reactor.callLater(0.05, self.reactor.stop)

    def connectionLost(self, reason: object = None) -> None:
        if self.reactor.running:
            self.reactor.stop()


def peer(n_agents: int, n_events: int) -> None:
    from twisted.internet import reactor

    raise_fd_limit()
    stdio.StandardIO(_PeerControl(reactor, n_agents, n_events))
    reactor.run()  # type: ignore[attr-defined]


# -- the floor process --------------------------------------------------------------------


def floor(port: int) -> None:
    """Read the flood from ``port`` with the plain loop; print ``<events> <seconds>``."""
    sock = socket.create_connection(("127.0.0.1", port))
    count = 0
    buf = b""
    started = None
    cpu_started = 0.0
    while True:
        data = sock.recv(262144)
        if not data:
            break
        if started is None:
            started = time.perf_counter()
            cpu_started = time.process_time()
        buf += data
        *messages, buf = buf.split(b"\r\n\r\n")
        for message in messages:
            fields = {}
            for line in message.split(b"\r\n"):
                key, _, value = line.partition(b": ")
                fields[key] = value
            if fields.get(b"Event") is not None:
                count += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    cpu = time.process_time() - cpu_started if started is not None else 0.0
    print(f"{count} {elapsed} {cpu}", flush=True)


# -- the bench ----------------------------------------------------------------------------


async def register(reactor: Any, base: str, agents: list[str]) -> dict[str, str]:
    """``PUT /agents/{agent}`` on ``q0`` and ``q1``; the SSE URL of each."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 16
    todo = list(reversed(agents))
    urls: dict[str, str] = {}
    port = base.rsplit(":", 1)[1]

    async def worker() -> None:
        while todo:
            agent = todo.pop()
            resp = await treq.put(f"{base}/agents/{agent}", json={"queues": ["q0", "q1"]}, pool=pool)
            data = await treq.json_content(resp)
            if resp.code != 200:
                raise RuntimeError(f"PUT /agents/{agent}: {resp.code} {data}")
            url = data["streams"]["sse"]
            scheme, rest = url.split("://", 1)
            urls[agent] = f"{scheme}://127.0.0.1:{port}/{rest.split('/', 1)[1]}"

    try:
        await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(16)])
    finally:
        await pool.closeCachedConnections()
    return urls


def events_in(service: PbxisService) -> int:
    return sum(service.ami.stats.events_in.values())


async def run_one(
    reactor: Any, n_agents: int, n_events: int, n_clients: int, profile: bool, max_log_bytes: int | None
) -> None:
    child = _Child(reactor, "bench_ingest.py", "peer", str(n_agents), str(n_events))
    words = (await child.expect()).split()
    ami_port, floor_port, total = int(words[1]), int(words[2]), int(words[3])
    config = parse_config(
        {
            "ami": {
                "host": "127.0.0.1",
                "port": ami_port,
                "username": "pbxis",
                "secret": SECRET,
                # the peer's answer to a keepalive waits behind the flood: not a dead link
                "keepalive_interval": 3600.0,
                "keepalive_timeout": 600.0,
            },
            "http": {"listen": "tcp:0:interface=127.0.0.1:backlog=4096"},
            "agents": {
                "grace_period": 600.0,
                **({"max_log_bytes": max_log_bytes} if max_log_bytes else {}),
            },
        }
    )
    service = PbxisService(config, reactor)
    service.startService()
    clients = LoadClient(reactor, concurrency=64)
    try:
        deadline = time.monotonic() + 60
        while not (service.ami.connected and service.sync.ready):
            if time.monotonic() > deadline:
                raise TimeoutError("pbxis did not log in to the peer")
            await task.deferLater(reactor, 0.01, lambda: None)
        base = f"http://127.0.0.1:{service.http_port}"
        agents = list(traffic(n_agents, 10).agents)  # the same names as the peer's traffic
        urls = await register(reactor, base, agents)
        deadline = time.monotonic() + 120
        sync = service.sync
        while not (sync.ready and not getattr(sync, "_busy", False) and not getattr(sync, "_pending", None)):
            if time.monotonic() > deadline:
                raise TimeoutError("pbxis did not finish loading the registered agents")
            await task.deferLater(reactor, 0.01, lambda: None)
        # n_clients streams dealt over the agents in turn (two per agent with 100 agents)
        streams = [("sse", urls[agents[i % len(agents)]]) for i in range(n_clients)]
        opened, failed = await clients.connect(streams)
        await task.deferLater(reactor, 0.5, lambda: None)
        gc.collect()
        rss_before = rss_kib()
        base_count = events_in(service)
        first: list[float] = []
        note(f"flood starts (pid {os.getpid()})")
        sent = child.ask("flood")
        profiler = None
        if profile:
            import cProfile

            # CPU time, not the wall clock: on a shared machine a time slice lost to
            # another process would be charged to whatever function it interrupted
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
        started = time.perf_counter()
        cpu_started = time.process_time()
        progress, last_seen = started, 0
        while True:
            seen = events_in(service) - base_count
            now = time.perf_counter()
            if seen and not first:
                first.append(now)
            if seen != last_seen:
                progress, last_seen = now, seen
            if seen >= total or now > progress + 10:
                break
            await task.deferLater(reactor, 0.005, lambda: None)
        ended = progress
        cpu = time.process_time() - cpu_started
        if profiler is not None:
            profiler.disable()
        if seen >= total:
            await sent
        rss_after = rss_kib()
        elapsed = ended - (first[0] if first else started)
        rate = seen / elapsed
        # the floor, the same run: the same bytes from the same peer (see floor())
        floor_proc = _Child(reactor, "bench_ingest.py", "floor", str(floor_port))
        floor_words = (await floor_proc.expect()).split()
        await floor_proc.pipe.ended
        floor_rate = int(floor_words[0]) / float(floor_words[1])
        floor_cpu_rate = int(floor_words[0]) / float(floor_words[2])
        name = f"ingest.{n_agents}-agents-{opened}-sse"
        figure(f"{name}.pbxis", rate, "events/s")
        figure(f"{name}.floor", floor_rate, "events/s")
        ratio(f"{name}.pbxis-vs-floor", rate, floor_rate)
        # Other processes on the cores delay both: events per CPU second compare the
        # work, whatever the machine's load (the floor's counts its loop only).
        figure(f"{name}.pbxis-per-cpu-s", seen / cpu, "events/s")
        figure(f"{name}.floor-per-cpu-s", floor_cpu_rate, "events/s")
        ratio(f"{name}.pbxis-vs-floor-per-cpu-s", seen / cpu, floor_cpu_rate)
        figure(f"{name}.rss-before", rss_before / 1024, "MiB")
        figure(f"{name}.rss-after", rss_after / 1024, "MiB")
        figure(f"{name}.log-bytes", service.hub.store.bytes_used() / 2**20, "MiB")
        note(f"[agents] max_log_bytes = {config.agents.max_log_bytes / 2**20:.0f} MiB")
        hub_stats = service.hub.stats()
        note(
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
            f"{seen} of {total} events in {elapsed:.2f} s, daemon CPU {100 * cpu / elapsed:.0f}%; "
            f"{failed} clients failed; "
            f"hub: {hub_stats['events_published']} events published, "
            f"{hub_stats['queue_flushes']} queue flushes, "
            f"{sum(hub_stats['log_sizes'].values())} entries in logs"
        )
        if profiler is not None:
            import io
            import pstats

            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
            print("\n".join("# " + line for line in out.getvalue().splitlines()), flush=True)
    finally:
        await clients.quit()
        await defer.maybeDeferred(service.stopService)
        await child.ask("quit")
        await child.pipe.ended


async def main(reactor: Any) -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, nargs="*", default=None, help="registered agents (default 100 1000)")
    p.add_argument("--clients", type=int, default=200, help="SSE clients (on the first agents)")
    p.add_argument("--events", type=int, default=None, help="AMI events in the flood (default 200000)")
    p.add_argument("--profile", action="store_true", help="cProfile over the largest run")
    p.add_argument("--max-log-bytes", type=int, default=None, help="[agents] max_log_bytes")
    args = p.parse_args(sys.argv[1:])
    sizes = args.agents or ([30, 60] if args.quick else [100, 1000])
    events = args.events or (3000 if args.quick else 200_000)
    clients = min(args.clients, 20) if args.quick else args.clients
    note(machine())
    note(f"flood of ~{events} filtered AMI events; agents share q0 and q1; {clients} SSE clients")
    for n in sizes:
        await run_one(reactor, n, events, clients, args.profile and n == max(sizes), args.max_log_bytes)


if __name__ == "__main__":
    if sys.argv[1:2] == ["peer"]:
        peer(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["floor"]:
        floor(int(sys.argv[2]))
    else:
        os.environ.setdefault("PYTHONHASHSEED", "0")
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
