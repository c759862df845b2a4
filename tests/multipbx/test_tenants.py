"""Tenants: an API key of ``[[tenants]]`` sees its PBXes only. For every other PBX each
agent, queue and supervisor route is the 404 of a PBX that does not exist, and
``/queues``, ``/metrics`` and ``/health`` show nothing of it. Route by route, over the
app's own route table (a route added later is covered without editing this file)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted

from pbxis.config import ConfigError, parse_config
from tests.support.multi import TwoPbx, start_two, stop_two

FULL = "full-api-key-0123456789"
ACME = "acme-api-key-0123456789"


@pytest_twisted.async_yield_fixture
async def two() -> AsyncIterator[TwoPbx]:
    t = await start_two(
        api_keys=[FULL],
        tenants=[{"name": "acme", "pbxes": ["east"], "api_keys": [ACME]}],
        metrics_public=False,
    )
    try:
        yield t
    finally:
        await stop_two(t)


def scoped_routes(two: TwoPbx) -> list[tuple[str, str]]:
    """(method, path template with {pbx}) of every route under /pbx/<pbx>."""
    out = []
    for rule in two.service.app.url_map.iter_rules():
        if not rule.rule.startswith("/pbx/<pbx>/"):
            continue
        path = rule.rule.replace("<pbx>", "{pbx}").replace("<agent>", "1001")
        path = path.replace("<queue>", "sales").replace("<name>", "boss")
        assert not re.search(r"<[^>]+>", path), path
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((method, path))
    return out


async def call(two: TwoPbx, method: str, path: str, key: str | None) -> tuple[int, Any]:
    body = {"queues": ["sales"]} if method == "PUT" else ({} if method == "POST" else None)
    headers = {} if key else {"Authorization": ""}
    return await two.stack.api(method, path, body, token=key, headers=headers)


@pytest_twisted.ensureDeferred
async def test_every_route_of_a_hidden_pbx_is_404_for_the_tenant(two: TwoPbx) -> None:
    routes = scoped_routes(two)
    assert len(routes) == 18, routes  # 3 agent, queues, originate, 4 queue, 6 call control, 3 supervisor
    for pbx in ("east", "west"):
        status, _ = await two.stack.api("PUT", f"/pbx/{pbx}/agents/1001", {"queues": ["sales"]}, token=FULL)
        assert status == 200
    west_before = two.service.center.units["west"].hub.stats()["agents"]
    for method, template in routes:
        status, doc = await call(two, method, template.format(pbx="west"), ACME)
        assert status == 404 and doc["error"]["code"] == "unknown_pbx", (method, template, doc)
        # the same message as a PBX that does not exist: nothing tells them apart
        _, unknown = await call(two, method, template.format(pbx="nowhere"), ACME)
        assert doc["error"]["message"].replace("west", "nowhere") == unknown["error"]["message"]
        # on its own PBX the tenant is never told the PBX is unknown
        status, doc = await call(two, method, template.format(pbx="east"), ACME)
        assert not (status == 404 and doc["error"]["code"] == "unknown_pbx"), (method, template, doc)
        # and the full key sees west
        status, doc = await call(two, method, template.format(pbx="west"), FULL)
        assert not (status == 404 and doc["error"]["code"] == "unknown_pbx"), (method, template, doc)
    # nothing the tenant sent reached west: the full key's registration is still the only one
    assert two.service.center.units["west"].hub.stats()["agents"] <= west_before


@pytest_twisted.ensureDeferred
async def test_queues_metrics_and_health_show_a_tenant_its_pbxes_only(two: TwoPbx) -> None:
    for pbx in ("east", "west"):
        status, _ = await two.stack.api("PUT", f"/pbx/{pbx}/agents/1001", {"queues": ["sales"]}, token=FULL)
        assert status == 200
    status, doc = await two.stack.api("GET", "/pbx/east/queues", token=ACME)
    assert status == 200 and "sales" in doc["queues"]

    status, text = await two.stack.api("GET", "/metrics", token=ACME)
    assert status == 200 and 'pbx="east"' in text and "west" not in text
    assert "pbxis_agents " not in text  # the unlabelled totals would count west's agents
    status, text = await two.stack.api("GET", "/metrics", token=FULL)
    assert status == 200 and 'pbx="west"' in text and "pbxis_agents 2.0" in text
    status, _ = await two.stack.api("GET", "/metrics", headers={"Authorization": ""})
    assert status == 401

    status, doc = await two.stack.api("GET", "/health", token=ACME)
    assert status == 200 and list(doc["pbx"]) == ["east"] and doc["agents"] == 1
    status, doc = await two.stack.api("GET", "/health", token=FULL)
    assert status == 200 and list(doc["pbx"]) == ["east", "west"] and doc["agents"] == 2
    status, doc = await two.stack.api("GET", "/health", headers={"Authorization": ""})
    assert status == 200 and "pbx" not in doc and "agents" not in doc and "west" not in str(doc)

    status, doc = await two.stack.api("GET", "/health/pbx/east", token=ACME)
    assert status == 200 and doc["pbx"] == "east"
    status, doc = await two.stack.api("GET", "/health/pbx/west", token=ACME)
    assert status == 404 and doc["error"]["code"] == "unknown_pbx"
    status, doc = await two.stack.api("GET", "/health/pbx/west", token=FULL)
    assert status == 200
    status, _ = await two.stack.api("GET", "/health/pbx/east", headers={"Authorization": ""})
    assert status == 401


@pytest_twisted.ensureDeferred
async def test_a_tenants_agent_token_works_on_its_pbx(two: TwoPbx) -> None:
    status, reg = await two.stack.api("PUT", "/pbx/east/agents/1002", {"queues": ["sales"]}, token=ACME)
    assert status == 200 and reg["pbx"] == "east"
    status, doc = await two.stack.api("GET", "/pbx/east/agents/1002", token=reg["token"])
    assert status == 200
    status, doc = await two.stack.api("GET", "/pbx/west/agents/1002", token=reg["token"])
    assert status == 404 and doc["error"]["code"] == "unknown_pbx"
    status, body = await two.stack.api("GET", f"/stream/{reg['token']}/poll?timeout=0", token=reg["token"])
    assert status == 200 and {e["pbx"] for e in body["events"]} == {"east"}


TWO = [{"name": "east", "port": 5038}, {"name": "west", "port": 5039}]


@pytest.mark.parametrize(
    ("tenants", "http", "message"),
    [
        ([{"name": "a", "pbxes": ["north"], "api_keys": [ACME]}], {}, "[[tenants]] a.pbxes: 'north'"),
        ([{"name": "a", "pbxes": [], "api_keys": [ACME]}], {}, "[[tenants]] a.pbxes: required"),
        ([{"name": "a", "pbxes": ["east"]}], {}, "[[tenants]] a.api_keys: required"),
        ([{"name": "a", "pbxes": ["east"], "api_keys": ["short"]}], {}, "at least 16 characters"),
        (
            [{"name": "a", "pbxes": ["east"], "api_keys": [FULL]}],
            {"api_keys": [FULL]},
            "[[tenants]] a.api_keys",
        ),
        (
            [
                {"name": "a", "pbxes": ["east"], "api_keys": [ACME]},
                {"name": "b", "pbxes": ["west"], "api_keys": [ACME]},
            ],
            {},
            "[[tenants]] b.api_keys: a key of tenant a",
        ),
        (
            [{"name": "a", "pbxes": ["east"], "api_keys": [ACME]}, {"name": "a", "pbxes": ["west"]}],
            {},
            "#2.name",
        ),
        (
            [{"name": "a", "pbxes": ["east"], "api_keys": [ACME], "keys": []}],
            {},
            "[[tenants]] a.keys: unknown",
        ),
        (
            [{"name": "a", "pbxes": ["east"], "api_keys": [ACME]}],
            {"metrics_public": True},
            "[http].metrics_public",
        ),
    ],
)
def test_tenant_mistakes_name_the_key(
    tenants: list[dict[str, Any]], http: dict[str, Any], message: str
) -> None:
    data = {"pbx": TWO, "tenants": tenants, "http": {"metrics_public": False, **http}}
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert message in str(raised.value)


def test_a_tenants_health_shows_no_other_pbxs_shared_store() -> None:
    """With Redis each PBX has its own store, and ``/health`` reports each under
    ``redis.pbx``: a tenant's body (``health(its pbxes)``) names its PBXes' only."""
    from twisted.internet import task as _task

    from pbxis.engine import CallCenter
    from pbxis.hub.memory import MemoryStore

    class Reporting(MemoryStore):
        def __init__(self, pbx: str) -> None:
            super().__init__()
            self.pbx = pbx

        def health(self) -> dict[str, Any]:
            return {"connected": True, "pendingEvents": 0, "of": self.pbx}

    tables = [
        {"name": p, "host": "127.0.0.1", "port": 5038, "username": "u", "secret": "s"}
        for p in ("east", "west")
    ]
    config = parse_config({"pbx": tables})
    center = CallCenter(_task.Clock(), config, store={"east": Reporting("east"), "west": Reporting("west")})
    body = center.health(["west"])
    assert "east" not in str(body), body
    assert body["redis"]["of"] == "west" and list(body["redis"]["pbx"]) == ["west"], body
    assert list(center.health()["redis"]["pbx"]) == ["east", "west"]
