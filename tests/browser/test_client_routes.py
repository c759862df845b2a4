"""The agent page's routes without a browser: validation, templating, static files."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest_twisted
from klein import Klein
from treq.testing import StubTreq
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from pbxis.web.client import STATIC_DIR, add_client_routes
from pbxis.web.errors import ApiError


def make_client() -> StubTreq:
    """Our routes on a bare Klein app that renders ApiError as the real app does."""
    app = Klein()

    @app.handle_errors(ApiError)
    def render(request: IRequest, failure: Failure) -> bytes:
        request.setResponseCode(failure.value.status)
        request.setHeader(b"content-type", b"application/json")
        return failure.value.body()

    add_client_routes(app)
    return StubTreq(app.resource())


async def get(path: str) -> tuple[int, dict[bytes, list[bytes]], bytes]:
    http = make_client()
    response = await http.get("http://pbxis.test" + path)
    body = await response.content()
    headers = dict(response.headers.getAllRawHeaders())
    return response.code, {k.lower(): v for k, v in headers.items()}, body


def page_config(html: bytes) -> Any:
    match = re.search(rb'<script type="application/json" id="pbxis-config">(.*?)</script>', html, re.S)
    assert match, "the page carries its config block"
    return json.loads(match.group(1))


@pytest_twisted.ensureDeferred
async def test_page_for_each_transport() -> None:
    for tech in ("long-poll", "sse", "websocket"):
        status, headers, body = await get(f"/client/{tech}/1001")
        assert status == 200
        assert headers[b"content-type"] == [b"text/html; charset=utf-8"]
        assert headers[b"referrer-policy"] == [b"no-referrer"]
        assert b"script-src 'self'" in headers[b"content-security-policy"][0]
        assert page_config(body) == {"tech": tech, "agent": "1001"}
        assert b"{{config}}" not in body


@pytest_twisted.ensureDeferred
async def test_unknown_tech_is_a_400_json() -> None:
    status, headers, body = await get("/client/carrier-pigeon/1001")
    assert status == 400
    assert headers[b"content-type"] == [b"application/json"]
    error = json.loads(body)["error"]
    assert error["code"] == "invalid_field" and "sse" in error["message"]


@pytest_twisted.ensureDeferred
async def test_invalid_agent_is_a_400() -> None:
    for agent in ("%3Cscript%3E", "a" * 33, "10%2001", "%22%3E"):
        status, _, body = await get(f"/client/sse/{agent}")
        assert status == 400, agent
        assert json.loads(body)["error"]["code"] == "invalid_field"


@pytest_twisted.ensureDeferred
async def test_agent_names_at_the_edge_of_the_rule_are_templated_as_json() -> None:
    agent = "a.B_9-" + "x" * 26
    status, _, body = await get(f"/client/websocket/{agent}")
    assert status == 200
    assert page_config(body)["agent"] == agent


@pytest_twisted.ensureDeferred
async def test_static_files_have_their_content_types() -> None:
    expected = {
        "pbxis.js": b"text/javascript; charset=utf-8",
        "pbxis.mjs": b"text/javascript; charset=utf-8",
        "page.js": b"text/javascript; charset=utf-8",
        "app.css": b"text/css; charset=utf-8",
    }
    for name, content_type in expected.items():
        status, headers, body = await get(f"/static/{name}")
        assert status == 200, name
        assert headers[b"content-type"] == [content_type]
        assert headers[b"cache-control"] == [b"public, max-age=300"]
        assert headers[b"x-content-type-options"] == [b"nosniff"]
        assert body == (STATIC_DIR / name).read_bytes()


@pytest_twisted.ensureDeferred
async def test_static_refuses_traversal_listing_and_templates() -> None:
    for path in (
        "/static/",
        "/static/../client.py",
        "/static/..%2Fclient.py",
        "/static/%2e%2e/client.py",
        "/static/agent.html",
        "/static/nope.js",
        "/static/pbxis.js/x",
    ):
        status, _, body = await get(path)
        assert status == 404, (path, status)
        assert b"function" not in body and b"import" not in body, path


@pytest_twisted.ensureDeferred
async def test_index_links_the_three_transports() -> None:
    status, headers, body = await get("/client")
    assert status == 200 and headers[b"content-type"] == [b"text/html; charset=utf-8"]
    for tech in (b"websocket", b"sse", b"long-poll"):
        assert b'data-tech="' + tech + b'"' in body
