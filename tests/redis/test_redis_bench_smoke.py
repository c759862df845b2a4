"""The Redis benches still run (``--quick``): figures present and sane, not measured."""

from __future__ import annotations

import math

import pytest

from tests.test_bench_smoke import run_quick

pytestmark = pytest.mark.slow


def test_bench_redis_prints_both_clients_and_both_reactors() -> None:
    figures = run_quick("bench_redis.py", timeout=180)
    for name in (
        "redis.roundtrip.txredisapi-epoll.p99",
        "redis.roundtrip.redispy-asyncio.p99",
        "redis.xadd-pipelined.txredisapi-epoll",
        "redis.xadd-pipelined.redispy-asyncio",
        "reactor.tcp-pingpong.epoll.cpu",
        "reactor.tcp-pingpong.asyncio.cpu",
        "reactor.tcp-pingpong.cpu.asyncio-vs-epoll",
    ):
        assert name in figures and figures[name] > 0 and math.isfinite(figures[name]), name


def test_bench_e2e_runs_on_the_redis_store_beside_the_memory_store() -> None:
    figures = run_quick("bench_e2e.py", "--store", "both", "--transport", "sse", timeout=180)
    for store in ("", "redis."):
        assert figures[f"e2e.{store}sse.10-clients.p99"] > 0
    assert 0 < figures["e2e.redis.sse.10-clients.redis-commands"] < 10
    assert figures["e2e.redis.sse.10-clients.redis-bytes"] > 0


@pytest.mark.cluster_bench
def test_bench_webnodes_runs_a_collector_and_one_then_two_web_nodes() -> None:
    figures = run_quick("bench_webnodes.py", timeout=240)
    for nodes in (1, 2):
        assert figures[f"webnodes.{nodes}-nodes.10-clients.p99"] > 0
        assert f"webnodes.{nodes}-nodes.max-clients-p99-under-50ms" in figures


@pytest.mark.cluster_bench
def test_bench_takeover_kills_the_holder_and_times_the_standby() -> None:
    figures = run_quick("bench_takeover.py", timeout=180)
    # figures, not a timed test (the bound is the process test's): present and sane
    assert figures["takeover.kill-to-login.max"] > 0 and figures["takeover.bound"] == 4
    assert figures["takeover.kill-to-first-event.median"] > 0


@pytest.mark.cluster_bench
def test_bench_sites_runs_one_process_then_the_cluster_of_two_pbxes() -> None:
    figures = run_quick("bench_sites.py", timeout=240)
    for kind in ("single", "clustered"):
        assert figures[f"sites.{kind}.100-events-per-s.p99"] > 0, kind
        assert figures[f"sites.{kind}.100-events-per-s.delivered"] > 0, kind
    assert "sites.clustered-minus-single.100-events-per-s.p99" in figures
    assert figures["sites.clustered-vs-single.100-events-per-s.p50"] > 0
    # --quick times no takeover (the two-site process test kills a holder)
    assert not any(name.startswith("sites.takeover.") for name in figures)
