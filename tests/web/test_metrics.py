"""/metrics and /health: read from the layers' plain stats, one private registry per app."""

from __future__ import annotations

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from pbxis.metrics import build_registry
from tests.web.test_api_fakes import Env, Fakes


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_collector_reads_stats_at_scrape_time() -> None:
    fakes = Fakes()
    registry = build_registry(ami=fakes.ami, hub=fakes.hub, streams=fakes.streams, sync=fakes.sync)
    value = registry.get_sample_value
    assert value("pbxis_agents") == 0
    fakes.hub.register("1001", ["sales"])
    fakes.ami.stats.events_in.update({"QueueMemberStatus": 3, "Hangup": 1})
    fakes.ami.stats.reconnects = 2
    assert value("pbxis_agents") == 1
    assert value("pbxis_ami_events_total", {"type": "QueueMemberStatus"}) == 3
    assert value("pbxis_ami_events_total", {"type": "Hangup"}) == 1
    assert value("pbxis_ami_reconnects_total") == 2
    assert value("pbxis_ami_up") == 1
    assert value("pbxis_clients", {"transport": "sse"}) == 2
    assert value("pbxis_events_out_total", {"transport": "websocket"}) == 3
    assert value("pbxis_rebuild_duration_seconds") == 0.25
    assert value("pbxis_rebuild_actions") == 3
    assert value("pbxis_rebuild_messages") == 42
    fakes.ami.connected = False
    assert value("pbxis_ami_up") == 0


def test_action_latency_histogram_and_private_registries() -> None:
    fakes = Fakes()
    first = build_registry(ami=fakes.ami, hub=fakes.hub, streams=None, sync=fakes.sync)
    other = Fakes()
    second = build_registry(ami=other.ami, hub=other.hub, streams=None, sync=other.sync)
    for listener in fakes.ami.listeners:
        listener("QueueAdd", 0.03, "ok")
        listener("QueueAdd", 2.0, "timeout")
    labels = {"action": "QueueAdd", "outcome": "ok"}
    assert first.get_sample_value("pbxis_ami_action_seconds_count", labels) == 1
    assert first.get_sample_value("pbxis_ami_action_seconds_bucket", {**labels, "le": "0.05"}) == 1
    assert first.get_sample_value("pbxis_ami_action_seconds_bucket", {**labels, "le": "0.025"}) == 0
    timeout = {"action": "QueueAdd", "outcome": "timeout"}
    assert first.get_sample_value("pbxis_ami_action_seconds_sum", timeout) == 2.0
    assert second.get_sample_value("pbxis_ami_action_seconds_count", labels) is None


def test_no_rebuild_yet_means_no_rebuild_metrics() -> None:
    fakes = Fakes()
    fakes.sync.last_rebuild = None
    registry = build_registry(ami=fakes.ami, hub=fakes.hub, streams=None, sync=fakes.sync)
    assert registry.get_sample_value("pbxis_rebuild_duration_seconds") is None
    assert registry.get_sample_value("pbxis_agents") == 0


@pytest.fixture
def app_clock() -> Clock:
    """Health and metrics ages are read off this clock (overrides conftest's reactor)."""
    return Clock()


@pytest_twisted.ensureDeferred
async def test_metrics_over_http(env: Env) -> None:
    server = await env.serve()
    status, _, _ = await server.call("PUT", "/agents/1001", {"queues": ["sales"]})
    assert status == 200
    status, _, _ = await server.call("POST", "/agents/1001/queues/sales/login")
    assert status == 200
    status, body, headers = await server.call("GET", "/metrics", key=None)
    assert status == 200
    assert headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
    got = samples(body)
    assert got[("pbxis_agents", ())] == 1
    assert got[("pbxis_ami_action_seconds_count", (("action", "QueueAdd"), ("outcome", "ok")))] == 1


