"""A ``collector`` node (real ``twistd pbxis``, real ``redis-server``, the simulator process):
it holds the AMI link, tracks and writes to Redis as an ``all`` node does, listens for
``/health`` and ``/metrics`` only, and runs the commands a node without AMI sends through
Redis once: 202 when it ran, 503 with ``Retry-After`` with no collector, 504 "may or may
not have run" when it was killed mid-command, and never sent again after its restart.

The web side is a web node (``twistd pbxis``, ``role = "web"``, no AMI link) on the same Redis.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from pbxis.store.redis_keys import Keys, token_digest
from pbxis.store.redis_scripts import REGISTER
from tests.redis.redis_proc import RedisServer
from tests.support.processes import Daemons, free_port, health, running_daemons, wait_for

pytestmark = pytest.mark.slow

PREFIX = "coll:"
AGENTS = ("1001", "1002")


class AMIWatch:
    """Another AMI session on the simulator: counts the channels it opens on each agent's
    phone (each originate rings the phone once: one ``Newchannel`` for ``SIP/<agent>-``)."""

    def __init__(self, port: int) -> None:
        self.sock = wait_for(lambda: _connect(port), 20, "the simulator's AMI port")
        self.sock.sendall(b"Action: Login\r\nUsername: pbxis\r\nSecret: pbxis-secret\r\n\r\n")
        self.channels: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        self.sock.settimeout(None)
        try:
            while chunk := self.sock.recv(65536):
                buf += chunk
                *messages, buf = buf.split(b"\r\n\r\n")
                for message in messages:
                    lines = dict(
                        line.split(": ", 1) for line in message.decode().split("\r\n") if ": " in line
                    )
                    if lines.get("Event") == "Newchannel":
                        self.channels.append(lines.get("Channel", ""))
        except OSError:
            pass

    def rung(self, agent: str) -> int:
        return sum(1 for c in self.channels if c.startswith(f"SIP/{agent}-"))

    def close(self) -> None:
        self.sock.close()


def _connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    server = RedisServer().start()
    extra = f"""
[redis]
url = "{server.url}"
key_prefix = "{PREFIX}"

[node]
role = "collector"
name = "coll-1"

