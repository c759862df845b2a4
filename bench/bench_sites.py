"""Bench: two sites on one Redis (issue 16): throughput and latency of the clustered path
against one process, and how long a PBX's takeover takes, in one run.

Every part is a process of its own: two simulated Asterisks, ``east`` and ``west``
(``stack.py simulate N``: N agents each, the same names on both, which also drive the
load), ``redis-server``, ``twistd pbxis`` nodes and the load clients
(``load_client.py``, one SSE stream per agent of each PBX).

1. *Single process*: one ``twistd pbxis`` node (``role = "all"``, both ``[[pbx]]``
   tables, no Redis) holds both AMI links and the clients.
2. *Clustered*: two collectors naming both PBXes (each holds one lease, ``lease_time``
   ``--lease``), one web node holding the clients; each event goes collector -> Redis ->
   web node -> client.

At each step of ``--rate`` (AMI events/s over both PBXes, half on each; QueueMemberPause,
the reason carrying its send time) the load clients give p50/p99 and the events/s that
reached them; a step whose p99 crosses ``--p99-ms`` or that delivered under 95% of what
was sent ends that ramp. Figures: each step's, the most events/s under the bar for
each path, and the clustered path's extra latency over the single process at the first
step (difference and ratio, same run). Then, clustered, with a low load on both PBXes
and one SSE client of an east agent: ``--repeat`` rounds of ``kill -9`` of east's
holder, timing the lease's expiry in Redis, the other collector's login to east, and
the client's first event the new holder wrote (an id above the log's last at expiry):
*expiry to first event*, the takeover the lease does not explain. The killed node is
started again between rounds. Wall clock, the machine's other load counts: on a
2-core machine collectors, web node, Redis, simulators and clients share the cores.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_webnodes import Node, latency, register
from common import figure, machine, note, parser, ratio
from stack import LoadClient, PauseDriver, _Child, agent_names
from twisted.internet import defer, task

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import redis  # noqa: E402

from pbxis.store.redis_keys import pbx_keys  # noqa: E402
from tests.redis.redis_proc import RedisServer  # noqa: E402
from tests.redis.test_redis_daemon import SSEClient  # noqa: E402
from tests.support.cluster import holder_of, holds, last_log_id, node_tables, pbx_tables, time_takeover  # noqa: E402
from tests.support.processes import health, wait_for  # noqa: E402

PBXES = ("east", "west")
PREFIX = "sites:"


def site_config(ports: dict[str, int], role: str, name: str, redis_url: str, lease: float) -> str:
    """A node's config: both PBXes; ``[redis]`` and ``[node]`` unless it is the single process."""
    tables = pbx_tables(ports, secret_env="PBXIS_BENCH_SECRET", extra="keepalive_interval = 30.0\n")
    cluster = node_tables(redis_url, PREFIX, role, name, lease) if redis_url else ""
    return (
        f'{tables}\n[http]\nlisten = "tcp:{{http_port}}:interface=127.0.0.1:backlog=4096"\n\n'
        f"[agents]\ngrace_period = 300.0\n{cluster}"
    )


