"""A real redis-server per test module (no mocks), and a clean key space per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_proc import RedisServer


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()
