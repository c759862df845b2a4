"""The ``[[webhooks]]`` tables: validated once at start, every error naming its key.

::

    [[webhooks]]
    url = "https://crm.example.com/pbxis/hooks"
    secret_env = "PBXIS_WEBHOOK_SECRET"      # or secret = "whsec_...", secret_file = "..."
    events = ["phoneNumber", "agentComplete"] # default: DEFAULT_EVENTS
    agents = ["1001", "1002"]                 # optional filters; absent = everybody
    queues = ["sales"]
    pbx = ["default"]
    timeout = 10                              # seconds per attempt
    max_age = 86400                           # give an event up after this long

Kept apart from :mod:`pbxis.config` so the section can be validated (and tested) on its
own; ``pbxis.config`` calls :func:`parse_webhooks` for the array.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from ..events import EVENT_TYPES
from .signing import SignatureError, decode_secret

__all__ = ["DEFAULT_EVENTS", "WEBHOOK_EVENT_TYPES", "WebhookConfig", "WebhookConfigError", "parse_webhooks"]

DEFAULT_EVENTS: Final = ("phoneNumber", "agentComplete", "originateFailed", "transferFailed")
WEBHOOK_EVENT_TYPES: Final = tuple(dict.fromkeys((*EVENT_TYPES, "transferFailed", "recordingStatus")))
"""Every type an agent's log can hold; any of them may be pushed."""

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_KEYS: Final = (
    "url",
    "name",
    "events",
    "agents",
    "queues",
    "pbx",
    "secret",
    "secret_file",
    "secret_env",
    "timeout",
    "max_age",
    "max_pending",
    "max_in_flight",
)


class WebhookConfigError(ValueError):
    """One line naming the key, for the operator (``pbxis.config`` re-raises it)."""


@dataclass(frozen=True)
class WebhookConfig:
    """One endpoint. ``key`` is the decoded HMAC key (never printed)."""

    url: str
    name: str
    key: bytes = field(repr=False)
    events: frozenset[str] = frozenset(DEFAULT_EVENTS)
    agents: frozenset[str] | None = None
    queues: frozenset[str] | None = None
    pbx: frozenset[str] | None = None
    timeout: float = 10.0
    max_age: float = 86400.0
    max_pending: int = 10_000
    max_in_flight: int = 8

    def wants(self, pbx: str, agent: str, agent_queues: Sequence[str], event: Mapping[str, Any]) -> bool:
        """Whether ``event`` (contract JSON) of ``agent`` on ``pbx`` goes to this endpoint.

        The queue filter takes the event's own ``queue`` when it has one; an event of no
        queue (an extension status, a direct call) passes when the agent is registered
        for one of the filter's queues.
        """
        if event.get("type") not in self.events:
            return False
        if self.pbx is not None and pbx not in self.pbx:
            return False
        if self.agents is not None and agent not in self.agents:
            return False
        if self.queues is not None:
            queue = event.get("queue")
            if queue is not None:
                return queue in self.queues
            return any(q in self.queues for q in agent_queues)
        return True


def parse_webhooks(
    value: Any, *, environ: Mapping[str, str], base: Path | None = None
) -> tuple[WebhookConfig, ...]:
    """Validate the ``webhooks`` array of tables."""
    if not isinstance(value, list):
        raise WebhookConfigError(
            "webhooks: expected an array of tables, written [[webhooks]] (one per endpoint)"
        )
    out: list[WebhookConfig] = []
    names: set[str] = set()
    for index, table in enumerate(value):
        where = f"[[webhooks]] #{index + 1}"
        if not isinstance(table, dict):
            raise WebhookConfigError(f"{where}: expected a table")
        hook = _one(table, where, environ, base)
        name = hook.name
        if name in names:
            raise WebhookConfigError(f"{where}.name: {name!r} is used by another endpoint; names must differ")
        names.add(name)
        out.append(hook)
    return tuple(out)


