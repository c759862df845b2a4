"""How much AMI traffic the server-side filter saves, measured on the shared captures.

Usage: ``python bench/filter_savings.py [CAPTURES_DIR]`` (default: ``../shared/ami/captures``)

Applies the filter logic (``pbxis.tracker.filters.passes``, cross-checked against the
legacy regexes) to every asynchronous event of each scenario capture; responses and
list items (they carry an ActionID, except OriginateResponse) bypass filters in
Asterisk and are counted as passing.

The last columns are what supervising the capture's queues (``sales``, ``support``) adds
to the filter (:mod:`pbxis.supervisors.filters`: their ``QueueCallerAbandon`` events),
cross-checked the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path

from corpus import captures_dir

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser
from pbxis.supervisors import filters as supervised
from pbxis.tracker.filters import legacy_passes, passes

SCENARIOS = ("inbound_call", "queue_waiting", "originate_out", "originate_fail", "state_dump")
SUPERVISED = frozenset({"sales", "support"})


def measure(path: Path) -> tuple[int, int, int, int, int, int]:
    """(events, bytes, events passed, bytes passed, events and bytes a supervisor of
    every queue adds) of the asynchronous events in a capture."""
    parser = AMIParser()
    parser.receive_data(path.read_bytes())
    events = size = kept_events = kept_size = extra_events = extra_size = 0
    for message in parser.messages():
        if not isinstance(message, Message) or not message.is_event:
            continue
        if message.action_id is not None and message.event != "OriginateResponse":
            continue  # list item: not subject to filters
        wire = message.to_bytes()
        events += 1
        size += len(wire)
        ok = passes(message)
        if ok != legacy_passes(wire.decode("utf-8", "replace")):
            raise AssertionError(f"advanced and legacy filters disagree on {message!r}")
        if ok:
            kept_events += 1
            kept_size += len(wire)
        text = wire.decode("utf-8", "replace")
        added = supervised.passes(message, SUPERVISED)
        if added != any(supervised.legacy_passes(text, q) for q in SUPERVISED):
            raise AssertionError(f"advanced and legacy supervisor filters disagree on {message!r}")
        if added and not ok:
            extra_events += 1
            extra_size += len(wire)
    return events, size, kept_events, kept_size, extra_events, extra_size


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else captures_dir()
    print(
        f"{'capture':<20}{'events':>8}{'kept':>6}{'bytes':>9}{'kept':>8}{'saved':>8}"
        f"{'+sup ev':>9}{'+sup B':>8}"
    )
    for name in SCENARIOS:
        events, size, kept, kept_size, extra, extra_size = measure(root / f"{name}.ami")
        saved = 100.0 * (size - kept_size) / size if size else 0.0
        print(f"{name:<20}{events:>8}{kept:>6}{size:>9}{kept_size:>8}{saved:>7.1f}%{extra:>9}{extra_size:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
