"""The whole daemon tuned to recover in milliseconds, for the reliability suite.

A module of its own rather than conftest.py: test modules import these names, and with
pytest's default import mode every directory's conftest is the same module name, so
``from conftest import ...`` picked whichever directory's conftest came first.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.support.stack import Stack, start_stack

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