def _one(table: dict[str, Any], where: str, environ: Mapping[str, str], base: Path | None) -> WebhookConfig:
    for key in table:
        if key not in _KEYS:
            raise WebhookConfigError(f"{where}.{key}: unknown key (known: {', '.join(_KEYS)})")
    url = table.get("url")
    if not isinstance(url, str) or not url:
        raise WebhookConfigError(f'{where}.url: required, e.g. "https://crm.example.com/hooks"')
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookConfigError(f"{where}.url: expected an http:// or https:// URL, got {url!r}")
    name = table.get("name", parts.netloc.rsplit("@", 1)[-1])
    if not isinstance(name, str) or not _NAME.match(name.replace(":", "_")):
        raise WebhookConfigError(f"{where}.name: expected 1-64 of A-Z a-z 0-9 _ . -, got {name!r}")
    events = _names(table, "events", where, None)
    if events is not None:
        unknown = sorted(events - set(WEBHOOK_EVENT_TYPES))
        if unknown:
            raise WebhookConfigError(
                f"{where}.events: unknown event type {unknown[0]!r} (known: {', '.join(WEBHOOK_EVENT_TYPES)})"
            )
        if not events:
            raise WebhookConfigError(f"{where}.events: empty; leave it out for the default set")
    return WebhookConfig(
        url=url,
        name=name,
        key=_secret(table, where, environ, base),
        events=events if events is not None else frozenset(DEFAULT_EVENTS),
        agents=_names(table, "agents", where, _NAME),
        queues=_names(table, "queues", where, _NAME),
        pbx=_names(table, "pbx", where, _NAME),
        timeout=_number(table, "timeout", where, 10.0, 0.1, 300.0),
        max_age=_number(table, "max_age", where, 86400.0, 1.0, 30 * 86400.0),
        max_pending=int(_number(table, "max_pending", where, 10_000, 1, 10_000_000, integer=True)),
        max_in_flight=int(_number(table, "max_in_flight", where, 8, 1, 256, integer=True)),
    )


def _names(
    table: dict[str, Any], key: str, where: str, pattern: re.Pattern[str] | None
) -> frozenset[str] | None:
    if key not in table:
        return None
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise WebhookConfigError(f"{where}.{key}: expected a list of strings")
    if pattern is not None:
        for item in value:
            if not pattern.match(item):
                raise WebhookConfigError(f"{where}.{key}: {item!r} is not a valid name")
    return frozenset(value)


def _number(
    table: dict[str, Any],
    key: str,
    where: str,
    default: float,
    low: float,
    high: float,
    *,
    integer: bool = False,
) -> float:
    if key not in table:
        return default
    value = table[key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise WebhookConfigError(f"{where}.{key}: expected {kind} from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _secret(table: dict[str, Any], where: str, environ: Mapping[str, str], base: Path | None) -> bytes:
    given = [k for k in ("secret", "secret_file", "secret_env") if table.get(k)]
    if not given:
        raise WebhookConfigError(
            f"{where}.secret: required (or secret_file / secret_env); an unsigned webhook "
            "cannot be trusted by the CRM. Generate one: python -m pbxis.webhooks.signing"
        )
    if len(given) > 1:
        raise WebhookConfigError(f"{where}.{given[1]}: set only one of secret, secret_file, secret_env")
    key = given[0]
    raw = table[key]
    if not isinstance(raw, str):
        raise WebhookConfigError(f"{where}.{key}: expected a string")
    if key == "secret_env":
        if raw not in environ:
            raise WebhookConfigError(f"{where}.secret_env: environment variable {raw} is not set")
        text = environ[raw]
    elif key == "secret_file":
        path = Path(raw)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            text = path.read_text("utf-8")
        except OSError as e:
            raise WebhookConfigError(f"{where}.secret_file: cannot read {path} ({e.strerror})") from None
    else:
        text = raw
    try:
        return decode_secret(text)
    except SignatureError as e:
        raise WebhookConfigError(f"{where}.{key}: {e}") from None
