"""Instructions per AMI event through parser and tracker, counted by callgrind.

On a shared machine events/s move by 20% and more between runs; the instructions an event
costs do not. This counts them: ``valgrind --tool=callgrind`` runs this script twice on
the same fleet traffic (``corpus.fleet``, 3,000 events by default), once setting up only
(traffic loaded, agents registered, an empty rebuild done) and once also feeding every
byte to ``AMIParser`` in 64 KiB reads and every event to ``Tracker.handle`` (as the daemon
runs it: ``queue_events=True``), GC off; the difference over the events is the figure.
``--parse-only`` leaves the tracker out. ``--hub`` goes on as the daemon does: each
read's events published as one batch to a ``Hub`` (memory store) with every agent
registered and ``--clients`` SSE subscriptions dealt over the agents (their frames built,
the bytes dropped), and the queue flush run every 20 reads (a ``queue_tick`` under a
flood of about 100k events/s): what the daemon spends per event but for Twisted's reads
and writes. Run it against another checkout with
``PYTHONPATH=<checkout>`` to compare two versions (README: main against this branch).
Not in ``run_all.py``: it needs valgrind and takes a minute.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import figure, machine, note, parser


def child(traffic: Path, mode: str, clients: int) -> None:
    """What callgrind runs: set up, then (unless ``mode`` ends in ``setup``) feed the events."""
    gc.disable()
    agents, pieces = pickle.loads(traffic.read_bytes())
    from pbxis.ami.message import Message
    from pbxis.ami.parser import AMIParser
    from pbxis.tracker import Tracker

    tracker = Tracker(queue_events=True)
    for agent, queues in agents.items():
        tracker.register(agent, queues, 0)
    tracker.begin_rebuild()
    tracker.finish_rebuild(0)
    if mode.startswith("hub"):
        hub, clock = _hub(tracker, agents, clients)
    if mode.endswith("setup"):
        return
    amiparser = AMIParser()
    if mode == "hub":
        for n, chunk in enumerate(pieces):
            amiparser.receive_data(chunk)
            out: list[Any] = []
            for item in amiparser.messages():
                if isinstance(item, Message) and item.event is not None:
                    out += tracker.handle(item, 1)
            hub.publish(out)
            if n % 20 == 19:
                clock.advance(0.2)
        return
    for chunk in pieces:
        amiparser.receive_data(chunk)
        for item in amiparser.messages():
            if isinstance(item, Message) and item.is_event and mode == "digest":
                tracker.handle(item, 1)


def _hub(tracker: Any, agents: dict[str, list[str]], clients: int) -> tuple[Any, Any]:
    """A hub as the daemon's, every agent registered, ``clients`` SSE readers on them."""
    from twisted.internet.task import Clock

    from pbxis.hub import Hub
    from pbxis.web.streams.sse import sse_frames

    clock = Clock()
    hub = Hub(clock, grace_period=600.0, snapshot=lambda agent: tracker.snapshot(agent, 0), pbx="default")
    registrations = [hub.register(agent, queues) for agent, queues in agents.items()]
    sink: list[int] = []

    def deliver(batch: list[Any]) -> None:
        sink.append(len(sse_frames(batch)))

    for i in range(clients):
        sub = hub.subscribe(registrations[i % len(registrations)], None, "sse", deliver, lambda reason: None)
        sub.resumeProducing()
    clock.advance(1.0)
    return hub, clock


def instructions(traffic: Path, mode: str, clients: int = 0) -> int:
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "child", str(traffic), mode, str(clients)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    for line in proc.stderr.splitlines():
        if "Collected" in line:
            return int(line.split()[-1])
    raise RuntimeError("callgrind printed no count:\n" + proc.stderr[-2000:])


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=3000, help="AMI events counted")
    p.add_argument("--agents", type=int, action="append", help="registered agents (repeatable)")
    p.add_argument("--parse-only", action="store_true", help="the parser alone")
    p.add_argument("--hub", action="store_true", help="parser, tracker and hub with SSE readers")
    p.add_argument("--clients", type=int, default=200, help="SSE readers with --hub")
    args = p.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    from corpus import chunks, fleet

    note(machine())
    mode = "parse" if args.parse_only else "hub" if args.hub else "digest"
    for n_agents in args.agents or [100, 1000]:
        traffic = fleet(n_agents, 300 if args.quick else args.events)
        events = traffic.events
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "traffic.pickle"
            path.write_bytes(pickle.dumps((dict(traffic.agents), chunks(traffic.stream, 65536))))
            setup = "hub-setup" if mode == "hub" else "setup"
            cost = instructions(path, mode, args.clients) - instructions(path, setup, args.clients)
        label = f"hub-{args.clients}-sse" if mode == "hub" else mode
        figure(f"instructions.{n_agents}-agents.{label}", cost / events, "instructions/event")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        main()
