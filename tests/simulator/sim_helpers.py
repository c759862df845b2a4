"""Test helpers for the simulator: a bare AMI client over loopback TCP.

The simulator's clock is a ``task.Clock`` (time moves only when a test says so);
the loopback tests use the real reactor only for sockets.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, protocol, reactor
from twisted.internet.task import Clock

from pbxis.ami.message import Banner, Message
from pbxis.ami.parser import AMIParser
from pbxis.simulator import Simulator

Predicate = Callable[[Message], bool]


class Client(protocol.Protocol):
    """A bare AMI client: parses what arrives, lets a test wait for a message."""

    def __init__(self) -> None:
        self.parser = AMIParser()
        self.banner: Banner | None = None
        self.messages: list[Message] = []
        self.raw = b""
        self.lost: defer.Deferred[None] = defer.Deferred()
        self._waiters: list[tuple[Predicate, defer.Deferred[Message]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.raw += data
        self.parser.receive_data(data)
        for item in self.parser.messages():
            if isinstance(item, Banner):
                self.banner = item
                continue
            self.messages.append(item)
        self._check()

    def connectionLost(self, reason: object = None) -> None:
        for _, d in self._waiters:
            d.errback(AssertionError(f"connection lost while waiting; got {self.messages}"))
        self._waiters.clear()
        self.lost.callback(None)

    def send(self, **headers: str) -> None:
        self.transport.write(Message(list(headers.items())).to_bytes())

    def action(self, name: str, **headers: str) -> None:
        self.transport.write(Message([("Action", name), *headers.items()]).to_bytes())

    def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> defer.Deferred[Message]:
        """Fires with the first message (old or new) matching ``predicate``."""
        d: defer.Deferred[Message] = defer.Deferred()
        self._waiters.append((predicate, d))
        self._check()
        if not d.called:
            call = reactor.callLater(timeout, self._timeout, d)
            d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    def _timeout(self, d: defer.Deferred[Message]) -> None:
        self._waiters = [w for w in self._waiters if w[1] is not d]
        if not d.called:
            d.errback(AssertionError(f"timed out; got {self.messages}"))

    def _check(self) -> None:
        for waiter in list(self._waiters):
            predicate, d = waiter
            match = next((m for m in self.messages if predicate(m)), None)
            if match is not None:
                self._waiters.remove(waiter)
                d.callback(match)


def response_to(action_id: str) -> Predicate:
    return lambda m: m.response is not None and m.action_id == action_id


def event(name: str, **fields: str) -> Predicate:
    return lambda m: m.event == name and all(m.get(k) == v for k, v in fields.items())


class Loopback:
    """A simulator listening on 127.0.0.1:0, clients connected with real TCP."""

    def __init__(self, sim: Simulator, clock: Clock) -> None:
        self.sim, self.clock = sim, clock
        self.port = reactor.listenTCP(0, sim.factory, interface="127.0.0.1")
        self.clients: list[Client] = []

    @defer.inlineCallbacks
    def connect(self, login: bool = True, **extra: str):  # type: ignore[no-untyped-def]
        client: Client = yield protocol.ClientCreator(reactor, Client).connectTCP(
            "127.0.0.1", self.port.getHost().port
        )
        self.clients.append(client)
        if login:
            client.action("Login", ActionID="login", Username="pbxis", Secret="pbxis-secret", **extra)
            yield client.wait_for(response_to("login"))
        return client

    @defer.inlineCallbacks
    def close(self):  # type: ignore[no-untyped-def]
        self.sim.shutdown()
        for client in self.clients:
            if client.transport is not None and client.transport.connected:
                client.transport.abortConnection()
            if not client.lost.called:
                yield client.lost
        yield self.port.stopListening()
