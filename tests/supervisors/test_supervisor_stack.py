"""Supervisors end to end: the daemon in demo mode, its simulator, real HTTP and streams."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_twisted
from twisted.internet import defer, task

from tests.support.stack import API_KEY, Stack, start_stack, stop_stack


@pytest_twisted.async_yield_fixture
async def stack() -> AsyncIterator[Stack]:
    s = await start_stack(API_KEY)
    try:
        yield s
    finally:
        await stop_stack(s)


async def collect(
    stack: Stack, token: str, since: int | None, until: Callable[[list[dict]], Any], timeout: float = 8.0
) -> list[dict]:
    seen: list[dict] = []
    deadline = stack.service.reactor.seconds() + timeout
    while not until(seen):
        if stack.service.reactor.seconds() > deadline:
            raise AssertionError(f"condition not met; events: {seen}")
        resume = "" if since is None else f"since={since}&"
        status, body = await stack.api("GET", f"/stream/{token}/poll?{resume}timeout=1", token=token)
        assert status == 200, body
        seen.extend(body["events"])
        since = body["next"]
    return seen


def of(events: list[dict], type_: str, **fields: Any) -> list[dict]:
    return [e for e in events if e["type"] == type_ and all(e.get(k) == v for k, v in fields.items())]


def queue_params(stack: Stack, queue: str) -> dict[str, int]:
    """What the simulated Asterisk's ``queue show`` (its QueueParams) says."""
    q = stack.simulator.pbx.queue(queue)
    return {
        "completed": q.completed,
        "abandoned": q.abandoned,
        "holdTime": q.holdtime,
        "talkTime": q.talktime,
    }


@pytest_twisted.ensureDeferred
async def test_supervisor_sees_callers_members_and_asterisks_counters(stack: Stack) -> None:
    stack.simulator.queue_add("support", "SIP/1001", name="Alice")
    status, reg = await stack.api("PUT", "/supervisors/boss", {"queues": ["support"], "name": "Team lead"})
    assert status == 200, reg
    assert reg["supervisor"] == "boss" and reg["queues"] == ["support"] and len(reg["token"]) >= 22
    assert reg["streams"]["sse"].endswith("/sse") and reg["streams"]["websocket"].startswith("ws://")
    assert reg["wallboard"].endswith(f"/wallboard?token={reg['token']}")
    token = reg["token"]

    first = await collect(stack, token, None, lambda ev: of(ev, "queueMember", agent="1001"))
    # The envelope names the supervisor; ``agent`` is only queueMember's member field.
    assert all(e["supervisor"] == "boss" for e in first)
    assert all("agent" not in e for e in first if e["type"] != "queueMember")
    stats = of(first, "queueStats")[-1]
    assert stats["queue"] == "support" and stats["waiting"] == 0
    assert of(first, "queueMember", agent="1001")[-1]["name"] == "Alice"
    since = first[-1]["id"]

    # A caller waits (1001 paused), then is answered once 1001 is back, and hangs up.
    stack.simulator.queue_pause("SIP/1001", True, "support", "Briefing")
    stack.simulator.customer_call("support", number="385917777777", name="Carol", talk_time=0.3)
    waiting = await collect(stack, token, since, lambda ev: of(ev, "queueCallers") and ev[-1]["type"])
    callers = of(waiting, "queueCallers")[-1]["callers"]
    assert [(c["position"], c["number"], c["name"]) for c in callers] == [(1, "385917777777", "Carol")]
    since = waiting[-1]["id"]
    stack.simulator.queue_pause("SIP/1001", False, "support")
    done = await collect(
        stack,
        token,
        since,
        lambda ev: any(e["type"] == "queueStats" and e["completed"] == 1 for e in ev),
    )
    assert of(done, "queueCallers")[-1]["callers"] == []
    assert {"ringing", "inuse"} <= {e["status"] for e in of(done, "queueMember", agent="1001")}
    stats = [e for e in of(done, "queueStats") if e["completed"] == 1][-1]
    expected = queue_params(stack, "support")
    assert {k: stats[k] for k in expected} == expected
    since = done[-1]["id"]

    # An abandon: nobody available, the caller gives up.
    stack.simulator.queue_pause("SIP/1001", True, "support", "Lunch")
    stack.simulator.customer_call("support", number="385918888888", name="Dan", hangup_after=0.2)
    gone = await collect(
        stack,
        token,
        since,
        lambda ev: any(e["type"] == "queueStats" and e["abandoned"] == 1 for e in ev),
    )
    stats = [e for e in of(gone, "queueStats") if e["abandoned"] == 1][-1]
    assert stats["abandoned"] == queue_params(stack, "support")["abandoned"] == 1
    assert stats["members"]["paused"] == 1

    status, health = await stack.api("GET", "/health")
    assert (health["agents"], health["supervisors"]) == (0, 1)  # a supervisor is no agent
    # GET answers the same state, to the supervisor's own token and to the CRM.
    status, state = await stack.api("GET", "/supervisors/boss", token=token)
    assert status == 200 and state["queues"]["support"]["stats"]["abandoned"] == 1
    assert [m["agent"] for m in state["queues"]["support"]["members"]] == ["1001"]


