"""The HTTP site's guards (issue 12, items 2, 6, 10, 11), attacked over loopback.

The app runs on fakes of the layers (``test_api_fakes``) behind the real
:func:`pbxis.web.site.build_site`, as the daemon serves it. Oversized and trickled
requests are written byte for byte by :mod:`raw_client`; ordinary ones go through treq.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint

from pbxis.web.app import build_app
from pbxis.web.site import build_site
from tests.web.raw_client import RawClient, connect
from tests.web.test_api_fakes import API_KEY, Fakes, http_settings

pytestmark = pytest.mark.timeout(30)

CRM = "https://crm.example.com"


class SiteServer:
    """The app behind ``build_site`` on 127.0.0.1:0."""

    def __init__(self, fakes: Fakes, site_options: dict[str, Any], app_options: dict[str, Any]) -> None:
        self.fakes = fakes
        http = http_settings(**{"allowed_origins": [CRM], **app_options})
        self.app = build_app(fakes.center, http, clock=fakes.clock, client_routes=False)
        self.site = build_site(self.app, [CRM], **site_options)
        self.port: Any = None

    async def start(self) -> SiteServer:
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self.site)
        return self

    @property
    def number(self) -> int:
        return int(self.port.getHost().port)

    async def call(
        self, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        hdrs = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
        response = await treq.request(
            method, f"http://127.0.0.1:{self.number}{path}", data=data, headers=hdrs, persistent=False
        )
        content = await treq.content(response)
        ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
        return response.code, (await treq.json_content(response) if ctype.startswith(b"application/json")
                               else content)  # fmt: skip

    def sent(self) -> list[str]:
        return [c[1] for c in self.fakes.calls if c[0] == "send_action"]


@pytest.fixture
def spooled(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every temporary file Twisted would spool a body to."""
    made: list[Any] = []
    original = tempfile.TemporaryFile

    def spy(*args: Any, **kwargs: Any) -> Any:
        made.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", spy)
    return made


@pytest_twisted.async_yield_fixture
async def serve() -> AsyncIterator[Any]:
    servers: list[SiteServer] = []

    async def start(app_options: dict[str, Any] | None = None, **site_options: Any) -> SiteServer:
        server = await SiteServer(Fakes(), site_options, app_options or {}).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.port.stopListening()


def request_head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("".join(line + "\r\n" for line in lines) + "\r\n").encode()


# -- item 2: bodies are bounded as they arrive, before auth, never spooled ------------------


@pytest_twisted.ensureDeferred
async def test_declared_huge_body_is_413_before_auth_and_body(serve: Any, spooled: list[Any]) -> None:
    server = await serve()
    client = await connect(server.number)
    # No credentials: a 401 would mean the route ran. Expect: 100-continue must not be granted.
    client.send(request_head("POST", "/agents/1001/originate", "Content-Length: 4294967296",
                             "Content-Type: application/json", "Expect: 100-continue"))  # fmt: skip
    await client.wait_closed()
    status, headers, _ = client.response()
    assert status == 413 and client.json()["error"]["code"] == "body_too_large"
    assert b"100 Continue" not in client.received
    assert headers["connection"] == "close"
    assert spooled == [] and server.sent() == []


@pytest_twisted.ensureDeferred
async def test_streamed_body_is_413_as_soon_as_it_passes_the_limit(serve: Any, spooled: list[Any]) -> None:
    server = await serve()
    client = await connect(server.number)
    client.send(request_head("POST", "/agents/1001/originate", "Transfer-Encoding: chunked",
                             "Content-Type: application/json"))  # fmt: skip
    chunk = b"x" * 8192
    for _ in range(9):  # 72 KiB, never finished: the answer cannot wait for the end
        client.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await client.until(lambda: b"\r\n\r\n" in client.received)
    assert client.response()[0] == 413
    # More of the body is discarded, not kept, and the socket is closed soon after.
    for _ in range(200):  # ~1.6 MB
        client.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    await client.wait_closed()
    assert spooled == [] and server.sent() == []


@pytest_twisted.ensureDeferred
async def test_a_body_up_to_the_limit_still_reaches_the_route(serve: Any, spooled: list[Any]) -> None:
    server = await serve()
    pad = "x" * (64 * 1024 - 100)
    body = ('{"queues": ["sales"], "name": "Alice", "pad": "' + pad + '"}').encode()
    assert len(body) <= 64 * 1024
    status, doc = await server.call("PUT", "/agents/1001", body, {"Content-Type": "application/json"})
    assert status == 400 and doc["error"]["code"] == "unknown_field"  # parsed: the route ran
    assert spooled == []


