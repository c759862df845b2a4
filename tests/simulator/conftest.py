"""Fixtures for the simulator tests (helpers live in ``sim_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from pbxis.simulator import Simulator, SimulatorConfig
from tests.simulator.sim_helpers import Loopback


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(1000)
    return c


@pytest.fixture
def sim(clock: Clock) -> Iterator[Simulator]:
    s = Simulator(SimulatorConfig.lab(), clock=clock, seed=7)
    yield s
    s.shutdown()


@pytest.fixture
def loopback(sim: Simulator, clock: Clock) -> Iterator[Loopback]:
    lb = Loopback(sim, clock)
    yield lb
    pytest_twisted.blockon(lb.close())
