"""AMIClientFactory against a scripted AMI server on real loopback TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.logger import LogEvent, globalLogPublisher
from twisted.python.failure import Failure

from pbxis.ami.client import AMIClientFactory, AMIProtocol
from pbxis.ami.errors import ActionFailed, ConnectionLost
from pbxis.ami.message import Message
from tests.ami.ami_fakeserver import FakeAMIFactory, FakeAMIServer


class Waiter:
    """Observer whose calls tests can await."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._waiting: list[tuple[str, Deferred[Any]]] = []

    def _record(self, kind: str, value: Any) -> None:
        self.calls.append((kind, value))
        for entry in list(self._waiting):
            if entry[0] == kind:
                self._waiting.remove(entry)
                entry[1].callback(value.value if isinstance(value, Failure) else value)

    def ami_logged_in(self, protocol: AMIProtocol) -> None:
        self._record("logged_in", protocol)

    def ami_event(self, message: Message) -> None:
        self._record("event", message)

    def ami_lost(self, reason: Failure) -> None:
        self._record("lost", reason)

    def next(self, kind: str) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self._waiting.append((kind, d))
        return d

    async def until_event(self, name: str) -> None:
        while (await self.next("event")).event != name:
            pass

    def events(self) -> list[str | None]:
        return [m.event for k, m in self.calls if k == "event"]


class Setup:
    def __init__(self, server: FakeAMIFactory, secret: str | None = None, **kw: Any) -> None:
        self.server = server
        self.port = reactor.listenTCP(0, server, interface="127.0.0.1")
        secret = server.secret if secret is None else secret
        self.client = AMIClientFactory(server.username, secret, min_delay=0.01, **kw)
        self.waiter = Waiter()
        self.client.add_observer(self.waiter)

    def start(self) -> Deferred[Any]:
        logged_in = self.waiter.next("logged_in")
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port)
        self.client.connect(endpoint)
        return logged_in

    async def close(self) -> None:
        await self.client.stop()
        await self.port.stopListening()
        while len(self.server.lost) < len(self.server.connections):
            await self.server.wait_for_loss()


@asynccontextmanager
async def running(server: FakeAMIFactory, **kw: Any) -> AsyncIterator[Setup]:
    setup = Setup(server, **kw)
    try:
        await setup.start()
        yield setup
    finally:
        await setup.close()


@pytest_twisted.ensureDeferred
async def test_md5_login_fully_booted_and_list_action() -> None:
    server = FakeAMIFactory()

    def queue_status(srv: FakeAMIServer, action: Message) -> None:
        aid = ("ActionID", action.action_id or "")
        srv.send(
            ("Response", "Success"), aid, ("EventList", "start"), ("Message", "Queue status will follow")
        )
        srv.send(("Event", "QueueParams"), ("Queue", "sales"), aid)
        srv.send(("Event", "QueueMemberStatus"), ("Privilege", "agent,all"))
        srv.send(("Event", "QueueMember"), ("Queue", "sales"), aid)
        srv.send(("Event", "QueueStatusComplete"), aid, ("EventList", "Complete"), ("ListItems", "2"))

    server.scripts["queuestatus"] = queue_status
    async with running(server) as s:
        assert s.client.connected
        login = server.actions("Login")[0]
        assert login["AuthType"] == "MD5" and "Secret" not in login
        assert [m.action for m in server.received] == ["Challenge", "Login"]
        result = await s.client.send_action("QueueStatus", {"Queue": "sales"})
        assert [m.event for m in result.events] == ["QueueParams", "QueueMember"]
        assert s.waiter.events() == ["FullyBooted", "QueueMemberStatus"]
        protocol = s.client.protocol_instance
        assert protocol is not None and protocol.fully_booted


@pytest_twisted.ensureDeferred
async def test_plain_login_and_error_response() -> None:
    server = FakeAMIFactory()
    async with running(server, auth="plain") as s:
        assert server.actions("Login")[0]["Secret"] == server.secret
        try:
            await s.client.send_action("NoSuchAction")
        except ActionFailed as e:
            assert e.message == "Invalid/unknown command"
        else:
            raise AssertionError("ActionFailed expected")


@pytest_twisted.ensureDeferred
async def test_out_of_order_responses_over_tcp() -> None:
    server = FakeAMIFactory()
    held: list[Message] = []

    def queue_add(srv: FakeAMIServer, action: Message) -> None:
        held.append(action)
        if len(held) == 2:  # answer the second first, events in between
            srv.send(("Event", "QueueMemberAdded"), ("Queue", "support"))
            for a in reversed(held):
                srv.send(
                    ("Response", "Success"),
                    ("ActionID", a.action_id or ""),
                    ("Message", f"added {a['Queue']}"),
                )
                srv.send(("Event", "QueueMemberAdded"), ("Queue", a["Queue"]))
            srv.send(("Event", "UserEvent"), ("UserEvent", "done"))

    server.scripts["queueadd"] = queue_add
    async with running(server) as s:
        done = s.waiter.until_event("UserEvent")
        d1 = s.client.send_action("QueueAdd", {"Queue": "sales"})
        d2 = s.client.send_action("QueueAdd", {"Queue": "support"})
        await done
        r1, r2 = await d1, await d2
        assert r1.response["Message"] == "added sales"
        assert r2.response["Message"] == "added support"
        assert s.waiter.events() == ["FullyBooted"] + ["QueueMemberAdded"] * 3 + ["UserEvent"]


@pytest_twisted.ensureDeferred
async def test_loss_errbacks_pending_and_reconnect_never_resends() -> None:
    server = FakeAMIFactory()
    server.scripts["originate"] = lambda srv, action: srv.transport.loseConnection()
    async with running(server) as s:
        lost = s.waiter.next("lost")
        relogged = s.waiter.next("logged_in")
        try:
            await s.client.send_action("Originate", {"Channel": "SIP/1001", "Async": True})
        except ConnectionLost:
            pass
        else:
            raise AssertionError("ConnectionLost expected")
        await lost
        await relogged
        assert s.client.connected
        assert len(server.connections) == 2
        assert len(server.actions("Originate")) == 1
        assert [m.action for m in server.received].count("Login") == 2
        assert s.client.stats.logins == 2


@pytest_twisted.ensureDeferred
async def test_wrong_secret_is_reported_and_retried_with_backoff() -> None:
    server = FakeAMIFactory()
    setup = Setup(server, secret="wrong")
    try:
        first = server.wait_for_action("Login")
        setup.start().addErrback(lambda f: None)
        await first
        failed_at = reactor.seconds()
        await server.wait_for_action("Login")
        assert reactor.seconds() - failed_at >= 0.008  # min_delay 0.01 minus jitter
        assert "Authentication failed" in (setup.client.stats.last_error or "")
        assert not setup.client.connected
        assert setup.client.stats.logins == 0 and setup.client.stats.reconnects >= 1
        assert setup.waiter.calls == []
    finally:
        await setup.close()


@pytest_twisted.ensureDeferred
async def test_logoff_is_goodbye() -> None:
    server = FakeAMIFactory()
    async with running(server) as s:
        result = await s.client.send_action("Logoff")
        assert result.response.response == "Goodbye"


@pytest_twisted.ensureDeferred
async def test_secret_absent_from_logs_over_tcp() -> None:
    logged: list[LogEvent] = []
    globalLogPublisher.addObserver(logged.append)
    server = FakeAMIFactory(secret="very-secret-Zq9")
    try:
        async with running(server) as s:
            await s.client.send_action("Ping")
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert logged
    assert "very-secret-Zq9" not in repr(logged)
