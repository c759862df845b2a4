"""Bench 3: end-to-end latency, AMI event leaving the simulator -> frame at the client.

The daemon (``PbxisService``, this process; its simulated Asterisk runs in another, see
``stack.py``) registers agents through the API; ``load_client.py`` (other processes)
holds the SSE or WebSocket streams, by default one per agent. A driver pauses the agents
that have clients round-robin at the requested rate of AMI events, each pause reason
carrying its send time, and the client measures when the frame arrives (see
``load_client.py``). Figures: p50, p99 and max latency per transport and client count,
and the AMI event rate actually achieved.

Two loads are told apart, because they cost different layers:

* ``--agents N`` registers ``N`` agents (default: as many as have clients). Every one
  of them is state the tracker keeps up to date; clients are not involved.
* ``--per-agent K`` puts ``K`` clients on each agent (default 1): every event is sent to
  ``K`` streams. ``--clients 1000 --per-agent 100`` is fan-out (10 agents, 100 frames per
  event); ``--clients 1000`` alone is 1,000 agents with one frame per event. Figures
  with ``K > 1`` are named ``e2e.<kind>.<clients>-clients-on-<agents>-agents``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from common import figure, machine, note, parser, ratio
from stack import Daemon, LoadClient, Monitor, PauseDriver, collect_after_connecting, start_daemon
from twisted.internet import defer, task


async def measure(
    reactor: Any, daemon: Daemon, client: LoadClient, agents: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    """Drive pauses of ``agents`` (those with a client) and collect the client's latencies."""
    driver = PauseDriver(daemon, rate, agents)
    monitor = Monitor()
    await driver.start()
    await task.deferLater(reactor, min(1.0, seconds / 4), lambda: None)  # warm-up
    monitor.start()
    start, (sent, sim_cpu) = time.monotonic_ns(), await driver.sent()
    await task.deferLater(reactor, seconds, lambda: None)
    end, (sent_end, sim_cpu_end) = time.monotonic_ns(), await driver.sent()
    monitor.stop()
    calls = sent_end - sent
    await driver.stop()
    await task.deferLater(reactor, min(0.3, seconds / 2), lambda: None)  # frames still in flight
    result: dict[str, Any] = dict(await client.report(start, end))
    result["rate"] = calls * driver.per_call / ((end - start) / 1e9)
    result["events"] = calls * driver.per_call
    result["monitor"] = f"{monitor.note()}; simulator CPU {100 * (sim_cpu_end - sim_cpu) / seconds:.0f}%"
    return result


async def run(reactor: Any, kinds: list[str], clients: list[int], args: Any) -> None:
    """Each store of ``--store`` in turn, in this one run (so their figures compare)."""
    stores = ["memory", "redis"] if args.store == "both" else [args.store]
    server = None
    if "redis" in stores:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "redis"))
        from redis_proc import RedisServer

        server = RedisServer().start()
    try:
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for n, store in enumerate(stores):
            url = server.url if store == "redis" and server is not None else ""
            results[store] = await run_store(reactor, kinds, clients, args, redis_url=url, prefix=f"e2e{n}:")
        if len(results) == 2:  # the Redis store's latency against the memory store's, same run
            for name, r in results["redis"].items():
                memory = results["memory"].get(name)
                if memory is not None:
                    ratio(f"e2e.redis-vs-memory.{name}.p99", r["p99_ms"], memory["p99_ms"])
                    ratio(f"e2e.redis-vs-memory.{name}.p50", r["p50_ms"], memory["p50_ms"])
    finally:
        if server is not None:
            server.close()


async def run_store(
    reactor: Any, kinds: list[str], clients: list[int], args: Any, *, redis_url: str, prefix: str
) -> dict[str, dict[str, Any]]:
    """The figures of one store; its results by ``<kind>.<clients>-clients``."""
    results: dict[str, dict[str, Any]] = {}
    per_agent = args.per_agent
    with_clients = math.ceil(max(clients) / per_agent)
    daemon = await start_daemon(
        reactor, max(args.agents, with_clients), redis_url=redis_url, key_prefix=prefix
    )
    store = "redis." if redis_url else ""
    link = daemon.service.redis.link if daemon.service.redis is not None else None
    client = LoadClient(reactor, processes=args.load_processes)
    try:
        started = time.monotonic()
        await daemon.register(daemon.agents)
        await daemon.settle()
        note(f"registered {len(daemon.agents)} agents in {time.monotonic() - started:.1f} s")
        for kind in kinds:
            key = "sse" if kind == "sse" else "websocket"
            connected = 0
            for n in sorted(clients):
                # client i follows agent i // per_agent: the first agents fill up first
                agents = [daemon.agents[i // per_agent] for i in range(connected, n)]
                opened, failed = await client.connect([(kind, daemon.streams[a][key]) for a in agents])
                connected = n
                if failed:
                    note(f"{kind} {n}: {failed} streams could not open")
                note(f"{kind} {n}: {collect_after_connecting()}")
                driven = daemon.agents[: math.ceil(n / per_agent)]
                sent = (link.sent_commands, link.sent_bytes) if link is not None else (0, 0)
                r = await measure(reactor, daemon, client, driven, args.rate, args.seconds)
                name = f"e2e.{store}{kind}.{n}-clients"
                if per_agent > 1:
                    name += f"-on-{len(driven)}-agents"
                results[name.removeprefix("e2e.").removeprefix(store)] = r
                figure(f"{name}.p50", r["p50_ms"], "ms")
                figure(f"{name}.p99", r["p99_ms"], "ms")
                figure(f"{name}.max", r["max_ms"], "ms")
                figure(f"{name}.rate", r["rate"], "AMI events/s")
                if link is not None and r["events"]:
                    # what the store cost Redis per AMI event (pipelined: not round trips)
                    figure(
                        f"{name}.redis-commands",
                        (link.sent_commands - sent[0]) / r["events"],
                        "per AMI event",
                    )
                    figure(
                        f"{name}.redis-bytes", (link.sent_bytes - sent[1]) / r["events"], "B per AMI event"
                    )
                note(f"{name}: {r['n']} frames, {opened} streams open, {r['lost']} lost")
                note(f"{name}: {r['monitor']}")
            await client.close()
    finally:
        await client.quit()
        await daemon.stop()
    return results


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, action="append", help="connected clients (repeatable)")
    p.add_argument("--transport", choices=["sse", "ws"], action="append", help="default: both")
    p.add_argument("--rate", type=float, default=1000.0, help="AMI events per second")
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per figure")
    p.add_argument("--agents", type=int, default=0, help="registered agents (default: those with clients)")
    p.add_argument("--per-agent", type=int, default=1, help="clients per agent (fan-out of each event)")
    p.add_argument("--load-processes", type=int, default=1, help="load client processes")
    p.add_argument(
        "--store",
        choices=["memory", "redis", "both"],
        default="memory",
        help="the hub's store: in memory, in Redis (a redis-server started for the run), or both in turn",
    )
    args = p.parse_args()
    if args.quick:
        clients, args.rate, args.seconds = args.clients or [1, 10], 200.0, 0.3
    else:
        clients = args.clients or [1, 100, 1000, 5000]
    if args.per_agent < 1:
        p.error("--per-agent must be at least 1")
    note(machine())
    note(f"{args.rate:.0f} AMI events/s (QueueMemberPause), {args.per_agent} client(s) per agent")
    kinds = args.transport or ["sse", "ws"]
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, kinds, clients, args)))


if __name__ == "__main__":
    main()
