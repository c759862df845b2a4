"""The delivery loop under task.Clock: order per agent, backoff, Retry-After, give-ups, bounds."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from pbxis.webhooks.config import WebhookConfig
from pbxis.webhooks.delivery import (
    MAX_DELAY,
    Answer,
    Endpoint,
    Webhooks,
    backoff,
    message_id,
    parse_retry_after,
)
from pbxis.webhooks.signing import decode_secret, verify

KEY = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


@dataclass
class Request:
    url: str
    headers: Mapping[str, str]
    body: bytes
    timeout: float
    answer: Deferred[Answer] = field(default_factory=Deferred)


class FakeCRM:
    """A PostFn whose requests the test answers one by one."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def __call__(self, url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Deferred[Answer]:
        request = Request(url, dict(headers), body, timeout)
        self.requests.append(request)
        return request.answer

    def open(self) -> list[Request]:
        return [r for r in self.requests if not r.answer.called]


def endpoint(crm: FakeCRM, clock: Clock, **overrides: object) -> Endpoint:
    config = WebhookConfig(url="http://crm/hooks", name="crm", key=KEY, **overrides)  # type: ignore[arg-type]
    return Endpoint(config, clock, crm, wall=lambda: 1_700_000_000 + clock.seconds(), rng=random.Random(7))


def test_each_attempt_is_signed_with_a_stable_id_and_fresh_timestamp() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock)
    ep.offer("1001", "default:1001:5:1", b'{"id":1}')
    first = crm.requests[0]
    first.answer.callback(Answer(503))
    clock.advance(MAX_DELAY)
    second = crm.requests[1]
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "default:1001:5:1"
    assert int(second.headers["webhook-timestamp"]) > int(first.headers["webhook-timestamp"])
    for r in (first, second):
        verify(KEY, r.headers, r.body, now=int(r.headers["webhook-timestamp"]))
        assert r.headers["content-type"] == "application/json"
    second.answer.callback(Answer(204))
    assert ep.stats.delivered == 1 and ep.stats.retried == 1 and ep.pending == 0


def test_a_later_event_waits_for_an_earlier_one_of_the_same_agent_only() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock)
    ep.offer("1001", "a1", b"1")
    ep.offer("1001", "a2", b"2")
    ep.offer("1002", "b1", b"3")
    assert [r.body for r in crm.open()] == [b"1", b"3"]  # one per agent in flight
    crm.requests[0].answer.errback(ConnectionRefusedError())
    crm.requests[1].answer.callback(Answer(200))
    assert crm.open() == []  # 1001's second event waits behind the retry of its first
    clock.advance(1.0)
    assert [r.body for r in crm.open()] == [b"1"]
    crm.open()[0].answer.callback(Answer(200))
    assert [r.body for r in crm.open()] == [b"2"]


def test_backoff_doubles_from_one_second_to_ten_minutes_with_jitter() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (5, 16), (10, 512), (11, 600), (40, 600)]:
        delays = [backoff(attempt, rng) for _ in range(50)]
        assert all(max(1.0, ceiling / 2) <= d <= ceiling for d in delays)
        if ceiling >= 4:
            assert len(set(delays)) > 1


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503])
def test_retryable_statuses_are_retried(status: int) -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock)
    ep.offer("1001", "x", b"{}")
    crm.requests[0].answer.callback(Answer(status))
    assert ep.pending == 1 and ep.stats.retried == 1
    clock.advance(1.0)
    assert len(crm.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 301])
def test_other_refusals_give_the_event_up_and_go_on(status: int) -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock)
    ep.offer("1001", "x", b"1")
    ep.offer("1001", "y", b"2")
    crm.requests[0].answer.callback(Answer(status))
    assert ep.stats.given_up == 1 and ep.stats.retried == 0
    assert [r.body for r in crm.open()] == [b"2"]


