"""Bench 7: one full garbage collection after a burst of connections, with and without pbxis's policy.

A Twisted web server (in its own process, as the daemon) holds N streaming requests open
(what an SSE client is to it: a channel, a request, a transport, headers, a producer); a
client process opens them all at once. Then one full collection (``gc.collect()``) is
timed, which is what the collector does on its own a few seconds after such a burst:

* ``default``: the collector as CPython sets it up (what an embedding program has);
* ``policy``: :mod:`pbxis.gcpolicy` as the daemon runs it (start-up frozen, the periodic
  check freezing the burst's survivors); the check's own cost is a figure too.

Figures: the full pass in ms for each, their ratio, objects the pass walked.
"""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from typing import Any

from common import figure, machine, note, parser, raise_fd_limit, ratio
from twisted.internet import reactor as _reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

reactor: Any = _reactor


class _Stream(Resource):
    """Holds every request open, as a stream does."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.open: list[Request] = []

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-type", b"text/event-stream")
        request.write(b": hello\n\n")
        self.open.append(request)
        return NOT_DONE_YET


def serve(mode: str, n: int) -> None:
    """One server process: burst of ``n`` connections, then the timed full collection."""
    raise_fd_limit()
    stream = _Stream()
    port = reactor.listenTCP(0, Site(stream), backlog=4096, interface="127.0.0.1")
    policy = None
    if mode == "policy":
        from pbxis.gcpolicy import start_collector_policy

        policy = start_collector_policy(reactor, interval=3600.0)  # checked by hand below
    else:
        gc.collect()
    clients = subprocess.Popen(
        [sys.executable, __file__, "clients", str(port.getHost().port), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )

    def measure() -> None:
        if len(stream.open) < n:
            reactor.callLater(0.05, measure)
            return
        check_ms = 0.0
        if policy is not None:
            started = time.perf_counter()
            policy.check()  # what the loop does at its next tick
            check_ms = (time.perf_counter() - started) * 1000
        walked = sum(len(gc.get_objects(generation=g)) for g in range(3))
        started = time.perf_counter()
        gc.collect()
        full_ms = (time.perf_counter() - started) * 1000
        print(f"{mode} {full_ms:.3f} {check_ms:.3f} {walked} {gc.get_freeze_count()}", flush=True)
        clients.kill()
        reactor.stop()

    reactor.callLater(0.05, measure)
    reactor.run()


def clients(port: int, n: int) -> None:
    """Open ``n`` connections, each asking for a stream, and keep them until killed."""
    raise_fd_limit()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(3600)


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=10_000)
    args = p.parse_args()
    n = 500 if args.quick else args.connections
    note(machine())
    results: dict[str, list[float]] = {}
    for mode in ("default", "policy"):
        out = subprocess.run(
            [sys.executable, __file__, "serve", mode, str(n)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        )
        for comment in out.stdout.splitlines():
            if comment.startswith("#"):
                note(f"{mode}: {comment[2:]}")
        line = out.stdout.strip().splitlines()[-1].split()
        results[mode] = [float(x) for x in line[1:]]
    for mode, (full_ms, _check, walked, frozen) in results.items():
        figure(f"gc.{n}-connections.{mode}.full-pass", full_ms, "ms")
        figure(f"gc.{n}-connections.{mode}.objects-tracked", walked, "objects")
        figure(f"gc.{n}-connections.{mode}.objects-frozen", frozen, "objects")
    figure(f"gc.{n}-connections.policy.check", results["policy"][1], "ms")
    ratio(f"gc.{n}-connections.default-over-policy", results["default"][0], results["policy"][0])


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["clients"]:
        clients(int(sys.argv[2]), int(sys.argv[3]))
    else:
        main()
