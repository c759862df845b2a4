"""Signed webhooks: agents' events pushed to the CRM's back end (Standard Webhooks).

:mod:`.signing` (the signature scheme) and :mod:`.config` (the ``[[webhooks]]`` tables)
are pure and read by :mod:`pbxis.config`; :mod:`.outbox` (what is pending: the storage
seam; :mod:`.redis_outbox` keeps it in Redis), :mod:`.delivery` (the retry loop and
the treq client) and :mod:`.metrics` (Prometheus families) are the Twisted part the
engine runs. This package imports only the pure part, so reading the config pulls in no
reactor.
"""

from .config import DEFAULT_EVENTS, WebhookConfig, WebhookConfigError, parse_webhooks
from .signing import SignatureError, decode_secret, generate_secret, sign, verify

__all__ = [
    "DEFAULT_EVENTS",
    "SignatureError",
    "WebhookConfig",
    "WebhookConfigError",
    "decode_secret",
    "generate_secret",
    "parse_webhooks",
    "sign",
    "verify",
]