@pytest_twisted.ensureDeferred
async def test_health_up(env: Env) -> None:
    server = await env.serve()
    env.clock.advance(1000.0)
    env.fakes.ami.stats.last_event_time = 997.5
    env.fakes.center.register_agent("1001", ["sales"], listeners=[lambda event: None])
    status, body, headers = await server.call("GET", "/health", key=None)
    assert status == 200
    instance = body.pop("instance")
    assert set(instance) == {"id", "startedAt"} and instance["startedAt"] == 1_700_000_000_000
    assert body == {
        "status": "ok",
        "ami": {"connected": True, "state": "connected", "lastEventAge": 2.5, "reconnects": 0},
        "synced": True,
        "agents": 1,
        "supervisors": 0,
        "clients": {"listener": 1},
        "pbx": {
            "default": {
                "connected": True,
                "state": "connected",
                "lastEventAge": 2.5,
                "reconnects": 0,
                "synced": True,
                "agents": 1,
                "supervisors": 0,
                "clients": {"listener": 1},
            }
        },
    }
    assert headers.getRawHeaders(b"retry-after") is None


@pytest_twisted.ensureDeferred
async def test_health_down_is_503_with_retry_after(env: Env) -> None:
    server = await env.serve()
    env.fakes.ami.connected = False
    env.fakes.ami.stats.state = "connecting"
    env.fakes.sync.ready = False
    status, body, headers = await server.call("GET", "/health", key=None)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["ami"] == {"connected": False, "state": "connecting", "lastEventAge": None, "reconnects": 0}
    assert body["synced"] is False
    assert headers.getRawHeaders(b"retry-after") == [b"5"]


@pytest_twisted.ensureDeferred
async def test_health_names_the_instance_so_a_restart_is_visible(env: Env) -> None:
    """Two app builds (a restart) answer different instance ids; one build always the same."""
    first = await env.serve()
    _, a, _ = await first.call("GET", "/health", key=None)
    _, again, _ = await first.call("GET", "/health", key=None)
    restarted = await env.serve()
    _, b, _ = await restarted.call("GET", "/health", key=None)
    assert a["instance"] == again["instance"]
    assert a["instance"]["id"] != b["instance"]["id"] and len(a["instance"]["id"]) == 16


def test_event_series_are_bounded_to_known_names() -> None:
    """Issue 12, item 9: one series per invented event name made /metrics 9.3 MB."""
    fakes = Fakes()
    registry = build_registry(ami=fakes.ami, hub=fakes.hub, streams=fakes.streams, sync=fakes.sync)
    fakes.ami.stats.events_in.update({f"Evil{i}": 1 for i in range(5000)})
    fakes.ami.stats.events_in.update({"QueueMemberStatus": 3, "other": 2, "Newchannel": 1})
    from prometheus_client import generate_latest

    series = {
        labels: value
        for (name, labels), value in samples(generate_latest(registry)).items()
        if name == "pbxis_ami_events_total"
    }
    assert series == {
        (("type", "Newchannel"),): 1,
        (("type", "QueueMemberStatus"),): 3,
        (("type", "other"),): 5002,
    }


def test_ami_totals_attach_the_listeners_to_a_renewed_link_whatever_its_id() -> None:
    """A collector renews a PBX's unit (a new AMI link) at each hand-over; the old link is
    freed, and CPython often gives the next object of its size the same id: the new link
    must get the action listeners all the same."""
    from pbxis.metrics import AmiTotals

    class Link:
        def __init__(self) -> None:
            self.listeners: list[object] = []
            self.connected = True

        def add_action_listener(self, listener: object) -> None:
            self.listeners.append(listener)

    links = [Link()]
    totals = AmiTotals(lambda: links)
    seen: list[str] = []
    totals.add_action_listener(lambda name, took, outcome: seen.append(name))
    assert totals.connected and len(links[0].listeners) == 1
    reused = None
    for _ in range(50):  # until a new link lands where the freed one was (usually at once)
        old_id = id(links[0])
        links.clear()  # freed at once (no cycle)
        links.append(Link())
        if id(links[0]) == old_id:
            reused = links[0]
            break
    if reused is None:
        pytest.skip("this interpreter gave the new link another address")
    assert totals.connected
    assert len(reused.listeners) == 1
