"""Bench: how long a takeover of the AMI link takes (issue 16, one PBX).

Every part is a process of its own: ``redis-server``, the simulated Asterisk
(``python -m pbxis.simulator`` with customer calls flowing), two collectors (``twistd
pbxis``, ``[node] role = "collector"``, ``lease_time`` from ``--lease``) and a web node
with one SSE client of agent 1001. Each round kills the holder with ``kill -9`` and
times, from the kill: the lease's expiry in Redis, the standby logged in to AMI
(``/health``), and the client's first event written by the new holder (an id above the
log's last one at expiry); and *expiry to first event*, the part the lease does not
explain (load, claim, login, rebuild, write, web node, client). The killed node is
started again as the standby for the next round. Wall-clock figures (the machine's other
load counts): the median of ``--repeat`` rounds and the worst.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import figure, machine, note, parser

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import redis  # noqa: E402
import requests  # noqa: E402

from tests.redis.redis_proc import RedisServer  # noqa: E402
from tests.redis.test_redis_daemon import SSEClient  # noqa: E402
from tests.support.cluster import last_log_id, logged_in, node_tables, time_takeover  # noqa: E402
from tests.support.processes import (  # noqa: E402
    free_port,
    health,
    running_daemons,
    start_simulator,
    stop,
    wait_for,
)

PREFIX = "takeover:"


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--lease", type=float, default=2.0, help="[node] lease_time, seconds")
    args = p.parse_args()
    rounds = args.repeat or (1 if args.quick else 5)
    note(machine())
    note(f"lease_time {args.lease:g} s, {rounds} rounds")
    server = RedisServer().start()
    r = redis.Redis(port=server.port, decode_responses=True)
    with tempfile.TemporaryDirectory() as tmp, running_daemons(Path(tmp), simulator=False) as daemons:
        calls = ("--agents", "1001-1004", "--queues", "sales", "--rate", "240", "--talk", "1-3")
        sim = start_simulator(daemons.ami_port, *calls)
        try:
            base = daemons.config.read_text("utf-8")
            nodes: dict[str, tuple[Path, int]] = {}
            for name, role in (("c1", "collector"), ("c2", "collector"), ("web", "web")):
                port = free_port()
                path = Path(tmp) / f"{name}.toml"
                tables = node_tables(server.url, PREFIX, role, name, args.lease)
                own = base.replace(f"tcp:{daemons.http}:", f"tcp:{port}:")
                path.write_text(f"{own}\n[agents]\ngrace_period = 600\n{tables}", "utf-8")
                nodes[name] = (path, port)
            procs: dict[str, Any] = {}

            def start(name: str, wait: bool) -> None:
                daemons.config, daemons.http = nodes[name]
                procs[name] = daemons.start(wait=wait)

            start("c1", True)
            start("c2", False)
            start("web", True)
            web = nodes["web"][1]
            token = requests.put(
                f"http://127.0.0.1:{web}/agents/1001", json={"queues": ["sales"]}, timeout=10
            ).json()["token"]
            client = SSEClient()
            client.open(f"http://127.0.0.1:{web}/stream/{token}/sse")
            wait_for(lambda: len(client.events) >= 5, 30, "calls flowing")
            to_expiry, to_login, to_event, expiry_to_event = [], [], [], []
            for n in range(rounds):
                holder = str(r.get(PREFIX + "collector"))
                standby = "c2" if holder == "c1" else "c1"
                wait_for(lambda s=standby: health(nodes[s][1])[1].get("status") == "standby", 30, "standby")
                procs[holder].send_signal(9)
                killed = time.monotonic()
                procs[holder].wait(10)
                t = time_takeover(
                    killed,
                    client,
                    expired=lambda h=holder: r.get(PREFIX + "collector") != h,
                    last_id=lambda: last_log_id(r, PREFIX + "log:1001"),
                    logged_in=lambda s=standby: logged_in(nodes[s][1]),
                    limit=args.lease + 30,
                )
                to_expiry.append(t.expiry)
                to_login.append(t.login)
                to_event.append(t.first)
                expiry_to_event.append(t.first - t.expiry)
                note(
                    f"round {n + 1}: expiry {t.expiry:.2f} s, login {t.login:.2f} s, "
                    f"first event {t.first:.2f} s after the kill"
                )
                start(holder, False)
            client.close()
            ids = [e["id"] for e in client.events]
            assert ids == list(range(ids[0], ids[-1] + 1)), "a gap or a duplicate"
            note(f"{len(ids)} events to the client, consecutive ids, none twice")
            for name, values in (
                ("kill-to-expiry", to_expiry),
                ("kill-to-login", to_login),
                ("kill-to-first-event", to_event),
                ("expiry-to-first-event", expiry_to_event),
            ):
                figure(f"takeover.{name}.median", statistics.median(values), "s")
                figure(f"takeover.{name}.max", max(values), "s")
            figure("takeover.bound", args.lease + 2, "s")
        finally:
            stop(sim)
    r.close()
    server.close()


if __name__ == "__main__":
    main()
