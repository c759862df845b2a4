"""The library API: a CallCenter on the simulated Asterisk over real TCP (pbxis.testing)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

import pbxis
from pbxis.engine import Caller
from pbxis.testing import SimulatedCallCenter, simulated_call_center

DEADLINE = 8.0


async def until(predicate: Callable[[], Any], what: str = "") -> Any:
    """Poll ``predicate`` on the reactor (real time, bounded) until it is truthy."""
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
    s = await simulated_call_center(reactor, agents=["1001", "1002"], queues=["sales", "support"])
    try:
        yield s
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_listener_gets_snapshot_then_live_events_as_contract_dicts(sim: SimulatedCallCenter) -> None:
    center = sim.center
    seen: list[dict[str, Any]] = []
    registration = center.register_agent("1001", ["sales"], name="Alice", listeners=[seen.append])
    assert (registration.agent, registration.pbx, registration.queues) == ("1001", "default", ("sales",))
    assert len(registration.token) >= 22
    await until(lambda: of(seen, "queueCount", queue="sales"), "the snapshot")
    assert seen[0]["type"] in {"extensionStatus", "queueMemberStatus", "queueCount"}
    await center.queue_action("1001", "sales", "login")
    await center.queue_action("1001", "sales", "pause", reason="lunch")
    await until(lambda: of(seen, "queueMemberStatus", paused=True), "the pause")
    (paused,) = of(seen, "queueMemberStatus", paused=True)
    assert paused["pausedReason"] == "lunch" and paused["loggedIn"] is True
    assert set(paused) >= {"id", "type", "agent", "time", "queue", "status"}
    ids = [e["id"] for e in seen]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "ids are consecutive"
    state = center.agent_state("1001")
    assert state["queues"]["sales"]["paused"] is True
    assert "sales" in center.queues()["queues"]


@pytest_twisted.ensureDeferred
async def test_each_listener_gets_its_own_dict_and_a_failing_one_harms_nobody(
    sim: SimulatedCallCenter,
) -> None:
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []

    def meddler(event: dict[str, Any]) -> None:
        event["type"] = "scribbled"
        raise RuntimeError("a listener bug")

    sim.center.register_agent("1001", ["sales"], listeners=[meddler, first.append, second.append])
    await until(lambda: of(second, "queueCount"), "the snapshot")
    assert first == second and not of(first, "scribbled")


@pytest_twisted.ensureDeferred
async def test_originate_and_its_failure_reach_the_listener(sim: SimulatedCallCenter) -> None:
    seen: list[dict[str, Any]] = []
    sim.center.register_agent("1002", [], listeners=[seen.append])
    sim.simulator.set_phone("1002", "busy")
    action_id = await sim.center.originate("1002", "0911234567")
    assert action_id.startswith("originate-")
    (failed,) = await until(lambda: of(seen, "originateFailed", actionId=action_id), "originateFailed")
    assert failed["reason"] == "busy" and failed["number"] == "0911234567"


@pytest_twisted.ensureDeferred
async def test_typed_queue_errors(sim: SimulatedCallCenter) -> None:
    center = sim.center
    center.register_agent("1001", ["sales"])
    await center.queue_action("1001", "sales", "login", penalty=1, member_name="Alice")
    with pytest.raises(pbxis.AlreadyLoggedIn):
        await center.queue_action("1001", "sales", "login")
    await center.queue_action("1001", "sales", "logoff")
    with pytest.raises(pbxis.NotLoggedIn):
        await center.queue_action("1001", "sales", "logoff")
    with pytest.raises(pbxis.UnknownQueue):
        await center.queue_action("1001", "nosuchqueue", "login")
    with pytest.raises(pbxis.InvalidArgument):
        await center.queue_action("1001", "sales", "dance")
    with pytest.raises(pbxis.InvalidArgument):
        await center.queue_action("1001", "sales", "logoff", reason="x")
    with pytest.raises(pbxis.InvalidArgument):
        await center.queue_action("1001", "sales", "login", penalty=-1)
    with pytest.raises(pbxis.UnknownPbx):
        await center.queue_action("1001", "sales", "login", pbx="elsewhere")
    with pytest.raises(pbxis.UnknownAgent):
        await center.originate("1003", "0911")  # not registered
    with pytest.raises(pbxis.UnknownAgent):
        center.agent_state("1003")


@pytest_twisted.ensureDeferred
async def test_agent_caller_acts_on_its_registered_queues_only(sim: SimulatedCallCenter) -> None:
    center = sim.center
    center.register_agent("1001", ["sales"])
    with pytest.raises(pbxis.Forbidden):
        await center.queue_action("1001", "support", "login", caller=Caller.AGENT)
    await center.queue_action("1001", "sales", "login", caller=Caller.AGENT)
    await center.queue_action("1001", "support", "login")  # the CRM keeps full power


@pytest_twisted.ensureDeferred
async def test_sink_resumes_exactly_once_and_close_detaches(sim: SimulatedCallCenter) -> None:
    center = sim.center
    center.register_agent("1001", ["sales"])
    first: list[dict[str, Any]] = []
    handle = center.attach_sink("1001", first.append)
    await until(lambda: of(first, "queueCount"), "the snapshot")
    handle.close()
    assert not handle.active
    last = first[-1]["id"]
    await center.queue_action("1001", "sales", "login")
    await task.deferLater(reactor, 0.2, lambda: None)
    assert first[-1]["id"] == last, "a closed sink is called no more"
    again: list[dict[str, Any]] = []
    center.attach_sink("1001", again.append, since=last)
    await until(lambda: of(again, "queueMemberStatus", loggedIn=True), "the missed login")
    assert again[0]["id"] == last + 1
    assert not of(again, "reset")
    gone: list[dict[str, Any]] = []
    center.attach_sink("1001", gone.append, since=10**9)
    await until(lambda: gone, "the reset")
    assert gone[0]["type"] == "reset"


@pytest_twisted.ensureDeferred
async def test_unregister_sends_closed_then_nothing(sim: SimulatedCallCenter) -> None:
    center = sim.center
    seen: list[dict[str, Any]] = []
    center.register_agent("1001", ["sales"], listeners=[seen.append])
    await until(lambda: of(seen, "queueCount"), "the snapshot")
    center.unregister_agent("1001")
    assert seen[-1]["type"] == "closed" and seen[-1]["reason"] == "unregistered"
    with pytest.raises(pbxis.UnknownAgent):
        center.unregister_agent("1001")
    with pytest.raises(pbxis.UnknownAgent):
        center.attach_sink("1001", seen.append)


@pytest_twisted.ensureDeferred
async def test_disconnect_calls_nobody_afterwards_and_fails_commands() -> None:
    s = await simulated_call_center(reactor, agents=["1001"], queues=["sales"])
    seen: list[dict[str, Any]] = []
    s.center.register_agent("1001", ["sales"], listeners=[seen.append])
    await until(lambda: of(seen, "queueCount"), "the snapshot")
    await s.stop()
    count = len(seen)
    assert not s.center.connected
    await until(lambda: not s.simulator.sessions, "Asterisk no longer listing the session")
    with pytest.raises(pbxis.PbxUnavailable):
        await s.center.queue_action("1001", "sales", "login")
    await task.deferLater(reactor, 0.1, lambda: None)
    assert len(seen) == count


def test_bad_names_are_refused_before_anything_happens() -> None:
    from pbxis.config import parse_config
    from pbxis.engine import CallCenter

    center = CallCenter(task.Clock(), parse_config({"ami": {}}))
    for agent in ("", "..", "a/b", "x" * 33, "1001\n"):
        with pytest.raises(pbxis.InvalidArgument):
            center.register_agent(agent, [])
    with pytest.raises(pbxis.InvalidArgument):
        center.register_agent("1001", "sales")  # one string is not a list
    with pytest.raises(pbxis.InvalidArgument):
        center.register_agent("1001", ["no such/queue"])
    assert center.hub.stats()["agents"] == 0


@pytest_twisted.ensureDeferred
async def test_connect_errbacks_with_config_error_naming_the_key() -> None:
    with pytest.raises(pbxis.ConfigError, match=r"\[ami\]\.port"):
        await pbxis.connect(reactor, {"ami": {"port": "five"}})
    with pytest.raises(pbxis.ConfigError, match="no such file"):
        await pbxis.connect(reactor, "/nonexistent/pbxis.toml")
    # durable state asked for, memory it would be: refused, never silently ignored
    with pytest.raises(pbxis.ConfigError, match=r"^\[redis\]: pbxis.connect keeps its state in memory"):
        await pbxis.connect(reactor, {"redis": {"url": "redis://127.0.0.1:1"}})


@pytest_twisted.ensureDeferred
async def test_the_library_on_a_simulated_asterisk_22() -> None:
    """``simulated_call_center(asterisk="22")``: PJSIP endpoints, the same agent events."""
    s = await simulated_call_center(reactor, agents=["1001"], queues=["sales"], asterisk="22")
    try:
        seen: list[dict[str, Any]] = []
        s.center.register_agent("1001", ["sales"], listeners=[seen.append])
        await s.center.queue_action("1001", "sales", "login")
        await until(lambda: of(seen, "queueMemberStatus", loggedIn=True), "the login")
        assert list(s.simulator.pbx.queues["sales"].members) == ["PJSIP/1001"]
        s.simulator.set_phone("1001", "busy")
        await s.center.originate("1001", "0911234567")
        await until(lambda: of(seen, "originateFailed"), "the failed originate")
        assert of(seen, "originateFailed")[0]["reason"] == "busy"
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_originate_variable_names_are_checked_as_over_http(sim: SimulatedCallCenter) -> None:
    """Over HTTP a variable name is 1 to 64 of ``A-Za-z0-9_``; the library let any name
    through, and Asterisk splits a ``Variable`` header on commas: ``{"A=1,__B": "x"}``
    set an inherited ``__B`` the caller never named."""
    sim.center.register_agent("1001", ["sales"])
    for bad in ("A=1,__B", "A,B", "", "1A", "A B", 7):
        with pytest.raises(pbxis.InvalidArgument):
            await sim.center.originate("1001", "0911", variables={bad: "x"})  # type: ignore[dict-item]
    with pytest.raises(pbxis.InvalidArgument):
        await sim.center.originate("1001", "0911", variables={"A": 5})  # type: ignore[dict-item]
    assert await sim.center.originate("1001", "0911", variables={"CRM_TICKET": "4,711"})