@pytest_twisted.ensureDeferred
async def test_queue_stats_at_most_one_per_second(stack: Stack) -> None:
    _, reg = await stack.api("PUT", "/supervisors/boss", {"queues": ["sales"]})
    token = reg["token"]
    first = await collect(stack, token, None, lambda ev: of(ev, "queueStats"))
    await task.deferLater(stack.service.reactor, 1.1, lambda: None)  # past the load's own queueStats
    for number in ("385910000001", "385910000002", "385910000003", "385910000004"):
        stack.simulator.customer_call("sales", number=number, max_wait=30)
    events = await collect(
        stack,
        token,
        first[-1]["id"],
        lambda ev: any(e["type"] == "queueStats" and e["waiting"] == 4 for e in ev),
    )
    stamps = [e["time"] for e in of(events, "queueStats")]  # live ones (a snapshot is per client)
    assert len(stamps) >= 2  # the first join at once, the next three coalesced a second later
    assert all(b - a >= 1000 for a, b in itertools.pairwise(stamps))
    assert len(of(events, "queueCallers")[-1]["callers"]) == 4  # callers are never throttled


@pytest_twisted.ensureDeferred
async def test_filter_grows_only_for_supervised_queues(stack: Stack) -> None:
    session = next(iter(stack.simulator.sessions))
    before = len(session.filters)
    _, reg = await stack.api("PUT", "/supervisors/boss", {"queues": ["sales"]})
    await collect(stack, reg["token"], None, lambda ev: of(ev, "queueStats"))
    await stack.wait_for(lambda: len(session.filters) == before + 1, what="the sales abandon filter")
    added = session.filters[-1]
    assert (added.name, added.header, added.method, added.pattern) == (
        "QueueCallerAbandon",
        "Queue",
        "exact",
        "sales",
    )
    # Another supervisor of the same queue adds nothing; a new queue adds one.
    await stack.api("PUT", "/supervisors/deputy", {"queues": ["sales"]})
    await stack.api("PUT", "/supervisors/boss", {"queues": ["sales", "support"]})
    await stack.wait_for(lambda: len(session.filters) == before + 2, what="the support abandon filter")


