"""Who may call what: API keys, stream tokens, the open API and the public routes."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from pbxis.web.auth import Authenticator, Principal
from pbxis.web.errors import ApiError
from tests.web.test_api_fakes import API_KEY, Env, Server


async def token_of(server: Server, agent: str) -> str:
    status, doc, _ = await server.call("PUT", f"/agents/{agent}", {"queues": ["sales"]})
    assert status == 200
    return doc["token"]


CRM_ONLY = [("PUT", "/agents/1001"), ("DELETE", "/agents/1001"), ("GET", "/queues")]
AGENT_OWN = [
    ("GET", "/agents/{a}"),
    ("POST", "/agents/{a}/originate"),
    ("POST", "/agents/{a}/queues/sales/login"),
    ("POST", "/agents/{a}/queues/sales/logoff"),
    ("POST", "/agents/{a}/queues/sales/pause"),
    ("POST", "/agents/{a}/queues/sales/unpause"),
]


@pytest.mark.parametrize(("method", "path"), CRM_ONLY + [(m, p.format(a="1001")) for m, p in AGENT_OWN])
@pytest_twisted.ensureDeferred
async def test_missing_or_bad_credentials_are_401(env: Env, method: str, path: str) -> None:
    server = await env.serve()
    status, doc, headers = await server.call(method, path, key=None)
    assert status == 401 and doc["error"]["code"] == "unauthorized"
    assert headers.getRawHeaders(b"www-authenticate")[0].startswith(b"Bearer")
    for authorization in ("Bearer wrong-key", f"Basic {API_KEY}", "Bearer", API_KEY):
        status, doc, headers = await server.call(
            method, path, key=None, headers={"Authorization": authorization}
        )
        assert status == 401, authorization
        assert headers.getRawHeaders(b"www-authenticate")[0].startswith(b"Bearer")
    assert [c for c in env.fakes.calls if c[0] == "send_action"] == []


@pytest_twisted.ensureDeferred
async def test_stream_token_acts_for_its_own_agent_only(env: Env) -> None:
    server = await env.serve()
    mine = await token_of(server, "1001")
    await token_of(server, "1002")
    env.fakes.ami.queues["sales"].add("SIP/1001")  # so logoff and pause succeed
    bodies = {"POST /agents/{a}/originate": {"number": "0911"}}
    for method, template in [AGENT_OWN[0], AGENT_OWN[1], AGENT_OWN[4], AGENT_OWN[5], AGENT_OWN[3]]:
        body = bodies.get(f"{method} {template}")
        status, doc, _ = await server.call(method, template.format(a="1001"), body, key=mine)
        assert status in (200, 202), (template, doc)
        status, doc, _ = await server.call(method, template.format(a="1002"), body, key=mine)
        assert status == 403 and doc["error"]["code"] == "forbidden", template
    for method, path in CRM_ONLY:
        status, doc, _ = await server.call(method, path, {} if method == "PUT" else None, key=mine)
        assert status == 403 and doc["error"]["code"] == "forbidden", path
    # A token stops working once its agent is unregistered.
    status, _, _ = await server.call("DELETE", "/agents/1001")
    assert status == 204
    status, _, _ = await server.call("GET", "/agents/1001", key=mine)
    assert status == 401


@pytest_twisted.ensureDeferred
async def test_every_configured_key_works(env: Env) -> None:
    server = await env.serve(api_keys=["first-key-0123456789", "second-key-0123456789"])
    for key in ("first-key-0123456789", "second-key-0123456789"):
        status, _, _ = await server.call("GET", "/queues", key=key)
        assert status == 200
    status, _, _ = await server.call("GET", "/queues", key="first-key-012345678")
    assert status == 401


@pytest_twisted.ensureDeferred
async def test_no_keys_means_open_api(env: Env) -> None:
    server = await env.serve(api_keys=[])
    status, doc, _ = await server.call("PUT", "/agents/1001", {"queues": ["sales"]}, key=None)
    assert status == 200, doc
    status, _, _ = await server.call("GET", "/queues", key=None)
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_public_routes_need_no_credentials(env: Env) -> None:
    server = await env.serve()
    for path in ("/health", "/openapi.json", "/metrics"):
        status, _, _ = await server.call("GET", path, key=None)
        assert status == 200, path


@pytest_twisted.ensureDeferred
async def test_private_metrics_need_an_api_key(env: Env) -> None:
    server = await env.serve(metrics_public=False)
    status, _, headers = await server.call("GET", "/metrics", key=None)
    assert status == 401 and headers.getRawHeaders(b"www-authenticate")
    token = await token_of(server, "1001")
    status, _, _ = await server.call("GET", "/metrics", key=token)
    assert status == 403
    status, body, _ = await server.call("GET", "/metrics")
    assert status == 200 and b"pbxis_agents 1.0" in body


@pytest_twisted.ensureDeferred
async def test_secrets_never_reach_the_log(env: Env) -> None:
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        server = await env.serve()
        token = await token_of(server, "1001")
        await server.call("GET", "/agents/1001", key=token)
        await server.call("POST", "/agents/1001/originate", {"number": "0911"}, key=token)
        await server.call("GET", "/queues", key="a-wrong-key-0123456789")
        await server.call("DELETE", "/agents/1001")
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert events, "expected some log events (registration, originate)"
    for event in events:
        rendered = formatEvent(event) + repr(event)
        for secret in (token, API_KEY, "a-wrong-key-0123456789"):
            assert secret not in rendered


class _Tokens:
    def pbx_of_token(self, token: str) -> Any:
        return ("default", type("R", (), {"agent": "1001"})()) if token == "tok" else None


class _Request:
    def __init__(self, authorization: bytes | None) -> None:
        self._authorization = authorization

    def getHeader(self, name: bytes) -> bytes | None:
        return self._authorization if name == b"authorization" else None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Bearer key-1", Principal()),
        (b"bearer   key-2  ", Principal()),
        (b"Bearer tok", Principal(agent="1001", pbx="default")),
    ],
)
def test_authenticator_principals(header: bytes, expected: Principal) -> None:
    auth = Authenticator(["key-1", "key-2"], _Tokens())
    assert auth.authenticate(_Request(header)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("header", [None, b"Bearer key-3", b"Token key-1", b"Bearer ", b"Bearer \xff"])
def test_authenticator_refusals(header: bytes | None) -> None:
    auth = Authenticator(["key-1"], _Tokens())
    with pytest.raises(ApiError) as raised:
        auth.authenticate(_Request(header))  # type: ignore[arg-type]
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")
