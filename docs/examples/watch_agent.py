"""Watch agent 1001, log it in to queue sales and call a customer: pbxis in a Twisted program."""

import json
import sys

from twisted.internet import defer, task

import pbxis


async def main(reactor, ami="127.0.0.1:5038"):
    host, _, port = ami.partition(":")
    config = {"ami": {"host": host, "port": int(port), "username": "pbxis", "secret": "pbxis-secret"}}
    center = await pbxis.connect(reactor, config)
    show = lambda event: print(json.dumps(event), flush=True)  # noqa: E731
    center.register_agent("1001", ["sales"], name="Alice", listeners=[show])
    try:
        await center.queue_action("1001", "sales", "login")
    except pbxis.AlreadyLoggedIn:
        print("1001 was logged in to sales already")
    print("originate", await center.originate("1001", "0911234567"), flush=True)
    await task.deferLater(reactor, 5, lambda: None)  # events keep arriving meanwhile
    await center.disconnect()


task.react(lambda reactor, argv: defer.ensureDeferred(main(reactor, *argv)), [sys.argv[1:]])
