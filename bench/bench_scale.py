"""Bench 4: scale. Memory per registered agent and per idle client; most clients at p99 < 50 ms.

One daemon process per transport (this script runs itself once with ``--transport sse``
and once with ``--transport ws``), so memory freed by one transport's clients does not
flatter the other's figures (``--quick`` runs both in one process).

* Memory per agent: RSS growth of the daemon while agents register through the API
  (the simulator's phones and members exist before the first reading).
* Memory per idle client: RSS growth while streams open, one per agent, no traffic.
* Capacity: clients are added step by step (one per agent); at each step the driver
  sends ``--rate`` AMI events/s spread over the connected agents and the load client
  measures latency. The figure is the largest step whose p99 stayed under ``--p99-ms``
  with every stream open.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from typing import Any

from common import figure, machine, note, parser, rss_kib
from stack import Daemon, LoadClient, Monitor, PauseDriver, collect_after_connecting, start_daemon
from twisted.internet import defer, task


async def settle_rss(reactor: Any, pause: float) -> int:
    """RSS once the reactor is idle and the collector has run."""
    await task.deferLater(reactor, pause, lambda: None)
    gc.collect()
    return rss_kib()


async def latency(
    reactor: Any, daemon: Daemon, client: LoadClient, agents: list[str], rate: float, seconds: float
) -> dict[str, Any]:
    driver = PauseDriver(daemon, rate, agents)
    monitor = Monitor()
    await driver.start()
    await task.deferLater(reactor, min(0.5, seconds / 2), lambda: None)
    monitor.start()
    start = time.monotonic_ns()
    await task.deferLater(reactor, seconds, lambda: None)
    end = time.monotonic_ns()
    monitor.stop()
    await driver.stop()
    await task.deferLater(reactor, min(0.3, seconds / 2), lambda: None)  # frames still in flight
    result: dict[str, Any] = dict(await client.report(start, end))
    result["monitor"] = monitor.note()
    return result


async def run(reactor: Any, kinds: list[str], steps: list[int], args: Any) -> None:
    pause = 0.05 if args.quick else 0.5
    daemon = await start_daemon(reactor, max(steps))
    client = LoadClient(reactor, processes=args.load_processes)
    try:
        for kind in kinds:
            await ramp(reactor, daemon, client, kind, sorted(steps), args, pause)
            await client.close()
    finally:
        await client.quit()
        await daemon.stop()


async def ramp(
    reactor: Any, daemon: Daemon, client: LoadClient, kind: str, steps: list[int], args: Any, pause: float
) -> None:
    """Add agents and clients step by step; stop at the first step over the p99 bar.

    Agents are registered as the steps need them (registering is the slow part), and
    the RSS growth around registrations and around connections is summed separately.
    """
    key = "sse" if kind == "sse" else "websocket"
    connected = best = 0
    agent_kib = client_kib = 0
    for step in steps:
        missing = [a for a in daemon.agents[:step] if a not in daemon.streams]
        if missing:
            before = await settle_rss(reactor, pause)
            await daemon.register(missing)
            await daemon.settle()
            agent_kib += await settle_rss(reactor, pause) - before
        before = await settle_rss(reactor, pause)
        opened, failed = await client.connect(
            [(kind, daemon.streams[a][key]) for a in daemon.agents[connected:step]]
        )
        client_kib += await settle_rss(reactor, pause) - before
        note(f"{kind} {step} clients: {collect_after_connecting()}")
        connected = step
        result = await latency(reactor, daemon, client, daemon.agents[:step], args.rate, args.seconds)
        note(
            f"{kind} {step} clients: p99 {result['p99_ms']:.1f} ms, p50 {result['p50_ms']:.1f} ms, "
            f"{result['n']} frames, {opened} open, {failed} failed, {result['lost']} lost"
        )
        note(f"{kind} {step} clients: {result['monitor']}")
        if failed or result["lost"] or not result["p99_ms"] < args.p99_ms:
            break
        best = step
    if agent_kib:
        figure(f"scale.{kind}.memory-per-agent", agent_kib * 1024 / len(daemon.streams) / 1000, "KB")
    figure(f"scale.{kind}.memory-per-client", client_kib * 1024 / connected / 1000, "KB")
    figure(f"scale.{kind}.max-clients-p99-under-{args.p99_ms:.0f}ms", best, "clients")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--transport", choices=["sse", "ws"], help="one transport in this process")
    p.add_argument("--steps", type=int, action="append", help="client counts to try (repeatable)")
    p.add_argument("--rate", type=float, default=1000.0, help="AMI events per second at each step")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per step")
    p.add_argument("--p99-ms", type=float, default=50.0)
    p.add_argument("--load-processes", type=int, default=2, help="load client processes")
    args = p.parse_args()
    if args.quick:
        # Tiny, and both transports in this process: the figures only prove the bench runs.
        steps = args.steps or [10, 50]
        args.rate, args.seconds = 200.0, 0.3
        kinds = [args.transport] if args.transport else ["sse", "ws"]
    elif args.transport is None:
        note(machine())
        rc = 0
        for kind in ("sse", "ws"):
            rc |= subprocess.call([sys.executable, __file__, "--transport", kind, *sys.argv[1:]])
        sys.exit(rc)
    else:
        steps = args.steps or [1000, 2500, 5000, 10000, 15000]
        kinds = [args.transport]
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, kinds, steps, args)))


if __name__ == "__main__":
    main()
