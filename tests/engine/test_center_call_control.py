"""Call control through the library API: the CallCenter's own methods, no HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

import pbxis
from pbxis.testing import SimulatedCallCenter, simulated_call_center
from tests.engine.test_center import of, until


@pytest_twisted.async_yield_fixture
async def sim() -> AsyncIterator[SimulatedCallCenter]:
    s = await simulated_call_center(reactor, agents=["1001", "1002"], queues=["sales"])
    try:
        yield s
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_pause_the_recording_and_transfer_with_the_library(sim: SimulatedCallCenter) -> None:
    center = sim.center
    alice: list[dict[str, Any]] = []
    bob: list[dict[str, Any]] = []
    center.register_agent("1001", ["sales"], listeners=[alice.append])
    center.register_agent("1002", ["sales"], listeners=[bob.append])
    await until(lambda: of(alice, "queueCount") and of(bob, "queueCount"), "snapshots")
    with pytest.raises(pbxis.errors.Conflict) as no_call:
        await center.hangup("1001")
    assert no_call.value.code == "no_call"
    await center.queue_action("1001", "sales", "login")
    sim.simulator.customer_call("sales", number="0915550000", talk_time=60.0)
    await until(lambda: of(alice, "extensionStatus", status="inuse"), "1001 talking")

    call = await center.pause_recording("1001")
    assert call.recording and call.recording_paused is False  # the state before the pause
    await until(lambda: of(alice, "recordingStatus", paused=True), "recordingStatus")
    action_id = await center.transfer("1001", "1002")
    assert action_id.startswith("transfer-")
    await until(lambda: of(bob, "phoneNumber", number="0915550000"), "1002 rings with the caller")
    await until(lambda: of(alice, "agentComplete", reason="transfer"), "1001's agentComplete")
    await center.hangup("1002")
    await until(lambda: of(bob, "phoneNumber", number=None), "1002's call ended")


@pytest_twisted.ensureDeferred
async def test_bad_arguments_fail_as_typed_errors(sim: SimulatedCallCenter) -> None:
    center = sim.center
    center.register_agent("1001", ["sales"])
    with pytest.raises(pbxis.errors.InvalidArgument):
        await center.transfer("1001", "10\r\n02")
    with pytest.raises(pbxis.errors.InvalidArgument):
        await center.transfer("1001", "1002", mode="warm")
    with pytest.raises(pbxis.errors.InvalidArgument):
        await center.spy("1001", "1003", mode="peek")
    with pytest.raises(pbxis.errors.UnknownAgent):
        await center.hangup("1009")


@pytest.mark.parametrize("target", ["900123456", "+19005550100", "00900123", "*72"])
@pytest_twisted.ensureDeferred
async def test_a_transfer_is_held_to_the_originate_number_policy(
    sim: SimulatedCallCenter, target: str
) -> None:
    """A blind transfer dials ``to`` on the PBX's bill just as an originate does: an
    agent (its token may transfer) sent its caller to a premium-rate number that
    ``[originate].deny`` refuses for an originate, and no AMI action was refused."""
    center = sim.center
    seen: list[dict[str, Any]] = []
    center.register_agent("1001", ["sales"], listeners=[seen.append])
    await center.queue_action("1001", "sales", "login")
    sim.simulator.customer_call("sales", number="0915550000", talk_time=60.0)
    await until(lambda: of(seen, "extensionStatus", status="inuse"), "1001 talking")
    with pytest.raises(pbxis.errors.NumberNotAllowed):
        await center.transfer("1001", target)
    sent = [m.get("Action") for s in sim.simulator.sessions for m in s.received]
    assert not {"Redirect", "BlindTransfer", "Atxfer"} & set(sent)
