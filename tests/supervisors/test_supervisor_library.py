"""Supervisors through the library API: a CallCenter on the simulated Asterisk over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

import pbxis
from pbxis.testing import SimulatedCallCenter, simulated_call_center

DEADLINE = 8.0


async def until(predicate: Callable[[], Any], what: str = "") -> Any:
    deadline = reactor.seconds() + DEADLINE
    while not (value := predicate()):
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await task.deferLater(reactor, 0.01, lambda: None)
    return value


def of(events: list[dict[str, Any]], type_: str, **fields: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_ and all(e.get(k) == v for k, v in fields.items())]


@pytest_twisted.async_yield_fixture
async def sim() -> AsyncIterator[SimulatedCallCenter]:
    s = await simulated_call_center(reactor, agents=["1001"], queues=["sales"], logged_in=True)
    try:
        yield s
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_register_supervisor_with_a_listener_then_unregister(sim: SimulatedCallCenter) -> None:
    center = sim.center
    seen: list[dict[str, Any]] = []
    registration = center.register_supervisor("floor", ["sales"], name="Floor", listeners=[seen.append])
    assert (registration.supervisor, registration.pbx, registration.queues) == (
        "floor",
        "default",
        ("sales",),
    )
    await until(lambda: of(seen, "queueMember", agent="1001"), "the loaded member")
    assert all(e["supervisor"] == "floor" for e in seen)
    assert not of(seen, "queueCount")  # the agents' queue states are not a supervisor's
    sim.simulator.customer_call("sales", number="385911112222", name="Eve", talk_time=0.2)
    await until(lambda: [e for e in of(seen, "queueStats") if e["completed"] == 1], "the completed call")
    assert center.supervisor_state("floor")["queues"]["sales"]["stats"]["completed"] == 1
    center.unregister_supervisor("floor")
    assert seen[-1]["type"] == "closed" and seen[-1]["reason"] == "unregistered"
    with pytest.raises(pbxis.UnknownSupervisor):
        center.unregister_supervisor("floor")
    with pytest.raises(pbxis.UnknownSupervisor):
        center.supervisor_state("floor")


def test_bad_arguments_are_typed_errors(sim: SimulatedCallCenter) -> None:
    center = sim.center
    with pytest.raises(pbxis.InvalidArgument, match="supervisor"):
        center.register_supervisor("no spaces", ["sales"])
    with pytest.raises(pbxis.InvalidArgument, match="at least one queue"):
        center.register_supervisor("floor", [])
    with pytest.raises(pbxis.InvalidArgument, match="queues"):
        center.register_supervisor("floor", "sales")
