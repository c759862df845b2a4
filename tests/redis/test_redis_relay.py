"""The engine's seam for commands from a node without AMI, in one process over a real Redis: two
web nodes' CallCenters relay to a collector's (a simulated Asterisk behind it), whose checks and
[originate] policy answer exactly as for a local command, once for all web nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from pbxis.config import RedisConfig, parse_config
from pbxis.engine import CallCenter, Caller
from pbxis.errors import Forbidden, InvalidArgument, NotLoggedIn, RateLimited, UnknownAgent
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_node import RedisNode
from pbxis.testing import simulated_call_center


@pytest_twisted.async_yield_fixture
async def nodes(redis_config: RedisConfig) -> AsyncIterator[tuple[CallCenter, list[CallCenter]]]:
    redis = {"url": redis_config.url, "key_prefix": redis_config.key_prefix}
    sim = await simulated_call_center(
        reactor, agents=["1001", "1002"], config={"originate": {"global_rate": 2, "agent_rate": 0}}
    )
    parts: list[tuple[RedisLink, RedisNode]] = []

    async def node(name: str, role: str) -> RedisNode:
        config = parse_config({"redis": redis, "node": {"role": role, "name": name}, "ami": {}})
        assert config.redis is not None
        link = RedisLink(config.redis, reactor, name=name)
        link.start()
        made = RedisNode(config, link, reactor)
        parts.append((link, made))
        return made

    collector = await node("coll", "collector")
    collector.execute(sim.center.execute_remote)
    webs = []
    for name in ("web-a", "web-b"):
        web = await node(name, "web")
        webs.append(
            CallCenter(reactor, parse_config({"node": {"role": "web"}, "redis": redis}), relay=web.send())
        )
    for link, made in parts:
        made.connect()
        await link.when_connected(10)
        await made.start()
    try:
        yield sim.center, webs
    finally:
        for link, made in parts:
            await made.stop()
            await link.stop()
        await sim.stop()


@pytest_twisted.ensureDeferred
async def test_web_nodes_get_the_collectors_answers_and_share_its_rate_limit(
    nodes: tuple[CallCenter, list[CallCenter]],
) -> None:
    collector, (web_a, web_b) = nodes
    collector.register_agent("1001", ["sales"])
    with pytest.raises(UnknownAgent):
        await web_a.originate("1002", "0911234567")  # registered nowhere
    with pytest.raises(InvalidArgument):
        await web_a.originate("1001", "not a number")  # refused before Redis
    with pytest.raises(Forbidden, match="callerId"):
        await web_a.originate("1001", "0911234567", caller_id="1", caller=Caller.AGENT)
    with pytest.raises(Forbidden, match="registered queues"):
        await web_b.queue_action("1001", "support", "pause", caller=Caller.AGENT)
    with pytest.raises(NotLoggedIn):
        await web_b.queue_action("1001", "sales", "pause", reason="lunch")
    await web_b.queue_action("1001", "sales", "login", penalty=2)
    await web_b.queue_action("1001", "sales", "pause", reason="lunch")
    for _ in range(200):  # the pause reaches the collector's tracker from the simulated Asterisk
        if collector.agent_state("1001")["queues"].get("sales", {}).get("paused"):
            break
        await task.deferLater(reactor, 0.02, lambda: None)
    assert collector.agent_state("1001")["queues"]["sales"]["paused"] is True
    # one global rate limit on the collector, whichever web node asks
    ids = [await web_a.originate("1001", "0911234567"), await web_b.originate("1001", "0911234568")]
    assert all(isinstance(i, str) and i for i in ids) and ids[0] != ids[1]
    with pytest.raises(RateLimited) as limited:
        await web_b.originate("1001", "0911234569")
    assert limited.value.retry_after >= 1
