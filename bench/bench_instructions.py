"""Instructions per AMI event through parser and tracker, counted by callgrind.

On a shared machine events/s move by 20% and more between runs; the instructions an event
costs do not. This counts them: ``valgrind --tool=callgrind`` runs this script twice on
the same fleet traffic (``corpus.fleet``, 3,000 events by default), once setting up only
(traffic loaded, agents registered, an empty rebuild done) and once also feeding every
byte to ``AMIParser`` in 64 KiB reads and every event to ``Tracker.handle`` (as the daemon
runs it: ``queue_events=True``), GC off; the difference over the events is the figure.
``--parse-only`` leaves the tracker out. Run it against another checkout with
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

from common import figure, machine, note, parser


def child(traffic: Path, mode: str) -> None:
    """What callgrind runs: set up, then (unless ``mode == "setup"``) feed the events."""
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
    if mode == "setup":
        return
    amiparser = AMIParser()
    for chunk in pieces:
        amiparser.receive_data(chunk)
        for item in amiparser.messages():
            if isinstance(item, Message) and item.is_event and mode == "digest":
                tracker.handle(item, 1)


def instructions(traffic: Path, mode: str) -> int:
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "child", str(traffic), mode],
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
    args = p.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    from corpus import chunks, fleet

    note(machine())
    mode = "parse" if args.parse_only else "digest"
    for n_agents in args.agents or [100, 1000]:
        traffic = fleet(n_agents, 300 if args.quick else args.events)
        events = traffic.events
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "traffic.pickle"
            path.write_bytes(pickle.dumps((dict(traffic.agents), chunks(traffic.stream, 65536))))
            cost = instructions(path, mode) - instructions(path, "setup")
        figure(f"instructions.{n_agents}-agents.{mode}", cost / events, "instructions/event")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(Path(sys.argv[2]), sys.argv[3])
    else:
        main()
