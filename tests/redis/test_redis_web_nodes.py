"""Two web nodes and the node holding the AMI link, on one Redis: real ``twistd pbxis`` processes.

The writer is a collector node (AMI link, no HTTP API); the web nodes have no AMI link
and send their queue actions and originates to it through Redis. A client drops on web
node A and resumes on web node B with ``Last-Event-ID``: it gets exactly the events it
missed, once. Registering on B gives A's token; a token issued on B works on A at once.
A client on a web node keeps its registration alive (the writer has no client of it); a
registration with no client anywhere expires once, and every node forgets its token;
``DELETE`` on one web node ends the clients of every node with one ``closed``.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from tests.redis.redis_proc import RedisServer
from tests.redis.test_redis_daemon import SSEClient
from tests.support.processes import free_port, health, running_daemons, wait_for

pytestmark = pytest.mark.slow

GRACE = 2.0


def node_config(base: str, tmp_path: Path, name: str, role: str, http: int, redis_url: str) -> Path:
    """The shared config (``[ami]`` of the simulator) with this node's role, name and port."""
    text = base.replace("tcp:0:", f"tcp:{http}:")
    path = tmp_path / f"{name}.toml"
    path.write_text(
        text
        + f"""
[agents]
grace_period = {GRACE}

[redis]
url = "{redis_url}"
key_prefix = "nodes:"

[node]
role = "{role}"
name = "{name}"
""",
        "utf-8",
    )
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, Any]]:
    server = RedisServer().start()
    try:
        with running_daemons(tmp_path) as daemons:
            ports = {"writer": daemons.http, "a": free_port(), "b": free_port()}
            base = daemons.config.read_text("utf-8").replace(f"tcp:{daemons.http}:", "tcp:0:")
            configs = {}
            for name, role in (("writer", "collector"), ("a", "web"), ("b", "web")):
                daemons.config = configs[name] = node_config(
                    base, tmp_path, name, role, ports[name], server.url
                )
                daemons.http = ports[name]
                daemons.start()
            yield {
                "ports": ports,
                "redis": redis.Redis(port=server.port, decode_responses=True),
                "daemons": daemons,
                "configs": configs,
            }
    finally:
        server.close()


def url(cluster: dict[str, Any], node: str, path: str) -> str:
    return f"http://127.0.0.1:{cluster['ports'][node]}{path}"


