"""Browsers coming and going, from a process of their own.

``test_clients.py`` runs this script beside the daemon so that the daemon's process holds
only pbxis: the reactor lag and the object count it measures are then pbxis's own, not
those of the thousands of client connections (which, in one process, double the work and
the garbage the collector walks). Nine clients (three per transport) connect, resume from
``since``, read, and disconnect, again and again, until together they made ``target``
cycles or ``deadline`` seconds passed. Prints one JSON line: cycles per transport and
anything that went wrong.

    python churn_client.py BASE_URL WS_PORT TOKEN SINCE TARGET DEADLINE
"""

from __future__ import annotations

import json
import sys
from typing import Any

from twisted.internet import defer, task
from twisted.web.client import HTTPConnectionPool

from tests.reliability.rel_helpers import Recorder, open_sse, open_ws, poll_once

KINDS = ("sse", "ws", "poll")


async def churn(
    reactor: Any, args: dict[str, Any], kind: str, pool: Any, done: list[int], report: dict[str, Any]
) -> None:
    deadline = reactor.seconds() + args["deadline"]
    since, token = args["since"], args["token"]
    while done[0] < args["target"] and reactor.seconds() < deadline:
        rec = Recorder(kind)
        if kind == "sse":
            status, client = await open_sse(args["base_url"], token, rec, pool, since=since)
            if status != 200 or client is None:
                report["errors"].append(f"sse: status {status}")
                return
            await client.stop()
        elif kind == "ws":
            ws = await open_ws(args["ws_port"], token, rec, since=since)
            if ws.protocol is None:
                report["errors"].append("ws: not opened")
                return
            await ws.stop()
        else:
            status, body = await poll_once(args["base_url"], token, since, 0, pool)
            if status != 200 or body.get("next") != since:
                report["errors"].append(f"poll: {status} {body}")
                return
        if rec.of("reset"):
            report["errors"].append(f"{kind}: reset on resume from {since}")
            return
        report["cycles"][kind] += 1
        done[0] += 1


async def main(reactor: Any, argv: list[str]) -> None:
    base_url, ws_port, token, since, target, deadline = argv
    args = {
        "base_url": base_url,
        "ws_port": int(ws_port),
        "token": token,
        "since": int(since),
        "target": int(target),
        "deadline": float(deadline),
    }
    pool = HTTPConnectionPool(reactor, persistent=False)
    report: dict[str, Any] = {"cycles": dict.fromkeys(KINDS, 0), "errors": []}
    done = [0]
    try:
        await defer.gatherResults(
            [defer.ensureDeferred(churn(reactor, args, kind, pool, done, report)) for kind in KINDS * 3],
            consumeErrors=True,
        )
    except defer.FirstError as e:
        report["errors"].append(repr(e.subFailure.value))
    await pool.closeCachedConnections()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, sys.argv[1:])))
