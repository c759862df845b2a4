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
``status``               STRING (TTL): the holder's view of its AMI link, JSON, renewed
                         with its lease (``/health/pbx/{pbx}`` on nodes without the link)
``vacant``               STRING: Redis time (ms) since which nobody holds ``collector``
``orphaned``             STRING: set once ``pbxStatus`` false was logged for a PBX nobody
                         held for ``lease_time`` (cleared by the next holder)
=======================  =============================================================

Every key above belongs to one PBX (:func:`pbx_keys`): PBX ``default`` (a lone ``[ami]``)
keeps the bare prefix, any other PBX ``{prefix}{{{pbx}}}:`` — its name as a hash tag, so
that one PBX's keys (which its scripts touch together) share one Redis Cluster slot. Two
keys are the node set's, under the bare prefix (:class:`NodeKeys`):

=======================  =============================================================
``collectors``           ZSET: collector node -> Redis time (ms) its membership ends
``collector_load``       HASH: collector node -> JSON ``{"held": [...], "can": [...]}``
                         (which PBXes it holds and may hold: how PBXes are spread)
=======================  =============================================================
"""

from __future__ import annotations

import hashlib

from pbxis.config import DEFAULT_PBX

__all__ = [
    "NODE_STREAM_TTL_MS",
    "REGISTRATIONS_LEN",
    "Keys",
    "NodeKeys",
    "pbx_keys",
    "pbx_prefix",
    "token_digest",
]

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


def pbx_prefix(prefix: str, pbx: str) -> str:
    """The prefix of one PBX's keys (see the module docstring): written once, here."""
    return prefix if pbx == DEFAULT_PBX else f"{prefix}{{{pbx}}}:"


def pbx_keys(prefix: str, pbx: str) -> Keys:
    """The keys of PBX ``pbx`` under ``[redis].key_prefix`` ``prefix``."""
    return Keys(pbx_prefix(prefix, pbx))


class NodeKeys:
    """The node set's keys (under the bare prefix): which collectors live, what they hold."""

    __slots__ = ("collectors", "load")

    def __init__(self, prefix: str) -> None:
        self.collectors = prefix + "collectors"
        self.load = prefix + "collector_load"


class Keys:
    """Key names under one prefix (one PBX's: :func:`pbx_keys`)."""

    __slots__ = (
        "agents",
        "alive",
        "collector",
        "commands",
        "orphaned",
        "prefix",
        "queries",
        "queues",
        "registrations",
        "regpos",
        "status",
        "tokens",
        "vacant",
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
        self.status = prefix + "status"
        self.vacant = prefix + "vacant"
        self.orphaned = prefix + "orphaned"

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
