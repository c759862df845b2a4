"""The command routes over real HTTP on 127.0.0.1, against small fakes of the layers."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from pbxis.ami.errors import ActionFailed, ActionTimeout, ConnectionLost
from tests.support.override import Override
from tests.web.test_api_fakes import Env, Fakes, Server


@pytest_twisted.async_yield_fixture
async def api(env: Env) -> AsyncIterator[Server]:
    yield await env.serve()


async def register(api: Server, agent: str = "1001", **body: Any) -> dict[str, Any]:
    status, doc, _ = await api.call("PUT", f"/agents/{agent}", body or {"queues": ["sales"], "name": "Alice"})
    assert status == 200, doc
    return doc


# -- registration -----------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_register_answers_token_and_absolute_stream_urls(env: Env, api: Server) -> None:
    doc = await register(api, queues=["sales", "support", "sales"], name="Alice")
    token = env.fakes.hub.get("1001").token
    assert doc == {
        "agent": "1001",
        "pbx": "default",
        "queues": ["sales", "support"],
        "name": "Alice",
        "token": token,
        "streams": {
            "sse": f"https://pbx.example.com/cc/stream/{token}/sse",
            "websocket": f"wss://pbx.example.com/cc/stream/{token}/ws",
            "longPoll": f"https://pbx.example.com/cc/stream/{token}/poll",
        },
        "gracePeriod": 60.0,
    }
    # The call center registered it with the tracker too.
    assert env.fakes.tracker.agents == ["1001"]
    assert env.fakes.center.registration("1001").queues == ("sales", "support")


@pytest_twisted.ensureDeferred
async def test_register_again_keeps_token_and_updates_queues(api: Server) -> None:
    first = await register(api, queues=["sales"])
    again = await register(api, queues=["support"])
    assert again["token"] == first["token"]
    assert again["queues"] == ["support"]


@pytest_twisted.ensureDeferred
async def test_register_plain_http_base_gives_ws(env: Env) -> None:
    server = await env.serve(public_base_url="http://10.0.0.5:8080/")
    doc = await register(server)
    assert doc["streams"]["websocket"] == f"ws://10.0.0.5:8080/stream/{doc['token']}/ws"
    assert doc["streams"]["sse"] == f"http://10.0.0.5:8080/stream/{doc['token']}/sse"


@pytest_twisted.ensureDeferred
async def test_register_without_body_is_allowed(api: Server) -> None:
    status, doc, _ = await api.call("PUT", "/agents/1001")
    assert status == 200 and doc["queues"] == [] and doc["name"] is None


@pytest_twisted.ensureDeferred
async def test_unregister_then_state_is_gone(env: Env, api: Server) -> None:
    await register(api)
    status, body, _ = await api.call("DELETE", "/agents/1001")
    assert (status, body) == (204, None)
    assert env.fakes.hub.get("1001") is None and "1001" not in env.fakes.tracker.agents
    status, body, _ = await api.call("GET", "/agents/1001")
    assert status == 404 and body["error"]["code"] == "unknown_agent"
    status, body, _ = await api.call("DELETE", "/agents/1001")
    assert status == 404 and body["error"]["code"] == "unknown_agent"


@pytest_twisted.ensureDeferred
async def test_agent_state_and_queues(api: Server) -> None:
    await register(api)
    status, body, _ = await api.call("GET", "/agents/1001")
    assert status == 200 and body["agent"] == "1001" and "sales" in body["queues"]
    status, body, _ = await api.call("GET", "/queues")
    assert status == 200 and "sales" in body["queues"]


# -- input validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "ctype", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b'{"queues": NaN}', "application/json", 400, "invalid_json"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b'["sales"]', "application/json", 400, "invalid_body"),
        (b'{"queue": ["sales"]}', "application/json", 400, "unknown_field"),
        (b'{"queues": "sales"}', "application/json", 400, "invalid_field"),
        (b'{"queues": ["no such/queue"]}', "application/json", 400, "invalid_field"),
        (b'{"queues": [1]}', "application/json", 400, "invalid_field"),
        (b'{"name": 7}', "application/json", 400, "invalid_field"),
        (b'{"name": "a\\u0000b"}', "application/json", 400, "invalid_field"),
        (b'{"queues": []}', "text/plain", 415, "unsupported_media_type"),
        (b'{"queues": []}', "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"name": "' + b"x" * 70_000 + b'"}', "application/json", 413, "body_too_large"),
        (b"[" * 100_000, "application/json", 413, "body_too_large"),
        (b"[" * 60_000, "application/json", 400, "invalid_json"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_bodies_are_refused_with_their_code(
    env: Env, api: Server, raw: bytes, ctype: str, status: int, code: str
) -> None:
    got, body, _ = await api.call("PUT", "/agents/1001", raw=raw, headers={"Content-Type": ctype})
    assert (got, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert env.fakes.hub.stats()["agents"] == 0


@pytest_twisted.ensureDeferred
async def test_json_content_type_with_charset_is_accepted(api: Server) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    status, body, _ = await api.call("PUT", "/agents/1001", raw=b'{"queues": ["sales"]}', headers=headers)
    assert status == 200, body


@pytest.mark.parametrize("agent", ["a" * 33, "10%2001", "1001%0D%0AAction:%20Command", "%C3%A9", "1001;x"])
@pytest_twisted.ensureDeferred
async def test_bad_agent_names_are_400(env: Env, api: Server, agent: str) -> None:
    status, body, _ = await api.call("PUT", f"/agents/{agent}", {"queues": []})
    assert status == 400 and body["error"]["code"] == "invalid_field", body
    status, body, _ = await api.call("POST", f"/agents/{agent}/queues/sales/login")
    assert status == 400, body
    assert env.sent() == []


@pytest_twisted.ensureDeferred
async def test_bad_queue_name_is_400(env: Env, api: Server) -> None:
    status, body, _ = await api.call("POST", "/agents/1001/queues/" + "q" * 65 + "/login")
    assert status == 400 and body["error"]["message"].startswith("queue:")
    assert env.sent() == []


INJECTION = "123\r\nAction: Command\r\nCommand: core stop now"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/agents/1001/originate", {"number": INJECTION}),
        ("/agents/1001/originate", {"number": "123", "callerId": INJECTION}),
        ("/agents/1001/originate", {"number": "123", "variables": {"X": INJECTION}}),
        ("/agents/1001/originate", {"number": "123", "variables": {"X\r\nAction: Command": "1"}}),
        ("/agents/1001/queues/sales/pause", {"reason": INJECTION}),
        ("/agents/1001/queues/sales/login", {"memberName": INJECTION}),
        ("/agents/1001/queues/sales/login", {"memberName": "Bob\nAction: Command"}),
    ],
)
@pytest_twisted.ensureDeferred
async def test_header_injection_is_refused_before_ami(env: Env, api: Server, path: str, body: Any) -> None:
    await register(api)
    status, doc, _ = await api.call("POST", path, body)
    assert status == 400 and doc["error"]["code"] == "invalid_field", doc
    assert env.sent() == []


# -- originate ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_originate_rings_agent_then_dials_number(env: Env, api: Server) -> None:
    await register(api)
    status, doc, _ = await api.call(
        "POST",
        "/agents/1001/originate",
        {"number": "+49911234567", "callerId": '"Sales" <0211>', "variables": {"CRM_TICKET": "4711"}},
    )
    assert status == 202, doc
    action_id = doc["actionId"]
    assert re.fullmatch(r"originate-[0-9a-f]{16}", action_id)
    notes = [c for c in env.fakes.calls if c[0] == "send_action"]
    assert notes[0] == (
        "send_action",
        "Originate",
        [
            ("Channel", "SIP/1001"),
            ("Context", "agents"),
            ("Exten", "+49911234567"),
            ("Priority", "1"),
            ("CallerID", '"Sales" <0211>'),
            ("Timeout", "30000"),
            ("Async", "true"),
            ("Variable", "CRM_TICKET=4711"),
        ],
        action_id,
    )


@pytest_twisted.ensureDeferred
async def test_originate_uses_settings(env: Env) -> None:
    env.fakes = Fakes(
        env.clock,
        agents={
            "interface": "PJSIP/{agent}",
            "originate_context": "crm-out",
            "originate_timeout": 12.5,
            "caller_id": '"{name}" <{agent}>',
        },
    )
    server = await env.serve()
    await register(server, queues=[], name="Alice")
    status, doc, _ = await server.call("POST", "/agents/1001/originate", {"number": "0911"})
    assert status == 202, doc
    ((_, headers, _),) = env.sent()
    assert dict(headers) == {
        "Channel": "PJSIP/1001",
        "Context": "crm-out",
        "Exten": "0911",
        "Priority": "1",
        "CallerID": '"Alice" <1001>',
        "Timeout": "12500",
        "Async": "true",
    }


@pytest_twisted.ensureDeferred
async def test_originate_answers_only_once_asterisk_queued_it(env: Env, api: Server) -> None:
    from twisted.internet import defer, reactor, task

    await register(api)
    hold: defer.Deferred[None] = defer.Deferred()
    env.fakes.ami.hold = hold
    answer = defer.ensureDeferred(api.call("POST", "/agents/1001/originate", {"number": "0911"}))
    deadline = reactor.seconds() + 5
    while not env.sent():
        assert reactor.seconds() < deadline, "Originate never sent"
        await task.deferLater(reactor, 0.01, lambda: None)
    assert not answer.called
    hold.callback(None)
    status, doc, _ = await answer
    assert status == 202 and doc["actionId"].startswith("originate-")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "number: required"),
        ({"number": ""}, "number:"),
        ({"number": "09 11"}, "number:"),
        ({"number": 911}, "number:"),
        ({"number": "1" * 33}, "number:"),
        ({"number": "1", "variables": {"1X": "a"}}, "variables:"),
        ({"number": "1", "variables": ["X=1"]}, "variables:"),
        ({"number": "1", "variables": {"X": 1}}, "variables.X:"),
        ({"number": "1", "callerId": "x" * 129}, "callerId:"),
        ({"number": "1", "context": "default"}, "unknown field 'context'"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_originate_validation(env: Env, api: Server, body: Any, message: str) -> None:
    await register(api)
    status, doc, _ = await api.call("POST", "/agents/1001/originate", body)
    assert status == 400, doc
    assert doc["error"]["message"].startswith(message)
    assert env.sent() == []


@pytest_twisted.ensureDeferred
async def test_originate_escapes_variable_commas(env: Env, api: Server) -> None:
    await register(api)
    status, _, _ = await api.call(
        "POST", "/agents/1001/originate", {"number": "1", "variables": {"NOTE": 'Smith, "J" (VIP)'}}
    )
    assert status == 202
    ((_, headers, _),) = env.sent()
    assert ("Variable", r"NOTE=Smith\, \"J\" \(VIP\)") in headers


@pytest_twisted.ensureDeferred
async def test_originate_for_unregistered_agent_is_404(env: Env, api: Server) -> None:
    status, doc, _ = await api.call("POST", "/agents/1009/originate", {"number": "0911"})
    assert status == 404 and doc["error"]["code"] == "unknown_agent"
    assert env.sent() == []


# -- queue commands ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_queue_login_logoff_pause_unpause(env: Env, api: Server) -> None:
    await register(api)
    status, doc, _ = await api.call("POST", "/agents/1001/queues/sales/login", {"penalty": 2, "paused": True})
    assert (status, doc) == (200, {"agent": "1001", "queue": "sales", "loggedIn": True, "paused": True})
    status, doc, _ = await api.call("POST", "/agents/1001/queues/sales/pause", {"reason": "lunch"})
    assert (status, doc) == (200, {"agent": "1001", "queue": "sales", "paused": True})
    status, doc, _ = await api.call("POST", "/agents/1001/queues/sales/unpause")
    assert (status, doc) == (200, {"agent": "1001", "queue": "sales", "paused": False})
    status, doc, _ = await api.call("POST", "/agents/1001/queues/sales/logoff", {})
    assert (status, doc) == (200, {"agent": "1001", "queue": "sales", "loggedIn": False})
    assert env.sent() == [
        (
            "QueueAdd",
            [
                ("Queue", "sales"),
                ("Interface", "SIP/1001"),
                ("MemberName", "Alice"),
                ("Penalty", "2"),
                ("StateInterface", "SIP/1001"),
                ("Paused", "true"),
            ],
            None,
        ),
        (
            "QueuePause",
            [("Queue", "sales"), ("Interface", "SIP/1001"), ("Paused", "true"), ("Reason", "lunch")],
            None,
        ),
        ("QueuePause", [("Queue", "sales"), ("Interface", "SIP/1001"), ("Paused", "false")], None),
        ("QueueRemove", [("Queue", "sales"), ("Interface", "SIP/1001")], None),
    ]


@pytest_twisted.ensureDeferred
async def test_login_of_unregistered_agent_uses_agent_as_member_name(env: Env, api: Server) -> None:
    status, _, _ = await api.call("POST", "/agents/1002/queues/support/login", {"memberName": "Bob"})
    assert status == 200
    status, _, _ = await api.call("POST", "/agents/1003/queues/support/login")
    assert status == 200
    assert [dict(h)["MemberName"] for _, h, _ in env.sent()] == ["Bob", "1003"]


@pytest.mark.parametrize(
    ("setup", "path", "status", "code"),
    [
        ("login", "/agents/1001/queues/sales/login", 409, "already_logged_in"),
        (None, "/agents/1001/queues/nosuchqueue/login", 404, "unknown_queue"),
        (None, "/agents/1001/queues/sales/logoff", 409, "not_logged_in"),
        (None, "/agents/1001/queues/nosuchqueue/logoff", 404, "unknown_queue"),
        ("static", "/agents/1001/queues/sales/logoff", 409, "member_not_dynamic"),
        (None, "/agents/1001/queues/sales/pause", 409, "not_logged_in"),
        (None, "/agents/1001/queues/nosuchqueue/unpause", 409, "not_logged_in"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_asterisk_queue_refusals_map_to_statuses(
    env: Env, api: Server, setup: str | None, path: str, status: int, code: str
) -> None:
    if setup == "login":
        env.fakes.ami.queues["sales"].add("SIP/1001")
    elif setup == "static":
        env.fakes.ami.queues["sales"].add("SIP/1001")
        env.fakes.ami.static.add(("sales", "SIP/1001"))
    got, doc, _ = await api.call("POST", path)
    assert (got, doc["error"]["code"]) == (status, code), doc


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (None, 503, "pbx_unavailable", b"5"),
        (ConnectionLost("gone"), 503, "pbx_unavailable", b"5"),
        (ActionTimeout("slow"), 504, "pbx_timeout", None),
        (ActionFailed("QueueAdd", "Permission denied"), 502, "pbx_refused", None),
    ],
)
@pytest_twisted.ensureDeferred
async def test_link_failures_map_to_statuses(
    env: Env, api: Server, error: Exception | None, status: int, code: str, retry_after: bytes | None
) -> None:
    if error is None:
        env.fakes.ami.connected = False
    else:
        env.fakes.ami.fail_with = error
    got, doc, headers = await api.call("POST", "/agents/1001/queues/sales/login")
    assert (got, doc["error"]["code"]) == (status, code), doc
    assert headers.getRawHeaders(b"retry-after", [None])[0] == retry_after
    if isinstance(error, ActionFailed):
        assert "Permission denied" in doc["error"]["message"]


@pytest.mark.parametrize("body", [{"penalty": -1}, {"penalty": True}, {"penalty": "1"}, {"paused": "yes"}])
@pytest_twisted.ensureDeferred
async def test_login_body_types(env: Env, api: Server, body: Any) -> None:
    status, doc, _ = await api.call("POST", "/agents/1001/queues/sales/login", body)
    assert status == 400 and doc["error"]["code"] == "invalid_field", doc
    assert env.sent() == []


@pytest_twisted.ensureDeferred
async def test_logoff_refuses_any_field(env: Env, api: Server) -> None:
    status, doc, _ = await api.call("POST", "/agents/1001/queues/sales/logoff", {"reason": "x"})
    assert status == 400 and doc["error"]["code"] == "unknown_field"
    assert env.sent() == []


# -- the app's own answers ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_unknown_route_and_wrong_method_are_json(api: Server) -> None:
    status, doc, _ = await api.call("GET", "/nope")
    assert status == 404 and doc["error"]["code"] == "not_found"
    status, doc, headers = await api.call("PATCH", "/agents/1001")
    assert status == 405 and doc["error"]["code"] == "method_not_allowed"
    allowed = headers.getRawHeaders(b"allow")[0].decode()
    assert {m.strip() for m in allowed.split(",")} >= {"GET", "PUT", "DELETE"}


@pytest_twisted.ensureDeferred
async def test_cors_preflight_and_answers(api: Server) -> None:
    crm = {"Origin": "https://crm.example.com", "Access-Control-Request-Method": "POST"}
    status, body, headers = await api.call("OPTIONS", "/agents/1001/originate", key=None, headers=crm)
    assert (status, body) == (204, None)
    assert headers.getRawHeaders(b"access-control-allow-origin") == [b"https://crm.example.com"]
    assert b"Authorization" in headers.getRawHeaders(b"access-control-allow-headers")[0]
    # An unknown path is not a route, preflight or not.
    status, _, _ = await api.call("OPTIONS", "/nope", key=None, headers=crm)
    assert status == 404
    # Answers and errors carry CORS headers for an allowed origin, none for others.
    _, _, headers = await api.call("GET", "/queues", headers={"Origin": "https://crm.example.com"})
    assert headers.getRawHeaders(b"access-control-allow-origin") == [b"https://crm.example.com"]
    status, _, headers = await api.call(
        "GET", "/queues", key=None, headers={"Origin": "https://crm.example.com"}
    )
    assert status == 401
    assert headers.getRawHeaders(b"access-control-allow-origin") == [b"https://crm.example.com"]
    _, _, headers = await api.call("GET", "/queues", headers={"Origin": "https://evil.example.com"})
    assert headers.getRawHeaders(b"access-control-allow-origin") is None


@pytest_twisted.ensureDeferred
async def test_unexpected_exception_is_a_bare_500_and_logged_without_secrets(
    env: Env, api: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = await register(api)
    token = doc["token"]

    def broken(agent: str) -> dict[str, Any]:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(env.fakes.center.primary, "tracker", Override(env.fakes.tracker, agent_state=broken))
    events: list[LogEvent] = []
    globalLogPublisher.addObserver(events.append)
    try:
        status, body, _ = await api.call("GET", "/agents/1001", key=token)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert status == 500
    assert body == {"error": {"code": "internal_error", "message": body["error"]["message"]}}
    assert "secret internals" not in json.dumps(body) and "Traceback" not in json.dumps(body)
    failures = [e for e in events if e.get("log_failure") is not None]
    assert len(failures) == 1
    text = formatEvent(failures[0])
    assert "GET /agents/1001" in text
    for event in events:
        rendered = formatEvent(event) + repr(event)
        assert token not in rendered


# -- issue 12, item 7: lone surrogates are a 400 naming the field, everywhere --------------

SURROGATE = '"\\ud800"'  # JSON text for half a surrogate pair: valid JSON, not valid Unicode


@pytest.fixture
def errors() -> Any:
    """Log events carrying a failure (the 500 path logs one)."""
    events: list[LogEvent] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_failure") is not None:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/agents/1001/originate", '{"number": "123", "callerId": %s}', "callerId"),
        ("/agents/1001/originate", '{"number": "123", "variables": {"X": %s}}', "variables.X"),
        ("/agents/1001/queues/sales/pause", '{"reason": %s}', "reason"),
        ("/agents/1001/queues/sales/login", '{"memberName": %s}', "memberName"),
        ("/agents/1001/queues/sales/login", '{%s: 1}', "body"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_lone_surrogates_are_400_not_500(
    env: Env, api: Server, path: str, body: str, field: str, errors: list[LogEvent]
) -> None:
    await register(api)
    raw = body.replace("%s", SURROGATE).encode()
    status, doc, _ = await api.call("POST", path, raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and doc["error"]["code"] == "invalid_field", doc
    assert doc["error"]["message"].startswith(f"{field}:")
    assert env.sent() == [] and errors == []


@pytest_twisted.ensureDeferred
async def test_a_lone_surrogate_name_is_refused_at_registration(
    env: Env, api: Server, errors: list[LogEvent]
) -> None:
    """Accepted, it broke every later queue login of the agent (memberName defaults to it)."""
    raw = ('{"queues": ["sales"], "name": ' + SURROGATE + "}").encode()
    json_type = {"Content-Type": "application/json"}
    status, doc, _ = await api.call("PUT", "/agents/1001", raw=raw, headers=json_type)
    assert status == 400 and doc["error"]["message"].startswith("name:")
    assert env.fakes.hub.get("1001") is None
    status, doc, _ = await api.call("PUT", "/agents/1001", {"queues": ["sales"], "name": "Zoë 👩‍💼"})
    assert status == 200
    status, _, _ = await api.call("POST", "/agents/1001/queues/sales/login")
    assert status == 200 and errors == []


def test_the_ami_layer_refuses_a_surrogate_itself() -> None:
    """The last line of defence answers LocalProtocolError, not UnicodeEncodeError (a 500)."""
    from pbxis.ami.action import format_action
    from pbxis.ami.parser import LocalProtocolError

    with pytest.raises(LocalProtocolError):
        format_action("QueuePause", [("Reason", "\ud800")])


@pytest.mark.parametrize("raw", ["1_0", "1e1", "inf", "nan", "-1", "\u0661", "0x10", "121"])
def test_poll_timeout_takes_plain_digits_only(raw: str) -> None:
    from pbxis.web.errors import ApiError
    from pbxis.web.streams.poll import parse_timeout

    with pytest.raises(ApiError):
        parse_timeout(raw)
    assert parse_timeout("10") == 10.0 and parse_timeout(" 0.5 ") == 0.5 and parse_timeout("120") == 120.0


# -- the /pbx/{pbx} prefix with one PBX (issue 16) -----------------------------------


@pytest_twisted.ensureDeferred
async def test_the_one_pbx_is_also_served_under_its_prefix(env: Env, api: Server) -> None:
    status, doc, _ = await api.call("PUT", "/pbx/default/agents/1001", {"queues": ["sales"]})
    assert status == 200 and doc["pbx"] == "default"
    status, again, _ = await api.call("GET", "/agents/1001")
    assert status == 200  # the same registration unprefixed
    status, doc, _ = await api.call("GET", "/pbx/default/agents/1001")
    assert status == 200 and doc == again
    status, doc, _ = await api.call("GET", "/pbx/default/queues")
    assert status == 200
    for method, path in (("PUT", "/pbx/east/agents/1001"), ("GET", "/pbx/east/queues")):
        status, doc, _ = await api.call(method, path, {"queues": []} if method == "PUT" else None)
        assert status == 404 and doc["error"]["code"] == "unknown_pbx", path
    assert env.fakes.center.registration("1001") is not None
