"""Issue 12, items 4 and 5: what an agent's token may do, and the toll-fraud guard.

The HTTP tests reproduce the attacks on the daemon (the embedded simulator, API key on);
the unit tests pin the rules with a ``task.Clock``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from pbxis.config import ConfigError, OriginateConfig, parse_config
from pbxis.engine.policy import NumberPolicy, OriginateGuard, RateLimiter
from pbxis.errors import NumberNotAllowed, RateLimited
from tests.support.stack import API_KEY, Stack, start_stack, stop_stack


async def register(stack: Stack, agent: str = "1001", queues: tuple[str, ...] = ("sales",)) -> str:
    status, body = await stack.api("PUT", f"/agents/{agent}", {"queues": list(queues), "name": "Alice"})
    assert status == 200, body
    return str(body["token"])


# -- 12.4: a token acts on its registered queues only --------------------------------


@pytest_twisted.ensureDeferred
async def test_agent_token_cannot_join_or_leave_queues_it_is_not_registered_for(
    secured_stack: Stack,
) -> None:
    token = await register(secured_stack, queues=("sales",))
    for action in ("login", "logoff", "pause", "unpause"):
        status, body = await secured_stack.api(
            "POST", f"/agents/1001/queues/support/{action}", {}, token=token
        )
        assert (status, body["error"]["code"]) == (403, "forbidden"), (action, body)
    sent = [m.get("Action") for session in secured_stack.simulator.sessions for m in session.received]
    assert not {"QueueAdd", "QueueRemove", "QueuePause"} & set(sent), "nothing reached Asterisk"
    status, body = await secured_stack.api(
        "POST", "/agents/1001/queues/sales/login", {"memberName": "Alice"}, token=token
    )
    assert status == 200, body
    # The CRM's key keeps full power.
    status, body = await secured_stack.api("POST", "/agents/1001/queues/support/login", {})
    assert status == 200, body


# -- 12.5: the toll-fraud guard ------------------------------------------------------


@pytest.mark.parametrize(
    "number", ["900123456", "1900123456", "00900123456", "+19005550100", "*72", "#31#0911", "0911*"]
)
@pytest_twisted.ensureDeferred
async def test_premium_numbers_and_feature_codes_are_refused(secured_stack: Stack, number: str) -> None:
    token = await register(secured_stack)
    status, body = await secured_stack.api("POST", "/agents/1001/originate", {"number": number}, token=token)
    assert (status, body["error"]["code"]) == (403, "number_not_allowed"), body
    # The CRM is held to the same policy: it guards the PBX's bill, not a credential.
    status, body = await secured_stack.api("POST", "/agents/1001/originate", {"number": number})
    assert status == 403, body


@pytest_twisted.ensureDeferred
async def test_only_the_crm_sets_caller_id() -> None:
    stack = await start_stack(API_KEY)
    try:
        token = await register(stack)
        body = {"number": "0911234567", "callerId": '"Bank" <0800123>'}
        status, doc = await stack.api("POST", "/agents/1001/originate", body, token=token)
        assert (status, doc["error"]["code"]) == (403, "forbidden"), doc
        assert "callerId" in doc["error"]["message"]
        status, doc = await stack.api("POST", "/agents/1001/originate", body)
        assert status == 202, doc
    finally:
        await stop_stack(stack)
    stack = await start_stack(API_KEY, originate={"agents_may_set_caller_id": True})
    try:
        token = await register(stack)
        status, doc = await stack.api("POST", "/agents/1001/originate", body, token=token)
        assert status == 202, doc
    finally:
        await stop_stack(stack)


@pytest_twisted.async_yield_fixture
async def limited() -> AsyncIterator[Stack]:
    s = await start_stack(API_KEY, originate={"agent_rate": 3, "global_rate": 5, "rate_window": 60.0})
    try:
        yield s
    finally:
        await stop_stack(s)


@pytest_twisted.ensureDeferred
async def test_originate_rate_limits_per_agent_and_overall(limited: Stack) -> None:
    first = await register(limited, "1001")
    second = await register(limited, "1002")
    statuses = []
    for _ in range(5):
        status, body = await limited.api("POST", "/agents/1001/originate", {"number": "0911"}, token=first)
        statuses.append(status)
        if status == 429:
            assert body["error"]["code"] == "rate_limited"
    assert statuses == [202, 202, 202, 429, 429]
    status, body = await limited.api("POST", "/agents/1001/originate", {"number": "0911"}, token=first)
    assert status == 429
    # Retry-After says when (the window is 60 s).
    raw = await _raw_originate(limited, first)
    assert raw[0] == 429 and 1 <= int(raw[1]) <= 60
    # Another agent has its own quota, until everybody's is used up.
    assert (await limited.api("POST", "/agents/1002/originate", {"number": "0911"}, token=second))[0] == 202
    assert (await limited.api("POST", "/agents/1002/originate", {"number": "0911"}, token=second))[0] == 202
    status, body = await limited.api("POST", "/agents/1002/originate", {"number": "0911"}, token=second)
    assert status == 429 and "all agents" in body["error"]["message"]


async def _raw_originate(stack: Stack, token: str) -> tuple[int, str]:
    import json

    import treq

    response = await treq.post(
        stack.base_url + "/agents/1001/originate",
        data=json.dumps({"number": "0911"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        persistent=False,
    )
    await treq.content(response)
    return response.code, response.headers.getRawHeaders(b"retry-after", [b""])[0].decode()


# -- the rules, on a task.Clock ------------------------------------------------------


def test_number_policy() -> None:
    default = OriginateConfig()
    policy = NumberPolicy(default.allow, default.deny, allow_feature_codes=False)
    for ok in ("0911234567", "+385911234567", "1001", "0900"):
        policy.check(ok)
    for bad in ("900", "1900555", "00900", "+1900", "*72", "#"):
        with pytest.raises(NumberNotAllowed):
            policy.check(bad)
    only_local = NumberPolicy([r"^0[1-9]"], [r"^0800"], allow_feature_codes=True)
    only_local.check("0911")
    only_local.check("01*2")
    for bad in ("00385911", "+385911", "0800123"):
        with pytest.raises(NumberNotAllowed):
            only_local.check(bad)


def test_rate_limiter_slides_with_the_clock() -> None:
    clock = Clock()
    limiter = RateLimiter(clock, 2, 10.0)
    assert limiter.retry_after("a") == 0
    limiter.record("a")
    clock.advance(4)
    limiter.record("a")
    assert limiter.retry_after("a") == pytest.approx(6.0)
    assert limiter.retry_after("b") == 0
    clock.advance(6)
    assert limiter.retry_after("a") == 0  # the first left the window
    limiter.record("a")
    assert limiter.retry_after("a") == pytest.approx(4.0)
    clock.advance(100)
    assert limiter.retry_after("a") == 0 and len(limiter) == 0, "idle keys are dropped"
    unlimited = RateLimiter(clock, 0, 10.0)
    for _ in range(1000):
        unlimited.record("a")
    assert unlimited.retry_after("a") == 0 and len(unlimited) == 0


def test_guard_counts_only_admitted_attempts_and_says_when() -> None:
    clock = Clock()
    guard = OriginateGuard(clock, OriginateConfig(agent_rate=2, global_rate=3, rate_window=60.0))
    for _ in range(10):  # refused numbers use up nobody's quota
        with pytest.raises(NumberNotAllowed):
            guard.admit("1001", "1900")
    guard.admit("1001", "0911")
    clock.advance(30)
    guard.admit("1001", "0911")
    with pytest.raises(RateLimited) as refused:
        guard.admit("1001", "0911")
    assert refused.value.retry_after == 30
    guard.admit("1002", "0911")
    with pytest.raises(RateLimited, match="all agents"):
        guard.admit("1003", "0911")
    clock.advance(30)
    guard.admit("1001", "0911")


def test_originate_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"\[originate\]\.deny: '\(' is not a regular expression"):
        parse_config({"originate": {"deny": ["("]}})
    with pytest.raises(ConfigError, match=r"\[originate\]\.agent_rate"):
        parse_config({"originate": {"agent_rate": -1}})
    assert parse_config({}).originate.deny == (r"^(00|\+)?(900|1900)",)


@pytest.mark.parametrize("number", ["++900123", "0+0900123", "+00900", "+0900", "9+1900", "+", "++", "+*72"])
def test_plus_is_only_a_leading_prefix(number: str) -> None:
    """``+`` anywhere but first is not a dialable number: a dialplan that strips it
    (``FILTER(0-9,...)``) turns ``++900123`` into ``900123``, which the default deny
    pattern is there to refuse and would not see."""
    from pbxis.names import is_number
    from pbxis.web.errors import ApiError
    from pbxis.web.validation import phone_number

    assert not is_number(number)
    with pytest.raises(ApiError):
        phone_number(number)


@pytest.mark.parametrize("number", ["+385911234567", "0911234567", "1" * 32, "+" + "1" * 31, "*72", "#31#"])
def test_numbers_a_phone_dials_still_pass(number: str) -> None:
    from pbxis.names import is_number

    assert is_number(number)
    assert not is_number(number + "1" * 32), "still at most 32 characters"


def test_a_new_registration_does_not_reset_the_agents_quota() -> None:
    """The per-agent count used to be forgotten when the registration ended
    (``DELETE /agents/{agent}`` or the grace period): unregister, register again, and
    the agent had a fresh ``agent_rate`` at once. The count now leaves with its window."""
    clock = Clock()
    guard = OriginateGuard(clock, OriginateConfig(agent_rate=2, global_rate=100, rate_window=60.0))
    guard.admit("1001", "0911")
    guard.admit("1001", "0911")
    guard.forget("1001")  # the registration ended
    with pytest.raises(RateLimited):
        guard.admit("1001", "0911")
    clock.advance(60)
    guard.admit("1001", "0911")


def test_idle_rate_keys_are_swept_without_being_seen_again() -> None:
    """Keys are kept past a registration now, so idle ones must go by themselves:
    many agents each dialling once, long ago, leave nothing behind."""
    clock = Clock()
    limiter = RateLimiter(clock, 5, 10.0)
    for i in range(5000):
        limiter.record(f"agent{i}")
    clock.advance(11)
    for i in range(5000):
        limiter.record(f"other{i}")
    assert len(limiter) <= 5000 + 2048
    clock.advance(11)
    limiter.record("last")
    for i in range(3000):
        limiter.record(f"more{i}")
    assert len(limiter) <= 3001 + 2048
