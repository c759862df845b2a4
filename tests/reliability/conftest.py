"""Fixtures of the reliability suite: the whole daemon tuned to recover in milliseconds.

Small reconnect delays, a one-second keepalive and a simulator that boots and answers
fast keep a hundred faults inside a few seconds; nothing else differs from production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_twisted

from tests.reliability.rel_stack import start_fast
from tests.support.stack import API_KEY, Stack, stop_stack


@pytest_twisted.async_yield_fixture
async def fast_stack() -> AsyncIterator[Stack]:
    s = await start_fast()
    try:
        yield s
    finally:
        await stop_stack(s)


@pytest_twisted.async_yield_fixture
async def secured_fast_stack() -> AsyncIterator[Stack]:
    s = await start_fast(API_KEY)
    try:
        yield s
    finally:
        await stop_stack(s)