@pytest_twisted.ensureDeferred
async def test_supervisor_token_is_no_agent_token_and_delete_ends_the_stream(stack: Stack) -> None:
    status, body = await stack.api("PUT", "/supervisors/boss", {"queues": []})
    assert status == 400 and body["error"]["code"] == "invalid_field"
    status, body = await stack.api("PUT", "/supervisors/bad name", {"queues": ["sales"]})
    assert status in (400, 404)
    _, reg = await stack.api("PUT", "/supervisors/1001", {"queues": ["sales"]})
    token = reg["token"]
    # Supervisor 1001 is not agent 1001: its token commands no agent.
    status, body = await stack.api("POST", "/agents/1001/originate", {"number": "0911234567"}, token=token)
    assert status == 403, body
    status, body = await stack.api("GET", "/supervisors/boss", token=token)
    assert status == 403, body
    first = await collect(stack, token, None, lambda ev: of(ev, "queueStats"))
    waiting = defer.ensureDeferred(
        stack.api("GET", f"/stream/{token}/poll?since={first[-1]['id']}&timeout=5", token=token)
    )
    await task.deferLater(stack.service.reactor, 0.2, lambda: None)
    status, _ = await stack.api("DELETE", "/supervisors/1001")
    assert status == 204
    status, body = await waiting
    assert status == 200
    assert [(e["type"], e["reason"]) for e in body["events"]] == [("closed", "unregistered")]
    assert body["events"][0]["supervisor"] == "1001" and "agent" not in body["events"][0]
    status, _ = await stack.api("GET", f"/stream/{token}/poll?timeout=0", token=token)
    assert status in (401, 404)  # the token died with the registration
    status, _ = await stack.api("DELETE", "/supervisors/1001")
    assert status == 404
    status, _ = await stack.api("GET", "/supervisors/1001")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_after_a_link_cut_the_view_is_reloaded_with_one_action_per_queue_and_only_changes(
    stack: Stack,
) -> None:
    sim = stack.simulator
    sim.queue_add("support", "SIP/1001", name="Alice")
    sim.queue_add("support", "SIP/1002", name="Bob")
    _, reg = await stack.api("PUT", "/supervisors/boss", {"queues": ["support"]})
    token = reg["token"]
    first = await collect(stack, token, None, lambda ev: len(of(ev, "queueMember")) >= 2)
    await task.deferLater(stack.service.reactor, 1.1, lambda: None)  # past the throttle
    supervisors = stack.service.center.supervision.sync
    sent = supervisors.actions_sent

    sim.drop_connections()
    sim.queue_pause("SIP/1002", True, "support", "Outage")  # missed by pbxis: the link is down
    after = await collect(
        stack,
        token,
        first[-1]["id"],
        lambda ev: of(ev, "pbxStatus", connected=True) and of(ev, "queueMember"),
        timeout=10,
    )
    assert [e["connected"] for e in of(after, "pbxStatus")] == [False, True]
    # Exactly the difference: Bob's pause; Alice and the callers did not change.
    assert [(e["agent"], e["paused"], e["pausedReason"]) for e in of(after, "queueMember")] == [
        ("1002", True, "Outage")
    ]
    assert of(after, "queueCallers") == []
    assert [e["members"]["paused"] for e in of(after, "queueStats")] == [1]
    # The reload: the support abandon filter again and one QueueStatus for the one queue.
    assert supervisors.actions_sent - sent == 2


@pytest_twisted.ensureDeferred
async def test_after_an_asterisk_restart_the_counters_are_asterisks_new_ones(stack: Stack) -> None:
    import dataclasses

    sim = stack.simulator
    sim.config = sim.pbx.config = dataclasses.replace(sim.config, boot_time=0.05)
    sim.queue_add("sales", "SIP/1001", name="Alice")
    _, reg = await stack.api("PUT", "/supervisors/boss", {"queues": ["sales"]})
    token = reg["token"]
    sim.customer_call("sales", number="385913334444", talk_time=0.2)
    done = await collect(
        stack, token, None, lambda ev: any(e["type"] == "queueStats" and e["completed"] == 1 for e in ev)
    )
    await task.deferLater(stack.service.reactor, 1.1, lambda: None)  # past the throttle
    sim.restart(clean=True)  # app_queue's counters start again from zero
    after = await collect(
        stack,
        token,
        done[-1]["id"],
        lambda ev: of(ev, "pbxStatus", connected=True) and of(ev, "queueStats"),
        timeout=10,
    )
    assert [e["connected"] for e in of(after, "pbxStatus")] == [False, True]
    stats = of(after, "queueStats")[-1]
    assert stats["completed"] == sim.pbx.queue("sales").completed == 0
    # Alice survived the restart (persistent members) in the same state, which keeps its
    # start; only Asterisk's own call count for her began again.
    before = of(done, "queueMember", agent="1001")[-1]
    (alice,) = of(after, "queueMember", agent="1001")
    assert (before["callsTaken"], alice["callsTaken"], alice["lastCall"]) == (1, 0, None)
    assert (alice["status"], alice["since"]) == (before["status"], before["since"])
