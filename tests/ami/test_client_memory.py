"""AMIProtocol and AMIClientFactory in memory: correlation, lists, timing, backoff."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure

from pbxis.ami.client import ActionResult, AMIClientFactory, AMIProtocol, backoff_delay
from pbxis.ami.errors import (
    ActionFailed,
    ActionTimeout,
    AuthenticationFailed,
    ConnectionLost,
    NotConnected,
)
from pbxis.ami.message import Message
from pbxis.ami.parser import LocalProtocolError
from tests.ami.ami_wire import BANNER, FakeEndpoint, Peer, lost

SECRET = "md5-s3cret"


class Recorder:
    """An observer that writes down every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def ami_logged_in(self, protocol: AMIProtocol) -> None:
        self.calls.append(("logged_in", protocol))

    def ami_event(self, message: Message) -> None:
        self.calls.append(("event", message.event))

    def ami_lost(self, reason: Failure) -> None:
        self.calls.append(("lost", reason.type))

    @property
    def events(self) -> list[str | None]:
        return [v for k, v in self.calls if k == "event"]


def outcome(d: Any) -> Any:
    """The result of a fired Deferred (a Failure for an errback); asserts it fired."""
    box: list[Any] = []
    d.addBoth(box.append)
    assert box, "Deferred has not fired"
    return box[0]


def pending(d: Any) -> bool:
    box: list[Any] = []
    d.addBoth(lambda r: box.append(r) or r)
    return not box


def make(**kw: Any) -> tuple[AMIClientFactory, FakeEndpoint, Clock, Recorder]:
    clock = Clock()
    kw.setdefault("rand", lambda: 0.5)  # no jitter: delays are exactly base
    factory = AMIClientFactory("pbxis", SECRET, clock=clock, **kw)
    recorder = Recorder()
    factory.add_observer(recorder)
    endpoint = FakeEndpoint()
    factory.connect(endpoint)
    return factory, endpoint, clock, recorder


def logged_in(**kw: Any) -> tuple[AMIClientFactory, Peer, Clock, Recorder]:
    factory, endpoint, clock, recorder = make(**kw)
    endpoint.peer.login(SECRET)
    assert factory.connected
    return factory, endpoint.peer, clock, recorder


# -- login ------------------------------------------------------------------------


def test_md5_login_sends_key_and_events_and_never_the_secret() -> None:
    factory, endpoint, _clock, recorder = make(events="agent,call")
    peer = endpoint.peer
    assert factory.stats.state == "logging_in"
    assert peer.take() == []  # nothing before the banner
    peer.login(SECRET)
    login = peer.received[-1]
    assert login["AuthType"] == "MD5"
    assert login["Username"] == "pbxis"
    assert login["Events"] == "agent,call"
    assert "Secret" not in login
    assert factory.connected and factory.stats.state == "logged_in"
    assert factory.stats.logins == 1 and factory.stats.connects == 1
    assert recorder.calls == [("logged_in", peer.protocol)]
    assert peer.protocol.banner is not None and peer.protocol.banner.version == "9.0.0"


def test_plain_login_and_events_header_omitted() -> None:
    factory, endpoint, _clock, _ = make(auth="plain", events=None)
    peer = endpoint.peer
    peer.feed_bytes(BANNER)
    login = peer.take_one("Login")
    assert login["Secret"] == SECRET and "Events" not in login and "AuthType" not in login
    peer.answer(login, ("Message", "Authentication accepted"))
    assert factory.connected


def test_bad_auth_method_refused() -> None:
    with pytest.raises(ValueError):
        AMIClientFactory("u", "s", auth="sha1", clock=Clock())  # type: ignore[arg-type]


def test_auth_failure_backs_off_exponentially_and_caps() -> None:
    factory, endpoint, clock, recorder = make(min_delay=0.5, max_delay=4.0)
    delays = []
    for _ in range(6):
        endpoint.peer.login(SECRET, accept=False)
        assert endpoint.peer.closed
        assert factory.stats.state == "auth_failed"
        assert "Authentication failed" in (factory.stats.last_error or "")
        (call,) = clock.getDelayedCalls()
        delays.append(call.getTime() - clock.seconds())
        attempts = endpoint.attempts
        clock.advance(delays[-1] - 0.001)
        assert endpoint.attempts == attempts  # no early retry, no tight loop
        clock.advance(0.001)
        assert endpoint.attempts == attempts + 1
    assert delays == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0, 4.0])
    assert recorder.calls == []  # never logged in, so never "lost" either
    assert factory.stats.logins == 0 and factory.stats.reconnects == 6


