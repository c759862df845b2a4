"""The connection: commands, pipelines, scripts reloaded after NOSCRIPT, fail-fast while down."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from pbxis.config import RedisConfig, parse_config
from pbxis.store.redis_link import RedisError, RedisLink, RedisTimeout, RedisUnavailable, Script
from tests.redis.redis_proc import RedisServer


@pytest_twisted.ensureDeferred
async def test_command_pipeline_and_error_answers(link: RedisLink, prefix: str) -> None:
    assert await link.command("SET", prefix + "a", "1001") == "OK"
    # numbers stay strings: an agent called 1001 is not the integer 1001
    assert await link.command("GET", prefix + "a") == "1001"
    replies = await link.pipeline(
        [("INCR", prefix + "n"), ("INCR", prefix + "n"), ("HGET", prefix + "a", "x")]
    )
    assert replies[:2] == [1, 2]
    assert isinstance(replies[2], RedisError) and "WRONGTYPE" in str(replies[2])
    with pytest.raises(RedisError):
        await link.command("NOSUCHCOMMAND")
    # the connection is still aligned after the error
    assert await link.command("GET", prefix + "a") == "1001"


@pytest_twisted.ensureDeferred
async def test_script_is_loaded_again_after_script_flush(link: RedisLink, prefix: str) -> None:
    script = Script("t", "return redis.call('INCR', KEYS[1])")
    assert await link.script(script, [prefix + "c"], []) == 1
    await link.command("SCRIPT", "FLUSH")
    assert await link.script(script, [prefix + "c"], []) == 2


@pytest_twisted.ensureDeferred
async def test_a_slow_answer_times_out_and_later_replies_stay_in_order(link: RedisLink, prefix: str) -> None:
    slow = link.command("BLPOP", prefix + "empty", "1", timeout=0.2)
    with pytest.raises(RedisTimeout):
        await slow
    # BLPOP's own answer (nil after 1 s) arrives later and must not be taken for this GET's
    await link.command("SET", prefix + "k", "v")
    assert await link.command("GET", prefix + "k") == "v"


@pytest_twisted.ensureDeferred
async def test_down_fails_fast_then_reconnects_with_backoff(prefix: str) -> None:
    server = RedisServer().start()
    try:
        config = parse_config({"redis": {"url": server.url, "key_prefix": prefix}}).redis
        assert config is not None
        lk = RedisLink(config, reactor)
        downs: list[int] = []
        lk.on_down.append(lambda: downs.append(1))
        lk.start()
        await lk.when_connected(timeout=10)
        server.stop()
        await _until(lambda: not lk.connected)
        assert downs == [1]
        with pytest.raises(RedisUnavailable):
            await lk.command("PING")  # at once, not after a timeout
        server.start()
        await lk.when_connected(timeout=15)
        assert await lk.command("PING") == "PONG"
        await lk.stop()
    finally:
        server.close()


@pytest_twisted.ensureDeferred
async def test_password_from_config_and_a_wrong_one_is_reported_without_it(prefix: str) -> None:
    server = RedisServer(password="s3cret-pw").start()
    try:
        good = parse_config({"redis": {"url": server.url}}).redis
        assert good is not None
        lk = RedisLink(good, reactor)
        lk.start()
        await lk.when_connected(timeout=10)
        assert await lk.command("PING") == "PONG"
        await lk.stop()

        bad = parse_config({"redis": {"url": f"redis://:wrong-pw@127.0.0.1:{server.port}/0"}}).redis
        assert isinstance(bad, RedisConfig)
        lk = RedisLink(bad, reactor)
        lk.start()
        await _until(lambda: bool(lk.last_error))
        assert not lk.connected
        assert "wrong-pw" not in lk.last_error and "auth" in lk.last_error.lower()
        await lk.stop()
    finally:
        server.close()


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached")


def test_our_command_encoding_is_txredisapis() -> None:
    import txredisapi

    from pbxis.store.redis_link import encode_command

    p = txredisapi.BaseRedisProtocol()
    for args in [("PING",), ("SET", "k", "välue"), ("XADD", "s", "1-0", "j", '{"id":1}'), ("INCRBY", "n", 5)]:
        assert encode_command(args) == p._build_command(*args)