def register(cluster: dict[str, Any], node: str, agent: str) -> str:
    answer = requests.put(url(cluster, node, f"/agents/{agent}"), json={"queues": ["sales"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def pause(cluster: dict[str, Any], on: bool, node: str = "a") -> None:
    """A queue action on a web node: it runs on the collector."""
    action = "pause" if on else "unpause"
    r = requests.post(url(cluster, node, f"/agents/1001/queues/sales/{action}"), json={}, timeout=10)
    assert r.status_code == 200, r.text


def paused_states(events: list[dict[str, Any]]) -> list[bool]:
    return [e["paused"] for e in events if e["type"] == "queueMemberStatus"]


def closed_in_log(r: redis.Redis, agent: str) -> list[dict[str, Any]]:
    entries = r.xrange(f"nodes:log:{agent}")
    return [json.loads(fields["j"]) for _, fields in entries if fields["t"] == "closed"]


def test_two_web_nodes_and_a_writer_share_tokens_logs_and_grace(cluster: dict[str, Any]) -> None:
    r = cluster["redis"]
    for node in ("a", "b"):
        status, body = health(cluster["ports"][node])
        assert status == 200 and body["redis"]["connected"], body
    # the same token on any node
    token = register(cluster, "a", "1001")
    assert register(cluster, "b", "1001") == token
    idle = register(cluster, "b", "1002")  # nobody will read it: it expires once
    registered_at = time.monotonic()
    # a token issued on B a moment ago works on A at once
    fresh = register(cluster, "b", "1003")
    assert requests.get(url(cluster, "a", f"/stream/{fresh}/poll?timeout=0"), timeout=10).status_code == 200
    # GET /agents from a web node: the writer's document
    state = requests.get(url(cluster, "b", "/agents/1001"), timeout=10)
    assert state.status_code == 200 and state.json()["agent"] == "1001", state.text
    assert "queues" in requests.get(url(cluster, "a", "/queues"), timeout=10).json()

    client = SSEClient()
    client.open(url(cluster, "a", f"/stream/{token}/sse"))
    wait_for(lambda: paused_states(client.events), 15, "the snapshot on web node A")
    assert client.events[0]["id"] >= 1
    pause(cluster, True)
    wait_for(lambda: True in paused_states(client.events), 15, "the pause, through web node A")

    client.close()  # dropped on A
    seen = list(client.events)
    last_seen = int(client.last_id or 0)
    pause(cluster, False, "b")
    pause(cluster, True, "b")

    def logged_after() -> list[dict[str, Any]]:
        return [json.loads(f["j"]) for _, f in r.xrange("nodes:log:1001", f"({last_seen}-0", "+")]

    def two_more() -> list[dict[str, Any]] | None:
        missed = logged_after()
        return missed if len(paused_states(missed)) >= 2 else None

    missed = wait_for(two_more, 15, "the two events missed, in Redis")
    client.events = []
    client.open(url(cluster, "b", f"/stream/{token}/sse"))  # resumes on B with Last-Event-ID
    wait_for(lambda: len(client.events) >= len(missed), 15, "the missed events on web node B")
    time.sleep(0.3)  # nothing more may come
    assert [e["id"] for e in client.events] == [e["id"] for e in missed]
    assert client.events == missed  # exactly the missed events, once, none seen before
    assert not {e["id"] for e in seen} & {e["id"] for e in client.events}
    assert [e["id"] for e in seen + client.events] == list(range(seen[0]["id"], client.events[-1]["id"] + 1))

    # an originate sent to B runs on the collector: 202
    number = {"number": "0911234567"}
    sent = requests.post(url(cluster, "b", "/agents/1001/originate"), json=number, timeout=10)
    assert sent.status_code == 202 and sent.json()["actionId"], sent.text

    # the idle registration expires once; every node forgets its token
    def gone(node: str) -> bool:
        answer = requests.get(url(cluster, node, f"/stream/{idle}/poll?timeout=0"), timeout=10)
        return answer.status_code == 404

    wait_for(lambda: closed_in_log(r, "1002"), GRACE + 15, "the expiry of 1002")
    assert time.monotonic() - registered_at >= GRACE - 0.2
    wait_for(lambda: gone("a") and gone("b"), 10, "1002's token forgotten on both web nodes")
    assert [c["reason"] for c in closed_in_log(r, "1002")] == ["expired"]

    # 1001 outlives its grace period: its client on B keeps it (the writer has none)
    time.sleep(max(0.0, registered_at + GRACE + 1.5 - time.monotonic()))
    assert not closed_in_log(r, "1001")
    other = SSEClient()
    other.last_id = "999999"  # an id the log cannot serve: reset, then a fresh snapshot
    other.open(url(cluster, "a", f"/stream/{token}/sse"))
    wait_for(lambda: paused_states(other.events), 15, "a second client's snapshot on A")
    assert other.events[0]["type"] == "reset"
    assert paused_states(other.events) == [True]

    # the collector is killed; a DELETE on a web node meanwhile is done when it is back
    # (its position in the registrations stream is in Redis), and the clients of both
    # nodes, served all along, get one closed
    daemons = cluster["daemons"]
    collector = daemons.started[0]
    collector.send_signal(signal.SIGKILL)
    collector.wait(10)
    assert requests.delete(url(cluster, "b", "/agents/1001"), timeout=10).status_code == 204
    time.sleep(GRACE)  # the web nodes' clients keep 1001 alive meanwhile
    assert not any(e["type"] == "closed" for e in client.events + other.events)
    daemons.config, daemons.http = cluster["configs"]["writer"], cluster["ports"]["writer"]
    daemons.start()
    for c in (client, other):
        wait_for(lambda c=c: any(e["type"] == "closed" for e in c.events), 15, "closed on every node")
    time.sleep(0.3)
    for c in (client, other):
        assert [e["reason"] for e in c.events if e["type"] == "closed"] == ["unregistered"]
        c.close()
    assert [c["reason"] for c in closed_in_log(r, "1001")] == ["unregistered"]
    assert requests.get(url(cluster, "a", f"/stream/{token}/poll?timeout=0"), timeout=10).status_code == 404
