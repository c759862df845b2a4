"""Signed webhooks: agents' events pushed to the CRM's back end (Standard Webhooks).

:mod:`.signing` (the signature scheme), :mod:`.config` (the ``[[webhooks]]`` tables),
:mod:`.outbox` (what is pending, the storage seam), :mod:`.delivery` (the retry loop and
the treq client), :mod:`.metrics` (Prometheus families).
"""

from .config import DEFAULT_EVENTS, WebhookConfig, WebhookConfigError, parse_webhooks
from .delivery import Answer, Endpoint, Webhooks, message_id, treq_post
from .signing import SignatureError, decode_secret, generate_secret, sign, verify

__all__ = [
    "DEFAULT_EVENTS",
    "Answer",
    "Endpoint",
    "SignatureError",
    "WebhookConfig",
    "WebhookConfigError",
    "Webhooks",
    "decode_secret",
    "generate_secret",
    "message_id",
    "parse_webhooks",
    "sign",
    "treq_post",
    "verify",
]
