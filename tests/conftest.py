"""Shared fixtures: the daemon in demo mode against its simulator (see :mod:`tests.support.stack`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_twisted

from tests.support.stack import API_KEY, Stack, start_stack, stop_stack


@pytest_twisted.async_yield_fixture
async def stack() -> AsyncIterator[Stack]:
    """The daemon in demo mode with an open API (no keys), ready to take calls."""
    s = await start_stack()
    try:
        yield s
    finally:
        await stop_stack(s)


@pytest_twisted.async_yield_fixture
async def secured_stack() -> AsyncIterator[Stack]:
    """The daemon with an API key configured."""
    s = await start_stack(API_KEY)
    try:
        yield s
    finally:
        await stop_stack(s)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The cluster benches' smoke runs (``cluster_bench``) only under ``make bench-smoke``:
    each starts Redis, simulators and several twistd nodes (about 40 s together), and
    ``make test`` keeps the suite within ten minutes on two cores; the process tests of the
    same clusters (tests/redis/test_redis_takeover.py, test_redis_two_sites.py) stay in it."""
    if os.environ.get("PBXIS_CLUSTER_BENCHES"):
        return
    skip = pytest.mark.skip(reason="a cluster bench's smoke run: make bench-smoke runs it")
    for item in items:
        if item.get_closest_marker("cluster_bench") is not None:
            item.add_marker(skip)