def test_backoff_resets_only_after_the_link_held_not_at_login() -> None:
    _factory, endpoint, clock, _ = make(
        min_delay=1.0, max_delay=60.0, reset_after=30.0, keepalive_interval=None
    )
    endpoint.peer.drop()  # TCP connected, but no login: no reset
    clock.advance(1.0)
    endpoint.peer.drop()
    (call,) = clock.getDelayedCalls()
    assert call.getTime() - clock.seconds() == 2.0
    clock.advance(2.0)
    endpoint.peer.login(SECRET)
    endpoint.peer.drop()  # logged in, lost at once: the backoff goes on
    (call,) = clock.getDelayedCalls()
    assert call.getTime() - clock.seconds() == 4.0
    clock.advance(4.0)
    endpoint.peer.login(SECRET)
    clock.advance(30.0)  # held for reset_after
    endpoint.peer.drop()
    (call,) = clock.getDelayedCalls()
    assert call.getTime() - clock.seconds() == 1.0


def test_a_peer_that_accepts_the_login_then_breaks_the_link_is_not_hammered() -> None:
    """Issue 12, item 8: it was re-logged-into twice a second (51 logins in 25 s)."""
    factory, endpoint, clock, _ = make(min_delay=0.5, max_delay=30.0, keepalive_interval=None)
    started = clock.seconds()
    while clock.seconds() - started < 120.0:
        endpoint.peer.login(SECRET)
        endpoint.peer.feed_bytes(b"\xff" * 70_000 + b"\r\n\r\n")  # garbage: the link resets
        if not endpoint.peer.closed:
            endpoint.peer.drop()
        (call,) = clock.getDelayedCalls()
        clock.advance(call.getTime() - clock.seconds())
    # 0.5 + 1 + 2 + 4 + 8 + 16 + 30 + 30 + 30 > 120: about nine logins, not 240.
    assert factory.stats.logins <= 10


def test_reset_after_zero_resets_at_login() -> None:
    _factory, endpoint, clock, _ = make(
        min_delay=1.0, max_delay=60.0, reset_after=0.0, keepalive_interval=None
    )
    endpoint.peer.drop()
    clock.advance(1.0)
    endpoint.peer.login(SECRET)
    endpoint.peer.drop()
    (call,) = clock.getDelayedCalls()
    assert call.getTime() - clock.seconds() == 1.0


def test_invented_event_names_do_not_grow_the_counter() -> None:
    """Issue 12, item 9: a peer naming every event differently grew events_in (and /metrics)."""
    from pbxis.ami.factory import MAX_EVENT_NAMES, OTHER_EVENTS

    factory, peer, _clock, _ = logged_in(keepalive_interval=None)
    peer.feed(("Event", "Hangup"))
    for i in range(2 * MAX_EVENT_NAMES):
        peer.feed(("Event", f"Invented{i}"))
    peer.feed(("Event", "Hangup"))
    counts = factory.stats.events_in
    assert len(counts) == MAX_EVENT_NAMES + 1
    assert counts["Hangup"] == 2
    assert sum(counts.values()) == 2 * MAX_EVENT_NAMES + 2
    assert counts[OTHER_EVENTS] == MAX_EVENT_NAMES + 1


def test_connection_refused_retries() -> None:
    clock = Clock()
    factory = AMIClientFactory("pbxis", SECRET, clock=clock, rand=lambda: 0.5)
    endpoint = FakeEndpoint()
    endpoint.refuse = True
    factory.connect(endpoint)
    assert factory.stats.state == "disconnected" and "refused" in (factory.stats.last_error or "")
    clock.advance(0.5)
    clock.advance(1.0)
    assert endpoint.attempts == 3
    endpoint.refuse = False
    clock.advance(2.0)
    endpoint.peer.login(SECRET)
    assert factory.connected


