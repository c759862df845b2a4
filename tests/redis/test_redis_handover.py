"""A collector with two PBXes on Redis hands one over (PbxisService._hand_over) and stands
by for it again with a fresh unit: in one process, on a real redis-server and two
in-process simulators, ``lease_time`` 1 s. Nobody else takes the PBX, so this node takes
it back (no live node to leave it to): what lives on past the old unit must not point
at it (the node set's heartbeat, ``/metrics``)."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import defer, reactor, task

from pbxis.config import RedisConfig, parse_config
from pbxis.simulator import Simulator, SimulatorConfig
from pbxis.simulator.personality import personality
from pbxis.store.redis_keys import pbx_keys
from pbxis.store.redis_link import RedisLink
from pbxis.supervisors import supervisor_key
from tests.support.stack import Stack

USER, SECRET = "pbxis", "handover-secret"


def _sim(seed: int) -> Simulator:
    return Simulator(
        SimulatorConfig.demo(
            agents=["1001"], queues=["sales"], logged_in=False, personality=personality("20")
        ),
        clock=reactor,
        seed=seed,
        username=USER,
        secret=SECRET,
    )


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest_twisted.ensureDeferred
async def test_a_hand_over_of_the_first_pbx_keeps_the_heartbeat_and_the_metrics_current(
    redis_config: RedisConfig, link: RedisLink
) -> None:
    from pbxis.service import PbxisService

    sims = {"east": _sim(1), "west": _sim(2)}
    ports = {pbx: reactor.listenTCP(0, sim.factory, interface="127.0.0.1") for pbx, sim in sims.items()}
    tables = [
        {"name": pbx, "host": "127.0.0.1", "port": port.getHost().port, "username": USER, "secret": SECRET,
         "reconnect_min_delay": 0.05, "reconnect_max_delay": 0.3}
        for pbx, port in ports.items()
    ]  # fmt: skip
    config = parse_config(
        {
            "pbx": tables,
            "redis": {"url": redis_config.url, "key_prefix": redis_config.key_prefix},
            "node": {"role": "collector", "lease_time": 1, "name": "me"},
            "http": {"listen": "tcp:0:interface=127.0.0.1"},
        }
    )
    service = PbxisService(config, reactor)
    exits: list[int] = []
    service.exit = lambda: exits.append(1)
    service.startService()
    stack = Stack(service, None)
    try:

        def holds(pbx: str) -> bool:
            side = service.redis_pbx[pbx]
            return side.lease.valid() and service.center.unit(pbx).ready

        await stack.wait_for(lambda: holds("east") and holds("west"), 10, "both PBXes held")
        await service.center.register_agent_async("1001", ["sales"], pbx="east")
        await service.center.register_supervisor_async("boss", ["sales"], pbx="east")
        old_side, old_unit = service.redis_pbx["east"], service.center.unit("east")
        assert service.redis is old_side  # the first PBX's side: the node-wide things use it
        spread = service.spread.spread
        # not while its store is behind Redis: what is pending would be lost at the release
        old_side.store.health = lambda: {"status": "buffering", "pendingEvents": 3}  # type: ignore[method-assign]
        spread.handing = "east"
        service._hand_over("east")
        assert spread.handing is None and service.redis_pbx["east"] is old_side and holds("east")
        del old_side.store.health
        service._hand_over("east")
        await stack.wait_for(lambda: service.redis_pbx["east"] is not old_side, 10, "the hand-over")
        assert old_unit.ami.protocol_instance is None and not old_side.lease.valid()
        # a planned hand-over is no outage: neither the agent's nor the supervisor's log
        # says pbxStatus false (the next holder's rebuild covers the gap)
        keys = pbx_keys(redis_config.key_prefix, "east")
        for key in ("1001", supervisor_key("boss")):
            entries = await link.command("XRANGE", keys.log(key), "-", "+")
            downs = [e for e in entries if '"connected":false' in e[1][e[1].index("j") + 1]]
            assert not downs, (key, downs)
        # the node set goes on hearing of this node (its membership would lapse otherwise)
        beats = spread.heartbeats
        await stack.wait_for(lambda: spread.heartbeats >= beats + 3, 5, "heartbeats after the hand-over")
        # nobody else took it: this node takes it back, with everything loaded again
        await stack.wait_for(lambda: holds("east"), 15, "east held again")
        await stack.wait_for(lambda: service.center.unit("east").hub.get("1001") is not None, 5, "1001 back")
        await service.center.register_agent_async("1002", ["sales"], pbx="east")  # the fresh hub only
        status, text = await stack.api("GET", "/metrics")
        assert status == 200
        assert _metric(text, "pbxis_redis_up") == 1
        assert _metric(text, "pbxis_agents") == 3  # the fresh hub's 1001, boss, 1002 (the old one: no 1002)
        # a counter: this node took east twice (its renewed side's lease once)
        assert _metric(text, 'pbxis_pbx_lease_takeovers_total{pbx="east"}') == 2
        assert _metric(text, 'pbxis_pbx_lease_takeovers_total{pbx="west"}') == 1
        assert not exits
        # whatever fails in the old side's stop, its lease goes and the node stands by again
        west = service.redis_pbx["west"]

        async def broken() -> None:
            raise RuntimeError("a bug in the read loop's stop")

        west.node.stop = broken  # type: ignore[method-assign]
        service._hand_over("west")
        await stack.wait_for(lambda: service.redis_pbx["west"] is not west, 10, "west handed over")
        assert spread.handing is None and "west" not in spread.held
        assert west.lease._stopped and not west.lease.valid()
        keys_west = pbx_keys(redis_config.key_prefix, "west")
        assert await link.command("GET", keys_west.collector) != "me"
        # a pause past both leases loses both: the process is asked to end once
        service._step_down("east's lease lost")
        service._step_down("west's lease lost")
        await task.deferLater(reactor, 0.01, lambda: None)
        assert exits == [1]
    finally:
        await defer.maybeDeferred(service.stopService)
        for port in ports.values():
            await defer.maybeDeferred(port.stopListening)
        await task.deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_collector_standing_by_for_every_pbx_answers_health_pbx_from_the_holders_status(
    redis_config: RedisConfig, link: RedisLink
) -> None:
    """/health is the node's (standby); /health/pbx/{pbx} is that PBX's, as its holder
    published it (pbxis.store.redis_status), as on a node that holds another PBX."""
    import json

    from pbxis.service import PbxisService

    prefix = redis_config.key_prefix
    for pbx in ("east", "west"):
        await link.command("SET", pbx_keys(prefix, pbx).collector, "other", "PX", 60_000)
    status = {"holder": "other", "connected": True, "state": "connected", "synced": True, "at": 0}
    await link.command("SET", pbx_keys(prefix, "east").status, json.dumps(status), "PX", 60_000)
    tables = [
        {"name": p, "host": "127.0.0.1", "port": 1, "username": USER, "secret": SECRET}
        for p in ("east", "west")
    ]
    config = parse_config(
        {
            "pbx": tables,
            "redis": {"url": redis_config.url, "key_prefix": prefix},
            "node": {"role": "collector", "lease_time": 1, "name": "me"},
            "http": {"listen": "tcp:0:interface=127.0.0.1"},
        }
    )
    service = PbxisService(config, reactor)
    service.exit = lambda: None
    service.startService()
    stack = Stack(service, None)
    try:
        await stack.wait_for(lambda: service.http_port, 5, "listening")
        side = service.redis_pbx["east"]
        await stack.wait_for(lambda: side.lease.holder == "other" and side.status.fresh, 5, "the holder seen")
        code, body = await stack.api("GET", "/health")
        assert code == 200 and body["status"] == "standby", body
        code, body = await stack.api("GET", "/health/pbx/east")
        assert code == 200 and body["pbx"] == "east" and body["status"] == "standby", body
        assert body["holder"] == "other" and body["connected"] is True, body
        code, body = await stack.api("GET", "/health/pbx/west")  # held, but no status published
        assert code == 503 and body["pbx"] == "west", body
    finally:
        await defer.maybeDeferred(service.stopService)
        await task.deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_a_holder_not_logged_in_within_lease_time_tells_its_agents_once(
    redis_config: RedisConfig, link: RedisLink
) -> None:
    """Nobody else would: the vacancy watch sees a holder. pbxStatus false once, then true
    after the login's rebuild (an Asterisk this node cannot reach yet, then can)."""
    from pbxis.service import PbxisService
    from tests.redis.redis_proc import free_port

    port = free_port()  # east: nothing listens there yet
    sim = _sim(3)
    table = {"username": USER, "secret": SECRET, "reconnect_min_delay": 0.05, "reconnect_max_delay": 0.2}
    config = parse_config(
        {
            "ami": {"host": "127.0.0.1", "port": port, **table},
            "redis": {"url": redis_config.url, "key_prefix": redis_config.key_prefix},
            "node": {"role": "collector", "lease_time": 1, "name": "me"},
            "http": {"listen": "tcp:0:interface=127.0.0.1"},
        }
    )
    service = PbxisService(config, reactor)
    service.exit = lambda: None
    service.startService()
    stack = Stack(service, None)
    log_key = pbx_keys(redis_config.key_prefix, "default").log("1001")

    async def statuses() -> list[str]:
        entries = await link.command("XRANGE", log_key, "-", "+")
        return [e[1][e[1].index("j") + 1] for e in entries if "pbxStatus" in e[1]]

    listening = None
    try:
        await stack.wait_for(lambda: service.redis.loaded.called, 5, "the lease and the load")
        await service.center.register_agent_async("1001", ["sales"])
        for _ in range(300):
            if await statuses():
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        shown = await statuses()
        assert len(shown) == 1 and '"connected":false' in shown[0], shown
        listening = reactor.listenTCP(port, sim.factory, interface="127.0.0.1")
        await stack.wait_for(lambda: service.center.ready, 10, "logged in and rebuilt")
        for _ in range(300):
            if len(await statuses()) > 1:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        shown = await statuses()
        assert len(shown) == 2 and '"connected":true' in shown[1], shown
    finally:
        await defer.maybeDeferred(service.stopService)
        if listening is not None:
            await defer.maybeDeferred(listening.stopListening)
        await task.deferLater(reactor, 0.05, lambda: None)
