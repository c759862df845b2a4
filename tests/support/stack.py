"""Run the whole daemon in-process against its embedded simulated Asterisk, for tests.

:func:`start_stack` runs exactly what ``twistd pbxis`` runs in demo mode (``PbxisService``), on
127.0.0.1 with ephemeral ports and the simulator's random load switched off, so a test
drives calls itself through ``stack.simulator`` and observes them over real HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, reactor, task

from pbxis.config import parse_config

API_KEY = "test-api-key-0123456789"


@dataclass
class Stack:
    service: Any  # pbxis.service.PbxisService (imported lazily: unit tests need none of it)
    api_key: str | None

    @property
    def simulator(self) -> Any:
        assert self.service.simulator_service is not None
        return self.service.simulator_service.simulator

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.service.http_port}"

    async def api(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """One HTTP call; returns (status, parsed JSON or text or None)."""
        import treq

        hdrs = dict(headers or {})
        bearer = token or self.api_key
        if bearer and "Authorization" not in hdrs:
            hdrs["Authorization"] = f"Bearer {bearer}"
        data = raw
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        resp = await treq.request(method, self.base_url + path, data=data, headers=hdrs, persistent=False)
        body = await treq.content(resp)
        ctype = resp.headers.getRawHeaders(b"content-type", [b""])[0]
        if not body:
            return resp.code, None
        if ctype.startswith(b"application/json"):
            return resp.code, json.loads(body)
        return resp.code, body.decode("utf-8", "replace")

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
        """Poll ``predicate`` on the reactor until truthy (real time, bounded)."""
        deadline = reactor.seconds() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if reactor.seconds() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
            await task.deferLater(reactor, 0.01, lambda: None)

    async def ready(self, timeout: float = 5.0) -> None:
        """Wait until the AMI link is logged in and the first rebuild is done."""
        await self.wait_for(
            lambda: self.service.ami.connected and self.service.sync.ready, timeout, "AMI ready"
        )


def stack_config(**overrides: Any) -> Any:
    data: dict[str, Any] = {
        "ami": {"username": "pbxis", "secret": "pbxis-secret", "keepalive_interval": 5.0},
        "http": {"listen": "tcp:0:interface=127.0.0.1"},
        "agents": {"grace_period": 30.0},
        # Fault and load tests originate far more than a person could; the rate limits
        # have tests of their own (tests/engine/test_guard.py).
        "originate": {"agent_rate": 0, "global_rate": 0},
        "simulator": {"enabled": True, "calls_per_minute": 0.0, "seed": 1, "logged_in": False},
    }
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return parse_config(data)


async def start_stack(api_key: str | None = None, **overrides: Any) -> Stack:
    if api_key is not None:
        overrides.setdefault("http", {})["api_keys"] = [api_key]
    from pbxis.service import PbxisService

    service = PbxisService(stack_config(**overrides), reactor)
    service.startService()
    stack = Stack(service, api_key)
    await stack.ready()
    return stack


async def stop_stack(s: Stack) -> None:
    """Stop the daemon and let closed connections finish their teardown."""
    await defer.maybeDeferred(s.service.stopService)
    await task.deferLater(reactor, 0.05, lambda: None)
