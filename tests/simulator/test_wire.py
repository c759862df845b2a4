"""The AMI wire over real loopback TCP: banner, login, Ping, Logoff, bad input."""

from __future__ import annotations

import hashlib

import pytest_twisted

from pbxis.ami.message import Message
from tests.simulator.sim_helpers import event, response_to


@pytest_twisted.inlineCallbacks
def test_banner_plain_login_and_fully_booted(loopback):
    client = yield loopback.connect(login=False)
    client.action("Login", ActionID="1", Username="pbxis", Secret="pbxis-secret")
    resp = yield client.wait_for(response_to("1"))
    booted = yield client.wait_for(event("FullyBooted"))
    assert client.raw.startswith(b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\n")
    assert resp.headers == (
        ("Response", "Success"),
        ("ActionID", "1"),
        ("Message", "Authentication accepted"),
    )
    assert booted.keys() == ["Event", "Privilege", "Uptime", "LastReload", "Status"]
    assert booted["Privilege"] == "system,all"


@pytest_twisted.inlineCallbacks
def test_md5_challenge_login(loopback):
    client = yield loopback.connect(login=False)
    client.action("Challenge", ActionID="c", AuthType="MD5")
    challenge = (yield client.wait_for(response_to("c")))["Challenge"]
    key = hashlib.md5((challenge + "pbxis-secret").encode()).hexdigest()
    client.action("Login", ActionID="l", AuthType="MD5", Username="pbxis", Key=key)
    resp = yield client.wait_for(response_to("l"))
    assert resp["Message"] == "Authentication accepted"


@pytest_twisted.inlineCallbacks
def test_challenge_needs_authtype(loopback):
    client = yield loopback.connect(login=False)
    client.action("Challenge", ActionID="c")
    resp = yield client.wait_for(response_to("c"))
    assert (resp.response, resp["Message"]) == ("Error", "Must specify AuthType")


@pytest_twisted.inlineCallbacks
def test_failed_login_waits_one_second_then_closes(loopback):
    client = yield loopback.connect(login=False)
    client.action("Login", ActionID="bad", Username="pbxis", Secret="wrong")
    yield client.wait_for(lambda m: False, timeout=0.05).addErrback(lambda _: None)
    assert client.messages == []  # nothing before the 1 s delay on the simulator's clock
    loopback.clock.advance(1.0)
    resp = yield client.wait_for(response_to("bad"))
    assert (resp.response, resp["Message"]) == ("Error", "Authentication failed")
    yield client.lost


@pytest_twisted.inlineCallbacks
def test_ping_and_logoff(loopback):
    client = yield loopback.connect()
    client.action("Ping", ActionID="p")
    pong = yield client.wait_for(response_to("p"))
    assert pong.keys() == ["Response", "ActionID", "Ping", "Timestamp"]
    client.action("Logoff", ActionID="bye")
    bye = yield client.wait_for(response_to("bye"))
    assert (bye.response, bye["Message"]) == ("Goodbye", "Thanks for all the fish.")
    yield client.lost


@pytest_twisted.inlineCallbacks
def test_errors_before_login_and_for_unknown_actions(loopback):
    client = yield loopback.connect(login=False)
    client.action("QueueStatus", ActionID="q")
    denied = yield client.wait_for(response_to("q"))
    assert denied["Message"] == "Permission denied"
    client.send(ActionID="noaction", Foo="bar")
    missing = yield client.wait_for(response_to("noaction"))
    assert missing["Message"] == "Missing action in request"
    client.action("Login", ActionID="l", Username="pbxis", Secret="pbxis-secret")
    yield client.wait_for(response_to("l"))
    client.action("Login", ActionID="again", Username="pbxis", Secret="pbxis-secret")
    again = yield client.wait_for(response_to("again"))
    assert again["Message"] == "Already authenticated"
    client.action("NoSuchThing", ActionID="x")
    unknown = yield client.wait_for(response_to("x"))
    assert unknown.response == "Error"
    assert unknown["Message"].startswith("Invalid/unknown command: NoSuchThing.")


@pytest_twisted.inlineCallbacks
def test_endless_garbage_from_a_client_closes_only_that_session(loopback):
    bad = yield loopback.connect()
    good = yield loopback.connect()
    bad.transport.write(b"x" * (200 * 1024))  # never a blank line: not AMI
    yield bad.lost
    good.action("Ping", ActionID="still")
    yield good.wait_for(response_to("still"))


@pytest_twisted.inlineCallbacks
def test_events_are_filtered_per_session(loopback):
    plain = yield loopback.connect()
    filtered = yield loopback.connect()
    filtered.action("Filter", ActionID="f", Operation="Add", MatchCriteria="name(QueueMemberPause)")
    yield filtered.wait_for(response_to("f"))
    plain.action("QueuePause", ActionID="p", Interface="SIP/1003", Paused="true", Reason="Tea")
    yield plain.wait_for(event("DeviceStateChange", Device="Queue:sales_pause_SIP/1003"))
    pause = yield filtered.wait_for(event("QueueMemberPause"))
    assert pause["PausedReason"] == "Tea"
    yield plain.wait_for(event("QueueMemberPause"))
    assert [m.event for m in filtered.messages if m.event] == ["FullyBooted", "QueueMemberPause"]


@pytest_twisted.inlineCallbacks
def test_unauthenticated_session_is_closed_after_authtimeout(loopback):
    idle = yield loopback.connect(login=False)
    busy = yield loopback.connect()
    loopback.clock.advance(loopback.sim.config.auth_timeout)
    yield idle.lost
    busy.action("Ping", ActionID="alive")
    yield busy.wait_for(response_to("alive"))


@pytest_twisted.inlineCallbacks
def test_thousands_of_pipelined_actions_are_answered_in_order(loopback):
    # One read carrying 2,000 actions: the session must drain its queue without
    # recursing once per action (that overflowed the stack at ~1,000).
    client = yield loopback.connect()
    client.transport.write(
        b"".join(Message([("Action", "Ping"), ("ActionID", f"p{i}")]).to_bytes() for i in range(2000))
    )
    yield client.wait_for(response_to("p1999"))
    answered = [m.action_id for m in client.messages if m.response == "Success" and m.action_id != "login"]
    assert answered == [f"p{i}" for i in range(2000)]
