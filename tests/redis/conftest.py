"""A real redis-server per test module (no mocks), and a clean key space per test."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_twisted

from pbxis.config import RedisConfig, parse_config
from pbxis.store.redis_link import RedisLink
from tests.redis.redis_proc import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


_prefixes = itertools.count(1)


@pytest.fixture
def prefix() -> str:
    """A key prefix of its own per test: one server, no test sees another's keys."""
    return f"t{next(_prefixes)}:"


@pytest.fixture
def redis_config(redis_server: RedisServer, prefix: str) -> RedisConfig:
    config = parse_config({"redis": {"url": redis_server.url, "key_prefix": prefix, "command_timeout": 2}})
    assert config.redis is not None
    return config.redis


@pytest_twisted.async_yield_fixture
async def link(redis_config: RedisConfig) -> AsyncIterator[RedisLink]:
    """A connected :class:`RedisLink` on the global reactor."""
    from twisted.internet import reactor

    lk = RedisLink(redis_config, reactor)
    lk.start()
    await lk.when_connected(timeout=10)
    try:
        yield lk
    finally:
        await lk.stop()


@pytest_twisted.async_yield_fixture
async def second_link(redis_config: RedisConfig) -> AsyncIterator[RedisLink]:
    """Another connection, standing for another node on the same Redis."""
    from twisted.internet import reactor

    lk = RedisLink(redis_config, reactor, name="second")
    lk.start()
    await lk.when_connected(timeout=10)
    try:
        yield lk
    finally:
        await lk.stop()
