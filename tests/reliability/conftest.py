"""Fixtures of the reliability suite: the whole daemon tuned to recover in milliseconds.

Small reconnect delays, a one-second keepalive and a simulator that boots and answers
fast keep a hundred faults inside a few seconds; nothing else differs from production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted

from pbxis.testing import API_KEY, Stack, start_stack, stop_stack

FAST_AMI: dict[str, Any] = {
    "reconnect_min_delay": 0.01,
    "reconnect_max_delay": 0.05,
    "action_timeout": 2.0,
    "keepalive_interval": 1.0,
    "keepalive_timeout": 0.5,
}


def speed_up(stack: Stack) -> None:
    """Phones answer and Asterisk boots in tens of milliseconds (real time)."""
    sim = stack.simulator
    config = dataclasses.replace(sim.config, boot_time=0.05, trunk_answer_delay=0.02)
    sim.config = sim.pbx.config = config
    for phone in config.phones:
        sim.set_phone(phone.exten, "answer", ring_delay=0.02)


async def start_fast(api_key: str | None = None, **overrides: Any) -> Stack:
    overrides["ami"] = {**FAST_AMI, **overrides.get("ami", {})}
    stack = await start_stack(api_key, **overrides)
    speed_up(stack)
    return stack


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
