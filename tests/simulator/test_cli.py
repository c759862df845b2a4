"""The command line: argument parsing and what ``serve`` sets up (on a MemoryReactor)."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from pbxis.simulator.__main__ import build_parser, serve
from pbxis.simulator.config import parse_agents


def test_parse_agents():
    assert parse_agents("1001-1003,2001") == ["1001", "1002", "1003", "2001"]
    assert parse_agents("0098-0100") == ["0098", "0099", "0100"]
    for bad in ("", "1005-1001", "a-b", "1-99999"):
        with pytest.raises(ValueError):
            parse_agents(bad)


def test_serve_listens_and_starts_the_demo_load():
    reactor = MemoryReactorClock()
    args = build_parser().parse_args(["--port", "5099", "--agents", "1001-1005", "--rate", "60"])
    sim = serve(args, reactor)
    ((port, factory, _backlog, interface),) = reactor.tcpServers
    assert (port, interface, factory) == (5099, "127.0.0.1", sim.factory)
    assert [p.exten for p in sim.config.phones] == ["1001", "1002", "1003", "1004", "1005"]
    assert len(sim.pbx.queues["sales"].members) == 5  # logged in from the start
    reactor.advance(120)
    assert any(m.event == "QueueCallerJoin" for m in sim.history)
    sim.shutdown()


def test_serve_lab_without_load():
    reactor = MemoryReactorClock()
    sim = serve(build_parser().parse_args(["--lab", "--rate", "0"]), reactor)
    assert list(sim.pbx.queues) == ["support", "sales"]
    reactor.advance(600)
    assert not sim.history


def test_bad_arguments_exit_with_status_2(capsys):
    from pbxis.simulator.__main__ import main

    assert main(["--agents", "9-1"]) == 2
    assert "bad agent range" in capsys.readouterr().err


def test_serve_asterisk_22_plays_pjsip():
    reactor = MemoryReactorClock()
    sim = serve(
        build_parser().parse_args(["--asterisk", "22", "--agents", "1001-1002", "--rate", "0"]), reactor
    )
    assert sim.config.personality.version == "22.10.1"
    assert sorted(sim.pbx.queues["sales"].members) == ["PJSIP/1001", "PJSIP/1002"]
    assert "sippeers" not in sim.actions and "pjsipshowendpoints" in sim.actions
    lab = serve(build_parser().parse_args(["--lab", "--asterisk", "22", "--rate", "0"]), MemoryReactorClock())
    assert lab.config.trunk == "PJSIP/pstn"


def test_chan_sip_on_22_is_refused(capsys):
    from pbxis.simulator.__main__ import main

    assert main(["--asterisk", "22", "--tech", "sip"]) == 2
    assert "chan_sip is gone from Asterisk 21" in capsys.readouterr().err
