"""/openapi.json is a valid OpenAPI 3 document and agrees with the app's routes both ways."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
from openapi_spec_validator import validate
from twisted.internet.task import Clock

from pbxis.web.app import build_app
from pbxis.web.openapi import openapi_document
from tests.web.test_api_fakes import Fakes, Server, http_settings, make_site

METHODS = {"get", "put", "post", "delete", "patch"}
STREAM_OPERATIONS = {
    ("/stream/{token}/sse", "get"),
    ("/stream/{token}/poll", "get"),
    ("/stream/{token}/ws", "get"),
}


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method) for path, item in document["paths"].items() for method in item if method in METHODS
    }


def routed(app: Any) -> set[tuple[str, str]]:
    """(OpenAPI path, method) for every rule; HEAD and OPTIONS are implied, not operations."""
    out = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                out.add((path, method.lower()))
    return out


def test_document_is_valid_openapi() -> None:
    document = openapi_document("https://pbx.example.com/cc/")
    validate(document)
    assert document["servers"] == [{"url": "https://pbx.example.com/cc"}]


def test_every_contract_route_is_documented() -> None:
    paths = documented(openapi_document("http://x"))
    contract = {
        ("/agents/{agent}", "put"),
        ("/agents/{agent}", "delete"),
        ("/agents/{agent}", "get"),
        ("/agents/{agent}/originate", "post"),
        *{
            (f"/agents/{{agent}}/queues/{{queue}}/{a}", "post")
            for a in ("login", "logoff", "pause", "unpause")
        },
        ("/queues", "get"),
        *STREAM_OPERATIONS,
        ("/client/{tech}/{agent}", "get"),
        ("/health", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
    }
    assert contract <= paths


def test_routes_and_document_agree() -> None:
    """Every route is documented, and every documented operation is routed."""
    app = build_app(Fakes().center, http_settings(), clock=Clock())
    assert routed(app) == documented(openapi_document("http://x"))


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[Server]:
    s = await Server(make_site(Fakes())).start()
    try:
        yield s
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_served_document(server: Server) -> None:
    status, body, headers = await server.call("GET", "/openapi.json", key=None)
    assert status == 200
    assert headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert body == openapi_document("https://pbx.example.com/cc")
