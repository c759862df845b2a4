"""A fake AMI link under a real CallCenter, and an HTTP harness.

The call center (tracker, hub, sync, commands) is the real one; only its AMI client is
replaced, so the command API is tested over real HTTP without a PBX. ``FakeAMI`` keeps a tiny queue
table and refuses with Asterisk 20's own texts (captures login/logoff/pause), so the
error mapping is exercised by the same strings a real Asterisk sends.

Run as a script (``python test_api_fakes.py``) it serves such an app on 127.0.0.1 and
prints the port: the fuzz test drives it from another process.

This module holds no tests; pytest collects nothing from it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer
from twisted.web.server import Site

from pbxis.ami.errors import ActionFailed, NotConnected
from pbxis.ami.message import Message
from pbxis.config import HTTPConfig, parse_config
from pbxis.engine import CallCenter
from pbxis.sync import RebuildStats
from pbxis.web.app import build_app
from pbxis.web.site import build_site

API_KEY = "crm-key-0123456789abcdef"


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
        self.observers: list[object] = []
        self.queues: dict[str, set[str]] = {"sales": set(), "support": set()}
        self.static: set[tuple[str, str]] = set()
        self.fail_with: Exception | None = None
        self.hold: defer.Deferred[Any] | None = None

    def add_action_listener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def add_observer(self, observer: object) -> None:
        self.observers.append(observer)

    def connect(self, endpoint: Any) -> None:
        raise AssertionError("the fake link is never connected to anything")

    def stop(self) -> defer.Deferred[None]:
        return defer.succeed(None)

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


class FakeStreams:
    """What ``pbxis.web.streams.StreamRoutes.stats()`` reports."""

    def stats(self) -> dict[str, Any]:
        return {
            "events_out": {"sse": 7, "websocket": 3, "longPoll": 1},
            "clients": {"sse": 2, "websocket": 1, "longPoll": 0},
        }


class Fakes:
    """A real :class:`~pbxis.engine.CallCenter` whose AMI link is :class:`FakeAMI`."""

    def __init__(self, clock: Any = None, **config: Any) -> None:
        from twisted.internet import reactor

        self.calls: list[tuple[Any, ...]] = []
        self.ami = FakeAMI(self.calls)
        self.clock = clock if clock is not None else reactor
        # The link is the fake: no embedded simulator, whose driver would bind the interface.
        config.setdefault("simulator", {"enabled": False})
        self.center = CallCenter(
            self.clock, parse_config(config), link=self.ami, now_ms=lambda: 1_700_000_000_000  # type: ignore[arg-type]
        )
        # As after a login and a rebuild (the fake link never logs in, so the sync never
        # sends anything itself).
        self.center.sync.ready = True
        self.center.sync.last_rebuild = RebuildStats(
            duration=0.25, actions=3, messages=42, agents=0, full=True
        )
        self.streams = FakeStreams()

    @property
    def hub(self) -> Any:
        return self.center.hub

    @property
    def tracker(self) -> Any:
        return self.center.tracker

    @property
    def sync(self) -> Any:
        return self.center.sync


def http_settings(**overrides: Any) -> HTTPConfig:
    values: dict[str, Any] = {
        "public_url": "https://pbx.example.com/cc",
        "api_keys": (API_KEY,),
        "allowed_origins": ("https://crm.example.com",),
    }
    if "public_base_url" in overrides:
        overrides["public_url"] = overrides.pop("public_base_url")
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    return HTTPConfig(**values)


def make_site(fakes: Fakes, client_routes: bool = False, **overrides: Any) -> Site:
    http = http_settings(**overrides)
    app = build_app(fakes.center, http, clock=fakes.clock, client_routes=client_routes)
    return build_site(app, http.allowed_origins)


class Server:
    """The app on 127.0.0.1:0 and a treq client with its own non-persistent pool."""

    def __init__(self, site: Site) -> None:
        from twisted.internet import reactor

        self._reactor = reactor
        self.site = site
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
        self.fakes = Fakes(clock)
        self.clock = clock
        self.servers: list[Server] = []

    async def serve(self, **overrides: Any) -> Server:
        server = await Server(make_site(self.fakes, **overrides)).start()
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

    site = make_site(Fakes(), client_routes=True, public_base_url="http://127.0.0.1")

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
