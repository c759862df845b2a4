"""``kill -9`` the daemon on Redis and start it again: same token, the SSE client resumes with
Last-Event-ID and gets every event exactly once, and the rebuild adds only real changes.

Real processes: ``redis-server``, the simulator (``python -m pbxis.simulator``) and
``twistd pbxis`` with a ``[redis]`` table.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.redis.redis_proc import RedisServer
from tests.support.processes import health, running_daemons, wait_for

pytestmark = pytest.mark.slow

class SSEClient:
    """A browser's EventSource, reduced: reads events on a thread, resumes with Last-Event-ID."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.last_id: str | None = None
        self._thread: threading.Thread | None = None
        self._response: requests.Response | None = None

    def open(self, url: str) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_id is not None:
            headers["Last-Event-ID"] = self.last_id
        self._response = requests.get(url, headers=headers, stream=True, timeout=30)
        assert self._response.status_code == 200, self._response.text
        self._thread = threading.Thread(target=self._read, args=(self._response,), daemon=True)
        self._thread.start()

    def _read(self, response: requests.Response) -> None:
        event_id, data = None, []
        try:
            for raw in response.iter_lines(decode_unicode=True):
                if raw == "":
                    if data:
                        self.events.append(json.loads("\n".join(data)))
                        self.last_id = event_id
                    event_id, data = None, []
                elif raw.startswith("id:"):
                    event_id = raw[3:].strip()
                elif raw.startswith("data:"):
                    data.append(raw[5:].strip())
        except (requests.RequestException, OSError, AttributeError):
            pass  # the server died under us: what was read is kept

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        if self._thread is not None:
            self._thread.join(5)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, Any]]:
    server = RedisServer(password="redis-pw-not-for-logs").start()
    extra = f"""
[redis]
url = "redis://:{server.password}@127.0.0.1:{server.port}/0"
key_prefix = "kill9:"
"""
    try:
        with running_daemons(tmp_path, extra) as daemons:
            yield {"http": daemons.http, "daemons": daemons.started, "redis": server, "run": daemons}
    finally:
        server.close()


def start_daemon(state: dict[str, Any]) -> subprocess.Popen[bytes]:
    daemon: subprocess.Popen[bytes] = state["run"].start()
    return daemon


