"""Who may call what, end to end against a secured daemon: keys, tokens, origins, AMI input, logs."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest_twisted
import treq
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool

from pbxis.web.openapi import openapi_document
from tests.reliability.rel_helpers import DEADLINE, Recorder, captured_log, open_sse, open_ws, poll_once
from tests.reliability.rel_stack import start_fast
from tests.support.stack import API_KEY, Stack, stop_stack

CRM = "https://crm.example"
PUBLIC = {
    "/health",
    "/health/pbx/{pbx}",  # public without [[tenants]] (tests/multipbx/test_tenants.py: with them)
    "/openapi.json",
    "/client",
    "/client/{tech}/{agent}",
    "/static/{name}",
    "/wallboard",
}
EVIL = ["1\r\nAction: Command\r\nCommand: core stop now", "1\nAction: Command", "1\rX: y", "a\x00b"]


@pytest_twisted.async_yield_fixture
async def locked() -> AsyncIterator[Stack]:
    """API keys, private metrics, one allowed CRM origin."""
    s = await start_fast(API_KEY, http={"metrics_public": False, "allowed_origins": [CRM]})
    try:
        yield s
    finally:
        await stop_stack(s)


async def register(stack: Stack, agent: str, queues: list[str]) -> str:
    status, body = await stack.api("PUT", f"/agents/{agent}", {"queues": queues}, token=API_KEY)
    assert status == 200, body
    return str(body["token"])


def fill(path: str, token: str = "not-a-token") -> str:
    values = {
        "agent": "1001",
        "queue": "sales",
        "tech": "sse",
        "name": "pbxis.js",
        "token": token,
        "pbx": "default",
    }
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def anonymous(stack: Stack, method: str, path: str) -> tuple[int, Any]:
    """One call with no Authorization header at all."""
    data = b"{}" if method in ("PUT", "POST") else None
    response = await treq.request(
        method,
        stack.base_url + path,
        data=data,
        headers={"Content-Type": "application/json"},
        persistent=False,
    )
    body = await treq.content(response)
    ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
    return response.code, json.loads(body) if ctype.startswith(b"application/json") and body else None


@pytest_twisted.ensureDeferred
async def test_only_public_routes_work_without_credentials(locked: Stack) -> None:
    stack = locked
    await register(stack, "1001", ["sales"])
    paths = openapi_document("http://x")["paths"]
    # Every route the app serves is in the document, so the walk below covers them all.
    served = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in stack.service.app.url_map.iter_rules()
        if rule.methods - {"OPTIONS", "HEAD"}
    }
    assert served <= set(paths), served - set(paths)
    walked = 0
    for path, item in paths.items():
        for method in [m for m in item if m in {"get", "put", "post", "delete"}]:
            status, body = await anonymous(stack, method.upper(), fill(path))
            walked += 1
            if path in PUBLIC:
                assert status == 200 or (path == "/client" and status in (200, 302)), (path, status)
            elif path.startswith("/stream/"):
                # The URL's token is the credential; an unknown one reads nothing.
                assert status == 404, (path, status, body)
            else:
                assert status == 401, (method, path, status, body)
                assert body["error"]["code"] == "unauthorized"
    assert walked >= 16
    status, _ = await stack.api("GET", "/metrics", token=API_KEY)
    assert status == 200


@pytest_twisted.ensureDeferred
async def test_stream_token_cannot_read_or_act_for_another_agent(locked: Stack) -> None:
    stack = locked
    alice = await register(stack, "1001", ["sales"])
    await register(stack, "1002", ["sales"])
    for method, path, body in [
        ("GET", "/agents/1002", None),
        ("POST", "/agents/1002/originate", {"number": "0911"}),
        ("POST", "/agents/1002/queues/sales/login", {}),
        ("POST", "/agents/1002/queues/sales/pause", {}),
        ("PUT", "/agents/1001", {"queues": ["support"]}),  # even for itself: CRM only
        ("DELETE", "/agents/1002", None),
        ("GET", "/queues", None),
        ("GET", "/metrics", None),
    ]:
        status, answer = await stack.api(method, path, body, token=alice)
        assert status == 403, (method, path, status, answer)
    status, _ = await stack.api("GET", "/agents/1001", token=alice)
    assert status == 200
    # Its stream carries its own agent's events only.
    stack.simulator.queue_add("sales", "SIP/1002")
    stack.simulator.queue_add("sales", "SIP/1001")
    pool = HTTPConnectionPool(reactor, persistent=False)
    status, body = await poll_once(stack.base_url, alice, None, 0.3, pool)
    await pool.closeCachedConnections()
    assert status == 200 and body["events"]
    assert {e["agent"] for e in body["events"]} == {"1001"}


@pytest_twisted.ensureDeferred
async def test_cors_and_websocket_origin_are_enforced(locked: Stack) -> None:
    stack = locked
    token = await register(stack, "1001", ["sales"])
    for origin, allowed in ((CRM, True), ("https://evil.example", False)):
        status, _ = await stack.api("GET", "/agents/1001", token=token, headers={"Origin": origin})
        assert status == 200
        # The call itself is not refused (a browser withholds the answer), but only an
        # allowed origin gets the header that lets its page read it.
        response = await treq.request(
            "OPTIONS",
            f"{stack.base_url}/agents/1001",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            persistent=False,
        )
        await treq.content(response)
        acao = response.headers.getRawHeaders(b"access-control-allow-origin")
        assert (acao == [origin.encode()]) is allowed, (origin, acao)
        response = await treq.get(
            f"{stack.base_url}/agents/1001",
            headers={"Origin": origin, "Authorization": f"Bearer {token}"},
            persistent=False,
        )
        await treq.content(response)
        acao = response.headers.getRawHeaders(b"access-control-allow-origin")
        assert (acao == [origin.encode()]) is allowed, (origin, acao)
    port = stack.service.http_port
    for origin, expected in (
        ("https://evil.example", 4403),
        (CRM, None),
        (f"http://127.0.0.1:{port}", None),  # pbxis's own client page
    ):
        rec = Recorder(origin)
        ws = await open_ws(port, token, rec, origin=origin)
        if expected is None:
            await rec.until(lambda rec=rec: bool(rec.events))
            await ws.stop()
        else:
            assert await ws.closed.addTimeout(DEADLINE, reactor) == expected
            assert not rec.events


@pytest_twisted.ensureDeferred
async def test_ami_header_injection_is_refused_in_every_field(locked: Stack) -> None:
    stack = locked
    await register(stack, "1001", ["sales"])
    session = stack.simulator.sessions[0]
    sent_before = len(session.received)
    cases: list[tuple[str, str, Any]] = []
    for evil in EVIL:
        cases += [
            ("POST", "/agents/1001/originate", {"number": evil}),
            ("POST", "/agents/1001/originate", {"number": "0911", "callerId": evil}),
            ("POST", "/agents/1001/originate", {"number": "0911", "variables": {"X": evil}}),
            ("POST", "/agents/1001/originate", {"number": "0911", "variables": {evil: "1"}}),
            ("POST", "/agents/1001/queues/sales/login", {"memberName": evil}),
            ("POST", "/agents/1001/queues/sales/login", {"penalty": evil}),
            ("POST", "/agents/1001/queues/sales/pause", {"reason": evil}),
            ("PUT", "/agents/1001", {"queues": [evil]}),
            ("PUT", "/agents/1001", {"queues": ["sales"], "name": evil}),
        ]
        quoted = evil.replace("\r", "%0D").replace("\n", "%0A").replace("\x00", "%00").replace(" ", "%20")
        cases += [
            ("POST", f"/agents/{quoted}/queues/sales/login", {}),
            ("POST", f"/agents/1001/queues/{quoted}/login", {}),
            ("POST", f"/agents/1001/queues/{quoted}/pause", {}),
            ("PUT", f"/agents/{quoted}", {"queues": ["sales"]}),
        ]
    for method, path, body in cases:
        status, answer = await stack.api(method, path, body, token=API_KEY)
        assert status in (400, 404), (method, path, body, status, answer)
    # Nothing of it reached Asterisk: no command action at all, let alone a Command.
    commands = {"Originate", "QueueAdd", "QueueRemove", "QueuePause", "Command"}
    actions = [m for m in session.received[sent_before:] if m.action in commands]
    assert actions == [], actions
    for message in session.received:
        assert not any(set(k + v) & {"\r", "\n", "\x00"} for k, v in message.headers), message
    assert stack.service.ami.connected


@pytest_twisted.ensureDeferred
async def test_no_secret_or_token_in_any_log_line() -> None:
    with captured_log() as lines:
        stack = await start_fast(API_KEY, http={"allowed_origins": [CRM]})
        pool = HTTPConnectionPool(reactor, persistent=False)
        try:
            token = await register(stack, "1001", ["sales"])
            other = await register(stack, "1002", ["support"])
            sse_rec, ws_rec = Recorder(), Recorder()
            _, sse = await open_sse(stack.base_url, token, sse_rec, pool)
            ws = await open_ws(stack.service.http_port, other, ws_rec)
            await poll_once(stack.base_url, token, None, 0, pool)
            await stack.api("GET", f"/client/sse/1001?token={token}", token=None)
            await stack.api("POST", "/agents/1001/queues/sales/login", {}, token=token)
            await stack.api("POST", "/agents/1001/originate", {"number": "0911"}, token=token)
            await stack.api("GET", "/queues", token="a-wrong-key-0123456789")
            await stack.api("GET", "/queues", token=token)  # 403: a token is no API key
            stack.simulator.restart(clean=True)  # logs in again: challenge, key, secret
            await stack.wait_for(lambda: stack.service.ami.stats.logins >= 2, 5, "relogin")
            await stack.ready()
            await sse_rec.until(lambda: bool(sse_rec.of("pbxStatus")))
            await ws.stop()
            assert sse is not None
            await sse.stop()
            await stack.api("DELETE", "/agents/1001", token=API_KEY)
        finally:
            await stop_stack(stack)
            await pool.closeCachedConnections()
    text = "\n".join(lines)
    assert "/stream/<token>/" in text and '"GET /stream/' in text  # the access log ran
    for secret in (API_KEY, "pbxis-secret", token, other, "a-wrong-key-0123456789"):
        assert secret not in text, secret
