"""A PBX's link as its holder publishes it (pbxis.store.redis_status), read by a node
that does not hold it, on a real redis-server; the loops on ``task.Clock``s."""

from __future__ import annotations

import pytest_twisted
from twisted.internet import reactor, task

from pbxis.store.redis_keys import pbx_keys
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_status import StatusReader, StatusWriter, remote_health

LEASE = 0.3


async def answered(reader: StatusReader) -> None:
    for _ in range(200):
        if not reader._asking:
            return
        await task.deferLater(reactor, 0.005, lambda: None)


@pytest_twisted.ensureDeferred
async def test_the_holders_view_is_read_elsewhere_and_lapses_with_its_holder(
    link: RedisLink, second_link: RedisLink, prefix: str
) -> None:
    keys = pbx_keys(prefix, "east")
    holds = [True]
    local = {"connected": True, "state": "logged_in", "synced": True, "reconnects": 2, "lastEventAge": 1.5}
    wclock, rclock = task.Clock(), task.Clock()
    writer = StatusWriter(
        link, keys, "c1", wclock, LEASE, health=lambda: local, holds=lambda: holds[0], wall=lambda: 1000.0
    )
    reader = StatusReader(second_link, keys, rclock, LEASE / 3)
    # before anything is read: unknown, not "nobody holds it"
    assert remote_health(reader)["state"] == "unknown"
    writer.start()
    await task.deferLater(reactor, 0.05, lambda: None)
    reader.start()
    await answered(reader)
    seen = remote_health(reader, wall=lambda: 1001.0)
    assert seen == {"connected": True, "state": "logged_in", "lastEventAge": 2.5, "reconnects": 2,
                    "synced": True, "holder": "c1"}  # fmt: skip
    # the holder stops publishing (it lost the lease, or died): the key lapses in Redis
    holds[0] = False
    wclock.advance(LEASE / 3)
    await task.deferLater(reactor, LEASE + 0.1, lambda: None)
    rclock.advance(LEASE / 3)
    await answered(reader)
    assert remote_health(reader)["state"] == "no_holder" and remote_health(reader)["holder"] is None
    writer.stop()
    reader.stop()