def test_backoff_delay_jitter_stays_within_cap() -> None:
    assert backoff_delay(0, 0.5, 30.0, lambda: 0.0) == pytest.approx(0.4)
    assert backoff_delay(0, 0.5, 30.0, lambda: 1.0) == pytest.approx(0.6)
    assert backoff_delay(100, 0.5, 30.0, lambda: 1.0) == 30.0
    assert backoff_delay(10**6, 0.5, 30.0, lambda: 0.0) == pytest.approx(24.0)


def test_login_timeout_when_challenge_unanswered() -> None:
    factory, endpoint, clock, _ = make(action_timeout=5.0)
    endpoint.peer.feed_bytes(BANNER)
    endpoint.peer.take_one("Challenge")
    clock.advance(5.0)
    assert endpoint.peer.closed
    assert not factory.connected and factory.stats.state == "disconnected"
    assert "Challenge" in (factory.stats.last_error or "")


def test_no_banner_drops_link() -> None:
    _factory, endpoint, clock, _ = make(action_timeout=3.0)
    clock.advance(3.0)
    assert endpoint.peer.closed and endpoint.peer.transport.disconnected  # aborted
    assert endpoint.peer.received == [] and endpoint.peer.take() == []


def test_secret_with_crlf_fails_login_without_writing_it() -> None:
    clock = Clock()
    factory = AMIClientFactory("pbxis", "x\r\nAction: Command", auth="plain", clock=clock, rand=lambda: 0.5)
    endpoint = FakeEndpoint()
    factory.connect(endpoint)
    endpoint.peer.feed_bytes(BANNER)
    assert endpoint.peer.take() == []
    assert endpoint.peer.closed
    assert "Secret" in (factory.stats.last_error or "")


# -- actions ----------------------------------------------------------------------


def test_not_connected_fails_at_once() -> None:
    factory, endpoint, _clock, _ = make()
    failure = outcome(factory.send_action("Ping"))
    assert failure.check(NotConnected)
    assert outcome(endpoint.peer.protocol.send_action("Ping")).check(NotConnected)
    assert endpoint.peer.take() == []


def test_interleaved_events_and_out_of_order_responses() -> None:
    factory, peer, _clock, recorder = logged_in()
    peer.feed(("Event", "FullyBooted"), ("Status", "Fully Booted"))
    d1 = factory.send_action("QueueAdd", {"Queue": "sales", "Interface": "SIP/1001"})
    d2 = factory.send_action("QueuePause", {"Interface": "SIP/1001", "Paused": True})
    a1, a2 = peer.take()
    assert a1.action_id != a2.action_id
    assert a2["Paused"] == "true"
    peer.feed(("Event", "QueueMemberPause"), ("Interface", "SIP/1001"))
    peer.answer(a2, ("Message", "Interface paused successfully"))
    assert pending(d1)
    peer.feed(("Event", "QueueMemberAdded"), ("Interface", "SIP/1001"))
    peer.answer(a1, ("Message", "Added interface to queue"))
    r1, r2 = outcome(d1), outcome(d2)
    assert isinstance(r1, ActionResult) and r1.response["Message"] == "Added interface to queue"
    assert r2.response["Message"] == "Interface paused successfully" and r2.events == []
    assert recorder.events == ["FullyBooted", "QueueMemberPause", "QueueMemberAdded"]
    assert peer.protocol.fully_booted


def test_list_action_collects_items_until_complete() -> None:
    factory, peer, _clock, recorder = logged_in()
    d = factory.send_action("QueueStatus")
    (action,) = peer.take()
    aid = ("ActionID", action.action_id or "")
    peer.answer(action, ("EventList", "start"), ("Message", "Queue status will follow"))
    peer.feed(("Event", "QueueParams"), aid, ("Queue", "sales"))
    peer.feed(("Event", "QueueMemberStatus"), ("Privilege", "agent,all"))  # async, interleaved
    peer.feed(("Event", "QueueMember"), ("Queue", "sales"), aid, ("Name", "Agent 1001"))
    assert pending(d)
    peer.feed(("Event", "QueueStatusComplete"), aid, ("EventList", "Complete"), ("ListItems", "2"))
    result = outcome(d)
    assert result.response["EventList"] == "start"
    assert [m.event for m in result.events] == ["QueueParams", "QueueMember"]
    assert recorder.events == ["QueueMemberStatus"]


