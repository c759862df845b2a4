"""The same program on asyncio: Twisted's asyncio reactor, and Deferred.asFuture to await."""

import asyncio
import json
import sys

from twisted.internet import asyncioreactor

asyncio.set_event_loop(asyncio.new_event_loop())
asyncioreactor.install(asyncio.get_event_loop())  # before anything imports the reactor

from twisted.internet import defer, task  # noqa: E402

import pbxis  # noqa: E402


async def main(reactor, ami="127.0.0.1:5038"):
    loop = asyncio.get_running_loop()
    host, _, port = ami.partition(":")
    config = {"ami": {"host": host, "port": int(port), "username": "pbxis", "secret": "pbxis-secret"}}
    center = await pbxis.connect(reactor, config).asFuture(loop)
    show = lambda event: print(json.dumps(event), flush=True)  # noqa: E731
    center.register_agent("1001", ["sales"], name="Alice", listeners=[show])
    try:
        await center.queue_action("1001", "sales", "login").asFuture(loop)
    except pbxis.AlreadyLoggedIn:
        print("1001 was logged in to sales already")
    print("originate", await center.originate("1001", "0911234567").asFuture(loop), flush=True)
    await asyncio.sleep(5)  # events keep arriving meanwhile
    await center.disconnect().asFuture(loop)


def run(reactor, argv):
    return defer.Deferred.fromFuture(asyncio.ensure_future(main(reactor, *argv)))


task.react(run, [sys.argv[1:]])