# -- item 10: read deadlines, and the body deadline -----------------------------------------


@pytest_twisted.ensureDeferred
async def test_trickled_headers_are_dropped_at_the_header_deadline(serve: Any) -> None:
    server = await serve(header_timeout=0.5)
    client = await connect(server.number)
    started = reactor.seconds()
    # One byte every 0.05 s keeps Twisted's idle timeout (60 s) from ever firing.
    trickling = defer.ensureDeferred(client.trickle(request_head("GET", "/health") * 20, 0.05))
    await client.wait_closed(timeout=5.0)
    assert reactor.seconds() - started < 3.0
    assert client.response()[0] == 408 and client.json()["error"]["code"] == "request_timeout"
    await trickling


@pytest_twisted.ensureDeferred
async def test_trickled_body_is_dropped_at_the_body_deadline(serve: Any) -> None:
    server = await serve(body_timeout=0.5)
    client = await connect(server.number)
    client.send(request_head("PUT", "/agents/1001", "Content-Length: 2000", "Content-Type: application/json",
                             f"Authorization: Bearer {API_KEY}"))  # fmt: skip
    await client.trickle(b"{" * 30, 0.05)
    await client.wait_closed(timeout=5.0)
    assert client.response()[0] == 408
    assert server.fakes.hub.get("1001") is None


@pytest_twisted.ensureDeferred
async def test_an_idle_keepalive_connection_is_not_cut_by_the_header_deadline(serve: Any) -> None:
    """The header deadline starts at a request's first byte, not when the last one ended."""
    server = await serve(header_timeout=0.3)
    client = await connect(server.number)
    client.send(request_head("GET", "/health"))
    await client.until(lambda: b"}" in client.received)
    await task.deferLater(reactor, 0.6, lambda: None)
    assert not client.lost
    client.received = b""
    client.send(request_head("GET", "/health"))
    await client.until(lambda: b"}" in client.received)
    assert client.response()[0] == 200


def test_listen_gets_the_configured_backlog() -> None:
    from twisted.internet.endpoints import serverFromString

    from pbxis.config import parse_config

    http = parse_config({"http": {"listen": "tcp:0:interface=127.0.0.1"}}).http
    assert http.server_endpoint == "tcp:0:interface=127.0.0.1:backlog=4096"
    endpoint = serverFromString(reactor, http.server_endpoint)
    assert endpoint._backlog == 4096  # type: ignore[attr-defined]
    http = parse_config({"http": {"backlog": 100, "listen": "ssl:8443:privateKey=k.pem"}}).http
    assert http.server_endpoint.endswith(":backlog=100")
    own = parse_config({"http": {"listen": "tcp:8080:backlog=50"}}).http
    assert own.server_endpoint == "tcp:8080:backlog=50"


# -- item 6: cross-site requests ----------------------------------------------------------


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded"])
@pytest_twisted.ensureDeferred
async def test_a_body_without_json_content_type_is_415(serve: Any, ctype: str | None) -> None:
    """fetch(url, {mode: "no-cors", body: new Blob([json])}) sends no Content-Type, no preflight."""
    server = await serve()
    await server.call("PUT", "/agents/1001", b'{"queues": ["sales"]}', {"Content-Type": "application/json"})
    headers = {"Content-Type": ctype} if ctype else {}
    status, doc = await server.call("POST", "/agents/1001/originate", b'{"number": "0911234567"}', headers)
    assert status == 415 and doc["error"]["code"] == "unsupported_media_type"
    assert server.sent() == []


@pytest_twisted.ensureDeferred
async def test_a_state_change_from_a_foreign_origin_is_403(serve: Any) -> None:
    server = await serve()
    json_type = {"Content-Type": "application/json"}
    await server.call("PUT", "/agents/1001", b'{"queues": ["sales"]}', json_type)
    body = b'{"number": "0911234567"}'
    status, doc = await server.call(
        "POST", "/agents/1001/originate", body, {**json_type, "Origin": "https://evil.example"}
    )
    assert status == 403 and doc["error"]["code"] == "origin_not_allowed"
    status, _ = await server.call("POST", "/agents/1001/queues/sales/logoff", None, {"Origin": "null"})
    assert status == 403
    assert server.sent() == []
    # Reading is not a state change; the configured CRM and pbxis's own pages may act.
    assert (await server.call("GET", "/health", None, {"Origin": "https://evil.example"}))[0] == 200
    status, _ = await server.call("POST", "/agents/1001/originate", body, {**json_type, "Origin": CRM})
    assert status == 202
    own = f"http://127.0.0.1:{server.number}"
    status, _ = await server.call("POST", "/agents/1001/originate", body, {**json_type, "Origin": own})
    assert status == 202


