"""Small fakes of the hub, tracker, AMI client and sync, and an HTTP harness.

The fakes implement exactly the interfaces ``build_app`` is documented to use, so the
command API is tested over real HTTP without a PBX. ``FakeAMI`` keeps a tiny queue
table and refuses with Asterisk 20's own texts (captures login/logoff/pause), so the
error mapping is exercised by the same strings a real Asterisk sends.

Run as a script (``python test_api_fakes.py``) it serves such an app on 127.0.0.1 and
prints the port: the fuzz test drives it from another process.

This module holds no tests; pytest collects nothing from it.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer
from twisted.web.server import Site

from pbxis.ami.errors import ActionFailed, NotConnected
from pbxis.ami.message import Message
from pbxis.events import AgentEvent
from pbxis.supervisors import QueueBoard
from pbxis.web.app import WebSettings, build_app

API_KEY = "crm-key-0123456789abcdef"


@dataclass
class FakeRegistration:
    agent: str
    queues: tuple[str, ...]
    name: str | None
    token: str


class FakeHub:
    def __init__(self) -> None:
        self.agents: dict[str, FakeRegistration] = {}
        self.published: list[AgentEvent] = []
        self.clients = {"sse": 2, "websocket": 1}

    def register(self, agent: str, queues: Sequence[str], name: str | None = None) -> FakeRegistration:
        old = self.agents.get(agent)
        token = old.token if old is not None else secrets.token_urlsafe(32)
        self.agents[agent] = FakeRegistration(agent, tuple(queues), name, token)
        return self.agents[agent]

    def unregister(self, agent: str) -> bool:
        return self.agents.pop(agent, None) is not None

    def get(self, agent: str) -> FakeRegistration | None:
        return self.agents.get(agent)

    def by_token(self, token: str) -> FakeRegistration | None:
        return next((r for r in self.agents.values() if r.token == token), None)

    def publish(self, events: Sequence[AgentEvent]) -> None:
        self.published.extend(events)

    def stats(self) -> dict[str, Any]:
        return {"agents": len(self.agents), "clients": dict(self.clients), "events_published": 0}


class FakeTracker:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.agents: dict[str, list[str]] = {}
        self.calls = calls

    def register(self, agent: str, queues: Sequence[str], now_ms: int) -> list[AgentEvent]:
        self.agents[agent] = list(queues)
        return [AgentEvent(agent, "extensionStatus", now_ms, {"status": "not_inuse"})]

    def unregister(self, agent: str) -> None:
        self.agents.pop(agent, None)

    def agent_state(self, agent: str) -> dict[str, Any] | None:
        if agent not in self.agents:
            return None
        queues = {
            q: {
                "membership": None,
                "loggedIn": False,
                "status": "unknown",
                "paused": False,
                "reason": "",
                "count": 0,
            }
            for q in self.agents[agent]
        }
        return {
            "agent": agent,
            "extension": "not_inuse",
            "queues": queues,
            "call": None,
            "pbxConnected": True,
        }

    def queues_state(self) -> dict[str, Any]:
        return {"sales": {"queue": "sales", "count": 0, "members": []}}

    def note_originate(self, action_id: str, agent: str, number: str) -> None:
        self.calls.append(("note_originate", action_id, agent, number))

    def interface_of(self, agent: str) -> str:
        return f"SIP/{agent}"


class FakeSupervisors:
    """SupervisorSync's web-facing part over a real board, with no AMI behind it."""

    def __init__(self) -> None:
        self.board = QueueBoard(lambda interface: None)

    def supervisor_registered(self, key: str, queues: Sequence[str]) -> defer.Deferred[None]:
        self.board.register(key, queues, 0)
        return defer.succeed(None)

    def supervisor_unregistered(self, key: str) -> None:
        self.board.unregister(key)

    def state(self, key: str) -> dict[str, Any] | None:
        return self.board.state(key, 0)


@dataclass
class FakeAMIStats:
    connects: int = 1
    logins: int = 1
    reconnects: int = 0
    events_in: Counter[str] = field(default_factory=Counter)
    last_event_time: float | None = None
    state: str = "connected"
    last_error: str | None = None


class FakeAMI:
    """Answers queue actions like Asterisk 20's app_queue, Originate like manager.c."""

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls
        self.connected = True
        self.stats = FakeAMIStats()
        self.listeners: list[Any] = []
        self.queues: dict[str, set[str]] = {"sales": set(), "support": set()}
        self.static: set[tuple[str, str]] = set()
        self.fail_with: Exception | None = None
        self.hold: defer.Deferred[Any] | None = None

    def add_action_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def send_action(
        self, name: str, headers: Any = None, *, timeout: float | None = None, action_id: str | None = None
    ) -> defer.Deferred[Any]:
        fields = dict(headers or [])
        self.calls.append(("send_action", name, list(headers or []), action_id))
        if not self.connected:
            return defer.fail(NotConnected(f"{name}: no logged-in AMI link"))
        if self.fail_with is not None:
            return defer.fail(self.fail_with)
        try:
            message = getattr(self, f"_{name.lower()}")(fields)
        except ActionFailed as e:
            self._notify(name, "error")
            return defer.fail(e)
        self._notify(name, "ok")
        result = SimpleNamespace(response=Message([("Response", "Success"), ("Message", message)]), events=[])
        if self.hold is not None:
            held, self.hold = self.hold, None
            return held.addCallback(lambda _: result)
        return defer.succeed(result)

    def _notify(self, name: str, outcome: str) -> None:
        for listener in self.listeners:
            listener(name, 0.02, outcome)

    def _queueadd(self, f: dict[str, str]) -> str:
        members = self.queues.get(f["Queue"])
        if members is None:
            raise ActionFailed("QueueAdd", "Unable to add interface to queue: No such queue")
        if f["Interface"] in members:
            raise ActionFailed("QueueAdd", "Unable to add interface: Already there")
        members.add(f["Interface"])
        return "Added interface to queue"

    def _queueremove(self, f: dict[str, str]) -> str:
        members = self.queues.get(f["Queue"])
        if members is None:
            raise ActionFailed("QueueRemove", "Unable to remove interface from queue: No such queue")
        if (f["Queue"], f["Interface"]) in self.static:
            raise ActionFailed("QueueRemove", "Member not dynamic")
        if f["Interface"] not in members:
            raise ActionFailed("QueueRemove", "Unable to remove interface: Not there")
        members.discard(f["Interface"])
        return "Removed interface from queue"

    def _queuepause(self, f: dict[str, str]) -> str:
        if f["Interface"] not in self.queues.get(f["Queue"], ()):
            raise ActionFailed("QueuePause", "Interface not found")
        return "Interface paused successfully" if f["Paused"] == "true" else "Interface unpaused successfully"

    def _originate(self, f: dict[str, str]) -> str:
        return "Originate successfully queued"


