"""The simulator's Asterisk 22 / PJSIP personality over real loopback TCP.

Values are the ones ``shared/ami/captures-pjsip22`` shows (banner, CoreSettings,
SIPpeers refused, the endpoint list, busy originates); the scenario-by-scenario replay
is ``test_fidelity``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from pbxis.simulator import Simulator, SimulatorConfig
from pbxis.simulator.config import PhoneConfig
from pbxis.simulator.personality import ASTERISK_20, ASTERISK_22, personality
from tests.simulator.sim_helpers import Loopback, event, response_to


@pytest.fixture
def loopback22(clock: Clock) -> Iterator[Loopback]:
    sim = Simulator(SimulatorConfig.lab(ASTERISK_22), clock=clock, seed=7)
    lb = Loopback(sim, clock)
    yield lb
    pytest_twisted.blockon(lb.close())


def test_personality_lookup_and_refusals() -> None:
    assert personality("22", "pjsip") is ASTERISK_22
    assert personality("22") is ASTERISK_22
    assert personality("20.20.1", "SIP") is ASTERISK_20
    with pytest.raises(ValueError, match="chan_sip is gone from Asterisk 21"):
        personality("22", "sip")
    with pytest.raises(ValueError, match="there is Asterisk 20 with sip, Asterisk 22 with pjsip"):
        personality("20", "pjsip")


def test_lab_22_uses_pjsip_everywhere() -> None:
    config = SimulatorConfig.lab(ASTERISK_22)
    assert [p.device for p in config.phones] == ["PJSIP/1001", "PJSIP/1002", "PJSIP/1003", "PJSIP/1009"]
    assert config.trunk == "PJSIP/pstn"
    assert config.queues[1].members[0].interface == "PJSIP/1003"
    assert config.version == "22.10.1"
    demo = SimulatorConfig.demo(agents=["7"], personality=ASTERISK_22)
    assert demo.persisted[0][1].interface == "PJSIP/7"


def test_a_config_mixing_drivers_is_refused() -> None:
    with pytest.raises(ValueError, match="phones and trunk must be PJSIP/"):
        SimulatorConfig(
            phones=(PhoneConfig("1001", "A"),), queues=(), trunk="PJSIP/pstn", personality=ASTERISK_22
        )


@pytest_twisted.inlineCallbacks
def test_banner_core_settings_and_the_action_set(loopback22):
    client = yield loopback22.connect()
    assert client.raw.startswith(b"Asterisk Call Manager/11.0.0\r\n")
    client.action("CoreSettings", ActionID="cs")
    settings = yield client.wait_for(response_to("cs"))
    assert (settings["AMIversion"], settings["AsteriskVersion"]) == ("11.0.0", "22.10.1")
    client.action("SIPpeers", ActionID="sp")
    refused = yield client.wait_for(response_to("sp"))
    assert refused["Response"] == "Error"
    assert refused["Message"] == (
        "Invalid/unknown command: SIPpeers. Use Action: ListCommands to show available commands."
    )
    client.action("PJSIPShowContacts", ActionID="pc")
    assert (yield client.wait_for(response_to("pc")))["Message"] == "No Contacts found"
    client.action("PJSIPShowEndpoints", ActionID="pe")
    yield client.wait_for(event("EndpointListComplete"))
    items = [m for m in client.messages if m.event == "EndpointList"]
    assert [m["ObjectName"] for m in items] == ["1001", "1002", "1003", "1009", "pstn"]
    assert items[0]["Contacts"] == "1001/sip:1001@127.0.0.1:5071,"
    assert items[0]["DeviceState"] == "Not in use"
    complete = next(m for m in client.messages if m.event == "EndpointListComplete")
    assert complete["ListItems"] == "5"


@pytest_twisted.inlineCallbacks
def test_chan_sip_lab_has_no_pjsip_actions(loopback):
    client = yield loopback.connect()
    client.action("PJSIPShowEndpoints", ActionID="pe")
    resp = yield client.wait_for(response_to("pe"))
    assert resp["Response"] == "Error"
    client.action("SIPpeers", ActionID="sp")
    yield client.wait_for(event("PeerlistComplete"))


@pytest_twisted.inlineCallbacks
def test_busy_originate_is_reason_0_with_busy_in_dial_end_and_hangup(loopback22):
    client = yield loopback22.connect()
    client.action("Originate", ActionID="o", Channel="PJSIP/1009", Context="agents",
                  Exten="0911234567", Priority="1", Async="true")  # fmt: skip
    response = yield client.wait_for(event("OriginateResponse"))
    yield client.wait_for(event("Hangup"))
    assert (response["Response"], response["Reason"]) == ("Failure", "0")
    names = [m.event for m in client.messages if m.event]
    assert names.index("HangupRequest") < names.index("OriginateResponse") < names.index("DialEnd")
    assert "ExtensionStatus" not in names  # the phone never rang
    request = next(m for m in client.messages if m.event == "HangupRequest")
    hangup = next(m for m in client.messages if m.event == "Hangup")
    dial_end = next(m for m in client.messages if m.event == "DialEnd")
    assert (request["Cause"], request["TechCause"]) == ("17", "486")
    assert (hangup["Cause"], hangup["TechCause"], hangup["Exten"]) == ("17", "486", "s")
    assert dial_end["DialStatus"] == "BUSY"


@pytest_twisted.inlineCallbacks
def test_click_to_call_dials_number_at_trunk_and_updates_connected_line(loopback22):
    client = yield loopback22.connect()
    client.action("Originate", ActionID="c2c", Channel="PJSIP/1001", Context="agents",
                  Exten="0911234567", Priority="1", Async="true")  # fmt: skip
    yield client.wait_for(response_to("c2c"))
    for _ in range(20):
        loopback22.clock.advance(0.25)
    begin = yield client.wait_for(event("DialBegin", DialString="0911234567@pstn"))
    agent = begin["Channel"]
    assert agent.startswith("PJSIP/1001-") and begin["DestChannel"].startswith("PJSIP/pstn-")
    line = yield client.wait_for(event("NewConnectedLine", Channel=agent))
    assert line["ConnectedLineNum"] == "0911234567"
    dial = next(m for m in client.messages if m.event == "DialEnd" and m.get("DestChannel") == agent)
    assert dial["DestExten"] == "s"  # an originated channel starts at exten s on 22


@pytest_twisted.inlineCallbacks
def test_restart_sends_no_empty_hint_statuses(loopback22):
    loopback22.sim.restart()
    loopback22.clock.advance(0.1)
    client = yield loopback22.connect()
    loopback22.clock.advance(loopback22.sim.config.boot_time)
    booted = yield client.wait_for(event("FullyBooted"))
    assert booted.keys() == ["Event", "Privilege", "Uptime", "LastReload", "Status"]
    assert not [m for m in client.messages if m.event in ("ExtensionStatus", "VarSet")]


def test_late_agent_complete_has_no_caller_channel(clock: Clock) -> None:
    sim = Simulator(SimulatorConfig.lab(ASTERISK_22), clock=clock, seed=3)
    sim.pbx.late_agent_complete = True
    sim.queue_add("support", "PJSIP/1001", name="Agent 1001", state_interface="PJSIP/1001")
    sim.customer_call("support", talk_time=2.0)
    for _ in range(40):
        clock.advance(0.25)
    complete = [m for m in sim.history if m.event == "AgentComplete"]
    assert len(complete) == 1
    assert complete[0].get("Channel") is None and complete[0].get("Uniqueid") is None
    assert complete[0]["DestChannel"].startswith("PJSIP/1001-")
    names = [m.event for m in sim.history]
    caller_gone = max(i for i, m in enumerate(sim.history) if m.event == "Hangup" and ";2" in m["Channel"])
    assert caller_gone < names.index("AgentComplete")
    sim.shutdown()
