"""The Python API with several PBXes: ``pbx=`` routes every call to its PBX's unit; an
unknown PBX is the typed ``UnknownPbx``; listeners hear their own PBX only; one PBX
alone is ``default`` and its events say so."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

import pbxis
from pbxis.config import ConfigError, parse_config
from pbxis.engine import CallCenter
from pbxis.simulator import Simulator, SimulatorConfig
from pbxis.simulator.personality import personality
from pbxis.testing import simulated_call_center


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("timed out")
        await task.deferLater(reactor, 0.01, lambda: None)


@pytest_twisted.ensureDeferred
async def test_library_routes_each_call_to_its_pbx() -> None:
    sims, ports, tables = {}, {}, []
    for seed, pbx in enumerate(("east", "west"), start=1):
        sims[pbx] = Simulator(
            SimulatorConfig.demo(
                agents=["1001"], queues=["sales"], logged_in=False, personality=personality("20")
            ),
            clock=reactor,
            seed=seed,
            username="pbxis",
            secret="s3cret",
        )
        ports[pbx] = reactor.listenTCP(0, sims[pbx].factory, interface="127.0.0.1")
        tables.append(
            {"name": pbx, "port": ports[pbx].getHost().port, "username": "pbxis", "secret": "s3cret"}
        )
    center = await pbxis.connect(reactor, {"pbx": tables, "agents": {"interface": "SIP/{agent}"}})
    try:
        assert center.pbxes == ("east", "west")
        heard: dict[str, list[dict[str, Any]]] = {"east": [], "west": []}
        regs = {
            pbx: center.register_agent("1001", ["sales"], pbx=pbx, listeners=[heard[pbx].append])
            for pbx in heard
        }
        assert regs["east"].token != regs["west"].token
        assert center.pbx_of_token(regs["west"].token) == ("west", center.units["west"].hub.get("1001"))
        await center.queue_action("1001", "sales", "login", pbx="west")
        sims["west"].customer_call("sales", number="0933000003", talk_time=0.2)
        await until(lambda: any(e["type"] == "agentComplete" for e in heard["west"]), 15.0)
        assert {e["pbx"] for e in heard["west"]} == {"west"}
        assert {e["pbx"] for e in heard["east"]} == {"east"}
        assert not [e for e in heard["east"] if e["type"] in ("phoneNumber", "agentComplete")]
        assert center.agent_state("1001", pbx="east")["call"] is None
        with pytest.raises(pbxis.UnknownPbx):
            center.register_agent("1001", ["sales"], pbx="north")
        with pytest.raises(pbxis.UnknownPbx):
            center.queues(pbx="north")
        with pytest.raises(pbxis.UnknownPbx):
            await center.queue_action("1001", "sales", "login", pbx="north")
        with pytest.raises(pbxis.UnknownPbx):
            center.register_agent("1001", ["sales"])  # no PBX named default
        center.unregister_agent("1001", pbx="east")
        assert center.registration("1001", pbx="east") is None
        assert center.registration("1001", pbx="west") is not None
    finally:
        await center.disconnect()
        for port in ports.values():
            await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_one_pbx_is_default_and_its_events_say_so() -> None:
    sim = await simulated_call_center(reactor, agents=["1001"], queues=["sales"])
    try:
        heard: list[dict[str, Any]] = []
        reg = sim.center.register_agent("1001", ["sales"], listeners=[heard.append])
        assert reg.pbx == "default" and sim.center.pbxes == ("default",)
        await until(lambda: any(e["type"] == "queueCount" for e in heard))
        assert heard and {e["pbx"] for e in heard} == {"default"}
    finally:
        await sim.stop()


def test_a_test_link_serves_one_pbx_only() -> None:
    config = parse_config({"pbx": [{"name": "east"}, {"name": "west", "port": 5039}]})
    with pytest.raises(ConfigError):
        CallCenter(reactor, config, link=object())  # type: ignore[arg-type]