def test_list_start_is_case_insensitive() -> None:
    factory, peer, _clock, _ = logged_in()
    d = factory.send_action("FAXSessions")
    (action,) = peer.take()
    aid = ("ActionID", action.action_id or "")
    peer.answer(action, ("EventList", "Start"))
    peer.feed(("Event", "FAXSessionsEntry"), aid)
    peer.feed(("Event", "FAXSessionsComplete"), aid, ("EventList", "COMPLETE"))
    assert [m.event for m in outcome(d).events] == ["FAXSessionsEntry"]


def test_originate_response_with_action_id_is_an_ordinary_event() -> None:
    factory, peer, _clock, recorder = logged_in()
    d = factory.send_action("Originate", {"Channel": "SIP/1001", "Async": True}, action_id="originate-ab12")
    (action,) = peer.take()
    assert action.action_id == "originate-ab12"
    peer.answer(action, ("Message", "Originate successfully queued"))
    assert outcome(d).events == []
    peer.feed(
        ("Event", "OriginateResponse"),
        ("ActionID", "originate-ab12"),
        ("Response", "Success"),
        ("Reason", "4"),
    )
    assert recorder.events == ["OriginateResponse"]


def test_error_response_is_action_failed_with_asterisk_text() -> None:
    factory, peer, _clock, _ = logged_in()
    d = factory.send_action("QueueRemove", {"Queue": "sales", "Interface": "SIP/9"})
    (action,) = peer.take()
    peer.feed_bytes(
        Message(
            [("Response", "Error"), ("ActionID", action.action_id or ""), ("Message", "Not there")]
        ).to_bytes()
    )
    failure = outcome(d)
    assert failure.check(ActionFailed)
    assert failure.value.action == "QueueRemove"
    assert failure.value.message == "Not there"
    assert failure.value.response["Response"] == "Error"


def test_error_with_stray_lf_in_message() -> None:
    factory, peer, _clock, _ = logged_in()
    d = factory.send_action("Originate", {"Channel": "SIP/1"})
    (action,) = peer.take()
    aid = action.action_id or ""
    peer.feed_bytes(
        f"Response: Error\r\nActionID: {aid}\r\nMessage: Uniqueid length exceeds maximum of 149\n"
        "\r\n\r\n".encode()
    )
    assert outcome(d).value.message == "Uniqueid length exceeds maximum of 149"


def test_logoff_goodbye_is_success() -> None:
    factory, peer, _clock, _ = logged_in()
    d = factory.send_action("Logoff")
    (action,) = peer.take()
    peer.answer(action, ("Message", "Thanks for all the fish."), response="Goodbye")
    assert outcome(d).response.response == "Goodbye"


def test_timeout_then_late_answer_and_late_list_items_are_ignored() -> None:
    factory, peer, clock, recorder = logged_in(action_timeout=10.0)
    d = factory.send_action("CoreShowChannels", timeout=2.0)
    (action,) = peer.take()
    clock.advance(1.9)
    assert pending(d)
    clock.advance(0.1)
    assert outcome(d).check(ActionTimeout)
    aid = ("ActionID", action.action_id or "")
    peer.answer(action, ("EventList", "start"))
    peer.feed(("Event", "CoreShowChannel"), aid)
    peer.feed(("Event", "CoreShowChannelsComplete"), aid, ("EventList", "Complete"))
    peer.feed(("Event", "Hangup"))
    assert recorder.events == ["Hangup"]


def test_late_plain_answer_then_event_with_same_id_still_flows() -> None:
    factory, peer, clock, recorder = logged_in()
    d = factory.send_action("Originate", {"Channel": "SIP/1"}, timeout=1.0)
    (action,) = peer.take()
    clock.advance(1.0)
    assert outcome(d).check(ActionTimeout)
    peer.answer(action, ("Message", "Originate successfully queued"))
    peer.feed(("Event", "OriginateResponse"), ("ActionID", action.action_id or ""))
    assert recorder.events == ["OriginateResponse"]


def test_cancelled_action_answer_is_ignored() -> None:
    factory, peer, _clock, recorder = logged_in()
    d = factory.send_action("Ping")
    (action,) = peer.take()
    d.cancel()
    d.addErrback(lambda f: None)
    peer.answer(action, ("Ping", "Pong"))
    assert recorder.events == []


