"""Shared fixtures: the daemon in demo mode against its simulator (see :mod:`tests.support.stack`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

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
