"""``kill -9`` the daemon while webhook deliveries are pending (the receiver is down) and start
it again on the same Redis: the receiver gets every pending delivery, same ``webhook-id``.

Real processes: ``redis-server``, the simulator and ``twistd pbxis``; the receiver is a
real HTTP server on loopback (a thread of this test) that is stopped and started again.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from pbxis.webhooks.signing import decode_secret, verify
from tests.redis.redis_proc import RedisServer
from tests.redis.test_redis_daemon import start_daemon
from tests.support.processes import free_port, running_daemons, wait_for

pytestmark = pytest.mark.slow

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    """A CRM back end: verifies each signature, records (webhook-id, event), answers 204."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verify(decode_secret(SECRET), headers, body, now=time.time())
                with receiver._lock:
                    receiver.received.append((headers["webhook-id"], json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.received)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, Any]]:
    server = RedisServer().start()
    receiver = Receiver()
    receiver.start()
    extra = f"""
[redis]
url = "{server.url}"
key_prefix = "hooks:"

[[webhooks]]
url = "http://127.0.0.1:{receiver.port}/hooks"
name = "crm"
secret = "{SECRET}"
events = ["queueMemberStatus"]
timeout = 2
"""
    try:
        with running_daemons(tmp_path, extra) as daemons:
            yield {
                "http": daemons.http, "daemons": daemons.started, "redis": server,
                "receiver": receiver, "run": daemons,
            }  # fmt: skip
    finally:
        receiver.stop()
        server.close()


def test_kill_9_with_webhooks_pending_delivers_them_after_the_restart(processes: dict[str, Any]) -> None:
    base = f"http://127.0.0.1:{processes['http']}"
    receiver: Receiver = processes["receiver"]
    daemon = start_daemon(processes)
    answer = requests.put(f"{base}/agents/1001", json={"queues": ["sales"]}, timeout=10)
    assert answer.status_code == 200, answer.text

    def pause(on: bool) -> None:
        body = {"reason": "lunch"} if on else {}
        action = "pause" if on else "unpause"
        r = requests.post(f"{base}/agents/1001/queues/sales/{action}", json=body, timeout=10)
        assert r.status_code == 200, r.text

    def paused() -> list[tuple[str, bool]]:
        return [(i, bool(e.get("paused"))) for i, e in receiver.events() if "paused" in e]

    pause(True)
    wait_for(lambda: any(p for _, p in paused()), 10, "a delivery while the receiver is up")
    delivered = paused()

    receiver.stop()  # the CRM is down: deliveries pile up, retried with backoff
    pause(False)
    pause(True)
    pause(False)
    time.sleep(0.5)  # the write-behind goes out within 10 ms
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(10)
    assert paused() == delivered  # nothing reached the receiver while it was down

    receiver.start()
    start_daemon(processes)
    wait_for(lambda: len({i for i, _ in paused()}) >= len(delivered) + 3, 20, "the pending deliveries")
    time.sleep(0.5)
    seen = paused()
    new = [p for p in seen if p not in delivered]
    ids = list(dict.fromkeys(i for i, _ in new))  # at least once: a duplicate keeps its id
    assert len(ids) == 3, new
    assert [dict(new)[i] for i in ids] == [False, True, False], (delivered, seen)  # in order
    assert not {i for i, _ in delivered} & set(ids)