@pytest_twisted.ensureDeferred
async def test_dns_rebinding_cannot_pass_for_same_origin(serve: Any) -> None:
    """A page at evil.example, whose name now resolves to pbxis, sends Host and Origin
    naming evil.example: equal, yet not pbxis's own page. Without allowed_hosts only an IP
    literal or localhost counts as pbxis's own address; with it, the names it lists."""
    server = await serve()
    json_type = {"Content-Type": "application/json"}
    body = b'{"queues": ["sales"]}'
    for host in (f"evil.example:{server.number}", "evil.example"):
        status, doc = await server.call(
            "PUT", "/agents/1005", body, {**json_type, "Host": host, "Origin": f"http://{host}"}
        )
        assert status == 403 and doc["error"]["code"] == "origin_not_allowed", host
    for host in (f"127.0.0.1:{server.number}", f"localhost:{server.number}", f"[::1]:{server.number}"):
        status, _ = await server.call(
            "PUT", "/agents/1005", body, {**json_type, "Host": host, "Origin": f"http://{host}"}
        )
        assert status == 200, host
    named = await serve(allowed_hosts=["pbx.example.com"])
    status, _ = await named.call(
        "PUT", "/agents/1005", body,
        {**json_type, "Host": "pbx.example.com", "Origin": "https://pbx.example.com"},
    )  # fmt: skip
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_a_host_outside_allowed_hosts_is_421(serve: Any) -> None:
    """DNS rebinding: evil.example resolves to pbxis, the browser sends Host: evil.example."""
    server = await serve(allowed_hosts=["pbx.example.com", "10.0.0.5:8080"])
    for host in ("evil.example", "evil.example:8080", "10.0.0.5:9999"):
        status, doc = await server.call("GET", "/queues", None, {"Host": host})
        assert status == 421 and doc["error"]["code"] == "host_not_allowed", host
    for host in ("pbx.example.com", "PBX.example.com:443", "10.0.0.5:8080"):
        assert (await server.call("GET", "/queues", None, {"Host": host}))[0] == 200, host


# -- item 11: the Host header does not choose the stream URLs ------------------------------


@pytest_twisted.ensureDeferred
async def test_stream_urls_ignore_an_unchecked_host_header(serve: Any) -> None:
    server = await serve(app_options={"public_base_url": ""})
    body = b'{"queues": ["sales"]}'
    status, doc = await server.call(
        "PUT", "/agents/1001", body, {"Content-Type": "application/json", "Host": "evil.example"}
    )
    assert status == 200
    assert doc["streams"]["sse"].startswith(f"http://127.0.0.1:{server.number}/stream/")
    assert "evil" not in str(doc["streams"])


@pytest_twisted.ensureDeferred
async def test_stream_urls_follow_a_host_checked_against_allowed_hosts(serve: Any) -> None:
    server = await serve(app_options={"public_base_url": ""}, allowed_hosts=["pbx.example.com"])
    body = b'{"queues": ["sales"]}'
    status, doc = await server.call(
        "PUT", "/agents/1001", body, {"Content-Type": "application/json", "Host": "pbx.example.com:8080"}
    )
    assert status == 200
    assert doc["streams"]["websocket"].startswith("ws://pbx.example.com:8080/stream/")


@pytest.mark.parametrize("agent", [".", ".."])
@pytest_twisted.ensureDeferred
async def test_dot_agent_names_are_refused(serve: Any, agent: str) -> None:
    server = await serve()
    client: RawClient = await connect(server.number)
    client.send(request_head("PUT", f"/agents/{agent}", f"Authorization: Bearer {API_KEY}",
                             "Connection: close"))  # fmt: skip
    await client.wait_closed()
    assert client.response()[0] == 400 and b'"code": "invalid_field"' in client.received
    assert server.fakes.hub.get(agent) is None
