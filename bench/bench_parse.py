"""Bench 1: AMI parsing, events/s and MB/s, against panoramisk and the split-only floor.

Three parsers eat the same bytes, cut in the same socket-sized chunks, in one run:

* ``pbxis``: :class:`pbxis.ami.parser.AMIParser`, and the consumer reads each message's
  ``event`` (any consumer does; it builds the look-up index);
* ``panoramisk``: its own ``AMIProtocol.data_received`` (decode, split on the blank line,
  ``Message.from_line``, ``handle_message``) on a protocol with no transport, its factory
  replaced by a counter: the parsing it does under asyncio, without asyncio;
* ``floor``: the least a Python parser that gives key look-ups can do (the floor of
  issue 20): decode, split on the blank line, split the lines, partition each on ``": "``,
  fill a dict, read one key. No framing edge case is handled (no bare LF, no ``Follows``,
  no size limit, no case-insensitive look-up);
* ``split``: ``(rest + chunk).split(b"\\r\\n\\r\\n")``, the floor of framing alone (no
  header is looked at): shown for scale.

Traffic: the captures' events, unfiltered and as the server-side filter leaves them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from common import best_of, figure, machine, note, parser
from corpus import chunks, event_stream, filter_name
from panoramisk.ami_protocol import AMIProtocol

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser

Runner = Callable[[list[bytes]], int]


def run_pbxis(data: list[bytes]) -> int:
    parser = AMIParser()
    count = 0
    for chunk in data:
        parser.receive_data(chunk)
        for item in parser.messages():
            if isinstance(item, Message) and (item.event or item.response):
                count += 1
    return count


class _Dispatch:
    """Stands for panoramisk's Manager: counts what the protocol dispatches."""

    def __init__(self) -> None:
        self.count = 0

    def dispatch(self, message: object) -> None:
        self.count += 1


def run_panoramisk(data: list[bytes]) -> int:
    protocol = AMIProtocol()
    protocol.connection_made(None)
    factory = _Dispatch()
    protocol.factory = factory
    for chunk in data:
        protocol.data_received(chunk)
    # panoramisk hands responses to the pending action, not to dispatch: the login one here.
    return factory.count + 1


def run_floor(data: list[bytes]) -> int:
    rest = b""
    count = 0
    for chunk in data:
        buffer = rest + chunk
        end = buffer.rfind(b"\r\n\r\n")
        if end < 0:
            rest = buffer
            continue
        rest = buffer[end + 4 :]
        # One decode per read, up to the last blank line (so no character is cut).
        for block in buffer[:end].decode("utf-8", "replace").split("\r\n\r\n"):
            headers = {}
            for line in block.split("\r\n"):
                key, _, value = line.partition(": ")
                headers[key] = value
            if "Event" in headers or "Response" in headers:
                count += 1
    return count + 1  # the banner, which the floor glues to the first message


def run_split(data: list[bytes]) -> int:
    rest = b""
    count = 0
    for chunk in data:
        parts = (rest + chunk).split(b"\r\n\r\n")
        rest = parts.pop()
        count += len(parts)
    return count


RUNNERS: dict[str, Runner] = {
    "pbxis": run_pbxis,
    "panoramisk": run_panoramisk,
    "floor": run_floor,
    "split": run_split,
}


def bench(kind: str, stream: bytes, expected: int, chunk_sizes: list[int], repeat: int) -> None:
    mb = len(stream) / 1e6
    for size in chunk_sizes:
        pieces = chunks(stream, size)
        label = f"{size // 1024}KiB"
        # Interleaved (pbxis, panoramisk, split, pbxis, ...) so a busy moment of the
        # machine hits every parser alike; the best run of each counts.
        seconds = dict.fromkeys(RUNNERS, float("inf"))
        for _ in range(repeat):
            for name, run in RUNNERS.items():
                elapsed, count = best_of(1, functools.partial(run, pieces))
                if abs(count - expected) > 1:  # split counts the banner with the first message
                    note(f"{name} found {count} messages in {kind} traffic, expected {expected}")
                seconds[name] = min(seconds[name], elapsed)
        for name, elapsed in seconds.items():
            figure(f"parse.{kind}.{name}-{label}", expected / elapsed, "events/s")
            figure(f"parse.{kind}.{name}-{label}.MB", mb / elapsed, "MB/s")
        figure(f"parse.{kind}.speedup-vs-panoramisk-{label}", seconds["panoramisk"] / seconds["pbxis"], "x")
        figure(f"parse.{kind}.slowdown-vs-floor-{label}", seconds["pbxis"] / seconds["floor"], "x")
        figure(f"parse.{kind}.slowdown-vs-split-{label}", seconds["pbxis"] / seconds["split"], "x")


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--megabytes", type=float, default=4.0, help="stream size per traffic kind")
    p.add_argument("--chunk", type=int, action="append", help="chunk size in bytes (repeatable)")
    args = p.parse_args()
    megabytes = 0.25 if args.quick else args.megabytes
    repeat = args.repeat or (1 if args.quick else 7)  # fewer let a noisy VM swing the ratio 1.4-3.7x
    chunk_sizes = args.chunk or [4096, 65536]
    note(machine())
    note(f"server-side filter: {filter_name()}")
    for kind, filtered in (("unfiltered", False), ("filtered", True)):
        stream, expected = event_stream(int(megabytes * 1e6), filtered=filtered)
        note(f"{kind}: {len(stream) / 1e6:.1f} MB, {expected} messages, {len(stream) / expected:.0f} B each")
        bench(kind, stream, expected, chunk_sizes, repeat)


if __name__ == "__main__":
    main()