[agents]
grace_period = 600
"""
    r = redis.Redis(port=server.port, decode_responses=True)
    keys = Keys(PREFIX)
    tokens = {}
    for agent in AGENTS:  # as a web node registers them (the collector loads them at start)
        token = f"token-{agent}"
        r.eval(REGISTER.source, 6, keys.reg(agent), keys.tokens, keys.alive, keys.log(agent),
               keys.state(agent), keys.agents,
               agent, token, token_digest(token), json.dumps(["sales"]), "null", 1, 600_000)  # fmt: skip
        tokens[agent] = token
    try:
        with running_daemons(tmp_path, extra) as daemons:
            watch = AMIWatch(daemons.ami_port)
            try:
                yield {"daemons": daemons, "redis": r, "server": server, "watch": watch, "tokens": tokens}
            finally:
                watch.close()
    finally:
        r.close()
        server.close()


def test_a_collector_tracks_into_redis_and_listens_for_health_and_metrics_only(
    stack: dict[str, Any],
) -> None:
    daemons: Daemons = stack["daemons"]
    daemons.start()
    base = f"http://127.0.0.1:{daemons.http}"
    status, body = health(daemons.http)
    assert status == 200 and body["ami"]["connected"], body
    assert body["redis"]["status"] == "ok" and body["redis"]["node"] == "coll-1"
    assert body["agents"] == len(AGENTS)
    wait_for(lambda: health(daemons.http)[1]["redis"]["commandLease"], 10, "the collector lease")
    metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert "pbxis_redis_up 1.0" in metrics and "pbxis_redis_collector_lease 1.0" in metrics
    token = stack["tokens"]["1001"]
    for method, path in (
        ("PUT", "/agents/1001"),
        ("GET", "/agents/1001"),
        ("POST", "/agents/1001/originate"),
        ("GET", "/queues"),
        ("GET", f"/stream/{token}/sse"),
        ("GET", f"/stream/{token}/poll"),
        ("GET", "/openapi.json"),
        ("GET", "/"),
    ):
        answer = requests.request(method, base + path, json={}, timeout=10)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert "/health and /metrics only" in answer.json()["error"]["message"]
    # tracked and written as an 'all' node does: each agent's state and log are in Redis
    r: redis.Redis = stack["redis"]
    wait_for(lambda: all(r.hlen(Keys(PREFIX).state(a)) for a in AGENTS), 10, "the agents' states")
    assert all(r.xlen(Keys(PREFIX).log(a)) > 0 for a in AGENTS)
    assert r.get(Keys(PREFIX).collector) == "coll-1"


def claims_of(r: redis.Redis) -> int:
    """Commands the collector took (``command:{id}`` = the collector's name)."""
    return sum(1 for k in r.scan_iter(f"{PREFIX}command:*") if r.get(k) == "coll-1")


def web_node(daemons: Daemons, tmp_path: Path, server: RedisServer) -> int:
    """Start a web node (``twistd pbxis``, no AMI link) on the collector's Redis; its port."""
    port = free_port()
    path = tmp_path / "web.toml"
    path.write_text(
        f"""
[ami]
action_timeout = 2.0

[http]
listen = "tcp:{port}:interface=127.0.0.1"

[agents]
grace_period = 600

[redis]
url = "{server.url}"
key_prefix = "{PREFIX}"

[node]
role = "web"
name = "web-1"
""",
        "utf-8",
    )
    collector_config, collector_http = daemons.config, daemons.http
    daemons.config, daemons.http = path, port
    try:
        daemons.start()
    finally:
        daemons.config, daemons.http = collector_config, collector_http
    return port


def test_an_originate_sent_to_a_web_node_runs_once_on_the_collector_and_never_again(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    daemons: Daemons = stack["daemons"]
    watch: AMIWatch = stack["watch"]
    r: redis.Redis = stack["redis"]
    keys = Keys(PREFIX)
    collector = daemons.start()
    web = f"http://127.0.0.1:{web_node(daemons, tmp_path, stack['server'])}"

    def originate(agent: str) -> requests.Response:
        return requests.post(f"{web}/agents/{agent}/originate", json={"number": "0911234567"}, timeout=30)

    def has_lease() -> bool:
        return bool(r.get(keys.collector) == "coll-1")

    wait_for(has_lease, 10, "the collector lease")
    # registered on the web node; the collector tracks it; the originate runs there once
    answer = requests.put(f"{web}/agents/1003", json={"queues": ["sales"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    wait_for(lambda: health(daemons.http)[1]["agents"] == len(AGENTS) + 1, 10, "the collector's registration")
    answer = originate("1003")
    assert answer.status_code == 202, answer.text
    assert answer.json()["actionId"]
    wait_for(lambda: watch.rung("1003") == 1, 10, "the phone ringing")
    # the collector's checks and policy answer as a local command's would
    assert originate("1999").status_code == 404  # registered nowhere
    bad = requests.post(f"{web}/agents/1001/queues/nosuch/pause", json={}, timeout=30)
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "not_logged_in", bad.text

    # no collector (a clean stop lets the lease go at once): 503 with Retry-After
    collector.send_signal(signal.SIGTERM)
    collector.wait(15)
    answer = originate("1001")
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0, answer.text
    assert answer.json()["error"]["code"] == "pbx_unavailable"

    # a command in flight when the collector is killed: it took the command (its claim is
    # in Redis) while Asterisk was not answering; the web node says it may or may not have run
    collector = daemons.start()
    wait_for(has_lease, 10, "the collector lease")
    sim = daemons.simulator
    assert sim is not None
    sim.send_signal(signal.SIGSTOP)
    try:
        before = claims_of(r)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(originate, "1001")
            wait_for(lambda: claims_of(r) == before + 1, 10, "the collector's claim")
            claims = claims_of(r)
            collector.send_signal(signal.SIGKILL)
            collector.wait(10)
            answer = pending.result(30)
    finally:
        sim.send_signal(signal.SIGCONT)
    assert answer.status_code == 504, answer.text
    assert "may or may not have run" in answer.json()["error"]["message"]
    # Asterisk may still read it from the dead link's buffer once it runs again: at most once
    time.sleep(1.0)
    rung = watch.rung("1001")
    assert rung in (0, 1)
    # the collector comes back: the command is not sent again, new ones run once
    daemons.start()
    wait_for(has_lease, 10, "the collector lease")
    answer = originate("1002")
    assert answer.status_code == 202, answer.text
    wait_for(lambda: watch.rung("1002") == 1, 10, "the other phone ringing")
    time.sleep(1.0)
    assert watch.rung("1001") == rung and watch.rung("1002") == 1 and watch.rung("1003") == 1
    assert claims_of(r) == claims + 1  # the one after the restart