class FakeSync:
    def __init__(self) -> None:
        self.ready = True
        self.registered: list[str] = []
        self.last_rebuild: Any = SimpleNamespace(duration=0.25, actions=3, messages=42)

    def agent_registered(self, agent: str) -> defer.Deferred[None]:
        self.registered.append(agent)
        return defer.succeed(None)


class FakeStreams:
    def stats(self) -> dict[str, Any]:
        return {"events_out": {"sse": 7, "websocket": 3, "longPoll": 1}}


@dataclass
class Fakes:
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    hub: FakeHub = field(default_factory=FakeHub)
    sync: FakeSync = field(default_factory=FakeSync)
    streams: FakeStreams = field(default_factory=FakeStreams)
    supervisors: FakeSupervisors = field(default_factory=lambda: FakeSupervisors())

    def __post_init__(self) -> None:
        self.tracker = FakeTracker(self.calls)
        self.ami = FakeAMI(self.calls)


def settings(**overrides: Any) -> WebSettings:
    values: dict[str, Any] = {
        "public_base_url": "https://pbx.example.com/cc",
        "api_keys": [API_KEY],
        "allowed_origins": ["https://crm.example.com"],
    }
    values.update(overrides)
    return WebSettings(**values)


def make_app(fakes: Fakes, clock: Any = None, client_installer: Any = None, **overrides: Any) -> Any:
    return build_app(
        settings=settings(**overrides),
        hub=fakes.hub,
        tracker=fakes.tracker,
        ami=fakes.ami,
        sync=fakes.sync,
        streams_installer=lambda app: fakes.streams,
        client_installer=client_installer,
        supervisors=fakes.supervisors,
        clock=clock,
        now_ms=lambda: 1_700_000_000_000,
    )


class Server:
    """The app on 127.0.0.1:0 and a treq client with its own non-persistent pool."""

    def __init__(self, app: Any) -> None:
        from twisted.internet import reactor

        self._reactor = reactor
        self.site = Site(app.resource())
        self.site.displayTracebacks = False
        self.port: Any = None

    async def start(self) -> Server:
        from twisted.internet.endpoints import TCP4ServerEndpoint

        self.port = await TCP4ServerEndpoint(self._reactor, 0, interface="127.0.0.1").listen(self.site)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = API_KEY,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, Any]:
        """One request; returns (status, parsed JSON or bytes or None, response headers)."""
        import treq

        hdrs = dict(headers or {})
        if key is not None:
            hdrs.setdefault("Authorization", f"Bearer {key}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        response = await treq.request(method, self.url + path, data=data, headers=hdrs, persistent=False)
        content = await treq.content(response)
        ctype = response.headers.getRawHeaders(b"content-type", [b""])[0]
        parsed: Any = content or None
        if content and ctype.startswith(b"application/json"):
            parsed = json.loads(content)
        return response.code, parsed, response.headers

    async def stop(self) -> None:
        await self.port.stopListening()


class Env:
    """The fakes, and every server a test started on them (the ``env`` fixture stops them)."""

    def __init__(self, clock: Any = None) -> None:
        self.fakes = Fakes()
        self.clock = clock
        self.servers: list[Server] = []

    async def serve(self, **overrides: Any) -> Server:
        server = await Server(make_app(self.fakes, clock=self.clock, **overrides)).start()
        self.servers.append(server)
        return server

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    def sent(self) -> list[tuple[str, list[tuple[str, str]], str | None]]:
        """The actions the app sent to the fake AMI: (action, headers, action id)."""
        return [(c[1], c[2], c[3]) for c in self.fakes.calls if c[0] == "send_action"]


def _serve() -> None:
    """Serve an app over fakes and print its port; the fuzz test's server process."""
    import sys

    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint

    from pbxis.web.client import add_client_routes

    app = make_app(Fakes(), client_installer=add_client_routes, public_base_url="http://127.0.0.1")
    site = Site(app.resource())
    site.displayTracebacks = False

    def listening(port: Any) -> None:
        sys.stdout.write(f"{port.getHost().port}\n")
        sys.stdout.flush()

    d = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    d.addCallback(listening)
    # Exit when the parent closes our stdin (it ended, or was killed).
    reactor.callInThread(lambda: (sys.stdin.read(), reactor.callFromThread(reactor.stop)))
    reactor.run()


if __name__ == "__main__":
    _serve()
