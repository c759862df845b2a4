"""Two sites on one Redis (issue #16): real ``twistd pbxis`` processes on one
``redis-server`` and two simulators (``python -m pbxis.simulator``, calls flowing), standing
for PBXes ``east`` and ``west``.

Two collectors name both PBXes and spread them: each holds one lease (``lease_time = 2``)
while both live. A web node serves an SSE client of agent 1001 on each PBX. ``kill -9``
of the node holding ``east`` mid-call: the other collector, holding ``west`` already, is
logged in to east too within ``lease_time + 2`` s; both clients, never disconnected, get
every event exactly once (ids the Redis logs', consecutive, no state repeated), and the
client on west sees nothing at all of the failover: its agent's pauses and unpauses sent
meanwhile answer 200 and their events arrive, there is no ``pbxStatus``, no ``reset``, and
west's lease was never taken over. Then the killed node comes back, the survivor hands
it one PBX, and that node is paused (``SIGSTOP``) past its lease at once: the survivor
takes the PBX back within the bound; resumed (``SIGCONT``), the paused node writes
nothing (the logs stay the clients', once each), says why and exits.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import requests

from pbxis.store.redis_keys import pbx_keys
from tests.redis.redis_proc import RedisServer
from tests.redis.test_redis_daemon import SSEClient
from tests.support.cluster import check_exactly_once, holder_of, holds, node_tables, pbx_tables
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

PREFIX = "sites:"
LEASE = 2.0
PBXES = ("east", "west")
COLLECTORS = ("c1", "c2")


@dataclass
class Sites:
    daemons: Daemons
    redis: redis.Redis
    tmp: Path
    #: node name -> (config, HTTP port)
    nodes: dict[str, tuple[Path, int]]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def port(self, node: str) -> int:
        return self.nodes[node][1]

    def url(self, node: str, path: str) -> str:
        return f"http://127.0.0.1:{self.port(node)}{path}"

    def log(self, node: str) -> Path:
        return self.tmp / f"{node}.log"

    def start(self, node: str) -> None:
        self.daemons.config, self.daemons.http = self.nodes[node]
        self.procs[node] = self.daemons.start(wait=False, log=self.log(node))

    def collectors(self) -> dict[str, int]:
        return {name: self.port(name) for name in COLLECTORS}

    def holder(self, pbx: str) -> str | None:
        return holder_of(self.collectors(), pbx)

    def output(self, node: str) -> str:
        return self.log(node).read_text("utf-8", errors="replace")

    def metrics(self, node: str) -> str:
        return requests.get(self.url(node, "/metrics"), timeout=10).text

    def subscribe(self, pbx: str) -> SSEClient:
        answer = requests.put(
            self.url("web", f"/pbx/{pbx}/agents/1001"), json={"queues": ["sales"]}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        client = SSEClient()
        client.open(self.url("web", f"/stream/{answer.json()['token']}/sse"))
        return client


def spread(sites: Sites) -> bool:
    """Each PBX held by one collector, and no collector holding both."""
    holders = [sites.holder(pbx) for pbx in PBXES]
    return None not in holders and len(set(holders)) == len(PBXES)


def web_ready(sites: Sites) -> bool:
    """The web node answers, and sees each PBX served by its holder."""
    if health(sites.port("web"))[0] != 200:
        return False
    for pbx in PBXES:
        answer = requests.get(sites.url("web", f"/health/pbx/{pbx}"), timeout=5)
        if answer.status_code != 200 or answer.json().get("status") != "ok":
            return False
    return True


@pytest.fixture
def sites(tmp_path: Path, redis_server: RedisServer) -> Iterator[Sites]:
    r = redis.Redis(port=redis_server.port, decode_responses=True)
    r.flushall()
    with running_daemons(tmp_path, simulator=False) as daemons:
        ami = {pbx: free_port() for pbx in PBXES}
        sims = [start_simulator(port, *CALLS, seed=n) for n, port in enumerate(ami.values(), start=3)]
        try:
            tables = pbx_tables(
                ami, extra="reconnect_min_delay = 0.1\nreconnect_max_delay = 0.5\naction_timeout = 2.0\n"
            )
            nodes = {}
            for name, role in (("c1", "collector"), ("c2", "collector"), ("web", "web")):
                port = free_port()
                path = tmp_path / f"{name}.toml"
                node = node_tables(redis_server.url, PREFIX, role, name, LEASE)
                path.write_text(
                    f'{tables}\n[http]\nlisten = "tcp:{port}:interface=127.0.0.1"\n\n'
                    f"[agents]\ngrace_period = 600\n{node}",
                    "utf-8",
                )
                nodes[name] = (path, port)
            s = Sites(daemons, r, tmp_path, nodes)
            for name in COLLECTORS:
                s.start(name)
            wait_for(lambda: spread(s), 30, "the two collectors holding one PBX each")
            s.start("web")
            wait_for(lambda: web_ready(s), 30, "the web node serving both PBXes")
            yield s
        finally:
            for sim in sims:
                stop(sim)
    r.close()


def log_key(pbx: str) -> str:
    return pbx_keys(PREFIX, pbx).log("1001")


def metric(text: str, name: str, pbx: str) -> float | None:
    """A per-PBX series' value (a counter may carry prometheus' ``_total``)."""
    m = re.search(rf'^{name}(?:_total)?\{{[^}}]*pbx="{pbx}"[^}}]*\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else None


def test_kill_9_of_easts_holder_west_sees_nothing_then_a_paused_holder_writes_nothing(sites: Sites) -> None:
    r = sites.redis
    east, west = sites.holder("east"), sites.holder("west")
    assert east and west and east != west
    standing = sites.metrics(east)
    assert metric(standing, "pbxis_pbx_lease_held", "east") == 1.0, standing
    assert metric(standing, "pbxis_pbx_lease_held", "west") != 1.0, standing
    west_takeovers = metric(sites.metrics(west), "pbxis_pbx_lease_takeovers", "west")
    # cumulative: the survivor may have held east at the start, before the spread handed it over
    east_takeovers = metric(sites.metrics(west), "pbxis_pbx_lease_takeovers", "east") or 0.0
    clients = {pbx: sites.subscribe(pbx) for pbx in PBXES}
    try:
        wait_for(
            lambda: all(len(c.events) >= 15 for c in clients.values()), 40, "calls flowing on both PBXes"
        )
        west_before = len(clients["west"].events)
        sites.procs[east].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        sites.procs[east].wait(10)
        # west's agent works on while east has no holder: its pauses answer 200, events follow
        pauses = Toggles(sites, "west")
        wait_for(
            lambda: pauses.toggle() and holds(sites.port(west), "east"),
            LEASE + 10,
            "the survivor logged in to east",
            step=0.2,
        )
        took = time.monotonic() - killed
        assert took <= LEASE + 2, took
        pauses.finish()
        assert pauses.reasons, "no pause sent during the takeover"
        wait_for(lambda: pauses.reasons <= pauses.seen(clients["west"]), 10, "west's pause events")
        wait_for(lambda: on_web(sites, "east") == west, 10, f"the web node naming {west} as east's holder")
        wait_for(grown(clients, 5), 30, "both PBXes' events after the takeover")
        west_after = len(clients["west"].events)
        metrics = sites.metrics(west)
        assert metric(metrics, "pbxis_pbx_lease_held", "east") == 1.0, metrics
        assert metric(metrics, "pbxis_pbx_lease_takeovers", "east") == east_takeovers + 1, metrics
        assert metric(metrics, "pbxis_pbx_lease_takeovers", "west") == west_takeovers, metrics

        # the partition: the killed node back, the survivor hands it one PBX; that node is
        # paused (SIGSTOP) past its lease at once: the survivor takes the PBX back within the
        # bound (a PBX it just gave away, to a node now gone)
        sites.start(east)
        wait_for(lambda: spread(sites), 30, f"{east} back, one PBX handed over to it")
        (handed,) = [pbx for pbx in PBXES if sites.holder(pbx) == east]
        paused = sites.procs[east]
        paused.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            wait_for(lambda: holds(sites.port(west), handed), LEASE + 10, f"{west} taking {handed} back")
            took = time.monotonic() - stopped
            wait_for(grown(clients, 3), 30, "events from the new holder")
        finally:
            paused.send_signal(signal.SIGCONT)
        retaken = took
        wait_for(lambda: "lost the AMI lease" in sites.output(east), 15, f"{east} saying it stepped down")
        wait_for(grown(clients, 5), 30, "events after the old holder stepped down")
        time.sleep(0.5)
    finally:
        for client in clients.values():
            client.close()
    for pbx, client in clients.items():
        check_exactly_once(client, r, log_key(pbx))
        assert {e["pbx"] for e in client.events} == {pbx}
        assert not [e for e in client.events if e["type"] in ("reset", "closed")], pbx
    # nothing of east's failover on west: no pbxStatus, no gap (above), its lease untouched
    during = clients["west"].events[west_before:west_after]
    assert not [e for e in during if e["type"] == "pbxStatus"], during
    output = sites.output(east)
    assert "paused" in output and "another writer took over" not in output, output[-3000:]
    paused.wait(15)  # it exits, to come back as a standby (Restart=always)
    # the bound holds also for a PBX just handed over (its giver took it back)
    assert retaken <= LEASE + 2, (handed, retaken)


class Toggles:
    """Pauses and unpauses of 1001 on one PBX through the web node, each pause its reason."""

    def __init__(self, sites: Sites, pbx: str) -> None:
        self.sites, self.pbx = sites, pbx
        self.reasons: set[str] = set()
        self._paused = False

    def toggle(self) -> bool:
        """One pause or unpause; asserts it answered 200. True, for ``wait_for``'s ``and``."""
        action = "unpause" if self._paused else "pause"
        body = {} if self._paused else {"reason": f"during-{len(self.reasons)}"}
        path = f"/pbx/{self.pbx}/agents/1001/queues/sales/{action}"
        answer = requests.post(self.sites.url("web", path), json=body, timeout=10)
        assert answer.status_code == 200, (action, answer.status_code, answer.text)
        if not self._paused:
            self.reasons.add(body["reason"])
        self._paused = not self._paused
        return True

    def finish(self) -> None:
        """Leave the agent unpaused (the calls go on)."""
        if self._paused:
            self.toggle()

    @staticmethod
    def seen(client: SSEClient) -> set[str]:
        return {
            str(e.get("pausedReason"))
            for e in client.events
            if e["type"] == "queueMemberStatus" and e.get("paused")
        }


def on_web(sites: Sites, pbx: str) -> str | None:
    """Who the web node says holds ``pbx`` (from the holder's status in Redis)."""
    answer = requests.get(sites.url("web", f"/health/pbx/{pbx}"), timeout=10)
    holder = answer.json().get("holder")
    return str(holder) if holder else None


def grown(clients: dict[str, SSEClient], n: int) -> Callable[[], bool]:
    """A predicate: every client has ``n`` more events than now."""
    base = {pbx: len(c.events) for pbx, c in clients.items()}
    return lambda: all(len(c.events) >= base[pbx] + n for pbx, c in clients.items())
