"""What the operator watches: `/metrics` in Prometheus' text format, on an address of its own
(`METRICS_PORT`, off by default; `METRICS_HOST` defaults to loopback), never on the public callback
server.

Counters are counted where things happen (a callback verified, a health check run, a renewal sent
or completed, a connection found broken); gauges are read from the database when Prometheus
scrapes, so every replica reports the same backlog and the same connections.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bot.store.gauges import Gauges
from bot.store.health import Health

log = logging.getLogger(__name__)

# Seconds from the redirect's arrival to the page's answer (code exchange, Graph reads, verdict).
_CALLBACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


# The pages of a renewal that kept its connection alive, or brought it back (`bot.connect`).
RENEWED_PAGES = frozenset({"renewal.renewed", "renewal.reconnected"})


class Metrics:
    """One registry per bot (tests run several bots in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.callbacks = Counter(
            "connectbot_callbacks", "OAuth callbacks answered, by outcome", ["outcome"], registry=r
        )
        self.callback_seconds = Histogram(
            "connectbot_callback_seconds",
            "Time from an OAuth redirect's arrival to the page's answer",
            buckets=_CALLBACK_BUCKETS,
            registry=r,
        )
        self.health_checks = Counter(
            "connectbot_health_checks",
            "Connection health checks, by result (ok, broken, retry)",
            ["result"],
            registry=r,
        )
        self.renewals_sent = Counter(
            "connectbot_renewals_sent", "Renewal reminders sent to influencers", registry=r
        )
        self.renewals_completed = Counter(
            "connectbot_renewals_completed", "Connections renewed by their influencer", registry=r
        )
        self.breakages = Counter(
            "connectbot_breakages", "Connections found broken, by reason", ["reason"], registry=r
        )
        self.webhook_deliveries = Counter(
            "connectbot_webhook_deliveries",
            "Webhook POSTs to the platform, by outcome (delivered, retry, failed)",
            ["outcome"],
            registry=r,
        )
        self.connections = Gauge(
            "connectbot_connections", "Connections, by state", ["state"], registry=r
        )
        self.connection_health = Gauge(
            "connectbot_connection_health",
            "Connections by health (healthy, renewal_due, broken; ended ones: disconnected)",
            ["state"],
            registry=r,
        )
        self.outbox_waiting = Gauge(
            "connectbot_outbox_waiting", "Messages waiting in the outbox", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "connectbot_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox (0 when none waits)",
            registry=r,
        )
        self._states_seen: set[str] = set()
        self._health_seen: set[str] = set()

    def callback_answered(self, page: str, seconds: float) -> None:
        """An OAuth callback answered with `page` (`bot.connect.RedirectResult.page`)."""
        self.callbacks.labels(outcome=page).inc()
        self.callback_seconds.observe(seconds)
        if page in RENEWED_PAGES:
            self.renewals_completed.inc()

    async def scrape(self, gauges: Gauges, health: Health | None = None) -> bytes:
        """Read the gauges from the database, then the whole registry in the text format."""
        reading = await gauges.read()
        self.outbox_waiting.set(reading.outbox_waiting)
        since = reading.oldest_waiting_since
        age = (datetime.now(UTC) - since).total_seconds() if since is not None else 0.0
        self.outbox_oldest_age.set(max(age, 0.0))
        # A state that no connection is in any more reads 0, not its last value.
        for state in self._states_seen - reading.connections.keys():
            self.connections.labels(state=state).set(0)
        for state, count in reading.connections.items():
            self.connections.labels(state=state).set(count)
        self._states_seen |= reading.connections.keys()
        if health is not None:
            counts = await health.counts()
            for state in self._health_seen - counts.keys():
                self.connection_health.labels(state=state).set(0)
            for state, count in counts.items():
                self.connection_health.labels(state=state).set(count)
            self._health_seen |= counts.keys()
        return generate_latest(self.registry)


def metrics_app(metrics: Metrics, gauges: Gauges, health: Health | None = None) -> web.Application:
    """The operator's own little server: `GET /metrics` and nothing else."""

    async def serve(request: web.Request) -> web.Response:
        try:
            body = await metrics.scrape(gauges, health)
        except Exception:
            log.exception("metrics: the database could not be read")
            return web.Response(status=503, text="database unavailable\n")
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app
