"""The daemon's collector policy: bursts frozen, frozen cycles collected at a thaw."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock

from pbxis.gcpolicy import CollectorPolicy


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def policy() -> Iterator[tuple[CollectorPolicy, Clock]]:
    clock = Clock()
    policy = CollectorPolicy(clock, interval=5.0, freeze_above=2_000)
    policy.start()
    try:
        yield policy, clock
    finally:
        policy.stop()
        gc.unfreeze()  # leave the test process's collector as it was


def burst(n: int) -> list[list[_Node]]:
    """Long-lived objects, as many connections leave (pairs in a reference cycle)."""
    out = []
    for _ in range(n):
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        out.append([a, b])
    return out


def test_start_freezes_what_start_up_built(policy: tuple[CollectorPolicy, Clock]) -> None:
    assert gc.get_freeze_count() > 0
    assert policy[0].freezes == 0 and policy[0].thaws == 0


def test_a_burst_is_frozen_at_the_next_check_and_a_full_pass_skips_it(
    policy: tuple[CollectorPolicy, Clock],
) -> None:
    p, clock = policy
    frozen_before = gc.get_freeze_count()
    kept = burst(5_000)
    clock.advance(4.9)
    assert p.freezes == 0  # not before the check is due
    clock.advance(0.1)
    assert p.freezes == 1
    assert gc.get_freeze_count() >= frozen_before + 10_000
    tracked = sum(len(gc.get_objects(g)) for g in range(3))
    assert tracked < 5_000  # what a full pass would walk now: not the burst
    assert kept


def test_nothing_happens_while_few_objects_pile_up(policy: tuple[CollectorPolicy, Clock]) -> None:
    p, clock = policy
    kept = burst(200)
    clock.advance(5.0)
    clock.advance(5.0)
    assert p.freezes == 0 and p.thaws == 0
    assert kept


def test_cycles_that_die_frozen_are_collected_once_the_frozen_set_doubles(
    policy: tuple[CollectorPolicy, Clock],
) -> None:
    """The bound on what freezing costs: garbage cycles among frozen objects go at a thaw."""
    p, clock = policy
    doomed = burst(max(p.freeze_above, gc.get_freeze_count()))
    probe = weakref.ref(doomed[0][0])
    clock.advance(5.0)
    assert p.freezes == 1
    del doomed  # the connections close: their cycles are garbage, but frozen
    assert probe() is not None
    later = burst(p.freeze_above)  # the next burst finds the frozen set doubled
    clock.advance(5.0)
    assert p.thaws == 1
    assert probe() is None
    assert later
