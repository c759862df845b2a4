"""Standby and takeover (issue #16, one PBX): real ``twistd pbxis`` processes on one
``redis-server`` and one simulator (``python -m pbxis.simulator`` with calls flowing).

Two collectors compete for the AMI lease (``lease_time = 2``): one holds it (logged in to
AMI, writing the logs), the other stands by (``/health`` 200, ``standby``, no AMI socket).
A web node serves an SSE client of 1001. Killing the holder with ``kill -9`` mid-call: the
standby is logged in within ``lease_time + 2`` s and the client, never disconnected, gets
every event exactly once (its ids are the Redis log's, 1..N, no duplicate, no repeated
state). Pausing the holder (``SIGSTOP``) past its lease: the standby takes over; resumed
(``SIGCONT``), the old holder writes nothing, drops its link, says why and exits.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.redis.redis_proc import RedisServer
from tests.redis.test_redis_daemon import SSEClient
from tests.support.cluster import check_exactly_once, logged_in, node_tables, standby
from tests.support.processes import (
    CALLS,
    Daemons,
    free_port,
    health,
    running_daemons,
    start_simulator,
    stop,
    wait_for,
)

pytestmark = pytest.mark.slow

PREFIX = "lease:"
LEASE = 2.0


def config(daemons: Daemons, tmp_path: Path, server: RedisServer, name: str, role: str) -> tuple[Path, int]:
    port = free_port()
    base = daemons.config.read_text("utf-8").replace(f"tcp:{daemons.http}:", f"tcp:{port}:")
    base = base.replace("[ami]\n", "[ami]\naction_timeout = 2.0\n", 1)
    path = tmp_path / f"{name}.toml"
    tables = node_tables(server.url, PREFIX, role, name, LEASE)
    path.write_text(f"{base}\n[agents]\ngrace_period = 600\n{tables}", "utf-8")
    return path, port


def start(daemons: Daemons, node: tuple[Path, int], *, wait: bool = True) -> subprocess.Popen[bytes]:
    daemons.config, daemons.http = node
    return daemons.start(wait=wait)


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[dict[str, Any]]:
    r = redis.Redis(port=redis_server.port, decode_responses=True)
    r.flushall()
    with running_daemons(tmp_path, simulator=False) as daemons:
        sim = start_simulator(daemons.ami_port, *CALLS, seed=3)
        try:
            nodes = {
                name: config(daemons, tmp_path, redis_server, name, role)
                for name, role in (("c1", "collector"), ("c2", "collector"), ("web", "web"))
            }
            procs = {"c1": start(daemons, nodes["c1"])}
            wait_for(lambda: logged_in(nodes["c1"][1]), 20, "c1 holding the lease, logged in")
            procs["c2"] = start(daemons, nodes["c2"], wait=False)
            wait_for(lambda: standby(nodes["c2"][1]), 20, "c2 standing by")
            procs["web"] = start(daemons, nodes["web"])
            yield {"daemons": daemons, "nodes": nodes, "procs": procs, "redis": r}
        finally:
            stop(sim)
    r.close()


def url(cluster: dict[str, Any], node: str, path: str) -> str:
    return f"http://127.0.0.1:{cluster['nodes'][node][1]}{path}"


def subscribe(cluster: dict[str, Any]) -> SSEClient:
    answer = requests.put(url(cluster, "web", "/agents/1001"), json={"queues": ["sales"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    client = SSEClient()
    client.open(url(cluster, "web", f"/stream/{answer.json()['token']}/sse"))
    return client


def test_kill_9_of_the_holder_the_standby_is_logged_in_within_the_bound_every_event_once(
    cluster: dict[str, Any],
) -> None:
    r, nodes, procs = cluster["redis"], cluster["nodes"], cluster["procs"]
    assert standby(nodes["c2"][1]) and not logged_in(nodes["c2"][1])
    refused = requests.get(url(cluster, "c2", "/queues"), timeout=10)
    assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
    # the standby names the holder once its first attempt got its answer
    wait_for(lambda: health(nodes["c2"][1])[1]["lease"]["holder"] == "c1", 10, "the holder seen")
    standing = requests.get(url(cluster, "c2", "/metrics"), timeout=10).text
    assert "pbxis_redis_lease_takeovers_total 0.0" in standing and 'lease_holder{node="c1"} 1.0' in standing
    assert r.get(f"{PREFIX}collector") == "c1"
    client = subscribe(cluster)
    try:
        wait_for(lambda: len(client.events) >= 15, 30, "calls flowing to 1001")
        procs["c1"].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            # a command sent during the takeover: 503 (no holder) or 504 (nobody took it)
            pending = pool.submit(
                requests.post, url(cluster, "web", "/agents/1001/originate"),
                json={"number": "0911234567"}, timeout=30,
            )  # fmt: skip
            procs["c1"].wait(10)
            wait_for(lambda: logged_in(nodes["c2"][1]), LEASE + 10, "the standby logged in")
            took = time.monotonic() - killed
            answer = pending.result(30)
        assert took <= LEASE + 2, took
        assert r.get(f"{PREFIX}collector") == "c2"
        assert answer.status_code in (503, 504), answer.text
        if answer.status_code == 504:
            assert "not run and never will be" in answer.json()["error"]["message"]
        # never run later by the new holder
        assert not [k for k in r.scan_iter(f"{PREFIX}command:*") if r.get(k) == "c2"]
        before = len(client.events)
        wait_for(lambda: len(client.events) >= before + 10, 30, "events after the takeover")
        time.sleep(0.5)
    finally:
        client.close()
    check_exactly_once(client, r, f"{PREFIX}log:1001")
    assert not [e for e in client.events if e["type"] in ("reset", "closed")]
    metrics = requests.get(url(cluster, "c2", "/metrics"), timeout=10).text
    assert "pbxis_redis_lease_takeovers_total 1.0" in metrics
    assert 'pbxis_redis_lease_holder{node="c2"} 1.0' in metrics


def test_a_paused_holder_writes_nothing_after_the_takeover_and_steps_down(cluster: dict[str, Any]) -> None:
    r, nodes, procs = cluster["redis"], cluster["nodes"], cluster["procs"]
    client = subscribe(cluster)
    old = procs["c1"]
    try:
        wait_for(lambda: len(client.events) >= 10, 30, "calls flowing to 1001")
        old.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: logged_in(nodes["c2"][1]), LEASE + 10, "the standby logged in")
            before = len(client.events)
            wait_for(lambda: len(client.events) >= before + 5, 30, "events from the new holder")
        finally:
            old.send_signal(signal.SIGCONT)
        output = old.communicate(timeout=15)[0].decode()
        assert "lost the AMI lease" in output and "paused" in output, output[-3000:]
        assert "another writer took over" not in output  # it did not even try
        before = len(client.events)
        wait_for(lambda: len(client.events) >= before + 5, 30, "events after the old holder stepped down")
        time.sleep(0.5)
    finally:
        client.close()
    check_exactly_once(client, r, f"{PREFIX}log:1001")
    assert r.get(f"{PREFIX}collector") == "c2"
