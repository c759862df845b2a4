"""``python -m pbxis.tail URL``: print an agent's stream from a WebSocket URL, one event a line.

For operators and CRM developers checking a stream by hand (curl covers SSE and
long-poll; it does not speak WebSocket). It prints each event's JSON as received and
reports the close code on stderr, so a kill-and-resume by hand is easy:
``python -m pbxis.tail "ws://127.0.0.1:8080/stream/$TOKEN/ws?since=12"``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import defer, task

__all__ = ["main"]


class _Printer(WebSocketClientProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            sys.stdout.write(payload.decode("utf-8", "replace") + "\n")
            sys.stdout.flush()
        except BrokenPipeError:  # piped into head(1), which has had enough
            self.sendClose(1000)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        sys.stderr.write(f"pbxis.tail: closed ({code}{': ' + reason if reason else ''})\n")
        if not self.factory.done.called:
            self.factory.done.callback(None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pbxis.tail", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the agent's stream URL (ws:// or wss://); add ?since=N to resume")
    parser.add_argument("--origin", default=None, help="Origin header to send (default: none)")
    args = parser.parse_args(argv)

    def run(reactor: Any) -> defer.Deferred[None]:
        factory = WebSocketClientFactory(args.url, origin=args.origin)
        factory.protocol = _Printer
        done: defer.Deferred[None] = defer.Deferred()
        factory.done = done  # type: ignore[attr-defined]
        connectWS(factory)
        return done

    task.react(lambda reactor: run(reactor))


if __name__ == "__main__":
    main()