def test_bad_headers_errback_without_writing() -> None:
    factory, peer, _clock, _ = logged_in()
    d = factory.send_action("Originate", {"Exten": "123\r\nAction: Command\r\nCommand: core stop now"})
    assert outcome(d).check(LocalProtocolError)
    assert peer.take() == []
    assert factory.connected


@pytest.mark.parametrize("bad_id", ["", "a\r\nAction: Command", "x" * 65, "a\x00b", " lead", "tab\there"])
def test_explicit_action_id_validated(bad_id: str) -> None:
    factory, peer, _clock, _ = logged_in()
    assert outcome(factory.send_action("Ping", action_id=bad_id)).check(LocalProtocolError)
    assert peer.take() == []


def test_explicit_action_id_must_not_be_pending() -> None:
    factory, peer, _clock, _ = logged_in()
    d1 = factory.send_action("Ping", action_id="originate-1")
    assert outcome(factory.send_action("Ping", action_id="originate-1")).check(LocalProtocolError)
    (action,) = peer.take()
    peer.answer(action, ("Ping", "Pong"))
    assert isinstance(outcome(d1), ActionResult)


def test_generated_action_ids_are_short_and_unique() -> None:
    factory, peer, _clock, _ = logged_in()
    for _ in range(50):
        factory.send_action("Ping").addErrback(lambda f: None)
    ids = [m.action_id or "" for m in peer.take()]
    assert len(set(ids)) == 50 and max(map(len, ids)) < 64


# -- loss, keepalive, corrupt streams ---------------------------------------------


def test_loss_fails_every_pending_action_at_once_and_nothing_is_resent() -> None:
    factory, endpoint, clock, recorder = make()
    endpoint.peer.login(SECRET)
    first = endpoint.peer
    ds = [factory.send_action("Originate", {"Channel": f"SIP/{n}"}) for n in range(3)]
    assert len(first.take()) == 3
    first.drop()
    assert all(outcome(d).check(ConnectionLost) for d in ds)
    assert not factory.connected
    assert recorder.calls[-1][0] == "lost"
    clock.advance(0.5)
    assert endpoint.peer is not first
    endpoint.peer.login(SECRET)
    assert [m.action for m in endpoint.peer.received] == ["Challenge", "Login"]
    assert recorder.calls[-1] == ("logged_in", endpoint.peer.protocol)
    assert factory.stats.logins == 2 and factory.stats.reconnects == 1


def test_keepalive_drops_silent_link_within_two_intervals() -> None:
    _factory, peer, clock, recorder = logged_in(keepalive_interval=20.0, keepalive_timeout=10.0)
    clock.advance(19.9)
    assert peer.take() == []
    clock.advance(0.1)
    ping = peer.take_one("Ping")
    assert ping.action_id
    clock.advance(9.9)
    assert not peer.closed
    clock.advance(0.1)
    assert peer.closed and peer.transport.disconnected  # aborted, not a polite close
    assert clock.seconds() <= 40.0
    assert recorder.calls[-1][0] == "lost"
    assert clock.getDelayedCalls()  # a reconnect is scheduled


def test_keepalive_answered_keeps_link() -> None:
    factory, peer, clock, _ = logged_in(keepalive_interval=20.0, keepalive_timeout=10.0)
    for _ in range(5):
        clock.advance(20.0)
        peer.answer(peer.take_one("Ping"), ("Ping", "Pong"))
    assert factory.connected and not peer.closed


def test_corrupt_stream_aborts_link() -> None:
    factory, peer, _clock, _ = logged_in()
    d = factory.send_action("Ping")
    peer.feed_bytes(b"Response: Success\r\nX: " + b"x" * (4 * 1024 * 1024 + 10))
    assert peer.closed and peer.transport.disconnected
    assert outcome(d).check(ConnectionLost)
    assert not factory.connected


def test_garbage_without_headers_is_skipped() -> None:
    factory, peer, _clock, recorder = logged_in()
    peer.feed_bytes(b"\x00\xff garbage line\r\n\r\n")
    peer.feed(("Event", "Hangup"))
    assert recorder.events == ["Hangup"] and factory.connected


# -- observers, stats, listeners, stop ---------------------------------------------


