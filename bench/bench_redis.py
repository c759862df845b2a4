"""Which Redis client for a Twisted daemon: txredisapi on the epoll reactor, or redis-py's asyncio
client on Twisted's asyncio reactor (issue 15).

Three questions, each answered in its own process so that each installs its own reactor:

* round trip: one command, wait for the answer, again (``GET``), p50/p99 in microseconds;
* pipelined appends: ``XADD`` with explicit ids sent in batches of 200 without waiting,
  appends per second of wall clock and CPU microseconds per append in the client;
* what the asyncio reactor costs everything else the daemon does: 200 loopback TCP
  connections ping-ponging 64-byte messages through Twisted protocols (what the streams
  and the AMI link do), CPU per round trip under each reactor;
* what the Redis store costs the daemon: the hub with 1,000 agents (a client each)
  ingesting 20,000 events, CPU per event with the memory store and with the Redis
  store (its writes to Redis included), and Redis commands per event.

A real ``redis-server`` (Debian's) is started on a free loopback port for the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "redis"))

from common import figure, machine, note, parser, percentile, ratio  # noqa: E402


def _install(reactor_name: str) -> Any:
    if reactor_name == "asyncio":
        import asyncio

        from twisted.internet import asyncioreactor

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        asyncioreactor.install(loop)
    else:
        from twisted.internet import epollreactor

        epollreactor.install()
    from twisted.internet import reactor

    return reactor


def _run(reactor: Any, coro_fn: Any) -> Any:
    from twisted.internet import defer

    out: dict[str, Any] = {}

    def go() -> None:
        d = defer.ensureDeferred(coro_fn())

        def done(result: Any) -> None:
            out["result"] = result
            reactor.stop()

        def failed(f: Any) -> None:
            out["error"] = f.getTraceback()
            reactor.stop()

        d.addCallbacks(done, failed)

    reactor.callWhenRunning(go)
    reactor.run()
    if "error" in out:
        raise RuntimeError(out["error"])
    return out["result"]


def worker_txredisapi(port: int, rtts: int, appends: int) -> dict[str, Any]:
    reactor = _install("epoll")
    import txredisapi  # type: ignore[import-untyped]

    async def main() -> dict[str, Any]:
        conn = await txredisapi.Connection("127.0.0.1", port, dbid=0, reconnect=False)
        await conn.execute_command("DEL", "bench:k", "bench:s")
        await conn.execute_command("SET", "bench:k", "x" * 100)
        samples = []
        for _ in range(rtts):
            t = time.perf_counter()
            await conn.execute_command("GET", "bench:k")
            samples.append(time.perf_counter() - t)
        payload = json.dumps({"type": "queueMemberStatus", "queue": "sales", "status": "inuse"})
        cpu, wall = time.process_time(), time.perf_counter()
        n = 0
        while n < appends:
            pipe = await conn.pipeline()
            for _ in range(200):
                n += 1
                pipe.execute_command("XADD", "bench:s", f"{n}-0", "e", payload)
            await pipe.execute_pipeline()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await conn.disconnect()
        return {"rtt": samples, "appends": appends, "wall": wall, "cpu": cpu}

    return dict(_run(reactor, main))


def worker_redispy(port: int, rtts: int, appends: int) -> dict[str, Any]:
    reactor = _install("asyncio")
    import redis.asyncio as aioredis
    from twisted.internet import defer

    async def main_aio() -> dict[str, Any]:
        r = aioredis.Redis(host="127.0.0.1", port=port, db=0)
        await r.delete("bench:k", "bench:s")
        await r.set("bench:k", "x" * 100)
        samples = []
        for _ in range(rtts):
            t = time.perf_counter()
            await r.get("bench:k")
            samples.append(time.perf_counter() - t)
        payload = json.dumps({"type": "queueMemberStatus", "queue": "sales", "status": "inuse"})
        cpu, wall = time.process_time(), time.perf_counter()
        n = 0
        while n < appends:
            pipe = r.pipeline(transaction=False)
            for _ in range(200):
                n += 1
                pipe.execute_command("XADD", "bench:s", f"{n}-0", "e", payload)
            await pipe.execute()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await r.aclose()
        return {"rtt": samples, "appends": appends, "wall": wall, "cpu": cpu}

    async def main() -> dict[str, Any]:
        return dict(await defer.Deferred.fromFuture(__import__("asyncio").ensure_future(main_aio())))

    return dict(_run(reactor, main))


def worker_echo(reactor_name: str, connections: int, seconds: float) -> dict[str, Any]:
    reactor = _install(reactor_name)
    from twisted.internet import defer, protocol
    from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint

    message = b"x" * 63 + b"\n"
    counts = {"n": 0}
    running = {"on": True}

    class Echo(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[union-attr]

    class Pinger(protocol.Protocol):
        def connectionMade(self) -> None:
            self.transport.write(message)  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            counts["n"] += 1
            if running["on"]:
                self.transport.write(message)  # type: ignore[union-attr]

    async def main() -> dict[str, Any]:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            protocol.Factory.forProtocol(Echo)
        )
        where = port.getHost().port
        clients = [
            await TCP4ClientEndpoint(reactor, "127.0.0.1", where).connect(
                protocol.Factory.forProtocol(Pinger)
            )
            for _ in range(connections)
        ]
        await _sleep(reactor, 0.5)  # warm up
        counts["n"] = 0
        cpu, wall = time.process_time(), time.perf_counter()
        await _sleep(reactor, seconds)
        n = counts["n"]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        running["on"] = False
        for c in clients:
            c.transport.loseConnection()
        await port.stopListening()
        await _sleep(reactor, 0.1)
        return {"roundtrips": n, "wall": wall, "cpu": cpu}

    async def _sleep(reactor: Any, s: float) -> None:
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(s, d.callback, None)
        await d

    return dict(_run(reactor, main))


def worker_ingest(kind: str, port: int, agents: int, events: int) -> dict[str, Any]:
    """The hub with ``agents`` registered agents, a client each, ``events`` published:
    CPU per event with the memory store, or the Redis store including its writes."""
    reactor = _install("epoll")
    from twisted.internet import task

    from pbxis.config import parse_config
    from pbxis.events import QUEUE_MEMBER_STATUS, AgentEvent
    from pbxis.hub import Hub, MemoryStore
    from pbxis.store.redis_keys import Keys
    from pbxis.store.redis_link import RedisLink
    from pbxis.store.redis_store import RedisStore

    async def main() -> dict[str, Any]:
        link = None
        store: Any = MemoryStore()
        if kind == "redis":
            config = parse_config(
                {"redis": {"url": f"redis://127.0.0.1:{port}/0", "key_prefix": "ingest:"}}
            ).redis
            assert config is not None
            link = RedisLink(config, reactor)
            link.start()
            await link.when_connected(10)
            await link.command("FLUSHDB")
            store = RedisStore(link, Keys("ingest:"), reactor)
            await store.load()
        hub = Hub(reactor, grace_period=300, snapshot=lambda a: [], store=store)
        names = [str(2000 + i) for i in range(agents)]
        for name in names:
            sub = hub.subscribe(hub.register(name, ["sales"]), None, "sse", lambda es: None, lambda r: None)
            sub.resumeProducing()
        publish = hub.publish if link is None else (lambda evs: hub.publish(store.only_changes(evs)))
        if link is not None:
            await store.drain(30)
        cpu = time.process_time()
        for i in range(events):
            data = {"queue": "sales", "status": "inuse", "paused": bool(i % 2), "pausedReason": str(i)}
            publish([AgentEvent(names[i % agents], QUEUE_MEMBER_STATUS, i, data)])
            if i % 50 == 0:
                await task.deferLater(reactor, 0, lambda: None)  # reactor turns, as AMI reads give
        commands = 0
        if link is not None:
            await store.drain(120)
            commands = link.sent_commands
            await link.stop()
        return {"cpu": time.process_time() - cpu, "events": events, "commands": commands}

    return dict(_run(reactor, main))


def _spawn(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--worker", nargs="+", help=argparse_hidden())
    args = p.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "txredisapi":
            result = worker_txredisapi(int(rest[0]), int(rest[1]), int(rest[2]))
        elif kind == "redispy":
            result = worker_redispy(int(rest[0]), int(rest[1]), int(rest[2]))
        elif kind == "ingest":
            result = worker_ingest(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
        else:
            result = worker_echo(rest[0], int(rest[1]), float(rest[2]))
        print(json.dumps(result))
        return

    from redis_proc import RedisServer

    rtts, appends = (300, 2000) if args.quick else (5000, 100_000)
    conns, seconds = (20, 0.5) if args.quick else (200, 3.0)
    repeat = args.repeat or (1 if args.quick else 3)
    note(machine())
    results: dict[str, list[dict[str, Any]]] = {}
    agents, events = (100, 2000) if args.quick else (1000, 20_000)
    with RedisServer() as server:
        for _ in range(repeat):
            for kind in ("txredisapi", "redispy"):
                results.setdefault(kind, []).append(_spawn(kind, str(server.port), str(rtts), str(appends)))
            for store in ("memory", "redis"):
                results.setdefault(f"ingest-{store}", []).append(
                    _spawn("ingest", store, str(server.port), str(agents), str(events))
                )
    for reactor_name in ("epoll", "asyncio"):
        for _ in range(repeat):
            results.setdefault(f"echo-{reactor_name}", []).append(
                _spawn("echo", reactor_name, str(conns), str(seconds))
            )

    best: dict[str, dict[str, float]] = {}
    for kind in ("txredisapi", "redispy"):
        runs = results[kind]
        rtt = min(runs, key=lambda r: percentile(sorted(r["rtt"]), 0.5))["rtt"]
        rtt_sorted = sorted(rtt)
        fastest = min(runs, key=lambda r: r["wall"])
        best[kind] = {
            "p50": percentile(rtt_sorted, 0.5) * 1e6,
            "p99": percentile(rtt_sorted, 0.99) * 1e6,
            "rate": fastest["appends"] / fastest["wall"],
            "cpu": min(r["cpu"] / r["appends"] for r in runs) * 1e6,
        }
        label = "txredisapi-epoll" if kind == "txredisapi" else "redispy-asyncio"
        figure(f"redis.roundtrip.{label}.p50", best[kind]["p50"], "us")
        figure(f"redis.roundtrip.{label}.p99", best[kind]["p99"], "us")
        figure(f"redis.xadd-pipelined.{label}", best[kind]["rate"], "appends/s")
        figure(f"redis.xadd-pipelined.{label}.client-cpu", best[kind]["cpu"], "us/append")
    ratio("redis.xadd-pipelined.txredisapi-vs-redispy", best["txredisapi"]["rate"], best["redispy"]["rate"])
    echo = {}
    for reactor_name in ("epoll", "asyncio"):
        runs = results[f"echo-{reactor_name}"]
        # CPU per round trip: what the reactor costs; the wall-clock rate also counts
        # the time slices of whatever else shares the machine
        echo[reactor_name] = min(r["cpu"] / r["roundtrips"] for r in runs) * 1e6
        figure(f"reactor.tcp-pingpong.{reactor_name}.cpu", echo[reactor_name], "us/roundtrip")
        figure(
            f"reactor.tcp-pingpong.{reactor_name}.rate",
            max(r["roundtrips"] / r["wall"] for r in runs),
            "roundtrips/s",
        )
    ratio("reactor.tcp-pingpong.cpu.asyncio-vs-epoll", echo["asyncio"], echo["epoll"])
    ingest = {}
    for store in ("memory", "redis"):
        runs = results[f"ingest-{store}"]
        ingest[store] = min(r["cpu"] / r["events"] for r in runs) * 1e6
        figure(f"store.ingest.{store}.{agents}-agents.cpu", ingest[store], "us/AMI event")
    best_redis = min(results["ingest-redis"], key=lambda r: r["cpu"])
    figure(
        f"store.ingest.redis.{agents}-agents.commands",
        best_redis["commands"] / best_redis["events"],
        "per AMI event",
    )
    ratio("store.ingest.cpu.redis-vs-memory", ingest["redis"], ingest["memory"])


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
