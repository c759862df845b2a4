"""``python -m pbxis.simulator`` / ``pbxis-simulator``: a standalone simulated Asterisk.

Listens for AMI on 127.0.0.1 (``--interface`` to change), logs in the given agents
to every queue, and with ``--rate`` keeps customers calling so a demo shows life.
``--asterisk 22`` plays Asterisk 22 with PJSIP endpoints (``PJSIP/<agent>``) instead
of Asterisk 20 with chan_sip.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, cast

from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from .config import SimulatorConfig, parse_agents
from .personality import personality
from .simulator import Simulator

log = Logger()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pbxis-simulator", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=5038, help="AMI TCP port (default 5038)")
    p.add_argument("--interface", default="127.0.0.1", help="address to listen on")
    p.add_argument("--agents", default="1001-1005", help="agent extensions, e.g. 1001-1005,2001")
    p.add_argument("--queues", default="sales,support", help="comma-separated queue names")
    p.add_argument("--lab", action="store_true", help="the captures' lab config instead")
    p.add_argument("--username", default="pbxis")
    p.add_argument("--secret", default="pbxis-secret")
    p.add_argument("--rate", type=float, default=6.0, help="customer calls per minute (0: none)")
    p.add_argument("--talk", default="20-60", help="talk time range in seconds, e.g. 20-60")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-login", action="store_true", help="do not log the agents in")
    p.add_argument("--asterisk", choices=("20", "22"), default="20",
                   help="the Asterisk to play: 20 (chan_sip, default) or 22 (PJSIP)")  # fmt: skip
    p.add_argument("--tech", choices=("sip", "pjsip"), default=None,
                   help="the channel driver (default: sip on 20, pjsip on 22)")  # fmt: skip
    return p


def serve(args: argparse.Namespace, reactor: Any) -> Simulator:
    """Build the simulator the arguments describe and listen on ``reactor``.

    Raises ``ValueError`` for an unusable ``--agents``/``--talk``.
    """
    plays = personality(args.asterisk, args.tech)
    if args.lab:
        config = SimulatorConfig.lab(plays)
    else:
        queues = [q.strip() for q in args.queues.split(",") if q.strip()]
        if not queues:
            raise ValueError("no queues given")
        config = SimulatorConfig.demo(
            agents=parse_agents(args.agents), queues=queues, logged_in=not args.no_login, personality=plays
        )
    low, _, high = args.talk.partition("-")
    talk = (float(low), float(high or low))
    sim = Simulator(config, clock=reactor, seed=args.seed, username=args.username, secret=args.secret)
    reactor.listenTCP(args.port, sim.factory, interface=args.interface)
    if args.rate > 0:
        sim.start_load(rate_per_minute=args.rate, talk_time=talk)
    log.info(
        "simulated Asterisk {version} ({tech}) listening on {interface}:{port}"
        " ({agents} agents, queues {queues})",
        version=plays.version,
        tech=plays.tech,
        interface=args.interface,
        port=args.port,
        agents=len(config.phones),
        queues=",".join(q.name for q in config.queues),
    )
    return sim


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from twisted.internet import reactor

    try:
        serve(args, reactor)
    except ValueError as exc:
        print(f"pbxis-simulator: {exc}", file=sys.stderr)
        return 2
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    cast(IReactorCore, reactor).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