def test_failing_observer_is_logged_and_others_still_called() -> None:
    clock = Clock()
    factory = AMIClientFactory("pbxis", SECRET, clock=clock)

    class Boom:
        def ami_event(self, message: Message) -> None:
            raise RuntimeError("observer bug")

    logged: list[LogEvent] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        factory.add_observer(Boom())
        recorder = Recorder()
        factory.add_observer(recorder)
        factory.add_observer(object())  # defines nothing: fine
        endpoint = FakeEndpoint()
        factory.connect(endpoint)
        endpoint.peer.login(SECRET)
        endpoint.peer.feed(("Event", "Newchannel"))
        endpoint.peer.feed(("Event", "Hangup"))
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert recorder.events == ["Newchannel", "Hangup"]
    assert sum(1 for e in logged if e.get("log_failure") is not None) == 2
    assert factory.connected


def test_remove_observer() -> None:
    factory, peer, _clock, recorder = logged_in()
    factory.remove_observer(recorder)
    peer.feed(("Event", "Hangup"))
    assert recorder.events == []


def test_stats_count_events_and_state() -> None:
    factory, peer, clock, _ = logged_in()
    assert factory.stats.last_event_time is None
    peer.feed(("Event", "Hangup"))
    peer.feed(("Event", "Hangup"))
    peer.feed(("Event", "Newchannel"))
    assert factory.stats.events_in == {"Hangup": 2, "Newchannel": 1}
    assert factory.stats.last_event_time is not None and factory.stats.last_event_time > 1e9
    peer.drop()
    assert factory.stats.state == "disconnected"
    clock.advance(0.5)
    assert factory.stats.state == "logging_in"


def test_action_listener_outcomes_and_durations() -> None:
    factory, peer, clock, _ = logged_in(action_timeout=5.0)
    seen: list[tuple[str, float, str]] = []
    factory.add_action_listener(lambda *a: seen.append(a))
    factory.add_action_listener(lambda *a: 1 / 0)  # a broken listener changes nothing
    ok = factory.send_action("Ping")
    bad = factory.send_action("QueueAdd")
    slow = factory.send_action("Status")
    lost = factory.send_action("Originate", timeout=60.0)
    ping, add, _status, _orig = peer.take()
    clock.advance(1.5)
    peer.answer(ping, ("Ping", "Pong"))
    peer.answer(add, ("Message", "Unable to add interface"), response="Error")
    clock.advance(3.5)
    for d in (ok, bad, slow):
        outcome(d)
    peer.drop()
    outcome(lost)
    assert seen == [
        ("Ping", 1.5, "ok"),
        ("QueueAdd", 1.5, "error"),
        ("Status", 5.0, "timeout"),
        ("Originate", 5.0, "lost"),
    ]


def test_stop_closes_link_and_stops_retrying() -> None:
    factory, endpoint, clock, _recorder = make()
    endpoint.peer.login(SECRET)
    d = factory.stop()
    assert outcome(d) is None
    assert endpoint.peer.closed and factory.stats.state == "disconnected"
    clock.advance(100)
    assert endpoint.attempts == 1
    assert factory.stop().called


def test_stop_while_waiting_to_retry() -> None:
    factory, endpoint, clock, _ = make()
    endpoint.peer.drop()
    assert clock.getDelayedCalls()
    assert outcome(factory.stop()) is None
    assert clock.getDelayedCalls() == []
    factory.connect(endpoint)  # can start again
    assert endpoint.attempts == 2


def test_stop_while_connecting_cancels_attempt() -> None:
    clock = Clock()
    factory = AMIClientFactory("pbxis", SECRET, clock=clock)
    endpoint = FakeEndpoint()
    endpoint.hold = True
    factory.connect(endpoint)
    assert endpoint.held is not None
    assert outcome(factory.stop()) is None
    assert endpoint.held.called  # cancelled, and the factory swallowed the CancelledError
    clock.advance(100)
    assert endpoint.attempts == 1 and clock.getDelayedCalls() == []


def test_connect_twice_refused() -> None:
    factory, endpoint, _clock, _ = make()
    with pytest.raises(RuntimeError):
        factory.connect(endpoint)