async def pause(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


async def serving(reactor: Any, web: Node, sims: dict[str, _Child]) -> None:
    """Until ``web`` says every PBX is served (``/health/pbx/{pbx}`` ok); Nagle off then."""
    import treq

    deadline = time.monotonic() + 60
    for pbx in PBXES:
        while True:
            resp = await treq.get(f"{web.base_url}/health/pbx/{pbx}", timeout=5)
            body = await treq.json_content(resp)
            if resp.code == 200 and body.get("status") == "ok":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{pbx} not served: {body}")
            await pause(reactor, 0.1)
    for sim in sims.values():
        await sim.ask("nodelay")


async def ramp(
    reactor: Any, kind: str, node: Node, sims: dict[str, _Child], agents: list[str], args: Any
) -> dict[float, dict[str, Any]]:
    """Register ``agents`` on each PBX through ``node``, a client each, then the rate steps."""
    paths: list[str] = []
    for pbx in PBXES:
        paths += (await register(reactor, node, agents, route=f"/pbx/{pbx}/agents")).values()
    await pause(reactor, 2.0)  # the registrations' rebuilds
    client = LoadClient(reactor, processes=args.load_processes)
    results: dict[float, dict[str, Any]] = {}
    best = 0.0
    try:
        opened, failed = await client.connect([("sse", node.base_url + path) for path in paths])
        note(f"{kind}: {opened} SSE clients open, {failed} failed")
        for rate in sorted(args.rate):
            r = await latency(reactor, list(sims.values()), client, agents, rate / len(sims), args.seconds)
            delivered = r["n"] / args.seconds
            results[rate] = r
            name = f"sites.{kind}.{rate:.0f}-events-per-s"
            figure(f"{name}.p50", r["p50_ms"], "ms")
            figure(f"{name}.p99", r["p99_ms"], "ms")
            figure(f"{name}.delivered", delivered, "events/s")
            note(f"{name}: {r['n']} of {r['sent']} frames due, {r['lost']} lost")
            if not r["n"] or r["n"] < 0.95 * r["sent"] or not r["p99_ms"] < args.p99_ms:
                break
            best = max(best, delivered)
        await client.close()
    finally:
        await client.quit()
    figure(f"sites.{kind}.max-events-per-s-p99-under-{args.p99_ms:.0f}ms", best, "events/s")
    return results


def takeovers(
    collectors: dict[str, Node], web: Node, r: redis.Redis, east_agent: str, rounds: int, lease: float
) -> dict[str, list[float]]:
    """``rounds`` kills of east's holder (blocking: the reactor waits, the processes do not)."""
    import requests

    keys = pbx_keys(PREFIX, "east")
    token = requests.put(
        f"{web.base_url}/pbx/east/agents/{east_agent}", json={"queues": ["team0"]}, timeout=10
    ).json()["token"]
    client = SSEClient()
    client.open(f"{web.base_url}/stream/{token}/sse")
    names = ("kill-to-expiry", "kill-to-login", "kill-to-first-event", "expiry-to-first-event")
    times: dict[str, list[float]] = {name: [] for name in names}
    try:
        wait_for(lambda: len(client.events) >= 5, 30, "events flowing to the east client")
        for n in range(rounds):
            holder = str(r.get(keys.collector))
            other = next(name for name in collectors if name != holder)
            proc = collectors[holder].proc
            assert proc is not None
            proc.kill()
            killed = time.monotonic()
            proc.wait(10)
            t = time_takeover(
                killed,
                client,
                expired=lambda h=holder: r.get(keys.collector) != h,
                last_id=lambda: last_log_id(r, keys.log(east_agent)),
                logged_in=lambda o=other: holds(collectors[o].port, "east"),
                limit=lease + 30,
            )
            times["kill-to-expiry"].append(t.expiry)
            times["kill-to-login"].append(t.login)
            times["kill-to-first-event"].append(t.first)
            times["expiry-to-first-event"].append(t.first - t.expiry)
            note(
                f"round {n + 1}: {holder} killed; expiry {t.expiry:.2f} s, {other} logged in "
                f"{t.login:.2f} s, first event {t.first:.2f} s after the kill"
            )
            collectors[holder].proc = None
            collectors[holder].start()
            # back, it gets one PBX handed over: the next round starts from the spread again
            try:
                wait_for(lambda: _spread(collectors), 30, f"{holder} back, holding one PBX")
            except AssertionError:
                note(f"{holder} back, but no PBX handed over to it within 30 s")
    finally:
        client.close()
    ids = [e["id"] for e in client.events]
    assert ids == list(range(ids[0], ids[-1] + 1)), "a gap or a duplicate"
    note(f"{len(ids)} events to the east client across the takeovers, consecutive ids, none twice")
    return times


def _spread(collectors: dict[str, Node]) -> bool:
    ports = {name: node.port for name, node in collectors.items()}
    holders = [holder_of(ports, pbx) for pbx in PBXES]
    return None not in holders and len(set(holders)) == len(PBXES)


def _answers(node: Node) -> bool:
    """The node's HTTP side is up (a collector holding only some PBXes may say 503)."""
    if node.proc is None or node.proc.poll() is not None:
        raise RuntimeError(f"{node.name} exited: see {node.log}")
    return health(node.port)[0] in (200, 503)


async def run(reactor: Any, args: Any) -> None:
    server = RedisServer().start()
    r = redis.Redis(port=server.port, decode_responses=True)
    sims = {pbx: _Child(reactor, "stack.py", "simulate", str(args.agents)) for pbx in PBXES}
    # each one's first line is its port: wait for both at once (a line nobody waits for is lost)
    said = {pbx: sims[pbx].expect() for pbx in PBXES}
    ports = {pbx: int((await said[pbx]).split()[1]) for pbx in PBXES}
    agents = agent_names(args.agents)
    workdir = Path(tempfile.mkdtemp(prefix="pbxis-sites-"))
    nodes: list[Node] = []
    try:
        single = Node(workdir, "single", site_config(ports, "all", "single", "", args.lease))
        nodes.append(single)
        single.start()
        await single.healthy(reactor)
        await serving(reactor, single, sims)
        alone = await ramp(reactor, "single", single, sims, agents, args)
        single.stop()

        collectors = {
            name: Node(workdir, name, site_config(ports, "collector", name, server.url, args.lease))
            for name in ("c1", "c2")
        }
        web = Node(workdir, "web", site_config(ports, "web", "web", server.url, args.lease))
        nodes += [*collectors.values(), web]
        for node in nodes[1:]:
            node.start()
        for name, node in collectors.items():
            # 200, or 503 while it holds only some of its PBXes: up, either way
            wait_for(lambda n=node: _answers(n), 60, f"{name} answering")
        await web.healthy(reactor)
        await serving(reactor, web, sims)
        held = {pbx: r.get(pbx_keys(PREFIX, pbx).collector) for pbx in PBXES}
        note(f"leases: {held}")
        clustered = await ramp(reactor, "clustered", web, sims, agents, args)
        first = min(set(alone) & set(clustered), default=None)
        if first is not None:
            for p in ("p50", "p99"):
                extra = clustered[first][f"{p}_ms"] - alone[first][f"{p}_ms"]
                figure(f"sites.clustered-minus-single.{first:.0f}-events-per-s.{p}", extra, "ms")
                ratio(
                    f"sites.clustered-vs-single.{first:.0f}-events-per-s.{p}",
                    clustered[first][f"{p}_ms"],
                    alone[first][f"{p}_ms"],
                )

        one = agents[:1]
        drivers = [PauseDriver(_as_daemon(sim, one), args.takeover_rate / 2, one) for sim in sims.values()]
        for driver in drivers:
            await driver.start()
        try:
            rounds = args.repeat or (1 if args.quick else 3)
            times = takeovers(collectors, web, r, agents[0], rounds, args.lease)
        finally:
            for driver in drivers:
                await driver.stop()
        for name, values in times.items():
            figure(f"sites.takeover.{name}.median", statistics.median(values), "s")
            figure(f"sites.takeover.{name}.max", max(values), "s")
        figure("sites.takeover.bound", args.lease + 2, "s")
        over = sum(1 for t in times["kill-to-login"] if t > args.lease + 2)
        figure("sites.takeover.rounds-over-bound", over, "rounds")
        note(f"logs in {workdir}")
    finally:
        for node in nodes:
            node.stop()
        for sim in sims.values():
            await sim.ask("quit")
            await sim.pipe.ended
        r.close()
        server.close()


def _as_daemon(sim: _Child, agents: list[str]) -> Any:
    """What :class:`PauseDriver` reads of a daemon: its simulator and agents."""
    import types

    return types.SimpleNamespace(simulator=sim, agents=agents)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=None, help="agents per PBX, one SSE client each")
    p.add_argument("--rate", type=float, action="append", help="AMI events/s over both PBXes (repeatable)")
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per step")
    p.add_argument("--p99-ms", type=float, default=50.0)
    p.add_argument("--lease", type=float, default=2.0, help="[node] lease_time, seconds")
    p.add_argument("--takeover-rate", type=float, default=40.0, help="AMI events/s during the takeovers")
    p.add_argument("--load-processes", type=int, default=2, help="load client processes")
    args = p.parse_args()
    if args.quick:
        args.agents, args.rate, args.seconds = args.agents or 5, args.rate or [100.0], 0.5
    else:
        args.agents, args.rate = args.agents or 50, args.rate or [500.0, 1000.0, 2000.0, 4000.0, 8000.0]
    note(machine())
    note(
        f"2 PBXes, {args.agents} agents each, one SSE client per agent; steps {args.rate} AMI events/s; "
        f"lease_time {args.lease:g} s"
    )
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
