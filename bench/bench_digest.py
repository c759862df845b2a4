"""Bench 2: parse + digest, AMI events/s through AMIParser and Tracker with many agents.

The traffic is what the server-side filter lets through, for N registered agents
(``corpus.fleet``: the captured calls replayed by crews of three agents in shared queues).
The tracker starts as after a login: agents registered, an empty rebuild finished, so
every event is digested and emitted as in production.

Figures per agent count: events/s through parser and tracker together (the target), the
tracker alone on already parsed messages (to split the cost: what a message does on its
first look-up counts here, the parser does not do it), and digested events out per AMI
event in. The tracker runs as the daemon runs it (``queue_events=True``: a queue's caller
count is one queue event, which the hub hands to the queue's agents); the
``per-agent-counts`` figures are the library's default (one ``queueCount`` per agent
watching the queue: a caller joining a queue of 40 agents is 40 events).
"""

from __future__ import annotations

from common import best_of, figure, machine, note, parser
from corpus import Fleet, chunks, filter_name, fleet, messages

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser, parse_block
from pbxis.tracker import Tracker

NOW_MS = 1_764_000_000_000


def ready_tracker(traffic: Fleet, queue_events: bool = True) -> Tracker:
    """A tracker with every agent registered and the link up (an empty rebuild done)."""
    tracker = Tracker(interface_template="SIP/{agent}", hint_context="agents", queue_events=queue_events)
    for agent, queues in traffic.agents.items():
        tracker.register(agent, queues, NOW_MS)
    tracker.begin_rebuild()
    tracker.finish_rebuild(NOW_MS)
    return tracker


def parse_and_digest(tracker: Tracker, pieces: list[bytes]) -> tuple[int, int]:
    parser = AMIParser()
    handle = tracker.handle
    seen = produced = 0
    now = NOW_MS
    for chunk in pieces:
        parser.receive_data(chunk)
        now += 1
        for item in parser.messages():
            if isinstance(item, Message) and item.is_event:
                seen += 1
                produced += len(handle(item, now))
    return seen, produced


def digest_only(tracker: Tracker, parsed: list[Message]) -> int:
    handle = tracker.handle
    return sum(len(handle(m, NOW_MS)) for m in parsed)


def bench(n_agents: int, n_events: int, repeat: int) -> None:
    traffic = fleet(n_agents, n_events)
    pieces = chunks(traffic.stream, 65536)
    blocks = [m.to_bytes() for m in messages(pieces) if m.is_event]
    note(f"{n_agents} agents: {traffic.events} events, {len(traffic.stream) / 1e6:.1f} MB")
    for queue_events, label in ((True, ""), (False, ".per-agent-counts")):
        run_mode(f"digest.{n_agents}-agents{label}", traffic, pieces, blocks, queue_events, repeat)


def run_mode(
    name: str, traffic: Fleet, pieces: list[bytes], blocks: list[bytes], queue_events: bool, repeat: int
) -> None:
    # Each timed run needs a fresh tracker (handling mutates it); building it is not timed.
    trackers = [ready_tracker(traffic, queue_events) for _ in range(repeat)]
    elapsed, (seen, produced) = best_of(repeat, lambda: parse_and_digest(trackers.pop(), pieces))
    figure(f"{name}.parse+digest", seen / elapsed, "events/s")
    trackers = [ready_tracker(traffic, queue_events) for _ in range(repeat)]
    # Fresh messages per run, as the parser makes them: a message's first look-up does
    # work (lowering its text, or building its index) that belongs to the digest, so no
    # run may inherit it.
    batches = [fresh(blocks) for _ in range(repeat)]
    alone, _ = best_of(repeat, lambda: digest_only(trackers.pop(), batches.pop()))
    figure(f"{name}.digest-only", len(blocks) / alone, "events/s")
    figure(f"{name}.out-per-in", produced / max(1, seen), "events")


def fresh(blocks: list[bytes]) -> list[Message]:
    """Messages as the parser's fast path builds them, never looked at yet."""
    out = []
    for block in blocks:
        message = parse_block(block[:-4])
        assert message is not None
        out.append(message)
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=30_000, help="AMI events per agent count")
    p.add_argument("--agents", type=int, action="append", help="registered agents (repeatable)")
    args = p.parse_args()
    n_events = 2_000 if args.quick else args.events
    repeat = args.repeat or (1 if args.quick else 3)
    note(machine())
    note(f"server-side filter: {filter_name()}")
    for n_agents in args.agents or [100, 1000]:
        bench(n_agents, n_events, repeat)


if __name__ == "__main__":
    main()
