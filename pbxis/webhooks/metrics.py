"""Prometheus families for webhook delivery, per endpoint (label ``endpoint`` = its name).

Names are bounded by config (one label value per ``[[webhooks]]`` table), so this adds
no unbounded label set to ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .delivery import Webhooks

__all__ = ["WebhookCollector"]


class WebhookCollector(Collector):
    def __init__(self, webhooks: Webhooks) -> None:
        self._webhooks = webhooks

    def collect(self) -> Iterator[Metric]:
        counters = {
            "delivered": CounterMetricFamily(
                "pbxis_webhook_delivered", "Events delivered (2xx).", labels=["endpoint"]
            ),
            "retried": CounterMetricFamily(
                "pbxis_webhook_retried", "Attempts that failed and were scheduled again.", labels=["endpoint"]
            ),
            "given_up": CounterMetricFamily(
                "pbxis_webhook_given_up",
                "Events given up (refused with a 4xx, or older than max_age).",
                labels=["endpoint"],
            ),
            "dropped": CounterMetricFamily(
                "pbxis_webhook_dropped",
                "Events dropped undelivered to stay within max_pending (oldest first).",
                labels=["endpoint"],
            ),
        }
        pending = GaugeMetricFamily(
            "pbxis_webhook_pending", "Events waiting for delivery.", labels=["endpoint"]
        )
        oldest = GaugeMetricFamily(
            "pbxis_webhook_oldest_pending_seconds",
            "Age of the oldest event still waiting for delivery.",
            labels=["endpoint"],
        )
        for endpoint in self._webhooks.endpoints:
            name = endpoint.config.name
            for key, family in counters.items():
                family.add_metric([name], getattr(endpoint.stats, key))
            pending.add_metric([name], endpoint.pending)
            oldest.add_metric([name], endpoint.oldest_age())
        yield from counters.values()
        yield pending
        yield oldest
