"""A TCP proxy in front of the daemon that can hang up on every client at once.

From the browser's side, pbxis itself closed the connection: that is the outage the
page must survive. While ``refusing``, new connections are accepted and closed at once,
so the test can publish events that only a correct resume will deliver.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.interfaces import IListeningPort
from twisted.protocols import portforward


class _Server(portforward.ProxyServer):
    factory: DroppingProxy

    def connectionMade(self) -> None:
        if self.factory.refusing:
            self.transport.loseConnection()
            return
        self.factory.open.add(self)
        super().connectionMade()

    def connectionLost(self, reason: object) -> None:
        self.factory.open.discard(self)
        super().connectionLost(reason)


class DroppingProxy(portforward.ProxyFactory):
    protocol = _Server
    noisy = False

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.open: set[_Server] = set()
        self.refusing = False
        self.listening: IListeningPort | None = None

    def listen(self) -> str:
        self.listening = reactor.listenTCP(0, self, interface="127.0.0.1")
        return f"http://127.0.0.1:{self.listening.getHost().port}"

    def drop_all(self) -> int:
        """Close every proxied connection (both sides); return how many there were."""
        dropped = list(self.open)
        for server in dropped:
            server.transport.loseConnection()
        return len(dropped)

    async def stop(self) -> None:
        self.drop_all()
        if self.listening is not None:
            await self.listening.stopListening()
