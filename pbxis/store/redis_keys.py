"""Every Redis key pbxis uses, in one place (``[redis].key_prefix`` first, default ``pbxis:``).

=======================  =============================================================
key                      what
=======================  =============================================================
``reg:{agent}``          HASH: token, digest (SHA-256 of the token), queues (JSON), name
                         (JSON), created (ms), fence, first and last id of the log
``tokens``               HASH: token digest -> agent (look-up without a timing oracle)
``agents``               SET of registered agents (a restarted collector tracks them)
``alive``                ZSET: agent -> Redis time (ms) at which its grace period ends
``log:{agent}``          STREAM, ids ``N-0`` with N = the contract's event id; fields
                         ``t`` (type) and ``j`` (the event's JSON text)
``state:{agent}``        HASH: state key -> ``[type, data]`` JSON, the agent's last
                         published state (snapshots on any node; only real changes
                         after a collector restart)
``queues``               SET of queues with a state held (``queue:{name}``)
``queue:{name}``         HASH: state type -> ``version|rest`` (the hub's queue states)
``wake:{node}``          STREAM: wakes a node's blocked read loop when it reads more logs
                         (each per-node stream expires 10 min after its last entry)
``replies:{node}``       STREAM: answers to the commands a web node sent
``commands``             STREAM: commands for the collector
``command:{id}``         STRING: who took the command (its one execution), until a minute
                         after its deadline
``collector``            STRING: the node holding the AMI link, with a TTL: the AMI lease, which is
                         also the command lease (``redis_lease``)
``registrations``        STREAM: ``op`` (``reg``, ``unreg``, ``end``) and ``agent``: registrations
                         made on any node, unregistrations asked of the writer, ends it did
``regpos``               STRING: the last ``registrations`` entry the writer handled
``queries``              STREAM: a web node's questions to the writer (a snapshot for a
                         new client, ``GET /agents/{agent}``, ``GET /queues``)
``answers:{node}``       STREAM: the writer's answers to one web node
``webhook:{name}``       HASH: a webhook endpoint's pending deliveries, seq ->
                         ``[agent, webhook-id, enqueued, body]`` JSON (``redis_outbox``)
=======================  =============================================================
"""

from __future__ import annotations

import hashlib

__all__ = ["NODE_STREAM_TTL_MS", "REGISTRATIONS_LEN", "Keys", "token_digest"]

#: entries kept in the ``registrations`` stream (approximately: ``MAXLEN ~``); what fell
#: off is not needed: a writer reconciles with the registrations themselves at start
#: (:meth:`pbxis.store.redis_feed.RegistrationFeed.reconcile`)
REGISTRATIONS_LEN = 10_000

#: a node's own streams (``wake``, ``replies``, ``answers``) expire this long after their
#: last entry: their entries matter for seconds, and a node that is gone (its default name,
#: host and PID, is new at each start) must not leave keys behind for ever
NODE_STREAM_TTL_MS = 600_000


def token_digest(token: str) -> str:
    """The key a token is found by: its SHA-256, so that comparing keys reveals nothing."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class Keys:
    """Key names under one prefix."""

    __slots__ = (
        "agents",
        "alive",
        "collector",
        "commands",
        "prefix",
        "queries",
        "queues",
        "registrations",
        "regpos",
        "tokens",
    )

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tokens = prefix + "tokens"
        self.agents = prefix + "agents"
        self.alive = prefix + "alive"
        self.commands = prefix + "commands"
        self.collector = prefix + "collector"
        self.queues = prefix + "queues"
        self.registrations = prefix + "registrations"
        self.regpos = prefix + "regpos"
        self.queries = prefix + "queries"

    def queue(self, name: str) -> str:
        return f"{self.prefix}queue:{name}"

    def reg(self, agent: str) -> str:
        return f"{self.prefix}reg:{agent}"

    def log(self, agent: str) -> str:
        return f"{self.prefix}log:{agent}"

    def state(self, agent: str) -> str:
        return f"{self.prefix}state:{agent}"

    def wake(self, node: str) -> str:
        return f"{self.prefix}wake:{node}"

    def replies(self, node: str) -> str:
        return f"{self.prefix}replies:{node}"

    def answers(self, node: str) -> str:
        return f"{self.prefix}answers:{node}"

    def command(self, command_id: str) -> str:
        return f"{self.prefix}command:{command_id}"

    def webhook(self, name: str) -> str:
        return f"{self.prefix}webhook:{name}"
