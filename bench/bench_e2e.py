"""Bench 3: end-to-end latency, AMI event leaving the simulator -> frame at the client.

The daemon (``PbxisService`` in demo mode, this process) registers one agent per client
through the API; ``load_client.py`` (another process) holds the SSE or WebSocket
streams. A driver pauses agents round-robin at the requested rate of AMI events, each
pause reason carrying its send time, and the client measures when the frame arrives
(see ``load_client.py``). Figures: p50, p99 and max latency per transport and client
count, and the AMI event rate actually achieved.
"""

from __future__ import annotations

import time
from typing import Any

from common import figure, machine, note, parser
from stack import Daemon, LoadClient, PauseDriver, start_daemon
from twisted.internet import defer, task


async def measure(
    reactor: Any, daemon: Daemon, client: LoadClient, agents: list[str], rate: float, seconds: float
) -> dict[str, float]:
    """Drive pauses of ``agents`` (those with a client) and collect the client's latencies."""
    driver = PauseDriver(daemon, rate, agents)
    driver.start()
    await task.deferLater(reactor, min(1.0, seconds / 4), lambda: None)  # warm-up
    start, sent = time.monotonic_ns(), driver.sent
    await task.deferLater(reactor, seconds, lambda: None)
    end, calls = time.monotonic_ns(), driver.sent - sent
    driver.stop()
    await task.deferLater(reactor, min(0.3, seconds / 2), lambda: None)  # frames still in flight
    result = await client.report(start, end)
    result["rate"] = calls * driver.per_call / ((end - start) / 1e9)
    return result


async def run(reactor: Any, clients: list[int], rate: float, seconds: float, agents: int) -> None:
    daemon = await start_daemon(reactor, max(agents, *clients))
    client = LoadClient(reactor)
    try:
        started = time.monotonic()
        await daemon.register(daemon.agents)
        await daemon.settle()
        note(f"registered {len(daemon.agents)} agents in {time.monotonic() - started:.1f} s")
        for kind in ("sse", "ws"):
            key = "sse" if kind == "sse" else "websocket"
            connected = 0
            for n in sorted(clients):
                new = daemon.agents[connected:n]
                opened, failed = await client.connect([(kind, daemon.streams[a][key]) for a in new])
                connected = n
                if failed:
                    note(f"{kind} {n}: {failed} streams could not open")
                r = await measure(reactor, daemon, client, daemon.agents[:n], rate, seconds)
                name = f"e2e.{kind}.{n}-clients"
                figure(f"{name}.p50", r["p50_ms"], "ms")
                figure(f"{name}.p99", r["p99_ms"], "ms")
                figure(f"{name}.max", r["max_ms"], "ms")
                figure(f"{name}.rate", r["rate"], "AMI events/s")
                note(f"{name}: {r['n']} frames, {opened} streams open, {r['lost']} lost")
            await client.close()
    finally:
        await client.quit()
        await daemon.stop()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, action="append", help="connected clients (repeatable)")
    p.add_argument("--rate", type=float, default=1000.0, help="AMI events per second")
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per figure")
    p.add_argument("--agents", type=int, default=0, help="registered agents (default: one per client)")
    args = p.parse_args()
    if args.quick:
        clients, rate, seconds = args.clients or [1, 10], 200.0, 0.3
    else:
        clients, rate, seconds = args.clients or [1, 100, 1000, 5000], args.rate, args.seconds
    note(machine())
    note(f"{rate:.0f} AMI events/s (QueueMemberPause), one client per agent")
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, clients, rate, seconds, args.agents)))


if __name__ == "__main__":
    main()