def test_secret_never_logged() -> None:
    logged: list[LogEvent] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        for auth in ("md5", "plain"):
            clock = Clock()
            factory = AMIClientFactory("pbxis", SECRET, auth=auth, clock=clock)  # type: ignore[arg-type]
            endpoint = FakeEndpoint()
            factory.connect(endpoint)
            peer = endpoint.peer
            peer.feed_bytes(BANNER)
            if auth == "md5":
                peer.answer(peer.take_one("Challenge"), ("Challenge", "1"))
            login = peer.take_one("Login")
            peer.answer(login, ("Message", "Authentication failed"), response="Error")
            clock.advance(1)
            peer = endpoint.peer
            peer.feed_bytes(BANNER)
            if auth == "md5":
                peer.answer(peer.take_one("Challenge"), ("Challenge", "2"))
            peer.answer(peer.take_one("Login"), ("Message", "Authentication accepted"))
            assert factory.connected
            assert SECRET not in repr(factory) + repr(peer.protocol)
            assert SECRET not in repr(vars(factory.stats))
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert len(logged) >= 6
    text = repr(logged)
    assert "pbxis" in text  # the username is logged...
    assert SECRET not in text  # ...the secret never


def test_challenge_refused_is_an_auth_failure() -> None:
    factory, endpoint, _clock, _ = make()
    peer = endpoint.peer
    peer.feed_bytes(BANNER)
    peer.answer(peer.take_one("Challenge"), ("Message", "Must specify AuthType"), response="Error")
    assert peer.take() == []  # no Login after a refused Challenge
    assert peer.closed and factory.stats.state == "auth_failed"
    assert factory.stats.last_error == "Must specify AuthType"


def test_login_already_in_use_is_an_auth_failure() -> None:
    factory, endpoint, _clock, _ = make(auth="plain")
    peer = endpoint.peer
    peer.feed_bytes(BANNER)
    peer.answer(peer.take_one("Login"), ("Message", "Login Already In Use"), response="Error")
    assert peer.closed and factory.stats.state == "auth_failed"
    assert not factory.connected


def test_auth_failure_type_reaches_no_observer_but_is_typed() -> None:
    factory, endpoint, _clock, recorder = make()
    failures: list[Failure] = []
    original = factory.link_login_failed

    def spy(protocol: AMIProtocol, reason: Failure) -> None:
        failures.append(reason)
        original(protocol, reason)

    factory.link_login_failed = spy  # type: ignore[method-assign]
    endpoint.peer.login(SECRET, accept=False)
    assert [f.type for f in failures] == [AuthenticationFailed]
    assert recorder.calls == []


def test_action_after_the_link_was_condemned_is_refused_not_written() -> None:
    """Between our abort and the reactor's connectionLost nothing more goes on the wire.

    A real TCP transport reports the loss on a later reactor turn; an action written in
    between would fail ConnectionLost ("may have run"). It must fail NotConnected.
    """
    factory, peer, clock, _ = logged_in(keepalive_interval=20.0, keepalive_timeout=10.0)
    peer.transport.abortConnection = lambda: None  # type: ignore[method-assign]  # loss comes later
    clock.advance(20.0)
    peer.take_one("Ping")
    clock.advance(10.0)  # Ping unanswered: pbxis condemns the link
    assert not factory.connected
    d = factory.send_action("QueuePause", {"Interface": "SIP/1001", "Paused": "true"})
    assert outcome(d).check(NotConnected)
    direct = outcome(peer.protocol.send_action("Ping"))
    assert direct.check(NotConnected) and "closing" in direct.getErrorMessage()
    assert peer.take() == []
    peer.protocol.connectionLost(lost())


# -- events in batches (issue #20) -------------------------------------------------