def test_kill_9_and_restart_on_the_same_redis_resumes_exactly_once(processes: dict[str, Any]) -> None:
    base = f"http://127.0.0.1:{processes['http']}"
    daemon = start_daemon(processes)
    answer = requests.put(f"{base}/agents/1001", json={"queues": ["sales"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    client = SSEClient()
    client.open(f"{base}/stream/{token}/sse")
    wait_for(lambda: client.events, 10, "the snapshot")
    # a supervisor of the same queue: its board must come back after the crash too
    boss = requests.put(f"{base}/supervisors/boss", json={"queues": ["sales"]}, timeout=10)
    assert boss.status_code == 200, boss.text
    boss_token = boss.json()["token"]
    # the CRM registers again (each login does): same token, and the queues are kept
    again = requests.put(f"{base}/supervisors/boss", json={"queues": ["sales"]}, timeout=10)
    assert again.json()["token"] == boss_token
    wall = SSEClient()
    wall.open(f"{base}/stream/{boss_token}/sse")
    wait_for(lambda: wall.events, 10, "the supervisor's snapshot")

    def members(paused: bool) -> list[dict[str, Any]]:
        return [e for e in wall.events if e["type"] == "queueMember" and e.get("paused") is paused]

    def pause(on: bool, reason: str = "") -> None:
        body = {"reason": reason} if on else {}
        r = requests.post(
            f"{base}/agents/1001/queues/sales/{'pause' if on else 'unpause'}", json=body, timeout=10
        )
        assert r.status_code == 200, r.text

    def paused_events() -> list[dict[str, Any]]:
        return [e for e in client.events if e["type"] == "queueMemberStatus" and e.get("paused")]

    pause(True, "lunch")
    wait_for(lambda: paused_events(), 10, "the pause event")
    time.sleep(0.3)  # the write-behind goes out within 10 ms
    wait_for(lambda: members(True), 10, "the supervisor's pause event")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(10)
    client.close()
    wall.close()
    before = list(client.events)
    assert before, "the client saw nothing before the crash"
    wall_before = len(wall.events)

    daemon = start_daemon(processes)
    assert health(processes["http"])[1]["redis"]["status"] == "ok"
    # the same token works: the CRM does not register again
    client.open(f"{base}/stream/{token}/sse")
    wall.open(f"{base}/stream/{boss_token}/sse")
    time.sleep(1.0)  # the rebuild after the login has run: it must have added nothing
    # the supervisor came back with its board, not only its token (no re-registration)
    board = requests.get(f"{base}/supervisors/boss", timeout=10)
    assert board.status_code == 200, board.text
    after_restart = client.events[len(before) :]
    assert [e["type"] for e in after_restart] == [], after_restart
    pause(False)
    wait_for(lambda: len(client.events) > len(before), 10, "the unpause event")
    wait_for(lambda: members(False), 10, "the supervisor's unpause event: its stream goes on")
    time.sleep(0.3)
    client.close()
    wall.close()
    wall_ids = [e["id"] for e in wall.events]
    assert wall_ids == list(range(wall_ids[0], wall_ids[0] + len(wall_ids))), wall_ids
    assert wall_before < len(wall.events)
    # the restarted writer's rebuild repeats no state the supervisor had (pbxStatus true)
    repeated = [e for e in wall.events[wall_before:] if e["type"] == "pbxStatus"]
    assert not repeated, repeated
    # a supervisor's stream has queueStats, never the agents' queueCount
    assert not {"reset", "queueCount"} & {e["type"] for e in wall.events}, wall.events
    new = client.events[len(before) :]
    ids = [e["id"] for e in client.events]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # consecutive, none twice
    assert [e["type"] for e in client.events].count("reset") == 0
    assert [(e["type"], e.get("paused")) for e in new] == [("queueMemberStatus", False)], new
    log = b"".join(p.stdout.read() for p in processes["daemons"] if p.stdout and p.poll() is not None)
    assert b"Redis" in log and b"redis://***@127.0.0.1" in log  # the URL is logged, masked
    assert b"pbxis-secret" not in log and b"redis-pw-not-for-logs" not in log
    assert b"back without its queues" not in log


def test_redis_restarted_empty_under_load_then_pbxis_killed_loses_nothing(processes: dict[str, Any]) -> None:
    base = f"http://127.0.0.1:{processes['http']}"
    daemon = start_daemon(processes)
    token = requests.put(f"{base}/agents/1001", json={"queues": ["sales"]}, timeout=10).json()["token"]
    client = SSEClient()
    client.open(f"{base}/stream/{token}/sse")
    wait_for(lambda: client.events, 10, "the snapshot")

    def toggle(n: int) -> None:
        for i in range(n):
            action = "pause" if i % 2 == 0 else "unpause"
            body = {"reason": f"r{i}"} if action == "pause" else {}
            r = requests.post(f"{base}/agents/1001/queues/sales/{action}", json=body, timeout=10)
            assert r.status_code == 200, r.text

    toggle(4)
    server: RedisServer = processes["redis"]
    server.stop()  # Redis gone, and it will come back empty (no persistence)
    wait_for(
        lambda: health(processes["http"])[1].get("redis", {}).get("status") == "buffering", 10, "buffering"
    )
    toggle(6)  # served live meanwhile
    wait_for(lambda: len(client.events) >= 11, 10, "the live events")
    assert health(processes["http"])[1]["redis"]["pendingEvents"] >= 6
    server.start()
    wait_for(lambda: health(processes["http"])[1]["redis"]["status"] == "ok", 30, "Redis written again")
    wait_for(lambda: health(processes["http"])[1]["redis"]["pendingEvents"] == 0, 10, "nothing pending")
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(10)
    client.close()
    seen = len(client.events)
    # resume from an id before the outage: everything after it again, once, in order
    client.last_id = str(client.events[2]["id"])
    start_daemon(processes)
    client.open(f"{base}/stream/{token}/sse")
    wait_for(lambda: len(client.events) >= seen + (seen - 3), 10, "the replay")
    time.sleep(0.5)
    client.close()
    replay = client.events[seen:]
    assert replay == client.events[3:seen]  # the same events, ids, times: exactly what was missed
