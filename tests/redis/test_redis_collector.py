"""A ``collector`` node (real ``twistd pbxis``, real ``redis-server``, the simulator process):
it holds the AMI link, tracks and writes to Redis as an ``all`` node does, listens for
``/health`` and ``/metrics`` only, and runs the commands a node without AMI sends through
Redis once: 202 when it ran, 503 with ``Retry-After`` with no collector, 504 "may or may
not have run" when it was killed mid-command, and never sent again after its restart.

The web side of the command path is a web node's engine and web app in this process
(``CallCenter(relay=CommandSender)`` behind ``build_app``, on loopback): the web role's
own daemon is built on the ``webnode`` branch.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import redis
import requests
from twisted.internet import defer, reactor, task, threads
from twisted.web.server import Site

from pbxis.config import parse_config
from pbxis.engine import CallCenter
from pbxis.store.redis_keys import Keys, token_digest
from pbxis.store.redis_link import RedisLink
from pbxis.store.redis_node import RedisNode
from pbxis.store.redis_scripts import REGISTER
from pbxis.web.app import build_app
from tests.redis.redis_proc import RedisServer
from tests.support.processes import Daemons, health, running_daemons, wait_for

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
    # tracked and written as an 'all' node does: each agent's state and log are in Redis
    r: redis.Redis = stack["redis"]
    wait_for(lambda: all(r.hlen(Keys(PREFIX).state(a)) for a in AGENTS), 10, "the agents' states")
    assert all(r.xlen(Keys(PREFIX).log(a)) > 0 for a in AGENTS)
    assert r.get(Keys(PREFIX).collector) == "coll-1"


async def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


@pytest_twisted.async_yield_fixture
async def web(stack: dict[str, Any]) -> AsyncIterator[str]:
    """A web node's command side in this process: its engine relays to the collector."""
    server: RedisServer = stack["server"]
    config = parse_config(
        {
            "redis": {"url": server.url, "key_prefix": PREFIX},
            "node": {"role": "web", "name": "web-1"},
            "ami": {"action_timeout": 2},
        }
    )
    assert config.redis is not None
    link = RedisLink(config.redis, reactor)
    link.start()
    node = RedisNode(config, link, reactor)
    sender = node.send()
    node.connect()
    await link.when_connected(10)
    await node.start()
    center = CallCenter(reactor, config, relay=sender)
    app = build_app(center, config.http, clock=reactor, client_routes=False)
    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    try:
        yield f"http://127.0.0.1:{port.getHost().port}"
    finally:
        await port.stopListening()
        await node.stop()
        await link.stop()


def claims_of(r: redis.Redis) -> int:
    """Commands the collector took (``command:{id}`` = the collector's name)."""
    return sum(1 for k in r.scan_iter(f"{PREFIX}command:*") if r.get(k) == "coll-1")


async def originate(base: str, agent: str) -> requests.Response:
    answer: requests.Response = await threads.deferToThread(
        requests.post, f"{base}/agents/{agent}/originate", json={"number": "0911234567"}, timeout=30
    )
    return answer


@pytest_twisted.ensureDeferred
async def test_an_originate_from_a_web_node_runs_once_on_the_collector_and_never_again(
    stack: dict[str, Any], web: str
) -> None:
    daemons: Daemons = stack["daemons"]
    watch: AMIWatch = stack["watch"]
    r: redis.Redis = stack["redis"]
    collector = daemons.start()
    await until(lambda: r.get(Keys(PREFIX).collector) == "coll-1", 10, "the collector lease")

    answer = await originate(web, "1001")
    assert answer.status_code == 202, answer.text
    assert answer.json()["actionId"]
    await until(lambda: watch.rung("1001") == 1, 10, "the phone ringing")
    # the collector's own checks and policy answer as a local command's would
    assert (await originate(web, "1999")).status_code == 404  # not registered
    bad = await threads.deferToThread(
        requests.post, f"{web}/agents/1001/queues/nosuch/pause", json={}, timeout=30
    )
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "not_logged_in", bad.text

    # no collector (a clean stop lets the lease go at once): 503 with Retry-After
    collector.send_signal(signal.SIGTERM)
    collector.wait(15)
    answer = await originate(web, "1001")
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0, answer.text
    assert answer.json()["error"]["code"] == "pbx_unavailable"

    # a command in flight when the collector is killed: it was taken (its claim is in
    # Redis) while Asterisk was not answering; the web node says it may or may not have run
    collector = daemons.start()
    await until(lambda: r.get(Keys(PREFIX).collector) == "coll-1", 10, "the collector lease")
    sim = daemons.simulator
    assert sim is not None
    sim.send_signal(signal.SIGSTOP)
    try:
        before = claims_of(r)
        pending = defer.ensureDeferred(originate(web, "1001"))
        await until(lambda: claims_of(r) == before + 1, 10, "the collector's claim")
        claims = claims_of(r)
        collector.send_signal(signal.SIGKILL)
        collector.wait(10)
        answer = await pending
    finally:
        sim.send_signal(signal.SIGCONT)
    assert answer.status_code == 504, answer.text
    assert "may or may not have run" in answer.json()["error"]["message"]
    # Asterisk may still read it from the dead link's buffer once it runs again: at most once
    await task.deferLater(reactor, 1.0, lambda: None)
    rung = watch.rung("1001")
    assert rung in (1, 2)
    # the collector comes back: the command is not sent again, new ones run once
    daemons.start()
    await until(lambda: r.get(Keys(PREFIX).collector) == "coll-1", 10, "the collector lease")
    answer = await originate(web, "1002")
    assert answer.status_code == 202, answer.text
    await until(lambda: watch.rung("1002") == 1, 10, "the other phone ringing")
    await task.deferLater(reactor, 1.0, lambda: None)
    assert watch.rung("1001") == rung and watch.rung("1002") == 1
    assert claims_of(r) == claims + 1  # the one after the restart
