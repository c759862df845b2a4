"""A tiny scripted AMI server for the client tests (not the simulator).

It speaks the banner, Challenge/Login (MD5 and plain), Ping and Logoff like Asterisk
20, and answers any other action through ``scripts[action_name](server, message)``.
Everything the client sent is recorded, so tests can assert what went on the wire.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
CHALLENGE = "1804289383"

Script = Callable[["FakeAMIServer", Message], None]


def msg(*pairs: tuple[str, str]) -> bytes:
    return Message(pairs).to_bytes()


class FakeAMIServer(Protocol):
    factory: FakeAMIFactory

    def __init__(self) -> None:
        self.parser = AMIParser(expect_banner=False)
        self.authenticated = False

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.transport.write(BANNER)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.factory.lost.append(self)
        waiters, self.factory.lost_waiters = self.factory.lost_waiters, []
        for w in waiters:
            w.callback(self)

    def send(self, *pairs: tuple[str, str]) -> None:
        self.transport.write(msg(*pairs))

    def dataReceived(self, data: bytes) -> None:
        self.parser.receive_data(data)
        for action in self.parser.messages():
            assert isinstance(action, Message)
            self.factory.received.append(action)
            self.handle(action)
            name = (action.action or "").lower()
            for waiter_name, waiter in list(self.factory.waiters):
                if waiter_name == name:
                    self.factory.waiters.remove((waiter_name, waiter))
                    waiter.callback(action)

    def handle(self, action: Message) -> None:
        name = (action.action or "").lower()
        aid = ("ActionID", action.action_id or "")
        f = self.factory
        if name in f.scripts:
            f.scripts[name](self, action)
        elif name == "challenge":
            self.send(("Response", "Success"), aid, ("Challenge", CHALLENGE))
        elif name == "login":
            if action.get("AuthType", "").lower() == "md5":
                expected = hashlib.md5((CHALLENGE + f.secret).encode()).hexdigest()
                ok = action.get("Key") == expected
            else:
                ok = action.get("Secret") == f.secret
            if ok and action.get("Username") == f.username:
                self.authenticated = True
                self.send(("Response", "Success"), aid, ("Message", "Authentication accepted"))
                if f.fully_booted:
                    self.send(
                        ("Event", "FullyBooted"), ("Privilege", "system,all"), ("Status", "Fully Booted")
                    )
            else:
                self.send(("Response", "Error"), aid, ("Message", "Authentication failed"))
                self.transport.loseConnection()
        elif name == "ping":
            if f.answer_pings:
                self.send(("Response", "Success"), aid, ("Ping", "Pong"), ("Timestamp", "1700000000.000000"))
        elif name == "logoff":
            self.send(("Response", "Goodbye"), aid, ("Message", "Thanks for all the fish."))
            self.transport.loseConnection()
        else:
            self.send(("Response", "Error"), aid, ("Message", "Invalid/unknown command"))


class FakeAMIFactory(Factory):
    protocol = FakeAMIServer

    def __init__(self, username: str = "pbxis", secret: str = "s3cr3t-Pa55") -> None:
        self.username = username
        self.secret = secret
        self.scripts: dict[str, Script] = {}
        self.received: list[Message] = []
        self.connections: list[FakeAMIServer] = []
        self.lost: list[FakeAMIServer] = []
        self.waiters: list[tuple[str, Deferred[Message]]] = []
        self.lost_waiters: list[Deferred[FakeAMIServer]] = []
        self.answer_pings = True
        self.fully_booted = True

    def wait_for_action(self, name: str) -> Deferred[Message]:
        """Fire when the server next receives action ``name``."""
        d: Deferred[Message] = Deferred()
        self.waiters.append((name.lower(), d))
        return d

    def wait_for_loss(self) -> Deferred[FakeAMIServer]:
        d: Deferred[FakeAMIServer] = Deferred()
        self.lost_waiters.append(d)
        return d

    def actions(self, name: str) -> list[Message]:
        return [m for m in self.received if (m.action or "").lower() == name.lower()]
