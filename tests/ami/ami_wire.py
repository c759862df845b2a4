"""Drive AMIClientFactory/AMIProtocol in memory, with a task.Clock for time.

``FakeEndpoint`` hands each connection a ``StringTransportWithDisconnection``;
``Peer`` plays Asterisk on it: reads what the client wrote, feeds answers back.
"""

from __future__ import annotations

import hashlib

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.testing import StringTransportWithDisconnection
from twisted.python.failure import Failure
from zope.interface import implementer

from pbxis.ami.client import AMIProtocol
from pbxis.ami.message import Message
from pbxis.ami.parser import AMIParser

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
CHALLENGE = "424242"


class Peer:
    """The Asterisk side of one in-memory link."""

    def __init__(self, protocol: AMIProtocol, transport: StringTransportWithDisconnection) -> None:
        self.protocol = protocol
        self.transport = transport
        self._parser = AMIParser(expect_banner=False)
        self.received: list[Message] = []

    def take(self) -> list[Message]:
        """Actions the client wrote since the last call."""
        self._parser.receive_data(self.transport.value())
        self.transport.clear()
        new = [m for m in self._parser.messages() if isinstance(m, Message)]
        self.received.extend(new)
        return new

    def take_one(self, action: str) -> Message:
        new = self.take()
        assert [m.action for m in new] == [action], new
        return new[0]

    def feed(self, *pairs: tuple[str, str]) -> None:
        self.protocol.dataReceived(Message(pairs).to_bytes())

    def feed_bytes(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def answer(self, action: Message, *pairs: tuple[str, str], response: str = "Success") -> None:
        self.feed(("Response", response), ("ActionID", action.action_id or ""), *pairs)

    def login(self, secret: str, *, accept: bool = True) -> None:
        """Banner, Challenge and MD5 Login, as Asterisk 20 does them."""
        self.feed_bytes(BANNER)
        challenge = self.take_one("Challenge")
        self.answer(challenge, ("Challenge", CHALLENGE))
        login = self.take_one("Login")
        assert login["Key"] == hashlib.md5((CHALLENGE + secret).encode()).hexdigest()
        if accept:
            self.answer(login, ("Message", "Authentication accepted"))
        else:
            self.answer(login, ("Message", "Authentication failed"), response="Error")

    def drop(self) -> None:
        self.transport.loseConnection()

    @property
    def closed(self) -> bool:
        return not self.transport.connected


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """Connects at once (or refuses, while ``refuse`` is set); keeps every Peer."""

    def __init__(self) -> None:
        self.attempts = 0
        self.refuse = False
        self.hold = False
        self.held: Deferred[AMIProtocol] | None = None
        self.peers: list[Peer] = []

    def connect(self, factory: IProtocolFactory) -> Deferred[AMIProtocol]:
        self.attempts += 1
        if self.refuse:
            return fail(ConnectionRefusedError("refused by test"))
        if self.hold:
            self.held = Deferred()
            return self.held
        protocol = factory.buildProtocol(None)
        assert isinstance(protocol, AMIProtocol)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self.peers.append(Peer(protocol, transport))
        return succeed(protocol)

    @property
    def peer(self) -> Peer:
        return self.peers[-1]


def lost() -> Failure:
    return Failure(ConnectionDone("test"))
