"""A registered agent: the record the hub, its store and the web layer share."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Registration", "RegistrationEnded", "TooManyClients"]


@dataclass(slots=True)
class Registration:
    """A registered agent. ``created`` is Unix epoch milliseconds."""

    agent: str
    queues: tuple[str, ...]
    name: str | None
    token: str = field(repr=False)
    created: int


class RegistrationEnded(LookupError):
    """The registration was unregistered, expired or the hub was shut down."""


class TooManyClients(RuntimeError):
    """The registration has ``max_clients`` connected clients already (issue #12 item 3)."""

    def __init__(self, agent: str, limit: int) -> None:
        super().__init__(f"agent {agent} has {limit} connected clients already")
        self.agent = agent
        self.limit = limit
