"""Bench 5: rebuilding state after a login, pbxis's plan against the naive full dump.

A simulated Asterisk holds a big call center (by default 2,500 agents, 5,000 queue
members in 200 queues of 25; each team of 25 agents shares two queues). pbxis registers
the first N agents, connects through a counting relay (``wire.py``) and runs its real
login sequence (``StateSync``: filter, then the tracker's rebuild plan). The naive
rebuild sends ``QueueStatus`` (every queue), ``ExtensionStateList`` and
``CoreShowChannels`` on the same kind of link.

Counted from the end of login to the end of the rebuild: AMI actions on the wire, bytes
both ways, and wall time.

The extension states alone, for the break-even of ``ExtensionStateList`` (every hint of
the PBX, one action) against one ``ExtensionState`` per registered agent: bytes and time
of each way for N agents on the same PBX, and the hints per agent at which the list
costs as many bytes (``pbxis.tracker.rebuild.LIST_BREAK_EVEN`` is set from it).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from common import figure, machine, note, parser
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from wire import Counters, listen_relay

from pbxis.ami.factory import AMIClientFactory
from pbxis.simulator import MemberConfig, PhoneConfig, QueueConfig, Simulator, SimulatorConfig
from pbxis.sync import StateSync
from pbxis.tracker import Tracker

USER, SECRET = "pbxis", "bench-secret"
TEAM = 25  # agents per team; a team shares two queues


def call_center(n_agents: int, n_queues: int) -> tuple[SimulatorConfig, dict[str, list[str]]]:
    """The PBX and who is in which queue: team ``t`` sits in queues ``t`` and ``t + n_queues/2``."""
    agents = [str(10000 + i) for i in range(n_agents)]
    half = n_queues // 2
    membership = {
        a: [f"q{(i // TEAM) % half}", f"q{(i // TEAM) % half + half}"] for i, a in enumerate(agents)
    }
    members: dict[str, list[MemberConfig]] = {f"q{k}": [] for k in range(n_queues)}
    for agent, queues in membership.items():
        for queue in queues:
            members[queue].append(MemberConfig(f"SIP/{agent}", f"Agent {agent}", f"SIP/{agent}"))
    config = SimulatorConfig(
        phones=tuple(PhoneConfig(a, f"Agent {a}") for a in agents),
        queues=tuple(QueueConfig(q, "ringall", members=tuple(m)) for q, m in members.items()),
    )
    return config, membership


async def until(reactor: object, done: Callable[[], object], timeout: float) -> None:
    """Poll ``done`` every millisecond (the bench's only wait; bounded)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("rebuild did not finish in time")
        await task.deferLater(reactor, 0.001, lambda: None)


class _ResetOnLogin:
    """An observer registered first: counting starts once login is done."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.at = 0.0

    def ami_logged_in(self, protocol: object) -> None:
        self.counters.reset()
        self.at = time.perf_counter()


async def pbxis_rebuild(
    reactor: object, port: int, membership: dict[str, list[str]], n: int, counters: Counters
) -> tuple[int, float, int]:
    """(actions on the wire, seconds, rebuild actions) for ``n`` registered agents."""
    tracker = Tracker(interface_template="SIP/{agent}", hint_context="agents")
    for agent in list(membership)[:n]:
        tracker.register(agent, membership[agent], 0)
    ami = AMIClientFactory(USER, SECRET, clock=reactor, keepalive_interval=None)
    sync = StateSync(ami, tracker, lambda events: None, clock=reactor)
    start = _ResetOnLogin(counters)
    ami.add_observer(start)
    ami.add_observer(sync)
    ami.connect(TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    try:
        await until(reactor, lambda: sync.ready, 120)
        elapsed = time.perf_counter() - start.at
        stats = sync.last_rebuild
        assert stats is not None
        return counters.actions, elapsed, stats.actions
    finally:
        await ami.stop()


async def naive_rebuild(reactor: object, port: int, counters: Counters) -> tuple[int, float]:
    ami = AMIClientFactory(USER, SECRET, clock=reactor, keepalive_interval=None)
    start = _ResetOnLogin(counters)
    ami.add_observer(start)
    ami.connect(TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    try:
        await until(reactor, lambda: ami.connected, 30)
        await defer.gatherResults(
            [
                ami.send_action("QueueStatus", timeout=120),
                ami.send_action("ExtensionStateList", timeout=120),
                ami.send_action("CoreShowChannels", timeout=120),
            ]
        )
        return counters.actions, time.perf_counter() - start.at
    finally:
        await ami.stop()


async def extension_states(
    reactor: object, port: int, agents: list[str], counters: Counters, as_list: bool
) -> tuple[int, float]:
    """(bytes, seconds) to learn ``agents``' extension states one by one or by the list."""
    ami = AMIClientFactory(USER, SECRET, clock=reactor, keepalive_interval=None)
    start = _ResetOnLogin(counters)
    ami.add_observer(start)
    ami.connect(TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    try:
        await until(reactor, lambda: ami.connected, 30)
        counters.reset()
        began = time.perf_counter()
        if as_list:
            await ami.send_action("ExtensionStateList", timeout=120)
        else:
            await defer.gatherResults(
                [
                    ami.send_action("ExtensionState", [("Exten", a), ("Context", "agents")], timeout=120)
                    for a in agents
                ]
            )
        return counters.to_server + counters.to_client, time.perf_counter() - began
    finally:
        await ami.stop()


async def run(reactor: object, agents: int, queues: int, registered: list[int]) -> None:
    config, membership = call_center(agents, queues)
    sim = Simulator(dataclasses.replace(config, boot_time=0.0), clock=reactor, username=USER, secret=SECRET)
    note(f"PBX: {agents} agents, {sum(len(q) for q in membership.values())} members in {queues} queues")
    server = reactor.listenTCP(0, sim.factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    counters = Counters()
    relay = listen_relay(reactor, server.getHost().port, counters)
    port = relay.getHost().port
    try:
        actions, naive_s = await naive_rebuild(reactor, port, counters)
        naive_bytes = counters.to_server + counters.to_client
        figure("rebuild.naive.actions", actions, "actions")
        figure("rebuild.naive.bytes", naive_bytes, "bytes")
        figure("rebuild.naive.time", naive_s * 1000, "ms")
        for n in registered:
            wire_actions, seconds, planned = await pbxis_rebuild(reactor, port, membership, n, counters)
            total = counters.to_server + counters.to_client
            figure(f"rebuild.{n}-agents.actions", wire_actions, "actions")
            figure(f"rebuild.{n}-agents.rebuild-actions", planned, "actions")
            figure(f"rebuild.{n}-agents.bytes", total, "bytes")
            figure(f"rebuild.{n}-agents.bytes-per-agent", total / n, "bytes")
            figure(f"rebuild.{n}-agents.time", seconds * 1000, "ms")
            figure(f"rebuild.{n}-agents.naive-over-pbxis-bytes", naive_bytes / total, "x")
            figure(f"rebuild.{n}-agents.naive-over-pbxis-time", naive_s / seconds, "x")
        everyone = list(membership)
        list_bytes, list_s = await extension_states(reactor, port, everyone, counters, True)
        figure(f"rebuild.extension-state-list.{agents}-hints.bytes", list_bytes, "bytes")
        figure(f"rebuild.extension-state-list.{agents}-hints.time", list_s * 1000, "ms")
        for n in sorted({*registered, agents}):
            each_bytes, each_s = await extension_states(reactor, port, everyone[:n], counters, False)
            figure(f"rebuild.extension-state.{n}-agents.bytes", each_bytes, "bytes")
            figure(f"rebuild.extension-state.{n}-agents.time", each_s * 1000, "ms")
            # The list costs bytes per hint, the actions bytes per agent: the list is
            # cheaper while hints/agents stays under this ratio.
            figure(
                f"rebuild.extension-state.{n}-agents.break-even-hints-per-agent",
                (each_bytes / n) / (list_bytes / agents),
                "x",
            )
            figure(f"rebuild.extension-state.{n}-agents.list-over-each-time", list_s / each_s, "x")
    finally:
        await relay.stopListening()
        await server.stopListening()
        for session in list(sim.sessions):
            if session.transport is not None:
                session.transport.abortConnection()
        await task.deferLater(reactor, 0.01, lambda: None)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=2500, help="phones on the PBX (two queues each)")
    p.add_argument("--queues", type=int, default=200)
    p.add_argument("--registered", type=int, action="append", help="registered agents (repeatable)")
    args = p.parse_args()
    agents, queues = (250, 20) if args.quick else (args.agents, args.queues)
    registered = args.registered or ([10, 100] if args.quick else [10, 100, 1000])
    note(machine())
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, agents, queues, registered)))


if __name__ == "__main__":
    main()
