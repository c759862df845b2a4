"""What every bench shares: the command line, the timer and the one format of a figure.

A figure line is ``<name>: <value> <unit>`` (``parse.unfiltered.pbxis-64KiB: 412345 events/s``),
so a human reads it and ``tests/test_bench_smoke.py`` (or a script comparing runs) greps it.
Anything else a bench prints is commentary and starts with ``#``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "best_of",
    "figure",
    "machine",
    "note",
    "parser",
    "percentile",
    "raise_fd_limit",
    "ratio",
    "rss_kib",
]

T = TypeVar("T")


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every bench takes; each bench adds its own sizes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the bench runs, not the figures")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per figure (best one counts)")
    return p


def figure(name: str, value: float, unit: str) -> None:
    """Print one figure line; integers above 100 lose their decimals, small values keep three."""
    shown = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    print(f"{name}: {shown} {unit}", flush=True)


def ratio(name: str, ours: float, theirs: float) -> None:
    """A ratio measured in the same run (``ours / theirs``), so machine speed cancels out."""
    figure(name, ours / theirs if theirs else float("inf"), "x")


def note(text: str) -> None:
    print(f"# {text}", flush=True)


def best_of(repeat: int, run: Callable[[], T]) -> tuple[float, T]:
    """Seconds of the fastest of ``repeat`` runs (the least disturbed by the rest of the machine).

    The clock is this process's CPU time, not the wall clock: the benches measure work
    on one core, and CPU time is what stays put when other processes share the machine
    (the wall clock then counts their time slices too). The collector is paused while
    timing: a collection triggered by the previous run's garbage would otherwise land in
    a random run.
    """
    best = float("inf")
    result: T | None = None
    for _ in range(max(1, repeat)):
        gc.collect()
        gc.disable()
        try:
            start = time.process_time()
            result = run()
            elapsed = time.process_time() - start
        finally:
            gc.enable()
        best = min(best, elapsed)
    assert result is not None
    return best, result


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (p99 of 100 samples is the 99th)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * fraction // 1))  # ceil without importing math
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def rss_kib() -> int:
    """Resident set size of this process now, in KiB (Linux ``/proc``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def machine(build_name: str | None = None) -> str:
    """One line naming what the figures were measured on (``build_name``: the build the
    benches will import, when not this process's)."""
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {model}, Python {sys.version.split()[0]}, {platform.system()}; "
        f"pbxis build: {build_name or build()}"
    )


def build() -> str:
    """``compiled`` when the parser and tracker imported are mypyc's (``run_all.py
    --compiled``), else ``pure``: the figures of the two builds differ by about 1.5x."""
    import pbxis.ami.parser
    import pbxis.tracker.tracker

    modules = (pbxis.ami.parser, pbxis.tracker.tracker)
    return "pure" if all((m.__file__ or "").endswith(".py") for m in modules) else "compiled"


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (thousands of sockets); returns it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