class BatchRecorder(Recorder):
    """An observer with ``ami_events``: records each list it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str | None]] = []

    def ami_events(self, messages: list[Message]) -> None:
        self.batches.append([m.event for m in messages])


def wire(*messages: tuple[tuple[str, str], ...]) -> bytes:
    return b"".join(Message(list(pairs)).to_bytes() for pairs in messages)


def test_events_of_one_read_reach_a_batch_observer_in_one_call() -> None:
    factory, peer, _clock, recorder = logged_in()
    batch = BatchRecorder()
    factory.add_observer(batch)
    peer.feed_bytes(wire(*[(("Event", "QueueMemberPause"), ("Interface", f"SIP/{n}")) for n in range(5)]))
    peer.feed_bytes(wire((("Event", "Hangup"), ("Channel", "SIP/1-1"))))
    assert batch.batches == [["QueueMemberPause"] * 5, ["Hangup"]]
    # an observer without ami_events still gets them one by one, in order
    assert recorder.events == ["QueueMemberPause"] * 5 + ["Hangup"]
    assert factory.stats.events_in["QueueMemberPause"] == 5


def test_a_response_inside_a_read_splits_the_batch_in_wire_order() -> None:
    """The answer's Deferred fires after the events before it and before those after it:
    a rebuild applies each answer at its place in the event stream."""
    factory, peer, _clock, _ = logged_in()
    batch = BatchRecorder()
    factory.add_observer(batch)
    d = factory.send_action("QueueStatus")
    (action,) = peer.take()
    aid = ("ActionID", action.action_id or "")
    seen_when_answered: list[list[list[str | None]]] = []

    def answered(result: ActionResult) -> ActionResult:
        seen_when_answered.append([list(b) for b in batch.batches])
        return result

    d.addCallback(answered)
    peer.feed_bytes(
        wire(
            (("Event", "QueueMemberPause"), ("Interface", "SIP/1")),
            (("Response", "Success"), aid, ("EventList", "start")),
            (("Event", "QueueParams"), aid, ("Queue", "sales")),
            (("Event", "Newchannel"), ("Channel", "SIP/1-1")),
            (("Event", "QueueStatusComplete"), aid, ("EventList", "Complete")),
            (("Event", "Hangup"), ("Channel", "SIP/1-1")),
            (("Event", "FullyBooted"), ("Status", "Fully Booted")),
            (("Event", "QueueMemberPause"), ("Interface", "SIP/2")),
        )
    )
    assert [m.event for m in outcome(d).events] == ["QueueParams"]
    assert seen_when_answered == [[["QueueMemberPause"], ["Newchannel"]]]
    # FullyBooted goes up on its own, after the events before it
    assert batch.batches == [
        ["QueueMemberPause"],
        ["Newchannel"],
        ["Hangup"],
        ["FullyBooted"],
        ["QueueMemberPause"],
    ]
    assert peer.protocol.fully_booted


def test_events_before_corruption_are_delivered_then_the_link_drops() -> None:
    factory, peer, _clock, _ = logged_in()
    batch = BatchRecorder()
    factory.add_observer(batch)
    too_long = b"X: " + b"x" * (4 * 1024 * 1024 + 10)
    peer.feed_bytes(wire((("Event", "Hangup"), ("Channel", "SIP/1-1"))) + too_long)
    assert batch.batches == [["Hangup"]]
    assert peer.closed and not factory.connected


def test_a_failing_batch_observer_is_logged_and_the_next_still_called() -> None:
    factory, peer, _clock, _ = logged_in()

    class Broken:
        def ami_events(self, messages: list[Message]) -> None:
            raise RuntimeError("boom")

    logged: list[LogEvent] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        factory.add_observer(Broken())
        after = BatchRecorder()
        factory.add_observer(after)
        peer.feed(("Event", "Hangup"), ("Channel", "SIP/1-1"))
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert after.batches == [["Hangup"]]
    assert any(e.get("log_failure") is not None for e in logged)


def test_invented_event_names_in_one_read_do_not_grow_the_counter() -> None:
    """The same bound when the names come in one read (one call for all its events)."""
    from pbxis.ami.factory import MAX_EVENT_NAMES, OTHER_EVENTS

    factory, _peer, _clock, _ = logged_in(keepalive_interval=None)
    protocol = factory.protocol_instance
    assert protocol is not None
    known = [Message([("Event", "Hangup")])]
    invented = [Message([("Event", f"Invented{i}")]) for i in range(2 * MAX_EVENT_NAMES)]
    factory.link_events(protocol, known + invented + known)
    counts = factory.stats.events_in
    assert len(counts) == MAX_EVENT_NAMES + 1
    assert counts["Hangup"] == 2
    assert counts[OTHER_EVENTS] == MAX_EVENT_NAMES + 1
    assert list(counts)[1:3] == ["Invented0", "Invented1"]  # the first names seen keep their own