def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock)
    ep.offer("1001", "x", b"{}")
    crm.requests[0].answer.callback(Answer(429, "120"))
    clock.advance(119)
    assert len(crm.requests) == 1
    clock.advance(1)
    assert len(crm.requests) == 2


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert parse_retry_after("30", now=0) == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_an_event_older_than_max_age_is_given_up() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock, max_age=60.0)
    ep.offer("1001", "x", b"{}")
    while ep.pending:
        for request in crm.open():
            request.answer.callback(Answer(500))
        clock.advance(0.5)
    assert ep.stats.given_up == 1
    # Given up at the first failure whose retry would come after 60 s, not later.
    assert clock.seconds() <= 60 and 4 <= len(crm.requests) <= 7


def test_memory_is_bounded_by_dropping_the_oldest_waiting_event() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock, max_pending=3)
    for n in range(6):
        ep.offer("1001", f"e{n}", str(n).encode())
        clock.advance(1)
    assert ep.pending == 3 and ep.stats.dropped == 3
    # e0 is in flight and kept; the oldest of those waiting went.
    crm.requests[0].answer.callback(Answer(200))
    crm.open()[0].answer.callback(Answer(200))
    crm.open()[0].answer.callback(Answer(200))
    assert [r.body for r in crm.requests] == [b"0", b"4", b"5"]
    assert ep.oldest_age() == 0


def test_requests_in_flight_are_bounded_per_endpoint() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock, max_in_flight=2)
    for agent in ("a", "b", "c", "d"):
        ep.offer(agent, agent, agent.encode())
    assert [r.body for r in crm.open()] == [b"a", b"b"]
    crm.requests[0].answer.callback(Answer(200))
    assert [r.body for r in crm.open()] == [b"b", b"c"]
    crm.requests[1].answer.errback(ConnectionRefusedError())
    assert [r.body for r in crm.open()] == [b"c", b"d"]


def test_oldest_pending_age_follows_the_clock() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock)
    assert ep.oldest_age() == 0
    ep.offer("1001", "x", b"{}")
    clock.advance(42)
    assert ep.oldest_age() == 42


def test_stop_cancels_requests_and_timers() -> None:
    clock, crm = Clock(), FakeCRM()
    ep = endpoint(crm, clock)
    ep.offer("1001", "x", b"{}")
    ep.offer("1002", "y", b"{}")
    crm.requests[1].answer.callback(Answer(500))
    ep.stop()
    assert crm.requests[0].answer.called
    clock.advance(MAX_DELAY)
    assert len(crm.requests) == 2 and clock.getDelayedCalls() == []


def test_a_post_function_that_raises_is_retried_not_wedged() -> None:
    clock = Clock()
    calls: list[int] = []

    def broken(url: str, headers: Mapping[str, str], body: bytes, timeout: float) -> Deferred[Answer]:
        calls.append(1)
        raise RuntimeError("boom")

    config = WebhookConfig(url="http://crm/hooks", name="crm", key=KEY)
    ep = Endpoint(config, clock, broken, wall=clock.seconds)
    ep.offer("1001", "x", b"{}")
    clock.advance(1)
    assert len(calls) == 2 and ep.stats.retried == 2


def test_fan_out_filters_and_ids() -> None:
    clock, crm = Clock(), FakeCRM()
    sales = WebhookConfig(url="http://crm/a", name="a", key=KEY, queues=frozenset({"sales"}))
    everything = WebhookConfig(url="http://crm/b", name="b", key=KEY)
    hooks = Webhooks([sales, everything], clock, crm)
    text = '{"id":7,"type":"agentComplete","agent":"1.1","queue":"support"}'
    hooks.offer("default", "1.1", ["sales", "support"], 1700, 7, "agentComplete", text)
    hooks.offer("default", "1.1", ["sales"], 1700, 8, "queueCount", '{"type":"queueCount"}')
    assert [r.url for r in crm.requests] == ["http://crm/b"]
    assert crm.requests[0].body == text.encode()
    assert crm.requests[0].headers["webhook-id"] == "default:1%2E1:1700:7"
    assert message_id("p", "a", 1, 2) != message_id("p", "a", 2, 2)
